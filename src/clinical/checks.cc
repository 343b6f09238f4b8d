// SPDX-License-Identifier: Apache-2.0
#include "rxflow/clinical/checks.h"

#include <algorithm>

#include "rxflow/internal/strcat.h"
#include "rxflow/mapping/codes.h"

#include "common/text.h"

namespace rxflow::clinical {

using rxflow::internal::Cat;

std::string CheckNpi(std::string_view npi) {
  if (npi.size() != 10 || !internal::IsAllDigits(npi)) return "an NPI has exactly 10 digits";
  if (npi[0] != '1' && npi[0] != '2') return "an NPI starts with 1 or 2";
  // Luhn over "80840" + the first 9 digits; the 10th digit is the check digit.
  std::string full = Cat("80840", npi.substr(0, 9));
  int sum = 0;
  bool dbl = true;  // the rightmost digit of the payload is doubled
  for (size_t i = full.size(); i-- > 0;) {
    int d = full[i] - '0';
    if (dbl) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    dbl = !dbl;
  }
  int check = (10 - sum % 10) % 10;
  if (check != npi[9] - '0') {
    return Cat("NPI check digit is wrong (expected ", check, ")");
  }
  return {};
}

std::string CheckDea(std::string_view dea, std::string_view last_name) {
  size_t dash = dea.find('-');
  if (dash != std::string_view::npos) dea = dea.substr(0, dash);
  if (dea.size() != 9) return "a DEA number is 2 letters and 7 digits";
  auto upper = [](char c) { return static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c); };
  char first = upper(dea[0]), second = upper(dea[1]);
  if (first < 'A' || first > 'Z' || !((second >= 'A' && second <= 'Z') || second == '9')) {
    return "a DEA number starts with two letters (the second may be 9)";
  }
  if (!internal::IsAllDigits(dea.substr(2))) return "a DEA number ends with 7 digits";
  static constexpr std::string_view kTypes = "ABCDEFGHJKLMPRSTUX";
  if (std::find(kTypes.begin(), kTypes.end(), first) == kTypes.end()) {
    return Cat("DEA registrant type ", std::string(1, first), " is not a known type");
  }
  int d[7];
  for (int i = 0; i < 7; ++i) d[i] = dea[2 + i] - '0';
  int check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10;
  if (check != d[6]) return Cat("DEA check digit is wrong (expected ", check, ")");
  if (!last_name.empty() && second != '9' && upper(last_name[0]) != second) {
    return Cat("DEA number's second letter ", std::string(1, second),
               " does not match the prescriber's last name initial ",
               std::string(1, upper(last_name[0])));
  }
  return {};
}

namespace {

// The path of the first identifier of `kind`, also looking in qualifications.
std::string IdPath(const std::string& base, const std::vector<fhir::Identifier>& ids,
                   mapping::IdentifierKind kind,
                   const std::vector<fhir::Qualification>* qualifications = nullptr) {
  auto type_code = [](const fhir::Identifier& id) {
    std::string type;
    if (id.type) {
      for (const auto& c : id.type->coding) {
        if (c.system == mapping::kV2IdentifierType || c.system.empty()) type = c.code;
      }
    }
    return type;
  };
  for (size_t i = 0; i < ids.size(); ++i) {
    if (mapping::ClassifyIdentifier(ids[i].system, type_code(ids[i])) == kind) {
      return Cat(base, ".identifier[", i, "].value");
    }
  }
  if (qualifications) {
    for (size_t q = 0; q < qualifications->size(); ++q) {
      const auto& qids = (*qualifications)[q].identifier;
      for (size_t i = 0; i < qids.size(); ++i) {
        if (mapping::ClassifyIdentifier(qids[i].system, type_code(qids[i])) == kind) {
          return Cat(base, ".qualification[", q, "].identifier[", i, "].value");
        }
      }
    }
  }
  return base + ".identifier";
}

// Months between two full dates (YYYY-MM-DD), counting a partial month as past.
bool MoreThanMonthsAfter(std::string_view later, std::string_view earlier, int months) {
  if (later.size() < 10 || earlier.size() < 10) return false;
  int y1 = std::stoi(std::string(earlier.substr(0, 4))),
      m1 = std::stoi(std::string(earlier.substr(5, 2))),
      d1 = std::stoi(std::string(earlier.substr(8, 2)));
  int y2 = std::stoi(std::string(later.substr(0, 4))),
      m2 = std::stoi(std::string(later.substr(5, 2))),
      d2 = std::stoi(std::string(later.substr(8, 2)));
  int diff = (y2 - y1) * 12 + (m2 - m1);
  return diff > months || (diff == months && d2 > d1);
}

}  // namespace

void CheckPrescription(const fhir::PrescriptionInput& input, const mapping::NewRxResult& newrx,
                       IssueList& issues, const CheckOptions& options) {
  const auto* nrx = std::get_if<script::NewRx>(&newrx.message.body);
  const auto* crx = std::get_if<script::CancelRx>(&newrx.message.body);
  const script::Prescriber* prescriber = nrx ? &nrx->prescriber : crx ? &crx->prescriber : nullptr;
  const script::Medication* med = nrx   ? &nrx->medication_prescribed
                                  : crx ? &crx->medication_prescribed
                                        : nullptr;
  const std::optional<script::Pharmacy>* pharmacy = nrx   ? &nrx->pharmacy
                                                    : crx ? &crx->pharmacy
                                                          : nullptr;
  if (!prescriber || !med) return;

  // Identifiers.
  if (input.practitioner && !prescriber->identification.npi.empty()) {
    std::string why = CheckNpi(prescriber->identification.npi);
    if (!why.empty()) {
      issues.Error(IdPath(input.practitioner_path, input.practitioner->identifier,
                          mapping::IdentifierKind::kNpi),
                   IssueCode::kValue, Cat("prescriber NPI: ", why));
    }
  }
  if (pharmacy && *pharmacy && input.pharmacy && !(*pharmacy)->identification.npi.empty()) {
    std::string why = CheckNpi((*pharmacy)->identification.npi);
    if (!why.empty()) {
      issues.Error(
          IdPath(input.pharmacy_path, input.pharmacy->identifier, mapping::IdentifierKind::kNpi),
          IssueCode::kValue, Cat("pharmacy NPI: ", why));
    }
  }
  std::string dea_path =
      input.practitioner ? IdPath(input.practitioner_path, input.practitioner->identifier,
                                  mapping::IdentifierKind::kDea, &input.practitioner->qualification)
                         : "practitioner";
  if (!prescriber->identification.dea_number.empty()) {
    std::string why =
        CheckDea(prescriber->identification.dea_number,
                 options.check_dea_last_name ? std::string_view(prescriber->name.last_name)
                                             : std::string_view());
    if (!why.empty())
      issues.Error(dea_path, IssueCode::kValue, Cat("prescriber DEA number: ", why));
  }

  // Controlled substances (21 CFR 1306): rules for what may be filled, so not for a cancel.
  if (crx) return;
  const std::string& p = input.medication_request_path;
  int schedule = mapping::DeaScheduleNumber(newrx.dea_schedule);
  if (schedule == 0) return;
  std::string refills_path = p + ".dispenseRequest.numberOfRepeatsAllowed";
  int refills = med->number_of_refills.empty() ? 0 : std::stoi(med->number_of_refills);
  if (prescriber->identification.dea_number.empty()) {
    issues.Error(dea_path, IssueCode::kBusinessRule,
                 Cat("a Schedule ", newrx.dea_schedule,
                     " prescription requires the prescriber's DEA number"));
  }
  if (schedule == 1) {
    issues.Error(p + ".medication", IssueCode::kBusinessRule,
                 "Schedule I substances have no accepted medical use and cannot be prescribed");
  } else if (schedule == 2) {
    if (refills > 0) {
      issues.Error(refills_path, IssueCode::kBusinessRule,
                   Cat("Schedule II prescriptions cannot be refilled (21 CFR 1306.12); got ",
                       refills, " refills"));
    }
  } else if (schedule == 3 || schedule == 4) {
    if (refills > 5) {
      issues.Error(
          refills_path, IssueCode::kBusinessRule,
          Cat("Schedule III/IV prescriptions allow at most 5 refills (21 CFR 1306.22); got ",
              refills));
    }
    const auto& dr = input.medication_request.dispense_request;
    if (dr && dr->validity_period && !dr->validity_period->end.empty() &&
        MoreThanMonthsAfter(dr->validity_period->end, input.medication_request.authored_on,
                            options.policy.schedule3_4_months)) {
      issues.Error(p + ".dispenseRequest.validityPeriod.end", IssueCode::kBusinessRule,
                   Cat("Schedule III/IV prescriptions cannot be filled more than ",
                       options.policy.schedule3_4_months,
                       " months after the date written (21 CFR 1306.22)"));
    }
  } else if (schedule == 5 && options.policy.schedule5_max_refills &&
             refills > *options.policy.schedule5_max_refills) {
    issues.Error(
        refills_path, IssueCode::kBusinessRule,
        Cat("Schedule V prescriptions allow at most ", *options.policy.schedule5_max_refills,
            " refills under the ", options.policy.name, " policy; got ", refills));
  }
}

}  // namespace rxflow::clinical
