// rxflow: the command-line tool over the RxFlow SDK.
//
//   rxflow to-script FILE|-   FHIR (request envelope or Bundle) → SCRIPT NewRx/CancelRx XML
//   rxflow to-fhir FILE|-     SCRIPT XML → FHIR R5 Bundle JSON
//   rxflow check FILE|-       validate either kind (detected from the content)
//
// Issues go to stderr as `severity: path: message` (or an OperationOutcome with
// --issues json). Exit status: 0 success (warnings allowed), 1 invalid input, 2 usage
// or I/O error.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <CLI/CLI.hpp>

#include "rxflow/fhir/json.h"
#include "rxflow/idempotency.h"
#include "rxflow/transform.h"
#include "rxflow/version.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitInvalid = 1;
constexpr int kExitUsage = 2;

bool ReadInput(const std::string& name, std::string& out, std::string& error) {
  if (name == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    out = ss.str();
    return true;
  }
  std::ifstream in(name, std::ios::binary);
  if (!in) {
    error = "cannot open " + name;
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    error = "cannot read " + name;
    return false;
  }
  out = ss.str();
  return true;
}

void PrintIssues(const rxflow::IssueList& issues, const std::string& format, bool quiet) {
  if (format == "json") {
    rxflow::fhir::OperationOutcome oo = rxflow::fhir::ToOperationOutcome(issues);
    std::cerr << rxflow::fhir::WriteJson(rxflow::fhir::Resource{std::move(oo)});
    return;
  }
  for (const rxflow::Issue& i : issues) {
    if (quiet && i.severity == rxflow::Severity::kInformation) continue;
    std::cerr << i << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rxflow " RXFLOW_VERSION_STRING
               ": FHIR R5 prescriptions ⇄ NCPDP SCRIPT (2023011, 2017071)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", RXFLOW_VERSION_STRING);

  std::string input = "-";
  std::string script_version = "2023011";
  std::string issues_format = "text";
  std::string xsd_dir;
  std::string structure_file, rules_file;
  bool pretty = false, strict = false, verbose = false, no_structured_sig = false;
  std::string message_id, sent_time, relates_to;

  auto common = [&](CLI::App* sub) {
    sub->add_option("input", input, "input file, or - for standard input")->default_val("-");
    sub->add_option("--script-version", script_version, "SCRIPT version: 2023011 or 2017071")
        ->check(CLI::IsMember({"2023011", "2017071"}));
    sub->add_option("--issues", issues_format, "issue format on stderr: text or json")
        ->check(CLI::IsMember({"text", "json"}));
    sub->add_option("--xsd", xsd_dir,
                    "also validate SCRIPT against the XSD set in DIR (transport.xsd)");
    sub->add_option("--profile-structure", structure_file,
                    "load a SCRIPT structure table (see docs/mapping.md)");
    sub->add_option("--profile-rules", rules_file,
                    "load version rules applied to the structure table");
    sub->add_flag("--strict", strict, "unknown FHIR elements are errors, not warnings");
    sub->add_flag("--pretty", pretty, "indent the output");
    sub->add_flag("-v,--verbose", verbose, "also print information issues");
  };
  CLI::App* to_script = app.add_subcommand("to-script", "FHIR R5 JSON → NCPDP SCRIPT XML");
  common(to_script);
  to_script->add_option("--message-id", message_id, "Header/MessageID (default: random)");
  to_script->add_option("--sent-time", sent_time, "Header/SentTime (default: now, UTC)");
  to_script->add_option("--relates-to", relates_to, "for a CancelRx: the NewRx's MessageID");
  to_script->add_flag("--no-structured-sig", no_structured_sig, "send SigText only");
  CLI::App* to_fhir = app.add_subcommand("to-fhir", "NCPDP SCRIPT XML → FHIR R5 Bundle JSON");
  common(to_fhir);
  CLI::App* check = app.add_subcommand("check", "validate FHIR JSON or SCRIPT XML");
  common(check);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }

  rxflow::TransformOptions options;
  auto version = rxflow::script::ParseVersion(script_version);
  options.version = *version;
  options.parse.mode =
      strict ? rxflow::fhir::ParseMode::kStrict : rxflow::fhir::ParseMode::kLenient;
  options.pretty = pretty;
  options.xsd_dir = xsd_dir;
  options.newrx.message_id = message_id;
  options.newrx.sent_time = sent_time;
  options.newrx.structured_sig = !no_structured_sig;

  std::shared_ptr<const rxflow::script::Profile> loaded;
  if (!structure_file.empty() || !rules_file.empty()) {
    std::string structure, rules, error;
    // Rules alone apply to the built-in 2017071 structure table.
    if (structure_file.empty()) structure = rxflow::script::BuiltinStructureTable();
    if ((!structure_file.empty() && !ReadInput(structure_file, structure, error)) ||
        (!rules_file.empty() && !ReadInput(rules_file, rules, error))) {
      std::cerr << "rxflow: " << error << "\n";
      return kExitUsage;
    }
    auto p = rxflow::script::LoadProfile(structure, rules);
    if (!p.ok()) {
      std::cerr << "rxflow: " << p.status().message() << "\n";
      return kExitUsage;
    }
    loaded = *p;
    options.profile = loaded.get();
  }

  std::string text, error;
  if (!ReadInput(input, text, error)) {
    std::cerr << "rxflow: " << error << "\n";
    return kExitUsage;
  }

  rxflow::IssueList issues;
  rxflow::Status status;
  if (to_script->parsed()) {
    auto out = rxflow::ToScript(text, issues, options, relates_to);
    if (out.ok()) {
      std::cout << out->xml;
      if (!pretty) std::cout << "\n";
    }
    status = out.status();
  } else if (to_fhir->parsed()) {
    auto out = rxflow::ToFhirJson(text, issues, options);
    if (out.ok()) std::cout << *out;
    status = out.status();
  } else {
    status = rxflow::Check(text, issues, options);
    if (status.ok()) {
      std::cout << "ok: "
                << (rxflow::DetectInput(text) == rxflow::InputKind::kFhirJson ? "FHIR prescription"
                                                                              : "SCRIPT message")
                << " is valid (" << issues.error_count() << " errors, " << issues.warning_count()
                << " warnings)\n";
    }
  }
  PrintIssues(issues, issues_format, !verbose);
  if (!status.ok()) {
    if (issues.empty() || issues_format == "json")
      std::cerr << "rxflow: " << status.message() << "\n";
    return status.code() == absl::StatusCode::kNotFound ||
                   status.code() == absl::StatusCode::kUnimplemented
               ? kExitUsage
               : kExitInvalid;
  }
  return kExitOk;
}
