// SPDX-License-Identifier: Apache-2.0
// The drug database: NDC layouts, the index's code lookups, free-text ranking and its
// reasons, the formulary TSV reader, and the starter formulary's own promises.
#include "rxflow/clinical/drugs.h"

#include <algorithm>
#include <set>

#include <doctest/doctest.h>

#include "testing/status.h"

namespace rxflow::clinical {
namespace {

DrugProduct Product(std::string rxcui, std::string tty, std::string name, std::string brand,
                    std::vector<DrugIngredient> ingredients, std::string form, int schedule,
                    std::vector<std::string> ndcs = {}) {
  DrugProduct p;
  p.rxcui = std::move(rxcui);
  p.term_type = std::move(tty);
  p.name = std::move(name);
  p.brand = std::move(brand);
  p.ingredients = std::move(ingredients);
  p.dose_form = std::move(form);
  p.route = "ORAL";
  p.dea_schedule = schedule;
  p.ndcs = std::move(ndcs);
  p.source = "test";
  return p;
}

// Made-up codes (9xxxxxxx): these tests are about the index, not about RxNorm.
std::vector<DrugProduct> Sample() {
  std::vector<DrugProduct> v;
  v.push_back(Product("90000001", "SCD", "oxycodone hydrochloride 5 MG Oral Tablet", "",
                      {{"oxycodone", "", "5", "MG", "oxycodone hydrochloride"}}, "Oral Tablet", 2,
                      {"00406055201"}));
  v.push_back(Product("90000002", "SCD",
                      "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet", "",
                      {{"acetaminophen", "", "325", "MG", ""},
                       {"oxycodone", "", "5", "MG", "oxycodone hydrochloride"}},
                      "Oral Tablet", 2, {"00406051201"}));
  v.push_back(Product("90000003", "SBD",
                      "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet [Percocet]",
                      "Percocet",
                      {{"acetaminophen", "", "325", "MG", ""},
                       {"oxycodone", "", "5", "MG", "oxycodone hydrochloride"}},
                      "Oral Tablet", 2));
  v.push_back(Product("90000004", "SCD", "atorvastatin 20 MG Oral Tablet", "",
                      {{"atorvastatin", "", "20", "MG", "atorvastatin calcium"}}, "Oral Tablet", 0,
                      {"60505257908"}));
  v.push_back(Product("90000005", "SCD", "atorvastatin 40 MG Oral Tablet", "",
                      {{"atorvastatin", "", "40", "MG", "atorvastatin calcium"}}, "Oral Tablet",
                      0));
  v.push_back(Product("90000006", "SBD", "atorvastatin 20 MG Oral Tablet [Lipitor]", "Lipitor",
                      {{"atorvastatin", "", "20", "MG", "atorvastatin calcium"}}, "Oral Tablet", 0,
                      {"00071015523"}));
  v.push_back(Product("90000007", "SCD", "alprazolam 0.5 MG Oral Tablet", "",
                      {{"alprazolam", "", "0.5", "MG", ""}}, "Oral Tablet", 4, {"0009-0029-01"}));
  v.push_back(Product("90000008", "SCD", "amoxicillin 500 MG Oral Capsule", "",
                      {{"amoxicillin", "", "500", "MG", ""}}, "Oral Capsule", 0, {"6558004601"}));
  for (auto& p : v) {
    for (auto& n : p.ndcs) n = *NormalizeNdc(n.size() == 10 ? "65580-046-01" : n);
  }
  return v;
}

const DrugIndex& Index() {
  static auto built = DrugIndex::Build(Sample());
  RXFLOW_REQUIRE_OK(built);
  return **built;
}

bool HasReason(const DrugMatch& m, std::string_view text) {
  return std::any_of(m.reasons.begin(), m.reasons.end(),
                     [&](const std::string& r) { return r == text; });
}

TEST_CASE("NDC: every published layout normalises to NDC-11, bare 10 digits are ambiguous") {
  CHECK(NormalizeNdc("0002-1433-80") == "00002143380");   // 4-4-2
  CHECK(NormalizeNdc("50580-506-02") == "50580050602");   // 5-3-2
  CHECK(NormalizeNdc("50580-5060-2") == "50580506002");   // 5-4-1
  CHECK(NormalizeNdc("50580-5060-02") == "50580506002");  // 5-4-2
  CHECK(NormalizeNdc("00002143380") == "00002143380");
  CHECK(NormalizeNdc(" 0002-1433-80 ") == "00002143380");
  CHECK_FALSE(NormalizeNdc("0002143380"));   // 10 bare digits: which segment is short?
  CHECK_FALSE(NormalizeNdc("002-1433-80"));  // 3-4-2 is no layout
  CHECK_FALSE(NormalizeNdc("00002-1433-8A"));
  CHECK_FALSE(NormalizeNdc("0002--1433"));
  CHECK_FALSE(NormalizeNdc(""));
  auto c = NdcCandidates("0002143380");
  CHECK(c == std::vector<std::string>{"00002143380", "00021043380", "00021433800"});
  CHECK(FormatNdc11("00002143380") == "00002-1433-80");
}

TEST_CASE("DEA schedules read in their usual spellings") {
  CHECK(ParseSchedule("CII") == 2);
  CHECK(ParseSchedule("C-IV") == 4);
  CHECK(ParseSchedule("cv") == 5);
  CHECK(ParseSchedule("3") == 3);
  CHECK(ParseSchedule("") == 0);
  CHECK_FALSE(ParseSchedule("CVI"));
  CHECK_FALSE(ParseSchedule("C6"));
  CHECK(ScheduleName(1) == "CI");
  CHECK(ScheduleName(0).empty());
}

TEST_CASE("DrugIndex: lookup by NDC in any layout and by RxCUI") {
  const DrugIndex& ix = Index();
  const DrugProduct* p = ix.FindByNdc("0009-0029-01");
  REQUIRE(p);
  CHECK(p->name == "alprazolam 0.5 MG Oral Tablet");
  CHECK(ix.FindByNdc("00009002901") == p);
  CHECK(ix.FindByNdc("0009002901") == p);  // bare 10 digits: only one padding is known
  CHECK(ix.FindByNdc("65580-046-01"));     // 5-3-2
  CHECK(ix.FindByNdc("6558004601"));
  CHECK_FALSE(ix.FindByNdc("0009-0029-02"));
  CHECK_FALSE(ix.FindByNdc("not an ndc"));
  CHECK(ix.FindByRxcui("90000006")->brand == "Lipitor");
  CHECK(ix.FindByRxcui(" 90000006 ")->brand == "Lipitor");
  CHECK_FALSE(ix.FindByRxcui("90000099"));
  CHECK(ix.size() == 8);
}

TEST_CASE("DrugIndex::Build refuses a code on two products, naming both") {
  auto v = Sample();
  v[1].rxcui = v[0].rxcui;
  auto r = DrugIndex::Build(v);
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()).find("RxCUI 90000001 is on two products") == 0);
  v = Sample();
  v[1].ndcs = v[0].ndcs;
  r = DrugIndex::Build(v);
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()).find("NDC 00406-0552-01 is on two products") == 0);
  v = Sample();
  v[0].ndcs = {"0406-0552-01"};
  CHECK_FALSE(DrugIndex::Build(v).ok());
}

TEST_CASE("Search: a combination with an abbreviation and both strengths") {
  auto m = Index().Search("oxycodone/apap 5-325 tab");
  REQUIRE(m.size() >= 2);
  // The generic and the brand have the same words and strengths; the shorter name first.
  CHECK(m[0].product->rxcui == "90000002");
  CHECK(m[1].product->rxcui == "90000003");
  CHECK(HasReason(m[0], "ingredient \"oxycodone\""));
  CHECK(HasReason(m[0], "\"apap\" read as \"acetaminophen\""));
  CHECK(HasReason(m[0], "strength 5 MG"));
  CHECK(HasReason(m[0], "strength 325 MG"));
  CHECK(HasReason(m[0], "\"tab\" read as \"tablet\""));
  // Oxycodone alone names one of the two ingredients and matches one strength: below.
  auto single = std::find_if(m.begin(), m.end(),
                             [](const DrugMatch& x) { return x.product->rxcui == "90000001"; });
  REQUIRE(single != m.end());
  CHECK(single->score < m[0].score);
  CHECK(HasReason(*single, "strength 325 not in product"));
}

TEST_CASE("Search: a brand with a glued strength finds the brand, then its generic") {
  auto m = Index().Search("Lipitor 20mg");
  REQUIRE(m.size() >= 2);
  CHECK(m[0].product->rxcui == "90000006");
  CHECK(HasReason(m[0], "brand \"Lipitor\""));
  CHECK(HasReason(m[0], "strength 20 MG"));
  CHECK(m[1].product->rxcui == "90000004");
  CHECK(HasReason(m[1], "generic of brand \"lipitor\""));
  // 40 mg is atorvastatin too, but the strength is wrong: it comes after the 20 mg.
  auto forty = std::find_if(m.begin(), m.end(),
                            [](const DrugMatch& x) { return x.product->rxcui == "90000005"; });
  REQUIRE(forty != m.end());
  CHECK(forty->score < m[1].score);
}

TEST_CASE("Search: misspellings, prefixes, salts, codes and nonsense") {
  const DrugIndex& ix = Index();
  auto m = ix.Search("atorvastatn 40");
  REQUIRE_FALSE(m.empty());
  CHECK(m[0].product->rxcui == "90000005");
  CHECK(HasReason(m[0], "\"atorvastatn\" read as \"atorvastatin\""));
  m = ix.Search("alpraz");
  REQUIRE_FALSE(m.empty());
  CHECK(m[0].product->rxcui == "90000007");
  m = ix.Search("oxycodone hcl 5 mg");
  REQUIRE_FALSE(m.empty());
  CHECK(m[0].product->rxcui == "90000001");
  m = ix.Search("0009-0029-01");
  REQUIRE(m.size() == 1);
  CHECK(m[0].score == 1.0);
  CHECK(HasReason(m[0], "NDC 00009-0029-01"));
  m = ix.Search("90000008");
  REQUIRE(m.size() == 1);
  CHECK(HasReason(m[0], "RxCUI 90000008"));
  CHECK(ix.Search("xyzzy plugh").empty());
  CHECK(ix.Search("").empty());
  CHECK(ix.Search("500").empty());  // numbers alone name no drug
  SearchOptions one;
  one.limit = 1;
  CHECK(ix.Search("atorvastatin", one).size() == 1);
  // Bounded cost: a huge query is cut, not refused.
  CHECK_NOTHROW(ix.Search(std::string(1 << 20, 'a')));
}

TEST_CASE("Formulary TSV: columns by header name, each bad value named with line and column") {
  std::string head =
      "name\trxcui\ttty\tbrand\tdose_form\troute\tschedule\tprescribable\tingredients\tndcs\n";
  auto ok =
      ParseFormularyTsv(head +
                            "pregabalin 75 MG Oral Capsule\t\tSCD\t\tOral Capsule\tORAL\tCV\tY\t"
                            "pregabalin||75|MG|\t\n",
                        "mine");
  RXFLOW_REQUIRE_OK(ok);
  REQUIRE(ok->size() == 1);
  CHECK((*ok)[0].dea_schedule == 5);
  CHECK((*ok)[0].source == "mine");
  CHECK((*ok)[0].ingredients[0].strength == "75");
  auto bad = [&](std::string row) {
    auto r = ParseFormularyTsv(head + row, "mine");
    REQUIRE_FALSE(r.ok());
    return std::string(r.status().message());
  };
  CHECK(bad("x\t\tSCD\t\t\t\tCVI\tY\t\t\n") ==
        "mine line 2, column schedule: \"CVI\" is no DEA schedule (CI..CV or empty)");
  CHECK(bad("x\t12a\tSCD\t\t\t\t\tY\t\t\n") == "mine line 2, column rxcui: not an RxCUI: \"12a\"");
  CHECK(bad("x\t\tSCDX\t\t\t\t\tY\t\t\n").find("column tty") != std::string::npos);
  CHECK(bad("x\t\tSCD\t\t\t\t\tY\ta|b|c\t\n").find("column ingredients") != std::string::npos);
  CHECK(bad("x\t\tSCD\t\t\t\t\tY\ta||five|MG|\t\n").find("strength \"five\"") != std::string::npos);
  CHECK(bad("x\t\tSCD\t\t\t\t\tY\t\t12-34\n") == "mine line 2, column ndcs: not an NDC: \"12-34\"");
  CHECK(bad("x\t\tSCD\n") == "mine line 2: 3 columns, the header has 10");
  CHECK(bad("x\t\tSCD\t\t\t\t\tmaybe\t\t\n").find("column prescribable") != std::string::npos);
  CHECK_FALSE(ParseFormularyTsv("rxcui\tname\n", "mine").ok());  // header lacks columns
  CHECK_FALSE(ParseFormularyTsv("# only a comment\n", "mine").ok());
}

TEST_CASE("The starter formulary: parses, indexes, and represents every schedule") {
  auto products = StarterFormulary();
  RXFLOW_REQUIRE_OK(products);
  std::set<int> schedules;
  for (const auto& p : *products) {
    schedules.insert(p.dea_schedule);
    CHECK_FALSE(p.name.empty());
    CHECK(p.source == "starter");
    if (p.dea_schedule == 1) CHECK_FALSE(p.prescribable);
  }
  CHECK(schedules == std::set<int>{0, 1, 2, 3, 4, 5});
  const DrugIndex& ix = StarterDrugIndex();
  CHECK(ix.size() == products->size());
  CHECK(&StarterDrugIndex() == &ix);
}

}  // namespace
}  // namespace rxflow::clinical
