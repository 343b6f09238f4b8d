// SPDX-License-Identifier: Apache-2.0
// File: rxflow/epcs/signer.h
//
// A private key that signs, held where RxFlow cannot read it. In production and in `make run`
// that is a PKCS#11 token (rxflow::pkcs11::Pkcs11Signer, adapters/pkcs11); the software key
// below exists for tests of code that only needs *a* signature (the audit chain's checkpoints).
//
// The one algorithm is ECDSA on P-256 with SHA-256 (FIPS 186-4 / FIPS 180-4, as 21 CFR
// 1311.120(b) asks): signatures are DER-encoded Ecdsa-Sig-Value (RFC 3279 §2.2.3), public keys
// DER SubjectPublicKeyInfo, so `openssl dgst -sha256 -verify` checks them as they are.
#ifndef RXFLOW_EPCS_SIGNER_H_
#define RXFLOW_EPCS_SIGNER_H_

#include <memory>
#include <string>
#include <string_view>

#include "rxflow/status.h"

namespace rxflow::epcs {

class Signer {
 public:
  virtual ~Signer() = default;
  // The DER ECDSA P-256 signature of SHA-256(`data`). Unavailable when the key's device is
  // not reachable, PermissionDenied when it refuses (PIN, policy).
  virtual StatusOr<std::string> Sign(std::string_view data) = 0;
  // The public key, DER SubjectPublicKeyInfo.
  virtual StatusOr<std::string> PublicKeyDer() = 0;
};

// OK when `signature_der` is a valid ECDSA P-256 / SHA-256 signature of `data` under the
// public key `spki_der`; Unauthenticated when it is not (naming why: bad key, bad encoding,
// mismatch).
Status VerifyEcdsaSha256(std::string_view spki_der, std::string_view data,
                         std::string_view signature_der);

// OK when `spki_der` is a DER SubjectPublicKeyInfo of an EC P-256 key; InvalidArgument
// saying what it is not.
Status CheckP256PublicKey(std::string_view spki_der);

// A P-256 key generated in memory by OpenSSL, never written anywhere: for tests and tools
// that need a signature but no protected key. Not for prescriptions: a prescriber's key
// belongs on a FIPS 140-2 validated module (21 CFR 1311.120(b)). The ceremony signs with
// whatever CeremonyOptions::signer_for returns, so keeping keys on a token is the deployment's
// duty (`rxflow serve` and Python's setup_epcs_demo use a SoftHSM2 token).
std::unique_ptr<Signer> NewInMemorySigner();

// A post-quantum co-signer: ML-DSA-65 (FIPS 204, rxflow/crypto/pq.h) beside the ECDSA
// signatures above, on the audit trail's checkpoints and on the stored record of each EPCS
// signature (docs/security.md, "Post-quantum co-signatures"). ECDSA stays the signature DEA
// rules recognise; this one keeps the records verifiable once ECDSA can be forged. Its key is
// RxFlow's own (the system's, not a prescriber's): PKCS#11 tokens as deployed (SoftHSM2 2.6,
// PKCS#11 3.0) have no ML-DSA mechanism yet, so it lives in a key file, 0600.
class CoSigner {
 public:
  virtual ~CoSigner() = default;
  // The ML-DSA-65 signature of `data` under the FIPS 204 context string `context` (which
  // names the purpose: a checkpoint's signature never verifies as an EPCS record's).
  virtual StatusOr<std::string> Sign(std::string_view data, std::string_view context) = 0;
  // The raw ML-DSA-65 public key (1952 bytes).
  virtual const std::string& PublicKey() const = 0;
};

// An ML-DSA-65 key held in memory only (tests, tools).
std::unique_ptr<CoSigner> NewInMemoryCoSigner();

// The ML-DSA-65 key in `path`, created (0600, directories 0700, atomically) when the file does
// not exist. The file: the line "RXFLOW ML-DSA-65 KEY v1", then the base64 of the secret key
// and the base64 of the public key, a line each. PermissionDenied when the file is readable
// by group or others; InvalidArgument naming what is wrong with its contents.
StatusOr<std::unique_ptr<CoSigner>> OpenCoSignerKeyFile(const std::string& path);

// The contexts RxFlow signs under.
inline constexpr std::string_view kCoSignAuditCheckpoint = "rxflow-audit-checkpoint-v1";
inline constexpr std::string_view kCoSignEpcsRecord = "rxflow-epcs-signature-record-v1";

}  // namespace rxflow::epcs

#endif  // RXFLOW_EPCS_SIGNER_H_
