// SPDX-License-Identifier: Apache-2.0
// File: rxflow/sqlite/drug_store.h
//
// The drug store in an SQLite file (WAL, owner-only 0600): `rxflow drugs import` writes it,
// `rxflow serve --drugs` and `rxflow drugs find` read it. Tables drug_products and
// drug_ndcs (docs/clinical.md).
//
// Example:
//   auto store = rxflow::clinical::OpenSqliteDrugStore("rxflow-data/drugs.db");
//   auto index = rxflow::clinical::LoadDrugIndex(**store);
#ifndef RXFLOW_SQLITE_DRUG_STORE_H_
#define RXFLOW_SQLITE_DRUG_STORE_H_

#include <memory>
#include <string>

#include "rxflow/clinical/drug_store.h"
#include "rxflow/status.h"

namespace rxflow::clinical {

// Opens (creating when missing) the drug store at `path`. Unavailable when it cannot be
// opened. Not for concurrent use by several threads; several processes may read.
StatusOr<std::unique_ptr<DrugStore>> OpenSqliteDrugStore(const std::string& path);

}  // namespace rxflow::clinical

#endif  // RXFLOW_SQLITE_DRUG_STORE_H_
