// SPDX-License-Identifier: Apache-2.0
// Drug–drug interaction screening from class tables.
#include "rxflow/clinical/interactions.h"

#include <algorithm>
#include <array>
#include <functional>
#include <set>
#include <tuple>

#include <absl/container/flat_hash_map.h>

#include "rxflow/internal/strcat.h"

#include "common/text.h"

namespace rxflow::internal::embedded {
extern const std::string_view kddi_rules_tsv;
extern const std::string_view kddi_class_members_tsv;
}  // namespace rxflow::internal::embedded

namespace rxflow::clinical {

using internal::Cat;

std::string_view SeverityName(InteractionSeverity s) {
  switch (s) {
    case InteractionSeverity::kContraindicated:
      return "contraindicated";
    case InteractionSeverity::kPassive:
      return "passive";
    case InteractionSeverity::kUnknown:
      return "unknown";
  }
  return "unknown";
}

std::optional<InteractionSeverity> ParseSeverity(std::string_view name) {
  for (auto s : {InteractionSeverity::kContraindicated, InteractionSeverity::kPassive,
                 InteractionSeverity::kUnknown}) {
    if (SeverityName(s) == name) return s;
  }
  return std::nullopt;
}

std::string InteractionFinding::Describe() const {
  return Cat(ingredient, " (", ingredient_class, ") with ", other_ingredient, " (", other_class,
             ")", other_label.empty() ? "" : Cat(" in ", other_label), ": ", SeverityName(severity),
             " (", rule_id, "): ", summary);
}

namespace {

struct Rule {
  std::string id, object, precipitant, summary, citation;
  InteractionSeverity severity = InteractionSeverity::kUnknown;
};

// Reads a TSV with a header naming `columns`; calls `row(fields by column order, line)`.
Status ReadTable(std::string_view text, std::string_view table,
                 const std::vector<std::string_view>& columns,
                 const std::function<Status(const std::vector<std::string_view>&, size_t)>& row) {
  std::vector<size_t> at(columns.size(), SIZE_MAX);
  bool header = false;
  size_t width = 0, line_no = 0;
  for (std::string_view line : internal::SplitView(text, '\n')) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    auto f = internal::SplitView(line, '\t');
    if (!header) {
      for (size_t i = 0; i < f.size(); ++i) {
        for (size_t c = 0; c < columns.size(); ++c) {
          if (f[i] == columns[c]) at[c] = i;
        }
      }
      for (size_t c = 0; c < columns.size(); ++c) {
        if (at[c] == SIZE_MAX) {
          return absl::InvalidArgumentError(
              Cat(table, " line ", line_no, ": the header has no column \"", columns[c], "\""));
        }
      }
      width = f.size();
      header = true;
      continue;
    }
    if (f.size() != width) {
      return absl::InvalidArgumentError(
          Cat(table, " line ", line_no, ": ", f.size(), " columns, the header has ", width));
    }
    std::vector<std::string_view> fields;
    for (size_t c = 0; c < columns.size(); ++c) fields.push_back(internal::Trim(f[at[c]]));
    Status s = row(fields, line_no);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          Cat(table, " line ", line_no, ", ", std::string(s.message())));
    }
  }
  if (!header) return absl::InvalidArgumentError(Cat(table, ": no header line"));
  return absl::OkStatus();
}

std::string Key(std::string_view ingredient) {
  return internal::AsciiLower(internal::Trim(ingredient));
}

}  // namespace

struct TableKnowledgeBase::Impl {
  std::string name;
  std::vector<Rule> rules;
  // ingredient name (lower case) → its classes; rxcui → ingredient name.
  absl::flat_hash_map<std::string, std::vector<std::string>> classes_of;
  absl::flat_hash_map<std::string, std::string> name_of_rxcui;
  // class → rules where it is object or precipitant.
  absl::flat_hash_map<std::string, std::vector<size_t>> rules_of;
  std::vector<std::string> inactive;

  std::string Resolve(const ScreenedIngredient& i) const {
    if (!i.rxcui.empty()) {
      if (auto it = name_of_rxcui.find(i.rxcui); it != name_of_rxcui.end()) return it->second;
    }
    return IngredientBase(i.name);
  }
  const std::vector<std::string>* Classes(const std::string& ingredient) const {
    auto it = classes_of.find(ingredient);
    return it == classes_of.end() ? nullptr : &it->second;
  }
};

TableKnowledgeBase::TableKnowledgeBase(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TableKnowledgeBase::~TableKnowledgeBase() = default;

StatusOr<std::unique_ptr<TableKnowledgeBase>> TableKnowledgeBase::Load(std::string_view rules_tsv,
                                                                       std::string_view members_tsv,
                                                                       std::string name) {
  auto kb = std::make_unique<Impl>();
  kb->name = std::move(name);
  std::set<std::string> ids;
  Status s = ReadTable(
      rules_tsv, "rules",
      {"rule_id", "object_class", "precipitant_class", "severity", "summary", "citation"},
      [&](const std::vector<std::string_view>& f, size_t) -> Status {
        Rule r{std::string(f[0]), Key(f[1]), Key(f[2]), std::string(f[4]), std::string(f[5])};
        if (r.id.empty()) return absl::InvalidArgumentError("column rule_id: empty");
        if (!ids.insert(r.id).second) {
          return absl::InvalidArgumentError(Cat("column rule_id: ", r.id, " appears twice"));
        }
        if (r.object.empty() || r.precipitant.empty()) {
          return absl::InvalidArgumentError("a rule needs both classes");
        }
        auto severity = ParseSeverity(f[3]);
        if (!severity) {
          return absl::InvalidArgumentError(Cat("column severity: \"", f[3].substr(0, 20),
                                                "\" is none of contraindicated, passive, unknown"));
        }
        r.severity = *severity;
        kb->rules.push_back(std::move(r));
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  std::set<std::string> classes;
  s = ReadTable(members_tsv, "class members", {"class", "ingredient", "rxcui"},
                [&](const std::vector<std::string_view>& f, size_t) -> Status {
                  std::string cls = Key(f[0]), ing = Key(f[1]);
                  if (cls.empty() || ing.empty()) {
                    return absl::InvalidArgumentError("class and ingredient are required");
                  }
                  if (!f[2].empty() && !internal::IsAllDigits(f[2])) {
                    return absl::InvalidArgumentError(
                        Cat("column rxcui: \"", f[2].substr(0, 20), "\" is not an RxCUI"));
                  }
                  auto& list = kb->classes_of[ing];
                  if (std::find(list.begin(), list.end(), cls) != list.end()) {
                    return absl::InvalidArgumentError(Cat(ing, " is listed twice in class ", cls));
                  }
                  list.push_back(cls);
                  if (!f[2].empty()) kb->name_of_rxcui[std::string(f[2])] = ing;
                  classes.insert(cls);
                  return absl::OkStatus();
                });
  if (!s.ok()) return s;
  for (size_t i = 0; i < kb->rules.size(); ++i) {
    const Rule& r = kb->rules[i];
    // A class without a member (its members could not be sourced) leaves the rule unable to
    // match: it is kept, and listed by inactive_rules().
    if (!classes.count(r.object) || !classes.count(r.precipitant)) {
      kb->inactive.push_back(r.id);
      continue;
    }
    kb->rules_of[r.object].push_back(i);
    if (r.precipitant != r.object) kb->rules_of[r.precipitant].push_back(i);
  }
  return std::unique_ptr<TableKnowledgeBase>(new TableKnowledgeBase(std::move(kb)));
}

std::vector<InteractionFinding> TableKnowledgeBase::Screen(
    const ScreenedDrug& drug, const std::vector<ScreenedDrug>& others) const {
  const Impl& kb = *impl_;
  std::vector<InteractionFinding> out;
  std::set<std::tuple<std::string, std::string, std::string, size_t>> seen;
  for (const ScreenedIngredient& mine : drug.ingredients) {
    const std::string a = kb.Resolve(mine);
    const auto* a_classes = kb.Classes(a);
    if (!a_classes) continue;
    for (size_t o = 0; o < others.size(); ++o) {
      for (const ScreenedIngredient& theirs : others[o].ingredients) {
        const std::string b = kb.Resolve(theirs);
        const auto* b_classes = kb.Classes(b);
        if (!b_classes) continue;
        for (const std::string& ca : *a_classes) {
          auto it = kb.rules_of.find(ca);
          if (it == kb.rules_of.end()) continue;
          for (size_t ri : it->second) {
            const Rule& r = kb.rules[ri];
            // The other side of the rule from ca (both orders).
            std::vector<std::string> wanted;
            if (r.object == ca) wanted.push_back(r.precipitant);
            if (r.precipitant == ca) wanted.push_back(r.object);
            for (const std::string& cb : wanted) {
              if (std::find(b_classes->begin(), b_classes->end(), cb) == b_classes->end()) {
                continue;
              }
              if (r.object == r.precipitant && a == b) continue;  // not a drug with itself
              if (!seen.emplace(r.id, a, b, o).second) continue;
              InteractionFinding f;
              f.rule_id = r.id;
              f.severity = r.severity;
              f.summary = r.summary;
              f.citation = r.citation;
              f.ingredient = a;
              f.ingredient_class = ca;
              f.other_ingredient = b;
              f.other_class = cb;
              f.other_label = others[o].label;
              f.other_reference = others[o].reference;
              out.push_back(std::move(f));
            }
          }
        }
      }
    }
  }
  return out;
}

std::string TableKnowledgeBase::name() const { return impl_->name; }

bool TableKnowledgeBase::Knows(const ScreenedIngredient& ingredient) const {
  return impl_->Classes(impl_->Resolve(ingredient)) != nullptr;
}
size_t TableKnowledgeBase::rule_count() const { return impl_->rules.size(); }
const std::vector<std::string>& TableKnowledgeBase::inactive_rules() const {
  return impl_->inactive;
}

std::vector<std::string> TableKnowledgeBase::KnownIngredients() const {
  std::vector<std::string> out;
  for (const auto& [ing, classes] : impl_->classes_of) out.push_back(ing);
  std::sort(out.begin(), out.end());
  return out;
}

const TableKnowledgeBase& OncHighPriority() {
  static const TableKnowledgeBase* kb = [] {
    auto loaded = TableKnowledgeBase::Load(internal::embedded::kddi_rules_tsv,
                                           internal::embedded::kddi_class_members_tsv,
                                           "ONC High-Priority DDI list (Phansalkar 2012)");
    if (!loaded.ok()) std::abort();  // compiled in and tested: cannot fail
    return loaded->release();
  }();
  return *kb;
}

std::vector<ScreenedIngredient> IngredientsFor(const DrugProduct* product,
                                               std::string_view description,
                                               const InteractionKnowledgeBase& kb,
                                               bool* from_text) {
  std::vector<ScreenedIngredient> out;
  if (from_text) *from_text = false;
  if (product && !product->ingredients.empty()) {
    for (const DrugIngredient& i : product->ingredients) out.push_back({i.name, i.rxcui});
    return out;
  }
  // Words and word pairs of the description ("insulin glargine" is two words).
  std::string lower = internal::AsciiLower(description);
  std::vector<std::string> words;
  std::string w;
  for (char c : lower) {
    if ((c >= 'a' && c <= 'z') || c == '-') {
      w.push_back(c);
    } else if (!w.empty()) {
      words.push_back(std::move(w));
      w.clear();
    }
  }
  if (!w.empty()) words.push_back(std::move(w));
  std::vector<std::string> known = kb.KnownIngredients();
  std::sort(known.begin(), known.end());
  auto is_known = [&](const std::string& s) {
    return std::binary_search(known.begin(), known.end(), s);
  };
  for (size_t i = 0; i < words.size(); ++i) {
    std::string found;
    if (i + 1 < words.size() && is_known(words[i] + " " + words[i + 1])) {
      found = words[i] + " " + words[i + 1];
      ++i;
    } else if (is_known(words[i])) {
      found = words[i];
    }
    if (!found.empty() && std::none_of(out.begin(), out.end(), [&](const ScreenedIngredient& x) {
          return x.name == found;
        })) {
      out.push_back({found, ""});
    }
  }
  if (from_text) *from_text = !out.empty();
  return out;
}

std::string InteractionFindingJson(const InteractionFinding& f) {
  std::string out = "{";
  auto field = [&](std::string_view name, std::string_view value) {
    if (out.size() > 1) out.push_back(',');
    internal::Append(out, "\"", name, "\":\"");
    std::string valid(value);
    internal::MakeValidUtf8(valid);
    internal::AppendJsonEscaped(out, valid);
    out.push_back('"');
  };
  field("rule_id", f.rule_id);
  field("severity", SeverityName(f.severity));
  field("summary", f.summary);
  field("citation", f.citation);
  field("ingredient", f.ingredient);
  field("ingredient_class", f.ingredient_class);
  field("other_ingredient", f.other_ingredient);
  field("other_class", f.other_class);
  field("other_drug", f.other_label);
  field("other", f.other_reference);
  out.push_back('}');
  return out;
}

std::vector<InteractionFinding> ScreenDrugs(const std::vector<std::string>& queries,
                                            const DrugDatabase* db,
                                            const InteractionKnowledgeBase& kb,
                                            std::vector<ResolvedDrug>* resolved) {
  std::vector<ResolvedDrug> drugs;
  for (const std::string& q : queries) {
    ResolvedDrug r;
    r.query = q;
    SearchOptions so;
    so.limit = 1;
    so.min_score = 0.5;
    if (db) {
      auto m = db->Search(q, so);
      if (!m.empty()) r.product = m[0].product;
    }
    r.drug.label = r.product ? r.product->name : q;
    r.drug.reference = q;
    r.drug.ingredients = IngredientsFor(r.product, q, kb, &r.ingredients_from_text);
    drugs.push_back(std::move(r));
  }
  std::vector<InteractionFinding> out;
  for (size_t i = 0; i < drugs.size(); ++i) {
    std::vector<ScreenedDrug> later;
    for (size_t j = i + 1; j < drugs.size(); ++j) later.push_back(drugs[j].drug);
    for (auto& f : kb.Screen(drugs[i].drug, later)) out.push_back(std::move(f));
  }
  if (resolved) *resolved = std::move(drugs);
  return out;
}

}  // namespace rxflow::clinical
