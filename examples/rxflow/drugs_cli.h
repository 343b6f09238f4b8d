// SPDX-License-Identifier: Apache-2.0
// The `rxflow drugs` commands: import the FDA NDC Directory or RxNorm's prescribable RRF
// files into a drug store, find products by code or free text, list a store's sources; and
// `rxflow ddi`: screen drugs against each other for interactions.
#ifndef RXFLOW_EXAMPLES_RXFLOW_DRUGS_CLI_H_
#define RXFLOW_EXAMPLES_RXFLOW_DRUGS_CLI_H_

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace rxflow::cli {

struct DrugsCommand {
  CLI::App* drugs = nullptr;
  CLI::App* import_fda = nullptr;
  CLI::App* import_rxnorm = nullptr;
  CLI::App* find = nullptr;
  CLI::App* sources = nullptr;
  CLI::App* ddi = nullptr;
  std::vector<std::string> ddi_drugs;
  CLI::App* pmp = nullptr;
  CLI::App* pmp_report = nullptr;
  CLI::App* pmp_simulator = nullptr;
  CLI::App* pmp_query = nullptr;
  std::string asap_dir, pdmp_url, pdmp_ca, host = "127.0.0.1";
  int port = 0;
  std::string family, given, birth_date, gender, zip, state, requester_npi;
  std::string store_url = "sqlite://./rxflow-data/rxflow.db";
  std::string day, asap_version = "4.2B", out_file, zero_report, control_number;
  bool test_file = false;
  std::string db = "./rxflow-data/drugs.db";
  std::string product_txt, package_txt, rrf_dir, encoding = "cp1252";
  std::vector<std::string> query;
  std::string find_db;  // find: a drug store, or empty for the starter formulary
  size_t limit = 10;
  bool json = false;
  bool quiet = false;
};

// Adds `rxflow drugs ...` to `app`.
void AddDrugsCommands(CLI::App& app, DrugsCommand& c);
// Runs the parsed `drugs` subcommand: 0 ok, 1 nothing found (find), 2 usage or I/O error.
int RunDrugs(const DrugsCommand& c);
// Runs `rxflow ddi`: 0 no interaction, 1 interactions found, 2 usage or I/O error.
int RunDdi(const DrugsCommand& c);
// Runs `rxflow pmp report`: 0 written, 1 written but some dispensing could not be reported
// (named on stderr) or nothing could be, 2 usage, I/O or store error. `rxflow pmp
// simulator`: serves until SIGINT/SIGTERM (2 when it cannot start). `rxflow pmp query`: 0
// history found, 1 none or the PDMP's error, 2 usage or the PDMP unreachable.
int RunPmp(const DrugsCommand& c);

}  // namespace rxflow::cli

#endif  // RXFLOW_EXAMPLES_RXFLOW_DRUGS_CLI_H_
