// SPDX-License-Identifier: Apache-2.0
// Zstandard frames for values at rest (rxflow/internal/compress.h), over Debian's libzstd.
#include "rxflow/internal/compress.h"

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "rxflow/internal/strcat.h"

#include <zstd.h>

namespace rxflow::internal::embedded {
extern const std::string_view ksealed_1_zdict;  // data/zstd/sealed-1.zdict
}  // namespace rxflow::internal::embedded

namespace rxflow::internal {
namespace {

constexpr int kLevel = 1;

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

// Contexts allocate their tables once and are reused, from a small pool shared by the
// threads (last in, first out) rather than one per thread: a server has dozens of request
// threads, each running now and then, and a context of its own would be cold in the CPU's
// caches every time (measured: docs/performance.md, "Compression contexts shared"). The
// context given back last, the one most likely still cached, is taken first. At most
// kZstdIdleContextsKept idle contexts are kept; more are freed when given back. Null when a
// context cannot be made (out of memory): the caller degrades (no compression) or fails with
// a status; a later call tries again.
template <typename Ctx, typename Free>
class Pool {
 public:
  using Ptr = std::unique_ptr<Ctx, Free>;
  // A context on loan, given back when the lease ends.
  class Lease {
   public:
    Lease(Pool& pool, Ptr ctx) : pool_(pool), ctx_(std::move(ctx)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      if (ctx_) pool_.Give(std::move(ctx_));
    }
    Ctx* get() const { return ctx_.get(); }

   private:
    Pool& pool_;
    Ptr ctx_;
  };

  explicit Pool(Ctx* (*make)()) : make_(make) {}

  size_t idle() {
    std::lock_guard<std::mutex> lock(mu_);
    return idle_.size();
  }

  Lease Take() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        Ptr c = std::move(idle_.back());
        idle_.pop_back();
        return Lease(*this, std::move(c));
      }
    }
    return Lease(*this, Ptr(make_()));
  }

 private:
  void Give(Ptr c) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kZstdIdleContextsKept) idle_.push_back(std::move(c));
  }

  Ctx* (*make_)();
  std::mutex mu_;
  std::vector<Ptr> idle_;
};

// Level 1 (the fastest), the content size in the header (ZstdDecompress requires it), and a
// checksum of the content, so that a damaged frame is found, never read as other bytes.
ZSTD_CCtx* MakeCCtx() {
  std::unique_ptr<ZSTD_CCtx, CCtxFree> c(ZSTD_createCCtx());
  if (!c || ZSTD_isError(ZSTD_CCtx_setParameter(c.get(), ZSTD_c_compressionLevel, kLevel)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(c.get(), ZSTD_c_checksumFlag, 1)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(c.get(), ZSTD_c_contentSizeFlag, 1))) {
    return nullptr;
  }
  return c.release();
}
ZSTD_DCtx* MakeDCtx() { return ZSTD_createDCtx(); }

// kSealed, digested once for compressing (at kLevel) and once for expanding. Never destroyed
// (threads may use them while the process exits); null when it could not be made (out of
// memory, or bytes that are no dictionary: the frozen-bytes test catches the latter).
const ZSTD_CDict* SealedCDict() {
  static const ZSTD_CDict* cdict =
      ZSTD_createCDict(embedded::ksealed_1_zdict.data(), embedded::ksealed_1_zdict.size(), kLevel);
  return cdict;
}
const ZSTD_DDict* SealedDDict() {
  static const ZSTD_DDict* ddict =
      ZSTD_createDDict(embedded::ksealed_1_zdict.data(), embedded::ksealed_1_zdict.size());
  return ddict;
}

// Never destroyed: a thread may still compress while the process exits.
Pool<ZSTD_CCtx, CCtxFree>& CompressionContexts() {
  static auto* pool = new Pool<ZSTD_CCtx, CCtxFree>(MakeCCtx);
  return *pool;
}
Pool<ZSTD_DCtx, DCtxFree>& DecompressionContexts() {
  static auto* pool = new Pool<ZSTD_DCtx, DCtxFree>(MakeDCtx);
  return *pool;
}

}  // namespace

std::string_view ZstdSealedDictionary() { return embedded::ksealed_1_zdict; }

std::optional<std::string> ZstdCompress(std::string_view data, ZstdDictionary dictionary) {
  if (data.size() < kCompressMinBytes) return std::nullopt;
  const ZSTD_CDict* cdict = nullptr;
  if (dictionary == ZstdDictionary::kSealed) {
    cdict = SealedCDict();
    if (cdict == nullptr) return std::nullopt;
  }
  auto cctx = CompressionContexts().Take();
  if (cctx.get() == nullptr) return std::nullopt;
  // A context keeps the dictionary it was last given: name this call's (or none) each time.
  if (ZSTD_isError(ZSTD_CCtx_refCDict(cctx.get(), cdict))) return std::nullopt;
  const size_t keep = data.size() - data.size() / 8;  // at least an eighth saved
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress2(cctx.get(), out.data(), out.size(), data.data(), data.size());
  if (ZSTD_isError(n) || n > keep) return std::nullopt;
  out.resize(n);
  return out;
}

size_t ZstdIdleCompressionContexts() { return CompressionContexts().idle(); }

bool IsZstdFrame(std::string_view data) {
  return data.size() >= 4 && static_cast<unsigned char>(data[0]) == 0x28 &&
         static_cast<unsigned char>(data[1]) == 0xB5 &&
         static_cast<unsigned char>(data[2]) == 0x2F && static_cast<unsigned char>(data[3]) == 0xFD;
}

absl::StatusOr<std::string> ZstdDecompress(std::string_view frame, size_t max_size) {
  if (!IsZstdFrame(frame)) return absl::DataLossError("zstd: not a zstd frame");
  unsigned long long size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (size == ZSTD_CONTENTSIZE_ERROR) return absl::DataLossError("zstd: malformed frame header");
  if (size == ZSTD_CONTENTSIZE_UNKNOWN) {
    return absl::DataLossError("zstd: the frame does not state its content size");
  }
  if (size > max_size) {
    return absl::DataLossError(
        Cat("zstd: the frame holds ", size, " bytes, more than the ", max_size, " allowed"));
  }
  if (ZSTD_findFrameCompressedSize(frame.data(), frame.size()) != frame.size()) {
    return absl::DataLossError("zstd: not exactly one whole frame");
  }
  const unsigned dictionary_id = ZSTD_getDictID_fromFrame(frame.data(), frame.size());
  const ZSTD_DDict* ddict = nullptr;
  if (dictionary_id == kZstdSealedDictionaryId) {
    ddict = SealedDDict();
    if (ddict == nullptr) return absl::ResourceExhaustedError("zstd: no decompression dictionary");
  } else if (dictionary_id != 0) {
    return absl::DataLossError(Cat("zstd: the frame needs dictionary ", dictionary_id,
                                   ", which this build does not have (it has ",
                                   kZstdSealedDictionaryId, ")"));
  }
  auto dctx = DecompressionContexts().Take();
  if (dctx.get() == nullptr) {
    return absl::ResourceExhaustedError("zstd: no decompression context");
  }
  std::string out(static_cast<size_t>(size), '\0');
  size_t n = ddict != nullptr ? ZSTD_decompress_usingDDict(dctx.get(), out.data(), out.size(),
                                                           frame.data(), frame.size(), ddict)
                              : ZSTD_decompressDCtx(dctx.get(), out.data(), out.size(),
                                                    frame.data(), frame.size());
  if (ZSTD_isError(n) || n != out.size()) {
    return absl::DataLossError(
        Cat("zstd: corrupt frame", ZSTD_isError(n) ? Cat(" (", ZSTD_getErrorName(n), ")") : ""));
  }
  return out;
}

}  // namespace rxflow::internal
