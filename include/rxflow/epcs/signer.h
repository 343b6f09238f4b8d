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

// A P-256 key generated in memory by OpenSSL, never written anywhere: for tests and tools
// that need a signature but no protected key. Not for prescriptions: a prescriber's key
// belongs on a FIPS 140-2 validated module (21 CFR 1311.120(b)). The ceremony signs with
// whatever CeremonyOptions::signer_for returns, so keeping keys on a token is the deployment's
// duty (`rxflow serve` and Python's setup_epcs_demo use a SoftHSM2 token).
std::unique_ptr<Signer> NewInMemorySigner();

}  // namespace rxflow::epcs

#endif  // RXFLOW_EPCS_SIGNER_H_
