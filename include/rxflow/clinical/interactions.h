// SPDX-License-Identifier: Apache-2.0
// File: rxflow/clinical/interactions.h
//
// Drug–drug interaction screening at ingredient level. `InteractionKnowledgeBase` is the
// port; `TableKnowledgeBase` reads rules between drug classes and the classes' member
// ingredients from two tab-separated tables. RxFlow ships the ONC High-Priority list
// (Phansalkar et al., JAMIA 2012;19(5):735-43: 15 class pairs a panel judged contraindicated
// for concurrent use) as such tables, written by the project with their citations
// (data/clinical/ddi_*.tsv, docs/clinical.md). A user loads their own licensed knowledge
// base through the same tables or the port.
//
// The list is not exhaustive (its authors say so) and screening is advisory: the absence
// of a finding is not evidence that a combination is safe.
//
// Example:
//   const auto& kb = rxflow::clinical::OncHighPriority();
//   rxflow::clinical::ScreenedDrug a{"phenelzine 15 MG Oral Tablet", {{"phenelzine", ""}}};
//   rxflow::clinical::ScreenedDrug b{"sertraline 50 MG Oral Tablet", {{"sertraline", ""}}};
//   for (const auto& f : kb.Screen(a, {b})) std::cout << f.rule_id << " " << f.summary;
#ifndef RXFLOW_CLINICAL_INTERACTIONS_H_
#define RXFLOW_CLINICAL_INTERACTIONS_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rxflow/clinical/drugs.h"
#include "rxflow/status.h"

namespace rxflow::clinical {

// contraindicated (the ONC list), passive (shown without interrupting), unknown.
enum class InteractionSeverity { kContraindicated, kPassive, kUnknown };
std::string_view SeverityName(InteractionSeverity s);
// SeverityName's inverse; nullopt for another name.
std::optional<InteractionSeverity> ParseSeverity(std::string_view name);

struct ScreenedIngredient {
  std::string name;   // the ingredient (RxNorm IN) name, any case
  std::string rxcui;  // the ingredient's RxCUI, may be empty
};

// A drug as screening sees it: its active ingredients.
struct ScreenedDrug {
  std::string label;  // what to call it in a finding ("sertraline 50 MG Oral Tablet")
  std::vector<ScreenedIngredient> ingredients;
  // Where it came from: the id of another prescription in RxFlow's store, a path in the
  // request ("Bundle.entry[3]"), or empty.
  std::string reference;
};

struct InteractionFinding {
  std::string rule_id;  // "onc-06"
  InteractionSeverity severity = InteractionSeverity::kUnknown;
  std::string summary;   // the consequence, one sentence
  std::string citation;  // where the rule comes from
  // The pair: the screened drug's ingredient and class, the other drug's.
  std::string ingredient, ingredient_class;
  std::string other_ingredient, other_class;
  std::string other_label, other_reference;
  // "phenelzine (MAO inhibitors) with sertraline (SSRIs…): contraindicated (onc-04): …"
  std::string Describe() const;
};

class InteractionKnowledgeBase {
 public:
  virtual ~InteractionKnowledgeBase() = default;
  // Findings for `drug` against each of `others`: every rule in both orders, at ingredient
  // level, once per (rule, ingredient pair, other drug). A rule between a class and itself
  // (QT prolongation) does not match an ingredient with itself.
  virtual std::vector<InteractionFinding> Screen(const ScreenedDrug& drug,
                                                 const std::vector<ScreenedDrug>& others) const = 0;
  // "ONC High-Priority (Phansalkar 2012)", or the user's name.
  virtual std::string name() const = 0;
  // True when some rule concerns this ingredient (by RxCUI, else by name): a drug none of
  // whose ingredients it knows cannot interact under this knowledge base.
  virtual bool Knows(const ScreenedIngredient& ingredient) const = 0;
  // The ingredient names (lower case) this knowledge base has rules for: screening can read a
  // drug's ingredients from its description when nothing better is known.
  virtual std::vector<std::string> KnownIngredients() const = 0;
};

class TableKnowledgeBase final : public InteractionKnowledgeBase {
 public:
  // `rules_tsv`: rule_id, object_class, precipitant_class, severity, summary, citation;
  // `members_tsv`: class, ingredient, rxcui, source (docs/clinical.md). InvalidArgument naming
  // the table, line and column of the first bad row. A rule whose class has no member is
  // kept but cannot match (inactive_rules()).
  static StatusOr<std::unique_ptr<TableKnowledgeBase>> Load(std::string_view rules_tsv,
                                                            std::string_view members_tsv,
                                                            std::string name);
  ~TableKnowledgeBase() override;
  std::vector<InteractionFinding> Screen(const ScreenedDrug& drug,
                                         const std::vector<ScreenedDrug>& others) const override;
  std::string name() const override;
  bool Knows(const ScreenedIngredient& ingredient) const override;
  std::vector<std::string> KnownIngredients() const override;
  size_t rule_count() const;
  // Rules that cannot match because a class of theirs has no member (the ONC list: onc-07,
  // whose tricyclic antidepressants the paper does not enumerate).
  const std::vector<std::string>& inactive_rules() const;

  struct Impl;

 private:
  explicit TableKnowledgeBase(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A finding as one JSON object — rule_id, severity, summary, citation, ingredient,
// ingredient_class, other_ingredient, other_class, other_drug (the other drug's label) and
// other (its reference: the other prescription's id in the service, the drug as given to
// ScreenDrugs) — what the API, the `rxflow ddi` tool and Python answer with.
std::string InteractionFindingJson(const InteractionFinding& finding);

// The ONC High-Priority list compiled into the library, built once per process.
const TableKnowledgeBase& OncHighPriority();

// A drug's ingredients for screening: the product's when the drug database knows it; else
// the words and word pairs of `description` that name an ingredient the knowledge base knows
// ("Sertraline 50 mg tablet" → sertraline). `from_text` tells which.
std::vector<ScreenedIngredient> IngredientsFor(const DrugProduct* product,
                                               std::string_view description,
                                               const InteractionKnowledgeBase& kb,
                                               bool* from_text = nullptr);

// Drugs given as NDCs, RxCUIs or words, screened against each other (each pair once, the
// earlier one as the screened drug). Each is resolved through `db`'s best match (score ≥ 0.5;
// `db` may be nullptr), its ingredients by IngredientsFor; `resolved` (optional) receives how.
struct ResolvedDrug {
  std::string query;
  const DrugProduct* product = nullptr;  // nullptr: not in the database
  ScreenedDrug drug;                     // label: the product's name, else the query
  bool ingredients_from_text = false;
};
std::vector<InteractionFinding> ScreenDrugs(const std::vector<std::string>& queries,
                                            const DrugDatabase* db,
                                            const InteractionKnowledgeBase& kb,
                                            std::vector<ResolvedDrug>* resolved = nullptr);

}  // namespace rxflow::clinical

#endif  // RXFLOW_CLINICAL_INTERACTIONS_H_
