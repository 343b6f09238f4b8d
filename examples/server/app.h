// SPDX-License-Identifier: Apache-2.0
// The programs' shared wiring: configuration (environment and flags), opening the store
// and broker, and running any set of the services in one process until SIGINT/SIGTERM.
// `rxflow serve` runs them all; ingestion-api, outbox-relay, routing-service and
// pharmacy-simulator run one each (the scaled-out shape on PostgreSQL and Kafka).
#ifndef RXFLOW_EXAMPLES_SERVER_APP_H_
#define RXFLOW_EXAMPLES_SERVER_APP_H_

#include <memory>
#include <string>
#include <vector>

#include "rxflow/clinical/drug_store.h"
#include "rxflow/clinical/drugs.h"
#include "rxflow/status.h"
#include "rxflow/store/event_store.h"

#include "phi_setup.h"

namespace CLI {
class App;
}

namespace rxflow::app {

struct Config {
  std::string host = "127.0.0.1";
  int port = 8080;                 // PORT
  std::string database_url;        // DATABASE_URL; empty: sqlite://./rxflow-data/rxflow.db
  std::string phi_kek;             // RXFLOW_PHI_KEK (phi_setup.h)
  std::string phi_kek_retired;     // RXFLOW_PHI_KEK_RETIRED
  std::string brokers;             // REDPANDA_BROKERS; empty: the in-process broker
  std::string kafka_config;        // KAFKA_CONFIG: extra librdkafka properties, "k=v,k=v"
  std::string otel_endpoint;       // OTEL_ENDPOINT; empty: no span export
  std::string log_level = "info";  // LOG_LEVEL: debug | info | warn | error
  std::string api_keys;            // API_KEYS, comma-separated: prescribers, tenant "default"
  std::string clients_file;        // RXFLOW_CLIENTS: the clients file (docs/security.md)
  std::string pharmacy_keys;       // PHARMACY_KEYS: "NCPDPID:key,..." ("*": a network hub)
  std::string metrics_keys;        // METRICS_KEYS: keys that may read /metrics
  std::string callback_api_key;    // CALLBACK_API_KEY: a standalone simulator's pharmacy key
  std::string pharmacies;          // PHARMACY_DIRECTORY: a JSON file (see docs/operations.md)
  std::string callback_url;        // CALLBACK_URL: where a standalone simulator posts RxFill
  int simulator_port = 0;          // SIMULATOR_PORT (0: any free port)
  bool simulator = true;           // --no-simulator
  double simulator_error_rate = 0;
  int simulator_latency_ms = 0;
  int simulator_fill_after_ms = 100;   // SIMULATOR_FILL_AFTER_MS: NewRx → RxFill delay
  int simulator_fill_connections = 8;  // SIMULATOR_FILL_CONNECTIONS: RxFills posted at once
  int routing_workers = 16;            // each waits for its pharmacy and its durable commit
  int max_attempts = 8;                // MAX_ATTEMPTS: transport attempts before dead.letter
  int breaker_failures = 5;            // BREAKER_FAILURES: consecutive failures that open it
  int breaker_open_ms = 1000;          // BREAKER_OPEN_MS: then one probe is let through
  std::string simulator_outages;       // SIMULATOR_OUTAGES: "FROM_MS-TO_MS,..." after start
  size_t max_body_bytes = size_t{1} << 20;
  int http_threads = 64;
  int submit_threads = 4;         // POST /api/v1/prescriptions (ApiOptions::submit_threads)
  size_t max_connections = 1024;  // MAX_CONNECTIONS: open API connections
  size_t max_connections_per_source = 256;  // MAX_CONNECTIONS_PER_SOURCE
  std::string tls_cert;         // TLS_CERT: PEM chain; with TLS_KEY the API serves HTTPS
  std::string tls_key;          // TLS_KEY
  std::string tls_client_ca;    // TLS_CLIENT_CA: require client certificates (mutual TLS)
  bool insecure_http = false;   // --insecure-http: plain HTTP on a non-loopback address
  int head_timeout_ms = 10000;  // HEAD_TIMEOUT_MS: the whole request head (and idle time)
  int client_concurrency = 48;  // CLIENT_CONCURRENCY: requests in flight per client
  bool route_on_submit = true;  // --no-auto-route
  // EPCS: `rxflow serve` on SQLite sets up a demo prescriber (examples/server/epcs_demo.h)
  // unless --no-epcs-demo. A standalone simulator verifies controlled-substance NewRx
  // signatures against these (PEM files) when given.
  bool epcs_demo = true;
  std::string epcs_trust_anchors;  // EPCS_TRUST_ANCHORS
  std::string epcs_crl;            // EPCS_CRL
  // DRUG_DB: the drug database the transform looks prescribed drugs up in: a drug store file
  // (`rxflow drugs import`), "none", or empty for the starter formulary.
  std::string drugs;
  // Drug–drug interaction screening (the ONC High-Priority list): INTERACTIONS = warn (the
  // default), block (a contraindicated pair is a 422 unless overridden), or off.
  std::string interactions = "warn";
  // TRANSLITERATE / --transliterate: FHIR text outside printable ASCII is sent transliterated
  // (NewRxOptions::transliterate) instead of refused.
  bool transliterate = false;
  // PDMP_URL: the FHIR base of a PDMP (or hub) answering $pdmp-history, behind POST
  // .../pdmp-query; https, or http on loopback (rxflow pmp simulator). Empty: no PDMP.
  // PDMP_TOKEN (environment only: never a flag, never logged): its bearer token.
  std::string pdmp_url;
  std::string pdmp_ca;  // PDMP_CA: PEM CAs an https PDMP must chain to
};

enum Role : unsigned {
  kApi = 1,
  kRelay = 2,
  kRouting = 4,
  kSimulator = 8,
  kAll = kApi | kRelay | kRouting | kSimulator,
};

// Adds the flags of `roles` to `app`, each defaulting to its environment variable.
void AddOptions(CLI::App& app, Config& config, unsigned roles);

// Blocks until SIGINT or SIGTERM (for tools that serve in the foreground).
void WaitForStopSignal();

// Runs `roles` until SIGINT or SIGTERM; returns the process exit code.
int Run(const Config& config, unsigned roles, const std::string& program);

// The drug store `spec` names: postgres(ql)://... → PostgreSQL (its public schema), else an
// SQLite file (sqlite://PATH or PATH; created when missing unless `must_exist`: NotFound).
StatusOr<std::unique_ptr<clinical::DrugStore>> OpenDrugStore(const std::string& spec,
                                                             bool must_exist);

// The drug database `spec` names (Config::drugs): "" → the starter formulary compiled into
// the library; "none" → no database (`db` is nullptr); else a drug store written by
// `rxflow drugs import` (an SQLite file or a PostgreSQL URL, as OpenDrugStore), which must
// exist and hold products (NotFound otherwise).
struct DrugDatabaseSetup {
  std::unique_ptr<clinical::DrugIndex> owned;
  const clinical::DrugDatabase* db = nullptr;
  std::string name;  // "starter formulary", "drug store drugs.db"
};
StatusOr<DrugDatabaseSetup> OpenDrugDatabase(const std::string& spec);

// sqlite://PATH (default ./rxflow-data/rxflow.db) or postgres(ql)://... `sqlite_path` gets
// the SQLite file's path ("" for PostgreSQL). The store seals PHI at rest as RXFLOW_PHI_KEK
// says (phi_setup.h).
StatusOr<std::unique_ptr<store::Store>> OpenStore(const std::string& url, std::string& sqlite_path);
// The same with the PHI set-up given (phi_setup.h; the above reads it from the environment);
// `parts`, when given, receives the store's vault and raw store (null with
// RXFLOW_PHI_KEK=off).
StatusOr<std::unique_ptr<store::Store>> OpenStore(const std::string& url, std::string& sqlite_path,
                                                  const PhiConfig& phi_config,
                                                  PhiParts* parts = nullptr);
// The store without PHI protection (tools that must see what is stored, tests).
StatusOr<std::unique_ptr<store::Store>> OpenRawStore(const std::string& url,
                                                     std::string& sqlite_path);
// The patient HMAC key: RXFLOW_PATIENT_KEY, or a 0600 file beside the SQLite database.
StatusOr<std::string> PatientKey(const std::string& sqlite_path);

}  // namespace rxflow::app

#endif  // RXFLOW_EXAMPLES_SERVER_APP_H_
