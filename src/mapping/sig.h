// SPDX-License-Identifier: Apache-2.0
// Private: FHIR Dosage ⇄ SCRIPT Sig.
#ifndef RXFLOW_SRC_MAPPING_SIG_H_
#define RXFLOW_SRC_MAPPING_SIG_H_

#include <string>
#include <vector>

#include "rxflow/fhir/r5.h"
#include "rxflow/issue.h"
#include "rxflow/mapping/mapping.h"
#include "rxflow/script/model.h"

namespace rxflow::mapping {

// SNOMED CT concepts RxFlow uses in a structured Sig. [U]: not verified against a
// SNOMED release here; see docs/mapping.md.
inline constexpr std::string_view kSnomedAsNeeded = "225761000";   // as required (PRN)
inline constexpr std::string_view kSnomedAtBedtime = "307155000";  // at bedtime

class SigMapper {
 public:
  SigMapper(IssueList& issues, const NewRxOptions& options) : issues_(issues), options_(options) {}

  // dosageInstruction → Sig. SigText is the dosages' texts joined (" then " between
  // sequential steps, " and " between concurrent ones); it is always sent. The
  // structured part is sent only when every dosage maps completely; otherwise an
  // information issue says why and only SigText goes.
  std::optional<script::Sig> Map(const std::vector<fhir::Dosage>& dosages, const std::string& path,
                                 std::vector<SigElementProvenance>& provenance);

 private:
  // A warning for each dosage's patientInstruction: SCRIPT carries it only in a structured Sig.
  void WarnPatientInstructionsDropped(const std::vector<fhir::Dosage>& dosages,
                                      const std::string& path);

  IssueList& issues_;
  const NewRxOptions& options_;
};

// Whether a dosage says more than its text (and sequence and patientInstruction, which
// travel without the structure or order the texts).
bool HasStructure(const fhir::Dosage& d);

// Sig → dosageInstruction. Dosage[0].text carries SigText; the structured part becomes
// structured Dosage fields only when every code maps back, else an information issue.
std::vector<fhir::Dosage> SigToDosage(const script::Sig& sig, const std::string& path,
                                      IssueList& issues);

}  // namespace rxflow::mapping

#endif  // RXFLOW_SRC_MAPPING_SIG_H_
