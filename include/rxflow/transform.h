// SPDX-License-Identifier: Apache-2.0
// File: rxflow/transform.h
//
// The one-call API: FHIR R5 JSON → NCPDP SCRIPT XML and back, with every check RxFlow
// has (FHIR parsing, mapping, prescribing rules, SCRIPT structure) in one place. This is
// what the `rxflow` tool, the Python module and the service call.
//
// Status codes: InvalidArgument for input that is not valid FHIR or SCRIPT, or lacks data
// a message needs; FailedPrecondition for valid input that breaks a prescribing rule
// (a C-II with refills, a bad DEA check digit — HTTP 422 in the service);
// ResourceExhausted for input over a configured limit. `issues` holds every problem, with
// its path, whatever the status.
//
// Example:
//   rxflow::IssueList issues;
//   auto out = rxflow::ToScript(json, issues);
//   if (out.ok()) std::cout << out->xml;
//   for (const auto& i : issues) std::cerr << i << "\n";
#ifndef RXFLOW_TRANSFORM_H_
#define RXFLOW_TRANSFORM_H_

#include <optional>
#include <string>
#include <string_view>

#include "rxflow/clinical/checks.h"
#include "rxflow/fhir/json.h"
#include "rxflow/issue.h"
#include "rxflow/mapping/mapping.h"
#include "rxflow/script/xml.h"
#include "rxflow/status.h"

namespace rxflow {

struct TransformOptions {
  // SCRIPT version to write. Default: 2023011 (provisional; see rxflow/script/xml.h).
  script::Version version = script::Version::k2023011;
  // A loaded profile overrides `version` when set. Must outlive the call.
  const script::Profile* profile = nullptr;
  fhir::ParseOptions parse;
  // Header values, Sig code-system versions, ... `message_id` and `sent_time` are filled
  // in when empty (a random 128-bit id; the current UTC time).
  mapping::NewRxOptions newrx;
  clinical::CheckOptions checks;
  // Indented XML/JSON output. Default: compact XML, indented JSON.
  bool pretty = false;
  // SCRIPT input: validate against a user-supplied XSD set as well (libxml2).
  std::string xsd_dir;
  // SCRIPT input: read with this version's profile whatever the message says. Default
  // (unset): the version the Message attributes name; none → 2017071 with a warning.
  // `profile`, when set, overrides it. (`version` above is what ToScript writes.)
  std::optional<script::Version> read_version;
  // SCRIPT input, ToFhirJson: an invalid message still gives a Bundle of everything that
  // could be read, with the issues as an OperationOutcome entry (last), so that the
  // receiver can answer the sender. Default: strict (no output on an error). See
  // script::ReadOptions::lenient for what stays refused.
  bool lenient = false;
  // SCRIPT input: the charset its transport named (a Content-Type's charset parameter,
  // unquoted), as script::ReadOptions::charset: over the XML declaration, under a byte-order
  // mark. Empty: none.
  std::string charset;
};

// What ToScript made. `newrx.message` is the message whatever the transaction (the member's
// name is from when ToScript made NewRx and CancelRx only); `newrx.sig_provenance` and
// `newrx.dea_schedule` are filled for a NewRx and a CancelRx only.
struct ScriptOutput {
  std::string xml;
  mapping::NewRxResult newrx;
  // The transaction written: "NewRx", "CancelRx", "RxHistoryRequest", ...
  std::string transaction;
  // A NewRx: the product the drug database found for the prescribed drug (valid as long as
  // options.checks.drugs), or nullptr.
  const clinical::DrugProduct* drug_product = nullptr;
  // A NewRx or CancelRx: the FHIR path of the MedicationRequest ("Bundle.entry[0].resource",
  // "medication_request"), and the interaction override reason it carries (RxFlow's
  // interaction-override extension, mapping::kInteractionOverrideExtension), if any.
  std::string medication_request_path;
  std::string interaction_override;
};

// FHIR → SCRIPT XML:
//   a prescription (request envelope or Bundle) → NewRx, or CancelRx when the
//     MedicationRequest is cancelled/stopped (`relates_to_message_id` then names the NewRx);
//   a Bundle around a Task naming a SCRIPT transaction (as ToFhirJson writes
//     RxFillIndicatorChange, RxHistoryRequest/Response, RxTransferRequest/Response/Confirm,
//     NewRxRequest and NewRxResponseDenied) → that transaction (mapping::FromFhirBundle;
//     `relates_to_message_id`, when given, is its RelatesToMessageID, else the Task's focus
//     gives it). `options.newrx` gives the header (MessageID, SentTime, To, From, ...).
// The prescribing rules (clinical::CheckPrescription) apply to NewRx and CancelRx.
StatusOr<ScriptOutput> ToScript(std::string_view fhir_json, IssueList& issues,
                                const TransformOptions& options = {},
                                std::string_view relates_to_message_id = {});

// SCRIPT XML → FHIR R5 Bundle, as JSON. Unimplemented (one issue) for a SCRIPT version or
// transaction RxFlow does not read. With `lenient`, OK with a Bundle whose last entry is an
// OperationOutcome holding every issue whenever the message had errors (issues.has_errors()).
StatusOr<std::string> ToFhirJson(std::string_view script_xml, IssueList& issues,
                                 const TransformOptions& options = {});

enum class InputKind { kFhirJson, kScriptXml, kUnknown };
// Detects the kind of `text` from its first non-blank character ('{' or '<'), after a
// byte-order mark; UTF-16 text (either byte order, with or without a mark) is looked at as
// UTF-16, so a UTF-16 SCRIPT document is kScriptXml (FHIR JSON is UTF-8 only: ToScript
// refuses UTF-16 JSON as invalid UTF-8).
InputKind DetectInput(std::string_view text);

// Validates either kind without producing output: FHIR is parsed, mapped and checked;
// SCRIPT is parsed and validated against its profile.
Status Check(std::string_view text, IssueList& issues, const TransformOptions& options = {});

// The current UTC time as an xsd:dateTime ("2026-11-26T10:00:00Z").
std::string UtcNow();

}  // namespace rxflow

#endif  // RXFLOW_TRANSFORM_H_
