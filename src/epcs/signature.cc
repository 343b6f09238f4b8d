// SPDX-License-Identifier: Apache-2.0
// The Part 1306 canonical text, Header/DigitalSignature, and the pharmacy's verification over
// OpenSSL's X509_STORE (chain to the anchors, CRL for every certificate).
#include "rxflow/epcs/signature.h"

#include <optional>
#include <variant>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "rxflow/crypto/pq.h"
#include "rxflow/internal/crypto.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/issue.h"
#include "rxflow/script/xml.h"

namespace rxflow::epcs {
namespace {

using internal::Cat;

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct CrlFree {
  void operator()(X509_CRL* c) const { X509_CRL_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};
struct StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
};
using Cert = std::unique_ptr<X509, X509Free>;
using Crl = std::unique_ptr<X509_CRL, CrlFree>;

bool IsPem(std::string_view text) { return text.find("-----BEGIN ") != std::string_view::npos; }

template <typename T, typename Free, typename PemRead, typename DerRead>
StatusOr<std::vector<std::unique_ptr<T, Free>>> ParseAll(std::string_view text, PemRead pem_read,
                                                         DerRead der_read, std::string_view what) {
  std::vector<std::unique_ptr<T, Free>> out;
  if (IsPem(text)) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    while (T* x = pem_read(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  } else {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    if (T* x = der_read(nullptr, &p, static_cast<long>(text.size()))) out.emplace_back(x);
  }
  ERR_clear_error();  // the PEM reader's end-of-input, or a parse error: reported below
  if (out.empty()) return absl::InvalidArgumentError(Cat("not a PEM or DER ", what));
  return out;
}

StatusOr<std::vector<Cert>> ParseCertificates(std::string_view text) {
  return ParseAll<X509, X509Free>(text, PEM_read_bio_X509, d2i_X509, "X.509 certificate");
}

// Escapes a value for the canonical text: '\', '|', LF and CR.
void AppendEscaped(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '|':
        out += "\\|";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out.push_back(c);
    }
  }
}

// Parts joined by '|', each escaped.
std::string Join(std::initializer_list<std::string_view> parts) {
  std::string out;
  bool first = true;
  for (std::string_view p : parts) {
    if (!first) out.push_back('|');
    first = false;
    AppendEscaped(out, p);
  }
  return out;
}

std::string JoinName(const script::Name& n) {
  return Join({n.last_name, n.first_name, n.middle_name, n.suffix, n.prefix});
}

std::string JoinAddress(const std::optional<script::Address>& a) {
  if (!a) return Join({"", "", "", "", "", ""});
  return Join({a->address_line1, a->address_line2, a->city, a->state_province, a->postal_code,
               a->country_code});
}

std::string Escaped(std::string_view v) {
  std::string out;
  AppendEscaped(out, v);
  return out;
}

std::string DateOf(const script::DateValue& d) {
  return Escaped(d.date.empty() ? d.date_time : d.date);
}

// A DEA number without the supervised practitioner's "-suffix".
std::string_view DeaBase(std::string_view dea) { return dea.substr(0, dea.find('-')); }

std::string SubjectSerialNumber(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  int i = X509_NAME_get_index_by_NID(name, NID_serialNumber, -1);
  if (i < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                     static_cast<size_t>(ASN1_STRING_length(data)));
}

std::string SubjectText(X509* cert) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, n > 0 ? static_cast<size_t>(n) : 0);
}

StatusOr<std::string> SpkiOf(X509* cert) {
  EVP_PKEY* key = X509_get0_pubkey(cert);
  int len = key != nullptr ? i2d_PUBKEY(key, nullptr) : 0;
  if (len <= 0) return absl::InvalidArgumentError("the certificate has no usable public key");
  std::string out(static_cast<size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  i2d_PUBKEY(key, &p);
  return out;
}

// "" when `cert` may sign prescriptions (not a CA; key usage, when present, allows
// digitalSignature or nonRepudiation), else why not.
std::string PurposeProblem(X509* cert) {
  if (X509_check_ca(cert) != 0) return "the signing certificate is a CA certificate";
  if ((X509_get_extension_flags(cert) & EXFLAG_KUSAGE) != 0 &&
      (X509_get_key_usage(cert) & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)) == 0) {
    return "the signing certificate's key usage does not allow digital signatures";
  }
  return "";
}

SignatureVerification Fail(SignatureCheck check, std::string reason, std::string subject = {}) {
  return SignatureVerification{check, std::move(reason), std::move(subject)};
}

SignatureCheck FromX509Error(int error) {
  switch (error) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return SignatureCheck::kExpired;
    case X509_V_ERR_CERT_REVOKED:
      return SignatureCheck::kRevoked;
    case X509_V_ERR_UNABLE_TO_GET_CRL:
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_CRL_NOT_YET_VALID:
    case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
      return SignatureCheck::kCrlUnavailable;
    default:
      return SignatureCheck::kUntrusted;
  }
}

}  // namespace

// ---- canonical content ---------------------------------------------------------------------

std::vector<Part1306Field> Part1306Fields(const script::NewRx& rx) {
  const script::Medication& m = rx.medication_prescribed;
  const script::DrugCoded* coded = m.drug_coded ? &*m.drug_coded : nullptr;
  std::string drug_code, strength, schedule;
  if (coded != nullptr) {
    if (coded->product_code) {
      drug_code = Join({coded->product_code->qualifier, coded->product_code->code});
    }
    if (coded->strength) {
      strength = Join({coded->strength->strength_value, coded->strength->strength_form_code,
                       coded->strength->strength_unit_of_measure_code});
    }
    schedule = Escaped(coded->dea_schedule_code);
  }
  std::string quantity;
  if (m.quantity) {
    quantity = Join(
        {m.quantity->value, m.quantity->code_list_qualifier, m.quantity->unit_of_measure_code});
  }
  std::string earliest;
  for (const script::OtherMedicationDate& d : m.other_medication_date) {
    if (d.qualifier != "EffectiveDate") continue;
    if (!earliest.empty()) earliest.push_back('|');
    earliest += DateOf(d.date);
  }
  const script::Prescriber& p = rx.prescriber;
  return {
      {"IssueDate", DateOf(m.written_date)},
      {"PatientName", JoinName(rx.patient.name)},
      {"PatientAddress", JoinAddress(rx.patient.address)},
      {"DrugDescription", Escaped(m.drug_description)},
      {"DrugCode", std::move(drug_code)},
      {"Strength", std::move(strength)},
      {"DEASchedule", std::move(schedule)},
      {"Quantity", std::move(quantity)},
      {"DaysSupply", Escaped(m.days_supply)},
      {"Directions", m.sig ? Escaped(m.sig->sig_text) : std::string()},
      {"Refills", Escaped(m.number_of_refills)},
      {"EarliestFillDate", std::move(earliest)},
      {"PrescriberName", JoinName(p.name)},
      {"PrescriberAddress", JoinAddress(p.address)},
      {"PrescriberDEA", Escaped(p.identification.dea_number)},
      {"PrescriberNPI", Escaped(p.identification.npi)},
  };
}

std::string CanonicalPart1306(const std::vector<Part1306Field>& fields) {
  std::string out(kCanonicalPart1306Header);
  out.push_back('\n');
  for (const Part1306Field& f : fields) {
    internal::Append(out, f.name, "=", f.value, "\n");
  }
  return out;
}

// ---- signing ---------------------------------------------------------------------------

Status SignNewRx(script::Message& message, Signer& signer, std::string_view certificate_der) {
  const auto* rx = std::get_if<script::NewRx>(&message.body);
  if (rx == nullptr) {
    return absl::InvalidArgumentError(
        Cat("only a NewRx is signed, not a ", script::TransactionName(message.body)));
  }
  const auto* p = reinterpret_cast<const unsigned char*>(certificate_der.data());
  Cert cert(d2i_X509(nullptr, &p, static_cast<long>(certificate_der.size())));
  if (!cert) return absl::InvalidArgumentError("the prescriber certificate is not DER X.509");
  StatusOr<std::string> cert_key = SpkiOf(cert.get());
  if (!cert_key.ok()) return cert_key.status();
  StatusOr<std::string> signer_key = signer.PublicKeyDer();
  if (!signer_key.ok()) return signer_key.status();
  if (*cert_key != *signer_key) {
    return absl::FailedPreconditionError(
        "the prescriber certificate is not for the signing key: nobody could verify the signature");
  }
  std::string canonical = CanonicalPart1306(Part1306Fields(*rx));
  StatusOr<std::string> signature = signer.Sign(canonical);
  if (!signature.ok()) return signature.status();
  script::DigitalSignature sig;
  sig.version = std::string(kDigitalSignatureVersion);
  sig.digest_method = "SHA-256";
  sig.digest_value = internal::Base64Encode(internal::Sha256Bytes(canonical));
  sig.signature_value = internal::Base64Encode(*signature);
  sig.x509_data = internal::Base64Encode(certificate_der);
  message.header.digital_signature = std::move(sig);
  return absl::OkStatus();
}

Status CheckSigningCertificate(std::string_view certificate_der, std::string_view dea_number,
                               int64_t unix_seconds) {
  const auto* p = reinterpret_cast<const unsigned char*>(certificate_der.data());
  Cert cert(d2i_X509(nullptr, &p, static_cast<long>(certificate_der.size())));
  if (!cert) {
    ERR_clear_error();
    return absl::FailedPreconditionError("the practitioner's certificate is not DER X.509");
  }
  if (SubjectSerialNumber(cert.get()) != DeaBase(dea_number)) {
    return absl::FailedPreconditionError(
        Cat("the practitioner's certificate does not name DEA number ", DeaBase(dea_number),
            " (its subject serialNumber): a pharmacy would refuse the signature"));
  }
  if (std::string purpose = PurposeProblem(cert.get()); !purpose.empty()) {
    return absl::FailedPreconditionError(purpose);
  }
  auto now = static_cast<time_t>(unix_seconds);
  if (X509_cmp_time(X509_get0_notBefore(cert.get()), &now) > 0 ||
      X509_cmp_time(X509_get0_notAfter(cert.get()), &now) < 0) {
    return absl::FailedPreconditionError("the practitioner's certificate is not valid now");
  }
  return absl::OkStatus();
}

// ---- trust -------------------------------------------------------------------------------

struct TrustStore::Impl {
  std::vector<Cert> anchors;
  std::vector<Cert> intermediates;
  std::vector<Crl> crls;  // one per issuer: the newest added
};

TrustStore::TrustStore() : impl_(std::make_unique<Impl>()) {}
TrustStore::~TrustStore() = default;
TrustStore::TrustStore(TrustStore&&) noexcept = default;
TrustStore& TrustStore::operator=(TrustStore&&) noexcept = default;

Status TrustStore::AddAnchor(std::string_view certificate) {
  StatusOr<std::vector<Cert>> certs = ParseCertificates(certificate);
  if (!certs.ok()) return certs.status();
  for (Cert& c : *certs) impl_->anchors.push_back(std::move(c));
  return absl::OkStatus();
}

Status TrustStore::AddIntermediate(std::string_view certificate) {
  StatusOr<std::vector<Cert>> certs = ParseCertificates(certificate);
  if (!certs.ok()) return certs.status();
  for (Cert& c : *certs) impl_->intermediates.push_back(std::move(c));
  return absl::OkStatus();
}

Status TrustStore::AddCrl(std::string_view text) {
  StatusOr<std::vector<Crl>> crls =
      ParseAll<X509_CRL, CrlFree>(text, PEM_read_bio_X509_CRL, d2i_X509_CRL, "CRL");
  if (!crls.ok()) return crls.status();
  for (Crl& crl : *crls) {
    bool replaced = false;
    for (Crl& have : impl_->crls) {
      if (X509_NAME_cmp(X509_CRL_get_issuer(have.get()), X509_CRL_get_issuer(crl.get())) != 0) {
        continue;
      }
      // Keep the newer of the two (by thisUpdate).
      if (ASN1_TIME_compare(X509_CRL_get0_lastUpdate(crl.get()),
                            X509_CRL_get0_lastUpdate(have.get())) >= 0) {
        have = std::move(crl);
      }
      replaced = true;
      break;
    }
    if (!replaced) impl_->crls.push_back(std::move(crl));
  }
  return absl::OkStatus();
}

std::string_view SignatureCheckName(SignatureCheck check) {
  switch (check) {
    case SignatureCheck::kOk:
      return "ok";
    case SignatureCheck::kNotNewRx:
      return "not_newrx";
    case SignatureCheck::kUnsigned:
      return "unsigned";
    case SignatureCheck::kMalformed:
      return "malformed";
    case SignatureCheck::kDigestMismatch:
      return "digest_mismatch";
    case SignatureCheck::kBadSignature:
      return "bad_signature";
    case SignatureCheck::kNotPrescriber:
      return "not_prescriber";
    case SignatureCheck::kUntrusted:
      return "untrusted";
    case SignatureCheck::kExpired:
      return "expired";
    case SignatureCheck::kRevoked:
      return "revoked";
    case SignatureCheck::kCrlUnavailable:
      return "crl_unavailable";
  }
  return "unknown";
}

// ---- verification --------------------------------------------------------------------------

namespace {

// Steps 1-3 of the pharmacy's check (no trust store): the digest, the signature under the
// certificate in X509Data, and that certificate being the prescriber's. On success `cert_out`
// holds the certificate.
SignatureVerification VerifyContent(const script::Message& message, Cert& cert_out) {
  const auto* rx = std::get_if<script::NewRx>(&message.body);
  if (rx == nullptr) {
    return Fail(SignatureCheck::kNotNewRx,
                Cat("the message is a ", script::TransactionName(message.body), ", not a NewRx"));
  }
  constexpr std::string_view kPath = "/Message/Header/DigitalSignature";
  const std::optional<script::DigitalSignature>& ds = message.header.digital_signature;
  if (!ds || (ds->signature_value.empty() && ds->digest_value.empty() && ds->x509_data.empty())) {
    return Fail(SignatureCheck::kUnsigned,
                ds ? Cat(kPath, " has only DigitalSignatureIndicator: no signature to verify")
                   : Cat("the NewRx has no ", kPath));
  }
  if (ds->version != kDigitalSignatureVersion) {
    return Fail(SignatureCheck::kMalformed,
                Cat(kPath, "/@Version \"", ds->version, "\" is not one RxFlow verifies (",
                    kDigitalSignatureVersion, ")"));
  }
  if (ds->digest_method != "SHA-256") {
    return Fail(SignatureCheck::kMalformed,
                Cat(kPath, "/DigestMethod \"", ds->digest_method,
                    "\": only SHA-256 is accepted (FIPS 180 SHA-2, 21 CFR 1311.205(b)(4))"));
  }
  std::optional<std::string> digest = internal::Base64Decode(ds->digest_value);
  std::optional<std::string> signature = internal::Base64Decode(ds->signature_value);
  std::optional<std::string> cert_der = internal::Base64Decode(ds->x509_data);
  if (!digest) return Fail(SignatureCheck::kMalformed, Cat(kPath, "/DigestValue is not base64"));
  if (!signature) {
    return Fail(SignatureCheck::kMalformed, Cat(kPath, "/SignatureValue is not base64"));
  }
  if (!cert_der) return Fail(SignatureCheck::kMalformed, Cat(kPath, "/X509Data is not base64"));
  const auto* p = reinterpret_cast<const unsigned char*>(cert_der->data());
  Cert cert(d2i_X509(nullptr, &p, static_cast<long>(cert_der->size())));
  if (!cert) {
    ERR_clear_error();
    return Fail(SignatureCheck::kMalformed, Cat(kPath, "/X509Data is not a DER X.509 certificate"));
  }
  std::string subject = SubjectText(cert.get());

  // 1. The digest of what the Body says now.
  std::string canonical = CanonicalPart1306(Part1306Fields(*rx));
  std::string recomputed = internal::Sha256Bytes(canonical);
  if (digest->size() != recomputed.size() ||
      CRYPTO_memcmp(digest->data(), recomputed.data(), recomputed.size()) != 0) {
    return Fail(SignatureCheck::kDigestMismatch,
                Cat(kPath,
                    "/DigestValue does not match the Part 1306 content of the Body: "
                    "the prescription was changed after it was signed"),
                subject);
  }
  // 2. The signature under the certificate's key.
  StatusOr<std::string> spki = SpkiOf(cert.get());
  if (!spki.ok()) return Fail(SignatureCheck::kMalformed, std::string(spki.status().message()));
  if (Status s = VerifyEcdsaSha256(*spki, canonical, *signature); !s.ok()) {
    return Fail(SignatureCheck::kBadSignature,
                Cat(kPath, "/SignatureValue: ", std::string(s.message())), subject);
  }
  // 3. The certificate is the prescriber's: its subject serialNumber is the DEA number.
  std::string_view dea = DeaBase(rx->prescriber.identification.dea_number);
  if (dea.empty()) {
    return Fail(SignatureCheck::kNotPrescriber,
                "the NewRx names no prescriber DEANumber to match the certificate", subject);
  }
  if (SubjectSerialNumber(cert.get()) != dea) {
    return Fail(SignatureCheck::kNotPrescriber,
                "the signing certificate's subject serialNumber is not the prescriber's "
                "DEANumber",
                subject);
  }
  if (std::string purpose = PurposeProblem(cert.get()); !purpose.empty()) {
    return Fail(SignatureCheck::kNotPrescriber, std::move(purpose), subject);
  }
  cert_out = std::move(cert);
  return SignatureVerification{SignatureCheck::kOk, "", subject};
}

}  // namespace

SignatureVerification VerifySignedByEnrolledCertificate(const script::Message& message,
                                                        std::string_view certificate_der) {
  Cert cert;
  SignatureVerification content = VerifyContent(message, cert);
  if (!content.ok()) return content;
  const std::string& x509 = message.header.digital_signature->x509_data;
  std::optional<std::string> der = internal::Base64Decode(x509);
  if (!der || *der != certificate_der) {
    return Fail(SignatureCheck::kNotPrescriber,
                "/Message/Header/DigitalSignature/X509Data is not the certificate enrolled for "
                "the signer",
                content.signer_subject);
  }
  return content;
}

SignatureVerification VerifyPrescriptionSignature(const script::Message& message,
                                                  const TrustStore& trust) {
  Cert cert;
  SignatureVerification content = VerifyContent(message, cert);
  if (!content.ok()) return content;
  const std::string& subject = content.signer_subject;
  // 4. The chain to an anchor, and revocation of every certificate in it.
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  for (const Cert& a : trust.impl().anchors) X509_STORE_add_cert(store.get(), a.get());
  for (const Crl& c : trust.impl().crls) X509_STORE_add_crl(store.get(), c.get());
  std::unique_ptr<STACK_OF(X509), StackFree> untrusted(sk_X509_new_null());
  for (const Cert& i : trust.impl().intermediates) sk_X509_push(untrusted.get(), i.get());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), untrusted.get()) != 1) {
    return Fail(SignatureCheck::kUntrusted, "cannot set up certificate verification", subject);
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  if (trust.require_crl()) {
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  }
  if (trust.time() != 0) X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(trust.time()));
  if (X509_verify_cert(ctx.get()) != 1) {
    ERR_clear_error();
    int error = X509_STORE_CTX_get_error(ctx.get());
    int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    X509* at = X509_STORE_CTX_get_current_cert(ctx.get());
    return Fail(FromX509Error(error),
                Cat("certificate chain: ", X509_verify_cert_error_string(error), " (depth ", depth,
                    at != nullptr ? Cat(", ", SubjectText(at)) : std::string(), ")"),
                subject);
  }
  return SignatureVerification{SignatureCheck::kOk, "", subject};
}

SignatureVerification VerifyPrescriptionSignature(std::string_view script_xml,
                                                  const TrustStore& trust) {
  IssueList issues;
  StatusOr<script::Message> message = script::ReadXml(script_xml, issues);
  if (!message.ok()) {
    return Fail(SignatureCheck::kNotNewRx, Cat("the SCRIPT message cannot be read: ",
                                               std::string(message.status().message())));
  }
  return VerifyPrescriptionSignature(*message, trust);
}

std::string SignatureRecordText(std::string_view prescription_id,
                                const domain::PrescriptionSigned& e) {
  std::string out = "rxflow-epcs-signature-record-v1\n";
  // name=<length>:<value>: no value can pass for another field, whatever it holds.
  auto field = [&out](std::string_view name, std::string_view value) {
    out += Cat(name, "=", value.size(), ":", value, "\n");
  };
  field("prescription", prescription_id);
  field("signer", e.signer);
  field("dea", e.dea_number);
  field("bundle-sha256", e.signed_content_sha256);
  field("two-factor", e.two_factor_event_id);
  field("signature", e.signature);
  field("newrx-sha256", internal::Sha256Hex(e.signed_newrx_xml));
  return out;
}

Status CoSignSignatureRecord(std::string_view prescription_id, domain::PrescriptionSigned& e,
                             CoSigner& cosigner) {
  RXFLOW_ASSIGN_OR_RETURN(
      std::string signature,
      cosigner.Sign(SignatureRecordText(prescription_id, e), kCoSignEpcsRecord));
  e.record_cosignature = internal::Base64Encode(signature);
  e.record_cosigner_key_sha256 = internal::Sha256Hex(cosigner.PublicKey());
  return absl::OkStatus();
}

Status VerifySignatureRecord(std::string_view prescription_id, const domain::PrescriptionSigned& e,
                             std::string_view mldsa65_public_key) {
  if (e.record_cosignature.empty()) {
    return absl::UnauthenticatedError("the signature record is not co-signed");
  }
  if (e.record_cosigner_key_sha256 != internal::Sha256Hex(mldsa65_public_key)) {
    return absl::UnauthenticatedError(
        Cat("the signature record was co-signed by the key with "
            "SHA-256 ",
            e.record_cosigner_key_sha256, ", not by the given key"));
  }
  std::optional<std::string> signature = internal::Base64Decode(e.record_cosignature);
  if (!signature) return absl::UnauthenticatedError("the record's co-signature is not base64");
  Status s = pq::VerifyMlDsa65(mldsa65_public_key, SignatureRecordText(prescription_id, e),
                               *signature, kCoSignEpcsRecord);
  if (!s.ok()) {
    return absl::UnauthenticatedError(
        Cat("the signature record does not match its ML-DSA-65 co-signature: ",
            std::string(s.message())));
  }
  return absl::OkStatus();
}

}  // namespace rxflow::epcs
