// SPDX-License-Identifier: Apache-2.0
// Private: how the typed SCRIPT model (rxflow/script/model.h) maps onto SCRIPT elements,
// written once. Each model struct has a table of its fields: the element's name, the member,
// and what kind of field it is. The XML reader fills a struct by walking its table; the
// writer emits it in the order of the 2017071 structure table for the element's type
// (data/script/2017071.structure), so a table has no order of its own for writing (it is
// read in table order, which is the schema's too). A new transaction is its structure
// table, a table in bindings.cc, and its FHIR mapping: no codec code.
#ifndef RXFLOW_SRC_SCRIPT_BINDINGS_H_
#define RXFLOW_SRC_SCRIPT_BINDINGS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "rxflow/script/model.h"

namespace rxflow::script::internal {

struct Field;

// The fields of one struct (or of one element inside it). `only_declared`: the struct is a
// union of several schema types (Identification), and the writer leaves out the members the
// element's type does not declare; elsewhere such members are written after the others,
// for the validator to name.
struct Table {
  constexpr Table() = default;
  template <size_t N>
  constexpr Table(const Field (&fields)[N], bool only_declared = false);  // NOLINT: implicit
  const Field* begin() const { return data; }
  const Field* end() const;

  const Field* data = nullptr;
  size_t size = 0;
  bool only_declared = false;
  bool own_text = false;  // a field is the element's own text (kOwnText): a value element
};

// One member of a struct, handled by its C++ type: a value T, a std::optional<T> or a
// std::vector<T>, of text (std::string), a boolean (bool) or a struct with its own table.
struct Access {
  void* (*member)(void* owner);
  const void* (*cmember)(const void* owner);
  size_t (*count)(const void* member);  // values to write (an empty() one has none)
  const void* (*at)(const void* member, size_t i);
  void* (*add)(void* member);  // the value to read into: itself, emplaced or appended
  std::string_view (*text)(const void* value) = nullptr;      // text and boolean values
  void (*set)(void* value, std::string_view text) = nullptr;  // assigned in place
  bool repeated = false;                                      // a vector: every element of the name
  bool optional = false;  // an optional: absent stays unset (a text reads as "")
};

enum class Hook : uint8_t { kNone, kTimingAndDuration, kDosage };

struct Field {
  enum class Kind : uint8_t {
    kLeaf,         // an element holding the member's text (one per value of the member)
    kSub,          // an element with content `table`, one per value of the member
    kGroup,        // an element whose content (`table`) is more members of the same struct
    kChoice,       // an element named by the member, content `table` (of the same struct).
                   // Read: the first of `alternatives` found (none: as the second), and a
                   // bool member is whether it is `text`; no alternatives: the first child
                   // element, whatever its name
    kAttribute,    // an attribute of the element
    kOwnText,      // the element's own text
    kConst,        // an element with the fixed text `text`: written so, read and ignored
    kInterleaved,  // as kSub, with a `text` element before each value but the first,
                   // holding the value's `modifier` member
    kHook,         // the whole content, hand-written (the codec's hook `hook`)
  };
  Kind kind = Kind::kLeaf;
  std::string_view name;
  const Access* access = nullptr;
  Table table;
  bool (*when)(const void* owner) = nullptr;  // written only when true (read always)
  std::string_view text;
  std::pair<std::string_view, std::string_view> alternatives;
  const Access* modifier = nullptr;
  Hook hook = Hook::kNone;
};

template <size_t N>
constexpr Table::Table(const Field (&fields)[N], bool only_declared)
    : data(fields), size(N), only_declared(only_declared) {
  static_assert(N <= 64, "the writer keeps a 64-bit set of the fields it has written");
  for (const Field& f : fields) own_text = own_text || f.kind == Field::Kind::kOwnText;
}

inline const Field* Table::end() const { return data + size; }

// ---- Building tables --------------------------------------------------------------------

template <typename>
struct MemberOf;
template <typename O, typename T>
struct MemberOf<T O::*> {
  using Owner = O;
  using Type = T;
};

template <typename T>
struct Values {
  using Value = T;
  static constexpr bool kRepeated = false, kOptional = false;
  static size_t Count(const T& t) {
    if constexpr (requires { t.empty(); }) {
      return t.empty() ? 0 : 1;
    } else {
      return 1;
    }
  }
  static const T* At(const T& t, size_t) { return &t; }
  static T* Add(T& t) { return &t; }
};
template <typename T>
struct Values<std::optional<T>> {
  using Value = T;
  static constexpr bool kRepeated = false, kOptional = true;
  static size_t Count(const std::optional<T>& t) { return t ? 1 : 0; }
  static const T* At(const std::optional<T>& t, size_t) { return &*t; }
  static T* Add(std::optional<T>& t) { return &t.emplace(); }
};
template <typename T>
struct Values<std::vector<T>> {
  using Value = T;
  static constexpr bool kRepeated = true, kOptional = false;
  static size_t Count(const std::vector<T>& t) { return t.size(); }
  static const T* At(const std::vector<T>& t, size_t i) { return &t[i]; }
  static T* Add(std::vector<T>& t) { return &t.emplace_back(); }
};

inline std::string_view TextOf(const std::string& s) { return s; }
inline std::string_view TextOf(bool b) { return b ? "true" : "false"; }
inline void SetText(std::string& s, std::string_view text) { s.assign(text); }
inline void SetText(bool& b, std::string_view text) { b = text == "true" || text == "1"; }

template <auto M>
constexpr Access MakeAccess() {
  using Owner = typename MemberOf<decltype(M)>::Owner;
  using Type = typename MemberOf<decltype(M)>::Type;
  using V = Values<Type>;
  using Value = typename V::Value;
  Access a{
      [](void* o) -> void* { return &(static_cast<Owner*>(o)->*M); },
      [](const void* o) -> const void* { return &(static_cast<const Owner*>(o)->*M); },
      [](const void* m) { return V::Count(*static_cast<const Type*>(m)); },
      [](const void* m, size_t i) -> const void* { return V::At(*static_cast<const Type*>(m), i); },
      [](void* m) -> void* { return V::Add(*static_cast<Type*>(m)); },
  };
  if constexpr (std::is_same_v<Value, std::string> || std::is_same_v<Value, bool>) {
    a.text = [](const void* v) { return TextOf(*static_cast<const Value*>(v)); };
    a.set = [](void* v, std::string_view t) { SetText(*static_cast<Value*>(v), t); };
  }
  a.repeated = V::kRepeated;
  a.optional = V::kOptional;
  return a;
}
template <auto M>
inline constexpr Access kAccess = MakeAccess<M>();

using When = bool (*)(const void* owner);

constexpr Field MakeField(Field::Kind kind, std::string_view name, const Access* access = nullptr,
                          Table table = {}) {
  Field f;
  f.kind = kind;
  f.name = name;
  f.access = access;
  f.table = table;
  return f;
}
template <auto M>
constexpr Field Leaf(std::string_view name, When when = nullptr) {
  Field f = MakeField(Field::Kind::kLeaf, name, &kAccess<M>);
  f.when = when;
  return f;
}
template <auto M>
constexpr Field Sub(std::string_view name, Table table) {
  return MakeField(Field::Kind::kSub, name, &kAccess<M>, table);
}
constexpr Field Group(std::string_view name, Table table, When when = nullptr) {
  Field f = MakeField(Field::Kind::kGroup, name, nullptr, table);
  f.when = when;
  return f;
}
template <auto M>
constexpr Field Choice(Table table, std::pair<std::string_view, std::string_view> alternatives = {},
                       std::string_view when_true = {}) {
  Field f = MakeField(Field::Kind::kChoice, {}, &kAccess<M>, table);
  f.alternatives = alternatives;
  f.text = when_true;
  return f;
}
template <auto M>
constexpr Field Attribute(std::string_view name) {
  return MakeField(Field::Kind::kAttribute, name, &kAccess<M>);
}
template <auto M>
constexpr Field OwnText() {
  return MakeField(Field::Kind::kOwnText, {}, &kAccess<M>);
}
constexpr Field Const(std::string_view name, std::string_view text) {
  Field f = MakeField(Field::Kind::kConst, name);
  f.text = text;
  return f;
}
template <auto M, auto Modifier>
constexpr Field Interleaved(std::string_view name, std::string_view modifier, Table table) {
  Field f = MakeField(Field::Kind::kInterleaved, name, &kAccess<M>, table);
  f.text = modifier;
  f.modifier = &kAccess<Modifier>;
  return f;
}
constexpr Field HookField(Hook hook) {
  Field f = MakeField(Field::Kind::kHook, {});
  f.hook = hook;
  return f;
}

// ---- The tables the codec starts from ------------------------------------------------------

using TimingStep = std::pair<std::string, TimingAndDuration>;  // (modifier, timing)

// The parts of a TimingAndDuration (hook), in TimingAndDuration::Kind's order.
struct TimingPart {
  std::string_view element, value, modifier, units;  // units empty: the part is the code
  bool clarified;                                    // followed by TimingClarifyingFreeText
};
inline constexpr TimingPart kTimingParts[] = {
    {"AdministrationTiming", "", "", "AdministrationTimingEvent", true},
    {"Frequency", "FrequencyNumericValue", "VariableFrequencyModifier", "FrequencyUnits", true},
    {"Interval", "IntervalNumericValue", "VariableIntervalModifier", "IntervalUnits", true},
    {"Duration", "DurationNumericValue", "", "DurationText", false},
    {"StopIndicator", "", "", "", false}};

extern const Table kHeaderTable;
extern const Table kSigCodeTable;
extern const Table kDoseUnitTable;

// One alternative of Body: its element name, table, and access to it in a Body.
struct Transaction {
  std::string_view name;
  Table table;
  size_t index;               // in Body
  void* (*held)(Body& body);  // the one `body` holds, or emplaced when it holds another
  const void* (*get)(const Body& body);
  Body (*make)();  // a Body holding an empty one (returned as a prvalue: made in place)
};

// The transaction named `name`, or nullptr.
const Transaction* FindTransaction(std::string_view name);
// The transaction `body` holds.
const Transaction& TransactionOf(const Body& body);

}  // namespace rxflow::script::internal

#endif  // RXFLOW_SRC_SCRIPT_BINDINGS_H_
