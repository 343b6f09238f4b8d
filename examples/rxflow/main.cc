// SPDX-License-Identifier: Apache-2.0
// rxflow: the command-line tool over the RxFlow SDK.
//
//   rxflow to-script FILE|-   FHIR (request envelope or Bundle) → SCRIPT NewRx/CancelRx XML
//   rxflow to-fhir FILE|-     SCRIPT XML → FHIR R5 Bundle JSON
//   rxflow check FILE|-       validate either kind (detected from the content)
//   rxflow submit FILE|-      store a prescription in the event store (idempotent)
//   rxflow show ID / events ID / replay    read the store, rebuild the read model
//   rxflow sign ID --practitioner P    EPCS: review the signing bundle, sign with two factors
//   rxflow audit verify / report / log     the EPCS audit chain, a day's incident report, a
//                                          practitioner's controlled-substance log (CSV)
//   rxflow clients add / rotate / revoke / certificate / list    the API clients file:
//                                          clients, their keys and TLS certificates
//   rxflow drugs import fda-ndc|rxnorm / find / sources    the drug database
//   rxflow ddi DRUG DRUG...   screen drugs against each other for interactions
//   rxflow pmp report --date D    a day's controlled-substance dispensings as an ASAP file
//   rxflow pmp simulator|query    a loopback PDMP fed with ASAP files; a FHIR PDMP query
//   rxflow serve              every service in one process (API, relay, routing, simulator)
//
// Issues go to stderr as `severity: path: message` (or an OperationOutcome with
// --issues json). Exit status: 0 success (warnings allowed), 1 invalid input or unknown
// id, 2 usage, I/O or store error, 3 the EPCS audit chain is broken (audit verify, audit
// report).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "rxflow/auth/clients.h"
#include "rxflow/clock.h"
#include "rxflow/crypto/pq.h"
#include "rxflow/epcs/audit.h"
#include "rxflow/epcs/reports.h"
#include "rxflow/fhir/json.h"
#include "rxflow/idempotency.h"
#include "rxflow/service.h"
#include "rxflow/transform.h"
#include "rxflow/version.h"

#include "../server/app.h"
#include "drugs_cli.h"
#include "epcs_demo.h"
#include <sys/stat.h>

namespace {

constexpr int kExitOk = 0;
constexpr int kExitInvalid = 1;
constexpr int kExitUsage = 2;
// Distinct from kExitInvalid, so that a scheduled check can tell tampering from a typo.
constexpr int kExitAuditBroken = 3;

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

std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The SQLite file a store URL names when it does not exist (nullopt: it exists, or the URL is
// PostgreSQL's). The audit commands only read: opening a mistyped path would create an empty
// store, whose empty chain "verifies".
std::optional<std::string> MissingSqliteFile(const std::string& url) {
  if (url.starts_with("postgres://") || url.starts_with("postgresql://")) return std::nullopt;
  std::string path = url.starts_with("sqlite://") ? url.substr(9) : url;
  std::error_code ec;
  if (path.empty() || std::filesystem::exists(path, ec)) return std::nullopt;
  return path;
}

// The `audit` subcommands. `key_file` (PEM or DER public key) checks checkpoint signatures;
// `cosign_key_file` (a raw ML-DSA-65 public key) their post-quantum co-signatures.
struct AuditArgs {
  std::string store_url = "sqlite://./rxflow-data/rxflow.db";
  std::string key_file;
  std::string cosign_key_file;
  std::string day;           // report: YYYY-MM-DD
  std::string practitioner;  // log
  std::string from, to;      // log: YYYY-MM-DD, both inclusive; none: the previous month
  std::string order = "date";
};

// The `phi` subcommands: PHI at rest (docs/security.md), on the store and KEK the programs
// use (RXFLOW_PHI_KEK, RXFLOW_PHI_KEK_RETIRED).
struct PhiArgs {
  std::string store_url = "sqlite://./rxflow-data/rxflow.db";
  std::string prescription_id;
  std::string reason;
  std::string actor;
  CLI::App* status = nullptr;
  CLI::App* rewrap = nullptr;
  CLI::App* rotate = nullptr;
  CLI::App* erase = nullptr;
  CLI::App* reseal = nullptr;
};

int RunPhi(const PhiArgs& a) {
  auto fail = [](const auto& message) {
    std::cerr << "rxflow: " << message << "\n";
    return kExitUsage;
  };
  if (auto missing = MissingSqliteFile(a.store_url)) return fail("no store at " + *missing);
  std::string db_path;
  rxflow::app::PhiParts phi;
  auto config = rxflow::app::PhiConfigFromEnv();
  if (config.kek == "off") return fail("RXFLOW_PHI_KEK=off: PHI at rest is not encrypted");
  auto store = rxflow::app::OpenStore(a.store_url, db_path, config, &phi);
  if (!store.ok()) return fail(store.status().message());
  rxflow::phi::Vault& vault = *phi.vault;
  if (a.status->parsed()) {
    auto old = phi.raw->DataKeysNotWrappedBy(vault.current_kek_id(), "", 0, 1001);
    if (!old.ok()) return fail(old.status().message());
    std::cout << "key-encryption key: " << vault.current_kek_id() << "\n"
              << "data key versions under other keys: "
              << (old->size() > 1000 ? std::string("more than 1000") : std::to_string(old->size()))
              << (old->empty() ? "" : " (run `rxflow phi rewrap`)") << "\n";
    return kExitOk;
  }
  if (a.rewrap->parsed()) {
    auto report = vault.RewrapAll();
    if (!report.ok()) return fail(report.status().message());
    std::cout << "rewrapped " << report->rewrapped << " data key version(s) under "
              << vault.current_kek_id() << " (" << report->already_current
              << " moved by another job)\n";
    return kExitOk;
  }
  // (The raw log: only the key id is needed, so no value has to open for the command to work.)
  if (a.reseal->parsed()) {
    auto patient_key = rxflow::app::PatientKey(db_path);
    if (!patient_key.ok()) return fail(patient_key.status().message());
    auto report = rxflow::phi::ResealAll(*phi.raw, vault, *patient_key);
    if (!report.ok()) return fail(report.status().message());
    std::cout << "sealed " << report->sealed << " plain value(s), resealed " << report->resealed
              << " under their newest data key; " << report->erased << " erased, "
              << report->changed << " changed meanwhile\n";
    return kExitOk;
  }
  auto key_id = rxflow::phi::DataKeyIdOf(*phi.raw, a.prescription_id);
  if (!key_id.ok()) return fail(key_id.status().message());
  if (a.rotate->parsed()) {
    auto version = vault.RotateDataKey(*key_id);
    if (!version.ok()) return fail(version.status().message());
    std::cout << "data key " << *key_id << " is now at version " << *version << "\n";
    return kExitOk;
  }
  const std::string actor = a.actor.empty() ? "operator:cli" : a.actor;
  auto erased = rxflow::phi::ErasePatientOf(*phi.raw, vault, a.prescription_id, actor, a.reason);
  if (!erased.ok()) return fail(erased.status().message());
  std::cout << "erased data key " << erased->key_id << " (" << erased->versions_destroyed
            << " version(s) destroyed); recorded as event " << erased->event_id << "\n";
  return kExitOk;
}

int RunAudit(CLI::App* verify, CLI::App* report, const AuditArgs& a) {
  auto fail = [](const std::string& message) {
    std::cerr << "rxflow: " << message << "\n";
    return kExitUsage;
  };
  auto fail_status = [&](const rxflow::Status& s) { return fail(std::string(s.message())); };
  if (auto missing = MissingSqliteFile(a.store_url)) return fail("no store at " + *missing);
  std::string db_path;
  // The chain and the incident report name no patient: they read the log as stored (no KEK
  // needed). The practitioner log names patients: it reads through the store's KEK.
  const bool needs_phi = !verify->parsed() && !report->parsed();
  auto store = needs_phi ? rxflow::app::OpenStore(a.store_url, db_path)
                         : rxflow::app::OpenRawStore(a.store_url, db_path);
  if (!store.ok()) return fail_status(store.status());
  rxflow::epcs::IncidentPolicy policy;
  if (!a.key_file.empty()) {
    std::string text, error;
    if (!ReadInput(a.key_file, text, error)) return fail(error);
    auto der = rxflow::epcs::CheckpointPublicKeyDer(text);
    if (!der.ok()) return fail(a.key_file + ": " + std::string(der.status().message()));
    policy.checkpoint_public_key_der = *der;
  }
  std::string cosign_key;
  if (!a.cosign_key_file.empty()) {
    std::string error;
    if (!ReadInput(a.cosign_key_file, cosign_key, error)) return fail(error);
    if (cosign_key.size() != rxflow::pq::kMlDsa65PublicKeyBytes) {
      return fail(a.cosign_key_file + ": not a raw ML-DSA-65 public key (1952 bytes)");
    }
  }

  if (verify->parsed()) {
    auto v = rxflow::epcs::VerifyAuditTrail(**store, rxflow::epcs::kAuditStream,
                                            policy.checkpoint_public_key_der,
                                            policy.checkpoint_every, cosign_key);
    if (!v.ok()) return fail_status(v.status());
    if (!v->ok) {
      std::cout << "audit chain BROKEN: " << v->problem << "\n";
      return kExitAuditBroken;
    }
    std::cout << "audit chain OK: " << v->records << " records, " << v->checkpoints
              << " checkpoints" << (cosign_key.empty() ? "" : " (co-signatures checked)") << "\n";
    if (v->checkpoints > 0 && a.key_file.empty()) {
      std::cout << "checkpoint signatures were not checked: give --checkpoint-key\n";
    }
    return kExitOk;
  }

  if (report->parsed()) {
    auto start = rxflow::epcs::ParseUtcDay(a.day);
    if (!start.ok()) return fail_status(start.status());
    auto r = rxflow::epcs::DailyIncidentReport(**store, *start, policy);
    if (!r.ok()) return fail_status(r.status());
    std::cout << r->text;
    return r->chain_ok ? kExitOk : kExitAuditBroken;
  }

  // log: the previous calendar month unless a period is given; --to is the last day included.
  auto [from, to] = rxflow::epcs::PreviousCalendarMonth(rxflow::SystemClock().NowMicros());
  if (!a.from.empty()) {
    auto f = rxflow::epcs::ParseUtcDay(a.from);
    if (!f.ok()) return fail_status(f.status());
    auto t = rxflow::epcs::ParseUtcDay(a.to);
    if (!t.ok()) return fail_status(t.status());
    if (*t < *f) return fail("--to " + a.to + " is before --from " + a.from);
    from = *f;
    to = *t + rxflow::epcs::kMicrosPerDay;
  }
  auto log = rxflow::epcs::PractitionerLog(**store, a.practitioner, from, to);
  if (!log.ok()) return fail_status(log.status());
  rxflow::epcs::SortLog(*log, a.order == "patient" ? rxflow::epcs::LogOrder::kPatient
                              : a.order == "drug"  ? rxflow::epcs::LogOrder::kDrug
                                                   : rxflow::epcs::LogOrder::kDate);
  std::cout << rxflow::epcs::LogCsv(*log);
  return kExitOk;
}

// The `clients` subcommands, on the clients file of the API server (rxflow/auth/clients.h).
struct ClientsArgs {
  std::string file = "./rxflow-data/clients.json";
  std::string id;
  std::string role;
  std::string tenant;
  std::vector<std::string> ncpdp_ids;
  int64_t expires_days = 0;  // 0: the new key never expires
  int64_t overlap_days = 7;
  std::string key_id;
  std::vector<std::string> certificate_files;  // add, certificate: PEM files to bind
  std::string certificate;                     // revoke: a fingerprint to unbind
};

// The `clients` subcommands.
struct ClientsCommands {
  CLI::App* add = nullptr;
  CLI::App* rotate = nullptr;
  CLI::App* revoke = nullptr;
  CLI::App* certificate = nullptr;
};

constexpr int64_t kMicrosPerDay = 86'400'000'000;

// One line per client: "ID ROLE tenant=T ncpdp_ids=A,B key=K,expires=TIME[,expired] ...
// certificate=FINGERPRINT ...". Key ids and expiry only: never a key or its digest.
void ListClients(const rxflow::auth::ClientRegistry& registry, int64_t now) {
  for (const rxflow::auth::Client& c : registry.clients()) {
    std::string ncpdp_ids;
    for (const std::string& n : c.ncpdp_ids) ncpdp_ids += (ncpdp_ids.empty() ? "" : ",") + n;
    std::cout << c.id << " " << rxflow::auth::RoleName(c.role)
              << " tenant=" << (c.tenant.empty() ? "-" : c.tenant)
              << " ncpdp_ids=" << (ncpdp_ids.empty() ? "-" : ncpdp_ids);
    if (c.keys.empty()) std::cout << " keys=none";
    for (const rxflow::auth::ApiKey& k : c.keys) {
      std::cout << " key=" << k.id << ",expires="
                << (k.expires_at == 0 ? "never" : rxflow::FormatRfc3339(k.expires_at));
      if (k.expires_at != 0 && now >= k.expires_at) std::cout << ",expired";
    }
    for (const std::string& fp : c.certificates) std::cout << " certificate=" << fp;
    std::cout << "\n";
  }
}

// Binds the certificates of `a.certificate_files` to client `a.id` and saves the clients
// file; only then prints each fingerprint on stdout (a script capturing them never gets one
// that was not saved). 0, or the exit code after saying why on stderr (nothing saved).
int BindCertificates(rxflow::auth::ClientRegistry& registry, const ClientsArgs& a) {
  std::vector<std::pair<std::string, std::string>> bound;  // (file, fingerprint)
  for (const std::string& file : a.certificate_files) {
    std::string pem, error;
    if (!ReadInput(file, pem, error)) {
      std::cerr << "rxflow: " << error << "\n";
      return kExitUsage;
    }
    auto fingerprint = rxflow::auth::CertificateFingerprint(pem);
    rxflow::Status st =
        fingerprint.ok() ? registry.AddCertificate(a.id, *fingerprint) : fingerprint.status();
    if (!st.ok()) {
      std::cerr << "rxflow: " << file << ": " << st.message() << "\n";
      return kExitUsage;
    }
    bound.emplace_back(file, *fingerprint);
  }
  if (rxflow::Status st = registry.SaveFile(a.file); !st.ok()) {
    std::cerr << "rxflow: " << st.message() << "\n";
    return kExitUsage;
  }
  for (const auto& [file, fingerprint] : bound) {
    std::cout << fingerprint << "\n";
    std::cerr << "certificate " << file << " bound to " << a.id << "\n";
  }
  return kExitOk;
}

int RunClients(const ClientsCommands& cmd, const ClientsArgs& a) {
  CLI::App* add = cmd.add;
  auto fail = [](const std::string& message) {
    std::cerr << "rxflow: " << message << "\n";
    return kExitUsage;
  };
  auto fail_status = [&](const rxflow::Status& s) { return fail(std::string(s.message())); };
  const int64_t now = rxflow::SystemClock().NowMicros();
  const int64_t expires = a.expires_days > 0 ? now + a.expires_days * kMicrosPerDay : 0;
  rxflow::auth::ClientRegistry registry;
  auto loaded = rxflow::auth::ClientRegistry::LoadFile(a.file);
  if (loaded.ok()) {
    registry = std::move(*loaded);
  } else if (!add->parsed() || loaded.status().code() != absl::StatusCode::kNotFound) {
    return fail_status(loaded.status());  // only `add` starts a new file
  }
  // The key on stdout, alone (for a script to capture); what it is on stderr.
  auto print_key = [&](const rxflow::auth::GeneratedKey& g) {
    std::cout << g.key << "\n" << std::flush;
    std::cerr << "key " << g.record.id << " for " << a.id << ": shown once, store it now\n";
  };

  if (add->parsed()) {
    auto role = rxflow::auth::ParseRole(a.role);
    if (!role.ok()) return fail_status(role.status());
    rxflow::Status st = registry.Add(rxflow::auth::Client{.id = a.id,
                                                          .role = *role,
                                                          .tenant = a.tenant,
                                                          .ncpdp_ids = a.ncpdp_ids,
                                                          .keys = {},
                                                          .certificates = {}});
    if (!st.ok()) return fail_status(st);
    // A client that authenticates by its certificate gets no key (rotate makes one).
    if (!a.certificate_files.empty()) return BindCertificates(registry, a);
    auto key = registry.AddKey(a.id, now, expires);
    if (!key.ok()) return fail_status(key.status());
    if (st = registry.SaveFile(a.file); !st.ok()) return fail_status(st);
    print_key(*key);
    return kExitOk;
  }
  if (cmd.certificate->parsed()) return BindCertificates(registry, a);
  if (cmd.rotate->parsed()) {
    auto key = registry.Rotate(a.id, now, a.overlap_days * kMicrosPerDay, expires);
    if (!key.ok()) return fail_status(key.status());
    if (rxflow::Status st = registry.SaveFile(a.file); !st.ok()) return fail_status(st);
    print_key(*key);
    std::cerr << "the other keys of " << a.id << " stop working at "
              << rxflow::FormatRfc3339(now + a.overlap_days * kMicrosPerDay) << " at the latest\n";
    return kExitOk;
  }
  if (cmd.revoke->parsed()) {
    if (!a.certificate.empty()) {
      if (!a.key_id.empty()) return fail("revoke takes --key-id or --certificate, not both");
      rxflow::Status st = registry.RemoveCertificate(a.id, a.certificate);
      if (st.ok()) st = registry.SaveFile(a.file);
      if (!st.ok()) return fail_status(st);
      std::cout << "unbound certificate " << a.certificate << " from " << a.id << "\n";
      return kExitOk;
    }
    if (rxflow::Status st = registry.Revoke(a.id, a.key_id); !st.ok()) return fail_status(st);
    if (rxflow::Status st = registry.SaveFile(a.file); !st.ok()) return fail_status(st);
    if (a.key_id.empty()) {
      std::cout << "revoked client " << a.id << " and its keys\n";
    } else {
      std::cout << "revoked key " << a.key_id << " of " << a.id << "\n";
    }
    return kExitOk;
  }
  ListClients(registry, now);
  return kExitOk;
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

// `rxflow sign`: prints the signing bundle (the Part 1306 fields and the attestation, T-4.5),
// reads the two factors and signs. The keys are those of `rxflow serve`'s demo token beside
// the SQLite store (examples/server/epcs_demo.h).
int Sign(rxflow::store::Store& store, rxflow::PrescriptionService& service,
         const std::string& db_path, const std::string& id, const std::string& practitioner,
         std::string dea_number, std::string otp) {
  if (db_path.empty()) {
    std::cerr << "rxflow: sign works on the SQLite store of rxflow serve's EPCS demo\n";
    return kExitUsage;
  }
  auto demo = rxflow::app::SetUpEpcsDemo(std::filesystem::path(db_path).parent_path().string(),
                                         store, service, "rxflow sign");
  if (!demo.ok()) {
    std::cerr << "rxflow: EPCS: " << demo.status().message() << "\n";
    return kExitUsage;
  }
  rxflow::epcs::Ceremony& ceremony = *(*demo)->ceremony;
  auto bundle = ceremony.Bundle(id, practitioner);
  if (!bundle.ok()) {
    std::cerr << "rxflow: " << bundle.status().message() << "\n";
    return kExitInvalid;
  }
  std::cout << "Prescription " << id << " (" << bundle->state << ")\n";
  for (const auto& f : bundle->fields) std::cout << "  " << f.name << ": " << f.value << "\n";
  std::cout << "\n" << bundle->attestation << "\n\n";
  if (dea_number.empty()) {
    if (bundle->dea_numbers.size() != 1) {
      std::cerr << "rxflow: select the DEA registration with --dea-number ("
                << bundle->dea_numbers.size() << " cover this schedule)\n";
      return kExitUsage;
    }
    dea_number = bundle->dea_numbers.front();
  }
  std::string password;
  if (const char* env = std::getenv("RXFLOW_EPCS_PASSWORD"); env != nullptr && *env != '\0') {
    password = env;
  } else {
    std::cerr << "password: " << std::flush;
    std::getline(std::cin, password);
  }
  if (otp.empty()) {
    std::cerr << "authenticator code: " << std::flush;
    std::getline(std::cin, otp);
  }
  rxflow::RequestContext ctx;
  ctx.actor = "cli:" + practitioner;
  rxflow::Status st = ceremony.MarkReady(id, practitioner, dea_number, bundle->sha256, ctx);
  if (st.ok()) st = ceremony.Sign(id, practitioner, bundle->sha256, {password, otp}, ctx);
  std::fill(password.begin(), password.end(), '\0');
  if (!st.ok()) {
    std::cerr << "rxflow: not signed: " << st.message() << "\n";
    return kExitInvalid;
  }
  auto summary = service.Get(id);
  std::cout << (summary.ok() ? rxflow::EncodeSummary(*summary) : id) << "\n";
  return kExitOk;
}

namespace {

// The options of the commands that read FHIR or SCRIPT (to-script, to-fhir, check, and
// submit's transform).
struct TransformArgs {
  std::string input = "-";
  std::string script_version = "2023011";
  std::string issues_format = "text";
  std::string xsd_dir;
  std::string structure_file, rules_file;
  bool pretty = false, strict = false, verbose = false, no_structured_sig = false, lenient = false,
       transliterate = false;
  std::string message_id, sent_time, relates_to, to, to_qualifier, from, from_qualifier;
  std::string drugs_spec;
  std::string charset;
  CLI::App* to_script = nullptr;
  CLI::App* to_fhir = nullptr;
  CLI::App* check = nullptr;
};

// The commands on a store: submit, show, events, replay, sign.
struct StoreArgs {
  std::string store_url = "sqlite://./rxflow-data/rxflow.db";
  std::string prescription_id, client_key;
  std::string practitioner, dea_number, otp;  // sign
  CLI::App* submit = nullptr;
  CLI::App* show = nullptr;
  CLI::App* events = nullptr;
  CLI::App* replay = nullptr;
  CLI::App* sign = nullptr;
  bool parsed() const {
    return submit->parsed() || show->parsed() || events->parsed() || replay->parsed() ||
           sign->parsed();
  }
};

// The options every transform command has.
void AddTransformOptions(CLI::App* sub, TransformArgs& a) {
  sub->add_option("input", a.input, "input file, or - for standard input")->default_val("-");
  sub->add_option("--script-version", a.script_version,
                  "SCRIPT version to write, and to read whatever the message says "
                  "(default: write 2023011; read the message's own version)")
      ->check(CLI::IsMember({"2023011", "2017071"}));
  sub->add_option("--issues", a.issues_format, "issue format on stderr: text or json")
      ->check(CLI::IsMember({"text", "json"}));
  sub->add_option("--xsd", a.xsd_dir,
                  "also validate SCRIPT against the XSD set in DIR (transport.xsd)");
  sub->add_option("--profile-structure", a.structure_file,
                  "load a SCRIPT structure table (see docs/mapping.md)");
  sub->add_option("--profile-rules", a.rules_file,
                  "load version rules applied to the structure table");
  sub->add_flag("--strict", a.strict, "unknown FHIR elements are errors, not warnings");
  sub->add_option("--drugs", a.drugs_spec,
                  "drug database for the prescribed drug's codes and DEA schedule: a drug "
                  "store file (rxflow drugs import), or none (default: the starter formulary)")
      ->envname("DRUG_DB");
  sub->add_flag("--pretty", a.pretty, "indent the output");
  sub->add_flag("-v,--verbose", a.verbose, "also print information issues");
}

// FHIR → SCRIPT text outside printable ASCII: sent transliterated instead of refused
// (NewRxOptions::transliterate).
void AddTransliterate(CLI::App* sub, TransformArgs& a) {
  sub->add_flag("--transliterate", a.transliterate,
                "send FHIR text SCRIPT cannot carry (Muñoz, O’Brien, a line break) transliterated "
                "to printable ASCII, with a warning, instead of refusing it");
}

void AddTransformCommands(CLI::App& app, TransformArgs& a) {
  a.to_script = app.add_subcommand("to-script", "FHIR R5 JSON → NCPDP SCRIPT XML");
  AddTransformOptions(a.to_script, a);
  a.to_script->add_option("--message-id", a.message_id,
                          "Header/MessageID (default: a new UUID v7 in hex)");
  a.to_script->add_option("--sent-time", a.sent_time, "Header/SentTime (default: now, UTC)");
  a.to_script->add_option("--relates-to", a.relates_to,
                          "Header/RelatesToMessageID: for a CancelRx, the NewRx's MessageID");
  a.to_script->add_option("--to", a.to, "Header/To (default: from the FHIR, where it names one)");
  a.to_script->add_option("--to-qualifier", a.to_qualifier, "Header/To's Qualifier (default: P)");
  a.to_script->add_option("--from", a.from,
                          "Header/From (default: from the FHIR, where it names one)");
  a.to_script->add_option("--from-qualifier", a.from_qualifier,
                          "Header/From's Qualifier (default: D)");
  a.to_script->add_flag("--no-structured-sig", a.no_structured_sig, "send SigText only");
  a.to_fhir = app.add_subcommand("to-fhir", "NCPDP SCRIPT XML → FHIR R5 Bundle JSON");
  AddTransformOptions(a.to_fhir, a);
  a.to_fhir->add_flag("--lenient", a.lenient,
                      "an invalid message still gives a Bundle of what could be read, with its "
                      "issues as an OperationOutcome (exit status 1)");
  a.check = app.add_subcommand("check", "validate FHIR JSON or SCRIPT XML");
  AddTransformOptions(a.check, a);
  for (CLI::App* sub : {a.to_fhir, a.check}) {
    sub->add_option("--charset", a.charset,
                    "SCRIPT input: the charset its transport named (a Content-Type's charset, "
                    "e.g. ISO-8859-1): over the XML declaration, under a byte-order mark");
  }
  for (CLI::App* sub : {a.to_script, a.check}) AddTransliterate(sub, a);
}

void AddStoreCommands(CLI::App& app, TransformArgs& t, StoreArgs& a) {
  a.submit = app.add_subcommand("submit", "store a FHIR prescription (idempotent); prints its id");
  AddTransformOptions(a.submit, t);
  AddTransliterate(a.submit, t);
  a.submit->add_option("--idempotency-key", a.client_key,
                       "use this key instead of the content key");
  a.show = app.add_subcommand("show", "print a stored prescription's summary");
  a.events = app.add_subcommand("events", "print a stored prescription's events");
  a.replay = app.add_subcommand("replay", "rebuild the read model from the event log");
  for (CLI::App* sub : {a.submit, a.show, a.events, a.replay}) {
    sub->add_option("--store", a.store_url,
                    "store URL: sqlite://PATH (default sqlite://./rxflow-data/rxflow.db) or "
                    "postgresql://user@host:port/db (with RXFLOW_PATIENT_KEY)");
  }
  a.show->add_option("id", a.prescription_id, "prescription id")->required();
  // rxflow sign: the EPCS ceremony at the terminal, on `rxflow serve`'s demo token.
  a.sign = app.add_subcommand(
      "sign",
      "EPCS: show a controlled-substance prescription's signing bundle, then mark it ready and "
      "sign it with two factors (password: RXFLOW_EPCS_PASSWORD or the first line of stdin; "
      "code: --otp or the next line)");
  a.sign->add_option("id", a.prescription_id, "prescription id")->required();
  a.sign->add_option("--practitioner", a.practitioner, "the signing practitioner's id")->required();
  a.sign->add_option("--dea-number", a.dea_number,
                     "the DEA registration to sign under (required when they hold several)");
  a.sign->add_option("--otp", a.otp, "the TOTP code of their authenticator");
  a.sign->add_option("--store", a.store_url,
                     "store URL: sqlite://PATH (default sqlite://./rxflow-data/rxflow.db)");
  a.events->add_option("id", a.prescription_id, "prescription id")->required();
}

// The `audit` command and its verify, report and log subcommands.
struct AuditCommands {
  CLI::App* audit = nullptr;
  CLI::App* verify = nullptr;
  CLI::App* report = nullptr;
};

AuditCommands AddAuditCommands(CLI::App& app, AuditArgs& audit_args) {
  CLI::App* audit = app.add_subcommand(
      "audit", "EPCS audit trail: verify the chain, a day's incident report, a practitioner's log");
  audit->require_subcommand(1);
  CLI::App* audit_verify = audit->add_subcommand(
      "verify",
      "verify the audit chain: \"audit chain OK: N records, M checkpoints\", or the "
      "first tampered record and exit status 3");
  CLI::App* audit_report = audit->add_subcommand(
      "report", "print the incident report of one UTC day (exit status 3: the chain is broken)");
  CLI::App* audit_log = audit->add_subcommand(
      "log", "print a practitioner's signed controlled-substance prescriptions as CSV (holds PHI)");
  for (CLI::App* sub : {audit_verify, audit_report, audit_log}) {
    sub->add_option("--store", audit_args.store_url,
                    "store URL: sqlite://PATH (default sqlite://./rxflow-data/rxflow.db) or "
                    "postgresql://user@host:port/db");
  }
  for (CLI::App* sub : {audit_verify, audit_report}) {
    sub->add_option("--checkpoint-key", audit_args.key_file,
                    "public key (PEM or DER) that signs the checkpoints: check their signatures");
  }
  audit_verify->add_option("--cosign-key", audit_args.cosign_key_file,
                           "raw ML-DSA-65 public key (rxflow-data/epcs/mldsa65.pub): check "
                           "every checkpoint's post-quantum co-signature too");
  audit_report->add_option("--day", audit_args.day, "the UTC day, YYYY-MM-DD")->required();
  audit_log->add_option("--practitioner", audit_args.practitioner, "the practitioner's id")
      ->required();
  CLI::Option* from_option = audit_log->add_option(
      "--from", audit_args.from, "first day, YYYY-MM-DD UTC (default: the previous month)");
  CLI::Option* to_option =
      audit_log->add_option("--to", audit_args.to, "last day included, YYYY-MM-DD UTC");
  from_option->needs(to_option);
  to_option->needs(from_option);
  audit_log->add_option("--order", audit_args.order, "sort by date, patient or drug")
      ->check(CLI::IsMember({"date", "patient", "drug"}));

  return {audit, audit_verify, audit_report};
}

CLI::App* AddClientsCommands(CLI::App& app, ClientsArgs& clients_args, ClientsCommands& cmd) {
  CLI::App* clients = app.add_subcommand(
      "clients", "API clients and their keys: the clients file the API server authenticates with");
  clients->require_subcommand(1);
  CLI::App* clients_add = clients->add_subcommand(
      "add", "add a client with one new key; prints the key on stdout, once: store it now");
  CLI::App* clients_rotate = clients->add_subcommand(
      "rotate",
      "give a client a new key (printed once); its other keys stop working after the overlap");
  CLI::App* clients_revoke = clients->add_subcommand(
      "revoke", "remove one key of a client (--key-id), or the client with all its keys");
  CLI::App* clients_certificate = clients->add_subcommand(
      "certificate",
      "bind TLS client certificates (PEM files) to a client: behind mutual TLS a request "
      "without a key is that client; prints each fingerprint");
  CLI::App* clients_list = clients->add_subcommand(
      "list",
      "one line per client: role, tenant, NCPDP ids, key ids and expiry (never a key), "
      "certificate fingerprints");
  for (CLI::App* sub :
       {clients_add, clients_rotate, clients_revoke, clients_certificate, clients_list}) {
    sub->add_option("--file", clients_args.file,
                    "the clients file (default ./rxflow-data/clients.json)")
        ->envname("RXFLOW_CLIENTS");
  }
  for (CLI::App* sub : {clients_add, clients_rotate, clients_revoke, clients_certificate}) {
    sub->add_option("id", clients_args.id, "client id")->required();
  }
  clients_add
      ->add_option("--certificate", clients_args.certificate_files,
                   "bind this TLS client certificate (PEM) instead of making a key; prints its "
                   "fingerprint (repeat the option for more)")
      ->allow_extra_args(false);
  clients_certificate
      ->add_option("pem", clients_args.certificate_files, "PEM certificate files to bind")
      ->required();
  clients_add->add_option("--role", clients_args.role, "prescriber, pharmacy, operator or metrics")
      ->required()
      ->check(CLI::IsMember({"prescriber", "pharmacy", "operator", "metrics"}));
  clients_add->add_option("--tenant", clients_args.tenant,
                          "the tenant (prescriber: required; operator: a tenant, or * for all)");
  clients_add
      ->add_option("--ncpdp-id", clients_args.ncpdp_ids,
                   "an NCPDP id the pharmacy speaks for (repeat the option; * for every pharmacy)")
      ->allow_extra_args(false);
  for (CLI::App* sub : {clients_add, clients_rotate}) {
    sub->add_option("--expires-days", clients_args.expires_days,
                    "the new key expires after D days (default: never)")
        ->check(CLI::Range(1, 36500));
  }
  clients_rotate
      ->add_option("--overlap-days", clients_args.overlap_days,
                   "days the client's other keys keep working (default 7; 0: they stop now)")
      ->check(CLI::Range(0, 3650));
  clients_revoke->add_option("--key-id", clients_args.key_id,
                             "revoke this key only (see clients list)");
  clients_revoke->add_option("--certificate", clients_args.certificate,
                             "unbind this certificate only (its fingerprint, see clients list)");

  cmd = {.add = clients_add,
         .rotate = clients_rotate,
         .revoke = clients_revoke,
         .certificate = clients_certificate};
  return clients;
}

CLI::App* AddPhiCommands(CLI::App& app, PhiArgs& phi_args) {
  CLI::App* phi = app.add_subcommand(
      "phi", "PHI at rest: key status, the rewrap job, data key rotation, crypto-erasure");
  phi->require_subcommand(1);
  phi_args.status = phi->add_subcommand("status", "the KEK in use and what it has yet to wrap");
  phi_args.rewrap = phi->add_subcommand(
      "rewrap",
      "wrap every data key under the current KEK (after a rotation: RXFLOW_PHI_KEK the new key, "
      "RXFLOW_PHI_KEK_RETIRED the old); then the old KEK can be retired");
  phi_args.rotate = phi->add_subcommand(
      "rotate", "a new data key version for a prescription's patient (new writes use it)");
  phi_args.erase = phi->add_subcommand(
      "erase",
      "crypto-erasure: destroy the data key of a prescription's patient (every NewRx of that "
      "patient becomes unreadable; the events stay; the erasure is recorded)");
  phi_args.reseal = phi->add_subcommand(
      "reseal",
      "the re-encryption job for old data: seal every NewRx stored in plain text (before "
      "encryption was turned on) and seal again those under an older data key version");
  for (CLI::App* sub :
       {phi_args.status, phi_args.rewrap, phi_args.rotate, phi_args.erase, phi_args.reseal}) {
    sub->add_option("--store", phi_args.store_url,
                    "store URL (default sqlite://./rxflow-data/rxflow.db)");
  }
  for (CLI::App* sub : {phi_args.rotate, phi_args.erase}) {
    sub->add_option("--prescription", phi_args.prescription_id, "a prescription of the patient")
        ->required();
  }
  phi_args.erase->add_option("--reason", phi_args.reason, "why (recorded; no PHI)")->required();
  phi_args.erase->add_option("--actor", phi_args.actor, "who (recorded; default operator:cli)");

  return phi;
}

// The transform options from the command line: the versions, the FHIR parse mode, the
// NewRx header fields, the drug database (for the commands that map FHIR) and a loaded SCRIPT
// profile. An exit status when one of them cannot be used.
std::optional<int> MakeTransformOptions(const CLI::App& app, const TransformArgs& a, bool maps_fhir,
                                        rxflow::TransformOptions& options,
                                        rxflow::app::DrugDatabaseSetup& drugs,
                                        std::shared_ptr<const rxflow::script::Profile>& loaded) {
  auto version = rxflow::script::ParseVersion(a.script_version);
  options.version = *version;
  // Each subcommand has its own --script-version option: given to any of them, it forces
  // the version of what is read too.
  for (const CLI::App* sub : app.get_subcommands()) {
    if (sub->get_option_no_throw("--script-version") &&
        sub->get_option("--script-version")->count() > 0) {
      options.read_version = *version;
    }
  }
  options.lenient = a.lenient;
  options.charset = a.charset;
  options.parse.mode =
      a.strict ? rxflow::fhir::ParseMode::kStrict : rxflow::fhir::ParseMode::kLenient;
  options.pretty = a.pretty;
  options.xsd_dir = a.xsd_dir;
  options.newrx.message_id = a.message_id;
  options.newrx.sent_time = a.sent_time;
  options.newrx.to = a.to;
  options.newrx.to_qualifier = a.to_qualifier;
  options.newrx.from = a.from;
  if (!a.from_qualifier.empty()) options.newrx.from_qualifier = a.from_qualifier;
  options.newrx.structured_sig = !a.no_structured_sig;
  options.newrx.transliterate = a.transliterate;
  if (maps_fhir) {
    auto setup = rxflow::app::OpenDrugDatabase(a.drugs_spec);
    if (!setup.ok()) {
      std::cerr << "rxflow: " << setup.status().message() << "\n";
      return kExitUsage;
    }
    drugs = std::move(*setup);
    options.checks.drugs = drugs.db;
    options.checks.drugs_name = drugs.name;
  }
  if (!a.structure_file.empty() || !a.rules_file.empty()) {
    std::string structure, rules, error;
    // Rules alone apply to the built-in 2017071 structure table.
    if (a.structure_file.empty()) structure = rxflow::script::BuiltinStructureTable();
    if ((!a.structure_file.empty() && !ReadInput(a.structure_file, structure, error)) ||
        (!a.rules_file.empty() && !ReadInput(a.rules_file, rules, error))) {
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

  return std::nullopt;
}

int PrintSubmission(rxflow::PrescriptionService& service, const TransformArgs& t,
                    const StoreArgs& a) {
  std::string text, error;
  if (!ReadInput(t.input, text, error)) {
    std::cerr << "rxflow: " << error << "\n";
    return kExitUsage;
  }
  rxflow::IssueList issues;
  rxflow::RequestContext ctx;
  ctx.actor = "cli";
  auto sub = service.Submit(text, issues, ctx, a.client_key);
  PrintIssues(issues, t.issues_format, !t.verbose);
  if (!sub.ok()) {
    if (!issues.has_errors()) std::cerr << "rxflow: " << sub.status().message() << "\n";
    return sub.status().code() == absl::StatusCode::kUnavailable ? kExitUsage : kExitInvalid;
  }
  std::cout << "{\"id\": " << JsonQuote(sub->id)
            << ", \"created\": " << (sub->created ? "true" : "false")
            << ", \"status\": " << JsonQuote(std::string(rxflow::domain::StateName(sub->state)))
            << ", \"idempotency_key\": " << JsonQuote(sub->idempotency_key)
            << ", \"is_controlled\": " << (sub->is_controlled ? "true" : "false")
            << ", \"created_at\": " << JsonQuote(sub->created_at) << "}\n";
  return kExitOk;
}

// A prescription that could not be read: 1 when there is none, 2 when the store failed.
int LookupFailed(const rxflow::Status& status) {
  std::cerr << "rxflow: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kNotFound ? kExitInvalid : kExitUsage;
}

int PrintSummary(rxflow::PrescriptionService& service, const std::string& id) {
  auto summary = service.Get(id);
  if (!summary.ok()) return LookupFailed(summary.status());
  std::cout << rxflow::EncodeSummary(*summary) << "\n";
  return kExitOk;
}

int PrintEvents(rxflow::PrescriptionService& service, const std::string& id) {
  auto history = service.History(id);
  if (!history.ok()) return LookupFailed(history.status());
  std::cout << "[\n";
  for (size_t i = 0; i < history->size(); ++i) {
    const auto& e = (*history)[i];
    std::cout << "  {\"version\": " << e.version << ", \"type\": " << JsonQuote(e.type)
              << ", \"schema_version\": " << e.schema_version
              << ", \"event_id\": " << JsonQuote(e.event_id)
              << ", \"global_position\": " << e.global_position
              << ", \"occurred_at\": " << JsonQuote(rxflow::FormatRfc3339(e.occurred_at))
              << ", \"actor\": " << JsonQuote(e.actor) << ", \"payload\": " << e.payload << "}"
              << (i + 1 < history->size() ? "," : "") << "\n";
  }
  std::cout << "]\n";
  return kExitOk;
}

// submit, show, events, replay and sign: a service over the store the command names.
int RunStoreCommand(const StoreArgs& a, const TransformArgs& t,
                    const rxflow::TransformOptions& options) {
  std::string db_path;
  auto store = rxflow::app::OpenStore(a.store_url, db_path);
  if (!store.ok()) {
    std::cerr << "rxflow: " << store.status().message() << "\n";
    return kExitUsage;
  }
  rxflow::ServiceOptions so;
  auto patient_key = rxflow::app::PatientKey(db_path);
  if (!patient_key.ok()) {
    std::cerr << "rxflow: " << patient_key.status().message() << "\n";
    return kExitUsage;
  }
  so.patient_key = *patient_key;
  so.transform = options;
  auto service = rxflow::PrescriptionService::Create(**store, so);
  if (!service.ok()) {
    std::cerr << "rxflow: " << service.status().message() << "\n";
    return kExitUsage;
  }
  if (a.submit->parsed()) return PrintSubmission(**service, t, a);
  if (a.sign->parsed()) {
    return Sign(**store, **service, db_path, a.prescription_id, a.practitioner, a.dea_number,
                a.otp);
  }
  if (a.show->parsed()) return PrintSummary(**service, a.prescription_id);
  if (a.events->parsed()) return PrintEvents(**service, a.prescription_id);
  auto n = (*service)->RebuildProjection();
  if (!n.ok()) {
    std::cerr << "rxflow: " << n.status().message() << "\n";
    return kExitUsage;
  }
  std::cout << "replayed " << *n << " events into " << rxflow::PrescriptionService::kProjection
            << "\n";
  return kExitOk;
}

// The exit status of a transform command that failed: 1 for input RxFlow refuses (with
// issues), 2 for a missing file or build feature.
int TransformFailureExit(const rxflow::Status& status, const rxflow::IssueList& issues,
                         const std::string& issues_format) {
  if (issues.empty() || issues_format == "json")
    std::cerr << "rxflow: " << status.message() << "\n";
  // Unimplemented with an issue is input RxFlow does not read (SCRIPT 10.6, a transaction
  // it does not handle): invalid input. Without one it is a missing build feature.
  bool unsupported_input = status.code() == absl::StatusCode::kUnimplemented && issues.has_errors();
  return (status.code() == absl::StatusCode::kNotFound ||
          status.code() == absl::StatusCode::kUnimplemented) &&
                 !unsupported_input
             ? kExitUsage
             : kExitInvalid;
}

// to-script, to-fhir and check on the input file.
int RunTransform(const TransformArgs& a, const rxflow::TransformOptions& options) {
  std::string text, error;
  if (!ReadInput(a.input, text, error)) {
    std::cerr << "rxflow: " << error << "\n";
    return kExitUsage;
  }
  rxflow::IssueList issues;
  rxflow::Status status;
  if (a.to_script->parsed()) {
    auto out = rxflow::ToScript(text, issues, options, a.relates_to);
    if (out.ok()) {
      std::cout << out->xml;
      if (!a.pretty) std::cout << "\n";
    }
    status = out.status();
  } else if (a.to_fhir->parsed()) {
    auto out = rxflow::ToFhirJson(text, issues, options);
    if (out.ok()) std::cout << *out;
    status = out.status();
    // Lenient output of an invalid message: printed, and still a failure.
    if (status.ok() && issues.has_errors()) {
      status = absl::InvalidArgumentError("the SCRIPT message has errors");
    }
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
  PrintIssues(issues, a.issues_format, !a.verbose);
  if (!status.ok()) return TransformFailureExit(status, issues, a.issues_format);
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rxflow " RXFLOW_VERSION_STRING
               ": FHIR R5 prescriptions ⇄ NCPDP SCRIPT (2023011, 2017071)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", RXFLOW_VERSION_STRING);

  TransformArgs transform;
  AddTransformCommands(app, transform);
  StoreArgs store;
  AddStoreCommands(app, transform, store);
  AuditArgs audit_args;
  AuditCommands audit = AddAuditCommands(app, audit_args);
  ClientsArgs clients_args;
  ClientsCommands clients_commands;
  CLI::App* clients = AddClientsCommands(app, clients_args, clients_commands);
  rxflow::cli::DrugsCommand drugs_command;
  rxflow::cli::AddDrugsCommands(app, drugs_command);
  PhiArgs phi_args;
  CLI::App* phi = AddPhiCommands(app, phi_args);
  rxflow::app::Config serve_config;
  CLI::App* serve = app.add_subcommand(
      "serve", "run the API, outbox relay, routing and a pharmacy simulator in one process");
  rxflow::app::AddOptions(*serve, serve_config, rxflow::app::kAll);

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
  rxflow::app::DrugDatabaseSetup drugs;
  std::shared_ptr<const rxflow::script::Profile> loaded;
  const bool maps_fhir =
      transform.to_script->parsed() || transform.check->parsed() || store.submit->parsed();
  if (auto failed = MakeTransformOptions(app, transform, maps_fhir, options, drugs, loaded)) {
    return *failed;
  }

  if (serve->parsed()) return rxflow::app::Run(serve_config, rxflow::app::kAll, "rxflow serve");
  if (audit.audit->parsed()) return RunAudit(audit.verify, audit.report, audit_args);
  if (phi->parsed()) return RunPhi(phi_args);
  if (drugs_command.drugs->parsed()) return rxflow::cli::RunDrugs(drugs_command);
  if (drugs_command.ddi->parsed()) return rxflow::cli::RunDdi(drugs_command);
  if (drugs_command.pmp->parsed()) return rxflow::cli::RunPmp(drugs_command);
  if (clients->parsed()) return RunClients(clients_commands, clients_args);
  if (store.parsed()) return RunStoreCommand(store, transform, options);
  return RunTransform(transform, options);
}
