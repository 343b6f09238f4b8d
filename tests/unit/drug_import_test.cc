// SPDX-License-Identifier: Apache-2.0
// The drug importers against hand-written files in the exact public formats
// (tests/fixtures/clinical/README.md lists every awkward row and the expected counts), the
// drug stores (SQLite, PostgreSQL), and the transform's use of the database.
#include "rxflow/clinical/drug_import.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>

#include <doctest/doctest.h>

#include "rxflow/clinical/checks.h"
#include "rxflow/clinical/drug_store.h"
#include "rxflow/transform.h"

#include <unistd.h>
#ifdef RXFLOW_TEST_HAVE_SQLITE
#include "rxflow/sqlite/drug_store.h"
#endif
#ifdef RXFLOW_TEST_HAVE_POSTGRES
#include <pqxx/pqxx>

#include "rxflow/postgres/drug_store.h"
#endif

#include "testing/files.h"
#include "testing/status.h"

namespace rxflow::clinical {
namespace {

std::filesystem::path Fixture(const std::string& rel) {
  return std::filesystem::path(RXFLOW_FIXTURES_DIR) / "clinical" / rel;
}

struct Collected {
  std::vector<DrugProduct> products;
  ProductSink sink() {
    return [this](DrugProduct&& p) {
      products.push_back(std::move(p));
      return absl::OkStatus();
    };
  }
  const DrugProduct* ByNdc(const std::string& ndc11) const {
    for (const auto& p : products) {
      if (std::find(p.ndcs.begin(), p.ndcs.end(), ndc11) != p.ndcs.end()) return &p;
    }
    return nullptr;
  }
};

void CheckCounts(const ImportFileCounts& f, const char* file, uint64_t read, uint64_t kept,
                 uint64_t skipped, uint64_t refused) {
  CAPTURE(f.file);
  CHECK(f.file == file);
  CHECK(f.read == read);
  CHECK(f.kept == kept);
  CHECK(f.skipped == skipped);
  CHECK(f.refused == refused);
  CHECK(f.read == f.kept + f.skipped + f.refused);
}

bool Refused(const ImportSummary& s, const std::string& file, uint64_t line,
             const std::string& words) {
  return std::any_of(s.refusals.begin(), s.refusals.end(), [&](const ImportRefusal& r) {
    return r.file == file && r.line == line && r.reason.find(words) != std::string::npos;
  });
}

TEST_CASE("cp1252 decodes to UTF-8, the undefined bytes to U+FFFD") {
  CHECK(Cp1252ToUtf8("Ex\xE9mplar\xAE") == "Exémplar®");
  CHECK(Cp1252ToUtf8("\x80\x99") == "€™");
  CHECK(Cp1252ToUtf8("\x81") == "\xEF\xBF\xBD");
  CHECK(Cp1252ToUtf8("plain") == "plain");
}

TEST_CASE("IngredientBase drops salt and ester words from the end only") {
  CHECK(IngredientBase("OXYCODONE HYDROCHLORIDE") == "oxycodone");
  CHECK(IngredientBase("testosterone cypionate") == "testosterone");
  CHECK(IngredientBase("naloxone hydrochloride dihydrate") == "naloxone");
  CHECK(IngredientBase("sodium chloride") == "sodium chloride");
  CHECK(IngredientBase("acetaminophen") == "acetaminophen");
}

TEST_CASE("FDA NDC import: columns by name, cp1252, awkward rows kept, skipped or refused") {
  Collected got;
  std::vector<ImportProgress> progress;
  ImportOptions options;
  options.progress_every = 5;
  options.progress = [&](const ImportProgress& p) { progress.push_back(p); };
  auto s = ImportFdaNdc(Fixture("fda-ndc/product.txt"), Fixture("fda-ndc/package.txt"), got.sink(),
                        options);
  RXFLOW_REQUIRE_OK(s);
  REQUIRE(s->files.size() == 2);
  // Line 16's NDC is malformed itself: refused, although its product is refused too.
  CheckCounts(s->files[0], "package.txt", 18, 13, 3, 2);
  CheckCounts(s->files[1], "product.txt", 15, 11, 1, 3);
  CHECK(s->products == 11);
  CHECK(s->refused == 5);
  CHECK(Refused(*s, "package.txt", 16, "NDCPACKAGECODE \"12A4-567-01\" is not a package NDC"));
  CHECK(Refused(*s, "product.txt", 14, "PRODUCTNDC \"12A4-567\""));
  CHECK(Refused(*s, "product.txt", 15, "DEASCHEDULE \"CVI\""));
  CHECK(Refused(*s, "product.txt", 16, "SUBSTANCENAME has 2 ingredients"));
  CHECK(Refused(*s, "package.txt", 17, "does not extend PRODUCTNDC"));
  CHECK(s->refusals.front().file == "package.txt");  // file order
  CHECK_FALSE(progress.empty());

  const DrugProduct* percocet = got.ByNdc("63481062370");  // 5-3 product NDC, 5-3-2 package
  REQUIRE(percocet);
  CHECK(percocet->dea_schedule == 2);
  CHECK(percocet->brand == "Percocet");
  REQUIRE(percocet->ingredients.size() == 2);
  CHECK(percocet->ingredients[0].name == "acetaminophen");
  CHECK(percocet->ingredients[0].strength == "325");
  CHECK(percocet->ingredients[0].unit == "MG");
  CHECK(percocet->ingredients[1].name == "oxycodone");
  CHECK(percocet->ingredients[1].precise == "oxycodone hydrochloride");
  CHECK(percocet->source == "fda-ndc");
  CHECK(percocet->rxcui.empty());
  CHECK(got.ByNdc("59762372001")->dea_schedule == 4);  // the 5-4-1 package
  CHECK(got.ByNdc("69097036505")->dea_schedule == 5);
  const DrugProduct* testosterone = got.ByNdc("00009034702");
  REQUIRE(testosterone);
  CHECK(testosterone->dea_schedule == 3);
  CHECK(testosterone->ingredients[0].unit == "MG/ML");
  CHECK(got.ByNdc("00093310901")->dea_schedule == 0);
  const DrugProduct* otc = got.ByNdc("50580044910");
  REQUIRE(otc);
  CHECK_FALSE(otc->prescribable);
  const DrugProduct* film = got.ByNdc("43598058130");
  REQUIRE(film);
  CHECK(film->route == "BUCCAL; SUBLINGUAL");
  // The generic's own name is no brand.
  CHECK(got.ByNdc("00406051201")->brand.empty());
  CHECK(got.ByNdc("00406051205") == got.ByNdc("00406051201"));
  // Every product the sink got indexes without a clash.
  CHECK(DrugIndex::Build(got.products).ok());
}

TEST_CASE("FDA NDC import: the older header without the last two columns, a row short by one") {
  Collected got;
  auto s = ImportFdaNdc(Fixture("fda-ndc/product-old.txt"), {}, got.sink());
  RXFLOW_REQUIRE_OK(s);
  REQUIRE(s->files.size() == 1);
  CheckCounts(s->files[0], "product-old.txt", 4, 3, 0, 1);
  CHECK(Refused(*s, "product-old.txt", 5, "17 columns, the header has 18"));
}

TEST_CASE("FDA NDC import: missing files and a header without a required column") {
  Collected got;
  auto s = ImportFdaNdc(Fixture("fda-ndc/no-such.txt"), {}, got.sink());
  CHECK(s.status().code() == absl::StatusCode::kNotFound);
  auto dir = std::filesystem::temp_directory_path() /
             ("rxflow-drug-import-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir / "product.txt");
    out << "PRODUCTID\tPRODUCTNDC\n1\t0002-1433\n";
  }
  s = ImportFdaNdc(dir / "product.txt", {}, got.sink());
  REQUIRE_FALSE(s.ok());
  CHECK(std::string(s.status().message()).find("no column PRODUCTTYPENAME") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("A sink that refuses a product: the row is refused and the import goes on") {
  int calls = 0;
  auto s = ImportFdaNdc(Fixture("fda-ndc/product-old.txt"), {}, [&](DrugProduct&& p) {
    ++calls;
    return calls == 1 ? absl::AlreadyExistsError("already there") : absl::OkStatus();
  });
  RXFLOW_REQUIRE_OK(s);
  CHECK(s->products == 2);
  CHECK(s->files[0].refused == 2);
  CHECK(Refused(*s, "product-old.txt", 2, "already there"));
  auto stopped = ImportFdaNdc(Fixture("fda-ndc/product-old.txt"), {},
                              [](DrugProduct&&) { return absl::UnavailableError("disk full"); });
  CHECK(stopped.status().code() == absl::StatusCode::kUnavailable);
}

TEST_CASE("RxNorm RRF import: prescribable concepts with ingredients, brands, NDCs, DCSA") {
  Collected got;
  auto s = ImportRxNormRrf(Fixture("rxnorm"), got.sink());
  RXFLOW_REQUIRE_OK(s);
  REQUIRE(s->files.size() == 3);
  CheckCounts(s->files[0], "RXNCONSO.RRF", 53, 49, 3, 1);
  CheckCounts(s->files[1], "RXNSAT.RRF", 20, 14, 4, 2);
  CheckCounts(s->files[2], "RXNREL.RRF", 44, 42, 1, 1);
  CHECK(Refused(*s, "RXNCONSO.RRF", 53, "expected 18 fields"));
  CHECK(Refused(*s, "RXNSAT.RRF", 19, "NDC \"6348162370\" is not 11 digits"));
  CHECK(Refused(*s, "RXNSAT.RRF", 20, "expected 13 fields"));
  CHECK(Refused(*s, "RXNREL.RRF", 44, "expected 16 fields"));
  REQUIRE(got.products.size() == 8);
  std::map<std::string, const DrugProduct*> by;
  for (const auto& p : got.products) by[p.rxcui] = &p;
  const DrugProduct* scd = by["1049221"];
  REQUIRE(scd);
  CHECK(scd->term_type == "SCD");
  CHECK(scd->name == "oxycodone hydrochloride 5 MG / acetaminophen 325 MG Oral Tablet");  // PSN
  CHECK(scd->dea_schedule == 2);
  CHECK(scd->dose_form == "Oral Tablet");
  CHECK(scd->route == "ORAL");
  REQUIRE(scd->ingredients.size() == 2);
  CHECK(scd->ingredients[0].name == "acetaminophen");
  CHECK(scd->ingredients[0].strength == "325");
  CHECK(scd->ingredients[1].name == "oxycodone");
  CHECK(scd->ingredients[1].precise == "oxycodone hydrochloride");
  CHECK(scd->ingredients[1].strength == "5");
  CHECK(scd->ingredients[1].unit == "MG");
  CHECK(scd->ndcs == std::vector<std::string>{"00406051201", "00406051205"});
  const DrugProduct* sbd = by["1049640"];
  REQUIRE(sbd);
  CHECK(sbd->term_type == "SBD");
  CHECK(sbd->brand == "Percocet");
  CHECK(sbd->ingredients.size() == 2);  // through its generic
  CHECK(sbd->dea_schedule == 2);
  CHECK(by["308048"]->dea_schedule == 4);
  CHECK(by["483450"]->dea_schedule == 5);
  CHECK(by["1010604"]->dea_schedule == 3);
  CHECK(by["1010604"]->route == "SUBLINGUAL");
  CHECK(by["308191"]->dea_schedule == 0);
  for (const auto& p : got.products) CHECK(p.source == "rxnorm");
}

// What every DrugStore adapter must do (the port's contract, rxflow/clinical/drug_store.h).
void CheckDrugStoreContract(DrugStore& store) {
  auto import_all = [&](const char* source, auto run) {
    auto import = store.BeginImport(source);
    RXFLOW_REQUIRE_OK(import);
    auto s = run([&](DrugProduct&& p) { return (*import)->Put(std::move(p)); });
    RXFLOW_REQUIRE_OK(s);
    RXFLOW_REQUIRE_OK((*import)->Commit());
    return *s;
  };
  auto fda = import_all("fda-ndc", [&](const ProductSink& sink) {
    return ImportFdaNdc(Fixture("fda-ndc/product.txt"), Fixture("fda-ndc/package.txt"), sink);
  });
  CHECK(fda.products == 11);
  auto rx = import_all(
      "rxnorm", [&](const ProductSink& sink) { return ImportRxNormRrf(Fixture("rxnorm"), sink); });
  CHECK(rx.products == 8);
  auto sources = store.Sources();
  RXFLOW_REQUIRE_OK(sources);
  CHECK(*sources == std::vector<std::pair<std::string, size_t>>{{"fda-ndc", 11}, {"rxnorm", 8}});
  auto index = LoadDrugIndex(store);
  RXFLOW_REQUIRE_OK(index);
  CHECK((*index)->size() == 19);
  // RxNorm is preferred where both have the NDC: the product with the RxCUI answers.
  const DrugProduct* p = (*index)->FindByNdc("0406-0512-01");
  REQUIRE(p);
  CHECK(p->rxcui == "1049221");
  CHECK((*index)->shadowed_codes() == 9);
  // FDA-only NDC (the OTC product) still answers.
  CHECK((*index)->FindByNdc("50580-449-10"));
  CHECK((*index)->FindByRxcui("1049640")->brand == "Percocet");

  // An import not committed leaves the earlier one.
  {
    auto import = store.BeginImport("fda-ndc");
    RXFLOW_REQUIRE_OK(import);
    DrugProduct x;
    x.name = "only in the abandoned import";
    RXFLOW_REQUIRE_OK((*import)->Put(std::move(x)));
  }
  CHECK((*store.Sources())[0].second == 11);
  // Within one import a code appears once; values with the stores' own separators and
  // escapes (tab, newline, backslash, quote) come back as written.
  const std::string awkward = "tab\there\nline \\N back\\slash 'quote' \"dq\"";
  {
    auto import = store.BeginImport("mine");
    RXFLOW_REQUIRE_OK(import);
    DrugProduct a;
    a.name = "a";
    a.rxcui = "90000001";
    a.ndcs = {"00002143380"};
    a.brand = awkward;
    a.dea_schedule = 2;
    a.prescribable = false;
    DrugProduct b = a;
    b.name = "b";
    CHECK((*import)->Put(DrugProduct(a)).ok());
    Status dup = (*import)->Put(DrugProduct(b));
    CHECK(dup.code() == absl::StatusCode::kAlreadyExists);
    CHECK(std::string(dup.message()).find("\"a\"") != std::string::npos);
    b.rxcui.clear();
    dup = (*import)->Put(DrugProduct(b));
    CHECK(dup.code() == absl::StatusCode::kAlreadyExists);
    CHECK(std::string(dup.message()).find("NDC 00002-1433-80") != std::string::npos);
    DrugProduct c;
    c.name = "c";
    c.ndcs = {"0002-1433-80"};
    CHECK((*import)->Put(std::move(c)).code() == absl::StatusCode::kInvalidArgument);
    RXFLOW_REQUIRE_OK((*import)->Commit());
    CHECK((*import)->Commit().code() == absl::StatusCode::kFailedPrecondition);
  }
  {
    auto all = store.LoadAll();
    RXFLOW_REQUIRE_OK(all);
    auto mine = std::find_if(all->begin(), all->end(),
                             [](const DrugProduct& d) { return d.source == "mine"; });
    REQUIRE(mine != all->end());
    CHECK(mine->brand == awkward);
    CHECK(mine->dea_schedule == 2);
    CHECK_FALSE(mine->prescribable);
    CHECK(mine->ndcs == std::vector<std::string>{"00002143380"});
    // rxnorm first, then fda-ndc, then the others.
    CHECK(all->front().source == "rxnorm");
    CHECK(all->back().source == "mine");
  }
  // A re-import of a source replaces it.
  auto again = import_all("fda-ndc", [&](const ProductSink& sink) {
    return ImportFdaNdc(Fixture("fda-ndc/product-old.txt"), {}, sink);
  });
  CHECK(again.products == 3);
  auto after = store.Sources();
  CHECK(*after ==
        std::vector<std::pair<std::string, size_t>>{{"fda-ndc", 3}, {"mine", 1}, {"rxnorm", 8}});
}

#ifdef RXFLOW_TEST_HAVE_SQLITE
TEST_CASE(
    "SQLite drug store: imports replace their source atomically, codes shared across sources") {
  auto dir = std::filesystem::temp_directory_path() /
             ("rxflow-drug-store-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::string path = (dir / "drugs.db").string();
  auto store = OpenSqliteDrugStore(path);
  RXFLOW_REQUIRE_OK(store);
  CHECK((std::filesystem::status(path).permissions() & std::filesystem::perms::others_read) ==
        std::filesystem::perms::none);
  CheckDrugStoreContract(**store);
  store->reset();
  std::filesystem::remove_all(dir);
}
#endif

#ifdef RXFLOW_TEST_HAVE_POSTGRES
// A fresh schema in the server named by RXFLOW_TEST_POSTGRES_URL (scripts/with-postgres.sh);
// without it this test fails, never skips.
TEST_CASE(
    "The drug store on the PostgresAdapter keeps the same contract, a second reader sees it") {
  const char* url = std::getenv("RXFLOW_TEST_POSTGRES_URL");
  REQUIRE_MESSAGE(url,
                  "RXFLOW_TEST_POSTGRES_URL is not set (run through scripts/with-postgres.sh)");
  const std::string schema = "drugs_" + std::to_string(::getpid());
  {
    pqxx::connection c(url);
    pqxx::nontransaction n(c);
    n.exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
  }
  PostgresDrugStoreOptions o;
  o.url = url;
  o.schema = schema;
  {
    auto store = OpenPostgresDrugStore(o);
    REQUIRE_MESSAGE(store.ok(), store.status().ToString());
    CheckDrugStoreContract(**store);
  }
  {
    // Another connection (another process, in a deployment) reads what was committed,
    // without DDL.
    PostgresDrugStoreOptions ro = o;
    ro.create = false;
    auto reader = OpenPostgresDrugStore(ro);
    RXFLOW_REQUIRE_OK(reader);
    auto index = LoadDrugIndex(**reader);
    RXFLOW_REQUIRE_OK(index);
    CHECK((*index)->size() == 12);
    CHECK((*index)->FindByRxcui("90000001"));
  }
  PostgresDrugStoreOptions missing = o;
  missing.schema = schema + "_none";
  missing.create = false;
  CHECK(OpenPostgresDrugStore(missing).status().code() == absl::StatusCode::kNotFound);
  o.schema = "x; DROP TABLE y";
  CHECK(OpenPostgresDrugStore(o).status().code() == absl::StatusCode::kInvalidArgument);
  pqxx::connection c(url);
  pqxx::nontransaction n(c);
  n.exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
}
#endif

// The transform with the starter formulary.
std::string Oxycodone() { return testing::ReadFixture("fhir/schedule2_oxycodone.json"); }

std::string Edit(std::string json, const std::string& from, const std::string& to) {
  size_t at = json.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, "fixture has no " << from);
  return json.replace(at, from.size(), to);
}

const char* kScheduleExt =
    "{\n        \"url\": \"https://rxflow.dev/fhir/StructureDefinition/dea-schedule\",\n"
    "        \"valueCode\": \"CII\"\n      }";

TransformOptions WithFormulary() {
  TransformOptions o;
  o.checks.drugs = &StarterDrugIndex();
  o.checks.drugs_name = "starter formulary";
  return o;
}

TEST_CASE("Transform + drug database: a schedule only in the database takes the controlled path") {
  std::string json = Oxycodone();
  REQUIRE(json.find(kScheduleExt) != std::string::npos);
  // No schedule in the request: the library default (no database) sends it as uncontrolled.
  std::string unscheduled =
      Edit(json, kScheduleExt, "{\"url\": \"https://example.org/x\", \"valueString\": \"x\"}");
  IssueList plain;
  auto out = ToScript(unscheduled, plain);
  RXFLOW_REQUIRE_OK(out);
  CHECK_FALSE(out->newrx.is_controlled());
  // With the starter formulary, RxCUI 1049621 is Schedule II.
  IssueList issues;
  out = ToScript(unscheduled, issues, WithFormulary());
  RXFLOW_REQUIRE_OK(out);
  CHECK(out->newrx.dea_schedule == "CII");
  CHECK(out->xml.find("<DEASchedule><Code>C48675</Code></DEASchedule>") != std::string::npos);
  bool told = false;
  for (const auto& i : issues) {
    if (i.severity == Severity::kInformation &&
        i.message.find("DEA Schedule CII from the starter formulary") == 0) {
      told = true;
      CHECK(i.path.find(".code.coding[0].code") != std::string::npos);
    }
  }
  CHECK(told);
  // And the Schedule II rules now apply: refills are refused.
  IssueList refills;
  auto refused =
      ToScript(Edit(unscheduled, "\"numberOfRepeatsAllowed\": 0", "\"numberOfRepeatsAllowed\": 2"),
               refills, WithFormulary());
  CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(refills.Find("medication_request.dispenseRequest.numberOfRepeatsAllowed"));
}

TEST_CASE(
    "Transform + drug database: a schedule that disagrees is a prescribing-rule error naming "
    "both") {
  IssueList issues;
  auto out = ToScript(Edit(Oxycodone(), "\"valueCode\": \"CII\"", "\"valueCode\": \"CIV\""), issues,
                      WithFormulary());
  CHECK(out.status().code() == absl::StatusCode::kFailedPrecondition);
  bool named = false;
  for (const auto& i : issues) {
    if (i.code == IssueCode::kBusinessRule &&
        i.message.find(
            "the request says Schedule CIV but the starter formulary has Schedule CII") == 0) {
      named = true;
      CHECK(i.path.find(".extension[0]") != std::string::npos);
      CHECK(i.message.find("RxCUI 1049621") != std::string::npos);
    }
  }
  CHECK(named);
  // The agreeing schedule passes without a word about it.
  IssueList fine;
  CHECK(ToScript(Oxycodone(), fine, WithFormulary()).ok());
  CHECK_FALSE(fine.has_errors());
}

TEST_CASE("Transform + drug database: an unknown code is a warning with its path") {
  IssueList issues;
  auto out = ToScript(Edit(Oxycodone(), "\"code\": \"1049621\"", "\"code\": \"99999999\""), issues,
                      WithFormulary());
  RXFLOW_REQUIRE_OK(out);  // the request's own schedule still applies
  CHECK(out->newrx.dea_schedule == "CII");
  bool warned = false;
  for (const auto& i : issues) {
    if (i.severity == Severity::kWarning &&
        i.message ==
            "RxCUI 99999999 is not in the starter formulary: the drug's DEA schedule is not "
            "checked against it") {
      warned = true;
      CHECK(i.path.find(".code.coding[0].code") != std::string::npos);
    }
  }
  CHECK(warned);
}

}  // namespace
}  // namespace rxflow::clinical
