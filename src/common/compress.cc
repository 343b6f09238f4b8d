// SPDX-License-Identifier: Apache-2.0
// Zstandard frames for values at rest (rxflow/internal/compress.h), over Debian's libzstd.
#include "rxflow/internal/compress.h"

#include <memory>
#include <utility>

#include "rxflow/internal/strcat.h"

#include <zstd.h>

namespace rxflow::internal {
namespace {

constexpr int kLevel = 1;

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

// A context allocates its tables once: one per thread, reused. Level 1 (the fastest), the
// content size in the header (ZstdDecompress requires it), and a checksum of the content, so
// that a damaged frame is found, never read as other bytes. Null when it cannot be made (out
// of memory): the caller degrades (no compression) or fails with a status; a later call
// tries again.
ZSTD_CCtx* ThreadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxFree> ctx;
  if (!ctx) {
    std::unique_ptr<ZSTD_CCtx, CCtxFree> c(ZSTD_createCCtx());
    if (!c || ZSTD_isError(ZSTD_CCtx_setParameter(c.get(), ZSTD_c_compressionLevel, kLevel)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c.get(), ZSTD_c_checksumFlag, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c.get(), ZSTD_c_contentSizeFlag, 1))) {
      return nullptr;
    }
    ctx = std::move(c);
  }
  return ctx.get();
}
ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxFree> ctx;
  if (!ctx) ctx.reset(ZSTD_createDCtx());
  return ctx.get();
}

}  // namespace

std::optional<std::string> ZstdCompress(std::string_view data) {
  if (data.size() < kCompressMinBytes) return std::nullopt;
  ZSTD_CCtx* cctx = ThreadCCtx();
  if (cctx == nullptr) return std::nullopt;
  const size_t keep = data.size() - data.size() / 8;  // at least an eighth saved
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress2(cctx, out.data(), out.size(), data.data(), data.size());
  if (ZSTD_isError(n) || n > keep) return std::nullopt;
  out.resize(n);
  return out;
}

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
  ZSTD_DCtx* dctx = ThreadDCtx();
  if (dctx == nullptr) return absl::ResourceExhaustedError("zstd: no decompression context");
  std::string out(static_cast<size_t>(size), '\0');
  size_t n = ZSTD_decompressDCtx(dctx, out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(n) || n != out.size()) {
    return absl::DataLossError(
        Cat("zstd: corrupt frame", ZSTD_isError(n) ? Cat(" (", ZSTD_getErrorName(n), ")") : ""));
  }
  return out;
}

}  // namespace rxflow::internal
