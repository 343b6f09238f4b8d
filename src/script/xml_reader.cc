// SPDX-License-Identifier: Apache-2.0
// SCRIPT XML reader: pugixml DOM → structural validation → version rules undone → typed
// message. Elements the typed model does not hold are reported as warnings with their path.
#include <algorithm>
#include <cstring>
#include <deque>
#include <string>

#include <absl/container/inlined_vector.h>
#include <absl/strings/str_cat.h>
#include <pugixml.hpp>

#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/script/xml.h"

#include "common/text.h"
#include "script/bindings.h"
#include "script/schema.h"
#include "script/xml_encoding.h"

namespace rxflow::script {
namespace {

using internal::Rule;
using rxflow::internal::Cat;

std::string_view Local(const char* name) {
  const char* local = name;
  const char* end = name;
  for (; *end; ++end) {
    if (*end == ':') local = end + 1;
  }
  return {local, static_cast<size_t>(end - local)};
}

// The first element child of `n`, or an empty node.
pugi::xml_node FirstChildElement(pugi::xml_node n) {
  for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_element) return c;
  }
  return {};
}

// Refuses document type declarations and entity declarations outright: SCRIPT never
// needs them, and they are how XXE and entity-expansion attacks start.
bool HasDtdOrEntity(std::string_view xml) {
  // Looks for the rare '!' and then at the character before it: a search for "<!" stops at
  // every '<' (every tag) to compare.
  for (size_t at = xml.find('!', 1); at != std::string_view::npos; at = xml.find('!', at + 1)) {
    if (xml[at - 1] != '<') continue;
    std::string_view rest = xml.substr(at + 1);
    if (rest.starts_with("DOCTYPE") || rest.starts_with("ENTITY") || rest.starts_with("doctype")) {
      return true;
    }
  }
  return false;
}

void LineColumn(std::string_view xml, size_t offset, size_t& line, size_t& col) {
  line = 1;
  col = 1;
  for (size_t i = 0; i < offset && i < xml.size(); ++i) {
    if (xml[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
}

// The XML path of `n` (local names, with [i] among same-named siblings when repeated).
std::string NodePath(pugi::xml_node n) {
  std::vector<std::string> parts;
  for (; n && n.type() == pugi::node_element; n = n.parent()) {
    std::string_view name = Local(n.name());
    size_t index = 0, total = 0;
    for (pugi::xml_node s = n.parent().first_child(); s; s = s.next_sibling()) {
      if (s.type() != pugi::node_element || Local(s.name()) != name) continue;
      ++total;
      if (s == n) index = total;
    }
    parts.push_back(total > 1 ? Cat(name, "[", index, "]") : std::string(name));
  }
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) out += "/" + *it;
  return out;
}

// An attribute of XML itself, not of SCRIPT: a namespace declaration (`xmlns`, `xmlns:p`),
// `xml:lang` and its kin, or an XML Schema instance attribute (`xsi:schemaLocation`, …).
bool XmlInfrastructure(std::string_view name) {
  return name == "xmlns" || name.starts_with("xmlns:") || name.starts_with("xml:") ||
         name.starts_with("xsi:");
}

// Refuses what pugixml would accept but XML 1.0 does not: control characters, raw or as
// character references (&#0; would silently end a value early in pugixml's strings).
bool BadCharacter(std::string_view xml, size_t& offset, std::string& what) {
  // XML 1.0 is well-formed only in its declared encoding; RxFlow reads SCRIPT as UTF-8.
  if (!rxflow::internal::IsValidUtf8(xml, &offset)) {
    what = "invalid UTF-8 (the document names no other encoding)";
    return true;
  }
  if (size_t at = rxflow::internal::FirstControlChar(xml); at != std::string_view::npos) {
    auto c = static_cast<unsigned char>(xml[at]);
    offset = at;
    what = Cat("control character 0x", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15],
               " is not allowed in XML 1.0");
    return true;
  }
  for (size_t at = xml.find("&#"); at != std::string_view::npos; at = xml.find("&#", at + 2)) {
    size_t i = at + 2;
    bool hex = i < xml.size() && (xml[i] == 'x' || xml[i] == 'X');
    if (hex) ++i;
    unsigned long v = 0;
    size_t digits = 0;
    for (; i < xml.size() && xml[i] != ';' && digits < 9; ++i, ++digits) {
      char ch = xml[i];
      int d = ch >= '0' && ch <= '9'          ? ch - '0'
              : hex && ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : hex && ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                              : -1;
      if (d < 0) break;
      v = v * (hex ? 16 : 10) + static_cast<unsigned long>(d);
    }
    bool allowed = v == 0x9 || v == 0xA || v == 0xD || (v >= 0x20 && v <= 0xD7FF) ||
                   (v >= 0xE000 && v <= 0xFFFD) || (v >= 0x10000 && v <= 0x10FFFF);
    if (digits > 0 && !allowed) {
      offset = at;
      what = Cat("character reference ", xml.substr(at, i - at + 1), " is not allowed in XML 1.0");
      return true;
    }
  }
  return false;
}

// The document's elements, read from pugixml's DOM in one pass: each element's local name,
// its own text, and its element children — stored next to each other, so that reading an
// element's children is a scan of adjacent entries. The validator checks each element as
// the pass meets it (in document order), and the typed reader then works from this index
// alone: no second walk of the DOM, no name or text looked up twice (pugixml's accessors are
// calls into its shared library).
struct Element {
  std::string_view name;   // local name
  std::string_view text;   // its character data, the pieces joined
  uint32_t first_kid = 0;  // its element children are [first_kid, first_kid + kids)
  uint32_t kids = 0;
  pugi::xml_node node;  // attributes are read from the DOM
};

class Elements {
 public:
  const Element& operator[](uint32_t i) const { return elements_[i]; }
  const Element& root() const { return elements_.front(); }
  // Element `e`'s children (a pointer to none when it has none).
  const Element* kids(const Element& e) const { return elements_.data() + e.first_kid; }

  // Undoes a profile's wrap and rename rules in the index, so that the typed reader sees
  // 2017071 names: a renamed element takes its 2017071 name; a wrapper (2023011's
  // HumanPatient/Names/Name) becomes the element it wraps, under the 2017071 name
  // (HumanPatient/Name), with that element's text, attributes and children. The DOM is left
  // as parsed: nothing is moved, and the index is not built a second time. Parents come
  // before their children in the index, so each element's parent has its 2017071 name when
  // the element is looked at — the name the rules give for the parent.
  void UndoRules(const std::vector<Rule>& rules);

 private:
  friend class ElementReader;
  std::vector<Element> elements_;
  std::deque<std::string> joined_;  // texts in several pieces (stable addresses)
};

// Fills an Elements from the DOM, to `max_depth` levels (deeper: one error, not indexed),
// checking each element with `validator` when there is one.
class ElementReader {
 public:
  ElementReader(Elements& out, internal::Validator* v, IssueList& issues, size_t max_depth)
      : out_(out), v_(v), issues_(issues), max_depth_(max_depth) {}

  // `input_bytes`: the document's size. An element takes at least four bytes (<X/>), so
  // the index never grows past input_bytes / 4 entries: reserved up front, up to 64 Ki
  // entries (3 MiB; pages are touched only as entries are written), so that regrowth copies
  // a large index a few times at most and a large document with few elements (an
  // attachment) does not reserve memory it will not use.
  static constexpr size_t kReserveAtMost = size_t{1} << 16;
  // `only`: when not empty, of the root's children only the one so named is read below
  // (ReadHeader reads the Header, not the whole message).
  void Read(pugi::xml_node root, size_t input_bytes, std::string_view only = {}) {
    only_ = only;
    out_.elements_.clear();
    out_.joined_.clear();
    out_.elements_.reserve(std::min(input_bytes / 4 + 1, kReserveAtMost));
    out_.elements_.push_back({Local(root.name()), {}, 0, 0, root});
    Visit(0, 0);
  }

 private:
  // Element `at`, whose entry (name and node) its parent made. Entries are appended while
  // this runs: indices, not references, are held across it.
  void Visit(uint32_t at, size_t depth) {
    const pugi::xml_node n = out_.elements_[at].node;
    if (v_) {
      v_->Start(out_.elements_[at].name);
      for (pugi::xml_attribute a = n.first_attribute(); a; a = a.next_attribute()) {
        if (!XmlInfrastructure(a.name())) v_->Attribute(Local(a.name()), a.value());
      }
    }
    // The element's text (most often one piece: no copy), and an entry per element child.
    std::string_view text;
    std::string pieces;
    size_t texts = 0;
    pugi::xml_node too_deep;
    const auto first = static_cast<uint32_t>(out_.elements_.size());
    for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
      pugi::xml_node_type type = c.type();
      if (type == pugi::node_pcdata || type == pugi::node_cdata) {
        if (++texts == 2) pieces = text;
        if (texts >= 2) pieces += c.value();
        text = c.value();
      } else if (type == pugi::node_element) {
        if (depth + 1 > max_depth_) {
          if (!too_deep) too_deep = c;
          continue;
        }
        out_.elements_.push_back({Local(c.name()), {}, 0, 0, c});
      }
    }
    const auto kids = static_cast<uint32_t>(out_.elements_.size()) - first;
    if (texts >= 2) text = out_.joined_.emplace_back(std::move(pieces));
    Element& e = out_.elements_[at];
    e.text = text;
    e.first_kid = first;
    e.kids = kids;
    if (v_ && texts > 0) v_->Text(text);
    if (too_deep && !deep_reported_) {
      issues_.Error(NodePath(too_deep), IssueCode::kTooCostly,
                    Cat("elements nested deeper than ", max_depth_, " levels"));
      deep_reported_ = true;
    }
    for (uint32_t k = first; k < first + kids; ++k) {
      if (depth == 0 && !only_.empty() && out_.elements_[k].name != only_) continue;
      Visit(k, depth + 1);
    }
    if (v_) v_->End();
  }

  Elements& out_;
  internal::Validator* v_;
  IssueList& issues_;
  size_t max_depth_;
  bool deep_reported_ = false;
  std::string_view only_;
};

void Elements::UndoRules(const std::vector<Rule>& rules) {
  // The rules that change a name on reading, with the parent they apply under ("" = any).
  struct Undo {
    const Rule* rule;
    std::string_view parent;
    std::string_view match;  // the 2023011 name: the renamed element, or the wrapper
  };
  absl::InlinedVector<Undo, 8> undo;
  for (const Rule& r : rules) {
    std::string_view parent = r.parent == "*" ? std::string_view() : std::string_view(r.parent);
    if (r.kind == Rule::Kind::kRename) undo.push_back({&r, parent, r.name});
    if (r.kind == Rule::Kind::kWrap) undo.push_back({&r, parent, r.wrapper});
  }
  if (undo.empty()) return;
  // Entries are rewritten in place, never added: sizes and indices stay as they are.
  for (const Element& e : elements_) {  // only later entries (its children) are rewritten
    const std::string_view parent = e.name;
    const uint32_t first = e.first_kid, end = first + e.kids;
    for (uint32_t k = first; k < end; ++k) {
      const std::string_view name = elements_[k].name;
      for (const Undo& u : undo) {
        if (name != u.match || (!u.parent.empty() && u.parent != parent)) continue;
        const Rule& r = *u.rule;
        if (r.kind == Rule::Kind::kRename) {
          elements_[k].name = r.element;
          continue;
        }
        // The wrapper's (last) child of the wrapped name takes the wrapper's place; the
        // child's own entry is left without children, so that nothing is visited twice.
        const Element& w = elements_[k];
        uint32_t inner = w.first_kid + w.kids;
        for (uint32_t i = w.first_kid; i < w.first_kid + w.kids; ++i) {
          if (elements_[i].name == r.name) inner = i;
        }
        if (inner == w.first_kid + w.kids) continue;  // an empty wrapper: reported as is
        elements_[k] = elements_[inner];
        elements_[k].name = r.element;
        elements_[inner].kids = 0;
      }
    }
  }
}

class In;

// Where an element is: its parent's In, its name and, among `count` same-named siblings, its
// index. Paths are made only for an issue (most elements have none): no string per element.
struct Where {
  const In* parent = nullptr;  // nullptr: `name` is the whole path ("/Message")
  std::string_view name;
  size_t index = 0;
  size_t count = 1;
};

// One element being read. Children asked for are marked used; at the end, element
// children nobody asked for are reported: the typed model does not hold them.
class In {
 public:
  // `report`: whether the children nobody asked for are reported.
  In(const Elements& doc, const Element& e, Where where, IssueList& issues, bool report = true)
      : kids_(doc.kids(e)),
        e_(e),
        where_(where),
        issues_(issues),
        report_(report),
        used_(e.kids, false) {}
  In(const In&) = delete;
  In& operator=(const In&) = delete;
  ~In() {
    if (!report_) return;
    for (uint32_t i = 0; i < e_.kids; ++i) {
      if (!used_[i]) {
        issues_.Warning(Cat(path(), "/", kids_[i].name), IssueCode::kNotSupported,
                        "not mapped by RxFlow: dropped");
      }
    }
  }

  std::string path() const {
    std::string out;
    AppendPath(out);
    return out;
  }
  const Element& element() const { return e_; }
  // The child `name` (the index-th of `count` so named) of this element.
  Where Child(std::string_view name, size_t index = 0, size_t count = 1) const {
    return {this, name, index, count};
  }

  const Element* Find(std::string_view name) {
    for (uint32_t i = 0; i < e_.kids; ++i) {
      if (kids_[i].name == name) {
        used_[i] = true;
        return &kids_[i];
      }
    }
    return nullptr;
  }
  std::vector<const Element*> FindAll(std::string_view name) {
    std::vector<const Element*> out;
    for (uint32_t i = 0; i < e_.kids; ++i) {
      if (kids_[i].name == name) {
        used_[i] = true;
        out.push_back(&kids_[i]);
      }
    }
    return out;
  }
  std::string Text(std::string_view name) {
    const Element* c = Find(name);
    return c ? std::string(c->text) : std::string();
  }
  std::vector<std::string> Texts(std::string_view name) {
    std::vector<std::string> out;
    for (const Element* c : FindAll(name)) out.emplace_back(c->text);
    return out;
  }

 private:
  void AppendPath(std::string& out) const {
    if (where_.parent) where_.parent->AppendPath(out);
    AppendStep(out, where_);
  }
  static void AppendStep(std::string& out, const Where& w) {
    if (w.parent) out += '/';
    out += w.name;
    if (w.count > 1) absl::StrAppend(&out, "[", w.index + 1, "]");
  }

  const Element* kids_;  // e_'s children, adjacent in the index
  const Element& e_;
  Where where_;
  IssueList& issues_;
  bool report_;
  // Which children were asked for; most elements have a few: inline, no allocation.
  absl::InlinedVector<bool, 16> used_;
};

using internal::Field;
using internal::Table;
using K = Field::Kind;

// The first element child of `e`, or nullptr.
const Element* FirstElement(const Elements& doc, const Element& e) {
  return e.kids == 0 ? nullptr : &doc[e.first_kid];
}

// Reads a message by the binding tables (bindings.h).
class Decoder {
 public:
  Decoder(const Elements& doc, IssueList& issues) : doc_(doc), issues_(issues) {}

  void ReadHeader(In& msg, Header& h) { ReadChild(msg, "Header", &h, internal::kHeaderTable); }

  // Reads the transaction into `out` (in place: the models are large); false when there is
  // none that RxFlow reads.
  bool ReadBody(In& msg, Body& out) {
    const Element* node = msg.Find("Body");
    if (!node) return false;
    In body(doc_, *node, msg.Child("Body"), issues_);
    const Element* tx = FirstElement(doc_, *node);
    if (!tx) return false;
    std::string_view name = tx->name;
    body.Find(name);
    const internal::Transaction* t = internal::FindTransaction(name);
    if (!t) {
      In in(doc_, *tx, body.Child(name), issues_);  // its children are reported too
      issues_.Error(in.path(), IssueCode::kNotSupported,
                    Cat("transaction ", name, " is not supported by RxFlow"));
      return false;
    }
    // Into the transaction the body already holds (ReadXml made the message holding it).
    ReadElement(*tx, body.Child(name), t->held(out), t->table);
    return true;
  }

  // The transaction of the message's body, when it is one RxFlow reads (nullptr: none, or
  // not supported — ReadBody reports which).
  const internal::Transaction* BodyTransaction() const {
    const Element& root = doc_.root();
    const Element* kids = doc_.kids(root);
    for (uint32_t i = 0; i < root.kids; ++i) {
      if (kids[i].name != "Body") continue;
      const Element* tx = FirstElement(doc_, kids[i]);
      return tx ? internal::FindTransaction(tx->name) : nullptr;
    }
    return nullptr;
  }

 private:
  // Reads `node` into `owner` by `t`. An element with text of its own (To, From) is a
  // value: its child elements are the validator's to report.
  void ReadElement(const Element& e, Where where, void* owner, const Table& t) {
    In in(doc_, e, where, issues_, !t.own_text);
    for (const Field& f : t) Read(in, f, owner);
  }

  // The first child `name` of `in`, if any, into `owner`.
  void ReadChild(In& in, std::string_view name, void* owner, const Table& t) {
    if (const Element* e = in.Find(name)) ReadElement(*e, in.Child(name), owner, t);
  }

  void Read(In& in, const Field& f, void* owner) {
    const internal::Access* a = f.access;
    void* m = a ? a->member(owner) : nullptr;
    switch (f.kind) {
      case K::kLeaf:
        return ReadLeaf(in, f, m);
      case K::kSub:
      case K::kInterleaved:
        return ReadSub(in, f, m);
      case K::kGroup:
        ReadChild(in, f.name, owner, f.table);
        return;
      case K::kChoice:
        return ReadChoice(in, f, owner);
      case K::kAttribute:
        return a->set(m, in.element().node.attribute(std::string(f.name).c_str()).value());
      case K::kOwnText:
        return a->set(m, in.element().text);
      case K::kConst:
        in.Find(f.name);
        return;
      case K::kHook:
        return Hook(in, f.hook, owner);
    }
  }

  void ReadLeaf(In& in, const Field& f, void* m) {
    const internal::Access& a = *f.access;
    if (a.repeated) {
      for (const Element* e : in.FindAll(f.name)) a.set(a.add(m), e->text);
      return;
    }
    const Element* e = in.Find(f.name);
    // Absent: an optional stays unset; any other member reads as "" (some have defaults
    // for writing, e.g. Quantity's CodeListQualifier "38", that a reader must not invent).
    if (e || !a.optional) a.set(a.add(m), e ? e->text : std::string_view());
  }

  void ReadSub(In& in, const Field& f, void* m) {
    const internal::Access& a = *f.access;
    if (!a.repeated) {
      if (const Element* e = in.Find(f.name)) {
        ReadElement(*e, in.Child(f.name), a.add(m), f.table);
      }
      return;
    }
    std::vector<std::string> modifiers;
    if (f.kind == K::kInterleaved) modifiers = in.Texts(f.text);
    auto nodes = in.FindAll(f.name);
    for (size_t i = 0; i < nodes.size(); ++i) {
      void* item = a.add(m);
      ReadElement(*nodes[i], in.Child(f.name, i, nodes.size()), item, f.table);
      if (i > 0 && i - 1 < modifiers.size()) {
        f.modifier->set(f.modifier->member(item), modifiers[i - 1]);
      }
    }
  }

  // The first of the alternatives found (none: as the second; a bool member: whether it is
  // f.text), or with no alternatives the first child element, whatever its name.
  void ReadChoice(In& in, const Field& f, void* owner) {
    void* selector = f.access->member(owner);
    auto [yes, no] = f.alternatives;
    const Element* n = nullptr;
    std::string name;
    if (yes.empty()) {
      n = FirstElement(doc_, in.element());
      if (!n) return;
      name = n->name;
      in.Find(name);
      f.access->set(selector, name);
    } else {
      n = in.Find(yes);
      name = n ? yes : no;
      if (!n) n = in.Find(no);
      f.access->set(selector, name == f.text ? "true" : "false");
    }
    if (n) ReadElement(*n, in.Child(name), owner, f.table);
  }

  void Hook(In& in, internal::Hook hook, void* owner) {
    if (hook == internal::Hook::kDosage) {
      Dosage(in, *static_cast<DoseAdministration*>(owner));
    } else {
      Timing(in, static_cast<internal::TimingStep*>(owner)->second);
    }
  }

  // One of the parts (kTimingParts), then TimingClarifyingFreeText.
  void Timing(In& in, TimingAndDuration& t) {
    for (const internal::TimingPart& p : internal::kTimingParts) {
      const Element* n = in.Find(p.element);
      if (!n) continue;
      t.kind = static_cast<TimingAndDuration::Kind>(&p - internal::kTimingParts);
      SigCode& code = t.kind == TimingAndDuration::Kind::kAdministrationTiming
                          ? t.administration_timing_event
                          : t.units;
      if (p.units.empty()) {
        ReadElement(*n, in.Child(p.element), &code, internal::kSigCodeTable);
        break;
      }
      In x(doc_, *n, in.Child(p.element), issues_);
      if (!p.modifier.empty()) {
        auto values = x.Texts(p.value);
        if (!values.empty()) t.numeric_value = values[0];
        if (values.size() > 1) t.numeric_value_high = values[1];
        t.variable_modifier = x.Text(p.modifier);
      } else if (!p.value.empty()) {
        t.numeric_value = x.Text(p.value);
      }
      ReadChild(x, p.units, &code, internal::kSigCodeTable);
      break;
    }
    t.clarifying_free_text = in.Text("TimingClarifyingFreeText");
  }

  // DoseQuantity and DoseUnitOfMeasure, twice for a range.
  void Dosage(In& in, DoseAdministration& a) {
    auto q = in.Texts("DoseQuantity");
    auto units = in.FindAll("DoseUnitOfMeasure");
    auto unit = [&](size_t i, std::optional<DoseUnit>& out) {
      if (i >= units.size()) return;
      ReadElement(*units[i], in.Child("DoseUnitOfMeasure", i, units.size()), &out.emplace(),
                  internal::kDoseUnitTable);
    };
    if (!q.empty()) a.dose_quantity = q[0];
    unit(0, a.dose_unit);
    a.dose_range_modifier = in.Text("DoseRangeModifier");
    if (q.size() > 1) a.dose_quantity_high = q[1];
    unit(1, a.dose_unit_high);
  }

  const Elements& doc_;
  IssueList& issues_;
};

// The 49 transactions of NCPDP SCRIPT 2017071's Body choice (schema order), each between
// spaces. A valid transaction outside the profile's tables is refused with one "not
// supported" error rather than as an unknown element.
constexpr std::string_view kScriptTransactions =
    " Status Error Verify GetMessage PasswordChange CancelRx CancelRxResponse Census"
    " DrugAdministration MTMServiceRequest MTMServiceResponse RxRenewalRequest"
    " RxRenewalResponse Resupply RxChangeRequest RxChangeResponse RxFill RxHistoryRequest"
    " RxHistoryResponse MTMServiceDocumentation ClinicalInfoRequest ClinicalInfoResponse"
    " NewRxResponseDenied NewRxRequest NewRx PAInitiationRequest PAInitiationResponse"
    " PARequest PAResponse PACancelRequest PACancelResponse PAAppealRequest PAAppealResponse"
    " CFManifest CFRxOrderRequest CFInventoryList CFRxOrderCancel CFRxOrderCompletion"
    " CFProductInquiry CFProductInquiryResponse RxTransferRequest RxTransferResponse"
    " RxTransferConfirm RxFillIndicatorChange Recertification REMSRequest REMSResponse"
    " REMSInitiationRequest REMSInitiationResponse ";

// Reports a fatal issue and returns it as the call's status.
absl::Status Fatal(IssueList& issues, std::string path, IssueCode code, std::string message,
                   absl::StatusCode status = absl::StatusCode::kInvalidArgument) {
  issues.Fatal(std::move(path), code, std::move(message));
  return absl::Status(status, ToString(issues[issues.size() - 1]));
}

absl::Status Refuse(IssueList& issues, std::string path, absl::string_view message) {
  issues.Error(std::move(path), IssueCode::kNotSupported, std::string(message));
  return absl::UnimplementedError(message);
}

// SCRIPT 10.x marks its version with `version="010" release="006"` on Message; 2017071 and
// later use TransportVersion and friends. One error naming what was found.
absl::Status RefuseOldVersion(pugi::xml_node root, IssueList& issues) {
  std::string_view version = root.attribute("version").value();
  if (version.empty() || version.starts_with("2017") || version.starts_with("2023")) {
    return absl::OkStatus();
  }
  std::string_view release = root.attribute("release").value();
  auto number = [](std::string_view digits) {
    size_t i = 0;
    while (i + 1 < digits.size() && digits[i] == '0') ++i;
    return std::string(digits.substr(i, 8));
  };
  std::string found = release.empty() ? Cat("version \"", version.substr(0, 20), "\"")
                                      : Cat(number(version), ".", number(release));
  return Refuse(
      issues, "/Message/@version",
      Cat("SCRIPT ", found, " is not supported by RxFlow: it reads SCRIPT 2017071 and 2023011"));
}

// The namespace of the root element: its prefix's declaration, or the default one.
std::string_view RootNamespace(pugi::xml_node root) {
  std::string_view name(root.name());
  size_t colon = name.find(':');
  std::string attr =
      colon == std::string_view::npos ? "xmlns" : Cat("xmlns:", name.substr(0, colon));
  return root.attribute(attr.c_str()).value();
}

// NCPDP's 2017071 schema has no target namespace. Some senders put SCRIPT's own on the
// message anyway: read it, with a warning. Anything else is not a SCRIPT message.
absl::Status CheckNamespace(pugi::xml_node root, IssueList& issues) {
  std::string_view ns = RootNamespace(root);
  if (ns.empty()) return absl::OkStatus();
  if (ns == kScriptNamespace) {
    issues.Warning("/Message/@xmlns", IssueCode::kValue,
                   Cat("namespace ", ns, " is not part of SCRIPT 2017071: read as 2017071 names"));
    return absl::OkStatus();
  }
  return Fatal(issues, "/Message/@xmlns", IssueCode::kStructure,
               Cat("namespace \"", ns.substr(0, 200), "\" is not SCRIPT's (expected none, or ",
                   kScriptNamespace, ")"));
}

// The profile to read with: the caller's, the forced version's, or the one the Message
// attributes name. No version, or one RxFlow does not know → 2017071, with a warning.
const Profile* ChooseProfile(pugi::xml_node root, const ReadOptions& options, IssueList& issues) {
  if (options.profile) return options.profile;
  if (options.version) return &BuiltinProfile(*options.version);
  const Profile& p17 = BuiltinProfile(Version::k2017071);
  const Profile& p23 = BuiltinProfile(Version::k2023011);
  std::string_view tv = root.attribute("TransportVersion").value();
  std::string_view where = "TransportVersion";
  if (tv.empty()) {
    tv = root.attribute("version").value();
    if (!tv.empty()) where = "version";
  }
  if (tv.starts_with("2017071")) return &p17;
  if (tv.starts_with("2023011")) return &p23;
  for (const std::string& d : p23.impl().detect) {
    if (d == tv) return &p23;
  }
  issues.Warning(
      Cat("/Message/@", where), IssueCode::kValue,
      tv.empty() ? Cat("no SCRIPT version on Message: read as ", p17.name())
                 : Cat("unknown SCRIPT version \"", tv.substr(0, 20), "\": read as ", p17.name()));
  return &p17;
}

// A transaction of SCRIPT that the profile has no tables for: one error, before the
// validator would call its every element unknown.
absl::Status RefuseUnsupportedTransaction(pugi::xml_node root, const Profile& profile,
                                          IssueList& issues) {
  pugi::xml_node body;
  for (pugi::xml_node c : root.children()) {
    if (c.type() == pugi::node_element && Local(c.name()) == "Body") body = c;
  }
  pugi::xml_node tx = FirstChildElement(body);
  if (!tx) return absl::OkStatus();
  std::string_view name = Local(tx.name());
  const internal::Schema& schema = profile.impl().schema;
  int body_type = schema.FindType("BodyType");
  if (body_type >= 0 && schema.types[body_type].FindDecl(name) >= 0) return absl::OkStatus();
  if (kScriptTransactions.find(Cat(" ", name, " ")) != std::string_view::npos) {
    return Refuse(issues, Cat("/Message/Body/", name),
                  Cat("transaction ", name, " is not supported by RxFlow"));
  }
  return absl::OkStatus();  // not a SCRIPT transaction: the validator names it
}

// FHIR's XML form (its root in the namespace http://hl7.org/fhir, default or prefixed), which
// an EHR may send where FHIR JSON is read: named as such rather than "not a Message".
constexpr std::string_view kFhirXmlRefused =
    "the document is FHIR XML (namespace http://hl7.org/fhir): RxFlow reads FHIR as JSON and "
    "SCRIPT as XML";

bool IsFhirXml(pugi::xml_node root) {
  std::string_view name = root.name();
  size_t colon = name.find(':');
  std::string declaration =
      colon == std::string_view::npos ? "xmlns" : Cat("xmlns:", name.substr(0, colon));
  return std::string_view(root.attribute(declaration.c_str()).value()) == "http://hl7.org/fhir";
}

struct Parsed {
  pugi::xml_document doc;
  pugi::xml_node root;
  std::string_view text;  // the document as read: the input, or `decoded`
  std::string decoded;    // a document in another encoding, decoded to UTF-8
  const Profile* profile = nullptr;
  Elements elements;  // filled by validation (ParseAndValidate)
};

// Parses a well-formed document whose root is Message, within the limits; fills `out`.
absl::Status ParseMessage(std::string_view xml, IssueList& issues, const ReadOptions& options,
                          Parsed& out) {
  if (xml.size() > options.max_input_bytes) {
    return Fatal(
        issues, "/", IssueCode::kTooCostly,
        Cat("input of ", xml.size(), " bytes exceeds the limit of ", options.max_input_bytes),
        absl::StatusCode::kResourceExhausted);
  }
  // Another encoding than UTF-8 (UTF-16, or one the declaration names) is decoded first:
  // every check below reads the decoded text (a DTD in UTF-16 is refused like any other).
  internal::XmlEncoding encoding = internal::DecodeXmlEncoding(xml, options.charset);
  if (encoding.outcome == internal::XmlEncoding::Outcome::kRefused) {
    if (!encoding.malformed) {
      return Fatal(issues, "/", IssueCode::kNotSupported, encoding.message);
    }
    if (encoding.name.starts_with("UTF-16")) {  // lines are not counted in bytes here
      return Fatal(issues, "/", IssueCode::kStructure,
                   Cat("malformed XML at byte ", encoding.offset, ": ", encoding.message));
    }
    size_t line, col;
    LineColumn(xml, encoding.offset, line, col);
    return Fatal(issues, "/", IssueCode::kStructure,
                 Cat("malformed XML at line ", line, ", column ", col, ": ", encoding.message));
  }
  if (!encoding.message.empty()) issues.Warning("/", IssueCode::kStructure, encoding.message);
  if (encoding.outcome == internal::XmlEncoding::Outcome::kDecoded) {
    out.decoded = std::move(encoding.utf8);
    xml = out.decoded;
  }
  out.text = xml;
  if (HasDtdOrEntity(xml)) {
    return Fatal(issues, "/", IssueCode::kSecurity,
                 "document type (DTD) and entity declarations are refused");
  }
  size_t bad_at;
  std::string bad_what;
  if (BadCharacter(xml, bad_at, bad_what)) {
    size_t line, col;
    LineColumn(xml, bad_at, line, col);
    return Fatal(issues, "/", IssueCode::kStructure,
                 Cat("malformed XML at line ", line, ", column ", col, ": ", bad_what));
  }
  pugi::xml_parse_result r = out.doc.load_buffer(
      xml.data(), xml.size(), pugi::parse_default & ~pugi::parse_doctype & ~pugi::parse_pi,
      pugi::encoding_utf8);
  if (!r) {
    size_t line, col;
    LineColumn(xml, static_cast<size_t>(r.offset), line, col);
    return Fatal(issues, "/", IssueCode::kStructure,
                 Cat("malformed XML at line ", line, ", column ", col, ": ", r.description()));
  }
  out.root = out.doc.document_element();
  size_t roots = 0;
  bool text_outside = false;
  for (pugi::xml_node c : out.doc.children()) {
    if (c.type() == pugi::node_element) ++roots;
    if ((c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) &&
        !rxflow::internal::Trim(c.value()).empty()) {
      text_outside = true;
    }
  }
  // pugixml drops text after the root element: look for it in the input itself.
  size_t last_gt = xml.rfind('>');
  if (last_gt != std::string_view::npos &&
      !rxflow::internal::Trim(xml.substr(last_gt + 1)).empty()) {
    text_outside = true;
  }
  if (roots > 1 || text_outside) {
    return Fatal(issues, "/", IssueCode::kStructure,
                 roots > 1 ? "malformed XML: a second element after the root element"
                           : "malformed XML: text after the root element");
  }
  if (!out.root || Local(out.root.name()) != "Message") {
    if (out.root && IsFhirXml(out.root)) {
      return Fatal(issues, "/", IssueCode::kNotSupported, std::string(kFhirXmlRefused));
    }
    return Fatal(issues, "/", IssueCode::kStructure, "the root element must be Message");
  }
  return absl::OkStatus();
}

// Parses and validates; fills `out`. Returns InvalidArgument/ResourceExhausted on failure.
absl::Status ParseAndValidate(std::string_view xml, IssueList& issues, const ReadOptions& options,
                              Parsed& out) {
  const size_t first_issue = issues.size();
  RXFLOW_RETURN_IF_ERROR(ParseMessage(xml, issues, options, out));
  RXFLOW_RETURN_IF_ERROR(RefuseOldVersion(out.root, issues));
  RXFLOW_RETURN_IF_ERROR(CheckNamespace(out.root, issues));
  out.profile = ChooseProfile(out.root, options, issues);
  if (absl::Status t = RefuseUnsupportedTransaction(out.root, *out.profile, issues); !t.ok()) {
    return t;
  }
  size_t errors_before = issues.error_count();
  internal::Validator validator(out.profile->impl().schema, issues);
  ElementReader(out.elements, &validator, issues, options.max_depth)
      .Read(out.root, out.text.size());
  validator.Finish();
  if (!options.xsd_dir.empty()) {
    absl::Status xs = ValidateWithXsd(xml, options.xsd_dir, issues);
    if (!xs.ok() && xs.code() != absl::StatusCode::kInvalidArgument) return xs;
  }
  if (issues.error_count() > errors_before) {
    // Only this call's issues: a caller may pass a list holding earlier ones.
    // A limit stays a refusal in lenient mode too: what follows was never looked at.
    for (size_t k = first_issue; k < issues.size(); ++k) {
      const Issue& i = issues[k];
      if (i.severity == Severity::kError && i.code == IssueCode::kTooCostly) {
        return absl::ResourceExhaustedError(ToString(i));
      }
    }
    if (options.lenient) return absl::OkStatus();
    for (size_t k = first_issue; k < issues.size(); ++k) {
      const Issue& i = issues[k];
      if (i.severity == Severity::kError || i.severity == Severity::kFatal) {
        return absl::InvalidArgumentError(
            Cat("SCRIPT ", out.profile->name(), " message is invalid: ", ToString(i)));
      }
    }
    // This call's errors were counted but not kept (the list was full before it).
    return absl::InvalidArgumentError(Cat("SCRIPT ", out.profile->name(),
                                          " message is invalid: ", ToString(issues.last_added())));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateXml(std::string_view xml, IssueList& issues, const ReadOptions& options) {
  Parsed parsed;
  return ParseAndValidate(xml, issues, options, parsed);
}

StatusOr<Header> ReadHeader(std::string_view xml, IssueList& issues, const ReadOptions& options) {
  Parsed parsed;
  RXFLOW_RETURN_IF_ERROR(ParseMessage(xml, issues, options, parsed));
  IssueList unused;  // what the typed header does not hold is not this call's business
  ElementReader(parsed.elements, nullptr, unused, options.max_depth)
      .Read(parsed.root, parsed.text.size(), "Header");
  Decoder decoder(parsed.elements, unused);
  In msg(parsed.elements, parsed.elements.root(), Where{nullptr, "/Message"}, unused);
  Header h;
  decoder.ReadHeader(msg, h);
  return h;
}

StatusOr<Message> ReadXml(std::string_view xml, IssueList& issues, const ReadOptions& options) {
  Parsed parsed;
  RXFLOW_RETURN_IF_ERROR(ParseAndValidate(xml, issues, options, parsed));
  parsed.elements.UndoRules(parsed.profile->impl().rules);  // 2023011: its names undone
  Decoder decoder(parsed.elements, issues);
  // Read in place (a Message is large to move), made holding its transaction: a default
  // Message holds an empty NewRx, which would be made only to be replaced. `Made`'s
  // conversion returns the Message as a prvalue, so it is made once, where it stays.
  struct Made {
    const internal::Transaction* t;
    operator Message() const { return Message{Header{}, t->make()}; }
  };
  const internal::Transaction* t = decoder.BodyTransaction();
  StatusOr<Message> result =
      t ? StatusOr<Message>(absl::in_place, Made{t}) : StatusOr<Message>(absl::in_place);
  Message& m = *result;
  {
    In msg(parsed.elements, parsed.elements.root(), Where{nullptr, "/Message"}, issues);
    decoder.ReadHeader(msg, m.header);
    if (!decoder.ReadBody(msg, m.body)) {
      // The reader names a transaction it has tables but no model for; anything else
      // (no Body, an empty one) was reported by the validator, or is in lenient mode.
      for (const Issue& i : issues) {
        if (i.code == IssueCode::kNotSupported && i.severity == Severity::kError) {
          return absl::UnimplementedError(i.message);
        }
      }
      if (!issues.has_errors()) {
        issues.Error("/Message/Body", IssueCode::kRequired, "required: one SCRIPT transaction");
      }
      return absl::InvalidArgumentError("SCRIPT message has no supported transaction");
    }
  }
  return result;
}

}  // namespace rxflow::script
