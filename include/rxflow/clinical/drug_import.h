// SPDX-License-Identifier: Apache-2.0
// File: rxflow/clinical/drug_import.h
//
// Importers for the public drug files a user downloads, streamed row by row into a sink (a
// drug store: rxflow/sqlite/drug_store.h, rxflow/postgres/drug_store.h, or the user's own):
//   - the FDA NDC Directory's product.txt and package.txt (tab-separated, cp1252, columns
//     found by their header names, so older files without the last columns read too);
//   - the RxNorm Current Prescribable Content RRF files (RXNCONSO, RXNSAT, RXNREL: pipe-
//     separated UTF-8, SAB=RXNORM atoms, suppressed rows skipped).
// A row that cannot be read is refused with its file and line and the import goes on;
// docs/clinical.md lists what each importer keeps, skips and refuses.
//
// Example:
//   auto summary = rxflow::clinical::ImportFdaNdc("product.txt", "package.txt",
//       [&](rxflow::clinical::DrugProduct&& p) { return store.Put(std::move(p)); });
//   std::cout << summary->ToString();
#ifndef RXFLOW_CLINICAL_DRUG_IMPORT_H_
#define RXFLOW_CLINICAL_DRUG_IMPORT_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "rxflow/clinical/drugs.h"
#include "rxflow/status.h"

namespace rxflow::clinical {

struct ImportRefusal {
  std::string file;   // file name, without directories
  uint64_t line = 0;  // 1-based; the header is line 1 of a product.txt
  std::string reason;
};

// What happened to each file's data rows: read = kept + skipped + refused.
struct ImportFileCounts {
  std::string file;
  uint64_t read = 0;
  // FDA: went into a product the sink accepted. RxNorm: read and used (a synonym row, an
  // attribute or a relation that matched no product is read, not refused).
  uint64_t kept = 0;
  // Left out by rule: excluded, suppressed, another source, an attribute or relation RxFlow
  // does not use, a package whose product was skipped or refused.
  uint64_t skipped = 0;
  // Could not be read, or its product was refused by the sink (each in `refusals`).
  uint64_t refused = 0;
};

struct ImportSummary {
  // One entry per file, in the order read.
  std::vector<ImportFileCounts> files;
  // Products the sink accepted.
  uint64_t products = 0;
  // Every refusal counted in `files`; the first `ImportOptions::max_refusals` are listed.
  uint64_t refused = 0;
  std::vector<ImportRefusal> refusals;
  // One line per file ("product.txt: read 15, kept 11, skipped 1, refused 3"), the product
  // count, then one line per listed refusal ("product.txt:14: PRODUCTNDC ...").
  std::string ToString() const;
};

struct ImportProgress {
  std::string file;
  uint64_t rows_read = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_total = 0;
};

struct ImportOptions {
  // Called every `progress_every` rows of each file and once at its end.
  std::function<void(const ImportProgress&)> progress;
  uint64_t progress_every = 10'000;
  size_t max_refusals = 1'000;
  // A line longer than this is refused (bounded memory whatever the file holds).
  size_t max_line_bytes = 1 << 16;
  // product.txt / package.txt encoding: FDA publishes cp1252; "utf-8" for a converted copy.
  std::string fda_encoding = "cp1252";
};

// Takes one product. OK: kept. InvalidArgument or AlreadyExists: the row is refused with the
// status's message and the import goes on. Any other error stops the import and is returned.
using ProductSink = std::function<Status(DrugProduct&&)>;

// FDA NDC Directory. `package_txt` may be empty (products then carry no package NDCs, and
// cannot be found by NDC). Products come out with source "fda-ndc", no RxCUI, the schedule
// of DEASCHEDULE, prescribable when PRODUCTTYPENAME is HUMAN PRESCRIPTION DRUG.
// NotFound/Unavailable when a file cannot be read; InvalidArgument when a header lacks a
// required column (named).
StatusOr<ImportSummary> ImportFdaNdc(const std::filesystem::path& product_txt,
                                     const std::filesystem::path& package_txt,
                                     const ProductSink& sink, const ImportOptions& options = {});

// RxNorm Current Prescribable Content: `rrf_dir` holds RXNCONSO.RRF, RXNSAT.RRF and RXNREL.RRF
// (the release's rrf/ folder). Products are the SCD, SBD, GPCK and BPCK concepts, with
// source "rxnorm", the prescribable name (PSN) as name when there is one, ingredients and
// strengths from their clinical drug components, NDCs from RXNSAT (SAB=RXNORM), the DEA
// schedule from RXNSAT's DCSA attribute.
StatusOr<ImportSummary> ImportRxNormRrf(const std::filesystem::path& rrf_dir,
                                        const ProductSink& sink, const ImportOptions& options = {});

// cp1252 bytes → UTF-8 (the five bytes cp1252 leaves undefined become U+FFFD).
std::string Cp1252ToUtf8(std::string_view bytes);

}  // namespace rxflow::clinical

#endif  // RXFLOW_CLINICAL_DRUG_IMPORT_H_
