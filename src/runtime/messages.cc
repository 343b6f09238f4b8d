// SPDX-License-Identifier: Apache-2.0
#include "rxflow/runtime/messages.h"

#include <limits>
#include <optional>

#include <simdjson.h>

#include "rxflow/clock.h"
#include "rxflow/domain/prescription.h"
#include "rxflow/internal/json.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

#include "common/text.h"

namespace rxflow::runtime {

using internal::Cat;

namespace {

using internal::JsonObject;  // (the relay's hot path: no DOM)

messaging::Message Make(const store::EventRecord& e, std::string_view topic,
                        std::string_view suffix, std::string payload) {
  messaging::Message m;
  m.topic = std::string(topic);
  m.key = e.stream_id;
  m.payload = std::move(payload);
  m.headers.reserve(4);
  m.headers.emplace_back(messaging::kMessageIdHeader, Cat(e.event_id, suffix));
  m.headers.emplace_back("event_id", e.event_id);
  m.headers.emplace_back("version", std::to_string(e.version));
  if (!e.traceparent.empty()) m.headers.emplace_back(messaging::kTraceparentHeader, e.traceparent);
  return m;
}

// The routing request an event asks for, if any (nullopt: none).
StatusOr<std::optional<RoutingRequest>> RoutingFor(const store::EventRecord& r,
                                                   const domain::UpcasterRegistry& upcasters) {
  using domain::CancelRequested;
  using domain::PharmacyErrorReceived;
  using domain::PrescriptionQueued;
  if (r.type != PrescriptionQueued::kType && r.type != PharmacyErrorReceived::kType &&
      r.type != CancelRequested::kType) {
    return std::optional<RoutingRequest>();
  }
  auto event = domain::DecodeEvent(r.type, r.schema_version, r.payload, upcasters);
  if (!event.ok()) {
    return absl::DataLossError(
        Cat("event ", r.event_id, " (", r.type,
            "): cannot derive its routing request: ", std::string(event.status().message())));
  }
  RoutingRequest req;
  req.prescription_id = r.stream_id;
  req.event_id = r.event_id;
  if (const auto* q = std::get_if<PrescriptionQueued>(&*event)) {
    req.action = RoutingRequest::Action::kSend;
    req.pharmacy_ncpdp_id = q->pharmacy_ncpdp_id;
    req.attempt = q->attempt;
  } else if (const auto* err = std::get_if<PharmacyErrorReceived>(&*event)) {
    if (!err->retryable) return std::optional<RoutingRequest>();
    req.action = RoutingRequest::Action::kSend;
    req.retry_after_error = err->code;
  } else if (const auto* c = std::get_if<CancelRequested>(&*event)) {
    // Also when the same append cancelled the prescription at once (nothing was sent):
    // routing then finds it cancelled and has nothing to do.
    req.action = RoutingRequest::Action::kCancel;
    req.cancel_message_id = c->cancel_message_id;
  }
  return std::optional<RoutingRequest>(std::move(req));
}

}  // namespace

std::string_view ActionName(RoutingRequest::Action action) {
  return action == RoutingRequest::Action::kSend ? "send" : "cancel";
}

std::string RoutingRequest::Encode() const {
  JsonObject j;
  j.String("action", ActionName(action)).String("prescription_id", prescription_id);
  j.StringIfSet("pharmacy_ncpdp_id", pharmacy_ncpdp_id);
  if (attempt > 0) j.Int("attempt", attempt);
  j.StringIfSet("retry_after_error", retry_after_error);
  j.StringIfSet("cancel_message_id", cancel_message_id);
  j.StringIfSet("event_id", event_id);
  return j.Finish();
}

StatusOr<RoutingRequest> RoutingRequest::Decode(std::string_view text) {
  // Read on routing's hot path, one per prescription sent: simdjson's DOM with this thread's
  // parser (no nlohmann DOM of the whole request), every member looked at once, in order; a
  // member given twice is read twice, the last one standing (as a JSON DOM keeps it).
  thread_local simdjson::dom::parser parser;
  if (text.size() > kMaxEncodedBytes) {
    return absl::InvalidArgumentError(
        Cat("routing request: ", text.size(), " bytes exceeds the limit of ", kMaxEncodedBytes));
  }
  simdjson::dom::object object;
  if (parser.parse(text.data(), text.size(), /*realloc_if_needed=*/true).get(object)) {
    return absl::InvalidArgumentError("routing request: not a JSON object");
  }
  RoutingRequest r;
  std::string action;
  for (auto [key, value] : object) {
    if (key == "attempt") {
      int64_t attempt = 0;
      if (auto error = value.get_int64().get(attempt); error) {
        return absl::InvalidArgumentError(error == simdjson::NUMBER_OUT_OF_RANGE
                                              ? "routing request: attempt is out of range"
                                              : "routing request: attempt is not an integer");
      }
      if (attempt < 0 || attempt > std::numeric_limits<int>::max()) {
        return absl::InvalidArgumentError("routing request: attempt is out of range");
      }
      r.attempt = static_cast<int>(attempt);
      continue;
    }
    // Every other member the request has is a string.
    std::string* out = key == "action"              ? &action
                       : key == "prescription_id"   ? &r.prescription_id
                       : key == "event_id"          ? &r.event_id
                       : key == "pharmacy_ncpdp_id" ? &r.pharmacy_ncpdp_id
                       : key == "retry_after_error" ? &r.retry_after_error
                       : key == "cancel_message_id" ? &r.cancel_message_id
                                                    : nullptr;
    if (out == nullptr) continue;  // a member of a later release
    std::string_view text_value;
    if (value.get_string().get(text_value)) {
      return absl::InvalidArgumentError(Cat("routing request: ", key, " is not a string"));
    }
    out->assign(text_value);
  }
  if (action == "send") {
    r.action = Action::kSend;
  } else if (action == "cancel") {
    r.action = Action::kCancel;
  } else {
    return absl::InvalidArgumentError(R"(routing request: action must be "send" or "cancel")");
  }
  if (r.prescription_id.empty()) {
    return absl::InvalidArgumentError("routing request: prescription_id is missing");
  }
  return r;
}

StatusOr<std::vector<messaging::Message>> DeriveMessages(
    const store::EventRecord& e, const domain::UpcasterRegistry& upcasters) {
  // Only prescription events become messages: the EPCS streams on the same log (the audit
  // chain, practitioners and their permissions) are read where they are kept.
  if (!domain::IsPrescriptionEventType(e.type)) return std::vector<messaging::Message>();
  // Audit trail and domain events: identifiers and types only, never PHI.
  std::string audit = JsonObject()
                          .String("prescription_id", e.stream_id)
                          .String("event_id", e.event_id)
                          .String("event_type", e.type)
                          .Int("version", e.version)
                          .String("actor", e.actor)
                          .String("tenant", e.tenant)
                          .String("occurred_at", FormatRfc3339(e.occurred_at))
                          .Finish();
  RXFLOW_ASSIGN_OR_RETURN(std::optional<RoutingRequest> routing, RoutingFor(e, upcasters));
  std::vector<messaging::Message> out;
  out.reserve(routing ? 3 : 2);
  out.push_back(Make(e, messaging::topics::kAuditTrail, ":audit", audit));
  out.push_back(Make(e, messaging::topics::kPrescriptionEvents, ":event", std::move(audit)));
  if (routing) {
    out.push_back(Make(e, messaging::topics::kRoutingRequests, ":route", routing->Encode()));
  }
  return out;
}

}  // namespace rxflow::runtime
