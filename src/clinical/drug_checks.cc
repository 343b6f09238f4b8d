// SPDX-License-Identifier: Apache-2.0
// The transform's use of the drug database: the prescribed drug's codes looked up, its DEA
// schedule compared with the request's or taken from the database.
#include <variant>

#include "rxflow/clinical/checks.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/mapping/codes.h"

namespace rxflow::clinical {

using internal::Cat;

namespace {

std::string Describe(const DrugProduct& p) {
  return Cat("\"", p.name, "\"", p.rxcui.empty() ? "" : Cat(" (RxCUI ", p.rxcui, ")"));
}

script::Medication* PrescribedMedication(script::Message& m) {
  if (auto* newrx = std::get_if<script::NewRx>(&m.body)) return &newrx->medication_prescribed;
  return nullptr;
}

}  // namespace

const DrugProduct* ApplyDrugDatabase(const fhir::PrescriptionInput& input,
                                     mapping::NewRxResult& newrx, IssueList& issues,
                                     const CheckOptions& options) {
  if (!options.drugs) return nullptr;
  const DrugDatabase& db = *options.drugs;
  const fhir::MedicationRequest& mr = input.medication_request;
  const fhir::CodeableConcept* code = nullptr;
  std::string code_path;
  if (mr.medication.concept_) {
    code = &*mr.medication.concept_;
    code_path = input.medication_request_path + ".medication.concept";
  } else if (input.medication && input.medication->code) {
    code = &*input.medication->code;
    code_path = input.medication_path + ".code";
  }
  if (!code) return nullptr;

  const DrugProduct* found = nullptr;
  std::string found_path;
  for (size_t i = 0; i < code->coding.size(); ++i) {
    const fhir::Coding& c = code->coding[i];
    bool ndc = c.system == mapping::kNdc;
    if (!ndc && c.system != mapping::kRxNorm) continue;
    std::string path = Cat(code_path, ".coding[", i, "].code");
    const DrugProduct* p = ndc ? db.FindByNdc(c.code) : db.FindByRxcui(c.code);
    if (!p) {
      // A malformed NDC is the mapper's error already; only a well-formed unknown one here.
      if (ndc && NdcCandidates(c.code).empty()) continue;
      if (ndc && NdcCandidates(c.code).size() > 1) {
        size_t known = 0;
        for (const std::string& n : NdcCandidates(c.code)) known += db.FindByNdc(n) ? 1 : 0;
        if (known > 1) {
          issues.Warning(path, IssueCode::kValue,
                         Cat("NDC ", c.code.substr(0, 20),
                             " without hyphens could be several products in the ",
                             options.drugs_name, ": write it 5-4-2, 4-4-2, 5-3-2 or 5-4-1"));
          continue;
        }
      }
      issues.Warning(
          path, IssueCode::kNotFound,
          Cat(ndc ? "NDC " : "RxCUI ", c.code.substr(0, 20), " is not in the ", options.drugs_name,
              ": the drug's DEA schedule is not checked against it"));
      continue;
    }
    if (found && found != p) {
      issues.Warning(path, IssueCode::kValue,
                     Cat("this code names ", Describe(*p), " but ", found_path, " names ",
                         Describe(*found), " in the ", options.drugs_name, ": the first is used"));
      continue;
    }
    if (!found) {
      found = p;
      found_path = path;
    }
  }
  if (!found) return nullptr;

  const int request =
      newrx.dea_schedule.empty() ? 0 : mapping::DeaScheduleNumber(newrx.dea_schedule);
  const int database = found->dea_schedule;
  const std::string where = newrx.dea_schedule_path.empty()
                                ? input.medication_request_path + ".medication"
                                : newrx.dea_schedule_path;
  if (request != 0 && database != 0 && request != database) {
    issues.Error(where, IssueCode::kBusinessRule,
                 Cat("the request says Schedule ", ScheduleName(request), " but the ",
                     options.drugs_name, " has Schedule ", ScheduleName(database), " for ",
                     Describe(*found), " (", found_path, ")"));
  } else if (request != 0 && database == 0) {
    issues.Warning(where, IssueCode::kValue,
                   Cat("the request says Schedule ", ScheduleName(request), " but the ",
                       options.drugs_name, " has ", Describe(*found),
                       " as not federally controlled: the request's schedule is kept (a state "
                       "may schedule it)"));
  } else if (request == 0 && database != 0) {
    newrx.dea_schedule = std::string(ScheduleName(database));
    if (script::Medication* m = PrescribedMedication(newrx.message)) {
      if (!m->drug_coded) m->drug_coded.emplace();
      if (auto nci = mapping::DeaScheduleToNci(newrx.dea_schedule)) {
        m->drug_coded->dea_schedule_code = std::string(*nci);
      }
    }
    issues.Add(Severity::kInformation, IssueCode::kInformational, found_path,
               Cat("DEA Schedule ", newrx.dea_schedule, " from the ", options.drugs_name, " for ",
                   Describe(*found), ": the controlled-substance rules apply"));
  }
  return found;
}

}  // namespace rxflow::clinical
