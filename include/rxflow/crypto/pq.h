// SPDX-License-Identifier: Apache-2.0
// File: rxflow/crypto/pq.h
//
// Post-quantum primitives (docs/security.md, "Post-quantum co-signatures"), compiled from
// PQClean's portable C ("clean") implementations as the npm package `pqclean` ships them
// (scripts/install-deps.sh pins the version and checks its integrity), with OpenSSL's CSPRNG:
//   * ML-DSA-65 (FIPS 204, security category 3): signatures beside ECDSA P-256 on the audit
//     trail's checkpoints and on the stored record of each EPCS signature. ECDSA stays the
//     signature DEA rules recognise; the ML-DSA one is additional: it keeps those records
//     verifiable once ECDSA can be forged.
//   * ML-KEM-768 (FIPS 203, category 3), and a hybrid ML-KEM-768 + X25519 key wrap (the
//     X-Wing combiner, draft-connolly-cfrg-xwing-kem): a 256-bit key sealed to a recipient
//     with AES-256-GCM under a secret that holds while either of the two KEMs does.
// Sizes are fixed by the standards (the constants below); every call checks them and refuses
// (InvalidArgument) a key, signature or ciphertext of another length. Secret keys are
// returned in std::string buffers the caller owns: wipe them (OPENSSL_cleanse) when done.
#ifndef RXFLOW_CRYPTO_PQ_H_
#define RXFLOW_CRYPTO_PQ_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "rxflow/status.h"

namespace rxflow::pq {

inline constexpr size_t kMlDsa65PublicKeyBytes = 1952;
inline constexpr size_t kMlDsa65SecretKeyBytes = 4032;
inline constexpr size_t kMlDsa65SignatureBytes = 3309;
inline constexpr size_t kMlKem768PublicKeyBytes = 1184;
inline constexpr size_t kMlKem768SecretKeyBytes = 2400;
inline constexpr size_t kMlKem768CiphertextBytes = 1088;
inline constexpr size_t kMlKem768SharedSecretBytes = 32;
// FIPS 204 context strings are at most 255 bytes.
inline constexpr size_t kMaxContextBytes = 255;

struct KeyPair {
  std::string public_key;
  std::string secret_key;
};

// ---- ML-DSA-65 (FIPS 204) ---------------------------------------------------------------

KeyPair GenerateMlDsa65();
// The hedged ML-DSA-65 signature of `message` under the FIPS 204 context string `context`
// (domain separation: a signature made for one purpose does not verify for another).
StatusOr<std::string> SignMlDsa65(std::string_view secret_key, std::string_view message,
                                  std::string_view context);
// OK when `signature` is a valid ML-DSA-65 signature of `message` with `context` under
// `public_key`; Unauthenticated when it is not; InvalidArgument for wrong lengths.
Status VerifyMlDsa65(std::string_view public_key, std::string_view message,
                     std::string_view signature, std::string_view context);

// ---- ML-KEM-768 (FIPS 203) --------------------------------------------------------------

KeyPair GenerateMlKem768();
struct Encapsulation {
  std::string ciphertext;     // kMlKem768CiphertextBytes
  std::string shared_secret;  // kMlKem768SharedSecretBytes
};
StatusOr<Encapsulation> EncapsulateMlKem768(std::string_view public_key);
// The shared secret (ML-KEM decapsulation never fails: a forged ciphertext gives an
// unrelated secret, by the standard's implicit rejection).
StatusOr<std::string> DecapsulateMlKem768(std::string_view secret_key, std::string_view ciphertext);

// ---- Hybrid key wrap: ML-KEM-768 + X25519 ------------------------------------------------

// A recipient's hybrid keys: public = ML-KEM-768 public key || X25519 public key (1216
// bytes); secret = ML-KEM-768 secret key || X25519 private key (2432 bytes).
inline constexpr size_t kHybridPublicKeyBytes = kMlKem768PublicKeyBytes + 32;
inline constexpr size_t kHybridSecretKeyBytes = kMlKem768SecretKeyBytes + 32;
KeyPair GenerateHybridKem();

// Seals `key` (1 to 64 bytes: a data key) to the recipient: ML-KEM-768 encapsulation, an
// ephemeral X25519 exchange, the X-Wing combiner SHA3-256(ss_M || ss_X || ct_X || pk_X ||
// label) as an AES-256-GCM key, with `aad` authenticated (the tenant, key id and version a
// data key belongs to). Layout: "RXW1" || ct_M (1088) || ct_X (32) || nonce (12) ||
// ciphertext || tag (16).
StatusOr<std::string> WrapKey(std::string_view recipient_public_key, std::string_view key,
                              std::string_view aad);
// The key WrapKey sealed; Unauthenticated when the wrapped bytes, the `aad` or the recipient
// differ from what was sealed; InvalidArgument when the bytes are not a wrapped key at all.
StatusOr<std::string> UnwrapKey(std::string_view recipient_secret_key, std::string_view wrapped,
                                std::string_view aad);

}  // namespace rxflow::pq

#endif  // RXFLOW_CRYPTO_PQ_H_
