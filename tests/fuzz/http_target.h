// SPDX-License-Identifier: Apache-2.0
// The HTTP fuzz target's body (tests/fuzz/fuzz_http.cc), shared with the unit test that
// replays its committed corpus (tests/fixtures/fuzz/http/) in every `make test`.
//
// Any bytes as what one client sends on one connection to the ingestion API. They go through
// the server's own reading steps without a socket (ServeBytes in
// adapters/http/src/http_server.h: head and body limits, chunked and gzip bodies, pipelining)
// into the ApiServer's head check and dispatch: keys, roles, tenants, every route, and the
// pharmacy inbound route with its SCRIPT reader and its From/route binding.
//
// Every input gets a fresh in-memory store, service and server (nothing carries over: a
// finding replays alone). Besides "no crash, no sanitizer report", it traps when:
//   * an answer's status is not one the API documents, or an error answer's body is not an
//     OperationOutcome (JSON with resourceType "OperationOutcome");
//   * a connection gets more answers than it could have sent requests;
//   * something was stored although the input holds none of the keys (unauthenticated bytes
//     change nothing);
//   * the metric series grow past what the route table allows (no label from the input).
#ifndef RXFLOW_TESTS_FUZZ_HTTP_TARGET_H_
#define RXFLOW_TESTS_FUZZ_HTTP_TARGET_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "rxflow/auth/clients.h"
#include "rxflow/http/servers.h"
#include "rxflow/obs/metrics.h"
#include "rxflow/runtime/routing.h"
#include "rxflow/service.h"

#include "http_server.h"

namespace rxflow::fuzz {

// The keys of the seeds (tests/fuzz/http_seeds.py): test values, not secrets.
constexpr std::string_view kPrescriberKey = "rxflow-fuzz-prescriber-Qw8Er4Ty6Ui2Op0As3Df";
constexpr std::string_view kOtherTenantKey = "rxflow-fuzz-other-tenant-Zx7Cv1Bn5Mq9Wk2Lp4";
constexpr std::string_view kPharmacyKey = "rxflow-fuzz-pharmacy-Hj3Kl6Gf9Ds1Ap8Qm5Vz";
constexpr std::string_view kMetricsKey = "rxflow-fuzz-metrics-Rt2Yu7Io4Pa9Sd1Fg6Hc";

inline void RequireHttp(bool promise) {
  if (!promise) __builtin_trap();
}

inline const std::set<int>& DocumentedStatuses() {
  static const std::set<int> statuses = {200, 201, 202, 400, 401, 403, 404, 405, 406, 409,
                                         411, 413, 415, 422, 429, 431, 500, 501, 503};
  return statuses;
}

// How many series /metrics may hold: per route label, method label and status code.
inline size_t SeriesLines(const std::string& exposition) {
  return static_cast<size_t>(std::count(exposition.begin(), exposition.end(), '\n'));
}

inline void ServeHttp(std::string_view bytes) {
  std::unique_ptr<store::Store> store = store::NewMemoryStore(SystemClock());
  ServiceOptions o;
  o.patient_key = "fuzz-patient-key-0123456789abcdef";
  auto service = PrescriptionService::Create(*store, o);
  RequireHttp(service.ok());
  runtime::PharmacyInbox inbox(**service);
  obs::Registry metrics;
  http::ApiOptions ao;
  ao.port = 0;
  ao.api_keys = {std::string(kPrescriberKey)};
  ao.pharmacy_keys = {{"4712345", std::string(kPharmacyKey)}};
  ao.metrics_keys = {std::string(kMetricsKey)};
  ao.max_body_bytes = 64 * 1024;
  ao.threads = 4;
  auto other = std::make_shared<auth::ClientRegistry>();
  RequireHttp(other
                  ->AddEnvKeys({std::string(kOtherTenantKey)}, auth::Role::kPrescriber, "clinic-b",
                               {}, SystemClock().NowMicros())
                  .ok());
  ao.clients = other;
  http::ApiServer server(**service, &inbox, &metrics, nullptr, ao);
  RequireHttp(http::internal::ApiServerAccess::Prepare(server).ok());

  auto answers = http::internal::ApiServerAccess::Serve(server, bytes, "192.0.2.7");

  // The shortest request is "GET / HTTP/1.1\r\n\r\n" less the target: 16 bytes or so; a
  // refused one still came from at least one byte.
  RequireHttp(answers.size() <= bytes.size() / 14 + 1);
  for (const auto& a : answers) {
    RequireHttp(DocumentedStatuses().count(a.status) == 1);
    if (a.status >= 400) {
      auto body = nlohmann::json::parse(a.body, nullptr, /*allow_exceptions=*/false);
      RequireHttp(body.is_object() && body.value("resourceType", "") == "OperationOutcome");
    }
  }
  const bool keyed = [&] {
    for (std::string_view k : {kPrescriberKey, kOtherTenantKey, kPharmacyKey}) {
      if (bytes.find(k) != std::string_view::npos) return true;
    }
    return false;
  }();
  if (!keyed) {
    auto events = store->ReadAll(0, 1);
    RequireHttp(events.ok() && events->empty());
  }
  // Routes × methods × codes, each a counter and a histogram (with its buckets): a few
  // thousand lines at most, whatever the paths and methods sent.
  RequireHttp(SeriesLines(metrics.Expose()) < 20000);
}

}  // namespace rxflow::fuzz

#endif  // RXFLOW_TESTS_FUZZ_HTTP_TARGET_H_
