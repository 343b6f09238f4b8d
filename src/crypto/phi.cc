// SPDX-License-Identifier: Apache-2.0
// Field-level encryption of PHI at rest: AES-256-GCM values under per-patient data keys,
// wrapped by a key-encryption key (rxflow/crypto/phi.h).
#include "rxflow/crypto/phi.h"

#include <algorithm>
#include <charconv>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "rxflow/crypto/pq.h"
#include "rxflow/domain/prescription.h"
#include "rxflow/idempotency.h"
#include "rxflow/internal/compress.h"
#include "rxflow/internal/crypto.h"
#include "rxflow/internal/files.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/script/xml.h"
#include "rxflow/service.h"

#include "common/text.h"

namespace rxflow::phi {

using internal::Cat;

namespace {

constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr std::string_view kKekFileHeader = "RXFLOW PHI KEK v1";
constexpr std::string_view kHybridFileHeader = "RXFLOW PHI HYBRID KEK v1";
constexpr size_t kRewrapPage = 256;
// The status payload that marks an erased value (IsErased).
constexpr const char* kErasedPayload = "type.rxflow.dev/phi-erased";

// Zeroes a secret when it goes out of scope.
struct Wiped {
  std::string bytes;
  ~Wiped() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
};

const EVP_CIPHER* Aes256Gcm() {
  // Fetched once: EVP_aes_256_gcm() makes OpenSSL 3 look the implementation up on each use.
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

// nonce || ciphertext || tag.
StatusOr<std::string> GcmSeal(std::string_view key, std::string_view aad,
                              std::string_view plaintext) {
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  if (RAND_bytes(p, kNonceBytes) != 1) return absl::InternalError("phi: no random nonce");
  std::unique_ptr<EVP_CIPHER_CTX, CtxFree> ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  bool ok = ctx &&
            EVP_EncryptInit_ex(ctx.get(), Aes256Gcm(), nullptr,
                               reinterpret_cast<const unsigned char*>(key.data()), p) == 1 &&
            EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                              reinterpret_cast<const unsigned char*>(aad.data()),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_EncryptUpdate(ctx.get(), p + kNonceBytes, &len,
                              reinterpret_cast<const unsigned char*>(plaintext.data()),
                              static_cast<int>(plaintext.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx.get(), p + kNonceBytes + len, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                                p + kNonceBytes + plaintext.size()) == 1;
  if (!ok) return absl::InternalError("phi: AES-256-GCM encryption failed");
  return out;
}

StatusOr<std::string> GcmOpen(std::string_view key, std::string_view aad, std::string_view sealed) {
  if (sealed.size() < kNonceBytes + kTagBytes) {
    return absl::UnauthenticatedError("phi: the ciphertext is too short");
  }
  const auto* p = reinterpret_cast<const unsigned char*>(sealed.data());
  const size_t n = sealed.size() - kNonceBytes - kTagBytes;
  std::string out(n, '\0');
  std::unique_ptr<EVP_CIPHER_CTX, CtxFree> ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  bool ok = ctx &&
            EVP_DecryptInit_ex(ctx.get(), Aes256Gcm(), nullptr,
                               reinterpret_cast<const unsigned char*>(key.data()), p) == 1 &&
            EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                              reinterpret_cast<const unsigned char*>(aad.data()),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                              p + kNonceBytes, static_cast<int>(n)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes,
                                const_cast<unsigned char*>(p + kNonceBytes + n)) == 1;
  if (!ok) return absl::InternalError("phi: AES-256-GCM decryption failed");
  if (EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + len, &len) !=
      1) {
    OPENSSL_cleanse(out.data(), out.size());
    return absl::UnauthenticatedError("phi: the ciphertext does not authenticate");
  }
  return out;
}

std::string KekAad(std::string_view aad) {
  return Cat("rxflow-kek-wrap-v1", std::string(1, '\0'), aad);
}

class AesKek : public KeyEncryptionKey {
 public:
  AesKek(std::string id, std::string key) : id_(std::move(id)), key_{std::move(key)} {}
  const std::string& id() const override { return id_; }
  StatusOr<std::string> Wrap(std::string_view key, std::string_view aad) override {
    return GcmSeal(key_.bytes, KekAad(aad), key);
  }
  StatusOr<std::string> Unwrap(std::string_view wrapped, std::string_view aad) override {
    return GcmOpen(key_.bytes, KekAad(aad), wrapped);
  }

 private:
  std::string id_;
  Wiped key_;
};

class HybridKek : public KeyEncryptionKey {
 public:
  HybridKek(std::string id, pq::KeyPair keys) : id_(std::move(id)), keys_(std::move(keys)) {}
  ~HybridKek() override { OPENSSL_cleanse(keys_.secret_key.data(), keys_.secret_key.size()); }
  const std::string& id() const override { return id_; }
  StatusOr<std::string> Wrap(std::string_view key, std::string_view aad) override {
    return pq::WrapKey(keys_.public_key, key, aad);
  }
  StatusOr<std::string> Unwrap(std::string_view wrapped, std::string_view aad) override {
    return pq::UnwrapKey(keys_.secret_key, wrapped, aad);
  }

 private:
  std::string id_;
  pq::KeyPair keys_;
};

// The lines of a key file after its header, which must be `header`; `count` of them.
StatusOr<std::vector<std::string>> KeyFileLines(const std::string& path, std::string_view text,
                                                std::string_view header, size_t count) {
  std::vector<std::string> lines;
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) break;
    lines.emplace_back(rest.substr(0, nl));
    rest.remove_prefix(nl + 1);
  }
  if (!rest.empty() || lines.size() != count + 1 || lines[0] != header) {
    for (auto& l : lines) OPENSSL_cleanse(l.data(), l.size());
    return absl::InvalidArgumentError(
        Cat(path, ": the first line must be \"", header, "\", then ", count, " base64 line(s)"));
  }
  lines.erase(lines.begin());
  return lines;
}

// Reads `path`, or creates it with `make()`'s contents when it does not exist (never replacing
// a file another process created first).
template <typename Make>
StatusOr<std::string> ReadOrCreate(const std::string& path, Make make) {
  StatusOr<std::string> text = internal::ReadPrivateFile(path);
  if (absl::IsNotFound(text.status())) {
    Wiped file{make()};
    Status created = internal::CreatePrivateFile(path, file.bytes);
    if (!created.ok() && !absl::IsAlreadyExists(created)) return created;
    text = internal::ReadPrivateFile(path);
  }
  return text;
}

std::string WrapAad(std::string_view key_id, int version) {
  return Cat("rxflow-dek-v1", std::string(1, '\0'), key_id, std::string(1, '\0'), version);
}

// `compressed`: the plaintext is a zstd frame (the envelope's "z"), bound as a last member.
std::string ValueAad(const Binding& w, std::string_view key_id, int version, bool compressed) {
  const std::string nul(1, '\0');
  return Cat("rxflow-phi-v1", nul, w.tenant, nul, w.stream, nul, w.field, nul, key_id, nul, version,
             compressed ? Cat(nul, "zstd") : std::string());
}

// The largest value a compressed envelope may expand to (a forged frame costs bounded work).
constexpr size_t kMaxSealedValueBytes = size_t{64} << 20;

struct Envelope {
  std::string_view key_id;
  int version = 0;
  bool compressed = false;  // the version was followed by "z"
  std::string_view body;    // base64
};

std::optional<Envelope> ParseEnvelope(std::string_view s) {
  if (!IsSealed(s)) return std::nullopt;
  s.remove_prefix(kEnvelopePrefix.size());
  size_t last = s.rfind('.');
  if (last == std::string_view::npos || last == 0) return std::nullopt;
  size_t mid = s.rfind('.', last - 1);
  if (mid == std::string_view::npos || mid == 0) return std::nullopt;
  Envelope e;
  e.key_id = s.substr(0, mid);
  std::string_view v = s.substr(mid + 1, last - mid - 1);
  if (v.ends_with('z')) {
    e.compressed = true;
    v.remove_suffix(1);
  }
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), e.version);
  if (ec != std::errc() || ptr != v.data() + v.size() || e.version < 1) return std::nullopt;
  e.body = s.substr(last + 1);
  return e;
}

}  // namespace

bool IsErased(const Status& status) {
  return absl::IsFailedPrecondition(status) && status.GetPayload(kErasedPayload).has_value();
}

std::unique_ptr<KeyEncryptionKey> NewInMemoryKek(std::string id) {
  std::string key(kDataKeyBytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size()));
  return std::make_unique<AesKek>(std::move(id), std::move(key));
}

StatusOr<std::unique_ptr<KeyEncryptionKey>> OpenKekFile(const std::string& path) {
  auto make = [] {
    Wiped key{std::string(kDataKeyBytes, '\0')};
    RAND_bytes(reinterpret_cast<unsigned char*>(key.bytes.data()), static_cast<int>(kDataKeyBytes));
    Wiped b64{internal::Base64Encode(key.bytes)};
    return Cat(kKekFileHeader, "\n", b64.bytes, "\n");
  };
  RXFLOW_ASSIGN_OR_RETURN(std::string text, ReadOrCreate(path, make));
  Wiped wiped{std::move(text)};
  RXFLOW_ASSIGN_OR_RETURN(std::vector<std::string> lines,
                          KeyFileLines(path, wiped.bytes, kKekFileHeader, 1));
  std::optional<std::string> key = internal::Base64Decode(lines[0]);
  OPENSSL_cleanse(lines[0].data(), lines[0].size());
  if (!key || key->size() != kDataKeyBytes) {
    if (key) OPENSSL_cleanse(key->data(), key->size());
    return absl::InvalidArgumentError(Cat(path, ": line 2 is not a 32-byte key in base64"));
  }
  std::string id = Cat("file:", internal::Sha256Hex(*key).substr(0, 16));
  return std::unique_ptr<KeyEncryptionKey>(
      std::make_unique<AesKek>(std::move(id), std::move(*key)));
}

StatusOr<std::unique_ptr<KeyEncryptionKey>> OpenHybridKekFile(const std::string& path) {
  auto make = [] {
    pq::KeyPair k = pq::GenerateHybridKem();
    Wiped secret{std::move(k.secret_key)};
    return Cat(kHybridFileHeader, "\n", internal::Base64Encode(secret.bytes), "\n",
               internal::Base64Encode(k.public_key), "\n");
  };
  RXFLOW_ASSIGN_OR_RETURN(std::string text, ReadOrCreate(path, make));
  Wiped wiped{std::move(text)};
  RXFLOW_ASSIGN_OR_RETURN(std::vector<std::string> lines,
                          KeyFileLines(path, wiped.bytes, kHybridFileHeader, 2));
  std::optional<std::string> secret = internal::Base64Decode(lines[0]);
  std::optional<std::string> public_key = internal::Base64Decode(lines[1]);
  OPENSSL_cleanse(lines[0].data(), lines[0].size());
  if (!secret || secret->size() != pq::kHybridSecretKeyBytes || !public_key ||
      public_key->size() != pq::kHybridPublicKeyBytes) {
    if (secret) OPENSSL_cleanse(secret->data(), secret->size());
    return absl::InvalidArgumentError(
        Cat(path, ": lines 2 and 3 are not a hybrid ML-KEM-768 + X25519 key pair in base64"));
  }
  // The halves belong together: what the public key seals, the secret key opens.
  std::string probe(kDataKeyBytes, '\x5a');
  auto sealed = pq::WrapKey(*public_key, probe, "key file check");
  auto opened = sealed.ok() ? pq::UnwrapKey(*secret, *sealed, "key file check")
                            : StatusOr<std::string>(sealed.status());
  if (!opened.ok() || *opened != probe) {
    OPENSSL_cleanse(secret->data(), secret->size());
    return absl::InvalidArgumentError(Cat(path, ": the secret and public keys are not one pair"));
  }
  std::string id = Cat("hybrid:", internal::Sha256Hex(*public_key).substr(0, 16));
  return std::unique_ptr<KeyEncryptionKey>(std::make_unique<HybridKek>(
      std::move(id), pq::KeyPair{std::move(*public_key), std::move(*secret)}));
}

// ---- the vault -------------------------------------------------------------------------

struct Vault::Impl {
  store::DataKeys& store;
  VaultOptions options;
  Clock& clock;

  // One key id's unwrapped versions as last read from the store.
  struct Entry {
    std::map<int, Wiped> versions;  // version → data key
    bool destroyed = false;
    int64_t loaded_at = 0;
    std::list<std::string>::iterator lru;
  };
  std::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<Entry>> cache;
  std::list<std::string> lru;  // most recently used first

  Impl(store::DataKeys& s, VaultOptions o, Clock& c) : store(s), options(std::move(o)), clock(c) {}

  KeyEncryptionKey* KekById(const std::string& id) {
    if (options.current->id() == id) return options.current.get();
    for (const auto& k : options.retired) {
      if (k && k->id() == id) return k.get();
    }
    return nullptr;
  }

  void Forget(const std::string& key_id) {
    std::lock_guard lock(mu);
    if (auto it = cache.find(key_id); it != cache.end()) {
      lru.erase(it->second->lru);
      cache.erase(it);
    }
  }

  // The key id's versions, from the cache when fresh (and not `reload`), else the store.
  StatusOr<std::shared_ptr<const Entry>> Load(const std::string& key_id, bool reload) {
    const int64_t now = clock.NowMicros();
    if (!reload && options.cache_entries > 0) {
      std::lock_guard lock(mu);
      if (auto it = cache.find(key_id); it != cache.end()) {
        if (now - it->second->loaded_at < options.cache_ttl_micros) {
          lru.splice(lru.begin(), lru, it->second->lru);
          return std::shared_ptr<const Entry>(it->second);
        }
      }
    }
    RXFLOW_ASSIGN_OR_RETURN(std::vector<store::WrappedDataKey> rows, store.DataKeyVersions(key_id));
    auto entry = std::make_shared<Entry>();
    entry->loaded_at = now;
    for (store::WrappedDataKey& row : rows) {
      if (row.version == 0) {
        entry->destroyed = true;
        entry->versions.clear();
        break;
      }
      KeyEncryptionKey* kek = KekById(row.kek_id);
      if (kek == nullptr) {
        return absl::FailedPreconditionError(
            Cat("data key ", key_id, " version ", row.version, " is wrapped by KEK ", row.kek_id,
                ", which is not configured (add it as a retired KEK)"));
      }
      StatusOr<std::string> key = kek->Unwrap(row.wrapped, WrapAad(key_id, row.version));
      if (!key.ok() && !absl::IsUnauthenticated(key.status())) {
        return key.status();  // the KEK's device: Unavailable, PermissionDenied, ...
      }
      if (!key.ok() || key->size() != kDataKeyBytes) {
        return absl::DataLossError(Cat("data key ", key_id, " version ", row.version,
                                       " does not unwrap with KEK ", row.kek_id));
      }
      entry->versions[row.version].bytes = std::move(*key);
    }
    // A key id without a key is not cached: another writer may make it at any time.
    if (!entry->versions.empty() || entry->destroyed) Cache(key_id, entry);
    return std::shared_ptr<const Entry>(entry);
  }

  void Cache(const std::string& key_id, std::shared_ptr<Entry> entry) {
    if (options.cache_entries == 0) return;
    std::lock_guard lock(mu);
    if (auto it = cache.find(key_id); it != cache.end()) {
      // Erasure is final: a load that read the rows before the destroy does not bring the
      // key back.
      if (it->second->destroyed && !entry->destroyed) return;
      lru.erase(it->second->lru);
      cache.erase(it);
    }
    while (cache.size() >= options.cache_entries && !lru.empty()) {
      cache.erase(lru.back());
      lru.pop_back();
    }
    lru.push_front(key_id);
    entry->lru = lru.begin();
    cache.emplace(key_id, std::move(entry));
  }

  // Stores version `version` of a new random data key. AlreadyExists when another writer
  // was first (or the key was destroyed).
  Status Create(const std::string& key_id, int version) {
    Wiped key{std::string(kDataKeyBytes, '\0')};
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key.bytes.data()),
                   static_cast<int>(kDataKeyBytes)) != 1) {
      return absl::InternalError("phi: no random data key");
    }
    RXFLOW_ASSIGN_OR_RETURN(std::string wrapped,
                            options.current->Wrap(key.bytes, WrapAad(key_id, version)));
    return store.PutDataKey(
        {key_id, version, options.current->id(), std::move(wrapped), clock.NowMicros()});
  }

  static Status Erased(std::string_view key_id) {
    Status s = absl::FailedPreconditionError(
        Cat("the PHI under data key ", key_id, " was erased (its key was destroyed)"));
    s.SetPayload(kErasedPayload, absl::Cord("1"));
    return s;
  }
};

Vault::Vault(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Vault::~Vault() = default;

StatusOr<std::unique_ptr<Vault>> Vault::Create(store::DataKeys& keys, VaultOptions options) {
  if (!options.current) {
    return absl::InvalidArgumentError("phi vault: a current key-encryption key is required");
  }
  Clock& clock = options.clock ? *options.clock : SystemClock();
  return std::unique_ptr<Vault>(new Vault(std::make_unique<Impl>(keys, std::move(options), clock)));
}

const std::string& Vault::current_kek_id() const { return impl_->options.current->id(); }

StatusOr<int> Vault::NewestVersion(const std::string& key_id) {
  RXFLOW_ASSIGN_OR_RETURN(std::shared_ptr<const Impl::Entry> entry, impl_->Load(key_id, true));
  if (entry->destroyed) return Impl::Erased(key_id);
  return entry->versions.empty() ? 0 : entry->versions.rbegin()->first;
}

namespace {

Status CheckKeyId(std::string_view key_id) {
  if (key_id.empty() || key_id.find_first_of(". \"\\") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        "phi: a data key id is empty or holds '.', ' ', '\"' or '\\'");
  }
  return absl::OkStatus();
}

StatusOr<std::string> SealUnder(std::string_view key, std::string_view key_id, int version,
                                const Binding& where, std::string_view plaintext) {
  // Only what Open may expand again is compressed: a larger value is sealed as it is.
  Wiped frame{plaintext.size() <= kMaxSealedValueBytes
                  ? internal::ZstdCompress(plaintext, internal::ZstdDictionary::kSealed)
                        .value_or(std::string())
                  : std::string()};
  const bool compressed = !frame.bytes.empty();
  RXFLOW_ASSIGN_OR_RETURN(std::string sealed,
                          GcmSeal(key, ValueAad(where, key_id, version, compressed),
                                  compressed ? std::string_view(frame.bytes) : plaintext));
  return Cat(kEnvelopePrefix, key_id, ".", version, compressed ? "z" : "", ".",
             internal::Base64Encode(sealed));
}

}  // namespace

Vault::NewKey::~NewKey() { OPENSSL_cleanse(key.data(), key.size()); }

StatusOr<std::string> Vault::Seal(std::string_view key_id_view, const Binding& where,
                                  std::string_view plaintext) {
  const std::string key_id(key_id_view);
  for (int attempt = 0;; ++attempt) {
    StatusOr<std::string> sealed = SealExisting(key_id, where, plaintext);
    if (!absl::IsNotFound(sealed.status())) return sealed;
    Status created = impl_->Create(key_id, 1);
    if (!created.ok() && (!absl::IsAlreadyExists(created) || attempt > 0)) return created;
    impl_->Forget(key_id);
  }
}

StatusOr<std::string> Vault::SealExisting(std::string_view key_id_view, const Binding& where,
                                          std::string_view plaintext) {
  RXFLOW_RETURN_IF_ERROR(CheckKeyId(key_id_view));
  const std::string key_id(key_id_view);
  // (A key id without a key is never cached: an empty entry was just read from the store.)
  RXFLOW_ASSIGN_OR_RETURN(std::shared_ptr<const Impl::Entry> entry, impl_->Load(key_id, false));
  if (entry->destroyed) return Impl::Erased(key_id);
  if (entry->versions.empty()) return absl::NotFoundError(Cat("no data key ", key_id));
  const auto& [version, key] = *entry->versions.rbegin();
  return SealUnder(key.bytes, key_id, version, where, plaintext);
}

StatusOr<std::shared_ptr<Vault::NewKey>> Vault::Prepare(const std::string& key_id) {
  RXFLOW_RETURN_IF_ERROR(CheckKeyId(key_id));
  auto k = std::make_shared<NewKey>();
  k->key.assign(kDataKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(k->key.data()),
                 static_cast<int>(kDataKeyBytes)) != 1) {
    return absl::InternalError("phi: no random data key");
  }
  KeyEncryptionKey& kek = *impl_->options.current;
  RXFLOW_ASSIGN_OR_RETURN(std::string wrapped, kek.Wrap(k->key, WrapAad(key_id, 1)));
  k->row = {key_id, 1, kek.id(), std::move(wrapped), impl_->clock.NowMicros()};
  return k;
}

StatusOr<std::string> Vault::SealWith(const NewKey& key, const Binding& where,
                                      std::string_view plaintext) {
  return SealUnder(key.key, key.row.key_id, key.row.version, where, plaintext);
}

void Vault::Adopt(const NewKey& key) {
  auto entry = std::make_shared<Impl::Entry>();
  entry->loaded_at = impl_->clock.NowMicros();
  entry->versions[key.row.version].bytes = key.key;
  impl_->Cache(key.row.key_id, std::move(entry));
}

StatusOr<std::string> Vault::Open(std::string_view sealed, const Binding& where) {
  std::optional<Envelope> env = ParseEnvelope(sealed);
  if (!env) return absl::DataLossError("phi: a sealed value is malformed");
  const std::string key_id(env->key_id);
  RXFLOW_ASSIGN_OR_RETURN(std::shared_ptr<const Impl::Entry> entry, impl_->Load(key_id, false));
  if (!entry->destroyed && !entry->versions.contains(env->version)) {
    // Rotated by another process since the cache was filled.
    RXFLOW_ASSIGN_OR_RETURN(entry, impl_->Load(key_id, true));
  }
  if (entry->destroyed) return Impl::Erased(key_id);
  auto it = entry->versions.find(env->version);
  if (it == entry->versions.end()) {
    return absl::DataLossError(
        Cat("phi: data key ", key_id, " has no version ", env->version, " in the store"));
  }
  std::optional<std::string> body = internal::Base64Decode(env->body);
  if (!body) return absl::DataLossError("phi: a sealed value is malformed (base64)");
  StatusOr<std::string> plain =
      GcmOpen(it->second.bytes, ValueAad(where, key_id, env->version, env->compressed), *body);
  if (!plain.ok()) {
    return absl::DataLossError(Cat("phi: a value sealed under data key ", key_id,
                                   " does not authenticate for its tenant, stream and field"));
  }
  if (!env->compressed) return plain;
  Wiped frame{std::move(*plain)};
  StatusOr<std::string> text = internal::ZstdDecompress(frame.bytes, kMaxSealedValueBytes);
  if (!text.ok()) {
    // Authenticated, so written by a vault holding the key: not damage in transit.
    return absl::DataLossError(
        Cat("phi: a value sealed under data key ", key_id,
            " holds a frame that does not expand: ", std::string(text.status().message())));
  }
  return text;
}

StatusOr<int> Vault::RotateDataKey(const std::string& key_id) {
  for (int attempt = 0;; ++attempt) {
    RXFLOW_ASSIGN_OR_RETURN(std::shared_ptr<const Impl::Entry> entry, impl_->Load(key_id, true));
    if (entry->destroyed) return Impl::Erased(key_id);
    int next = entry->versions.empty() ? 1 : entry->versions.rbegin()->first + 1;
    Status created = impl_->Create(key_id, next);
    if (created.ok()) {
      impl_->Forget(key_id);
      return next;
    }
    if (!absl::IsAlreadyExists(created) || attempt >= 3) return created;
  }
}

StatusOr<RewrapReport> Vault::RewrapAll() {
  RewrapReport report;
  KeyEncryptionKey& current = *impl_->options.current;
  std::string after_id;
  int after_version = 0;
  for (;;) {
    RXFLOW_ASSIGN_OR_RETURN(
        std::vector<store::WrappedDataKey> page,
        impl_->store.DataKeysNotWrappedBy(current.id(), after_id, after_version, kRewrapPage));
    if (page.empty()) break;
    for (store::WrappedDataKey& row : page) {
      after_id = row.key_id;
      after_version = row.version;
      KeyEncryptionKey* old = impl_->KekById(row.kek_id);
      if (old == nullptr) {
        return absl::FailedPreconditionError(
            Cat("data key ", row.key_id, " version ", row.version, " is wrapped by KEK ",
                row.kek_id, ", which is not configured: add it as a retired KEK and run again"));
      }
      const std::string aad = WrapAad(row.key_id, row.version);
      StatusOr<std::string> key = old->Unwrap(row.wrapped, aad);
      if (!key.ok() && !absl::IsUnauthenticated(key.status())) return key.status();
      if (!key.ok()) {
        return absl::DataLossError(Cat("data key ", row.key_id, " version ", row.version,
                                       " does not unwrap with KEK ", row.kek_id));
      }
      Wiped plain{std::move(*key)};
      RXFLOW_ASSIGN_OR_RETURN(std::string wrapped, current.Wrap(plain.bytes, aad));
      const std::string was = row.kek_id;
      row.kek_id = current.id();
      row.wrapped = std::move(wrapped);
      Status s = impl_->store.RewrapDataKey(row, was);
      if (s.ok()) {
        ++report.rewrapped;
      } else if (absl::IsAborted(s)) {
        ++report.already_current;
      } else if (!absl::IsNotFound(s)) {  // NotFound: erased meanwhile
        return s;
      }
    }
  }
  return report;
}

StatusOr<int64_t> Vault::Erase(const std::string& key_id) {
  StatusOr<int64_t> n = impl_->store.DestroyDataKeys(key_id, impl_->clock.NowMicros());
  impl_->Forget(key_id);
  if (n.ok()) {
    auto tombstone = std::make_shared<Impl::Entry>();
    tombstone->destroyed = true;
    tombstone->loaded_at = impl_->clock.NowMicros();
    impl_->Cache(key_id, std::move(tombstone));
  }
  return n;
}

// ---- the protecting store ---------------------------------------------------------------

std::string_view PhiFieldOf(std::string_view event_type) {
  if (event_type == domain::PrescriptionTransformed::kType) return "newrx_xml";
  if (event_type == domain::PrescriptionSigned::kType) return "signed_newrx_xml";
  return {};
}

namespace {

// The contents (between the quotes, escapes as they are) of the top-level string member
// `name` of a compact JSON object, as [begin, end) offsets; nullopt when absent or not a
// string. An unescaped `"name":"` can only be a member's key: inside a string every quote
// is escaped.
std::optional<std::pair<size_t, size_t>> StringMember(std::string_view json,
                                                      std::string_view name) {
  const std::string needle = Cat("\"", name, "\":\"");
  size_t at = json.find(needle);
  if (at == std::string_view::npos) return std::nullopt;
  const size_t begin = at + needle.size();
  // The value ends at the first quote not escaped: one after an even number of backslashes
  // (`\\` is an escaped backslash). Quotes are found with memchr, not byte by byte: a sealed
  // member is a whole NewRx (~7 KB) and holds few quotes.
  for (size_t quote = json.find('"', begin); quote != std::string_view::npos;
       quote = json.find('"', quote + 1)) {
    size_t backslashes = 0;
    while (quote - backslashes > begin && json[quote - backslashes - 1] == '\\') ++backslashes;
    if (backslashes % 2 == 0) return std::make_pair(begin, quote);
  }
  return std::nullopt;
}

std::string StringMemberValue(std::string_view json, std::string_view name) {
  auto span = StringMember(json, name);
  return span ? std::string(json.substr(span->first, span->second - span->first)) : std::string();
}

class Protector {
 public:
  Protector(Vault& vault, store::EventStore& raw) : vault_(vault), raw_(raw) {}

  // An event's payload as it was before SealAll sealed it.
  struct Unsealed {
    size_t event = 0;
    std::string payload;
  };

  // Seals the PHI member of each event of `request`. A key the vault does not have yet is
  // prepared and added to request.data_keys (stored with the events, in their transaction);
  // `fresh` gets those keys, to adopt once the append committed. Each sealed event's
  // payload before sealing is moved into `unsealed` (not copied).
  Status SealAll(store::AppendRequest& request, std::vector<std::shared_ptr<Vault::NewKey>>& fresh,
                 std::vector<Unsealed>& unsealed) {
    for (size_t index = 0; index < request.events.size(); ++index) {
      store::EventRecord& e = request.events[index];
      std::string_view field = PhiFieldOf(e.type);
      if (field.empty()) continue;
      auto span = StringMember(e.payload, field);
      if (!span && e.payload.find(Cat("\"", field, "\"")) != std::string::npos) {
        // Written other than as compact JSON: refuse rather than store it in plain text.
        return absl::InvalidArgumentError(
            Cat("phi: event ", e.event_id, " (", e.type, "): its ", field,
                " member is not a string in compact JSON, and cannot be sealed"));
      }
      if (!span || span->first == span->second) continue;  // absent or empty: nothing to hide
      std::string_view value(e.payload.data() + span->first, span->second - span->first);
      if (IsSealed(value)) continue;
      RXFLOW_ASSIGN_OR_RETURN(std::string key_id, KeyIdFor(e, request));
      const Binding where{e.tenant, request.stream_id, field};
      auto prepared = std::find_if(fresh.begin(), fresh.end(),
                                   [&](const auto& k) { return k->row.key_id == key_id; });
      StatusOr<std::string> sealed = prepared != fresh.end()
                                         ? vault_.SealWith(**prepared, where, value)
                                         : vault_.SealExisting(key_id, where, value);
      if (absl::IsNotFound(sealed.status())) {
        RXFLOW_ASSIGN_OR_RETURN(std::shared_ptr<Vault::NewKey> k, vault_.Prepare(key_id));
        sealed = vault_.SealWith(*k, where, value);
        request.data_keys.push_back(k->row);
        fresh.push_back(std::move(k));
      }
      if (!sealed.ok()) return sealed.status();
      std::string payload;
      payload.reserve(e.payload.size() - value.size() + sealed->size());
      payload.append(e.payload, 0, span->first).append(*sealed).append(e.payload, span->second);
      unsealed.push_back({index, std::exchange(e.payload, std::move(payload))});
    }
    return absl::OkStatus();
  }

  // Seals and appends through `append`; when a key it prepared was made by another writer
  // first, seals again under that one (once). The request is sealed in place and moved on;
  // only when sealing made a data key is a copy kept (with the plaintext put back) for that
  // second attempt.
  template <typename AppendFn>
  StatusOr<store::AppendResult> SealAndAppend(store::AppendRequest request, AppendFn append) {
    if (!HasPhi(request)) return append(std::move(request));
    const size_t keys_given = request.data_keys.size();
    std::vector<std::shared_ptr<Vault::NewKey>> fresh;
    std::vector<Unsealed> unsealed;
    RXFLOW_RETURN_IF_ERROR(SealAll(request, fresh, unsealed));
    if (fresh.empty()) return append(std::move(request));  // no key of ours to lose a race on
    return AppendWithFreshKeys(std::move(request), keys_given, std::move(fresh),
                               std::move(unsealed), append);
  }

  // SealAndAppend through `target`'s AppendAsync. When sealing made a data key (a patient's
  // first prescription since the key cache last held the key), the append decides whether
  // that key is adopted or the events sealed again under another writer's: that one append
  // is made and waited for on this thread, as SealAndAppend does.
  void SealAndAppendAsync(store::AppendRequest request, store::EventStore& target,
                          store::EventStore::AppendDone done) {
    if (!HasPhi(request)) return target.AppendAsync(std::move(request), std::move(done));
    const size_t keys_given = request.data_keys.size();
    std::vector<std::shared_ptr<Vault::NewKey>> fresh;
    std::vector<Unsealed> unsealed;
    if (Status sealed = SealAll(request, fresh, unsealed); !sealed.ok()) {
      return done(std::move(sealed));
    }
    if (fresh.empty()) return target.AppendAsync(std::move(request), std::move(done));
    done(AppendWithFreshKeys(std::move(request), keys_given, std::move(fresh), std::move(unsealed),
                             [&](store::AppendRequest r) { return target.Append(std::move(r)); }));
  }

  // Opens the PHI member of each event in place.
  Status OpenAll(std::vector<store::EventRecord>& events) {
    for (store::EventRecord& e : events) {
      std::string_view field = PhiFieldOf(e.type);
      if (field.empty()) continue;
      auto span = StringMember(e.payload, field);
      if (!span) continue;
      std::string_view value(e.payload.data() + span->first, span->second - span->first);
      if (!IsSealed(value)) continue;  // stored before encryption was turned on
      StatusOr<std::string> plain = vault_.Open(value, {e.tenant, e.stream_id, field});
      if (IsErased(plain.status())) {
        plain = std::string();  // erased
      } else if (!plain.ok()) {
        return Status(plain.status().code(), Cat("event ", e.event_id, " (", e.type,
                                                 "): ", std::string(plain.status().message())));
      }
      e.payload.replace(span->first, span->second - span->first, *plain);
      OPENSSL_cleanse(plain->data(), plain->size());
    }
    return absl::OkStatus();
  }

 private:
  static bool HasPhi(const store::AppendRequest& request) {
    return std::any_of(request.events.begin(), request.events.end(),
                       [](const store::EventRecord& e) { return !PhiFieldOf(e.type).empty(); });
  }

  // The append of a request whose sealing made data keys (`fresh`); `unsealed` holds the
  // plaintext payloads it replaced, `keys_given` the data keys the caller's request had. On
  // success the keys are adopted; when another writer stored one first, the request is
  // sealed again (under that key) and appended once more.
  template <typename AppendFn>
  StatusOr<store::AppendResult> AppendWithFreshKeys(
      store::AppendRequest request, size_t keys_given,
      std::vector<std::shared_ptr<Vault::NewKey>> fresh, std::vector<Unsealed> unsealed,
      AppendFn append) {
    store::AppendRequest again = request;  // as it was given
    for (Unsealed& u : unsealed) again.events[u.event].payload = std::move(u.payload);
    again.data_keys.resize(keys_given);
    StatusOr<store::AppendResult> result = append(std::move(request));
    if (result.ok()) {
      for (const auto& k : fresh) vault_.Adopt(*k);
      return result;
    }
    const bool lost_race =
        absl::IsAlreadyExists(result.status()) &&
        std::string_view(result.status().message().data(), result.status().message().size())
            .starts_with(store::kDataKeyExists);
    if (!lost_race) return result;
    // Another writer stored its key first: this seal reads that one from the store.
    fresh.clear();
    unsealed.clear();
    RXFLOW_RETURN_IF_ERROR(SealAll(again, fresh, unsealed));
    result = append(std::move(again));
    if (result.ok()) {
      for (const auto& k : fresh) vault_.Adopt(*k);
    }
    return result;
  }

  // The event's own "phi_key", that of a PrescriptionTransformed event in the same append or
  // earlier in its stream, or the stream's own key.
  StatusOr<std::string> KeyIdFor(const store::EventRecord& e, const store::AppendRequest& request) {
    if (std::string k = StringMemberValue(e.payload, "phi_key"); !k.empty()) return k;
    for (const store::EventRecord& other : request.events) {
      if (other.type != domain::PrescriptionTransformed::kType) continue;
      if (std::string k = StringMemberValue(other.payload, "phi_key"); !k.empty()) return k;
    }
    RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> stream,
                            raw_.ReadStream(request.stream_id));
    for (const store::EventRecord& other : stream) {
      if (other.type != domain::PrescriptionTransformed::kType) continue;
      if (std::string k = StringMemberValue(other.payload, "phi_key"); !k.empty()) return k;
    }
    return Cat("stream:", request.stream_id);
  }

  Vault& vault_;
  store::EventStore& raw_;
};

// The event store an inbox effect sees, inside the store's transaction. Its reads give the
// PHI members as stored (sealed): an effect decides on state, not on the NewRx, and opening
// would need the data keys from the store while the effect holds its transaction (a second
// connection from PostgreSQL's pool, the memory store's lock). Appending an event that
// carries PHI inside an effect is refused for the same reason (no effect does).
class ProtectedTransaction : public store::EventStore {
 public:
  explicit ProtectedTransaction(store::EventStore& tx) : tx_(tx) {}
  StatusOr<store::AppendResult> Append(store::AppendRequest r) override {
    for (const store::EventRecord& e : r.events) {
      if (!PhiFieldOf(e.type).empty()) {
        return absl::FailedPreconditionError(
            Cat("phi: a ", e.type,
                " event carries PHI and cannot be appended inside an inbox "
                "effect: append it through the store"));
      }
    }
    return tx_.Append(std::move(r));
  }
  StatusOr<std::vector<store::EventRecord>> ReadStream(const std::string& s,
                                                       int64_t after) override {
    return tx_.ReadStream(s, after);
  }
  StatusOr<std::vector<store::EventRecord>> ReadAll(int64_t after, size_t limit) override {
    return tx_.ReadAll(after, limit);
  }
  StatusOr<std::string> FindByIdempotencyKey(const std::string& k) override {
    return tx_.FindByIdempotencyKey(k);
  }
  Status SaveSnapshot(const store::Snapshot& s) override { return tx_.SaveSnapshot(s); }
  StatusOr<store::Snapshot> LoadSnapshot(const std::string& s) override {
    return tx_.LoadSnapshot(s);
  }

 private:
  store::EventStore& tx_;
};

class ProtectedStore : public store::StoreWrapper {
 public:
  ProtectedStore(store::Store& target, Vault& vault) : StoreWrapper(target), p_(vault, target) {}

  StatusOr<store::AppendResult> Append(store::AppendRequest r) override {
    return p_.SealAndAppend(std::move(r),
                            [&](store::AppendRequest s) { return target_.Append(std::move(s)); });
  }
  void AppendAsync(store::AppendRequest r, AppendDone done) override {
    p_.SealAndAppendAsync(std::move(r), target_, std::move(done));
  }
  StatusOr<std::vector<store::EventRecord>> ReadStream(const std::string& s,
                                                       int64_t after) override {
    RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> events, target_.ReadStream(s, after));
    RXFLOW_RETURN_IF_ERROR(p_.OpenAll(events));
    return events;
  }
  StatusOr<std::vector<store::EventRecord>> ReadAll(int64_t after, size_t limit) override {
    RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> events, target_.ReadAll(after, limit));
    RXFLOW_RETURN_IF_ERROR(p_.OpenAll(events));
    return events;
  }
  Status Process(const std::string& consumer, const std::string& message_id,
                 const store::InboxEffect& effect) override {
    return target_.Process(consumer, message_id, [&](store::EventStore& tx) {
      ProtectedTransaction protected_tx(tx);
      return effect(protected_tx);
    });
  }

 private:
  Protector p_;
};

}  // namespace

std::unique_ptr<store::Store> NewProtectedStore(store::Store& target, Vault& vault) {
  return std::make_unique<ProtectedStore>(target, vault);
}

StatusOr<std::string> DataKeyIdOf(store::EventStore& store, const std::string& prescription_id) {
  RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> stream,
                          store.ReadStream(prescription_id));
  if (stream.empty()) return absl::NotFoundError(Cat("no prescription ", prescription_id));
  for (const store::EventRecord& e : stream) {
    if (e.type != domain::PrescriptionTransformed::kType) continue;
    if (std::string k = StringMemberValue(e.payload, "phi_key"); !k.empty()) return k;
    const std::string newrx = StringMemberValue(e.payload, "newrx_xml");
    if (auto env = ParseEnvelope(newrx)) {
      return std::string(env->key_id);  // sealed by ResealAll, under its patient's key
    }
  }
  return Cat("stream:", prescription_id);
}

namespace {

// The key a NewRx stored in plain text is sealed under by ResealAll: its patient's reference,
// as the service computes it, else the stream's own.
std::string LegacyKeyId(store::Store& raw, const store::EventRecord& e,
                        std::string_view patient_key) {
  if (e.type == domain::PrescriptionTransformed::kType) {
    if (std::string k = StringMemberValue(e.payload, "phi_key"); !k.empty()) return k;
    auto event = domain::DecodeEvent(e.type, e.schema_version, e.payload);
    if (event.ok()) {
      const auto& t = std::get<domain::PrescriptionTransformed>(*event);
      IssueList ignored;
      script::ReadOptions ro;
      ro.lenient = true;
      if (auto v = script::ParseVersion(t.script_version); v.ok()) ro.version = *v;
      auto message = script::ReadXml(t.newrx_xml, ignored, ro);
      if (message.ok()) {
        auto ref = PatientReference(*message, patient_key,
                                    e.tenant.empty() ? kDefaultTenant : std::string_view(e.tenant));
        if (ref.ok()) return *ref;
      }
    }
    return Cat("stream:", e.stream_id);
  }
  auto id = DataKeyIdOf(raw, e.stream_id);
  return id.ok() ? *id : Cat("stream:", e.stream_id);
}

}  // namespace

StatusOr<ResealReport> ResealAll(store::Store& raw, Vault& vault, std::string_view patient_key) {
  ResealReport report;
  int64_t after = 0;
  for (;;) {
    RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> page, raw.ReadAll(after, 256));
    if (page.empty()) break;
    for (const store::EventRecord& e : page) {
      after = e.global_position;
      std::string_view field = PhiFieldOf(e.type);
      if (field.empty()) continue;
      auto span = StringMember(e.payload, field);
      if (!span || span->first == span->second) continue;
      const std::string value = e.payload.substr(span->first, span->second - span->first);
      const Binding where{e.tenant, e.stream_id, field};
      std::string key_id;
      std::string plain;
      const bool was_sealed = IsSealed(value);
      if (was_sealed) {
        std::optional<Envelope> env = ParseEnvelope(value);
        if (!env)
          return absl::DataLossError(Cat("event ", e.event_id, ": a malformed sealed value"));
        key_id = std::string(env->key_id);
        StatusOr<int> newest = vault.NewestVersion(key_id);
        if (IsErased(newest.status())) {
          ++report.erased;
          continue;
        }
        if (!newest.ok()) return newest.status();
        if (env->version >= *newest) continue;  // current
        RXFLOW_ASSIGN_OR_RETURN(plain, vault.Open(value, where));
      } else {
        key_id = LegacyKeyId(raw, e, patient_key);
        plain = value;
      }
      StatusOr<std::string> sealed = vault.Seal(key_id, where, plain);
      OPENSSL_cleanse(plain.data(), plain.size());
      if (IsErased(sealed.status())) {
        ++report.erased;  // a plain value of an erased patient: the patient is gone
        continue;
      }
      if (!sealed.ok()) return sealed.status();
      std::string replacement = e.payload;
      replacement.replace(span->first, span->second - span->first, *sealed);
      Status s = raw.ReplaceEventPayload(e.event_id, e.payload, replacement);
      if (s.ok()) {
        ++(was_sealed ? report.resealed : report.sealed);
      } else if (absl::IsAborted(s)) {
        ++report.changed;
      } else {
        return s;
      }
    }
  }
  return report;
}

StatusOr<Erasure> ErasePatientOf(store::Store& store, Vault& vault,
                                 const std::string& prescription_id, const std::string& actor,
                                 const std::string& reason, Clock* clock) {
  if (reason.empty() || reason.size() > kMaxErasureReasonBytes) {
    return absl::InvalidArgumentError("an erasure needs a reason of 1 to 500 bytes (no PHI)");
  }
  if (actor.empty()) return absl::InvalidArgumentError("an erasure needs an actor");
  Erasure out;
  RXFLOW_ASSIGN_OR_RETURN(out.key_id, DataKeyIdOf(store, prescription_id));
  RXFLOW_ASSIGN_OR_RETURN(out.versions_destroyed, vault.Erase(out.key_id));
  Clock& c = clock ? *clock : SystemClock();
  store::EventRecord e;
  e.event_id = internal::IdHex128();
  out.event_id = e.event_id;
  e.type = std::string(kPatientDataErased);
  e.occurred_at = c.NowMicros();
  e.correlation_id = e.event_id;
  e.actor = actor;
  std::string payload = R"({"key_id":")";
  internal::AppendJsonEscaped(payload, out.key_id);
  payload += R"(","prescription_id":")";
  internal::AppendJsonEscaped(payload, prescription_id);
  payload += Cat(R"(","versions_destroyed":)", out.versions_destroyed, R"(,"reason":")");
  std::string valid = reason;
  internal::MakeValidUtf8(valid);
  internal::AppendJsonEscaped(payload, valid);
  payload += "\"}";
  e.payload = std::move(payload);
  store::AppendRequest r;
  r.stream_id = Cat("phi-erasure:", out.key_id);
  r.expected_version = store::kAnyVersion;
  r.events.push_back(std::move(e));
  RXFLOW_RETURN_IF_ERROR(store.Append(std::move(r)).status());
  return out;
}

}  // namespace rxflow::phi
