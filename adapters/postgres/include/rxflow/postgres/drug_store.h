// SPDX-License-Identifier: Apache-2.0
// File: rxflow/postgres/drug_store.h
//
// The drug store in PostgreSQL (rxflow/clinical/drug_store.h), for deployments whose event
// store is PostgreSQL: `rxflow drugs import --db postgresql://...` writes it, `rxflow serve
// --drugs postgresql://...` reads it. Tables drug_products and drug_ndcs in the schema given
// (docs/clinical.md). An import is held in memory and written at Commit with COPY in one
// transaction that first deletes the source's earlier rows, so readers see either the whole
// old import or the whole new one.
//
// Example:
//   auto store = rxflow::clinical::OpenPostgresDrugStore({.url = "postgresql:///rxflow"});
//   auto index = rxflow::clinical::LoadDrugIndex(**store);
#ifndef RXFLOW_POSTGRES_DRUG_STORE_H_
#define RXFLOW_POSTGRES_DRUG_STORE_H_

#include <memory>
#include <string>

#include "rxflow/clinical/drug_store.h"
#include "rxflow/status.h"

namespace rxflow::clinical {

struct PostgresDrugStoreOptions {
  // libpq connection string or URL. Required.
  std::string url;
  // Schema holding the tables. Default: "public".
  std::string schema = "public";
  // Create the schema and tables when missing (what an import needs). false: a reader that
  // runs no DDL (a role without CREATE may use it), NotFound when the tables are missing.
  bool create = true;
};

// Connects and, with `create`, creates the tables when missing. Unavailable when the server
// cannot be reached; InvalidArgument for a schema name that is not a plain identifier;
// NotFound without `create` when the tables do not exist. One connection: not for
// concurrent use by several threads; several processes may read and import.
StatusOr<std::unique_ptr<DrugStore>> OpenPostgresDrugStore(const PostgresDrugStoreOptions& options);

}  // namespace rxflow::clinical

#endif  // RXFLOW_POSTGRES_DRUG_STORE_H_
