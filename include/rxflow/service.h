// SPDX-License-Identifier: Apache-2.0
// File: rxflow/service.h
//
// The application service: FHIR in, an event-sourced prescription out. It composes the
// transform (parse, map, check, write SCRIPT), the Prescription aggregate, and a store,
// and keeps a read model of prescription summaries.
//
// Submit is idempotent: the same prescription (by its idempotency key, rxflow/idempotency.h,
// or the caller's own key) returns the same id and writes nothing new, also when
// duplicates race in parallel threads or processes sharing the store. A submission is
// durable when Submit returns: its events and idempotency key are one store transaction.
//
// Thread-safety: all methods are safe for concurrent use.
#ifndef RXFLOW_SERVICE_H_
#define RXFLOW_SERVICE_H_

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <absl/functional/any_invocable.h>
#include <absl/functional/function_ref.h>

#include "rxflow/clinical/interactions.h"
#include "rxflow/clinical/pdmp.h"
#include "rxflow/clock.h"
#include "rxflow/domain/prescription.h"
#include "rxflow/issue.h"
#include "rxflow/status.h"
#include "rxflow/store/event_store.h"
#include "rxflow/transform.h"

namespace rxflow {

// The tenant of clients configured without one of their own (API_KEYS), and of prescriptions
// stored before RxFlow had tenants (their events carry an empty tenant).
inline constexpr std::string_view kDefaultTenant = "default";

// Who and why, carried on every event.
struct RequestContext {
  std::string actor;  // the authenticated user or system ("prescriber:<client id>", ...)
  // The caller's tenant. Its submissions' events carry it, and it sees and commands only
  // prescriptions whose stream has the same tenant: any other id is NotFound, exactly as an
  // unknown one. Empty: a system caller (routing, relays, tools, a single-tenant
  // embedding) that sees every prescription. Streams with an empty tenant belong to
  // kDefaultTenant.
  std::string tenant;
  std::string correlation_id;  // default: a new id
  std::string traceparent;     // W3C trace context
};

struct ServiceOptions {
  // Secret for the patient part of the idempotency key (>= 16 bytes). Required.
  std::string patient_key;
  // `transform.profile`, when set, must outlive the service (not just one call).
  TransformOptions transform;
  // Default: SystemClock() / RandomIds(). Must outlive the service.
  Clock* clock = nullptr;
  IdGenerator* ids = nullptr;
  // Queue a prescription for routing in the submission's own transaction when it can go
  // at once (not a controlled substance: those wait for their signature). One append
  // instead of two; what `rxflow serve` does.
  bool route_on_submit = false;
  // Drug–drug interaction screening of each new prescription (rxflow/clinical/interactions.h)
  // against the same patient's other active prescriptions in this store (same tenant; the
  // patient matched by PatientReference: name, birth date, gender, MRN), when a rule of the
  // knowledge base concerns the new drug. The result is recorded as an InteractionsScreened
  // event with the submission, and each finding is a warning in the submission's issues. In
  // one process, a patient's screening and append are serialized (docs/clinical.md says what
  // holds across processes). nullptr: no screening. Must outlive the service.
  const clinical::InteractionKnowledgeBase* interactions = nullptr;
  // Contraindicated findings refuse the submission (FailedPrecondition: HTTP 422, nothing
  // stored) unless the MedicationRequest carries RxFlow's interaction-override extension
  // with a reason, which is recorded. Default: findings are warnings only. In this mode a
  // patient's screening and append also hold the store lease "screening:<patient ref>", so
  // the rule holds across processes sharing the store (a submission waits up to 5 s for
  // another's, then Unavailable).
  bool block_contraindicated = false;
  // How events stored under an older schema version are upcast when the service reads them
  // (see domain::UpcasterRegistry). Default: the built-in upcasters; `Register` adds to them.
  domain::UpcasterRegistry upcasters = domain::UpcasterRegistry::Builtin();
  // Under a store that seals PHI (phi::NewProtectedStore), the log as stored: its target.
  // The reads that need no PHI (the SCRIPT message-id index an inbound response is matched
  // by) then read it there and open no sealed NewRx. Null: everything reads the service's
  // store. It must be the same log, and outlive the service.
  store::Store* log_as_stored = nullptr;
};

struct Submission {
  std::string id;
  bool created = false;  // false: an idempotent replay of an earlier submission
  // The prescription's state after the submission (Transformed, ReadyToSign, or Queued when
  // routed on submit); domain::StateName gives its name ("Transformed", ...).
  domain::State state = domain::State::kNone;
  std::string idempotency_key;
  bool is_controlled = false;
  std::string created_at;  // RFC 3339 UTC
  // Interaction findings of this submission; a replay answers with those recorded when the
  // prescription was created (its InteractionsScreened event).
  std::vector<clinical::InteractionFinding> interactions;
};

// The read model's row for one prescription (JSON in the projection store, where the state
// is the "status" member, by name: see EncodeSummary).
struct PrescriptionSummary {
  std::string id;
  domain::State state = domain::State::kNone;
  std::string pharmacy_ncpdp_id;
  bool is_controlled = false;
  std::string dea_schedule;
  std::string message_id;
  std::string created_at;
  std::string updated_at;
  int64_t version = 0;
};

class PrescriptionService {
 public:
  // `store` must outlive the service.
  static StatusOr<std::unique_ptr<PrescriptionService>> Create(store::Store& store,
                                                               ServiceOptions options);
  ~PrescriptionService();

  // Transforms and stores a prescription. InvalidArgument / FailedPrecondition /
  // ResourceExhausted as rxflow::ToScript, with `issues`; nothing is stored then. With a
  // non-empty `idempotency_key` the caller's key is used instead of the content key, and a
  // replay must bring the same body: another body under a used key is FailedPrecondition
  // (naming Idempotency-Key). Both kinds of key are scoped by ctx.tenant. A replay of a
  // submission this service stored is answered from memory; the same key submitted while
  // another call stores it waits for that call's answer (docs/event-model.md, "Idempotent
  // submit").
  StatusOr<Submission> Submit(std::string_view fhir_json, IssueList& issues,
                              const RequestContext& ctx = {},
                              std::string_view idempotency_key = {});

  // What SubmitAsync calls with Submit's answer and the issues Submit would have given.
  using SubmitDone = absl::AnyInvocable<void(StatusOr<Submission>, IssueList)>;
  // Submit without waiting for the store: the prescription is transformed, checked and
  // handed to the store's asynchronous append (store::EventStore::AppendAsync) on this
  // thread, and `done` is called exactly once with what Submit would return — on this
  // thread before SubmitAsync returns when the answer needs no append (refused, a replay)
  // or the store appends synchronously, otherwise on the store's thread after the commit
  // (keep `done` short there: SQLite's writer holds its next batch meanwhile). Submissions
  // screened for interactions, or checked as a Schedule II series, hold the patient until
  // stored and are appended on this thread. `fhir_json` is read before SubmitAsync returns.
  // The service waits, when destroyed, for every `done` still to come.
  void SubmitAsync(std::string_view fhir_json, const RequestContext& ctx,
                   std::string_view idempotency_key, SubmitDone done);

  // The prescription's current summary (from its events). NotFound for an unknown id (or
  // one of another tenant than ctx.tenant, see RequestContext).
  StatusOr<PrescriptionSummary> Get(const std::string& id, const RequestContext& ctx = {});
  // Its events, oldest first. NotFound as Get.
  StatusOr<std::vector<store::EventRecord>> History(const std::string& id,
                                                    const RequestContext& ctx = {});
  // The aggregate state: the service's committed-state cache plus the events after its
  // version (all of them, on a miss), so that only what is new is decoded. NotFound as Get.
  StatusOr<domain::PrescriptionState> Load(const std::string& id, const RequestContext& ctx = {});

  // What the routing service needs to transmit a prescription, read in one pass over its
  // stream: the current state (through the committed-state cache, as Load), the NewRx as
  // it goes out (as transformed, or as signed under EPCS; empty when none is stored, or it
  // was erased with the patient's data key) and when it was accepted. Only the events after
  // the cached version and the ones carrying the NewRx are decoded; a NewRx this process
  // kept at submission (KeepNewRxForTransmission) spares the rest of the read. For system
  // components (routing): no tenant is checked, and the NewRx holds the patient's data. NotFound
  // for an unknown id or a stream that is not a prescription.
  struct PendingTransmission {
    domain::PrescriptionState state;
    std::string newrx_xml;
    int64_t accepted_at_micros = 0;
  };
  StatusOr<PendingTransmission> ForTransmission(const std::string& id);
  // From now on, each NewRx that Submit queues is also kept in memory for its transmission,
  // so that ForTransmission finds it without reading the stream (bounded: 32 MiB, 5 s, taken
  // by the first look). A RoutingService built on this service calls it: only a process
  // that routes keeps them.
  void KeepNewRxForTransmission();

  // Runs a command against the prescription: decide, append (with optimistic concurrency,
  // retried on Aborted); the relay derives what the events mean from the log. FailedPrecondition
  // when the command is illegal in the current state.
  Status Execute(const std::string& id, const domain::Command& command,
                 const RequestContext& ctx = {});

  // Shorthands for the common commands.
  Status Route(const std::string& id, const RequestContext& ctx = {});
  Status Cancel(const std::string& id, const std::string& reason, const RequestContext& ctx = {});
  // A pharmacy message (Status, Verify, Error, RxFill, CancelRxResponse) → its command.
  Status RecordPharmacyResponse(const std::string& id, const script::Message& message,
                                const RequestContext& ctx = {});

  // Asks `pdmp` for the controlled-substance history of the prescription's patient (name,
  // birth date, gender and ZIP from its NewRx; its prescriber as the requester: PdmpQueryFor)
  // and records the query as a PdmpQueried event: who asked (ctx.actor), when, of which
  // PDMP, the outcome and how many dispensings from how many pharmacies — not the history.
  // Returns the PDMP's answer; when the PDMP cannot be reached, a result with outcome
  // kUnavailable and the transport's words (recorded as such). Errors are RxFlow's own:
  // NotFound as Get; FailedPrecondition in a terminal state or when the NewRx lacks the
  // patient's name or birth date (nothing is asked then); the store's errors.
  StatusOr<clinical::pdmp::Result> QueryPdmp(const std::string& id, clinical::pdmp::Client& pdmp,
                                             const RequestContext& ctx = {});

  // Exactly-once effects for consumers: runs `commands` in order against the prescription
  // in ONE store transaction together with the inbox record (consumer, message_id).
  // AlreadyExists (nothing runs) when `consumer` processed `message_id` before. When a
  // command is illegal in the state it meets (FailedPrecondition) or malformed, nothing is
  // written, the inbox record included. NotFound for an unknown id.
  Status ExecuteOnce(const std::string& consumer, const std::string& message_id,
                     const std::string& id, std::span<const domain::Command> commands,
                     const RequestContext& ctx = {});
  // The same, first checking `precondition` against the state the commands meet, inside the
  // transaction: what it refuses (any non-OK Status, returned as it is) writes nothing, the
  // inbox record included, so the message can be sent again once it would pass. A check
  // made here cannot be overtaken by a change committed between checking and recording (as
  // one made on a state read beforehand can), and costs no read of its own.
  Status ExecuteOnce(const std::string& consumer, const std::string& message_id,
                     const std::string& id, std::span<const domain::Command> commands,
                     const RequestContext& ctx,
                     absl::FunctionRef<Status(const domain::PrescriptionState&)> precondition);

  // The prescription a SCRIPT message id belongs to: its NewRx's or one of its CancelRx's
  // MessageID (what a pharmacy's RelatesToMessageID names). NotFound when none does. Served
  // from memory for the messages this service committed, else from the "message_index" read
  // model, caught up from the event log on a miss.
  StatusOr<std::string> FindByMessageId(const std::string& message_id);

  // The SCRIPT XML the routing service sends for the prescription: "send" → its NewRx (as
  // stored when it was transformed); "cancel" → a CancelRx for it with MessageID
  // `cancel_message_id` and RelatesToMessageID the NewRx's.
  StatusOr<std::string> OutboundXml(const std::string& id, const std::string& action,
                                    const std::string& cancel_message_id = {});

  // The read model: applies events after the projection's checkpoint. Returns how many.
  StatusOr<int64_t> Project();
  // Drops the read model and rebuilds it from the whole event log.
  StatusOr<int64_t> RebuildProjection();
  // Catches the read model up and returns the summaries whose state is one of `states`
  // (a full scan: for start-up recovery and tools, not for request paths).
  StatusOr<std::vector<PrescriptionSummary>> ListProjected(std::span<const domain::State> states);
  // A summary from the read model (as of the last Project()).
  StatusOr<PrescriptionSummary> GetProjected(const std::string& id);

  static constexpr const char* kProjection = "prescription_summary";
  static constexpr const char* kMessageIndex = "message_index";
  // Each patient's prescriptions as screening knows them, keyed by patient reference.
  static constexpr const char* kPatientIndex = "patient_medications";
  // Schedule II prescriptions by series (patient reference | prescriber DEA number | date
  // written | substance), for the 90-day rule of 21 CFR 1306.12(b) (docs/clinical.md).
  static constexpr const char* kSeriesIndex = "schedule2_series";

  // The upcasters the service decodes events with (ServiceOptions::upcasters); components
  // reading the same log (routing, relays) decode with these too.
  const domain::UpcasterRegistry& upcasters() const;

 private:
  PrescriptionService(store::Store& store, ServiceOptions options);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The PDMP query for a NewRx's patient, asked as its prescriber. FailedPrecondition when the
// patient's last name, first name or birth date is missing.
StatusOr<clinical::pdmp::Query> PdmpQueryFor(const script::NewRx& newrx);

// The command a pharmacy message (Status, Verify, Error, RxFill, CancelRxResponse) implies;
// InvalidArgument for any other transaction.
StatusOr<domain::Command> PharmacyResponseCommand(const script::Message& message);

// Encodes/decodes a summary as JSON (the projection's row format, also what the HTTP API
// and the CLI print): {"id", "status" (the state's name, domain::StateName), ...}.
// DecodeSummary: DataLoss for malformed JSON or a status that names no state.
std::string EncodeSummary(const PrescriptionSummary& s);
StatusOr<PrescriptionSummary> DecodeSummary(std::string_view json);

}  // namespace rxflow

#endif  // RXFLOW_SERVICE_H_
