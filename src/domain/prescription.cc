// SPDX-License-Identifier: Apache-2.0
#include "rxflow/domain/prescription.h"

#include <array>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "rxflow/internal/strcat.h"

namespace rxflow::domain {

using rxflow::internal::Cat;

namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
// Spelled out for clang 14 (`make fuzz`), which has no deduction for aggregates (P1816).
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

constexpr std::array<std::string_view, std::variant_size_v<Command>> kCommandNames = {
    "Submit",        "Sign",
    "Route",         "MarkSent",
    "RecordStatus",  "RecordVerify",
    "RecordError",   "RecordFill",
    "RequestCancel", "RecordCancelResponse",
    "Expire",        "AmendClinicalContent",
    "MarkReady",     "RecordPdmpQuery"};

template <typename T, typename V>
struct IndexOf;
template <typename T, typename... Ts>
struct IndexOf<T, std::variant<Ts...>> {
  static constexpr size_t value = [] {
    constexpr bool kMatch[] = {std::is_same_v<T, Ts>...};
    for (size_t i = 0; i < sizeof...(Ts); ++i) {
      if (kMatch[i]) return i;
    }
    return sizeof...(Ts);
  }();
};

template <typename T>
constexpr std::string_view NameOf() {
  return kCommandNames[IndexOf<T, Command>::value];
}

using Events = std::vector<Event>;

// "<Command> is not allowed in state <State>[: <why>]".
Status NotAllowed(const PrescriptionState& s, std::string_view command, std::string_view why = {}) {
  return absl::FailedPreconditionError(
      Cat(command, " is not allowed in state ", StateName(s.state), why.empty() ? "" : ": ", why));
}

template <typename C>
Status NotAllowed(const PrescriptionState& s, std::string_view why = {}) {
  return NotAllowed(s, NameOf<C>(), why);
}

bool In(State s, std::initializer_list<State> states) {
  for (State x : states) {
    if (x == s) return true;
  }
  return false;
}

bool PartiallyDispensed(const PrescriptionState& s) {
  return s.state == State::kDispensed && !s.fill_complete;
}

// ---- one function per command; the terminal-state check happened before ------------------

StatusOr<Events> DecideSubmit(const PrescriptionState& s, const Submit& c) {
  if (s.state != State::kNone) return NotAllowed<Submit>(s, "the prescription already exists");
  Events out;
  out.push_back(PrescriptionReceived{c.idempotency_key, c.request_sha256, c.source});
  if (!c.rejection_reasons.empty()) {
    out.push_back(PrescriptionRejected{c.rejection_reasons});
    return out;
  }
  out.push_back(c.transformed);
  // 21 CFR 1311.140: a controlled substance waits for the registrant's signature.
  if (!c.transformed.dea_schedule.empty()) out.push_back(PrescriptionReadyToSign{});
  return out;
}

StatusOr<Events> DecideMarkReady(const PrescriptionState& s, const MarkReady& c) {
  if (s.state != State::kReadyToSign) return NotAllowed<MarkReady>(s);
  if (c.practitioner.empty() || c.dea_number.empty() || c.bundle_sha256.empty()) {
    return absl::InvalidArgumentError(
        "MarkReady needs the practitioner, DEA number and bundle hash");
  }
  return Events{PrescriptionMarkedReady{c.practitioner, c.dea_number, c.bundle_sha256}};
}

StatusOr<Events> DecideRecordPdmpQuery(const PrescriptionState& s, const RecordPdmpQuery& c) {
  if (s.state == State::kNone) return NotAllowed<RecordPdmpQuery>(s);
  if (c.query.pdmp.empty() || c.query.queried_at.empty() || c.query.outcome.empty()) {
    return absl::InvalidArgumentError("RecordPdmpQuery needs the PDMP, the time and the outcome");
  }
  return Events{c.query};
}

StatusOr<Events> DecideSign(const PrescriptionState& s, const Sign& c) {
  if (s.state != State::kReadyToSign) return NotAllowed<Sign>(s);
  if (c.signer.empty()) return absl::InvalidArgumentError("Sign needs the signer (the registrant)");
  if (c.signature.empty()) return absl::InvalidArgumentError("Sign needs the signature");
  // 21 CFR 1311.140: only the practitioner who reviewed and marked it ready signs, what was
  // shown, under the registration selected, by completing two-factor authentication.
  if (s.ready_by.empty()) {
    return NotAllowed<Sign>(s, "it was not marked ready: review the signing bundle first");
  }
  if (c.signer != s.ready_by) {
    return NotAllowed<Sign>(s, "only the practitioner who marked it ready may sign it");
  }
  if (c.signed_content_sha256 != s.ready_bundle_sha256) {
    return NotAllowed<Sign>(s,
                            "the signing bundle changed since it was marked ready: review it "
                            "and mark it ready again");
  }
  if (c.dea_number != s.ready_dea_number) {
    return NotAllowed<Sign>(s, "the DEA number is not the one selected when it was marked ready");
  }
  if (c.two_factor_event_id.empty()) {
    return NotAllowed<Sign>(s,
                            "no completed two-factor authentication: completing it is the "
                            "signature (21 CFR 1311.140(a)(4))");
  }
  return Events{PrescriptionSigned{c.signer, c.signature, c.signed_content_sha256, c.dea_number,
                                   c.two_factor_event_id, c.signed_newrx_xml, c.record_cosignature,
                                   c.record_cosigner_key_sha256}};
}

StatusOr<Events> DecideRoute(const PrescriptionState& s, const Route& c) {
  if (s.controlled() && !s.signed_ && In(s.state, {State::kTransformed, State::kReadyToSign})) {
    return NotAllowed<Route>(s, Cat("a controlled substance (Schedule ", s.dea_schedule,
                                    ") must be signed before routing"));
  }
  bool routable = (s.state == State::kTransformed && !s.controlled()) || s.state == State::kSigned;
  if (!routable) return NotAllowed<Route>(s);
  // Once sent, the prescription belongs to its pharmacy: a different one is a new NewRx.
  if (!c.pharmacy_ncpdp_id.empty() && c.pharmacy_ncpdp_id != s.pharmacy_ncpdp_id &&
      s.send_attempts > 0) {
    return NotAllowed<Route>(s, Cat("already sent to pharmacy ", s.pharmacy_ncpdp_id,
                                    ", cannot route to pharmacy ", c.pharmacy_ncpdp_id));
  }
  std::string pharmacy = c.pharmacy_ncpdp_id.empty() ? s.pharmacy_ncpdp_id : c.pharmacy_ncpdp_id;
  if (pharmacy.empty()) {
    return absl::InvalidArgumentError("Route needs a pharmacy: the prescription names none");
  }
  return Events{PrescriptionQueued{std::move(pharmacy), s.send_attempts + 1}};
}

StatusOr<Events> DecideMarkSent(const PrescriptionState& s, const MarkSent& c) {
  if (s.state != State::kQueued) return NotAllowed<MarkSent>(s);
  std::string message_id = c.message_id.empty() ? s.message_id : c.message_id;
  if (message_id.empty()) {
    return absl::InvalidArgumentError("MarkSent needs a message id: the prescription has none");
  }
  return Events{PrescriptionSent{std::move(message_id), s.send_attempts + 1}};
}

StatusOr<Events> DecideRecordStatus(const PrescriptionState& s, const RecordStatus& c) {
  if (!In(s.state, {State::kSent, State::kQueued})) return NotAllowed<RecordStatus>(s);
  return Events{PharmacyAcknowledged{c.status_code, c.relates_to_message_id}};
}

StatusOr<Events> DecideRecordVerify(const PrescriptionState& s, const RecordVerify& c) {
  if (!In(s.state, {State::kSent, State::kAcknowledged})) return NotAllowed<RecordVerify>(s);
  return Events{PharmacyVerified{c.relates_to_message_id}};
}

StatusOr<Events> DecideRecordError(const PrescriptionState& s, const RecordError& c) {
  if (!In(s.state, {State::kSent, State::kQueued, State::kAcknowledged})) {
    return NotAllowed<RecordError>(s);
  }
  bool retryable = c.retryable && s.send_attempts < c.max_attempts;
  return Events{PharmacyErrorReceived{c.code, c.description_codes, c.description, retryable}};
}

StatusOr<Events> DecideRecordFill(const PrescriptionState& s, const RecordFill& c) {
  if (!In(s.state, {State::kSent, State::kAcknowledged, State::kVerified}) &&
      !PartiallyDispensed(s)) {
    return NotAllowed<RecordFill>(s);
  }
  return Events{PrescriptionDispensed{c.fill_status, c.complete, c.quantity, c.dispensed_ndc}};
}

StatusOr<Events> DecideRequestCancel(const PrescriptionState& s, const RequestCancel& c) {
  if (In(s.state, {State::kReceived, State::kTransformed, State::kReadyToSign, State::kSigned})) {
    // Never sent: nothing at the pharmacy to cancel, so the cancel completes at once.
    return Events{CancelRequested{c.reason, c.cancel_message_id}, PrescriptionCancelled{c.reason}};
  }
  if (In(s.state, {State::kQueued, State::kSent, State::kAcknowledged, State::kVerified}) ||
      PartiallyDispensed(s)) {
    return Events{CancelRequested{c.reason, c.cancel_message_id}};
  }
  return NotAllowed<RequestCancel>(s);
}

StatusOr<Events> DecideRecordCancelResponse(const PrescriptionState& s,
                                            const RecordCancelResponse& c) {
  if (s.state != State::kCancelRequested) return NotAllowed<RecordCancelResponse>(s);
  if (c.approved) return Events{PrescriptionCancelled{c.reason}};
  return Events{CancelDenied{c.reason}};
}

StatusOr<Events> DecideExpire(const PrescriptionState& s, const Expire&) {
  if (s.state == State::kNone) return NotAllowed<Expire>(s, "no prescription exists");
  if (s.state == State::kCancelRequested) {
    return NotAllowed<Expire>(s, "a cancel is pending at the pharmacy");
  }
  return Events{PrescriptionExpired{}};
}

StatusOr<Events> DecideAmend(const PrescriptionState& s, const AmendClinicalContent& c) {
  std::string command = c.field.empty() ? std::string(NameOf<AmendClinicalContent>())
                                        : Cat(NameOf<AmendClinicalContent>(), " of ", c.field);
  if (s.state == State::kNone) return NotAllowed(s, command, "no prescription exists");
  if (s.signed_) {
    return NotAllowed(s, command,
                      "clinical content cannot change after it is signed (21 CFR 1311): cancel "
                      "and submit a new prescription");
  }
  return NotAllowed(s, command,
                    "clinical content cannot change after it is submitted: cancel and submit a "
                    "new prescription");
}

}  // namespace

std::string_view StateName(State s) {
  switch (s) {
    case State::kNone:
      return "None";
    case State::kReceived:
      return "Received";
    case State::kRejected:
      return "Rejected";
    case State::kTransformed:
      return "Transformed";
    case State::kReadyToSign:
      return "ReadyToSign";
    case State::kSigned:
      return "Signed";
    case State::kQueued:
      return "Queued";
    case State::kSent:
      return "Sent";
    case State::kAcknowledged:
      return "Acknowledged";
    case State::kVerified:
      return "Verified";
    case State::kFailed:
      return "Failed";
    case State::kDispensed:
      return "Dispensed";
    case State::kCancelRequested:
      return "CancelRequested";
    case State::kCancelled:
      return "Cancelled";
    case State::kCancelDenied:
      return "CancelDenied";
    case State::kExpired:
      return "Expired";
  }
  return "Unknown";
}

std::optional<State> StateFromName(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(State::kExpired); ++i) {
    if (StateName(static_cast<State>(i)) == name) return static_cast<State>(i);
  }
  return std::nullopt;
}

bool IsTerminal(State s, bool fill_complete) {
  switch (s) {
    case State::kRejected:
    case State::kFailed:
    case State::kCancelled:
    case State::kExpired:
      return true;
    case State::kDispensed:
      return fill_complete;
    default:
      return false;
  }
}

std::string_view EventType(const Event& e) {
  return std::visit([](const auto& x) { return std::decay_t<decltype(x)>::kType; }, e);
}

int EventSchemaVersion(const Event& e) {
  return std::visit([](const auto& x) { return std::decay_t<decltype(x)>::kSchemaVersion; }, e);
}

std::string_view CommandName(const Command& c) { return kCommandNames[c.index()]; }

StatusOr<std::vector<Event>> Decide(const PrescriptionState& state, const Command& command) {
  if (IsTerminal(state.state, state.fill_complete)) {
    return NotAllowed(state, CommandName(command),
                      state.state == State::kDispensed
                          ? "the prescription is completely dispensed (a terminal state)"
                          : "the prescription is in a terminal state");
  }
  return std::visit(
      Overloaded{
          [&](const Submit& c) { return DecideSubmit(state, c); },
          [&](const Sign& c) { return DecideSign(state, c); },
          [&](const Route& c) { return DecideRoute(state, c); },
          [&](const MarkSent& c) { return DecideMarkSent(state, c); },
          [&](const RecordStatus& c) { return DecideRecordStatus(state, c); },
          [&](const RecordVerify& c) { return DecideRecordVerify(state, c); },
          [&](const RecordError& c) { return DecideRecordError(state, c); },
          [&](const RecordFill& c) { return DecideRecordFill(state, c); },
          [&](const RequestCancel& c) { return DecideRequestCancel(state, c); },
          [&](const RecordCancelResponse& c) { return DecideRecordCancelResponse(state, c); },
          [&](const Expire& c) { return DecideExpire(state, c); },
          [&](const AmendClinicalContent& c) { return DecideAmend(state, c); },
          [&](const MarkReady& c) { return DecideMarkReady(state, c); },
          [&](const RecordPdmpQuery& c) { return DecideRecordPdmpQuery(state, c); },
      },
      command);
}

PrescriptionState Apply(PrescriptionState s, const Event& event) {
  std::visit(Overloaded{
                 [&](const PrescriptionReceived& e) {
                   s.state = State::kReceived;
                   s.idempotency_key = e.idempotency_key;
                 },
                 [&](const PrescriptionRejected&) { s.state = State::kRejected; },
                 [&](const PrescriptionTransformed& e) {
                   s.state = State::kTransformed;
                   s.script_version = e.script_version;
                   s.message_id = e.message_id;
                   s.pharmacy_ncpdp_id = e.pharmacy_ncpdp_id;
                   s.prescriber_npi = e.prescriber_npi;
                   s.drug_description = e.drug_description;
                   s.dea_schedule = e.dea_schedule;
                   s.newrx_version = s.version + 1;
                 },
                 [&](const PrescriptionReadyToSign&) { s.state = State::kReadyToSign; },
                 [&](const PrescriptionMarkedReady& e) {
                   s.ready_by = e.practitioner;
                   s.ready_dea_number = e.dea_number;
                   s.ready_bundle_sha256 = e.bundle_sha256;
                 },
                 [&](const PrescriptionSigned&) {
                   s.state = State::kSigned;
                   s.signed_ = true;
                   // (Also a version-1 signature without the signed copy: whoever holds the
                   // unsigned NewRx then reads the stream rather than trust it.)
                   s.newrx_version = s.version + 1;
                 },
                 [&](const PrescriptionQueued& e) {
                   s.state = State::kQueued;
                   if (!e.pharmacy_ncpdp_id.empty()) s.pharmacy_ncpdp_id = e.pharmacy_ncpdp_id;
                 },
                 [&](const PrescriptionSent& e) {
                   s.state = State::kSent;
                   if (!e.message_id.empty()) s.message_id = e.message_id;
                   s.send_attempts = e.attempt;
                 },
                 [&](const PharmacyAcknowledged&) { s.state = State::kAcknowledged; },
                 [&](const PharmacyVerified&) { s.state = State::kVerified; },
                 [&](const PharmacyErrorReceived& e) {
                   s.state = e.retryable ? State::kQueued : State::kFailed;
                   s.last_error_code = e.code;
                 },
                 [&](const PrescriptionDispensed& e) {
                   s.state = State::kDispensed;
                   s.fill_complete = e.complete;
                 },
                 [&](const CancelRequested&) {
                   s.before_cancel = s.state;
                   s.state = State::kCancelRequested;
                 },
                 [&](const PrescriptionCancelled&) {
                   s.state = State::kCancelled;
                   s.before_cancel = State::kNone;
                 },
                 [&](const CancelDenied&) {
                   // Back to where the cancel found the prescription; kCancelDenied only
                   // when that is unknown (a denial without a request in the history).
                   s.state =
                       s.before_cancel != State::kNone ? s.before_cancel : State::kCancelDenied;
                   s.before_cancel = State::kNone;
                 },
                 [&](const PrescriptionExpired&) { s.state = State::kExpired; },
                 [&](const InteractionsScreened&) {},  // a record; the state is unchanged
                 [&](const PdmpQueried&) {},           // a record; the state is unchanged
             },
             event);
  ++s.version;
  return s;
}

PrescriptionState Replay(const std::vector<Event>& events) {
  PrescriptionState s;
  for (const Event& e : events) s = Apply(std::move(s), e);
  return s;
}

}  // namespace rxflow::domain
