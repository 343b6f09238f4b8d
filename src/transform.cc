// SPDX-License-Identifier: Apache-2.0
#include "rxflow/transform.h"

#include <chrono>
#include <ctime>

#include <nlohmann/json.hpp>

#include "rxflow/clock.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/mapping/codes.h"

#include "common/text.h"
#include "mapping/into.h"

namespace rxflow {
namespace {

// The status for a call that reported errors: a broken prescribing rule is
// FailedPrecondition, a limit is ResourceExhausted, anything else InvalidArgument.
Status StatusFor(const IssueList& issues, size_t from, Status fallback) {
  bool business = false, limit = false;
  const Issue* first = nullptr;
  for (size_t i = from; i < issues.size(); ++i) {
    const Issue& is = issues[i];
    if (is.severity != Severity::kError && is.severity != Severity::kFatal) continue;
    if (!first) first = &is;
    if (is.code == IssueCode::kTooCostly) limit = true;
    if (is.code == IssueCode::kBusinessRule || is.code == IssueCode::kValue) business = true;
  }
  if (!first) return fallback;
  std::string msg = ToString(*first);
  if (limit) return absl::ResourceExhaustedError(msg);
  // Only when every error is a rule or identifier check is the input "valid but refused".
  bool only_rules = true;
  for (size_t i = from; i < issues.size(); ++i) {
    const Issue& is = issues[i];
    if (is.severity != Severity::kError && is.severity != Severity::kFatal) continue;
    if (is.code != IssueCode::kBusinessRule && is.code != IssueCode::kValue) only_rules = false;
  }
  if (business && only_rules && fallback.code() == absl::StatusCode::kFailedPrecondition) {
    return absl::FailedPreconditionError(msg);
  }
  return absl::InvalidArgumentError(msg);
}

const script::Profile& ProfileOf(const TransformOptions& o) {
  return o.profile ? *o.profile : script::BuiltinProfile(o.version);
}

// The header options with a MessageID and a SentTime: generated when not given.
mapping::NewRxOptions WithMessageIdAndTime(const mapping::NewRxOptions& given) {
  mapping::NewRxOptions o = given;
  // Time-ordered (UUID v7 hex): the service's message-id index takes it at its right edge.
  if (o.message_id.empty()) o.message_id = RandomIds().NewId();
  if (o.sent_time.empty()) o.sent_time = UtcNow();
  return o;
}

// Whether the text may be a Bundle around a Task naming a SCRIPT transaction: a cheap look
// for the Task code systems, so that a prescription is still parsed once.
// The code systems end in "ncpdp-transaction" / "ncpdp-response": a memchr walk over the
// dashes, which a FHIR document has few of (glibc's memmem cost 2 % of a NewRx's time,
// std::string_view::find of the whole word restarts at every 'n').
bool MayNameTransaction(std::string_view json) {
  for (size_t i = json.find('-', 5); i != std::string_view::npos; i = json.find('-', i + 1)) {
    if (json.substr(i - 5, 5) != "ncpdp") continue;
    std::string_view rest = json.substr(i + 1);
    if (rest.starts_with("transaction") || rest.starts_with("response")) return true;
  }
  return false;
}

// A Bundle whose Task names one of the transactions FromFhirBundle builds → that message.
Status TransactionToScript(const fhir::Bundle& bundle, IssueList& issues,
                           const TransformOptions& options, std::string_view relates_to_message_id,
                           size_t start, ScriptOutput& out) {
  auto message = mapping::FromFhirBundle(bundle, issues, WithMessageIdAndTime(options.newrx),
                                         relates_to_message_id);
  if (!message.ok()) {
    return StatusFor(issues, start,
                     absl::InvalidArgumentError(std::string(message.status().message())));
  }
  script::WriteOptions wo;
  wo.profile = &ProfileOf(options);
  wo.pretty = options.pretty;
  auto xml = script::WriteXml(*message, issues, wo);
  if (!xml.ok()) return xml.status();
  out.xml = std::move(*xml);
  out.transaction = std::string(script::TransactionName(message->body));
  out.newrx.message = std::move(*message);
  return absl::OkStatus();
}

// The interaction override reason the MedicationRequest carries (RxFlow's extension), if any.
std::string InteractionOverride(const fhir::PrescriptionInput& input, IssueList& issues) {
  const auto& extensions = input.medication_request.extension;
  for (size_t i = 0; i < extensions.size(); ++i) {
    const fhir::Extension& e = extensions[i];
    if (e.url != mapping::kInteractionOverrideExtension) continue;
    auto j = nlohmann::json::parse(e.value_json, nullptr, /*allow_exceptions=*/false);
    std::string reason(e.value_type == "String" && j.is_string()
                           ? internal::Trim(j.get<std::string>())
                           : std::string_view());
    if (reason.empty()) {
      issues.Warning(internal::Cat(input.medication_request_path, ".extension[", i, "]"),
                     IssueCode::kValue,
                     "an interaction override needs a non-empty valueString (the reason): "
                     "this one overrides nothing");
      continue;
    }
    if (reason.size() > 1000) reason.resize(1000);  // bytes; a cut character is replaced
    internal::MakeValidUtf8(reason);
    return reason;
  }
  return {};
}

// ToScript into `out` (default-constructed), which the caller holds where it returns it: the
// NewRx model is mapped, checked and written in place, never moved.
Status ToScriptInto(std::string_view fhir_json, IssueList& issues, const TransformOptions& options,
                    std::string_view relates_to_message_id, ScriptOutput& out) {
  size_t start = issues.size();
  if (MayNameTransaction(fhir_json)) {
    IssueList parse_issues(issues.max_issues());
    auto resource = fhir::ParseResource(fhir_json, parse_issues, options.parse);
    const fhir::Bundle* bundle = resource.ok() ? resource->get<fhir::Bundle>() : nullptr;
    if (bundle && !mapping::BundleTransaction(*bundle).empty()) {
      issues.Append(parse_issues);
      return TransactionToScript(*bundle, issues, options, relates_to_message_id, start, out);
    }
  }
  auto input = fhir::ParsePrescription(fhir_json, issues, options.parse);
  if (!input.ok()) return input.status();
  const mapping::NewRxOptions newrx = WithMessageIdAndTime(options.newrx);
  const std::string& status = input->medication_request.status;
  bool cancel = status == "cancelled" || status == "stopped";
  Status mapped =
      cancel ? mapping::MapCancelRxInto(*input, relates_to_message_id, issues, newrx, out.newrx)
             : mapping::MapNewRxInto(*input, issues, newrx, out.newrx);
  // Prescribing rules run on what could be mapped, so one pass reports everything. The drug
  // database first: it may give the DEA schedule the rules depend on.
  if (mapped.ok() && !cancel) {
    out.drug_product = clinical::ApplyDrugDatabase(*input, out.newrx, issues, options.checks);
  }
  if (mapped.ok()) clinical::CheckPrescription(*input, out.newrx, issues, options.checks);
  if (!mapped.ok() || issues.has_errors()) {
    return StatusFor(issues, start,
                     mapped.ok() ? absl::FailedPreconditionError("prescribing rule")
                                 : absl::InvalidArgumentError(std::string(mapped.message())));
  }
  script::WriteOptions wo;
  wo.profile = &ProfileOf(options);
  wo.pretty = options.pretty;
  auto xml = script::WriteXml(out.newrx.message, issues, wo);
  if (!xml.ok()) return xml.status();
  out.xml = std::move(*xml);
  out.transaction = std::string(script::TransactionName(out.newrx.message.body));
  out.medication_request_path = input->medication_request_path;
  out.interaction_override = InteractionOverride(*input, issues);
  return absl::OkStatus();
}

}  // namespace

std::string UtcNow() {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

StatusOr<ScriptOutput> ToScript(std::string_view fhir_json, IssueList& issues,
                                const TransformOptions& options,
                                std::string_view relates_to_message_id) {
  // Built where it is returned (one return of one object): ~17 KB not moved.
  StatusOr<ScriptOutput> result(absl::in_place);
  if (Status s = ToScriptInto(fhir_json, issues, options, relates_to_message_id, *result);
      !s.ok()) {
    result = std::move(s);
  }
  return result;
}

namespace {

script::ReadOptions ReadOptionsOf(const TransformOptions& options) {
  script::ReadOptions ro;
  ro.profile = options.profile;
  ro.version = options.read_version;
  ro.xsd_dir = options.xsd_dir;
  ro.lenient = options.lenient;
  ro.charset = options.charset;
  return ro;
}

}  // namespace

StatusOr<std::string> ToFhirJson(std::string_view script_xml, IssueList& issues,
                                 const TransformOptions& options) {
  auto message = script::ReadXml(script_xml, issues, ReadOptionsOf(options));
  if (!message.ok()) return message.status();
  auto bundle = mapping::ToFhir(*message, issues);
  if (!bundle.ok() && !options.lenient) return bundle.status();
  if (options.lenient && issues.has_errors()) {
    // What could be read, and why the rest could not: the receiver answers from this.
    fhir::Bundle out = bundle.ok() ? std::move(*bundle) : fhir::Bundle{};
    if (out.type.empty()) out.type = "collection";
    fhir::BundleEntry entry;
    entry.resource = fhir::Resource{fhir::ToOperationOutcome(issues)};
    out.entry.push_back(std::move(entry));
    return fhir::WriteJson(fhir::Resource{std::move(out)}, fhir::JsonStyle::kPretty);
  }
  if (!bundle.ok()) return bundle.status();
  // JSON is always indented: FHIR Bundles are read by people as often as by programs.
  return fhir::WriteJson(fhir::Resource{std::move(*bundle)}, fhir::JsonStyle::kPretty);
}

namespace {
// The first character of `text` after a byte-order mark and white space, read as UTF-8 or
// UTF-16 (either byte order, as XML 1.0 Appendix F finds it); 0 when there is none.
char FirstCharacter(std::string_view text) {
  bool utf16 = false, big_endian = false;
  if (text.starts_with("\xEF\xBB\xBF")) {
    text.remove_prefix(3);
  } else if (text.starts_with("\xFE\xFF") || text.starts_with("\xFF\xFE")) {
    utf16 = true;
    big_endian = text[0] == '\xFE';
    text.remove_prefix(2);
  } else if (text.size() >= 2 && (text[0] == '\0') != (text[1] == '\0')) {
    utf16 = true;  // no mark: an ASCII character next to a zero byte
    big_endian = text[0] == '\0';
  }
  for (size_t i = 0; i + (utf16 ? 1 : 0) < text.size(); i += utf16 ? 2 : 1) {
    char c = utf16 ? (big_endian ? text[i + 1] : text[i]) : text[i];
    if (utf16 && (big_endian ? text[i] : text[i + 1]) != '\0') return 0;
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return c;
  }
  return 0;
}
}  // namespace

InputKind DetectInput(std::string_view text) {
  switch (FirstCharacter(text)) {
    case '{':
      return InputKind::kFhirJson;
    case '<':
      return InputKind::kScriptXml;
    default:
      return InputKind::kUnknown;
  }
}

Status Check(std::string_view text, IssueList& issues, const TransformOptions& options) {
  switch (DetectInput(text)) {
    case InputKind::kFhirJson: {
      auto out = ToScript(text, issues, options);
      return out.ok() ? absl::OkStatus() : out.status();
    }
    case InputKind::kScriptXml: {
      script::ReadOptions ro = ReadOptionsOf(options);
      ro.lenient = false;  // a check is strict: it is asked whether the message is valid
      auto message = script::ReadXml(text, issues, ro);
      return message.ok() ? absl::OkStatus() : message.status();
    }
    case InputKind::kUnknown:
      break;
  }
  issues.Fatal("$", IssueCode::kStructure,
               "input is neither FHIR JSON (starts with '{') nor SCRIPT XML (starts with '<')");
  return absl::InvalidArgumentError(ToString(issues[issues.size() - 1]));
}

}  // namespace rxflow
