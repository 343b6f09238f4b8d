// SPDX-License-Identifier: Apache-2.0
// The audit chain's view of controlled-substance transmissions, from the event log.
#include "rxflow/domain/prescription.h"
#include "rxflow/epcs/audit.h"
#include "rxflow/epcs/signature.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

namespace rxflow::epcs {
namespace {

using internal::Append;
using internal::Cat;

constexpr const char* kProjection = "epcs-audit-transmission";
constexpr size_t kBatch = 512;

// The SignatureCheck name in an Error Description "digital signature <name>: ...", or "" when
// the text is not one (or names no check RxFlow knows).
std::string SignatureCheckOf(std::string_view description) {
  constexpr std::string_view kPrefix = "digital signature ";
  if (description.substr(0, kPrefix.size()) != kPrefix) return "";
  std::string_view rest = description.substr(kPrefix.size());
  std::string_view name = rest.substr(0, rest.find(':'));
  for (int c = static_cast<int>(SignatureCheck::kNotNewRx);
       c <= static_cast<int>(SignatureCheck::kCrlUnavailable); ++c) {
    if (SignatureCheckName(static_cast<SignatureCheck>(c)) == name) return std::string(name);
  }
  return "";
}

}  // namespace

TransmissionAuditor::TransmissionAuditor(store::Store& store, AuditTrail& audit, std::string source,
                                         size_t remembered)
    : store_(store), audit_(audit), source_(std::move(source)), remembered_(remembered) {}

void TransmissionAuditor::Remember(const std::string& stream_id, bool controlled) {
  if (remembered_ == 0) return;
  auto [it, added] = controlled_.try_emplace(stream_id, controlled);
  if (!added) {
    it->second = controlled;
    return;
  }
  controlled_order_.push_back(stream_id);
  if (controlled_order_.size() > remembered_) {
    controlled_.erase(controlled_order_.front());
    controlled_order_.pop_front();
  }
}

StatusOr<bool> TransmissionAuditor::IsControlled(const std::string& stream_id) {
  if (auto it = controlled_.find(stream_id); it != controlled_.end()) return it->second;
  // Its PrescriptionTransformed came before the checkpoint and is forgotten: from its stream.
  ++streams_read_;
  RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> records, store_.ReadStream(stream_id));
  bool c = false;
  for (const store::EventRecord& r : records) {
    if (r.type != domain::PrescriptionTransformed::kType) continue;
    RXFLOW_ASSIGN_OR_RETURN(domain::Event e,
                            domain::DecodeEvent(r.type, r.schema_version, r.payload));
    c = !std::get<domain::PrescriptionTransformed>(e).dea_schedule.empty();  // the last wins
  }
  Remember(stream_id, c);
  return c;
}

StatusOr<int64_t> TransmissionAuditor::CatchUp() {
  RXFLOW_ASSIGN_OR_RETURN(int64_t position, store_.Checkpoint(kProjection));
  int64_t written = 0;
  for (;;) {
    RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> batch,
                            store_.ReadAll(position, kBatch));
    if (batch.empty()) return written;
    for (const store::EventRecord& r : batch) {
      position = r.global_position;
      if (r.type == domain::PrescriptionTransformed::kType) {
        // What the prescription's later events need to know, learnt on the way (a stream
        // read per prescription otherwise); the last one wins, as in the prescription's state.
        RXFLOW_ASSIGN_OR_RETURN(domain::Event e,
                                domain::DecodeEvent(r.type, r.schema_version, r.payload));
        Remember(r.stream_id, !std::get<domain::PrescriptionTransformed>(e).dea_schedule.empty());
        continue;
      }
      std::string action, outcome = "success", detail = Cat("event ", r.event_id);
      if (r.type == domain::PrescriptionSent::kType) {
        action = "epcs.transmit.sent";
      } else if (r.type == domain::PharmacyAcknowledged::kType ||
                 r.type == domain::PharmacyVerified::kType) {
        action = "epcs.transmit.acknowledged";
      } else if (r.type == domain::CancelRequested::kType) {
        action = "epcs.cancel.requested";
      } else if (r.type == domain::PharmacyErrorReceived::kType) {
        RXFLOW_ASSIGN_OR_RETURN(domain::Event e,
                                domain::DecodeEvent(r.type, r.schema_version, r.payload));
        const auto& error = std::get<domain::PharmacyErrorReceived>(e);
        // The pharmacy's free text is not trusted: only a check name RxFlow knows is kept
        // ("digital signature revoked: ..." → "revoked"), never the rest of the text.
        std::string check = SignatureCheckOf(error.description);
        action = check.empty() ? "epcs.transmit.failed" : "epcs.verification.failed";
        outcome = "failure";
        Append(detail, "; SCRIPT Error ", error.code);
        if (!check.empty()) Append(detail, " (", check, ")");
      } else {
        continue;
      }
      RXFLOW_ASSIGN_OR_RETURN(bool c, IsControlled(r.stream_id));
      if (!c) continue;
      AuditEntry entry{r.actor.empty() ? "rxflow" : r.actor,
                       action,
                       Cat(r.stream_id, "@", r.version),
                       outcome,
                       source_,
                       detail};
      RXFLOW_RETURN_IF_ERROR(audit_.Record(std::move(entry)).status());
      ++written;
    }
    RXFLOW_RETURN_IF_ERROR(store_.Apply(kProjection, position, {}));
  }
}

}  // namespace rxflow::epcs
