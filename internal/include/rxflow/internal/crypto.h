// Internal (core and adapters; not installed): digests and random ids over OpenSSL. Only
// declarations: the definitions are compiled into rxflow_core (src/common/crypto.cc), which
// every adapter links, so no adapter needs OpenSSL's headers for these.
#ifndef RXFLOW_INTERNAL_CRYPTO_H_
#define RXFLOW_INTERNAL_CRYPTO_H_

#include <string>
#include <string_view>

namespace rxflow::internal {

// SHA-256 of `data` as 64 lowercase hex digits.
std::string Sha256Hex(std::string_view data);
// HMAC-SHA-256 of `data` under `key` as 64 lowercase hex digits.
std::string HmacSha256Hex(std::string_view key, std::string_view data);
// 16 random bytes from OpenSSL's CSPRNG as 32 lowercase hex digits.
std::string RandomHex128();

}  // namespace rxflow::internal

#endif  // RXFLOW_INTERNAL_CRYPTO_H_
