// SPDX-License-Identifier: Apache-2.0
// SCRIPT XML writer: typed message → element events → version rules → validator and text.
//
// The message is written by the binding tables (bindings.h), each element's members in the
// order of its type in the 2017071 structure table. The profile's rules (wrap, rename,
// remove) rewrite the element stream for other versions, and every
// element goes through the table-driven validator as it is written, so what leaves here
// has been checked against the profile it claims.
#include <algorithm>
#include <bitset>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "rxflow/internal/strcat.h"
#include "rxflow/script/xml.h"

#include "common/text.h"
#include "script/bindings.h"
#include "script/schema.h"

namespace rxflow::script {
namespace {

using internal::Rule;
using rxflow::internal::Cat;

class Emitter {
 public:
  Emitter(const Profile::Impl& profile, IssueList& issues, bool pretty)
      : validator_(profile.schema, issues), pretty_(pretty) {
    out_.reserve(16384);
    out_ += R"(<?xml version="1.0" encoding="UTF-8"?>)";
    frames_.reserve(16);
    rules_.reserve(profile.rules.size());
    for (const Rule& r : profile.rules) {
      if (r.kind == Rule::Kind::kCode) continue;
      rules_.push_back(&r);
      rule_lengths_.set(std::min(r.element.size(), rule_lengths_.size() - 1));
    }
  }

  // Opens an element; attributes are (name, value) pairs with empty values skipped.
  void Open(std::string_view name,
            std::span<const std::pair<std::string_view, std::string_view>> attrs = {}) {
    Frame f;
    if (skip_ > 0) {
      ++skip_;
      frames_.push_back(f);
      return;
    }
    std::string_view parent = frames_.empty() ? std::string_view() : frames_.back().canonical;
    f.canonical = name;
    std::string_view emitted = name;
    // Most elements have no rule: the lengths of the names that do rule most out at once.
    bool maybe_rule = rule_lengths_.test(std::min(name.size(), rule_lengths_.size() - 1));
    for (const Rule* r : maybe_rule ? rules_ : std::span<const Rule* const>{}) {
      if (r->element != name || (r->parent != "*" && r->parent != parent)) continue;
      if (r->kind == Rule::Kind::kRemove) {
        skip_ = 1;
        frames_.push_back(f);
        return;
      }
      if (r->kind == Rule::Kind::kRename) emitted = r->name;
      if (r->kind == Rule::Kind::kWrap) {
        StartTag(r->wrapper, {});
        f.wrapper = r->wrapper;
        emitted = r->name;
      }
    }
    f.emitted = emitted;
    StartTag(emitted, attrs);
    frames_.push_back(f);
  }

  void Close() {
    Frame f = frames_.back();
    frames_.pop_back();
    if (skip_ > 0) {
      --skip_;
      return;
    }
    EndTag(f.emitted);
    if (!f.wrapper.empty()) EndTag(f.wrapper);
  }

  // <name>value</name>; nothing when value is empty (SCRIPT sends no empty elements).
  void Leaf(std::string_view name, std::string_view value) {
    if (value.empty()) return;
    Open(name);
    if (skip_ == 0) {
      validator_.Text(value);
      rxflow::internal::AppendXmlEscaped(out_, value);
      leaf_ = true;
    }
    Close();
  }

  // Text content of the element just opened (for elements that also carry attributes).
  void Text(std::string_view value) {
    if (skip_ > 0) return;
    validator_.Text(value);
    rxflow::internal::AppendXmlEscaped(out_, value);
    leaf_ = true;
  }

  std::string Finish() {
    validator_.Finish();
    if (pretty_) out_.push_back('\n');
    return std::move(out_);
  }

 private:
  struct Frame {
    std::string_view canonical;
    std::string_view emitted;
    std::string_view wrapper;
  };

  void StartTag(std::string_view name,
                std::span<const std::pair<std::string_view, std::string_view>> attrs) {
    validator_.Start(name);
    for (const auto& [k, v] : attrs) {
      if (!v.empty()) validator_.Attribute(k, v);
    }
    Indent();
    if (attrs.empty()) {
      Put("<", name, '>');
    } else {
      out_.push_back('<');
      out_.append(name);
      for (const auto& [k, v] : attrs) {
        if (v.empty()) continue;
        Put(" ", k, '=');
        out_.push_back('"');
        rxflow::internal::AppendXmlEscaped(out_, v);
        out_.push_back('"');
      }
      out_.push_back('>');
    }
    ++depth_;
    leaf_ = false;
  }

  void EndTag(std::string_view name) {
    validator_.End();
    --depth_;
    if (!leaf_) Indent();
    leaf_ = false;
    Put("</", name, '>');
  }

  // Appends `open`, `name` and `close` with one change of size: a tag is written for every
  // element, and three appends each check the capacity and terminate the string (one change
  // instead saved ~2 % of the writer's instructions).
  void Put(std::string_view open, std::string_view name, char close) {
    size_t at = out_.size();
    out_.resize(at + open.size() + name.size() + 1);
    char* p = out_.data() + at;
    std::memcpy(p, open.data(), open.size());
    std::memcpy(p + open.size(), name.data(), name.size());
    p[open.size() + name.size()] = close;
  }

  void Indent() {
    if (!pretty_) return;
    out_.push_back('\n');
    out_.append(static_cast<size_t>(depth_) * 2, ' ');
  }

  internal::Validator validator_;
  std::vector<const Rule*> rules_;
  std::bitset<64> rule_lengths_;  // the lengths of the element names rules_ name (63: longer)
  std::vector<Frame> frames_;
  std::string out_;
  bool pretty_;
  bool leaf_ = false;
  int depth_ = 0;
  int skip_ = 0;
};

using Attributes = std::span<const std::pair<std::string_view, std::string_view>>;
using internal::ComplexType;
using internal::Field;
using internal::Particle;
using internal::Table;
using K = Field::Kind;

// Writes a message by the binding tables, each element's members in the order of its type
// in the 2017071 structure table (the profile's rules rename and wrap afterwards).
class MessageWriter {
 public:
  MessageWriter(Emitter& e, const internal::Schema& schema) : e_(e), schema_(schema) {}

  void Write(const Message& m, const Profile::Impl& profile) {
    static constexpr std::string_view kAttrs[] = {"DatatypesVersion",  "TransportVersion",
                                                  "TransactionDomain", "TransactionVersion",
                                                  "StructuresVersion", "ECLVersion"};
    // Message attributes in a fixed order, values from the profile.
    std::pair<std::string_view, std::string_view> attrs[std::size(kAttrs)];
    for (size_t i = 0; i < std::size(kAttrs); ++i) {
      attrs[i].first = kAttrs[i];
      for (const auto& [k, val] : profile.attributes) {
        if (k == kAttrs[i]) attrs[i].second = val;
      }
    }
    const ComplexType* message = &schema_.types[schema_.root];
    e_.Open("Message", attrs);
    Element("Header", &m.header, internal::kHeaderTable, ChildType(message, "Header"));
    e_.Open("Body");
    const internal::Transaction& tx = internal::TransactionOf(m.body);
    Element(tx.name, tx.get(m.body), tx.table, ChildType(ChildType(message, "Body"), tx.name));
    e_.Close();
    e_.Close();
  }

 private:
  using Plan = internal::WriterPlan;

  const ComplexType* ChildType(const ComplexType* type, std::string_view name) const {
    int d = type ? type->FindDecl(name) : -1;
    int t = d < 0 ? -1 : type->decls[d].complex_type;
    return t < 0 ? nullptr : &schema_.types[t];
  }

  static std::string_view TextOf(const Field& f, const void* owner) {
    return f.access->text(f.access->cmember(owner));
  }
  // The element a field writes: its name, or the one its choice member names.
  static std::string_view ElementName(const Field& f, const void* owner) {
    if (f.kind != K::kChoice) return f.kind == K::kAttribute ? "" : f.name;
    std::string_view v = TextOf(f, owner);
    const auto& [a, b] = f.alternatives;
    if (a.empty()) return v;
    return (v == "true") == (a == f.text) ? a : b;
  }
  static bool IsSet(const Field& f, const void* owner) {
    if (f.when && !f.when(owner)) return false;
    switch (f.kind) {
      case K::kLeaf:
      case K::kSub:
      case K::kInterleaved:
        return f.access->count(f.access->cmember(owner)) > 0;
      case K::kGroup:
        return true;
      case K::kChoice:
        return !ElementName(f, owner).empty();
      case K::kConst:
        return !f.text.empty();
      default:
        return false;
    }
  }

  // `plan`: the plan of (t, type) when the caller has it; otherwise it is looked up.
  void Element(std::string_view name, const void* owner, const Table& t, const ComplexType* type,
               const Plan* plan = nullptr) {
    std::pair<std::string_view, std::string_view> attrs[2];
    size_t n = 0;
    for (const Field& f : t) {
      if (f.kind == K::kAttribute && n < std::size(attrs)) attrs[n++] = {f.name, TextOf(f, owner)};
    }
    e_.Open(name, Attributes(attrs, n));
    for (const Field& f : t) {
      if (f.kind == K::kOwnText) e_.Text(TextOf(f, owner));
    }
    Content(owner, t, type, plan);
    e_.Close();
  }

  // Which table fields write which declaration of a type (internal::WriterPlan).
  static constexpr int kUndeclared = -1;  // no declaration of the type has the field's name
  static constexpr int kDynamic = -2;     // a choice: the name depends on the value
  const Plan& PlanFor(const Table& t, const ComplexType& type) const {
    internal::WriterPlans& cache = *schema_.writer_plans;
    std::lock_guard lock(cache.mu);
    return MakePlan(cache, t, type);
  }
  // The plan of (t, type) and, made with it, those of its fields' elements. Under the lock.
  const Plan& MakePlan(internal::WriterPlans& cache, const Table& t,
                       const ComplexType& type) const {
    auto [it, inserted] = cache.plans.try_emplace({t.data, &type});
    Plan& plan = it->second;
    if (!inserted) return plan;
    plan.by_decl.resize(type.decls.size());
    plan.child.resize(t.size);
    for (size_t i = 0; i < t.size; ++i) {
      const Field& f = t.data[i];
      if (f.kind == K::kChoice) {
        plan.decl.push_back(kDynamic);
        for (auto& fields : plan.by_decl) fields.push_back(static_cast<uint8_t>(i));
      } else {
        int d = f.kind == K::kAttribute ? kUndeclared : type.FindDecl(f.name);
        plan.decl.push_back(d < 0 ? kUndeclared : d);
        if (d >= 0) plan.by_decl[d].push_back(static_cast<uint8_t>(i));
      }
      std::string_view names[2] = {f.name, {}};
      if (f.kind == K::kChoice) {
        names[0] = f.alternatives.first;  // no alternatives: only known when written
        names[1] = f.alternatives.second;
      } else if (f.kind != K::kSub && f.kind != K::kInterleaved && f.kind != K::kGroup) {
        continue;
      }
      for (size_t k = 0; k < 2; ++k) {
        if (names[k].empty()) continue;
        const ComplexType* ct = ChildType(&type, names[k]);
        plan.child[i][k].type = ct;
        if (ct) plan.child[i][k].plan = &MakePlan(cache, f.table, *ct);
      }
    }
    plan.flat = !HasChoice(type.content);
    if (plan.flat) Flatten(type.content, plan);
    return plan;
  }
  static bool HasChoice(const Particle& p) {
    if (p.kind == Particle::Kind::kChoice) return true;
    return std::any_of(p.children.begin(), p.children.end(), HasChoice);
  }
  // The (field, declaration) pairs Walk would visit, in its order (a choice-free content).
  static void Flatten(const Particle& p, Plan& plan) {
    if (p.kind == Particle::Kind::kElement) {
      for (uint8_t i : plan.by_decl[p.decl]) plan.order.emplace_back(i, p.decl);
      return;
    }
    for (const Particle& c : p.children) Flatten(c, plan);
  }

  // Members in their type's order; then, for the validator to name, the ones it does not
  // declare. Declared members left out of a choice (a second date form) are not written.
  void Content(const void* owner, const Table& t, const ComplexType* type, const Plan* plan) {
    if (t.size == 1 && t.data->kind == K::kHook) return Hook(t.data->hook, owner);
    uint64_t done = 0;
    if (type && !plan) plan = &PlanFor(t, *type);
    if (type && plan->flat) {
      for (auto [i, d] : plan->order) Visit(i, d, *type, *plan, owner, t, done);
    } else if (type) {
      Walk(type->content, *type, *plan, owner, t, done);
    }
    for (size_t i = 0; i < t.size; ++i) {
      if (done >> i & 1) continue;
      bool undeclared =
          !type || (plan->decl[i] == kDynamic ? type->FindDecl(ElementName(t.data[i], owner)) < 0
                                              : plan->decl[i] == kUndeclared);
      if (!type || (!t.only_declared && undeclared)) Emit(t.data[i], owner, type, plan, i);
    }
  }

  void Walk(const Particle& p, const ComplexType& type, const Plan& plan, const void* owner,
            const Table& t, uint64_t& done) {
    if (p.kind == Particle::Kind::kElement) {
      for (uint8_t i : plan.by_decl[p.decl]) Visit(i, p.decl, type, plan, owner, t, done);
      return;
    }
    const Particle* chosen =
        p.kind == Particle::Kind::kChoice ? Chosen(p, type, owner, t) : nullptr;
    for (const Particle& c : p.children) {
      if (p.kind == Particle::Kind::kSequence || &c == chosen) Walk(c, type, plan, owner, t, done);
    }
  }

  // Field `i` at declaration `d`: written unless it was already, or its name (a choice
  // member's) is another declaration's.
  void Visit(uint8_t i, int d, const ComplexType& type, const Plan& plan, const void* owner,
             const Table& t, uint64_t& done) {
    if (done >> i & 1) return;
    if (plan.decl[i] == kDynamic && ElementName(t.data[i], owner) != type.decls[d].name) return;
    done |= uint64_t{1} << i;
    Emit(t.data[i], owner, &type, &plan, i);
  }

  // The alternative of a choice holding the first member set (in table order), if any.
  static const Particle* Chosen(const Particle& choice, const ComplexType& type, const void* owner,
                                const Table& t) {
    for (const Field& f : t) {
      if (!IsSet(f, owner)) continue;
      for (const Particle& alt : choice.children) {
        if (Holds(alt, type, ElementName(f, owner))) return &alt;
      }
    }
    return nullptr;
  }
  static bool Holds(const Particle& p, const ComplexType& type, std::string_view name) {
    if (p.kind == Particle::Kind::kElement) return type.decls[p.decl].name == name;
    for (const Particle& c : p.children) {
      if (Holds(c, type, name)) return true;
    }
    return false;
  }

  // Field `i` of the table of `plan` (nullptr: no type, or an undeclared field).
  void Emit(const Field& f, const void* owner, const ComplexType* type, const Plan* plan,
            size_t i) {
    if (f.when && !f.when(owner)) return;
    const internal::Access* a = f.access;
    const void* m = a ? a->cmember(owner) : nullptr;
    size_t n = m ? a->count(m) : 0;
    switch (f.kind) {
      case K::kLeaf:
        for (size_t k = 0; k < n; ++k) e_.Leaf(f.name, a->text(a->at(m, k)));
        return;
      case K::kSub:
      case K::kInterleaved: {
        const Plan::Child child = plan ? plan->child[i][0] : Plan::Child{ChildType(type, f.name)};
        for (size_t k = 0; k < n; ++k) {
          const void* item = a->at(m, k);
          if (k > 0 && f.kind == K::kInterleaved) {
            e_.Leaf(f.text, f.modifier->text(f.modifier->cmember(item)));
          }
          Element(f.name, item, f.table, child.type, child.plan);
        }
        return;
      }
      case K::kGroup:
      case K::kChoice:
        if (std::string_view name = ElementName(f, owner); !name.empty()) {
          Plan::Child child{};
          if (plan && ((f.kind == K::kGroup && name == f.name) ||
                       (f.kind == K::kChoice && name == f.alternatives.first))) {
            child = plan->child[i][0];
          } else if (plan && f.kind == K::kChoice && name == f.alternatives.second) {
            child = plan->child[i][1];
          } else {
            child.type = ChildType(type, name);
          }
          Element(name, owner, f.table, child.type, child.plan);
        }
        return;
      case K::kConst:
        e_.Leaf(f.name, f.text);
        return;
      default:
        return;
    }
  }

  void Hook(internal::Hook hook, const void* owner) {
    if (hook == internal::Hook::kDosage) {
      Dosage(*static_cast<const DoseAdministration*>(owner));
    } else {
      Timing(static_cast<const internal::TimingStep*>(owner)->second);
    }
  }

  void Timing(const TimingAndDuration& t) {
    const internal::TimingPart& p = internal::kTimingParts[static_cast<size_t>(t.kind)];
    const SigCode& code = t.kind == TimingAndDuration::Kind::kAdministrationTiming
                              ? t.administration_timing_event
                              : t.units;
    if (p.units.empty()) return Element(p.element, &code, internal::kSigCodeTable, nullptr);
    e_.Open(p.element);
    Range(p.value, t.numeric_value, p.modifier, t.variable_modifier, t.numeric_value_high);
    Element(p.units, &code, internal::kSigCodeTable, nullptr);
    e_.Close();
    if (p.clarified) e_.Leaf("TimingClarifyingFreeText", t.clarifying_free_text);
  }

  // value, or value modifier value (a range) when there is a modifier; none without a name.
  void Range(std::string_view name, std::string_view low, std::string_view modifier_name,
             std::string_view modifier, std::string_view high) {
    if (name.empty()) return;
    e_.Leaf(name, low);
    if (modifier_name.empty() || modifier.empty()) return;
    e_.Leaf(modifier_name, modifier);
    e_.Leaf(name, high);
  }

  void Dosage(const DoseAdministration& d) {
    e_.Leaf("DoseQuantity", d.dose_quantity);
    Element("DoseUnitOfMeasure", &*d.dose_unit, internal::kDoseUnitTable, nullptr);
    if (d.dose_range_modifier.empty() || !d.dose_unit_high) return;
    e_.Leaf("DoseRangeModifier", d.dose_range_modifier);
    e_.Leaf("DoseQuantity", d.dose_quantity_high);
    Element("DoseUnitOfMeasure", &*d.dose_unit_high, internal::kDoseUnitTable, nullptr);
  }

  Emitter& e_;
  const internal::Schema& schema_;
};

}  // namespace

StatusOr<std::string> WriteXml(const Message& message, IssueList& issues,
                               const WriteOptions& options) {
  const Profile& profile = options.profile ? *options.profile : BuiltinProfile(Version::k2023011);
  size_t errors_before = issues.error_count();
  Emitter emitter(profile.impl(), issues, options.pretty);
  MessageWriter writer(emitter, BuiltinProfile(Version::k2017071).impl().schema);
  writer.Write(message, profile.impl());
  std::string xml = emitter.Finish();
  if (issues.error_count() > errors_before) {
    for (const Issue& i : issues) {
      if (i.severity == Severity::kError || i.severity == Severity::kFatal) {
        return absl::InvalidArgumentError(
            Cat("SCRIPT ", profile.name(), " message is invalid: ", ToString(i)));
      }
    }
  }
  return xml;
}

}  // namespace rxflow::script
