// SPDX-License-Identifier: Apache-2.0
// Private: SCRIPT structure tables (loaded from the text format of
// data/script/*.structure), version rules, and the table-driven structural validator.
#ifndef RXFLOW_SRC_SCRIPT_SCHEMA_H_
#define RXFLOW_SRC_SCRIPT_SCHEMA_H_

#include <array>
#include <bitset>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"

#include "rxflow/issue.h"
#include "rxflow/script/xml.h"
#include "rxflow/status.h"

namespace rxflow::script::internal {

constexpr uint32_t kUnbounded = UINT32_MAX;

// One step of a compiled `[inline pattern P]`: one character of `set`, taken exactly once,
// at most once (P's `?`), or any number of times (`*`). `+` and `{n,m}` are expanded into
// these when the table is loaded.
struct PatternAtom {
  enum class Repeat { kOne, kOptional, kAny };
  std::bitset<256> set;  // bytes; the patterns are ASCII
  Repeat repeat = Repeat::kOne;
};

struct SimpleType {
  // kText: SCRIPT `an` (printable ASCII, at least one non-blank) of min_len..max_len
  // characters; kString: xsd:string, any text; kNumeric: SCRIPT `n`; kDate / kDateTime:
  // xsd:date / xsd:dateTime; kBoolean: xsd:boolean; kBase64: xsd:base64Binary; kCodes: an
  // enumeration; kPattern: an XSD pattern (`pattern`).
  enum class Kind {
    kText,
    kString,
    kNumeric,
    kDate,
    kDateTime,
    kBoolean,
    kBase64,
    kCodes,
    kPattern
  };
  Kind kind = Kind::kText;
  size_t min_len = 1;
  size_t max_len = SIZE_MAX;
  std::string list_name;  // kCodes: the list's name; empty for `[inline: ...]`
  std::vector<std::string> codes;
  bool open = false;  // a code list known only in part ("… N more"): codes not enforced
  std::vector<std::vector<PatternAtom>> pattern;  // kPattern: its alternatives (`|`)
  std::string pattern_source;                     // kPattern: P as the table writes it
  std::string spec;                               // the table text, e.g. "an1..35"
  // An attribute the element of this type may carry (empty: none), with the codes the
  // schema allows (QualifiedAddress: @Qualifier, AddressTypeQualifier); no codes: any value.
  std::string attribute;
  std::vector<std::string> attribute_codes;
};

struct Particle {
  enum class Kind { kElement, kSequence, kChoice };
  Kind kind = Kind::kElement;
  uint32_t min = 1;
  uint32_t max = 1;
  int decl = -1;  // kElement: index into ComplexType::decls
  std::vector<Particle> children;
};

struct ElementDecl {
  std::string name;
  int complex_type = -1;  // index into Schema::types, or -1 for a simple element
  int simple_type = -1;   // index into Schema::simples
};

struct ComplexType {
  std::string name;
  std::vector<std::string> attributes;
  Particle content;  // a sequence
  std::vector<ElementDecl> decls;
  absl::flat_hash_map<std::string, int> decl_index;

  int FindDecl(std::string_view name) const;
  // The same, looking first at the few declarations from `hint` on (where the next child
  // of an element written or read in schema order usually is).
  int FindDecl(std::string_view name, int hint) const;
};

struct Rule {
  enum class Kind { kWrap, kRename, kRemove, kCode };
  Kind kind = Kind::kWrap;
  std::string parent;  // "*" = any
  std::string element;
  std::string wrapper;  // kWrap
  std::string name;     // kWrap: the inner name; kRename: the new name; kCode: new code
  std::string list;     // kCode
  std::string old_code;
};

// The writer's plan for one binding table and one complex type (xml_writer.cc): which
// fields write which declaration, and the type and plan of each field's element, worked
// out once instead of comparing every field's name at every declaration of every element
// written. A plan is made with the plans of all its fixed-name children, so that a
// message is written without a lookup (or a lock) per element.
struct WriterPlan {
  struct Child {
    const ComplexType* type = nullptr;  // the element's type (nullptr: simple or undeclared)
    const WriterPlan* plan = nullptr;   // nullptr: no type, or a name known only when written
  };
  std::vector<std::vector<uint8_t>> by_decl;  // declaration → fields, in table order
  std::vector<int> decl;                      // field → declaration (or a negative marker)
  // A type without a choice in its content is written the same way for every value: the
  // (field, declaration) pairs in the order the content model visits them, walked as one
  // array instead of the particle tree (`flat`). Types with a choice walk the tree.
  bool flat = false;
  std::vector<std::pair<uint8_t, int>> order;
  // field → its element; a choice's two alternatives at [0] and [1].
  std::vector<std::array<Child, 2>> child;
};
// Made on first use, under the mutex; node_hash_map: a plan stays put while others are
// added, and lives as long as its schema.
struct WriterPlans {
  std::mutex mu;
  absl::node_hash_map<std::pair<const void*, const void*>, WriterPlan> plans;
};

// A number no other Schema object of this process has (see Validator::CheckContent).
uint64_t NewSchemaId();

struct Schema {
  // Identifies this schema to per-thread caches (a schema at a freed one's address has
  // another id); moves keep it.
  uint64_t id = NewSchemaId();
  std::vector<ComplexType> types;
  std::vector<SimpleType> simples;
  absl::flat_hash_map<std::string, int> type_index;
  int root = -1;  // Message
  std::unique_ptr<WriterPlans> writer_plans = std::make_unique<WriterPlans>();

  int FindType(std::string_view name) const;
};

}  // namespace rxflow::script::internal

namespace rxflow::script {

struct Profile::Impl {
  std::string name;
  bool provisional = false;
  internal::Schema schema;
  std::vector<internal::Rule> rules;
  std::vector<std::pair<std::string, std::string>> attributes;  // Message attributes
  std::vector<std::string> detect;                              // TransportVersion values
};

}  // namespace rxflow::script

namespace rxflow::script::internal {

// Parses a structure table; InvalidArgument names the line.
StatusOr<Schema> ParseStructure(std::string_view text);
// Parses version rules into `impl` and applies them to impl->schema.
absl::Status ApplyRules(std::string_view text, Profile::Impl& impl);

// Event-driven structural validator. Feed it the element events of one document (from a
// writer or a DOM walk); it reports problems with XML paths into `issues`.
class Validator {
 public:
  Validator(const Schema& schema, IssueList& issues);
  ~Validator();
  Validator(const Validator&) = delete;
  Validator& operator=(const Validator&) = delete;
  void Start(std::string_view name);
  void Text(std::string_view text);
  // An attribute of the element just started: checked against its type's attribute codes.
  void Attribute(std::string_view name, std::string_view value);
  void End();
  // Call after the root's End(); reports an empty or unfinished document.
  void Finish();
  size_t errors() const { return errors_; }

 private:
  static constexpr size_t kScanKids = 16;
  struct Frame {
    std::string_view name;
    int type = -1;    // complex type, or -1
    int simple = -1;  // simple type, or -1
    bool unknown = false;
    bool has_text = false;
    std::vector<int> kids;
    std::vector<std::string_view> kid_names;
    // This element's 1-based position among its same-named siblings so far, set when it
    // starts after more than kScanKids siblings; 0: Path counts it in the parent's
    // kid_names (at most kScanKids). Paths carry [same_index] when it is above 1.
    uint32_t same_index = 0;
    // Children seen so far by name; filled once a frame has many children (a short list
    // of kid_names is scanned instead).
    absl::flat_hash_map<absl::string_view, uint32_t> kid_counts;
  };
  Frame& Push();
  // The frames a validator on this thread gave back when it ended: a validator lives for one
  // message, and the next one on the thread takes them with their vectors' capacity.
  static std::vector<Frame>& SpareFrames();
  std::string Path(size_t depth) const;
  std::string ChildPath(size_t depth, size_t kid) const;
  void Report(std::string path, IssueCode code, std::string message);
  void CheckContent(size_t depth);

  const Schema& schema_;
  IssueList& issues_;
  std::vector<Frame> stack_;  // pooled: frames [0, depth_) are open
  size_t depth_ = 0;
  size_t errors_ = 0;
  bool root_seen_ = false;
};

// The result of checking a value against a simple type: valid (no message), valid with a
// warning (severity kWarning, e.g. a dateTime without a zone), or invalid (kError).
struct ValueCheck {
  Severity severity = Severity::kError;
  IssueCode code = IssueCode::kValue;
  std::string message;  // empty: valid, nothing to report

  bool accepted() const { return message.empty() || severity != Severity::kError; }
};

// Checks `text` (an element's whole text) against a simple type.
ValueCheck CheckSimple(const SimpleType& t, std::string_view text);

}  // namespace rxflow::script::internal

#endif  // RXFLOW_SRC_SCRIPT_SCHEMA_H_
