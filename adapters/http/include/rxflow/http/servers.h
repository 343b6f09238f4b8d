// SPDX-License-Identifier: Apache-2.0
// File: rxflow/http/servers.h
//
// RxFlow over HTTP (see docs/api.md and docs/security.md):
//   * ApiServer: the ingestion API (/api/v1/...), health, readiness and Prometheus metrics, on
//     Boost.Beast/Asio: clients with roles and tenants, abuse limits.
//   * NewHttpPharmacyTransport: the routing service's PharmacyTransport (HTTP POST of
//     SCRIPT XML, keep-alive connections per thread and endpoint).
//   * PharmacySimulator: a pharmacy speaking SCRIPT XML for tests, demos and load runs (the
//     API's Beast server; its RxFills posted through keep-alive cpp-httplib clients).
// Servers run on their own threads: Start() binds (port 0 picks a free one) and returns.
#ifndef RXFLOW_HTTP_SERVERS_H_
#define RXFLOW_HTTP_SERVERS_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "rxflow/auth/clients.h"
#include "rxflow/auth/throttle.h"
#include "rxflow/epcs/ceremony.h"
#include "rxflow/obs/metrics.h"
#include "rxflow/obs/trace.h"
#include "rxflow/runtime/routing.h"
#include "rxflow/service.h"
#include "rxflow/status.h"

namespace rxflow::http {

namespace internal {
struct ApiServerAccess;  // the fuzz target's way in (src/http_server.h)
}  // namespace internal

struct ApiOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see ApiServer::port())
  // HTTPS (docs/security.md, "TLS"): PEM certificate chain and key; TLS 1.2+ with
  // forward-secret AEAD suites. With a client CA file, clients must present a certificate
  // that chains to it (mutual TLS). Empty: plain HTTP, which Start() refuses on any address
  // but loopback unless `insecure_http`.
  std::string tls_certificate_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  bool insecure_http = false;
  // Who may call, and as what (rxflow/auth/clients.h, docs/security.md): every /api route and
  // /metrics need a key of a client whose role the route admits (X-API-Key, or
  // Authorization: Bearer). Null and no api_keys: every such route answers 401 (there is no
  // unauthenticated mode). ApiServer::SetClients swaps in a new registry while serving.
  std::shared_ptr<const auth::ClientRegistry> clients;
  // Keys given outside a clients file (API_KEYS): prescriber clients of the "default" tenant.
  // Each must pass auth::CheckKeyStrength, or Start() fails naming which one (never the key).
  // Only their SHA-256 digests are kept.
  std::vector<std::string> api_keys;
  // Keys of pharmacy clients (PHARMACY_KEYS): each speaks for the NCPDP ids given ("*": a
  // network hub that speaks for any pharmacy).
  std::vector<std::pair<std::string, std::string>> pharmacy_keys;  // {ncpdp_id, key}
  // Keys of metrics clients (METRICS_KEYS): GET /metrics only.
  std::vector<std::string> metrics_keys;
  size_t max_body_bytes = size_t{1} << 20;  // decoded (chunked, gzip): 413 above
  int threads = 64;                         // request handler threads (they block on the store)
  // Threads for POST /api/v1/prescriptions, which never waits for the store (its answer is
  // written once the append commits, without a thread waiting for it): a few threads that
  // stay busy, apart from the `threads` that wait; 0 runs submissions on those.
  int submit_threads = 4;
  size_t max_connections = 1024;            // open connections; more are closed at once
  size_t max_connections_per_source = 256;  // per IPv4 address or IPv6 /64, likewise
  int client_concurrency = 48;  // requests in flight per client: 429 above (at most threads - 1)
  std::chrono::milliseconds head_timeout{10000};  // the whole request head (and idle time)
  std::chrono::milliseconds body_timeout{30000};  // the whole body
  auth::ThrottleOptions throttle;                 // failed authentication: 429 past it
  // One JSON line per request (no PHI: method, route, status, duration, request id). Null:
  // no access log.
  std::function<void(const std::string& line)> access_log;
  // One JSON line per security event: a refused key, a role or tenant refused, a pharmacy
  // speaking for another, a throttled client (client id, key id, source address, route,
  // request id; no PHI, never a key). Null: they go to access_log.
  std::function<void(const std::string& line)> security_log;
  // The EPCS ceremony behind GET .../signing-bundle, POST .../ready and POST .../sign (not
  // owned; must outlive the server). Null: those routes answer 501.
  epcs::Ceremony* ceremony = nullptr;
  // The PDMP behind POST .../pdmp-query (not owned; must outlive the server; thread-safe).
  // Null: that route answers 501.
  clinical::pdmp::Client* pdmp = nullptr;
};

class ApiServer {
 public:
  // `service` must outlive the server; `inbox`, `metrics` and `tracer` may be null (no
  // pharmacy inbound route, no /metrics content, no spans).
  ApiServer(PrescriptionService& service, runtime::PharmacyInbox* inbox, obs::Registry* metrics,
            obs::Tracer* tracer, ApiOptions options);
  ~ApiServer();
  // InvalidArgument for a weak key in api_keys, pharmacy_keys or metrics_keys (never quoting
  // it) or an unusable certificate or key; FailedPrecondition for plain HTTP on an address
  // that is not loopback without insecure_http; Unavailable when the address cannot be bound.
  Status Start();
  // Rereads the TLS certificate and key (what rxflow serve does on SIGHUP): connections
  // accepted from then on use them; on an error the old ones stay.
  Status ReloadTls();
  void Stop();
  int port() const;
  // /readyz answers 200 while this returns true (default: always). Call before Start.
  void set_readiness(std::function<bool()> ready);
  // Replaces the clients (a reloaded clients file); api_keys and pharmacy_keys stay. Requests
  // already authenticated finish under the old registry. Thread-safe.
  Status SetClients(std::shared_ptr<const auth::ClientRegistry> clients);

 private:
  friend struct internal::ApiServerAccess;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A readiness check that holds while `store` answers a probe read (an unknown idempotency key
// is an answer; Unavailable, a lost connection or a broken file is not). `store` must outlive
// the returned function.
std::function<bool()> StoreReadiness(store::EventStore& store);

struct HttpTransportOptions {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds read_timeout{10000};
  // Mutual TLS per pharmacy link, by URL (see runtime::PharmacyDirectory::tls_links): the
  // client certificate presented and the CAs the pharmacy must chain to. An https URL
  // without a link verifies the pharmacy against the system's CAs and presents no
  // certificate.
  std::map<std::string, runtime::TlsLink> tls;
};
std::unique_ptr<runtime::PharmacyTransport> NewHttpPharmacyTransport(
    HttpTransportOptions options = {});

struct SimulatorOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::chrono::milliseconds latency{0};  // before each answer
  double error_rate = 0;   // share answered with Error 602 (receiver system error: retryable)
  double verify_rate = 0;  // share answered with Verify instead of Status 000
  // Outage windows after Start(): [from, to) offsets during which every request gets 503.
  std::vector<std::pair<std::chrono::milliseconds, std::chrono::milliseconds>> outages;
  // Where RxFill messages go (RxFlow's POST /api/v1/pharmacy/inbound, with the NewRx's
  // traceparent when it had one), `fill_after` after
  // the NewRx; empty: no fills.
  std::string callback_url;
  std::string callback_api_key;
  std::string callback_ca_file;  // PEM CAs an https callback URL's server must chain to
  std::chrono::milliseconds fill_after{100};
  // RxFills posted at once, each poster with its own keep-alive connection: one would cap
  // the fills at one round trip (a durable commit at the receiver) each. A refused or failed
  // fill goes back into the queue: posted again after 100 ms, doubling to 2 s, 10 posts in
  // all before it counts in fill_errors.
  int fill_connections = 8;
  int threads = 16;  // request handler threads
  // EPCS (21 CFR 1311.205/.210): with a trust store, every NewRx of a controlled substance
  // (DrugCoded/DEASchedule) must carry a digital signature that verifies against it
  // (epcs::VerifyPrescriptionSignature); one that does not (unsigned, tampered, revoked,
  // expired, untrusted, stale CRL) is answered with Error 900 whose Description names the
  // failed check ("digital signature revoked: ..."), and is neither accepted nor filled.
  std::shared_ptr<const epcs::TrustStore> epcs_trust;
  // HTTPS (TLS 1.2/1.3 through OpenSSL, as the API serves it) with these PEM files; with a
  // client CA file, a connection without a client certificate from those CAs fails its
  // handshake (mutual TLS, as pharmacy networks connect). Empty: plain HTTP.
  std::string tls_certificate_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
};

struct SimulatorStats {
  int64_t received = 0;    // NewRx/CancelRx requests answered (duplicates included)
  int64_t unique = 0;      // distinct MessageIDs accepted
  int64_t duplicates = 0;  // requests repeating an accepted MessageID
  int64_t invalid = 0;     // refused by the validator (answered Error 900)
  int64_t refused = 0;     // 503s during outages
  int64_t traced = 0;      // requests that carried a W3C traceparent header
  int64_t fills_posted = 0;
  int64_t fill_errors = 0;
  int64_t signatures_verified = 0;  // controlled NewRx whose signature verified
  int64_t signatures_refused = 0;   // controlled NewRx refused for their signature
};

// Serves on the API's HTTP server (its connection, head and body limits; `host` an IP
// address or "localhost"). Validates every request with the core SCRIPT reader; answers a NewRx
// with Status 000 (or Verify, or Error 602 at `error_rate`), a CancelRx with CancelRxResponse
// Approved, invalid input with Error 900; deduplicates on MessageID (a repeat gets the same kind of
// answer and changes nothing). Admin routes for tests: GET /admin/stats (SimulatorStats as JSON),
// POST /admin/outage?ms=N (503s for N ms, 1 ≤ N ≤ 86,400,000; else 400). Other routes are 404,
// other methods 405.
class PharmacySimulator {
 public:
  explicit PharmacySimulator(SimulatorOptions options);
  ~PharmacySimulator();
  Status Start();
  void Stop();
  int port() const;
  std::string url() const;  // http(s)://host:port/ncpdp
  SimulatorStats stats() const;
  void OutageFor(std::chrono::milliseconds duration);  // clamped to [0, 1 day]

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rxflow::http

#endif  // RXFLOW_HTTP_SERVERS_H_
