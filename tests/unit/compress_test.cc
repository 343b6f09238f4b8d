// SPDX-License-Identifier: Apache-2.0
// Zstandard frames for values at rest (rxflow/internal/compress.h): what is compressed, what
// is kept as it is, and what a damaged or forged frame gets.
#include "rxflow/internal/compress.h"

#include <latch>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "testing/files.h"
#include "testing/status.h"

using namespace rxflow;

namespace {

// Bytes with no redundancy for zstd to find.
std::string RandomBytes(size_t n) {
  std::mt19937_64 rng(42);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

}  // namespace

TEST_SUITE("compress") {
  TEST_CASE("a NewRx becomes one frame of under a third of its size, and reads back exactly") {
    const std::string xml =
        testing::ReadFixture("golden/medication_request_lisinopril.2023011.xml");
    auto frame = internal::ZstdCompress(xml);
    REQUIRE(frame.has_value());
    CHECK(internal::IsZstdFrame(*frame));
    CHECK(frame->size() * 3 < xml.size());
    auto back = internal::ZstdDecompress(*frame, xml.size());
    RXFLOW_REQUIRE_OK(back);
    CHECK(*back == xml);
  }

  TEST_CASE("short and incompressible values are left as they are") {
    CHECK_FALSE(internal::ZstdCompress(std::string(internal::kCompressMinBytes - 1, 'a')));
    CHECK(internal::ZstdCompress(std::string(internal::kCompressMinBytes, 'a')).has_value());
    CHECK_FALSE(internal::ZstdCompress(RandomBytes(8192)));
    CHECK_FALSE(internal::IsZstdFrame("{\"newrx_xml\":\"...\"}"));
  }

  TEST_CASE("a frame larger than allowed is DataLoss before anything is allocated") {
    auto frame = internal::ZstdCompress(std::string(1 << 20, 'x'));  // 1 MiB of one byte
    REQUIRE(frame.has_value());
    CHECK(frame->size() < 1024);
    auto refused = internal::ZstdDecompress(*frame, (1 << 20) - 1);
    CHECK(refused.status().code() == absl::StatusCode::kDataLoss);
    CHECK(std::string(refused.status().message()).find("more than the 1048575 allowed") !=
          std::string::npos);
    CHECK(internal::ZstdDecompress(*frame, 1 << 20).ok());
  }

  TEST_CASE("damaged frames are DataLoss: cut, corrupted, trailing bytes, not a frame") {
    const std::string text(4096, 'r');
    std::string frame = *internal::ZstdCompress(text + "end");
    auto code = [](const absl::StatusOr<std::string>& r) { return r.status().code(); };
    CHECK(code(internal::ZstdDecompress(frame.substr(0, frame.size() - 2), 1 << 20)) ==
          absl::StatusCode::kDataLoss);
    CHECK(code(internal::ZstdDecompress(frame + "x", 1 << 20)) == absl::StatusCode::kDataLoss);
    CHECK(code(internal::ZstdDecompress("{}", 1 << 20)) == absl::StatusCode::kDataLoss);
    CHECK(code(internal::ZstdDecompress(std::string("\x28\xb5\x2f\xfd", 4), 1 << 20)) ==
          absl::StatusCode::kDataLoss);
    // Any one byte changed anywhere never reads as other content: the frame's structure or its
    // content checksum refuses it, or (a bit the decoder does not use, another offset into the
    // same run of bytes) it still expands to exactly what was stored.
    size_t refused = 0;
    for (size_t i = 0; i < frame.size(); ++i) {
      std::string flipped = frame;
      flipped[i] ^= 0x01;
      CAPTURE(i);
      auto r = internal::ZstdDecompress(flipped, 1 << 20);
      if (r.ok()) {
        CHECK(*r == text + "end");
      } else {
        CHECK(r.status().code() == absl::StatusCode::kDataLoss);
        ++refused;
      }
    }
    CHECK(refused * 2 > frame.size());
  }

  TEST_CASE("threads share compression contexts: one given back is taken again on another thread") {
    const std::string xml =
        testing::ReadFixture("golden/medication_request_lisinopril.2023011.xml");
    REQUIRE(internal::ZstdCompress(xml).has_value());
    const size_t idle = internal::ZstdIdleCompressionContexts();
    CHECK(idle >= 1);
    // One after the other, each on a new thread: each takes an idle context and gives it
    // back. The count neither grows (a new context for each thread) nor shrinks (one kept).
    for (int i = 0; i < 3; ++i) {
      std::thread([&] { CHECK(internal::ZstdCompress(xml).has_value()); }).join();
      CHECK(internal::ZstdIdleCompressionContexts() == idle);
    }
  }

  TEST_CASE("many threads compressing at once each get their own value back; a few contexts stay") {
    const std::string xml =
        testing::ReadFixture("golden/medication_request_lisinopril.2023011.xml");
    constexpr int kThreads = 24;
    std::latch start(kThreads);
    std::vector<int> wrong(kThreads, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = 0; i < 20; ++i) {
          const std::string value = std::to_string(t) + "/" + std::to_string(i) + xml;
          auto frame = internal::ZstdCompress(value);
          auto back = frame ? internal::ZstdDecompress(*frame, value.size())
                            : absl::StatusOr<std::string>(absl::InternalError("no frame"));
          if (!back.ok() || *back != value) ++wrong[t];
        }
      });
    }
    for (auto& th : threads) th.join();
    for (int t = 0; t < kThreads; ++t) CHECK_MESSAGE(wrong[t] == 0, "thread ", t);
    CHECK(internal::ZstdIdleCompressionContexts() >= 1);
    static_assert(kThreads > internal::kZstdIdleContextsKept);  // more made than are kept
    CHECK(internal::ZstdIdleCompressionContexts() <= internal::kZstdIdleContextsKept);
  }
}
