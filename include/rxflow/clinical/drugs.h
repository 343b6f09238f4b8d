// SPDX-License-Identifier: Apache-2.0
// File: rxflow/clinical/drugs.h
//
// The drug database: products with their ingredients and strengths, dose form, route, DEA
// schedule, RxNorm term type and NDCs; looked up by NDC (any published layout), by RxCUI,
// and by free text ranked with a score and the reasons for it.
//
// `DrugDatabase` is the port. `DrugIndex` is RxFlow's in-memory implementation: built once
// from products (the starter formulary compiled into the library, a drug store an importer
// filled — rxflow/sqlite/drug_store.h — or a user's own), immutable afterwards, so every
// lookup is thread-safe and allocation-light. docs/clinical.md describes the data sources,
// their licences and the matching algorithm.
//
// The data is advisory: the FDA NDC directory's DEA schedule is what the labeler reported,
// states may schedule more strictly, and the starter formulary is not a clinical reference.
//
// Example:
//   auto db = rxflow::clinical::DrugIndex::Build(*rxflow::clinical::StarterFormulary());
//   if (const auto* p = (*db)->FindByNdc("0071-0156-23")) std::cout << p->name;
//   for (const auto& m : (*db)->Search("oxycodone/apap 5-325 tab"))
//     std::cout << m.score << " " << m.product->name << "\n";
#ifndef RXFLOW_CLINICAL_DRUGS_H_
#define RXFLOW_CLINICAL_DRUGS_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rxflow/status.h"

namespace rxflow::clinical {

// DEA schedule as a number: 0 = not federally controlled, 1..5 = CI..CV.
// "CII" for 2, "" for 0.
std::string_view ScheduleName(int schedule);
// "CII", "C-II", "2", "II" → 2; "" → 0; anything else → nullopt.
std::optional<int> ParseSchedule(std::string_view text);

// NDC in any published layout → NDC-11 (5-4-2 digits, no hyphens). Hyphenated 4-4-2, 5-3-2,
// 5-4-1 and 5-4-2 pad the short segment; 11 digits are taken as they are. nullopt for
// anything else, including 10 digits without hyphens (which segment is short cannot be
// known: see NdcCandidates).
std::optional<std::string> NormalizeNdc(std::string_view ndc);
// Every NDC-11 an NDC could be: the one NormalizeNdc gives, or for 10 bare digits the three
// paddings (4-4-2, 5-3-2, 5-4-1). Empty when it is no NDC at all.
std::vector<std::string> NdcCandidates(std::string_view ndc);
// "00002143380" → "00002-1433-80".
std::string FormatNdc11(std::string_view ndc11);

// The active ingredient of a precise ingredient, lower case, salt and ester words dropped
// ("Oxycodone Hydrochloride" → "oxycodone", "testosterone cypionate" → "testosterone").
std::string IngredientBase(std::string_view precise);

struct DrugIngredient {
  // The active ingredient (RxNorm IN), lower case: "oxycodone".
  std::string name;
  // The ingredient's RxCUI (TTY IN), empty when unknown.
  std::string rxcui;
  // Strength as written ("5", "7.5", "0.125") and its unit ("MG", "MG/ML", "MCG/ACTUAT");
  // empty when unknown.
  std::string strength;
  std::string unit;
  // The salt or precise ingredient the strength is of ("oxycodone hydrochloride"), if any.
  std::string precise;
};

struct DrugProduct {
  // The product's RxCUI (SCD, SBD, GPCK, BPCK), empty when the source has none (FDA NDC).
  std::string rxcui;
  // RxNorm term type: SCD, SBD, GPCK, BPCK; empty when not an RxNorm product.
  std::string term_type;
  // Display name: RxNorm's normalised name, or the FDA proprietary name with its strength.
  std::string name;
  // Brand (proprietary) name, empty for a generic.
  std::string brand;
  std::vector<DrugIngredient> ingredients;
  std::string dose_form;  // "Oral Tablet", "TABLET, FILM COATED"
  std::string route;      // "ORAL"; several joined by "; "
  int dea_schedule = 0;   // 0 = not federally controlled, 1..5
  bool prescribable = true;
  // Package NDCs, NDC-11 without hyphens.
  std::vector<std::string> ndcs;
  // Where the row came from: "starter", "fda-ndc", "rxnorm" or a user's label.
  std::string source;
};

struct DrugMatch {
  // Valid as long as the database that returned it.
  const DrugProduct* product = nullptr;
  // 0 (nothing matched) .. 1 (every word, every strength, the whole product).
  double score = 0;
  // Why it matched, one phrase each: `ingredient "oxycodone"`, `brand "Lipitor"`,
  // `strength 5 MG`, `dose form "tablet"`, `"atorvastatn" read as "atorvastatin"`,
  // `"apap" read as "acetaminophen"`, `strength 10 not in product`.
  std::vector<std::string> reasons;
};

struct SearchOptions {
  size_t limit = 10;
  // Matches scoring below this are left out.
  double min_score = 0.2;
  // Leave out products that are not prescribable.
  bool prescribable_only = false;
};

// The port. Implementations are thread-safe for concurrent const calls.
class DrugDatabase {
 public:
  virtual ~DrugDatabase() = default;
  // The product an NDC (any layout NdcCandidates reads) belongs to; nullptr when unknown or
  // when a bare 10-digit NDC could be two different products.
  virtual const DrugProduct* FindByNdc(std::string_view ndc) const = 0;
  // The product with this RxCUI, nullptr when unknown.
  virtual const DrugProduct* FindByRxcui(std::string_view rxcui) const = 0;
  // Free text ("oxycodone/apap 5-325 tab", "Lipitor 20mg") → the best matches, best first.
  virtual std::vector<DrugMatch> Search(std::string_view text,
                                        const SearchOptions& options = {}) const = 0;
  virtual size_t size() const = 0;
};

// RxFlow's in-memory drug database. Lookup by code is two hash probes; free text uses an
// inverted index over the words of names, brands, ingredients and dose forms (docs/clinical.md).
struct DrugIndexOptions {
  // When two products share an RxCUI or an NDC: false (default) refuses the set; true keeps
  // the code on the first product (the caller orders the products by preference) and counts
  // the rest in DrugIndex::shadowed_codes().
  bool first_code_wins = false;
};

class DrugIndex final : public DrugDatabase {
 public:
  // InvalidArgument when two products share an RxCUI or an NDC (naming both; see
  // DrugIndexOptions), or a product has an NDC that is not NDC-11.
  static StatusOr<std::unique_ptr<DrugIndex>> Build(std::vector<DrugProduct> products,
                                                    const DrugIndexOptions& options = {});
  ~DrugIndex() override;

  const DrugProduct* FindByNdc(std::string_view ndc) const override;
  const DrugProduct* FindByRxcui(std::string_view rxcui) const override;
  std::vector<DrugMatch> Search(std::string_view text,
                                const SearchOptions& options = {}) const override;
  size_t size() const override;
  const std::vector<DrugProduct>& products() const;
  // Codes left on an earlier product under DrugIndexOptions::first_code_wins.
  size_t shadowed_codes() const;

  struct Impl;

 private:
  explicit DrugIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The starter formulary compiled into the library (data/clinical/formulary.tsv): common US
// products written by the project from public-domain facts, all five schedules represented.
StatusOr<std::vector<DrugProduct>> StarterFormulary();

// Parses a formulary in the starter formulary's TSV layout (docs/clinical.md), e.g. a user's
// own. InvalidArgument naming the line and column of the first bad row.
StatusOr<std::vector<DrugProduct>> ParseFormularyTsv(std::string_view tsv,
                                                     std::string_view source = "formulary");

// The starter formulary as a DrugIndex, built once per process.
const DrugIndex& StarterDrugIndex();

}  // namespace rxflow::clinical

#endif  // RXFLOW_CLINICAL_DRUGS_H_
