// SPDX-License-Identifier: Apache-2.0
// The drug store port's shared parts: source preference, the stored ingredient list, and
// loading a store into an index.
#include "rxflow/clinical/drug_store.h"

#include <vector>

#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

#include "common/text.h"

namespace rxflow::clinical {

using internal::Cat;

int SourceRank(std::string_view source) {
  if (source == "rxnorm") return 0;
  if (source == "fda-ndc") return 1;
  return 2;
}

namespace {

void AppendClean(std::string& out, std::string_view v) {
  for (char c : v) out.push_back(c == '|' || c == ';' ? ' ' : c);
}

}  // namespace

std::string EncodeIngredients(const std::vector<DrugIngredient>& ingredients) {
  std::string out;
  for (const DrugIngredient& i : ingredients) {
    if (!out.empty()) out.push_back(';');
    AppendClean(out, i.name);
    out.push_back('|');
    AppendClean(out, i.rxcui);
    out.push_back('|');
    AppendClean(out, i.strength);
    out.push_back('|');
    AppendClean(out, i.unit);
    out.push_back('|');
    AppendClean(out, i.precise);
  }
  return out;
}

StatusOr<std::vector<DrugIngredient>> DecodeIngredients(std::string_view text) {
  std::vector<DrugIngredient> out;
  if (text.empty()) return out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(';', start);
    std::string_view item = text.substr(start, end == std::string_view::npos ? end : end - start);
    std::vector<std::string_view> parts;
    for (size_t from = 0;;) {
      size_t bar = item.find('|', from);
      parts.push_back(item.substr(from, bar == std::string_view::npos ? bar : bar - from));
      if (bar == std::string_view::npos) break;
      from = bar + 1;
    }
    if (parts.size() != 5) {
      return absl::InvalidArgumentError(
          Cat("\"", item.substr(0, 40), "\" is not name|rxcui|strength|unit|precise"));
    }
    if (parts[0].empty()) return absl::InvalidArgumentError("an ingredient without a name");
    if (!parts[2].empty() && !internal::ParseDecimal(parts[2])) {
      return absl::InvalidArgumentError(
          Cat("strength \"", parts[2].substr(0, 20), "\" is no number"));
    }
    out.push_back({std::string(parts[0]), std::string(parts[1]), std::string(parts[2]),
                   std::string(parts[3]), std::string(parts[4])});
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

StatusOr<std::unique_ptr<DrugIndex>> LoadDrugIndex(DrugStore& store) {
  RXFLOW_ASSIGN_OR_RETURN(auto products, store.LoadAll());
  DrugIndexOptions options;
  options.first_code_wins = true;
  return DrugIndex::Build(std::move(products), options);
}

}  // namespace rxflow::clinical
