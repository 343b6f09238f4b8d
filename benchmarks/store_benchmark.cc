// SPDX-License-Identifier: Apache-2.0
// Durable submits per second into the event stores: each submit appends what the service
// appends for one new prescription (its PrescriptionReceived and PrescriptionTransformed
// events and its idempotency key) in one atomic, fsynced unit. The events are those of a real
// submission of tests/fixtures/fhir/medication_request_lisinopril.json, made once at start-up
// through PrescriptionService: with the NewRx sealed (compressed, then encrypted) as
// `rxflow serve` stores it, or in clear as a store without PHI sealing holds it.
// Run: build/benchmarks/rxflow_store_benchmarks (see docs/performance.md).
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <benchmark/benchmark.h>

#include "rxflow/clock.h"
#include "rxflow/crypto/phi.h"
#include "rxflow/service.h"
#include "rxflow/sqlite/sqlite_store.h"
#ifdef RXFLOW_BENCH_HAVE_POSTGRES
#include <cstdlib>

#include "rxflow/postgres/postgres_store.h"

#include <unistd.h>
#endif

#include "testing/files.h"
#include <sys/resource.h>

using namespace rxflow;
using namespace rxflow::store;

namespace {

// What the service appends for one new prescription, as a store receives it.
struct Template {
  std::vector<EventRecord> events;
  size_t bytes = 0;  // the events' payloads
};

enum class Payload : int64_t { kSealed = 0, kClear = 1 };

[[noreturn]] void Fail(std::string_view what, const Status& status) {
  std::fprintf(stderr, "store benchmark: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
               std::string(status.message()).c_str());
  std::abort();
}

// Submits the example once through the service into a memory store (sealing PHI or not) and
// keeps the events the store received.
Template MakeTemplate(Payload payload) {
  std::unique_ptr<Store> raw = NewMemoryStore(SystemClock());
  std::unique_ptr<phi::Vault> vault;
  std::unique_ptr<Store> sealing;
  if (payload == Payload::kSealed) {
    phi::VaultOptions vo;
    vo.current = std::shared_ptr<phi::KeyEncryptionKey>(phi::NewInMemoryKek("bench"));
    auto v = phi::Vault::Create(*raw, std::move(vo));
    if (!v.ok()) Fail("vault", v.status());
    vault = std::move(*v);
    sealing = phi::NewProtectedStore(*raw, *vault);
  }
  ServiceOptions options;
  options.patient_key = "store-benchmark-patient-key";
  auto service = PrescriptionService::Create(sealing ? *sealing : *raw, std::move(options));
  if (!service.ok()) Fail("service", service.status());
  IssueList issues;
  auto submitted =
      (*service)->Submit(testing::ReadFixture("fhir/medication_request_lisinopril.json"), issues);
  if (!submitted.ok()) Fail("submit", submitted.status());
  auto events = raw->ReadStream(submitted->id, 0);
  if (!events.ok()) Fail("read", events.status());
  Template t;
  t.events = std::move(*events);
  for (const EventRecord& e : t.events) t.bytes += e.payload.size();
  return t;
}

const Template& TemplateFor(Payload payload) {
  static const Template sealed = MakeTemplate(Payload::kSealed);
  static const Template clear = MakeTemplate(Payload::kClear);
  return payload == Payload::kSealed ? sealed : clear;
}

AppendRequest Submission(const std::string& id, const Template& t) {
  AppendRequest r;
  r.stream_id = id;
  r.expected_version = kNoStream;
  r.idempotency_key = "idem-" + id;
  r.events = t.events;
  for (size_t i = 0; i < r.events.size(); ++i) {
    EventRecord& e = r.events[i];
    e.event_id = id + "-" + std::to_string(i + 1);
    e.global_position = 0;
    e.version = 0;
  }
  return r;
}

// Per-append commit waits (the time a caller blocks until its submission is durable), one
// list per caller thread so that recording them takes no lock the callers share.
struct Latencies {
  explicit Latencies(int callers) : per_caller(static_cast<size_t>(callers)) {}
  std::vector<std::vector<double>> per_caller;
  void Report(benchmark::State& state) {
    std::vector<double> micros;
    for (const auto& v : per_caller) micros.insert(micros.end(), v.begin(), v.end());
    if (micros.empty()) return;
    std::sort(micros.begin(), micros.end());
    state.counters["p50_us"] = micros[micros.size() / 2];
    state.counters["p99_us"] = micros[std::min(micros.size() - 1, micros.size() * 99 / 100)];
  }
};

// User and system CPU of the whole process so far.
double ProcessCpuMicros() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto micros = [](const timeval& t) { return t.tv_sec * 1e6 + static_cast<double>(t.tv_usec); };
  return micros(u.ru_utime) + micros(u.ru_stime);
}

template <typename F>
void Timed(std::vector<double>& waits, F&& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  waits.push_back(
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
}

// `callers` threads each append `per_caller` submissions per iteration; reports items/s
// and commit waits. The callers are started once, before the timed loop: an iteration
// measures the store, not the creation and exit of its threads.
void RunSubmits(benchmark::State& state, Store& store, int callers, int per_caller,
                Payload payload) {
  const Template& t = TemplateFor(payload);
  std::atomic<int64_t> next{0};
  Latencies lat(callers);
  std::barrier start(callers + 1);
  std::barrier finish(callers + 1);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(callers));
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&, &waits = lat.per_caller[static_cast<size_t>(c)]] {
      for (;;) {
        start.arrive_and_wait();
        if (stop.load()) return;
        for (int i = 0; i < per_caller; ++i) {
          AppendRequest req = Submission("rx-" + std::to_string(next++), t);
          Timed(waits, [&] {
            if (!store.Append(std::move(req)).ok()) std::abort();
          });
        }
        finish.arrive_and_wait();
      }
    });
  }
  const double cpu_before = ProcessCpuMicros();
  for (auto _ : state) {
    start.arrive_and_wait();
    finish.arrive_and_wait();
  }
  const double cpu = ProcessCpuMicros() - cpu_before;
  stop.store(true);
  start.arrive_and_wait();
  for (auto& th : threads) th.join();
  const int64_t items = state.iterations() * callers * per_caller;
  state.SetItemsProcessed(items);
  // The whole process's CPU (callers, writer, checkpointer): less sensitive than the rate to
  // this machine's scheduling noise.
  state.counters["cpu_us_per_submit"] = cpu / static_cast<double>(std::max<int64_t>(items, 1));
  lat.Report(state);
  state.counters["payload_bytes"] = static_cast<double>(t.bytes);
}

// Arguments: callers, max_batch, payload (0: the NewRx sealed, 1: in clear).
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
  RunSubmits(state, **store, callers, 64, static_cast<Payload>(state.range(2)));
  store->reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_SqliteDurableSubmits)
    ->ArgNames({"callers", "max_batch", "clear"})
    ->Args({1, 1, 0})
    ->Args({16, 1, 0})
    ->Args({16, 256, 0})
    ->Args({64, 256, 0})
    ->Args({64, 256, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

#ifdef RXFLOW_BENCH_HAVE_POSTGRES
// Arguments: callers, pooled connections, payload (as above). Needs RXFLOW_TEST_POSTGRES_URL (run
// through scripts/with-postgres.sh).
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
  RunSubmits(state, **store, callers, 32, static_cast<Payload>(state.range(2)));
}
BENCHMARK(BM_PostgresDurableSubmits)
    ->ArgNames({"callers", "connections", "clear"})
    ->Args({1, 1, 0})
    ->Args({16, 16, 0})
    ->Args({64, 32, 0})
    ->Args({64, 32, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
#endif

}  // namespace

BENCHMARK_MAIN();
