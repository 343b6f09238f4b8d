// SPDX-License-Identifier: Apache-2.0
// Drug–drug interaction screening: the ONC High-Priority pairs in both orders, the pairs the
// panel rejected (negative tests, from Table 3 of the paper), the QT rule and a drug with
// itself, the table reader's errors, and ingredients read from a description.
#include "rxflow/clinical/interactions.h"

#include <algorithm>

#include <doctest/doctest.h>

#include "testing/status.h"

namespace rxflow::clinical {
namespace {

ScreenedDrug Drug(std::string ingredient, std::string reference = "") {
  return ScreenedDrug{ingredient, {{std::move(ingredient), ""}}, std::move(reference)};
}

std::vector<std::string> Rules(const std::string& a, const std::string& b) {
  std::vector<std::string> ids;
  for (const auto& f : OncHighPriority().Screen(Drug(a), {Drug(b, "rx-1")}))
    ids.push_back(f.rule_id);
  return ids;
}

TEST_CASE("ONC list: each active rule fires, in both orders") {
  struct Pair {
    const char* a;
    const char* b;
    const char* rule;
  };
  // One concrete pair per rule (onc-07 and onc-08 below).
  const Pair pairs[] = {
      {"dextroamphetamine", "phenelzine", "onc-01"}, {"atazanavir", "omeprazole", "onc-02"},
      {"febuxostat", "azathioprine", "onc-03"},      {"sertraline", "tranylcypromine", "onc-04"},
      {"irinotecan", "ketoconazole", "onc-05"},      {"meperidine", "phenelzine", "onc-06"},
      {"ramelteon", "fluvoxamine", "onc-09"},        {"rifampin", "ritonavir", "onc-10"},
      {"simvastatin", "clarithromycin", "onc-11"},   {"ergotamine", "clarithromycin", "onc-12"},
      {"tizanidine", "ciprofloxacin", "onc-13"},     {"tranylcypromine", "procarbazine", "onc-14"},
      {"sumatriptan", "phenelzine", "onc-15"},
  };
  for (const Pair& p : pairs) {
    CAPTURE(p.a);
    CAPTURE(p.b);
    auto ab = Rules(p.a, p.b), ba = Rules(p.b, p.a);
    CHECK(std::count(ab.begin(), ab.end(), p.rule) == 1);
    CHECK(std::count(ba.begin(), ba.end(), p.rule) == 1);
  }
  // Telithromycin was merged into the statin rule (paper DDI #26 → #25).
  CHECK(Rules("simvastatin", "telithromycin") == std::vector<std::string>{"onc-11"});
}

TEST_CASE("ONC list: a finding names both sides, the class, the rule and its citation") {
  auto f = OncHighPriority().Screen(Drug("phenelzine"), {Drug("sertraline", "rx-42")});
  REQUIRE(f.size() == 1);
  CHECK(f[0].rule_id == "onc-04");
  CHECK(f[0].severity == InteractionSeverity::kContraindicated);
  CHECK(f[0].ingredient == "phenelzine");
  CHECK(f[0].ingredient_class == "mao-inhibitors");
  CHECK(f[0].other_ingredient == "sertraline");
  CHECK(f[0].other_class == "ssris-serotonergic");
  CHECK(f[0].other_reference == "rx-42");
  CHECK(f[0].citation.find("doi:10.1136/amiajnl-2011-000612") != std::string::npos);
  CHECK(f[0].Describe().find("phenelzine (mao-inhibitors) with sertraline (ssris-serotonergic)") ==
        0);
}

TEST_CASE("ONC list: the pairs the panel rejected do not alert") {
  const std::pair<const char*, const char*> rejected[] = {
      {"abatacept", "adalimumab"},
      {"abatacept", "anakinra"},
      {"aurothioglucose", "artemether"},
      {"febuxostat", "theophylline"},
      {"gemfibrozil", "atorvastatin"},
      {"indinavir", "atazanavir"},
      {"linezolid", "sumatriptan"},
      {"linezolid", "pseudoephedrine"},
      {"metformin", "iohexol"},
      {"miglitol", "pancrelipase"},
      {"natalizumab", "cyclosporine"},
      {"nitroglycerin", "sildenafil"},
      {"pentostatin", "fludarabine"},
      {"sodium oxybate", "zolpidem"},
      {"tranylcypromine", "furazolidone"},
      // H2 blockers were removed from the atazanavir rule's precipitants.
      {"atazanavir", "famotidine"},
  };
  for (const auto& [a, b] : rejected) {
    CAPTURE(a);
    CAPTURE(b);
    CHECK(Rules(a, b).empty());
    CHECK(Rules(b, a).empty());
  }
}

TEST_CASE("ONC list: the QT rule never matches a drug with itself, the TCA rule cannot fire") {
  CHECK(Rules("nilotinib", "nilotinib").empty());
  const auto& inactive = OncHighPriority().inactive_rules();
  CHECK(std::find(inactive.begin(), inactive.end(), "onc-07") != inactive.end());
  CHECK(OncHighPriority().rule_count() == 15);
  CHECK(Rules("amitriptyline", "phenelzine").empty());  // unsourced members: left out
}

TEST_CASE("Screening: combinations, ingredients by RxCUI or salt name, one finding per pair") {
  const auto& kb = OncHighPriority();
  ScreenedDrug combo{"buprenorphine/naloxone", {{"buprenorphine", ""}, {"naloxone", ""}}, ""};
  ScreenedDrug mao{"phenelzine sulfate 15 MG", {{"Phenelzine Sulfate", ""}}, "rx-1"};
  CHECK(kb.Screen(combo, {mao}).empty());  // not in the narcotic-analgesics class as published
  ScreenedDrug two{"two", {{"sertraline", ""}, {"meperidine", ""}}, ""};
  auto f = kb.Screen(two, {mao, mao});
  CHECK(f.size() == 4);  // each ingredient, each of the two others
  CHECK(kb.Knows({"Tranylcypromine Sulfate", ""}));
  CHECK_FALSE(kb.Knows({"lisinopril", ""}));
}

TEST_CASE("Tables: a user's knowledge base loads through the same reader, errors name the line") {
  std::string rules =
      "rule_id\tobject_class\tprecipitant_class\tseverity\tsummary\tcitation\n"
      "r1\ta\tb\tpassive\tx\tmine\n";
  std::string members = "class\tingredient\trxcui\tsource\na\talpha\t\tme\nb\tbeta\t123\tme\n";
  auto kb = TableKnowledgeBase::Load(rules, members, "mine");
  RXFLOW_REQUIRE_OK(kb);
  auto f = (*kb)->Screen({"x", {{"other", "123"}}, ""}, {{"y", {{"alpha", ""}}, "rx"}});
  REQUIRE(f.size() == 1);  // "123" is beta's RxCUI
  CHECK(f[0].severity == InteractionSeverity::kPassive);
  CHECK((*kb)->name() == "mine");
  auto bad = [&](std::string r, std::string m) {
    auto s = TableKnowledgeBase::Load(r, m, "x");
    REQUIRE_FALSE(s.ok());
    return std::string(s.status().message());
  };
  CHECK(bad(rules + "r1\ta\tb\tpassive\tx\ty\n", members) ==
        "rules line 3, column rule_id: r1 appears twice");
  CHECK(bad(rules + "r2\ta\tb\tsevere\tx\ty\n", members).find("column severity") !=
        std::string::npos);
  CHECK(bad(rules, members + "a\talpha\t\tme\n") ==
        "class members line 4, alpha is listed twice in class a");
  CHECK(bad(rules, members + "a\tgamma\t12x\tme\n").find("column rxcui") != std::string::npos);
  CHECK(bad("rule_id\tseverity\n", members).find("no column \"object_class\"") !=
        std::string::npos);
  CHECK(bad(rules,
            "class\tingredient\trxcui\n"
            "a\tb\n") == "class members line 2: 2 columns, the header has 3");
}

TEST_CASE("IngredientsFor: the product's, else the words of the description the KB knows") {
  const auto& kb = OncHighPriority();
  bool from_text = true;
  DrugProduct p;
  p.ingredients = {{"sertraline", "36437", "50", "MG", ""}};
  auto i = IngredientsFor(&p, "ignored", kb, &from_text);
  REQUIRE(i.size() == 1);
  CHECK(i[0].rxcui == "36437");
  CHECK_FALSE(from_text);
  i = IngredientsFor(nullptr, "Sertraline HCl 50 mg tab + St John's wort", kb, &from_text);
  CHECK(from_text);
  REQUIRE(!i.empty());
  CHECK(i[0].name == "sertraline");
  CHECK(IngredientsFor(nullptr, "lisinopril 10 mg", kb, &from_text).empty());
  CHECK_FALSE(from_text);
}

}  // namespace
}  // namespace rxflow::clinical

namespace rxflow::clinical {
namespace {

TEST_CASE("ScreenDrugs resolves words and codes and screens each pair once, one JSON shape") {
  std::vector<ResolvedDrug> resolved;
  auto f = ScreenDrugs({"sertraline 50 mg", "312347", "lisinopril"}, &StarterDrugIndex(),
                       OncHighPriority(), &resolved);
  REQUIRE(resolved.size() == 3);
  CHECK(resolved[1].product->rxcui == "312347");
  REQUIRE(f.size() == 1);
  CHECK(f[0].ingredient == "sertraline");
  CHECK(f[0].other_reference == "312347");
  // Without a database, ingredients come from the words.
  auto words =
      ScreenDrugs({"phenelzine tabs", "Sertraline"}, nullptr, OncHighPriority(), &resolved);
  CHECK(words.size() == 1);
  CHECK(resolved[0].ingredients_from_text);
  InteractionFinding x = f[0];
  x.other_label = "a \"quoted\"\n\xff label";
  std::string json = InteractionFindingJson(x);
  CHECK(json.find(R"("rule_id":"onc-04")") != std::string::npos);
  CHECK(json.find(R"("other_drug":"a \"quoted\"\n)") != std::string::npos);
  CHECK(json.find("\xff") == std::string::npos);  // made valid UTF-8
}

}  // namespace
}  // namespace rxflow::clinical
