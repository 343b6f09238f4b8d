// SPDX-License-Identifier: Apache-2.0
// File: rxflow/clinical/pdmp.h
//
// Querying a prescription drug monitoring program (PDMP) for a patient's controlled-substance
// dispensing history before prescribing: the `pdmp::Client` port, the HL7 FHIR PDMP IG's
// `$pdmp-history` operation as JSON (request and response), and a simulator that answers from
// the ASAP files it has received (rxflow/clinical/asap.h) — the closed loop prescribe →
// dispense → ASAP report → query → see the dispensing.
//
// The FHIR shapes follow the IG's STU1 (hl7.fhir.us.pdmp 1.0.0, FHIR R4): the operation
// `pdmp-history`, whose input Parameters carry `patient`, `authorized-practitioner` and
// `authorized-practitioner-role`, and whose output Parameters carry `pdmp-history-data` (a
// Bundle of MedicationDispense, Patient and pharmacy Organization resources),
// `pdmp-history-link` (a report URL) and `outcome` (an OperationOutcome). The IG's published
// examples are this module's test fixtures (tests/fixtures/clinical/pdmp/); the names of the
// pre-publication draft (`pdmp-history-result`, OperationOutcome inside the Bundle) are read
// too.
//
// RxFlow's service runs a query for a prescription's patient and records it as a
// PdmpQueried event (PrescriptionService::QueryPdmp); the EPCS signing bundle shows the last
// one. docs/clinical.md, "PDMP queries", has the field mapping and what is advisory.
//
// Example:
//   rxflow::clinical::pdmp::Simulator sim;
//   sim.AddAsapFile(asap_text);
//   auto result = sim.History(query);  // result->dispenses
#ifndef RXFLOW_CLINICAL_PDMP_H_
#define RXFLOW_CLINICAL_PDMP_H_

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "rxflow/clinical/asap.h"
#include "rxflow/status.h"

namespace rxflow::clinical::pdmp {

// The patient asked about (PDMP IG pdmp-patient: name and birth date required).
struct Patient {
  std::string family;
  std::string given;       // the first given name
  std::string birth_date;  // YYYY-MM-DD
  std::string gender;      // FHIR: male, female, other, unknown ("" = not sent)
  std::string postal_code;
  std::string state;  // USPS code
};

// Who asks: the authorized practitioner (required by the IG) and their organization.
struct Practitioner {
  std::string npi;
  std::string dea_number;
  std::string family;
  std::string given;
  std::string state;
  std::string organization_name;
};

struct Query {
  Patient patient;
  Practitioner requester;
};

// One dispensing in the history (pdmp-medicationdispense).
struct Dispense {
  std::string date_filled;  // whenPrepared, YYYY-MM-DD (ASAP DSP05)
  // The pharmacy's prescription number (authorizingPrescription.identifier; DSP02).
  std::string rx_number;
  // pdmp-extension-rx-fill-number: 1 the first refill, ... ("" = the original fill, DSP06).
  std::string refill_number;
  std::string ndc11;          // NDC-11, no hyphens (DSP08)
  std::string rxcui;          // RxNorm (DSP19)
  std::string drug_name;      // medication text or coding display
  std::string quantity;       // quantity.value (DSP09)
  std::string quantity_unit;  // quantity.unit: each, mL, g (DSP11)
  std::string days_supply;    // daysSupply.value (DSP10)
  std::string pharmacy_ncpdp_id;
  std::string pharmacy_npi;
  std::string pharmacy_name;
  std::string status = "completed";
};

enum class Outcome {
  kFound,        // `dispenses` lists the history (and `report_url` may link a report)
  kReport,       // no data, but a report: `report_url` (pdmp-history-link)
  kNotFound,     // no history for the patient (the `outcome` may say why: `messages`)
  kError,        // the PDMP answered with an error or fatal issue (`messages`)
  kUnavailable,  // the PDMP could not be asked (PrescriptionService::QueryPdmp only)
};
// "found", "report", "not-found", "error", "unavailable"
std::string_view OutcomeName(Outcome o);

struct Result {
  Outcome outcome = Outcome::kNotFound;
  std::vector<Dispense> dispenses;  // newest fill first
  std::string report_url;           // pdmp-history-link
  // OperationOutcome diagnostics (the PDMP's words: may name the patient).
  std::vector<std::string> messages;
  // The PDMP's own record of the patient (the Bundle's Patient; for the answer it writes,
  // HistoryResponseJson: the IG forbids echoing the request's patient back).
  Patient patient;
};

// A PDMP. History is called from request threads: implementations are thread-safe.
class Client {
 public:
  virtual ~Client() = default;
  // Unavailable when the PDMP cannot be reached or answers with something that is not a
  // $pdmp-history result (naming what); a PDMP's own error is Result::outcome kError.
  virtual StatusOr<Result> History(const Query& query) = 0;
  // What the query is recorded as coming from ("pdmp simulator", "fhir pdmp 127.0.0.1:8089").
  virtual std::string name() const = 0;
};

// ---- the FHIR $pdmp-history operation ----------------------------------------------------

// The input Parameters: patient, authorized-practitioner, authorized-practitioner-role (and
// authorized-practitioner-organization when it has a name), pre-stage-only false.
std::string HistoryRequestJson(const Query& query);
// Reads input Parameters (what a PDMP receives). InvalidArgument naming the JSON path: not a
// Parameters, no patient, a patient without family name, given name or birth date, a
// birth date that is not YYYY-MM-DD. The practitioner is read when present.
StatusOr<Query> ParseHistoryRequest(std::string_view json);

// The output Parameters for `result` (STU1): `pdmp-history-data`, a Bundle (type collection)
// with `result.patient`, a MedicationDispense per dispensing and the Organization of each
// pharmacy, when there are dispensings; `pdmp-history-link` when there is a report URL;
// `outcome`, an OperationOutcome, for the messages and for kNotFound (information, PMIX
// status no-data) or kError (error). Strings that are not UTF-8 are written with U+FFFD.
std::string HistoryResponseJson(const Result& result);
// Reads output Parameters (STU1, and the draft's `pdmp-history-result` with OperationOutcome
// entries in the Bundle). The medication is read from R4's medicationCodeableConcept or R5's
// medication.concept; the pharmacy from performer.actor's identifier, or from the
// Organization it references in the Bundle. The outcome: kFound with a MedicationDispense,
// else kReport with a link, else kError when an issue is error or fatal, else kNotFound.
// InvalidArgument naming the JSON path for what is not a $pdmp-history result (not JSON, not
// Parameters, none of the output parameters, a dispensing without whenPrepared, a
// pre-stage-retrieval-key: RxFlow never asks for pre-staging).
StatusOr<Result> ParseHistoryResponse(std::string_view json);

// RxFlow's own JSON of a result (what the API's POST .../pdmp-query and `rxflow pmp query
// --json` answer): {"pdmp", "outcome", "dispensings": [{"date_filled", "rx_number",
// "refill_number", "ndc", "rxcui", "drug", "quantity", "quantity_unit", "days_supply",
// "status", "pharmacy": {"ncpdp_id", "npi", "name"}}], "report_url", "messages"}. Strings
// that are not UTF-8 are written with U+FFFD.
std::string ResultJson(const Result& result, std::string_view pdmp_name);

// ---- the simulator ----------------------------------------------------------------------

// A PDMP that answers from the ASAP dispensation files it has received, as a state PMP
// would: a new record (DSP01 00) adds a dispensing, a revision (01) replaces and a void (02)
// removes the one with the same pharmacy, prescription number and refill number (compared
// as numbers: "01" is "1"). A patient matches on last name, first name and birth date (case
// and surrounding spaces ignored), and on ZIP when both sides have one (first five digits).
// Thread-safe.
class Simulator : public Client {
 public:
  // Parses and applies one ASAP file (asap::Read's errors, naming segment and element).
  // A file whose sender (IS01) and control number were applied before is AlreadyExists
  // (files are not applied twice).
  Status AddAsapFile(std::string_view text);
  size_t size() const;  // dispensings held
  StatusOr<Result> History(const Query& query) override;
  std::string name() const override { return "pdmp simulator"; }

 private:
  struct Record {
    asap::Pharmacy pharmacy;
    asap::Dispensing dispensing;
  };
  mutable std::mutex mu_;
  std::vector<Record> records_;
  std::vector<std::string> control_numbers_;
};

}  // namespace rxflow::clinical::pdmp

#endif  // RXFLOW_CLINICAL_PDMP_H_
