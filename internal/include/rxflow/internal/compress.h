// SPDX-License-Identifier: Apache-2.0
// Internal (core and adapters; not installed): Zstandard frames (RFC 8878) for values kept at
// rest (sealed PHI, compressed before its encryption: rxflow/crypto/phi.h). Only
// declarations: the definitions are compiled into rxflow_core (src/common/compress.cc), which
// every adapter links, so no adapter needs libzstd's headers.
#ifndef RXFLOW_INTERNAL_COMPRESS_H_
#define RXFLOW_INTERNAL_COMPRESS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rxflow::internal {

// Values shorter than this are kept as they are: a frame's header and the call cost more
// than they could save.
inline constexpr size_t kCompressMinBytes = 1024;

// The dictionaries a frame may be compressed with. kSealed is trained on NewRx messages as
// the service seals them (data/zstd/sealed-1.zdict, scripts/train-zstd-dictionary.sh): a
// NewRx compresses to a quarter to a third of its dictionary-less frame, ~3x as fast.
enum class ZstdDictionary { kNone, kSealed };

// The id zstd writes into each frame made with kSealed (0x52784601). A released dictionary
// is frozen: ZstdDecompress finds a frame's dictionary by this id, and no other bytes expand
// what it compressed.
inline constexpr uint32_t kZstdSealedDictionaryId = 0x52784601;

// The embedded bytes of kSealed (for tests: they must never change).
std::string_view ZstdSealedDictionary();

// One zstd frame holding `data` (its content size and checksum in the frame, and the id of
// `dictionary` when one is used; level 1, the fastest) when `data` is at least
// kCompressMinBytes long and the frame saves at least an eighth of it; nullopt otherwise
// (short or incompressible, or no compression context or dictionary could be allocated: keep
// `data` as it is). Thread-safe: contexts come from a small pool shared by the threads.
std::optional<std::string> ZstdCompress(std::string_view data,
                                        ZstdDictionary dictionary = ZstdDictionary::kNone);

// Idle compression (and decompression) contexts kept for reuse; more are freed when given
// back.
inline constexpr size_t kZstdIdleContextsKept = 16;

// How many compression contexts wait idle in the pool the threads share (at most
// kZstdIdleContextsKept; for tests). ZstdCompress takes the one given back last and gives it
// back when done.
size_t ZstdIdleCompressionContexts();

// True when `data` begins with the zstd frame magic number (28 B5 2F FD).
bool IsZstdFrame(std::string_view data);

// The content of the single frame `frame`, expanded with the dictionary its header names (or
// none: frames made before kSealed existed read as before). DataLoss when it is not one
// whole, valid frame (a damaged byte fails its checksum), when its header does not state its
// content size, when that size exceeds `max_size` (cost bounded before anything is
// allocated), or when it names a dictionary this build does not have (the id is in the
// message); ResourceExhausted when no decompression context could be allocated.
absl::StatusOr<std::string> ZstdDecompress(std::string_view frame, size_t max_size);

}  // namespace rxflow::internal

#endif  // RXFLOW_INTERNAL_COMPRESS_H_
