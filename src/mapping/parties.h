// SPDX-License-Identifier: Apache-2.0
// Private: ToNewRx's FHIR → SCRIPT mapping of one party, one prescribed medication or one
// Coverage, for the other transactions FHIR → SCRIPT builds (bundle_to_script.cc). Each
// function reads the resources of `in` it names, at their `*_path`, with exactly the rules
// ToNewRx applies (docs/mapping.md §2), and reports to `issues`. Implemented in
// fhir_to_script.cc over its Mapper, so that there is one mapping of each party.
#ifndef RXFLOW_SRC_MAPPING_PARTIES_H_
#define RXFLOW_SRC_MAPPING_PARTIES_H_

#include <optional>
#include <string>

#include "rxflow/fhir/json.h"
#include "rxflow/fhir/r5.h"
#include "rxflow/issue.h"
#include "rxflow/mapping/mapping.h"
#include "rxflow/script/model.h"

namespace rxflow::mapping::parties {

// `in.patient` (at `in.patient_path`) → Patient/HumanPatient: identifiers, name, gender,
// birth date, address and telecom. Its extensions are not read.
script::Patient Patient(const fhir::PrescriptionInput& in, IssueList& issues,
                        const NewRxOptions& options);

// `in.practitioner`, with `in.practitioner_role` and its organization `in.practice`, and
// `in.recorder` as the PrescriberAgent → Prescriber/NonVeterinarian. An error names each
// part a NewRx Prescriber requires (NPI, name, address, phone) that is missing.
script::Prescriber Prescriber(const fhir::PrescriptionInput& in, IssueList& issues,
                              const NewRxOptions& options);

// `in.pharmacy` (at `in.pharmacy_path`) → Pharmacy: NCPDP ID, NPI, DEA number, state licence,
// name, NUCC specialty, address and telecom. REQUIRES: `in.pharmacy`.
script::Pharmacy Pharmacy(const fhir::PrescriptionInput& in, IssueList& issues,
                          const NewRxOptions& options);

// `in.medication_request` (and `in.medication`) → the medication as a NewRx's
// MedicationPrescribed: drug, quantity, days supply, written date, substitutions, refills,
// diagnoses, note, effective and expiration dates and Sig. `dea_schedule` gets the schedule
// ("CII", ...) when there is one. Its extensions are not read (but the DEA schedule).
script::Medication Medication(const fhir::PrescriptionInput& in, IssueList& issues,
                              const NewRxOptions& options, std::string& dea_schedule);

// A Coverage (with its insurer) → BenefitsCoordination, as a NewRx's.
script::BenefitsCoordination Benefits(const fhir::CoverageInput& in, IssueList& issues,
                                      const NewRxOptions& options);

// A warning for each extension of `r` (at `path`), naming what it carries; with
// `dea_schedule_read`, RxFlow's DEA schedule extension is not named.
void ReportExtensions(const fhir::ResourceBase& r, const std::string& path, IssueList& issues,
                      bool dea_schedule_read = false);

// RxFlow's script-element extension: the SCRIPT element it names and its value (none when
// it has no valueString "value"); nullopt for any other extension.
struct ScriptElementValue {
  std::string element;
  std::optional<std::string> value;
};
std::optional<ScriptElementValue> ScriptElementOf(const fhir::Extension& e);

// What an extension carries, for a warning: "SCRIPT <element> (script-element extension)"
// or "extension <url>".
std::string ExtensionSubject(const fhir::Extension& e);

}  // namespace rxflow::mapping::parties

#endif  // RXFLOW_SRC_MAPPING_PARTIES_H_
