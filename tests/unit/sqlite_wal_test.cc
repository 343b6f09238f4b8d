// SPDX-License-Identifier: Apache-2.0
// The SQLite store's bound on its WAL (SqliteOptions::wal_limit_bytes): a WAL written without
// pause while readers read is started over at the bound instead of growing for as long as
// the load lasts; nothing committed is lost across the restarts; a reader holding a snapshot
// delays the restart but never blocks the writer.
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <sqlite3.h>

#include "rxflow/sqlite/sqlite_store.h"

#include "testing/files.h"
#include "testing/status.h"

namespace {

using rxflow::store::AppendRequest;
using rxflow::store::EventRecord;
using rxflow::store::Store;

constexpr size_t kLimit = size_t{512} << 10;  // 512 KiB: a few hundred appends
constexpr size_t kPayload = 4000;             // one event of ~4 KB per append

// A fresh database path in its own directory, removed afterwards.
struct TempDb {
  rxflow::testing::TempDir dir{"rxflow-wal"};
  std::string path = (dir.path / "t.db").string();
  uintmax_t WalBytes() const {
    std::error_code ec;
    uintmax_t n = std::filesystem::file_size(path + "-wal", ec);
    return ec ? 0 : n;
  }
};

std::unique_ptr<Store> OpenStore(const TempDb& tmp, size_t wal_limit_bytes) {
  rxflow::store::SqliteOptions options;
  options.path = tmp.path;
  options.wal_limit_bytes = wal_limit_bytes;
  auto store = rxflow::store::OpenSqliteStore(options);
  RXFLOW_REQUIRE_OK(store);
  return std::move(*store);
}

// Append `i`: stream rx-i, one event whose payload is a function of i.
std::string PayloadOf(int i) {
  return R"({"n":)" + std::to_string(i) + R"(,"text":")" +
         std::string(kPayload, static_cast<char>('a' + i % 26)) + R"("})";
}

AppendRequest AppendOf(int i) {
  AppendRequest req;
  req.stream_id = "rx-" + std::to_string(i);
  req.idempotency_key = "key-" + std::to_string(i);
  EventRecord e;
  e.event_id = "event-" + std::to_string(i);
  e.type = "Something";
  e.payload = PayloadOf(i);
  req.events.push_back(std::move(e));
  return req;
}

// Appends [from, to) from `threads` threads (so that commits are grouped, as under load),
// while two readers read the log and look keys up without pause; returns the largest size
// the WAL file had after an append. Every append and read must succeed.
uintmax_t AppendUnderReads(Store& store, const TempDb& tmp, int from, int to, int threads) {
  std::atomic<bool> done{false};
  std::atomic<int> next{from};
  std::atomic<uintmax_t> largest{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  readers.reserve(2);
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!done.load()) {
        auto key = store.FindByIdempotencyKey("key-" + std::to_string(from));
        if (!store.ReadAll(0, 8).ok() || (!key.ok() && !absl::IsNotFound(key.status()))) {
          failures.fetch_add(1);
        }
      }
    });
  }
  std::vector<std::thread> writers;
  writers.reserve(static_cast<size_t>(threads));
  for (int w = 0; w < threads; ++w) {
    writers.emplace_back([&] {
      for (int i = next.fetch_add(1); i < to; i = next.fetch_add(1)) {
        if (!store.Append(AppendOf(i)).ok()) failures.fetch_add(1);
        uintmax_t now = tmp.WalBytes();
        uintmax_t seen = largest.load();
        while (now > seen && !largest.compare_exchange_weak(seen, now)) {
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  done.store(true);
  for (auto& t : readers) t.join();
  CHECK(failures.load() == 0);
  return largest.load();
}

// How far past its bound the WAL may grow in these tests (see the first one below). How many
// restarts a reader's snapshot refuses depends on the scheduler and the disk: on an idle
// machine this test's WAL peaks at 1.2-1.9 x the bound, but a plain build once reached 2.06 x
// inside a full `ctest -j2` with a fuzzer on the other core, and ASan once 2.15 x in a fresh-clone
// CI. The bound's purpose is told apart all the same: unbounded, the same appends make a WAL
// of several MB, more than ten times it.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr uintmax_t kSlack = 4;
#else
constexpr uintmax_t kSlack = 3;
#endif

// Every append in [0, n) is in the log, once, as written.
void CheckAll(Store& store, int n) {
  auto all = store.ReadAll(0, static_cast<size_t>(n) + 10);
  RXFLOW_REQUIRE_OK(all);
  REQUIRE(all->size() == static_cast<size_t>(n));
  std::vector<bool> seen(static_cast<size_t>(n));
  for (const EventRecord& e : *all) {
    int i = std::stoi(e.stream_id.substr(3));
    REQUIRE(i >= 0);
    REQUIRE(i < n);
    CHECK_FALSE(seen[static_cast<size_t>(i)]);
    seen[static_cast<size_t>(i)] = true;
    CHECK(e.payload == PayloadOf(i));
  }
}

TEST_CASE("sqlite store: a WAL written without pause while readers read stays near its bound") {
  TempDb tmp;
  constexpr int kAppends = 1200;  // ~5 MB of payload alone: ten times the bound
  {
    auto store = OpenStore(tmp, kLimit);
    uintmax_t largest = AppendUnderReads(*store, tmp, 0, kAppends, 4);
    // The bound, plus what is committed while the writer waits for the last copy (an eighth
    // of the bound) and one group commit, plus an eighth for each restart a reader's snapshot
    // refused (KeepWalBounded retries it an eighth later). Unbounded, this WAL reaches several
    // MB. Readers hold their snapshots longer when they are descheduled (a loaded machine) or
    // slowed (a sanitizer), so more restarts are refused: kSlack says how much, and why.
    CHECK_MESSAGE(largest <= kSlack * kLimit, "largest WAL ", largest, " bytes, bound ", kLimit);
    CheckAll(*store, kAppends);
  }
  // Reopened: everything the restarts copied back is in the database file.
  auto store = OpenStore(tmp, kLimit);
  CheckAll(*store, kAppends);
}

TEST_CASE("sqlite store: a reader holding a snapshot delays the WAL's restart, never the writer") {
  TempDb tmp;
  auto store = OpenStore(tmp, kLimit);
  RXFLOW_REQUIRE_OK(store->Append(AppendOf(0)));
  // A reader in a transaction that it keeps open: its snapshot is in the WAL, which cannot
  // start over until it ends.
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open_v2(tmp.path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_exec(raw, "BEGIN; SELECT count(*) FROM events;", nullptr, nullptr, nullptr) ==
          SQLITE_OK);
  constexpr int kHeld = 400;  // ~1.6 MB: three times the bound
  uintmax_t held = AppendUnderReads(*store, tmp, 1, kHeld, 2);
  CHECK_MESSAGE(held > kLimit, "a reader held its snapshot, yet the WAL stayed at ", held,
                " bytes");
  REQUIRE(sqlite3_exec(raw, "COMMIT;", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close_v2(raw);
  // Released: the next restart succeeds, and the file is cut back to the bound.
  constexpr int kAfter = 800;
  AppendUnderReads(*store, tmp, kHeld, kAfter, 2);
  CHECK_MESSAGE(tmp.WalBytes() <= kLimit + kLimit / 2, "WAL file ", tmp.WalBytes(), " bytes");
  CheckAll(*store, kAfter);
}

TEST_CASE("sqlite store: wal_limit_bytes 0 leaves the WAL to SQLite's own rules") {
  TempDb tmp;
  auto store = OpenStore(tmp, 0);
  uintmax_t largest = AppendUnderReads(*store, tmp, 0, 300, 2);
  // ~4 MB of frames, and nothing starts the WAL over while the appends go on.
  CHECK_MESSAGE(largest > 2 * kLimit, "largest WAL ", largest, " bytes");
  CheckAll(*store, 300);
}

}  // namespace
