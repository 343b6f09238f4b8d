// SPDX-License-Identifier: Apache-2.0
// The signatures and key wraps RxFlow makes, side by side (docs/performance.md,
// "Post-quantum"): ECDSA P-256 (OpenSSL; what DEA rules recognise) beside ML-DSA-65
// (PQClean's portable C, rxflow/crypto/pq.h), and ML-KEM-768 alone and inside the hybrid
// ML-KEM-768 + X25519 key wrap. Sizes are reported as counters. Also the HMAC-SHA-256 every
// submission makes twice (its patient reference and idempotency key), beside OpenSSL's
// one-shot HMAC() that RxFlow used before (docs/performance.md, "HMAC without a fetch per
// call"). And sealing a NewRx at rest (zstd, then AES-256-GCM under a cached data key, then
// the envelope) and zstd alone, over the lisinopril NewRx that RxFlow writes
// (docs/performance.md, "Sealing a NewRx").
#include <memory>
#include <stdexcept>
#include <string>

#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "rxflow/clock.h"
#include "rxflow/crypto/phi.h"
#include "rxflow/crypto/pq.h"
#include "rxflow/epcs/signer.h"
#include "rxflow/internal/compress.h"
#include "rxflow/internal/crypto.h"
#include "rxflow/store/event_store.h"

#include "testing/files.h"

namespace {

using namespace rxflow;

// What a checkpoint signs: the 64 hex digits of a record hash.
const std::string kSealed(64, 'a');

void BM_EcdsaP256_Sign(benchmark::State& state) {
  auto signer = epcs::NewInMemorySigner();
  size_t bytes = 0;
  for (auto _ : state) {
    auto sig = signer->Sign(kSealed);
    bytes = sig->size();
    benchmark::DoNotOptimize(sig);
  }
  state.counters["signature_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_EcdsaP256_Sign);

void BM_EcdsaP256_Verify(benchmark::State& state) {
  auto signer = epcs::NewInMemorySigner();
  const std::string key = *signer->PublicKeyDer();
  const std::string sig = *signer->Sign(kSealed);
  for (auto _ : state) {
    benchmark::DoNotOptimize(epcs::VerifyEcdsaSha256(key, kSealed, sig));
  }
  state.counters["public_key_bytes"] = static_cast<double>(key.size());
}
BENCHMARK(BM_EcdsaP256_Verify);

void BM_MlDsa65_KeyGen(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(pq::GenerateMlDsa65());
}
BENCHMARK(BM_MlDsa65_KeyGen);

void BM_MlDsa65_Sign(benchmark::State& state) {
  const pq::KeyPair k = pq::GenerateMlDsa65();
  for (auto _ : state) {
    benchmark::DoNotOptimize(pq::SignMlDsa65(k.secret_key, kSealed, epcs::kCoSignAuditCheckpoint));
  }
  state.counters["signature_bytes"] = static_cast<double>(pq::kMlDsa65SignatureBytes);
}
BENCHMARK(BM_MlDsa65_Sign);

void BM_MlDsa65_Verify(benchmark::State& state) {
  const pq::KeyPair k = pq::GenerateMlDsa65();
  const std::string sig = *pq::SignMlDsa65(k.secret_key, kSealed, epcs::kCoSignAuditCheckpoint);
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        pq::VerifyMlDsa65(k.public_key, kSealed, sig, epcs::kCoSignAuditCheckpoint));
  }
  state.counters["public_key_bytes"] = static_cast<double>(pq::kMlDsa65PublicKeyBytes);
}
BENCHMARK(BM_MlDsa65_Verify);

void BM_MlKem768_Encapsulate(benchmark::State& state) {
  const pq::KeyPair k = pq::GenerateMlKem768();
  for (auto _ : state) benchmark::DoNotOptimize(pq::EncapsulateMlKem768(k.public_key));
  state.counters["ciphertext_bytes"] = static_cast<double>(pq::kMlKem768CiphertextBytes);
}
BENCHMARK(BM_MlKem768_Encapsulate);

void BM_MlKem768_Decapsulate(benchmark::State& state) {
  const pq::KeyPair k = pq::GenerateMlKem768();
  const std::string ct = pq::EncapsulateMlKem768(k.public_key)->ciphertext;
  for (auto _ : state) benchmark::DoNotOptimize(pq::DecapsulateMlKem768(k.secret_key, ct));
}
BENCHMARK(BM_MlKem768_Decapsulate);

void BM_HybridWrapKey(benchmark::State& state) {
  const pq::KeyPair k = pq::GenerateHybridKem();
  const std::string dek(32, 'k');
  size_t bytes = 0;
  for (auto _ : state) {
    auto w = pq::WrapKey(k.public_key, dek, "tenant=default key=dek-1 v=1");
    bytes = w->size();
    benchmark::DoNotOptimize(w);
  }
  state.counters["wrapped_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_HybridWrapKey);

void BM_HybridUnwrapKey(benchmark::State& state) {
  const pq::KeyPair k = pq::GenerateHybridKem();
  const std::string wrapped = *pq::WrapKey(k.public_key, std::string(32, 'k'), "aad");
  for (auto _ : state) benchmark::DoNotOptimize(pq::UnwrapKey(k.secret_key, wrapped, "aad"));
}
BENCHMARK(BM_HybridUnwrapKey);

// A patient key and what a submission's patient reference hashes (about 200 bytes).
const std::string kPatientKey(32, 'k');
const std::string kPatientIdentity(200, 'p');

void BM_HmacSha256Hex(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(internal::HmacSha256Hex(kPatientKey, kPatientIdentity));
  }
}
BENCHMARK(BM_HmacSha256Hex)->Threads(1)->Threads(4)->UseRealTime();

void BM_HmacOpenSslOneShot(benchmark::State& state) {
  for (auto _ : state) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), kPatientKey.data(), static_cast<int>(kPatientKey.size()),
         reinterpret_cast<const unsigned char*>(kPatientIdentity.data()), kPatientIdentity.size(),
         md, &len);
    benchmark::DoNotOptimize(md);
  }
}
BENCHMARK(BM_HmacOpenSslOneShot)->Threads(1)->Threads(4)->UseRealTime();

std::string NewRxXml() {
  std::string xml = testing::ReadFixture("golden/medication_request_lisinopril.2023011.xml");
  if (xml.empty()) throw std::runtime_error("crypto benchmark: no NewRx fixture");
  return xml;
}

void BM_ZstdCompressNewRx(benchmark::State& state) {
  const std::string xml = NewRxXml();
  for (auto _ : state) benchmark::DoNotOptimize(internal::ZstdCompress(xml));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * xml.size()));
}
BENCHMARK(BM_ZstdCompressNewRx)->Threads(1)->Threads(4)->UseRealTime();

// The NewRx as the service seals it (testing::SealedLisinoprilNewRx). Argument 0 without a
// dictionary, 1 with the sealed one (which never saw this prescription).
void BM_ZstdCompressSealedNewRx(benchmark::State& state) {
  const std::string value = testing::SealedLisinoprilNewRx();
  const auto dictionary =
      state.range(0) == 0 ? internal::ZstdDictionary::kNone : internal::ZstdDictionary::kSealed;
  size_t frame = 0;
  for (auto _ : state) {
    auto compressed = internal::ZstdCompress(value, dictionary);
    frame = compressed ? compressed->size() : 0;
    benchmark::DoNotOptimize(compressed);
  }
  state.counters["frame_bytes"] = static_cast<double>(frame);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * value.size()));
}
BENCHMARK(BM_ZstdCompressSealedNewRx)->Arg(0)->Arg(1);

// A data key in the vault's cache, as for a patient seen before: the sealing a submission
// does on its own thread before the append.
void BM_SealNewRx(benchmark::State& state) {
  static const std::string xml = NewRxXml();
  static const std::unique_ptr<store::Store> keys = store::NewMemoryStore(SystemClock());
  static const std::unique_ptr<phi::Vault> vault = [] {
    phi::VaultOptions o;
    o.current = std::shared_ptr<phi::KeyEncryptionKey>(phi::NewInMemoryKek("bench-kek"));
    auto v = phi::Vault::Create(*keys, std::move(o));
    if (!v.ok() || !(*v)->Seal("patient-1", {"t", "rx-0", "newrx_xml"}, xml).ok()) {
      throw std::runtime_error("crypto benchmark: no vault");
    }
    return std::move(*v);
  }();
  const phi::Binding where{"t", "rx-1", "newrx_xml"};
  for (auto _ : state) {
    StatusOr<std::string> sealed = vault->SealExisting("patient-1", where, xml);
    if (!sealed.ok()) state.SkipWithError("sealing failed");
    benchmark::DoNotOptimize(sealed);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * xml.size()));
}
BENCHMARK(BM_SealNewRx)->Threads(1)->Threads(4)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
