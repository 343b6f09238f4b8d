// SPDX-License-Identifier: Apache-2.0
// Durable submits per second into the SQLite store: each submit appends a prescription's
// events (about 7 KB with the NewRx) and its outbox rows in one atomic, fsynced unit.
// Compares group commit (the default) with one commit per submit, at 1 and 16 concurrent
// callers. Run: build/benchmarks/rxflow_store_benchmarks (see docs/performance.md).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include <benchmark/benchmark.h>

#include "rxflow/sqlite/sqlite_store.h"
#ifdef RXFLOW_BENCH_HAVE_POSTGRES
#include <cstdlib>

#include "rxflow/postgres/postgres_store.h"

#include <unistd.h>
#endif

#include "testing/files.h"

using namespace rxflow;
using namespace rxflow::store;

namespace {

std::string NewRxXml() {
  static const std::string xml =
      testing::ReadFixture("golden/medication_request_lisinopril.2023011.xml");
  return xml;
}

AppendRequest Submission(const std::string& id) {
  AppendRequest r;
  r.stream_id = id;
  r.expected_version = kNoStream;
  r.idempotency_key = "idem-" + id;
  EventRecord received;
  received.event_id = id + "-1";
  received.type = "PrescriptionReceived";
  received.payload =
      R"({"idempotency_key":"idem","request_sha256":"0000","source":"fhir-envelope"})";
  EventRecord transformed;
  transformed.event_id = id + "-2";
  transformed.type = "PrescriptionTransformed";
  transformed.payload = "{\"newrx_xml\":\"" + NewRxXml() + "\"}";
  r.events = {received, transformed};
  return r;
}

// Per-append commit waits (the time a caller blocks until its submission is durable).
struct Latencies {
  std::mutex mu;
  std::vector<double> micros;
  void Add(double us) {
    std::lock_guard<std::mutex> lock(mu);
    micros.push_back(us);
  }
  void Report(benchmark::State& state) {
    if (micros.empty()) return;
    std::sort(micros.begin(), micros.end());
    state.counters["p50_us"] = micros[micros.size() / 2];
    state.counters["p99_us"] = micros[std::min(micros.size() - 1, micros.size() * 99 / 100)];
  }
};

template <typename F>
void Timed(Latencies& lat, F&& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  lat.Add(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
}

// `callers` threads each append `per_caller` submissions per iteration; reports items/s
// and commit waits.
void RunSubmits(benchmark::State& state, Store& store, int callers, int per_caller) {
  std::atomic<int64_t> next{0};
  Latencies lat;
  for (auto _ : state) {
    std::vector<std::thread> threads;
    for (int c = 0; c < callers; ++c) {
      threads.emplace_back([&] {
        for (int i = 0; i < per_caller; ++i) {
          AppendRequest req = Submission("rx-" + std::to_string(next++));
          Timed(lat, [&] {
            if (!store.Append(std::move(req)).ok()) std::abort();
          });
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  state.SetItemsProcessed(state.iterations() * callers * per_caller);
  lat.Report(state);
}

// Arguments: callers, max_batch.
void BM_SqliteDurableSubmits(benchmark::State& state) {
  const int callers = static_cast<int>(state.range(0));
  std::filesystem::path dir = std::filesystem::temp_directory_path() / "rxflow-store-bench";
  std::filesystem::remove_all(dir);
  SqliteOptions o;
  o.path = (dir / "bench.db").string();
  o.max_batch = static_cast<size_t>(state.range(1));
  auto store = OpenSqliteStore(o);
  if (!store.ok()) {
    state.SkipWithError(std::string(store.status().message()).c_str());
    return;
  }
  RunSubmits(state, **store, callers, 64);
  store->reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_SqliteDurableSubmits)
    ->ArgNames({"callers", "max_batch"})
    ->Args({1, 1})
    ->Args({16, 1})
    ->Args({16, 256})
    ->Args({64, 256})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

#ifdef RXFLOW_BENCH_HAVE_POSTGRES
// Arguments: callers, pooled connections. Needs RXFLOW_TEST_POSTGRES_URL (run through
// scripts/with-postgres.sh).
void BM_PostgresDurableSubmits(benchmark::State& state) {
  const char* url = std::getenv("RXFLOW_TEST_POSTGRES_URL");
  if (!url) {
    state.SkipWithError("set RXFLOW_TEST_POSTGRES_URL (scripts/with-postgres.sh)");
    return;
  }
  const int callers = static_cast<int>(state.range(0));
  PostgresOptions o;
  o.url = url;
  o.connections = static_cast<size_t>(state.range(1));
  static std::atomic<int> run{0};
  o.schema = "bench_" + std::to_string(::getpid()) + "_" + std::to_string(run++);
  auto store = OpenPostgresStore(o);
  if (!store.ok()) {
    state.SkipWithError(std::string(store.status().message()).c_str());
    return;
  }
  RunSubmits(state, **store, callers, 32);
}
BENCHMARK(BM_PostgresDurableSubmits)
    ->ArgNames({"callers", "connections"})
    ->Args({1, 1})
    ->Args({16, 16})
    ->Args({64, 32})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
#endif

}  // namespace

BENCHMARK_MAIN();
