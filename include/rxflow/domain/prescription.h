// SPDX-License-Identifier: Apache-2.0
// File: rxflow/domain/prescription.h
//
// The Prescription aggregate: a pure state machine. `Decide(state, command)` returns the
// events a command produces (or FailedPrecondition with the reason); `Apply(state, event)`
// folds an event into the state. No I/O, no clock, no randomness: times and ids come in
// with the commands, so the same history always replays to the same state.
//
// Lifecycle (docs/event-model.md has the diagram):
//
//   Submit ──▶ Received ──▶ Transformed ──(controlled)──▶ ReadyToSign ──Sign──▶ Signed
//                 │              │                                          │
//                 └─▶ Rejected   └──────────Route (non-controlled)──┐       └─Route─┐
//                                                                   ▼               ▼
//                                   Queued ──MarkSent──▶ Sent ──▶ Acknowledged / Verified
//                                     ▲                    │        ──RecordFill──▶ Dispensed
//                                     └──(retryable Error)─┤
//                                                          └──(permanent Error)──▶ Failed
//   RequestCancel (before a complete fill) ──▶ CancelRequested ──▶ Cancelled, or (denied) back
//   to the state before the request; before anything was sent it cancels at once.
//   (docs/event-model.md has every transition, e.g. RecordStatus/RecordError from Queued.)
//   Expire (not completely dispensed, not cancelled or awaiting a cancel) ──▶ Expired
//
// Invariants enforced here:
//   * a controlled substance never routes before it is Signed (21 CFR 1311);
//   * after Signed no clinical field changes: a change is a cancel and a new prescription;
//   * nothing happens after a terminal state (Rejected, Failed, Cancelled, Expired, and
//     Dispensed once complete);
//   * an illegal command returns FailedPrecondition naming the state and the command.
#ifndef RXFLOW_DOMAIN_PRESCRIPTION_H_
#define RXFLOW_DOMAIN_PRESCRIPTION_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "rxflow/status.h"

namespace rxflow::domain {

enum class State {
  kNone,  // no events yet
  kReceived,
  kRejected,
  kTransformed,
  kReadyToSign,
  kSigned,
  kQueued,
  kSent,
  kAcknowledged,
  kVerified,
  kFailed,
  kDispensed,
  kCancelRequested,
  kCancelled,
  kCancelDenied,
  kExpired,
};

// "Received", "ReadyToSign", ...
std::string_view StateName(State s);
// The state named `name` (StateName's inverse), or nullopt for a name no state has.
std::optional<State> StateFromName(std::string_view name);
bool IsTerminal(State s, bool fill_complete);

// ---- events (past tense) ----------------------------------------------------------------

struct PrescriptionReceived {
  static constexpr std::string_view kType = "PrescriptionReceived";
  static constexpr int kSchemaVersion = 1;
  std::string idempotency_key;
  std::string request_sha256;  // of the request as received (the request is not stored here)
  std::string source;          // the input format: "fhir"
};

struct PrescriptionRejected {
  static constexpr std::string_view kType = "PrescriptionRejected";
  static constexpr int kSchemaVersion = 1;
  std::vector<std::string> reasons;  // "severity: path: message" (no PHI values)
};

// Schema version 2 added phi_key (version 1 events read with phi_key "").
struct PrescriptionTransformed {
  static constexpr std::string_view kType = "PrescriptionTransformed";
  static constexpr int kSchemaVersion = 2;
  std::string script_version;  // "2023011" | "2017071"
  std::string message_id;      // the NewRx Header/MessageID
  std::string newrx_xml;
  std::string pharmacy_ncpdp_id;
  std::string prescriber_npi;
  std::string drug_description;
  std::string dea_schedule;  // "" when not controlled
  // The patient's pseudonymous reference (rxflow::PatientReference): the id of the data key
  // that seals `newrx_xml` at rest (rxflow/crypto/phi.h). "" in events from before field-level
  // encryption.
  std::string phi_key;
};

struct PrescriptionReadyToSign {
  static constexpr std::string_view kType = "PrescriptionReadyToSign";
  static constexpr int kSchemaVersion = 1;
};

// The practitioner reviewed the signing bundle (rxflow/epcs/ceremony.h) and marked the
// prescription ready to sign (21 CFR 1311.140(a)(2)), with the DEA number selected for it.
struct PrescriptionMarkedReady {
  static constexpr std::string_view kType = "PrescriptionMarkedReady";
  static constexpr int kSchemaVersion = 1;
  std::string practitioner;   // who marked it
  std::string dea_number;     // the registration selected for this prescription
  std::string bundle_sha256;  // of the signing bundle shown
};

// Schema version 2 added dea_number, two_factor_event_id and signed_newrx_xml (version 1
// events are upcast with them empty: signatures recorded before EPCS signing existed).
// Version 3 added the post-quantum co-signature of the record (epcs::SignatureRecordText;
// version 2 events are upcast with both fields empty: not co-signed).
struct PrescriptionSigned {
  static constexpr std::string_view kType = "PrescriptionSigned";
  static constexpr int kSchemaVersion = 3;
  std::string signer;                 // the registrant's id (never an agent)
  std::string signature;              // base64 signature over the signed content, or a reference
  std::string signed_content_sha256;  // the signing bundle's hash, as shown and marked ready
  std::string dea_number;             // the registration it was signed under
  std::string two_factor_event_id;    // the two-factor completion that is the signature
  std::string signed_newrx_xml;       // the NewRx with Header/DigitalSignature, as sent
  // base64 ML-DSA-65 signature of epcs::SignatureRecordText by RxFlow's co-signing key, and
  // the hex SHA-256 of that key's raw public key; both empty when not co-signed.
  std::string record_cosignature;
  std::string record_cosigner_key_sha256;
};

struct PrescriptionQueued {
  static constexpr std::string_view kType = "PrescriptionQueued";
  static constexpr int kSchemaVersion = 1;
  std::string pharmacy_ncpdp_id;
  int attempt = 1;
};

struct PrescriptionSent {
  static constexpr std::string_view kType = "PrescriptionSent";
  static constexpr int kSchemaVersion = 1;
  std::string message_id;
  int attempt = 1;
};

struct PharmacyAcknowledged {  // SCRIPT Status
  static constexpr std::string_view kType = "PharmacyAcknowledged";
  static constexpr int kSchemaVersion = 1;
  std::string status_code;  // 000, 010, ...
  std::string relates_to_message_id;
};

struct PharmacyVerified {  // SCRIPT Verify
  static constexpr std::string_view kType = "PharmacyVerified";
  static constexpr int kSchemaVersion = 1;
  std::string relates_to_message_id;
};

struct PharmacyErrorReceived {  // SCRIPT Error
  static constexpr std::string_view kType = "PharmacyErrorReceived";
  static constexpr int kSchemaVersion = 1;
  std::string code;  // 600, 601, 602, 700, 900
  std::vector<std::string> description_codes;
  std::string description;
  bool retryable = false;
};

// Schema version 2 added dispensed_ndc (version 1 events are upcast with it empty: the
// prescribed product stands for the dispensed one).
struct PrescriptionDispensed {  // SCRIPT RxFill
  static constexpr std::string_view kType = "PrescriptionDispensed";
  static constexpr int kSchemaVersion = 2;
  std::string fill_status;  // Dispensed | PartiallyDispensed | NotDispensed | Transferred
  bool complete = true;     // false for a partial fill
  std::string quantity;
  // The NDC-11 the pharmacy dispensed (RxFill MedicationDispensed/DrugCoded/ProductCode
  // with qualifier ND), when it said: a substituted generic differs from the prescribed
  // product, and a PMP report (ASAP DSP08) must name what was dispensed.
  std::string dispensed_ndc;
};

struct CancelRequested {
  static constexpr std::string_view kType = "CancelRequested";
  static constexpr int kSchemaVersion = 1;
  std::string reason;
  std::string cancel_message_id;  // the CancelRx MessageID
};

struct PrescriptionCancelled {  // CancelRxResponse Approved (or cancelled before sending)
  static constexpr std::string_view kType = "PrescriptionCancelled";
  static constexpr int kSchemaVersion = 1;
  std::string reason;
};

struct CancelDenied {  // CancelRxResponse Denied
  static constexpr std::string_view kType = "CancelDenied";
  static constexpr int kSchemaVersion = 1;
  std::string reason;
};

struct PrescriptionExpired {
  static constexpr std::string_view kType = "PrescriptionExpired";
  static constexpr int kSchemaVersion = 1;
};

// Drug–drug interaction screening of a new prescription (rxflow/clinical/interactions.h),
// recorded with its submission: what was screened, against how many of the patient's active
// prescriptions, what was found, and the prescriber's override reason when a contraindicated
// finding was let through. No state change.
struct ScreenedIngredientRecord {
  std::string name;
  std::string rxcui;
};
struct InteractionRecord {
  std::string rule_id;
  std::string severity;  // "contraindicated", "passive", "unknown"
  std::string summary;
  std::string citation;
  std::string ingredient;
  std::string ingredient_class;
  std::string other_ingredient;
  std::string other_class;
  std::string other_drug;
  std::string other_prescription_id;  // empty: a drug named in the request itself
};
struct InteractionsScreened {
  static constexpr std::string_view kType = "InteractionsScreened";
  static constexpr int kSchemaVersion = 1;
  std::string knowledge_base;
  std::string drug_description;
  // Keyed HMAC of the patient's identity (name, birth date, gender, MRN) under the
  // service's patient key and the tenant: pseudonymous; links a patient's prescriptions.
  std::string patient_ref;
  std::vector<ScreenedIngredientRecord> ingredients;
  bool ingredients_from_text = false;  // read from the drug description, not the database
  int64_t screened_against = 0;        // the patient's other active prescriptions
  std::vector<InteractionRecord> findings;
  std::string override_reason;
};

// A PDMP was asked for the patient's controlled-substance history before prescribing
// (rxflow/clinical/pdmp.h, PrescriptionService::QueryPdmp). Who asked is the event's actor;
// what is kept is what was asked of whom and how much came back, not the history itself (it
// is the PDMP's to keep). No state change; the EPCS signing bundle shows the newest.
struct PdmpQueried {
  static constexpr std::string_view kType = "PdmpQueried";
  static constexpr int kSchemaVersion = 1;
  std::string pdmp;           // the PDMP (pdmp::Client::name())
  std::string queried_at;     // RFC 3339 UTC
  std::string requester_npi;  // the prescriber the query was made for
  std::string outcome;        // pdmp::OutcomeName: "found", "report", "not-found", ...
  int64_t dispensings = 0;    // in the history returned
  int64_t pharmacies = 0;     // distinct dispensing pharmacies in it
  std::string latest_fill;    // YYYY-MM-DD of the newest dispensing, "" when none
  std::string error;          // why "unavailable" (the transport's words; no PHI)
};

using Event =
    std::variant<PrescriptionReceived, PrescriptionRejected, PrescriptionTransformed,
                 PrescriptionReadyToSign, PrescriptionSigned, PrescriptionQueued, PrescriptionSent,
                 PharmacyAcknowledged, PharmacyVerified, PharmacyErrorReceived,
                 PrescriptionDispensed, CancelRequested, PrescriptionCancelled, CancelDenied,
                 PrescriptionExpired, PrescriptionMarkedReady, InteractionsScreened, PdmpQueried>;

std::string_view EventType(const Event& e);
// True when `type` names a Prescription event (an alternative of Event). The event log also
// holds other streams (EPCS: the audit chain, practitioners): their records are skipped by
// the prescription projections and the relay.
bool IsPrescriptionEventType(std::string_view type);
int EventSchemaVersion(const Event& e);

// Upcasting: a function turning a payload of (type, from_version) into from_version + 1.
using Upcaster = std::string (*)(std::string_view payload_json);

// The upcasters a decoder applies, by (event type, from_version). A plain value, not a
// process-wide registry: build one and pass it where events are decoded
// (`ServiceOptions::upcasters`, `runtime::OutboxRelayOptions::upcasters`, the `upcasters`
// argument of `DecodeEvent` and `runtime::DeriveMessages`).
//
// Thread-safety: const methods may run concurrently; `Register` needs exclusive access.
//
// Example:
//   ServiceOptions options;  // options.upcasters starts as UpcasterRegistry::Builtin()
//   options.upcasters.Register("PrescriptionSent", 0, &UpcastSentV0ToV1);
class UpcasterRegistry {
 public:
  // An empty registry: a payload older than its type's current schema version is DataLoss.
  UpcasterRegistry() = default;
  // The upcasters this build ships with (PrescriptionSigned 1 → 2 → 3, PrescriptionDispensed
  // 1 → 2).
  static UpcasterRegistry Builtin();

  // Sets the upcaster for (type, from_version), replacing an earlier one; nullptr removes it.
  // Returns *this, so calls chain.
  UpcasterRegistry& Register(std::string_view type, int from_version, Upcaster upcaster);
  // The upcaster for (type, from_version), or nullptr when there is none.
  Upcaster Find(std::string_view type, int from_version) const;
  size_t size() const { return upcasters_.size(); }

 private:
  std::map<std::pair<std::string, int>, Upcaster> upcasters_;
};

// `UpcasterRegistry::Builtin()`, built once, immutable: what decoding uses when it is given
// no registry.
const UpcasterRegistry& BuiltinUpcasters();

// JSON payload of an event (without type and version: those are record fields).
std::string EncodePayload(const Event& e);
// Decodes a stored payload, upcasting older schema versions first through `upcasters`.
// DataLoss for an unknown type, a version newer than this build knows, an older version
// with no upcaster in `upcasters`, or a malformed payload.
StatusOr<Event> DecodeEvent(std::string_view type, int schema_version, std::string_view payload,
                            const UpcasterRegistry& upcasters = BuiltinUpcasters());

// ---- commands (imperative) --------------------------------------------------------------

struct Submit {  // after the transform succeeded, or with `rejection_reasons` when it failed
  std::string idempotency_key;
  std::string request_sha256;
  std::string source;
  std::vector<std::string> rejection_reasons;  // non-empty: the submission is rejected
  PrescriptionTransformed transformed;         // used when not rejected
};
// The practitioner marks a controlled-substance prescription ready after reviewing its
// signing bundle (again after any change: the bundle hash is what Sign must match).
struct MarkReady {
  std::string practitioner;
  std::string dea_number;
  std::string bundle_sha256;
};
// When the prescription was marked ready, Sign must come from the practitioner who marked
// it, for the same bundle, and carry its two-factor event (21 CFR 1311.140(a)(4)-(5)).
struct Sign {
  std::string signer;
  std::string signature;
  std::string signed_content_sha256;
  std::string dea_number;
  std::string two_factor_event_id;
  std::string signed_newrx_xml;
  std::string record_cosignature;          // see PrescriptionSigned
  std::string record_cosigner_key_sha256;  // see PrescriptionSigned
};
struct Route {
  std::string pharmacy_ncpdp_id;  // empty: the one the prescription names
};
struct MarkSent {
  std::string message_id;
};
struct RecordStatus {
  std::string status_code;
  std::string relates_to_message_id;
};
struct RecordVerify {
  std::string relates_to_message_id;
};
struct RecordError {
  std::string code;
  std::vector<std::string> description_codes;
  std::string description;
  bool retryable = false;
  int max_attempts = 5;  // a retryable error after this many sends fails permanently
};
struct RecordFill {
  std::string fill_status;
  bool complete = true;
  std::string quantity;
  std::string dispensed_ndc;  // see PrescriptionDispensed
};
struct RequestCancel {
  std::string reason;
  std::string cancel_message_id;
};
struct RecordCancelResponse {
  bool approved = true;
  std::string reason;
};
struct Expire {};
// Records a PDMP query made for the prescription's patient (any state but a terminal one).
struct RecordPdmpQuery {
  PdmpQueried query;
};
// Any change to clinical content. Always refused once the prescription exists (after
// signing it is 21 CFR 1311's rule; before, RxFlow prefers cancel-and-resubmit too).
struct AmendClinicalContent {
  std::string field;
};

using Command = std::variant<Submit, Sign, Route, MarkSent, RecordStatus, RecordVerify, RecordError,
                             RecordFill, RequestCancel, RecordCancelResponse, Expire,
                             AmendClinicalContent, MarkReady, RecordPdmpQuery>;

std::string_view CommandName(const Command& c);

// The state folded from a stream's events.
struct PrescriptionState {
  State state = State::kNone;
  int64_t version = 0;  // events applied
  std::string idempotency_key;
  std::string message_id;
  std::string script_version;
  std::string pharmacy_ncpdp_id;
  std::string prescriber_npi;
  std::string drug_description;
  std::string dea_schedule;
  bool controlled() const { return !dea_schedule.empty(); }
  bool signed_ = false;
  bool fill_complete = false;
  int send_attempts = 0;  // NewRx transmissions so far (the `attempt` of the last Sent)
  std::string last_error_code;
  State before_cancel = State::kNone;  // to return to when a cancel is denied
  std::string ready_by;                // who marked it ready to sign, and for which bundle
  std::string ready_dea_number;
  std::string ready_bundle_sha256;
  // The version of the last event that carried the NewRx (PrescriptionTransformed, or
  // PrescriptionSigned, which carries the signed copy); 0 before. Lets a holder of a NewRx tell
  // whether it is still the one to send. Not in snapshots: a state read from one has 0, which no
  // NewRx matches.
  int64_t newrx_version = 0;
};

// Decide: the events `command` produces in `state`, or FailedPrecondition (illegal in this
// state) / InvalidArgument (a malformed command).
StatusOr<std::vector<Event>> Decide(const PrescriptionState& state, const Command& command);

// Evolve: `state` with `event` applied (version + 1).
PrescriptionState Apply(PrescriptionState state, const Event& event);

// Replays events from a fresh state.
PrescriptionState Replay(const std::vector<Event>& events);

// Snapshots: the state as JSON and back (DataLoss when malformed).
std::string EncodeState(const PrescriptionState& state);
StatusOr<PrescriptionState> DecodeState(std::string_view json);

}  // namespace rxflow::domain

#endif  // RXFLOW_DOMAIN_PRESCRIPTION_H_
