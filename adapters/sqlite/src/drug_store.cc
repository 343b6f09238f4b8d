// SPDX-License-Identifier: Apache-2.0
// The drug store in SQLite: one transaction per import, replacing the source's rows.
#include "rxflow/sqlite/drug_store.h"

#include <filesystem>
#include <unordered_map>

#include "rxflow/internal/strcat.h"

#include "sqlite_db.h"

namespace rxflow::clinical {
namespace {

using internal::Cat;
using sqlite_internal::Db;
using sqlite_internal::Stmt;

// drug_products.seq keeps import order; codes are unique per source (a code two sources
// share is resolved when loading: rxcui and NDC preference by SourceRank).
constexpr const char* kDrugSchema = R"sql(
CREATE TABLE IF NOT EXISTS drug_products (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  source TEXT NOT NULL,
  rxcui TEXT NOT NULL,
  term_type TEXT NOT NULL,
  name TEXT NOT NULL,
  brand TEXT NOT NULL,
  dose_form TEXT NOT NULL,
  route TEXT NOT NULL,
  dea_schedule INTEGER NOT NULL,
  prescribable INTEGER NOT NULL,
  ingredients TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS drug_products_source ON drug_products (source);
CREATE UNIQUE INDEX IF NOT EXISTS drug_products_rxcui ON drug_products (source, rxcui)
  WHERE rxcui <> '';
CREATE TABLE IF NOT EXISTS drug_ndcs (
  source TEXT NOT NULL,
  ndc TEXT NOT NULL,
  product_id INTEGER NOT NULL REFERENCES drug_products (id) ON DELETE CASCADE,
  PRIMARY KEY (source, ndc)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS drug_ndcs_product ON drug_ndcs (product_id);
)sql";

class SqliteDrugStore;

class SqliteImport : public DrugStore::Import {
 public:
  SqliteImport(Db& db, std::string source) : db_(db), source_(std::move(source)) {}
  ~SqliteImport() override {
    if (open_) (void)db_.Exec("ROLLBACK");
  }
  Status Begin() {
    if (auto s = db_.Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
    open_ = true;
    Stmt del(db_, "DELETE FROM drug_products WHERE source = ?1");
    del.Bind(1, source_);
    if (del.Step() != SQLITE_DONE) return del.Fail("clear the earlier import");
    return absl::OkStatus();
  }
  Status Put(DrugProduct&& p) override {
    if (!open_) return absl::FailedPreconditionError("the import was committed");
    if (!p.rxcui.empty()) {
      Stmt q(db_, "SELECT name FROM drug_products WHERE source = ?1 AND rxcui = ?2");
      q.Bind(1, source_).Bind(2, p.rxcui);
      if (q.Step() == SQLITE_ROW) {
        return absl::AlreadyExistsError(
            Cat("RxCUI ", p.rxcui, " is already on \"", q.Text(0), "\" in this import"));
      }
    }
    for (const std::string& ndc : p.ndcs) {
      if (ndc.size() != 11 || ndc.find_first_not_of("0123456789") != std::string::npos) {
        return absl::InvalidArgumentError(Cat("NDC \"", ndc.substr(0, 20), "\" is not NDC-11"));
      }
      Stmt q(db_,
             "SELECT p.name FROM drug_ndcs n JOIN drug_products p ON p.id = n.product_id "
             "WHERE n.source = ?1 AND n.ndc = ?2");
      q.Bind(1, source_).Bind(2, ndc);
      if (q.Step() == SQLITE_ROW) {
        return absl::AlreadyExistsError(
            Cat("NDC ", FormatNdc11(ndc), " is already on \"", q.Text(0), "\" in this import"));
      }
    }
    Stmt ins(db_,
             "INSERT INTO drug_products (source, rxcui, term_type, name, brand, dose_form, route, "
             "dea_schedule, prescribable, ingredients) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)");
    ins.Bind(1, source_)
        .Bind(2, p.rxcui)
        .Bind(3, p.term_type)
        .Bind(4, p.name)
        .Bind(5, p.brand)
        .Bind(6, p.dose_form)
        .Bind(7, p.route)
        .Bind(8, static_cast<int64_t>(p.dea_schedule))
        .Bind(9, static_cast<int64_t>(p.prescribable ? 1 : 0))
        .Bind(10, EncodeIngredients(p.ingredients));
    if (ins.Step() != SQLITE_DONE) return ins.Fail("insert a product");
    int64_t id = sqlite3_last_insert_rowid(db_.get());
    for (const std::string& ndc : p.ndcs) {
      Stmt n(db_, "INSERT OR IGNORE INTO drug_ndcs (source, ndc, product_id) VALUES (?1, ?2, ?3)");
      n.Bind(1, source_).Bind(2, ndc).Bind(3, id);
      if (n.Step() != SQLITE_DONE) return n.Fail("insert an NDC");
    }
    return absl::OkStatus();
  }
  Status Commit() override {
    if (!open_) return absl::FailedPreconditionError("the import was committed");
    if (auto s = db_.Exec("COMMIT"); !s.ok()) return s;
    open_ = false;
    return absl::OkStatus();
  }

 private:
  Db& db_;
  std::string source_;
  bool open_ = false;
};

class SqliteDrugStore : public DrugStore {
 public:
  Status Open(const std::string& path) {
    std::filesystem::path dir = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    if (auto s = db_.Open(path); !s.ok()) return s;
    return db_.Exec(kDrugSchema);
  }
  StatusOr<std::unique_ptr<Import>> BeginImport(std::string_view source) override {
    if (source.empty()) return absl::InvalidArgumentError("an import needs a source name");
    auto import = std::make_unique<SqliteImport>(db_, std::string(source));
    if (auto s = import->Begin(); !s.ok()) return s;
    return std::unique_ptr<Import>(std::move(import));
  }
  StatusOr<std::vector<DrugProduct>> LoadAll() override {
    // One snapshot: an import committing between the two reads cannot pair products with
    // another import's NDCs.
    if (auto s = db_.Exec("BEGIN"); !s.ok()) return s;
    auto all = LoadAllInTransaction();
    (void)db_.Exec(all.ok() ? "COMMIT" : "ROLLBACK");
    return all;
  }
  StatusOr<std::vector<DrugProduct>> LoadAllInTransaction() {
    std::vector<DrugProduct> out;
    std::vector<int64_t> ids;
    {
      Stmt q(db_,
             "SELECT id, source, rxcui, term_type, name, brand, dose_form, route, dea_schedule, "
             "prescribable, ingredients FROM drug_products "
             "ORDER BY CASE source WHEN 'rxnorm' THEN 0 WHEN 'fda-ndc' THEN 1 ELSE 2 END, "
             "source, id");
      int rc;
      while ((rc = q.Step()) == SQLITE_ROW) {
        DrugProduct p;
        ids.push_back(q.Int(0));
        p.source = q.Text(1);
        p.rxcui = q.Text(2);
        p.term_type = q.Text(3);
        p.name = q.Text(4);
        p.brand = q.Text(5);
        p.dose_form = q.Text(6);
        p.route = q.Text(7);
        p.dea_schedule = static_cast<int>(q.Int(8));
        p.prescribable = q.Int(9) != 0;
        auto ingredients = DecodeIngredients(q.Text(10));
        if (!ingredients.ok()) {
          return absl::DataLossError(Cat("drug store: product ", ids.back(), ": ",
                                         std::string(ingredients.status().message())));
        }
        p.ingredients = std::move(*ingredients);
        out.push_back(std::move(p));
      }
      if (rc != SQLITE_DONE) return q.Fail("read products");
    }
    std::unordered_map<int64_t, size_t> at;
    for (size_t i = 0; i < ids.size(); ++i) at[ids[i]] = i;
    Stmt q(db_, "SELECT product_id, ndc FROM drug_ndcs ORDER BY product_id, ndc");
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) {
      auto it = at.find(q.Int(0));
      if (it != at.end()) out[it->second].ndcs.push_back(q.Text(1));
    }
    if (rc != SQLITE_DONE) return q.Fail("read NDCs");
    return out;
  }
  StatusOr<std::vector<std::pair<std::string, size_t>>> Sources() override {
    std::vector<std::pair<std::string, size_t>> out;
    Stmt q(db_, "SELECT source, COUNT(*) FROM drug_products GROUP BY source ORDER BY source");
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) {
      out.emplace_back(q.Text(0), static_cast<size_t>(q.Int(1)));
    }
    if (rc != SQLITE_DONE) return q.Fail("count products");
    return out;
  }

 private:
  Db db_;
};

}  // namespace

StatusOr<std::unique_ptr<DrugStore>> OpenSqliteDrugStore(const std::string& path) {
  auto store = std::make_unique<SqliteDrugStore>();
  if (auto s = store->Open(path); !s.ok()) return s;
  return std::unique_ptr<DrugStore>(std::move(store));
}

}  // namespace rxflow::clinical
