// SPDX-License-Identifier: Apache-2.0
// The storage contract: one suite, instantiated for every adapter (RXFLOW_ADAPTERS: memory,
// SQLite, PostgreSQL). What it checks is what rxflow/store/event_store.h promises.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include <absl/strings/match.h>
#include <doctest/doctest.h>

#include "rxflow/clock.h"
#include "rxflow/store/event_store.h"

#include "testing/concurrency.h"
#include "testing/status.h"
#include <pthread.h>
#include <unistd.h>

#ifdef RXFLOW_TEST_HAVE_SQLITE
#include "rxflow/sqlite/sqlite_store.h"
#endif
#ifdef RXFLOW_TEST_HAVE_POSTGRES
#include <pqxx/pqxx>

#include "rxflow/internal/strcat.h"
#include "rxflow/postgres/postgres_store.h"
#endif

using namespace rxflow;
using namespace rxflow::store;

namespace {

struct MemoryAdapter {
  static constexpr const char* kName = "memory";
  FakeClock clock;
  std::unique_ptr<Store> Open() { return NewMemoryStore(clock); }
};

EventRecord Event(const std::string& id, const std::string& type = "Something") {
  EventRecord e;
  e.event_id = id;
  e.type = type;
  e.payload = "{}";
  return e;
}

AppendRequest Req(const std::string& stream, int64_t expected, std::vector<EventRecord> events,
                  std::string key = {}) {
  AppendRequest r;
  r.stream_id = stream;
  r.expected_version = expected;
  r.events = std::move(events);
  r.idempotency_key = std::move(key);
  return r;
}

#ifdef RXFLOW_TEST_HAVE_SQLITE
// A fresh database file per test, removed afterwards.
struct SqliteAdapter {
  static constexpr const char* kName = "sqlite";
  FakeClock clock;
  std::filesystem::path dir;
  SqliteAdapter() {
    dir = std::filesystem::temp_directory_path() /
          ("rxflow-contract-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::remove_all(dir);
  }
  ~SqliteAdapter() { std::filesystem::remove_all(dir); }
  static std::atomic<int>& counter() {
    static std::atomic<int> c{0};
    return c;
  }
  std::unique_ptr<Store> Open() {
    SqliteOptions o;
    o.path = (dir / "store.db").string();
    o.clock = &clock;
    auto s = OpenSqliteStore(o);
    REQUIRE_MESSAGE(s.ok(), s.status().message());
    return std::move(*s);
  }
};
#endif

#ifdef RXFLOW_TEST_HAVE_POSTGRES
// A fresh schema per test in the server named by RXFLOW_TEST_POSTGRES_URL (make test and
// .ci/run start one: scripts/with-postgres.sh). Without it these tests fail, never skip. The
// schema is named after the process (each case is one) and dropped before the first Open, so
// a process id the system reuses finds no schema of an earlier case.
struct PostgresAdapter {
  static constexpr const char* kName = "postgres";
  FakeClock clock;
  std::string schema;
  bool dropped = false;
  PostgresAdapter() {
    static std::atomic<int> n{0};
    schema = "contract_" + std::to_string(::getpid()) + "_" + std::to_string(n++);
  }
  std::unique_ptr<Store> Open() {
    const char* url = std::getenv("RXFLOW_TEST_POSTGRES_URL");
    REQUIRE_MESSAGE(url,
                    "RXFLOW_TEST_POSTGRES_URL is not set: run the PostgreSQL tests through "
                    "scripts/with-postgres.sh (make test does)");
    if (!dropped) {
      pqxx::connection c(url);
      pqxx::nontransaction n(c);
      n.exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
      dropped = true;
    }
    PostgresOptions o;
    o.url = url;
    o.schema = schema;
    o.clock = &clock;
    o.connections = 10;
    auto s = OpenPostgresStore(o);
    REQUIRE_MESSAGE(s.ok(), s.status().message());
    return std::move(*s);
  }
};
#endif

}  // namespace

// Each test executable names the stores it runs the contract on (tests/CMakeLists.txt: the
// core on memory, one executable per adapter); without a choice, every store built.
#if defined(RXFLOW_CONTRACT_STORES)
#define RXFLOW_ADAPTERS RXFLOW_CONTRACT_STORES
#elif defined(RXFLOW_TEST_HAVE_SQLITE) && defined(RXFLOW_TEST_HAVE_POSTGRES)
#define RXFLOW_ADAPTERS MemoryAdapter, SqliteAdapter, PostgresAdapter
#elif defined(RXFLOW_TEST_HAVE_SQLITE)
#define RXFLOW_ADAPTERS MemoryAdapter, SqliteAdapter
#else
#define RXFLOW_ADAPTERS MemoryAdapter
#endif

TEST_SUITE("Store contract") {
  TEST_CASE_TEMPLATE("appends get versions 1.. and read back in order", A, RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    auto r = store->Append(Req("s1", kNoStream, {Event("e1"), Event("e2")}));
    RXFLOW_REQUIRE_OK(r);
    CHECK(r->last_version == 2);
    RXFLOW_REQUIRE_OK(store->Append(Req("s1", 2, {Event("e3")})));
    auto events = store->ReadStream("s1");
    RXFLOW_REQUIRE_OK(events);
    REQUIRE(events->size() == 3);
    for (int i = 0; i < 3; ++i) {
      CHECK((*events)[i].version == i + 1);
      CHECK((*events)[i].stream_id == "s1");
      CHECK((*events)[i].event_id == "e" + std::to_string(i + 1));
    }
    auto tail = store->ReadStream("s1", 2);
    RXFLOW_REQUIRE_OK(tail);
    REQUIRE(tail->size() == 1);
    CHECK((*tail)[0].event_id == "e3");
    CHECK(store->ReadStream("unknown")->empty());
  }

  TEST_CASE_TEMPLATE("a stale expected version is Aborted and writes nothing", A, RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    RXFLOW_REQUIRE_OK(store->Append(Req("s1", kNoStream, {Event("e1")})));
    auto stale = store->Append(Req("s1", kNoStream, {Event("e2")}));
    CHECK(stale.status().code() == absl::StatusCode::kAborted);
    CHECK(store->ReadStream("s1")->size() == 1);
    CHECK(*store->HeadPosition() == 1);  // the failed append took no position
  }

  // Read-modify-write from 8 threads released together: each reads the stream's version and
  // appends the next one. The rounds go on until conflicts were seen (bounded), so a store
  // without its version check fails the test instead of passing by never racing.
  TEST_CASE_TEMPLATE("8 threads racing on one stream: one winner per version, no lost update", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    std::atomic<int> next_id{0}, wins{0}, conflicts{0};
    testing::Failures failures;
    testing::RunTogether(8, [&](int) {
      for (int round = 0; round < 25 || (conflicts.load() == 0 && round < 5000); ++round) {
        auto events = store->ReadStream("race");
        if (!events.ok()) {
          failures.Add("ReadStream: " + events.status().ToString());
          return;
        }
        int64_t v = static_cast<int64_t>(events->size());
        auto r = store->Append(Req("race", v, {Event("race-" + std::to_string(next_id++))}));
        if (r.ok()) {
          ++wins;
        } else if (r.status().code() == absl::StatusCode::kAborted) {
          ++conflicts;
        } else {
          failures.Add("Append: " + r.status().ToString());
          return;
        }
      }
    });
    CHECK_MESSAGE(failures.empty(), failures.Text());
    CHECK(conflicts.load() > 0);  // the threads really raced
    auto events = store->ReadStream("race");
    RXFLOW_REQUIRE_OK(events);
    CHECK(static_cast<int>(events->size()) == wins.load());
    for (size_t i = 0; i < events->size(); ++i)
      CHECK((*events)[i].version == static_cast<int64_t>(i + 1));
  }

  // AppendAsync answers what Append would, once, and only when the append is readable:
  // whatever thread the callback runs on, the events (or none, for a refusal) are there.
  // 24 appends from 4 threads, a third of them refused (a stale version, a taken key).
  TEST_CASE_TEMPLATE("AppendAsync answers each append once, as Append would, after its commit", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    RXFLOW_REQUIRE_OK(store->Append(Req("taken", kNoStream, {Event("t1")}, "key-taken")));
    struct Outcome {
      std::atomic<int> calls{0};
      absl::StatusCode code = absl::StatusCode::kUnknown;
      int64_t last_version = 0;
      bool readable = false;  // the stream holds the event when the callback runs
    };
    std::vector<Outcome> outcomes(24);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = t; i < 24; i += 4) {
          const std::string stream = "async-" + std::to_string(i);
          AppendRequest req = Req(stream, kNoStream, {Event("ev-" + std::to_string(i))});
          if (i % 3 == 1) req.expected_version = 5;           // stale: Aborted
          if (i % 3 == 2) req.idempotency_key = "key-taken";  // AlreadyExists
          Outcome& o = outcomes[i];
          store->AppendAsync(std::move(req), [&o, &store, stream](StatusOr<AppendResult> r) {
            o.code = r.status().code();
            if (r.ok()) o.last_version = r->last_version;
            // A read, not a write: allowed from the store's own thread.
            auto events = store->ReadStream(stream);
            o.readable = events.ok() && events->size() == (r.ok() ? 1u : 0u);
            o.calls.fetch_add(1);
          });
        }
      });
    }
    for (auto& th : threads) th.join();
    for (int spins = 0; spins < 2000; ++spins) {
      if (std::all_of(outcomes.begin(), outcomes.end(),
                      [](const Outcome& o) { return o.calls.load() > 0; })) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (int i = 0; i < 24; ++i) {
      CAPTURE(i);
      CHECK(outcomes[i].calls.load() == 1);
      CHECK(outcomes[i].readable);
      if (i % 3 == 0) {
        CHECK(outcomes[i].code == absl::StatusCode::kOk);
        CHECK(outcomes[i].last_version == 1);
      } else {
        CHECK(outcomes[i].code ==
              (i % 3 == 1 ? absl::StatusCode::kAborted : absl::StatusCode::kAlreadyExists));
      }
    }
    CHECK(*store->HeadPosition() == 1 + 8);  // "taken" and the 8 accepted appends
  }

  TEST_CASE_TEMPLATE("ReadAll returns every event once, in commit order", A, RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    RXFLOW_REQUIRE_OK(store->Append(Req("a", kNoStream, {Event("a1"), Event("a2")})));
    RXFLOW_REQUIRE_OK(store->Append(Req("b", kNoStream, {Event("b1")})));
    RXFLOW_REQUIRE_OK(store->Append(Req("a", 2, {Event("a3")})));
    auto all = store->ReadAll(0, 100);
    RXFLOW_REQUIRE_OK(all);
    std::vector<std::string> ids;
    int64_t last = 0;
    for (const auto& e : *all) {
      ids.push_back(e.event_id);
      CHECK(e.global_position > last);
      last = e.global_position;
    }
    CHECK(ids == std::vector<std::string>{"a1", "a2", "b1", "a3"});
    auto page = store->ReadAll((*all)[1].global_position, 1);
    REQUIRE(page->size() == 1);
    CHECK((*page)[0].event_id == "b1");
  }

  TEST_CASE_TEMPLATE("event ids are unique across the store", A, RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    RXFLOW_REQUIRE_OK(store->Append(Req("a", kNoStream, {Event("dup")})));
    auto again = store->Append(Req("b", kNoStream, {Event("dup")}));
    CHECK(again.status().code() == absl::StatusCode::kAlreadyExists);
    CHECK(store->ReadStream("b")->empty());
  }

  // Refused before anything is written: no events, the key still free, no position used.
  TEST_CASE_TEMPLATE("an append naming one event id twice is AlreadyExists and leaves no trace", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    auto twice = store->Append(Req("t", kNoStream, {Event("x1"), Event("x1")}, "key-t"));
    CHECK(twice.status().code() == absl::StatusCode::kAlreadyExists);
    CHECK(store->ReadStream("t")->empty());
    CHECK(store->FindByIdempotencyKey("key-t").status().code() == absl::StatusCode::kNotFound);
    auto next = store->Append(Req("t", kNoStream, {Event("x2")}, "key-t"));
    RXFLOW_REQUIRE_OK(next);
    CHECK(next->last_version == 1);
    CHECK(next->last_global_position == 1);
  }

  // Appends that commit together (PostgreSQL's and SQLite's writers batch concurrent ones)
  // each stand alone: a refused one takes no position, so the log has no gap.
  TEST_CASE_TEMPLATE("refused appends among concurrent ones leave no gap in the positions", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    RXFLOW_REQUIRE_OK(store->Append(Req("seed", kNoStream, {Event("taken")})));
    std::atomic<int> ok{0}, refused{0};
    testing::Failures failures;
    testing::RunTogether(8, [&](int t) {
      for (int i = 0; i < 12; ++i) {
        std::string stream = "c-" + std::to_string(t) + "-" + std::to_string(i);
        // Every third append reuses the stored event id and is refused.
        auto r =
            store->Append(Req(stream, kNoStream,
                              {Event(i % 3 == 0 ? "taken" : stream + "-1"), Event(stream + "-2")}));
        if (r.ok()) {
          ++ok;
        } else if (r.status().code() == absl::StatusCode::kAlreadyExists) {
          ++refused;
        } else {
          failures.Add(r.status().ToString());
        }
      }
    });
    CHECK_MESSAGE(failures.empty(), failures.Text());
    CHECK(ok == 64);
    CHECK(refused == 32);
    auto all = store->ReadAll(0, 1000);
    RXFLOW_REQUIRE_OK(all);
    REQUIRE(all->size() == 1 + 2 * 64);
    for (size_t i = 0; i < all->size(); ++i) {
      CHECK((*all)[i].global_position == static_cast<int64_t>(i + 1));
    }
  }

  // Positions follow commit order (event_store.h): a reader tailing the log while appends
  // commit from several threads (SQLite's and PostgreSQL's writers commit them in batches)
  // finds each next position right after the last one it read, never a later one first.
  TEST_CASE_TEMPLATE("a reader tailing concurrent appends never skips a position", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    constexpr int kWriters = 6, kAppends = 40, kTotal = kWriters * kAppends * 2;
    testing::Failures failures;
    std::atomic<int> writers_done{0};
    int64_t read = 0;
    testing::RunTogether(kWriters + 1, [&](int t) {
      if (t < kWriters) {
        for (int i = 0; i < kAppends; ++i) {
          std::string stream = "tail-" + std::to_string(t) + "-" + std::to_string(i);
          auto r = store->Append(
              Req(stream, kNoStream, {Event(stream + "-1"), Event(stream + "-2")}, stream));
          if (!r.ok()) failures.Add(r.status().ToString());
        }
        ++writers_done;
        return;
      }
      // The reader: until every event is read, or the writers are done and a last read finds
      // nothing more.
      for (;;) {
        const bool last_round = writers_done.load() == kWriters;
        auto page = store->ReadAll(read, 64);
        if (!page.ok()) {
          failures.Add(page.status().ToString());
          return;
        }
        for (const EventRecord& e : *page) {
          if (e.global_position != read + 1) {
            failures.Add("after position " + std::to_string(read) + " the reader saw " +
                         std::to_string(e.global_position));
            return;
          }
          read = e.global_position;
        }
        if (read == kTotal || (last_round && page->empty())) return;
        if (page->empty()) std::this_thread::yield();
      }
    });
    CHECK_MESSAGE(failures.empty(), failures.Text());
    CHECK(read == kTotal);
  }

  TEST_CASE_TEMPLATE("an idempotency key names its stream, a second use is AlreadyExists", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    RXFLOW_REQUIRE_OK(store->Append(Req("p1", kNoStream, {Event("e1")}, "key-1")));
    auto dup = store->Append(Req("p2", kNoStream, {Event("e2")}, "key-1"));
    CHECK(dup.status().code() == absl::StatusCode::kAlreadyExists);
    CHECK(std::string(dup.status().message()).find("p1") != std::string::npos);
    CHECK(*store->FindByIdempotencyKey("key-1") == "p1");
    CHECK(store->FindByIdempotencyKey("nope").status().code() == absl::StatusCode::kNotFound);
    CHECK(store->ReadStream("p2")->empty());
  }

  // A new stream's append is refused for its stream before its key (the SQLite store inserts
  // first and reads only when refused, so the order and the rollback are worth pinning).
  TEST_CASE_TEMPLATE(
      "a new stream's refused append names the stream first and leaves its key unused", A,
      RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    RXFLOW_REQUIRE_OK(store->Append(Req("s1", kNoStream, {Event("e1")}, "key-1")));
    // The stream exists and the key is used: the version conflict is what is reported.
    auto both = store->Append(Req("s1", kNoStream, {Event("e2")}, "key-1"));
    CHECK(both.status().code() == absl::StatusCode::kAborted);
    CHECK(std::string(both.status().message()).find("s1") != std::string::npos);
    // The stream exists, the key is new: refused, and the key stays unused.
    auto stream_taken = store->Append(Req("s1", kNoStream, {Event("e3")}, "key-2"));
    CHECK(stream_taken.status().code() == absl::StatusCode::kAborted);
    CHECK(store->FindByIdempotencyKey("key-2").status().code() == absl::StatusCode::kNotFound);
    RXFLOW_REQUIRE_OK(store->Append(Req("s2", kNoStream, {Event("e4")}, "key-2")));
    CHECK(*store->FindByIdempotencyKey("key-2") == "s2");
    CHECK(store->ReadStream("s1")->size() == 1);
    CHECK(store->ReadAll(0, 10)->size() == 2);
  }

  TEST_CASE_TEMPLATE("idempotent appends racing in 8 threads create exactly one stream", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    std::atomic<int> ok{0}, exists{0};
    testing::Failures failures;
    testing::RunTogether(8, [&](int t) {
      std::string stream = "p-" + std::to_string(t);
      auto r =
          store->Append(Req(stream, kNoStream, {Event("ev-" + std::to_string(t))}, "same-key"));
      if (r.ok()) {
        ++ok;
      } else if (r.status().code() == absl::StatusCode::kAlreadyExists) {
        ++exists;
      } else {
        failures.Add(r.status().ToString());
      }
    });
    CHECK_MESSAGE(failures.empty(), failures.Text());
    CHECK(ok == 1);
    CHECK(exists == 7);  // every loser saw the conflict
    CHECK(store->ReadAll(0, 100)->size() == 1);
  }

  TEST_CASE_TEMPLATE("a subscription keeps its checkpoint, the head is the last position", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    CHECK(*store->HeadPosition() == 0);
    CHECK(*store->SubscriptionCheckpoint("relay") == 0);
    RXFLOW_REQUIRE_OK(store->Append(Req("a", kNoStream, {Event("a1"), Event("a2")})));
    RXFLOW_REQUIRE_OK(store->Append(Req("b", kNoStream, {Event("b1")})));
    auto all = store->ReadAll(0, 10);
    REQUIRE(all->size() == 3);
    CHECK(*store->HeadPosition() == all->back().global_position);
    RXFLOW_REQUIRE_OK(store->AcquireLease("relay", "r1", 10'000'000));
    RXFLOW_REQUIRE_OK(
        store->CommitCheckpoint("relay", "r1", (*all)[1].global_position, 10'000'000));
    CHECK(*store->SubscriptionCheckpoint("relay") == (*all)[1].global_position);
    CHECK(*store->SubscriptionCheckpoint("other") == 0);  // subscriptions are independent
    // A checkpoint never moves back.
    CHECK(store->CommitCheckpoint("relay", "r1", (*all)[0].global_position, 10'000'000).code() ==
          absl::StatusCode::kAborted);
    CHECK(*store->SubscriptionCheckpoint("relay") == (*all)[1].global_position);
  }

  TEST_CASE_TEMPLATE("one lease holder per subscription, a standby takes over when it runs out", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    CHECK(*store->AcquireLease("relay", "r1", 1'000'000) == true);
    CHECK(*store->AcquireLease("relay", "r1", 1'000'000) == true);  // renewed
    CHECK(*store->AcquireLease("relay", "r2", 1'000'000) == false);
    CHECK(*store->AcquireLease("projector", "r2", 1'000'000) == true);  // another subscription
    // The standby may not move the checkpoint while r1 holds the lease.
    CHECK(store->CommitCheckpoint("relay", "r2", 5, 1'000'000).code() ==
          absl::StatusCode::kFailedPrecondition);
    CHECK(*store->SubscriptionCheckpoint("relay") == 0);
    REQUIRE(store->CommitCheckpoint("relay", "r1", 5, 1'000'000).ok());  // renews the lease
    adapter.clock.Advance(600'000);
    CHECK(*store->AcquireLease("relay", "r2", 1'000'000) == false);  // renewed at commit
    adapter.clock.Advance(600'000);
    // r1 stopped renewing (it died): r2 takes over, and r1 is fenced off.
    CHECK(*store->AcquireLease("relay", "r2", 1'000'000) == true);
    CHECK(store->CommitCheckpoint("relay", "r1", 9, 1'000'000).code() ==
          absl::StatusCode::kFailedPrecondition);
    CHECK(*store->SubscriptionCheckpoint("relay") == 5);
    RXFLOW_REQUIRE_OK(store->CommitCheckpoint("relay", "r2", 9, 1'000'000));
    // A released lease is free at once.
    RXFLOW_REQUIRE_OK(store->ReleaseLease("relay", "r2"));
    CHECK(*store->AcquireLease("relay", "r3", 1'000'000) == true);
    CHECK(*store->SubscriptionCheckpoint("relay") == 9);
  }

  TEST_CASE_TEMPLATE("an empty subscription name or owner is InvalidArgument, naming which", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    auto no_owner = store->AcquireLease("relay", "", 1'000'000);
    CHECK(no_owner.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(no_owner.status().message()).find("owner") != std::string::npos);
    auto no_name = store->CommitCheckpoint("", "r1", 1, 1'000'000);
    CHECK(no_name.code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(no_name.message()).find("subscription name") != std::string::npos);
    // A released lease ("" owner) cannot be committed to by an empty owner either.
    REQUIRE(*store->AcquireLease("relay", "r1", 1'000'000));
    RXFLOW_REQUIRE_OK(store->ReleaseLease("relay", "r1"));
    CHECK(store->CommitCheckpoint("relay", "", 1, 1'000'000).code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(*store->SubscriptionCheckpoint("relay") == 0);
  }

  TEST_CASE_TEMPLATE("two readers racing for a lease: exactly one wins", A, RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    std::atomic<int> won{0};
    testing::Failures failures;
    testing::RunTogether(8, [&](int t) {
      auto got = store->AcquireLease("relay", "r" + std::to_string(t), 60'000'000);
      if (!got.ok()) return failures.Add(got.status().ToString());
      if (*got) ++won;
    });
    CHECK_MESSAGE(failures.empty(), failures.Text());
    CHECK(won.load() == 1);
  }

  TEST_CASE_TEMPLATE("the inbox runs an effect once per consumer and message", A, RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    int runs = 0;
    auto effect = [&](EventStore& tx) -> Status {
      ++runs;
      auto v = tx.ReadStream("s");
      if (!v.ok()) return v.status();
      auto r = tx.Append(
          Req("s", static_cast<int64_t>(v->size()), {Event("fx-" + std::to_string(runs))}));
      return r.status();
    };
    CHECK(store->Process("routing", "msg-1", effect).ok());
    CHECK(store->Process("routing", "msg-1", effect).code() == absl::StatusCode::kAlreadyExists);
    CHECK(runs == 1);
    CHECK(store->Process("audit", "msg-1", effect).ok());  // another consumer
    CHECK(runs == 2);
    CHECK(store->ReadStream("s")->size() == 2);
    CHECK(*store->HeadPosition() == 2);
  }

  TEST_CASE_TEMPLATE("a failing inbox effect leaves nothing: no events, no inbox record", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    auto failing = [&](EventStore& tx) -> Status {
      auto r = tx.Append(Req("s", kNoStream, {Event("half")}));
      if (!r.ok()) return r.status();
      return absl::UnavailableError("pharmacy down");  // fails after a staged append
    };
    CHECK(store->Process("routing", "msg-1", failing).code() == absl::StatusCode::kUnavailable);
    CHECK(store->ReadStream("s")->empty());
    CHECK(*store->HeadPosition() == 0);
    // Not recorded: the message can be processed again.
    CHECK(store->Process("routing", "msg-1", [](EventStore&) { return absl::OkStatus(); }).ok());
  }

  TEST_CASE_TEMPLATE("an inbox effect that ignores a refused append commits only what succeeded", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    RXFLOW_REQUIRE_OK(store->Append(Req("s", kNoStream, {Event("s1")})));
    auto effect = [&](EventStore& tx) -> Status {
      // A stale append (refused) then a good one: only the good one may land.
      auto stale = tx.Append(Req("s", kNoStream, {Event("stale")}));
      CHECK(stale.status().code() == absl::StatusCode::kAborted);
      return tx.Append(Req("s", 1, {Event("s2")})).status();
    };
    RXFLOW_REQUIRE_OK(store->Process("c", "m", effect));
    auto events = store->ReadStream("s");
    REQUIRE(events->size() == 2);
    CHECK((*events)[1].event_id == "s2");
    CHECK(*store->HeadPosition() == 2);
  }

  TEST_CASE_TEMPLATE("snapshots keep the latest version", A, RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    CHECK(store->LoadSnapshot("s").status().code() == absl::StatusCode::kNotFound);
    RXFLOW_REQUIRE_OK(store->SaveSnapshot({"s", 5, "{\"v\":5}"}));
    REQUIRE(store->SaveSnapshot({"s", 3, "{\"v\":3}"}).ok());  // older: ignored
    auto snap = store->LoadSnapshot("s");
    RXFLOW_REQUIRE_OK(snap);
    CHECK(snap->version == 5);
    CHECK(snap->state == "{\"v\":5}");
  }

  TEST_CASE_TEMPLATE("projections move their checkpoint with their rows", A, RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    CHECK(*store->Checkpoint("summary") == 0);
    std::pair<std::string, std::string> rows[] = {{"p1", "{\"s\":1}"}, {"p2", "{\"s\":2}"}};
    RXFLOW_REQUIRE_OK(store->Apply("summary", 7, rows));
    CHECK(*store->Checkpoint("summary") == 7);
    CHECK(*store->Get("summary", "p2") == "{\"s\":2}");
    CHECK(store->All("summary")->size() == 2);
    CHECK(store->Apply("summary", 3, rows).code() == absl::StatusCode::kAborted);
    RXFLOW_REQUIRE_OK(store->Reset("summary"));
    CHECK(*store->Checkpoint("summary") == 0);
    CHECK(store->Get("summary", "p1").status().code() == absl::StatusCode::kNotFound);
  }

  TEST_CASE_TEMPLATE("data keys: versions, rewrap, destroy leaves a tombstone", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    CHECK(store->DataKeyVersions("p1")->empty());
    WrappedDataKey v1{"p1", 1, "kek-a", std::string("\0wrapped-1\xff", 11), 100};
    RXFLOW_REQUIRE_OK(store->PutDataKey(v1));
    CHECK(store->PutDataKey(v1).code() == absl::StatusCode::kAlreadyExists);
    RXFLOW_REQUIRE_OK(store->PutDataKey({"p1", 2, "kek-b", "wrapped-2", 200}));
    RXFLOW_REQUIRE_OK(store->PutDataKey({"p2", 1, "kek-a", "other", 300}));
    CHECK(store->PutDataKey({"p3", 0, "kek-a", "x", 1}).code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(store->PutDataKey({"p3", 1, "", "x", 1}).code() == absl::StatusCode::kInvalidArgument);
    CHECK(store->PutDataKey({"p3", 1, "kek-a", "", 1}).code() ==
          absl::StatusCode::kInvalidArgument);
    auto versions = store->DataKeyVersions("p1");
    RXFLOW_REQUIRE_OK(versions);
    REQUIRE(versions->size() == 2);
    CHECK((*versions)[0] == v1);  // binary bytes come back as stored
    CHECK((*versions)[1].version == 2);

    // The rewrap job's pages: not wrapped by kek-b, in (key id, version) order.
    auto page = store->DataKeysNotWrappedBy("kek-b", "", 0, 10);
    RXFLOW_REQUIRE_OK(page);
    REQUIRE(page->size() == 2);
    CHECK(((*page)[0].key_id == "p1" && (*page)[1].key_id == "p2"));
    CHECK(store->DataKeysNotWrappedBy("kek-b", "p1", 1, 10)->size() == 1);
    CHECK(store->DataKeysNotWrappedBy("kek-b", "", 0, 1)->size() == 1);
    RXFLOW_REQUIRE_OK(store->RewrapDataKey({"p1", 1, "kek-b", "rewrapped", 100}, "kek-a"));
    CHECK(store->RewrapDataKey({"p1", 1, "kek-c", "again", 100}, "kek-a").code() ==
          absl::StatusCode::kAborted);
    CHECK(store->RewrapDataKey({"p9", 1, "kek-b", "x", 100}, "kek-a").code() ==
          absl::StatusCode::kNotFound);
    CHECK(store->DataKeyVersions("p1")->front().wrapped == "rewrapped");
    CHECK(store->DataKeysNotWrappedBy("kek-b", "", 0, 10)->size() == 1);

    // Crypto-erasure: the versions go, a tombstone stays, and the key cannot come back.
    auto destroyed = store->DestroyDataKeys("p1", 999);
    RXFLOW_REQUIRE_OK(destroyed);
    CHECK(*destroyed == 2);
    versions = store->DataKeyVersions("p1");
    REQUIRE(versions->size() == 1);
    CHECK((*versions)[0].version == 0);
    CHECK((*versions)[0].kek_id == kDestroyedKek);
    CHECK((*versions)[0].wrapped.empty());
    CHECK((*versions)[0].created_at == 999);
    CHECK(*store->DestroyDataKeys("p1", 1000) == 0);
    CHECK(store->DataKeyVersions("p1")->front().created_at == 999);  // the first stamp stays
    CHECK(store->PutDataKey({"p1", 3, "kek-b", "new", 1}).code() ==
          absl::StatusCode::kAlreadyExists);
    CHECK(store->RewrapDataKey({"p1", 1, "kek-c", "x", 1}, "kek-b").code() ==
          absl::StatusCode::kNotFound);
    CHECK(store->DataKeysNotWrappedBy("kek-z", "", 0, 10)->size() == 1);  // p2 only
    CHECK(store->DataKeyVersions("p2")->size() == 1);
  }

  TEST_CASE_TEMPLATE("an append stores its new data keys in its own transaction", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    auto with_key = [](std::string stream, std::string event, std::string key_id,
                       std::string idem = {}) {
      AppendRequest r = Req(stream, kNoStream, {Event(event)}, std::move(idem));
      r.data_keys.push_back({key_id, 1, "kek", "wrapped-" + key_id, 5});
      return r;
    };
    RXFLOW_REQUIRE_OK(store->Append(with_key("s1", "e1", "patient-a")));
    auto versions = store->DataKeyVersions("patient-a");
    REQUIRE(versions->size() == 1);
    CHECK((*versions)[0].wrapped == "wrapped-patient-a");
    // The key exists: refused, naming it, and nothing of the append is written.
    auto again = store->Append(with_key("s2", "e2", "patient-a", "idem-2"));
    CHECK(again.status().code() == absl::StatusCode::kAlreadyExists);
    CHECK(std::string(again.status().message()).rfind(kDataKeyExists, 0) == 0);
    CHECK(store->ReadStream("s2")->empty());
    CHECK(store->FindByIdempotencyKey("idem-2").status().code() == absl::StatusCode::kNotFound);
    // A refused append stores no key.
    CHECK(store->Append(with_key("s1", "e3", "patient-b")).status().code() ==
          absl::StatusCode::kAborted);
    CHECK(store->DataKeyVersions("patient-b")->empty());
    // A destroyed key cannot come back through an append either.
    RXFLOW_REQUIRE_OK(store->DestroyDataKeys("patient-a", 9));
    CHECK(store->Append(with_key("s3", "e4", "patient-a")).status().code() ==
          absl::StatusCode::kAlreadyExists);
    CHECK(store->ReadStream("s3")->empty());
  }

  TEST_CASE_TEMPLATE("an event's payload is replaced in place only from what it was", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    EventRecord e = Event("e1");
    e.payload = "{\"v\":\"plain\"}";
    RXFLOW_REQUIRE_OK(store->Append(Req("s", kNoStream, {e})));
    RXFLOW_REQUIRE_OK(store->ReplaceEventPayload("e1", e.payload, "{\"v\":\"sealed\"}"));
    CHECK(store->ReadStream("s")->front().payload == "{\"v\":\"sealed\"}");
    auto all = store->ReadAll(0, 10);
    REQUIRE(all->size() == 1);
    CHECK((*all)[0].payload == "{\"v\":\"sealed\"}");
    CHECK((*all)[0].version == 1);  // nothing else about the event changed
    CHECK(store->ReplaceEventPayload("e1", e.payload, "{}").code() == absl::StatusCode::kAborted);
    CHECK(store->ReplaceEventPayload("nope", "{}", "{}").code() == absl::StatusCode::kNotFound);
    CHECK(store->ReadStream("s")->front().payload == "{\"v\":\"sealed\"}");
  }

  TEST_CASE_TEMPLATE("large payloads read back byte for byte, and are replaced like small ones", A,
                     RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    std::string big = "{\"newrx_xml\":\"";
    for (int i = 0; big.size() < 9000; ++i) {
      big += "<Drug><Name>lisinopril " + std::to_string(i) + " mg</Name></Drug>";
    }
    big += "\"}";
    EventRecord e = Event("big");
    e.payload = big;
    RXFLOW_REQUIRE_OK(store->Append(Req("s", kNoStream, {e, Event("small")})));
    auto stream = store->ReadStream("s");
    RXFLOW_REQUIRE_OK(stream);
    REQUIRE(stream->size() == 2);
    CHECK((*stream)[0].payload == big);
    CHECK((*stream)[1].payload == "{}");
    CHECK((*store->ReadAll(0, 10))[0].payload == big);
    const std::string bigger = big + big;
    CHECK(store->ReplaceEventPayload("big", big + " ", bigger).code() ==
          absl::StatusCode::kAborted);
    RXFLOW_REQUIRE_OK(store->ReplaceEventPayload("big", big, bigger));
    CHECK(store->ReadStream("s")->front().payload == bigger);
    RXFLOW_REQUIRE_OK(store->ReplaceEventPayload("big", bigger, "{}"));
    CHECK(store->ReadStream("s")->front().payload == "{}");
  }

  TEST_CASE_TEMPLATE("racing creators of one data key: exactly one wins", A, RXFLOW_ADAPTERS) {
    A adapter;
    auto store = adapter.Open();
    std::atomic<int> won{0}, lost{0};
    testing::RunTogether(8, [&](int i) {
      Status s = store->PutDataKey({"racy", 1, "kek", "k" + std::to_string(i), 1});
      if (s.ok()) {
        ++won;
      } else if (s.code() == absl::StatusCode::kAlreadyExists) {
        ++lost;
      }
    });
    CHECK(won == 1);
    CHECK(lost == 7);
    CHECK(store->DataKeyVersions("racy")->size() == 1);
  }
}

// (SQLite's own case: in the SQLite executable, or where no store was chosen.)
#if defined(RXFLOW_TEST_HAVE_SQLITE) && \
    (!defined(RXFLOW_CONTRACT_STORES) || defined(RXFLOW_CONTRACT_SQLITE))
TEST_CASE("sqlite: a destroyed data key leaves no bytes in the database file or its WAL") {
  SqliteAdapter adapter;
  const std::string secret = "distinctive-wrapped-key-material-0123456789";
  const std::string stored = "ZGlzdGluY3RpdmUtd3JhcHBlZC1rZXktbWF0ZXJpYWwtMDEyMzQ1Njc4OQ==";
  auto contains = [&](const std::string& needle) {
    for (const char* suffix : {"", "-wal"}) {
      std::ifstream in(adapter.dir / (std::string("store.db") + suffix), std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (bytes.find(needle) != std::string::npos) return true;
    }
    return false;
  };
  {
    auto store = adapter.Open();
    RXFLOW_REQUIRE_OK(store->PutDataKey({"patient", 1, "kek", secret, 1}));
  }
  CHECK(contains(stored));  // the check can see it when it is there
  {
    auto store = adapter.Open();
    REQUIRE(*store->DestroyDataKeys("patient", 2) == 1);
  }
  CHECK_FALSE(contains(stored));
}

// The writer and the checkpointer are named threads (docs/operations.md, "Threads").
TEST_CASE("sqlite: the store's writer and checkpointer threads carry their names") {
  auto names = [] {
    std::multiset<std::string> out;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream in(task.path() / "comm");
      std::string name;
      std::getline(in, name);
      out.insert(name);
    }
    return out;
  };
  const auto before = names();
  SqliteAdapter adapter;
  {
    auto store = adapter.Open();
    const auto during = names();
    CHECK(during.count("rxflow-sqlite-w") == before.count("rxflow-sqlite-w") + 1);
    CHECK(during.count("rxflow-sqlite-c") == before.count("rxflow-sqlite-c") + 1);
  }
  CHECK(names().count("rxflow-sqlite-w") == before.count("rxflow-sqlite-w"));  // joined
}

// SQLite calls an AppendAsync callback on its writer thread, after the commit: no caller's
// thread waited, and a write made from the callback fails at once (FailedPrecondition)
// instead of waiting for the thread it runs on; an append queued from it is made.
TEST_CASE("sqlite: AppendAsync answers on the writer thread, where a write is refused, not hung") {
  SqliteAdapter adapter;
  auto store = adapter.Open();
  std::atomic<bool> done{false};
  std::string thread_name;
  Status write_from_callback;
  std::atomic<bool> chained{false};
  const auto caller = std::this_thread::get_id();
  std::thread::id answered_on;
  store->AppendAsync(Req("a", kNoStream, {Event("a1")}), [&](StatusOr<AppendResult> r) {
    answered_on = std::this_thread::get_id();
    char name[16] = {};
    ::pthread_getname_np(::pthread_self(), name, sizeof(name));
    thread_name = name;
    write_from_callback = store->Append(Req("b", kNoStream, {Event("b1")})).status();
    store->AppendAsync(Req("c", kNoStream, {Event("c1")}),
                       [&](StatusOr<AppendResult> c) { chained = c.ok(); });
    done = r.ok();
  });
  for (int i = 0; i < 2000 && !(done && chained); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(done);
  CHECK(answered_on != caller);
  CHECK(thread_name == "rxflow-sqlite-w");
  CHECK(write_from_callback.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(write_from_callback.message(), "writer thread"));
  CHECK(chained);
  CHECK(store->ReadStream("b")->empty());
  CHECK(store->ReadStream("c")->size() == 1);
}
#endif

// (PostgreSQL's own case: in the PostgreSQL executable.)
#if defined(RXFLOW_TEST_HAVE_POSTGRES) && defined(RXFLOW_CONTRACT_POSTGRES)
// PostgreSQL's batched writer calls an AppendAsync callback on its own thread, after the
// batch's commit: no caller's thread waited (one thread can have many appends in flight, and
// they share batches), and an append made from the callback fails at once
// (FailedPrecondition) instead of waiting for the thread it runs on; one queued from it is
// made.
TEST_CASE("postgres: AppendAsync answers on the writer thread, where an append is refused") {
  PostgresAdapter adapter;
  auto store = adapter.Open();
  const auto caller = std::this_thread::get_id();
  constexpr int kInFlight = 64;
  std::mutex mu;
  std::vector<std::thread::id> answered_on;
  std::vector<int64_t> positions;
  Status write_from_callback;
  std::atomic<int> answered{0};
  std::atomic<bool> chained{false};
  for (int i = 0; i < kInFlight; ++i) {
    const std::string stream = "async-" + std::to_string(i);
    store->AppendAsync(
        Req(stream, kNoStream, {Event(stream + "-e")}), [&, i](StatusOr<AppendResult> r) {
          std::lock_guard lock(mu);
          answered_on.push_back(std::this_thread::get_id());
          if (r.ok()) positions.push_back(r->last_global_position);
          if (i == 0) {
            write_from_callback = store->Append(Req("b", kNoStream, {Event("b1")})).status();
            store->AppendAsync(Req("c", kNoStream, {Event("c1")}),
                               [&](StatusOr<AppendResult> c) { chained = c.ok(); });
          }
          ++answered;
        });
  }
  // Every call returned before its commit was waited for: the one thread queued all 64.
  for (int i = 0; i < 2000 && !(answered == kInFlight && chained); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(answered == kInFlight);
  std::lock_guard lock(mu);
  CHECK(positions.size() == kInFlight);
  for (const std::thread::id& t : answered_on) CHECK(t != caller);
  CHECK(write_from_callback.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(write_from_callback.message(), "writer thread"));
  CHECK(chained);
  CHECK(store->ReadStream("b")->empty());
  CHECK(store->ReadStream("c")->size() == 1);
  CHECK(store->ReadStream("async-63")->size() == 1);
}

// The batched writer sends whatever appends are queued as one rxflow_append_batch call
// (migrations/004): which appends share a call is up to timing, so the function is called
// here directly, with one batch that holds every way an append can meet the ones before it.
// Any rewrite of the function (docs/performance.md tried a set-based one) must answer the same.
TEST_CASE("postgres: a batch answers each append as if it ran alone, after the ones before it") {
  using internal::Append;
  using internal::Cat;
  PostgresAdapter adapter;
  auto store = adapter.Open();
  RXFLOW_REQUIRE_OK(store->Append(Req("old", kNoStream, {Event("x0"), Event("x1")}, "k-old")));
  const int64_t p = *store->HeadPosition();

  auto event = [](std::string_view id) {
    return Cat(
        R"({"event_id":")", id,
        R"(","type":"T","schema_version":"1","occurred_at":"7","correlation_id":"c",)",
        R"("causation_id":"","actor":"a","tenant":"","traceparent":"","payload":"{\"n\":1}"})");
  };
  auto append = [&](std::string_view stream, int expected, std::string_view key,
                    std::initializer_list<std::string_view> ids) {
    std::string events = "[";
    for (std::string_view id : ids) Append(events, events.size() > 1 ? "," : "", event(id));
    return Cat(R"({"stream":")", stream, R"(","expected":")", expected, R"(","key":")", key,
               R"(","events":)", events, "]}");
  };
  const std::string batch =
      Cat("[", append("s1", 0, "k1", {"a1", "a2"}), ",",  // 1 a new stream
          append("s1", 2, "", {"a3"}), ",",               // 2 sees 1's version
          append("s1", 2, "", {"a4"}), ",",               // 3 stale after 2
          append("s2", 0, "k1", {"b0"}), ",",             // 4 1's key
          append("s1", 0, "k1", {"b0"}), ",",             // 5 the version is checked first
          append("s3", 0, "k3", {"b1", "b1"}), ",",       // 6 one id twice: claims nothing
          append("s4", 0, "k3", {"b1"}), ",",             // 7 so its key and id are free
          append("s5", 0, "", {"a1"}), ",",               // 8 an id 1 took
          append("s6", 0, "", {"x0"}), ",",               // 9 an id stored before
          append("old", -1, "", {"c1"}), ",",             // 10 any version, after the stored
          append("s8", 0, "k-old", {"c2"}), ",",          // 11 a key stored before
          append("s9", 0, "k9", {}), ",",                 // 12 no events: claims its key
          append("s10", 0, "k9", {"c3"}), "]");           // 13 12's key

  const char* url = std::getenv("RXFLOW_TEST_POSTGRES_URL");
  pqxx::connection c(url);
  pqxx::work tx(c);
  tx.exec("SET LOCAL search_path TO " + adapter.schema);
  pqxx::result rows = tx.exec_params(
      "SELECT ord, code, detail, last_version, last_position FROM rxflow_append_batch($1::jsonb)",
      batch);
  std::vector<std::string> got;
  for (const auto& r : rows) {
    got.push_back(
        Cat(r[0].as<int64_t>(), " ", r[1].as<std::string>(), " [", r[2].as<std::string>(), "] ",
            r[3].as<int64_t>(), " ",
            r[4].as<int64_t>() == 0 ? std::string("-") : Cat("p+", r[4].as<int64_t>() - p)));
  }
  const std::vector<std::string> want = {
      "1 ok [] 2 p+2",
      "2 ok [] 3 p+3",
      "3 aborted [expected 2, current 3] 3 -",
      "4 exists [s1] 0 -",
      "5 aborted [expected 0, current 3] 3 -",
      "6 unique [events_event_id_key] 0 -",
      "7 ok [] 1 p+4",
      "8 unique [events_event_id_key] 0 -",
      "9 unique [events_event_id_key] 0 -",
      "10 ok [] 3 p+5",
      "11 exists [old] 0 -",
      "12 ok [] 0 -",
      "13 exists [s9] 0 -",
  };
  CHECK(got == want);
  tx.commit();

  // What the batch wrote: the accepted events at the next positions, in order, and the keys.
  auto after = store->ReadAll(p, 100);
  RXFLOW_REQUIRE_OK(after.status());
  std::vector<std::string> events;
  for (const EventRecord& e : *after) {
    events.push_back(Cat(e.global_position - p, " ", e.stream_id, "/", e.version, " ", e.event_id,
                         " ", e.type, " ", e.schema_version, " ", e.occurred_at, " ",
                         e.correlation_id, " ", e.actor, " ", e.payload));
  }
  CHECK(events ==
        std::vector<std::string>{R"(1 s1/1 a1 T 1 7 c a {"n":1})", R"(2 s1/2 a2 T 1 7 c a {"n":1})",
                                 R"(3 s1/3 a3 T 1 7 c a {"n":1})", R"(4 s4/1 b1 T 1 7 c a {"n":1})",
                                 R"(5 old/3 c1 T 1 7 c a {"n":1})"});
  CHECK(*store->HeadPosition() == p + 5);
  for (auto [key, stream] : {std::pair{"k1", "s1"}, {"k3", "s4"}, {"k9", "s9"}, {"k-old", "old"}}) {
    auto found = store->FindByIdempotencyKey(key);
    CHECK_MESSAGE((found.ok() && *found == stream), key);
  }
  for (const char* refused : {"s2", "s3", "s5", "s6", "s8", "s10"}) {
    CHECK_MESSAGE(store->ReadStream(refused)->empty(), refused);
  }
}
#endif
