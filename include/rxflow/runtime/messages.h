// SPDX-License-Identifier: Apache-2.0
// File: rxflow/runtime/messages.h
//
// What an event means for other systems. The event log is the outbox: the relay reads the
// log from its checkpoint and publishes, for each event, the messages DeriveMessages gives.
// The derivation is a pure function of the stored event, so reading the same event again
// (after a crash, or by another relay after a fail-over) gives the same messages with the
// same message ids, which consumers deduplicate through their inbox.
//
//   every event               audit.trail         "<event id>:audit"   identifiers only
//                             prescription.events "<event id>:event"   identifiers only
//   PrescriptionQueued,       routing.requests    "<event id>:route"   RoutingRequest (send)
//   PharmacyErrorReceived (retryable)                                   RoutingRequest (send)
//   CancelRequested                                                     RoutingRequest (cancel)
//
// Key: the prescription id (one prescription's messages stay in order). Headers:
// message_id, event_id, version and, when the event has one, traceparent. Payloads carry
// identifiers and types, never PHI: the NewRx itself stays in the store.
#ifndef RXFLOW_RUNTIME_MESSAGES_H_
#define RXFLOW_RUNTIME_MESSAGES_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "rxflow/domain/prescription.h"
#include "rxflow/messaging/broker.h"
#include "rxflow/status.h"
#include "rxflow/store/event_store.h"

namespace rxflow::runtime {

// Work for the routing service (topic routing.requests).
struct RoutingRequest {
  enum class Action { kSend, kCancel };
  Action action = Action::kSend;
  std::string prescription_id;
  std::string event_id;           // the event that asked for it
  std::string pharmacy_ncpdp_id;  // send after queueing: the pharmacy it was routed to
  int attempt = 0;                // send after queueing: the queue attempt
  std::string retry_after_error;  // send again after a retryable pharmacy error: its code
  std::string cancel_message_id;  // cancel: the CancelRx MessageID

  // JSON: {"action":"send"|"cancel","prescription_id":...,...}; empty fields are left out.
  std::string Encode() const;
  // InvalidArgument naming the field when `json` is not a routing request: not a JSON
  // object, a member of the wrong type (`attempt` an integer 0..INT_MAX, the others
  // strings), an action other than "send" or "cancel", no prescription_id, or more than
  // kMaxEncodedBytes. Members it does not know are ignored (a later release's); a member
  // given twice counts as its last. Reads what release 0.1.0 wrote too (the same fields).
  static StatusOr<RoutingRequest> Decode(std::string_view json);
  // A routing request is a few hundred bytes; what is far larger is refused unread.
  static constexpr size_t kMaxEncodedBytes = size_t{64} << 10;

  friend bool operator==(const RoutingRequest&, const RoutingRequest&) = default;
};

std::string_view ActionName(RoutingRequest::Action action);

// The messages `event` means, in publish order (see the table above). DataLoss when the
// payload of an event that routing depends on cannot be decoded (through `upcasters` when it
// has an older schema version).
StatusOr<std::vector<messaging::Message>> DeriveMessages(
    const store::EventRecord& event,
    const domain::UpcasterRegistry& upcasters = domain::BuiltinUpcasters());

}  // namespace rxflow::runtime

#endif  // RXFLOW_RUNTIME_MESSAGES_H_
