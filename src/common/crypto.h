// Private: OpenSSL digests.
#ifndef RXFLOW_SRC_COMMON_CRYPTO_H_
#define RXFLOW_SRC_COMMON_CRYPTO_H_

#include <string>
#include <string_view>

namespace rxflow::internal {

std::string Sha256Hex(std::string_view data);
std::string HmacSha256Hex(std::string_view key, std::string_view data);
// 16 random bytes from OpenSSL's CSPRNG as 32 lowercase hex digits.
std::string RandomHex128();

}  // namespace rxflow::internal

#endif  // RXFLOW_SRC_COMMON_CRYPTO_H_
