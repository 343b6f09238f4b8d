// SPDX-License-Identifier: Apache-2.0
// Private: the state PrescriptionService shares between its translation units — service.cc
// (commands and submit) and projections.cc (the read models).
#ifndef RXFLOW_SRC_SERVICE_IMPL_H_
#define RXFLOW_SRC_SERVICE_IMPL_H_

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "rxflow/clock.h"
#include "rxflow/domain/prescription.h"
#include "rxflow/service.h"
#include "rxflow/status.h"
#include "rxflow/store/event_store.h"

namespace rxflow {

struct PrescriptionService::Impl {
  store::Store& store;
  ServiceOptions options;
  Clock& clock;
  IdGenerator& ids;
  std::mutex projector_mu;  // one Project() at a time
  std::mutex index_mu;      // one message-index catch-up at a time

  // The last committed state of recently touched prescriptions. Events are immutable and
  // versions gapless, so a cached state at version v plus the stream's events after v is
  // the current state, whoever appended them: the cache saves decoding (the NewRx payload
  // above all) and is never authoritative. Bounded: cleared when it grows past kStates.
  // Each entry keeps the stream's tenant too (its first event's), which never changes.
  static constexpr size_t kStates = 65536;
  struct CachedState {
    domain::PrescriptionState state;
    std::string tenant;
  };
  std::mutex states_mu;
  std::unordered_map<std::string, CachedState> states;

  // The prescription of each SCRIPT message id this process committed (a NewRx's, a
  // CancelRx's): a pharmacy's answer names one in RelatesToMessageID, and FindByMessageId
  // finds it here instead of reading the message index — which, for a message sent a moment
  // ago, it would first have to catch up from the log (a read, the events decoded, a write).
  // A message id belongs to one prescription for good, so an entry is never stale; a miss
  // (another process's message, one from before a restart) reads the index. Bounded: cleared
  // when it grows past kMessages.
  static constexpr size_t kMessages = 65536;
  std::mutex messages_mu;
  std::unordered_map<std::string, std::string> messages;
  // The SCRIPT message id an event gives its prescription (a NewRx's, a CancelRx's), or
  // nullptr: the one rule both this memory and the message index follow.
  static const std::string* MessageIdOf(const domain::Event& e);
  // Remembers the message ids that committed `events` of prescription `id` carry.
  void RememberMessages(const std::string& id, std::span<const domain::Event> events);
  std::optional<std::string> FindMessage(const std::string& message_id);

  // The NewRx of each prescription this process submitted, kept until its first
  // transmission so that routing neither reads the stream back nor opens the sealed payload
  // again. Trusted only while the prescription's last NewRx-carrying event is the one kept
  // (PrescriptionState::newrx_version); otherwise, and on a miss, the stream is read. Taken
  // by the first look; older than kOutboundTtlMicros it is dropped unread (so that a
  // crypto-erasure made meanwhile, in any process, holds for transmission within that
  // time; the next submission after kOutboundSweepMicros sweeps them out of memory); at most
  // kOutboundBytes of XML are kept (beyond, nothing more is kept).
  static constexpr int64_t kOutboundTtlMicros = 5'000'000;
  static constexpr int64_t kOutboundSweepMicros = 1'000'000;
  static constexpr size_t kOutboundBytes = size_t{32} << 20;
  struct Outbound {
    int64_t version = 0;  // of the event that carried it
    std::string xml;
    int64_t accepted_at = 0;
    int64_t kept_at = 0;
  };
  std::atomic<bool> keep_outbound{false};  // KeepNewRxForTransmission
  std::mutex outbound_mu;
  std::unordered_map<std::string, Outbound> outbound;
  size_t outbound_bytes = 0;
  int64_t outbound_swept_at = 0;
  void KeepOutbound(const std::string& id, Outbound entry);
  std::optional<Outbound> TakeOutbound(const std::string& id);

  // The submissions this process stored, by idempotency key: a replay of one (a client's
  // retry, the same prescription sent again) is answered from here and the state cache,
  // without transforming it into a second sealed append that the store refuses, and without
  // reading the stream back. A key on its way to the store is claimed: the same key submitted
  // meanwhile waits for that submission and takes its answer (or, if it failed, goes on
  // itself). Never the word on "new": a miss goes on to the append, whose AlreadyExists finds
  // what another process, or this one before a restart, stored. Bounded: cleared when it
  // grows past kRecentSubmissions.
  static constexpr size_t kRecentSubmissions = 65536;
  struct RecentSubmission {
    std::string id;
    std::string request_sha256;  // of the request that created it
    int64_t created_at = 0;
    std::vector<clinical::InteractionFinding> interactions;  // as its first answer had them
  };
  std::mutex recent_mu;
  std::unordered_map<std::string, RecentSubmission> recent;
  struct Claimed {
    std::condition_variable released_cv;  // waited on with recent_mu held
    bool released = false;
  };
  std::unordered_map<std::string, std::shared_ptr<Claimed>> claimed;  // by key
  // The claim of a key by the submission that stores it; released when it goes out of scope,
  // with the stored submission when Complete was called.
  class KeyClaim {
   public:
    KeyClaim() = default;
    KeyClaim(const KeyClaim&) = delete;
    KeyClaim& operator=(const KeyClaim&) = delete;
    ~KeyClaim() { Release(std::nullopt); }
    void Complete(RecentSubmission stored) { Release(std::move(stored)); }

   private:
    friend struct Impl;
    void Release(std::optional<RecentSubmission> stored);
    Impl* impl_ = nullptr;
    std::string key_;
    std::shared_ptr<Claimed> claimed_;
  };
  // The submission this process stored under `key`, waiting for one on its way; otherwise
  // nullopt, and `claim` holds the key.
  std::optional<RecentSubmission> ClaimKey(const std::string& key, KeyClaim& claim);

  Impl(store::Store& s, ServiceOptions o);

  CachedState Cached(const std::string& id);
  void Remember(const std::string& id, const domain::PrescriptionState& s,
                const std::string& tenant);
  // The current state of `id` read through `es` (the store, or an inbox transaction);
  // NotFound as for an unknown id when `ctx` names a tenant that is not the stream's.
  // `tenant` (optional) receives the stream's tenant.
  StatusOr<domain::PrescriptionState> CurrentState(store::EventStore& es, const std::string& id,
                                                   const RequestContext& ctx,
                                                   std::string* tenant = nullptr);

  // Event records for new events of stream `id` after `version` (what they mean for other
  // systems is derived from them by the relay: runtime/messages.h).
  void Records(const std::string& id, int64_t version, const std::vector<domain::Event>& events,
               const RequestContext& ctx, store::AppendRequest& req);

  // The stream's records, oldest first; NotFound when it has none, when it is not a
  // prescription, or when `ctx` names another tenant (the same answer: no existence oracle).
  StatusOr<std::vector<store::EventRecord>> Stream(const std::string& id,
                                                   const RequestContext& ctx = {});
  // Decodes records with the service's upcasters.
  StatusOr<domain::Event> DecodeOne(const store::EventRecord& r) const;
  StatusOr<std::vector<domain::Event>> Decode(const std::vector<store::EventRecord>& records) const;

  static Submission Make(const std::string& id, bool created, const domain::PrescriptionState& s,
                         const std::string& key, int64_t created_at);
  // The submission an idempotency key already names. With `request_sha256` (a caller's own
  // key), FailedPrecondition when that submission's request had another digest.
  // `found` (optional) receives what a later replay in this process needs of it.
  StatusOr<Submission> Replayed(const std::string& id, const std::string& key,
                                const RequestContext& ctx, const std::string& request_sha256 = {},
                                RecentSubmission* found = nullptr);
  // The same from this process's memory: the current state through the state cache.
  StatusOr<Submission> Replayed(const RecentSubmission& recent, const std::string& key,
                                const RequestContext& ctx, const std::string& request_sha256);

  // Interaction screening of a NewRx about to be stored (interaction_screening.cc): the
  // event to record (none when no rule of the knowledge base concerns the drug), or
  // FailedPrecondition when a contraindicated finding blocks it. `findings` receives what
  // was found.
  // `hold` receives the patient's hold, which the caller keeps until the prescription is
  // appended.
  struct PatientHold {
    PatientHold() = default;
    PatientHold(const PatientHold&) = delete;
    PatientHold& operator=(const PatientHold&) = delete;
    ~PatientHold() {
      if (leases != nullptr) (void)leases->ReleaseLease(lease, owner);
    }
    // This process: the patient's stripe.
    std::unique_lock<std::mutex> local;
    // Every process sharing the store (block mode): the lease "screening:<patient ref>".
    store::Subscriptions* leases = nullptr;
    std::string lease, owner;
  };
  // Whether ScreenInteractions will screen `out` (a rule of the knowledge base concerns its
  // drug) and so read the patient's prescriptions.
  bool Screens(const ScriptOutput& out) const;
  StatusOr<std::optional<domain::InteractionsScreened>> ScreenInteractions(
      const ScriptOutput& out, const RequestContext& ctx, IssueList& issues,
      std::vector<clinical::InteractionFinding>& findings, PatientHold& hold);
  // Takes the store lease of `hold` (block mode), waiting up to kScreeningLeaseWait;
  // Unavailable when another process holds it that long.
  Status HoldPatientAcrossProcesses(const std::string& patient_ref, PatientHold& hold);
  // The prescriptions the patient index has for `patient_ref`, after catching it up.
  struct PatientMedication {
    std::string id;
    std::string drug;
    std::vector<clinical::ScreenedIngredient> ingredients;
  };
  StatusOr<std::vector<PatientMedication>> PatientMedications(const std::string& patient_ref);
  // A stored NewRx as a read model keyed by patient sees it.
  struct IndexedNewRx {
    const store::EventRecord& record;
    const domain::PrescriptionTransformed& event;
    const script::NewRx& newrx;
    const std::string& patient_ref;
    const clinical::DrugProduct* product;  // the drug database's, or nullptr
  };
  // Catches the read model `index` (rows: key → JSON array of members, each with "id") up
  // from the log, under `mu`: every stored NewRx whose event payload contains
  // `payload_filter` (skipped before decoding otherwise) and whose patient can be referenced
  // is offered to `member`, which sets the row key and the member (with "id") and returns
  // true to add it; a member is added once per prescription, whoever else catches up. Used
  // by the patient index and the Schedule II series index.
  Status CatchUpNewRxIndex(const char* index, std::mutex& mu, std::string_view payload_filter,
                           const std::function<bool(const IndexedNewRx&, std::string& key,
                                                    nlohmann::json& member)>& member);
  std::mutex patient_index_mu;  // one patient-index catch-up at a time
  // The Schedule II series rule (21 CFR 1306.12(b); schedule2_series.cc): a Schedule II NewRx
  // that joins other active ones of the same substance, patient, prescriber and day written
  // is refused (FailedPrecondition, business-rule issues) when together they exceed a 90-day
  // supply, a days' supply is missing, or more than one lacks an earliest fill date. Takes the
  // patient's hold (this process and the store lease) when `hold` has not.
  Status CheckScheduleIISeries(const ScriptOutput& out, const RequestContext& ctx,
                               IssueList& issues, PatientHold& hold);
  std::mutex series_index_mu;  // one series-index catch-up at a time
  // Screening and appending one patient's prescription, striped by patient reference.
  std::array<std::mutex, 64> patient_locks;

  // A finding as the InteractionsScreened event records it, and back
  // (interaction_screening.cc).
  static domain::InteractionRecord RecordOf(const clinical::InteractionFinding& f);
  static clinical::InteractionFinding FindingOf(const domain::InteractionRecord& r);
  // The findings of the InteractionsScreened events among `events`, as Submit answered them.
  static std::vector<clinical::InteractionFinding> InteractionsOf(
      const std::vector<domain::Event>& events);

  // The summary of `s` (without the times: the caller knows them).
  static PrescriptionSummary SummaryOf(const std::string& id, const domain::PrescriptionState& s);

  // Submit, in two steps around its append (service.cc): what the first step decided and
  // the second needs. Holds the key's claim and the patient's hold until it is destroyed.
  struct PendingSubmit {
    RequestContext ctx;
    std::string id, key, request_sha256, compare_sha256;
    int64_t created = 0;
    std::vector<domain::Event> events;
    std::vector<clinical::InteractionFinding> findings;
    KeyClaim claim;
    PatientHold patient_lock;
    // Whether the patient's hold is taken: then it is released by the thread that took it.
    bool holds_patient() const {
      return patient_lock.local.owns_lock() || patient_lock.leases != nullptr;
    }
  };
  // Submit up to its append: an answer (refused, a replay), or nullopt with `req` to append
  // and `pending` to finish with.
  std::optional<StatusOr<Submission>> PrepareSubmit(std::string_view fhir_json, IssueList& issues,
                                                    std::string_view idempotency_key,
                                                    PendingSubmit& pending,
                                                    store::AppendRequest& req);
  // Submit after its append.
  StatusOr<Submission> FinishSubmit(PendingSubmit& pending,
                                    const StatusOr<store::AppendResult>& appended);
  // SubmitAsync's answers still to come (the destructor waits for them).
  std::mutex async_mu;
  std::condition_variable async_cv;
  int64_t async_pending = 0;
};

}  // namespace rxflow

#endif  // RXFLOW_SRC_SERVICE_IMPL_H_
