// SPDX-License-Identifier: Apache-2.0
// The NewRx digital signature (21 CFR 1311.140/.145/.205/.210): the canonical Part 1306 text,
// Header/DigitalSignature in both SCRIPT versions, and the pharmacy's verification against a
// PKI built at run time: valid, tampered, re-signed by another key, another prescriber's
// certificate, untrusted, expired, revoked, stale or missing CRL. The signature is also
// checked by the `openssl` command line, and made by a key on a SoftHSM2 token.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include "rxflow/epcs/signature.h"
#include "rxflow/internal/crypto.h"
#include "rxflow/script/xml.h"

#include "epcs_pki.h"
#include "testing/files.h"
#include "testing/status.h"
#include <unistd.h>
#if RXFLOW_TEST_HAVE_PKCS11
#include "rxflow/pkcs11/token.h"
#endif

namespace {

using rxflow::IssueList;
using rxflow::epcs::SignatureCheck;
using rxflow::testing::Pki;
namespace epcs = rxflow::epcs;
namespace script = rxflow::script;

constexpr const char* kDea = "BL4721052";  // the golden oxycodone fixture's prescriber

script::Message OxycodoneNewRx(script::Version v = script::Version::k2017071) {
  std::string name = v == script::Version::k2017071 ? "golden/schedule2_oxycodone.2017071.xml"
                                                    : "golden/schedule2_oxycodone.2023011.xml";
  IssueList issues;
  auto m = script::ReadXml(rxflow::testing::ReadFixture(name), issues);
  RXFLOW_REQUIRE_OK(m);
  return *m;
}

std::string Write(const script::Message& m, script::Version v = script::Version::k2017071) {
  IssueList issues;
  script::WriteOptions wo;
  wo.profile = &script::BuiltinProfile(v);
  auto xml = script::WriteXml(m, issues, wo);
  INFO(issues.size());
  RXFLOW_REQUIRE_OK(xml);
  return *xml;
}

std::string Spki(epcs::Signer& s) {
  auto k = s.PublicKeyDer();
  RXFLOW_REQUIRE_OK(k);
  return *k;
}

// A signer, its certificate from the test PKI, and a trust store that trusts the PKI.
struct Setup {
  Pki pki;
  std::unique_ptr<epcs::Signer> signer = epcs::NewInMemorySigner();
  Pki::Cert cert = pki.Prescriber(Spki(*signer), "Rebecca Lindqvist", kDea);
  epcs::TrustStore trust;

  Setup() {
    RXFLOW_REQUIRE_OK(trust.AddAnchor(Pki::Pem(pki.root.get())));
    RXFLOW_REQUIRE_OK(trust.AddIntermediate(Pki::Der(pki.intermediate.get())));
    RXFLOW_REQUIRE_OK(trust.AddCrl(pki.Crl({})));
    RXFLOW_REQUIRE_OK(trust.AddCrl(pki.Crl({}, -3600, 7 * Pki::kDay, /*of_root=*/true)));
  }

  std::string SignedXml(script::Version v = script::Version::k2017071) {
    script::Message m = OxycodoneNewRx(v);
    RXFLOW_REQUIRE_OK(epcs::SignNewRx(m, *signer, Pki::Der(cert.get())));
    return Write(m, v);
  }
};

void Replace(std::string& s, const std::string& from, const std::string& to) {
  size_t at = s.find(from);
  REQUIRE(at != std::string::npos);
  s.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("the Part 1306 canonical text lists every field in order, escaped") {
  script::Message m = OxycodoneNewRx();
  auto& rx = std::get<script::NewRx>(m.body);
  rx.medication_prescribed.sig->sig_text = "take 1|2 tablets\nat night \\ as needed";
  std::string text = epcs::CanonicalPart1306(epcs::Part1306Fields(rx));
  CHECK(text.rfind("RxFlow-EPCS-Part1306/1\nIssueDate=", 0) == 0);
  CHECK(text.find("\nPatientName=Brennan|Thomas|Liam||\n") != std::string::npos);
  CHECK(text.find("\nPatientAddress=2290 Maple Terrace Dr||Columbus|OH|43215|US\n") !=
        std::string::npos);
  CHECK(text.find("\nDirections=take 1\\|2 tablets\\nat night \\\\ as needed\n") !=
        std::string::npos);
  CHECK(text.find("\nPrescriberDEA=BL4721052\n") != std::string::npos);
  CHECK(text.find("\nDEASchedule=C48675\n") != std::string::npos);
  // Sixteen fields, one line each, after the header line.
  CHECK(std::count(text.begin(), text.end(), '\n') == 17);
  const char* order[] = {
      "IssueDate",      "PatientName",       "PatientAddress", "DrugDescription",
      "DrugCode",       "Strength",          "DEASchedule",    "Quantity",
      "DaysSupply",     "Directions",        "Refills",        "EarliestFillDate",
      "PrescriberName", "PrescriberAddress", "PrescriberDEA",  "PrescriberNPI"};
  size_t at = 0;
  for (const char* name : order) {
    size_t next = text.find(std::string("\n") + name + "=", at);
    CHECK_MESSAGE(next != std::string::npos, name);
    at = next + 1;
  }
}

TEST_CASE("a signed NewRx passes the structure check of both versions and verifies") {
  for (script::Version v : {script::Version::k2017071, script::Version::k2023011}) {
    CAPTURE(script::VersionName(v));
    Setup s;
    std::string xml = s.SignedXml(v);
    CHECK(xml.find("<DigitalSignature Version=\"1.1\"><DigestMethod>SHA-256</DigestMethod>") !=
          std::string::npos);
    IssueList issues;
    script::ReadOptions ro;
    ro.version = v;
    CHECK(script::ValidateXml(xml, issues, ro).ok());
    epcs::SignatureVerification r = epcs::VerifyPrescriptionSignature(xml, s.trust);
    CHECK_MESSAGE(r.ok(), r.reason);
    CHECK(r.signer_subject.find("serialNumber=BL4721052") != std::string::npos);
  }
}

TEST_CASE("the signature survives conversion between SCRIPT versions (21 CFR 1311.170(e))") {
  Setup s;
  std::string xml2017 = s.SignedXml(script::Version::k2017071);
  IssueList issues;
  auto read = script::ReadXml(xml2017, issues);
  RXFLOW_REQUIRE_OK(read);
  std::string xml2023 = Write(*read, script::Version::k2023011);
  CHECK(epcs::VerifyPrescriptionSignature(xml2023, s.trust).ok());
}

TEST_CASE("a changed Part 1306 field is a digest mismatch naming DigestValue") {
  Setup s;
  std::string xml = s.SignedXml();
  Replace(xml, "<Value>20</Value>", "<Value>200</Value>");  // the quantity
  epcs::SignatureVerification r = epcs::VerifyPrescriptionSignature(xml, s.trust);
  CHECK(r.result == SignatureCheck::kDigestMismatch);
  CHECK(r.reason.find("/Message/Header/DigitalSignature/DigestValue") != std::string::npos);
}

TEST_CASE("a digest recomputed by a forger fails the signature") {
  Setup s;
  script::Message m = OxycodoneNewRx();
  RXFLOW_REQUIRE_OK(epcs::SignNewRx(m, *s.signer, Pki::Der(s.cert.get())));
  auto& rx = std::get<script::NewRx>(m.body);
  rx.medication_prescribed.quantity->value = "600";
  m.header.digital_signature->digest_value = rxflow::internal::Base64Encode(
      rxflow::internal::Sha256Bytes(epcs::CanonicalPart1306(epcs::Part1306Fields(rx))));
  CHECK(epcs::VerifyPrescriptionSignature(m, s.trust).result == SignatureCheck::kBadSignature);
}

TEST_CASE("a signature by another key with the prescriber's certificate fails") {
  Setup s;
  script::Message m = OxycodoneNewRx();
  auto other = epcs::NewInMemorySigner();
  // SignNewRx refuses a certificate that is not the signer's ...
  CHECK(epcs::SignNewRx(m, *other, Pki::Der(s.cert.get())).code() ==
        absl::StatusCode::kFailedPrecondition);
  // ... and a forger who splices it in is caught.
  auto forged_cert = s.pki.Prescriber(Spki(*other), "Mallory", kDea);
  RXFLOW_REQUIRE_OK(epcs::SignNewRx(m, *other, Pki::Der(forged_cert.get())));
  m.header.digital_signature->x509_data = rxflow::internal::Base64Encode(Pki::Der(s.cert.get()));
  CHECK(epcs::VerifyPrescriptionSignature(m, s.trust).result == SignatureCheck::kBadSignature);
}

TEST_CASE("a certificate of another prescriber is refused") {
  Setup s;
  auto other_cert = s.pki.Prescriber(Spki(*s.signer), "Someone Else", "AP5836727");
  script::Message m = OxycodoneNewRx();
  RXFLOW_REQUIRE_OK(epcs::SignNewRx(m, *s.signer, Pki::Der(other_cert.get())));
  CHECK(epcs::VerifyPrescriptionSignature(m, s.trust).result == SignatureCheck::kNotPrescriber);
}

TEST_CASE("chain, expiry and revocation failures name their step") {
  Setup s;
  script::Message m = OxycodoneNewRx();
  RXFLOW_REQUIRE_OK(epcs::SignNewRx(m, *s.signer, Pki::Der(s.cert.get())));

  SUBCASE("an untrusted root") {
    epcs::TrustStore other;
    Pki stranger;
    RXFLOW_REQUIRE_OK(other.AddAnchor(Pki::Pem(stranger.root.get())));
    RXFLOW_REQUIRE_OK(other.AddIntermediate(Pki::Der(s.pki.intermediate.get())));
    CHECK(epcs::VerifyPrescriptionSignature(m, other).result == SignatureCheck::kUntrusted);
  }
  SUBCASE("a revoked certificate") {
    RXFLOW_REQUIRE_OK(s.trust.AddCrl(s.pki.Crl({Pki::Serial(s.cert.get())}, -60)));
    epcs::SignatureVerification r = epcs::VerifyPrescriptionSignature(m, s.trust);
    CHECK(r.result == SignatureCheck::kRevoked);
    CHECK(r.reason.find("revoked") != std::string::npos);
  }
  SUBCASE("a stale CRL fails closed") {
    epcs::TrustStore stale;
    RXFLOW_REQUIRE_OK(stale.AddAnchor(Pki::Pem(s.pki.root.get())));
    RXFLOW_REQUIRE_OK(stale.AddIntermediate(Pki::Der(s.pki.intermediate.get())));
    RXFLOW_REQUIRE_OK(stale.AddCrl(s.pki.Crl({}, -8 * Pki::kDay, -Pki::kDay)));
    RXFLOW_REQUIRE_OK(stale.AddCrl(s.pki.Crl({}, -3600, 7 * Pki::kDay, true)));
    CHECK(epcs::VerifyPrescriptionSignature(m, stale).result == SignatureCheck::kCrlUnavailable);
    // A fresh CRL of the same issuer replaces it.
    RXFLOW_REQUIRE_OK(stale.AddCrl(s.pki.Crl({})));
    CHECK(epcs::VerifyPrescriptionSignature(m, stale).ok());
  }
  SUBCASE("no CRL at all fails closed") {
    epcs::TrustStore none;
    RXFLOW_REQUIRE_OK(none.AddAnchor(Pki::Pem(s.pki.root.get())));
    RXFLOW_REQUIRE_OK(none.AddIntermediate(Pki::Der(s.pki.intermediate.get())));
    CHECK(epcs::VerifyPrescriptionSignature(m, none).result == SignatureCheck::kCrlUnavailable);
  }
  SUBCASE("an expired certificate") {
    auto old =
        s.pki.Prescriber(Spki(*s.signer), "Rebecca Lindqvist", kDea, -30 * Pki::kDay, -Pki::kDay);
    script::Message m2 = OxycodoneNewRx();
    RXFLOW_REQUIRE_OK(epcs::SignNewRx(m2, *s.signer, Pki::Der(old.get())));
    CHECK(epcs::VerifyPrescriptionSignature(m2, s.trust).result == SignatureCheck::kExpired);
  }
}

TEST_CASE("a signing certificate must name the DEA number, sign, not be a CA, and be valid") {
  Setup s;
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  std::string der = Pki::Der(s.cert.get());
  CHECK(epcs::CheckSigningCertificate(der, "BL4721052", now).ok());
  CHECK(epcs::CheckSigningCertificate(der, "BL4721052-001AB", now).ok());  // the registrant's
  CHECK(epcs::CheckSigningCertificate(der, "AP5836727", now).code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(epcs::CheckSigningCertificate(der, "BL4721052", now + 400 * Pki::kDay).code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(
      epcs::CheckSigningCertificate(Pki::Der(s.pki.intermediate.get()), "BL4721052", now).code() ==
      absl::StatusCode::kFailedPrecondition);
  CHECK(epcs::CheckSigningCertificate("junk", "BL4721052", now).code() ==
        absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("every EffectiveDate is signed: a second one cannot hide behind the first") {
  script::Message m = OxycodoneNewRx();
  auto& rx = std::get<script::NewRx>(m.body);
  rx.medication_prescribed.other_medication_date.push_back({{"2026-12-01", ""}, "EffectiveDate"});
  std::string one = epcs::CanonicalPart1306(epcs::Part1306Fields(rx));
  CHECK(one.find("\nEarliestFillDate=2026-12-01\n") != std::string::npos);
  rx.medication_prescribed.other_medication_date.push_back({{"2026-11-22", ""}, "EffectiveDate"});
  std::string two = epcs::CanonicalPart1306(epcs::Part1306Fields(rx));
  CHECK(two.find("\nEarliestFillDate=2026-12-01|2026-11-22\n") != std::string::npos);
}

TEST_CASE("unsigned and malformed signatures are named") {
  Setup s;
  script::Message m = OxycodoneNewRx();
  CHECK(epcs::VerifyPrescriptionSignature(m, s.trust).result == SignatureCheck::kUnsigned);
  m.header.digital_signature = script::DigitalSignature{};
  m.header.digital_signature->version = "1.1";
  m.header.digital_signature->indicator = true;
  CHECK(epcs::VerifyPrescriptionSignature(m, s.trust).result == SignatureCheck::kUnsigned);

  RXFLOW_REQUIRE_OK(epcs::SignNewRx(m, *s.signer, Pki::Der(s.cert.get())));
  script::Message bad = m;
  bad.header.digital_signature->digest_method = "SHA-1";
  CHECK(epcs::VerifyPrescriptionSignature(bad, s.trust).result == SignatureCheck::kMalformed);
  bad = m;
  bad.header.digital_signature->signature_value = "not base64!";
  epcs::SignatureVerification r = epcs::VerifyPrescriptionSignature(bad, s.trust);
  CHECK(r.result == SignatureCheck::kMalformed);
  CHECK(r.reason == "/Message/Header/DigitalSignature/SignatureValue is not base64");
  bad = m;
  bad.header.digital_signature->x509_data = "AAAA";
  CHECK(epcs::VerifyPrescriptionSignature(bad, s.trust).result == SignatureCheck::kMalformed);
  CHECK(epcs::VerifyPrescriptionSignature("<Message/>", s.trust).result ==
        SignatureCheck::kNotNewRx);
}

TEST_CASE("the openssl command line verifies the signature over the canonical text") {
  Setup s;
  script::Message m = OxycodoneNewRx();
  RXFLOW_REQUIRE_OK(epcs::SignNewRx(m, *s.signer, Pki::Der(s.cert.get())));
  const script::DigitalSignature& ds = *m.header.digital_signature;
  auto dir = std::filesystem::temp_directory_path() /
             ("rxflow-epcs-openssl-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  rxflow::testing::WriteFile(
      dir / "content.txt",
      epcs::CanonicalPart1306(epcs::Part1306Fields(std::get<script::NewRx>(m.body))));
  rxflow::testing::WriteFile(dir / "sig.b64", ds.signature_value + "\n");
  rxflow::testing::WriteFile(dir / "cert.b64", ds.x509_data + "\n");
  std::string d = dir.string();
  std::string cmd = "cd " + d +
                    " && openssl base64 -d -in sig.b64 -out sig.der"
                    " && openssl base64 -d -in cert.b64 -out cert.der"
                    " && openssl x509 -inform DER -in cert.der -pubkey -noout > pub.pem"
                    " && openssl dgst -sha256 -verify pub.pem -signature sig.der content.txt"
                    " && openssl dgst -sha256 -binary content.txt | openssl base64 -A";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[256];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int rc = ::pclose(p);
  std::filesystem::remove_all(dir);
  CHECK(rc == 0);
  CHECK(out == "Verified OK\n" + ds.digest_value);
}

#if RXFLOW_TEST_HAVE_PKCS11
namespace {

// A SoftHSM2 token directory of this test process's own (SOFTHSM2_CONF is read when the
// module is first initialised, once per process).
std::string SoftHsmForTests() {
  static const std::string dir = [] {
    auto d =
        std::filesystem::temp_directory_path() / ("rxflow-softhsm-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d / "tokens");
    rxflow::testing::WriteFile(d / "softhsm2.conf",
                               "directories.tokendir = " + (d / "tokens").string() +
                                   "\nobjectstore.backend = file\n"
                                   "log.level = ERROR\n");
    ::setenv("SOFTHSM2_CONF", (d / "softhsm2.conf").c_str(), 1);
    std::atexit([] {
      std::filesystem::remove_all(std::filesystem::temp_directory_path() /
                                  ("rxflow-softhsm-" + std::to_string(::getpid())));
    });
    return d.string();
  }();
  return dir;
}

// A new token on this process's SoftHSM2, initialised with `pin` (the SO PIN is fixed).
rxflow::pkcs11::TokenRef NewTestToken(const std::string& label, const std::string& pin) {
  SoftHsmForTests();
  std::string module = rxflow::pkcs11::SoftHsmModulePath();
  REQUIRE_MESSAGE(!module.empty(), "SoftHSM2 is not installed (scripts/install-deps.sh)");
  rxflow::pkcs11::TokenRef ref{module, label, pin};
  RXFLOW_REQUIRE_OK(rxflow::pkcs11::InitToken(ref, "so-pin-for-tests"));
  return ref;
}

}  // namespace

TEST_CASE("a key generated on a SoftHSM2 token signs a NewRx that verifies") {
  namespace p11 = rxflow::pkcs11;
  p11::TokenRef ref = NewTestToken("rxflow-test-sig", "4711-test-pin");
  const std::string& module = ref.module_path;
  CHECK(p11::InitToken(ref, "so-pin-for-tests").code() == absl::StatusCode::kAlreadyExists);
  // (Before any session is logged in: PKCS#11 logs in the application, not a session.)
  p11::TokenRef wrong = ref;
  wrong.pin = "wrong-pin";
  CHECK(p11::OpenSigner(wrong, "prescriber-BL4721052").status().code() ==
        absl::StatusCode::kPermissionDenied);
  auto spki = p11::GenerateSigningKey(ref, "prescriber-BL4721052");
  RXFLOW_REQUIRE_OK(spki);
  CHECK(p11::GenerateSigningKey(ref, "prescriber-BL4721052").status().code() ==
        absl::StatusCode::kAlreadyExists);
  CHECK(*p11::HasKey(ref, "prescriber-BL4721052"));
  CHECK_FALSE(*p11::HasKey(ref, "nobody"));

  auto signer = p11::OpenSigner(ref, "prescriber-BL4721052");
  RXFLOW_REQUIRE_OK(signer);
  CHECK(*(*signer)->PublicKeyDer() == *spki);
  auto signature = (*signer)->Sign("hello");
  RXFLOW_REQUIRE_OK(signature);
  CHECK(epcs::VerifyEcdsaSha256(*spki, "hello", *signature).ok());
  CHECK_FALSE(epcs::VerifyEcdsaSha256(*spki, "hellO", *signature).ok());

  Setup s;
  auto cert = s.pki.Prescriber(*spki, "Rebecca Lindqvist", kDea);
  script::Message m = OxycodoneNewRx();
  RXFLOW_REQUIRE_OK(epcs::SignNewRx(m, **signer, Pki::Der(cert.get())));
  epcs::SignatureVerification r = epcs::VerifyPrescriptionSignature(Write(m), s.trust);
  CHECK_MESSAGE(r.ok(), r.reason);

  // While the token is open (logged in) in this process, a wrong PIN is still refused:
  // PKCS#11 would answer CKR_USER_ALREADY_LOGGED_IN without looking at it.
  CHECK(p11::OpenSigner(wrong, "prescriber-BL4721052").status().code() ==
        absl::StatusCode::kPermissionDenied);
  CHECK(p11::OpenSigner(ref, "nobody").status().code() == absl::StatusCode::kNotFound);
  p11::TokenRef missing = ref;
  missing.token_label = "no-such-token";
  CHECK(p11::OpenSigner(missing, "x").status().code() == absl::StatusCode::kNotFound);
  CHECK(p11::LoggedIn(module, "no-such-token").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("T-5.2: closing the last signer of a token logs it out and forgets the PIN") {
  namespace p11 = rxflow::pkcs11;
  p11::TokenRef ref = NewTestToken("rxflow-test-logout", "3141-test-pin");
  const std::string& module = ref.module_path;
  RXFLOW_REQUIRE_OK(p11::GenerateSigningKey(ref, "k"));
  CHECK_FALSE(*p11::LoggedIn(module, ref.token_label));  // the operation's login is released
  auto first = p11::OpenSigner(ref, "k");
  auto second = p11::OpenSigner(ref, "k");
  RXFLOW_REQUIRE_OK(first);
  RXFLOW_REQUIRE_OK(second);
  CHECK(*p11::LoggedIn(module, ref.token_label));
  first->reset();
  CHECK(*p11::LoggedIn(module, ref.token_label));  // the second still holds it
  CHECK((*second)->Sign("still signing").ok());
  second->reset();
  CHECK_FALSE(*p11::LoggedIn(module, ref.token_label));
  // Deactivated: a wrong PIN now reaches the token (which counts it), the right one opens.
  p11::TokenRef wrong = ref;
  wrong.pin = "0000-wrong";
  CHECK(p11::OpenSigner(wrong, "k").status().code() == absl::StatusCode::kPermissionDenied);
  CHECK_FALSE(*p11::LoggedIn(module, ref.token_label));
  auto again = p11::OpenSigner(ref, "k");
  RXFLOW_REQUIRE_OK(again);
  CHECK((*again)->Sign("signing again").ok());
}
TEST_CASE("an AES-256 key on a SoftHSM2 token wraps the data keys of PHI at rest") {
  namespace p11 = rxflow::pkcs11;
  p11::TokenRef ref = NewTestToken("rxflow-test-kek", "5812-test-pin");
  CHECK(p11::OpenKeyEncryptionKey(ref, "phi-kek").status().code() == absl::StatusCode::kNotFound);
  RXFLOW_REQUIRE_OK(p11::GenerateWrappingKey(ref, "phi-kek"));
  CHECK(p11::GenerateWrappingKey(ref, "phi-kek").code() == absl::StatusCode::kAlreadyExists);
  auto kek = p11::OpenKeyEncryptionKey(ref, "phi-kek");
  REQUIRE_MESSAGE(kek.ok(), kek.status().message());
  CHECK((*kek)->id() == "pkcs11:phi-kek");
  const std::string key(32, '\x42');
  auto wrapped = (*kek)->Wrap(key,
                              "patient-1\0"
                              "1");
  REQUIRE_MESSAGE(wrapped.ok(), wrapped.status().message());
  CHECK(wrapped->size() == 12 + 32 + 16);
  CHECK(wrapped->find(key) == std::string::npos);
  CHECK(*(*kek)->Unwrap(*wrapped,
                        "patient-1\0"
                        "1") == key);
  CHECK((*kek)->Unwrap(*wrapped, "patient-2").status().code() ==
        absl::StatusCode::kUnauthenticated);
  std::string tampered = *wrapped;
  tampered[20] ^= 1;
  CHECK((*kek)
            ->Unwrap(tampered,
                     "patient-1\0"
                     "1")
            .status()
            .code() == absl::StatusCode::kUnauthenticated);

  // A vault over the token's key: values sealed and opened, the data key wrapped on the token.
  rxflow::FakeClock clock;
  auto store = rxflow::store::NewMemoryStore(clock);
  rxflow::phi::VaultOptions vo;
  vo.current = std::shared_ptr<rxflow::phi::KeyEncryptionKey>(std::move(*kek));
  auto vault = rxflow::phi::Vault::Create(*store, std::move(vo));
  RXFLOW_REQUIRE_OK(vault);
  auto sealed = (*vault)->Seal("patient-1", {"t", "rx", "newrx_xml"}, "<NewRx/>");
  RXFLOW_REQUIRE_OK(sealed);
  CHECK(store->DataKeyVersions("patient-1")->front().kek_id == "pkcs11:phi-kek");
  CHECK(*(*vault)->Open(*sealed, {"t", "rx", "newrx_xml"}) == "<NewRx/>");
}

#endif
