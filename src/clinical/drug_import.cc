// SPDX-License-Identifier: Apache-2.0
// Streaming importers for the FDA NDC Directory and the RxNorm prescribable RRF files.
#include "rxflow/clinical/drug_import.h"

#include <algorithm>
#include <array>
#include <fstream>

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

#include "common/text.h"

namespace rxflow::clinical {

using internal::Cat;

std::string ImportSummary::ToString() const {
  std::string out;
  for (const auto& f : files) {
    internal::Append(out, f.file, ": read ", f.read, ", kept ", f.kept, ", skipped ", f.skipped,
                     ", refused ", f.refused, "\n");
  }
  internal::Append(out, "products: ", products, "\n");
  for (const auto& r : refusals) internal::Append(out, r.file, ":", r.line, ": ", r.reason, "\n");
  if (refusals.size() < refused) {
    internal::Append(out, "(", refused - refusals.size(), " more refusals not listed)\n");
  }
  return out;
}

std::string Cp1252ToUtf8(std::string_view bytes) {
  // 0x80..0x9F; 0 marks the five bytes cp1252 leaves undefined.
  static constexpr std::array<char16_t, 32> kHigh = {
      0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
      0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
      0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};
  std::string out;
  out.reserve(bytes.size());
  for (unsigned char c : bytes) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      continue;
    }
    char32_t cp = c < 0xA0 ? (kHigh[c - 0x80] ? kHigh[c - 0x80] : 0xFFFD) : c;
    if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    } else {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    }
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

namespace {

// Reads a file line by line in bounded memory: a line longer than the limit is returned
// cut, with `too_long` set, and the rest of it is skipped.
class LineReader {
 public:
  LineReader(const std::filesystem::path& path, size_t max_line)
      : in_(path, std::ios::binary), max_(max_line), name_(path.filename().string()) {
    std::error_code ec;
    total_ = std::filesystem::file_size(path, ec);
    if (ec) total_ = 0;
  }
  bool ok() const { return static_cast<bool>(in_); }
  const std::string& name() const { return name_; }
  uint64_t line_no() const { return line_no_; }
  uint64_t bytes_read() const { return bytes_; }
  uint64_t bytes_total() const { return total_; }

  bool Next(std::string& line, bool& too_long) {
    line.clear();
    too_long = false;
    if (eof_) return false;
    while (true) {
      if (pos_ == len_) {
        in_.read(buf_.data(), static_cast<std::streamsize>(buf_.size()));
        len_ = static_cast<size_t>(in_.gcount());
        pos_ = 0;
        if (len_ == 0) {
          eof_ = true;
          if (line.empty() && !too_long) return false;
          break;
        }
      }
      const char* start = buf_.data() + pos_;
      const void* nl = std::memchr(start, '\n', len_ - pos_);
      size_t n = nl ? static_cast<size_t>(static_cast<const char*>(nl) - start) : len_ - pos_;
      size_t room = max_ > line.size() ? max_ - line.size() : 0;
      if (n > room) too_long = true;
      line.append(start, std::min(n, room));
      pos_ += n;
      bytes_ += n;
      if (nl) {
        ++pos_;
        ++bytes_;
        break;
      }
    }
    ++line_no_;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return true;
  }

 private:
  std::ifstream in_;
  size_t max_;
  std::string name_;
  std::array<char, 1 << 16> buf_{};
  size_t pos_ = 0, len_ = 0;
  uint64_t line_no_ = 0, bytes_ = 0, total_ = 0;
  bool eof_ = false;
};

// "A; B" → {"A", "B"} (FDA joins multi-valued columns with "; ").
std::vector<std::string> SplitList(std::string_view s) {
  std::vector<std::string> out;
  if (internal::Trim(s).empty()) return out;
  for (std::string_view part : internal::SplitView(s, ';')) out.emplace_back(internal::Trim(part));
  return out;
}

// Counts and refusals for one import, with the progress callback.
class Tally {
 public:
  Tally(ImportSummary& summary, const ImportOptions& options)
      : summary_(summary), options_(options) {}
  // Starts counting a file; its counts are summary().files[index].
  size_t File(const std::string& name) {
    summary_.files.push_back({name, 0, 0, 0, 0});
    return summary_.files.size() - 1;
  }
  ImportFileCounts& counts(size_t file) { return summary_.files[file]; }
  void Refuse(size_t file, uint64_t line, std::string reason) {
    ++summary_.files[file].refused;
    ++summary_.refused;
    if (summary_.refusals.size() < options_.max_refusals) {
      summary_.refusals.push_back({summary_.files[file].file, line, std::move(reason)});
    }
  }
  void Skip(size_t file) { ++summary_.files[file].skipped; }
  void Read(size_t file, const LineReader& r) {
    uint64_t n = ++summary_.files[file].read;
    if (options_.progress && options_.progress_every && n % options_.progress_every == 0) {
      Progress(r);
    }
  }
  void Progress(const LineReader& r) {
    if (options_.progress) {
      options_.progress({r.name(), r.line_no(), r.bytes_read(), r.bytes_total()});
    }
  }
  // Hands a product to the sink. true: accepted; false: refused (counted against `file` at
  // `line`); an error stops the import.
  StatusOr<bool> Give(const ProductSink& sink, DrugProduct&& p, size_t file, uint64_t line) {
    Status s = sink(std::move(p));
    if (s.ok()) {
      ++summary_.products;
      return true;
    }
    if (absl::IsInvalidArgument(s) || absl::IsAlreadyExists(s)) {
      Refuse(file, line, std::string(s.message()));
      return false;
    }
    return s;
  }

 private:
  ImportSummary& summary_;
  const ImportOptions& options_;
};

// A tab-separated file whose columns are found by header name.
class Columns {
 public:
  Status ReadHeader(std::string_view header, const std::vector<std::string_view>& required,
                    const std::string& file) {
    auto names = internal::SplitView(header, '\t');
    for (size_t i = 0; i < names.size(); ++i) {
      std::string n(internal::Trim(names[i]));
      // A UTF-8 byte-order mark before the first name.
      if (i == 0 && n.starts_with("\xEF\xBB\xBF")) n.erase(0, 3);
      index_[n] = i;
    }
    width_ = names.size();
    for (std::string_view r : required) {
      if (!index_.contains(std::string(r))) {
        return absl::InvalidArgumentError(
            Cat(file, ": the header has no column ", r, " (columns are found by name)"));
      }
      need_ = std::max(need_, index_[std::string(r)] + 1);
    }
    return absl::OkStatus();
  }
  size_t width() const { return width_; }
  // Columns a row must reach: the last required one. Missing trailing optional columns read
  // as empty.
  size_t need() const { return need_; }
  std::string_view Get(const std::vector<std::string_view>& row, std::string_view name) const {
    auto it = index_.find(std::string(name));
    if (it == index_.end() || it->second >= row.size()) return {};
    return internal::Trim(row[it->second]);
  }

 private:
  absl::flat_hash_map<std::string, size_t> index_;
  size_t width_ = 0, need_ = 0;
};

// FDA's unit "mg/1" is per unit of the dose form: "MG"; "mg/5mL" → "MG/5ML".
std::string FdaUnit(std::string_view unit) {
  std::string u = internal::AsciiLower(unit);
  if (u.size() > 2 && u.compare(u.size() - 2, 2, "/1") == 0) u.resize(u.size() - 2);
  for (char& c : u) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return u;
}

std::string TitleCase(std::string_view s) {
  std::string out(s);
  bool start = true;
  for (char& c : out) {
    bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (letter) {
      if (start && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      if (!start && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    start = !letter && c != '\'';
  }
  return out;
}

// PRODUCTNDC: labeler-product, 4-4, 5-3 or 5-4 digits.
bool IsProductNdc(std::string_view s) {
  size_t dash = s.find('-');
  if (dash == std::string_view::npos) return false;
  std::string_view a = s.substr(0, dash), b = s.substr(dash + 1);
  if (!internal::IsAllDigits(a) || !internal::IsAllDigits(b)) return false;
  return (a.size() == 4 && b.size() == 4) || (a.size() == 5 && (b.size() == 3 || b.size() == 4));
}

struct PackageRow {
  std::string ndc11;
  uint64_t line = 0;
  bool used = false;
};

}  // namespace

StatusOr<ImportSummary> ImportFdaNdc(const std::filesystem::path& product_txt,
                                     const std::filesystem::path& package_txt,
                                     const ProductSink& sink, const ImportOptions& options) {
  ImportSummary summary;
  Tally tally(summary, options);
  const bool cp1252 = options.fda_encoding != "utf-8";
  // A "utf-8" file is checked: an invalid sequence becomes U+FFFD, never stored as is.
  auto decode = [&](const std::string& line) {
    if (cp1252) return Cp1252ToUtf8(line);
    std::string out = line;
    internal::MakeValidUtf8(out);
    return out;
  };
  std::string line;
  bool too_long = false;

  // package.txt first: PRODUCTID → its package NDCs.
  absl::flat_hash_map<std::string, std::vector<PackageRow>> packages;
  size_t pkg_file = SIZE_MAX;
  if (!package_txt.empty()) {
    LineReader in(package_txt, options.max_line_bytes);
    if (!in.ok()) return absl::NotFoundError(Cat("cannot read ", package_txt.string()));
    pkg_file = tally.File(in.name());
    Columns cols;
    if (!in.Next(line, too_long)) return absl::InvalidArgumentError(Cat(in.name(), ": empty file"));
    RXFLOW_RETURN_IF_ERROR(
        cols.ReadHeader(decode(line), {"PRODUCTID", "PRODUCTNDC", "NDCPACKAGECODE"}, in.name()));
    while (in.Next(line, too_long)) {
      if (line.empty()) continue;
      tally.Read(pkg_file, in);
      const uint64_t at = in.line_no();
      if (too_long) {
        tally.Refuse(pkg_file, at, Cat("line longer than ", options.max_line_bytes, " bytes"));
        continue;
      }
      std::string text = decode(line);
      auto row = internal::SplitView(text, '\t');
      if (row.size() < cols.need() || row.size() > cols.width()) {
        tally.Refuse(pkg_file, at, Cat(row.size(), " columns, the header has ", cols.width()));
        continue;
      }
      std::string_view code = cols.Get(row, "NDCPACKAGECODE");
      std::string_view product_ndc = cols.Get(row, "PRODUCTNDC");
      auto ndc = NormalizeNdc(code);
      if (!ndc || code.find('-') == std::string_view::npos) {
        tally.Refuse(pkg_file, at,
                     Cat("NDCPACKAGECODE \"", code.substr(0, 20),
                         "\" is not a package NDC (4-4-2, 5-3-2 or 5-4-1 digits)"));
        continue;
      }
      if (code.size() <= product_ndc.size() || code.substr(0, product_ndc.size()) != product_ndc ||
          code[product_ndc.size()] != '-') {
        tally.Refuse(pkg_file, at,
                     Cat("NDCPACKAGECODE \"", code, "\" does not extend PRODUCTNDC \"",
                         product_ndc.substr(0, 20), "\""));
        continue;
      }
      std::string_view flag = cols.Get(row, "NDC_EXCLUDE_FLAG");
      if (!flag.empty() && flag != "N") {
        tally.Skip(pkg_file);  // an excluded listing
        continue;
      }
      packages[std::string(cols.Get(row, "PRODUCTID"))].push_back({*ndc, at, false});
    }
    tally.Progress(in);
  }

  LineReader in(product_txt, options.max_line_bytes);
  if (!in.ok()) return absl::NotFoundError(Cat("cannot read ", product_txt.string()));
  const size_t file = tally.File(in.name());
  if (!in.Next(line, too_long)) return absl::InvalidArgumentError(Cat(in.name(), ": empty file"));
  Columns cols;
  RXFLOW_RETURN_IF_ERROR(
      cols.ReadHeader(decode(line),
                      {"PRODUCTID", "PRODUCTNDC", "PRODUCTTYPENAME", "PROPRIETARYNAME",
                       "NONPROPRIETARYNAME", "DOSAGEFORMNAME", "ROUTENAME", "SUBSTANCENAME",
                       "ACTIVE_NUMERATOR_STRENGTH", "ACTIVE_INGRED_UNIT", "DEASCHEDULE"},
                      in.name()));
  absl::flat_hash_set<std::string> seen_products;
  while (in.Next(line, too_long)) {
    if (line.empty()) continue;
    tally.Read(file, in);
    const uint64_t at = in.line_no();
    if (too_long) {
      tally.Refuse(file, at, Cat("line longer than ", options.max_line_bytes, " bytes"));
      continue;
    }
    std::string text = decode(line);
    auto row = internal::SplitView(text, '\t');
    std::string product_id(cols.Get(row, "PRODUCTID"));
    // The product's packages go with it: kept when it is, skipped when it is not.
    std::vector<PackageRow>* pkgs = nullptr;
    if (auto it = packages.find(product_id); it != packages.end()) pkgs = &it->second;
    auto settle_packages = [&](bool kept) {
      if (!pkgs) return;
      for (auto& p : *pkgs) {
        if (p.used) continue;
        p.used = true;
        if (kept) {
          ++tally.counts(pkg_file).kept;
        } else {
          tally.Skip(pkg_file);
        }
      }
    };
    auto refuse = [&](std::string why) {
      settle_packages(false);
      tally.Refuse(file, at, std::move(why));
    };
    if (row.size() < cols.need() || row.size() > cols.width()) {
      refuse(Cat(row.size(), " columns, the header has ", cols.width()));
      continue;
    }
    std::string_view product_ndc = cols.Get(row, "PRODUCTNDC");
    if (!IsProductNdc(product_ndc)) {
      refuse(Cat("PRODUCTNDC \"", product_ndc.substr(0, 20),
                 "\" is not labeler-product digits (4-4, 5-3 or 5-4)"));
      continue;
    }
    std::string_view flag = cols.Get(row, "NDC_EXCLUDE_FLAG");
    if (!flag.empty() && flag != "N") {
      settle_packages(false);
      tally.Skip(file);
      continue;
    }
    std::string_view dea = cols.Get(row, "DEASCHEDULE");
    auto schedule = ParseSchedule(dea);
    if (!schedule || (!dea.empty() && dea[0] != 'C')) {
      refuse(Cat("DEASCHEDULE \"", dea.substr(0, 10), "\" is none of CI, CII, CIII, CIV, CV"));
      continue;
    }
    auto names = SplitList(cols.Get(row, "SUBSTANCENAME"));
    auto strengths = SplitList(cols.Get(row, "ACTIVE_NUMERATOR_STRENGTH"));
    auto units = SplitList(cols.Get(row, "ACTIVE_INGRED_UNIT"));
    if (strengths.size() != names.size() || units.size() != names.size()) {
      refuse(Cat("SUBSTANCENAME has ", names.size(), " ingredients but ACTIVE_NUMERATOR_STRENGTH ",
                 strengths.size(), " and ACTIVE_INGRED_UNIT ", units.size()));
      continue;
    }
    DrugProduct p;
    std::string bad_strength;
    for (size_t i = 0; i < names.size(); ++i) {
      if (!internal::ParseDecimal(strengths[i])) bad_strength = strengths[i];
      DrugIngredient ing;
      ing.name = IngredientBase(names[i]);
      std::string precise = internal::AsciiLower(names[i]);
      if (precise != ing.name) ing.precise = std::move(precise);
      ing.strength = strengths[i];
      ing.unit = FdaUnit(units[i]);
      p.ingredients.push_back(std::move(ing));
    }
    if (!bad_strength.empty()) {
      refuse(Cat("ACTIVE_NUMERATOR_STRENGTH \"", bad_strength.substr(0, 20), "\" is no number"));
      continue;
    }
    if (!seen_products.insert(product_id).second) {
      tally.Refuse(file, at, Cat("PRODUCTID ", product_id.substr(0, 60), " appears twice"));
      continue;
    }
    std::string proprietary(cols.Get(row, "PROPRIETARYNAME"));
    std::string suffix(cols.Get(row, "PROPRIETARYNAMESUFFIX"));
    std::string generic(cols.Get(row, "NONPROPRIETARYNAME"));
    // A brand when the proprietary name is not just the generic name (ANDA generics repeat it).
    std::string generic_lower = internal::AsciiLower(generic);
    std::string proprietary_lower = internal::AsciiLower(proprietary);
    bool branded = !proprietary_lower.empty() && proprietary_lower != generic_lower &&
                   generic_lower.find(proprietary_lower) == std::string::npos;
    if (!suffix.empty()) internal::Append(proprietary, " ", suffix);
    if (branded) p.brand = proprietary;
    std::string strength_text;
    for (const auto& ing : p.ingredients) {
      internal::Append(strength_text, strength_text.empty() ? "" : " / ", ing.strength, " ",
                       ing.unit);
    }
    std::string form(cols.Get(row, "DOSAGEFORMNAME"));
    p.name = Cat(proprietary.empty() ? TitleCase(generic) : proprietary,
                 branded && !generic.empty() ? Cat(" (", generic_lower, ")") : "",
                 strength_text.empty() ? "" : " ", strength_text, form.empty() ? "" : " ",
                 internal::AsciiLower(form));
    p.dose_form = form;
    p.route = std::string(cols.Get(row, "ROUTENAME"));
    p.dea_schedule = *schedule;
    p.prescribable = cols.Get(row, "PRODUCTTYPENAME") == "HUMAN PRESCRIPTION DRUG";
    p.source = "fda-ndc";
    if (pkgs) {
      for (const auto& pkg : *pkgs) {
        if (std::find(p.ndcs.begin(), p.ndcs.end(), pkg.ndc11) == p.ndcs.end()) {
          p.ndcs.push_back(pkg.ndc11);
        }
      }
    }
    RXFLOW_ASSIGN_OR_RETURN(bool accepted, tally.Give(sink, std::move(p), file, at));
    if (accepted) ++tally.counts(file).kept;
    settle_packages(accepted);
  }
  tally.Progress(in);
  // Packages of no product in product.txt: refused, in file order.
  std::vector<const PackageRow*> orphans;
  for (const auto& [id, rows] : packages) {
    for (const auto& r : rows) {
      if (!r.used) orphans.push_back(&r);
    }
  }
  std::sort(orphans.begin(), orphans.end(),
            [](const PackageRow* a, const PackageRow* b) { return a->line < b->line; });
  for (const PackageRow* r : orphans) {
    tally.Refuse(pkg_file, r->line,
                 Cat("package ", FormatNdc11(r->ndc11), ": its PRODUCTID is not in ",
                     product_txt.filename().string()));
  }
  // Refusals in file order: package.txt's (read first), then product.txt's.
  const std::string package_name = pkg_file == SIZE_MAX ? "" : summary.files[pkg_file].file;
  auto file_rank = [&](const ImportRefusal& r) { return r.file == package_name ? 0 : 1; };
  std::stable_sort(summary.refusals.begin(), summary.refusals.end(),
                   [&](const ImportRefusal& a, const ImportRefusal& b) {
                     return file_rank(a) != file_rank(b) ? file_rank(a) < file_rank(b)
                                                         : a.line < b.line;
                   });
  return summary;
}

namespace {

// One RRF line: `fields` values and the trailing '|'. Empty when the count is wrong.
std::vector<std::string_view> RrfFields(std::string_view line, size_t fields) {
  auto parts = internal::SplitView(line, '|');
  if (parts.size() != fields + 1 || !parts.back().empty()) return {};
  parts.pop_back();
  return parts;
}

size_t RrfFieldCount(std::string_view line) {
  size_t n = static_cast<size_t>(std::count(line.begin(), line.end(), '|'));
  return !line.empty() && line.back() == '|' ? n : n + 1;
}

// "oxycodone hydrochloride 5 MG" → strength "5", unit "MG"; false when there is no number.
bool StrengthOf(std::string_view component, std::string& strength, std::string& unit) {
  auto words = internal::SplitView(component, ' ');
  for (size_t i = words.size(); i-- > 1;) {
    if (internal::ParseDecimal(words[i])) {
      strength = std::string(words[i]);
      unit.clear();
      for (size_t j = i + 1; j < words.size(); ++j) {
        internal::Append(unit, unit.empty() ? "" : " ", words[j]);
      }
      return true;
    }
  }
  return false;
}

// The route a dose form implies ("Oral Tablet" → ORAL), empty when it names none.
std::string RouteOfDoseForm(std::string_view form) {
  static constexpr std::pair<std::string_view, std::string_view> kRoutes[] = {
      {"Oral", "ORAL"},
      {"Sublingual", "SUBLINGUAL"},
      {"Buccal", "BUCCAL"},
      {"Transdermal", "TRANSDERMAL"},
      {"Topical", "TOPICAL"},
      {"Ophthalmic", "OPHTHALMIC"},
      {"Otic", "AURICULAR (OTIC)"},
      {"Nasal", "NASAL"},
      {"Rectal", "RECTAL"},
      {"Vaginal", "VAGINAL"},
      {"Chewable", "ORAL"},
      {"Inhal", "RESPIRATORY (INHALATION)"},
      {"Metered Dose Inhaler", "RESPIRATORY (INHALATION)"},
      {"Dry Powder Inhaler", "RESPIRATORY (INHALATION)"}};
  for (const auto& [prefix, route] : kRoutes) {
    if (form.substr(0, prefix.size()) == prefix) return std::string(route);
  }
  return {};
}

struct RxConcept {
  std::string tty;
  std::string str;
};

}  // namespace

StatusOr<ImportSummary> ImportRxNormRrf(const std::filesystem::path& rrf_dir,
                                        const ProductSink& sink, const ImportOptions& options) {
  ImportSummary summary;
  Tally tally(summary, options);
  std::string line;
  bool too_long = false;
  // Reads one RRF file: `row(fields, line)` returns "" (kept), "skip", or a refusal reason.
  auto read_file =
      [&](std::string_view name, size_t fields,
          const std::function<std::string(const std::vector<std::string_view>&)>& row) -> Status {
    std::filesystem::path path = rrf_dir / std::string(name);
    LineReader in(path, options.max_line_bytes);
    if (!in.ok()) return absl::NotFoundError(Cat("cannot read ", path.string()));
    size_t file = tally.File(in.name());
    while (in.Next(line, too_long)) {
      if (line.empty()) continue;
      tally.Read(file, in);
      if (too_long) {
        tally.Refuse(file, in.line_no(),
                     Cat("line longer than ", options.max_line_bytes, " bytes"));
        continue;
      }
      auto f = RrfFields(line, fields);
      if (f.empty()) {
        tally.Refuse(
            file, in.line_no(),
            Cat("expected ", fields, " fields ending in '|', found ", RrfFieldCount(line)));
        continue;
      }
      std::string verdict = row(f);
      if (verdict.empty()) {
        ++tally.counts(file).kept;
      } else if (verdict == "skip") {
        tally.Skip(file);
      } else {
        tally.Refuse(file, in.line_no(), std::move(verdict));
      }
    }
    tally.Progress(in);
    return absl::OkStatus();
  };

  // RXNCONSO:
  // RXCUI|LAT|TS|LUI|STT|SUI|ISPREF|RXAUI|SAUI|SCUI|SDUI|SAB|TTY|CODE|STR|SRL|SUPPRESS|CVF
  absl::flat_hash_map<std::string, RxConcept> concepts;  // SAB=RXNORM, one name per RXCUI+TTY kind
  absl::flat_hash_map<std::string, std::string> psn;
  std::vector<std::string> product_order;
  static constexpr std::string_view kProductTty[] = {"SCD", "SBD", "GPCK", "BPCK"};
  auto is_product = [](std::string_view tty) {
    return std::find(std::begin(kProductTty), std::end(kProductTty), tty) != std::end(kProductTty);
  };
  RXFLOW_RETURN_IF_ERROR(read_file("RXNCONSO.RRF", 18, [&](const auto& f) -> std::string {
    std::string_view rxcui = f[0], sab = f[11], tty = f[12], str = f[14], suppress = f[16];
    if (suppress != "N" || (sab != "RXNORM" && sab != "MTHSPL")) return "skip";
    if (!internal::IsAllDigits(rxcui) || rxcui.empty()) {
      return Cat("RXCUI \"", rxcui.substr(0, 20), "\" is not a number");
    }
    if (sab != "RXNORM") return "";  // MTHSPL atoms: the DCSA attributes name their RXCUI
    if (tty == "PSN") {
      psn[std::string(rxcui)] = std::string(str);
    } else if (is_product(tty) || tty == "IN" || tty == "PIN" || tty == "MIN" || tty == "BN" ||
               tty == "DF" || tty == "SCDC") {
      auto [it, inserted] =
          concepts.try_emplace(std::string(rxcui), RxConcept{std::string(tty), std::string(str)});
      if (inserted && is_product(tty)) product_order.emplace_back(rxcui);
    }
    return "";  // synonyms (SY, TMSY, ...) are read and not used
  }));

  // RXNSAT: RXCUI|LUI|SUI|RXAUI|STYPE|CODE|ATUI|SATUI|ATN|SAB|ATV|SUPPRESS|CVF
  absl::flat_hash_map<std::string, std::vector<std::string>> ndcs;
  absl::flat_hash_map<std::string, int> schedules;
  RXFLOW_RETURN_IF_ERROR(read_file("RXNSAT.RRF", 13, [&](const auto& f) -> std::string {
    std::string_view rxcui = f[0], atn = f[8], sab = f[9], atv = f[10], suppress = f[11];
    if (suppress != "N") return "skip";
    if (atn == "NDC") {
      if (sab != "RXNORM") return "skip";
      if (atv.size() != 11 || !internal::IsAllDigits(atv)) {
        return Cat("NDC \"", atv.substr(0, 20), "\" is not 11 digits");
      }
      auto& list = ndcs[std::string(rxcui)];
      if (std::find(list.begin(), list.end(), atv) == list.end()) list.emplace_back(atv);
      return "";
    }
    if (atn == "DCSA") {
      auto s = ParseSchedule(atv);
      if (!s || *s == 0 || atv[0] != 'C') {
        return Cat("DCSA \"", atv.substr(0, 10), "\" is none of CI, CII, CIII, CIV, CV");
      }
      // Several SPL products may map to one RXCUI: the strictest schedule wins.
      auto [it, inserted] = schedules.try_emplace(std::string(rxcui), *s);
      if (!inserted) it->second = std::min(it->second, *s);
      return "";
    }
    return "skip";
  }));

  // RXNREL: RXCUI1|RXAUI1|STYPE1|REL|RXCUI2|RXAUI2|STYPE2|RELA|RUI|SRUI|SAB|SL|RG|DIR|SUPPRESS|CVF
  // A row reads "RXCUI2 RELA RXCUI1"; each relation comes with its inverse, which gives the
  // same edge.
  absl::flat_hash_map<std::string, std::vector<std::string>> components;  // SCD → SCDCs
  absl::flat_hash_map<std::string, std::string> ingredient_of;            // SCDC → IN
  absl::flat_hash_map<std::string, std::string> precise_of;               // SCDC → PIN
  absl::flat_hash_map<std::string, std::string> form_of;                  // SCD/SBD → DF
  absl::flat_hash_map<std::string, std::string> generic_of;               // SBD → SCD
  absl::flat_hash_map<std::string, std::string> brand_of;                 // SBD → BN
  absl::flat_hash_map<std::string, std::string> base_of;                  // PIN → IN
  auto add_unique = [](std::vector<std::string>& v, std::string_view x) {
    if (std::find(v.begin(), v.end(), x) == v.end()) v.emplace_back(x);
  };
  auto tty_of = [&](std::string_view rxcui) -> std::string_view {
    auto it = concepts.find(absl::string_view(rxcui.data(), rxcui.size()));
    return it == concepts.end() ? std::string_view() : std::string_view(it->second.tty);
  };
  RXFLOW_RETURN_IF_ERROR(read_file("RXNREL.RRF", 16, [&](const auto& f) -> std::string {
    std::string_view a = f[0], b = f[4], rela = f[7], sab = f[10], suppress = f[14];
    if (suppress != "N" || sab != "RXNORM") return "skip";
    // (subject, object) of "subject RELA object" = (RXCUI2, RXCUI1), or swapped for an inverse.
    if (rela == "consists_of") {
      add_unique(components[std::string(b)], a);
    } else if (rela == "constitutes") {
      add_unique(components[std::string(a)], b);
    } else if (rela == "has_ingredient" || rela == "ingredient_of") {
      std::string_view whole = rela == "has_ingredient" ? b : a;
      std::string_view part = rela == "has_ingredient" ? a : b;
      if (tty_of(part) == "BN") {
        brand_of[std::string(whole)] = std::string(part);
      } else if (tty_of(whole) == "SCDC") {
        ingredient_of[std::string(whole)] = std::string(part);
      }
    } else if (rela == "has_precise_ingredient") {
      precise_of[std::string(b)] = std::string(a);
    } else if (rela == "precise_ingredient_of") {
      precise_of[std::string(a)] = std::string(b);
    } else if (rela == "has_dose_form") {
      form_of[std::string(b)] = std::string(a);
    } else if (rela == "dose_form_of") {
      form_of[std::string(a)] = std::string(b);
    } else if (rela == "form_of") {  // "PIN form_of IN": RXCUI1 = IN, RXCUI2 = PIN
      base_of[std::string(b)] = std::string(a);
    } else if (rela == "has_form") {
      base_of[std::string(a)] = std::string(b);
    } else if (rela == "tradename_of") {
      generic_of[std::string(b)] = std::string(a);
    } else if (rela == "has_tradename") {
      generic_of[std::string(a)] = std::string(b);
    } else {
      return "skip";
    }
    return "";
  }));

  auto name_of = [&](const std::string& rxcui) -> std::string {
    auto it = concepts.find(rxcui);
    return it == concepts.end() ? std::string() : it->second.str;
  };
  const size_t conso_file = 0;
  for (const std::string& rxcui : product_order) {
    const RxConcept& c = concepts[rxcui];
    DrugProduct p;
    p.rxcui = rxcui;
    p.term_type = c.tty;
    auto psn_it = psn.find(rxcui);
    p.name = psn_it != psn.end() ? psn_it->second : c.str;
    std::string generic = generic_of.contains(rxcui) ? generic_of[rxcui] : rxcui;
    if (auto it = brand_of.find(rxcui); it != brand_of.end()) p.brand = name_of(it->second);
    if (p.brand.empty() && !c.str.empty() && c.str.back() == ']') {
      size_t open = c.str.rfind('[');
      if (open != std::string::npos) p.brand = c.str.substr(open + 1, c.str.size() - open - 2);
    }
    std::string df = form_of.contains(rxcui) ? form_of[rxcui] : form_of[generic];
    p.dose_form = name_of(df);
    p.route = RouteOfDoseForm(p.dose_form);
    for (const std::string& scdc : components[generic]) {
      DrugIngredient ing;
      std::string pin = precise_of[scdc];
      std::string in = ingredient_of[scdc];
      if (in.empty() && !pin.empty()) in = base_of[pin];
      ing.name = name_of(in);
      ing.rxcui = in;
      if (!pin.empty()) ing.precise = name_of(pin);
      if (ing.name.empty()) ing.name = IngredientBase(name_of(scdc));
      StrengthOf(name_of(scdc), ing.strength, ing.unit);
      p.ingredients.push_back(std::move(ing));
    }
    std::sort(p.ingredients.begin(), p.ingredients.end(),
              [](const DrugIngredient& x, const DrugIngredient& y) { return x.name < y.name; });
    int schedule = 0;
    for (const std::string& id : {rxcui, generic}) {
      if (auto it = schedules.find(id); it != schedules.end()) {
        schedule = schedule == 0 ? it->second : std::min(schedule, it->second);
      }
    }
    p.dea_schedule = schedule;
    p.prescribable = true;
    p.ndcs = ndcs[rxcui];
    p.source = "rxnorm";
    // A product the sink refuses is counted against its concept's RXNCONSO row (line 0: the
    // concept, not one line, is refused).
    RXFLOW_ASSIGN_OR_RETURN(bool accepted, tally.Give(sink, std::move(p), conso_file, 0));
    if (!accepted) --tally.counts(conso_file).kept;
  }
  return summary;
}

}  // namespace rxflow::clinical
