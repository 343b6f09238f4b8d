// SPDX-License-Identifier: Apache-2.0
// The in-memory drug database: code lookup by hash, free text through an inverted index.
//
// Matching (docs/clinical.md §Matching): the query and every product are cut into words and
// numbers by the same tokenizer (lower case; letters and digits split, "20mg" → 20, mg;
// "5-325" → 5, 325), abbreviations read as what they stand for (apap, hcl, tab, er, ...).
// Each query word is resolved against the vocabulary exactly, else as a prefix, else within
// one or two edits; the rarest words give the candidates, every word scores them. A product
// scores by the share of the query's (IDF-weighted) words it has, the share of its own
// ingredients the query names, and how the query's numbers and its strengths agree.
#include "rxflow/clinical/drugs.h"

#include <algorithm>
#include <cmath>
#include <mutex>

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include "rxflow/clinical/drug_store.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/mapping/codes.h"

#include "common/text.h"

namespace rxflow::internal::embedded {
extern const std::string_view kformulary_tsv;
}  // namespace rxflow::internal::embedded

namespace rxflow::clinical {

using internal::Cat;

std::string_view ScheduleName(int schedule) {
  static constexpr std::string_view kNames[] = {"", "CI", "CII", "CIII", "CIV", "CV"};
  return schedule >= 0 && schedule <= 5 ? kNames[schedule] : std::string_view();
}

std::optional<int> ParseSchedule(std::string_view text) {
  text = internal::Trim(text);
  if (text.empty()) return 0;
  std::string t = internal::AsciiLower(text);
  if (t.size() > 2 && t[0] == 'c' && t[1] == '-') t.erase(1, 1);
  if (t.size() > 1 && t[0] == 'c') t.erase(0, 1);
  static constexpr std::string_view kRoman[] = {"i", "ii", "iii", "iv", "v"};
  for (int i = 0; i < 5; ++i) {
    if (t == kRoman[i] || (t.size() == 1 && t[0] == static_cast<char>('1' + i))) return i + 1;
  }
  return std::nullopt;
}

std::optional<std::string> NormalizeNdc(std::string_view ndc) {
  return mapping::NormalizeNdc(internal::Trim(ndc));
}

std::vector<std::string> NdcCandidates(std::string_view ndc) {
  ndc = internal::Trim(ndc);
  if (ndc.size() == 10 && internal::IsAllDigits(ndc)) {
    return {Cat("0", ndc),                               // 4-4-2
            Cat(ndc.substr(0, 5), "0", ndc.substr(5)),   // 5-3-2
            Cat(ndc.substr(0, 9), "0", ndc.substr(9))};  // 5-4-1
  }
  if (auto n = NormalizeNdc(ndc)) return {std::move(*n)};
  return {};
}

std::string FormatNdc11(std::string_view n) {
  if (n.size() != 11) return std::string(n);
  return Cat(n.substr(0, 5), "-", n.substr(5, 4), "-", n.substr(9));
}

namespace {

// ---------------------------------------------------------------------------------------
// Tokens.

struct Token {
  std::string text;  // a word (canonical form) or a number as written
  std::string as_written;
  bool number = false;
  double value = 0;
  std::string unit;  // for a number: the unit word that followed it ("mg"), if any
};

bool IsUnitWord(std::string_view w) {
  static const absl::flat_hash_set<std::string_view> kUnits = {
      "mg", "mcg",    "g",    "ml", "unt", "unit", "units", "meq", "hr",
      "h",  "actuat", "mmol", "iu", "l",   "kg",   "ug",    "pct"};
  return kUnits.contains(w);
}

// Abbreviations and plural forms → the word the index holds.
std::string_view Canonical(std::string_view w) {
  static const absl::flat_hash_map<std::string_view, std::string_view> kMap = {
      {"apap", "acetaminophen"},
      {"paracetamol", "acetaminophen"},
      {"asa", "aspirin"},
      {"hctz", "hydrochlorothiazide"},
      {"smx", "sulfamethoxazole"},
      {"tmp", "trimethoprim"},
      {"hcl", "hydrochloride"},
      {"tab", "tablet"},
      {"tabs", "tablet"},
      {"tablets", "tablet"},
      {"cap", "capsule"},
      {"caps", "capsule"},
      {"capsules", "capsule"},
      {"soln", "solution"},
      {"sol", "solution"},
      {"susp", "suspension"},
      {"inj", "injectable"},
      {"injection", "injectable"},
      {"er", "extended"},
      {"xr", "extended"},
      {"sr", "extended"},
      {"xl", "extended"},
      {"cr", "extended"},
      {"ext", "extended"},
      {"dr", "delayed"},
      {"ec", "delayed"},
      {"odt", "disintegrating"},
      {"sl", "sublingual"},
      {"po", "oral"},
      {"patch", "transdermal"},
      {"td", "transdermal"},
      {"inh", "inhaler"},
      {"inhalation", "inhaler"},
      {"mdi", "inhaler"},
      {"chew", "chewable"},
      {"liq", "solution"},
      {"syrup", "solution"},
      {"films", "film"},
      {"patches", "transdermal"},
  };
  auto it = kMap.find(w);
  return it == kMap.end() ? w : it->second;
}

bool IsStopWord(std::string_view w) {
  static const absl::flat_hash_set<std::string_view> kStop = {"of",  "and", "the", "with", "in",
                                                              "per", "for", "a",   "an",   "x"};
  return kStop.contains(w);
}

// Salt and ester words: a query may name them, and they help when it does, but they weigh
// little (a query that leaves them out is not asking for another drug).
bool IsSaltWord(std::string_view w) {
  static const absl::flat_hash_set<std::string_view> kSalts = {
      "hydrochloride", "sodium",     "potassium",    "calcium",  "magnesium",   "besylate",
      "maleate",       "tartrate",   "succinate",    "sulfate",  "citrate",     "phosphate",
      "acetate",       "bitartrate", "mesylate",     "fumarate", "hyclate",     "monohydrate",
      "trihydrate",    "dihydrate",  "hydrobromide", "bromide",  "cypionate",   "enanthate",
      "propionate",    "xinafoate",  "dipropionate", "furoate",  "hemihydrate", "anhydrous",
      "disodium",      "dimesylate", "valerate",     "lactate",  "nitrate",     "tromethamine",
      "aspartate",     "saccharate", "bisulfate",    "oxalate",  "pamoate",     "decanoate"};
  return kSalts.contains(w);
}

}  // namespace

std::string IngredientBase(std::string_view precise) {
  std::string out;
  size_t i = 0;
  std::string lower = internal::AsciiLower(internal::Trim(precise));
  std::vector<std::string_view> words;
  std::string_view rest = lower;
  while (!rest.empty()) {
    size_t sp = rest.find(' ');
    std::string_view w = rest.substr(0, sp);
    if (!w.empty()) words.push_back(w);
    if (sp == std::string_view::npos) break;
    rest.remove_prefix(sp + 1);
  }
  size_t keep = words.size();
  while (keep > 1 && IsSaltWord(words[keep - 1])) --keep;
  for (i = 0; i < keep; ++i) internal::Append(out, i ? " " : "", words[i]);
  return out;
}

namespace {

// Cuts text into tokens: runs of ASCII letters are words, runs of digits (with an inner
// '.') numbers; everything else separates. A unit word right after a number is that
// number's unit and no word of its own.
std::vector<Token> Tokenize(std::string_view text) {
  std::vector<Token> out;
  size_t i = 0, n = text.size();
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  auto letter = [&](char c) {
    c = lower(c);
    return c >= 'a' && c <= 'z';
  };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  while (i < n) {
    if (letter(text[i])) {
      size_t s = i;
      std::string w;
      while (i < n && letter(text[i])) w.push_back(lower(text[i++]));
      if (!out.empty() && out.back().number && out.back().unit.empty() && IsUnitWord(w)) {
        out.back().unit = w;
        continue;
      }
      if (IsUnitWord(w) || IsStopWord(w)) continue;
      Token t;
      t.as_written = std::string(text.substr(s, i - s));
      t.text = std::string(Canonical(w));
      out.push_back(std::move(t));
    } else if (digit(text[i]) || (text[i] == '.' && i + 1 < n && digit(text[i + 1]))) {
      size_t s = i;
      while (i < n && (digit(text[i]) || (text[i] == '.' && i + 1 < n && digit(text[i + 1])))) {
        ++i;
      }
      Token t;
      t.number = true;
      t.as_written = std::string(text.substr(s, i - s));
      t.text = t.as_written;
      auto v = internal::ParseDecimal(t.as_written[0] == '.' ? "0" + t.as_written : t.as_written);
      t.value = v ? *v : 0;
      out.push_back(std::move(t));
    } else {
      ++i;
    }
  }
  return out;
}

// Levenshtein distance, giving up (returning limit + 1) beyond `limit`.
int EditDistance(std::string_view a, std::string_view b, int limit) {
  int la = static_cast<int>(a.size()), lb = static_cast<int>(b.size());
  if (std::abs(la - lb) > limit) return limit + 1;
  std::array<int, 64> prev{}, cur{};
  if (lb >= 63) return limit + 1;
  for (int j = 0; j <= lb; ++j) prev[j] = j;
  for (int i = 1; i <= la; ++i) {
    cur[0] = i;
    int best = cur[0];
    for (int j = 1; j <= lb; ++j) {
      int sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      best = std::min(best, cur[j]);
    }
    if (best > limit) return limit + 1;
    std::swap(prev, cur);
  }
  return prev[lb];
}

// Where in a product a word was found; the strongest field wins when it is in several.
enum Field : uint8_t {
  kName = 0,
  kForm = 1,
  kSalt = 2,
  kGenericOf = 3,
  kIngredient = 4,
  kBrand = 5
};

constexpr double FieldFactor(Field f) {
  switch (f) {
    case kBrand:
    case kIngredient:
    case kName:
    case kSalt:
      return 1.0;
    case kForm:
      return 0.9;
    case kGenericOf:
      return 0.75;
  }
  return 1.0;
}

std::string_view FieldLabel(Field f) {
  switch (f) {
    case kBrand:
      return "brand";
    case kIngredient:
      return "ingredient";
    case kForm:
      return "dose form";
    case kSalt:
      return "salt";
    case kGenericOf:
      return "generic of brand";
    case kName:
      return "name";
  }
  return "name";
}

struct ProductTerm {
  uint32_t term;
  Field field;
  bool operator<(const ProductTerm& o) const { return term < o.term; }
};

struct ProductInfo {
  std::vector<ProductTerm> terms;  // sorted by term
  std::vector<double> strengths;
  // Term ids of each ingredient's words (base name), one list per ingredient.
  std::vector<std::vector<uint32_t>> ingredient_terms;
};

// One query word resolved against the vocabulary.
struct Resolved {
  struct Alt {
    uint32_t term;
    double quality;  // 1 exact, 0.85 prefix, 0.7 one edit, 0.6 two edits
  };
  std::vector<Alt> alts;
  double weight = 0;
  size_t postings = 0;  // total candidates this word would give
  bool salt = false;
};

}  // namespace

struct DrugIndex::Impl {
  std::vector<DrugProduct> products;
  absl::flat_hash_map<std::string, uint32_t> by_ndc;
  absl::flat_hash_map<std::string, uint32_t> by_rxcui;
  absl::flat_hash_map<std::string, uint32_t> term_id;
  std::vector<std::string> term_text;
  std::vector<std::vector<uint32_t>> postings;  // term → products, ascending
  std::vector<uint32_t> sorted_terms;           // term ids by text (prefix search)
  std::array<std::vector<uint32_t>, 26> by_first_letter;
  std::vector<ProductInfo> info;
  size_t shadowed = 0;

  uint32_t Intern(const std::string& w) {
    auto [it, inserted] = term_id.try_emplace(w, static_cast<uint32_t>(term_text.size()));
    if (inserted) {
      term_text.push_back(w);
      postings.emplace_back();
    }
    return it->second;
  }

  void AddWords(uint32_t product, std::string_view text, Field field,
                std::vector<uint32_t>* ids = nullptr) {
    for (const Token& t : Tokenize(text)) {
      if (t.number) continue;
      uint32_t id = Intern(t.text);
      Field f = field == kIngredient && IsSaltWord(t.text) ? kSalt : field;
      auto& terms = info[product].terms;
      auto it = std::find_if(terms.begin(), terms.end(),
                             [&](const ProductTerm& pt) { return pt.term == id; });
      if (it == terms.end()) {
        terms.push_back({id, f});
      } else if (f > it->field) {
        it->field = f;
      }
      if (ids) ids->push_back(id);
    }
  }

  void Finish() {
    for (uint32_t p = 0; p < info.size(); ++p) {
      std::sort(info[p].terms.begin(), info[p].terms.end());
      for (const ProductTerm& t : info[p].terms) postings[t.term].push_back(p);
    }
    sorted_terms.resize(term_text.size());
    for (uint32_t i = 0; i < sorted_terms.size(); ++i) sorted_terms[i] = i;
    std::sort(sorted_terms.begin(), sorted_terms.end(),
              [&](uint32_t a, uint32_t b) { return term_text[a] < term_text[b]; });
    for (uint32_t id : sorted_terms) {
      char c = term_text[id][0];
      if (c >= 'a' && c <= 'z') by_first_letter[c - 'a'].push_back(id);
    }
  }

  double Idf(uint32_t term) const {
    return std::log(1.0 + static_cast<double>(products.size()) /
                              static_cast<double>(std::max<size_t>(1, postings[term].size())));
  }

  Resolved Resolve(const std::string& word) const {
    Resolved r;
    r.salt = IsSaltWord(word);
    if (auto it = term_id.find(word); it != term_id.end()) {
      r.alts.push_back({it->second, 1.0});
    } else if (word.size() >= 3) {
      // Prefix: "atorv" → "atorvastatin".
      auto lo =
          std::lower_bound(sorted_terms.begin(), sorted_terms.end(), word,
                           [&](uint32_t id, const std::string& w) { return term_text[id] < w; });
      for (auto it = lo; it != sorted_terms.end() && r.alts.size() < 32; ++it) {
        const std::string& t = term_text[*it];
        if (t.compare(0, word.size(), word) != 0) break;
        r.alts.push_back({*it, 0.85});
      }
      // One or two edits (two for words of 8 letters or more), same first letter.
      if (r.alts.empty() && word.size() >= 4 && word[0] >= 'a' && word[0] <= 'z') {
        int limit = word.size() >= 8 ? 2 : 1;
        int best = limit + 1;
        for (uint32_t id : by_first_letter[word[0] - 'a']) {
          int d = EditDistance(word, term_text[id], limit);
          if (d > limit) continue;
          if (d < best) {
            best = d;
            r.alts.clear();
          }
          if (d == best && r.alts.size() < 8) r.alts.push_back({id, d == 1 ? 0.7 : 0.6});
        }
      }
    }
    double idf_max = std::log(1.0 + static_cast<double>(products.size()));
    if (r.alts.empty()) {
      r.weight = idf_max;  // an unknown word counts against every product alike
    } else {
      double w = 0;
      for (const auto& a : r.alts) {
        w = std::max(w, Idf(a.term));
        r.postings += postings[a.term].size();
      }
      r.weight = w;
    }
    if (r.salt) r.weight *= 0.25;
    return r;
  }
};

namespace {

struct Scored {
  uint32_t product;
  double score;
};

// How well one product answers the query; `reasons`, when given, says why.
double ScoreProduct(const DrugIndex::Impl& ix, uint32_t p, const std::vector<Token>& words,
                    const std::vector<Resolved>& resolved, const std::vector<Token>& numbers,
                    std::vector<std::string>* reasons) {
  const ProductInfo& info = ix.info[p];
  double total = 0, got = 0;
  // The product's terms some query word matched (a query has at most 12 words of at most 32
  // alternatives; a product has few terms).
  std::array<uint32_t, 64> matched_terms;
  size_t matched_count = 0;
  auto matched = [&](uint32_t t) {
    return std::find(matched_terms.begin(), matched_terms.begin() + matched_count, t) !=
           matched_terms.begin() + matched_count;
  };
  bool brand_matched = false;
  for (size_t w = 0; w < words.size(); ++w) {
    const Resolved& r = resolved[w];
    total += r.weight;
    double best = 0;
    const Resolved::Alt* best_alt = nullptr;
    Field best_field = kName;
    for (const auto& alt : r.alts) {
      auto it =
          std::lower_bound(info.terms.begin(), info.terms.end(), ProductTerm{alt.term, kName});
      if (it == info.terms.end() || it->term != alt.term) continue;
      double q = alt.quality * FieldFactor(it->field);
      if (matched_count < matched_terms.size() && !matched(alt.term)) {
        matched_terms[matched_count++] = alt.term;
      }
      // The brand, or a brand of this generic: the query named every ingredient.
      if (it->field == kBrand || it->field == kGenericOf) brand_matched = true;
      if (q > best) {
        best = q;
        best_alt = &alt;
        best_field = it->field;
      }
    }
    got += r.weight * best;
    if (!reasons) continue;
    if (best_alt) {
      const std::string& term = ix.term_text[best_alt->term];
      if (best_alt->quality < 1.0 || term != internal::AsciiLower(words[w].as_written)) {
        reasons->push_back(Cat("\"", words[w].as_written, "\" read as \"", term, "\""));
      }
      if (best_field == kBrand || best_field == kGenericOf) {
        reasons->push_back(
            Cat(FieldLabel(best_field), " \"",
                best_field == kBrand && !ix.products[p].brand.empty() ? ix.products[p].brand : term,
                "\""));
      } else {
        reasons->push_back(Cat(FieldLabel(best_field), " \"", term, "\""));
      }
    } else if (r.alts.empty()) {
      reasons->push_back(Cat("\"", words[w].as_written, "\" not found"));
    } else if (!r.salt) {
      reasons->push_back(Cat("\"", words[w].as_written, "\" not in this product"));
    }
  }
  double text = total > 0 ? got / total : 0;

  // Ingredients the query names (all of them when it names the brand).
  double cover = 1;
  if (!info.ingredient_terms.empty() && !brand_matched) {
    size_t covered = 0;
    for (const auto& ing : info.ingredient_terms) {
      for (uint32_t t : ing) {
        if (matched(t)) {
          ++covered;
          break;
        }
      }
    }
    cover = static_cast<double>(covered) / static_cast<double>(info.ingredient_terms.size());
    if (reasons && covered < info.ingredient_terms.size()) {
      reasons->push_back(Cat(info.ingredient_terms.size() - covered, " of ",
                             info.ingredient_terms.size(), " ingredients not named"));
    }
  }

  if (numbers.empty()) return 0.75 * text + 0.25 * cover;
  size_t q_hit = 0;
  uint64_t s_hit = 0;  // which of the product's (first 64) strengths the query has
  const size_t strengths = std::min<size_t>(info.strengths.size(), 64);
  const DrugProduct& prod = ix.products[p];
  for (const Token& n : numbers) {
    bool hit = false;
    for (size_t s = 0; s < strengths; ++s) {
      if (std::fabs(info.strengths[s] - n.value) < 1e-9) {
        s_hit |= uint64_t{1} << s;
        hit = true;
      }
    }
    if (hit) ++q_hit;
    if (reasons) {
      std::string unit;
      for (const auto& ing : prod.ingredients) {
        auto v = internal::ParseDecimal(ing.strength);
        if (v && std::fabs(*v - n.value) < 1e-9) unit = ing.unit;
      }
      reasons->push_back(hit ? Cat("strength ", n.as_written, unit.empty() ? "" : " ", unit)
                             : Cat("strength ", n.as_written, " not in product"));
    }
  }
  double strength = 0.5 * static_cast<double>(q_hit) / static_cast<double>(numbers.size());
  if (strengths > 0) {
    strength +=
        0.5 * static_cast<double>(__builtin_popcountll(s_hit)) / static_cast<double>(strengths);
  }
  return 0.6 * text + 0.15 * cover + 0.25 * strength;
}

bool Better(const DrugIndex::Impl& ix, const Scored& a, const Scored& b) {
  if (a.score != b.score) return a.score > b.score;
  const DrugProduct& pa = ix.products[a.product];
  const DrugProduct& pb = ix.products[b.product];
  if (pa.prescribable != pb.prescribable) return pa.prescribable;
  if (pa.name.size() != pb.name.size()) return pa.name.size() < pb.name.size();
  return a.product < b.product;
}

}  // namespace

DrugIndex::DrugIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DrugIndex::~DrugIndex() = default;

StatusOr<std::unique_ptr<DrugIndex>> DrugIndex::Build(std::vector<DrugProduct> products,
                                                      const DrugIndexOptions& options) {
  auto ix = std::make_unique<Impl>();
  ix->products = std::move(products);
  ix->info.resize(ix->products.size());
  if (ix->products.size() >= UINT32_MAX) return absl::InvalidArgumentError("too many products");
  // Brands by ingredient set, so that "Lipitor 20 mg" finds the generic too.
  absl::flat_hash_map<std::string, std::vector<std::string>> brands_of;
  auto ingredient_key = [](const DrugProduct& p) {
    std::vector<std::string> names;
    for (const auto& i : p.ingredients) names.push_back(internal::AsciiLower(i.name));
    std::sort(names.begin(), names.end());
    std::string key;
    for (const auto& n : names) internal::Append(key, n, "|");
    return key;
  };
  for (uint32_t p = 0; p < ix->products.size(); ++p) {
    const DrugProduct& d = ix->products[p];
    if (!d.rxcui.empty()) {
      auto [it, inserted] = ix->by_rxcui.try_emplace(d.rxcui, p);
      if (!inserted && options.first_code_wins) {
        ++ix->shadowed;
      } else if (!inserted) {
        return absl::InvalidArgumentError(Cat("RxCUI ", d.rxcui, " is on two products: \"",
                                              ix->products[it->second].name, "\" and \"", d.name,
                                              "\""));
      }
    }
    for (const std::string& ndc : d.ndcs) {
      if (ndc.size() != 11 || !internal::IsAllDigits(ndc)) {
        return absl::InvalidArgumentError(
            Cat("product \"", d.name, "\": NDC \"", ndc.substr(0, 20), "\" is not NDC-11"));
      }
      auto [it, inserted] = ix->by_ndc.try_emplace(ndc, p);
      if (!inserted && it->second != p && options.first_code_wins) {
        ++ix->shadowed;
      } else if (!inserted && it->second != p) {
        return absl::InvalidArgumentError(Cat("NDC ", FormatNdc11(ndc), " is on two products: \"",
                                              ix->products[it->second].name, "\" and \"", d.name,
                                              "\""));
      }
    }
    ProductInfo& info = ix->info[p];
    for (const DrugIngredient& ing : d.ingredients) {
      std::vector<uint32_t> ids;
      ix->AddWords(p, ing.name, kIngredient, &ids);
      // A salt named as the ingredient ("oxycodone hydrochloride") counts by its base word.
      ids.erase(std::remove_if(ids.begin(), ids.end(),
                               [&](uint32_t id) { return IsSaltWord(ix->term_text[id]); }),
                ids.end());
      if (!ids.empty()) info.ingredient_terms.push_back(std::move(ids));
      ix->AddWords(p, ing.precise, kIngredient);
      if (auto v = internal::ParseDecimal(ing.strength)) info.strengths.push_back(*v);
    }
    ix->AddWords(p, d.brand, kBrand);
    ix->AddWords(p, d.dose_form, kForm);
    ix->AddWords(p, d.route, kForm);
    ix->AddWords(p, d.name, kName);
    if (!d.brand.empty()) {
      auto& list = brands_of[ingredient_key(d)];
      std::string b = internal::AsciiLower(d.brand);
      if (list.size() < 16 && std::find(list.begin(), list.end(), b) == list.end()) {
        list.push_back(std::move(b));
      }
    }
  }
  for (uint32_t p = 0; p < ix->products.size(); ++p) {
    const DrugProduct& d = ix->products[p];
    if (!d.brand.empty() || d.ingredients.empty()) continue;
    auto it = brands_of.find(ingredient_key(d));
    if (it == brands_of.end()) continue;
    for (const std::string& b : it->second) ix->AddWords(p, b, kGenericOf);
  }
  ix->Finish();
  return std::unique_ptr<DrugIndex>(new DrugIndex(std::move(ix)));
}

const DrugProduct* DrugIndex::FindByNdc(std::string_view ndc) const {
  const DrugProduct* found = nullptr;
  for (const std::string& c : NdcCandidates(ndc)) {
    auto it = impl_->by_ndc.find(c);
    if (it == impl_->by_ndc.end()) continue;
    const DrugProduct* p = &impl_->products[it->second];
    if (found && found != p) return nullptr;  // a bare 10-digit NDC that could be either
    found = p;
  }
  return found;
}

const DrugProduct* DrugIndex::FindByRxcui(std::string_view rxcui) const {
  std::string_view key = internal::Trim(rxcui);
  auto it = impl_->by_rxcui.find(absl::string_view(key.data(), key.size()));
  return it == impl_->by_rxcui.end() ? nullptr : &impl_->products[it->second];
}

std::vector<DrugMatch> DrugIndex::Search(std::string_view text,
                                         const SearchOptions& options) const {
  std::vector<DrugMatch> out;
  const Impl& ix = *impl_;
  if (options.limit == 0) return out;
  text = text.substr(0, 512);  // bounded cost: a query is a name, not a document
  // A code typed into the search box.
  std::string_view trimmed = internal::Trim(text);
  if (!trimmed.empty() && trimmed.find(' ') == std::string_view::npos) {
    if (const DrugProduct* p = FindByNdc(trimmed)) {
      std::string ndc;
      for (const std::string& c : NdcCandidates(trimmed)) {
        if (ix.by_ndc.contains(c)) ndc = c;
      }
      out.push_back({p, 1.0, {Cat("NDC ", FormatNdc11(ndc))}});
      return out;
    }
    if (internal::IsAllDigits(trimmed) && trimmed.size() <= 8) {
      if (const DrugProduct* p = FindByRxcui(trimmed)) {
        out.push_back({p, 1.0, {Cat("RxCUI ", trimmed)}});
        return out;
      }
    }
  }
  std::vector<Token> tokens = Tokenize(text);
  std::vector<Token> words, numbers;
  for (Token& t : tokens) {
    if (t.number) {
      if (numbers.size() < 8) numbers.push_back(std::move(t));
    } else if (words.size() < 12) {
      words.push_back(std::move(t));
    }
  }
  if (words.empty()) return out;
  std::vector<Resolved> resolved;
  resolved.reserve(words.size());
  for (const Token& w : words) resolved.push_back(ix.Resolve(w.text));

  // Candidates from the rarest words (and every word rare enough); salts only as a last resort.
  std::vector<size_t> order(words.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (resolved[a].salt != resolved[b].salt) return !resolved[a].salt;
    return resolved[a].postings < resolved[b].postings;
  });
  const size_t rare = std::max<size_t>(2000, ix.products.size() / 50);
  // Bounded cost: a query of only common words ("oral tablet") scores at most this many.
  const size_t cap = 8000;
  std::vector<uint32_t> candidates;
  for (size_t k : order) {
    const Resolved& r = resolved[k];
    if (r.alts.empty()) continue;
    if (!candidates.empty() && r.postings > rare) break;
    for (const auto& alt : r.alts) {
      const auto& list = ix.postings[alt.term];
      size_t room = cap - std::min(cap, candidates.size());
      candidates.insert(candidates.end(), list.begin(),
                        list.begin() + static_cast<std::ptrdiff_t>(std::min(room, list.size())));
    }
    if (candidates.size() >= cap) break;
  }
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());

  std::vector<Scored> scored;
  scored.reserve(candidates.size());
  for (uint32_t p : candidates) {
    if (options.prescribable_only && !ix.products[p].prescribable) continue;
    double s = ScoreProduct(ix, p, words, resolved, numbers, nullptr);
    if (s >= options.min_score) scored.push_back({p, s});
  }
  size_t k = std::min(options.limit, scored.size());
  std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(k), scored.end(),
                    [&](const Scored& a, const Scored& b) { return Better(ix, a, b); });
  for (size_t i = 0; i < k; ++i) {
    DrugMatch m;
    m.product = &ix.products[scored[i].product];
    m.score = std::round(scored[i].score * 1000) / 1000;
    ScoreProduct(ix, scored[i].product, words, resolved, numbers, &m.reasons);
    out.push_back(std::move(m));
  }
  return out;
}

size_t DrugIndex::size() const { return impl_->products.size(); }
const std::vector<DrugProduct>& DrugIndex::products() const { return impl_->products; }
size_t DrugIndex::shadowed_codes() const { return impl_->shadowed; }

// ---------------------------------------------------------------------------------------
// The formulary TSV.

namespace {}  // namespace

StatusOr<std::vector<DrugProduct>> ParseFormularyTsv(std::string_view tsv,
                                                     std::string_view source) {
  static constexpr std::string_view kColumns[] = {
      "rxcui",    "tty",          "name",        "brand", "dose_form", "route",
      "schedule", "prescribable", "ingredients", "ndcs",  "source"};
  constexpr size_t kCount = std::size(kColumns);
  std::array<size_t, kCount> col{};
  col.fill(SIZE_MAX);
  size_t width = 0;
  bool header = false;
  std::vector<DrugProduct> out;
  size_t line_no = 0;
  for (std::string_view line : internal::SplitView(tsv, '\n')) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string_view> f = internal::SplitView(line, '\t');
    auto bad = [&](std::string_view column, absl::string_view why) {
      return absl::InvalidArgumentError(Cat(source, " line ", line_no,
                                            column.empty() ? "" : Cat(", column ", column), ": ",
                                            std::string(why)));
    };
    if (!header) {
      for (size_t i = 0; i < f.size(); ++i) {
        for (size_t c = 0; c < kCount; ++c) {
          if (f[i] == kColumns[c]) col[c] = i;
        }
      }
      for (size_t c = 0; c < kCount; ++c) {
        if (col[c] == SIZE_MAX && kColumns[c] != "source") {
          return bad("", Cat("the header has no column \"", kColumns[c], "\""));
        }
      }
      width = f.size();
      header = true;
      continue;
    }
    if (f.size() != width) {
      return bad("", Cat(f.size(), " columns, the header has ", width));
    }
    auto get = [&](size_t c) { return col[c] == SIZE_MAX ? std::string_view() : f[col[c]]; };
    DrugProduct p;
    p.rxcui = std::string(get(0));
    if (!p.rxcui.empty() && (!internal::IsAllDigits(p.rxcui) || p.rxcui.size() > 8)) {
      return bad("rxcui", Cat("not an RxCUI: \"", p.rxcui.substr(0, 20), "\""));
    }
    p.term_type = std::string(get(1));
    static constexpr std::string_view kTty[] = {"", "SCD", "SBD", "GPCK", "BPCK"};
    if (std::find(std::begin(kTty), std::end(kTty), p.term_type) == std::end(kTty)) {
      return bad("tty", Cat("term type \"", p.term_type.substr(0, 10),
                            "\" is none of SCD, SBD, GPCK, BPCK"));
    }
    p.name = std::string(get(2));
    if (p.name.empty()) return bad("name", "empty");
    p.brand = std::string(get(3));
    p.dose_form = std::string(get(4));
    p.route = std::string(get(5));
    auto schedule = ParseSchedule(get(6));
    if (!schedule) {
      return bad("schedule",
                 Cat("\"", get(6).substr(0, 10), "\" is no DEA schedule (CI..CV or empty)"));
    }
    p.dea_schedule = *schedule;
    std::string_view rx = get(7);
    if (rx != "Y" && rx != "N") return bad("prescribable", "Y or N");
    p.prescribable = rx == "Y";
    auto ingredients = DecodeIngredients(get(8));
    if (!ingredients.ok()) return bad("ingredients", ingredients.status().message());
    p.ingredients = std::move(*ingredients);
    if (!get(9).empty()) {
      for (std::string_view ndc : internal::SplitView(get(9), ' ')) {
        if (ndc.empty()) continue;
        auto n = NormalizeNdc(ndc);
        if (!n) return bad("ndcs", Cat("not an NDC: \"", ndc.substr(0, 20), "\""));
        p.ndcs.push_back(std::move(*n));
      }
    }
    p.source = std::string(source);
    out.push_back(std::move(p));
  }
  if (!header) return absl::InvalidArgumentError(Cat(source, ": no header line"));
  return out;
}

StatusOr<std::vector<DrugProduct>> StarterFormulary() {
  return ParseFormularyTsv(internal::embedded::kformulary_tsv, "starter");
}

const DrugIndex& StarterDrugIndex() {
  static const DrugIndex* index = [] {
    auto products = StarterFormulary();
    if (!products.ok()) std::abort();  // compiled in and tested: cannot fail
    auto built = DrugIndex::Build(std::move(*products));
    if (!built.ok()) std::abort();
    return built->release();
  }();
  return *index;
}

}  // namespace rxflow::clinical
