// SPDX-License-Identifier: Apache-2.0
#include "epcs_demo.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>

#include "rxflow/clock.h"
#include "rxflow/epcs/dev_ca.h"
#include "rxflow/epcs/factors.h"
#include "rxflow/internal/files.h"
#include "rxflow/pkcs11/token.h"

#include <sys/stat.h>

namespace rxflow::app {
namespace {

namespace fs = std::filesystem;

constexpr const char* kApprover = "dr-patel";
constexpr const char* kToken = "rxflow-demo";
constexpr const char* kAuditKey = "audit-checkpoints";

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Atomic, 0600 from the start (never readable by others for a moment).
Status WritePrivateFile(const fs::path& p, const std::string& content) {
  return rxflow::internal::WritePrivateFile(p.string(), content);
}

std::string RandomText(size_t bytes) {
  auto secret = epcs::NewTotpSecret();  // CSPRNG bytes (20)
  std::string out = secret.ok() ? epcs::Base32Encode(*secret) : std::string();
  return out.substr(0, bytes);
}

// The file's content, or `make()` written to it (0600) at first use.
StatusOr<std::string> Kept(const fs::path& p, const std::function<std::string()>& make) {
  if (fs::exists(p)) return Slurp(p);
  std::string v = make();
  if (v.empty()) return absl::InternalError("epcs demo: no random bytes");
  if (Status s = WritePrivateFile(p, v); !s.ok()) return s;
  return v;
}

std::string TwoYearsFromNow() {
  return FormatRfc3339(SystemClock().NowMicros() + int64_t{730} * 86400 * 1'000'000).substr(0, 10);
}

}  // namespace

StatusOr<std::unique_ptr<EpcsDemo>> SetUpEpcsDemo(const std::string& data_dir, store::Store& store,
                                                  PrescriptionService& service,
                                                  const std::string& source) {
  std::string module = pkcs11::SoftHsmModulePath();
  if (module.empty()) {
    return absl::FailedPreconditionError("SoftHSM2 is not installed (scripts/install-deps.sh)");
  }
  auto demo = std::make_unique<EpcsDemo>();
  fs::path dir = fs::path(data_dir.empty() ? "." : data_dir) / "epcs";
  demo->dir = dir.string();
  fs::create_directories(dir / "tokens");
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
  const char* configured = std::getenv("SOFTHSM2_CONF");
  if (configured == nullptr || *configured == '\0') {
    fs::path conf = dir / "softhsm2.conf";
    if (!fs::exists(conf)) {
      Status s = WritePrivateFile(conf, "directories.tokendir = " + (dir / "tokens").string() +
                                            "\nobjectstore.backend = file\nlog.level = ERROR\n");
      if (!s.ok()) return s;
    }
    ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);
  }

  // The token and its keys: generated on it, never leaving it.
  auto random_pin = [] { return RandomText(16); };
  StatusOr<std::string> so_pin = Kept(dir / "token.so-pin", random_pin);
  StatusOr<std::string> pin = Kept(dir / "token.pin", random_pin);
  if (!so_pin.ok()) return so_pin.status();
  if (!pin.ok()) return pin.status();
  pkcs11::TokenRef token{module, kToken, *pin};
  if (Status s = pkcs11::InitToken(token, *so_pin); !s.ok() && !absl::IsAlreadyExists(s)) {
    return s;
  }
  const std::string prescriber_key = std::string("prescriber-") + kDemoPrescriber;
  for (const std::string& label : {prescriber_key, std::string(kAuditKey)}) {
    StatusOr<bool> has = pkcs11::HasKey(token, label);
    if (!has.ok()) return has.status();
    if (!*has) {
      StatusOr<std::string> spki = pkcs11::GenerateSigningKey(token, label);
      if (!spki.ok()) return spki.status();
    }
  }
  StatusOr<std::unique_ptr<epcs::Signer>> audit_signer = pkcs11::OpenSigner(token, kAuditKey);
  if (!audit_signer.ok()) return audit_signer.status();
  demo->audit_signer = std::move(*audit_signer);
  // The checkpoints' public key, for `rxflow audit verify --checkpoint-key`.
  StatusOr<std::string> audit_key = demo->audit_signer->PublicKeyDer();
  if (!audit_key.ok()) return audit_key.status();
  if (Status s = WritePrivateFile(dir / "audit-checkpoint.pub.der", *audit_key); !s.ok()) return s;

  // The development CA, the prescriber's certificate, a fresh CRL at each start.
  StatusOr<epcs::DevCa> ca =
      fs::exists(dir / "ca.key.pem")
          ? epcs::DevCa::Load(Slurp(dir / "ca.cert.pem"), Slurp(dir / "ca.key.pem"))
          : epcs::DevCa::Create("RxFlow demo CA");
  if (!ca.ok()) return ca.status();
  if (!fs::exists(dir / "ca.key.pem")) {
    if (Status s = WritePrivateFile(dir / "ca.key.pem", ca->KeyPem()); !s.ok()) return s;
    if (Status s = WritePrivateFile(dir / "ca.cert.pem", ca->CertificatePem()); !s.ok()) return s;
  }
  StatusOr<std::unique_ptr<epcs::Signer>> prescriber_signer =
      pkcs11::OpenSigner(token, prescriber_key);
  if (!prescriber_signer.ok()) return prescriber_signer.status();
  StatusOr<std::string> spki = (*prescriber_signer)->PublicKeyDer();
  if (!spki.ok()) return spki.status();
  StatusOr<std::string> cert = Kept(dir / "prescriber.cert.der", [&] {
    auto c = ca->IssuePrescriber(*spki, "Rebecca Lindqvist", kDemoDea);
    return c.ok() ? *c : std::string();
  });
  if (!cert.ok()) return cert.status();
  StatusOr<std::string> crl = ca->Crl({}, /*days=*/30);  // renewed at each start
  if (!crl.ok()) return crl.status();
  demo->trust = std::make_shared<epcs::TrustStore>();
  if (Status s = demo->trust->AddAnchor(ca->CertificatePem()); !s.ok()) return s;
  if (Status s = demo->trust->AddCrl(*crl); !s.ok()) return s;
  demo->ca_pem = ca->CertificatePem();
  demo->crl_pem = *crl;

  // RxFlow's ML-DSA-65 co-signing key (a key file: the token has no ML-DSA mechanism) and
  // its raw public key, for `rxflow audit verify --cosign-key`.
  StatusOr<std::unique_ptr<epcs::CoSigner>> cosigner =
      epcs::OpenCoSignerKeyFile((dir / "mldsa65.key").string());
  if (!cosigner.ok()) return cosigner.status();
  demo->cosigner = std::move(*cosigner);
  if (Slurp(dir / "mldsa65.pub") != demo->cosigner->PublicKey()) {
    if (Status s = WritePrivateFile(dir / "mldsa65.pub", demo->cosigner->PublicKey()); !s.ok()) {
      return s;
    }
  }

  // The audit chain and the ceremony, signing with keys on the token, co-signing with
  // ML-DSA-65.
  epcs::AuditTrailOptions ao;
  ao.checkpoint_signer = demo->audit_signer.get();
  ao.checkpoint_cosigner = demo->cosigner.get();
  ao.system_actor = source;
  demo->audit = std::make_unique<epcs::AuditTrail>(store, SystemClock(), ao);
  epcs::CeremonyOptions co;
  co.source = source;
  co.record_cosigner = demo->cosigner.get();
  co.sender_trust = demo->trust;  // T-5.4: the development CA and its CRL
  auto signers = std::make_shared<std::map<std::string, std::shared_ptr<epcs::Signer>>>();
  auto signers_mu = std::make_shared<std::mutex>();
  co.signer_for = [token, signers, signers_mu](
                      const epcs::PractitionerView&,
                      const std::string& label) -> StatusOr<std::shared_ptr<epcs::Signer>> {
    std::lock_guard lock(*signers_mu);
    auto it = signers->find(label);
    if (it != signers->end()) return it->second;
    StatusOr<std::unique_ptr<epcs::Signer>> s = pkcs11::OpenSigner(token, label);
    if (!s.ok()) return s.status();
    std::shared_ptr<epcs::Signer> shared = std::move(*s);
    signers->emplace(label, shared);
    return shared;
  };
  demo->ceremony =
      std::make_unique<epcs::Ceremony>(service, store, *demo->audit, SystemClock(), co);

  // The demo practitioners, enrolled once; signing granted by the second under the
  // two-person rule, entered by "demo-admin".
  auto secret = [] {
    auto s = epcs::NewTotpSecret();
    return s.ok() ? *s : std::string();
  };
  StatusOr<std::string> password =
      Kept(dir / "dr-lindqvist.password", [] { return RandomText(20); });
  StatusOr<std::string> totp = Kept(dir / "dr-lindqvist.totp", secret);
  StatusOr<std::string> approver_password =
      Kept(dir / "dr-patel.password", [] { return RandomText(20); });
  StatusOr<std::string> approver_totp = Kept(dir / "dr-patel.totp", secret);
  for (const auto* s : {&password, &totp, &approver_password, &approver_totp}) {
    if (!s->ok()) return s->status();
  }
  auto enroll = [&](const char* id, const char* first, const char* last, const char* dea,
                    const std::string& pw, const std::string& secret_bytes,
                    const std::string& certificate, const std::string& key_label) -> Status {
    if (demo->ceremony->Practitioner(id).ok()) return absl::OkStatus();
    epcs::PractitionerEnrollment p;
    p.id = id;
    p.first_name = first;
    p.last_name = last;
    p.registrations.push_back({dea, {"2", "2N", "3", "3N", "4", "5"}, "OH", TwoYearsFromNow()});
    p.identity_proofed_by = "RxFlow demo (no identity proofing: not for production)";
    p.credential_issuer = "RxFlow demo CA";
    p.password = pw;
    p.totp_secret = secret_bytes;
    p.certificate_der = certificate;
    p.key_label = key_label;
    return demo->ceremony->Enroll(p, "demo-admin");
  };
  if (Status s = enroll(kDemoPrescriber, "Rebecca", "Lindqvist", kDemoDea, *password, *totp, *cert,
                        prescriber_key);
      !s.ok()) {
    return s;
  }
  if (Status s = enroll(kApprover, "Arun", "Patel", "AP5836727", *approver_password, *approver_totp,
                        "", "");
      !s.ok()) {
    return s;
  }
  StatusOr<epcs::PractitionerView> view = demo->ceremony->Practitioner(kDemoPrescriber);
  if (!view.ok()) return view.status();
  if (!view->may_sign) {
    StatusOr<std::string> proposal =
        demo->ceremony->Propose(kDemoPrescriber, epcs::Permission::kSign, true, "demo-admin");
    if (!proposal.ok()) return proposal.status();
    StatusOr<std::string> code =
        epcs::TotpCode(*approver_totp, SystemClock().NowMicros() / 1'000'000);
    if (!code.ok()) return code.status();
    Status approved =
        demo->ceremony->Approve(kDemoPrescriber, *proposal, kApprover, {*approver_password, *code});
    if (!approved.ok()) return approved;
  }
  demo->password = *password;
  demo->totp_base32 = epcs::Base32Encode(*totp);
  demo->otpauth_uri = epcs::OtpauthUri("RxFlow demo", kDemoPrescriber, *totp);
  return demo;
}

}  // namespace rxflow::app
