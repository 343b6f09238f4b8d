// SPDX-License-Identifier: Apache-2.0
// The ingestion API on the Beast server (http_server.h). Every request goes through Dispatch:
// find the route in the table (its name is the only route label metrics and logs ever see),
// authenticate the client (rxflow/auth), check the route admits the client's role, hold a
// per-client concurrency slot, run the handler, log. Handlers are thin: parse the request,
// call the library with the client's RequestContext (its tenant scopes every prescription
// read or command), map its Status to an HTTP status.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>
#include <utility>

#include <absl/functional/any_invocable.h>
#include <absl/strings/ascii.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include "rxflow/fhir/json.h"
#include "rxflow/http/servers.h"
#include "rxflow/internal/crypto.h"
#include "rxflow/internal/json.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

#include "http_server.h"
#include "url.h"
#include <arpa/inet.h>

namespace rxflow::http {
namespace {

using internal::HttpRequest;
using internal::HttpResponse;
using internal::SourceOf;
using nlohmann::json;
using rxflow::internal::Cat;

// Bounds on the strings commands take (a cancel reason is stored in the event log).
constexpr size_t kMaxReason = 1000;
constexpr size_t kMaxIdempotencyKey = 128;
constexpr size_t kMaxPractitioner = 128;
constexpr size_t kMaxSecret = 1024;  // a password or a one-time code

// absl status → HTTP status for the API's error classes.
int HttpStatus(const Status& s, bool submit) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kFailedPrecondition:
      return submit ? 422 : 409;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 413;
    case absl::StatusCode::kAlreadyExists:
      return 409;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kAborted:  // too many concurrent updates: retry
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

// The answer to a submission, written member by member (no DOM): the submission, its
// interaction findings and the warnings among `issues`.
std::string SubmissionBody(const Submission& s, const IssueList& issues) {
  rxflow::internal::JsonObject out;
  out.String("id", s.id)
      .String("status", domain::StateName(s.state))
      .String("idempotency_key", s.idempotency_key)
      .Bool("is_controlled", s.is_controlled)
      .String("created_at", s.created_at);
  if (!s.interactions.empty()) {
    std::string list = "[";
    for (const clinical::InteractionFinding& f : s.interactions) {
      if (list.size() > 1) list.push_back(',');
      list.append(clinical::InteractionFindingJson(f));
    }
    list.push_back(']');
    out.Raw("interactions", list);
  }
  if (issues.warning_count() > 0) {
    // Sized once, each warning written in place (a JsonObject per warning was three or four
    // allocations, and a NewRx commonly carries ten to twenty warnings).
    constexpr std::string_view kPath = R"({"path":")";
    constexpr std::string_view kMessage = R"(","message":")";
    constexpr std::string_view kEnd = R"("})";
    size_t bound = 2;
    for (const Issue& i : issues) {
      if (i.severity != Severity::kWarning) continue;
      bound += 1 + kPath.size() + i.path.size() + kMessage.size() + i.message.size() + kEnd.size();
    }
    std::string list;
    list.reserve(bound + bound / 8);  // room for some escaping
    list.push_back('[');
    for (const Issue& i : issues) {
      if (i.severity != Severity::kWarning) continue;
      if (list.size() > 1) list.push_back(',');
      list.append(kPath);
      rxflow::internal::AppendJsonEscaped(list, i.path);
      list.append(kMessage);
      rxflow::internal::AppendJsonEscaped(list, i.message);
      list.append(kEnd);
    }
    list.push_back(']');
    out.Raw("warnings", list);
  }
  return out.Finish();
}

// An OperationOutcome for `issues` (bounded: IssueList keeps at most 100 and a summary), or
// one issue carrying `status`'s message.
std::string Outcome(const IssueList& issues, const Status& status) {
  IssueList all = issues;
  if (!all.has_errors()) {
    all.Error("", IssueCode::kInvalid, std::string(status.message()));
  }
  return fhir::WriteJson(fhir::Resource{fhir::ToOperationOutcome(all)}, fhir::JsonStyle::kCompact);
}

void SendError(HttpResponse& res, int code, const std::string& message) {
  IssueList issues;
  issues.Error("",
               code == 401 || code == 403 || code == 429 ? IssueCode::kSecurity
               : code == 404                             ? IssueCode::kNotFound
               : code == 413 || code == 431              ? IssueCode::kTooCostly
                                                         : IssueCode::kInvalid,
               message);
  res.status = code;
  res.set_content(
      fhir::WriteJson(fhir::Resource{fhir::ToOperationOutcome(issues)}, fhir::JsonStyle::kCompact),
      "application/fhir+json");
}

// The media type of Content-Type (before any parameter), lower case.
std::string MediaType(const HttpRequest& req) {
  std::string_view ct = req.header("Content-Type");
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && ct.back() == ' ') ct.remove_suffix(1);
  while (!ct.empty() && ct.front() == ' ') ct.remove_prefix(1);
  std::string out(ct);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The charset parameter of Content-Type, unquoted (RFC 9110, section 8.3.1: parameter names
// are case-insensitive, a value a token or a quoted string); empty when there is none.
std::string Charset(const HttpRequest& req) {
  std::string_view ct = req.header("Content-Type");
  size_t i = ct.find(';');
  if (i == std::string_view::npos) return {};
  auto blank = [&](size_t k) { return k < ct.size() && (ct[k] == ' ' || ct[k] == '\t'); };
  auto trimmed = [](std::string s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
    return s;
  };
  while (i < ct.size() && ct[i] == ';') {
    ++i;
    while (blank(i)) ++i;
    const size_t name_at = i;
    while (i < ct.size() && ct[i] != '=' && ct[i] != ';') ++i;
    std::string name = trimmed(std::string(ct.substr(name_at, i - name_at)));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value;
    if (i < ct.size() && ct[i] == '=') {
      ++i;
      while (blank(i)) ++i;
      if (i < ct.size() && ct[i] == '"') {
        for (++i; i < ct.size() && ct[i] != '"'; ++i) {
          if (ct[i] == '\\' && i + 1 < ct.size()) ++i;  // a quoted-pair
          value.push_back(ct[i]);
        }
      } else {
        const size_t value_at = i;
        while (i < ct.size() && ct[i] != ';') ++i;
        value = trimmed(std::string(ct.substr(value_at, i - value_at)));
      }
    }
    if (name == "charset") return value;
    while (i < ct.size() && ct[i] != ';') ++i;  // on to the next parameter
  }
  return {};
}

bool IsJson(const HttpRequest& req) {
  std::string t = MediaType(req);
  return t == "application/json" || t == "application/fhir+json";
}

bool IsXml(const HttpRequest& req) {
  std::string t = MediaType(req);
  return t == "application/xml" || t == "text/xml";
}

// True when the client lists application/xml or text/xml in Accept (a SCRIPT system).
bool AcceptsXml(const HttpRequest& req) {
  std::string_view accept = req.header("Accept");
  return accept.find("application/xml") != std::string_view::npos ||
         accept.find("text/xml") != std::string_view::npos;
}

// The EPCS routes' statuses: 401 failed factors, 403 not permitted (or locked out, or the
// clock off), 409 not in a state to do it (not ready, bundle changed), 422 refused input.
int EpcsHttpStatus(const Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kInvalidArgument:
      return 422;
    default:
      return HttpStatus(s, /*submit=*/false);
  }
}

json BundleJson(const epcs::SigningBundle& b) {
  json fields = json::array();
  for (const epcs::Part1306Field& f : b.fields) {
    fields.push_back({{"name", std::string(f.name)}, {"value", f.value}});
  }
  return {{"prescription_id", b.prescription_id},
          {"status", b.state},
          {"fields", std::move(fields)},
          {"attestation", b.attestation},
          {"sha256", b.sha256},
          {"dea_numbers", b.dea_numbers},
          {"prescription_dea_number", b.prescription_dea_number},
          {"marked_ready", b.marked_ready},
          {"pdmp", b.last_pdmp_query
                       ? json::parse(domain::EncodePayload(*b.last_pdmp_query), nullptr, false)
                       : json()}};
}

struct StringField {
  const char* name;
  std::string* out;
  size_t max;
};

// Reads the string members of a JSON object body; "" or the error naming the member.
std::string ReadStrings(const HttpRequest& req, std::initializer_list<StringField> fields) {
  if (!IsJson(req)) return "Content-Type must be application/json";
  json b = json::parse(req.body, nullptr, false);
  if (b.is_discarded() || !b.is_object()) return "the body must be a JSON object";
  for (const StringField& f : fields) {
    auto it = b.find(f.name);
    if (it == b.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
      return Cat("$.", f.name, ": a non-empty string is required");
    }
    if (it->get_ref<const std::string&>().size() > f.max) {
      return Cat("$.", f.name, ": at most ", f.max, " characters");
    }
    *f.out = it->get<std::string>();
  }
  return "";
}

// The method as a metric label: a fixed set, never what a client invented.
std::string_view MethodLabel(std::string_view method) {
  for (std::string_view m : {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"}) {
    if (method == m) return m;
  }
  return "other";
}

// The key a request presents: X-API-Key, or Authorization: Bearer (what Prometheus sends).
std::string_view PresentedKey(const HttpRequest& req) {
  if (req.has_header("X-API-Key")) return req.header("X-API-Key");
  std::string_view a = req.header("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (a.size() > kBearer.size() && a.substr(0, kBearer.size()) == kBearer) {
    return a.substr(kBearer.size());
  }
  return {};
}

unsigned Bit(auth::Role r) { return 1u << static_cast<unsigned>(r); }

// The throttle's clock: steady, so that a wall-clock step neither frees nor locks anyone.
int64_t SteadyMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr unsigned kPublic = 0;

}  // namespace

struct ApiServer::Impl {
  // One request through Dispatch: what the handlers see.
  struct Route;
  struct Call {
    HttpRequest& req;
    HttpResponse& res;
    const Route& route;
    const auth::Principal* who = nullptr;
    RequestContext ctx;
    obs::TraceContext trace;
    // Ends the request once its answer is set: its span and log line, the client's slot
    // given back. Dispatch calls it after the handler unless the handler took it along
    // (with c.res.Defer()) to call when it answers later.
    absl::AnyInvocable<void()> end;
  };
  using Fn = void (Impl::*)(Call&);
  struct Route {
    std::string method;
    std::string name;  // the path template, and the only route label: ".../{id}/events"
    unsigned roles;    // auth::Role bits admitted; kPublic: no key needed
    Fn fn;
    bool quick = false;  // its handler never waits: on the submit threads (HttpRequest::quick)
  };

  // What an /api path no route matches is authenticated as (any role may learn it is 404).
  const Route any_api{"", "unmatched", ~0u, nullptr};

  PrescriptionService& service;
  runtime::PharmacyInbox* inbox;
  obs::Registry* metrics;
  obs::Tracer* tracer;
  ApiOptions options;
  std::function<bool()> ready = [] { return true; };
  std::vector<Route> routes;
  obs::Histogram* submit_durable = nullptr;

  std::mutex clients_mu;
  std::shared_ptr<const auth::ClientRegistry> file_clients;  // options.clients, SetClients
  auth::ClientRegistry env_clients;                          // api_keys and pharmacy_keys
  std::shared_ptr<const auth::ClientRegistry> clients;       // both: what Dispatch checks
  auth::AuthThrottle throttle;
  std::mutex inflight_mu;
  std::map<std::string, int, std::less<>> inflight;  // client id → requests in flight
  std::unique_ptr<internal::HttpServer> server;

  Impl(PrescriptionService& s, runtime::PharmacyInbox* i, obs::Registry* m, obs::Tracer* t,
       ApiOptions o)
      : service(s),
        inbox(i),
        metrics(m),
        tracer(t),
        options(std::move(o)),
        throttle(options.throttle) {
    file_clients = options.clients;
    clients = std::make_shared<auth::ClientRegistry>();
    if (metrics) {
      submit_durable = &metrics->Histogram(
          "rxflow_submit_durable_seconds",
          "Time from a POST /api/v1/prescriptions arriving to its transaction being durable");
    }
  }

  // The registry Dispatch authenticates against: the clients file's clients and the keys
  // given in the options, together.
  Status Combine(std::shared_ptr<const auth::ClientRegistry> file) {
    std::lock_guard lock(clients_mu);
    auto merged = std::make_shared<auth::ClientRegistry>(file ? *file : auth::ClientRegistry{});
    for (const auth::Client& c : env_clients.clients()) RXFLOW_RETURN_IF_ERROR(merged->Add(c));
    file_clients = std::move(file);
    clients = std::move(merged);
    return absl::OkStatus();
  }

  std::shared_ptr<const auth::ClientRegistry> Clients() {
    std::lock_guard lock(clients_mu);
    return clients;
  }

  Status Prepare() {
    int64_t now = SystemClock().NowMicros();
    if (!options.api_keys.empty()) {
      RXFLOW_RETURN_IF_ERROR(env_clients.AddEnvKeys(options.api_keys, auth::Role::kPrescriber,
                                                    std::string(kDefaultTenant), {}, now));
    }
    for (const auto& [ncpdp, key] : options.pharmacy_keys) {
      RXFLOW_RETURN_IF_ERROR(
          env_clients.AddEnvKeys({key}, auth::Role::kPharmacy, "", {ncpdp}, now));
    }
    if (!options.metrics_keys.empty()) {
      RXFLOW_RETURN_IF_ERROR(
          env_clients.AddEnvKeys(options.metrics_keys, auth::Role::kMetrics, "", {}, now));
    }
    // Only digests are kept.
    for (std::string& k : options.metrics_keys) OPENSSL_cleanse(k.data(), k.size());
    options.metrics_keys.clear();
    for (std::string& k : options.api_keys) OPENSSL_cleanse(k.data(), k.size());
    for (auto& [n, k] : options.pharmacy_keys) OPENSSL_cleanse(k.data(), k.size());
    options.api_keys.clear();
    options.pharmacy_keys.clear();
    std::shared_ptr<const auth::ClientRegistry> file;
    {
      std::lock_guard lock(clients_mu);
      file = file_clients;
    }
    return Combine(std::move(file));
  }

  RequestContext Context(const HttpRequest& req, obs::TraceContext& trace,
                         const auth::Principal* who, const std::string& request_id) {
    RequestContext ctx;
    if (who != nullptr) {
      ctx.actor = Cat(auth::RoleName(who->role), ":", who->client_id);
      ctx.tenant = who->tenant == "*" ? "" : who->tenant;
    }
    ctx.correlation_id = request_id;
    auto parent = obs::ParseTraceparent(std::string(req.header("traceparent")));
    trace = parent.ok() ? obs::ChildOf(*parent) : obs::NewRootContext();
    ctx.traceparent = obs::FormatTraceparent(trace);
    return ctx;
  }

  void Security(std::string_view event, const HttpRequest& req, const Route* route,
                const std::string& request_id, std::string_view client, std::string_view key_id,
                std::string_view detail = {}) {
    if (metrics) {
      metrics
          ->Counter("rxflow_security_events_total",
                    "Refused authentication, roles, tenants and pharmacies, and throttling",
                    {{"event", std::string(event)}})
          .Inc();
    }
    auto& sink = options.security_log ? options.security_log : options.access_log;
    if (!sink) return;
    sink(json{{"ts", FormatRfc3339(SystemClock().NowMicros())},
              {"security_event", event},
              {"request_id", request_id},
              {"route", route ? route->name : "unmatched"},
              {"client", client},
              {"key_id", key_id},
              {"address", req.remote_address},
              {"detail", detail}}
             .dump(-1, ' ', false, json::error_handler_t::replace));
  }

  void RecordSpan(const std::string& name, const obs::TraceContext& trace, const HttpRequest& req,
                  int status, std::chrono::steady_clock::time_point start) {
    if (tracer == nullptr || !tracer->enabled()) return;
    obs::Span span;
    span.name = name;
    span.context = trace;
    if (auto parent = obs::ParseTraceparent(std::string(req.header("traceparent"))); parent.ok()) {
      span.parent_span_id = parent->span_id;
    }
    span.kind = obs::SpanKind::kServer;
    span.end_unix_nanos = obs::UnixNanosNow();
    span.start_unix_nanos =
        span.end_unix_nanos - std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::steady_clock::now() - start)
                                  .count();
    span.attributes = {{"http.route", name}, {"http.status_code", std::to_string(status)}};
    span.error = status >= 500;
    tracer->Record(std::move(span));
  }

  // ---- handlers --------------------------------------------------------------------------

  void Submit(Call& c) {
    if (!IsJson(c.req)) {
      return SendError(c.res, 415,
                       "Content-Type must be application/fhir+json or application/json");
    }
    std::string key(c.req.header("Idempotency-Key"));
    if (key.size() > kMaxIdempotencyKey ||
        std::any_of(key.begin(), key.end(), [](char ch) { return ch < 0x21 || ch > 0x7e; })) {
      return SendError(c.res, 400,
                       Cat("Idempotency-Key: at most ", kMaxIdempotencyKey,
                           " printable characters without spaces"));
    }
    // A caller's key is the client's own: two clients never share a key space.
    if (!key.empty()) key = Cat(c.who->client_id, "/", key);
    // The answer waits for the store's commit without holding this thread: the handler
    // returns, and the store's writer hands the answer to the connection's thread, which
    // sets and writes it (HttpResponse::Defer). Refusals and replays come back at once.
    auto start = std::chrono::steady_clock::now();
    service.SubmitAsync(
        c.req.body, c.ctx, key,
        [this, &res = c.res, start, end = std::exchange(c.end, nullptr), deferred = c.res.Defer()](
            StatusOr<Submission> s, IssueList issues) mutable {
          std::move(deferred).Send([this, &res, start, end = std::move(end), s = std::move(s),
                                    issues = std::move(issues)]() mutable {
            Answer(res, s, issues, start);
            end();
          });
        });
  }

  // Submit's answer, from what the service returned.
  void Answer(HttpResponse& res, const StatusOr<Submission>& s, const IssueList& issues,
              std::chrono::steady_clock::time_point start) {
    if (!s.ok()) {
      res.status = HttpStatus(s.status(), /*submit=*/true);
      res.set_content(Outcome(issues, s.status()), "application/fhir+json");
      return;
    }
    if (submit_durable) {
      submit_durable->Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    res.status = s->created ? 201 : 200;
    res.set_header("Location", Cat("/api/v1/prescriptions/", s->id));
    res.set_content(SubmissionBody(*s, issues), "application/json");
  }

  void Get(Call& c) {
    auto s = service.Get(c.req.matches[1], c.ctx);
    if (!s.ok()) {
      return SendError(c.res, HttpStatus(s.status(), false), std::string(s.status().message()));
    }
    c.res.set_content(EncodeSummary(*s), "application/json");
  }

  void Events(Call& c) {
    auto h = service.History(c.req.matches[1], c.ctx);
    if (!h.ok()) {
      return SendError(c.res, HttpStatus(h.status(), false), std::string(h.status().message()));
    }
    json out = json::array();
    for (const store::EventRecord& r : *h) {
      json payload = json::parse(r.payload, nullptr, false);
      out.push_back({{"event_id", r.event_id},
                     {"version", r.version},
                     {"type", r.type},
                     {"schema_version", r.schema_version},
                     {"occurred_at", FormatRfc3339(r.occurred_at)},
                     {"correlation_id", r.correlation_id},
                     {"causation_id", r.causation_id},
                     {"actor", r.actor},
                     {"traceparent", r.traceparent},
                     {"payload", payload.is_discarded() ? json(r.payload) : payload}});
    }
    c.res.set_content(json{{"id", c.req.matches[1]}, {"events", out}}.dump(), "application/json");
  }

  void Send(Call& c) { Command(c, false); }
  void Cancel(Call& c) { Command(c, true); }

  void Command(Call& c, bool cancel) {
    const std::string& id = c.req.matches[1];
    Status st;
    if (cancel) {
      std::string reason = "cancelled by the prescriber";
      if (!c.req.body.empty()) {
        if (!IsJson(c.req)) return SendError(c.res, 415, "Content-Type must be application/json");
        json b = json::parse(c.req.body, nullptr, false);
        if (b.is_discarded() || !b.is_object() ||
            (b.contains("reason") && !b["reason"].is_string())) {
          return SendError(c.res, 400, R"($.reason: expected {"reason": "..."})");
        }
        reason = b.value("reason", reason);
        if (reason.size() > kMaxReason) {
          return SendError(c.res, 400, Cat("$.reason: at most ", kMaxReason, " characters"));
        }
      }
      st = service.Cancel(id, reason, c.ctx);
    } else {
      st = service.Route(id, c.ctx);
    }
    if (!st.ok()) return SendError(c.res, HttpStatus(st, false), std::string(st.message()));
    auto s = service.Get(id, c.ctx);
    c.res.status = 202;
    c.res.set_content(s.ok() ? EncodeSummary(*s) : json{{"id", id}}.dump(), "application/json");
  }

  void Inbound(Call& c) {
    if (inbox == nullptr) return SendError(c.res, 404, "no pharmacy inbound route here");
    if (!IsXml(c.req)) return SendError(c.res, 415, "Content-Type must be application/xml");
    IssueList issues;
    const std::string charset = Charset(c.req);
    auto r =
        inbox->Receive(c.req.body, issues,
                       {.context = c.ctx, .speaks_for = &c.who->ncpdp_ids, .charset = charset});
    if (r.ok()) {
      c.res.set_content(json{{"prescription_id", r->prescription_id},
                             {"transaction", r->transaction},
                             {"duplicate", r->duplicate}}
                            .dump(),
                        "application/json");
      return;
    }
    if (r.status().code() == absl::StatusCode::kPermissionDenied) {
      Security("pharmacy_refused", c.req, &c.route, c.ctx.correlation_id, c.who->client_id,
               c.who->key_id, std::string(r.status().message()));
    }
    // A SCRIPT transaction or version RxFlow does not read: valid, but not processable.
    c.res.status =
        r.status().code() == absl::StatusCode::kUnimplemented ? 422 : HttpStatus(r.status(), false);
    // A SCRIPT sender asks for SCRIPT: the Error that answers its message.
    std::string reply;
    if (AcceptsXml(c.req)) reply = inbox->ErrorReply(c.req.body, r.status(), issues, charset);
    if (!reply.empty()) {
      c.res.set_content(reply, "application/xml");
    } else {
      c.res.set_content(Outcome(issues, r.status()), "application/fhir+json");
    }
  }

  // POST .../pdmp-query: asks the configured PDMP for the patient's history and records the
  // query on the prescription (PrescriptionService::QueryPdmp).
  void Pdmp(Call& c) {
    if (options.pdmp == nullptr) return SendError(c.res, 501, "no PDMP is configured");
    const std::string& id = c.req.matches[1];
    auto r = service.QueryPdmp(id, *options.pdmp, c.ctx);
    if (!r.ok()) {
      return SendError(c.res, HttpStatus(r.status(), false), std::string(r.status().message()));
    }
    // The PDMP, not RxFlow, failed: a bad gateway (the attempt is recorded).
    c.res.status = r->outcome == clinical::pdmp::Outcome::kUnavailable ? 502 : 200;
    c.res.set_content(clinical::pdmp::ResultJson(*r, options.pdmp->name()), "application/json");
  }

  void Bundle(Call& c) { Epcs(c, "bundle"); }
  void Ready(Call& c) { Epcs(c, "ready"); }
  void Sign(Call& c) { Epcs(c, "sign"); }

  // A practitioner is acted for only by clients of its tenant: another tenant's
  // practitioner is unknown (404), so nobody can probe, mark ready as, or lock out a
  // practitioner of another tenant.
  bool PractitionerVisible(const Call& c, const std::string& practitioner) {
    auto p = options.ceremony->Practitioner(practitioner);
    if (!p.ok()) return false;
    const std::string& owner = p->tenant.empty() ? std::string(kDefaultTenant) : p->tenant;
    return c.ctx.tenant.empty() || c.ctx.tenant == owner;
  }

  // GET .../signing-bundle?practitioner=ID, POST .../ready, POST .../sign (docs/api.md).
  void Epcs(Call& c, std::string_view action) {
    epcs::Ceremony* ceremony = options.ceremony;
    if (ceremony == nullptr) return SendError(c.res, 501, "EPCS signing is not configured");
    const std::string& id = c.req.matches[1];
    // The prescription must be the client's tenant's before the ceremony sees it.
    if (auto visible = service.Get(id, c.ctx); !visible.ok()) {
      return SendError(c.res, HttpStatus(visible.status(), false),
                       std::string(visible.status().message()));
    }
    std::string practitioner, dea, bundle, password, otp;
    Status st;
    if (action == "bundle") {
      practitioner = c.req.param("practitioner");
      if (practitioner.empty() || practitioner.size() > kMaxPractitioner) {
        return SendError(c.res, 400,
                         Cat("the query parameter practitioner is required (at most ",
                             kMaxPractitioner, " characters)"));
      }
      if (!PractitionerVisible(c, practitioner)) {
        return SendError(c.res, 404, Cat("no practitioner ", practitioner));
      }
      auto b = ceremony->Bundle(id, practitioner);
      if (!b.ok()) {
        return SendError(c.res, EpcsHttpStatus(b.status()), std::string(b.status().message()));
      }
      c.res.set_content(BundleJson(*b).dump(), "application/json");
      return;
    }
    if (action == "ready") {
      std::string error = ReadStrings(c.req, {{"practitioner", &practitioner, kMaxPractitioner},
                                              {"dea_number", &dea, 16},
                                              {"bundle_sha256", &bundle, 64}});
      if (!error.empty()) return SendError(c.res, IsJson(c.req) ? 400 : 415, error);
      if (!PractitionerVisible(c, practitioner)) {
        return SendError(c.res, 404, Cat("no practitioner ", practitioner));
      }
      c.ctx.actor = Cat(c.ctx.actor, "/practitioner:", practitioner);
      st = ceremony->MarkReady(id, practitioner, dea, bundle, c.ctx);
    } else {
      std::string error = ReadStrings(c.req, {{"practitioner", &practitioner, kMaxPractitioner},
                                              {"bundle_sha256", &bundle, 64},
                                              {"password", &password, kMaxSecret},
                                              {"otp", &otp, kMaxSecret}});
      if (!error.empty()) return SendError(c.res, IsJson(c.req) ? 400 : 415, error);
      if (!PractitionerVisible(c, practitioner)) {
        OPENSSL_cleanse(password.data(), password.size());
        return SendError(c.res, 404, Cat("no practitioner ", practitioner));
      }
      c.ctx.actor = Cat(c.ctx.actor, "/practitioner:", practitioner);
      st = ceremony->Sign(id, practitioner, bundle, {password, otp, std::nullopt}, c.ctx);
      OPENSSL_cleanse(password.data(), password.size());
    }
    if (!st.ok()) return SendError(c.res, EpcsHttpStatus(st), std::string(st.message()));
    auto s = service.Get(id, c.ctx);
    c.res.status = 200;
    c.res.set_content(s.ok() ? EncodeSummary(*s) : json{{"id", id}}.dump(), "application/json");
  }

  void Healthz(Call& c) { c.res.set_content(R"({"status":"ok"})", "application/json"); }

  void Readyz(Call& c) {
    bool ok = ready();
    c.res.status = ok ? 200 : 503;
    c.res.set_content(ok ? R"({"status":"ready"})" : R"({"status":"not ready"})",
                      "application/json");
  }

  void Metrics(Call& c) {
    c.res.set_content(metrics ? metrics->Expose() : std::string(), "text/plain; version=0.0.4");
  }

  // ---- dispatch --------------------------------------------------------------------------

  void Routes() {
    const std::string id = "/api/v1/prescriptions/{id}";
    const unsigned prescriber = Bit(auth::Role::kPrescriber);
    const unsigned reader = prescriber | Bit(auth::Role::kOperator);
    const unsigned scraper = Bit(auth::Role::kMetrics) | Bit(auth::Role::kOperator);
    auto add = [this](const char* method, std::string name, unsigned roles, Fn fn,
                      bool quick = false) {
      routes.push_back({method, std::move(name), roles, fn, quick});
    };
    add("POST", "/api/v1/prescriptions", prescriber, &Impl::Submit, /*quick=*/true);
    add("GET", id, reader, &Impl::Get);
    add("GET", id + "/events", prescriber, &Impl::Events);
    add("POST", id + "/route", prescriber, &Impl::Send);
    add("POST", id + "/cancel", prescriber, &Impl::Cancel);
    add("GET", id + "/signing-bundle", prescriber, &Impl::Bundle);
    add("POST", id + "/ready", prescriber, &Impl::Ready);
    add("POST", id + "/sign", prescriber, &Impl::Sign);
    add("POST", id + "/pdmp-query", prescriber, &Impl::Pdmp);
    if (inbox != nullptr) {
      add("POST", "/api/v1/pharmacy/inbound", Bit(auth::Role::kPharmacy), &Impl::Inbound);
    }
    add("GET", "/healthz", kPublic, &Impl::Healthz);
    add("GET", "/readyz", kPublic, &Impl::Readyz);
    add("GET", "/metrics", scraper, &Impl::Metrics);
  }

  // Whether `path` fits the template `name`, where "{id}" stands for 1 to 128 characters of
  // [A-Za-z0-9._-] (put in `id`). Compared as sent: nothing is decoded.
  static bool Matches(std::string_view name, std::string_view path, std::string_view& id) {
    size_t hole = name.find("{id}");
    if (hole == std::string_view::npos) return path == name;
    std::string_view prefix = name.substr(0, hole), suffix = name.substr(hole + 4);
    if (path.size() < prefix.size() + suffix.size() + 1 || !path.starts_with(prefix) ||
        !path.ends_with(suffix)) {
      return false;
    }
    id = path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
    return id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
             return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                    c == '-';
           });
  }

  // The route for `req` (req.matches: the path, then the id), or null: `allow` lists the
  // methods the path has (405) or is empty (404).
  const Route* Find(HttpRequest& req, std::string& allow) {
    for (const Route& r : routes) {
      std::string_view id;
      if (!Matches(r.name, req.path, id)) continue;
      if (r.method != req.method) {
        allow += allow.empty() ? r.method : ", " + r.method;
        continue;
      }
      req.matches = {req.path, std::string(id)};
      return &r;
    }
    return nullptr;
  }

  // Holds one of the client's concurrency slots while a request runs.
  class Slot {
   public:
    Slot(Impl& im, std::string client) : im_(im), client_(std::move(client)) {
      std::lock_guard lock(im_.inflight_mu);
      taken_ = ++im_.inflight[client_] <= im_.options.client_concurrency;
    }
    ~Slot() {
      std::lock_guard lock(im_.inflight_mu);
      auto it = im_.inflight.find(client_);
      if (--it->second == 0) im_.inflight.erase(it);
    }
    bool taken() const { return taken_; }

   private:
    Impl& im_;
    std::string client_;
    bool taken_ = false;
  };

  void Dispatch(HttpRequest& req, HttpResponse& res) {
    auto start = std::chrono::steady_clock::now();
    std::string request_id = rxflow::internal::IdHex128();
    res.set_header("X-Request-Id", request_id);
    std::string allow;
    const Route* route = Find(req, allow);
    std::optional<auth::Principal> who;
    std::unique_ptr<Slot> slot;
    // Under /api/ a client learns which routes exist only once it is authenticated.
    if (route == nullptr && req.path.starts_with("/api/") &&
        !Authenticate(req, res, any_api, request_id)) {
      // 401 or 429 written
    } else if (route == nullptr) {
      if (!allow.empty()) {
        res.set_header("Allow", allow);
        SendError(res, 405, Cat("method ", MethodLabel(req.method), " not allowed here"));
      } else {
        SendError(res, 404, "no such route");
      }
    } else if (route->roles != kPublic) {
      who = Authenticate(req, res, *route, request_id);
      if (who) {
        slot = std::make_unique<Slot>(*this, who->client_id);
        if (!slot->taken()) {
          Security("client_concurrency", req, route, request_id, who->client_id, who->key_id);
          res.set_header("Retry-After", "1");
          SendError(
              res, 429,
              Cat("more than ", options.client_concurrency, " requests of this client in flight"));
          who.reset();
        }
      }
    }
    if (route != nullptr && (route->roles == kPublic || who)) {
      Call call{req, res, *route, who ? &*who : nullptr, {}, {}, {}};
      call.ctx = Context(req, call.trace, call.who, request_id);
      call.end = [this, &req, &res, route, request_id, start, trace = call.trace,
                  slot = std::move(slot)]() mutable {
        if (route->roles != kPublic && route->fn != &Impl::Metrics) {
          RecordSpan(Cat(req.method, " ", route->name), trace, req, res.status, start);
        }
        Log(req, res, route->name, request_id, start);
        slot.reset();
      };
      (this->*(route->fn))(call);
      if (call.end) call.end();  // answered now, not deferred
      return;
    }
    Log(req, res, route ? route->name : "unmatched", request_id, start);
  }

  // The client behind the request's key (or, without a key, behind its verified TLS client
  // certificate), admitted by the route; or nullopt with the answer (401, 403, 429) written.
  // The key is always checked: a correct key gets through even while failures from elsewhere
  // are being throttled (key ids are not secret: anyone could otherwise keep a client out);
  // failures are counted per key id and source, and per source, and a throttled source's
  // wrong keys get 429 instead of 401. A key and a bound certificate naming different clients
  // are refused: neither credential may borrow the other's identity.
  std::optional<auth::Principal> Authenticate(const HttpRequest& req, HttpResponse& res,
                                              const Route& route, const std::string& request_id) {
    std::string_view key = PresentedKey(req);
    const std::string& certificate = req.client_certificate_sha256;
    const bool by_certificate = key.empty() && !certificate.empty();
    std::string key_id = !key.empty()     ? auth::KeyIdOf(key)
                         : by_certificate ? auth::CertificateIdOf(certificate)
                                          : "";
    const std::string source = SourceOf(req.remote_address);
    const std::string pair = key_id.empty() ? "" : Cat(key_id, "@", source);
    const auto clients = Clients();
    StatusOr<auth::Principal> who = absl::UnauthenticatedError("no key");
    // (The key is compared exactly as sent: nothing here or in the server decodes it.)
    if (!key.empty()) {
      who = clients->Authenticate(key, SystemClock().NowMicros());
    } else if (by_certificate) {
      who = clients->AuthenticateCertificate(certificate);
    }
    if (who.ok() && !key.empty() && !certificate.empty()) {
      auto holder = clients->AuthenticateCertificate(certificate);
      if (holder.ok() && holder->client_id != who->client_id) {
        Security("credential_mismatch", req, &route, request_id, who->client_id, who->key_id);
        SendError(res, 401,
                  "the API key and the TLS client certificate belong to different clients");
        return std::nullopt;
      }
    }
    if (!who.ok()) {
      const int64_t now = SteadyMicros();
      if (int64_t wait = throttle.RetryAfterSeconds(pair, source, now); wait > 0) {
        Security("throttled", req, &route, request_id, "", key_id);
        res.set_header("Retry-After", std::to_string(wait));
        SendError(res, 429, "too many failed authentications: retry later");
        return std::nullopt;
      }
      throttle.Failure(pair, source, now);
      Security(!key.empty()     ? "bad_key"
               : by_certificate ? "unbound_certificate"
                                : "no_key",
               req, &route, request_id, "", key_id);
      SendError(res, 401,
                by_certificate
                    ? "the TLS client certificate is not bound to a client, and no API key was "
                      "presented (X-API-Key or Authorization: Bearer)"
                    : "missing, unknown or expired API key (X-API-Key or Authorization: Bearer)");
      return std::nullopt;
    }
    if ((route.roles & Bit(who->role)) == 0) {
      Security("role_refused", req, &route, request_id, who->client_id, who->key_id);
      SendError(res, 403,
                Cat("the ", auth::RoleName(who->role), " role may not use ", req.method, " ",
                    route.name));
      return std::nullopt;
    }
    return std::move(*who);
  }

  // Before the body is read (on the I/O thread): the route's key and role, so that nobody
  // without a key can make the server read, hold or inflate a body.
  bool CheckHead(HttpRequest& req, HttpResponse& res) {
    std::string allow;
    const Route* route = Find(req, allow);
    req.quick = route != nullptr && route->quick;
    const bool has_body = req.has_header("Transfer-Encoding") ||
                          (req.has_header("Content-Length") && req.header("Content-Length") != "0");
    if (route == nullptr && !req.path.starts_with("/api/")) {
      // Answered at once: no route reads a body for anyone here.
      std::string request_id = rxflow::internal::IdHex128();
      res.set_header("X-Request-Id", request_id);
      if (!allow.empty()) {
        res.set_header("Allow", allow);
        SendError(res, 405, Cat("method ", MethodLabel(req.method), " not allowed here"));
      } else {
        SendError(res, 404, "no such route");
      }
      Log(req, res, "unmatched", request_id, std::chrono::steady_clock::now());
      return false;
    }
    if (route != nullptr && route->roles == kPublic) {
      if (!has_body) return true;
      SendError(res, 400, Cat(route->name, " takes no body"));
      Log(req, res, route->name, "-", std::chrono::steady_clock::now());
      return false;
    }
    std::string request_id = rxflow::internal::IdHex128();
    auto start = std::chrono::steady_clock::now();
    if (Authenticate(req, res, route ? *route : any_api, request_id)) return true;
    res.set_header("X-Request-Id", request_id);
    Log(req, res, route ? route->name : "unmatched", request_id, start);
    return false;
  }

  void Log(const HttpRequest& req, const HttpResponse& res, const std::string& route,
           const std::string& request_id, std::chrono::steady_clock::time_point start) {
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::string method(MethodLabel(req.method));
    if (metrics) {
      metrics
          ->Counter("rxflow_http_requests_total", "HTTP requests by route, method and status",
                    {{"route", route}, {"method", method}, {"code", std::to_string(res.status)}})
          .Inc();
      metrics
          ->Histogram("rxflow_http_request_duration_seconds", "HTTP request latency by route",
                      {{"route", route}, {"method", method}})
          .Observe(seconds);
    }
    if (options.access_log) {
      options.access_log(json{
          {"ts", FormatRfc3339(SystemClock().NowMicros())},
          {"request_id", request_id},
          {"method", method},
          {"route", route},
          {"status", res.status},
          {"duration_ms", seconds * 1000.0},
          {"bytes_in", req.body.size()},
          {"bytes_out",
           res.body.size()}}.dump());
    }
  }

  // What the server refuses by itself (431, 413, 415, 400): an OperationOutcome, logged
  // under the route "refused".
  void Refuse(const HttpRequest& req, int status, const std::string& message, HttpResponse& res) {
    SendError(res, status, message);
    Log(req, res, "refused", "-", std::chrono::steady_clock::now());
  }

  // What the HTTP server is built with (Start, and the fuzz target through ApiServerAccess).
  // Clamps client_concurrency: one client must not hold every worker, at most all but one.
  internal::ServerLimits Limits() {
    internal::ServerLimits limits;
    limits.max_connections = options.max_connections;
    limits.max_connections_per_source = options.max_connections_per_source;
    limits.max_body_bytes = options.max_body_bytes;
    limits.head_timeout = options.head_timeout;
    limits.body_timeout = options.body_timeout;
    limits.workers = options.threads;
    limits.quick_workers = std::max(0, options.submit_threads);
    options.client_concurrency =
        std::max(1, std::min(options.client_concurrency, options.threads - 1));
    return limits;
  }
  internal::HttpServer::Handler Handler() {
    return [this](HttpRequest& q, HttpResponse& r) { Dispatch(q, r); };
  }
  internal::HttpServer::Refusal Refusal() {
    return [this](const HttpRequest& q, int status, const std::string& message, HttpResponse& r) {
      Refuse(q, status, message, r);
    };
  }
  internal::HttpServer::HeadCheck HeadCheck() {
    return [this](HttpRequest& q, HttpResponse& r) { return CheckHead(q, r); };
  }
};

ApiServer::ApiServer(PrescriptionService& service, runtime::PharmacyInbox* inbox,
                     obs::Registry* metrics, obs::Tracer* tracer, ApiOptions options)
    : impl_(std::make_unique<Impl>(service, inbox, metrics, tracer, std::move(options))) {
  impl_->Routes();
}

ApiServer::~ApiServer() { Stop(); }

Status ApiServer::Start() {
  Impl& im = *impl_;
  if (im.options.tls_certificate_file.empty() != im.options.tls_key_file.empty() ||
      (!im.options.tls_client_ca_file.empty() && im.options.tls_certificate_file.empty())) {
    return absl::InvalidArgumentError(
        "TLS: a certificate and its key go together, and a client CA (mutual TLS) needs both");
  }
  if (im.options.tls_certificate_file.empty() && !internal::IsLoopback(im.options.host) &&
      !im.options.insecure_http) {
    return absl::FailedPreconditionError(
        Cat("refusing to serve plain HTTP on ", im.options.host,
            ": API keys and PHI would cross the network in clear. Give a certificate and key "
            "(--tls-cert, --tls-key), or --insecure-http behind a TLS-terminating proxy"));
  }
  RXFLOW_RETURN_IF_ERROR(im.Prepare());
  im.server = std::make_unique<internal::HttpServer>(im.Limits(), im.Handler(), im.Refusal(),
                                                     im.HeadCheck());
  internal::TlsOptions tls;
  tls.certificate_file = im.options.tls_certificate_file;
  tls.key_file = im.options.tls_key_file;
  tls.client_ca_file = im.options.tls_client_ca_file;
  Status s = im.server->Start(im.options.host, im.options.port, tls);
  if (!s.ok()) im.server.reset();
  return s;
}

Status ApiServer::ReloadTls() {
  if (!impl_->server) return absl::FailedPreconditionError("the server is not running");
  return impl_->server->ReloadTls();
}

void ApiServer::Stop() {
  if (impl_->server) impl_->server->Stop();
}

int ApiServer::port() const { return impl_->server ? impl_->server->port() : 0; }

void ApiServer::set_readiness(std::function<bool()> ready) { impl_->ready = std::move(ready); }

Status ApiServer::SetClients(std::shared_ptr<const auth::ClientRegistry> clients) {
  return impl_->Combine(std::move(clients));
}

namespace internal {

Status ApiServerAccess::Prepare(ApiServer& server) { return server.impl_->Prepare(); }

std::vector<HttpResponse> ApiServerAccess::Serve(ApiServer& server, std::string_view bytes,
                                                 const std::string& remote_address) {
  ApiServer::Impl& im = *server.impl_;
  return ServeBytes(im.Limits(), im.Handler(), im.Refusal(), im.HeadCheck(), bytes, remote_address);
}

}  // namespace internal

std::function<bool()> StoreReadiness(store::EventStore& store) {
  return [&store] {
    auto probe = store.FindByIdempotencyKey("readiness-probe");
    return probe.ok() || absl::IsNotFound(probe.status());
  };
}

}  // namespace rxflow::http
