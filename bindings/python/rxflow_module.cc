// SPDX-License-Identifier: Apache-2.0
// The Python module `rxflow`: FHIR R5 ⇄ NCPDP SCRIPT, the prescription service and its EPCS
// signing ceremony, over the same public C++ API. The GIL is released around all C++ work.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <sstream>

#include "rxflow/clinical/interactions.h"
#include "rxflow/clinical/pdmp.h"
#include "rxflow/clock.h"
#include "rxflow/epcs/ceremony.h"
#include "rxflow/epcs/factors.h"
#include "rxflow/epcs/signature.h"
#include "rxflow/idempotency.h"
#include "rxflow/service.h"
#include "rxflow/sqlite/sqlite_store.h"
#include "rxflow/transform.h"
#include "rxflow/version.h"

#include <fcntl.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>
#include <string.h>  // explicit_bzero
#include <unistd.h>
#ifdef RXFLOW_HAVE_POSTGRES
#include "rxflow/postgres/postgres_store.h"
#endif
#ifdef RXFLOW_HAVE_HTTP
#include "rxflow/http/pdmp.h"  // query_pdmp: the FHIR PDMP client
#endif
#ifdef RXFLOW_HAVE_EPCS_DEMO
#include "epcs_demo.h"  // examples/server: the SoftHSM2 demo prescriber (rxflow_epcs_demo)
#include "phi_setup.h"  // examples/server: PHI at rest as the programs set it up (RXFLOW_PHI_KEK)
#endif

namespace py = pybind11;
using namespace rxflow;

namespace {

// Exception classes, created at import: Error and its families.
struct Exceptions {
  py::object error, invalid_input, unsupported, not_found, conflict, unavailable,
      failed_precondition, unauthenticated, permission_denied;
  py::object data_warning;  // a UserWarning: what a transform did not send or read
};
Exceptions& Exc() {
  static Exceptions* e = new Exceptions;
  return *e;
}

py::list PyIssues(const IssueList& issues) {
  py::list out;
  for (const Issue& i : issues) out.append(py::cast(i));
  return out;
}

// Raises the exception class for `status`, with `.issues` attached.
[[noreturn]] void Raise(const Status& status, const IssueList& issues) {
  py::object cls;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDataLoss:
      cls = Exc().invalid_input;
      break;
    case absl::StatusCode::kUnimplemented:
      cls = Exc().unsupported;
      break;
    case absl::StatusCode::kNotFound:
      cls = Exc().not_found;
      break;
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kAlreadyExists:
      cls = Exc().conflict;
      break;
    case absl::StatusCode::kUnavailable:
      cls = Exc().unavailable;
      break;
    case absl::StatusCode::kFailedPrecondition:
      cls = Exc().failed_precondition;
      break;
    case absl::StatusCode::kUnauthenticated:
      cls = Exc().unauthenticated;
      break;
    case absl::StatusCode::kPermissionDenied:
      cls = Exc().permission_denied;
      break;
    default:
      cls = Exc().error;
  }
  py::object exc = cls(std::string(status.message()));
  exc.attr("issues") = PyIssues(issues);
  exc.attr("code") = std::string(absl::StatusCodeToString(status.code()));
  PyErr_SetObject(cls.ptr(), exc.ptr());
  throw py::error_already_set();
}

// The `issues=` argument of the transforming calls: None or a list, checked before any work.
py::object IssueSink(const py::object& issues) {
  if (!issues.is_none() && !py::isinstance<py::list>(issues)) {
    throw py::type_error("issues must be a list (the call appends to it) or None");
  }
  return issues;
}

// What a transforming call found, reported so that nothing is lost silently: appended to the
// caller's list when one was passed (every severity), else each warning issued through
// Python's warnings as an rxflow.DataWarning carrying the Issue (`.issue`). Python's filters
// decide what is shown (by default each distinct warning once per calling line) and can turn
// them into errors. Messages name fields, never values: no PHI reaches a log through them.
void Report(const IssueList& issues, const py::object& sink) {
  if (!sink.is_none()) {
    auto list = py::reinterpret_borrow<py::list>(sink);
    for (const Issue& i : issues) list.append(py::cast(i));
    return;
  }
  py::object warn;
  for (const Issue& i : issues) {
    if (i.severity != Severity::kWarning) continue;
    if (!warn) warn = py::module_::import("warnings").attr("warn");
    py::object w = Exc().data_warning(i.path + ": " + i.message);
    w.attr("issue") = py::cast(i);
    warn(w, py::arg("stacklevel") = 1);  // 1: the Python line that called RxFlow
  }
}

// Raises for `status` after giving the caller's list (if any) every issue found.
[[noreturn]] void RaiseReporting(const Status& status, const IssueList& issues,
                                 const py::object& sink) {
  if (!sink.is_none()) Report(issues, sink);
  Raise(status, issues);
}

// A request as text: str, bytes, or a dict (serialised with json.dumps).
std::string RequestText(const py::object& request) {
  if (py::isinstance<py::str>(request)) return request.cast<std::string>();
  if (py::isinstance<py::bytes>(request)) return request.cast<std::string>();
  if (py::isinstance<py::dict>(request)) {
    return py::module_::import("json").attr("dumps")(request).cast<std::string>();
  }
  throw py::type_error("request must be str, bytes or dict");
}

py::object JsonToPython(const std::string& text) {
  return py::module_::import("json").attr("loads")(text);
}

TransformOptions Options(const std::string& script_version) {
  TransformOptions o;
  auto v = script::ParseVersion(script_version);
  if (!v.ok()) Raise(v.status(), {});
  o.version = *v;
  return o;
}

struct PySubmission {
  std::string id;
  std::string status;
  bool created = false;  // false: the same content (or key) was submitted before; its id
  std::string idempotency_key;
  bool is_controlled = false;
  std::string created_at;
  py::list interactions;  // dicts, as FindingDict makes them
};

// The same object as the API's (clinical::InteractionFindingJson), as a dict.
py::dict FindingDict(const clinical::InteractionFinding& f) {
  return py::module_::import("json").attr("loads")(clinical::InteractionFindingJson(f));
}

py::dict ProductDict(const clinical::DrugProduct& p) {
  py::dict d;
  d["rxcui"] = p.rxcui;
  d["term_type"] = p.term_type;
  d["name"] = p.name;
  d["brand"] = p.brand;
  d["dose_form"] = p.dose_form;
  d["route"] = p.route;
  d["dea_schedule"] = std::string(clinical::ScheduleName(p.dea_schedule));
  d["prescribable"] = p.prescribable;
  py::list ingredients;
  for (const auto& i : p.ingredients) {
    py::dict x;
    x["name"] = i.name;
    x["rxcui"] = i.rxcui;
    x["strength"] = i.strength;
    x["unit"] = i.unit;
    x["precise"] = i.precise;
    ingredients.append(x);
  }
  d["ingredients"] = ingredients;
  py::list ndcs;
  for (const auto& n : p.ndcs) ndcs.append(clinical::FormatNdc11(n));
  d["ndcs"] = ndcs;
  d["source"] = p.source;
  return d;
}

// Store and service, owned together.
class PyService {
 public:
  static std::unique_ptr<PyService> Open(const std::string& url,
                                         std::optional<std::string> patient_key,
                                         const std::string& script_version,
                                         const std::string& interactions,
                                         std::optional<std::string> phi_kek, bool transliterate) {
    if (interactions != "warn" && interactions != "block" && interactions != "off") {
      throw py::value_error("interactions must be 'warn', 'block' or 'off'");
    }
    auto self = std::make_unique<PyService>();
    Status status;
    std::string db_path;
    {
      py::gil_scoped_release release;
      if (url.rfind("sqlite://", 0) == 0) {
        db_path = url.substr(9);
        store::SqliteOptions o;
        o.path = db_path;
        auto s = store::OpenSqliteStore(o);
        if (s.ok()) self->store_ = std::move(*s);
        status = s.status();
      } else if (url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0) {
#ifdef RXFLOW_HAVE_POSTGRES
        store::PostgresOptions o;
        o.url = url;
        auto s = store::OpenPostgresStore(o);
        if (s.ok()) self->store_ = std::move(*s);
        status = s.status();
#else
        status = absl::UnimplementedError("this rxflow was built without the PostgreSQL store");
#endif
      } else {
        status = absl::InvalidArgumentError("store URL must be sqlite:///path or postgresql://...");
      }
    }
    if (!status.ok()) Raise(status, {});
    {
#ifdef RXFLOW_HAVE_EPCS_DEMO
      // PHI at rest, as the programs do it: sealed under RXFLOW_PHI_KEK (or `phi_kek`);
      // for SQLite by default under phi.kek beside the database.
      app::PhiConfig pc = app::PhiConfigFromEnv();
      if (phi_kek) pc.kek = *phi_kek;
      StatusOr<std::unique_ptr<store::Store>> sealed;
      {
        py::gil_scoped_release release;
        sealed = app::ProtectStore(std::move(self->store_), db_path, pc);
      }
      if (!sealed.ok()) Raise(sealed.status(), {});
      self->store_ = std::move(*sealed);
#else
      const char* env_kek = std::getenv("RXFLOW_PHI_KEK");
      if (!phi_kek && env_kek != nullptr) phi_kek = std::string(env_kek);
      if (phi_kek && *phi_kek != "off") {
        Raise(absl::UnimplementedError("this rxflow was built without PHI-at-rest encryption "
                                       "(the PKCS#11 adapter): pass phi_kek='off'"),
              {});
      }
#endif
    }
    ServiceOptions so;
    so.transform = Options(script_version);
    so.transform.newrx.transliterate = transliterate;
    so.transform.checks.drugs = &clinical::StarterDrugIndex();
    so.transform.checks.drugs_name = "starter formulary";
    if (interactions != "off") so.interactions = &clinical::OncHighPriority();
    so.block_contraindicated = interactions == "block";
    so.patient_key = patient_key ? *patient_key : PatientKey(db_path);
    auto service = PrescriptionService::Create(*self->store_, so);
    if (!service.ok()) Raise(service.status(), {});
    self->service_ = std::move(*service);
    self->db_path_ = db_path;
    return self;
  }

  // The EPCS ceremony goes first: it refers to the service and the store.
  ~PyService() {
#ifdef RXFLOW_HAVE_EPCS_DEMO
    epcs_.reset();
#endif
    service_.reset();
    store_.reset();
  }

  PySubmission Submit(const py::object& request, std::optional<std::string> idempotency_key,
                      const py::object& issue_sink) {
    std::string text = RequestText(request);
    py::object sink = IssueSink(issue_sink);
    IssueList issues;
    StatusOr<Submission> s;
    CheckOpen();
    {
      py::gil_scoped_release release;
      std::shared_lock<std::shared_mutex> lock(mu_);
      s = service_ ? service_->Submit(text, issues, RequestContext{"python", "", "", ""},
                                      idempotency_key.value_or(""))
                   : StatusOr<Submission>(Closed());
    }
    if (!s.ok()) RaiseReporting(s.status(), issues, sink);
    Report(issues, sink);
    py::list found;
    for (const auto& f : s->interactions) found.append(FindingDict(f));
    return PySubmission{s->id,
                        std::string(domain::StateName(s->state)),
                        s->created,
                        s->idempotency_key,
                        s->is_controlled,
                        s->created_at,
                        found};
  }

  py::object Get(const std::string& id) {
    StatusOr<PrescriptionSummary> s;
    CheckOpen();
    {
      py::gil_scoped_release release;
      std::shared_lock<std::shared_mutex> lock(mu_);
      s = service_ ? service_->Get(id) : StatusOr<PrescriptionSummary>(Closed());
    }
    if (!s.ok()) Raise(s.status(), {});
    return JsonToPython(EncodeSummary(*s));
  }

  py::list Events(const std::string& id) {
    StatusOr<std::vector<store::EventRecord>> h;
    CheckOpen();
    {
      py::gil_scoped_release release;
      std::shared_lock<std::shared_mutex> lock(mu_);
      h = service_ ? service_->History(id) : StatusOr<std::vector<store::EventRecord>>(Closed());
    }
    if (!h.ok()) Raise(h.status(), {});
    py::list out;
    for (const auto& e : *h) {
      py::dict d;
      d["event_id"] = e.event_id;
      d["version"] = e.version;
      d["global_position"] = e.global_position;
      d["type"] = e.type;
      d["schema_version"] = e.schema_version;
      d["occurred_at"] = FormatRfc3339(e.occurred_at);
      d["correlation_id"] = e.correlation_id;
      d["causation_id"] = e.causation_id;
      d["actor"] = e.actor;
      d["payload"] = JsonToPython(e.payload);
      out.append(d);
    }
    return out;
  }

  void Route(const std::string& id) {
    Run([&] { return service_->Route(id); });
  }

  // PDMP: the patient's controlled-substance history from a FHIR PDMP ($pdmp-history),
  // recorded on the prescription as PdmpQueried (PrescriptionService::QueryPdmp). The answer
  // as the HTTP API gives it (pdmp::ResultJson); a PDMP that cannot be reached is outcome
  // "unavailable" (recorded too), RxFlow's own failures raise.
  py::object QueryPdmp(const std::string& id, const std::string& pdmp_url,
                       std::optional<std::string> token, std::optional<std::string> ca_file,
                       double timeout_seconds) {
    CheckOpen();
    if (!(timeout_seconds > 0 && timeout_seconds <= 600)) {
      Raise(absl::InvalidArgumentError("timeout: must be more than 0 and at most 600 seconds"), {});
    }
#ifndef RXFLOW_HAVE_HTTP
    (void)id, (void)pdmp_url, (void)token, (void)ca_file;
    throw std::runtime_error("query_pdmp: this build of rxflow has no HTTP support");
#else
    http::FhirPdmpOptions o;
    o.base_url = pdmp_url;
    o.bearer_token = token.value_or("");
    o.ca_file = ca_file.value_or("");
    o.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000));
    auto client = http::NewFhirPdmpClient(std::move(o));
    if (!client.ok()) Raise(client.status(), {});
    StatusOr<clinical::pdmp::Result> r;
    {
      py::gil_scoped_release release;
      std::shared_lock<std::shared_mutex> lock(mu_);
      r = service_ ? service_->QueryPdmp(id, **client, RequestContext{"python", "", "", ""})
                   : StatusOr<clinical::pdmp::Result>(Closed());
    }
    if (!r.ok()) Raise(r.status(), {});
    return JsonToPython(clinical::pdmp::ResultJson(*r, (*client)->name()));
#endif
  }
  void Cancel(const std::string& id, const std::string& reason) {
    Run([&] { return service_->Cancel(id, reason); });
  }

  // ----- EPCS (21 CFR 1311): the demo prescriber and the signing ceremony -----

  // Sets up the demo prescriber of `rxflow serve` (examples/server/epcs_demo.h) on this
  // service's store, under `directory`/epcs (default: the SQLite database's directory), and
  // keeps its ceremony for signing_bundle / ready / sign.
  py::dict SetUpEpcsDemo(const std::optional<std::filesystem::path>& directory) {
    CheckOpen();
#ifndef RXFLOW_HAVE_EPCS_DEMO
    (void)directory;
    throw std::runtime_error(
        "setup_epcs_demo: this rxflow was built without PKCS#11 support (the rxflow_epcs_demo "
        "library: RXFLOW_WITH_PKCS11)");
#else
    std::string dir;
    if (directory) {
      dir = directory->string();
    } else if (!db_path_.empty()) {
      dir = std::filesystem::path(db_path_).parent_path().string();
      if (dir.empty()) dir = ".";
    } else {
      Raise(absl::InvalidArgumentError(
                "setup_epcs_demo: pass directory (this store has no directory of its own)"),
            {});
    }
    Status status;
    py::dict out;
    std::string password, totp_secret, otpauth_uri, demo_dir, ca_pem, crl_pem;
    {
      py::gil_scoped_release release;
      // Exclusively: it enrols practitioners and replaces a ceremony other calls may be using.
      std::unique_lock<std::shared_mutex> lock(mu_);
      if (!service_) {
        status = Closed();
      } else {
        StatusOr<std::unique_ptr<app::EpcsDemo>> demo =
            app::SetUpEpcsDemo(dir, *store_, *service_, "python");
        status = demo.status();
        if (demo.ok()) {
          password = (*demo)->password;
          totp_secret = (*demo)->totp_base32;
          otpauth_uri = (*demo)->otpauth_uri;
          demo_dir = (*demo)->dir;
          ca_pem = (*demo)->ca_pem;
          crl_pem = (*demo)->crl_pem;
          epcs_ = std::move(*demo);
        }
      }
    }
    if (!status.ok()) Raise(status, {});
    out["prescriber"] = std::string(app::kDemoPrescriber);
    out["dea_number"] = std::string(app::kDemoDea);
    out["password"] = password;
    out["totp_secret"] = totp_secret;
    out["otpauth_uri"] = otpauth_uri;
    out["directory"] = demo_dir;
    out["ca_certificate_pem"] = ca_pem;
    out["crl_pem"] = crl_pem;
    return out;
#endif
  }

  // The signing bundle, as the HTTP API's GET .../signing-bundle returns it.
  py::dict SigningBundle(const std::string& id, const std::string& practitioner) {
    CheckOpen();
    CheckEpcs();
    StatusOr<epcs::SigningBundle> b;
    {
      py::gil_scoped_release release;
      std::shared_lock<std::shared_mutex> lock(mu_);
      epcs::Ceremony* c = Ceremony();
      b = c ? c->Bundle(id, practitioner) : StatusOr<epcs::SigningBundle>(Closed());
    }
    if (!b.ok()) Raise(b.status(), {});
    py::list fields;
    for (const epcs::Part1306Field& f : b->fields) {
      py::dict field;
      field["name"] = std::string(f.name);
      field["value"] = f.value;
      fields.append(field);
    }
    py::dict out;
    out["prescription_id"] = b->prescription_id;
    out["status"] = b->state;
    out["fields"] = fields;
    out["attestation"] = b->attestation;
    out["sha256"] = b->sha256;
    out["dea_numbers"] = py::cast(b->dea_numbers);
    out["prescription_dea_number"] = b->prescription_dea_number;
    out["marked_ready"] = b->marked_ready;
    return out;
  }

  py::object Ready(const std::string& id, const std::string& practitioner,
                   const std::string& dea_number, const std::string& bundle_sha256) {
    return Ceremonial(id, [&](epcs::Ceremony& c) {
      return c.MarkReady(id, practitioner, dea_number, bundle_sha256,
                         PractitionerContext(practitioner));
    });
  }

  // `password` is taken by value so that this copy can be wiped afterwards (the caller's
  // Python string is not ours to wipe).
  py::object Sign(const std::string& id, const std::string& practitioner,
                  const std::string& bundle_sha256, std::string password, const std::string& otp) {
    epcs::TwoFactorProof proof{std::move(password), otp, std::nullopt};
    struct Wipe {
      std::string& s;
      ~Wipe() { explicit_bzero(s.data(), s.size()); }
    } wipe{proof.password};
    return Ceremonial(id, [&](epcs::Ceremony& c) {
      return c.Sign(id, practitioner, bundle_sha256, proof, PractitionerContext(practitioner));
    });
  }

  // Waits for calls running on other threads (they hold the lock shared) before closing.
  void Close() {
    py::gil_scoped_release release;
    std::unique_lock<std::shared_mutex> lock(mu_);
#ifdef RXFLOW_HAVE_EPCS_DEMO
    epcs_.reset();
#endif
    service_.reset();
    store_.reset();
  }

 private:
  void CheckOpen() const {
    if (!service_) throw py::value_error("the service is closed");
  }
  static Status Closed() { return absl::UnavailableError("the service was closed meanwhile"); }

  epcs::Ceremony* Ceremony() const {
#ifdef RXFLOW_HAVE_EPCS_DEMO
    if (service_ && epcs_) return epcs_->ceremony.get();
#endif
    return nullptr;
  }
  void CheckEpcs() const {
    if (Ceremony() == nullptr) {
      throw std::runtime_error(
          "EPCS is not set up: call setup_epcs_demo() first (it enrols the demo prescriber and "
          "keeps the signing ceremony in this service)");
    }
  }
  // As the HTTP API: the practitioner is the actor of the events and audit records.
  static RequestContext PractitionerContext(const std::string& practitioner) {
    RequestContext ctx;
    ctx.actor = "practitioner:" + practitioner;
    return ctx;
  }

  // Runs a ceremony step on prescription `id`; returns its summary afterwards (as get()).
  template <typename F>
  py::object Ceremonial(const std::string& id, F&& f) {
    CheckOpen();
    CheckEpcs();
    Status s;
    StatusOr<PrescriptionSummary> summary;
    {
      py::gil_scoped_release release;
      std::shared_lock<std::shared_mutex> lock(mu_);
      epcs::Ceremony* c = Ceremony();
      s = c ? f(*c) : Closed();
      if (s.ok()) summary = service_->Get(id);
    }
    if (!s.ok()) Raise(s, {});
    if (!summary.ok()) Raise(summary.status(), {});
    return JsonToPython(EncodeSummary(*summary));
  }

  template <typename F>
  void Run(F&& f) {
    CheckOpen();
    Status s;
    {
      py::gil_scoped_release release;
      std::shared_lock<std::shared_mutex> lock(mu_);
      s = service_ ? f() : Closed();
    }
    if (!s.ok()) Raise(s, {});
  }

  // RXFLOW_PATIENT_KEY, or a random key kept beside a SQLite database (mode 0600). A key
  // that is too short, or a key file that cannot be written, is an error: a key that
  // changed between runs would stop recognising resubmissions.
  static std::string PatientKey(const std::string& db_path) {
    if (const char* k = std::getenv("RXFLOW_PATIENT_KEY")) {
      if (std::strlen(k) < kMinPatientKeyBytes) {
        Raise(absl::InvalidArgumentError("RXFLOW_PATIENT_KEY must be at least 16 bytes"), {});
      }
      return k;
    }
    if (db_path.empty()) {
      Raise(absl::InvalidArgumentError("pass patient_key or set RXFLOW_PATIENT_KEY for this store"),
            {});
    }
    std::filesystem::path dir = std::filesystem::path(db_path).parent_path();
    if (dir.empty()) dir = ".";
    std::filesystem::path file = dir / "patient.key";
    std::ifstream in(file);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string key = ss.str();
    if (key.size() >= kMinPatientKeyBytes) return key;
    key = RandomIds().NewId() + RandomIds().NewId();
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    // Created readable by the owner only from the first byte.
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    bool written =
        fd >= 0 && ::write(fd, key.data(), key.size()) == static_cast<ssize_t>(key.size());
    if (fd >= 0) ::close(fd);
    if (!written)
      Raise(absl::UnavailableError("cannot write the patient key file " + file.string()), {});
    return key;
  }

  std::shared_mutex mu_;  // calls hold it shared; Close() and setup_epcs_demo() exclusively
  std::string db_path_;   // SQLite: the database file ("" for PostgreSQL)
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<PrescriptionService> service_;
#ifdef RXFLOW_HAVE_EPCS_DEMO
  std::unique_ptr<app::EpcsDemo> epcs_;  // refers to service_ and store_: reset first
#endif
};

}  // namespace

// The compiled half of the `rxflow` package (bindings/python/rxflow/__init__.py re-exports it).
PYBIND11_MODULE(_rxflow, m) {
  m.doc() =
      "RxFlow: HL7 FHIR R5 prescriptions <-> NCPDP SCRIPT (2023011, 2017071), and an "
      "event-sourced prescription service.";
  m.attr("__version__") = RXFLOW_VERSION_STRING;

  py::object base_exc = py::reinterpret_borrow<py::object>(PyExc_Exception);
  auto make = [&](const char* name, py::object parent, const char* doc) {
    py::object cls = py::reinterpret_steal<py::object>(PyErr_NewExceptionWithDoc(
        (std::string("rxflow.") + name).c_str(), doc, parent.ptr(), nullptr));
    m.attr(name) = cls;
    return cls;
  };
  Exceptions& e = Exc();
  e.error =
      make("Error", base_exc, "Base of every RxFlow error. `.issues` lists the problems found.");
  e.invalid_input = make("InvalidInput", e.error,
                         "The input is not valid FHIR or SCRIPT, lacks data, or is over a limit.");
  e.unsupported = make("Unsupported", e.invalid_input,
                       "Valid input RxFlow does not read: SCRIPT 10.6, or a SCRIPT transaction "
                       "it does not handle (e.g. ClinicalInfoResponse).");
  e.not_found = make("NotFound", e.error, "No prescription with that id.");
  e.conflict = make("Conflict", e.error, "A concurrent change won (re-read and retry).");
  e.unavailable = make("Unavailable", e.error, "The store is unreachable (retry with backoff).");
  e.failed_precondition = make("FailedPrecondition", e.error,
                               "Valid input refused by a prescribing rule, or a command illegal in "
                               "the prescription's state.");
  // EPCS: also builtin PermissionError, so `except PermissionError` catches both.
  py::object permission_error = py::reinterpret_borrow<py::object>(PyExc_PermissionError);
  e.unauthenticated = make("Unauthenticated", py::make_tuple(e.error, permission_error),
                           "EPCS: the two factors failed (a wrong password or code, or a code "
                           "used before). Also a PermissionError.");
  e.permission_denied = make("PermissionDenied", py::make_tuple(e.error, permission_error),
                             "EPCS: not permitted (no EPCS permission, not a current DEA "
                             "registration for this, locked out after failures, the clock off). "
                             "Also a PermissionError.");
  // A warning, not an error: what a transform did not carry (docs/python.md §2).
  py::object user_warning = py::reinterpret_borrow<py::object>(PyExc_UserWarning);
  e.data_warning = make("DataWarning", user_warning,
                        "Something of the input a transform did not carry (a FHIR element SCRIPT "
                        "has no place for, text sent transliterated, ...). `.issue` is the "
                        "rxflow.Issue; its message names the field, never the value.");

  py::class_<Issue>(m, "Issue", "One problem found in the data: severity, path, message, code.")
      .def_property_readonly(
          "severity", [](const Issue& i) { return std::string(SeverityName(i.severity)); },
          "fatal | error | warning | information")
      .def_readonly("path", &Issue::path, "JSON path or XML path of the problem")
      .def_readonly("message", &Issue::message)
      .def_property_readonly(
          "code", [](const Issue& i) { return std::string(IssueCodeName(i.code)); },
          "HL7 issue-type code: structure, required, value, too-long, ...")
      .def("__repr__", [](const Issue& i) { return "<rxflow.Issue " + ToString(i) + ">"; })
      .def("__str__", [](const Issue& i) { return ToString(i); });

  m.def(
      "find_drugs",
      [](const std::string& text, size_t limit) {
        clinical::SearchOptions so;
        so.limit = limit;
        std::vector<clinical::DrugMatch> found;
        {
          py::gil_scoped_release release;
          found = clinical::StarterDrugIndex().Search(text, so);
        }
        py::list out;
        for (const auto& m : found) {
          py::dict d;
          d["score"] = m.score;
          d["reasons"] = m.reasons;
          d["product"] = ProductDict(*m.product);
          out.append(d);
        }
        return out;
      },
      py::arg("text"), py::arg("limit") = 10,
      "Products of the starter formulary for an NDC (any layout), an RxCUI or words\n"
      "('oxycodone/apap 5-325 tab'), best first: dicts with score, reasons and product.");
  m.def(
      "screen_interactions",
      [](const std::vector<std::string>& drugs) {
        std::vector<clinical::InteractionFinding> found;
        {
          py::gil_scoped_release release;
          found = clinical::ScreenDrugs(drugs, &clinical::StarterDrugIndex(),
                                        clinical::OncHighPriority());
        }
        py::list out;
        for (const auto& f : found) out.append(FindingDict(f));
        return out;
      },
      py::arg("drugs"),
      "Screens drugs (NDCs, RxCUIs or words, resolved through the starter formulary) against\n"
      "each other with the ONC High-Priority list: a list of finding dicts (rule_id,\n"
      "severity, summary, citation, ingredient, other_ingredient, other = the later drug as\n"
      "given, ...). Not\n"
      "exhaustive: no finding does not mean safe.");
  m.def(
      "to_script",
      [](const py::object& request, const std::string& script_version,
         const std::optional<std::string>& to, const std::string& to_qualifier,
         const std::optional<std::string>& from, const std::string& from_qualifier,
         const std::string& relates_to, bool transliterate, const py::object& issue_sink) {
        std::string text = RequestText(request);
        py::object sink = IssueSink(issue_sink);
        TransformOptions o = Options(script_version);
        o.newrx.transliterate = transliterate;
        if (to) o.newrx.to = *to;
        o.newrx.to_qualifier = to_qualifier;
        if (from) o.newrx.from = *from;
        if (!from_qualifier.empty()) o.newrx.from_qualifier = from_qualifier;
        IssueList issues;
        StatusOr<ScriptOutput> out;
        {
          py::gil_scoped_release release;
          out = ToScript(text, issues, o, relates_to);
        }
        if (!out.ok()) RaiseReporting(out.status(), issues, sink);
        Report(issues, sink);
        return out->xml;
      },
      py::arg("request"), py::arg("script_version") = "2023011", py::kw_only(),
      py::arg("to") = py::none(), py::arg("to_qualifier") = "", py::arg("from_") = py::none(),
      py::arg("from_qualifier") = "", py::arg("relates_to") = "", py::arg("transliterate") = false,
      py::arg("issues") = py::none(),
      "FHIR R5 (the request envelope or a Bundle; str, bytes or dict) -> NCPDP SCRIPT XML: a\n"
      "NewRx, a CancelRx (relates_to: the NewRx's MessageID), or the transaction a Bundle's\n"
      "Task names (RxHistoryRequest, RxTransferRequest, ...). to / from_ (and their\n"
      "qualifiers) set Header/To and From. transliterate=True sends text SCRIPT cannot\n"
      "carry (Muñoz, O’Brien, a line break) as printable ASCII instead of refusing it.\n"
      "What SCRIPT does not carry is reported: appended to `issues` (a list) when given, else\n"
      "each warning issued as an rxflow.DataWarning. Raises InvalidInput or\n"
      "FailedPrecondition with .issues.");
  m.def(
      "to_fhir",
      [](const std::string& xml, const std::optional<std::string>& script_version, bool lenient,
         const std::string& charset, const py::object& issue_sink) {
        py::object sink = IssueSink(issue_sink);
        TransformOptions o;
        if (script_version) o.read_version = Options(*script_version).version;
        o.lenient = lenient;
        o.charset = charset;
        IssueList issues;
        StatusOr<std::string> out;
        {
          py::gil_scoped_release release;
          out = ToFhirJson(xml, issues, o);
        }
        if (!out.ok()) RaiseReporting(out.status(), issues, sink);
        // Lenient and invalid: the Bundle's OperationOutcome already carries every issue, so
        // only a caller's list gets them again; nothing is warned.
        if (!sink.is_none() || !issues.has_errors()) Report(issues, sink);
        return JsonToPython(*out);
      },
      py::arg("xml"), py::arg("script_version") = py::none(), py::arg("lenient") = false,
      py::kw_only(), py::arg("charset") = "", py::arg("issues") = py::none(),
      "NCPDP SCRIPT XML -> a FHIR R5 Bundle (dict). script_version ('2017071' or '2023011')\n"
      "forces the profile (default: the message's own version attributes; none -> 2017071).\n"
      "lenient=True: an invalid message still gives a Bundle of what could be read, its last\n"
      "entry an OperationOutcome with the issues. charset: the one its transport named (a\n"
      "Content-Type's, e.g. 'ISO-8859-1'), over the XML declaration (RFC 7303).\n"
      "What FHIR does not carry is reported:\n"
      "appended to `issues` (a list) when given, else each warning issued as an\n"
      "rxflow.DataWarning. Raises InvalidInput with .issues (and Unsupported for SCRIPT 10.6\n"
      "or a transaction RxFlow does not handle).");
  m.def(
      "check",
      [](const py::object& text_or_dict, const std::optional<std::string>& script_version,
         bool transliterate, const std::string& charset) {
        std::string text = RequestText(text_or_dict);
        TransformOptions o;
        if (script_version) o.read_version = Options(*script_version).version;
        o.newrx.transliterate = transliterate;
        o.charset = charset;
        IssueList issues;
        {
          py::gil_scoped_release release;
          (void)Check(text, issues, o);
        }
        std::vector<Issue> out(issues.begin(), issues.end());
        return out;
      },
      py::arg("text"), py::arg("script_version") = py::none(), py::kw_only(),
      py::arg("transliterate") = false, py::arg("charset") = "",
      "Validates FHIR JSON or SCRIPT XML (detected from the content); returns every issue "
      "(an empty list when clean). Never raises for invalid input. transliterate=True checks\n"
      "FHIR as to_script(..., transliterate=True) maps it; charset reads SCRIPT as to_fhir.");

  m.def(
      "totp",
      [](const std::string& secret_base32, std::optional<double> time, int digits) {
        // Finite and in range before the conversion; TotpCode checks the rest (past 9999).
        if (time && !(std::isfinite(*time) && *time >= 0 && *time < 1e12)) {
          Raise(absl::InvalidArgumentError("totp: time must be Unix seconds, 0 or later"), {});
        }
        StatusOr<std::string> code;
        {
          py::gil_scoped_release release;
          StatusOr<std::string> secret = epcs::Base32Decode(secret_base32);
          if (!secret.ok()) {
            code = secret.status();
          } else {
            epcs::TotpParams params;  // SHA-1, 30-second steps
            params.digits = digits;
            int64_t t = time ? static_cast<int64_t>(std::floor(*time))
                             : SystemClock().NowMicros() / 1'000'000;
            code = epcs::TotpCode(*secret, t, params);
            explicit_bzero(secret->data(), secret->size());
          }
        }
        if (!code.ok()) Raise(code.status(), {});
        return *code;
      },
      py::arg("secret_base32"), py::arg("time") = py::none(), py::arg("digits") = 6,
      "The TOTP code (RFC 6238: HMAC-SHA-1, 30-second steps from 0) of a base32 secret at\n"
      "`time` (Unix seconds; default now), `digits` 6, 7 or 8 long. For tests and demos: it\n"
      "is what the prescriber's authenticator app shows. Raises InvalidInput for a bad secret\n"
      "(not base32, under 16 bytes), time or digits.");
  m.def(
      "verify_prescription_signature",
      [](const std::string& script_xml, const std::string& trust_anchors_pem,
         const std::optional<std::string>& crl) {
        Status status;
        epcs::SignatureVerification v;
        {
          py::gil_scoped_release release;
          epcs::TrustStore trust;
          status = trust.AddAnchor(trust_anchors_pem);
          if (status.ok() && crl) status = trust.AddCrl(*crl);
          if (status.ok()) v = epcs::VerifyPrescriptionSignature(script_xml, trust);
        }
        if (!status.ok()) Raise(status, {});
        py::dict out;
        out["ok"] = v.ok();
        out["check"] = std::string(epcs::SignatureCheckName(v.result));
        out["reason"] = v.reason;
        out["signer"] = v.signer_subject;
        return out;
      },
      py::arg("script_xml"), py::arg("trust_anchors_pem"), py::arg("crl") = py::none(),
      "The pharmacy's check of a signed controlled-substance NewRx (21 CFR 1311.205, .210):\n"
      "the digest of the Part 1306 content, the signature, the certificate naming the\n"
      "prescriber's DEA number, its chain to the trust anchors (PEM, one or more blocks, or\n"
      "DER) and the CRL (PEM or DER). Without a CRL the check fails closed (crl_unavailable).\n"
      "Returns {'ok', 'check' (ok, not_newrx, unsigned, malformed, digest_mismatch,\n"
      "bad_signature, not_prescriber, untrusted, expired, revoked, crl_unavailable), 'reason',\n"
      "'signer' (the certificate subject)}. Raises InvalidInput only for unreadable anchors or\n"
      "CRL.");

  py::class_<PySubmission>(m, "Submission", "The result of PrescriptionService.submit.")
      .def_readonly("id", &PySubmission::id)
      .def_readonly("status", &PySubmission::status, "state name, e.g. 'Transformed'")
      .def_readonly("created", &PySubmission::created,
                    "False when an earlier submission was returned (same content or key)")
      .def_readonly("idempotency_key", &PySubmission::idempotency_key)
      .def_readonly("is_controlled", &PySubmission::is_controlled)
      .def_readonly("created_at", &PySubmission::created_at)
      .def_readonly("interactions", &PySubmission::interactions,
                    "drug-drug interactions found against the patient's active prescriptions "
                    "(dicts: rule_id, severity, summary, citation, ingredient, other_ingredient, "
                    "other = the other prescription's id, ...)")
      .def("__repr__", [](const PySubmission& s) {
        return "<rxflow.Submission " + s.id + " " + s.status + (s.created ? ">" : " (earlier)>");
      });

  py::class_<PyService>(
      m, "PrescriptionService",
      "Stores prescriptions as events (SQLite or PostgreSQL). Use as a context manager.")
      .def_static("open", &PyService::Open, py::arg("url"), py::arg("patient_key") = py::none(),
                  py::arg("script_version") = "2023011", py::kw_only(),
                  py::arg("interactions") = "warn", py::arg("phi_kek") = py::none(),
                  py::arg("transliterate") = false,
                  "Opens sqlite:///path/to/db or postgresql://user@host/db. patient_key (>= 16 "
                  "bytes) keys the patient part of idempotency keys; default RXFLOW_PATIENT_KEY, "
                  "or for SQLite a random key kept beside the database. Drugs are looked up in "
                  "the starter formulary; interactions='warn' (default), 'block' or 'off' "
                  "screens each new prescription against the patient's (ONC High-Priority list). "
                  "The NewRx is stored encrypted (PHI at rest): phi_kek names the key-encryption "
                  "key, 'file:PATH', 'hybrid:PATH', 'pkcs11:LABEL' or 'off'; default "
                  "RXFLOW_PHI_KEK, or for SQLite 'file:' phi.kek beside the database (PostgreSQL "
                  "needs one). transliterate=True: submit sends text SCRIPT cannot carry as "
                  "printable ASCII (as to_script).")
      .def("submit", &PyService::Submit, py::arg("request"),
           py::arg("idempotency_key") = py::none(), py::kw_only(), py::arg("issues") = py::none(),
           "Transforms and stores a prescription; the same content again returns the same id.\n"
           "What the NewRx does not carry is reported: appended to `issues` (a list) when given,\n"
           "else each warning issued as an rxflow.DataWarning.")
      .def("get", &PyService::Get, py::arg("id"), "The prescription's summary (dict).")
      .def("events", &PyService::Events, py::arg("id"), "The prescription's events, oldest first.")
      .def("route", &PyService::Route, py::arg("id"), "Queues the prescription for its pharmacy.")
      .def("cancel", &PyService::Cancel, py::arg("id"), py::arg("reason") = "",
           "Cancels the prescription.")
      .def("query_pdmp", &PyService::QueryPdmp, py::arg("id"), py::arg("pdmp_url"),
           py::arg("token") = py::none(), py::arg("ca_file") = py::none(),
           py::arg("timeout") = 15.0,
           "PDMP: asks the FHIR PDMP at pdmp_url ($pdmp-history; https, or http on loopback\n"
           "such as `rxflow pmp simulator`) for the prescription's patient's controlled-\n"
           "substance history, as its prescriber, and records the query on the prescription\n"
           "(PdmpQueried). Returns the answer as the HTTP API's pdmp-query route does:\n"
           "outcome (found, report, not-found, error, unavailable), dispensings, ... A PDMP\n"
           "that cannot be reached is outcome 'unavailable', recorded too.")
      .def("setup_epcs_demo", &PyService::SetUpEpcsDemo, py::arg("directory") = py::none(),
           "EPCS: sets up the demo prescriber of `rxflow serve` on this store (a SoftHSM2 token,\n"
           "a development CA, dr-lindqvist with DEA BL4721052 permitted to sign) under\n"
           "<directory>/epcs (default: the SQLite database's directory), reused when there.\n"
           "Returns prescriber, dea_number, password, totp_secret (base32), otpauth_uri,\n"
           "directory, ca_certificate_pem, crl_pem. Not for production. FailedPrecondition when\n"
           "SoftHSM2 is not installed; RuntimeError in a build without PKCS#11 support.")
      .def("signing_bundle", &PyService::SigningBundle, py::arg("id"), py::arg("practitioner"),
           "EPCS: what the practitioner reviews before ready and sign (the Part 1306 fields, the\n"
           "attestation, their sha256), as the HTTP API's GET .../signing-bundle.")
      .def("ready", &PyService::Ready, py::arg("id"), py::arg("practitioner"),
           py::arg("dea_number"), py::arg("bundle_sha256"),
           "EPCS: marks the prescription ready for the bundle reviewed, under that DEA number.\n"
           "Returns the summary (as get()).")
      .def("sign", &PyService::Sign, py::arg("id"), py::arg("practitioner"),
           py::arg("bundle_sha256"), py::arg("password"), py::arg("otp"),
           "EPCS: signs with two factors (password and TOTP code); the signed NewRx is queued for\n"
           "the pharmacy. Returns the summary (as get()). Unauthenticated for failed factors.")
      .def("close", &PyService::Close, "Closes the store.")
      .def(
          "__enter__", [](PyService& s) -> PyService& { return s; },
          py::return_value_policy::reference)
      .def("__exit__", [](PyService& s, py::object, py::object, py::object) { s.Close(); });

  // The classes are the package's: rxflow.Issue, not rxflow._rxflow.Issue, in reprs and
  // tracebacks (the exceptions are named "rxflow.<Name>" where they are made).
  for (const char* name : {"Issue", "Submission", "PrescriptionService"}) {
    m.attr(name).attr("__module__") = "rxflow";
  }
}
