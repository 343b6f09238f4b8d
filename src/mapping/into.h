// SPDX-License-Identifier: Apache-2.0
// Private: ToNewRx and ToCancelRx mapping into a result the caller already holds.
//
// The NewRx model is ~14 KB of members (some 400 strings): each move of it cost ~3 % of a
// FHIR → NewRx transformation. ToScript keeps the message in the ScriptOutput it returns,
// so it maps there directly; the public ToNewRx/ToCancelRx map into the StatusOr they return.
#ifndef RXFLOW_SRC_MAPPING_INTO_H_
#define RXFLOW_SRC_MAPPING_INTO_H_

#include <string_view>

#include "rxflow/fhir/json.h"
#include "rxflow/issue.h"
#include "rxflow/mapping/mapping.h"
#include "rxflow/status.h"

namespace rxflow::mapping {

// As ToNewRx / ToCancelRx, into `out`, which must be default-constructed (nothing in it is
// cleared first: clearing ~400 members costs what a move does). On failure `out` holds what
// could be mapped; callers discard it.
Status MapNewRxInto(const fhir::PrescriptionInput& input, IssueList& issues,
                    const NewRxOptions& options, NewRxResult& out);
Status MapCancelRxInto(const fhir::PrescriptionInput& input, std::string_view relates_to_message_id,
                       IssueList& issues, const NewRxOptions& options, NewRxResult& out);

}  // namespace rxflow::mapping

#endif  // RXFLOW_SRC_MAPPING_INTO_H_
