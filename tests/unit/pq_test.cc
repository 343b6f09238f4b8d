// SPDX-License-Identifier: Apache-2.0
// rxflow/crypto/pq.h: ML-DSA-65, ML-KEM-768 and the hybrid key wrap as the library exposes
// them (the PQClean objects themselves are checked against NIST's known answers by the
// pq-kat test, tests/pq_kat.cc).
#include "rxflow/crypto/pq.h"

#include <string>

#include <doctest/doctest.h>

#include "testing/status.h"

using namespace rxflow;

TEST_SUITE("Post-quantum") {
  TEST_CASE("ML-DSA-65: a signature verifies for its message, context and key only") {
    pq::KeyPair k = pq::GenerateMlDsa65();
    CHECK(k.public_key.size() == pq::kMlDsa65PublicKeyBytes);
    CHECK(k.secret_key.size() == pq::kMlDsa65SecretKeyBytes);
    auto sig = pq::SignMlDsa65(k.secret_key, "sealed hash", "rxflow-audit-checkpoint");
    RXFLOW_REQUIRE_OK(sig);
    CHECK(sig->size() == pq::kMlDsa65SignatureBytes);
    CHECK(pq::VerifyMlDsa65(k.public_key, "sealed hash", *sig, "rxflow-audit-checkpoint").ok());
    // Another message, context or key; a flipped bit.
    CHECK(absl::IsUnauthenticated(
        pq::VerifyMlDsa65(k.public_key, "sealed hasH", *sig, "rxflow-audit-checkpoint")));
    CHECK(absl::IsUnauthenticated(
        pq::VerifyMlDsa65(k.public_key, "sealed hash", *sig, "rxflow-epcs-signature")));
    pq::KeyPair other = pq::GenerateMlDsa65();
    CHECK(absl::IsUnauthenticated(
        pq::VerifyMlDsa65(other.public_key, "sealed hash", *sig, "rxflow-audit-checkpoint")));
    std::string flipped = *sig;
    flipped[100] ^= 1;
    CHECK(absl::IsUnauthenticated(
        pq::VerifyMlDsa65(k.public_key, "sealed hash", flipped, "rxflow-audit-checkpoint")));
    // Hedged: two signatures of one message differ, and both verify.
    auto again = pq::SignMlDsa65(k.secret_key, "sealed hash", "rxflow-audit-checkpoint");
    RXFLOW_REQUIRE_OK(again);
    CHECK(*again != *sig);
    CHECK(pq::VerifyMlDsa65(k.public_key, "sealed hash", *again, "rxflow-audit-checkpoint").ok());
  }

  TEST_CASE("ML-DSA-65: wrong lengths and long contexts are refused, naming the part") {
    pq::KeyPair k = pq::GenerateMlDsa65();
    auto short_key = pq::SignMlDsa65(k.secret_key.substr(1), "m", "");
    CHECK(absl::IsInvalidArgument(short_key.status()));
    CHECK(std::string(short_key.status().message()).find("secret key must be 4032 bytes") !=
          std::string::npos);
    CHECK(absl::IsInvalidArgument(pq::VerifyMlDsa65(k.public_key, "m", "short", "")));
    CHECK(absl::IsInvalidArgument(
        pq::SignMlDsa65(k.secret_key, "m", std::string(256, 'c')).status()));
    CHECK(pq::SignMlDsa65(k.secret_key, "m", std::string(255, 'c')).ok());
  }

  TEST_CASE(
      "ML-KEM-768: decapsulation gives the encapsulated secret, a forged ciphertext "
      "another one") {
    pq::KeyPair k = pq::GenerateMlKem768();
    auto e = pq::EncapsulateMlKem768(k.public_key);
    RXFLOW_REQUIRE_OK(e);
    CHECK(e->ciphertext.size() == pq::kMlKem768CiphertextBytes);
    auto ss = pq::DecapsulateMlKem768(k.secret_key, e->ciphertext);
    RXFLOW_REQUIRE_OK(ss);
    CHECK(*ss == e->shared_secret);
    std::string forged = e->ciphertext;
    forged[7] ^= 0x40;
    auto implicit = pq::DecapsulateMlKem768(k.secret_key, forged);
    RXFLOW_REQUIRE_OK(implicit);  // implicit rejection: a secret, but not the sender's
    CHECK(*implicit != e->shared_secret);
    CHECK(absl::IsInvalidArgument(pq::EncapsulateMlKem768("short").status()));
  }

  TEST_CASE("hybrid key wrap: opens for its recipient and associated data only") {
    pq::KeyPair r = pq::GenerateHybridKem();
    CHECK(r.public_key.size() == pq::kHybridPublicKeyBytes);
    CHECK(r.secret_key.size() == pq::kHybridSecretKeyBytes);
    const std::string dek(32, '\x5a');
    auto wrapped = pq::WrapKey(r.public_key, dek, "tenant=default key=dek-1 v=3");
    RXFLOW_REQUIRE_OK(wrapped);
    CHECK(wrapped->size() == 4 + 1088 + 32 + 12 + 32 + 16);
    CHECK(wrapped->find(dek) == std::string::npos);
    auto opened = pq::UnwrapKey(r.secret_key, *wrapped, "tenant=default key=dek-1 v=3");
    RXFLOW_REQUIRE_OK(opened);
    CHECK(*opened == dek);
    // Wrapping twice gives different bytes (fresh encapsulation, ephemeral key and nonce).
    CHECK(*pq::WrapKey(r.public_key, dek, "a") != *pq::WrapKey(r.public_key, dek, "a"));
    // Other associated data, another recipient, any altered byte: Unauthenticated.
    CHECK(absl::IsUnauthenticated(
        pq::UnwrapKey(r.secret_key, *wrapped, "tenant=other key=dek-1 v=3").status()));
    pq::KeyPair other = pq::GenerateHybridKem();
    CHECK(absl::IsUnauthenticated(
        pq::UnwrapKey(other.secret_key, *wrapped, "tenant=default key=dek-1 v=3").status()));
    for (size_t at : {size_t{10}, size_t{4 + 1088 + 5}, size_t{4 + 1088 + 32 + 3},
                      wrapped->size() - 20, wrapped->size() - 1}) {
      CAPTURE(at);
      std::string altered = *wrapped;
      altered[at] ^= 1;
      CHECK(absl::IsUnauthenticated(
          pq::UnwrapKey(r.secret_key, altered, "tenant=default key=dek-1 v=3").status()));
    }
    // Not a wrapped key at all; keys of the wrong size.
    CHECK(absl::IsInvalidArgument(pq::UnwrapKey(r.secret_key, "RXW1", "").status()));
    CHECK(absl::IsInvalidArgument(
        pq::UnwrapKey(r.secret_key, "XXXX" + wrapped->substr(4), "").status()));
    CHECK(absl::IsInvalidArgument(pq::WrapKey(r.public_key, "", "").status()));
    CHECK(absl::IsInvalidArgument(pq::WrapKey(r.public_key, std::string(65, 'k'), "").status()));
    CHECK(absl::IsInvalidArgument(pq::WrapKey(r.public_key.substr(1), dek, "").status()));
  }
}
