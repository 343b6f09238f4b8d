// SPDX-License-Identifier: Apache-2.0
// Zstandard frames for values at rest (rxflow/internal/compress.h): what is compressed, what
// is kept as it is, and what a damaged or forged frame gets.
#include "rxflow/internal/compress.h"

#include <cstdint>
#include <latch>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "rxflow/internal/crypto.h"

#include "testing/files.h"
#include "testing/status.h"

using namespace rxflow;

namespace {

// The offset of a frame's dictionary id (RFC 8878 3.1.1.1: magic, frame header descriptor,
// a window descriptor unless single-segment); 0 when the frame names none.
size_t DictionaryIdOffset(const std::string& frame) {
  const auto descriptor = static_cast<unsigned char>(frame.at(4));
  if ((descriptor & 0x03) == 0) return 0;
  return (descriptor & 0x20) != 0 ? 5 : 6;
}

// Bytes with no redundancy for zstd to find.
std::string RandomBytes(size_t n) {
  std::mt19937_64 rng(42);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

}  // namespace

TEST_SUITE("compress") {
  // `frame` with each byte in turn flipped: every copy is DataLoss or expands to exactly
  // `stored`, never other text; and most are refused.
  void CheckEveryByteFlipped(const std::string& frame, const std::string& stored) {
    size_t refused = 0;
    for (size_t i = 0; i < frame.size(); ++i) {
      std::string flipped = frame;
      flipped[i] ^= 0x01;
      CAPTURE(i);
      auto r = internal::ZstdDecompress(flipped, 1 << 20);
      if (r.ok()) {
        CHECK(*r == stored);
      } else {
        CHECK(r.status().code() == absl::StatusCode::kDataLoss);
        ++refused;
      }
    }
    CHECK(refused * 2 > frame.size());
  }

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

  TEST_CASE(
      "a NewRx compressed with the sealed dictionary names it and is under a third of the plain "
      "frame") {
    const std::string value = testing::SealedLisinoprilNewRx();
    auto plain = internal::ZstdCompress(value);
    auto with = internal::ZstdCompress(value, internal::ZstdDictionary::kSealed);
    REQUIRE(plain.has_value());
    REQUIRE(with.has_value());
    CAPTURE(value.size());
    CAPTURE(plain->size());
    CAPTURE(with->size());
    CHECK(with->size() * 3 < plain->size());  // measured: 4,198 bytes -> 1,552 or 394
    REQUIRE(DictionaryIdOffset(*with) != 0);
    uint32_t id = 0;
    for (int i = 3; i >= 0; --i) {
      id = (id << 8) | static_cast<unsigned char>(with->at(DictionaryIdOffset(*with) + i));
    }
    CHECK(id == internal::kZstdSealedDictionaryId);
    CHECK(DictionaryIdOffset(*plain) == 0);
    // Both read back exactly: frames made before the dictionary existed expand as before.
    auto back = internal::ZstdDecompress(*with, value.size());
    RXFLOW_REQUIRE_OK(back);
    CHECK(*back == value);
    auto back_plain = internal::ZstdDecompress(*plain, value.size());
    RXFLOW_REQUIRE_OK(back_plain);
    CHECK(*back_plain == value);
  }

  TEST_CASE("a frame naming a dictionary this build does not have is DataLoss naming its id") {
    std::string frame = *internal::ZstdCompress(testing::SealedLisinoprilNewRx(),
                                                internal::ZstdDictionary::kSealed);
    const size_t at = DictionaryIdOffset(frame);
    REQUIRE(at != 0);
    frame[at] = static_cast<char>(static_cast<unsigned char>(frame[at]) ^ 0x02);  // 0x52784603
    auto r = internal::ZstdDecompress(frame, 1 << 20);
    CHECK(r.status().code() == absl::StatusCode::kDataLoss);
    CHECK(std::string(r.status().message()).find("needs dictionary 1383613955") !=
          std::string::npos);
  }

  TEST_CASE("the sealed dictionary is frozen: its bytes and its id never change") {
    // Values sealed with it can be expanded by no other bytes. A new dictionary gets a new
    // id and file (scripts/train-zstd-dictionary.sh); this one stays, to read what it sealed.
    const std::string_view dictionary = internal::ZstdSealedDictionary();
    CHECK(dictionary.size() == 16384);
    CHECK(internal::Sha256Hex(dictionary) ==
          "d2ca9212d1daaa8224ce731ad6eaa14821616d39cb5208c8f3a340a230dbc186");
    REQUIRE(dictionary.size() >= 8);
    uint32_t magic = 0;
    uint32_t id = 0;
    for (int i = 3; i >= 0; --i) {
      magic = (magic << 8) | static_cast<unsigned char>(dictionary[i]);
      id = (id << 8) | static_cast<unsigned char>(dictionary[4 + i]);
    }
    CHECK(magic == 0xEC30A437);  // a zstd dictionary (RFC 8878 5), not raw content
    CHECK(id == internal::kZstdSealedDictionaryId);
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
    CheckEveryByteFlipped(frame, text + "end");
  }

  // The same for a frame made with the sealed dictionary, whose header also names it: a
  // changed byte anywhere (the id included) is DataLoss or reads back exactly, never other text.
  TEST_CASE("a damaged frame made with the sealed dictionary is DataLoss, never other text") {
    const std::string value = testing::SealedLisinoprilNewRx();
    const std::string frame = *internal::ZstdCompress(value, internal::ZstdDictionary::kSealed);
    REQUIRE(DictionaryIdOffset(frame) != 0);
    CheckEveryByteFlipped(frame, value);
    CHECK(internal::ZstdDecompress(frame.substr(0, frame.size() - 1), 1 << 20).status().code() ==
          absl::StatusCode::kDataLoss);
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
