// SPDX-License-Identifier: Apache-2.0
// SCRIPT → SCRIPT: the CancelRx for a stored NewRx.
#include <utility>
#include <variant>

#include "rxflow/internal/strcat.h"
#include "rxflow/mapping/mapping.h"

namespace rxflow::mapping {

StatusOr<script::Message> CancelRxFromNewRx(script::Message newrx, const CancelRxOptions& cancel) {
  auto* n = std::get_if<script::NewRx>(&newrx.body);
  if (n == nullptr) {
    return absl::InvalidArgumentError(internal::Cat("a CancelRx is built from a NewRx, not a ",
                                                    script::TransactionName(newrx.body)));
  }
  script::CancelRx body;
  body.patient = std::move(n->patient);
  body.pharmacy = std::move(n->pharmacy);
  body.prescriber = std::move(n->prescriber);
  body.medication_prescribed = std::move(n->medication_prescribed);
  script::Message out;
  out.header = std::move(newrx.header);
  out.header.relates_to_message_id = out.header.message_id;
  out.header.message_id = cancel.message_id;
  out.header.sent_time = cancel.sent_time;
  out.body = std::move(body);
  return out;
}

}  // namespace rxflow::mapping
