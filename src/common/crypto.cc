// SPDX-License-Identifier: Apache-2.0
#include "rxflow/internal/crypto.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <pthread.h>

namespace rxflow::internal {
namespace {

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[p[i] >> 4];
    out[2 * i + 1] = kHex[p[i] & 15];
  }
  return out;
}

// SHA-256 fetched from the default provider once. `EVP_sha256()` makes OpenSSL 3 fetch the
// implementation again on every call (a provider lookup under a lock: most of a short
// digest's cost); an explicitly fetched EVP_MD is used as it is (crypto(7), "Performance").
// Never freed: it lives as long as the process.
const EVP_MD* Sha256() {
  static const EVP_MD* md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
    if (!fetched) std::abort();  // no default provider: nothing safe to do
    return fetched;
  }();
  return md;
}

// SHA-256 of `data` into `md` (EVP_MAX_MD_SIZE bytes); returns the digest's length. One
// digest context per thread, initialised again for each digest: EVP_Digest would allocate
// and free a context (and the provider's state) every time, most of a short digest's cost.
unsigned int Sha256Into(std::string_view data, unsigned char* md) {
  struct Context {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Context() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Context c;
  unsigned int len = 0;
  if (!c.ctx || EVP_DigestInit_ex(c.ctx, Sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(c.ctx, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(c.ctx, md, &len) != 1) {
    std::abort();  // out of memory in OpenSSL: nothing safe to do
  }
  return len;
}

// Bumped in a forked child (pthread_atfork): every thread's id buffer filled before the
// fork is stale there, so the child draws fresh bytes instead of repeating its parent's.
std::atomic<uint64_t> fork_generation{0};

struct IdBuffer {
  unsigned char bytes[256];
  size_t used = sizeof bytes;  // all used: the first call fills it
  uint64_t generation = 0;
};

}  // namespace

void IdRandomBytes(unsigned char* out, size_t n) {
  static std::once_flag at_fork;
  std::call_once(at_fork,
                 [] { pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1); }); });
  thread_local IdBuffer buf;
  const uint64_t generation = fork_generation.load(std::memory_order_relaxed);
  if (buf.generation != generation) {
    buf.used = sizeof buf.bytes;
    buf.generation = generation;
  }
  while (n > 0) {
    if (buf.used == sizeof buf.bytes) {
      if (RAND_bytes(buf.bytes, sizeof buf.bytes) != 1) std::abort();  // no entropy
      buf.used = 0;
    }
    const size_t take = std::min(n, sizeof buf.bytes - buf.used);
    std::memcpy(out, buf.bytes + buf.used, take);
    std::memset(buf.bytes + buf.used, 0, take);  // an id handed out is not kept
    buf.used += take;
    out += take;
    n -= take;
  }
}

std::string IdHex128() {
  unsigned char b[16];
  IdRandomBytes(b, sizeof b);
  return Hex(b, sizeof b);
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = Sha256Into(data, md);
  return Hex(md, len);
}

// HMAC fetched once and one MAC context per thread, keyed again for each call: OpenSSL 3's
// one-shot HMAC() (EVP_Q_mac) fetches the MAC and its digest by name and makes and frees a
// context every time (docs/performance.md, "HMAC without a fetch per call").
std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  static EVP_MAC* const hmac = [] {
    EVP_MAC* fetched = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (!fetched) std::abort();  // no default provider: nothing safe to do
    return fetched;
  }();
  // The digest is set once per context (setting it fetches SHA-256 by name); each call
  // keys the context again and keeps it.
  struct Context {
    EVP_MAC_CTX* ctx = nullptr;
    Context() {
      char digest[] = "SHA2-256";
      const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                                   OSSL_PARAM_construct_end()};
      ctx = EVP_MAC_CTX_new(hmac);
      if (ctx && EVP_MAC_CTX_set_params(ctx, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        ctx = nullptr;
      }
    }
    // The last key stays in the context until the next call or the thread's end (as the
    // service keeps its patient key in its options); freeing cleanses it.
    ~Context() { EVP_MAC_CTX_free(ctx); }
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;
  };
  thread_local Context c;
  // Never a null key: EVP_MAC_init would keep the previous call's key instead of using none.
  static constexpr unsigned char kNoKey[1] = {0};
  const auto* key_bytes = key.empty() ? kNoKey : reinterpret_cast<const unsigned char*>(key.data());
  unsigned char md[EVP_MAX_MD_SIZE];
  size_t len = 0;
  if (!c.ctx || EVP_MAC_init(c.ctx, key_bytes, key.size(), nullptr) != 1 ||
      EVP_MAC_update(c.ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size()) !=
          1 ||
      EVP_MAC_final(c.ctx, md, &len, sizeof md) != 1) {
    std::abort();  // out of memory in OpenSSL: nothing safe to do
  }
  return Hex(md, len);
}

std::string RandomHex128() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) std::abort();  // no entropy: nothing safe to do
  return Hex(b, sizeof b);
}

std::string Sha256Bytes(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = Sha256Into(data, md);
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' ||
              (c == '=' && i + 2 >= text.size() && (i + 1 == text.size() || text[i + 1] == '='));
    if (!ok) return std::nullopt;
  }
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts the padding as zero bytes: take them off again.
  size_t pad = 0;
  if (!text.empty() && text.back() == '=')
    pad = text.size() >= 2 && text[text.size() - 2] == '=' ? 2 : 1;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

}  // namespace rxflow::internal
