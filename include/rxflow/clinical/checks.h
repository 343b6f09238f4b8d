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
};

// Runs every check on a parsed prescription and its NewRx mapping: identifiers (NPI of
// prescriber and pharmacy, DEA number), controlled-substance rules (C-II: no refills;
// C-III/IV: at most 5 refills and no fill date beyond 6 months; C-V: the policy; a DEA
// number is required for any controlled drug), and the data a NewRx needs. Errors are
// business-rule issues (HTTP 422 in the service).
void CheckPrescription(const fhir::PrescriptionInput& input, const mapping::NewRxResult& newrx,
                       IssueList& issues, const CheckOptions& options = {});

}  // namespace rxflow::clinical

#endif  // RXFLOW_CLINICAL_CHECKS_H_
