// SPDX-License-Identifier: Apache-2.0
// FHIR R5 JSON reader: simdjson On-Demand straight into the typed structs of r5.h.
//
// The reader walks the document once. Each object's keys are looked up in the field table
// of its type (fhir/fields.h, shared with the writer), then in the type's hooks (R4 names,
// dropped elements, Extension's value[x]); whatever neither consumes goes through
// Unknown(), which tells apart a FHIR element RxFlow does not model (warning: dropped) from
// a name FHIR does not have (warning in lenient mode, error in strict mode). Paths are kept
// as a stack of string_views into the parser's buffers and rendered only when an issue is
// reported.
#include "fhir/json_reader.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include <simdjson.h>

#include "rxflow/fhir/json.h"
#include "rxflow/internal/strcat.h"

#include "common/text.h"
#include "fhir/fields.h"

namespace rxflow::fhir {
namespace {

namespace od = simdjson::ondemand;
using fields::Fmt;
using internal::HasNoControlChars;

// FHIR R5 elements RxFlow knows but does not map, per resource (reported as dropped).
constexpr std::string_view kDomainResourceKnown[] = {"meta", "implicitRules", "text"};
constexpr std::string_view kMedicationRequestKnown[] = {"informationSource",
                                                        "supportingInformation",
                                                        "reported",
                                                        "performerType",
                                                        "performer",
                                                        "device",
                                                        "effectiveDosePeriod",
                                                        "eventHistory"};
constexpr std::string_view kPatientKnown[] = {"deceasedBoolean",
                                              "deceasedDateTime",
                                              "maritalStatus",
                                              "multipleBirthBoolean",
                                              "multipleBirthInteger",
                                              "photo",
                                              "contact",
                                              "communication",
                                              "generalPractitioner",
                                              "managingOrganization",
                                              "link"};
constexpr std::string_view kPractitionerKnown[] = {"deceasedBoolean", "deceasedDateTime", "photo",
                                                   "communication"};
constexpr std::string_view kPractitionerRoleKnown[] = {"healthcareService", "characteristic",
                                                       "communication", "availability", "endpoint"};
constexpr std::string_view kOrganizationKnown[] = {"description", "partOf", "endpoint",
                                                   "qualification"};
constexpr std::string_view kMedicationKnown[] = {"marketingAuthorizationHolder", "batch",
                                                 "definition", "contained"};
constexpr std::string_view kAllergyIntoleranceKnown[] = {
    "identifier", "criticality", "encounter",    "onsetAge",       "onsetPeriod",
    "onsetRange", "onsetString", "recordedDate", "lastOccurrence", "note"};
constexpr std::string_view kObservationKnown[] = {"identifier",
                                                  "instantiatesCanonical",
                                                  "instantiatesReference",
                                                  "basedOn",
                                                  "triggeredBy",
                                                  "partOf",
                                                  "focus",
                                                  "encounter",
                                                  "effectivePeriod",
                                                  "effectiveTiming",
                                                  "effectiveInstant",
                                                  "issued",
                                                  "performer",
                                                  "valueCodeableConcept",
                                                  "valueString",
                                                  "valueBoolean",
                                                  "valueInteger",
                                                  "valueRange",
                                                  "valueRatio",
                                                  "valueSampledData",
                                                  "valueTime",
                                                  "valueDateTime",
                                                  "valuePeriod",
                                                  "valueAttachment",
                                                  "valueReference",
                                                  "dataAbsentReason",
                                                  "interpretation",
                                                  "bodySite",
                                                  "bodyStructure",
                                                  "method",
                                                  "specimen",
                                                  "device",
                                                  "referenceRange",
                                                  "hasMember",
                                                  "derivedFrom",
                                                  "component"};
constexpr std::string_view kCoverageKnown[] = {"identifier",  "paymentBy", "policyHolder",
                                               "period",      "network",   "costToBeneficiary",
                                               "subrogation", "contract",  "insurancePlan"};
constexpr std::string_view kLocationKnown[] = {
    "operationalStatus",    "description", "form",           "position",
    "managingOrganization", "partOf",      "characteristic", "hoursOfOperation",
    "virtualService",       "endpoint"};
constexpr std::string_view kMedicationDispenseKnown[] = {"basedOn",
                                                         "partOf",
                                                         "statusChanged",
                                                         "category",
                                                         "encounter",
                                                         "supportingInformation",
                                                         "fillDate",
                                                         "recorded",
                                                         "destination",
                                                         "receiver",
                                                         "renderedDosageInstruction",
                                                         "substitution",
                                                         "eventHistory"};
constexpr std::string_view kMedicationStatementKnown[] = {"partOf",
                                                          "category",
                                                          "encounter",
                                                          "effectivePeriod",
                                                          "effectiveTiming",
                                                          "derivedFrom",
                                                          "relatedClinicalInformation",
                                                          "renderedDosageInstruction",
                                                          "adherence"};
constexpr std::string_view kTaskKnown[] = {"instantiatesCanonical",
                                           "instantiatesUri",
                                           "basedOn",
                                           "groupIdentifier",
                                           "partOf",
                                           "businessStatus",
                                           "priority",
                                           "doNotPerform",
                                           "encounter",
                                           "requestedPeriod",
                                           "executionPeriod",
                                           "requestedPerformer",
                                           "performer",
                                           "location",
                                           "reason",
                                           "relevantHistory",
                                           "restriction",
                                           "output"};
constexpr std::string_view kBundleKnown[] = {"total", "link", "signature", "issues"};
constexpr std::string_view kMessageHeaderKnown[] = {
    "destination", "sender", "author", "source", "responsible", "reason", "response", "definition"};

// The list above of each resource (OperationOutcome has none).
template <typename T>
constexpr std::span<const std::string_view> kKnown{};
template <>
constexpr std::span<const std::string_view> kKnown<MedicationRequest> = kMedicationRequestKnown;
template <>
constexpr std::span<const std::string_view> kKnown<Patient> = kPatientKnown;
template <>
constexpr std::span<const std::string_view> kKnown<Practitioner> = kPractitionerKnown;
template <>
constexpr std::span<const std::string_view> kKnown<PractitionerRole> = kPractitionerRoleKnown;
template <>
constexpr std::span<const std::string_view> kKnown<Organization> = kOrganizationKnown;
template <>
constexpr std::span<const std::string_view> kKnown<Medication> = kMedicationKnown;
template <>
constexpr std::span<const std::string_view> kKnown<AllergyIntolerance> = kAllergyIntoleranceKnown;
template <>
constexpr std::span<const std::string_view> kKnown<Observation> = kObservationKnown;
template <>
constexpr std::span<const std::string_view> kKnown<Coverage> = kCoverageKnown;
template <>
constexpr std::span<const std::string_view> kKnown<Location> = kLocationKnown;
template <>
constexpr std::span<const std::string_view> kKnown<MedicationDispense> = kMedicationDispenseKnown;
template <>
constexpr std::span<const std::string_view> kKnown<MedicationStatement> = kMedicationStatementKnown;
template <>
constexpr std::span<const std::string_view> kKnown<Task> = kTaskKnown;
template <>
constexpr std::span<const std::string_view> kKnown<Bundle> = kBundleKnown;
template <>
constexpr std::span<const std::string_view> kKnown<MessageHeader> = kMessageHeaderKnown;

std::string_view JsonTypeName(od::json_type t) {
  switch (t) {
    case od::json_type::array:
      return "an array";
    case od::json_type::object:
      return "an object";
    case od::json_type::number:
      return "a number";
    case od::json_type::string:
      return "a string";
    case od::json_type::boolean:
      return "a boolean";
    case od::json_type::null:
      return "null";
  }
  return "a value";
}

// The JSON type of an extension's value[x] by FHIR type name ("" when not a FHIR type).
std::string_view ExtensionValueJsonType(std::string_view type) {
  static constexpr std::string_view kStrings[] = {
      "String",   "Code",    "Uri",  "Url", "Canonical", "Id",           "Markdown", "Date",
      "DateTime", "Instant", "Time", "Oid", "Uuid",      "Base64Binary", "Integer64"};
  static constexpr std::string_view kNumbers[] = {"Integer", "PositiveInt", "UnsignedInt",
                                                  "Decimal"};
  static constexpr std::string_view kObjects[] = {"Coding",
                                                  "CodeableConcept",
                                                  "CodeableReference",
                                                  "Quantity",
                                                  "Reference",
                                                  "Period",
                                                  "Range",
                                                  "Ratio",
                                                  "Identifier",
                                                  "HumanName",
                                                  "Address",
                                                  "ContactPoint",
                                                  "Annotation",
                                                  "Attachment",
                                                  "Timing",
                                                  "Dosage",
                                                  "Duration",
                                                  "Age",
                                                  "Count",
                                                  "Distance",
                                                  "Money",
                                                  "SampledData",
                                                  "Signature",
                                                  "Meta",
                                                  "Expression",
                                                  "RatioRange",
                                                  "Availability",
                                                  "ExtendedContactDetail",
                                                  "ContactDetail",
                                                  "RelatedArtifact",
                                                  "UsageContext",
                                                  "DataRequirement",
                                                  "ParameterDefinition",
                                                  "TriggerDefinition"};
  if (type == "Boolean") return "a boolean";
  for (auto t : kStrings) {
    if (t == type) return "a string";
  }
  for (auto t : kNumbers) {
    if (t == type) return "a number";
  }
  for (auto t : kObjects) {
    if (t == type) return "an object";
  }
  return {};
}

std::string ExtensionValueDescription(std::string_view type) {
  std::string_view json = ExtensionValueJsonType(type);
  if (type == "Boolean") return "a boolean";
  if (json == "a number") return "a number";
  return std::string(json);
}

// One pass over raw JSON text, strings skipped: the offset just after the first complete
// object or array (npos when there is none, or a closer comes first), and the deepest
// nesting of arrays/objects up to there.
struct RawScan {
  size_t end = std::string_view::npos;
  size_t max_depth = 0;
};
RawScan ScanRaw(std::string_view s) {
  RawScan r;
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      r.max_depth = std::max(r.max_depth, ++depth);
    } else if (c == '}' || c == ']') {
      if (depth == 0) return r;
      if (--depth == 0) {
        r.end = i + 1;
        return r;
      }
    }
  }
  return r;
}

// The name of a string primitive format in an issue ("expected a code, ...").
std::string_view PrimName(Fmt p) {
  switch (p) {
    case Fmt::kCode:
      return "a code";
    case Fmt::kId:
      return "an id";
    case Fmt::kUri:
      return "a uri";
    case Fmt::kDate:
      return "a date";
    case Fmt::kDateTime:
      return "a dateTime";
    case Fmt::kInstant:
      return "an instant";
    case Fmt::kTime:
      return "a time";
    default:  // kString, kMarkdown
      return "a string";
  }
}

class Reader {
 public:
  Reader(IssueList& issues, const ParseOptions& options) : issues_(issues), options_(options) {}

  // --- paths ---------------------------------------------------------------------------
  struct Seg {
    std::string_view name;
    long index;  // -1: a name segment; otherwise an array index
  };
  // The path so far: a push and a pop per member read, so kept inline and small.
  class Path {
   public:
    Path() : segs_(64) {}
    void Push(Seg s) {
      if (size_ == segs_.size()) [[unlikely]]
        Grow();
      segs_[size_++] = s;
    }
    void Pop() { --size_; }
    const Seg* begin() const { return segs_.data(); }
    const Seg* end() const { return segs_.data() + size_; }

   private:
    [[gnu::noinline]] void Grow() { segs_.resize(segs_.size() * 2); }
    std::vector<Seg> segs_;
    size_t size_ = 0;
  };
  class Scope {
   public:
    Scope(Reader& r, std::string_view name) : r_(r) { r_.path_.Push({name, -1}); }
    Scope(Reader& r, size_t index) : r_(r) { r_.path_.Push({{}, long(index)}); }
    ~Scope() { r_.path_.Pop(); }

   private:
    Reader& r_;
  };

  std::string PathString() const {
    std::string out;
    for (const Seg& s : path_) {
      if (s.index >= 0) {
        internal::Append(out, "[", s.index, "]");
      } else {
        if (!out.empty()) out.push_back('.');
        out.append(s.name);
      }
    }
    return out;
  }

  void Report(Severity sev, IssueCode code, std::string message) {
    issues_.Add(sev, code, PathString(), std::move(message));
  }
  void Error(IssueCode code, std::string message) {
    Report(Severity::kError, code, std::move(message));
  }
  void TypeError(std::string_view expected, od::value& v) {
    od::json_type t;
    if (v.type().get(t)) {
      Fatal("malformed JSON");
      return;
    }
    Error(IssueCode::kStructure, internal::Cat("expected ", expected, ", got ", JsonTypeName(t)));
  }
  void Fatal(std::string message) {
    if (!fatal_) {
      // simdjson reports content after the root as a structural error inside it ("ended
      // early"); say what is really wrong when that is the case.
      size_t end = ScanRaw(json_).end;
      if (end != std::string_view::npos && !internal::Trim(json_.substr(end)).empty()) {
        // Reported at the root: the path stack belongs to the scopes still open.
        issues_.Add(Severity::kFatal, IssueCode::kStructure, "",
                    internal::Cat("unexpected content after the JSON value at offset ", end));
      } else {
        Report(Severity::kFatal, IssueCode::kStructure, std::move(message));
      }
    }
    fatal_ = true;
  }
  bool fatal() const { return fatal_; }

  // --- structure -------------------------------------------------------------------------
  // Calls fn(key, value) for each field; fn returns false for a field it does not know.
  template <typename F>
  void Fields(od::object obj, F&& fn, std::span<const std::string_view> known = {}) {
    if (++depth_ > options_.max_depth) {
      Error(IssueCode::kTooCostly,
            internal::Cat("nesting deeper than ", options_.max_depth, " levels"));
      --depth_;
      return;
    }
    std::array<std::string_view, 48> seen;
    // Objects with more than 48 keys (rare; hostile input has 250,000): every key is in a
    // hash set, so that the duplicate check stays linear in the number of keys.
    absl::flat_hash_set<absl::string_view> many_seen;
    size_t n_seen = 0;
    size_t n_fields = 0;
    uint64_t filter = 0;
    for (auto field_result : obj) {
      od::field field;
      if (std::move(field_result).get(field)) {
        Fatal("malformed JSON object");
        break;
      }
      std::string_view key;
      if (field.unescaped_key().get(key)) {
        Fatal("malformed JSON object key");
        break;
      }
      Scope scope(*this, key);
      ++n_fields;
      bool duplicate;
      if (n_seen < seen.size()) {
        // A 64-bit filter on (length, first, last character) skips the linear search for
        // almost every key; only a possible repeat is compared.
        uint64_t bit = uint64_t{1}
                       << ((key.size() * 7 + (key.empty() ? 0 : key[0] * 3 + key.back())) & 63);
        duplicate = (filter & bit) &&
                    std::find(seen.begin(), seen.begin() + n_seen, key) != seen.begin() + n_seen;
        if (!duplicate) {
          filter |= bit;
          seen[n_seen++] = key;
          if (n_seen == seen.size()) {
            many_seen.reserve(2 * seen.size());
            for (std::string_view k : seen) {
              many_seen.insert(absl::string_view(k.data(), k.size()));
            }
          }
        }
      } else {
        duplicate = !many_seen.insert(absl::string_view(key.data(), key.size())).second;
      }
      if (duplicate) {
        Error(IssueCode::kStructure, "duplicate property");
        continue;
      }
      od::value value = field.value();
      od::json_type t;
      if (value.type().get(t)) {
        Fatal("malformed JSON value");
        break;
      }
      if (t == od::json_type::null) {
        Error(IssueCode::kStructure, "null is not allowed in FHIR JSON");
        continue;
      }
      if (!fn(key, value)) Unknown(key, value, known);
      if (fatal_) break;
    }
    if (n_fields == 0 && !fatal_) {
      Error(IssueCode::kStructure, "an object must not be empty in FHIR JSON");
    }
    --depth_;
  }

  template <typename F>
  void Obj(od::value v, F&& fn, std::span<const std::string_view> known = {}) {
    od::object obj;
    if (v.get_object().get(obj)) {
      TypeError("an object", v);
      return;
    }
    Fields(obj, std::forward<F>(fn), known);
  }

  // Calls fn(value) for each item of a FHIR repeating element.
  template <typename F>
  void Arr(od::value v, F&& fn) {
    od::array arr;
    if (v.get_array().get(arr)) {
      TypeError("an array", v);
      return;
    }
    if (++depth_ > options_.max_depth) {
      Error(IssueCode::kTooCostly,
            internal::Cat("nesting deeper than ", options_.max_depth, " levels"));
      --depth_;
      return;
    }
    size_t i = 0;
    for (auto item_result : arr) {
      od::value item;
      // get() is &&-qualified; the check does not see the move choose the overload.
      if (std::move(item_result).get(item)) {  // NOLINT(performance-move-const-arg)
        Fatal("malformed JSON array");
        break;
      }
      Scope scope(*this, i++);
      od::json_type t;
      if (item.type().get(t)) {
        Fatal("malformed JSON value");
        break;
      }
      if (t == od::json_type::null) {
        Error(IssueCode::kStructure, "null is not allowed in FHIR JSON");
        continue;
      }
      fn(item);
      if (fatal_) break;
    }
    if (i == 0) Error(IssueCode::kStructure, "an array must not be empty in FHIR JSON");
    --depth_;
  }

  template <typename T, typename F>
  void ArrOf(od::value v, std::vector<T>& out, F&& read_one) {
    Arr(v, [&](od::value item) {
      out.emplace_back();
      read_one(item, out.back());
    });
  }

  void Unknown(std::string_view key, od::value& v, std::span<const std::string_view> known) {
    od::json_type t = od::json_type::null;
    (void)v.type().get(t);
    if (t == od::json_type::object || t == od::json_type::array) {
      std::string_view raw;
      if (t == od::json_type::object) {
        od::object o;
        if (!v.get_object().get(o) && o.raw_json().get(raw)) raw = {};
      } else {
        od::array a;
        if (!v.get_array().get(a) && a.raw_json().get(raw)) raw = {};
      }
      if (depth_ + ScanRaw(raw).max_depth > options_.max_depth) {
        Error(IssueCode::kTooCostly,
              internal::Cat("nesting deeper than ", options_.max_depth, " levels"));
        return;
      }
    }
    if (!key.empty() && key[0] == '_') {
      Report(Severity::kWarning, IssueCode::kNotSupported,
             "primitive extensions are not supported by RxFlow: dropped");
      return;
    }
    bool is_known = std::find(known.begin(), known.end(), key) != known.end() ||
                    std::find(std::begin(kDomainResourceKnown), std::end(kDomainResourceKnown),
                              key) != std::end(kDomainResourceKnown);
    if (is_known) {
      Report(Severity::kWarning, IssueCode::kNotSupported,
             "element not supported by RxFlow: dropped");
    } else if (options_.mode == ParseMode::kStrict) {
      Error(IssueCode::kStructure, "unknown element");
    } else {
      Report(Severity::kWarning, IssueCode::kStructure, "unknown element: ignored");
    }
  }

  // --- primitives --------------------------------------------------------------------------
  bool Str(od::value v, std::string& out, Fmt kind = Fmt::kString) {
    std::string_view s;
    if (auto err = v.get_string().get(s)) {
      if (err == simdjson::INCORRECT_TYPE) {
        TypeError(PrimName(kind), v);
      } else {
        Error(IssueCode::kValue, "invalid string: a bad escape sequence or an unpaired surrogate");
      }
      return false;
    }
    if (s.size() > options_.max_string_bytes) {
      Error(IssueCode::kTooCostly,
            internal::Cat("string of ", s.size(), " bytes exceeds the limit of ",
                          options_.max_string_bytes));
      return false;
    }
    bool ok = true;
    switch (kind) {
      case Fmt::kCode:
        ok = internal::IsFhirCode(s);
        break;
      case Fmt::kId:
        ok = internal::IsFhirId(s);
        break;
      case Fmt::kUri:
        ok = internal::IsFhirUri(s);
        break;
      case Fmt::kDate:
        ok = internal::IsFhirDate(s);
        break;
      case Fmt::kDateTime:
        ok = internal::IsFhirDateTime(s);
        break;
      case Fmt::kInstant:
        ok = internal::IsFhirInstant(s);
        break;
      case Fmt::kTime:
        ok = internal::IsFhirTime(s);
        break;
      default:  // kString, kMarkdown
        ok = !s.empty() && HasNoControlChars(s);
        if (!ok) {
          Error(IssueCode::kValue, s.empty() ? "empty string is not allowed in FHIR JSON"
                                             : "string contains control characters");
          return false;
        }
        break;
    }
    if (!ok) {
      std::string shown(s.substr(0, 64));
      Error(IssueCode::kValue, internal::Cat("expected ", PrimName(kind), ", got \"", shown,
                                             s.size() > 64 ? "...\"" : "\""));
      return false;
    }
    out.assign(s);
    return true;
  }

  void StrList(od::value v, std::vector<std::string>& out, Fmt kind = Fmt::kString) {
    Arr(v, [&](od::value item) {
      std::string s;
      if (Str(item, s, kind)) out.push_back(std::move(s));
    });
  }

  void Dec(od::value v, std::string& out) {
    od::json_type t;
    if (v.type().get(t) || t != od::json_type::number) {
      TypeError("a decimal", v);
      return;
    }
    std::string_view raw = v.raw_json_token();
    raw = internal::Trim(raw);
    if (!internal::IsFhirDecimal(raw)) {
      Error(IssueCode::kValue, internal::Cat("expected a decimal, got ", raw));
      return;
    }
    // simdjson accepts numbers it cannot represent; FHIR decimals must be finite.
    double d;
    if (v.get_double().get(d)) {
      Error(IssueCode::kValue, internal::Cat("decimal out of range: ", raw.substr(0, 64)));
      return;
    }
    out.assign(raw);
  }

  void Int(od::value v, std::optional<int64_t>& out, int64_t min = INT32_MIN,
           std::string_view what = "an integer") {
    od::json_type t;
    if (v.type().get(t) || t != od::json_type::number) {
      TypeError(what, v);
      return;
    }
    int64_t i;
    if (v.get_int64().get(i) || i > INT32_MAX || i < INT32_MIN) {
      Error(IssueCode::kValue,
            internal::Cat("expected ", what, ", got ", internal::Trim(v.raw_json_token())));
      return;
    }
    if (i < min) {
      Error(IssueCode::kValue, internal::Cat("expected ", what, ", got ", i));
      return;
    }
    out = i;
  }
  void PosInt(od::value v, std::optional<int64_t>& out) { Int(v, out, 1, "a positiveInt"); }
  void UInt(od::value v, std::optional<int64_t>& out) { Int(v, out, 0, "an unsignedInt"); }

  void Bool(od::value v, std::optional<bool>& out) {
    bool b;
    if (v.get_bool().get(b)) {
      TypeError("a boolean", v);
      return;
    }
    out = b;
  }

  // --- the field table (fhir/fields.h) -------------------------------------------------------
  // A callable that reads into any type with a Read overload.
  auto Self() {
    return [this](od::value v, auto& out) { Read(v, out); };
  }

  // Reads a datatype or backbone element: the elements of its table, then its hooks.
  template <typename T>
  void Read(od::value v, T& obj) {
    Obj(v, [&](std::string_view key, od::value val) {
      return ReadTableField(key, val, obj) || ReadOther(key, val, obj);
    });
    CheckRequired(obj);
  }

  // Reads the fields of a resource (its resourceType was read by ReadResourceObject).
  template <typename T>
  void ReadFields(od::object obj, T& r) {
    Fields(
        obj,
        [&](std::string_view key, od::value val) {
          if (key == "resourceType") return true;
          return ReadTableField(key, val, r) || ReadOther(key, val, r);
        },
        kKnown<T>);
  }

  // Looks `key` up in the table of T; false when T has no such element.
  template <typename T>
  bool ReadTableField(std::string_view key, od::value& val, T& obj) {
    int i = fields::FindField<T>(key);
    if (i < 0) return false;
    ReadNth(size_t(i), val, obj, std::make_index_sequence<fields::kCount<T>>());
    return true;
  }
  // A fold, not an array of member-function pointers: GCC 12's UBSan misreads indexing such
  // an array ("index <address> out of bounds"), and the compiler turns this into a jump
  // table anyway.
  template <typename T, size_t... I>
  void ReadNth(size_t i, od::value& val, T& obj, std::index_sequence<I...>) {
    (void)((i == I ? (ReadField<T, I>(val, obj), true) : false) || ...);
  }
  template <typename T, size_t I>
  void ReadField(od::value val, T& obj) {
    constexpr const auto& f = std::get<I>(fields::Fhir<T>::kFields);
    ReadMember(val, obj.*f.member, f);
  }

  // One element, by the C++ type of its member and the format in the table.
  template <typename F>
  void ReadMember(od::value v, std::string& out, const F& f) {
    if (f.fmt == Fmt::kDecimal) return Dec(v, out);
    Str(v, out, f.fmt);
  }
  template <typename F>
  void ReadMember(od::value v, std::vector<std::string>& out, const F& f) {
    StrList(v, out, f.fmt);
  }
  template <typename F>
  void ReadMember(od::value v, std::optional<bool>& out, const F&) {
    Bool(v, out);
  }
  template <typename F>
  void ReadMember(od::value v, std::optional<int64_t>& out, const F& f) {
    if (f.fmt == Fmt::kPositiveInt) return PosInt(v, out);
    if (f.fmt == Fmt::kUnsignedInt) return UInt(v, out);
    Int(v, out);
  }
  template <typename F>
  void ReadMember(od::value v, std::optional<Resource>& out, const F&) {  // Bundle.entry
    if (!ReadResource(v, out.emplace(), /*contained=*/false)) out.reset();
  }
  template <typename F>
  void ReadMember(od::value v, std::vector<Resource>& out, const F&) {  // contained
    Arr(v, [&](od::value item) {
      if (!ReadResource(item, out.emplace_back(), /*contained=*/true)) out.pop_back();
    });
  }
  template <typename T, typename F>
  void ReadMember(od::value v, std::optional<T>& out, const F&) {
    Opt(v, out);
  }
  template <typename T, typename F>
  void ReadMember(od::value v, std::vector<T>& out, const F& f) {
    if constexpr (std::is_same_v<T, Reference>) {
      if (f.flags & fields::kActor) return ReadActors(v, out);
    }
    ArrOf(v, out, Self());
    if (f.flags & fields::kModifier) {
      // A modifier extension changes the meaning of the resource: RxFlow cannot map a
      // resource whose meaning it does not understand.
      Error(IssueCode::kNotSupported, "modifierExtension is not understood: cannot map safely");
    }
  }
  template <typename T, typename F>
  void ReadMember(od::value v, T& out, const F&) {
    Read(v, out);
  }

  // MedicationDispense.performer: each item {"function": …, "actor": Reference}; the actor is
  // kept (a performer without one is an error: R5 requires it), the function dropped with a
  // warning.
  void ReadActors(od::value v, std::vector<Reference>& out) {
    Arr(v, [&](od::value item) {
      Reference actor;
      bool has_actor = false;
      Obj(item, [&](std::string_view key, od::value& val) {
        if (key == "actor") {
          Read(val, actor);
          has_actor = true;
          return true;
        }
        return DropIf(key, {"function"}) || DatatypeCommon(key, val);
      });
      if (!has_actor) {
        Error(IssueCode::kRequired, "a performer needs its actor");
        return;
      }
      out.push_back(std::move(actor));
    });
  }

  template <typename T>
  void Opt(od::value v, std::optional<T>& out) {
    out.emplace();
    Read(v, *out);
  }

  // --- hooks: names the table does not have ----------------------------------------------------
  // Per type: R4 names, elements RxFlow drops, then what every datatype allows (a resource
  // allows nothing more: the rest goes to Unknown()).
  template <typename T>
  bool ReadOther(std::string_view key, od::value& val, T&) {
    if constexpr (std::is_base_of_v<ResourceBase, T>) {
      return false;
    } else {
      return DatatypeCommon(key, val);
    }
  }
  bool ReadOther(std::string_view key, od::value& val, Identifier&) {
    return DropIf(key, {"assigner"}) || DatatypeCommon(key, val);
  }
  bool ReadOther(std::string_view key, od::value& val, ContactPoint&) {
    return DropIf(key, {"period"}) || DatatypeCommon(key, val);
  }
  bool ReadOther(std::string_view key, od::value& val, DispenseRequest&) {
    return DropIf(key, {"doseAdministrationAid"}) || DatatypeCommon(key, val);
  }
  bool ReadOther(std::string_view key, od::value& val, BundleEntry&) {
    return DropIf(key, {"link", "search", "response"}) || DatatypeCommon(key, val);
  }
  bool ReadOther(std::string_view key, od::value& val, Dosage&) {
    if (R4If(key, {"asNeededBoolean", "asNeededCodeableConcept"},
             "R4 element: FHIR R5 uses asNeeded (boolean) and asNeededFor (CodeableConcept)")) {
      return true;
    }
    if (key == "modifierExtension") {
      Error(IssueCode::kNotSupported, "modifierExtension on Dosage is not understood");
      return true;
    }
    return DatatypeCommon(key, val);
  }
  bool ReadOther(std::string_view key, od::value&, Organization&) {
    return R4If(key, {"telecom", "address"},
                "R4 element: FHIR R5 moved Organization address and telecom into contact");
  }
  bool ReadOther(std::string_view key, od::value& val, AllergyIntoleranceReaction&) {
    return DropIf(key, {"substance", "description", "onset", "exposureRoute", "note"}) ||
           DatatypeCommon(key, val);
  }
  bool ReadOther(std::string_view key, od::value&, AllergyIntolerance&) {
    return R4If(key, {"recorder", "asserter"},
                "R4 element: FHIR R5 uses participant (function and actor)");
  }
  bool ReadOther(std::string_view key, od::value&, Coverage&) {
    return R4If(key, {"payor"}, "R4 element: FHIR R5 uses insurer (and paymentBy)");
  }
  bool ReadOther(std::string_view key, od::value&, Location&) {
    return R4If(key, {"telecom", "physicalType", "availabilityExceptions"},
                "R4 element: FHIR R5 moved Location telecom into contact, physicalType to form "
                "and availabilityExceptions to hoursOfOperation");
  }
  bool ReadOther(std::string_view key, od::value&, MedicationRequest&) {
    return R4If(
        key, {"medicationCodeableConcept", "medicationReference", "reasonCode", "reasonReference"},
        "R4 element: FHIR R5 uses medication and reason (CodeableReference)");
  }

  // Extension: `id` is ignored, value[x] is kept as raw JSON after a check of its JSON type.
  bool ReadOther(std::string_view key, od::value& val, Extension& e) {
    if (key == "id") return true;
    if (key.size() <= 5 || key.substr(0, 5) != "value") return false;
    if (!e.value_type.empty()) {
      Error(IssueCode::kStructure, "an extension has at most one value[x]");
      return true;
    }
    std::string_view expected = ExtensionValueJsonType(key.substr(5));
    od::json_type actual;
    if (val.type().get(actual)) return Fatal("malformed JSON value"), true;
    if (expected.empty()) {
      Error(IssueCode::kStructure, internal::Cat("unknown extension value type ", key));
      return true;
    }
    if (expected != JsonTypeName(actual)) {
      Error(IssueCode::kStructure,
            internal::Cat("expected ", ExtensionValueDescription(key.substr(5)), ", got ",
                          JsonTypeName(actual)));
      return true;
    }
    e.value_type.assign(key.substr(5));
    od::json_type t;
    if (val.type().get(t)) return Fatal("malformed JSON value"), true;
    std::string_view raw;
    if (t == od::json_type::object) {
      od::object o;
      if (!val.get_object().get(o) && !o.raw_json().get(raw)) e.value_json.assign(raw);
    } else if (t == od::json_type::array) {
      Error(IssueCode::kStructure, "an extension value must not be an array");
    } else {
      e.value_json.assign(internal::Trim(val.raw_json_token()));
    }
    return true;
  }

  template <typename T>
  void CheckRequired(const T&) {}
  void CheckRequired(const Extension& e) {
    if (e.url.empty()) Error(IssueCode::kRequired, "extension.url is required");
  }
  void CheckRequired(const Annotation& a) {
    if (a.text.empty()) Error(IssueCode::kRequired, "Annotation.text is required");
  }

  bool DropIf(std::string_view key, std::initializer_list<std::string_view> names) {
    if (std::find(names.begin(), names.end(), key) == names.end()) return false;
    Dropped();
    return true;
  }
  bool R4If(std::string_view key, std::initializer_list<std::string_view> names,
            std::string_view message) {
    if (std::find(names.begin(), names.end(), key) == names.end()) return false;
    Error(IssueCode::kStructure, std::string(message));
    return true;
  }

  void Dropped() {
    Report(Severity::kWarning, IssueCode::kNotSupported,
           "element not supported by RxFlow: dropped");
  }

  // `id` and `extension` are allowed on every datatype; RxFlow keeps neither there.
  bool DatatypeCommon(std::string_view key, od::value&) {
    if (key == "id") return true;
    if (key == "modifierExtension") {
      // A modifier extension changes the meaning of its element: refuse what RxFlow
      // cannot understand rather than map it wrongly.
      Error(IssueCode::kNotSupported, "modifierExtension is not understood: cannot map safely");
      return true;
    }
    if (key == "extension") {
      Report(Severity::kWarning, IssueCode::kNotSupported,
             "extensions on this datatype are not supported by RxFlow: dropped");
      return true;
    }
    return false;
  }

  // --- resources -----------------------------------------------------------------------------
  template <typename T>
  void Emplace(od::object obj, Resource& out) {
    ReadFields(obj, out.value.emplace<T>());  // in place: a resource is large to move
  }
  // Reads `obj` as the first of T... whose name is `type`; false when none is.
  template <typename... T>
  bool EmplaceNamed(std::string_view type, od::object obj, Resource& out) {
    return ((type == fields::Fhir<T>::kName && (Emplace<T>(obj, out), true)) || ...);
  }

  // Reads any supported resource; dispatches on resourceType wherever it appears.
  bool ReadResource(od::value v, Resource& out, bool contained, std::string_view expected = {}) {
    od::object obj;
    if (v.get_object().get(obj)) {
      TypeError("a resource (an object)", v);
      return false;
    }
    return ReadResourceObject(obj, out, contained, expected);
  }

  bool ReadResourceObject(od::object obj, Resource& out, bool contained,
                          std::string_view expected = {}) {
    std::string_view type;
    auto rt = obj.find_field_unordered("resourceType");
    if (rt.error() == simdjson::NO_SUCH_FIELD) {
      Error(IssueCode::kRequired, "resourceType is required");
      return false;
    }
    if (rt.error()) {
      Fatal("malformed JSON object");
      return false;
    }
    if (rt.get_string().get(type)) {
      Scope s(*this, "resourceType");
      Error(IssueCode::kStructure, "resourceType must be a string");
      return false;
    }
    if (!expected.empty() && type != expected) {
      Scope s(*this, "resourceType");
      Error(IssueCode::kInvalid,
            internal::Cat("expected ", expected, ", got ", type.substr(0, 64)));
      return false;
    }
    // `type` points into the parser's string buffer, which stays valid for the document.
    if (obj.reset().error()) {
      Fatal("malformed JSON object");
      return false;
    }
    // A Bundle is never contained.
    if (!EmplaceNamed<MedicationRequest, Patient, Practitioner, PractitionerRole, Organization,
                      Medication, Coverage, MessageHeader, OperationOutcome, AllergyIntolerance,
                      Observation, Location, MedicationDispense, MedicationStatement, Task>(
            type, obj, out) &&
        (contained || !EmplaceNamed<Bundle>(type, obj, out))) {
      Scope s(*this, "resourceType");
      Error(IssueCode::kNotSupported,
            internal::Cat("unsupported resourceType \"", type.substr(0, 64), "\""));
      return false;
    }
    return true;
  }

  // Reads the root: checks size, UTF-8 and JSON syntax, then calls fn(document object).
  template <typename F>
  bool Root(std::string_view json, F&& fn) {
    // RFC 8259 lets a parser ignore a UTF-8 byte order mark.
    if (json.size() >= 3 && json.substr(0, 3) == "\xEF\xBB\xBF") json.remove_prefix(3);
    json_ = json;
    // RFC 8259 §8.1: JSON exchanged between systems is UTF-8. UTF-16 or UTF-32 (a byte-order
    // mark, or a zero byte among the first two) is named as such, not as malformed JSON.
    if (json.starts_with("\xFE\xFF") || json.starts_with("\xFF\xFE") ||
        (json.size() >= 2 && (json[0] == '\0' || json[1] == '\0'))) {
      Report(Severity::kFatal, IssueCode::kStructure,
             "input is UTF-16 or UTF-32 (by its first bytes): FHIR JSON is read as UTF-8 only");
      fatal_ = true;
      return false;
    }
    // An XML document (FHIR's XML form, or SCRIPT) where FHIR JSON is read: named as such.
    if (internal::Trim(json).starts_with('<')) {
      Report(Severity::kFatal, IssueCode::kNotSupported,
             "input is XML, not JSON: RxFlow reads FHIR as JSON only (FHIR XML is not "
             "supported)");
      fatal_ = true;
      return false;
    }
    if (json.size() > options_.max_input_bytes) {
      Report(Severity::kFatal, IssueCode::kTooCostly,
             internal::Cat("input of ", json.size(), " bytes exceeds the limit of ",
                           options_.max_input_bytes));
      fatal_ = true;
      return false;
    }
    // One parser and one padded buffer per thread, reused across calls (no allocation
    // once warm). simdjson needs SIMDJSON_PADDING readable bytes after the input.
    thread_local od::parser parser;
    thread_local std::string buffer;
    if (buffer.size() < json.size() + simdjson::SIMDJSON_PADDING) {
      buffer.resize(json.size() + simdjson::SIMDJSON_PADDING);
    }
    std::memcpy(buffer.data(), json.data(), json.size());
    std::memset(buffer.data() + json.size(), 0, simdjson::SIMDJSON_PADDING);
    od::document doc;
    auto err =
        parser.iterate(simdjson::padded_string_view(buffer.data(), json.size(), buffer.size()))
            .get(doc);
    if (err) return RootError(err), false;
    od::object obj;
    err = doc.get_object().get(obj);
    if (err) {
      if (err == simdjson::INCORRECT_TYPE) {
        Report(Severity::kFatal, IssueCode::kStructure, "expected a JSON object at the root");
        fatal_ = true;
        return false;
      }
      return RootError(err), false;
    }
    size_t errors_before = issues_.error_count();
    fn(obj);
    // Trailing content after the root value (only meaningful when the root was consumed).
    if (!fatal_ && issues_.error_count() == errors_before) {
      const char* rest = nullptr;
      if (!doc.current_location().get(rest)) {
        Report(Severity::kFatal, IssueCode::kStructure, "unexpected content after the JSON value");
        fatal_ = true;
      }
    }
    return !fatal_;
  }

  void RootError(simdjson::error_code err) {
    std::string msg;
    switch (err) {
      case simdjson::UTF8_ERROR:
        msg = "input is not valid UTF-8";
        break;
      case simdjson::EMPTY:
        msg = "input is empty";
        break;
      case simdjson::CAPACITY:
        msg = "input too large";
        break;
      default:
        msg = internal::Cat("malformed JSON: ", simdjson::error_message(err));
    }
    Fatal(std::move(msg));
  }

 private:
  IssueList& issues_;
  const ParseOptions& options_;
  Path path_;
  size_t depth_ = 0;
  bool fatal_ = false;
  std::string_view json_;
};

Status InvalidFromIssues(const IssueList& issues, std::string_view what) {
  for (const Issue& i : issues) {
    if (&i == issues.summary()) continue;  // "… and N more issues": name a real one
    if (i.severity == Severity::kFatal || i.severity == Severity::kError) {
      std::string msg = internal::Cat("invalid ", what, ": ", ToString(i));
      if (i.code == IssueCode::kTooCostly) return absl::ResourceExhaustedError(msg);
      return absl::InvalidArgumentError(msg);
    }
  }
  return absl::InvalidArgumentError(internal::Cat("invalid ", what));
}

}  // namespace

namespace internal_json {

Status ParseRoot(std::string_view json, IssueList& issues, const ParseOptions& options,
                 RootHandler& handler) {
  Reader reader(issues, options);
  size_t errors_before = issues.error_count();
  reader.Root(json, [&](od::object obj) {
    // Peek: a resource has resourceType; anything else is the request envelope.
    auto rt = obj.find_field_unordered("resourceType");
    auto err = rt.error();
    if (err && err != simdjson::NO_SUCH_FIELD) {
      reader.Fatal("malformed JSON object");
      return;
    }
    bool is_resource = !err;
    // Issue paths start with the resource type: "Bundle.entry[0].resource.status".
    std::string_view type = "Resource";
    if (is_resource && rt.get_string().get(type)) type = "Resource";
    if (obj.reset().error()) {
      reader.Fatal("malformed JSON object");
      return;
    }
    if (is_resource) {
      Reader::Scope root(reader, type);
      if (!reader.ReadResourceObject(obj, handler.RootSlot(), false)) handler.DroppedRoot();
      return;
    }
    if (!handler.AcceptsEnvelope()) {
      reader.Error(IssueCode::kRequired, "resourceType is required");
      return;
    }
    auto member = [&](std::string_view key, od::value val) {
      Resource* slot = handler.EnvelopeSlot(key);
      if (slot && !reader.ReadResource(val, *slot, false, handler.ExpectedType(key))) {
        handler.DroppedEnvelopeSlot(key);
      }
    };
    reader.Fields(obj, [&](std::string_view key, od::value val) {
      if (!handler.IsEnvelopeKey(key)) return false;
      if (handler.IsEnvelopeList(key)) {
        reader.Arr(val, [&](od::value item) { member(key, item); });
      } else {
        member(key, val);
      }
      return true;
    });
  });
  if (issues.error_count() > errors_before) return InvalidFromIssues(issues, "FHIR JSON");
  return absl::OkStatus();
}

}  // namespace internal_json

StatusOr<Resource> ParseResource(std::string_view json, IssueList& issues,
                                 const ParseOptions& options) {
  struct Handler : internal_json::RootHandler {
    std::optional<Resource> resource;
    Resource& RootSlot() override { return resource.emplace(); }
    void DroppedRoot() override { resource.reset(); }
  } handler;
  Status s = internal_json::ParseRoot(json, issues, options, handler);
  if (!s.ok()) return s;
  if (!handler.resource) return absl::InvalidArgumentError("invalid FHIR JSON: no resource");
  return std::move(*handler.resource);
}

}  // namespace rxflow::fhir
