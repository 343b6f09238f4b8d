// SPDX-License-Identifier: Apache-2.0
#include "rxflow/epcs/factors.h"

#include <charconv>
#include <cstdlib>
#include <mutex>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

#include <liboath/oath.h>

namespace rxflow::epcs {
namespace {

using internal::Cat;

// ------------------------------------------------------------------------------------------
// Small codecs.

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Standard base64 without '=' padding, as the PHC string format writes salts and hashes.
std::string Base64NoPad(const unsigned char* p, size_t n) {
  std::string out;
  out.reserve((n * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(kBase64Alphabet[(v >> 6) & 63]);
    out.push_back(kBase64Alphabet[v & 63]);
  }
  if (n - i == 1) {
    uint32_t v = uint32_t{p[i]} << 16;
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
  } else if (n - i == 2) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(kBase64Alphabet[(v >> 6) & 63]);
  }
  return out;
}

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Strict: no padding, no whitespace, and the unused low bits of the last character must be
// zero, so one byte string has exactly one encoding (a stored hash cannot be re-spelled).
bool DecodeBase64NoPad(std::string_view text, std::string& out) {
  if (text.size() % 4 == 1) return false;
  out.clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = Base64Value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return (acc & ((1u << bits) - 1)) == 0;
}

// RFC 3986 percent-encoding of everything but the unreserved characters.
void AppendPercentEncoded(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
}

// ------------------------------------------------------------------------------------------
// Passwords (scrypt).

constexpr std::string_view kScryptPrefix = "$scrypt$";
constexpr size_t kSaltBytes = 16;
constexpr size_t kKeyBytes = 32;
constexpr size_t kMinStoredSaltBytes = 8;
constexpr size_t kMinStoredKeyBytes = 16;
constexpr size_t kMaxStoredBytes = 64;
constexpr int kMinLog2N = 10;
constexpr int kMaxLog2N = 20;
constexpr int kMaxR = 32;
constexpr int kMaxP = 16;
// A stored hash decides the work its verification does; this bounds what a tampered or
// mistyped one can ask of the process.
constexpr uint64_t kMaxScryptMemory = uint64_t{256} << 20;

// The bytes OpenSSL's scrypt allocates (its own check against `maxmem` uses this sum).
uint64_t ScryptMemory(int log2_n, int r, int p) {
  uint64_t n = uint64_t{1} << log2_n;
  return uint64_t{128} * r * p + uint64_t{128} * r * (n + 2);
}

Status CheckScryptCost(int log2_n, int r, int p, std::string_view field) {
  if (log2_n < kMinLog2N || log2_n > kMaxLog2N) {
    return absl::InvalidArgumentError(
        Cat(field, ": scrypt ln must be ", kMinLog2N, "..", kMaxLog2N, ", got ", log2_n));
  }
  if (r < 1 || r > kMaxR) {
    return absl::InvalidArgumentError(Cat(field, ": scrypt r must be 1..", kMaxR, ", got ", r));
  }
  if (p < 1 || p > kMaxP) {
    return absl::InvalidArgumentError(Cat(field, ": scrypt p must be 1..", kMaxP, ", got ", p));
  }
  // RFC 7914 §2: N must be less than 2^(128 * r / 8).
  if (log2_n >= 16 * r) {
    return absl::InvalidArgumentError(Cat(field, ": scrypt ln ", log2_n, " too large for r ", r));
  }
  if (ScryptMemory(log2_n, r, p) > kMaxScryptMemory) {
    return absl::InvalidArgumentError(
        Cat(field, ": scrypt parameters need more than ", kMaxScryptMemory >> 20, " MiB"));
  }
  return absl::OkStatus();
}

bool Scrypt(std::string_view password, std::string_view salt, int log2_n, int r, int p,
            unsigned char* key, size_t key_len) {
  // A default-constructed string_view has a null data(): give OpenSSL a real empty string.
  const char* pass = password.data() != nullptr ? password.data() : "";
  int ok =
      EVP_PBE_scrypt(pass, password.size(), reinterpret_cast<const unsigned char*>(salt.data()),
                     salt.size(), uint64_t{1} << log2_n, static_cast<uint64_t>(r),
                     static_cast<uint64_t>(p), ScryptMemory(log2_n, r, p), key, key_len);
  if (ok != 1) {
    ERR_clear_error();
    OPENSSL_cleanse(key, key_len);
    return false;
  }
  return true;
}

// Unicode code points of UTF-8 text: every byte that does not continue a sequence.
size_t CodePoints(std::string_view s) {
  size_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xc0) != 0x80) ++n;
  }
  return n;
}

// Parses "<name>=<decimal>" from the front of `s`, then consumes `sep` if it is not '\0'.
bool ParseParam(std::string_view& s, std::string_view name, char sep, int& value) {
  if (s.substr(0, name.size()) != name || s.size() <= name.size() || s[name.size()] != '=') {
    return false;
  }
  s.remove_prefix(name.size() + 1);
  if (s.empty() || s[0] < '0' || s[0] > '9') return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc()) return false;
  s.remove_prefix(static_cast<size_t>(ptr - s.data()));
  if (sep == '\0') return s.empty();
  if (s.empty() || s[0] != sep) return false;
  s.remove_prefix(1);
  return true;
}

// ------------------------------------------------------------------------------------------
// TOTP (liboath).

// liboath asks for oath_init() before first use; it is not documented as safe to call from
// two threads at once, so it runs once for the process (and oath_done() never: other code in
// the process may still use the library at exit).
Status EnsureOath() {
  static std::once_flag once;
  static int rc = OATH_OK;
  std::call_once(once, [] { rc = oath_init(); });
  if (rc != OATH_OK) {
    return absl::InternalError(Cat("liboath: initialisation failed: ", oath_strerror(rc)));
  }
  return absl::OkStatus();
}

// 9999-12-31T23:59:59Z. Times beyond it are a caller's bug; bounding them keeps every
// step * period product far from int64 overflow.
constexpr int64_t kMaxUnixSeconds = 253'402'300'799;
constexpr int kMaxWindow = 10;
constexpr int kMaxDigits = 8;

Status CheckTotpParams(const TotpParams& params) {
  switch (params.algorithm) {
    case TotpAlgorithm::kSha1:
    case TotpAlgorithm::kSha256:
    case TotpAlgorithm::kSha512:
      break;
    default:
      return absl::InvalidArgumentError("totp algorithm: not sha1, sha256 or sha512");
  }
  if (params.digits < 6 || params.digits > kMaxDigits) {
    return absl::InvalidArgumentError(Cat("totp digits: must be 6, 7 or 8, got ", params.digits));
  }
  if (params.period_seconds < 1) {
    return absl::InvalidArgumentError(
        Cat("totp period: must be at least 1 second, got ", params.period_seconds));
  }
  return absl::OkStatus();
}

Status CheckTotpSecret(std::string_view secret) {
  if (secret.size() < kMinTotpSecretBytes) {
    return absl::InvalidArgumentError(Cat("totp secret: ", secret.size(), " bytes, at least ",
                                          kMinTotpSecretBytes, " (128 bits) required"));
  }
  return absl::OkStatus();
}

Status CheckUnixTime(int64_t unix_seconds, std::string_view field) {
  if (unix_seconds < 0 || unix_seconds > kMaxUnixSeconds) {
    return absl::InvalidArgumentError(Cat(field, ": ", unix_seconds, " is outside 1970..9999"));
  }
  return absl::OkStatus();
}

int OathFlags(TotpAlgorithm algorithm) {
  switch (algorithm) {
    case TotpAlgorithm::kSha256:
      return OATH_TOTP_HMAC_SHA256;
    case TotpAlgorithm::kSha512:
      return OATH_TOTP_HMAC_SHA512;
    case TotpAlgorithm::kSha1:
      break;
  }
  return 0;
}

// The code of time step `step` into `out` (params.digits characters and a NUL). The inputs
// are already checked; liboath's answer is checked all the same.
Status CodeAtStep(std::string_view secret, int64_t step, const TotpParams& params,
                  char (&out)[kMaxDigits + 1]) {
  // TOTP is HOTP of T = floor((time - T0) / X): the step's first second gives T exactly.
  auto at = static_cast<time_t>(step * params.period_seconds);
  int rc = oath_totp_generate2(
      secret.data(), secret.size(), at, static_cast<unsigned>(params.period_seconds), 0,
      static_cast<unsigned>(params.digits), OathFlags(params.algorithm), out);
  if (rc != OATH_OK) {
    return absl::InternalError(Cat("liboath: totp generation failed: ", oath_strerror(rc)));
  }
  return absl::OkStatus();
}

}  // namespace

// --------------------------------------------------------------------------------------------
// Factor kinds.

std::string_view FactorKindName(FactorKind kind) {
  switch (kind) {
    case FactorKind::kKnowledge:
      return "knowledge";
    case FactorKind::kPossession:
      return "possession";
    case FactorKind::kInherence:
      return "inherence";
  }
  return "unknown";
}

Status CheckTwoFactors(std::span<const FactorKind> completed) {
  bool seen[3] = {false, false, false};
  for (FactorKind kind : completed) {
    switch (kind) {
      case FactorKind::kKnowledge:
      case FactorKind::kPossession:
      case FactorKind::kInherence:
        seen[static_cast<int>(kind)] = true;
        break;
    }
  }
  int kinds = 0;
  FactorKind only = FactorKind::kKnowledge;
  for (int i = 0; i < 3; ++i) {
    if (seen[i]) {
      ++kinds;
      only = static_cast<FactorKind>(i);
    }
  }
  if (kinds >= 2) return absl::OkStatus();
  if (kinds == 0) {
    return absl::PermissionDeniedError(
        "two factors of different kinds required (21 CFR 1311.115): none completed");
  }
  std::string message = Cat("two factors of different kinds required (21 CFR 1311.115): only ",
                            FactorKindName(only), " completed");
  if (completed.size() > 1) {
    internal::Append(message, " (", completed.size(), " credentials of one kind count as one)");
  }
  return absl::PermissionDeniedError(message);
}

// --------------------------------------------------------------------------------------------
// Knowledge factor.

StatusOr<std::string> HashPassword(std::string_view password, const PasswordPolicy& policy) {
  if (policy.min_length < 0) {
    return absl::InvalidArgumentError("password policy: min_length is negative");
  }
  if (CodePoints(password) < static_cast<size_t>(policy.min_length)) {
    return absl::InvalidArgumentError(
        Cat("password: shorter than ", policy.min_length, " characters"));
  }
  if (Status s = CheckScryptCost(policy.log2_n, policy.r, policy.p, "password policy"); !s.ok()) {
    return s;
  }
  unsigned char salt[kSaltBytes];
  if (RAND_bytes(salt, sizeof salt) != 1) {
    ERR_clear_error();
    return absl::InternalError("password salt: the csprng failed");
  }
  unsigned char key[kKeyBytes];
  if (!Scrypt(password, std::string_view(reinterpret_cast<const char*>(salt), sizeof salt),
              policy.log2_n, policy.r, policy.p, key, sizeof key)) {
    return absl::InternalError("password: scrypt failed");
  }
  std::string encoded = Cat(kScryptPrefix, "ln=", policy.log2_n, ",r=", policy.r, ",p=", policy.p,
                            "$", Base64NoPad(salt, sizeof salt), "$", Base64NoPad(key, sizeof key));
  OPENSSL_cleanse(key, sizeof key);
  return encoded;
}

Status VerifyPassword(std::string_view password, std::string_view encoded) {
  // The messages name the part that is wrong and never quote the stored string.
  if (encoded.substr(0, kScryptPrefix.size()) != kScryptPrefix) {
    return absl::InvalidArgumentError("password hash: not an $scrypt$ hash");
  }
  std::string_view rest = encoded.substr(kScryptPrefix.size());
  size_t dollar1 = rest.find('$');
  if (dollar1 == std::string_view::npos) {
    return absl::InvalidArgumentError("password hash: missing salt and hash");
  }
  size_t dollar2 = rest.find('$', dollar1 + 1);
  if (dollar2 == std::string_view::npos) {
    return absl::InvalidArgumentError("password hash: missing hash");
  }
  std::string_view params = rest.substr(0, dollar1);
  std::string_view salt_b64 = rest.substr(dollar1 + 1, dollar2 - dollar1 - 1);
  std::string_view hash_b64 = rest.substr(dollar2 + 1);
  int log2_n = 0, r = 0, p = 0;
  if (!ParseParam(params, "ln", ',', log2_n) || !ParseParam(params, "r", ',', r) ||
      !ParseParam(params, "p", '\0', p)) {
    return absl::InvalidArgumentError("password hash: parameters are not ln=N,r=N,p=N");
  }
  RXFLOW_RETURN_IF_ERROR(CheckScryptCost(log2_n, r, p, "password hash"));
  std::string salt, expected;
  if (!DecodeBase64NoPad(salt_b64, salt)) {
    return absl::InvalidArgumentError("password hash: salt is not unpadded base64");
  }
  if (!DecodeBase64NoPad(hash_b64, expected)) {
    return absl::InvalidArgumentError("password hash: hash is not unpadded base64");
  }
  if (salt.size() < kMinStoredSaltBytes || salt.size() > kMaxStoredBytes) {
    return absl::InvalidArgumentError(Cat("password hash: salt is ", salt.size(),
                                          " bytes, expected ", kMinStoredSaltBytes, "..",
                                          kMaxStoredBytes));
  }
  if (expected.size() < kMinStoredKeyBytes || expected.size() > kMaxStoredBytes) {
    return absl::InvalidArgumentError(Cat("password hash: hash is ", expected.size(),
                                          " bytes, expected ", kMinStoredKeyBytes, "..",
                                          kMaxStoredBytes));
  }
  unsigned char key[kMaxStoredBytes];
  if (!Scrypt(password, salt, log2_n, r, p, key, expected.size())) {
    return absl::InternalError("password: scrypt failed");
  }
  bool match = CRYPTO_memcmp(key, expected.data(), expected.size()) == 0;
  OPENSSL_cleanse(key, sizeof key);
  OPENSSL_cleanse(expected.data(), expected.size());
  if (!match) return absl::UnauthenticatedError("password: does not match");
  return absl::OkStatus();
}

// --------------------------------------------------------------------------------------------
// Possession factor.

StatusOr<std::string> NewTotpSecret(TotpAlgorithm algorithm) {
  size_t n = 20;
  switch (algorithm) {
    case TotpAlgorithm::kSha1:
      n = 20;
      break;
    case TotpAlgorithm::kSha256:
      n = 32;
      break;
    case TotpAlgorithm::kSha512:
      n = 64;
      break;
  }
  std::string secret(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()), static_cast<int>(n)) != 1) {
    ERR_clear_error();
    return absl::InternalError("totp secret: the csprng failed");
  }
  return secret;
}

StatusOr<std::string> TotpCode(std::string_view secret_bytes, int64_t unix_seconds,
                               const TotpParams& params) {
  RXFLOW_RETURN_IF_ERROR(CheckTotpSecret(secret_bytes));
  RXFLOW_RETURN_IF_ERROR(CheckTotpParams(params));
  RXFLOW_RETURN_IF_ERROR(CheckUnixTime(unix_seconds, "totp time"));
  RXFLOW_RETURN_IF_ERROR(EnsureOath());
  char code[kMaxDigits + 1] = {};
  if (Status s = CodeAtStep(secret_bytes, unix_seconds / params.period_seconds, params, code);
      !s.ok()) {
    return s;
  }
  return std::string(code, static_cast<size_t>(params.digits));
}

std::string Base32Encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  out.reserve((bytes.size() * 8 + 4) / 5);
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : bytes) {
    acc = (acc << 8) | static_cast<unsigned char>(ch);
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push_back(kAlphabet[(acc >> bits) & 31]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (5 - bits)) & 31]);
  return out;
}

StatusOr<std::string> Base32Decode(std::string_view text) {
  RXFLOW_RETURN_IF_ERROR(EnsureOath());
  char* raw = nullptr;
  size_t len = 0;
  int rc = oath_base32_decode(text.data() != nullptr ? text.data() : "", text.size(), &raw, &len);
  if (rc != OATH_OK) {
    std::free(raw);
    return absl::InvalidArgumentError(
        "base32: invalid character or length (RFC 4648 alphabet A-Z 2-7)");
  }
  std::string out(raw != nullptr ? raw : "", raw != nullptr ? len : 0);
  // The decoded text is usually a shared secret: do not leave it in freed memory.
  if (raw != nullptr) OPENSSL_cleanse(raw, len);
  std::free(raw);
  return out;
}

std::string OtpauthUri(std::string_view issuer, std::string_view account,
                       std::string_view secret_bytes, const TotpParams& params) {
  std::string uri = "otpauth://totp/";
  if (!issuer.empty()) {
    AppendPercentEncoded(uri, issuer);
    uri.push_back(':');
  }
  AppendPercentEncoded(uri, account);
  internal::Append(uri, "?secret=", Base32Encode(secret_bytes));
  if (!issuer.empty()) {
    uri += "&issuer=";
    AppendPercentEncoded(uri, issuer);
  }
  std::string_view algorithm = "SHA1";
  if (params.algorithm == TotpAlgorithm::kSha256) algorithm = "SHA256";
  if (params.algorithm == TotpAlgorithm::kSha512) algorithm = "SHA512";
  internal::Append(uri, "&algorithm=", algorithm, "&digits=", params.digits,
                   "&period=", params.period_seconds);
  return uri;
}

std::string_view TotpOutcomeName(TotpOutcome outcome) {
  switch (outcome) {
    case TotpOutcome::kAccepted:
      return "accepted";
    case TotpOutcome::kWrongCode:
      return "wrong code";
    case TotpOutcome::kReplayed:
      return "replayed";
    case TotpOutcome::kLockedOut:
      return "locked out";
    case TotpOutcome::kMalformed:
      return "malformed";
  }
  return "unknown";
}

StatusOr<TotpCheck> CheckTotp(std::string_view secret_bytes, std::string_view code,
                              int64_t now_unix, const TotpParams& params, const TotpPolicy& policy,
                              TotpState& state) {
  RXFLOW_RETURN_IF_ERROR(CheckTotpSecret(secret_bytes));
  RXFLOW_RETURN_IF_ERROR(CheckTotpParams(params));
  RXFLOW_RETURN_IF_ERROR(CheckUnixTime(now_unix, "totp check time"));
  if (policy.window_back < 0 || policy.window_back > kMaxWindow || policy.window_forward < 0 ||
      policy.window_forward > kMaxWindow) {
    return absl::InvalidArgumentError(
        Cat("totp policy: windows must be 0..", kMaxWindow, " steps"));
  }
  if (policy.max_failures < 1) {
    return absl::InvalidArgumentError("totp policy: max_failures must be at least 1");
  }
  if (policy.lockout_seconds < 1) {
    return absl::InvalidArgumentError("totp policy: lockout_seconds must be at least 1");
  }
  RXFLOW_RETURN_IF_ERROR(EnsureOath());

  // Worked on a copy and written back only with a result, so an error leaves `state` as it was.
  TotpState next = state;
  TotpCheck result;
  if (now_unix < next.locked_until_unix) {
    // The code is not looked at: a locked credential must not be an oracle for guesses.
    result.outcome = TotpOutcome::kLockedOut;
    return result;
  }
  if (next.locked_until_unix != 0) {
    // The lockout has run out: a fresh count of attempts.
    next.locked_until_unix = 0;
    next.failures = 0;
  }

  auto fail = [&](TotpOutcome outcome) {
    result.outcome = outcome;
    if (next.failures < policy.max_failures) ++next.failures;
    if (next.failures >= policy.max_failures) {
      next.locked_until_unix = now_unix + policy.lockout_seconds;
      result.lockout_started = true;
    }
    state = next;
    return result;
  };

  bool well_formed = code.size() == static_cast<size_t>(params.digits);
  for (char c : code) well_formed = well_formed && c >= '0' && c <= '9';
  if (!well_formed) return fail(TotpOutcome::kMalformed);

  // Every step of the window is computed and compared, whatever matched earlier, so the time
  // taken does not depend on the code.
  const int64_t current = now_unix / params.period_seconds;
  int64_t fresh = -1;  // the earliest matching step after last_step
  int64_t used = -1;   // a matching step at or before last_step
  char expected[kMaxDigits + 1] = {};
  Status generation = absl::OkStatus();
  for (int64_t step = current - policy.window_back; step <= current + policy.window_forward;
       ++step) {
    if (step < 0) continue;
    if (Status s = CodeAtStep(secret_bytes, step, params, expected); !s.ok()) {
      generation = s;
      break;
    }
    bool match = CRYPTO_memcmp(expected, code.data(), code.size()) == 0;
    if (match && step > next.last_step && fresh < 0) fresh = step;
    if (match && step <= next.last_step) used = step;
  }
  OPENSSL_cleanse(expected, sizeof expected);
  if (!generation.ok()) return generation;

  if (fresh >= 0) {
    next.last_step = fresh;
    next.failures = 0;
    state = next;
    result.outcome = TotpOutcome::kAccepted;
    result.step = fresh;
    return result;
  }
  if (used >= 0) {
    result.step = used;
    return fail(TotpOutcome::kReplayed);
  }
  return fail(TotpOutcome::kWrongCode);
}

}  // namespace rxflow::epcs
