// SPDX-License-Identifier: Apache-2.0
// The two factors of 21 CFR 1311.115 (rxflow/epcs/factors.h): the RFC 4226 and RFC 6238
// vectors, a cross-check against oathtool, the verifier's window, replay and lockout rules,
// base32 and the otpauth URI, password hashing, and the two-different-kinds rule.
#include <array>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "rxflow/epcs/factors.h"

#include "testing/status.h"
#include <sys/wait.h>

namespace {

using absl::StatusCode;
using rxflow::epcs::FactorKind;
using rxflow::epcs::TotpAlgorithm;
using rxflow::epcs::TotpOutcome;
using rxflow::epcs::TotpParams;
using rxflow::epcs::TotpPolicy;
using rxflow::epcs::TotpState;

// RFC 6238 Appendix B's seeds: one ASCII pattern repeated to the hash's output length (not the
// 20-byte seed for every row: see the wrong-seed test).
const std::string kSeed20 = "12345678901234567890";
const std::string kSeed32 = "12345678901234567890123456789012";
const std::string kSeed64 = "1234567890123456789012345678901234567890123456789012345678901234";

// 2025-11-26T10:00:10Z, ten seconds into step 58805040.
constexpr int64_t kNow = 1'764'151'210;
constexpr int64_t kStep = kNow / 30;

std::string Code(const std::string& secret, int64_t unix_seconds, const TotpParams& params = {}) {
  auto code = rxflow::epcs::TotpCode(secret, unix_seconds, params);
  REQUIRE_MESSAGE(code.ok(), std::string(code.status().message()));
  return *code;
}

std::string CodeAtStep(const std::string& secret, int64_t step) { return Code(secret, step * 30); }

// A well-formed code that matches no step of the default window around `step`.
std::string WrongCode(const std::string& secret, int64_t step) {
  std::set<std::string> window;
  for (int64_t s = step - 1; s <= step + 1; ++s) window.insert(CodeAtStep(secret, s));
  std::string code = CodeAtStep(secret, step);
  while (window.count(code) != 0) {
    int v = (std::stoi(code) + 1) % 1'000'000;
    code = std::to_string(v);
    code.insert(0, 6 - code.size(), '0');
  }
  return code;
}

rxflow::epcs::TotpCheck Check(const std::string& secret, const std::string& code, int64_t now,
                              TotpState& state, const TotpPolicy& policy = {}) {
  auto check = rxflow::epcs::CheckTotp(secret, code, now, TotpParams{}, policy, state);
  REQUIRE_MESSAGE(check.ok(), std::string(check.status().message()));
  return *check;
}

std::string Hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char ch : bytes) {
    unsigned char c = static_cast<unsigned char>(ch);
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

struct RunResult {
  std::string out;  // stdout and stderr, without the trailing newline
  int status;       // the exit status; -1 when killed by a signal
};

// Runs a shell command. (A struct, not a pair: doctest's CAPTURE and *_MESSAGE capture in a
// lambda, and clang 14 cannot capture structured bindings.)
RunResult Run(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  REQUIRE_MESSAGE(pipe != nullptr, "popen failed: " << command);
  std::array<char, 256> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  int status = pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return RunResult{out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

// A password policy with the cheapest cost VerifyPassword accepts, so that the tests that are
// not about the cost do not each spend a default hash's 32 MiB and tenth of a second.
rxflow::epcs::PasswordPolicy Fast() {
  rxflow::epcs::PasswordPolicy policy;
  policy.log2_n = 10;
  return policy;
}

}  // namespace

TEST_SUITE("EPCS factors: TOTP codes") {
  TEST_CASE("every RFC 4226 Appendix D HOTP value, as TOTP at count * 30 s") {
    const char* expected[] = {"755224", "287082", "359152", "969429", "338314",
                              "254676", "287922", "162583", "399871", "520489"};
    for (int count = 0; count < 10; ++count) {
      CAPTURE(count);
      CHECK(Code(kSeed20, count * 30) == expected[count]);
      // Any second inside the step gives the same code.
      CHECK(Code(kSeed20, count * 30 + 29) == expected[count]);
    }
  }

  TEST_CASE("every RFC 6238 Appendix B value for SHA-1, SHA-256 and SHA-512, 8 digits") {
    struct Row {
      int64_t time;
      const char* sha1;
      const char* sha256;
      const char* sha512;
    };
    const Row rows[] = {
        {59, "94287082", "46119246", "90693936"},
        {1111111109, "07081804", "68084774", "25091201"},
        {1111111111, "14050471", "67062674", "99943326"},
        {1234567890, "89005924", "91819424", "93441116"},
        {2000000000, "69279037", "90698825", "38618901"},
        // Year 2603: the time is over 32 bits before it is divided into a step.
        {20000000000, "65353130", "77737706", "47863826"},
    };
    for (const Row& row : rows) {
      CAPTURE(row.time);
      CHECK(Code(kSeed20, row.time, {TotpAlgorithm::kSha1, 8, 30}) == row.sha1);
      CHECK(Code(kSeed32, row.time, {TotpAlgorithm::kSha256, 8, 30}) == row.sha256);
      CHECK(Code(kSeed64, row.time, {TotpAlgorithm::kSha512, 8, 30}) == row.sha512);
    }
  }

  TEST_CASE("a code keeps its leading zero") {
    std::string code = Code(kSeed20, 1111111109, {TotpAlgorithm::kSha1, 8, 30});
    CHECK(code == "07081804");
    CHECK(code.size() == 8);
  }

  TEST_CASE("the 20-byte seed with SHA-256 gives another code than Appendix B's row") {
    // The RFC's prose names only the 20-byte seed; its SHA-256 rows use the 32-byte one.
    CHECK(Code(kSeed20, 59, {TotpAlgorithm::kSha256, 8, 30}) == "32247374");
    CHECK(Code(kSeed32, 59, {TotpAlgorithm::kSha256, 8, 30}) == "46119246");
  }

  TEST_CASE("TOTP codes agree with oathtool for each algorithm, digit count and time") {
    // scripts/install-deps.sh installs oathtool: its absence is a failure, not a skip.
    RunResult version = Run("oathtool --version");
    REQUIRE_MESSAGE(version.status == 0,
                    "oathtool is not runnable (scripts/install-deps.sh "
                    "installs it): "
                        << version.out);
    const std::string secret(
        "\x00\xff\x10\x80\x7f\x01\x02\x03\xfe\xed\xfa\xce\xca\xfe\xba\xbe"
        "\x55\xaa\x5a\xa5\x99\x66\x33\xcc",
        24);
    struct Alg {
      TotpAlgorithm algorithm;
      const char* mode;
    };
    for (Alg alg : {Alg{TotpAlgorithm::kSha1, "sha1"}, Alg{TotpAlgorithm::kSha256, "sha256"},
                    Alg{TotpAlgorithm::kSha512, "sha512"}}) {
      for (int digits : {6, 8}) {
        for (int64_t t :
             {int64_t{0}, int64_t{59}, int64_t{1111111109}, kNow, int64_t{20000000000}}) {
          std::string command = "oathtool --totp=" + std::string(alg.mode) + " -d " +
                                std::to_string(digits) + " --now '@" + std::to_string(t) + "' " +
                                Hex(secret);
          CAPTURE(command);
          RunResult oathtool = Run(command);
          REQUIRE(oathtool.status == 0);
          CHECK(Code(secret, t, {alg.algorithm, digits, 30}) == oathtool.out);
        }
      }
    }
    // The same through base32, as an authenticator app is given the secret.
    std::string command = "oathtool --totp -b --now '@" + std::to_string(kNow) + "' " +
                          rxflow::epcs::Base32Encode(secret);
    CAPTURE(command);
    RunResult oathtool = Run(command);
    REQUIRE(oathtool.status == 0);
    CHECK(Code(secret, kNow) == oathtool.out);
  }

  TEST_CASE("a secret under 128 bits, bad parameters and a negative time are refused") {
    const std::string short_secret(15, 'k');
    auto code = rxflow::epcs::TotpCode(short_secret, kNow);
    CHECK(code.status().code() == StatusCode::kInvalidArgument);
    CHECK(std::string(code.status().message()).find("totp secret") != std::string::npos);
    CHECK(rxflow::epcs::TotpCode(std::string(16, 'k'), kNow).ok());
    CHECK(rxflow::epcs::TotpCode(kSeed20, kNow, {TotpAlgorithm::kSha1, 5, 30}).status().code() ==
          StatusCode::kInvalidArgument);
    CHECK(rxflow::epcs::TotpCode(kSeed20, kNow, {TotpAlgorithm::kSha1, 9, 30}).status().code() ==
          StatusCode::kInvalidArgument);
    CHECK(rxflow::epcs::TotpCode(kSeed20, kNow, {TotpAlgorithm::kSha1, 6, 0}).status().code() ==
          StatusCode::kInvalidArgument);
    CHECK(rxflow::epcs::TotpCode(kSeed20, -1).status().code() == StatusCode::kInvalidArgument);
    CHECK(Code(kSeed20, kNow, {TotpAlgorithm::kSha1, 7, 30}).size() == 7);
  }

  TEST_CASE("new secrets are as long as the HMAC output and differ") {
    auto a = rxflow::epcs::NewTotpSecret();
    auto b = rxflow::epcs::NewTotpSecret();
    RXFLOW_REQUIRE_OK(a);
    RXFLOW_REQUIRE_OK(b);
    CHECK(a->size() == 20);
    CHECK(*a != *b);
    CHECK(rxflow::epcs::NewTotpSecret(TotpAlgorithm::kSha256)->size() == 32);
    CHECK(rxflow::epcs::NewTotpSecret(TotpAlgorithm::kSha512)->size() == 64);
  }
}

TEST_SUITE("EPCS factors: TOTP verifier") {
  TEST_CASE("the current step and one step either side are accepted, two steps are not") {
    for (int64_t offset : {-1, 0, 1}) {
      CAPTURE(offset);
      TotpState state;
      auto check = Check(kSeed20, CodeAtStep(kSeed20, kStep + offset), kNow, state);
      CHECK(check.outcome == TotpOutcome::kAccepted);
      CHECK(check.step == kStep + offset);
      CHECK(state.last_step == kStep + offset);
      CHECK(state.failures == 0);
    }
    for (int64_t offset : {-2, 2}) {
      CAPTURE(offset);
      TotpState state;
      auto check = Check(kSeed20, CodeAtStep(kSeed20, kStep + offset), kNow, state);
      CHECK(check.outcome == TotpOutcome::kWrongCode);
      CHECK(check.step == -1);
      CHECK(state.last_step == -1);
      CHECK(state.failures == 1);
    }
  }

  TEST_CASE("a wider policy window accepts two steps back") {
    TotpPolicy policy;
    policy.window_back = 2;
    TotpState state;
    CHECK(Check(kSeed20, CodeAtStep(kSeed20, kStep - 2), kNow, state, policy).outcome ==
          TotpOutcome::kAccepted);
  }

  TEST_CASE("a code is accepted once: its second use is refused as a replay and counted") {
    TotpState state;
    std::string code = CodeAtStep(kSeed20, kStep);
    CHECK(Check(kSeed20, code, kNow, state).outcome == TotpOutcome::kAccepted);
    auto again = Check(kSeed20, code, kNow + 5, state);
    CHECK(again.outcome == TotpOutcome::kReplayed);
    CHECK(again.step == kStep);
    CHECK(state.failures == 1);
    // An earlier step's code, still inside the window, is a replay too: only later steps pass.
    CHECK(Check(kSeed20, CodeAtStep(kSeed20, kStep - 1), kNow, state).outcome ==
          TotpOutcome::kReplayed);
    // The next step's code is new.
    auto next = Check(kSeed20, CodeAtStep(kSeed20, kStep + 1), kNow + 30, state);
    CHECK(next.outcome == TotpOutcome::kAccepted);
    CHECK(state.failures == 0);
    CHECK(state.last_step == kStep + 1);
  }

  TEST_CASE("five consecutive failures lock the credential for 900 s, then it opens again") {
    TotpState state;
    std::string wrong = WrongCode(kSeed20, kStep);
    for (int i = 1; i <= 4; ++i) {
      auto check = Check(kSeed20, wrong, kNow, state);
      CHECK(check.outcome == TotpOutcome::kWrongCode);
      CHECK_FALSE(check.lockout_started);
      CHECK(state.failures == i);
      CHECK(state.locked_until_unix == 0);
    }
    auto fifth = Check(kSeed20, wrong, kNow, state);
    CHECK(fifth.outcome == TotpOutcome::kWrongCode);
    CHECK(fifth.lockout_started);
    CHECK(state.locked_until_unix == kNow + 900);

    // Locked: even the right code is refused, without being looked at or counted.
    const int64_t last_locked = kNow + 899;
    TotpState before = state;
    auto locked = Check(kSeed20, Code(kSeed20, last_locked), last_locked, state);
    CHECK(locked.outcome == TotpOutcome::kLockedOut);
    CHECK(locked.step == -1);
    CHECK(state.failures == before.failures);
    CHECK(state.locked_until_unix == before.locked_until_unix);
    CHECK(state.last_step == before.last_step);

    // At the lockout's end the right code passes and the count starts again.
    const int64_t reopened = kNow + 900;
    auto after = Check(kSeed20, Code(kSeed20, reopened), reopened, state);
    CHECK(after.outcome == TotpOutcome::kAccepted);
    CHECK(state.failures == 0);
    CHECK(state.locked_until_unix == 0);
  }

  TEST_CASE("after a lockout ends a single failure does not lock again") {
    TotpState state;
    state.failures = 5;
    state.locked_until_unix = kNow - 1;
    auto check = Check(kSeed20, WrongCode(kSeed20, kStep), kNow, state);
    CHECK(check.outcome == TotpOutcome::kWrongCode);
    CHECK_FALSE(check.lockout_started);
    CHECK(state.failures == 1);
    CHECK(state.locked_until_unix == 0);
  }

  TEST_CASE("a success resets the failure count") {
    TotpState state;
    std::string wrong = WrongCode(kSeed20, kStep);
    for (int i = 0; i < 4; ++i) Check(kSeed20, wrong, kNow, state);
    CHECK(state.failures == 4);
    CHECK(Check(kSeed20, CodeAtStep(kSeed20, kStep), kNow, state).outcome ==
          TotpOutcome::kAccepted);
    CHECK(state.failures == 0);
  }

  TEST_CASE("a code that is not exactly six ASCII digits is malformed and counted") {
    std::string good = CodeAtStep(kSeed20, kStep);
    std::string with_nul = good;
    with_nul[3] = '\0';
    for (std::string code : {std::string(""), good.substr(0, 5), good + "0", " " + good,
                             good.substr(0, 5) + "a", std::string("12345\xd9"), with_nul}) {
      CAPTURE(code);
      TotpState fresh;
      CHECK(Check(kSeed20, code, kNow, fresh).outcome == TotpOutcome::kMalformed);
      CHECK(fresh.failures == 1);
    }
    // Five malformed attempts lock like five wrong ones.
    TotpState state;
    for (int i = 0; i < 5; ++i) Check(kSeed20, "x", kNow, state);
    CHECK(state.locked_until_unix == kNow + 900);
  }

  TEST_CASE("the verifier refuses a short secret and a bad policy without touching the state") {
    TotpState state;
    state.failures = 2;
    auto check = rxflow::epcs::CheckTotp(std::string(15, 'k'), "123456", kNow, TotpParams{},
                                         TotpPolicy{}, state);
    CHECK(check.status().code() == StatusCode::kInvalidArgument);
    CHECK(state.failures == 2);
    TotpPolicy no_lockout;
    no_lockout.lockout_seconds = 0;
    CHECK(rxflow::epcs::CheckTotp(kSeed20, "123456", kNow, TotpParams{}, no_lockout, state)
              .status()
              .code() == StatusCode::kInvalidArgument);
    TotpPolicy huge_window;
    huge_window.window_back = 1000;
    CHECK(rxflow::epcs::CheckTotp(kSeed20, "123456", kNow, TotpParams{}, huge_window, state)
              .status()
              .code() == StatusCode::kInvalidArgument);
    CHECK(state.failures == 2);
  }

  TEST_CASE("the verifier checks 8-digit SHA-512 codes too") {
    TotpParams params{TotpAlgorithm::kSha512, 8, 30};
    TotpState state;
    auto check =
        rxflow::epcs::CheckTotp(kSeed64, "47863826", 20000000000, params, TotpPolicy{}, state);
    RXFLOW_REQUIRE_OK(check);
    CHECK(check->outcome == TotpOutcome::kAccepted);
    CHECK(state.last_step == 20000000000 / 30);
  }
}

TEST_SUITE("EPCS factors: base32 and otpauth") {
  TEST_CASE("base32 follows RFC 4648's test vectors, without padding") {
    struct Vector {
      const char* plain;
      const char* encoded;
    };
    const Vector vectors[] = {
        {"", ""},
        {"f", "MY"},
        {"fo", "MZXQ"},
        {"foo", "MZXW6"},
        {"foob", "MZXW6YQ"},
        {"fooba", "MZXW6YTB"},
        {"foobar", "MZXW6YTBOI"},
    };
    for (const Vector& v : vectors) {
      CAPTURE(v.plain);
      CHECK(rxflow::epcs::Base32Encode(v.plain) == v.encoded);
      auto decoded = rxflow::epcs::Base32Decode(v.encoded);
      RXFLOW_REQUIRE_OK(decoded);
      CHECK(*decoded == v.plain);
    }
    CHECK(rxflow::epcs::Base32Encode(kSeed20) == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
  }

  TEST_CASE("base32 decoding takes what users type and refuses the rest") {
    CHECK(*rxflow::epcs::Base32Decode("MZXW6YTBOI======") == "foobar");
    CHECK(*rxflow::epcs::Base32Decode("mzxw6ytboi") == "foobar");
    CHECK(*rxflow::epcs::Base32Decode("MZXW 6YTB OI") == "foobar");
    for (const char* bad : {"MZXW6YTBO", "M", "MZ1W6YTBOI", "MZXW-6YTBOI", "MZXW6YTBOI="}) {
      CAPTURE(bad);
      CHECK(rxflow::epcs::Base32Decode(bad).status().code() == StatusCode::kInvalidArgument);
    }
  }

  TEST_CASE("base32 round-trips every byte value and every length") {
    std::string all;
    for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
    for (size_t len = 0; len <= all.size(); len += 7) {
      std::string bytes = all.substr(all.size() - len);
      CAPTURE(len);
      auto decoded = rxflow::epcs::Base32Decode(rxflow::epcs::Base32Encode(bytes));
      RXFLOW_REQUIRE_OK(decoded);
      CHECK(*decoded == bytes);
    }
  }

  TEST_CASE("the otpauth URI names issuer and account, percent-encoded, and every parameter") {
    CHECK(rxflow::epcs::OtpauthUri("RxFlow Clinic", "dr.jones@example.org", kSeed20) ==
          "otpauth://totp/RxFlow%20Clinic:dr.jones%40example.org"
          "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=RxFlow%20Clinic"
          "&algorithm=SHA1&digits=6&period=30");
    CHECK(rxflow::epcs::OtpauthUri("A:B&C", "x/y", kSeed20, {TotpAlgorithm::kSha256, 8, 60}) ==
          "otpauth://totp/A%3AB%26C:x%2Fy?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
          "&issuer=A%3AB%26C&algorithm=SHA256&digits=8&period=60");
    CHECK(rxflow::epcs::OtpauthUri("", "jones", kSeed20, {TotpAlgorithm::kSha512, 6, 30}) ==
          "otpauth://totp/jones?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
          "&algorithm=SHA512&digits=6&period=30");
  }
}

TEST_SUITE("EPCS factors: passwords") {
  TEST_CASE("a password hashed with the default cost verifies, in the documented format") {
    auto encoded = rxflow::epcs::HashPassword("correct horse battery");
    RXFLOW_REQUIRE_OK(encoded);
    const std::string prefix = "$scrypt$ln=15,r=8,p=1$";
    REQUIRE(encoded->substr(0, prefix.size()) == prefix);
    // 16-byte salt and 32-byte key in unpadded base64: 22 and 43 characters.
    std::string rest = encoded->substr(prefix.size());
    size_t dollar = rest.find('$');
    REQUIRE(dollar != std::string::npos);
    CHECK(dollar == 22);
    CHECK(rest.size() - dollar - 1 == 43);
    CHECK(rest.find('=') == std::string::npos);
    CHECK(rxflow::epcs::VerifyPassword("correct horse battery", *encoded).ok());
  }

  TEST_CASE("the RFC 7914 §12 scrypt vector, written as a PHC string, verifies") {
    // P = "pleaseletmein", S = "SodiumChloride", N = 16384, r = 8, p = 1, dkLen = 64: the key
    // 7023bdcb...45575887 in base64. Pins the KDF and the encoding to an outside answer.
    const std::string rfc7914 =
        "$scrypt$ln=14,r=8,p=1$U29kaXVtQ2hsb3JpZGU$cCO9yzr9c0hGHAbNgf046/2o+7qQT44+qbVD9lRdofLVQyl"
        "VYT8Pz2LUlwUkKpr55h6F3A1lHkDfzwF7RVdYhw";
    CHECK(rxflow::epcs::VerifyPassword("pleaseletmein", rfc7914).ok());
    CHECK(rxflow::epcs::VerifyPassword("pleaseletmeout", rfc7914).code() ==
          StatusCode::kUnauthenticated);
  }

  TEST_CASE("a wrong password is Unauthenticated and not echoed") {
    auto encoded = rxflow::epcs::HashPassword("correct horse battery", Fast());
    RXFLOW_REQUIRE_OK(encoded);
    for (const char* wrong : {"correct horse batterY", "correct horse battery ", "", "x"}) {
      CAPTURE(wrong);
      rxflow::Status s = rxflow::epcs::VerifyPassword(wrong, *encoded);
      CHECK(s.code() == StatusCode::kUnauthenticated);
      if (*wrong != '\0') {
        CHECK(std::string(s.message()).find(wrong) == std::string::npos);
      }
    }
  }

  TEST_CASE("two hashes of one password differ by their salt and both verify") {
    auto a = rxflow::epcs::HashPassword("correct horse battery", Fast());
    auto b = rxflow::epcs::HashPassword("correct horse battery", Fast());
    RXFLOW_REQUIRE_OK(a);
    RXFLOW_REQUIRE_OK(b);
    CHECK(*a != *b);
    CHECK(rxflow::epcs::VerifyPassword("correct horse battery", *a).ok());
    CHECK(rxflow::epcs::VerifyPassword("correct horse battery", *b).ok());
  }

  TEST_CASE("a tampered hash is Unauthenticated, a malformed one InvalidArgument") {
    const std::string password = "correct horse battery";
    auto encoded = rxflow::epcs::HashPassword(password, Fast());
    RXFLOW_REQUIRE_OK(encoded);
    const std::string& e = *encoded;
    const size_t last_dollar = e.rfind('$');

    // Still a well-formed hash, but of something else: the key's first character changed.
    std::string other_key = e;
    other_key[last_dollar + 1] = other_key[last_dollar + 1] == 'A' ? 'B' : 'A';
    CHECK(rxflow::epcs::VerifyPassword(password, other_key).code() == StatusCode::kUnauthenticated);

    std::vector<std::string> malformed = {
        "",
        "correct horse battery",
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        e.substr(0, last_dollar),                            // no hash
        e.substr(0, last_dollar + 1),                        // empty hash
        "$scrypt$ln=99" + e.substr(e.find(',')),             // cost out of range
        "$scrypt$r=8,ln=10,p=1" + e.substr(e.find("$", 9)),  // parameters out of order
        "$scrypt$ln=10,r=8,p=1,x=2" + e.substr(e.find("$", 9)),
        "$scrypt$ln=1O,r=8,p=1" + e.substr(e.find("$", 9)),
        e + "=",  // padding
        e.substr(0, last_dollar + 1) + "!" + e.substr(last_dollar + 2),
        e.substr(0, e.size() - 1) + "B",        // bits past the 32nd byte set
        e.substr(0, last_dollar + 1) + "AAAA",  // a 3-byte hash
    };
    for (const std::string& bad : malformed) {
      CAPTURE(bad);
      CHECK(rxflow::epcs::VerifyPassword(password, bad).code() == StatusCode::kInvalidArgument);
    }
  }

  TEST_CASE("a password shorter than the policy's minimum is refused, counted in characters") {
    rxflow::Status s = rxflow::epcs::HashPassword("eleven char").status();
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(std::string(s.message()).find("12 characters") != std::string::npos);
    CHECK(std::string(s.message()).find("eleven") == std::string::npos);
    CHECK(rxflow::epcs::HashPassword("twelve chars", Fast()).ok());
    // Eleven two-byte characters are 22 bytes but eleven characters.
    std::string accents;
    for (int i = 0; i < 11; ++i) accents += "\xc3\xa9";
    CHECK(rxflow::epcs::HashPassword(accents, Fast()).status().code() ==
          StatusCode::kInvalidArgument);
    CHECK(rxflow::epcs::VerifyPassword(accents + "\xc3\xa9",
                                       *rxflow::epcs::HashPassword(accents + "\xc3\xa9", Fast()))
              .ok());
    rxflow::epcs::PasswordPolicy relaxed = Fast();
    relaxed.min_length = 4;
    CHECK(rxflow::epcs::HashPassword("four", relaxed).ok());
  }

  TEST_CASE("a policy whose cost VerifyPassword would refuse is refused when hashing") {
    rxflow::epcs::PasswordPolicy cheap = Fast();
    cheap.log2_n = 9;
    CHECK(rxflow::epcs::HashPassword("correct horse battery", cheap).status().code() ==
          StatusCode::kInvalidArgument);
    rxflow::epcs::PasswordPolicy huge = Fast();
    huge.log2_n = 20;  // 1 GiB with r = 8
    CHECK(rxflow::epcs::HashPassword("correct horse battery", huge).status().code() ==
          StatusCode::kInvalidArgument);
  }
}

TEST_SUITE("EPCS factors: two factors") {
  TEST_CASE("knowledge plus possession is two factors") {
    const FactorKind kinds[] = {FactorKind::kKnowledge, FactorKind::kPossession};
    CHECK(rxflow::epcs::CheckTwoFactors(kinds).ok());
    const FactorKind three[] = {FactorKind::kInherence, FactorKind::kKnowledge,
                                FactorKind::kKnowledge};
    CHECK(rxflow::epcs::CheckTwoFactors(three).ok());
  }

  TEST_CASE("a password plus a security question is one factor and is refused") {
    const FactorKind kinds[] = {FactorKind::kKnowledge, FactorKind::kKnowledge};
    rxflow::Status s = rxflow::epcs::CheckTwoFactors(kinds);
    CHECK(s.code() == StatusCode::kPermissionDenied);
    CHECK(std::string(s.message()).find("only knowledge") != std::string::npos);
    CHECK(std::string(s.message()).find("count as one") != std::string::npos);
  }

  TEST_CASE("one factor, or none, is refused") {
    const FactorKind one[] = {FactorKind::kPossession};
    rxflow::Status s = rxflow::epcs::CheckTwoFactors(one);
    CHECK(s.code() == StatusCode::kPermissionDenied);
    CHECK(std::string(s.message()).find("only possession") != std::string::npos);
    rxflow::Status none = rxflow::epcs::CheckTwoFactors({});
    CHECK(none.code() == StatusCode::kPermissionDenied);
    CHECK(std::string(none.message()).find("none") != std::string::npos);
  }

  TEST_CASE("factor kinds and verifier outcomes have names for the audit trail") {
    CHECK(rxflow::epcs::FactorKindName(FactorKind::kKnowledge) == "knowledge");
    CHECK(rxflow::epcs::FactorKindName(FactorKind::kPossession) == "possession");
    CHECK(rxflow::epcs::FactorKindName(FactorKind::kInherence) == "inherence");
    CHECK(rxflow::epcs::TotpOutcomeName(TotpOutcome::kReplayed) == "replayed");
    CHECK(rxflow::epcs::TotpOutcomeName(TotpOutcome::kLockedOut) == "locked out");
  }
}
