// SPDX-License-Identifier: Apache-2.0
// File: rxflow/pkcs11/token.h
//
// Keys on a PKCS#11 token (OASIS PKCS#11 2.40 through the module's C_GetFunctionList): the
// prescriber's and the audit chain's signing keys live there and never leave it. RxFlow loads
// any PKCS#11 module; tests, `make run` and the demo prescriber use SoftHSM2 (Debian's
// softhsm2, configured by SOFTHSM2_CONF), production a hardware module validated to FIPS 140-2
// Level 1 or higher (21 CFR 1311.120(b), T-5.2).
//
// Keys are ECDSA P-256. GenerateSigningKey creates them on the token with CKA_SENSITIVE and
// without CKA_EXTRACTABLE, so no one, RxFlow included, can read the private key out.
//
// PINs come from the caller (from the environment or a secret store; `make run` generates
// them at first start) and are never logged or put in an error message.
//
// Thread-safety: a Signer may be used from several threads (it serialises its session). A
// module is initialised once per process (PKCS#11's C_Initialize is process-wide), and stays
// loaded until the process ends. A token stays logged in while a signer or key of it is open
// in the process, and is logged out when the last one closes (LoggedIn).
#ifndef RXFLOW_PKCS11_TOKEN_H_
#define RXFLOW_PKCS11_TOKEN_H_

#include <memory>
#include <string>

#include "rxflow/crypto/phi.h"
#include "rxflow/epcs/signer.h"
#include "rxflow/status.h"

namespace rxflow::pkcs11 {

// SoftHSM2's module where Debian installs it, or "" when it is not installed.
std::string SoftHsmModulePath();

struct TokenRef {
  std::string module_path;  // the PKCS#11 module (.so)
  std::string token_label;  // at most 32 bytes
  std::string pin;          // the token's user PIN
  // Overwrites the PIN before its memory is freed (OPENSSL_cleanse; T-5.2), copies too.
  ~TokenRef();
};

// Whether this process is logged in to the token as its user. Each open signer or
// key-encryption key (and each operation while it runs) holds the login; when the last is
// closed, RxFlow logs the token out and overwrites the digest of the PIN it kept to check
// later logins (T-5.2: the password cleared when the module is deactivated), so the next open
// gives the PIN to the token again. NotFound for a missing token.
StatusOr<bool> LoggedIn(const std::string& module_path, const std::string& token_label);

// Initialises a new token named `ref.token_label` in a free slot and sets its user PIN to
// `ref.pin`. AlreadyExists when a token of that label exists; ResourceExhausted when the
// module has no free slot.
Status InitToken(const TokenRef& ref, const std::string& so_pin);

// True when the token has a private key labelled `key_label`. NotFound when there is no such
// token.
StatusOr<bool> HasKey(const TokenRef& ref, const std::string& key_label);

// Generates an ECDSA P-256 key pair on the token, labelled `key_label` (private key: token
// object, private, sensitive, not extractable, sign only). Returns the public key as DER
// SubjectPublicKeyInfo. AlreadyExists when the label is taken.
StatusOr<std::string> GenerateSigningKey(const TokenRef& ref, const std::string& key_label);

// A signer over the private key labelled `key_label` (rxflow/epcs/signer.h): each Sign hashes
// with SHA-256 in RxFlow and has the token sign the digest (CKM_ECDSA). PermissionDenied for a
// wrong PIN, NotFound for a missing token or key.
StatusOr<std::unique_ptr<epcs::Signer>> OpenSigner(const TokenRef& ref,
                                                   const std::string& key_label);

// Generates an AES-256 key on the token, labelled `key_label` (token object, private,
// sensitive, not extractable, encrypt and decrypt only): a key-encryption key for the data
// keys of PHI at rest (rxflow/crypto/phi.h). AlreadyExists when the label is taken.
Status GenerateWrappingKey(const TokenRef& ref, const std::string& key_label);
// The AES-256 key labelled `key_label` as a phi::KeyEncryptionKey (id "pkcs11:<label>"): data
// keys are wrapped on the token with CKM_AES_GCM (a fresh 96-bit nonce each, the associated
// data authenticated) and never wrapped or unwrapped outside it. NotFound for a missing key.
StatusOr<std::unique_ptr<phi::KeyEncryptionKey>> OpenKeyEncryptionKey(const TokenRef& ref,
                                                                      const std::string& key_label);

}  // namespace rxflow::pkcs11

#endif  // RXFLOW_PKCS11_TOKEN_H_
