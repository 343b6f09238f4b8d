// SPDX-License-Identifier: Apache-2.0
// File: rxflow/mapping/mapping.h
//
// FHIR R5 ⇄ NCPDP SCRIPT mapping over the typed models. Pure functions: no I/O, no clock,
// no randomness (message ids and times come in through the options).
//
// Every result carries its issues: an error for data that cannot be sent as it is (never
// truncated), a warning for every FHIR element that has no place in SCRIPT (with its
// path), so nothing is dropped silently. docs/mapping.md has the full field table.
//
// Example:
//   rxflow::IssueList issues;
//   auto input = rxflow::fhir::ParsePrescription(json, issues);
//   rxflow::mapping::NewRxOptions options;
//   options.message_id = "5f0c...";
//   options.sent_time = "2026-11-26T10:00:00Z";
//   auto newrx = rxflow::mapping::ToNewRx(*input, issues, options);
#ifndef RXFLOW_MAPPING_MAPPING_H_
#define RXFLOW_MAPPING_MAPPING_H_

#include <string>
#include <vector>

#include "rxflow/fhir/json.h"
#include "rxflow/fhir/r5.h"
#include "rxflow/issue.h"
#include "rxflow/script/model.h"
#include "rxflow/status.h"
#include "rxflow/version.h"

namespace rxflow::mapping {

// Where one structured-Sig element came from.
enum class Provenance {
  kCoded,    // copied from a coded FHIR element (SNOMED route, NCI unit, ...)
  kDerived,  // computed from FHIR data through a table (UCUM → NCI, BID → 2/day, ...)
  kAbsent,   // not in the input; not sent
};
std::string_view ProvenanceName(Provenance p);

struct SigElementProvenance {
  std::string element;  // SCRIPT element, e.g. "Instruction[1]/DoseAdministration/Dosage"
  Provenance provenance;
  std::string source;  // FHIR path it came from, or why it is absent
};

struct NewRxOptions {
  // Header/MessageID (≤35). REQUIRED: the transform layer generates one per message.
  std::string message_id;
  // Header/SentTime, UTC xsd:dateTime. REQUIRED.
  std::string sent_time;
  // Header/From: the sender's routing id, sent with `from_qualifier`. Default: the
  // prescriber's NPI, qualifier "D" (NewRx, CancelRx); for FromFhirBundle, the sending party
  // the Bundle names (docs/mapping.md §2.13), if any.
  std::string from;
  std::string from_qualifier = "D";
  // Header/To: the receiver's routing id, sent with `to_qualifier` (empty: "P"). Default: the
  // pharmacy's NCPDP ID, qualifier "P" (NewRx, CancelRx); for FromFhirBundle, the receiving
  // party the Bundle names, if any.
  std::string to;
  std::string to_qualifier;
  // Header/SenderSoftware.
  std::string sender_software_developer = "RxFlow";
  std::string sender_software_product = "RxFlow SDK";
  std::string sender_software_version = RXFLOW_VERSION_STRING;
  // Header/TestMessage "1" marks a test transmission.
  bool test_message = false;
  // Sig/CodeSystem versions, required by SCRIPT when a structured Sig is sent. Set them to
  // the SNOMED CT and NCI FMT releases your deployment uses.
  std::string snomed_version = "20240301";
  std::string fmt_version = "24.03d";
  // Observation/Measurement's LOINCVersion and UCUMVersion (both required by SCRIPT), for a
  // measurement whose LOINC coding has no `version` and whose Observation has no RxFlow
  // script-element extension UCUMVersion. Set them to the LOINC and UCUM releases your
  // deployment uses.
  std::string loinc_version = "2.77";
  std::string ucum_version = "2.1";
  // RxNorm codings carry no term type; DrugDBCode/Qualifier (and an allergy's
  // DrugProductCoded/Qualifier) needs one: this, unless the resource's script-element
  // extension (DrugCoded/DrugDBCode/Qualifier, DrugProductCoded/Qualifier, which SCRIPT → FHIR
  // writes) gives it. Default: SCD.
  std::string rxnorm_qualifier = "SCD";
  // Country when an address has none.
  std::string default_country = "US";
  // Send the structured Sig when every part of the dosage maps (SigText is always sent).
  bool structured_sig = true;
  // SCRIPT text is printable ASCII. false (the default): a FHIR value with anything else (an
  // accented name, a curly apostrophe, a line break in a note) is an error at its path and no
  // message is made. true: such a value is sent transliterated to printable ASCII (Muñoz →
  // Munoz, O’Brien → O'Brien, Straße → Strasse, a line break → a space; ICU's Latin-ASCII),
  // with a warning at its FHIR path; a value that cannot be (another script, µ, an emoji) is
  // still an error. docs/mapping.md §1 lists what changes.
  bool transliterate = false;
};

struct NewRxResult {
  script::Message message;
  std::vector<SigElementProvenance> sig_provenance;
  // DEA schedule of the drug ("CII", ...), empty when not controlled.
  std::string dea_schedule;
  // The FHIR path of the DEA schedule extension it came from; empty when it came from a
  // compound's ingredients or from the drug database (clinical::ApplyDrugDatabase), or there
  // is none.
  std::string dea_schedule_path;
  bool is_controlled() const { return !dea_schedule.empty(); }
};

// FHIR prescription → NewRx (with the patient's allergies and vital-sign measurements of
// `input`, each one that cannot be sent named in a warning). InvalidArgument when required
// data is missing or cannot be sent as is (each problem in `issues`, with its FHIR path).
StatusOr<NewRxResult> ToNewRx(const fhir::PrescriptionInput& input, IssueList& issues,
                              const NewRxOptions& options);

// A cancelled MedicationRequest (status "cancelled" or "stopped") → CancelRx for the
// original NewRx. `relates_to_message_id` is the NewRx's MessageID.
StatusOr<NewRxResult> ToCancelRx(const fhir::PrescriptionInput& input,
                                 std::string_view relates_to_message_id, IssueList& issues,
                                 const NewRxOptions& options);

// What a CancelRx built from a NewRx adds to it.
struct CancelRxOptions {
  // Header/MessageID of the CancelRx (≤35). REQUIRED.
  std::string message_id;
  // Header/SentTime, UTC xsd:dateTime. REQUIRED.
  std::string sent_time;
};

// The CancelRx for a NewRx as it was sent (SCRIPT → SCRIPT): the NewRx's header with
// RelatesToMessageID = the NewRx's MessageID and MessageID / SentTime from `cancel`, and the
// NewRx's patient, pharmacy, prescriber and prescribed medication. InvalidArgument when
// `newrx` is not a NewRx.
StatusOr<script::Message> CancelRxFromNewRx(script::Message newrx, const CancelRxOptions& cancel);

// FHIR → SCRIPT of the transactions SCRIPT → FHIR writes around a Task (docs/mapping.md
// §2.13): a Bundle as ToFhir makes it for one of them (or written the same way) → that message.
// The Task says which transaction: its `code` has a coding in
// https://rxflow.dev/fhir/CodeSystem/ncpdp-transaction (RxFillIndicatorChange,
// RxHistoryRequest, RxTransferRequest, RxTransferConfirm, NewRxRequest) or, for an answer, in
// .../ncpdp-response (the Response: Approved, Denied), told apart by the display ToFhir gives
// it, else by the Task: a TransferRequest or MedicationTransferred input (RxTransferResponse),
// a RequestedDates input (RxHistoryResponse), a focus on a proposed MedicationRequest
// (NewRxResponseDenied). References resolve by fullUrl and by Type/id. The parties, the
// medications and the Coverages are mapped as ToNewRx maps them, with the same issues.
//
// The header: MessageID, SentTime, SenderSoftware and TestMessage from `options`; To and From
// from `options` when set, else from the parties the Bundle names (the pharmacy's NCPDP ID,
// the prescriber's NPI; none for RxFillIndicatorChange, RxHistoryResponse and the receiver of
// an RxHistoryRequest); RelatesToMessageID `relates_to_message_id` when given, else the
// Task's focus by message id; PrescriberOrderNumber and RxReferenceNumber from the Task's
// focus or the MedicationRequest's identifiers.
//
// InvalidArgument when the Bundle holds no such Task (an error at Bundle.entry naming the
// code systems), when its Task names a transaction FromFhirBundle does not build (at the
// Task's code), or when a part the message requires is missing or cannot be sent (each
// error with its FHIR path and the SCRIPT element it fills; To or From that neither
// `options` nor the Bundle gives: at options.to / options.from). Every element of the
// Bundle that no SCRIPT element receives is named in a warning with its path.
StatusOr<script::Message> FromFhirBundle(const fhir::Bundle& bundle, IssueList& issues,
                                         const NewRxOptions& options,
                                         std::string_view relates_to_message_id = {});

// The transaction FromFhirBundle builds from `bundle`, by its Task as FromFhirBundle tells it
// ("RxHistoryRequest", ...; a code of ncpdp-transaction RxFlow does not build is returned
// as it is); "" when the Bundle holds no such Task (then it is a prescription, if anything:
// ParsePrescription and ToNewRx / ToCancelRx).
std::string BundleTransaction(const fhir::Bundle& bundle);

struct ToFhirOptions {
  // Bundle.type of the result. Default: collection.
  std::string bundle_type = "collection";
  // Prefix for the ids of created resources. Ids and the urn:uuid fullUrls are derived
  // from the MessageID, so the same message always yields the same Bundle.
  std::string id_prefix;
};

// SCRIPT → FHIR R5 Bundle:
//   NewRx, CancelRx, RxRenewal*, RxChange*  → MedicationRequest + Patient + Practitioner
//                                              (+ PractitionerRole) + Organization + Medication
//                                              (NewRx: + AllergyIntolerance per allergy or for
//                                              NoKnownAllergies, + Observation per Measurement)
//                                              (NewRx: + a Coverage, and an Organization for
//                                              its payer, per BenefitsCoordination)
//                                              (NewRx: + a Location for the Facility, named
//                                              by the MedicationRequest's RxFlow facility
//                                              extension)
//   Status, Verify, CancelRxResponse          → Task (status of the request it relates to)
//   Error                                     → OperationOutcome (+ Task failed)
//   RxFill                                    → MedicationDispense (+ Patient, Organization,
//                                                 Practitioner: the prescriber, for reference)
//   RxFillIndicatorChange, RxHistoryRequest,  → Task (+ Patient, Practitioner, Organizations)
//   RxTransferConfirm
//   RxHistoryResponse                         → MedicationDispense per dispensed entry or
//                                               MedicationStatement per prescribed entry + Task
//                                               (the history and transfer transactions: + a
//                                               Coverage per BenefitsCoordination)
//   RxTransferRequest/Response                → Task with both pharmacies (requester: the one
//                                               receiving the prescription, owner: the other)
//                                               + MedicationRequest (+ MedicationDispense)
//   NewRxRequest, NewRxResponseDenied         → MedicationRequest (intent proposal) + Task
// docs/mapping.md §4.1 has the details.
StatusOr<fhir::Bundle> ToFhir(const script::Message& message, IssueList& issues,
                              const ToFhirOptions& options = {});

}  // namespace rxflow::mapping

#endif  // RXFLOW_MAPPING_MAPPING_H_
