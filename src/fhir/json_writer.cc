// SPDX-License-Identifier: Apache-2.0
// FHIR R5 JSON writer: a small streaming writer over std::string that walks the field
// tables of fhir/fields.h, in the element order of the FHIR specification. Empty values are
// omitted, as FHIR JSON requires.
#include <algorithm>
#include <charconv>
#include <cstring>
#include <iterator>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

#include "rxflow/fhir/json.h"

#include "common/text.h"
#include "fhir/fields.h"

namespace rxflow::fhir {
namespace {

// The output is written into a string grown in large steps, whose bytes past `len_` are
// scratch: each token costs one bounds check and one copy (std::string::append would check
// and terminate the string for every piece of every token).
class Out {
 public:
  // A Bundle of a message prints to 10–30 KB: room up front instead of a dozen regrowths.
  explicit Out(JsonStyle style) : pretty_(style == JsonStyle::kPretty) { s_.resize(16384); }

  void BeginObject() {
    Value();
    Put('{');
    first_.push_back(true);
  }
  void EndObject() { Close('}'); }
  void BeginArray() {
    Value();
    Put('[');
    first_.push_back(true);
  }
  void EndArray() { Close(']'); }

  void Key(std::string_view k) {
    Sep();
    char* p = Room(k.size() + 4);
    *p++ = '"';
    p = Copy(p, k);
    *p++ = '"';
    *p++ = ':';
    if (pretty_) *p++ = ' ';
    len_ = static_cast<size_t>(p - s_.data());
    after_key_ = true;
  }
  void String(std::string_view v) {
    Value();
    if (!internal::JsonEscapeFree(v)) {
      escaped_.clear();
      internal::AppendJsonEscaped(escaped_, v);
      v = escaped_;
    }
    char* p = Room(v.size() + 2);
    *p++ = '"';
    p = Copy(p, v);
    *p++ = '"';
    len_ = static_cast<size_t>(p - s_.data());
  }
  void Raw(std::string_view v) {
    Value();
    Put(v);
  }
  void Bool(bool b) { Raw(b ? "true" : "false"); }
  void Int(int64_t i) {
    char digits[24];
    auto r = std::to_chars(digits, digits + sizeof digits, i);
    Raw(std::string_view(digits, static_cast<size_t>(r.ptr - digits)));
  }

  // Field helpers that skip empty values.
  void Str(std::string_view k, std::string_view v) {
    if (v.empty()) return;
    Key(k);
    String(v);
  }
  void Dec(std::string_view k, std::string_view v) {
    if (v.empty()) return;
    Key(k);
    Raw(v);
  }
  void OptBool(std::string_view k, const std::optional<bool>& v) {
    if (!v) return;
    Key(k);
    Bool(*v);
  }
  void OptInt(std::string_view k, const std::optional<int64_t>& v) {
    if (!v) return;
    Key(k);
    Int(*v);
  }
  void StrList(std::string_view k, const std::vector<std::string>& v) {
    if (v.empty()) return;
    Key(k);
    BeginArray();
    for (const auto& s : v) String(s);
    EndArray();
  }

  std::string Take() {
    if (pretty_) Put('\n');
    s_.resize(len_);
    len_ = 0;
    return std::move(s_);
  }

 private:
  // Room for `n` more bytes at the end of the output; returns where they go.
  char* Room(size_t n) {
    if (s_.size() - len_ < n) s_.resize(std::max(s_.size() * 2, len_ + n));
    return s_.data() + len_;
  }
  static char* Copy(char* p, std::string_view v) {
    if (!v.empty()) std::memcpy(p, v.data(), v.size());
    return p + v.size();
  }
  void Put(char c) {
    *Room(1) = c;
    ++len_;
  }
  void Put(std::string_view v) {
    Copy(Room(v.size()), v);
    len_ += v.size();
  }
  void Sep() {
    if (!first_.empty()) {
      if (!first_.back()) Put(',');
      first_.back() = false;
    }
    Newline();
  }
  void Value() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) Sep();
  }
  void Close(char c) {
    bool empty = first_.back();
    first_.pop_back();
    if (!empty && pretty_) Indent();  // the closing bracket on a line of its own, the root's too
    Put(c);
  }
  void Newline() {
    if (pretty_ && !first_.empty()) Indent();
  }
  // A line break and two spaces per open level.
  void Indent() {
    static constexpr std::string_view kIndent =
        "\n                                                                ";
    const size_t n = 1 + first_.size() * 2;
    if (n <= kIndent.size()) return Put(kIndent.substr(0, n));
    char* p = Room(n);
    *p = '\n';
    std::memset(p + 1, ' ', n - 1);
    len_ += n;
  }

  std::string s_;  // [0, len_) written; the rest is room
  size_t len_ = 0;
  std::string escaped_;      // a value that needed escaping
  std::vector<char> first_;  // per open object or array: nothing written in it yet
  bool pretty_;
  bool after_key_ = false;
};

class Writer {
 public:
  explicit Writer(JsonStyle style) : o_(style) {}
  std::string Take() { return o_.Take(); }

  void Write(const Resource& r) {
    std::visit([this](const auto& v) { Write(v); }, r.value);
  }

  // Any type of the field table (fhir/fields.h), its elements in the table's order.
  template <typename T>
  void Write(const T& obj) {
    o_.BeginObject();
    if constexpr (std::is_base_of_v<ResourceBase, T>) {
      o_.Key("resourceType");
      o_.String(fields::Fhir<T>::kName);
    }
    std::apply([&](const auto&... f) { (WriteMember(f, obj.*f.member), ...); },
               fields::Fhir<T>::kFields);
    if constexpr (std::is_same_v<T, Extension>) {
      if (!obj.value_type.empty()) {
        o_.Key("value" + obj.value_type);
        o_.Raw(obj.value_json);
      }
    }
    o_.EndObject();
  }

 private:
  // One element, by the C++ type of its member: absent and empty values are omitted.
  template <typename F>
  void WriteMember(const F& f, const std::string& v) {
    if (f.fmt == fields::Fmt::kDecimal) return o_.Dec(f.name, v);  // the text as read
    o_.Str(f.name, v);
  }
  template <typename F>
  void WriteMember(const F& f, const std::vector<std::string>& v) {
    o_.StrList(f.name, v);
  }
  template <typename F>
  void WriteMember(const F& f, const std::optional<bool>& v) {
    o_.OptBool(f.name, v);
  }
  template <typename F>
  void WriteMember(const F& f, const std::optional<int64_t>& v) {
    o_.OptInt(f.name, v);
  }
  template <typename F, typename T>
  void WriteMember(const F& f, const std::optional<T>& v) {
    if (!v) return;
    o_.Key(f.name);
    Write(*v);
  }
  template <typename F, typename T>
  void WriteMember(const F& f, const std::vector<T>& v) {
    if (v.empty()) return;
    o_.Key(f.name);
    o_.BeginArray();
    for (const T& item : v) {
      if (f.flags & fields::kActor) {  // MedicationDispense.performer
        o_.BeginObject();
        o_.Key("actor");
        Write(item);
        o_.EndObject();
      } else {
        Write(item);
      }
    }
    o_.EndArray();
  }
  template <typename F, typename T>
  void WriteMember(const F& f, const T& v) {  // 1..1: MedicationRequest.medication, ...
    if (!(f.flags & fields::kWriteEmpty) && IsEmpty(v)) return;
    o_.Key(f.name);
    Write(v);
  }
  static bool IsEmpty(const CodeableReference& r) { return !r.concept_ && !r.reference; }
  static bool IsEmpty(const CodeableConcept& c) { return c.coding.empty() && c.text.empty(); }
  static bool IsEmpty(const Identifier& i) {  // Coverage.class.value
    return i.use.empty() && !i.type && i.system.empty() && i.value.empty() && !i.period;
  }

  Out o_;
};

}  // namespace

std::string WriteJson(const Resource& resource, JsonStyle style) {
  Writer w(style);
  w.Write(resource);
  return w.Take();
}

OperationOutcome ToOperationOutcome(const IssueList& issues) {
  OperationOutcome oo;
  for (const Issue& i : issues) {
    OperationOutcomeIssue& out = oo.issue.emplace_back();
    out.severity = std::string(SeverityName(i.severity));
    out.code = std::string(IssueCodeName(i.code));
    out.diagnostics = i.message;
    if (!i.path.empty()) out.expression.push_back(i.path);
  }
  if (oo.issue.empty()) {
    OperationOutcomeIssue& ok = oo.issue.emplace_back();
    ok.severity = "information";
    ok.code = "informational";
    ok.diagnostics = "no issues";
  }
  return oo;
}

std::string_view Resource::resource_type() const {
  static constexpr std::string_view kNames[] = {"MedicationRequest",
                                                "Patient",
                                                "Practitioner",
                                                "PractitionerRole",
                                                "Organization",
                                                "Medication",
                                                "MedicationDispense",
                                                "Task",
                                                "OperationOutcome",
                                                "MessageHeader",
                                                "Bundle",
                                                "MedicationStatement",
                                                "AllergyIntolerance",
                                                "Observation",
                                                "Coverage",
                                                "Location"};
  static_assert(std::size(kNames) == std::variant_size_v<decltype(Resource::value)>,
                "one name per alternative of Resource, in its order");
  return kNames[value.index()];
}

const std::string& Resource::id() const {
  return std::visit([](const auto& v) -> const std::string& { return v.id; }, value);
}

}  // namespace rxflow::fhir
