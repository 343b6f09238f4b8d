// SPDX-License-Identifier: Apache-2.0
// NIST known-answer tests of the PQClean objects RxFlow compiles (ML-DSA-65, ML-KEM-768).
//
// The program NIST's submission packages ship (PQCgenKAT) seeds an AES-256 CTR_DRBG
// (SP 800-90A, no derivation function) with the bytes 0..47, draws a 48-byte seed, reseeds
// with it, then runs key generation, signing (or encapsulation) with that deterministic
// generator standing in for randombytes, and prints the .rsp record. PQClean keeps the
// SHA-256 of the first record of each scheme in its META.yml ("nistkat-sha256"); this test
// rebuilds the record from the very objects linked into rxflow_core and compares. It links
// them with its own randombytes (the DRBG below), never with rxflow_core's (OpenSSL's
// CSPRNG), so the objects are the same and only the randomness differs.
//
// Expected digests: PQClean's crypto_sign/ml-dsa-65/META.yml and crypto_kem/ml-kem-768/META.yml
// (https://github.com/PQClean/PQClean), for the sources of npm pqclean@0.8.1.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include <openssl/evp.h>

extern "C" {
#include "crypto_kem/ml-kem-768/clean/api.h"
#include "crypto_sign/ml-dsa-65/clean/api.h"
}

namespace {

constexpr const char* kMlDsa65KatSha256 =
    "7cb96242eac9907a55b5c84c202f0ebd552419c50b2e986dc2e28f07ecebf072";
constexpr const char* kMlKem768KatSha256 =
    "5352539586b6c3df58be6158a6250aeff402bd73060b0a3de68850ac074c17c3";

// AES-256 CTR_DRBG without a derivation function, as NIST's rng.c runs it.
struct Drbg {
  uint8_t key[32];
  uint8_t v[16];
} drbg;

void Increment(uint8_t v[16]) {
  for (int j = 15; j >= 0; --j) {
    if (++v[j] != 0) break;
  }
}

void AesBlock(const uint8_t key[32], const uint8_t in[16], uint8_t out[16]) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int n = 0;
  EVP_EncryptInit_ex(ctx, EVP_aes_256_ecb(), nullptr, key, nullptr);
  EVP_CIPHER_CTX_set_padding(ctx, 0);
  EVP_EncryptUpdate(ctx, out, &n, in, 16);
  EVP_CIPHER_CTX_free(ctx);
}

// CTR_DRBG_Update: three blocks of AES(key, ++V), xored with `provided` (48 bytes) when
// given, become the new key and V.
void Update(const uint8_t* provided) {
  uint8_t temp[48];
  for (int i = 0; i < 3; ++i) {
    Increment(drbg.v);
    AesBlock(drbg.key, drbg.v, temp + 16 * i);
  }
  if (provided != nullptr) {
    for (int i = 0; i < 48; ++i) temp[i] ^= provided[i];
  }
  std::memcpy(drbg.key, temp, 32);
  std::memcpy(drbg.v, temp + 32, 16);
}

void Seed(const uint8_t entropy[48]) {
  std::memset(drbg.key, 0, sizeof(drbg.key));
  std::memset(drbg.v, 0, sizeof(drbg.v));
  Update(entropy);
}

std::string Hex(const uint8_t* p, size_t n) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return n == 0 ? "00" : out;
}

std::string Sha256Hex(const std::string& s) {
  uint8_t md[32];
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), md, &n, EVP_sha256(), nullptr);
  std::string hex = Hex(md, 32);
  for (char& c : hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return hex;
}

}  // namespace

// PQClean's randombytes (renamed rxflow_pqclean_randombytes by CMake, as in rxflow_core), for
// this program only: the DRBG's generate step.
extern "C" int rxflow_pqclean_randombytes(uint8_t* out, size_t n) {
  uint8_t block[16];
  while (n > 0) {
    Increment(drbg.v);
    AesBlock(drbg.key, drbg.v, block);
    const size_t take = n < 16 ? n : 16;
    std::memcpy(out, block, take);
    out += take;
    n -= take;
  }
  Update(nullptr);
  return 0;
}

namespace {

// The first record of PQCgenKAT_sign for ML-DSA-65 (a 33-byte message, the signed message
// sm = signature || message).
std::string MlDsa65Record(bool& ok) {
  uint8_t entropy[48], seed[48], msg[33];
  for (int i = 0; i < 48; ++i) entropy[i] = static_cast<uint8_t>(i);
  Seed(entropy);
  rxflow_pqclean_randombytes(seed, 48);
  rxflow_pqclean_randombytes(msg, 33);
  std::string r =
      "count = 0\nseed = " + Hex(seed, 48) + "\nmlen = 33\nmsg = " + Hex(msg, 33) + "\n";
  Seed(seed);
  static uint8_t pk[PQCLEAN_MLDSA65_CLEAN_CRYPTO_PUBLICKEYBYTES];
  static uint8_t sk[PQCLEAN_MLDSA65_CLEAN_CRYPTO_SECRETKEYBYTES];
  static uint8_t sm[33 + PQCLEAN_MLDSA65_CLEAN_CRYPTO_BYTES];
  ok = PQCLEAN_MLDSA65_CLEAN_crypto_sign_keypair(pk, sk) == 0;
  r += "pk = " + Hex(pk, sizeof(pk)) + "\nsk = " + Hex(sk, sizeof(sk)) + "\n";
  size_t smlen = 0, mlen = 0;
  ok = ok && PQCLEAN_MLDSA65_CLEAN_crypto_sign(sm, &smlen, msg, 33, sk) == 0;
  r += "smlen = " + std::to_string(smlen) + "\nsm = " + Hex(sm, smlen) + "\n";
  // And it verifies: the opened message is the message.
  static uint8_t opened[sizeof(sm)];
  ok = ok && PQCLEAN_MLDSA65_CLEAN_crypto_sign_open(opened, &mlen, sm, smlen, pk) == 0 &&
       mlen == 33 && std::memcmp(opened, msg, 33) == 0;
  return r;
}

// The first record of PQCgenKAT_kem for ML-KEM-768.
std::string MlKem768Record(bool& ok) {
  uint8_t entropy[48], seed[48];
  for (int i = 0; i < 48; ++i) entropy[i] = static_cast<uint8_t>(i);
  Seed(entropy);
  rxflow_pqclean_randombytes(seed, 48);
  std::string r = "count = 0\nseed = " + Hex(seed, 48) + "\n";
  Seed(seed);
  static uint8_t pk[PQCLEAN_MLKEM768_CLEAN_CRYPTO_PUBLICKEYBYTES];
  static uint8_t sk[PQCLEAN_MLKEM768_CLEAN_CRYPTO_SECRETKEYBYTES];
  static uint8_t ct[PQCLEAN_MLKEM768_CLEAN_CRYPTO_CIPHERTEXTBYTES];
  uint8_t ss[PQCLEAN_MLKEM768_CLEAN_CRYPTO_BYTES], ss2[PQCLEAN_MLKEM768_CLEAN_CRYPTO_BYTES];
  ok = PQCLEAN_MLKEM768_CLEAN_crypto_kem_keypair(pk, sk) == 0;
  r += "pk = " + Hex(pk, sizeof(pk)) + "\nsk = " + Hex(sk, sizeof(sk)) + "\n";
  ok = ok && PQCLEAN_MLKEM768_CLEAN_crypto_kem_enc(ct, ss, pk) == 0;
  r += "ct = " + Hex(ct, sizeof(ct)) + "\nss = " + Hex(ss, sizeof(ss)) + "\n";
  ok = ok && PQCLEAN_MLKEM768_CLEAN_crypto_kem_dec(ss2, ct, sk) == 0 &&
       std::memcmp(ss, ss2, sizeof(ss)) == 0;
  return r;
}

}  // namespace

int main() {
  int failures = 0;
  struct Case {
    const char* name;
    std::string (*record)(bool&);
    const char* expected;
  };
  for (const Case& c : {Case{"ML-DSA-65", MlDsa65Record, kMlDsa65KatSha256},
                        Case{"ML-KEM-768", MlKem768Record, kMlKem768KatSha256}}) {
    bool ok = false;
    const std::string digest = Sha256Hex(c.record(ok));
    const bool match = digest == c.expected;
    std::printf("%s: NIST KAT record SHA-256 %s %s (expected %s)%s\n", c.name, digest.c_str(),
                match ? "matches" : "DIFFERS", c.expected,
                ok ? "" : "; a round trip (verify or decapsulate) failed");
    if (!match || !ok) ++failures;
  }
  return failures == 0 ? 0 : 1;
}
