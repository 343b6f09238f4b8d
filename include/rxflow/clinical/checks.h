// SPDX-License-Identifier: Apache-2.0
// File: rxflow/clinical/checks.h
//
// Prescribing checks: identifier check digits (NPI, DEA registration number), the DEA
// controlled-substance rules of 21 CFR 1306, and the data a NewRx must carry. Pure and
// thread-safe. Violations are issues with the FHIR path of the offending element.
#ifndef RXFLOW_CLINICAL_CHECKS_H_
#define RXFLOW_CLINICAL_CHECKS_H_

#include <optional>
#include <string>
#include <string_view>

#include "rxflow/clinical/drugs.h"
#include "rxflow/fhir/json.h"
#include "rxflow/issue.h"
#include "rxflow/mapping/mapping.h"

namespace rxflow::clinical {

// NPI: 10 digits, first digit 1 or 2, Luhn check digit computed with the 80840 prefix.
// Returns an empty string when valid, else what is wrong.
std::string CheckNpi(std::string_view npi);

// DEA registration number: 2 letters + 7 digits (an optional "-suffix" of a supervised
// practitioner is ignored); check digit d7 = (d1+d3+d5 + 2*(d2+d4+d6)) mod 10; the first
// letter a registrant type; the second letter the registrant's last-name initial or '9'
// (checked when `last_name` is given). Empty string when valid, else what is wrong.
std::string CheckDea(std::string_view dea, std::string_view last_name = {});

// Which refill limit applies to Schedule V. Federal law sets none; states do.
struct ControlledSubstancePolicy {
  // Maximum refills for C-V, or nullopt for no limit (the federal profile).
  std::optional<int> schedule5_max_refills;
  // C-III/IV: no fill more than this many months after the date written (21 CFR 1306.22).
  int schedule3_4_months = 6;
  // Name shown in messages ("federal", "NY", ...).
  std::string name = "federal";
};

struct CheckOptions {
  ControlledSubstancePolicy policy;
  // Check that the DEA number's second letter matches the prescriber's last name.
  bool check_dea_last_name = true;
  // The drug database the transform looks the prescribed drug up in (ApplyDrugDatabase).
  // nullptr (the library's default): no lookup. The service and the `rxflow` tool use the
  // starter formulary unless told otherwise. Must outlive the calls.
  const DrugDatabase* drugs = nullptr;
  // How the database is named in issues ("starter formulary", "drugs.db").
  std::string drugs_name = "drug database";
};

// Looks the prescribed drug's NDC and RxNorm codings up in `drugs` (a NewRx, before
// CheckPrescription):
//   - a code the database does not know: a warning at the coding's code;
//   - an NDC and an RxCUI naming two different products: a warning;
//   - a DEA schedule in the request that disagrees with the database's federal schedule: an
//     error (kBusinessRule: HTTP 422) at the schedule extension naming both; the request
//     marking a drug the database has as uncontrolled: a warning (a state may schedule it);
//   - no schedule in the request and one in the database: the database's is taken —
//     `newrx.dea_schedule` and DrugCoded/DEASchedule — with an information issue, so the
//     prescription takes the controlled-substance path (rules, ReadyToSign).
// Returns the product found, or nullptr.
const DrugProduct* ApplyDrugDatabase(const fhir::PrescriptionInput& input,
                                     mapping::NewRxResult& newrx, IssueList& issues,
                                     const CheckOptions& options);

// Runs every check on a parsed prescription and its NewRx mapping: identifiers (NPI of
// prescriber and pharmacy, DEA number), controlled-substance rules (C-II: no refills;
// C-III/IV: at most 5 refills and no fill date beyond 6 months; C-V: the policy; a DEA
// number is required for any controlled drug), and the data a NewRx needs. Errors are
// business-rule issues (HTTP 422 in the service).
void CheckPrescription(const fhir::PrescriptionInput& input, const mapping::NewRxResult& newrx,
                       IssueList& issues, const CheckOptions& options = {});

}  // namespace rxflow::clinical

#endif  // RXFLOW_CLINICAL_CHECKS_H_
