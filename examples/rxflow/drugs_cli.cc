// SPDX-License-Identifier: Apache-2.0
#include "drugs_cli.h"

#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "rxflow/clinical/drug_import.h"
#include "rxflow/clinical/interactions.h"
#include "rxflow/clinical/pdmp.h"
#include "rxflow/clinical/pmp.h"
#include "rxflow/http/pdmp.h"
#include "rxflow/internal/files.h"

#include "../server/app.h"

namespace rxflow::cli {

void AddDrugsCommands(CLI::App& app, DrugsCommand& c) {
  c.drugs = app.add_subcommand(
      "drugs", "the drug database: import public drug files, find products by code or text");
  c.drugs->require_subcommand(1);
  CLI::App* import = c.drugs->add_subcommand(
      "import",
      "load downloaded drug files into a drug store (one transaction per import; a "
      "new import of a source replaces the old)");
  import->require_subcommand(1);
  c.import_fda = import->add_subcommand(
      "fda-ndc", "the FDA NDC Directory: product.txt and package.txt (tab-separated, cp1252)");
  c.import_fda->add_option("product", c.product_txt, "product.txt")
      ->required()
      ->check(CLI::ExistingFile);
  c.import_fda->add_option("package", c.package_txt, "package.txt (its package NDCs)")
      ->check(CLI::ExistingFile);
  c.import_fda->add_option("--encoding", c.encoding, "cp1252 (as FDA publishes) or utf-8")
      ->check(CLI::IsMember({"cp1252", "utf-8"}));
  c.import_rxnorm = import->add_subcommand(
      "rxnorm",
      "RxNorm Current Prescribable Content: the rrf/ folder with RXNCONSO.RRF, "
      "RXNSAT.RRF and RXNREL.RRF");
  c.import_rxnorm->add_option("rrf_dir", c.rrf_dir, "the rrf/ folder")
      ->required()
      ->check(CLI::ExistingDirectory);
  for (CLI::App* sub : {c.import_fda, c.import_rxnorm}) {
    sub->add_option("--db", c.db,
                    "the drug store: an SQLite file (default ./rxflow-data/drugs.db) or a "
                    "postgresql:// URL");
    sub->add_flag("-q,--quiet", c.quiet, "no progress lines on stderr");
  }
  c.find = c.drugs->add_subcommand(
      "find",
      "products for an NDC (any layout), an RxCUI or free text, best first, with the "
      "score and why");
  c.find->add_option("query", c.query, "NDC, RxCUI or words (\"oxycodone/apap 5-325 tab\")")
      ->required();
  c.find
      ->add_option("--db", c.find_db,
                   "a drug store file (default: the starter formulary compiled in)")
      ->envname("DRUG_DB");
  c.find->add_option("--limit", c.limit, "most results (default 10)")->check(CLI::Range(1, 100));
  c.find->add_flag("--json", c.json, "one JSON array");
  c.ddi = app.add_subcommand(
      "ddi",
      "screen drugs against each other for interactions (ONC High-Priority list); each "
      "drug an NDC, an RxCUI or words, resolved through the drug database");
  c.ddi->add_option("drugs", c.ddi_drugs, "two or more drugs (quote multi-word ones)")
      ->required()
      ->expected(2, 50);
  c.ddi
      ->add_option("--db", c.find_db,
                   "a drug store file (default: the starter formulary compiled in)")
      ->envname("DRUG_DB");
  c.ddi->add_flag("--json", c.json, "one JSON object: the drugs as resolved and the findings");
  c.pmp = app.add_subcommand(
      "pmp", "prescription monitoring programs: ASAP dispensation reports, PDMP queries");
  c.pmp->require_subcommand(1);
  c.pmp_report = c.pmp->add_subcommand(
      "report", "the controlled-substance dispensings of one UTC day as an ASAP file (holds PHI)");
  c.pmp_report->add_option("--date", c.day, "the UTC day, YYYY-MM-DD")->required();
  c.pmp_report->add_option("--store", c.store_url,
                           "store URL: sqlite://PATH (default sqlite://./rxflow-data/rxflow.db) or "
                           "postgresql://user@host:port/db");
  c.pmp_report->add_option("--asap-version", c.asap_version, "4.2, 4.2A or 4.2B (default)")
      ->check(CLI::IsMember({"4.2", "4.2A", "4.2B"}));
  c.pmp_report->add_option("--out", c.out_file,
                           "write the file here (created 0600; default: standard output)");
  c.pmp_report->add_option("--zero-report", c.zero_report,
                           "NCPDPID[,NAME]: with no dispensing that day, a zero report for it");
  c.pmp_report->add_option("--control-number", c.control_number,
                           "TH02 (default: the day and a hash of its dispensings)");
  c.pmp_report->add_flag("--test", c.test_file, "a test file (TH07 T)");
  c.pmp_report
      ->add_option("--drugs", c.find_db,
                   "drug database for an NDC when the NewRx has only an RxCUI (default: "
                   "the starter formulary)")
      ->envname("DRUG_DB");
  c.pmp_simulator = c.pmp->add_subcommand(
      "simulator",
      "a loopback PDMP answering FHIR $pdmp-history from the ASAP files in a folder (each "
      "read once, before the next query)");
  c.pmp_simulator->add_option("--asap-dir", c.asap_dir, "the folder ASAP files are dropped in")
      ->required()
      ->check(CLI::ExistingDirectory);
  c.pmp_simulator->add_option("--port", c.port, "port (default: any free one, printed)");
  c.pmp_simulator->add_option("--host", c.host, "loopback address (default 127.0.0.1)");
  c.pmp_query = c.pmp->add_subcommand(
      "query", "ask a PDMP for a patient's controlled-substance history (FHIR $pdmp-history)");
  c.pmp_query->add_option("--pdmp", c.pdmp_url, "the PDMP's FHIR base URL")
      ->envname("PDMP_URL")
      ->required();
  c.pmp_query->add_option("--pdmp-ca", c.pdmp_ca, "PEM CAs an https PDMP must chain to")
      ->envname("PDMP_CA");
  c.pmp_query->add_option("--family", c.family, "the patient's family name")->required();
  c.pmp_query->add_option("--given", c.given, "the patient's first given name")->required();
  c.pmp_query->add_option("--birth-date", c.birth_date, "YYYY-MM-DD")->required();
  c.pmp_query->add_option("--gender", c.gender, "male, female, other or unknown");
  c.pmp_query->add_option("--zip", c.zip, "the patient's postal code");
  c.pmp_query->add_option("--state", c.state, "the patient's state (USPS code)");
  c.pmp_query->add_option("--requester-npi", c.requester_npi, "the asking prescriber's NPI");
  c.pmp_query->add_flag("--json", c.json, "the history as JSON");
  c.sources = c.drugs->add_subcommand("sources", "products per source in a drug store");
  c.sources->add_option("--db", c.db,
                        "the drug store: an SQLite file (default ./rxflow-data/drugs.db) or a "
                        "postgresql:// URL");
}

namespace {

int Import(const DrugsCommand& c) {
  auto store = app::OpenDrugStore(c.db, /*must_exist=*/false);
  if (!store.ok()) {
    std::cerr << "rxflow: " << store.status().message() << "\n";
    return 2;
  }
  const bool fda = c.import_fda->parsed();
  auto import = (*store)->BeginImport(fda ? "fda-ndc" : "rxnorm");
  if (!import.ok()) {
    std::cerr << "rxflow: " << import.status().message() << "\n";
    return 2;
  }
  clinical::ImportOptions options;
  options.fda_encoding = c.encoding;
  if (!c.quiet) {
    options.progress = [](const clinical::ImportProgress& p) {
      std::cerr << p.file << ": " << p.rows_read << " lines";
      if (p.bytes_total) std::cerr << " (" << (p.bytes_read * 100 / p.bytes_total) << "%)";
      std::cerr << "\n";
    };
  }
  auto sink = [&](clinical::DrugProduct&& p) { return (*import)->Put(std::move(p)); };
  auto summary = fda ? clinical::ImportFdaNdc(c.product_txt, c.package_txt, sink, options)
                     : clinical::ImportRxNormRrf(c.rrf_dir, sink, options);
  if (!summary.ok()) {
    std::cerr << "rxflow: import failed, the store is unchanged: " << summary.status().message()
              << "\n";
    return 2;
  }
  if (auto st = (*import)->Commit(); !st.ok()) {
    std::cerr << "rxflow: " << st.message() << "\n";
    return 2;
  }
  std::cout << summary->ToString();
  if (fda == false) {
    std::cout << "This product uses publicly available data from the National Library of "
                 "Medicine (NLM), National Institutes of Health, Department of Health and Human "
                 "Services; NLM is not responsible for the product and does not endorse or "
                 "recommend this or any other product.\n";
  }
  return 0;
}

nlohmann::json ProductJson(const clinical::DrugProduct& p) {
  nlohmann::json ingredients = nlohmann::json::array();
  for (const auto& i : p.ingredients) {
    ingredients.push_back({{"name", i.name},
                           {"rxcui", i.rxcui},
                           {"strength", i.strength},
                           {"unit", i.unit},
                           {"precise", i.precise}});
  }
  nlohmann::json ndcs = nlohmann::json::array();
  for (const auto& n : p.ndcs) ndcs.push_back(clinical::FormatNdc11(n));
  return {{"rxcui", p.rxcui},
          {"term_type", p.term_type},
          {"name", p.name},
          {"brand", p.brand},
          {"dose_form", p.dose_form},
          {"route", p.route},
          {"dea_schedule", std::string(clinical::ScheduleName(p.dea_schedule))},
          {"prescribable", p.prescribable},
          {"ingredients", ingredients},
          {"ndcs", ndcs},
          {"source", p.source}};
}

int Find(const DrugsCommand& c) {
  auto setup = app::OpenDrugDatabase(c.find_db);
  if (!setup.ok()) {
    std::cerr << "rxflow: " << setup.status().message() << "\n";
    return 2;
  }
  if (!setup->db) {
    std::cerr << "rxflow: no drug database to search (--db none)\n";
    return 2;
  }
  std::string text;
  for (const auto& q : c.query) text += (text.empty() ? "" : " ") + q;
  clinical::SearchOptions so;
  so.limit = c.limit;
  auto matches = setup->db->Search(text, so);
  if (c.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& m : matches) {
      nlohmann::json item;
      item["score"] = m.score;
      item["reasons"] = m.reasons;
      item["product"] = ProductJson(*m.product);
      out.push_back(std::move(item));
    }
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    for (const auto& m : matches) {
      const auto& p = *m.product;
      std::printf(
          "%.3f  %-8s %-4s %-4s %s\n", m.score, p.rxcui.empty() ? "-" : p.rxcui.c_str(),
          p.term_type.empty() ? "-" : p.term_type.c_str(),
          p.dea_schedule ? std::string(clinical::ScheduleName(p.dea_schedule)).c_str() : "-",
          p.name.c_str());
      std::string why;
      for (const auto& r : m.reasons) why += (why.empty() ? "" : "; ") + r;
      std::printf("       %s\n", why.c_str());
    }
    if (matches.empty()) std::cerr << "no product matches in the " << setup->name << "\n";
  }
  return matches.empty() ? 1 : 0;
}

int Sources(const DrugsCommand& c) {
  auto store = app::OpenDrugStore(c.db, /*must_exist=*/true);
  if (!store.ok()) {
    std::cerr << "rxflow: " << store.status().message() << "\n";
    return 2;
  }
  auto sources = (*store)->Sources();
  if (!sources.ok()) {
    std::cerr << "rxflow: " << sources.status().message() << "\n";
    return 2;
  }
  for (const auto& [name, n] : *sources) std::cout << name << "\t" << n << "\n";
  return 0;
}

}  // namespace

int RunDdi(const DrugsCommand& c) {
  auto setup = app::OpenDrugDatabase(c.find_db);
  if (!setup.ok()) {
    std::cerr << "rxflow: " << setup.status().message() << "\n";
    return 2;
  }
  const clinical::InteractionKnowledgeBase& kb = clinical::OncHighPriority();
  std::vector<clinical::ResolvedDrug> resolved;
  auto findings = clinical::ScreenDrugs(c.ddi_drugs, setup->db, kb, &resolved);
  if (c.json) {
    nlohmann::json drugs = nlohmann::json::array(), found = nlohmann::json::array();
    for (const auto& r : resolved) {
      nlohmann::json names = nlohmann::json::array();
      for (const auto& i : r.drug.ingredients) names.push_back(i.name);
      drugs.push_back({{"query", r.query},
                       {"product", r.product ? r.product->name : ""},
                       {"rxcui", r.product ? r.product->rxcui : ""},
                       {"ingredients", names},
                       {"ingredients_from_text", r.ingredients_from_text}});
    }
    for (const auto& f : findings)
      found.push_back(nlohmann::json::parse(clinical::InteractionFindingJson(f)));
    std::cout << nlohmann::json{{"knowledge_base", kb.name()},
                                {"drugs", drugs},
                                {"interactions", found}}
                     .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
    return findings.empty() ? 0 : 1;
  }
  for (const auto& r : resolved) {
    std::string list;
    for (const auto& i : r.drug.ingredients) list += (list.empty() ? "" : ", ") + i.name;
    std::cout << r.query << " → "
              << (r.product ? r.product->name
                            : "(not in the " + (setup->db ? setup->name : "drug database") + ")")
              << ": " << (list.empty() ? "no known ingredient" : list) << "\n";
  }
  for (const auto& f : findings) std::cout << "  " << f.Describe() << " [" << f.citation << "]\n";
  if (findings.empty()) {
    std::cout << "no interaction in the " << kb.name()
              << " (not exhaustive: no finding does not mean safe)\n";
  }
  return findings.empty() ? 0 : 1;
}

int RunPdmpSimulator(const DrugsCommand& c) {
  http::PdmpSimulatorOptions o;
  o.host = c.host;
  o.port = c.port;
  o.asap_dir = c.asap_dir;
  o.log = [](const std::string& line) { std::cerr << line << "\n"; };
  http::PdmpSimulatorServer server(o);
  if (Status s = server.Start(); !s.ok()) {
    std::cerr << "rxflow: " << s.message() << "\n";
    return 2;
  }
  std::cout << "PDMP " << server.base_url() << "  (a simulator: FHIR $pdmp-history, answered "
            << "from the ASAP files in " << c.asap_dir << ")\nCtrl-C stops it." << std::endl;
  app::WaitForStopSignal();
  server.Stop();
  return 0;
}

int RunPdmpQuery(const DrugsCommand& c) {
  http::FhirPdmpOptions o;
  o.base_url = c.pdmp_url;
  o.ca_file = c.pdmp_ca;
  if (const char* token = std::getenv("PDMP_TOKEN")) o.bearer_token = token;
  auto client = http::NewFhirPdmpClient(o);
  if (!client.ok()) {
    std::cerr << "rxflow: " << client.status().message() << "\n";
    return 2;
  }
  clinical::pdmp::Query q;
  q.patient = {c.family, c.given, c.birth_date, c.gender, c.zip, c.state};
  q.requester.npi = c.requester_npi;
  auto r = (*client)->History(q);
  if (!r.ok()) {
    std::cerr << "rxflow: " << r.status().message() << "\n";
    return 2;
  }
  if (c.json) {
    std::cout << nlohmann::json::parse(clinical::pdmp::ResultJson(*r, (*client)->name())).dump(2)
              << "\n";
  } else {
    std::cout << clinical::pdmp::OutcomeName(r->outcome) << ": " << r->dispenses.size()
              << " dispensing(s)\n";
    for (const auto& d : r->dispenses) {
      std::cout << d.date_filled << "  " << (d.ndc11.empty() ? d.rxcui : d.ndc11) << "  "
                << d.quantity << " " << d.quantity_unit << ", " << d.days_supply << " days  "
                << d.drug_name << "  @ "
                << (d.pharmacy_name.empty() ? d.pharmacy_ncpdp_id : d.pharmacy_name) << "\n";
    }
    for (const auto& m : r->messages) std::cout << "PDMP: " << m << "\n";
  }
  return r->outcome == clinical::pdmp::Outcome::kFound && !r->dispenses.empty() ? 0 : 1;
}

int RunPmp(const DrugsCommand& c) {
  if (c.pmp_simulator->parsed()) return RunPdmpSimulator(c);
  if (c.pmp_query->parsed()) return RunPdmpQuery(c);
  auto setup = app::OpenDrugDatabase(c.find_db);
  if (!setup.ok()) {
    std::cerr << "rxflow: " << setup.status().message() << "\n";
    return 2;
  }
  std::string db_path;
  std::string path = c.store_url.starts_with("sqlite://") ? c.store_url.substr(9) : "";
  std::error_code ec;
  if (!path.empty() && !std::filesystem::exists(path, ec)) {
    std::cerr << "rxflow: no store at " << path << "\n";
    return 2;
  }
  auto store = app::OpenStore(c.store_url, db_path);
  if (!store.ok()) {
    std::cerr << "rxflow: " << store.status().message() << "\n";
    return 2;
  }
  clinical::PmpReportOptions o;
  o.version = c.asap_version == "4.2"    ? clinical::asap::Version::k42
              : c.asap_version == "4.2A" ? clinical::asap::Version::k42A
                                         : clinical::asap::Version::k42B;
  o.control_number = c.control_number;
  o.file_type = c.test_file ? "T" : "P";
  o.drugs = setup->db;
  if (!c.zero_report.empty()) {
    size_t comma = c.zero_report.find(',');
    o.zero_report_pharmacy.ncpdp_id = c.zero_report.substr(0, comma);
    if (comma != std::string::npos) o.zero_report_pharmacy.name = c.zero_report.substr(comma + 1);
  }
  auto report = clinical::BuildPmpReport(**store, c.day, o);
  if (!report.ok()) {
    std::cerr << "rxflow: " << report.status().message() << "\n";
    return report.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  auto text = clinical::asap::Write(report->report);
  if (!text.ok()) {
    std::cerr << "rxflow: " << text.status().message() << "\n";
    return 1;
  }
  if (c.out_file.empty()) {
    std::cout << *text << "\n";
  } else if (auto st = internal::WritePrivateFile(c.out_file, *text); !st.ok()) {
    std::cerr << "rxflow: " << st.message() << "\n";
    return 2;
  }
  size_t n = 0;
  for (const auto& p : report->report.pharmacies) n += p.dispensings.size();
  std::cerr << "ASAP " << clinical::asap::VersionName(o.version) << " "
            << report->report.control_number << ": " << n << " dispensings, "
            << report->report.pharmacies.size() << " pharmacies" << (n == 0 ? " (zero report)" : "")
            << "\n";
  for (const auto& why : report->not_reported) std::cerr << "not reported: " << why << "\n";
  return report->not_reported.empty() ? 0 : 1;
}

int RunDrugs(const DrugsCommand& c) {
  if (c.find->parsed()) return Find(c);
  if (c.sources->parsed()) return Sources(c);
  return Import(c);
}

}  // namespace rxflow::cli
