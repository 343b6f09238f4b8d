// SPDX-License-Identifier: Apache-2.0
// File: rxflow/fhir/json.h
//
// FHIR R5 JSON ⇄ typed values (rxflow/fhir/r5.h).
//
// Reading is done with simdjson straight into the structs: no DOM is built. Every problem
// is reported as an `Issue` whose path is a JSON path into the input, e.g.
//   error: medication_request.dosageInstruction[0].timing.repeat.period: expected a decimal, got a
//   string
//
// Modes: lenient (the default) reports unknown elements as warnings and goes on; strict
// reports them as errors. In both modes, a known FHIR element that RxFlow does not model
// is reported as a warning ("not supported: dropped"), so nothing is lost silently.
//
// Primitive formats are checked: date, dateTime (a time requires a zone), instant,
// decimal, integer/positiveInt/unsignedInt, code, id, uri, boolean; strings must be valid
// UTF-8 (the whole input is checked) without control characters.
//
// Example:
//   rxflow::IssueList issues;
//   auto input = rxflow::fhir::ParsePrescription(text, issues);
//   if (!input.ok()) { /* input.status() says why; `issues` says where */ }
#ifndef RXFLOW_FHIR_JSON_H_
#define RXFLOW_FHIR_JSON_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rxflow/fhir/r5.h"
#include "rxflow/issue.h"
#include "rxflow/status.h"

namespace rxflow::fhir {

enum class ParseMode { kLenient, kStrict };

struct ParseOptions {
  // Unknown elements: warnings (lenient) or errors (strict). Default: lenient.
  ParseMode mode = ParseMode::kLenient;
  // Inputs larger than this are refused with ResourceExhausted. Default: 8 MiB.
  size_t max_input_bytes = size_t{8} << 20;
  // Objects/arrays nested deeper than this are refused. Default: 64.
  size_t max_depth = 64;
  // Any string longer than this (in bytes) is refused. Default: 1 MiB (FHIR's own limit).
  size_t max_string_bytes = size_t{1} << 20;
};

// Parses one resource of any type RxFlow models. The root path of issues is the resource
// type ("MedicationRequest.status").
//
// Returns InvalidArgument when the input is not JSON, not a supported resource, or has
// errors (all of them are in `issues`); ResourceExhausted over `max_input_bytes`.
StatusOr<Resource> ParseResource(std::string_view json, IssueList& issues,
                                 const ParseOptions& options = {});

// A resource of the input and where it came from in the input (for issue paths).
template <typename T>
struct WithPath {
  T resource;
  std::string path;
};

// A Coverage RxFlow sends as a SCRIPT BenefitsCoordination, with where it came from.
struct CoverageInput {
  Coverage coverage;
  std::string path;
  // `Coverage.insurer`, when it resolves to an Organization (the payer).
  std::optional<Organization> insurer;
  std::string insurer_path;
  // Whether `Coverage.subscriber` resolves to the prescription's Patient.
  bool subscriber_is_patient = false;
};

// A prescription as RxFlow maps it: the MedicationRequest and the resources it points
// to, resolved. `*_path` is where each came from in the input (for issue paths).
struct PrescriptionInput {
  MedicationRequest medication_request;
  Patient patient;
  std::optional<Practitioner> practitioner;
  std::optional<PractitionerRole> practitioner_role;
  std::optional<Organization> pharmacy;
  // The organisation of the PractitionerRole (the prescriber's practice), if any.
  std::optional<Organization> practice;
  std::optional<Medication> medication;
  // The MedicationRequest's `recorder` (who keyed the order for the prescriber), when it
  // resolves to a Practitioner (directly or through a PractitionerRole). An unresolved
  // recorder is not an error: the mapper reports it as not sent.
  std::optional<Practitioner> recorder;
  // The supervising prescriber (SCRIPT NewRx Supervisor): what the first of RxFlow's
  // supervisor extensions on the MedicationRequest
  // (https://rxflow.dev/fhir/StructureDefinition/supervisor, valueReference) names, when it
  // resolves to a Practitioner, or to a PractitionerRole naming one (then `supervisor_role`
  // and its organization `supervisor_practice`, if that resolves). `supervisor_reference_path`
  // is that extension's valueReference path, set whether or not it resolves: one that does
  // not resolve is not an error; the mapper reports it as not sent.
  std::optional<Practitioner> supervisor;
  std::optional<PractitionerRole> supervisor_role;
  std::optional<Organization> supervisor_practice;
  // The patient's allergies and measurements, in input order: in a Bundle, the
  // AllergyIntolerance and Observation entries whose `patient` / `subject` resolves to the
  // MedicationRequest's subject (the others are named in a warning); in the envelope, the
  // `allergies` and `observations` members.
  std::vector<WithPath<AllergyIntolerance>> allergies;
  std::vector<WithPath<Observation>> observations;
  // The Coverages to send (SCRIPT carries at most four): those `MedicationRequest.insurance`
  // names, in its order, then (Bundle only) the Bundle's other Coverages whose beneficiary
  // is the prescription's Patient, in entry order. Each one left out is named in a warning
  // with its path: a fifth and later one, a status other than active, a self-pay kind, an
  // insurance reference that does not resolve to a Coverage, a beneficiary that is another
  // Patient.
  std::vector<CoverageInput> coverages;
  // The facility where the patient resides or receives care (SCRIPT NewRx Facility): the
  // Location the MedicationRequest's RxFlow facility extension
  // (https://rxflow.dev/fhir/StructureDefinition/facility, valueReference) names, resolved
  // in the Bundle or (Bundle or envelope) among the MedicationRequest's contained resources.
  // A facility extension that does not resolve to a Location, has no valueReference or
  // comes a second time is named in a warning with its path, and no Facility is sent.
  std::optional<WithPath<Location>> facility;

  std::string medication_request_path;
  std::string patient_path;
  std::string practitioner_path;
  std::string practitioner_role_path;
  std::string practice_path;
  std::string pharmacy_path;
  std::string medication_path;
  std::string recorder_path;
  std::string supervisor_path;
  std::string supervisor_role_path;
  std::string supervisor_practice_path;
  std::string supervisor_reference_path;
};

// Parses the request envelope
//   {"medication_request": {...}, "patient": {...}, "practitioner": {...},
//    "pharmacy": {...}, "medication": {...}, "practitioner_role": {...},
//    "allergies": [{...}, ...], "observations": [{...}, ...]}
// ("medication", "practitioner_role", "allergies" and "observations" optional; each member
// must be of its resource type: AllergyIntolerance for each of "allergies", Observation for
// each of "observations") or a FHIR Bundle (collection, transaction, batch, message) holding
// one MedicationRequest.
// References resolve by Bundle `fullUrl`, by `Type/id`, and to contained resources by
// `#id`; a PractitionerRole requester is followed to its Practitioner and Organization.
// An unresolvable reference is an error with its path, except the optional `recorder`,
// `insurance`, the supervisor extension and the facility extension (the mapper, or a warning,
// names what is not sent). In the envelope, only a contained Coverage (`#id`) can be named by
// `insurance`, and only a contained Location by the facility extension.
StatusOr<PrescriptionInput> ParsePrescription(std::string_view json, IssueList& issues,
                                              const ParseOptions& options = {});

enum class JsonStyle { kCompact, kPretty };

// Writes `resource` as FHIR R5 JSON. Empty strings, empty lists and absent optionals are
// omitted, as FHIR requires.
std::string WriteJson(const Resource& resource, JsonStyle style = JsonStyle::kPretty);

// Writes `issues` as a FHIR OperationOutcome (each issue's path in `expression`).
OperationOutcome ToOperationOutcome(const IssueList& issues);

}  // namespace rxflow::fhir

#endif  // RXFLOW_FHIR_JSON_H_
