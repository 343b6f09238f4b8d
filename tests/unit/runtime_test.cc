// SPDX-License-Identifier: Apache-2.0
// The runtime: circuit breaker, backoff, worker pool, outbox relay, routing (against the
// real HTTP pharmacy simulator), the pharmacy inbox, and the pharmacy directory.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <doctest/doctest.h>

#include "rxflow/messaging/broker.h"
#include "rxflow/runtime/messages.h"
#include "rxflow/runtime/outbox_relay.h"
#include "rxflow/runtime/resilience.h"
#include "rxflow/runtime/routing.h"
#include "rxflow/script/xml.h"
#include "rxflow/service.h"
#include "rxflow/transform.h"

#include "testing/files.h"
#include "testing/status.h"
#ifdef RXFLOW_TEST_HAVE_HTTP
#include <httplib.h>

#include "rxflow/http/servers.h"

#include "http_server.h"
#endif

using namespace rxflow;
using namespace std::chrono_literals;

namespace {

constexpr const char* kKey = "test-patient-key-0123456789abcdef";

std::string Lisinopril() { return testing::ReadFixture("fhir/medication_request_lisinopril.json"); }

// Waits until `done` holds or `limit` passes; returns whether it holds.
template <typename F>
bool Eventually(F done, std::chrono::milliseconds limit = 30s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return done();
}

#ifdef RXFLOW_TEST_HAVE_HTTP
// A loopback endpoint for the simulator's RxFill callbacks, POST /inbound, on the project's
// own HTTP server (built with the tests' sanitizers, unlike the system's cpp-httplib, whose
// uninstrumented internals ThreadSanitizer cannot see synchronise).
class CallbackEndpoint {
 public:
  using Handler = std::function<int(const std::string& body)>;  // the status to answer
  explicit CallbackEndpoint(Handler handler)
      : server_(
            http::internal::ServerLimits{},
            [h = std::move(handler)](http::internal::HttpRequest& q,
                                     http::internal::HttpResponse& r) {
              r.status = q.method == "POST" && q.path == "/inbound" ? h(q.body) : 404;
            },
            [](const http::internal::HttpRequest&, int status, const std::string&,
               http::internal::HttpResponse& r) { r.status = status; }) {
    RXFLOW_REQUIRE_OK(server_.Start("127.0.0.1", 0));
  }
  ~CallbackEndpoint() { server_.Stop(); }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(server_.port()) + "/inbound";
  }

 private:
  http::internal::HttpServer server_;
};

// The simulator, its fills due at once to `callback` over `connections` connections.
http::SimulatorOptions FillsTo(const CallbackEndpoint& callback, int connections) {
  http::SimulatorOptions so;
  so.callback_url = callback.url();
  so.fill_after = 0ms;
  so.fill_connections = connections;
  return so;
}

// Posts the lisinopril NewRx RxFlow writes, under `message_id`, to the simulator; its XML.
std::string PostNewRx(httplib::Client& simulator, const std::string& message_id) {
  IssueList issues;
  TransformOptions to;
  to.newrx.message_id = message_id;
  auto out = ToScript(Lisinopril(), issues, to);
  RXFLOW_REQUIRE_OK(out);
  auto res = simulator.Post("/ncpdp", out->xml, "application/xml");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.find("<Status>") != std::string::npos);
  return out->xml;
}
#endif

struct World {
  std::unique_ptr<store::Store> store = store::NewMemoryStore(SystemClock());
  std::unique_ptr<PrescriptionService> service;
  std::unique_ptr<messaging::Broker> broker = messaging::NewInProcessBroker();
  explicit World(bool route_on_submit = true) {
    ServiceOptions o;
    o.patient_key = kKey;
    o.route_on_submit = route_on_submit;
    service = std::move(*PrescriptionService::Create(*store, o));
  }
  std::string Submit(const std::string& client_key) {
    IssueList issues;
    auto s = service->Submit(Lisinopril(), issues, {}, client_key);
    RXFLOW_REQUIRE_OK(s);
    return s->id;
  }
  // Submitted, then recorded as sent and acknowledged (Status 000), as routing records it.
  std::string SubmitAndSend(const std::string& client_key) {
    std::string id = Submit(client_key);
    std::vector<domain::Command> sent{domain::MarkSent{}, domain::RecordStatus{"000", ""}};
    RXFLOW_REQUIRE_OK(service->ExecuteOnce("routing", "m1", id, sent));
    return id;
  }
};

// A transport that answers from a script of outcomes (the unit tests of retry and breaker
// logic; the HTTP transport is tested against the simulator below).
class ScriptedTransport : public runtime::PharmacyTransport {
 public:
  std::atomic<int> calls{0};
  std::atomic<int> fail_first{0};  // this many calls fail Unavailable
  bool refuse = false;             // answer 4xx
  std::string answer = testing::ReadFixture("script/status_000.xml");
  StatusOr<std::string> Post(const std::string&, std::string_view, std::string_view) override {
    int n = ++calls;
    if (refuse) return absl::FailedPreconditionError("HTTP 400");
    if (n <= fail_first.load()) return absl::UnavailableError("connection refused");
    return answer;
  }
};

}  // namespace

TEST_SUITE("Runtime") {
  TEST_CASE(
      "circuit breaker: opens after the threshold, half-opens after the wait, closes on success") {
    FakeClock clock;
    runtime::CircuitBreakerOptions o;
    o.failure_threshold = 3;
    o.open_for = 1000ms;
    runtime::CircuitBreaker b(o, &clock);
    CHECK(b.Allow());
    b.RecordFailure();
    b.RecordFailure();
    CHECK(b.state() == runtime::CircuitBreaker::State::kClosed);
    b.RecordFailure();
    CHECK(b.state() == runtime::CircuitBreaker::State::kOpen);
    CHECK_FALSE(b.Allow());
    CHECK(b.RetryInMicros() == 1'000'000);
    clock.Advance(999'999);
    CHECK_FALSE(b.Allow());
    clock.Advance(1);
    CHECK(b.Allow());  // the one probe
    CHECK(b.state() == runtime::CircuitBreaker::State::kHalfOpen);
    CHECK_FALSE(b.Allow());  // only one at a time
    b.RecordFailure();       // probe failed: open again
    CHECK(b.state() == runtime::CircuitBreaker::State::kOpen);
    clock.Advance(1'000'000);
    CHECK(b.Allow());
    b.RecordSuccess();
    CHECK(b.state() == runtime::CircuitBreaker::State::kClosed);
    CHECK(b.opened_count() == 2);
  }

  TEST_CASE("a success resets the consecutive-failure count") {
    runtime::CircuitBreakerOptions o;
    o.failure_threshold = 2;
    runtime::CircuitBreaker b(o);
    b.RecordFailure();
    b.RecordSuccess();
    b.RecordFailure();
    CHECK(b.state() == runtime::CircuitBreaker::State::kClosed);
  }

  TEST_CASE("backoff: full jitter within an exponentially growing, capped window") {
    runtime::BackoffOptions o{100ms, 1000ms, 2.0};
    for (int i = 0; i < 200; ++i) {
      CHECK(runtime::BackoffDelay(o, 1) <= 100ms);
      CHECK(runtime::BackoffDelay(o, 3) <= 400ms);
      CHECK(runtime::BackoffDelay(o, 30) <= 1000ms);
    }
    // Jitter: not every delay is the same.
    std::set<int64_t> seen;
    for (int i = 0; i < 20; ++i) seen.insert(runtime::BackoffDelay(o, 4).count());
    CHECK(seen.size() > 10);
  }

  TEST_CASE("worker pool: a shard's tasks run in order, Submit blocks when the queue is full") {
    runtime::ShardedWorkerPool pool(3, 2);
    std::mutex mu;
    std::map<size_t, std::vector<int>> order;
    for (int i = 0; i < 300; ++i) {
      size_t shard = static_cast<size_t>(i % 5);
      REQUIRE(pool.Submit(shard, [&, shard, i] {
        std::lock_guard lock(mu);
        order[shard % 3].push_back(i);
      }));
    }
    pool.Drain();
    size_t total = 0;
    for (auto& [shard, v] : order) {
      total += v.size();
      // Same worker: submission order.
      CHECK(std::is_sorted(v.begin(), v.end()));
    }
    CHECK(total == 300);
    CHECK_FALSE(pool.Submit(0, [] {}));  // drained: refused
  }

  TEST_CASE("worker pool: backpressure holds the submitter while the queue is full") {
    runtime::ShardedWorkerPool pool(1, 1);
    std::atomic<bool> release{false};
    REQUIRE(pool.Submit(0, [&] {
      while (!release.load()) std::this_thread::sleep_for(1ms);
    }));
    REQUIRE(pool.Submit(0, [] {}));  // fills the queue (the first task is running)
    std::atomic<bool> third_in{false};
    std::thread t([&] {
      pool.Submit(0, [] {});
      third_in.store(true);
    });
    std::this_thread::sleep_for(50ms);
    CHECK_FALSE(third_in.load());
    release.store(true);
    t.join();
    CHECK(third_in.load());
  }

  TEST_CASE("routing request: Decode reads what Encode writes and refuses the rest by member") {
    using runtime::RoutingRequest;
    RoutingRequest send;
    send.prescription_id = "rx-1";
    send.event_id = "ev-1";
    send.pharmacy_ncpdp_id = "1234567";
    send.attempt = 3;
    send.retry_after_error = "900";
    RoutingRequest cancel;
    cancel.action = RoutingRequest::Action::kCancel;
    cancel.prescription_id = "rx-2";
    cancel.cancel_message_id = "cancel-1";
    for (const RoutingRequest& r : {send, cancel}) {
      auto back = RoutingRequest::Decode(r.Encode());
      RXFLOW_REQUIRE_OK(back);
      CHECK(*back == r);
    }
    // A later release's member is ignored; a member given twice counts as its last.
    auto later = RoutingRequest::Decode(
        R"({"action":"cancel","action":"send","prescription_id":"p","next":{"x":[1]}})");
    RXFLOW_REQUIRE_OK(later);
    CHECK(later->action == RoutingRequest::Action::kSend);
    CHECK(later->prescription_id == "p");

    const std::pair<std::string, std::string> refused[] = {
        {"", "not a JSON object"},
        {"not json", "not a JSON object"},
        {R"(["send"])", "not a JSON object"},
        {R"({"action":"send","prescription_id":"p")", "not a JSON object"},
        {R"({"prescription_id":"p"})", R"(action must be "send" or "cancel")"},
        {R"({"action":"resend","prescription_id":"p"})", R"(action must be "send" or "cancel")"},
        {R"({"action":1,"prescription_id":"p"})", "action is not a string"},
        {R"({"action":"send"})", "prescription_id is missing"},
        {R"({"action":"send","prescription_id":5})", "prescription_id is not a string"},
        {R"({"action":"send","prescription_id":"p","event_id":null})", "event_id is not a string"},
        {R"({"action":"send","prescription_id":"p","attempt":"2"})", "attempt is not an integer"},
        {R"({"action":"send","prescription_id":"p","attempt":2.5})", "attempt is not an integer"},
        {R"({"action":"send","prescription_id":"p","attempt":-1})", "attempt is out of range"},
        {R"({"action":"send","prescription_id":"p","attempt":2147483648})",
         "attempt is out of range"},
        {R"({"action":"send","prescription_id":"p","attempt":18446744073709551615})",
         "attempt is out of range"},
        {R"({"action":"send","prescription_id":")" + std::string(70'000, 'x') + R"("})",
         "70038 bytes exceeds the limit of 65536"},
    };
    for (const auto& [json, why] : refused) {
      CAPTURE(json.substr(0, 80));
      auto r = RoutingRequest::Decode(json);
      REQUIRE(!r.ok());
      CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
      CHECK(std::string(r.status().message()) == "routing request: " + why);
    }
  }

  TEST_CASE("outbox relay publishes each event's messages once and moves its checkpoint") {
    World w(/*route_on_submit=*/false);
    for (int i = 0; i < 20; ++i) w.Submit("k" + std::to_string(i));
    CHECK(*runtime::RelayBacklog(*w.store) == 20 * 2);  // 2 events each
    auto consumer = *w.broker->NewConsumer("t", {"audit.trail", "prescription.events"});
    auto producer = *w.broker->NewProducer();
    runtime::OutboxRelay relay(*w.store, *producer);
    auto n = relay.RunOnce();
    RXFLOW_REQUIRE_OK(n);
    CHECK(*n == 40);
    CHECK(relay.active());
    CHECK(relay.published() == 80);  // audit + domain event per event
    CHECK(*runtime::RelayBacklog(*w.store) == 0);
    CHECK(*w.store->SubscriptionCheckpoint(store::kRelaySubscription) == 40);
    CHECK(*relay.RunOnce() == 0);
    auto got = consumer->Poll(1000, 100ms);
    RXFLOW_REQUIRE_OK(got);
    CHECK(got->size() == 80);
    std::set<std::string> ids;
    std::map<std::string, int64_t> last_version;  // per key: versions in order
    for (const auto& m : *got) {
      CHECK(!m.Header("event_id").empty());
      ids.insert(std::string(m.Header("message_id")));
      int64_t v = std::stoll(std::string(m.Header("version")));
      CHECK(v >= last_version[m.topic + m.key]);
      last_version[m.topic + m.key] = v;
    }
    CHECK(ids.size() == 80);
    // A restarted relay resumes from the checkpoint: only what came since.
    w.Submit("later");
    runtime::OutboxRelay restarted(*w.store, *producer);
    relay.Stop();  // releases the lease at once
    CHECK(*restarted.RunOnce() == 2);
    CHECK(restarted.published() == 4);
  }

  TEST_CASE("outbox relay: a refusing broker keeps every event for the next round") {
    World w(false);
    w.Submit("a");
    class Refusing : public messaging::Producer {
     public:
      Status Publish(std::span<const messaging::Message>) override {
        return absl::UnavailableError("broker down");
      }
    } refusing;
    runtime::OutboxRelay relay(*w.store, refusing);
    CHECK(relay.RunOnce().status().code() == absl::StatusCode::kUnavailable);
    CHECK(*runtime::RelayBacklog(*w.store) == 2);
    CHECK(relay.publish_errors() == 1);
    relay.Stop();
    auto producer = *w.broker->NewProducer();
    runtime::OutboxRelay good(*w.store, *producer);
    CHECK(*good.RunOnce() == 2);
    CHECK(*runtime::RelayBacklog(*w.store) == 0);
  }

  // Two relays on one store: one is active, the other stands by; when the active one dies
  // (stops renewing) the standby takes over after the lease from the stored checkpoint, and
  // the dead one, should it wake up, stands down.
  TEST_CASE(
      "outbox relay fail-over: a standby takes over from the checkpoint once the lease ends") {
    FakeClock clock;
    auto st = store::NewMemoryStore(clock);
    ServiceOptions so;
    so.patient_key = kKey;
    so.clock = &clock;
    auto service = std::move(*PrescriptionService::Create(*st, so));
    auto submit = [&](const std::string& key) {
      IssueList issues;
      RXFLOW_REQUIRE_OK(service->Submit(Lisinopril(), issues, {}, key));
    };
    auto broker = messaging::NewInProcessBroker();
    auto consumer = *broker->NewConsumer("audit", {"audit.trail"});
    auto producer = *broker->NewProducer();
    runtime::OutboxRelayOptions o;
    o.lease = 10s;
    o.owner = "relay-a";
    runtime::OutboxRelay a(*st, *producer, o, &clock);
    o.owner = "relay-b";
    runtime::OutboxRelay b(*st, *producer, o, &clock);
    submit("1");
    CHECK(*a.RunOnce() == 2);
    CHECK(*b.RunOnce() == 0);  // standing by
    CHECK(a.active());
    CHECK_FALSE(b.active());
    submit("2");
    clock.Advance(5'000'000);
    CHECK(*b.RunOnce() == 0);  // a's lease, renewed at its checkpoint, runs till 10 s
    clock.Advance(6'000'000);  // a has died: no renewal for 11 s
    CHECK(*b.RunOnce() == 2);  // takes over at a's checkpoint
    CHECK(b.active());
    // a wakes up: renewing its lease (half of it has passed) it finds b holding it, and
    // stands down before publishing anything. (Should it get as far as a checkpoint, the
    // store refuses that: the contract case "one lease holder per subscription ...".)
    CHECK(a.RunOnce().status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_FALSE(a.active());
    CHECK(*st->SubscriptionCheckpoint(store::kRelaySubscription) == 4);
    auto got = consumer->Poll(100, 100ms);
    RXFLOW_REQUIRE_OK(got);
    std::map<std::string, int> seen;
    for (const auto& m : *got) ++seen[std::string(m.Header("message_id"))];
    CHECK(seen.size() == 4);   // every event's audit message arrived ...
    CHECK(got->size() == 4);   // ... once
    CHECK(*a.RunOnce() == 0);  // a stays on standby
  }

  TEST_CASE(
      "ExecuteOnce: a consumer's message takes effect once, a refused command writes nothing") {
    World w(true);
    std::string id = w.Submit("a");
    std::vector<domain::Command> sent{domain::MarkSent{}, domain::RecordStatus{"000", ""}};
    CHECK(w.service->ExecuteOnce("routing", "m1", id, sent).ok());
    CHECK(w.service->ExecuteOnce("routing", "m1", id, sent).code() ==
          absl::StatusCode::kAlreadyExists);
    CHECK(w.service->Get(id)->state == domain::State::kAcknowledged);
    auto before = w.service->History(id)->size();
    // MarkSent is illegal once acknowledged: nothing is written, the inbox entry neither.
    CHECK(w.service->ExecuteOnce("routing", "m2", id, sent).code() ==
          absl::StatusCode::kFailedPrecondition);
    CHECK(w.service->History(id)->size() == before);
    CHECK(w.service->ExecuteOnce("routing", "m2", id, {}).ok());  // m2 was not recorded
    CHECK(w.service->ExecuteOnce("routing", "m1", "nope", sent).code() ==
          absl::StatusCode::kAlreadyExists);
    CHECK(w.service->ExecuteOnce("routing", "m3", "nope", sent).code() ==
          absl::StatusCode::kNotFound);
  }

  TEST_CASE("a service's cached state still sees events another service appended") {
    World w(true);
    ServiceOptions o;
    o.patient_key = kKey;
    auto other = std::move(*PrescriptionService::Create(*w.store, o));
    std::string id = w.Submit("a");  // w.service caches Queued
    std::vector<domain::Command> sent{domain::MarkSent{}, domain::RecordStatus{"000", ""}};
    RXFLOW_REQUIRE_OK(other->ExecuteOnce("routing", "m1", id, sent));
    // Verify is legal only after Sent/Acknowledged: a stale Queued state would refuse it.
    CHECK(w.service->Execute(id, domain::RecordVerify{""}).ok());
    CHECK(w.service->Get(id)->state == domain::State::kVerified);
    CHECK(other->ExecuteOnce("routing", "m2", id, sent).code() ==
          absl::StatusCode::kFailedPrecondition);
  }

  TEST_CASE("route_on_submit queues a non-controlled prescription in the same append") {
    World w(true);
    IssueList issues;
    auto s = w.service->Submit(Lisinopril(), issues);
    RXFLOW_REQUIRE_OK(s);
    CHECK(s->state == domain::State::kQueued);
    auto h = *w.service->History(s->id);
    REQUIRE(h.size() == 3);
    CHECK(h[2].type == "PrescriptionQueued");
    // A controlled substance waits for its signature.
    auto cs = w.service->Submit(testing::ReadFixture("fhir/schedule2_oxycodone.json"), issues);
    RXFLOW_REQUIRE_OK(cs);
    CHECK(cs->state == domain::State::kReadyToSign);
  }

  TEST_CASE("FindByMessageId finds the NewRx's and a CancelRx's message ids") {
    World w(true);
    std::string id = w.Submit("a");
    auto summary = *w.service->Get(id);
    CHECK(*w.service->FindByMessageId(summary.message_id) == id);
    CHECK(w.service->FindByMessageId("unknown").status().code() == absl::StatusCode::kNotFound);
    CHECK(w.service->Cancel(id, "patient request").ok());
    auto history = *w.service->History(id);
    auto e = domain::DecodeEvent(history.back().type, 1, history.back().payload);
    auto cancel_id = std::get<domain::CancelRequested>(*e).cancel_message_id;
    CHECK(cancel_id.size() == 32);
    CHECK(*w.service->FindByMessageId(cancel_id) == id);
    // The CancelRx routing builds validates and relates to the NewRx.
    auto xml = w.service->OutboundXml(id, "cancel", cancel_id);
    RXFLOW_REQUIRE_OK(xml);
    IssueList issues;
    auto m = script::ReadXml(*xml, issues);
    RXFLOW_REQUIRE_OK(m);
    CHECK(std::holds_alternative<script::CancelRx>(m->body));
    CHECK(m->header.relates_to_message_id == summary.message_id);
    CHECK(m->header.message_id == cancel_id);
  }

  TEST_CASE("FindByMessageId answers for the messages the service committed from memory") {
    World w(true);
    std::string id = w.Submit("a");
    auto summary = *w.service->Get(id);
    REQUIRE(w.service->Cancel(id, "patient request").ok());
    auto history = *w.service->History(id);
    auto e = domain::DecodeEvent(history.back().type, 1, history.back().payload);
    const std::string cancel_id = std::get<domain::CancelRequested>(*e).cancel_message_id;
    // Both found, and the message index was neither read up to them nor written: it is
    // still where it started.
    CHECK(*w.service->FindByMessageId(summary.message_id) == id);
    CHECK(*w.service->FindByMessageId(cancel_id) == id);
    CHECK(*w.store->Checkpoint(PrescriptionService::kMessageIndex) == 0);
    // A service over the same store that did not commit them (another process, this one
    // after a restart) finds them in the index, which it catches up from the log.
    ServiceOptions o;
    o.patient_key = kKey;
    auto other = PrescriptionService::Create(*w.store, o);
    RXFLOW_REQUIRE_OK(other);
    CHECK(*(*other)->FindByMessageId(cancel_id) == id);
    CHECK(*w.store->Checkpoint(PrescriptionService::kMessageIndex) > 0);
    CHECK((*other)->FindByMessageId("unknown").status().code() == absl::StatusCode::kNotFound);
  }

  TEST_CASE(
      "ExecuteOnce with a precondition: a refusal writes nothing, not even the inbox record") {
    World w(false);
    std::string id = w.Submit("a");
    const int64_t version = w.service->Get(id)->version;
    std::vector<domain::Command> route{domain::Route{}};
    int checked = 0;
    auto refuse = [&](const domain::PrescriptionState& s) -> Status {
      ++checked;
      CHECK(s.version == version);  // the state the commands meet
      return absl::PermissionDeniedError("not this one");
    };
    Status refused = w.service->ExecuteOnce("c", "m1", id, route, {}, refuse);
    CHECK(refused.code() == absl::StatusCode::kPermissionDenied);
    CHECK(refused.message() == "not this one");
    CHECK(checked == 1);
    CHECK(w.service->Get(id)->version == version);
    // The message was not recorded as processed: sent again, it runs once the check passes.
    auto pass = [](const domain::PrescriptionState&) { return absl::OkStatus(); };
    RXFLOW_REQUIRE_OK(w.service->ExecuteOnce("c", "m1", id, route, {}, pass));
    CHECK(w.service->Get(id)->version > version);
    CHECK(w.service->ExecuteOnce("c", "m1", id, route, {}, refuse).code() ==
          absl::StatusCode::kAlreadyExists);
    CHECK(checked == 1);  // a duplicate is answered before any check
  }

  // A pharmacy system's own RxFill (tests/fixtures/script/partners: local SentTime with an
  // offset, Pharmacist, MedicationDispensed), addressed to a prescription of ours: recorded
  // when it comes from the pharmacy the NewRx went to; refused, with nothing written, when the
  // same message comes from any other.
  TEST_CASE("pharmacy inbox: a partner's RxFill is recorded only from the pharmacy sent to") {
    World w(true);
    std::string id = w.SubmitAndSend("a");
    auto summary = *w.service->Get(id);
    std::string partner = testing::ReadFixture("script/partners/rxfill_dispensed_utc_offset.xml");
    auto replace = [](std::string text, const std::string& from, const std::string& to) {
      size_t at = text.find(from);
      REQUIRE(at != std::string::npos);
      return text.replace(at, from.size(), to);
    };
    partner = replace(partner, "4f0c2d9e81b3476aa5d0c7e2b91f3a6d", summary.message_id);
    REQUIRE(summary.pharmacy_ncpdp_id != "7700044");  // the partner's own From
    runtime::PharmacyInbox inbox(*w.service);
    const int64_t version = w.service->Get(id)->version;
    IssueList issues;
    auto forged = inbox.Receive(partner, issues);
    CHECK(forged.status().code() == absl::StatusCode::kPermissionDenied);
    REQUIRE(issues.has_errors());
    bool named = false;
    for (const Issue& i : issues) named |= i.path == "/Message/Header/From";
    CHECK(named);
    CHECK(w.service->Get(id)->version == version);
    const std::string from_ours =
        replace(partner, "<From Qualifier=\"P\">7700044</From>",
                "<From Qualifier=\"P\">" + summary.pharmacy_ncpdp_id + "</From>");
    issues = IssueList{};
    auto r = inbox.Receive(from_ours, issues);
    RXFLOW_REQUIRE_OK(r);
    CHECK(r->transaction == "RxFill");
    CHECK_FALSE(r->duplicate);
    CHECK(w.service->Get(id)->state == domain::State::kDispensed);
  }

  TEST_CASE("pharmacy directory: entries, a default, and errors with their JSON path") {
    auto d = runtime::PharmacyDirectory::Parse(
        R"({"pharmacies": [{"ncpdp_id": "4712345", "url": "http://127.0.0.1:9/ncpdp"},
                           {"ncpdp_id": "*", "url": "https://fallback/ncpdp"}]})");
    RXFLOW_REQUIRE_OK(d);
    CHECK(d->Find("4712345") == "http://127.0.0.1:9/ncpdp");
    CHECK(d->Find("1111111") == "https://fallback/ncpdp");
    auto bad = runtime::PharmacyDirectory::Parse(
        R"({"pharmacies": [{"ncpdp_id": "1", "url": "ftp://x"}]})");
    CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(bad.status().message()).find("$.pharmacies[0].url") != std::string::npos);
    CHECK(runtime::PharmacyDirectory::Parse("[]").status().code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(runtime::PharmacyDirectory::Load("/nonexistent.json").status().code() ==
          absl::StatusCode::kNotFound);
    // Mutual TLS links: with an https URL only, certificate and key together.
    auto tls = runtime::PharmacyDirectory::Parse(
        R"({"pharmacies": [{"ncpdp_id": "4712345", "url": "https://p:1/ncpdp",
            "tls": {"certificate": "c.pem", "key": "k.pem", "ca": "ca.pem"}}]})");
    RXFLOW_REQUIRE_OK(tls);
    REQUIRE(tls->tls_links().count("https://p:1/ncpdp") == 1);
    CHECK(tls->tls_links().at("https://p:1/ncpdp").certificate_file == "c.pem");
    auto error = [](const char* json) {
      return std::string(runtime::PharmacyDirectory::Parse(json).status().message());
    };
    CHECK(error(R"({"pharmacies": [{"ncpdp_id": "1", "url": "http://localhost:1/n",
                    "tls": {}}]})") == "$.pharmacies[0].tls needs an https:// url");
    // Plain HTTP off this machine only when the entry says so.
    CHECK(error(R"({"pharmacies": [{"ncpdp_id": "1", "url": "http://pharmacy.example/n"}]})")
              .starts_with("$.pharmacies[0].url: plain http:// leaves this machine"));
    CHECK(runtime::PharmacyDirectory::Parse(
              R"({"pharmacies": [{"ncpdp_id": "1", "url": "http://[::1]:9/n"},
                  {"ncpdp_id": "2", "url": "http://proxy:80/n", "insecure_http": true}]})")
              .ok());
    CHECK(error(R"({"pharmacies": [{"ncpdp_id": "1", "url": "https://p/n",
                    "tls": {"certificate": "c.pem"}}]})") ==
          "$.pharmacies[0].tls: certificate and key go together");
    CHECK(error(R"({"pharmacies": [{"ncpdp_id": "1", "url": "https://p/n",
                    "tls": {"ca": 5}}]})") ==
          "$.pharmacies[0].tls.ca must be a non-empty file name");
  }

  TEST_CASE("routing: transport failures are retried, then the breaker opens, all get through") {
    World w(true);
    ScriptedTransport transport;
    transport.fail_first = 4;
    runtime::PharmacyDirectory dir;
    dir.Add("*", "http://pharmacy");
    runtime::RoutingOptions o;
    o.backoff = {1ms, 5ms, 2.0};
    o.breaker.failure_threshold = 3;
    o.breaker.open_for = 20ms;
    runtime::RoutingService routing(*w.service, *w.broker, dir, transport, o);
    RXFLOW_REQUIRE_OK(routing.Start());
    auto producer = *w.broker->NewProducer();
    runtime::OutboxRelay relay(*w.store, *producer);
    std::vector<std::string> ids;
    for (int i = 0; i < 10; ++i) ids.push_back(w.Submit("k" + std::to_string(i)));
    RXFLOW_REQUIRE_OK(relay.RunOnce());
    CHECK(Eventually([&] { return routing.stats().handled.load() == 10; }));
    routing.Stop();
    for (const auto& id : ids) CHECK(w.service->Get(id)->state == domain::State::kAcknowledged);
    CHECK(transport.calls.load() == 14);
    CHECK(routing.stats().transport_errors.load() == 4);
    CHECK(routing.stats().dead_lettered.load() == 0);
  }

  TEST_CASE(
      "routing: after the last attempt the request is dead-lettered and the prescription fails") {
    World w(true);
    ScriptedTransport transport;
    transport.fail_first = 1000;
    runtime::PharmacyDirectory dir;
    dir.Add("*", "http://pharmacy");
    runtime::RoutingOptions o;
    o.backoff = {1ms, 2ms, 2.0};
    o.max_attempts = 3;
    o.breaker.failure_threshold = 100;
    auto dead = *w.broker->NewConsumer("dlq", {"dead.letter"});
    runtime::RoutingService routing(*w.service, *w.broker, dir, transport, o);
    RXFLOW_REQUIRE_OK(routing.Start());
    auto producer = *w.broker->NewProducer();
    runtime::OutboxRelay relay(*w.store, *producer);
    std::string id = w.Submit("x");
    RXFLOW_REQUIRE_OK(relay.RunOnce());
    CHECK(Eventually([&] { return routing.stats().handled.load() == 1; }));
    routing.Stop();
    CHECK(transport.calls.load() == 3);
    auto s = *w.service->Get(id);
    CHECK(s.state == domain::State::kFailed);
    auto dl = dead->Poll(10, 1s);
    RXFLOW_REQUIRE_OK(dl);
    REQUIRE(dl->size() == 1);
    CHECK(dl->front().key == id);
    CHECK(dl->front().payload.find("after 3 attempt(s)") != std::string::npos);
  }

  TEST_CASE("routing: a refusal (4xx) is not retried, a redelivered request does nothing twice") {
    World w(true);
    ScriptedTransport transport;
    transport.refuse = true;
    runtime::PharmacyDirectory dir;
    dir.Add("*", "http://pharmacy");
    runtime::RoutingService routing(*w.service, *w.broker, dir, transport, {});
    std::string id = w.Submit("x");
    // Handle the routing request directly, twice (as a redelivery would).
    std::optional<messaging::Message> route;
    auto events = w.store->ReadAll(0, 100);
    RXFLOW_REQUIRE_OK(events);
    for (const auto& e : *events) {
      auto derived = runtime::DeriveMessages(e);
      RXFLOW_REQUIRE_OK(derived);
      for (auto& m : *derived) {
        if (m.topic == messaging::topics::kRoutingRequests) route = std::move(m);
      }
    }
    REQUIRE(route.has_value());
    const messaging::Message& m = *route;
    // Handle needs the dead.letter producer: Start creates it.
    RXFLOW_REQUIRE_OK(routing.Start());
    CHECK(routing.Handle(m).ok());
    CHECK(transport.calls.load() == 1);
    CHECK(w.service->Get(id)->state == domain::State::kFailed);
    CHECK(routing.Handle(m).ok());
    CHECK(transport.calls.load() == 1);
    CHECK(routing.stats().duplicates.load() == 1);
    routing.Stop();
  }

  TEST_CASE("redrive: requests lost with an in-process broker are delivered once after a restart") {
    World w(true);
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(w.Submit("r" + std::to_string(i)));
    {  // The relay publishes into a broker that then goes away with its messages.
      auto lost = messaging::NewInProcessBroker();
      auto p = *lost->NewProducer();
      runtime::OutboxRelay relay(*w.store, *p);
      RXFLOW_REQUIRE_OK(relay.RunOnce());
      CHECK(*runtime::RelayBacklog(*w.store) == 0);
    }
    ScriptedTransport transport;
    runtime::PharmacyDirectory dir;
    dir.Add("*", "http://pharmacy");
    auto producer = *w.broker->NewProducer();
    auto n = runtime::RedriveRouting(*w.service, *producer);
    RXFLOW_REQUIRE_OK(n);
    CHECK(*n == 5);
    runtime::RoutingService routing(*w.service, *w.broker, dir, transport, {});
    RXFLOW_REQUIRE_OK(routing.Start());
    CHECK(Eventually([&] { return routing.stats().handled.load() == 5; }));
    for (const auto& id : ids) CHECK(w.service->Get(id)->state == domain::State::kAcknowledged);
    // Nothing waits any more: a second redrive finds nothing.
    CHECK(*runtime::RedriveRouting(*w.service, *producer) == 0);
    routing.Stop();
    CHECK(transport.calls.load() == 5);
  }

  TEST_CASE("routing: a cancel before the NewRx went out completes without calling the pharmacy") {
    World w(true);
    ScriptedTransport transport;
    runtime::PharmacyDirectory dir;
    dir.Add("*", "http://pharmacy");
    std::string id = w.Submit("c");  // Queued, its send request in the outbox
    RXFLOW_REQUIRE_OK(w.service->Cancel(id, "wrong patient"));
    CHECK(w.service->Get(id)->state == domain::State::kCancelRequested);
    runtime::RoutingService routing(*w.service, *w.broker, dir, transport, {});
    RXFLOW_REQUIRE_OK(routing.Start());
    auto producer = *w.broker->NewProducer();
    runtime::OutboxRelay relay(*w.store, *producer);
    RXFLOW_REQUIRE_OK(relay.RunOnce());
    CHECK(Eventually([&] { return w.service->Get(id)->state == domain::State::kCancelled; }));
    routing.Stop();
    CHECK(transport.calls.load() == 0);
  }

  TEST_CASE("routing: a store failure while recording is retried and the offset waits for it") {
    World w(true);
    class FlakyInbox : public store::StoreWrapper {
     public:
      using StoreWrapper::StoreWrapper;
      std::atomic<int> failures{2};
      Status Process(const std::string& c, const std::string& m,
                     const store::InboxEffect& e) override {
        if (failures.fetch_sub(1) > 0) return absl::UnavailableError("store down");
        return target_.Process(c, m, e);
      }
    } flaky(*w.store);
    ServiceOptions o;
    o.patient_key = kKey;
    auto service = std::move(*PrescriptionService::Create(flaky, o));
    ScriptedTransport transport;
    runtime::PharmacyDirectory dir;
    dir.Add("*", "http://pharmacy");
    runtime::RoutingOptions ro;
    ro.backoff = {1ms, 5ms, 2.0};
    runtime::RoutingService routing(*service, *w.broker, dir, transport, ro);
    RXFLOW_REQUIRE_OK(routing.Start());
    std::string id = w.Submit("f");
    auto producer = *w.broker->NewProducer();
    runtime::OutboxRelay relay(*w.store, *producer);
    RXFLOW_REQUIRE_OK(relay.RunOnce());
    CHECK(Eventually([&] { return w.service->Get(id)->state == domain::State::kAcknowledged; }));
    routing.Stop();
    CHECK(routing.stats().handle_errors.load() == 2);
    CHECK(transport.calls.load() == 3);  // the same NewRx again; pharmacies dedupe MessageIDs
  }

#ifdef RXFLOW_TEST_HAVE_HTTP
  TEST_CASE(
      "routing over HTTP: the simulator acknowledges, posts RxFill, and an outage opens the "
      "breaker") {
    World w(true);
    // The simulator's RxFills come back to this loopback endpoint, which hands them to the
    // pharmacy inbox as the API's inbound route would.
    runtime::PharmacyInbox inbox(*w.service);
    std::atomic<int> fills_received{0}, fills_refused{0};
    CallbackEndpoint callback([&](const std::string& body) {
      IssueList issues;
      auto r = inbox.Receive(body, issues);
      if (r.ok() && r->transaction == "RxFill") {
        ++fills_received;
      } else {
        ++fills_refused;
      }
      return r.ok() ? 200 : 400;
    });
    http::SimulatorOptions so;
    so.callback_url = callback.url();
    so.fill_after = 10ms;
    http::PharmacySimulator sim(so);
    RXFLOW_REQUIRE_OK(sim.Start());
    auto transport = http::NewHttpPharmacyTransport();
    runtime::PharmacyDirectory dir;
    dir.Add("4712345", sim.url());
    runtime::RoutingOptions o;
    o.backoff = {5ms, 50ms, 2.0};
    o.max_attempts = 1000;
    o.breaker.failure_threshold = 2;
    o.breaker.open_for = 50ms;
    runtime::RoutingService routing(*w.service, *w.broker, dir, *transport, o);
    RXFLOW_REQUIRE_OK(routing.Start());
    auto producer = *w.broker->NewProducer();
    runtime::OutboxRelay relay(*w.store, *producer);
    relay.Start();
    std::string first = w.Submit("a");
    CHECK(routing.BreakerOpenings() == 0);
    // Acknowledged, then dispensed by the RxFill the simulator posted back.
    REQUIRE(Eventually([&] { return w.service->Get(first)->state == domain::State::kDispensed; }));
    // The callback counts a fill after the inbox has recorded it (and the simulator after
    // the callback answered): wait for the counters too, never read them right away.
    CHECK(Eventually([&] { return fills_received.load() == 1; }));
    // The outage lasts until the breaker has been seen open (a fixed window could end before
    // a slow, sanitized build has sent anything into it), then ends.
    sim.OutageFor(60s);
    std::vector<std::string> ids;
    for (int i = 0; i < 20; ++i) ids.push_back(w.Submit("b" + std::to_string(i)));
    CHECK(Eventually([&] {
      for (auto& [p, s] : routing.BreakerStates()) {
        if (s != runtime::CircuitBreaker::State::kClosed) return true;
      }
      return false;
    }));
    CHECK(routing.BreakerOpenings() >= 1);  // counted, whatever state it is in now
    sim.OutageFor(0ms);
    CHECK(Eventually([&] { return routing.stats().handled.load() == 21; }));
    // Every prescription is dispensed through its own RxFill, each recorded once.
    CHECK(Eventually([&] {
      for (const auto& id : ids)
        if (w.service->Get(id)->state != domain::State::kDispensed) return false;
      return true;
    }));
    relay.Stop();
    routing.Stop();
    CHECK(
        Eventually([&] { return fills_received.load() == 21 && sim.stats().fills_posted == 21; }));
    auto st = sim.stats();
    CHECK(st.unique == 21);
    CHECK(st.duplicates == 0);
    CHECK(st.refused > 0);
    CHECK(st.fills_posted == 21);
    CHECK(st.fill_errors == 0);
    CHECK(fills_received.load() == 21);
    // A fill may overtake the routing worker's record of its send (the prescription still
    // Queued, where RecordFill is not allowed): it is refused and the simulator posts it
    // again. Refusals may happen, so; a fill given up (fill_errors) may not, and each was
    // recorded once (fills_received).
    CHECK(fills_refused.load() <= 21 * 4);
    sim.Stop();
  }

  TEST_CASE("the simulator posts RxFills on several connections at once") {
    // The callback holds every fill until four are in flight together (or 8 s pass): with
    // one poster the most ever in flight would be one.
    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0, most = 0, received = 0;
    CallbackEndpoint callback([&](const std::string& body) {
      std::unique_lock lock(mu);
      ++received;
      most = std::max(most, ++in_flight);
      cv.notify_all();
      cv.wait_for(lock, 8s, [&] { return most >= 4; });  // under the poster's 10 s timeout
      --in_flight;
      return body.find("<RxFill>") != std::string::npos ? 200 : 400;
    });
    http::PharmacySimulator sim(FillsTo(callback, 4));
    RXFLOW_REQUIRE_OK(sim.Start());
    httplib::Client client("127.0.0.1", sim.port());
    std::string newrx;
    for (int i = 0; i < 4; ++i) newrx = PostNewRx(client, "fill-test-" + std::to_string(i));
    CHECK(Eventually([&] { return sim.stats().fills_posted == 4; }, 20s));
    {
      std::lock_guard lock(mu);
      CHECK(most == 4);
      CHECK(received == 4);
    }
    CHECK(sim.stats().fill_errors == 0);
    CHECK(sim.stats().unique == 4);

    // Its other routes: health, stats, the outage switch and its refusals, unknown routes.
    auto StatusOf = [](const httplib::Result& r) { return r ? r->status : -1; };
    auto health = client.Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
    auto stats = client.Get("/admin/stats");
    REQUIRE(stats);
    CHECK(stats->body.find("\"fills_posted\":4") != std::string::npos);
    CHECK(StatusOf(client.Post("/admin/outage?ms=abc", "", "text/plain")) == 400);
    CHECK(StatusOf(client.Post("/admin/outage?ms=5x", "", "text/plain")) == 400);
    CHECK(StatusOf(client.Post("/admin/outage?ms=99999999999999999999", "", "text/plain")) == 400);
    CHECK(StatusOf(client.Get("/ncpdp")) == 405);
    CHECK(StatusOf(client.Get("/no-such-route")) == 404);
    CHECK(StatusOf(client.Post("/admin/outage?ms=60000", "", "text/plain")) == 200);
    CHECK(StatusOf(client.Post("/ncpdp", newrx, "application/xml")) == 503);
    CHECK(sim.stats().refused == 1);
    sim.Stop();
  }

  TEST_CASE("a refused RxFill goes back into the simulator's queue and is posted again") {
    std::atomic<int> posts{0};
    CallbackEndpoint callback([&](const std::string&) { return ++posts <= 2 ? 409 : 200; });
    http::PharmacySimulator sim(FillsTo(callback, 2));
    RXFLOW_REQUIRE_OK(sim.Start());
    httplib::Client client("127.0.0.1", sim.port());
    PostNewRx(client, "refused-fill");
    // Refused twice (100 ms, then 200 ms later), accepted on the third post.
    CHECK(Eventually([&] { return sim.stats().fills_posted == 1; }));
    CHECK(posts.load() == 3);
    CHECK(sim.stats().fill_errors == 0);
    sim.Stop();
  }

  TEST_CASE("pharmacy inbox: RxFill for a sent prescription is recorded once") {
    World w(true);
    std::string id = w.SubmitAndSend("a");
    auto summary = *w.service->Get(id);
    std::string fill = testing::RxFillFrom(summary.pharmacy_ncpdp_id, summary.message_id);
    runtime::PharmacyInbox inbox(*w.service);
    IssueList issues;
    // Another pharmacy than the one the prescription went to cannot speak about it.
    auto forged = inbox.Receive(testing::RxFillFrom("9999999", summary.message_id), issues);
    CHECK(forged.status().code() == absl::StatusCode::kPermissionDenied);
    std::vector<std::string> elsewhere{"1234567"};
    issues = IssueList{};
    runtime::ReceiveOptions bound;  // a sender bound to another pharmacy
    bound.speaks_for = &elsewhere;
    forged = inbox.Receive(fill, issues, bound);
    CHECK(forged.status().code() == absl::StatusCode::kPermissionDenied);
    issues = IssueList{};
    std::vector<std::string> hub{"*"};
    runtime::ReceiveOptions from_hub;
    from_hub.context.actor = "pharmacy:p";
    from_hub.speaks_for = &hub;
    auto r = inbox.Receive(fill, issues, from_hub);
    RXFLOW_REQUIRE_OK(r);
    CHECK(r->prescription_id == id);
    CHECK(r->transaction == "RxFill");
    CHECK_FALSE(r->duplicate);
    auto again = inbox.Receive(fill, issues);
    RXFLOW_REQUIRE_OK(again);
    CHECK(again->duplicate);
    CHECK(w.service->Get(id)->state == domain::State::kDispensed);
    CHECK(w.service->History(id)->back().actor == "pharmacy:p/ncpdp:" + summary.pharmacy_ncpdp_id);
    // Unknown relation, missing relation, not a pharmacy message.
    std::string unknown = testing::RxFillFrom(summary.pharmacy_ncpdp_id, std::string(32, 'f'));
    CHECK(inbox.Receive(unknown, issues).status().code() == absl::StatusCode::kNotFound);
    IssueList bad;
    CHECK(inbox.Receive("<Message/>", bad).status().code() == absl::StatusCode::kInvalidArgument);
    // The transport's charset reaches the reader: one it cannot read is refused by name, and
    // nothing is recorded.
    IssueList unreadable;
    runtime::ReceiveOptions shift_jis;
    shift_jis.charset = "Shift_JIS";
    const size_t events_before = w.service->History(id)->size();
    auto sjis = inbox.Receive(fill, unreadable, shift_jis);
    CHECK_FALSE(sjis.ok());
    CHECK(std::string(sjis.status().message()).find("Shift_JIS") != std::string::npos);
    CHECK(w.service->History(id)->size() == events_before);
  }
#endif
}
