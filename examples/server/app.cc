// SPDX-License-Identifier: Apache-2.0
#include "app.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "rxflow/auth/clients.h"
#include "rxflow/epcs/reports.h"
#include "rxflow/http/otlp.h"
#include "rxflow/http/pdmp.h"
#include "rxflow/http/servers.h"
#include "rxflow/idempotency.h"
#include "rxflow/messaging/broker.h"
#include "rxflow/obs/metrics.h"
#include "rxflow/obs/trace.h"
#include "rxflow/runtime/outbox_relay.h"
#include "rxflow/runtime/routing.h"
#include "rxflow/service.h"
#include "rxflow/sqlite/drug_store.h"
#ifdef RXFLOW_HAVE_POSTGRES
#include "rxflow/postgres/drug_store.h"
#endif
#include "rxflow/sqlite/sqlite_store.h"
#include "rxflow/version.h"

#include "epcs_demo.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef RXFLOW_HAVE_POSTGRES
#include "rxflow/postgres/postgres_store.h"
#endif
#ifdef RXFLOW_HAVE_KAFKA
#include "rxflow/kafka/kafka_broker.h"
#endif

#ifdef RXFLOW_SERVER_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

namespace rxflow::app {
namespace {

// The allocator this process runs on, for the banner: "jemalloc <version>" as jemalloc itself
// answers (the servers are linked with it by default: docs/operations.md, "Memory
// allocator"), else "libc" (the C library's malloc, or a sanitizer's).
std::string AllocatorName() {
#ifdef RXFLOW_SERVER_JEMALLOC
  const char* version = nullptr;
  size_t size = sizeof(version);
  if (mallctl("version", &version, &size, nullptr, 0) == 0 && version != nullptr) {
    return std::string("jemalloc ") + version;
  }
#endif
  return "libc";
}

constexpr const char* kDefaultDatabase = "sqlite://./rxflow-data/rxflow.db";

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
void OnSignal(int) { g_stop.store(true); }
void OnHangup(int) { g_reload.store(true); }

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes `content` to `file`, readable by its owner only from the first byte.
bool WritePrivate(const std::filesystem::path& file, const std::string& content) {
  std::error_code ec;
  std::filesystem::create_directories(file.parent_path().empty() ? "." : file.parent_path(), ec);
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  bool ok = fd >= 0 &&
            ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  if (fd >= 0) ::close(fd);
  return ok;
}

// What tells a file changed: a save by rename is a new inode even within one mtime tick.
struct FileStamp {
  bool exists = false;
  ino_t inode = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

FileStamp StampOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {true, st.st_ino, st.st_size,
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

// "FROM_MS-TO_MS,..." → outage windows.
StatusOr<std::vector<std::pair<std::chrono::milliseconds, std::chrono::milliseconds>>> Outages(
    const std::string& spec);

std::vector<std::string> SplitKeys(const std::string& csv) {
  std::vector<std::string> out;
  std::stringstream ss(csv);
  std::string k;
  while (std::getline(ss, k, ',')) {
    while (!k.empty() && k.back() == ' ') k.pop_back();
    while (!k.empty() && k.front() == ' ') k.erase(0, 1);
    if (!k.empty()) out.push_back(k);
  }
  return out;
}

StatusOr<std::vector<std::pair<std::chrono::milliseconds, std::chrono::milliseconds>>> Outages(
    const std::string& spec) {
  std::vector<std::pair<std::chrono::milliseconds, std::chrono::milliseconds>> out;
  for (const std::string& w : SplitKeys(spec)) {
    long from = -1, to = -1;
    char dash = 0;
    std::istringstream in(w);
    if (!(in >> from >> dash >> to) || dash != '-' || from < 0 || to <= from || !in.eof()) {
      return absl::InvalidArgumentError("SIMULATOR_OUTAGES: expected FROM_MS-TO_MS, got " + w);
    }
    out.emplace_back(std::chrono::milliseconds(from), std::chrono::milliseconds(to));
  }
  return out;
}

StatusOr<http::SimulatorOptions> SimulatorOptionsFrom(const Config& c, std::string callback_url,
                                                      std::string callback_api_key) {
  http::SimulatorOptions so;
  so.host = c.host;
  so.port = c.simulator_port;
  so.error_rate = c.simulator_error_rate;
  so.latency = std::chrono::milliseconds(c.simulator_latency_ms);
  so.fill_after = std::chrono::milliseconds(c.simulator_fill_after_ms);
  so.fill_connections = c.simulator_fill_connections;
  auto outages = Outages(c.simulator_outages);
  if (!outages.ok()) return outages.status();
  so.outages = *outages;
  so.callback_url = std::move(callback_url);
  so.callback_api_key = std::move(callback_api_key);
  if (!c.epcs_trust_anchors.empty()) {
    auto trust = std::make_shared<epcs::TrustStore>();
    std::string anchors = ReadFile(c.epcs_trust_anchors);
    if (Status s = trust->AddAnchor(anchors); !s.ok()) {
      return absl::InvalidArgumentError("--epcs-trust-anchors " + c.epcs_trust_anchors + ": " +
                                        std::string(s.message()));
    }
    if (!c.epcs_crl.empty()) {
      if (Status s = trust->AddCrl(ReadFile(c.epcs_crl)); !s.ok()) {
        return absl::InvalidArgumentError("--epcs-crl " + c.epcs_crl + ": " +
                                          std::string(s.message()));
      }
    }
    so.epcs_trust = std::move(trust);
  }
  return so;
}

int LevelOf(const std::string& level) {
  if (level == "debug") return 0;
  if (level == "info") return 1;
  if (level == "warn") return 2;
  return 3;
}

// One JSON line on stderr (messages carry no PHI: ids, counts and addresses only).
void Log(const Config& c, int level, const std::string& program, const std::string& msg) {
  static std::mutex mu;
  if (level < LevelOf(c.log_level)) return;
  static const char* kNames[] = {"debug", "info", "warn", "error"};
  std::lock_guard lock(mu);
  std::cerr << nlohmann::json{{"ts", FormatRfc3339(SystemClock().NowMicros())},
                              {"level", kNames[level]},
                              {"program", program},
                              {"msg", msg}}
                   .dump()
            << '\n';
}

StatusOr<std::unique_ptr<messaging::Broker>> OpenBroker(const Config& c) {
  if (c.brokers.empty()) {
    // Partitions bound routing's parallelism (a partition always goes to one worker).
    messaging::InProcessBrokerOptions o;
    o.partitions = std::max(8, 2 * c.routing_workers);
    return std::unique_ptr<messaging::Broker>(messaging::NewInProcessBroker(o));
  }
#ifdef RXFLOW_HAVE_KAFKA
  kafka::KafkaOptions o;
  o.brokers = c.brokers;
  for (const std::string& kv : SplitKeys(c.kafka_config)) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError("KAFKA_CONFIG: expected key=value, got " + kv);
    }
    o.config.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return kafka::NewKafkaBroker(o);
#else
  return absl::UnimplementedError("this build has no Kafka adapter (librdkafka-dev missing)");
#endif
}

void RegisterMetrics(obs::Registry& r, store::Subscriptions* subscriptions,
                     runtime::OutboxRelay* relay, runtime::RoutingService* routing,
                     obs::Tracer* tracer) {
  r.AddCollector([=](obs::Registry& m) {
    if (subscriptions) {
      if (auto b = runtime::RelayBacklog(*subscriptions); b.ok()) {
        m.Gauge("rxflow_outbox_backlog",
                "Events in the log the relay has not published yet (head - checkpoint)")
            .Set(static_cast<double>(*b));
      }
    }
    if (relay) {
      m.Gauge("rxflow_outbox_lag_seconds",
              "From the oldest event of the relay's last batch to its publication")
          .Set(static_cast<double>(relay->lag_micros()) / 1e6);
      m.Gauge("rxflow_outbox_published", "Messages published by this relay")
          .Set(static_cast<double>(relay->published()));
      m.Gauge("rxflow_outbox_relay_active",
              "1 while this relay holds the subscription's lease, 0 while it stands by")
          .Set(relay->active() ? 1.0 : 0.0);
      m.Gauge("rxflow_broker_errors", "Publish batches the broker refused")
          .Set(static_cast<double>(relay->publish_errors()));
    }
    if (routing) {
      const auto& s = routing->stats();
      m.Gauge("rxflow_routing_queue_depth", "Routing requests queued for the workers")
          .Set(static_cast<double>(routing->queued()));
      m.Gauge("rxflow_routing_transport_errors", "Failed POSTs to pharmacies")
          .Set(static_cast<double>(s.transport_errors.load()));
      m.Gauge("rxflow_routing_dead_lettered", "Routing requests sent to dead.letter")
          .Set(static_cast<double>(s.dead_lettered.load()));
      m.Gauge("rxflow_routing_duplicates", "Routing requests already handled")
          .Set(static_cast<double>(s.duplicates.load()));
      // Breakers by state (not by pharmacy: no ids as labels).
      std::array<int, 3> by_state{};
      for (const auto& [pharmacy, state] : routing->BreakerStates()) {
        auto i = static_cast<size_t>(state);
        if (i < by_state.size()) ++by_state[i];
      }
      const char* kStates[] = {"closed", "open", "half-open"};
      for (size_t i = 0; i < by_state.size(); ++i) {
        m.Gauge("rxflow_breakers", "Pharmacy circuit breakers by state", {{"state", kStates[i]}})
            .Set(by_state[i]);
      }
      m.Gauge("rxflow_breaker_openings", "Times a pharmacy circuit breaker has opened")
          .Set(static_cast<double>(routing->BreakerOpenings()));
    }
    if (tracer) {
      m.Gauge("rxflow_spans_dropped", "Spans dropped because the export queue was full")
          .Set(static_cast<double>(tracer->dropped()));
    }
  });
}

}  // namespace

static bool IsPostgresUrl(std::string_view url) {
  return url.starts_with("postgres://") || url.starts_with("postgresql://");
}

StatusOr<std::unique_ptr<clinical::DrugStore>> OpenDrugStore(const std::string& spec,
                                                             bool must_exist) {
  if (IsPostgresUrl(spec)) {
#ifdef RXFLOW_HAVE_POSTGRES
    clinical::PostgresDrugStoreOptions o;
    o.url = spec;
    o.create = !must_exist;  // a reader runs no DDL and finds the tables or says so
    return clinical::OpenPostgresDrugStore(o);
#else
    return absl::UnimplementedError("this build has no PostgreSQL drug store");
#endif
  }
  std::string path = spec.starts_with("sqlite://") ? spec.substr(9) : spec;
  if (path.empty()) return absl::InvalidArgumentError("drug store: empty SQLite path");
  std::error_code ec;
  if (must_exist && !std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError("no drug store at " + path + " (rxflow drugs import writes one)");
  }
  return clinical::OpenSqliteDrugStore(path);
}

StatusOr<DrugDatabaseSetup> OpenDrugDatabase(const std::string& spec) {
  DrugDatabaseSetup out;
  if (spec == "none") return out;
  if (spec.empty()) {
    out.db = &clinical::StarterDrugIndex();
    out.name = "starter formulary";
    return out;
  }
  auto store = OpenDrugStore(spec, /*must_exist=*/true);
  if (!store.ok()) return store.status();
  auto index = clinical::LoadDrugIndex(**store);
  if (!index.ok()) return index.status();
  // Named without the URL or path: a URL may carry a password.
  const std::string name = IsPostgresUrl(spec)
                               ? std::string("PostgreSQL drug store")
                               : "drug store " + std::filesystem::path(spec).filename().string();
  if ((*index)->size() == 0) return absl::NotFoundError("the " + name + " holds no products");
  out.owned = std::move(*index);
  out.db = out.owned.get();
  out.name = name;
  return out;
}

StatusOr<std::unique_ptr<store::Store>> OpenStore(const std::string& url,
                                                  std::string& sqlite_path) {
  return OpenStore(url, sqlite_path, PhiConfigFromEnv());
}

StatusOr<std::unique_ptr<store::Store>> OpenStore(const std::string& url, std::string& sqlite_path,
                                                  const PhiConfig& phi_config, PhiParts* parts) {
  auto raw = OpenRawStore(url, sqlite_path);
  if (!raw.ok()) return raw.status();
  return ProtectStore(std::move(*raw), sqlite_path, phi_config, parts);
}

StatusOr<std::unique_ptr<store::Store>> OpenRawStore(const std::string& url_in,
                                                     std::string& sqlite_path) {
  std::string url = url_in.empty() ? kDefaultDatabase : url_in;
  if (IsPostgresUrl(url)) {
    sqlite_path.clear();
#ifdef RXFLOW_HAVE_POSTGRES
    store::PostgresOptions o;
    o.url = url;
    return store::OpenPostgresStore(o);
#else
    return absl::UnimplementedError("this build has no PostgreSQL store");
#endif
  }
  std::string path = url.starts_with("sqlite://") ? url.substr(9) : url;
  if (path.empty()) return absl::InvalidArgumentError("DATABASE_URL: empty SQLite path");
  std::error_code ec;
  auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);  // 0700
  }
  sqlite_path = path;
  store::SqliteOptions o;
  o.path = path;
  return store::OpenSqliteStore(o);
}

StatusOr<std::string> PatientKey(const std::string& sqlite_path) {
  if (const char* k = std::getenv("RXFLOW_PATIENT_KEY")) {
    if (std::strlen(k) < kMinPatientKeyBytes) {
      return absl::InvalidArgumentError("RXFLOW_PATIENT_KEY must be at least 16 bytes");
    }
    return std::string(k);
  }
  if (sqlite_path.empty()) {
    return absl::InvalidArgumentError(
        "set RXFLOW_PATIENT_KEY (at least 16 bytes) to use a PostgreSQL store");
  }
  auto dir = std::filesystem::path(sqlite_path).parent_path();
  auto file = (dir.empty() ? std::filesystem::path(".") : dir) / "patient.key";
  std::string key = ReadFile(file);
  if (key.size() >= kMinPatientKeyBytes) return key;
  // A key that changed between runs would stop recognising resubmissions: it must persist.
  key = RandomIds().NewId() + RandomIds().NewId();
  if (!WritePrivate(file, key)) {
    return absl::UnavailableError("cannot write the patient key file " + file.string());
  }
  return key;
}

// --tls-cert, --tls-key, --tls-client-ca; `serves` says what a certificate turns on.
static void AddTlsOptions(CLI::App& app, Config& c, const std::string& serves) {
  app.add_option("--tls-cert", c.tls_cert, "PEM certificate chain: " + serves)->envname("TLS_CERT");
  app.add_option("--tls-key", c.tls_key, "PEM private key of --tls-cert")->envname("TLS_KEY");
  app.add_option("--tls-client-ca", c.tls_client_ca,
                 "PEM CA certificates: callers must present a certificate from them (mTLS)")
      ->envname("TLS_CLIENT_CA");
}

void AddOptions(CLI::App& app, Config& c, unsigned roles) {
  app.add_option("--log-level", c.log_level, "debug, info, warn or error")
      ->envname("LOG_LEVEL")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  if (roles & (kApi | kRelay | kRouting)) {
    app.add_option("--database-url", c.database_url,
                   "sqlite://PATH or postgres://... (default sqlite://./rxflow-data/rxflow.db)")
        ->envname("DATABASE_URL");
    app.add_option("--phi-kek", c.phi_kek,
                   "key-encryption key of PHI at rest: file:PATH, hybrid:PATH, pkcs11:LABEL or "
                   "off (default for SQLite: file:phi.kek beside the database)")
        ->envname("RXFLOW_PHI_KEK");
    app.add_option("--phi-kek-retired", c.phi_kek_retired,
                   "earlier key-encryption keys, comma-separated (until `rxflow phi rewrap`)")
        ->envname("RXFLOW_PHI_KEK_RETIRED");
    app.add_option("--brokers", c.brokers,
                   "Kafka/Redpanda bootstrap servers; empty: the in-process broker")
        ->envname("REDPANDA_BROKERS");
    app.add_option("--kafka-config", c.kafka_config,
                   "extra librdkafka properties, comma-separated key=value (TLS, SASL, tuning)")
        ->envname("KAFKA_CONFIG");
    app.add_option("--otel-endpoint", c.otel_endpoint,
                   "OTLP/HTTP endpoint for spans (e.g. http://127.0.0.1:4318)")
        ->envname("OTEL_ENDPOINT");
  }
  if (roles & (kApi | kSimulator)) {
    app.add_option("--host", c.host, "address to listen on")->envname("HOST");
  }
  if (roles & kApi) {
    app.add_option("--port", c.port, "API port (0: any free port)")->envname("PORT");
    app.add_option("--clients", c.clients_file,
                   "clients file: ids, roles, tenants, key digests (docs/security.md); reread "
                   "when it changes. rxflow serve default: ./rxflow-data/clients.json")
        ->envname("RXFLOW_CLIENTS");
    app.add_option("--api-keys", c.api_keys,
                   "keys of prescriber clients in the tenant \"default\", comma-separated "
                   "(each at least 128 bits)")
        ->envname("API_KEYS");
    app.add_option("--pharmacy-keys", c.pharmacy_keys,
                   "keys of pharmacy clients, NCPDPID:KEY comma-separated (NCPDPID * for a "
                   "network hub that speaks for every pharmacy)")
        ->envname("PHARMACY_KEYS");
    app.add_option("--metrics-keys", c.metrics_keys,
                   "keys of metrics clients (GET /metrics only), comma-separated")
        ->envname("METRICS_KEYS");
    AddTlsOptions(app, c, "the API serves HTTPS (TLS 1.2+; SIGHUP rereads it)");
    app.add_flag("--insecure-http", c.insecure_http,
                 "serve plain HTTP on an address that is not loopback (behind a TLS proxy)");
    app.add_option("--head-timeout-ms", c.head_timeout_ms,
                   "deadline for a request's whole head, and for an idle kept-alive connection")
        ->envname("HEAD_TIMEOUT_MS")
        ->check(CLI::PositiveNumber);
    app.add_option("--max-connections", c.max_connections,
                   "open API connections (more are closed at once)")
        ->envname("MAX_CONNECTIONS");
    app.add_option("--max-connections-per-source", c.max_connections_per_source,
                   "open API connections from one IPv4 address or IPv6 /64")
        ->envname("MAX_CONNECTIONS_PER_SOURCE")
        ->check(CLI::PositiveNumber);
    app.add_option("--client-concurrency", c.client_concurrency,
                   "requests in flight per client (429 above)")
        ->envname("CLIENT_CONCURRENCY");
    app.add_option("--max-body-bytes", c.max_body_bytes, "request body limit (413 above)")
        ->envname("MAX_BODY_BYTES");
    app.add_option("--http-threads", c.http_threads, "request threads")
        ->envname("HTTP_THREADS")
        ->check(CLI::Range(1, 1024));
    app.add_option("--submit-threads", c.submit_threads,
                   "threads for POST /api/v1/prescriptions, which never waits for the store "
                   "(0: on the request threads)")
        ->envname("SUBMIT_THREADS")
        ->check(CLI::Range(0, 256));
    app.add_option("--drugs", c.drugs,
                   "drug database for the prescribed drug's codes and DEA schedule: a drug "
                   "store file (rxflow drugs import), or none (default: the starter formulary)")
        ->envname("DRUG_DB");
    app.add_option("--interactions", c.interactions,
                   "drug-drug interaction screening against the patient's active prescriptions "
                   "(ONC High-Priority list): warn, block (a contraindicated pair is a 422 "
                   "unless the request gives an override reason) or off")
        ->envname("INTERACTIONS")
        ->check(CLI::IsMember({"warn", "block", "off"}));
    app.add_option("--pdmp", c.pdmp_url,
                   "FHIR base URL of a PDMP answering $pdmp-history (https, or http on loopback: "
                   "rxflow pmp simulator); its bearer token comes from PDMP_TOKEN")
        ->envname("PDMP_URL");
    app.add_option("--pdmp-ca", c.pdmp_ca, "PEM CAs an https PDMP must chain to")
        ->envname("PDMP_CA");
    app.add_flag("--transliterate", c.transliterate,
                 "send FHIR text SCRIPT cannot carry (Muñoz, O’Brien, a line break) "
                 "transliterated to printable ASCII, with a warning, instead of refusing the "
                 "prescription (400)")
        ->envname("TRANSLITERATE");
    app.add_flag("!--no-auto-route", c.route_on_submit,
                 "do not queue non-controlled prescriptions for routing on submit");
    if (roles == kAll) {
      app.add_flag("!--no-epcs-demo", c.epcs_demo,
                   "do not set up the EPCS demo prescriber (SoftHSM2 token, dev CA)");
    }
  }
  if (roles & kRouting) {
    app.add_option("--pharmacies", c.pharmacies, "pharmacy directory (JSON file)")
        ->envname("PHARMACY_DIRECTORY");
    app.add_option("--routing-workers", c.routing_workers, "routing worker threads")
        ->envname("ROUTING_WORKERS");
    app.add_option("--max-attempts", c.max_attempts,
                   "transport attempts per routing request before dead.letter")
        ->envname("MAX_ATTEMPTS")
        ->check(CLI::PositiveNumber);
    app.add_option("--breaker-failures", c.breaker_failures,
                   "consecutive failures that open a pharmacy's circuit breaker")
        ->envname("BREAKER_FAILURES")
        ->check(CLI::PositiveNumber);
    app.add_option("--breaker-open-ms", c.breaker_open_ms,
                   "how long an open breaker waits before letting a probe through")
        ->envname("BREAKER_OPEN_MS")
        ->check(CLI::PositiveNumber);
  }
  if (roles & kSimulator) {
    app.add_option("--simulator-port", c.simulator_port, "pharmacy simulator port (0: any)")
        ->envname("SIMULATOR_PORT");
    app.add_option("--simulator-error-rate", c.simulator_error_rate,
                   "share of NewRx answered with Error 602")
        ->envname("SIMULATOR_ERROR_RATE");
    app.add_option("--simulator-latency-ms", c.simulator_latency_ms, "simulator answer delay")
        ->envname("SIMULATOR_LATENCY_MS");
    app.add_option("--simulator-fill-after-ms", c.simulator_fill_after_ms,
                   "delay between acknowledging a NewRx and posting its RxFill")
        ->envname("SIMULATOR_FILL_AFTER_MS");
    app.add_option("--simulator-fill-connections", c.simulator_fill_connections,
                   "RxFills posted at once, each on its own keep-alive connection")
        ->check(CLI::Range(1, 256))
        ->envname("SIMULATOR_FILL_CONNECTIONS");
    app.add_option("--simulator-outages", c.simulator_outages,
                   "outage windows after start, FROM_MS-TO_MS[,...]: 503 to every request")
        ->envname("SIMULATOR_OUTAGES");
    if (roles != kSimulator)
      app.add_flag("!--no-simulator", c.simulator, "do not run the simulator");
    app.add_option("--epcs-trust-anchors", c.epcs_trust_anchors,
                   "PEM CA certificates the simulator trusts for EPCS signatures")
        ->envname("EPCS_TRUST_ANCHORS");
    app.add_option("--epcs-crl", c.epcs_crl, "PEM or DER CRL(s) for those CAs")
        ->envname("EPCS_CRL");
    if (roles == kSimulator) {
      AddTlsOptions(app, c, "the simulator serves HTTPS");
      app.add_option("--callback-url", c.callback_url,
                     "where RxFill goes (RxFlow's /api/v1/pharmacy/inbound)")
          ->envname("CALLBACK_URL");
      app.add_option("--callback-api-key", c.callback_api_key,
                     "the key of the pharmacy client the RxFill callbacks authenticate as")
          ->envname("CALLBACK_API_KEY");
    }
  }
}

// The EPCS demo's credentials and the curl lines of a Schedule II prescription from submit
// to a signed, routed, verified and dispensed NewRx (docs/epcs.md, "Try it").
void PrintEpcsDemo(const EpcsDemo& d, const std::string& api, const std::string& key) {
  std::string example = "examples/data/medication_request_oxycodone.json";
#ifdef RXFLOW_SOURCE_DIR
  if (!std::filesystem::exists(example)) example = std::string(RXFLOW_SOURCE_DIR) + "/" + example;
#endif
  const std::string h = " -H \"X-API-Key: " + key + "\"";
  const std::string json = " -H 'Content-Type: application/json'";
  std::cout << "EPCS demo prescriber " << kDemoPrescriber << " (DEA " << kDemoDea
            << "), keys on the SoftHSM2 token rxflow-demo, files in " << d.dir << "\n"
            << "  password   " << d.password << "\n"
            << "  TOTP       " << d.otpauth_uri << "\n"
            << "             (an authenticator app, or: oathtool --totp -b " << d.totp_base32
            << ")\n"
            << "A Schedule II prescription, reviewed, marked ready and signed with two factors:\n"
            << "  ID=$(curl -s -X POST " << api << "/api/v1/prescriptions" << h
            << " -H 'Content-Type: application/fhir+json' --data-binary @" << example
            << R"x( | sed 's/.*"id":"\([^"]*\)".*/\1/'))x"
            << "\n"
            << "  SHA=$(curl -s '" << api
            << "/api/v1/prescriptions/'$ID'/signing-bundle?practitioner=" << kDemoPrescriber << "'"
            << h << R"x( | sed 's/.*"sha256":"\([0-9a-f]*\)".*/\1/'))x"
            << "\n"
            << "  curl -s -X POST " << api << "/api/v1/prescriptions/$ID/ready" << h << json
            << R"x( -d "{\"practitioner\":\")x" << kDemoPrescriber << R"x(\",\"dea_number\":\")x"
            << kDemoDea << R"x(\",\"bundle_sha256\":\"$SHA\"}")x"
            << "\n"
            << "  curl -s -X POST " << api << "/api/v1/prescriptions/$ID/sign" << h << json
            << R"x( -d "{\"practitioner\":\")x" << kDemoPrescriber
            << R"x(\",\"bundle_sha256\":\"$SHA\",\"password\":\")x" << d.password
            << R"x(\",\"otp\":\"$(oathtool --totp -b )x" << d.totp_base32 << R"x()\"}")x"
            << "\n"
            << "  curl -s " << api << "/api/v1/prescriptions/$ID" << h
            << "   # Signed, routed; the simulator verifies the signature; Dispensed\n";
  if (std::system("command -v qrencode >/dev/null 2>&1") == 0) {
    std::cout << std::flush;
    std::string cmd = "qrencode -t ANSIUTF8 '" + d.otpauth_uri + "'";
    if (std::system(cmd.c_str()) != 0) std::cout << "(qrencode failed)\n";
  }
}

void WaitForStopSignal() {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

int Run(const Config& c, unsigned roles, const std::string& program) {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGHUP, OnHangup);
  // Everything the servers create (the database and its WAL, keys, reports) is the owner's
  // alone: PHI and secrets at rest are never group- or world-readable.
  ::umask(077);
  auto log = [&](int level, const std::string& m) { Log(c, level, program, m); };
  auto fail = [&](const std::string& what, const Status& s) {
    log(3, what + ": " + std::string(s.message()));
    return 2;
  };

  // The simulator alone needs no store.
  if (roles == kSimulator) {
    auto so = SimulatorOptionsFrom(c, c.callback_url, c.callback_api_key);
    if (!so.ok()) return fail("simulator", so.status());
    so->tls_certificate_file = c.tls_cert;
    so->tls_key_file = c.tls_key;
    so->tls_client_ca_file = c.tls_client_ca;
    http::PharmacySimulator sim(*so);
    if (Status s = sim.Start(); !s.ok()) return fail("simulator", s);
    std::cout << "pharmacy-simulator listening on " << sim.url() << " (allocator "
              << AllocatorName() << ")" << std::endl;
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    sim.Stop();
    return 0;
  }

  std::string sqlite_path;
  PhiParts phi;
  // The relay alone reads no PHI (the messages it derives carry none): it needs no KEK.
  const bool relay_only = roles == kRelay;
  auto store = OpenStore(c.database_url, sqlite_path,
                         {relay_only ? "off" : c.phi_kek, c.phi_kek_retired}, &phi);
  if (!store.ok()) return fail("store", store.status());
  if (relay_only) {
    log(0, "the relay reads no PHI: it runs without the key-encryption key");
  } else if (phi.vault) {
    log(1, "PHI at rest: sealed under key-encryption key " + phi.vault->current_kek_id());
  } else {
    log(2, "PHI at rest is NOT encrypted (RXFLOW_PHI_KEK=off)");
  }
  auto patient_key = PatientKey(sqlite_path);
  if (!patient_key.ok()) return fail("patient key", patient_key.status());
  auto drugs = OpenDrugDatabase(c.drugs);
  if (!drugs.ok()) return fail("drug database", drugs.status());
  if (drugs->db)
    log(1,
        "drug database: " + drugs->name + " (" + std::to_string(drugs->db->size()) + " products)");
  ServiceOptions so;
  so.patient_key = *patient_key;
  so.log_as_stored = phi.raw;  // null when PHI is not sealed
  so.route_on_submit = c.route_on_submit;
  so.transform.checks.drugs = drugs->db;
  so.transform.checks.drugs_name = drugs->name;
  so.transform.newrx.transliterate = c.transliterate;
  if (c.interactions != "off") so.interactions = &clinical::OncHighPriority();
  so.block_contraindicated = c.interactions == "block";
  auto service = PrescriptionService::Create(**store, so);
  if (!service.ok()) return fail("service", service.status());
  auto broker = OpenBroker(c);
  if (!broker.ok()) return fail("broker", broker.status());
  if (c.brokers.empty() && roles != kAll && (roles & (kRelay | kRouting))) {
    log(2,
        "the in-process broker connects only services in this process: set REDPANDA_BROKERS "
        "to connect separate programs");
  }

  obs::Registry& metrics = obs::DefaultRegistry();
  std::unique_ptr<obs::SpanExporter> exporter;
  if (!c.otel_endpoint.empty()) exporter = http::NewOtlpHttpExporter(c.otel_endpoint, program);
  obs::Tracer tracer(exporter.get());

  // Clients: a clients file (given, or on rxflow serve's embedded defaults one beside the
  // database, with a demo prescriber created on first start), keys from the environment,
  // and an in-memory network client for the embedded simulator's callbacks.
  std::vector<std::string> keys = SplitKeys(c.api_keys);
  std::vector<std::pair<std::string, std::string>> pharmacy_keys;
  const std::vector<std::string> pharmacy_entries = SplitKeys(c.pharmacy_keys);
  for (size_t i = 0; i < pharmacy_entries.size(); ++i) {
    const std::string& entry = pharmacy_entries[i];
    size_t colon = entry.find(':');
    if (colon == std::string::npos || colon == 0) {
      return fail("PHARMACY_KEYS",
                  absl::InvalidArgumentError("entry " + std::to_string(i + 1) + " of " +
                                             std::to_string(pharmacy_entries.size()) +
                                             ": expected NCPDPID:KEY (the entry is not shown)"));
    }
    pharmacy_keys.emplace_back(entry.substr(0, colon), entry.substr(colon + 1));
  }
  std::string clients_path = c.clients_file;
  std::string demo_key;       // printed only on the start that generated it
  std::string demo_key_file;  // where the demo prescriber's key is kept (0600)
  if (clients_path.empty() && keys.empty() && roles == kAll && !sqlite_path.empty()) {
    auto dir = std::filesystem::path(sqlite_path).parent_path();
    if (dir.empty()) dir = ".";
    clients_path = (dir / "clients.json").string();
    demo_key_file = (dir / "demo-ehr.key").string();
    if (!std::filesystem::exists(clients_path)) {
      auth::ClientRegistry demo;
      auth::Client ehr;
      ehr.id = "demo-ehr";
      ehr.role = auth::Role::kPrescriber;
      ehr.tenant = std::string(kDefaultTenant);
      if (Status s = demo.Add(ehr); !s.ok()) return fail("clients", s);
      auto key = demo.AddKey("demo-ehr", SystemClock().NowMicros());
      if (!key.ok()) return fail("clients", key.status());
      if (Status s = demo.SaveFile(clients_path); !s.ok()) return fail("clients", s);
      if (!WritePrivate(demo_key_file, key->key)) {
        return fail("clients", absl::UnavailableError("cannot write " + demo_key_file));
      }
      demo_key = key->key;
    }
  }
  std::shared_ptr<const auth::ClientRegistry> file_clients;
  FileStamp clients_stamp;
  if (!clients_path.empty()) {
    auto loaded = auth::ClientRegistry::LoadFile(clients_path);
    if (!loaded.ok()) return fail("clients file " + clients_path, loaded.status());
    file_clients = std::make_shared<const auth::ClientRegistry>(std::move(*loaded));
    clients_stamp = StampOf(clients_path);
  }
  // The embedded simulator's RxFill callbacks: a network client that lives in memory only.
  std::string simulator_key;
  if ((roles & kApi) && (roles & kSimulator) && c.simulator) {
    simulator_key = auth::GenerateKey(SystemClock().NowMicros()).key;
    pharmacy_keys.emplace_back("*", simulator_key);
  }

  // Declared so that destruction (reverse order) stops each user before what it uses,
  // also on an early return: routing before its transport, the relay before its producer,
  // the API before the inbox it calls.
  std::unique_ptr<EpcsDemo> epcs_demo;
  std::unique_ptr<runtime::PharmacyInbox> inbox;
  std::unique_ptr<clinical::pdmp::Client> pdmp;  // the API asks it
  std::unique_ptr<messaging::Producer> producer;
  std::unique_ptr<runtime::PharmacyTransport> transport;
  std::unique_ptr<http::PharmacySimulator> simulator;
  std::unique_ptr<http::ApiServer> api;
  std::unique_ptr<runtime::OutboxRelay> relay;
  std::unique_ptr<runtime::RoutingService> routing;

  if (roles == kAll && c.epcs_demo && !sqlite_path.empty()) {
    auto dir = std::filesystem::path(sqlite_path).parent_path();
    auto demo = SetUpEpcsDemo(dir.string(), **store, **service);
    if (demo.ok()) {
      epcs_demo = std::move(*demo);
    } else {
      log(2, "EPCS demo not set up (controlled substances cannot be signed): " +
                 std::string(demo.status().message()));
    }
  }
  if (roles & kApi) {
    inbox = std::make_unique<runtime::PharmacyInbox>(**service);
    http::ApiOptions ao;
    ao.host = c.host;
    ao.port = c.port;
    ao.clients = file_clients;
    ao.api_keys = keys;
    ao.pharmacy_keys = pharmacy_keys;
    ao.metrics_keys = SplitKeys(c.metrics_keys);
    ao.max_body_bytes = c.max_body_bytes;
    ao.threads = c.http_threads;
    ao.submit_threads = c.submit_threads;
    ao.max_connections = c.max_connections;
    ao.max_connections_per_source = c.max_connections_per_source;
    ao.head_timeout = std::chrono::milliseconds(c.head_timeout_ms);
    ao.tls_certificate_file = c.tls_cert;
    ao.tls_key_file = c.tls_key;
    ao.tls_client_ca_file = c.tls_client_ca;
    ao.insecure_http = c.insecure_http;
    ao.client_concurrency = c.client_concurrency;
    if (epcs_demo) ao.ceremony = epcs_demo->ceremony.get();
    if (!c.pdmp_url.empty()) {
      http::FhirPdmpOptions po;
      po.base_url = c.pdmp_url;
      po.ca_file = c.pdmp_ca;
      if (const char* token = std::getenv("PDMP_TOKEN")) po.bearer_token = token;
      auto client = http::NewFhirPdmpClient(po);
      if (!client.ok()) return fail("pdmp", client.status());
      pdmp = std::move(*client);
      ao.pdmp = pdmp.get();
      log(1, "PDMP queries: " + pdmp->name());
    }
    if (LevelOf(c.log_level) <= 1) {
      ao.access_log = [](const std::string& line) {
        static std::mutex mu;
        std::lock_guard lock(mu);
        std::cerr << line << '\n';
      };
    }
    api = std::make_unique<http::ApiServer>(**service, inbox.get(), &metrics, &tracer, ao);
    api->set_readiness(http::StoreReadiness(**store));
    if (Status s = api->Start(); !s.ok()) return fail("api", s);
  }
  std::string api_base = api ? std::string(c.tls_cert.empty() ? "http" : "https") + "://" + c.host +
                                   ":" + std::to_string(api->port())
                             : "";
  if ((roles & kSimulator) && c.simulator) {
    bool callback = api && !simulator_key.empty();  // RxFill back through this process's API
    // (Through loopback when the API listens on every address: a wildcard is no host name.)
    std::string callback_base = api_base;
    if (c.host == "0.0.0.0" || c.host == "::") {
      callback_base = std::string(c.tls_cert.empty() ? "http" : "https") +
                      "://127.0.0.1:" + std::to_string(api->port());
    }
    auto so = SimulatorOptionsFrom(c, callback ? callback_base + "/api/v1/pharmacy/inbound" : "",
                                   callback ? simulator_key : "");
    if (!so.ok()) return fail("simulator", so.status());
    // Over HTTPS the callbacks trust the chain the API serves (a self-signed or full chain).
    so->callback_ca_file = c.tls_cert;
    if (epcs_demo) so->epcs_trust = epcs_demo->trust;
    simulator = std::make_unique<http::PharmacySimulator>(*so);
    if (Status s = simulator->Start(); !s.ok()) return fail("simulator", s);
  }
  if (roles & kRelay) {
    auto p = (*broker)->NewProducer();
    if (!p.ok()) return fail("producer", p.status());
    producer = std::move(*p);
    runtime::OutboxRelayOptions relay_options;
    relay_options.upcasters = (*service)->upcasters();  // decode the log as the service does
    // The log as stored: the relay needs no PHI, so it opens none.
    store::Store& log_store = phi.raw ? *phi.raw : **store;
    relay = std::make_unique<runtime::OutboxRelay>(log_store, *producer, std::move(relay_options));
    if (c.brokers.empty() && (roles & kRouting)) {
      // The in-process broker lost whatever it held when this process last stopped.
      auto n = runtime::RedriveRouting(**service, *producer);
      if (!n.ok()) return fail("redrive", n.status());
      if (*n > 0) log(1, "redrove " + std::to_string(*n) + " routing requests");
    }
    relay->Start();
  }
  if (roles & kRouting) {
    runtime::PharmacyDirectory directory;
    if (!c.pharmacies.empty()) {
      auto d = runtime::PharmacyDirectory::Load(c.pharmacies);
      if (!d.ok()) return fail("pharmacy directory", d.status());
      directory = std::move(*d);
    } else if (simulator) {
      directory.Add("*", simulator->url());
    } else {
      log(2, "no pharmacy directory (--pharmacies): every routing request will dead-letter");
    }
    http::HttpTransportOptions to;
    to.tls = directory.tls_links();  // mutual TLS per pharmacy link
    transport = http::NewHttpPharmacyTransport(to);
    runtime::RoutingOptions ro;
    ro.workers = c.routing_workers;
    ro.max_attempts = c.max_attempts;
    ro.breaker.failure_threshold = c.breaker_failures;
    ro.breaker.open_for = std::chrono::milliseconds(c.breaker_open_ms);
    ro.tracer = &tracer;
    routing = std::make_unique<runtime::RoutingService>(**service, **broker, std::move(directory),
                                                        *transport, ro);
    // No pharmacy ids as labels: one series per pharmacy is unbounded, and an id is a value.
    routing->set_observer([&metrics](std::string_view, std::string_view outcome,
                                     std::string_view code, double seconds) {
      metrics
          .Counter("rxflow_pharmacy_responses_total", "Pharmacy answers by outcome and SCRIPT code",
                   {{"outcome", std::string(outcome)}, {"code", std::string(code)}})
          .Inc();
      if (outcome == "Status" || outcome == "Verify") {
        metrics
            .Histogram("rxflow_accept_to_ack_seconds",
                       "From a prescription's acceptance to the pharmacy's acknowledgement")
            .Observe(seconds);
      }
    });
    if (Status s = routing->Start(); !s.ok()) return fail("routing", s);
  }
  RegisterMetrics(metrics, (roles & (kApi | kRelay)) ? store->get() : nullptr, relay.get(),
                  routing.get(), &tracer);

  std::cout << program << " " << RXFLOW_VERSION_STRING << ": store "
            << (sqlite_path.empty() ? std::string("postgresql") : "sqlite://" + sqlite_path)
            << ", broker " << (*broker)->Name() << ", allocator " << AllocatorName() << "\n";
  if (api) {
    std::cout << "  API        " << api_base << "/api/v1/prescriptions   (metrics " << api_base
              << "/metrics)\n";
  }
  if (simulator) std::cout << "  pharmacy   " << simulator->url() << " (simulator)\n";
  if (api && roles == kAll) {
    std::string example = "examples/data/medication_request_lisinopril.json";
#ifdef RXFLOW_SOURCE_DIR
    if (!std::filesystem::exists(example)) example = std::string(RXFLOW_SOURCE_DIR) + "/" + example;
#endif
    // A key is printed only on the start that generated it: the curl lines name where the
    // key is (the demo's key file, the API_KEYS variable), never the key.
    std::string key = "$YOUR_API_KEY";
    if (!demo_key_file.empty()) {
      if (!demo_key.empty()) {
        std::cout << "  API key    " << demo_key << "  (new: prescriber demo-ehr, tenant "
                  << kDefaultTenant << "; shown once, kept in " << demo_key_file << ")\n";
      } else {
        std::cout << "  API key    of prescriber demo-ehr in " << demo_key_file
                  << "  (rxflow clients rotate demo-ehr for a new one)\n";
      }
      key = "$(cat " + demo_key_file + ")";
    } else if (!keys.empty()) {
      key = "${API_KEYS%%,*}";  // the first of API_KEYS, in the shell that set it
    }
    std::cout << "Try:\n  curl -s -X POST " << api_base
              << "/api/v1/prescriptions -H \"X-API-Key: " << key
              << "\" -H 'Content-Type: application/fhir+json' --data-binary @" << example << "\n"
              << "  curl -s " << api_base
              << "/api/v1/prescriptions/ID/events -H \"X-API-Key: " << key << "\"\n";
    if (epcs_demo) PrintEpcsDemo(*epcs_demo, api_base, key);
  }
  std::cout << "Ctrl-C stops." << std::endl;

  // EPCS: the daily review of the audit trail (21 CFR 1311.150(b)), at start and hourly; each
  // finished day is reviewed once (its report is kept in the store and in epcs/reports/).
  std::unique_ptr<epcs::DailyAuditJob> review;
  if (epcs_demo) {
    epcs::DailyAuditJobOptions jo;
    jo.report_dir = epcs_demo->dir + "/reports";
    jo.source = program;
    if (auto key = epcs_demo->audit_signer->PublicKeyDer(); key.ok()) {
      jo.policy.checkpoint_public_key_der = *key;
    }
    // T-6.3: the reference server's notification is an error line in its log (ids and counts,
    // no PHI) naming the report file and the deadline; a deployment sets its own hook
    // (mail, ticket, pager) that reaches the practitioner or pharmacy and DEA.
    jo.on_incidents = [&log, dir = jo.report_dir](const epcs::IncidentReport& r) -> Status {
      log(3, "EPCS incidents on " + r.day + ": " + std::to_string(r.incidents.size()) +
                 " incidents, " + std::to_string(r.findings.size()) + " findings; report them to " +
                 "the practitioner and DEA by " + FormatRfc3339(r.notify_by_micros) + " (" + dir +
                 "/epcs-incidents-" + r.day + ".txt)");
      return absl::OkStatus();
    };
    review = std::make_unique<epcs::DailyAuditJob>(**store, *epcs_demo->audit, jo);
  }
  std::unique_ptr<epcs::TransmissionAuditor> transmissions;
  if (epcs_demo) {
    // It reads no PHI: the log as stored, where PHI is sealed, so it opens no NewRx.
    transmissions = std::make_unique<epcs::TransmissionAuditor>(phi.raw ? *phi.raw : **store,
                                                                *epcs_demo->audit, program);
  }
  auto next_review = std::chrono::steady_clock::now();
  auto next_transmissions = next_review;
  int64_t audit_failures_logged = 0;
  auto next_clients_check = std::chrono::steady_clock::now();
  while (!g_stop.load()) {
    if (g_reload.exchange(false) && api && !c.tls_cert.empty()) {
      Status s = api->ReloadTls();
      log(s.ok() ? 1 : 3, s.ok() ? "TLS certificate and key reloaded"
                                 : "TLS certificate not reloaded (the previous one stays): " +
                                       std::string(s.message()));
    }
    // The clients file is reread when it changes (rxflow clients add|rotate|revoke).
    if (api && !clients_path.empty() && std::chrono::steady_clock::now() >= next_clients_check) {
      next_clients_check += std::chrono::seconds(1);
      FileStamp stamp = StampOf(clients_path);
      if (!stamp.exists && clients_stamp.exists) {
        log(3, "clients file " + clients_path +
                   " is gone: the clients loaded before stay until it is back");
        clients_stamp = stamp;
      }
      if (stamp.exists && stamp != clients_stamp) {
        auto loaded = auth::ClientRegistry::LoadFile(clients_path);
        Status s =
            loaded.ok()
                ? api->SetClients(std::make_shared<const auth::ClientRegistry>(std::move(*loaded)))
                : loaded.status();
        clients_stamp = stamp;  // (a broken file is logged once; its fix is a new stamp)
        log(s.ok() ? 1 : 3,
            s.ok() ? "clients file reloaded: " + clients_path
                   : "clients file " + clients_path +
                         " not reloaded (the previous clients stay): " + std::string(s.message()));
      }
    }
    if (transmissions && std::chrono::steady_clock::now() >= next_transmissions) {
      next_transmissions += std::chrono::seconds(1);
      if (int64_t lost = epcs_demo->ceremony->audit_failures(); lost > audit_failures_logged) {
        log(3, "EPCS: " + std::to_string(lost - audit_failures_logged) +
                   " audit record(s) could not be written (store failure): an incident");
        audit_failures_logged = lost;
      }
      if (auto n = transmissions->CatchUp(); !n.ok()) {
        log(3, "EPCS transmission audit: " + std::string(n.status().message()));
      }
    }
    if (review && std::chrono::steady_clock::now() >= next_review) {
      next_review += std::chrono::hours(1);
      auto reports = review->RunDue(SystemClock().NowMicros());
      if (!reports.ok()) {
        log(3, "EPCS daily review: " + std::string(reports.status().message()));
      } else {
        for (const epcs::IncidentReport& r : *reports) {
          log(r.incidents.empty() && r.chain_ok ? 1 : 2,
              "EPCS daily review of " + r.day + ": " + std::to_string(r.incidents.size()) +
                  " incident(s), chain " + (r.chain_ok ? "verified" : "BROKEN"));
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  log(1, "stopping");
  if (api) api->Stop();          // no new work
  if (routing) routing->Stop();  // finish what is queued
  if (relay) relay->Stop();
  if (simulator) simulator->Stop();
  // What the last seconds sent is in the audit chain before the process ends.
  if (transmissions) {
    if (auto n = transmissions->CatchUp(); !n.ok()) {
      log(3, "EPCS transmission audit: " + std::string(n.status().message()));
    }
  }
  return 0;
}

}  // namespace rxflow::app
