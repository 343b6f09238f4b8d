// SPDX-License-Identifier: Apache-2.0
// The pharmacy simulator: a real HTTP server speaking SCRIPT XML (see servers.h), on the same
// Boost.Beast server as the API (one I/O thread, a pool of handler threads), posting its
// RxFills back through keep-alive cpp-httplib clients, `fill_connections` of them at once.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_set>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "rxflow/http/servers.h"
#include "rxflow/internal/crypto.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/script/xml.h"

#include "http_server.h"
#include "url.h"

namespace rxflow::http {
namespace {

using rxflow::internal::Cat;

// The answer's header: back to the sender, relating to its message.
script::Header AnswerHeader(const script::Header& in) {
  script::Header h;
  h.to = in.from;
  h.to_qualifier = in.from_qualifier.empty() ? "D" : in.from_qualifier;
  h.from = in.to;
  h.from_qualifier = in.to_qualifier.empty() ? "P" : in.to_qualifier;
  h.message_id = rxflow::internal::IdHex128();
  h.relates_to_message_id = in.message_id;
  h.sent_time = FormatRfc3339(SystemClock().NowMicros());
  h.sender_software_developer = "RxFlow";
  h.sender_software_product = "RxFlow Pharmacy Simulator";
  h.sender_software_version_release = "1";
  h.prescriber_order_number = in.prescriber_order_number;
  return h;
}

std::string Write(const script::Message& m) {
  IssueList issues;
  auto xml = script::WriteXml(m, issues);
  return xml.ok() ? *xml : std::string();
}

using internal::HttpRequest;
using internal::HttpResponse;

void JsonError(HttpResponse& res, int status, std::string_view message) {
  res.status = status;
  res.set_content(nlohmann::json{{"error", message}}.dump(), "application/json");
}

}  // namespace

struct PharmacySimulator::Impl {
  SimulatorOptions options;
  std::unique_ptr<internal::HttpServer> server;
  std::vector<std::thread> fillers;
  std::chrono::steady_clock::time_point started;

  mutable std::mutex mu;
  std::condition_variable fills_cv;
  std::unordered_set<std::string> seen;
  SimulatorStats stats;
  std::chrono::steady_clock::time_point outage_until;
  struct PendingFill {
    std::chrono::steady_clock::time_point due;
    std::string xml;
    std::string traceparent;  // the NewRx's, carried on the callback
    int attempts = 0;         // posts tried so far
  };
  std::deque<PendingFill> fills;  // by due time
  bool stopping = false;

  explicit Impl(SimulatorOptions o) : options(std::move(o)) {}

  bool InOutage() {
    auto now = std::chrono::steady_clock::now();
    if (now < outage_until) return true;
    for (const auto& [from, to] : options.outages) {
      if (now >= started + from && now < started + to) return true;
    }
    return false;
  }

  std::string Fill(const script::Message& in, const script::NewRx& rx) {
    script::Message m;
    m.header = AnswerHeader(in.header);
    script::RxFill f;
    f.fill_status = "Dispensed";
    f.patient = rx.patient;
    if (rx.pharmacy) {
      f.pharmacy = *rx.pharmacy;
    } else {
      f.pharmacy.identification.ncpdp_id = in.header.to;
      f.pharmacy.business_name = "RxFlow Simulator Pharmacy";
    }
    f.prescriber = rx.prescriber;
    f.medication_prescribed = rx.medication_prescribed;
    m.body = std::move(f);
    return Write(m);
  }

  // Every request, on one of the server's handler threads.
  void Route(HttpRequest& req, HttpResponse& res) {
    const bool get = req.method == "GET", post = req.method == "POST";
    if (req.path == "/ncpdp") {
      if (post) return Handle(req, res);
    } else if (req.path == "/admin/stats") {
      if (get) return Stats(res);
    } else if (req.path == "/admin/outage") {
      if (post) return Outage(req, res);
    } else if (req.path == "/healthz") {
      if (get) return res.set_content(R"({"status":"ok"})", "application/json");
    } else {
      return JsonError(res, 404, "no such route");
    }
    JsonError(res, 405, "method not allowed");
  }

  void Stats(HttpResponse& res) {
    SimulatorStats s;
    {
      std::lock_guard lock(mu);
      s = stats;
    }
    res.set_content(nlohmann::json{{"received", s.received},
                                   {"unique", s.unique},
                                   {"duplicates", s.duplicates},
                                   {"invalid", s.invalid},
                                   {"refused", s.refused},
                                   {"traced", s.traced},
                                   {"fills_posted", s.fills_posted},
                                   {"signatures_verified", s.signatures_verified},
                                   {"signatures_refused", s.signatures_refused},
                                   {"fill_errors", s.fill_errors}}
                        .dump(),
                    "application/json");
  }

  void Outage(const HttpRequest& req, HttpResponse& res) {
    constexpr long kDay = 86'400'000;  // a longer outage is a mistake, and would overflow
    std::string value = req.param("ms");
    char* end = nullptr;
    long ms = value.empty() ? 0 : std::strtol(value.c_str(), &end, 10);
    if (ms <= 0 || ms > kDay || *end != '\0') {
      return JsonError(res, 400, "ms must be a positive integer of at most 86400000 (a day)");
    }
    std::lock_guard lock(mu);
    outage_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    res.set_content(R"({"status":"outage"})", "application/json");
  }

  void Handle(const HttpRequest& req, HttpResponse& res) {
    if (options.latency.count() > 0) std::this_thread::sleep_for(options.latency);
    {
      std::lock_guard lock(mu);
      if (InOutage()) {
        ++stats.refused;
        return JsonError(res, 503, "simulated outage");
      }
    }
    if (req.has_header("traceparent")) {
      std::lock_guard lock(mu);
      ++stats.traced;
    }
    IssueList issues;
    auto in = script::ReadXml(req.body, issues);
    script::Message answer;
    if (!in.ok()) {
      {
        std::lock_guard lock(mu);
        ++stats.invalid;
        ++stats.received;
      }
      script::Header empty;
      answer.header = AnswerHeader(empty);
      answer.header.to = "0000000";
      answer.header.from = "0000000";
      answer.header.relates_to_message_id.clear();
      script::Error e;
      e.code = "900";
      e.description = std::string(in.status().message()).substr(0, 70);
      answer.body = e;
      res.set_content(Write(answer), "application/xml");
      return;
    }
    answer.header = AnswerHeader(in->header);
    // Verified when the NewRx is controlled or carries a signature: a signed NewRx whose
    // DEASchedule an intermediary removed is still checked.
    const auto* rx = std::get_if<script::NewRx>(&in->body);
    const auto& ds = in->header.digital_signature;
    if (rx != nullptr && options.epcs_trust != nullptr &&
        ((rx->medication_prescribed.drug_coded &&
          !rx->medication_prescribed.drug_coded->dea_schedule_code.empty()) ||
         (ds && !ds->signature_value.empty()))) {
      epcs::SignatureVerification v = epcs::VerifyPrescriptionSignature(*in, *options.epcs_trust);
      std::lock_guard lock(mu);
      if (!v.ok()) {
        ++stats.received;
        ++stats.signatures_refused;
        script::Error e;
        e.code = "900";
        e.description =
            Cat("digital signature ", epcs::SignatureCheckName(v.result), ": ", v.reason)
                .substr(0, 70);
        answer.body = e;
        res.set_content(Write(answer), "application/xml");
        return;
      }
      ++stats.signatures_verified;
    }
    bool duplicate;
    double roll;
    {
      std::lock_guard lock(mu);
      ++stats.received;
      thread_local std::mt19937_64 rng{std::random_device{}()};
      roll = std::uniform_real_distribution<double>(0, 1)(rng);
      duplicate = !seen.insert(in->header.message_id).second;
      if (duplicate) {
        ++stats.duplicates;
      } else if (roll >= options.error_rate) {
        ++stats.unique;
      } else {
        seen.erase(in->header.message_id);  // an Error is not an acceptance: a resend may pass
      }
    }
    if (std::holds_alternative<script::CancelRx>(in->body)) {
      script::CancelRxResponse approved;
      approved.response.kind = "Approved";
      answer.body = approved;
    } else if (!duplicate && roll < options.error_rate) {
      script::Error e;
      e.code = "602";
      e.description = "simulated receiver system error";
      answer.body = e;
    } else if (roll < options.error_rate + options.verify_rate) {
      answer.body = script::Verify{"010", "Successful"};
    } else {
      answer.body = script::Status{"000", {}, {}};
    }
    // (rx: the NewRx, or null, from above)
    if (rx && !duplicate && !options.callback_url.empty() &&
        !std::holds_alternative<script::Error>(answer.body)) {
      std::string fill = Fill(*in, *rx);
      std::lock_guard lock(mu);
      fills.push_back({std::chrono::steady_clock::now() + options.fill_after, std::move(fill),
                       std::string(req.header("traceparent"))});
      fills_cv.notify_one();
    }
    res.set_content(Write(answer), "application/xml");
  }

  // A refused or failed fill is posted again later: 100 ms, then twice as long each time up
  // to 2 s, 10 posts in all (about 13 s) before it counts as a fill error. The receiver may
  // refuse a fill that overtook its own record of the NewRx's send, and will take it later.
  static constexpr int kFillAttempts = 10;

  // Posts due RxFills to the callback URL, soonest due first; `fill_connections` of these run
  // at once, each with its own keep-alive connection. A poster never sleeps on a retry: the
  // fill goes back into the queue, in due order.
  void FillLoop() {
    auto [origin, path] = internal::SplitUrl(options.callback_url);
    httplib::Client client(origin);
    // An https callback verifies the server against these CAs (PEM), when given.
    if (!options.callback_ca_file.empty()) client.set_ca_cert_path(options.callback_ca_file);
    client.set_tcp_nodelay(true);
    client.set_keep_alive(true);
    client.set_connection_timeout(2, 0);
    client.set_read_timeout(10, 0);
    httplib::Headers headers;
    if (!options.callback_api_key.empty()) headers.emplace("X-API-Key", options.callback_api_key);
    std::unique_lock lock(mu);
    for (;;) {
      fills_cv.wait(lock, [&] { return stopping || !fills.empty(); });
      if (stopping) return;
      if (auto due = fills.front().due; std::chrono::steady_clock::now() < due) {
        fills_cv.wait_until(lock, due);
        continue;
      }
      PendingFill fill = std::move(fills.front());
      fills.pop_front();
      lock.unlock();
      httplib::Headers h = headers;
      if (!fill.traceparent.empty()) h.emplace("traceparent", fill.traceparent);
      auto res = client.Post(path, h, fill.xml, "application/xml");
      const bool ok = res && res->status >= 200 && res->status < 300;
      lock.lock();
      if (ok) {
        ++stats.fills_posted;
      } else if (++fill.attempts >= kFillAttempts) {
        ++stats.fill_errors;
      } else {
        fill.due =
            std::chrono::steady_clock::now() +
            std::min<std::chrono::milliseconds>(
                std::chrono::milliseconds(100 << (fill.attempts - 1)), std::chrono::seconds(2));
        auto at = std::upper_bound(fills.begin(), fills.end(), fill.due,
                                   [](auto due, const PendingFill& f) { return due < f.due; });
        fills.insert(at, std::move(fill));
        fills_cv.notify_all();
      }
    }
  }
};

PharmacySimulator::PharmacySimulator(SimulatorOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

PharmacySimulator::~PharmacySimulator() { Stop(); }

Status PharmacySimulator::Start() {
  Impl& im = *impl_;
  im.started = std::chrono::steady_clock::now();
  internal::ServerLimits limits;
  limits.max_body_bytes = size_t{4} << 20;
  limits.workers = std::max(1, im.options.threads);
  im.server = std::make_unique<internal::HttpServer>(
      limits, [&im](HttpRequest& q, HttpResponse& r) { im.Route(q, r); },
      [](const HttpRequest&, int status, const std::string& message, HttpResponse& r) {
        JsonError(r, status, message);
      });
  internal::TlsOptions tls;
  tls.certificate_file = im.options.tls_certificate_file;
  tls.key_file = im.options.tls_key_file;
  tls.client_ca_file = im.options.tls_client_ca_file;
  if (Status s = im.server->Start(im.options.host, im.options.port, tls); !s.ok()) {
    im.server.reset();
    return s;
  }
  if (!im.options.callback_url.empty()) {
    for (int i = 0; i < std::max(1, im.options.fill_connections); ++i) {
      im.fillers.emplace_back([&im] { im.FillLoop(); });
    }
  }
  return absl::OkStatus();
}

void PharmacySimulator::Stop() {
  Impl& im = *impl_;
  {
    std::lock_guard lock(im.mu);
    im.stopping = true;
    im.fills_cv.notify_all();
  }
  for (std::thread& t : im.fillers) t.join();
  im.fillers.clear();
  if (im.server) im.server->Stop();
}

int PharmacySimulator::port() const { return impl_->server ? impl_->server->port() : 0; }

std::string PharmacySimulator::url() const {
  return Cat(impl_->options.tls_certificate_file.empty() ? "http" : "https", "://",
             impl_->options.host, ":", port(), "/ncpdp");
}

SimulatorStats PharmacySimulator::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

void PharmacySimulator::OutageFor(std::chrono::milliseconds duration) {
  // At most a day: beyond it the clock's arithmetic would overflow.
  duration = std::clamp<std::chrono::milliseconds>(duration, std::chrono::milliseconds(0),
                                                   std::chrono::hours(24));
  std::lock_guard lock(impl_->mu);
  impl_->outage_until = std::chrono::steady_clock::now() + duration;
}

}  // namespace rxflow::http
