// SPDX-License-Identifier: Apache-2.0
// File: rxflow/epcs/signature.h
//
// The digital signature of a controlled-substance NewRx (21 CFR 1311.140, .145, .205, .210):
// what is signed, how the signature travels in the SCRIPT header, and how a pharmacy verifies
// it. docs/epcs.md "Signature" has the same rules with a worked `openssl` example.
//
// What is signed: the Part 1306 content (21 CFR 1306.05(a), 1306.12(b), 1306.22) read from
// the NewRx itself, written as a canonical text:
//
//   RxFlow-EPCS-Part1306/1\n
//   IssueDate=<WrittenDate>\n
//   PatientName=<Last>|<First>|<Middle>|<Suffix>|<Prefix>\n
//   ... one line per field of Part1306Fields(), in that order ...
//
// Values are taken as they are in the message (no trimming, no case change); in a value,
// '\' is written "\\", '|' "\|", LF "\n" and CR "\r", so a line is one field and a '|' always
// separates parts. An absent element is an empty value; the line is still written.
//
// The SCRIPT header carries it as Header/DigitalSignature (2017071 and 2023011 alike):
//   @Version         "1.1"
//   DigestMethod     "SHA-256"
//   DigestValue      base64(SHA-256(canonical text))
//   SignatureValue   base64(DER ECDSA P-256 signature of SHA-256(canonical text))
//   X509Data         base64(DER X.509 certificate of the prescriber)
// The canonical text depends only on the Body, so adding the signature to the Header does not
// change what was signed.
#ifndef RXFLOW_EPCS_SIGNATURE_H_
#define RXFLOW_EPCS_SIGNATURE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rxflow/domain/prescription.h"
#include "rxflow/epcs/signer.h"
#include "rxflow/script/model.h"
#include "rxflow/status.h"

namespace rxflow::epcs {

inline constexpr std::string_view kCanonicalPart1306Header = "RxFlow-EPCS-Part1306/1";
inline constexpr std::string_view kDigitalSignatureVersion = "1.1";

// 21 CFR 1311.140(a)(3): shown with the Part 1306 fields when the practitioner signs.
inline constexpr std::string_view kAttestation =
    "By completing the two-factor authentication protocol at this time, you are legally "
    "signing the prescription(s) and authorizing the transmission of the above information "
    "to the pharmacy for dispensing. The two-factor authentication protocol may only be "
    "completed by the practitioner whose name and DEA registration number appear above.";

// One signed field: its canonical name ("IssueDate", "PatientName", ...) and value.
struct Part1306Field {
  std::string_view name;
  std::string value;
};

// The Part 1306 fields of a NewRx, in canonical order:
//   IssueDate          MedicationPrescribed/WrittenDate (Date or DateTime)
//   PatientName        Patient/HumanPatient/Name: Last|First|Middle|Suffix|Prefix
//   PatientAddress     Patient/.../Address: Line1|Line2|City|State|Postal|Country
//   DrugDescription    MedicationPrescribed/DrugDescription
//   DrugCode           DrugCoded/ProductCode: Qualifier|Code
//   Strength           DrugCoded/Strength: Value|Form|UnitOfMeasure
//   DEASchedule        DrugCoded/DEASchedule/Code
//   Quantity           Quantity: Value|CodeListQualifier|UnitOfMeasure
//   DaysSupply         DaysSupply
//   Directions         Sig/SigText
//   Refills            NumberOfRefills
//   EarliestFillDate   OtherMedicationDate with qualifier EffectiveDate (every one, in
//                      order, joined by '|': a second one cannot hide behind the first)
//   PrescriberName     Prescriber/NonVeterinarian/Name: Last|First|Middle|Suffix|Prefix
//   PrescriberAddress  Prescriber/.../Address
//   PrescriberDEA      Prescriber/.../Identification/DEANumber
//   PrescriberNPI      Prescriber/.../Identification/NPI
std::vector<Part1306Field> Part1306Fields(const script::NewRx& newrx);

// The canonical text of those fields (the format above).
std::string CanonicalPart1306(const std::vector<Part1306Field>& fields);

// Signs the NewRx in `message` with `signer` and sets Header/DigitalSignature.
// `certificate_der` is the prescriber's X.509 certificate; its public key must be the
// signer's (FailedPrecondition otherwise: a signature nobody could verify is not sent).
// InvalidArgument when the body is not a NewRx.
Status SignNewRx(script::Message& message, Signer& signer, std::string_view certificate_der);

// The checks of a prescriber's signing certificate that need no trust store: DER X.509, not
// a CA certificate, key usage (when present) allowing digitalSignature or nonRepudiation, its
// subject serialNumber the DEA number `dea_number` names (without a "-suffix"), and valid at
// `unix_seconds`. FailedPrecondition naming what is wrong. The ceremony runs it before it
// signs; VerifyPrescriptionSignature runs the same checks (kNotPrescriber, kExpired).
Status CheckSigningCertificate(std::string_view certificate_der, std::string_view dea_number,
                               int64_t unix_seconds);

// What a pharmacy trusts: CA certificates (anchors), intermediates offered for chain
// building, and CRLs. Not thread-safe to modify; const use from several threads is safe.
class TrustStore {
 public:
  TrustStore();
  ~TrustStore();
  TrustStore(TrustStore&&) noexcept;
  TrustStore& operator=(TrustStore&&) noexcept;

  // PEM (one or more blocks) or DER. InvalidArgument for anything else.
  Status AddAnchor(std::string_view certificate);
  Status AddIntermediate(std::string_view certificate);
  // A CRL (PEM or DER). Kept until a newer one of the same issuer replaces it; a CRL past
  // its nextUpdate fails verification closed (kCrlUnavailable) until a fresh one is added.
  Status AddCrl(std::string_view crl);
  // Whether every certificate in the chain must have a current CRL (default true, 21 CFR
  // 1311.205(b)(6)/.210: the pharmacy checks the CRL).
  void set_require_crl(bool require) { require_crl_ = require; }
  // The time certificates and CRLs are checked at (Unix seconds); 0 (default) is now.
  void set_time(int64_t unix_seconds) { time_ = unix_seconds; }

  struct Impl;
  const Impl& impl() const { return *impl_; }
  bool require_crl() const { return require_crl_; }
  int64_t time() const { return time_; }

 private:
  std::unique_ptr<Impl> impl_;
  bool require_crl_ = true;
  int64_t time_ = 0;
};

// The step of verification that failed, in the order they run.
enum class SignatureCheck {
  kOk,
  kNotNewRx,        // the message is not a NewRx (or cannot be read)
  kUnsigned,        // no DigitalSignature, or only DigitalSignatureIndicator
  kMalformed,       // a field missing, not base64, an unknown DigestMethod or Version
  kDigestMismatch,  // DigestValue is not the digest of the Part 1306 content (tampered)
  kBadSignature,    // SignatureValue does not verify under the certificate's key
  kNotPrescriber,   // the certificate does not name the prescriber's DEA number
  kUntrusted,       // no chain to a trust anchor
  kExpired,         // a certificate in the chain is expired or not yet valid
  kRevoked,         // a certificate in the chain is revoked
  kCrlUnavailable,  // no CRL, or a stale one, for a certificate in the chain
};
std::string_view SignatureCheckName(SignatureCheck check);

struct SignatureVerification {
  SignatureCheck result = SignatureCheck::kOk;
  std::string reason;          // why, naming the element or certificate (no PHI)
  std::string signer_subject;  // the certificate's subject, RFC 2253
  bool ok() const { return result == SignatureCheck::kOk; }
};

// The pharmacy's check (21 CFR 1311.205(b), .210): recomputes the digest from the Body,
// verifies the signature with the certificate in X509Data, checks that the certificate is the
// prescriber's (its subject serialNumber is the NewRx's DEA number), builds its chain to
// `trust`'s anchors and checks every certificate against its CRL. Never throws; every failure
// is a result naming its step.
SignatureVerification VerifyPrescriptionSignature(const script::Message& message,
                                                  const TrustStore& trust);
SignatureVerification VerifyPrescriptionSignature(std::string_view script_xml,
                                                  const TrustStore& trust);

// Steps 1-3 of VerifyPrescriptionSignature (digest, signature, the prescriber's certificate)
// and that X509Data is exactly `certificate_der`, with no trust store: what the service checks
// of a Sign it records (the certificate enrolled for the signer; the chain and CRLs are the
// pharmacy's, and the ceremony's with CeremonyOptions::sender_trust).
SignatureVerification VerifySignedByEnrolledCertificate(const script::Message& message,
                                                        std::string_view certificate_der);

// ---- The stored record of an EPCS signature, co-signed with ML-DSA-65 ----------------------

// What RxFlow's ML-DSA-65 co-signature of a stored EPCS signature covers (context
// kCoSignEpcsRecord): the line "rxflow-epcs-signature-record-v1", then a line
// "<name>=<length in bytes>:<value>" each for prescription, signer, dea, bundle-sha256,
// two-factor, signature (the ECDSA SignatureValue, base64) and newrx-sha256 (hex SHA-256 of
// the signed NewRx as sent). Whoever can forge ECDSA still cannot change any of these without
// the co-signature failing.
std::string SignatureRecordText(std::string_view prescription_id,
                                const domain::PrescriptionSigned& signed_event);

// The two co-signature fields for `signed_event` (record_cosignature,
// record_cosigner_key_sha256), signed by `cosigner`.
Status CoSignSignatureRecord(std::string_view prescription_id,
                             domain::PrescriptionSigned& signed_event, CoSigner& cosigner);

// OK when `signed_event` carries a valid co-signature of its record by `mldsa65_public_key`
// (raw); Unauthenticated naming why not: not co-signed, another key, or a changed record.
Status VerifySignatureRecord(std::string_view prescription_id,
                             const domain::PrescriptionSigned& signed_event,
                             std::string_view mldsa65_public_key);

}  // namespace rxflow::epcs

#endif  // RXFLOW_EPCS_SIGNATURE_H_
