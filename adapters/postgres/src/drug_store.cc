// SPDX-License-Identifier: Apache-2.0
// The drug store in PostgreSQL: an import is buffered, then written with COPY in one
// transaction that replaces the source's rows. Every libpqxx exception is caught here and
// becomes a Status (broken connection → Unavailable, anything else → Unavailable with the
// server's message).
#include "rxflow/postgres/drug_store.h"

#include <tuple>
#include <unordered_map>
#include <vector>

#include <pqxx/pqxx>

#include "rxflow/internal/strcat.h"

namespace rxflow::clinical {
namespace {

using internal::Cat;

// drug_products.seq keeps import order within a source; drug_ndcs points at (source, seq).
// Codes are unique per source; a code two sources share is resolved when loading
// (DrugIndexOptions::first_code_wins, sources ordered by SourceRank).
constexpr const char* kDrugSchema = R"sql(
CREATE TABLE IF NOT EXISTS drug_products (
  source TEXT NOT NULL,
  seq BIGINT NOT NULL,
  rxcui TEXT NOT NULL,
  term_type TEXT NOT NULL,
  name TEXT NOT NULL,
  brand TEXT NOT NULL,
  dose_form TEXT NOT NULL,
  route TEXT NOT NULL,
  dea_schedule INTEGER NOT NULL,
  prescribable BOOLEAN NOT NULL,
  ingredients TEXT NOT NULL,
  PRIMARY KEY (source, seq));
CREATE UNIQUE INDEX IF NOT EXISTS drug_products_rxcui ON drug_products (source, rxcui)
  WHERE rxcui <> '';
CREATE TABLE IF NOT EXISTS drug_ndcs (
  source TEXT NOT NULL,
  ndc TEXT NOT NULL,
  seq BIGINT NOT NULL,
  PRIMARY KEY (source, ndc),
  FOREIGN KEY (source, seq) REFERENCES drug_products (source, seq) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS drug_ndcs_product ON drug_ndcs (source, seq);
)sql";

Status Failed(std::string_view what, const std::exception& e) {
  return absl::UnavailableError(Cat("drug store (PostgreSQL): ", what, ": ", e.what()));
}

bool PlainIdentifier(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return !(s[0] >= '0' && s[0] <= '9');
}

class PostgresImport : public DrugStore::Import {
 public:
  PostgresImport(pqxx::connection& c, std::string source) : c_(c), source_(std::move(source)) {}

  Status Put(DrugProduct&& p) override {
    if (committed_) return absl::FailedPreconditionError("the import was committed");
    if (!p.rxcui.empty()) {
      auto it = rxcuis_.find(p.rxcui);
      if (it != rxcuis_.end()) {
        return absl::AlreadyExistsError(Cat("RxCUI ", p.rxcui, " is already on \"",
                                            products_[it->second].name, "\" in this import"));
      }
    }
    for (const std::string& ndc : p.ndcs) {
      if (ndc.size() != 11 || ndc.find_first_not_of("0123456789") != std::string::npos) {
        return absl::InvalidArgumentError(Cat("NDC \"", ndc.substr(0, 20), "\" is not NDC-11"));
      }
      auto it = ndcs_.find(ndc);
      if (it != ndcs_.end()) {
        return absl::AlreadyExistsError(Cat("NDC ", FormatNdc11(ndc), " is already on \"",
                                            products_[it->second].name, "\" in this import"));
      }
    }
    const size_t at = products_.size();
    if (!p.rxcui.empty()) rxcuis_.emplace(p.rxcui, at);
    for (const std::string& ndc : p.ndcs) ndcs_.emplace(ndc, at);
    products_.push_back(std::move(p));
    return absl::OkStatus();
  }

  Status Commit() override {
    if (committed_) return absl::FailedPreconditionError("the import was committed");
    try {
      pqxx::work w(c_);
      // Two imports of one source serialize here rather than collide on the unique indexes.
      w.exec_params("SELECT pg_advisory_xact_lock(hashtext('rxflow.drug_import:' || $1))", source_);
      w.exec_params("DELETE FROM drug_products WHERE source = $1", source_);
      {
        pqxx::stream_to out(w, "drug_products",
                            std::vector<std::string>{"source", "seq", "rxcui", "term_type", "name",
                                                     "brand", "dose_form", "route", "dea_schedule",
                                                     "prescribable", "ingredients"});
        for (size_t i = 0; i < products_.size(); ++i) {
          const DrugProduct& p = products_[i];
          out << std::make_tuple(source_, static_cast<int64_t>(i), p.rxcui, p.term_type, p.name,
                                 p.brand, p.dose_form, p.route, p.dea_schedule,
                                 std::string(p.prescribable ? "t" : "f"),
                                 EncodeIngredients(p.ingredients));
        }
        out.complete();
      }
      {
        pqxx::stream_to out(w, "drug_ndcs", std::vector<std::string>{"source", "ndc", "seq"});
        for (size_t i = 0; i < products_.size(); ++i) {
          for (const std::string& ndc : products_[i].ndcs) {
            out << std::make_tuple(source_, ndc, static_cast<int64_t>(i));
          }
        }
        out.complete();
      }
      w.commit();
    } catch (const std::exception& e) {
      return Failed(Cat("commit the import of ", source_), e);
    }
    committed_ = true;
    products_.clear();
    return absl::OkStatus();
  }

 private:
  pqxx::connection& c_;
  std::string source_;
  bool committed_ = false;
  std::vector<DrugProduct> products_;
  std::unordered_map<std::string, size_t> rxcuis_, ndcs_;
};

class PostgresDrugStore : public DrugStore {
 public:
  Status Open(const PostgresDrugStoreOptions& o) {
    if (o.url.empty()) return absl::InvalidArgumentError("drug store: no PostgreSQL URL");
    if (!PlainIdentifier(o.schema)) {
      return absl::InvalidArgumentError(
          Cat("drug store: schema \"", o.schema.substr(0, 64),
              "\" is not a plain identifier (a-z, 0-9, _; not starting with a digit)"));
    }
    try {
      c_ = std::make_unique<pqxx::connection>(o.url);
      // set_variable, not a raw SET: libpqxx replays it when it reconnects, so a dropped
      // connection cannot send an import to another schema's tables.
      c_->set_variable("search_path", c_->quote_name(o.schema));
      pqxx::nontransaction n(*c_);
      if (!o.create) {
        pqxx::result exists = n.exec_params(
            "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
            c_->quote_name(o.schema) + ".drug_products", c_->quote_name(o.schema) + ".drug_ndcs");
        if (!exists[0][0].as<bool>()) {
          return absl::NotFoundError(
              Cat("no drug store in schema ", o.schema, " (rxflow drugs import writes one)"));
        }
        return absl::OkStatus();
      }
      // Two processes creating the schema and tables at once would race on the catalog.
      n.exec("SELECT pg_advisory_lock(hashtext('rxflow.drug_schema'))");
      try {
        if (o.schema != "public") {
          n.exec("CREATE SCHEMA IF NOT EXISTS " + c_->quote_name(o.schema));
        }
        n.exec(kDrugSchema);
      } catch (...) {
        n.exec("SELECT pg_advisory_unlock(hashtext('rxflow.drug_schema'))");
        throw;
      }
      n.exec("SELECT pg_advisory_unlock(hashtext('rxflow.drug_schema'))");
    } catch (const std::exception& e) {
      return Failed("open", e);
    }
    return absl::OkStatus();
  }

  StatusOr<std::unique_ptr<Import>> BeginImport(std::string_view source) override {
    if (source.empty()) return absl::InvalidArgumentError("an import needs a source name");
    return std::unique_ptr<Import>(std::make_unique<PostgresImport>(*c_, std::string(source)));
  }

  StatusOr<std::vector<DrugProduct>> LoadAll() override {
    std::vector<DrugProduct> out;
    try {
      // One snapshot: an import committing between the two reads cannot pair products with
      // another import's NDCs.
      pqxx::work w(*c_);
      w.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY");
      std::unordered_map<std::string, std::unordered_map<int64_t, size_t>> at;
      pqxx::result products = w.exec(
          "SELECT source, seq, rxcui, term_type, name, brand, dose_form, route, dea_schedule, "
          "prescribable, ingredients FROM drug_products "
          "ORDER BY CASE source WHEN 'rxnorm' THEN 0 WHEN 'fda-ndc' THEN 1 ELSE 2 END, "
          "source, seq");
      out.reserve(products.size());
      for (const auto& r : products) {
        DrugProduct p;
        p.source = r[0].as<std::string>();
        const auto seq = r[1].as<int64_t>();
        p.rxcui = r[2].as<std::string>();
        p.term_type = r[3].as<std::string>();
        p.name = r[4].as<std::string>();
        p.brand = r[5].as<std::string>();
        p.dose_form = r[6].as<std::string>();
        p.route = r[7].as<std::string>();
        p.dea_schedule = r[8].as<int>();
        p.prescribable = r[9].as<bool>();
        auto ingredients = DecodeIngredients(r[10].as<std::string>());
        if (!ingredients.ok()) {
          return absl::DataLossError(Cat("drug store: product ", p.source, "/", seq, ": ",
                                         std::string(ingredients.status().message())));
        }
        p.ingredients = std::move(*ingredients);
        at[p.source][seq] = out.size();
        out.push_back(std::move(p));
      }
      pqxx::result ndcs =
          w.exec("SELECT source, seq, ndc FROM drug_ndcs ORDER BY source, seq, ndc");
      for (const auto& r : ndcs) {
        auto s = at.find(r[0].as<std::string>());
        if (s == at.end()) continue;
        auto it = s->second.find(r[1].as<int64_t>());
        if (it != s->second.end()) out[it->second].ndcs.push_back(r[2].as<std::string>());
      }
      w.commit();
    } catch (const std::exception& e) {
      return Failed("read products", e);
    }
    return out;
  }

  StatusOr<std::vector<std::pair<std::string, size_t>>> Sources() override {
    std::vector<std::pair<std::string, size_t>> out;
    try {
      pqxx::nontransaction n(*c_);
      for (const auto& r : n.exec("SELECT source, COUNT(*) FROM drug_products GROUP BY source "
                                  "ORDER BY source")) {
        out.emplace_back(r[0].as<std::string>(), r[1].as<size_t>());
      }
    } catch (const std::exception& e) {
      return Failed("count products", e);
    }
    return out;
  }

 private:
  std::unique_ptr<pqxx::connection> c_;
};

}  // namespace

StatusOr<std::unique_ptr<DrugStore>> OpenPostgresDrugStore(
    const PostgresDrugStoreOptions& options) {
  auto store = std::make_unique<PostgresDrugStore>();
  if (auto s = store->Open(options); !s.ok()) return s;
  return std::unique_ptr<DrugStore>(std::move(store));
}

}  // namespace rxflow::clinical
