// SPDX-License-Identifier: Apache-2.0
// Post-quantum primitives (rxflow/crypto/pq.h) over PQClean's "clean" C sources, compiled by
// CMake from third_party/pqclean (scripts/install-deps.sh), and OpenSSL for the rest (the
// CSPRNG behind PQClean's randombytes, X25519, SHA3-256, AES-256-GCM).
#include "rxflow/crypto/pq.h"

#include <cstdint>
#include <memory>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

extern "C" {
#include "crypto_kem/ml-kem-768/clean/api.h"
#include "crypto_sign/ml-dsa-65/clean/api.h"

// PQClean's source of randomness (common/randombytes.h's PQCLEAN_randombytes, renamed by
// CMake): OpenSSL's CSPRNG. The known-answer test (tests/pq_kat.cc) links the same PQClean
// objects with NIST's deterministic generator instead, never this library.
int rxflow_pqclean_randombytes(uint8_t* output, size_t n) {
  while (n > 0) {
    const int chunk = n > (1u << 30) ? (1 << 30) : static_cast<int>(n);
    if (RAND_bytes(output, chunk) != 1) abort();  // no randomness: nothing safe to return
    output += chunk;
    n -= static_cast<size_t>(chunk);
  }
  return 0;
}
}

static_assert(rxflow::pq::kMlDsa65PublicKeyBytes == PQCLEAN_MLDSA65_CLEAN_CRYPTO_PUBLICKEYBYTES);
static_assert(rxflow::pq::kMlDsa65SecretKeyBytes == PQCLEAN_MLDSA65_CLEAN_CRYPTO_SECRETKEYBYTES);
static_assert(rxflow::pq::kMlDsa65SignatureBytes == PQCLEAN_MLDSA65_CLEAN_CRYPTO_BYTES);
static_assert(rxflow::pq::kMlKem768PublicKeyBytes == PQCLEAN_MLKEM768_CLEAN_CRYPTO_PUBLICKEYBYTES);
static_assert(rxflow::pq::kMlKem768SecretKeyBytes == PQCLEAN_MLKEM768_CLEAN_CRYPTO_SECRETKEYBYTES);
static_assert(rxflow::pq::kMlKem768CiphertextBytes ==
              PQCLEAN_MLKEM768_CLEAN_CRYPTO_CIPHERTEXTBYTES);
static_assert(rxflow::pq::kMlKem768SharedSecretBytes == PQCLEAN_MLKEM768_CLEAN_CRYPTO_BYTES);

namespace rxflow::pq {
namespace {

using rxflow::internal::Cat;

uint8_t* Bytes(std::string& s) { return reinterpret_cast<uint8_t*>(s.data()); }
const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

Status CheckLength(std::string_view what, std::string_view bytes, size_t expected) {
  if (bytes.size() == expected) return absl::OkStatus();
  return absl::InvalidArgumentError(Cat(what, " must be ", expected, " bytes, not ", bytes.size()));
}

// Wipes a secret when it goes out of scope.
struct Wiped {
  std::string bytes;
  explicit Wiped(size_t n) : bytes(n, '\0') {}
  ~Wiped() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
};

constexpr size_t kX25519Bytes = 32;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr std::string_view kWrapMagic = "RXW1";
// X-Wing's label, "\./" "/^\" (draft-connolly-cfrg-xwing-kem).
constexpr std::string_view kXWingLabel =
    "\\./"
    "/^\\";

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

// A fresh X25519 key: {public, private}, 32 bytes each.
KeyPair NewX25519() {
  EVP_PKEY* raw = nullptr;
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, nullptr), EVP_PKEY_CTX_free);
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
    abort();  // key generation cannot fail short of memory exhaustion
  }
  PkeyPtr key(raw, EVP_PKEY_free);
  KeyPair out{std::string(kX25519Bytes, '\0'), std::string(kX25519Bytes, '\0')};
  size_t n = kX25519Bytes;
  EVP_PKEY_get_raw_public_key(key.get(), Bytes(out.public_key), &n);
  n = kX25519Bytes;
  EVP_PKEY_get_raw_private_key(key.get(), Bytes(out.secret_key), &n);
  return out;
}

// X25519(private, peer public): the 32-byte shared secret; InvalidArgument for a low-order
// peer key (an all-zero result).
StatusOr<std::string> X25519(std::string_view private_key, std::string_view peer_public) {
  PkeyPtr mine(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, Bytes(private_key),
                                            private_key.size()),
               EVP_PKEY_free);
  PkeyPtr peer(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, Bytes(peer_public), peer_public.size()),
      EVP_PKEY_free);
  if (!mine || !peer) return absl::InvalidArgumentError("an X25519 key is malformed");
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(mine.get(), nullptr), EVP_PKEY_CTX_free);
  std::string secret(kX25519Bytes, '\0');
  size_t n = secret.size();
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), Bytes(secret), &n) != 1 || n != kX25519Bytes) {
    return absl::InvalidArgumentError("the X25519 exchange failed (a low-order public key?)");
  }
  return secret;
}

std::string Sha3_256(std::string_view data) {
  std::string out(32, '\0');
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), Bytes(out), &n, EVP_sha3_256(), nullptr);
  return out;
}

// The X-Wing combiner: SHA3-256(ss_M || ss_X || ct_X || pk_X || label).
std::string Combine(std::string_view ss_m, std::string_view ss_x, std::string_view ct_x,
                    std::string_view pk_x) {
  Wiped input(0);
  input.bytes = Cat(ss_m, ss_x, ct_x, pk_x, kXWingLabel);
  return Sha3_256(input.bytes);
}

}  // namespace

KeyPair GenerateMlDsa65() {
  KeyPair k{std::string(kMlDsa65PublicKeyBytes, '\0'), std::string(kMlDsa65SecretKeyBytes, '\0')};
  PQCLEAN_MLDSA65_CLEAN_crypto_sign_keypair(Bytes(k.public_key), Bytes(k.secret_key));
  return k;
}

StatusOr<std::string> SignMlDsa65(std::string_view secret_key, std::string_view message,
                                  std::string_view context) {
  RXFLOW_RETURN_IF_ERROR(
      CheckLength("an ML-DSA-65 secret key", secret_key, kMlDsa65SecretKeyBytes));
  if (context.size() > kMaxContextBytes) {
    return absl::InvalidArgumentError("an ML-DSA context is at most 255 bytes");
  }
  std::string signature(kMlDsa65SignatureBytes, '\0');
  size_t n = 0;
  if (PQCLEAN_MLDSA65_CLEAN_crypto_sign_signature_ctx(Bytes(signature), &n, Bytes(message),
                                                      message.size(), Bytes(context),
                                                      context.size(), Bytes(secret_key)) != 0 ||
      n != kMlDsa65SignatureBytes) {
    return absl::InternalError("ML-DSA-65 signing failed");
  }
  return signature;
}

Status VerifyMlDsa65(std::string_view public_key, std::string_view message,
                     std::string_view signature, std::string_view context) {
  RXFLOW_RETURN_IF_ERROR(
      CheckLength("an ML-DSA-65 public key", public_key, kMlDsa65PublicKeyBytes));
  RXFLOW_RETURN_IF_ERROR(CheckLength("an ML-DSA-65 signature", signature, kMlDsa65SignatureBytes));
  if (context.size() > kMaxContextBytes) {
    return absl::InvalidArgumentError("an ML-DSA context is at most 255 bytes");
  }
  if (PQCLEAN_MLDSA65_CLEAN_crypto_sign_verify_ctx(Bytes(signature), signature.size(),
                                                   Bytes(message), message.size(), Bytes(context),
                                                   context.size(), Bytes(public_key)) != 0) {
    return absl::UnauthenticatedError(
        "the ML-DSA-65 signature does not match the message, context and key");
  }
  return absl::OkStatus();
}

KeyPair GenerateMlKem768() {
  KeyPair k{std::string(kMlKem768PublicKeyBytes, '\0'), std::string(kMlKem768SecretKeyBytes, '\0')};
  PQCLEAN_MLKEM768_CLEAN_crypto_kem_keypair(Bytes(k.public_key), Bytes(k.secret_key));
  return k;
}

StatusOr<Encapsulation> EncapsulateMlKem768(std::string_view public_key) {
  RXFLOW_RETURN_IF_ERROR(
      CheckLength("an ML-KEM-768 public key", public_key, kMlKem768PublicKeyBytes));
  Encapsulation e{std::string(kMlKem768CiphertextBytes, '\0'),
                  std::string(kMlKem768SharedSecretBytes, '\0')};
  if (PQCLEAN_MLKEM768_CLEAN_crypto_kem_enc(Bytes(e.ciphertext), Bytes(e.shared_secret),
                                            Bytes(public_key)) != 0) {
    return absl::InternalError("ML-KEM-768 encapsulation failed");
  }
  return e;
}

StatusOr<std::string> DecapsulateMlKem768(std::string_view secret_key,
                                          std::string_view ciphertext) {
  RXFLOW_RETURN_IF_ERROR(
      CheckLength("an ML-KEM-768 secret key", secret_key, kMlKem768SecretKeyBytes));
  RXFLOW_RETURN_IF_ERROR(
      CheckLength("an ML-KEM-768 ciphertext", ciphertext, kMlKem768CiphertextBytes));
  std::string secret(kMlKem768SharedSecretBytes, '\0');
  if (PQCLEAN_MLKEM768_CLEAN_crypto_kem_dec(Bytes(secret), Bytes(ciphertext), Bytes(secret_key)) !=
      0) {
    return absl::InternalError("ML-KEM-768 decapsulation failed");
  }
  return secret;
}

KeyPair GenerateHybridKem() {
  KeyPair m = GenerateMlKem768();
  KeyPair x = NewX25519();
  KeyPair out{Cat(m.public_key, x.public_key), Cat(m.secret_key, x.secret_key)};
  OPENSSL_cleanse(m.secret_key.data(), m.secret_key.size());
  OPENSSL_cleanse(x.secret_key.data(), x.secret_key.size());
  return out;
}

StatusOr<std::string> WrapKey(std::string_view recipient_public_key, std::string_view key,
                              std::string_view aad) {
  RXFLOW_RETURN_IF_ERROR(CheckLength("a hybrid (ML-KEM-768 + X25519) public key",
                                     recipient_public_key, kHybridPublicKeyBytes));
  if (key.empty() || key.size() > 64) {
    return absl::InvalidArgumentError("a wrapped key is 1 to 64 bytes");
  }
  std::string_view pk_m = recipient_public_key.substr(0, kMlKem768PublicKeyBytes);
  std::string_view pk_x = recipient_public_key.substr(kMlKem768PublicKeyBytes);
  RXFLOW_ASSIGN_OR_RETURN(Encapsulation m, EncapsulateMlKem768(pk_m));
  KeyPair ephemeral = NewX25519();
  StatusOr<std::string> ss_x = X25519(ephemeral.secret_key, pk_x);
  OPENSSL_cleanse(ephemeral.secret_key.data(), ephemeral.secret_key.size());
  if (!ss_x.ok()) {
    OPENSSL_cleanse(m.shared_secret.data(), m.shared_secret.size());
    return ss_x.status();
  }
  Wiped kek(0);
  kek.bytes = Combine(m.shared_secret, *ss_x, ephemeral.public_key, pk_x);
  OPENSSL_cleanse(m.shared_secret.data(), m.shared_secret.size());
  OPENSSL_cleanse(ss_x->data(), ss_x->size());

  std::string out = Cat(kWrapMagic, m.ciphertext, ephemeral.public_key);
  std::string nonce(kNonceBytes, '\0');
  if (RAND_bytes(Bytes(nonce), static_cast<int>(nonce.size())) != 1) {
    return absl::InternalError("no randomness for the nonce");
  }
  out += nonce;
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  std::string sealed(key.size(), '\0');
  std::string tag(kTagBytes, '\0');
  int n = 0, tail = 0;
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(kek.bytes), Bytes(nonce)) !=
          1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &n, Bytes(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), Bytes(sealed), &n, Bytes(key), static_cast<int>(key.size())) !=
          1 ||
      EVP_EncryptFinal_ex(ctx.get(), Bytes(sealed) + n, &tail) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, tag.data()) != 1) {
    return absl::InternalError("AES-256-GCM sealing failed");
  }
  return Cat(out, sealed, tag);
}

StatusOr<std::string> UnwrapKey(std::string_view recipient_secret_key, std::string_view wrapped,
                                std::string_view aad) {
  RXFLOW_RETURN_IF_ERROR(CheckLength("a hybrid (ML-KEM-768 + X25519) secret key",
                                     recipient_secret_key, kHybridSecretKeyBytes));
  constexpr size_t kHead = 4 + kMlKem768CiphertextBytes + kX25519Bytes + kNonceBytes;
  if (wrapped.size() < kHead + 1 + kTagBytes || wrapped.size() > kHead + 64 + kTagBytes ||
      !wrapped.starts_with(kWrapMagic)) {
    return absl::InvalidArgumentError("not a wrapped key (RXW1, ML-KEM-768 + X25519)");
  }
  std::string_view ct_m = wrapped.substr(4, kMlKem768CiphertextBytes);
  std::string_view ct_x = wrapped.substr(4 + kMlKem768CiphertextBytes, kX25519Bytes);
  std::string_view nonce = wrapped.substr(4 + kMlKem768CiphertextBytes + kX25519Bytes, kNonceBytes);
  std::string_view sealed = wrapped.substr(kHead, wrapped.size() - kHead - kTagBytes);
  std::string tag(wrapped.substr(wrapped.size() - kTagBytes));
  std::string_view sk_m = recipient_secret_key.substr(0, kMlKem768SecretKeyBytes);
  std::string_view sk_x = recipient_secret_key.substr(kMlKem768SecretKeyBytes);

  RXFLOW_ASSIGN_OR_RETURN(std::string ss_m, DecapsulateMlKem768(sk_m, ct_m));
  StatusOr<std::string> ss_x = X25519(sk_x, ct_x);
  if (!ss_x.ok()) {
    OPENSSL_cleanse(ss_m.data(), ss_m.size());
    return absl::UnauthenticatedError("the wrapped key does not open with this key");
  }
  // pk_X: the recipient's X25519 public key, from its private key.
  PkeyPtr sk(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, Bytes(sk_x), sk_x.size()),
             EVP_PKEY_free);
  std::string pk_x(kX25519Bytes, '\0');
  size_t pk_n = kX25519Bytes;
  if (!sk || EVP_PKEY_get_raw_public_key(sk.get(), Bytes(pk_x), &pk_n) != 1) {
    OPENSSL_cleanse(ss_m.data(), ss_m.size());
    OPENSSL_cleanse(ss_x->data(), ss_x->size());
    return absl::InvalidArgumentError("the X25519 private key is malformed");
  }
  Wiped kek(0);
  kek.bytes = Combine(ss_m, *ss_x, ct_x, pk_x);
  OPENSSL_cleanse(ss_m.data(), ss_m.size());
  OPENSSL_cleanse(ss_x->data(), ss_x->size());

  CipherCtxPtr ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  std::string key(sealed.size(), '\0');
  int n = 0, tail = 0;
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(kek.bytes), Bytes(nonce)) !=
          1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &n, Bytes(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), Bytes(key), &n, Bytes(sealed),
                        static_cast<int>(sealed.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), Bytes(key) + n, &tail) != 1) {
    OPENSSL_cleanse(key.data(), key.size());
    return absl::UnauthenticatedError(
        "the wrapped key does not open: another recipient, other associated data, or altered "
        "bytes");
  }
  return key;
}

}  // namespace rxflow::pq
