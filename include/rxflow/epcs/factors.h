// SPDX-License-Identifier: Apache-2.0
// File: rxflow/epcs/factors.h
//
// The two authentication factors 21 CFR 1311.115 asks of a practitioner who signs a
// controlled-substance prescription: two of "something you know", "something you have" and
// "something you are". This header gives the knowledge factor (a password, stored as an
// scrypt hash), the possession factor's one-time codes (TOTP, RFC 6238, computed by liboath)
// with the verifier's replay and lockout rules, and the rule that the two factors must be of
// different kinds. docs/epcs.md, "Factors", states the behaviour with its numbers.
//
// Nothing here reads the clock or logs: times are passed in (rxflow/clock.h), and the TOTP
// verifier's state is a plain struct that the caller persists with the credential.
#ifndef RXFLOW_EPCS_FACTORS_H_
#define RXFLOW_EPCS_FACTORS_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "rxflow/status.h"

namespace rxflow::epcs {

// ---------------------------------------------------------------------------------------------
// Factor kinds and the two-factor rule.
//
// Which credential is which kind (§1311.115(a)-(b), §1311.116):
//
//   kind         counts as this kind                            does not count
//   knowledge    password, PIN, answer to a challenge question  -
//   possession   a hard token separate from the computer used   a software TOTP running on
//                to sign, meeting FIPS 140-2 Security Level 1   the signing computer itself
//                (an OTP device, or a cryptographic module
//                such as a PKCS#11 token or FIDO key)
//   inherence    a biometric meeting §1311.116                  -
//
// Two credentials of one kind are one factor: a password plus a security question is a
// single knowledge factor, and is refused.

enum class FactorKind { kKnowledge, kPossession, kInherence };

// "knowledge", "possession", "inherence".
std::string_view FactorKindName(FactorKind kind);

// A credential a practitioner authenticates with, beyond what this header implements: a FIPS
// hard token, a PKCS#11 OTP device, a WebAuthn authenticator. How each is verified is its own
// business (a TOTP is checked by CheckTotp below, a WebAuthn assertion by its adapter); what
// the signing ceremony needs of every one is its kind, to apply CheckTwoFactors to the
// factors that passed, and a name for the audit trail.
class SecondFactor {
 public:
  virtual ~SecondFactor() = default;
  // The kind this credential counts as. A possession factor must be a device separate from
  // the computer used to sign (see the table above); an implementation that cannot promise
  // that must not report kPossession.
  virtual FactorKind kind() const = 0;
  // A short stable name for audit records, e.g. "totp", "pkcs11-otp", "webauthn".
  virtual std::string_view name() const = 0;
};

// OK when `completed` (the kinds of the factors the practitioner has just passed, in any
// order, repeats allowed) holds at least two different kinds. PermissionDenied otherwise,
// saying which kinds were completed and that two of one kind count once.
Status CheckTwoFactors(std::span<const FactorKind> completed);

// ---------------------------------------------------------------------------------------------
// Knowledge factor: passwords.
//
// Stored as a PHC-style string, "$scrypt$ln=15,r=8,p=1$<salt>$<hash>": scrypt (RFC 7914) with
// N = 2^ln, a 16-byte salt from OpenSSL's CSPRNG and a 32-byte key, both in standard base64
// without padding. The password is hashed as the bytes given (callers that accept Unicode
// should normalise it first); it is never logged or echoed in a message.

struct PasswordPolicy {
  // Fewest characters (Unicode code points of the UTF-8 text) HashPassword accepts.
  int min_length = 12;
  // scrypt cost: N = 2^log2_n, block size r, parallelism p. The defaults need 32 MiB and
  // about 0.1 s per hash; VerifyPassword reads the cost from the stored string, so raising
  // these affects new hashes only.
  int log2_n = 15;
  int r = 8;
  int p = 1;
};

// The encoded hash of `password`. InvalidArgument when the password is shorter than
// `policy.min_length` or the cost is outside what VerifyPassword accepts (log2_n 10..20, r
// 1..32, p 1..16, at most 256 MiB of memory); Internal when the CSPRNG or scrypt fails.
StatusOr<std::string> HashPassword(std::string_view password, const PasswordPolicy& policy = {});

// OK when `password` hashes to `encoded` (the comparison takes the same time wherever the
// bytes differ). Unauthenticated when it does not; InvalidArgument when `encoded` is not a
// hash HashPassword could have written (unknown scheme, bad parameters, bad base64, a salt
// under 8 or a hash under 16 bytes).
Status VerifyPassword(std::string_view password, std::string_view encoded);

// ---------------------------------------------------------------------------------------------
// Possession factor: time-based one-time passwords (RFC 6238 over RFC 4226).

enum class TotpAlgorithm { kSha1, kSha256, kSha512 };

struct TotpParams {
  TotpAlgorithm algorithm = TotpAlgorithm::kSha1;
  int digits = 6;           // 6, 7 or 8
  int period_seconds = 30;  // the time step X; T0 is always 0
};

// The shortest shared secret accepted: 128 bits (RFC 4226 §4, R6). 160 bits is recommended.
inline constexpr size_t kMinTotpSecretBytes = 16;

// A new random shared secret from OpenSSL's CSPRNG, as long as the algorithm's HMAC output:
// 20, 32 or 64 bytes (RFC 2104 §3 discourages shorter HMAC keys; RFC 6238 Appendix B's seeds
// have these lengths). Internal when the CSPRNG fails.
StatusOr<std::string> NewTotpSecret(TotpAlgorithm algorithm = TotpAlgorithm::kSha1);

// The code for time `unix_seconds` (step floor(unix_seconds / period)), `digits` decimal
// digits with leading zeros kept. InvalidArgument when the secret is shorter than
// kMinTotpSecretBytes, the time is negative or past year 9999, or the parameters are not
// the ones documented on TotpParams.
StatusOr<std::string> TotpCode(std::string_view secret_bytes, int64_t unix_seconds,
                               const TotpParams& params = {});

// RFC 4648 base32 (uppercase, no '=' padding), as authenticator apps show and take secrets.
std::string Base32Encode(std::string_view bytes);
// Decodes RFC 4648 base32. Lowercase, spaces and correct '=' padding are accepted, as users
// type secrets; InvalidArgument for any other character or an impossible length.
StatusOr<std::string> Base32Decode(std::string_view text);

// The Key URI that enrols a secret in an authenticator app (usually shown as a QR code):
// "otpauth://totp/<issuer>:<account>?secret=<base32>&issuer=<issuer>&algorithm=SHA1
// &digits=6&period=30", issuer and account percent-encoded (RFC 3986 unreserved characters
// kept). An empty issuer is left out of both places. The URI holds the secret: treat it as one.
std::string OtpauthUri(std::string_view issuer, std::string_view account,
                       std::string_view secret_bytes, const TotpParams& params = {});

// How the verifier checks a code.
struct TotpPolicy {
  // Steps accepted around the current step T: T - window_back .. T + window_forward, 0..10
  // each (RFC 6238 §5.2 recommends at most one step back for network delay).
  int window_back = 1;
  int window_forward = 1;
  // After this many consecutive failed checks (>= 1) the credential is locked for
  // `lockout_seconds` (>= 1): RFC 4226 §7.3's throttling.
  int max_failures = 5;
  int lockout_seconds = 900;
};

// The verifier's memory for one credential. The caller stores it with the credential, hands
// it to every CheckTotp and writes it back afterwards (even when the check fails: failures
// are counted in it), in one transaction, so that two concurrent checks cannot both accept.
struct TotpState {
  int64_t last_step = -1;         // the last accepted step; only later steps are accepted
  int failures = 0;               // consecutive failed checks
  int64_t locked_until_unix = 0;  // refused without looking at the code until this time
};

enum class TotpOutcome {
  kAccepted,   // the code matched an unused step in the window
  kWrongCode,  // it matched no step in the window (a failure)
  kReplayed,   // it matched a step at or before the last accepted one (a failure)
  kLockedOut,  // the credential is locked; the code was not looked at (not counted)
  kMalformed,  // not exactly `digits` ASCII digits (a failure)
};

// "accepted", "wrong code", "replayed", "locked out", "malformed".
std::string_view TotpOutcomeName(TotpOutcome outcome);

struct TotpCheck {
  TotpOutcome outcome = TotpOutcome::kWrongCode;
  // The step the code matched (accepted or replayed); -1 otherwise.
  int64_t step = -1;
  // True when this failure reached policy.max_failures and locked the credential.
  bool lockout_started = false;
};

// Checks `code` at time `now_unix` and updates `state`:
//   - while now_unix < state.locked_until_unix: kLockedOut, state unchanged, even for a
//     correct code; once that time has passed the failure count starts again from 0;
//   - a code that is not `params.digits` ASCII digits: kMalformed;
//   - a code matching a step in the window later than state.last_step: kAccepted, last_step
//     set to that step, failures reset to 0;
//   - a code matching only steps at or before state.last_step: kReplayed (a code is never
//     accepted twice, RFC 6238 §5.2);
//   - otherwise kWrongCode.
// kMalformed, kReplayed and kWrongCode add one to state.failures; the one that reaches
// policy.max_failures sets state.locked_until_unix = now_unix + policy.lockout_seconds.
// Every step of the window is computed and compared in constant time whatever matches.
// A Status error (InvalidArgument, state unchanged) is about the caller's own inputs (secret,
// params, policy, time), never about what the user typed.
StatusOr<TotpCheck> CheckTotp(std::string_view secret_bytes, std::string_view code,
                              int64_t now_unix, const TotpParams& params, const TotpPolicy& policy,
                              TotpState& state);

}  // namespace rxflow::epcs

#endif  // RXFLOW_EPCS_FACTORS_H_
