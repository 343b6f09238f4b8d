// SPDX-License-Identifier: Apache-2.0
// File: rxflow/clinical/drug_store.h
//
// Where imported drug data is kept: the `DrugStore` port, with SQLite (embedded default,
// rxflow/sqlite/drug_store.h) and PostgreSQL adapters. An import writes one source's
// products ("fda-ndc", "rxnorm", a user's label) in one transaction: it replaces that
// source's earlier import when it commits, and leaves it untouched when it does not. The
// service and the tools read a store once into a DrugIndex (LoadDrugIndex).
#ifndef RXFLOW_CLINICAL_DRUG_STORE_H_
#define RXFLOW_CLINICAL_DRUG_STORE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rxflow/clinical/drugs.h"
#include "rxflow/status.h"

namespace rxflow::clinical {

class DrugStore {
 public:
  virtual ~DrugStore() = default;

  class Import {
   public:
    virtual ~Import() = default;  // without Commit: discarded
    // Adds one product. AlreadyExists when this import already has a product with its RxCUI
    // or one of its NDCs (naming it); the import goes on.
    virtual Status Put(DrugProduct&& product) = 0;
    // Makes the import visible, replacing the source's earlier products, atomically.
    virtual Status Commit() = 0;
  };
  virtual StatusOr<std::unique_ptr<Import>> BeginImport(std::string_view source) = 0;

  // Every product, ordered by source preference (rxnorm, then fda-ndc, then the others by
  // name) and within a source in import order.
  virtual StatusOr<std::vector<DrugProduct>> LoadAll() = 0;
  // Products per source: {"fda-ndc", 12}, ...
  virtual StatusOr<std::vector<std::pair<std::string, size_t>>> Sources() = 0;
};

// The store's products as an index; where two sources share a code, the preferred source's
// product keeps it (DrugIndexOptions::first_code_wins).
StatusOr<std::unique_ptr<DrugIndex>> LoadDrugIndex(DrugStore& store);

// Source preference for LoadAll: lower first.
int SourceRank(std::string_view source);

// The ingredient list as stored: "name|rxcui|strength|unit|precise" joined by ';' (the
// formulary TSV's ingredients column), and back. A '|' or ';' inside a value is replaced by
// a space.
std::string EncodeIngredients(const std::vector<DrugIngredient>& ingredients);
StatusOr<std::vector<DrugIngredient>> DecodeIngredients(std::string_view text);

}  // namespace rxflow::clinical

#endif  // RXFLOW_CLINICAL_DRUG_STORE_H_
