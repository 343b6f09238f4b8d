// SPDX-License-Identifier: Apache-2.0
// Internal (core and adapters; not installed): digests and random ids over OpenSSL. Only
// declarations: the definitions are compiled into rxflow_core (src/common/crypto.cc), which
// every adapter links, so no adapter needs OpenSSL's headers for these.
#ifndef RXFLOW_INTERNAL_CRYPTO_H_
#define RXFLOW_INTERNAL_CRYPTO_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace rxflow::internal {

// SHA-256 of `data` as 64 lowercase hex digits.
std::string Sha256Hex(std::string_view data);
// HMAC-SHA-256 of `data` under `key` as 64 lowercase hex digits.
std::string HmacSha256Hex(std::string_view key, std::string_view data);
// 16 random bytes from OpenSSL's CSPRNG as 32 lowercase hex digits, drawn for this call:
// for values that must stay unpredictable (challenges, key ids).
std::string RandomHex128();
// For identifiers (request, message, event and trace ids): unique, not secret. The bytes
// come from OpenSSL's CSPRNG too, drawn 256 at a time into a per-thread buffer, because one
// RAND_bytes call per id cost ~5 % of a submission's CPU (OpenSSL 3 takes its generator's
// lock and calls getpid() on each). A fork discards every buffer, so a child never hands out
// its parent's ids. Keys, nonces, salts and challenges never come from here.
void IdRandomBytes(unsigned char* out, size_t n);
// 16 bytes of IdRandomBytes as 32 lowercase hex digits.
std::string IdHex128();
// The raw 32-byte SHA-256 of `data`.
std::string Sha256Bytes(std::string_view data);
// RFC 4648 base64 with padding, no line breaks.
std::string Base64Encode(std::string_view bytes);
// The bytes of RFC 4648 base64 text (padding required, no whitespace), or nullopt when
// `text` is not base64.
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace rxflow::internal

#endif  // RXFLOW_INTERNAL_CRYPTO_H_
