// SPDX-License-Identifier: Apache-2.0
#include "rxflow/runtime/routing.h"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

#include "rxflow/clock.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/runtime/messages.h"
#include "rxflow/script/xml.h"
#include "rxflow/version.h"

namespace rxflow::runtime {

using internal::Cat;
using nlohmann::json;

namespace {

bool Retryable(const Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kDeadlineExceeded ||
         s.code() == absl::StatusCode::kResourceExhausted;
}

}  // namespace

// ---- PharmacyDirectory -------------------------------------------------------------------

StatusOr<PharmacyDirectory> PharmacyDirectory::Parse(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("pharmacy directory: not a JSON object");
  }
  auto list = j.find("pharmacies");
  if (list == j.end() || !list->is_array()) {
    return absl::InvalidArgumentError("pharmacy directory: $.pharmacies must be an array");
  }
  PharmacyDirectory d;
  for (size_t i = 0; i < list->size(); ++i) {
    const json& e = (*list)[i];
    std::string path = Cat("$.pharmacies[", i, "]");
    if (!e.is_object()) return absl::InvalidArgumentError(Cat(path, " must be an object"));
    auto id = e.find("ncpdp_id");
    auto url = e.find("url");
    if (id == e.end() || !id->is_string() || id->get<std::string>().empty()) {
      return absl::InvalidArgumentError(Cat(path, ".ncpdp_id must be a non-empty string"));
    }
    if (url == e.end() || !url->is_string() ||
        (!url->get<std::string>().starts_with("http://") &&
         !url->get<std::string>().starts_with("https://"))) {
      return absl::InvalidArgumentError(Cat(path, ".url must be an http:// or https:// URL"));
    }
    // A NewRx holds PHI: plain HTTP only to this machine, or when the entry says so (a
    // TLS-terminating proxy on the way).
    if (const auto& u = url->get_ref<const std::string&>(); u.starts_with("http://")) {
      std::string host = u.substr(7, u.find_first_of("/?", 7) - 7);
      if (!host.empty() && host.front() == '[') {
        host = host.substr(1, host.find(']') - 1);
      } else {
        host = host.substr(0, host.rfind(':'));
      }
      bool loopback = host == "localhost" || host == "::1" || host.starts_with("127.");
      auto insecure = e.find("insecure_http");
      if (!loopback && (insecure == e.end() || !insecure->is_boolean() || !insecure->get<bool>())) {
        return absl::InvalidArgumentError(
            Cat(path,
                ".url: plain http:// leaves this machine unencrypted; use https:// (or "
                "\"insecure_http\": true behind a TLS-terminating proxy)"));
      }
    }
    d.Add(id->get<std::string>(), url->get<std::string>());
    if (auto tls = e.find("tls"); tls != e.end()) {
      const auto& u = url->get_ref<const std::string&>();
      if (!tls->is_object()) return absl::InvalidArgumentError(Cat(path, ".tls must be an object"));
      if (!u.starts_with("https://")) {
        return absl::InvalidArgumentError(Cat(path, ".tls needs an https:// url"));
      }
      TlsLink link;
      for (auto [name, out] : {std::pair{"certificate", &link.certificate_file},
                               std::pair{"key", &link.key_file}, std::pair{"ca", &link.ca_file}}) {
        if (auto f = tls->find(name); f != tls->end()) {
          if (!f->is_string() || f->get_ref<const std::string&>().empty()) {
            return absl::InvalidArgumentError(
                Cat(path, ".tls.", name, " must be a non-empty file name"));
          }
          *out = f->get<std::string>();
        }
      }
      if (link.certificate_file.empty() != link.key_file.empty()) {
        return absl::InvalidArgumentError(Cat(path, ".tls: certificate and key go together"));
      }
      d.tls_[u] = std::move(link);
    }
  }
  return d;
}

StatusOr<PharmacyDirectory> PharmacyDirectory::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(Cat("pharmacy directory: cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto d = Parse(ss.str());
  if (!d.ok())
    return absl::InvalidArgumentError(Cat(path, ": ", std::string(d.status().message())));
  return d;
}

void PharmacyDirectory::Add(std::string ncpdp_id, std::string url) {
  entries_[std::move(ncpdp_id)] = std::move(url);
}

std::string PharmacyDirectory::Find(std::string_view ncpdp_id) const {
  if (auto it = entries_.find(ncpdp_id); it != entries_.end()) return it->second;
  if (auto it = entries_.find(std::string_view("*")); it != entries_.end()) return it->second;
  return {};
}

// ---- RoutingService ----------------------------------------------------------------------

struct RoutingService::Impl {
  Impl(PrescriptionService& s, messaging::Broker& b, PharmacyDirectory d, PharmacyTransport& t,
       RoutingOptions o, Clock* c)
      : service(s),
        broker(b),
        directory(std::move(d)),
        transport(t),
        options(std::move(o)),
        clock(c ? *c : SystemClock()) {
    service.KeepNewRxForTransmission();  // this process transmits what it submits
  }

  Status Start();
  void Stop();
  Status Handle(const messaging::Message& message);
  CircuitBreaker& BreakerFor(const std::string& pharmacy);
  StatusOr<std::string> Deliver(const std::string& pharmacy, const std::string& url,
                                const std::string& xml, const std::string& traceparent,
                                int& attempts);
  Status DeadLetter(const messaging::Message& message, const std::string& reason, int attempts);
  Status Record(const std::string& message_id, const std::string& id,
                const std::vector<domain::Command>& commands, const RequestContext& ctx,
                std::string_view outcome, const std::function<void(std::string_view)>& observe);
  void SleepUnlessStopping(std::chrono::microseconds d);
  void PollLoop();

  PrescriptionService& service;
  messaging::Broker& broker;
  PharmacyDirectory directory;
  PharmacyTransport& transport;
  RoutingOptions options;
  Clock& clock;
  Observer observer;
  RoutingStats stats;
  std::unique_ptr<messaging::Consumer> consumer;
  std::unique_ptr<messaging::Producer> producer;  // dead.letter
  std::unique_ptr<ShardedWorkerPool> pool;
  std::thread poller;
  std::atomic<bool> polling{false}, stopping{false};
  std::atomic<int64_t> in_flight{0};
  mutable std::mutex breakers_mu;
  std::map<std::string, std::unique_ptr<CircuitBreaker>> breakers;
};

RoutingService::RoutingService(PrescriptionService& service, messaging::Broker& broker,
                               PharmacyDirectory directory, PharmacyTransport& transport,
                               RoutingOptions options, Clock* clock)
    : impl_(std::make_unique<Impl>(service, broker, std::move(directory), transport,
                                   std::move(options), clock)) {}

RoutingService::~RoutingService() { Stop(); }

Status RoutingService::Start() { return impl_->Start(); }

void RoutingService::Stop() { impl_->Stop(); }

Status RoutingService::Handle(const messaging::Message& message) { return impl_->Handle(message); }

void RoutingService::set_observer(Observer o) { impl_->observer = std::move(o); }

const RoutingStats& RoutingService::stats() const { return impl_->stats; }

size_t RoutingService::queued() const { return impl_->pool ? impl_->pool->queued() : 0; }

std::vector<std::pair<std::string, CircuitBreaker::State>> RoutingService::BreakerStates() const {
  std::lock_guard lock(impl_->breakers_mu);
  std::vector<std::pair<std::string, CircuitBreaker::State>> out;
  for (const auto& [id, b] : impl_->breakers) out.emplace_back(id, b->state());
  return out;
}

int64_t RoutingService::BreakerOpenings() const {
  std::lock_guard lock(impl_->breakers_mu);
  int64_t n = 0;
  for (const auto& entry : impl_->breakers) n += entry.second->opened_count();
  return n;
}

Status RoutingService::Impl::Start() {
  if (polling.load()) return absl::OkStatus();
  RXFLOW_ASSIGN_OR_RETURN(producer, broker.NewProducer());
  RXFLOW_ASSIGN_OR_RETURN(consumer,
                          broker.NewConsumer(options.consumer_group,
                                             {std::string(messaging::topics::kRoutingRequests)}));
  pool = std::make_unique<ShardedWorkerPool>(options.workers, options.queue_capacity);
  stopping.store(false);
  polling.store(true);
  poller = std::thread([this] { PollLoop(); });
  return absl::OkStatus();
}

void RoutingService::Impl::PollLoop() {
  while (polling.load()) {
    auto batch = consumer->Poll(options.poll_batch, std::chrono::milliseconds(100));
    if (!batch.ok()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    for (messaging::Message& m : *batch) {
      in_flight.fetch_add(1);
      size_t shard = static_cast<size_t>(std::max(0, m.partition));
      bool queued = pool->Submit(shard, [this, m = std::move(m)] {
        // The offset moves only after the message's effect is durable. A failure (store
        // or broker unavailable) is retried here, in place: committing a later message of
        // this partition would skip this one. Once stopping, nothing more is committed.
        for (int attempt = 1; !stopping.load(); ++attempt) {
          Status s = Handle(m);
          if (s.ok()) {
            if (!consumer->Commit(m).ok()) stats.commit_errors.fetch_add(1);
            break;
          }
          if (s.code() == absl::StatusCode::kCancelled) break;
          stats.handle_errors.fetch_add(1);
          SleepUnlessStopping(BackoffDelay(options.backoff, attempt));
        }
        in_flight.fetch_sub(1);
      });
      if (!queued) in_flight.fetch_sub(1);
    }
  }
}

void RoutingService::Impl::Stop() {
  if (!polling.exchange(false)) return;
  // Let the workers finish what they hold, up to the deadline; then abandon retries
  // (stopping), which also releases a poller blocked on a full queue (Drain).
  auto deadline = std::chrono::steady_clock::now() + options.drain_timeout;
  while (in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stopping.store(true);
  pool->Drain();
  if (poller.joinable()) poller.join();
  consumer->Close();
}

void RoutingService::Impl::SleepUnlessStopping(std::chrono::microseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  while (!stopping.load() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(
        std::min<std::chrono::microseconds>(d, std::chrono::milliseconds(10)));
  }
}

CircuitBreaker& RoutingService::Impl::BreakerFor(const std::string& pharmacy) {
  std::lock_guard lock(breakers_mu);
  auto& b = breakers[pharmacy];
  if (!b) b = std::make_unique<CircuitBreaker>(options.breaker, &clock);
  return *b;
}

StatusOr<std::string> RoutingService::Impl::Deliver(const std::string& pharmacy,
                                                    const std::string& url, const std::string& xml,
                                                    const std::string& traceparent, int& attempts) {
  CircuitBreaker& breaker = BreakerFor(pharmacy);
  auto sleep = [&](std::chrono::microseconds d) { SleepUnlessStopping(d); };
  for (;;) {
    if (stopping.load()) return absl::CancelledError("routing is stopping");
    if (!breaker.Allow()) {  // open: wait for the probe window; not an attempt
      sleep(std::chrono::microseconds(std::max<int64_t>(1000, breaker.RetryInMicros())));
      continue;
    }
    ++attempts;
    auto reply = transport.Post(url, xml, traceparent);
    if (reply.ok()) {
      breaker.RecordSuccess();
      stats.sent.fetch_add(1);
      return reply;
    }
    if (!Retryable(reply.status())) {
      breaker.RecordSuccess();  // the pharmacy answered: it is up, it refused this message
      return reply;
    }
    stats.transport_errors.fetch_add(1);
    breaker.RecordFailure();
    if (attempts >= options.max_attempts) return reply;
    sleep(BackoffDelay(options.backoff, attempts));
  }
}

Status RoutingService::Impl::DeadLetter(const messaging::Message& message,
                                        const std::string& reason, int attempts) {
  messaging::Message dl;
  dl.topic = std::string(messaging::topics::kDeadLetter);
  dl.key = message.key;
  json body = {{"topic", message.topic}, {"reason", reason}, {"attempts", attempts}};
  json original = json::parse(message.payload, nullptr, false);
  body["request"] = original.is_discarded() ? json(message.payload) : original;
  dl.payload = body.dump();
  dl.headers = message.headers;
  Status s = producer->Publish({&dl, 1});
  if (s.ok()) stats.dead_lettered.fetch_add(1);
  return s;
}

Status RoutingService::Impl::Handle(const messaging::Message& message) {
  const std::string message_id(message.Header(messaging::kMessageIdHeader));
  const std::string& id = message.key;
  RequestContext ctx;
  ctx.actor = "routing-service";
  ctx.traceparent = std::string(message.Header(messaging::kTraceparentHeader));
  auto request = RoutingRequest::Decode(message.payload);
  if (message_id.empty() || id.empty() || !request.ok()) {
    return DeadLetter(message,
                      request.ok() ? "routing request without a message id or key"
                                   : std::string(request.status().message()),
                      0);
  }
  const bool send = request->action == RoutingRequest::Action::kSend;
  const std::string_view action = ActionName(request->action);
  auto p = service.ForTransmission(id);
  if (!p.ok()) {
    if (p.status().code() == absl::StatusCode::kNotFound) {
      return DeadLetter(message, std::string(p.status().message()), 0);
    }
    return p.status();
  }
  const domain::State expected = send ? domain::State::kQueued : domain::State::kCancelRequested;
  if (p->state.state != expected) {  // an earlier delivery of this request got through
    stats.duplicates.fetch_add(1);
    return absl::OkStatus();
  }
  const std::string pharmacy = p->state.pharmacy_ncpdp_id;
  auto seconds = [&] {
    return static_cast<double>(clock.NowMicros() - p->accepted_at_micros) / 1e6;
  };
  std::string code;
  auto observe = [&](std::string_view outcome) {
    if (observer) observer(pharmacy, outcome, code, seconds());
  };
  std::vector<domain::Command> commands;
  if (!send && p->state.send_attempts == 0) {
    // Cancelled before the NewRx ever went out: nothing at the pharmacy to cancel.
    commands.emplace_back(domain::RecordCancelResponse{true, "cancelled before transmission"});
    return Record(message_id, id, commands, ctx, "CancelledUnsent", observe);
  }
  const std::string url = directory.Find(pharmacy);
  int attempts = 0;
  StatusOr<std::string> reply = absl::NotFoundError(Cat("no endpoint for pharmacy ", pharmacy));
  StatusOr<std::string> xml = send ? StatusOr<std::string>(std::move(p->newrx_xml))
                                   : service.OutboundXml(id, "cancel", request->cancel_message_id);
  if (xml.ok() && xml->empty()) {
    xml = absl::FailedPreconditionError(
        "no NewRx stored (never written, or erased with the patient's data key)");
  }
  if (!xml.ok()) return DeadLetter(message, std::string(xml.status().message()), 0);
  if (!url.empty()) {
    // The pharmacy call is a child span of the request that caused it.
    const obs::TraceContext* parent = nullptr;
    auto parsed = obs::ParseTraceparent(ctx.traceparent);
    if (parsed.ok()) parent = &*parsed;
    obs::ScopedSpan span(options.tracer, Cat("POST pharmacy ", action), parent,
                         obs::SpanKind::kClient);
    span.SetAttribute("rxflow.pharmacy", pharmacy);
    reply = Deliver(pharmacy, url, *xml, obs::FormatTraceparent(span.context()), attempts);
    span.SetAttribute("rxflow.attempts", std::to_string(attempts));
    if (!reply.ok()) span.SetError(std::string(reply.status().message()));
  }
  if (reply.status().code() == absl::StatusCode::kCancelled) return reply.status();

  std::string outcome;
  if (!reply.ok()) {
    std::string reason =
        Cat(std::string(reply.status().message()), " after ", attempts, " attempt(s)");
    RXFLOW_RETURN_IF_ERROR(DeadLetter(message, reason, attempts));
    if (send) {
      domain::RecordError failed;
      failed.code = "600";  // communication problem
      failed.description = reason;
      failed.retryable = false;
      commands.emplace_back(std::move(failed));
    } else {  // the CancelRx never arrived: the prescription stands as it was
      commands.emplace_back(
          domain::RecordCancelResponse{false, "CancelRx not delivered: " + reason});
    }
    outcome = "DeadLetter";
  } else {
    if (send) commands.emplace_back(domain::MarkSent{});
    IssueList issues;
    auto answer = script::ReadXml(*reply, issues);
    if (answer.ok()) {
      outcome = script::TransactionName(answer->body);
      if (const auto* st = std::get_if<script::Status>(&answer->body)) code = st->code;
      if (const auto* v = std::get_if<script::Verify>(&answer->body)) code = v->code;
      if (const auto* e = std::get_if<script::Error>(&answer->body)) code = e->code;
      if (send) {
        if (auto command = PharmacyResponseCommand(*answer); command.ok()) {
          commands.push_back(std::move(*command));
        }
      } else if (std::holds_alternative<script::CancelRxResponse>(answer->body)) {
        commands.push_back(*PharmacyResponseCommand(*answer));
      } else if (const auto* e = std::get_if<script::Error>(&answer->body)) {
        commands.emplace_back(domain::RecordCancelResponse{
            false, Cat("CancelRx refused: Error ", e->code, " ", e->description)});
      }
      // A Status to a CancelRx is a receipt: the CancelRxResponse comes later (inbound).
    } else {
      outcome = "NoAnswer";  // sent; the answer was not a SCRIPT message
    }
  }
  return Record(message_id, id, commands, ctx, outcome, observe);
}

Status RoutingService::Impl::Record(const std::string& message_id, const std::string& id,
                                    const std::vector<domain::Command>& commands,
                                    const RequestContext& ctx, std::string_view outcome,
                                    const std::function<void(std::string_view)>& observe) {
  Status s = service.ExecuteOnce(options.consumer_name, message_id, id, commands, ctx);
  if (s.code() == absl::StatusCode::kAlreadyExists) {
    stats.duplicates.fetch_add(1);
    return absl::OkStatus();
  }
  if (s.code() == absl::StatusCode::kFailedPrecondition) {
    // The prescription moved on meanwhile (a cancel completed, ...): the answer no longer
    // fits. Counted apart from duplicates; the request is done.
    stats.stale.fetch_add(1);
    return absl::OkStatus();
  }
  RXFLOW_RETURN_IF_ERROR(s);
  stats.handled.fetch_add(1);
  observe(outcome);
  return absl::OkStatus();
}

StatusOr<size_t> RedriveRouting(PrescriptionService& service, messaging::Producer& producer) {
  static constexpr domain::State kWaiting[] = {domain::State::kQueued,
                                               domain::State::kCancelRequested};
  RXFLOW_ASSIGN_OR_RETURN(std::vector<PrescriptionSummary> waiting,
                          service.ListProjected(kWaiting));
  std::vector<messaging::Message> batch;
  for (const PrescriptionSummary& s : waiting) {
    RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> records, service.History(s.id));
    // The event that asked for this routing (the last one whose messages include a routing
    // request), derived again as the relay derived it: same message id, same payload.
    for (auto r = records.rbegin(); r != records.rend(); ++r) {
      RXFLOW_ASSIGN_OR_RETURN(std::vector<messaging::Message> derived,
                              DeriveMessages(*r, service.upcasters()));
      auto route = std::find_if(derived.begin(), derived.end(), [](const messaging::Message& m) {
        return m.topic == messaging::topics::kRoutingRequests;
      });
      if (route == derived.end()) continue;
      batch.push_back(std::move(*route));
      break;
    }
  }
  if (batch.empty()) return size_t{0};
  RXFLOW_RETURN_IF_ERROR(producer.Publish(batch));
  return batch.size();
}

// ---- PharmacyInbox -----------------------------------------------------------------------

StatusOr<PharmacyInbox::Result> PharmacyInbox::Receive(std::string_view xml, IssueList& issues,
                                                       const ReceiveOptions& options) {
  const RequestContext& ctx = options.context;
  const std::vector<std::string>* speaks_for = options.speaks_for;
  script::ReadOptions ro;
  ro.profile = profile_;
  ro.lenient = true;  // every issue of the message, for the sender's answer
  ro.charset = options.charset;
  RXFLOW_ASSIGN_OR_RETURN(script::Message message, script::ReadXml(xml, issues, ro));
  if (issues.has_errors()) {
    for (const Issue& i : issues) {
      if (i.severity == Severity::kError || i.severity == Severity::kFatal) {
        return absl::InvalidArgumentError(
            Cat("SCRIPT message is invalid: ", i.path, ": ", i.message));
      }
    }
  }
  RXFLOW_ASSIGN_OR_RETURN(domain::Command command, PharmacyResponseCommand(message));
  const script::Header& h = message.header;
  if (h.relates_to_message_id.empty()) {
    issues.Error("/Message/Header/RelatesToMessageID", IssueCode::kRequired,
                 "required: it names the NewRx or CancelRx this message answers");
    return absl::InvalidArgumentError("Header/RelatesToMessageID is required");
  }
  if (speaks_for != nullptr &&
      std::find(speaks_for->begin(), speaks_for->end(), "*") == speaks_for->end() &&
      std::find(speaks_for->begin(), speaks_for->end(), h.from) == speaks_for->end()) {
    issues.Error("/Message/Header/From", IssueCode::kSecurity,
                 Cat("pharmacy ", h.from, " is not one this client speaks for"));
    return absl::PermissionDeniedError(
        Cat("Header/From: pharmacy ", h.from, " is not one this client speaks for"));
  }
  RXFLOW_ASSIGN_OR_RETURN(std::string id, service_.FindByMessageId(h.relates_to_message_id));
  Result r;
  r.prescription_id = id;
  r.transaction = std::string(script::TransactionName(message.body));
  RequestContext spoke = ctx;
  spoke.actor = Cat(ctx.actor, "/ncpdp:", h.from);
  // Only the pharmacy the prescription was sent to answers for it: checked in the
  // transaction that records the answer, against the state it meets.
  bool other_pharmacy = false;
  auto sent_to_sender = [&](const domain::PrescriptionState& routed) -> Status {
    if (routed.pharmacy_ncpdp_id == h.from) return absl::OkStatus();
    other_pharmacy = true;
    return absl::PermissionDeniedError(
        Cat("Header/From: the prescription was not sent to pharmacy ", h.from));
  };
  // MessageIDs are unique per sender, not across senders: deduplicate per pharmacy.
  Status s = service_.ExecuteOnce(kConsumer, Cat(h.from, "/", h.message_id), id, {&command, 1},
                                  spoke, sent_to_sender);
  if (other_pharmacy) {
    issues.Error("/Message/Header/From", IssueCode::kSecurity,
                 Cat("the prescription was not sent to pharmacy ", h.from));
    return s;
  }
  if (s.code() == absl::StatusCode::kAlreadyExists) {
    r.duplicate = true;
    return r;
  }
  if (s.code() == absl::StatusCode::kFailedPrecondition) {
    // The pharmacy can answer before routing has recorded the NewRx as sent: that is a
    // race to wait out (Unavailable: retry), not a refusal.
    if (auto state = service_.Load(id); state.ok() && state->state == domain::State::kQueued) {
      return absl::UnavailableError(
          Cat("prescription ", id, " is being sent; retry this message shortly"));
    }
  }
  RXFLOW_RETURN_IF_ERROR(s);
  return r;
}

std::string PharmacyInbox::ErrorReply(std::string_view xml, const Status& status,
                                      const IssueList& issues, std::string_view charset) const {
  IssueList ignored;
  script::ReadOptions ro;
  ro.charset = charset;
  auto in = script::ReadHeader(xml, ignored, ro);
  if (!in.ok() || in->from.empty() || in->to.empty() || in->message_id.empty()) return {};
  script::Message answer;
  script::Header& h = answer.header;
  h.to = in->from;
  h.to_qualifier = in->from_qualifier.empty() ? "P" : in->from_qualifier;
  h.from = in->to;
  h.from_qualifier = in->to_qualifier.empty() ? "D" : in->to_qualifier;
  h.message_id = RandomIds().NewId();  // time-ordered, as every MessageID RxFlow makes
  h.relates_to_message_id = in->message_id;
  h.sent_time = FormatRfc3339(SystemClock().NowMicros());
  h.sender_software_developer = "RxFlow";
  h.sender_software_product = "RxFlow";
  h.sender_software_version_release = RXFLOW_VERSION_STRING;
  script::Error e;
  const Issue* first = nullptr;
  for (const Issue& i : issues) {
    if (i.severity == Severity::kError || i.severity == Severity::kFatal) {
      first = &i;
      break;
    }
  }
  switch (status.code()) {
    case absl::StatusCode::kUnimplemented:
      e.code = "900";
      e.description_code = {"4040"};  // receiver does not support this transaction
      break;
    case absl::StatusCode::kNotFound:
      e.code = "900";
      e.description_code = {"1000"};  // unable to identify based on information submitted
      break;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
      e.code = "602";  // receiver system error: retry
      break;
    case absl::StatusCode::kFailedPrecondition:
      e.code = "900";
      e.description_code = {"2000"};  // content invalid for the context
      break;
    default:
      e.code = "900";
      // 500 (XML syntax error) when the XML itself is broken, else 3000 (violates the
      // standard), each with the path of the problem in Description.
      e.description_code = {first && first->severity == Severity::kFatal ? "500" : "3000"};
  }
  std::string text = first ? Cat(first->path, ": ", first->message) : std::string(status.message());
  // Description is SCRIPT `an`: printable ASCII; RxFlow's messages use a few UTF-8 marks.
  std::string description;
  for (size_t k = 0; k < text.size() && description.size() < 255; ++k) {
    auto c = static_cast<unsigned char>(text[k]);
    if (c >= 0x20 && c < 0x7F) {
      description += static_cast<char>(c);
    } else if (c >= 0xC0 && (description.empty() || description.back() != '?')) {
      description += '?';
    }
  }
  while (!description.empty() && description.back() == ' ') description.pop_back();
  e.description = description;
  answer.body = std::move(e);
  script::WriteOptions wo;
  wo.profile = profile_ != nullptr ? profile_ : &script::BuiltinProfile(script::Version::k2017071);
  IssueList write_issues;
  auto out = script::WriteXml(answer, write_issues, wo);
  return out.ok() ? *out : std::string();
}

}  // namespace rxflow::runtime
