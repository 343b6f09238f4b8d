// SPDX-License-Identifier: Apache-2.0
// Correctness under the new design (issue 14 §7): duplicates everywhere and relays killed.
//
//   * "Duplicate storm": the real OutboxRelay over a memory store, its producer made to hand
//     every batch to the in-process broker two or three times (and sometimes only part of it,
//     failing), its store made to lose a third of its checkpoints (the relay then publishes
//     the batch again), consumer group members killed between an effect and their offset
//     commit. The consumers apply their effects through the real inbox (`Inbox::Process`):
//     over 100,000 events (25,000 under AddressSanitizer) no effect happens twice and each
//     prescription's effects come in the order of its events' versions.
//   * "Crash safety": the real OutboxRelay in forked child processes over one SQLite file,
//     SIGKILLed at random moments; every event appended is published at least once, and a
//     consumer deduplicating through the inbox applies each message once. Two relays on one
//     subscription: the standby takes over once the killed relay's lease runs out.
//
// docs/event-model.md §7 ("What the duplicate and crash tests prove") names what each case
// kills, how often, and what it asserts.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <sqlite3.h>

#include "rxflow/clock.h"
#include "rxflow/domain/prescription.h"
#include "rxflow/messaging/broker.h"
#include "rxflow/runtime/messages.h"
#include "rxflow/runtime/outbox_relay.h"
#include "rxflow/sqlite/sqlite_store.h"
#include "rxflow/store/event_store.h"

#include "testing/concurrency.h"
#include "testing/files.h"
#include "testing/status.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace rxflow;
using rxflow::testing::TempDir;

// Under AddressSanitizer (`make test-asan`: a Debug build, many times slower than the
// RelWithDebInfo one) the storm has a quarter of the events, so that it stays well under a
// minute there; the plain build runs the 100,000 events issue 14 asks for.
#if defined(__SANITIZE_ADDRESS__)
#define RXFLOW_STORM_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RXFLOW_STORM_UNDER_ASAN 1
#endif
#endif

namespace {

constexpr int kEventsPerPrescription = 5;
#ifdef RXFLOW_STORM_UNDER_ASAN
constexpr int kStormPrescriptions = 5'000;  // 25,000 events
#else
constexpr int kStormPrescriptions = 20'000;  // 100,000 events
#endif
constexpr int64_t kFirstOccurredAt = 1'764'151'200'000'000;  // 2025-11-26T10:00:00Z

// ---- The log: prescriptions' lifecycles ---------------------------------------------------

// Event `step` (0-based) of a lifecycle of kind 0, 1 or 2, each 5 events as the service writes
// them: Received, Transformed, Queued, then kind 0 is sent and acknowledged, kind 1 sent and
// answered with a retryable error (a resend request), kind 2 cancelled at the pharmacy (a
// cancel request). Every topic (audit.trail, prescription.events, routing.requests) gets
// messages, and the routing requests' payloads are decoded by the relay.
domain::Event LifecycleEvent(int kind, int step, const std::string& rx) {
  if (step == 0) {
    domain::PrescriptionReceived e;
    e.idempotency_key = "key-" + rx;
    e.request_sha256 = std::string(64, '0');
    e.source = "fhir";
    return e;
  }
  if (step == 1) {
    domain::PrescriptionTransformed e;
    e.script_version = "2023011";
    e.message_id = rx + "-newrx";
    e.pharmacy_ncpdp_id = "4712345";
    e.prescriber_npi = "1234567893";
    e.drug_description = "Lisinopril 10 MG Oral Tablet";
    return e;
  }
  if (step == 2) {
    domain::PrescriptionQueued e;
    e.pharmacy_ncpdp_id = "4712345";
    e.attempt = 1;
    return e;
  }
  if (kind == 2) {
    if (step == 3) {
      domain::CancelRequested e;
      e.reason = "entered in error";
      e.cancel_message_id = rx + "-cancel";
      return e;
    }
    domain::PrescriptionCancelled e;
    e.reason = "approved";
    return e;
  }
  if (step == 3) {
    domain::PrescriptionSent e;
    e.message_id = rx + "-newrx";
    e.attempt = 1;
    return e;
  }
  if (kind == 1) {
    domain::PharmacyErrorReceived e;
    e.code = "602";
    e.description = "pharmacy busy";
    e.retryable = true;
    return e;
  }
  domain::PharmacyAcknowledged e;
  e.status_code = "010";
  e.relates_to_message_id = rx + "-newrx";
  return e;
}

// Appends prescriptions' lifecycles with many prescriptions open at once, so that streams
// interleave in the log: Received and Transformed in one append (as Submit does), then one
// append per command, each with the stream's current version as expected version.
// Deterministic for a seed. Not thread-safe.
class LogWriter {
 public:
  LogWriter(int prescriptions, uint32_t seed, size_t open)
      : total_(prescriptions), open_target_(open), rng_(seed) {}

  // Appends until at least `events` more events are stored, or every prescription is whole.
  // Returns how many it appended.
  StatusOr<int64_t> Append(store::EventStore& log, int64_t events) {
    int64_t n = 0;
    while (n < events) {
      while (open_.size() < open_target_ && started_ < total_) {
        const int i = started_++;
        open_.push_back(Stream{"rx" + std::to_string(i), i % 3, 0});
      }
      if (open_.empty()) break;
      const size_t pick = std::uniform_int_distribution<size_t>(0, open_.size() - 1)(rng_);
      Stream& s = open_[pick];
      store::AppendRequest request;
      request.stream_id = s.id;
      request.expected_version = s.step;
      const int count = s.step == 0 ? 2 : 1;
      for (int k = 0; k < count; ++k) {
        domain::Event event = LifecycleEvent(s.kind, s.step + k, s.id);
        store::EventRecord r;
        r.event_id = "e" + std::to_string(next_event_);
        r.type = std::string(domain::EventType(event));
        r.schema_version = domain::EventSchemaVersion(event);
        r.occurred_at = kFirstOccurredAt + next_event_ * 1000;
        r.actor = "storm";
        r.payload = domain::EncodePayload(event);
        request.events.push_back(std::move(r));
        ++next_event_;
      }
      auto appended = log.Append(std::move(request));
      if (!appended.ok()) return appended.status();
      s.step += count;
      n += count;
      appended_ += count;
      if (s.step == kEventsPerPrescription) {
        if (pick + 1 != open_.size()) open_[pick] = std::move(open_.back());
        open_.pop_back();
      }
    }
    return n;
  }

  bool done() const { return started_ == total_ && open_.empty(); }
  int64_t appended() const { return appended_; }

 private:
  struct Stream {
    std::string id;
    int kind = 0;
    int step = 0;  // events stored so far: the stream's version
  };
  int total_;
  size_t open_target_;
  std::mt19937 rng_;
  int started_ = 0;
  int64_t appended_ = 0;
  int64_t next_event_ = 0;
  std::vector<Stream> open_;
};

// Every event of `log` with global position in (after, up_to], in order.
std::vector<store::EventRecord> ReadRange(store::EventStore& log, int64_t after,
                                          int64_t up_to = INT64_MAX) {
  std::vector<store::EventRecord> out;
  while (after < up_to) {
    auto page = log.ReadAll(after, 4096);
    REQUIRE_MESSAGE(page.ok(), page.status().ToString());
    if (page->empty()) break;
    for (store::EventRecord& e : *page) {
      if (e.global_position > up_to) return out;
      out.push_back(std::move(e));
    }
    after = out.back().global_position;
  }
  return out;
}

// A message the relay derives from the log, with the event it comes from.
struct DerivedMessage {
  std::string message_id;
  std::string topic;
  std::string stream;
  int64_t version = 0;
  int64_t global_position = 0;
};

// What the relay must publish for the events in (after, up_to], in log order (DeriveMessages,
// the relay's own derivation).
std::vector<DerivedMessage> DeriveRange(store::EventStore& log, int64_t after,
                                        int64_t up_to = INT64_MAX) {
  std::vector<DerivedMessage> out;
  for (const store::EventRecord& e : ReadRange(log, after, up_to)) {
    auto messages = runtime::DeriveMessages(e);
    REQUIRE_MESSAGE(messages.ok(), messages.status().ToString());
    for (const messaging::Message& m : *messages) {
      out.push_back(DerivedMessage{std::string(m.Header(messaging::kMessageIdHeader)), m.topic,
                                   e.stream_id, e.version, e.global_position});
    }
  }
  return out;
}

// ---- Consumers' effects -----------------------------------------------------------------

// A consumer's effect through the inbox of its store: one event on `effect_stream` whose
// causation id is the message and whose payload is the version of the event the message came
// from. AlreadyExists, without the effect, when `consumer` processed the message before.
Status ApplyOnce(store::Inbox& inbox, const std::string& consumer, const std::string& message_id,
                 const std::string& effect_stream, int64_t version, int64_t& next_effect) {
  return inbox.Process(consumer, message_id, [&](store::EventStore& in_transaction) -> Status {
    store::AppendRequest request;
    request.stream_id = effect_stream;
    request.expected_version = store::kAnyVersion;
    store::EventRecord e;
    e.event_id = consumer + "-" + std::to_string(next_effect++);
    e.type = "EffectApplied";
    e.causation_id = message_id;
    e.payload = std::to_string(version);
    request.events.push_back(std::move(e));
    return in_transaction.Append(std::move(request)).status();
  });
}

// The effects stored in `effects`, per effect stream: the versions, in commit order. Effects
// caused by the same message (causation id) twice are counted in `duplicates`.
std::map<std::string, std::vector<int64_t>> AppliedEffects(store::EventStore& effects,
                                                           int64_t& duplicates) {
  std::map<std::string, std::vector<int64_t>> out;
  std::set<std::pair<std::string, std::string>> seen;  // (consumer, message id)
  for (const store::EventRecord& e : ReadRange(effects, 0)) {
    const std::string consumer = e.event_id.substr(0, e.event_id.rfind('-'));
    if (!seen.emplace(consumer, e.causation_id).second) ++duplicates;
    out[e.stream_id].push_back(std::stoll(e.payload));
  }
  return out;
}

// Streams whose effects differ from the expected ones (missing, twice, or out of order); the
// first few are reported.
int64_t WrongStreams(const std::map<std::string, std::vector<int64_t>>& expected,
                     const std::map<std::string, std::vector<int64_t>>& applied) {
  int64_t wrong = 0;
  auto show = [](const std::vector<int64_t>& v) {
    std::string s;
    for (int64_t x : v) s += std::to_string(x) + " ";
    return s;
  };
  for (const auto& [stream, versions] : expected) {
    auto it = applied.find(stream);
    if (it != applied.end() && it->second == versions) continue;
    if (++wrong <= 5) {
      MESSAGE(stream << ": expected versions " << show(versions) << "applied "
                     << (it == applied.end() ? std::string("none") : show(it->second)));
    }
  }
  for (const auto& [stream, versions] : applied) {
    if (expected.count(stream) == 0 && ++wrong <= 5) {
      MESSAGE(stream << ": effects nobody asked for");
    }
  }
  return wrong;
}

// ---- The storm's faults -----------------------------------------------------------------

// The broker made to redeliver: each Publish hands the batch to the real producer two or three
// times (seeded). One call in six instead hands over only a prefix of it and fails
// Unavailable, as a broker that accepted part of a batch does: the relay publishes the whole
// batch again. Single-threaded (the storm calls RunOnce from the test's thread).
class RepeatingProducer : public messaging::Producer {
 public:
  RepeatingProducer(messaging::Producer& target, uint32_t seed) : target_(target), rng_(seed) {}

  Status Publish(std::span<const messaging::Message> batch) override {
    if (std::uniform_int_distribution<int>(0, 5)(rng_) == 0) {
      const size_t prefix = std::uniform_int_distribution<size_t>(0, batch.size())(rng_);
      if (Status s = target_.Publish(batch.first(prefix)); !s.ok()) return s;
      ++partial;
      return absl::UnavailableError("storm: the broker accepted only part of the batch");
    }
    const int copies = std::uniform_int_distribution<int>(2, 3)(rng_);
    for (int i = 0; i < copies; ++i) {
      if (Status s = target_.Publish(batch); !s.ok()) return s;
    }
    extra_copies += static_cast<int64_t>(batch.size()) * (copies - 1);
    return absl::OkStatus();
  }

  int64_t partial = 0;       // calls that delivered a prefix and failed
  int64_t extra_copies = 0;  // messages delivered beyond their first copy by successful calls

 private:
  messaging::Producer& target_;
  std::mt19937 rng_;
};

// The relay's store, made to lose one checkpoint in three: CommitCheckpoint fails Unavailable
// and stores nothing, so the relay reads its old checkpoint again and publishes the same
// batch (and whatever came after it) once more.
class FlakyCheckpoints : public store::StoreWrapper {
 public:
  FlakyCheckpoints(store::Store& target, uint32_t seed) : StoreWrapper(target), rng_(seed) {}

  Status CommitCheckpoint(const std::string& name, const std::string& owner, int64_t position,
                          int64_t ttl) override {
    if (std::uniform_int_distribution<int>(0, 2)(rng_) == 0) {
      ++refused;
      return absl::UnavailableError("storm: the checkpoint was not written");
    }
    return StoreWrapper::CommitCheckpoint(name, owner, position, ttl);
  }

  int64_t refused = 0;

 private:
  std::mt19937 rng_;
};

// One consumer group of the storm: two members on one topic, its inbox consumer named like
// the group. After each effect a member dies one time in kKillOneIn: dropped without
// committing its offsets, so its partitions go, from their committed offsets, to the other
// member and to its replacement, which deliver the messages it had applied again.
constexpr int kKillOneIn = 500;

struct StormGroup {
  StormGroup(std::string n, std::string_view t) : name(std::move(n)), topic(t) {}
  std::string name;
  std::string topic;
  std::unique_ptr<messaging::Consumer> members[2];
  int64_t deliveries = 0;  // messages polled and handed to the inbox
  int64_t effects = 0;     // effects applied
  int64_t refused = 0;     // deliveries the inbox refused (AlreadyExists)
  int64_t kills = 0;
  // Messages a killed member applied and never committed, until they are delivered again.
  std::set<std::string> awaiting_redelivery;
  int64_t redelivered_after_kill = 0;  // of those, delivered again and refused
};

// Polls every member of `g` until none gets anything more, applying each message once through
// `inbox` and committing each partition's last handled message after a polled batch, unless
// the member died during the batch.
void Drain(StormGroup& g, messaging::Broker& broker, store::Inbox& inbox, std::mt19937& rng,
           int64_t& next_effect) {
  for (bool more = true; more;) {
    more = false;
    for (std::unique_ptr<messaging::Consumer>& member : g.members) {
      const size_t max = std::uniform_int_distribution<size_t>(1, 400)(rng);
      auto polled = member->Poll(max, std::chrono::milliseconds(0));
      REQUIRE_MESSAGE(polled.ok(), polled.status().ToString());
      if (polled->empty()) continue;
      more = true;
      std::map<int32_t, const messaging::Message*> last;  // per partition, the last handled
      std::vector<std::string> uncommitted;               // applied in this batch
      bool died = false;
      for (const messaging::Message& m : *polled) {
        ++g.deliveries;
        const std::string id(m.Header(messaging::kMessageIdHeader));
        const int64_t version = std::stoll(std::string(m.Header("version")));
        Status s = ApplyOnce(inbox, g.name, id, g.name + "/" + m.key, version, next_effect);
        last[m.partition] = &m;
        if (absl::IsAlreadyExists(s)) {
          ++g.refused;
          if (g.awaiting_redelivery.erase(id) > 0) ++g.redelivered_after_kill;
          continue;
        }
        REQUIRE_MESSAGE(s.ok(), s.ToString());
        ++g.effects;
        uncommitted.push_back(id);
        // Killed between the effect (committed with its inbox record) and the offset commit.
        if (std::uniform_int_distribution<int>(0, kKillOneIn - 1)(rng) == 0) {
          died = true;
          break;
        }
      }
      if (died) {
        ++g.kills;
        g.awaiting_redelivery.insert(uncommitted.begin(), uncommitted.end());
        member.reset();  // leaves the group without a commit
        auto fresh = broker.NewConsumer(g.name, {g.topic});
        REQUIRE_MESSAGE(fresh.ok(), fresh.status().ToString());
        member = std::move(*fresh);
        continue;
      }
      for (const auto& [partition, m] : last) {
        Status committed = member->Commit(*m);
        REQUIRE_MESSAGE(committed.ok(), committed.ToString());
      }
    }
  }
}

}  // namespace

TEST_SUITE("Duplicate storm") {
  // The real relay and the real inbox, under every duplicate at-least-once delivery can make,
  // driven from the test's thread with seeded choices (no timing: the same run every time).
  // The consumers are test consumers that apply their effect through the store's inbox API
  // (`Inbox::Process`, the primitive `PrescriptionService::ExecuteOnce` and the routing
  // service build on): routing checks the prescription's state before its inbox, so its
  // duplicates would mostly be refused before the inbox is reached, and it calls a pharmacy
  // per message. Their effects go to their own store (a consumer's database), apart from the
  // log, so that effects are not relayed in turn.
  TEST_CASE(
      "every batch delivered 2-3 times, checkpoints lost, consumers killed before their commit: "
      "no effect twice, each prescription's in order") {
    FakeClock clock;
    auto log = store::NewMemoryStore(clock);      // the event log, which is the outbox
    auto effects = store::NewMemoryStore(clock);  // the consumers': inbox records and effects
    auto broker = messaging::NewInProcessBroker();
    auto to_broker = broker->NewProducer();
    RXFLOW_REQUIRE_OK(to_broker);
    RepeatingProducer repeating(**to_broker, 1);
    FlakyCheckpoints flaky(*log, 2);
    std::mt19937 rng(3);

    std::vector<StormGroup> groups;
    groups.emplace_back("audit", messaging::topics::kAuditTrail);
    groups.emplace_back("timeline", messaging::topics::kPrescriptionEvents);
    groups.emplace_back("dispatch", messaging::topics::kRoutingRequests);
    std::map<std::string, std::string> group_of_topic;
    for (StormGroup& g : groups) {
      group_of_topic[g.topic] = g.name;
      for (std::unique_ptr<messaging::Consumer>& member : g.members) {
        auto joined = broker->NewConsumer(g.name, {g.topic});
        RXFLOW_REQUIRE_OK(joined);
        member = std::move(*joined);
      }
    }

    // Each step appends some events, runs two relay rounds (now and then with a new relay of
    // another batch size), and lets every group drain what was published.
    const int64_t total = int64_t{kStormPrescriptions} * kEventsPerPrescription;
    LogWriter writer(kStormPrescriptions, 4, 64);
    std::unique_ptr<runtime::OutboxRelay> relay;
    int64_t relays = 0, rounds = 0, failed_rounds = 0, next_effect = 0;
    bool caught_up = false;
    for (int step = 0; step < 1'000'000 && !caught_up; ++step) {
      if (!relay || std::uniform_int_distribution<int>(0, 39)(rng) == 0) {
        relay.reset();  // Stop: releases the lease
        runtime::OutboxRelayOptions o;
        o.owner = "storm-relay";
        o.batch = std::uniform_int_distribution<size_t>(16, 700)(rng);
        relay = std::make_unique<runtime::OutboxRelay>(flaky, repeating, o, &clock);
        ++relays;
      }
      if (!writer.done()) {
        auto appended = writer.Append(*log, std::uniform_int_distribution<int64_t>(1, 600)(rng));
        REQUIRE_MESSAGE(appended.ok(), appended.status().ToString());
      }
      for (int r = 0; r < 2; ++r, ++rounds) {
        auto relayed = relay->RunOnce();
        if (relayed.ok()) continue;
        // A lost checkpoint or a partly accepted batch: the same events come again.
        REQUIRE_MESSAGE(absl::IsUnavailable(relayed.status()), relayed.status().ToString());
        ++failed_rounds;
      }
      for (StormGroup& g : groups) Drain(g, *broker, *effects, rng, next_effect);
      auto backlog = runtime::RelayBacklog(*log);
      RXFLOW_REQUIRE_OK(backlog);
      caught_up = writer.done() && *backlog == 0;
    }
    REQUIRE(caught_up);
    REQUIRE(writer.appended() == total);
    CHECK(*log->HeadPosition() == total);

    // What each group must have applied: for every message of its topic, in log order, the
    // version of its event, on the stream "<group>/<prescription>".
    std::map<std::string, std::vector<int64_t>> expected;
    std::map<std::string, int64_t> expected_effects;
    for (const DerivedMessage& d : DeriveRange(*log, 0)) {
      auto it = group_of_topic.find(d.topic);
      REQUIRE_MESSAGE(it != group_of_topic.end(), d.topic);
      expected[it->second + "/" + d.stream].push_back(d.version);
      ++expected_effects[it->second];
    }
    int64_t duplicate_effects = 0;
    auto applied = AppliedEffects(*effects, duplicate_effects);
    CHECK(duplicate_effects == 0);
    CHECK(WrongStreams(expected, applied) == 0);
    CHECK(applied.size() == expected.size());
    CHECK(expected.size() == 3 * static_cast<size_t>(kStormPrescriptions));  // a stream per group

    for (const StormGroup& g : groups) {
      CAPTURE(g.name);
      CHECK(g.effects == expected_effects[g.name]);
      CHECK(g.deliveries == g.effects + g.refused);
      // Every message came at least twice: each successful Publish handed it over 2-3 times.
      CHECK(g.deliveries >= 2 * g.effects);
      CHECK(g.kills > 0);
      CHECK(g.redelivered_after_kill > 0);
      CHECK(g.awaiting_redelivery.empty());  // each was delivered again, and refused
    }
    CHECK(flaky.refused > 0);
    CHECK(repeating.partial > 0);
    CHECK(repeating.extra_copies > 0);
    MESSAGE(total << " events, " << rounds << " relay rounds (" << failed_rounds
                  << " failed: " << flaky.refused << " lost checkpoints, " << repeating.partial
                  << " partly accepted batches) by " << relays << " relays");
    for (const StormGroup& g : groups) {
      MESSAGE(g.name << ": " << g.deliveries << " deliveries, " << g.effects << " effects, "
                     << g.refused << " refused by the inbox, " << g.kills << " members killed, "
                     << g.redelivered_after_kill << " of their applied messages delivered again");
    }
  }
}

#ifndef RXFLOW_TEST_NO_FORK
namespace {

// ---- Relays in child processes ------------------------------------------------------------

// A producer whose broker is a file, so that what a relay published survives the relay's
// process: each Publish appends, in one write with O_APPEND, a record "\n<tag> <micros>
// <message id>\n" per message (the time of the call, from the system clock), and fdatasyncs
// the file before it returns (durably accepted), after `ack_delay` (a broker's acknowledgement
// takes a while: the children's kills then land between a publish and its checkpoint on fast
// storage too). A SIGKILL during the write can leave a torn record; the next writer's leading
// newline ends it, and PublicationReader counts it as torn.
// (The in-process broker dies with the child; the Kafka mock cluster is an object of the test
// process, and librdkafka is not meant to be used across fork.)
class FileProducer : public messaging::Producer {
 public:
  // `notify_fd` (when >= 0) gets a 'p' after the first successful Publish.
  FileProducer(const std::string& path, std::string tag, int notify_fd = -1,
               std::chrono::microseconds ack_delay = std::chrono::microseconds(0))
      : fd_(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)),
        tag_(std::move(tag)),
        notify_fd_(notify_fd),
        ack_delay_(ack_delay) {}
  ~FileProducer() override {
    if (fd_ >= 0) ::close(fd_);
  }
  FileProducer(const FileProducer&) = delete;
  FileProducer& operator=(const FileProducer&) = delete;

  bool ok() const { return fd_ >= 0; }

  Status Publish(std::span<const messaging::Message> batch) override {
    const std::string at = std::to_string(SystemClock().NowMicros());
    std::string out;
    for (const messaging::Message& m : batch) {
      out += '\n';
      out += tag_;
      out += ' ';
      out += at;
      out += ' ';
      out += m.Header(messaging::kMessageIdHeader);
      out += '\n';
    }
    for (size_t done = 0; done < out.size();) {
      ssize_t n = ::write(fd_, out.data() + done, out.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        return absl::UnavailableError(std::string("publish file: ") + std::strerror(errno));
      done += static_cast<size_t>(n);
    }
    if (::fdatasync(fd_) != 0) {
      return absl::UnavailableError(std::string("publish file: ") + std::strerror(errno));
    }
    if (ack_delay_.count() > 0) std::this_thread::sleep_for(ack_delay_);
    if (notify_fd_ >= 0) {
      const char c = 'p';
      if (::write(notify_fd_, &c, 1) != 1) {
        // The parent stopped listening: nothing to tell.
      }
      notify_fd_ = -1;
    }
    return absl::OkStatus();
  }

 private:
  int fd_;
  std::string tag_;
  int notify_fd_;
  std::chrono::microseconds ack_delay_;
};

// One published message, as the file holds it.
struct Publication {
  std::string tag;
  int64_t at = 0;  // system clock, microseconds
  std::string id;
};

// Reads a FileProducer's file as it grows. Keeps the complete records in order; a record torn
// by a kill (fields missing, or a message id cut short) is counted and skipped. A message id
// is whole when it ends in ":audit", ":event" or ":route" (no id is a prefix of another).
class PublicationReader {
 public:
  explicit PublicationReader(std::string path) : path_(std::move(path)) {}

  // Reads what was appended since the last call.
  void Update() {
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;  // nothing published yet
    char buf[1 << 16];
    ssize_t n;
    while ((n = ::pread(fd, buf, sizeof buf, offset_)) > 0) {
      unparsed_.append(buf, static_cast<size_t>(n));
      offset_ += n;
    }
    ::close(fd);
    size_t start = 0;
    for (size_t nl; (nl = unparsed_.find('\n', start)) != std::string::npos; start = nl + 1) {
      Parse(unparsed_.substr(start, nl - start));
    }
    unparsed_.erase(0, start);
  }

  const std::vector<Publication>& all() const { return all_; }
  int Count(const std::string& id) const {
    auto it = count_.find(id);
    return it == count_.end() ? 0 : it->second;
  }
  int64_t duplicates() const { return duplicates_; }  // publications beyond an id's first
  int64_t torn() const { return torn_; }

 private:
  static bool WholeId(const std::string& id) {
    for (std::string_view suffix : {":audit", ":event", ":route"}) {
      if (id.size() > suffix.size() &&
          id.compare(id.size() - suffix.size(), suffix.size(), suffix) == 0) {
        return true;
      }
    }
    return false;
  }

  void Parse(const std::string& line) {
    if (line.empty()) return;  // the newline that opens each record
    std::istringstream in(line);
    Publication p;
    std::string rest;
    if (!(in >> p.tag >> p.at >> p.id) || (in >> rest) || !WholeId(p.id)) {
      ++torn_;
      return;
    }
    if (++count_[p.id] > 1) ++duplicates_;
    all_.push_back(std::move(p));
  }

  std::string path_;
  off_t offset_ = 0;
  std::string unparsed_;
  std::vector<Publication> all_;
  std::unordered_map<std::string, int> count_;
  int64_t duplicates_ = 0;
  int64_t torn_ = 0;
};

// A consumer that deduplicates by message id through the inbox (of its own memory store) is
// fed every publication, in file order. Checks that it applies each message the log derives
// exactly once and, per prescription, in the order of the events' versions (a relay publishes
// in log order, and a restarted one from a checkpoint no later than what was published, so the
// first copy of each message comes in log order). Returns the deliveries it refused.
int64_t CheckEachEffectOnce(const std::vector<Publication>& published,
                            const std::vector<DerivedMessage>& derived) {
  FakeClock clock;
  auto effects = store::NewMemoryStore(clock);
  std::unordered_map<std::string, const DerivedMessage*> by_id;
  std::map<std::string, std::vector<int64_t>> expected;
  for (const DerivedMessage& d : derived) {
    by_id[d.message_id] = &d;
    expected[d.stream].push_back(d.version);
  }
  int64_t next_effect = 0, applied = 0, refused = 0, unknown = 0;
  for (const Publication& p : published) {
    auto it = by_id.find(p.id);
    if (it == by_id.end()) {
      ++unknown;
      continue;
    }
    Status s =
        ApplyOnce(*effects, "consumer", p.id, it->second->stream, it->second->version, next_effect);
    if (absl::IsAlreadyExists(s)) {
      ++refused;
      continue;
    }
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    ++applied;
  }
  CHECK(unknown == 0);  // nothing published that the log does not mean
  CHECK(applied == static_cast<int64_t>(derived.size()));
  int64_t duplicate_effects = 0;
  auto got = AppliedEffects(*effects, duplicate_effects);
  CHECK(duplicate_effects == 0);
  CHECK(WrongStreams(expected, got) == 0);
  return refused;
}

// Parent side of a forked relay: SIGKILLs and reaps it, also when an assertion ends the test
// early.
class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {}
  ~Child() { Kill(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // SIGKILLs the child and reaps it; true when it died of this SIGKILL (it was still running).
  bool Kill() {
    if (pid_ <= 0) return false;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  }

 private:
  pid_t pid_;
};

StatusOr<std::unique_ptr<store::Store>> OpenStore(const std::string& db) {
  store::SqliteOptions options;
  options.path = db;
  return store::OpenSqliteStore(options);
}

// The child: opens the store, starts the real OutboxRelay (its own loop, Start) publishing to
// the file (acknowledged 2 ms after the fdatasync), writes 'r' to `notify_fd` once started (its
// FileProducer writes 'p' after the first publish), and runs until it is killed.
[[noreturn]] void RunRelayChild(const std::string& db, const std::string& published,
                                const std::string& tag, runtime::OutboxRelayOptions options,
                                int notify_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test (it waits for our output pipe)
  auto st = OpenStore(db);
  if (!st.ok()) _exit(3);
  FileProducer producer(published, tag, notify_fd, std::chrono::milliseconds(2));
  if (!producer.ok()) _exit(4);
  runtime::OutboxRelay relay(**st, producer, std::move(options));
  relay.Start();
  const char c = 'r';
  if (::write(notify_fd, &c, 1) != 1) _exit(5);
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

struct ForkedRelay {
  pid_t pid = -1;
  int notify = -1;  // read end: 'r' once started, 'p' after its first publish
};

// Forks a relay child. Call with no store open in this process (no threads of ours to copy).
ForkedRelay ForkRelay(const std::string& db, const std::string& published, const std::string& tag,
                      const runtime::OutboxRelayOptions& options) {
  const testing::PipedChild child = testing::ForkPiped();
  REQUIRE(child.pid >= 0);
  if (child.pid == 0) RunRelayChild(db, published, tag, options, child.fd);
  return ForkedRelay{child.pid, child.fd};
}

// Waits up to `timeout` for byte `want` on `fd`, skipping others; false on timeout or end of
// file (the child died).
bool WaitForByte(int fd, char want, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          end - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    char c;
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    if (c == want) return true;
  }
}

// The relay subscription's row as the database holds it (nullopt when it cannot be read).
struct LeaseRow {
  std::string owner;
  int64_t lease_until = 0;  // microseconds, the holder's clock
  int64_t position = 0;     // the checkpoint
};

std::optional<LeaseRow> ReadRelayLease(const std::string& db) {
  sqlite3* raw = nullptr;
  std::optional<LeaseRow> row;
  // Read-write (it only reads): a connection that may write can recover the WAL index should a
  // killed process have left it to recover.
  if (sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(raw, 10'000);
    sqlite3_stmt* q = nullptr;
    if (sqlite3_prepare_v2(raw,
                           "SELECT owner, lease_until, position FROM subscriptions WHERE name = ?1",
                           -1, &q, nullptr) == SQLITE_OK &&
        sqlite3_bind_text(q, 1, store::kRelaySubscription, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
      row.emplace();
      row->owner = reinterpret_cast<const char*>(sqlite3_column_text(q, 0));
      row->lease_until = sqlite3_column_int64(q, 1);
      row->position = sqlite3_column_int64(q, 2);
    }
    sqlite3_finalize(q);
  }
  sqlite3_close(raw);
  return row;
}

// Kill rounds: RXFLOW_CRASH_ROUNDS when set (`make soak`: 500), else 50.
int RelayKillRounds() {
  const char* env = std::getenv("RXFLOW_CRASH_ROUNDS");
  return env ? std::max(1, std::atoi(env)) : 50;
}

}  // namespace

TEST_SUITE("Crash safety") {
  // Each round forks a child that runs the real OutboxRelay (Start: its own loop; owner
  // "relay-crash", as a restarted relay keeps its id; batch 5) over the SQLite file, publishing
  // to a FileProducer. The parent appends 60 events meanwhile from a thread, waits for the
  // child's first publish, SIGKILLs it 0-20 ms later, and checks that every message of every
  // event up to the stored checkpoint is in the file: the checkpoint never passes what was not
  // published. Rounds go on (50; RXFLOW_CRASH_ROUNDS) until some kill landed between a publish
  // and its checkpoint (a message published twice), at most 200 more. Then one relay runs to
  // completion in the parent, and every event appended must have its messages published, and
  // a consumer deduplicating through the inbox must apply each exactly once.
  TEST_CASE("the relay SIGKILLed at random moments publishes every event, each effect once") {
    TempDir dir("rxflow-relay-crash");
    const std::string db = (dir.path / "store.db").string();
    const std::string published = (dir.path / "published.log").string();
    RXFLOW_REQUIRE_OK(OpenStore(db));  // the schema, before any child
    LogWriter writer(1 << 30, 11, 16);
    PublicationReader reader(published);
    runtime::OutboxRelayOptions options;
    options.owner = "relay-crash";
    options.batch = 5;
    std::mt19937 rng(20261201);
    const int min_rounds = RelayKillRounds();
    int rounds = 0, kills = 0, rounds_with_duplicates = 0;
    int64_t checked_up_to = 0, duplicates_before = 0;
    for (; rounds < min_rounds || (reader.duplicates() == 0 && rounds < min_rounds + 200);
         ++rounds) {
      CAPTURE(rounds);
      ForkedRelay forked = ForkRelay(db, published, "r" + std::to_string(rounds), options);
      Child child(forked.pid);
      auto st = OpenStore(db);
      REQUIRE_MESSAGE(st.ok(), st.status().ToString());
      store::Store& parent = **st;
      Status appended;
      std::thread appender(
          [&writer, &parent, &appended] { appended = writer.Append(parent, 60).status(); });
      const bool publishing = WaitForByte(forked.notify, 'p', std::chrono::seconds(30));
      if (publishing) {
        std::this_thread::sleep_for(
            std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 20)(rng)));
      }
      const bool killed = child.Kill();
      appender.join();
      ::close(forked.notify);
      REQUIRE_MESSAGE(publishing, "the relay child published nothing within 30 s");
      REQUIRE_MESSAGE(appended.ok(), appended.ToString());
      kills += killed;

      reader.Update();
      auto checkpoint = parent.SubscriptionCheckpoint(store::kRelaySubscription);
      RXFLOW_REQUIRE_OK(checkpoint);
      CHECK(*checkpoint >= checked_up_to);
      int64_t unpublished = 0;
      for (const DerivedMessage& d : DeriveRange(parent, checked_up_to, *checkpoint)) {
        unpublished += reader.Count(d.message_id) == 0;
      }
      CHECK_MESSAGE(unpublished == 0, "the checkpoint passed messages never published");
      checked_up_to = *checkpoint;
      rounds_with_duplicates += reader.duplicates() > duplicates_before;
      duplicates_before = reader.duplicates();
      st->reset();  // no store, and so no thread, at the next fork
    }

    // One relay to completion (the same owner: no lease to wait for).
    auto st = OpenStore(db);
    RXFLOW_REQUIRE_OK(st);
    {
      FileProducer producer(published, "final");
      REQUIRE(producer.ok());
      options.batch = 512;
      runtime::OutboxRelay relay(**st, producer, options);
      for (int i = 0; i < 100'000; ++i) {
        auto backlog = runtime::RelayBacklog(**st);
        RXFLOW_REQUIRE_OK(backlog);
        if (*backlog == 0) break;
        auto relayed = relay.RunOnce();
        REQUIRE_MESSAGE(relayed.ok(), relayed.status().ToString());
      }
    }
    auto head = (*st)->HeadPosition();
    RXFLOW_REQUIRE_OK(head);
    CHECK(*head == writer.appended());  // every acknowledged append is in the log
    auto final_checkpoint = (*st)->SubscriptionCheckpoint(store::kRelaySubscription);
    RXFLOW_REQUIRE_OK(final_checkpoint);
    CHECK(*final_checkpoint == *head);
    reader.Update();
    const std::vector<DerivedMessage> derived = DeriveRange(**st, 0);
    int64_t missing = 0;
    for (const DerivedMessage& d : derived) missing += reader.Count(d.message_id) == 0;
    CHECK(missing == 0);  // every event appended was published, at least once
    CHECK(kills == rounds);
    CHECK(reader.duplicates() > 0);  // some kills landed between a publish and its checkpoint
    const int64_t refused = CheckEachEffectOnce(reader.all(), derived);
    CHECK(refused == reader.duplicates());
    MESSAGE(rounds << " relays killed; " << *head << " events, " << derived.size() << " messages, "
                   << reader.all().size() << " publications (" << reader.duplicates()
                   << " again, after kills in " << rounds_with_duplicates << " rounds; "
                   << reader.torn() << " records torn by a kill)");
    st->reset();
  }

  // Two relay processes on one subscription (lease 5 s, the default; batch 5): A is started
  // first and publishes, then B, which stands by. While the parent appends, A is SIGKILLed at
  // a random moment; then the rest is appended. B must publish everything: nothing before A's
  // lease (as stored when A died) ran out, starting at A's checkpoint, within a standby poll
  // (1 s) of the lease's end plus a generous allowance for a loaded machine. In the file, A's
  // publications all come before B's.
  TEST_CASE("a standby relay process takes over a SIGKILLed one once its lease runs out") {
    TempDir dir("rxflow-relay-failover");
    const std::string db = (dir.path / "store.db").string();
    const std::string published = (dir.path / "published.log").string();
    LogWriter writer(1 << 30, 12, 16);
    {
      auto st = OpenStore(db);
      RXFLOW_REQUIRE_OK(st);
      RXFLOW_REQUIRE_OK(writer.Append(**st, 100));
    }
    runtime::OutboxRelayOptions options;
    options.batch = 5;
    options.owner = "relay-a";
    ForkedRelay a = ForkRelay(db, published, "A", options);
    Child a_child(a.pid);
    REQUIRE_MESSAGE(WaitForByte(a.notify, 'p', std::chrono::seconds(30)),
                    "relay A published nothing within 30 s");
    options.owner = "relay-b";
    ForkedRelay b = ForkRelay(db, published, "B", options);
    Child b_child(b.pid);
    REQUIRE_MESSAGE(WaitForByte(b.notify, 'r', std::chrono::seconds(30)), "relay B did not start");

    auto st = OpenStore(db);
    RXFLOW_REQUIRE_OK(st);
    store::Store& parent = **st;
    std::mt19937 rng(5);
    Status appended;
    std::thread appender(
        [&writer, &parent, &appended] { appended = writer.Append(parent, 100).status(); });
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 50)(rng)));
    const int64_t killed_at = SystemClock().NowMicros();
    const bool a_killed = a_child.Kill();
    const std::optional<LeaseRow> at_kill = ReadRelayLease(db);
    appender.join();
    REQUIRE_MESSAGE(appended.ok(), appended.ToString());
    CHECK(a_killed);
    REQUIRE(at_kill.has_value());
    CHECK(at_kill->owner == "relay-a");       // A held the lease when it died: B stood by
    CHECK(at_kill->lease_until > killed_at);  // and it had not run out yet

    // The rest, appended while no relay is active; B must publish everything.
    RXFLOW_REQUIRE_OK(writer.Append(parent, 100));
    const std::vector<DerivedMessage> derived = DeriveRange(parent, 0);
    PublicationReader reader(published);
    const bool all_published = testing::WaitFor(
        [&reader, &derived] {
          reader.Update();
          for (const DerivedMessage& d : derived) {
            if (reader.Count(d.message_id) == 0) return false;
          }
          return true;
        },
        options.lease + std::chrono::seconds(60));
    const bool b_was_running = b_child.Kill();
    ::close(a.notify);
    ::close(b.notify);
    REQUIRE_MESSAGE(all_published, "the standby did not publish the rest");
    CHECK(b_was_running);

    int64_t from_a = 0, from_b = 0, a_after_b = 0;
    const Publication* first_b = nullptr;
    for (const Publication& p : reader.all()) {
      if (p.tag == "A") {
        ++from_a;
        a_after_b += from_b > 0;
      } else if (p.tag == "B") {
        if (first_b == nullptr) first_b = &p;
        ++from_b;
      }
    }
    CHECK(from_a > 0);
    REQUIRE(first_b != nullptr);
    CHECK(a_after_b == 0);
    // Not before A's lease ran out; then within the standby's poll, plus 20 s for a loaded
    // machine.
    CHECK(first_b->at >= at_kill->lease_until);
    const int64_t takeover = first_b->at - at_kill->lease_until;
    CHECK(takeover <= 21'000'000);
    // From A's checkpoint: B's first message is the first of the event after it.
    auto next = std::find_if(derived.begin(), derived.end(), [&at_kill](const DerivedMessage& d) {
      return d.global_position == at_kill->position + 1;
    });
    REQUIRE(next != derived.end());
    CHECK(first_b->id == next->message_id);
    CheckEachEffectOnce(reader.all(), derived);
    MESSAGE("A published " << from_a << ", B " << from_b << "; B took over "
                           << (first_b->at - killed_at) / 1000 << " ms after the kill, "
                           << takeover / 1000 << " ms after A's lease ran out");
    st->reset();
  }
}
#endif  // RXFLOW_TEST_NO_FORK
