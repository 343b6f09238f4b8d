// FHIR R5 JSON reader: simdjson On-Demand straight into the typed structs of r5.h.
//
// The reader walks the document once. Each typed reader dispatches on the field name;
// whatever it does not consume goes through Unknown(), which tells apart a FHIR element
// RxFlow does not model (warning: dropped) from a name FHIR does not have (warning in
// lenient mode, error in strict mode). Paths are kept as a stack of string_views into
// the parser's buffers and rendered only when an issue is reported.
#include "fhir/json_reader.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include <simdjson.h>

#include "rxflow/fhir/json.h"
#include "rxflow/internal/strcat.h"

#include "common/text.h"

namespace rxflow::fhir {
namespace {

namespace od = simdjson::ondemand;
using internal::HasNoControlChars;

// FHIR R5 elements RxFlow knows but does not map, per resource (reported as dropped).
constexpr std::string_view kDomainResourceKnown[] = {"meta", "implicitRules", "text"};
constexpr std::string_view kMedicationRequestKnown[] = {
    "informationSource", "supportingInformation",
    "reported",          "performerType",
    "performer",         "device",
    "insurance",         "effectiveDosePeriod",
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
                                                 "definition"};
constexpr std::string_view kBundleKnown[] = {"total", "link", "signature", "issues"};
constexpr std::string_view kMessageHeaderKnown[] = {
    "destination", "sender", "author", "source", "responsible", "reason", "response", "definition"};

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

enum class Prim { kString, kMarkdown, kCode, kId, kUri, kDate, kDateTime, kInstant, kTime };

std::string_view PrimName(Prim p) {
  switch (p) {
    case Prim::kString:
    case Prim::kMarkdown:
      return "a string";
    case Prim::kCode:
      return "a code";
    case Prim::kId:
      return "an id";
    case Prim::kUri:
      return "a uri";
    case Prim::kDate:
      return "a date";
    case Prim::kDateTime:
      return "a dateTime";
    case Prim::kInstant:
      return "an instant";
    case Prim::kTime:
      return "a time";
  }
  return "a string";
}

class Reader {
 public:
  Reader(IssueList& issues, const ParseOptions& options) : issues_(issues), options_(options) {
    path_.reserve(64);
  }

  // --- paths ---------------------------------------------------------------------------
  struct Seg {
    std::string_view name;
    long index;  // -1: a name segment; otherwise an array index
  };
  class Scope {
   public:
    Scope(Reader& r, std::string_view name) : r_(r) { r_.path_.push_back({name, -1}); }
    Scope(Reader& r, size_t index) : r_(r) { r_.path_.push_back({{}, long(index)}); }
    ~Scope() { r_.path_.pop_back(); }

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
      if (std::move(item_result).get(item)) {
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
  bool Str(od::value v, std::string& out, Prim kind = Prim::kString) {
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
      case Prim::kString:
      case Prim::kMarkdown:
        ok = !s.empty() && HasNoControlChars(s);
        if (!ok) {
          Error(IssueCode::kValue, s.empty() ? "empty string is not allowed in FHIR JSON"
                                             : "string contains control characters");
          return false;
        }
        break;
      case Prim::kCode:
        ok = internal::IsFhirCode(s);
        break;
      case Prim::kId:
        ok = internal::IsFhirId(s);
        break;
      case Prim::kUri:
        ok = internal::IsFhirUri(s);
        break;
      case Prim::kDate:
        ok = internal::IsFhirDate(s);
        break;
      case Prim::kDateTime:
        ok = internal::IsFhirDateTime(s);
        break;
      case Prim::kInstant:
        ok = internal::IsFhirInstant(s);
        break;
      case Prim::kTime:
        ok = internal::IsFhirTime(s);
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

  void StrList(od::value v, std::vector<std::string>& out, Prim kind = Prim::kString) {
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

  // --- datatypes ---------------------------------------------------------------------------
  // A callable that reads into any type with a Read overload.
  auto Self() {
    return [this](od::value v, auto& out) { Read(v, out); };
  }

  void Read(od::value v, Extension& e) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "url") return Str(val, e.url, Prim::kUri), true;
      if (key == "extension") return ArrOf(val, e.extension, Self()), true;
      if (key == "id") return true;
      if (key.size() > 5 && key.substr(0, 5) == "value") {
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
      return false;
    });
    if (e.url.empty()) {
      Error(IssueCode::kRequired, "extension.url is required");
    }
  }

  void Read(od::value v, Coding& c) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "system") return Str(val, c.system, Prim::kUri), true;
      if (key == "version") return Str(val, c.version), true;
      if (key == "code") return Str(val, c.code, Prim::kCode), true;
      if (key == "display") return Str(val, c.display), true;
      if (key == "userSelected") return Bool(val, c.user_selected), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, CodeableConcept& c) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "coding") return ArrOf(val, c.coding, Self()), true;
      if (key == "text") return Str(val, c.text), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, Period& p) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "start") return Str(val, p.start, Prim::kDateTime), true;
      if (key == "end") return Str(val, p.end, Prim::kDateTime), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, Identifier& i) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "use") return Str(val, i.use, Prim::kCode), true;
      if (key == "type") return Opt(val, i.type), true;
      if (key == "system") return Str(val, i.system, Prim::kUri), true;
      if (key == "value") return Str(val, i.value), true;
      if (key == "period") return Opt(val, i.period), true;
      if (key == "assigner") {
        Report(Severity::kWarning, IssueCode::kNotSupported,
               "element not supported by RxFlow: dropped");
        return true;
      }
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, Reference& r) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "reference") return Str(val, r.reference), true;
      if (key == "type") return Str(val, r.type, Prim::kUri), true;
      if (key == "identifier") return Opt(val, r.identifier), true;
      if (key == "display") return Str(val, r.display), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, CodeableReference& r) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "concept") return Opt(val, r.concept_), true;
      if (key == "reference") return Opt(val, r.reference), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, Quantity& q) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "value") return Dec(val, q.value), true;
      if (key == "comparator") return Str(val, q.comparator, Prim::kCode), true;
      if (key == "unit") return Str(val, q.unit), true;
      if (key == "system") return Str(val, q.system, Prim::kUri), true;
      if (key == "code") return Str(val, q.code, Prim::kCode), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, Range& r) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "low") return Opt(val, r.low), true;
      if (key == "high") return Opt(val, r.high), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, Ratio& r) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "numerator") return Opt(val, r.numerator), true;
      if (key == "denominator") return Opt(val, r.denominator), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, HumanName& n) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "use") return Str(val, n.use, Prim::kCode), true;
      if (key == "text") return Str(val, n.text), true;
      if (key == "family") return Str(val, n.family), true;
      if (key == "given") return StrList(val, n.given), true;
      if (key == "prefix") return StrList(val, n.prefix), true;
      if (key == "suffix") return StrList(val, n.suffix), true;
      if (key == "period") return Opt(val, n.period), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, Address& a) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "use") return Str(val, a.use, Prim::kCode), true;
      if (key == "type") return Str(val, a.type, Prim::kCode), true;
      if (key == "text") return Str(val, a.text), true;
      if (key == "line") return StrList(val, a.line), true;
      if (key == "city") return Str(val, a.city), true;
      if (key == "district") return Str(val, a.district), true;
      if (key == "state") return Str(val, a.state), true;
      if (key == "postalCode") return Str(val, a.postal_code), true;
      if (key == "country") return Str(val, a.country), true;
      if (key == "period") return Opt(val, a.period), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, ContactPoint& c) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "system") return Str(val, c.system, Prim::kCode), true;
      if (key == "value") return Str(val, c.value), true;
      if (key == "use") return Str(val, c.use, Prim::kCode), true;
      if (key == "rank") return PosInt(val, c.rank), true;
      if (key == "period") return Dropped(), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, ExtendedContactDetail& c) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "purpose") return Opt(val, c.purpose), true;
      if (key == "name") return ArrOf(val, c.name, Self()), true;
      if (key == "telecom") return ArrOf(val, c.telecom, Self()), true;
      if (key == "address") return Opt(val, c.address), true;
      if (key == "organization") return Opt(val, c.organization), true;
      if (key == "period") return Opt(val, c.period), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, Annotation& a) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "authorString") return Str(val, a.author_string), true;
      if (key == "authorReference") return Opt(val, a.author_reference), true;
      if (key == "time") return Str(val, a.time, Prim::kDateTime), true;
      if (key == "text") return Str(val, a.text, Prim::kMarkdown), true;
      return DatatypeCommon(key, val);
    });
    if (a.text.empty()) Error(IssueCode::kRequired, "Annotation.text is required");
  }

  void Read(od::value v, TimingRepeat& r) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "boundsDuration") return Opt(val, r.bounds_duration), true;
      if (key == "boundsRange") return Opt(val, r.bounds_range), true;
      if (key == "boundsPeriod") return Opt(val, r.bounds_period), true;
      if (key == "count") return PosInt(val, r.count), true;
      if (key == "countMax") return PosInt(val, r.count_max), true;
      if (key == "duration") return Dec(val, r.duration), true;
      if (key == "durationMax") return Dec(val, r.duration_max), true;
      if (key == "durationUnit") return Str(val, r.duration_unit, Prim::kCode), true;
      if (key == "frequency") return PosInt(val, r.frequency), true;
      if (key == "frequencyMax") return PosInt(val, r.frequency_max), true;
      if (key == "period") return Dec(val, r.period), true;
      if (key == "periodMax") return Dec(val, r.period_max), true;
      if (key == "periodUnit") return Str(val, r.period_unit, Prim::kCode), true;
      if (key == "dayOfWeek") return StrList(val, r.day_of_week, Prim::kCode), true;
      if (key == "timeOfDay") return StrList(val, r.time_of_day, Prim::kTime), true;
      if (key == "when") return StrList(val, r.when, Prim::kCode), true;
      if (key == "offset") return UInt(val, r.offset), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, Timing& t) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "event") return StrList(val, t.event, Prim::kDateTime), true;
      if (key == "repeat") return Opt(val, t.repeat), true;
      if (key == "code") return Opt(val, t.code), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, DoseAndRate& d) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "type") return Opt(val, d.type), true;
      if (key == "doseRange") return Opt(val, d.dose_range), true;
      if (key == "doseQuantity") return Opt(val, d.dose_quantity), true;
      if (key == "rateRatio") return Opt(val, d.rate_ratio), true;
      if (key == "rateRange") return Opt(val, d.rate_range), true;
      if (key == "rateQuantity") return Opt(val, d.rate_quantity), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, Dosage& d) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "extension") return ArrOf(val, d.extension, Self()), true;
      if (key == "sequence") return Int(val, d.sequence), true;
      if (key == "text") return Str(val, d.text), true;
      if (key == "additionalInstruction") return ArrOf(val, d.additional_instruction, Self()), true;
      if (key == "patientInstruction") return Str(val, d.patient_instruction), true;
      if (key == "timing") return Opt(val, d.timing), true;
      if (key == "asNeeded") return Bool(val, d.as_needed), true;
      if (key == "asNeededFor") return ArrOf(val, d.as_needed_for, Self()), true;
      if (key == "site") return Opt(val, d.site), true;
      if (key == "route") return Opt(val, d.route), true;
      if (key == "method") return Opt(val, d.method), true;
      if (key == "doseAndRate") return ArrOf(val, d.dose_and_rate, Self()), true;
      if (key == "maxDosePerPeriod") return ArrOf(val, d.max_dose_per_period, Self()), true;
      if (key == "maxDosePerAdministration") return Opt(val, d.max_dose_per_administration), true;
      if (key == "maxDosePerLifetime") return Opt(val, d.max_dose_per_lifetime), true;
      if (key == "asNeededBoolean" || key == "asNeededCodeableConcept") {
        Error(IssueCode::kStructure,
              "R4 element: FHIR R5 uses asNeeded (boolean) and asNeededFor (CodeableConcept)");
        return true;
      }
      if (key == "modifierExtension") {
        Error(IssueCode::kNotSupported, "modifierExtension on Dosage is not understood");
        return true;
      }
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, Qualification& q) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "identifier") return ArrOf(val, q.identifier, Self()), true;
      if (key == "code") return Opt(val, q.code), true;
      if (key == "period") return Opt(val, q.period), true;
      if (key == "issuer") return Opt(val, q.issuer), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, MedicationIngredient& i) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "item") return Read(val, i.item), true;
      if (key == "isActive") return Bool(val, i.is_active), true;
      if (key == "strengthRatio") return Opt(val, i.strength_ratio), true;
      if (key == "strengthCodeableConcept") return Opt(val, i.strength_codeable_concept), true;
      if (key == "strengthQuantity") return Opt(val, i.strength_quantity), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, DispenseRequestInitialFill& f) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "quantity") return Opt(val, f.quantity), true;
      if (key == "duration") return Opt(val, f.duration), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, DispenseRequest& d) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "initialFill") return Opt(val, d.initial_fill), true;
      if (key == "dispenseInterval") return Opt(val, d.dispense_interval), true;
      if (key == "validityPeriod") return Opt(val, d.validity_period), true;
      if (key == "numberOfRepeatsAllowed") return UInt(val, d.number_of_repeats_allowed), true;
      if (key == "quantity") return Opt(val, d.quantity), true;
      if (key == "expectedSupplyDuration") return Opt(val, d.expected_supply_duration), true;
      if (key == "dispenser") return Opt(val, d.dispenser), true;
      if (key == "dispenserInstruction") return ArrOf(val, d.dispenser_instruction, Self()), true;
      if (key == "doseAdministrationAid") return Dropped(), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, Substitution& s) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "allowedBoolean") return Bool(val, s.allowed_boolean), true;
      if (key == "allowedCodeableConcept") return Opt(val, s.allowed_codeable_concept), true;
      if (key == "reason") return Opt(val, s.reason), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, BundleEntryRequest& r) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "method") return Str(val, r.method, Prim::kCode), true;
      if (key == "url") return Str(val, r.url, Prim::kUri), true;
      return DatatypeCommon(key, val);
    });
  }

  void Read(od::value v, OperationOutcomeIssue& i) {
    Obj(v, [&](std::string_view key, od::value val) {
      if (key == "severity") return Str(val, i.severity, Prim::kCode), true;
      if (key == "code") return Str(val, i.code, Prim::kCode), true;
      if (key == "details") return Opt(val, i.details), true;
      if (key == "diagnostics") return Str(val, i.diagnostics), true;
      if (key == "location") return StrList(val, i.location), true;
      if (key == "expression") return StrList(val, i.expression), true;
      return DatatypeCommon(key, val);
    });
  }

  template <typename T>
  void Opt(od::value v, std::optional<T>& out) {
    out.emplace();
    Read(v, *out);
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
  bool Base(std::string_view key, od::value& val, ResourceBase& r) {
    if (key == "resourceType") return true;
    if (key == "id") return Str(val, r.id, Prim::kId), true;
    if (key == "language") return Str(val, r.language, Prim::kCode), true;
    if (key == "extension") return ArrOf(val, r.extension, Self()), true;
    if (key == "modifierExtension") {
      ArrOf(val, r.modifier_extension, Self());
      // A modifier extension changes the meaning of the resource: RxFlow cannot map a
      // resource whose meaning it does not understand.
      Error(IssueCode::kNotSupported, "modifierExtension is not understood: cannot map safely");
      return true;
    }
    return false;
  }

  void ReadFields(od::object obj, Patient& p) {
    Fields(
        obj,
        [&](std::string_view key, od::value val) {
          if (Base(key, val, p)) return true;
          if (key == "identifier") return ArrOf(val, p.identifier, Self()), true;
          if (key == "active") return Bool(val, p.active), true;
          if (key == "name") return ArrOf(val, p.name, Self()), true;
          if (key == "telecom") return ArrOf(val, p.telecom, Self()), true;
          if (key == "gender") return Str(val, p.gender, Prim::kCode), true;
          if (key == "birthDate") return Str(val, p.birth_date, Prim::kDate), true;
          if (key == "address") return ArrOf(val, p.address, Self()), true;
          return false;
        },
        kPatientKnown);
  }

  void ReadFields(od::object obj, Practitioner& p) {
    Fields(
        obj,
        [&](std::string_view key, od::value val) {
          if (Base(key, val, p)) return true;
          if (key == "identifier") return ArrOf(val, p.identifier, Self()), true;
          if (key == "active") return Bool(val, p.active), true;
          if (key == "name") return ArrOf(val, p.name, Self()), true;
          if (key == "telecom") return ArrOf(val, p.telecom, Self()), true;
          if (key == "gender") return Str(val, p.gender, Prim::kCode), true;
          if (key == "birthDate") return Str(val, p.birth_date, Prim::kDate), true;
          if (key == "address") return ArrOf(val, p.address, Self()), true;
          if (key == "qualification") return ArrOf(val, p.qualification, Self()), true;
          return false;
        },
        kPractitionerKnown);
  }

  void ReadFields(od::object obj, PractitionerRole& p) {
    Fields(
        obj,
        [&](std::string_view key, od::value val) {
          if (Base(key, val, p)) return true;
          if (key == "identifier") return ArrOf(val, p.identifier, Self()), true;
          if (key == "active") return Bool(val, p.active), true;
          if (key == "period") return Opt(val, p.period), true;
          if (key == "practitioner") return Opt(val, p.practitioner), true;
          if (key == "organization") return Opt(val, p.organization), true;
          if (key == "location") return ArrOf(val, p.location, Self()), true;
          if (key == "code") return ArrOf(val, p.code, Self()), true;
          if (key == "specialty") return ArrOf(val, p.specialty, Self()), true;
          if (key == "contact") return ArrOf(val, p.contact, Self()), true;
          return false;
        },
        kPractitionerRoleKnown);
  }

  void ReadFields(od::object obj, Organization& o) {
    Fields(
        obj,
        [&](std::string_view key, od::value val) {
          if (Base(key, val, o)) return true;
          if (key == "identifier") return ArrOf(val, o.identifier, Self()), true;
          if (key == "active") return Bool(val, o.active), true;
          if (key == "type") return ArrOf(val, o.type, Self()), true;
          if (key == "name") return Str(val, o.name), true;
          if (key == "alias") return StrList(val, o.alias), true;
          if (key == "contact") return ArrOf(val, o.contact, Self()), true;
          if (key == "telecom" || key == "address") {
            Error(IssueCode::kStructure,
                  "R4 element: FHIR R5 moved Organization address and telecom into contact");
            return true;
          }
          return false;
        },
        kOrganizationKnown);
  }

  void ReadFields(od::object obj, Medication& m) {
    Fields(
        obj,
        [&](std::string_view key, od::value val) {
          if (Base(key, val, m)) return true;
          if (key == "identifier") return ArrOf(val, m.identifier, Self()), true;
          if (key == "code") return Opt(val, m.code), true;
          if (key == "status") return Str(val, m.status, Prim::kCode), true;
          if (key == "doseForm") return Opt(val, m.dose_form), true;
          if (key == "totalVolume") return Opt(val, m.total_volume), true;
          if (key == "ingredient") return ArrOf(val, m.ingredient, Self()), true;
          return false;
        },
        kMedicationKnown);
  }

  void ReadFields(od::object obj, MedicationRequest& m) {
    Fields(
        obj,
        [&](std::string_view key, od::value val) {
          if (Base(key, val, m)) return true;
          if (key == "contained") {
            Arr(val, [&](od::value item) {
              Resource r;
              if (ReadResource(item, r, /*contained=*/true)) m.contained.push_back(std::move(r));
            });
            return true;
          }
          if (key == "identifier") return ArrOf(val, m.identifier, Self()), true;
          if (key == "basedOn") return ArrOf(val, m.based_on, Self()), true;
          if (key == "priorPrescription") return Opt(val, m.prior_prescription), true;
          if (key == "groupIdentifier") return Opt(val, m.group_identifier), true;
          if (key == "status") return Str(val, m.status, Prim::kCode), true;
          if (key == "statusReason") return Opt(val, m.status_reason), true;
          if (key == "statusChanged") return Str(val, m.status_changed, Prim::kDateTime), true;
          if (key == "intent") return Str(val, m.intent, Prim::kCode), true;
          if (key == "category") return ArrOf(val, m.category, Self()), true;
          if (key == "priority") return Str(val, m.priority, Prim::kCode), true;
          if (key == "doNotPerform") return Bool(val, m.do_not_perform), true;
          if (key == "medication") return Read(val, m.medication), true;
          if (key == "subject") return Opt(val, m.subject), true;
          if (key == "encounter") return Opt(val, m.encounter), true;
          if (key == "authoredOn") return Str(val, m.authored_on, Prim::kDateTime), true;
          if (key == "requester") return Opt(val, m.requester), true;
          if (key == "recorder") return Opt(val, m.recorder), true;
          if (key == "reason") return ArrOf(val, m.reason, Self()), true;
          if (key == "courseOfTherapyType") return Opt(val, m.course_of_therapy_type), true;
          if (key == "note") return ArrOf(val, m.note, Self()), true;
          if (key == "renderedDosageInstruction")
            return Str(val, m.rendered_dosage_instruction, Prim::kMarkdown), true;
          if (key == "dosageInstruction") return ArrOf(val, m.dosage_instruction, Self()), true;
          if (key == "dispenseRequest") return Opt(val, m.dispense_request), true;
          if (key == "substitution") return Opt(val, m.substitution), true;
          if (key == "medicationCodeableConcept" || key == "medicationReference" ||
              key == "reasonCode" || key == "reasonReference") {
            Error(IssueCode::kStructure,
                  "R4 element: FHIR R5 uses medication and reason (CodeableReference)");
            return true;
          }
          return false;
        },
        kMedicationRequestKnown);
  }

  void ReadFields(od::object obj, MessageHeader& m) {
    Fields(
        obj,
        [&](std::string_view key, od::value val) {
          if (Base(key, val, m)) return true;
          if (key == "eventCoding") return Opt(val, m.event_coding), true;
          if (key == "eventCanonical") return Str(val, m.event_canonical, Prim::kUri), true;
          if (key == "focus") return ArrOf(val, m.focus, Self()), true;
          return false;
        },
        kMessageHeaderKnown);
  }

  void ReadFields(od::object obj, OperationOutcome& o) {
    Fields(obj, [&](std::string_view key, od::value val) {
      if (Base(key, val, o)) return true;
      if (key == "issue") return ArrOf(val, o.issue, Self()), true;
      return false;
    });
  }

  void ReadFields(od::object obj, Bundle& b) {
    Fields(
        obj,
        [&](std::string_view key, od::value val) {
          if (Base(key, val, b)) return true;
          if (key == "identifier") return Opt(val, b.identifier), true;
          if (key == "type") return Str(val, b.type, Prim::kCode), true;
          if (key == "timestamp") return Str(val, b.timestamp, Prim::kInstant), true;
          if (key == "entry") {
            Arr(val, [&](od::value item) {
              BundleEntry& e = b.entry.emplace_back();
              Obj(item, [&](std::string_view k, od::value ev) {
                if (k == "fullUrl") return Str(ev, e.full_url, Prim::kUri), true;
                if (k == "resource") {
                  Resource r;
                  if (ReadResource(ev, r, false)) e.resource = std::move(r);
                  return true;
                }
                if (k == "request") return Opt(ev, e.request), true;
                if (k == "link" || k == "search" || k == "response") return Dropped(), true;
                return DatatypeCommon(k, ev);
              });
            });
            return true;
          }
          return false;
        },
        kBundleKnown);
  }

  void ReadFields(od::object obj, MedicationDispense&) { Unsupported(obj, "MedicationDispense"); }
  void ReadFields(od::object obj, Task&) { Unsupported(obj, "Task"); }
  void Unsupported(od::object&, std::string_view type) {
    Error(IssueCode::kNotSupported, internal::Cat("reading ", type, " is not supported"));
  }

  template <typename T>
  void Emplace(od::object obj, Resource& out) {
    T value;
    ReadFields(obj, value);
    out.value = std::move(value);
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
    size_t before = issues_.size();
    if (type == "MedicationRequest") {
      Emplace<MedicationRequest>(obj, out);
    } else if (type == "Patient") {
      Emplace<Patient>(obj, out);
    } else if (type == "Practitioner") {
      Emplace<Practitioner>(obj, out);
    } else if (type == "PractitionerRole") {
      Emplace<PractitionerRole>(obj, out);
    } else if (type == "Organization") {
      Emplace<Organization>(obj, out);
    } else if (type == "Medication") {
      Emplace<Medication>(obj, out);
    } else if (type == "MessageHeader") {
      Emplace<MessageHeader>(obj, out);
    } else if (type == "OperationOutcome") {
      Emplace<OperationOutcome>(obj, out);
    } else if (type == "Bundle" && !contained) {
      Emplace<Bundle>(obj, out);
    } else {
      Scope s(*this, "resourceType");
      Error(IssueCode::kNotSupported,
            internal::Cat("unsupported resourceType \"", type.substr(0, 64), "\""));
      return false;
    }
    (void)before;
    return true;
  }

  // Reads the root: checks size, UTF-8 and JSON syntax, then calls fn(document object).
  template <typename F>
  bool Root(std::string_view json, F&& fn) {
    // RFC 8259 lets a parser ignore a UTF-8 byte order mark.
    if (json.size() >= 3 && json.substr(0, 3) == "\xEF\xBB\xBF") json.remove_prefix(3);
    json_ = json;
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

  std::vector<Seg>& path() { return path_; }

 private:
  IssueList& issues_;
  const ParseOptions& options_;
  std::vector<Seg> path_;
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
      Resource r;
      if (reader.ReadResourceObject(obj, r, false)) handler.OnResource(std::move(r));
      return;
    }
    if (!handler.AcceptsEnvelope()) {
      reader.Error(IssueCode::kRequired, "resourceType is required");
      return;
    }
    reader.Fields(obj, [&](std::string_view key, od::value val) {
      if (!handler.IsEnvelopeKey(key)) return false;
      Resource r;
      if (reader.ReadResource(val, r, false, handler.ExpectedType(key))) {
        handler.OnEnvelopeMember(key, std::move(r));
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
    void OnResource(Resource r) override { resource = std::move(r); }
  } handler;
  Status s = internal_json::ParseRoot(json, issues, options, handler);
  if (!s.ok()) return s;
  if (!handler.resource) return absl::InvalidArgumentError("invalid FHIR JSON: no resource");
  return std::move(*handler.resource);
}

}  // namespace rxflow::fhir
