// The ingestion API over cpp-httplib. Handlers are thin: parse the request, call the
// library (PrescriptionService, PharmacyInbox), map its Status to an HTTP status.
#include <array>
#include <chrono>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "rxflow/fhir/json.h"
#include "rxflow/http/servers.h"
#include "rxflow/internal/crypto.h"
#include "rxflow/internal/strcat.h"

#include "listen.h"

namespace rxflow::http {
namespace {

using nlohmann::json;
using rxflow::internal::Cat;
using Digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

Digest Sha256(std::string_view s) {
  Digest d;
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

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
    case absl::StatusCode::kAborted:  // too many concurrent updates: retry
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

// The route a path belongs to, for metrics and logs (no ids: they are not PHI, but they
// would make one series per prescription).
std::string RouteOf(const std::string& path) {
  static const std::string kPrefix = "/api/v1/prescriptions/";
  if (path.rfind(kPrefix, 0) == 0) {
    size_t slash = path.find('/', kPrefix.size());
    return slash == std::string::npos ? kPrefix + "{id}" : kPrefix + "{id}" + path.substr(slash);
  }
  return path;
}

json SubmissionJson(const Submission& s) {
  return {{"id", s.id},
          {"status", std::string(domain::StateName(s.state))},
          {"idempotency_key", s.idempotency_key},
          {"is_controlled", s.is_controlled},
          {"created_at", s.created_at}};
}

// An OperationOutcome for `issues`, or one issue carrying `status`'s message.
std::string Outcome(const IssueList& issues, const Status& status) {
  IssueList all = issues;
  if (!all.has_errors()) {
    all.Error("", IssueCode::kInvalid, std::string(status.message()));
  }
  return fhir::WriteJson(fhir::Resource{fhir::ToOperationOutcome(all)}, fhir::JsonStyle::kCompact);
}

void SendError(httplib::Response& res, int code, const std::string& message) {
  IssueList issues;
  issues.Error("",
               code == 401 || code == 403 ? IssueCode::kSecurity
               : code == 404              ? IssueCode::kNotFound
               : code == 413              ? IssueCode::kTooCostly
                                          : IssueCode::kInvalid,
               message);
  res.status = code;
  res.set_content(
      fhir::WriteJson(fhir::Resource{fhir::ToOperationOutcome(issues)}, fhir::JsonStyle::kCompact),
      "application/fhir+json");
}

bool IsJson(const httplib::Request& req) {
  std::string ct = req.get_header_value("Content-Type");
  return ct.rfind("application/json", 0) == 0 || ct.rfind("application/fhir+json", 0) == 0;
}

bool IsXml(const httplib::Request& req) {
  std::string ct = req.get_header_value("Content-Type");
  return ct.rfind("application/xml", 0) == 0 || ct.rfind("text/xml", 0) == 0;
}

// True when the client lists application/xml or text/xml in Accept (a SCRIPT system).
bool AcceptsXml(const httplib::Request& req) {
  std::string accept = req.get_header_value("Accept");
  return accept.find("application/xml") != std::string::npos ||
         accept.find("text/xml") != std::string::npos;
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
          {"marked_ready", b.marked_ready}};
}

// Reads the string members `names` of a JSON object body; "" or the error naming the member.
std::string ReadStrings(const httplib::Request& req,
                        std::initializer_list<std::pair<const char*, std::string*>> names) {
  if (!IsJson(req)) return "Content-Type must be application/json";
  json b = json::parse(req.body, nullptr, false);
  if (b.is_discarded() || !b.is_object()) return "the body must be a JSON object";
  for (auto [name, out] : names) {
    auto it = b.find(name);
    if (it == b.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
      return Cat("$.", name, ": a non-empty string is required");
    }
    *out = it->get<std::string>();
  }
  return "";
}

thread_local std::chrono::steady_clock::time_point t_request_start;
thread_local std::string t_request_id;

}  // namespace

struct ApiServer::Impl {
  PrescriptionService& service;
  runtime::PharmacyInbox* inbox;
  obs::Registry* metrics;
  obs::Tracer* tracer;
  ApiOptions options;
  std::vector<Digest> keys;
  std::function<bool()> ready = [] { return true; };
  httplib::Server server;
  std::thread thread;
  int port = 0;
  obs::Histogram* submit_durable = nullptr;

  Impl(PrescriptionService& s, runtime::PharmacyInbox* i, obs::Registry* m, obs::Tracer* t,
       ApiOptions o)
      : service(s), inbox(i), metrics(m), tracer(t), options(std::move(o)) {
    for (const std::string& k : options.api_keys) {
      if (!k.empty()) keys.push_back(Sha256(k));
    }
    options.api_keys.clear();  // keep only the digests
    if (metrics) {
      submit_durable = &metrics->Histogram(
          "rxflow_submit_durable_seconds",
          "Time from a POST /api/v1/prescriptions arriving to its transaction being durable");
    }
  }

  // Constant time over the stored digests: every key is compared, always.
  bool Authorized(const httplib::Request& req) const {
    if (!req.has_header("X-API-Key")) return false;
    Digest d = Sha256(req.get_header_value("X-API-Key"));
    int match = 0;
    for (const Digest& k : keys) match |= CRYPTO_memcmp(k.data(), d.data(), d.size()) == 0;
    return match != 0;
  }

  RequestContext Context(const httplib::Request& req, obs::TraceContext& trace) {
    RequestContext ctx;
    ctx.actor = "api-key";
    ctx.correlation_id = t_request_id;
    auto parent = obs::ParseTraceparent(req.get_header_value("traceparent"));
    trace = parent.ok() ? obs::ChildOf(*parent) : obs::NewRootContext();
    ctx.traceparent = obs::FormatTraceparent(trace);
    return ctx;
  }

  void RecordSpan(const std::string& name, const obs::TraceContext& trace,
                  const httplib::Request& req, int status) {
    if (tracer == nullptr || !tracer->enabled()) return;
    obs::Span span;
    span.name = name;
    span.context = trace;
    if (auto parent = obs::ParseTraceparent(req.get_header_value("traceparent")); parent.ok()) {
      span.parent_span_id = parent->span_id;
    }
    span.kind = obs::SpanKind::kServer;
    span.end_unix_nanos = obs::UnixNanosNow();
    span.start_unix_nanos =
        span.end_unix_nanos - std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::steady_clock::now() - t_request_start)
                                  .count();
    span.attributes = {{"http.route", RouteOf(req.path)},
                       {"http.status_code", std::to_string(status)}};
    span.error = status >= 500;
    tracer->Record(std::move(span));
  }

  void Submit(const httplib::Request& req, httplib::Response& res) {
    if (!IsJson(req)) {
      return SendError(res, 415, "Content-Type must be application/fhir+json or application/json");
    }
    obs::TraceContext trace;
    RequestContext ctx = Context(req, trace);
    IssueList issues;
    auto start = std::chrono::steady_clock::now();
    auto s = service.Submit(req.body, issues, ctx, req.get_header_value("Idempotency-Key"));
    if (!s.ok()) {
      res.status = HttpStatus(s.status(), /*submit=*/true);
      res.set_content(Outcome(issues, s.status()), "application/fhir+json");
    } else {
      if (submit_durable) {
        submit_durable->Observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      res.status = s->created ? 201 : 200;
      res.set_header("Location", Cat("/api/v1/prescriptions/", s->id));
      json body = SubmissionJson(*s);
      if (issues.warning_count() > 0) {
        json w = json::array();
        for (const Issue& i : issues) {
          if (i.severity == Severity::kWarning) {
            w.push_back({{"path", i.path}, {"message", i.message}});
          }
        }
        body["warnings"] = std::move(w);
      }
      res.set_content(body.dump(), "application/json");
    }
    RecordSpan("POST /api/v1/prescriptions", trace, req, res.status);
  }

  void Get(const httplib::Request& req, httplib::Response& res) {
    auto s = service.Get(req.matches[1]);
    if (!s.ok())
      return SendError(res, HttpStatus(s.status(), false), std::string(s.status().message()));
    res.set_content(EncodeSummary(*s), "application/json");
  }

  void Events(const httplib::Request& req, httplib::Response& res) {
    auto h = service.History(req.matches[1]);
    if (!h.ok())
      return SendError(res, HttpStatus(h.status(), false), std::string(h.status().message()));
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
    res.set_content(json{{"id", std::string(req.matches[1])}, {"events", out}}.dump(),
                    "application/json");
  }

  void Command(const httplib::Request& req, httplib::Response& res, bool cancel) {
    obs::TraceContext trace;
    RequestContext ctx = Context(req, trace);
    std::string id = req.matches[1];
    Status st;
    if (cancel) {
      std::string reason = "cancelled by the prescriber";
      if (!req.body.empty()) {
        if (!IsJson(req)) return SendError(res, 415, "Content-Type must be application/json");
        json b = json::parse(req.body, nullptr, false);
        if (b.is_discarded() || !b.is_object() ||
            (b.contains("reason") && !b["reason"].is_string())) {
          return SendError(res, 400, "$.reason: expected {\"reason\": \"...\"}");
        }
        reason = b.value("reason", reason);
      }
      st = service.Cancel(id, reason, ctx);
    } else {
      st = service.Route(id, ctx);
    }
    if (!st.ok()) {
      SendError(res, HttpStatus(st, false), std::string(st.message()));
    } else {
      auto s = service.Get(id);
      res.status = 202;
      res.set_content(s.ok() ? EncodeSummary(*s) : json{{"id", id}}.dump(), "application/json");
    }
    RecordSpan(cancel ? "POST /cancel" : "POST /route", trace, req, res.status);
  }

  void Inbound(const httplib::Request& req, httplib::Response& res) {
    if (!IsXml(req)) return SendError(res, 415, "Content-Type must be application/xml");
    obs::TraceContext trace;
    RequestContext ctx = Context(req, trace);
    ctx.actor = "pharmacy";
    IssueList issues;
    auto r = inbox->Receive(req.body, issues, ctx);
    if (!r.ok()) {
      // A SCRIPT transaction or version RxFlow does not read: valid, but not processable.
      res.status = r.status().code() == absl::StatusCode::kUnimplemented
                       ? 422
                       : HttpStatus(r.status(), false);
      // A SCRIPT sender asks for SCRIPT: the Error that answers its message.
      std::string reply;
      if (AcceptsXml(req)) reply = inbox->ErrorReply(req.body, r.status(), issues);
      if (!reply.empty()) {
        res.set_content(reply, "application/xml");
      } else {
        res.set_content(Outcome(issues, r.status()), "application/fhir+json");
      }
    } else {
      res.set_content(json{{"prescription_id", r->prescription_id},
                           {"transaction", r->transaction},
                           {"duplicate", r->duplicate}}
                          .dump(),
                      "application/json");
    }
    RecordSpan("POST /api/v1/pharmacy/inbound", trace, req, res.status);
  }

  // GET .../signing-bundle?practitioner=ID, POST .../ready, POST .../sign (docs/api.md).
  void Epcs(const httplib::Request& req, httplib::Response& res, std::string_view action) {
    epcs::Ceremony* ceremony = options.ceremony;
    if (ceremony == nullptr) return SendError(res, 501, "EPCS signing is not configured");
    obs::TraceContext trace;
    RequestContext ctx = Context(req, trace);
    std::string id = req.matches[1];
    std::string practitioner, dea, bundle, password, otp;
    Status st;
    if (action == "bundle") {
      practitioner = req.get_param_value("practitioner");
      if (practitioner.empty()) {
        return SendError(res, 400, "the query parameter practitioner is required");
      }
      auto b = ceremony->Bundle(id, practitioner);
      if (!b.ok())
        return SendError(res, EpcsHttpStatus(b.status()), std::string(b.status().message()));
      res.set_content(BundleJson(*b).dump(), "application/json");
      return;
    }
    if (action == "ready") {
      std::string error = ReadStrings(
          req, {{"practitioner", &practitioner}, {"dea_number", &dea}, {"bundle_sha256", &bundle}});
      if (!error.empty()) return SendError(res, IsJson(req) ? 400 : 415, error);
      ctx.actor = Cat("practitioner:", practitioner);
      st = ceremony->MarkReady(id, practitioner, dea, bundle, ctx);
    } else {
      std::string error = ReadStrings(req, {{"practitioner", &practitioner},
                                            {"bundle_sha256", &bundle},
                                            {"password", &password},
                                            {"otp", &otp}});
      if (!error.empty()) return SendError(res, IsJson(req) ? 400 : 415, error);
      ctx.actor = Cat("practitioner:", practitioner);
      st = ceremony->Sign(id, practitioner, bundle, {password, otp}, ctx);
      OPENSSL_cleanse(password.data(), password.size());
    }
    if (!st.ok()) {
      SendError(res, EpcsHttpStatus(st), std::string(st.message()));
    } else {
      auto s = service.Get(id);
      res.status = 200;
      res.set_content(s.ok() ? EncodeSummary(*s) : json{{"id", id}}.dump(), "application/json");
    }
    RecordSpan(Cat("POST /", action), trace, req, res.status);
  }

  void Routes() {
    server.set_tcp_nodelay(true);
    server.set_payload_max_length(options.max_body_bytes);
    int threads = std::max(1, options.threads);
    server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      t_request_start = std::chrono::steady_clock::now();
      t_request_id = rxflow::internal::RandomHex128();
      res.set_header("X-Request-Id", t_request_id);
      if (req.path.rfind("/api/", 0) == 0 && !Authorized(req)) {
        SendError(res, 401, "missing or unknown X-API-Key");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    const char* kId = "([A-Za-z0-9._-]{1,128})";
    server.Post("/api/v1/prescriptions", [this](const auto& q, auto& r) { Submit(q, r); });
    server.Get(Cat("/api/v1/prescriptions/", kId), [this](const auto& q, auto& r) { Get(q, r); });
    server.Get(Cat("/api/v1/prescriptions/", kId, "/events"),
               [this](const auto& q, auto& r) { Events(q, r); });
    server.Post(Cat("/api/v1/prescriptions/", kId, "/route"),
                [this](const auto& q, auto& r) { Command(q, r, false); });
    server.Post(Cat("/api/v1/prescriptions/", kId, "/cancel"),
                [this](const auto& q, auto& r) { Command(q, r, true); });
    server.Get(Cat("/api/v1/prescriptions/", kId, "/signing-bundle"),
               [this](const auto& q, auto& r) { Epcs(q, r, "bundle"); });
    server.Post(Cat("/api/v1/prescriptions/", kId, "/ready"),
                [this](const auto& q, auto& r) { Epcs(q, r, "ready"); });
    server.Post(Cat("/api/v1/prescriptions/", kId, "/sign"),
                [this](const auto& q, auto& r) { Epcs(q, r, "sign"); });
    if (inbox != nullptr) {
      server.Post("/api/v1/pharmacy/inbound", [this](const auto& q, auto& r) { Inbound(q, r); });
    }
    server.Get("/healthz", [](const auto&, auto& r) {
      r.set_content("{\"status\":\"ok\"}", "application/json");
    });
    server.Get("/readyz", [this](const auto&, auto& r) {
      bool ok = ready();
      r.status = ok ? 200 : 503;
      r.set_content(ok ? "{\"status\":\"ready\"}" : "{\"status\":\"not ready\"}",
                    "application/json");
    });
    server.Get("/metrics", [this](const auto&, auto& r) {
      r.set_content(metrics ? metrics->Expose() : std::string(), "text/plain; version=0.0.4");
    });
    server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;  // a handler already wrote its error
      if (res.status == 413) return SendError(res, 413, "request body too large");
      if (res.status == 404)
        return SendError(res, 404, Cat("no route ", req.method, " ", RouteOf(req.path)));
      SendError(res, res.status, "request refused");
    });
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      // A request refused before routing (an oversized body) never reached the pre-routing
      // handler: it has no id or start time of its own (zero duration, id "-").
      bool started = t_request_start != std::chrono::steady_clock::time_point{};
      double seconds =
          started
              ? std::chrono::duration<double>(std::chrono::steady_clock::now() - t_request_start)
                    .count()
              : 0.0;
      std::string request_id = started ? t_request_id : "-";
      t_request_start = {};
      std::string route = RouteOf(req.path);
      if (metrics) {
        metrics
            ->Counter(
                "rxflow_http_requests_total", "HTTP requests by route, method and status",
                {{"route", route}, {"method", req.method}, {"code", std::to_string(res.status)}})
            .Inc();
        metrics
            ->Histogram("rxflow_http_request_duration_seconds", "HTTP request latency by route",
                        {{"route", route}, {"method", req.method}})
            .Observe(seconds);
      }
      if (options.access_log) {
        options.access_log(json{
            {"ts", FormatRfc3339(SystemClock().NowMicros())},
            {"request_id", request_id},
            {"method", req.method},
            {"route", route},
            {"status", res.status},
            {"duration_ms", seconds * 1000.0},
            {"bytes_in", req.body.size()},
            {"bytes_out",
             res.body.size()}}.dump());
      }
    });
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
  return internal::Listen(im.server, im.options.host, im.options.port, im.port, im.thread);
}

void ApiServer::Stop() { internal::StopListening(impl_->server, impl_->thread); }

int ApiServer::port() const { return impl_->port; }

void ApiServer::set_readiness(std::function<bool()> ready) { impl_->ready = std::move(ready); }

std::function<bool()> StoreReadiness(store::EventStore& store) {
  return [&store] {
    auto probe = store.FindByIdempotencyKey("readiness-probe");
    return probe.ok() || absl::IsNotFound(probe.status());
  };
}

}  // namespace rxflow::http
