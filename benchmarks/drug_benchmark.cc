// SPDX-License-Identifier: Apache-2.0
// The drug database: lookup by code and free-text top-10 over a 100k-product index
// (issue 11's targets: ≤ 2 µs, ≤ 1 ms). The 100k products are made from the starter
// formulary's ingredients, forms and strengths with made-up brands and labelers, so that
// the vocabulary, posting-list lengths and combination products look like the FDA NDC
// Directory's (about 100k products); the starter formulary itself is measured too.
//
//   build/benchmarks/rxflow_drug_benchmarks --benchmark_min_time=0.5
#include <random>

#include <benchmark/benchmark.h>

#include "rxflow/clinical/drugs.h"

namespace {

using rxflow::clinical::DrugIndex;
using rxflow::clinical::DrugProduct;

std::vector<DrugProduct> Synthetic(size_t n) {
  auto starter = *rxflow::clinical::StarterFormulary();
  std::mt19937 rng(42);
  static const char* kForms[] = {
      "Oral Tablet",         "Oral Capsule",    "Extended Release Oral Tablet", "Oral Solution",
      "Injectable Solution", "Chewable Tablet", "Delayed Release Oral Capsule", "Topical Cream"};
  static const char* kSyllables[] = {"ra",  "vo",  "zen", "tor", "li",  "pra", "mex", "cor",
                                     "dal", "fin", "quo", "sta", "vex", "lum", "tri", "nol"};
  static const char* kStrengths[] = {"1",  "2.5", "5",   "10",  "20",  "25",  "40",  "50",
                                     "75", "100", "125", "150", "200", "250", "300", "500"};
  std::vector<DrugProduct> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    DrugProduct p = starter[i % starter.size()];
    p.rxcui = std::to_string(10000000 + i);
    p.ndcs = {};
    char ndc[12];
    std::snprintf(ndc, sizeof ndc, "%05zu%04zu%02zu", 10000 + i / 1000, i % 1000, i % 100);
    p.ndcs.push_back(ndc);
    std::string form = kForms[rng() % std::size(kForms)];
    std::string name;
    for (auto& ing : p.ingredients) {
      ing.strength = kStrengths[rng() % std::size(kStrengths)];
      name += (name.empty() ? "" : " / ") + ing.name + " " + ing.strength + " " + ing.unit;
    }
    p.dose_form = form;
    p.name = name + " " + form;
    if (rng() % 3 == 0) {
      std::string brand;
      for (int k = 0; k < 3; ++k) brand += kSyllables[rng() % std::size(kSyllables)];
      brand[0] = static_cast<char>(brand[0] - 'a' + 'A');
      p.brand = brand;
      p.term_type = "SBD";
      p.name += " [" + brand + "]";
    } else {
      p.brand.clear();
      p.term_type = "SCD";
    }
    out.push_back(std::move(p));
  }
  return out;
}

const DrugIndex& Big() {
  static auto index = DrugIndex::Build(Synthetic(100'000));
  return **index;
}

void BM_FindByNdc_100k(benchmark::State& state) {
  const DrugIndex& ix = Big();
  const std::string ndc = rxflow::clinical::FormatNdc11(ix.products()[54321].ndcs[0]);
  for (auto _ : state) benchmark::DoNotOptimize(ix.FindByNdc(ndc));
}
BENCHMARK(BM_FindByNdc_100k);

void BM_FindByRxcui_100k(benchmark::State& state) {
  const DrugIndex& ix = Big();
  for (auto _ : state) benchmark::DoNotOptimize(ix.FindByRxcui("10054321"));
}
BENCHMARK(BM_FindByRxcui_100k);

void BM_Search_100k(benchmark::State& state, const char* query) {
  const DrugIndex& ix = Big();
  size_t found = 0;
  for (auto _ : state) {
    auto m = ix.Search(query);
    found = m.size();
    benchmark::DoNotOptimize(m);
  }
  state.counters["results"] = static_cast<double>(found);
}
BENCHMARK_CAPTURE(BM_Search_100k, combination, "oxycodone/apap 5-325 tab")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Search_100k, brand_strength, "Lipitor 20mg")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Search_100k, misspelt, "atorvastatn 40 mg tablet")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Search_100k, common_words_only, "oral tablet")->Unit(benchmark::kMicrosecond);

void BM_Search_Starter(benchmark::State& state) {
  const DrugIndex& ix = rxflow::clinical::StarterDrugIndex();
  for (auto _ : state) benchmark::DoNotOptimize(ix.Search("oxycodone/apap 5-325 tab"));
}
BENCHMARK(BM_Search_Starter)->Unit(benchmark::kMicrosecond);

void BM_Build_100k(benchmark::State& state) {
  auto products = Synthetic(100'000);
  for (auto _ : state) benchmark::DoNotOptimize(DrugIndex::Build(products));
}
BENCHMARK(BM_Build_100k)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
