#include "rxflow/runtime/routing.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "rxflow/runtime/messages.h"
#include "rxflow/script/xml.h"

#include "common/strcat.h"

namespace rxflow::runtime {

using internal::Cat;
using nlohmann::json;

namespace {

bool Retryable(const Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kDeadlineExceeded ||
         s.code() == absl::StatusCode::kResourceExhausted;
}

// The prescription as routing needs it: state, stored NewRx, when it was accepted.
struct Prescription {
  domain::PrescriptionState state;
  std::string newrx_xml;  // as stored when it was transformed
  int64_t accepted_at = 0;
};

StatusOr<Prescription> LoadPrescription(PrescriptionService& service, const std::string& id) {
  auto records = service.History(id);
  if (!records.ok()) return records.status();
  std::vector<domain::Event> events;
  events.reserve(records->size());
  for (const store::EventRecord& r : *records) {
    auto e = domain::DecodeEvent(r.type, r.schema_version, r.payload);
    if (!e.ok()) return e.status();
    events.push_back(std::move(*e));
  }
  Prescription p;
  for (domain::Event& e : events) {
    if (auto* t = std::get_if<domain::PrescriptionTransformed>(&e))
      p.newrx_xml = std::move(t->newrx_xml);
  }
  p.state = domain::Replay(events);
  p.accepted_at = records->front().occurred_at;
  return p;
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
        (url->get<std::string>().rfind("http://", 0) != 0 &&
         url->get<std::string>().rfind("https://", 0) != 0)) {
      return absl::InvalidArgumentError(Cat(path, ".url must be an http:// or https:// URL"));
    }
    d.Add(id->get<std::string>(), url->get<std::string>());
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

RoutingService::RoutingService(PrescriptionService& service, messaging::Broker& broker,
                               PharmacyDirectory directory, PharmacyTransport& transport,
                               RoutingOptions options, Clock* clock)
    : service_(service),
      broker_(broker),
      directory_(std::move(directory)),
      transport_(transport),
      options_(std::move(options)),
      clock_(clock ? *clock : SystemClock()) {}

RoutingService::~RoutingService() { Stop(); }

Status RoutingService::Start() {
  if (polling_.load()) return absl::OkStatus();
  auto producer = broker_.NewProducer();
  if (!producer.ok()) return producer.status();
  producer_ = std::move(*producer);
  auto consumer = broker_.NewConsumer(options_.consumer_group,
                                      {std::string(messaging::topics::kRoutingRequests)});
  if (!consumer.ok()) return consumer.status();
  consumer_ = std::move(*consumer);
  pool_ = std::make_unique<ShardedWorkerPool>(options_.workers, options_.queue_capacity);
  stopping_.store(false);
  polling_.store(true);
  poller_ = std::thread([this] { PollLoop(); });
  return absl::OkStatus();
}

void RoutingService::PollLoop() {
  while (polling_.load()) {
    auto batch = consumer_->Poll(options_.poll_batch, std::chrono::milliseconds(100));
    if (!batch.ok()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    for (messaging::Message& m : *batch) {
      in_flight_.fetch_add(1);
      size_t shard = static_cast<size_t>(std::max(0, m.partition));
      bool queued = pool_->Submit(shard, [this, m = std::move(m)] {
        // The offset moves only after the message's effect is durable. A failure (store
        // or broker unavailable) is retried here, in place: committing a later message of
        // this partition would skip this one. Once stopping, nothing more is committed.
        for (int attempt = 1; !stopping_.load(); ++attempt) {
          Status s = Handle(m);
          if (s.ok()) {
            if (!consumer_->Commit(m).ok()) stats_.commit_errors.fetch_add(1);
            break;
          }
          if (s.code() == absl::StatusCode::kCancelled) break;
          stats_.handle_errors.fetch_add(1);
          SleepUnlessStopping(BackoffDelay(options_.backoff, attempt));
        }
        in_flight_.fetch_sub(1);
      });
      if (!queued) in_flight_.fetch_sub(1);
    }
  }
}

void RoutingService::Stop() {
  if (!polling_.exchange(false)) return;
  // Let the workers finish what they hold, up to the deadline; then abandon retries
  // (stopping_), which also releases a poller blocked on a full queue (Drain).
  auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
  while (in_flight_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stopping_.store(true);
  pool_->Drain();
  if (poller_.joinable()) poller_.join();
  consumer_->Close();
}

void RoutingService::SleepUnlessStopping(std::chrono::microseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  while (!stopping_.load() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(
        std::min<std::chrono::microseconds>(d, std::chrono::milliseconds(10)));
  }
}

size_t RoutingService::queued() const { return pool_ ? pool_->queued() : 0; }

CircuitBreaker& RoutingService::BreakerFor(const std::string& pharmacy) {
  std::lock_guard lock(breakers_mu_);
  auto& b = breakers_[pharmacy];
  if (!b) b = std::make_unique<CircuitBreaker>(options_.breaker, &clock_);
  return *b;
}

std::vector<std::pair<std::string, CircuitBreaker::State>> RoutingService::BreakerStates() const {
  std::lock_guard lock(breakers_mu_);
  std::vector<std::pair<std::string, CircuitBreaker::State>> out;
  for (const auto& [id, b] : breakers_) out.emplace_back(id, b->state());
  return out;
}

StatusOr<std::string> RoutingService::Deliver(const std::string& pharmacy, const std::string& url,
                                              const std::string& xml,
                                              const std::string& traceparent, int& attempts) {
  CircuitBreaker& breaker = BreakerFor(pharmacy);
  auto sleep = [&](std::chrono::microseconds d) { SleepUnlessStopping(d); };
  for (;;) {
    if (stopping_.load()) return absl::CancelledError("routing is stopping");
    if (!breaker.Allow()) {  // open: wait for the probe window; not an attempt
      sleep(std::chrono::microseconds(std::max<int64_t>(1000, breaker.RetryInMicros())));
      continue;
    }
    ++attempts;
    auto reply = transport_.Post(url, xml, traceparent);
    if (reply.ok()) {
      breaker.RecordSuccess();
      stats_.sent.fetch_add(1);
      return reply;
    }
    if (!Retryable(reply.status())) {
      breaker.RecordSuccess();  // the pharmacy answered: it is up, it refused this message
      return reply;
    }
    stats_.transport_errors.fetch_add(1);
    breaker.RecordFailure();
    if (attempts >= options_.max_attempts) return reply;
    sleep(BackoffDelay(options_.backoff, attempts));
  }
}

Status RoutingService::DeadLetter(const messaging::Message& message, const std::string& reason,
                                  int attempts) {
  messaging::Message dl;
  dl.topic = std::string(messaging::topics::kDeadLetter);
  dl.key = message.key;
  json body = {{"topic", message.topic}, {"reason", reason}, {"attempts", attempts}};
  json original = json::parse(message.payload, nullptr, false);
  body["request"] = original.is_discarded() ? json(message.payload) : original;
  dl.payload = body.dump();
  dl.headers = message.headers;
  Status s = producer_->Publish({&dl, 1});
  if (s.ok()) stats_.dead_lettered.fetch_add(1);
  return s;
}

Status RoutingService::Handle(const messaging::Message& message) {
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
  auto p = LoadPrescription(service_, id);
  if (!p.ok()) {
    if (p.status().code() == absl::StatusCode::kNotFound) {
      return DeadLetter(message, std::string(p.status().message()), 0);
    }
    return p.status();
  }
  const domain::State expected = send ? domain::State::kQueued : domain::State::kCancelRequested;
  if (p->state.state != expected) {  // an earlier delivery of this request got through
    stats_.duplicates.fetch_add(1);
    return absl::OkStatus();
  }
  const std::string pharmacy = p->state.pharmacy_ncpdp_id;
  auto seconds = [&] { return static_cast<double>(clock_.NowMicros() - p->accepted_at) / 1e6; };
  std::string code;
  auto observe = [&](std::string_view outcome) {
    if (observer_) observer_(pharmacy, outcome, code, seconds());
  };
  std::vector<domain::Command> commands;
  if (!send && p->state.send_attempts == 0) {
    // Cancelled before the NewRx ever went out: nothing at the pharmacy to cancel.
    commands.push_back(domain::RecordCancelResponse{true, "cancelled before transmission"});
    return Record(message_id, id, commands, ctx, "CancelledUnsent", observe);
  }
  const std::string url = directory_.Find(pharmacy);
  int attempts = 0;
  StatusOr<std::string> reply = absl::NotFoundError(Cat("no endpoint for pharmacy ", pharmacy));
  StatusOr<std::string> xml = send ? StatusOr<std::string>(std::move(p->newrx_xml))
                                   : service_.OutboundXml(id, "cancel", request->cancel_message_id);
  if (xml.ok() && xml->empty()) xml = absl::FailedPreconditionError("no NewRx stored");
  if (!xml.ok()) return DeadLetter(message, std::string(xml.status().message()), 0);
  if (!url.empty()) {
    // The pharmacy call is a child span of the request that caused it.
    const obs::TraceContext* parent = nullptr;
    auto parsed = obs::ParseTraceparent(ctx.traceparent);
    if (parsed.ok()) parent = &*parsed;
    obs::ScopedSpan span(options_.tracer, Cat("POST pharmacy ", action), parent,
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
    if (Status s = DeadLetter(message, reason, attempts); !s.ok()) return s;
    if (send) {
      domain::RecordError failed;
      failed.code = "600";  // communication problem
      failed.description = reason;
      failed.retryable = false;
      commands.push_back(std::move(failed));
    } else {  // the CancelRx never arrived: the prescription stands as it was
      commands.push_back(domain::RecordCancelResponse{false, "CancelRx not delivered: " + reason});
    }
    outcome = "DeadLetter";
  } else {
    if (send) commands.push_back(domain::MarkSent{});
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
        commands.push_back(domain::RecordCancelResponse{
            false, Cat("CancelRx refused: Error ", e->code, " ", e->description)});
      }
      // A Status to a CancelRx is a receipt: the CancelRxResponse comes later (inbound).
    } else {
      outcome = "NoAnswer";  // sent; the answer was not a SCRIPT message
    }
  }
  return Record(message_id, id, commands, ctx, outcome, observe);
}

Status RoutingService::Record(const std::string& message_id, const std::string& id,
                              const std::vector<domain::Command>& commands,
                              const RequestContext& ctx, std::string_view outcome,
                              const std::function<void(std::string_view)>& observe) {
  Status s = service_.ExecuteOnce(options_.consumer_name, message_id, id, commands, ctx);
  if (s.code() == absl::StatusCode::kAlreadyExists) {
    stats_.duplicates.fetch_add(1);
    return absl::OkStatus();
  }
  if (s.code() == absl::StatusCode::kFailedPrecondition) {
    // The prescription moved on meanwhile (a cancel completed, ...): the answer no longer
    // fits. Counted apart from duplicates; the request is done.
    stats_.stale.fetch_add(1);
    return absl::OkStatus();
  }
  if (!s.ok()) return s;
  stats_.handled.fetch_add(1);
  observe(outcome);
  return absl::OkStatus();
}

StatusOr<size_t> RedriveRouting(PrescriptionService& service, messaging::Producer& producer) {
  static constexpr std::string_view kWaiting[] = {"Queued", "CancelRequested"};
  auto waiting = service.ListProjected(kWaiting);
  if (!waiting.ok()) return waiting.status();
  std::vector<messaging::Message> batch;
  for (const PrescriptionSummary& s : *waiting) {
    auto records = service.History(s.id);
    if (!records.ok()) return records.status();
    // The event that asked for this routing (the last one whose messages include a routing
    // request), derived again as the relay derived it: same message id, same payload.
    for (auto r = records->rbegin(); r != records->rend(); ++r) {
      auto derived = DeriveMessages(*r);
      if (!derived.ok()) return derived.status();
      auto route = std::find_if(derived->begin(), derived->end(), [](const messaging::Message& m) {
        return m.topic == messaging::topics::kRoutingRequests;
      });
      if (route == derived->end()) continue;
      batch.push_back(std::move(*route));
      break;
    }
  }
  if (batch.empty()) return size_t{0};
  if (Status st = producer.Publish(batch); !st.ok()) return st;
  return batch.size();
}

// ---- PharmacyInbox -----------------------------------------------------------------------

StatusOr<PharmacyInbox::Result> PharmacyInbox::Receive(std::string_view xml, IssueList& issues,
                                                       const RequestContext& ctx) {
  script::ReadOptions ro;
  ro.profile = profile_;
  auto message = script::ReadXml(xml, issues, ro);
  if (!message.ok()) return message.status();
  auto command = PharmacyResponseCommand(*message);
  if (!command.ok()) return command.status();
  const script::Header& h = message->header;
  if (h.relates_to_message_id.empty()) {
    issues.Error("/Message/Header/RelatesToMessageID", IssueCode::kRequired,
                 "required: it names the NewRx or CancelRx this message answers");
    return absl::InvalidArgumentError("Header/RelatesToMessageID is required");
  }
  auto id = service_.FindByMessageId(h.relates_to_message_id);
  if (!id.ok()) return id.status();
  Result r;
  r.prescription_id = *id;
  r.transaction = std::string(script::TransactionName(message->body));
  Status s = service_.ExecuteOnce(kConsumer, h.message_id, *id, {&*command, 1}, ctx);
  if (s.code() == absl::StatusCode::kAlreadyExists) {
    r.duplicate = true;
    return r;
  }
  if (s.code() == absl::StatusCode::kFailedPrecondition) {
    // The pharmacy can answer before routing has recorded the NewRx as sent: that is a
    // race to wait out (Unavailable: retry), not a refusal.
    if (auto state = service_.Load(*id); state.ok() && state->state == domain::State::kQueued) {
      return absl::UnavailableError(
          Cat("prescription ", *id, " is being sent; retry this message shortly"));
    }
  }
  if (!s.ok()) return s;
  return r;
}

}  // namespace rxflow::runtime
