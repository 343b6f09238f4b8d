// SPDX-License-Identifier: Apache-2.0
// API clients and keys (rxflow/auth/clients.h): the key format, the strength rules for keys
// chosen outside RxFlow, Authenticate's single answer for every refusal, the clients file (its
// paths in errors, its round trip, its mode on disk), rotation and revocation.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <openssl/err.h>

#include "rxflow/auth/clients.h"
#include "rxflow/clock.h"
#include "rxflow/internal/crypto.h"

#include "testing/files.h"
#include "testing/status.h"
#include <sys/stat.h>
#include <unistd.h>

namespace {

using absl::StatusCode;
using rxflow::auth::ApiKey;
using rxflow::auth::CheckKeyStrength;
using rxflow::auth::Client;
using rxflow::auth::ClientRegistry;
using rxflow::auth::GeneratedKey;
using rxflow::auth::GenerateKey;
using rxflow::auth::KeyIdOf;
using rxflow::auth::Principal;
using rxflow::auth::Role;

constexpr int64_t kNow = 1'764'151'200'000'000;  // 2025-11-26T10:00:00Z
constexpr int64_t kDay = 86'400'000'000;
constexpr char kRefused[] = "unknown or expired API key";

std::string Message(const rxflow::Status& s) { return std::string(s.message()); }

bool IsBase64Url(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

Client Prescriber(const std::string& id, const std::string& tenant = "north") {
  return Client{.id = id,
                .role = Role::kPrescriber,
                .tenant = tenant,
                .ncpdp_ids = {},
                .keys = {},
                .certificates = {}};
}

Client Pharmacy(const std::string& id, std::vector<std::string> ncpdp_ids) {
  return Client{.id = id,
                .role = Role::kPharmacy,
                .tenant = "",
                .ncpdp_ids = std::move(ncpdp_ids),
                .keys = {},
                .certificates = {}};
}

// A registry with one prescriber ("ehr-north", tenant "north") and one key for it.
struct OneKey {
  ClientRegistry registry;
  std::string key;
  std::string key_id;

  explicit OneKey(int64_t expires_at = 0) {
    RXFLOW_REQUIRE_OK(registry.Add(Prescriber("ehr-north")));
    auto g = registry.AddKey("ehr-north", kNow, expires_at);
    RXFLOW_REQUIRE_OK(g);
    key = g->key;
    key_id = g->record.id;
  }
};

void CheckRefused(const ClientRegistry& registry, const std::string& key, int64_t now) {
  auto p = registry.Authenticate(key, now);
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().code() == StatusCode::kUnauthenticated);
  CHECK(Message(p.status()) == kRefused);
}

// The error of FromJson(json), which must fail with InvalidArgument.
std::string FromJsonError(const std::string& json) {
  auto r = ClientRegistry::FromJson(json);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kInvalidArgument);
  return Message(r.status());
}

const std::string kHash(64, 'a');

std::filesystem::path TempDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("rxflow-auth-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

mode_t Mode(const std::filesystem::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

}  // namespace

TEST_SUITE("Auth keys") {
  TEST_CASE("a generated key is rxf_, a 12-hex id, _ and 43 base64url characters") {
    GeneratedKey g = GenerateKey(kNow, kNow + kDay);
    const std::string& k = g.key;
    REQUIRE(k.size() == 4 + 12 + 1 + 43);
    CHECK(k.substr(0, 4) == "rxf_");
    for (size_t i = 4; i < 16; ++i) CHECK(IsLowerHex(k[i]));
    CHECK(k[16] == '_');
    for (size_t i = 17; i < k.size(); ++i) CHECK(IsBase64Url(k[i]));
    CHECK(g.record.id == k.substr(4, 12));
    CHECK(KeyIdOf(k) == g.record.id);
    CHECK(g.record.sha256_hex == rxflow::internal::Sha256Hex(k));
    CHECK(g.record.created_at == kNow);
    CHECK(g.record.expires_at == kNow + kDay);
    // Strong by the rules for keys chosen outside RxFlow too.
    CHECK(CheckKeyStrength(k).ok());
  }

  TEST_CASE("generated keys and their ids are unique") {
    std::set<std::string> keys, ids;
    for (int i = 0; i < 200; ++i) {
      GeneratedKey g = GenerateKey(kNow);
      keys.insert(g.key);
      ids.insert(g.record.id);
    }
    CHECK(keys.size() == 200);
    CHECK(ids.size() == 200);
  }

  TEST_CASE("the key id of a key chosen outside RxFlow is h and 11 hex digits of its SHA-256") {
    const std::string key = "0123456789abcdef0123456789abcdef";
    CHECK(KeyIdOf(key) == "h" + rxflow::internal::Sha256Hex(key).substr(0, 11));
    // A key that only looks like the prefix is hashed as well.
    const std::string odd = "rxf_0123456789AB_xxxxxxxxxxxxxxxxxxxxxxxxx";
    CHECK(KeyIdOf(odd).front() == 'h');
  }

  TEST_CASE("CheckKeyStrength refuses weak keys without ever quoting them") {
    const std::string percent = "Zq8vX2mN4pL7rT1wY6bC9dF3gH5jK0s%A2";
    const std::string spaced = "Zq8vX2mN4pL7rT1wY6bC 9dF3gH5jK0sQA2";
    const std::string control = "Zq8vX2mN4pL7rT1wY6bC\t9dF3gH5jK0sQA2";
    const std::string digits =
        std::string("0123456789012345678901234567890123456789").substr(0, 38);
    struct Case {
      std::string key;
      std::string rule;
    };
    for (const Case& c : std::vector<Case>{
             {"Q7", "at least 32"},
             {"Zq8vX2mN4pL7rT1wY6bC9dF3gH5jK0s", "at least 32"},  // 31 characters
             {std::string(64, 'a'), "distinct characters"},
             {std::string(513, 'x'), "at most 512"},
             {percent, "'%'"},
             {spaced, "a space, a control character"},
             {control, "a space, a control character"},
             {digits, "estimated entropy is 126 bits"},
         }) {
      CAPTURE(c.key);
      rxflow::Status s = CheckKeyStrength(c.key);
      REQUIRE_FALSE(s.ok());
      CHECK(s.code() == StatusCode::kInvalidArgument);
      CHECK(Message(s).find(c.rule) != std::string::npos);
      CHECK(Message(s).find(c.key) == std::string::npos);
      if (c.key.size() >= 8) {
        CHECK(Message(s).find(c.key.substr(0, 8)) == std::string::npos);
      }
    }
  }

  TEST_CASE("CheckKeyStrength accepts random keys of 128 bits and more") {
    // The secret part of a generated key: 43 base64url characters, 256 random bits.
    const std::string base64url = GenerateKey(kNow).key.substr(17);
    REQUIRE(base64url.size() == 43);
    CHECK(CheckKeyStrength(base64url).ok());
    // 32 lowercase hex digits (rxflow serve's api.key): 165 bits by the estimate. A fixed
    // one: about 1 random key in 10 000 has fewer than 10 distinct digits.
    CHECK(CheckKeyStrength("3f9a0c61e2b74d58a09e7c1b6d24f853").ok());
    // 64 hex digits of a random 256-bit key: fewer than 10 distinct is practically impossible.
    CHECK(
        CheckKeyStrength(rxflow::internal::RandomHex128() + rxflow::internal::RandomHex128()).ok());
  }
}

TEST_SUITE("Auth clients") {
  TEST_CASE("Authenticate gives the principal of a valid key") {
    OneKey f;
    auto p = f.registry.Authenticate(f.key, kNow);
    RXFLOW_REQUIRE_OK(p);
    CHECK(p->client_id == "ehr-north");
    CHECK(p->role == Role::kPrescriber);
    CHECK(p->tenant == "north");
    CHECK(p->ncpdp_ids.empty());
    CHECK(p->key_id == f.key_id);
    CHECK(p->SeesTenant("north"));
    CHECK_FALSE(p->SeesTenant("south"));
    CHECK_FALSE(p->SpeaksFor("4712345"));
  }

  TEST_CASE("a wrong secret, an unknown key id and an expired key get the same answer") {
    OneKey f(kNow + kDay);
    std::string wrong = f.key;
    wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
    CheckRefused(f.registry, wrong, kNow);
    CheckRefused(f.registry, GenerateKey(kNow).key, kNow);               // unknown rxf_ id
    CheckRefused(f.registry, "0123456789abcdef0123456789abcdef", kNow);  // unknown h id
    CheckRefused(f.registry, "", kNow);
    CheckRefused(f.registry, "rxf_" + f.key_id + "_", kNow);  // the id without a secret
    // Valid until the instant it expires.
    CHECK(f.registry.Authenticate(f.key, kNow + kDay - 1).ok());
    CheckRefused(f.registry, f.key, kNow + kDay);
    CheckRefused(f.registry, f.key, kNow + 2 * kDay);
  }

  TEST_CASE("a key is compared as sent: a percent-encoded or padded spelling is refused") {
    OneKey f;
    RXFLOW_REQUIRE_OK(f.registry.Authenticate(f.key, kNow));
    // "%31"-style: one character of the secret, and one of the key id, percent-encoded.
    for (size_t at : {size_t{20}, size_t{5}}) {
      CAPTURE(at);
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", static_cast<unsigned char>(f.key[at]));
      std::string encoded = f.key.substr(0, at) + hex + f.key.substr(at + 1);
      CheckRefused(f.registry, encoded, kNow);
    }
    CheckRefused(f.registry, f.key + "\n", kNow);
    CheckRefused(f.registry, " " + f.key, kNow);
    CheckRefused(f.registry, f.key.substr(0, f.key.size() - 1), kNow);
  }

  TEST_CASE("roles and names") {
    for (Role r : {Role::kPrescriber, Role::kPharmacy, Role::kOperator, Role::kMetrics}) {
      auto back = rxflow::auth::ParseRole(rxflow::auth::RoleName(r));
      RXFLOW_REQUIRE_OK(back);
      CHECK(*back == r);
    }
    CHECK(rxflow::auth::RoleName(Role::kMetrics) == "metrics");
    auto bad = rxflow::auth::ParseRole("admin");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().code() == StatusCode::kInvalidArgument);
    CHECK(Message(bad.status()).find("prescriber, pharmacy, operator, metrics") !=
          std::string::npos);
    CHECK_FALSE(rxflow::auth::ParseRole("Prescriber").ok());
  }

  TEST_CASE("a pharmacy speaks for its NCPDP ids, a hub for every one, tenants are scoped") {
    Principal pharmacy{.client_id = "p",
                       .role = Role::kPharmacy,
                       .tenant = "",
                       .ncpdp_ids = {"4712345", "4712346"},
                       .key_id = "0a1b2c3d4e5f"};
    CHECK(pharmacy.SpeaksFor("4712345"));
    CHECK(pharmacy.SpeaksFor("4712346"));
    CHECK_FALSE(pharmacy.SpeaksFor("4712347"));
    CHECK_FALSE(pharmacy.SpeaksFor("*"));
    CHECK_FALSE(pharmacy.SeesTenant(""));
    CHECK_FALSE(pharmacy.SeesTenant("north"));
    Principal hub = pharmacy;
    hub.ncpdp_ids = {"*"};
    CHECK(hub.SpeaksFor("9999999"));
    Principal op{.client_id = "ops",
                 .role = Role::kOperator,
                 .tenant = "*",
                 .ncpdp_ids = {},
                 .key_id = "0a1b2c3d4e5f"};
    CHECK(op.SeesTenant("north"));
    CHECK(op.SeesTenant("south"));
    CHECK(op.SeesTenant(""));
    CHECK_FALSE(op.SpeaksFor("4712345"));  // only pharmacies speak for pharmacies
    op.tenant = "north";
    CHECK(op.SeesTenant("north"));
    CHECK_FALSE(op.SeesTenant("south"));
  }

  TEST_CASE("the documented clients file reads") {
    const std::string json = R"({"clients":[{"id":"ehr-north","role":"prescriber","tenant":"north",
      "keys":[{"id":"0a1b2c3d4e5f","sha256":")" +
                             kHash + R"(","created":"2026-11-30T12:00:00Z",
               "expires":"2027-11-30T12:00:00Z"}]},
      {"id":"pharm-1","role":"pharmacy","ncpdp_ids":["4712345"]},
      {"id":"sim","role":"pharmacy","ncpdp_ids":["*"],"keys":[]},
      {"id":"ops","role":"operator","tenant":"*"},
      {"id":"prom","role":"metrics"}]})";
    auto r = ClientRegistry::FromJson(json);
    REQUIRE_MESSAGE(r.ok(), Message(r.status()));
    REQUIRE(r->clients().size() == 5);
    const Client* c = r->Find("ehr-north");
    REQUIRE(c != nullptr);
    CHECK(c->tenant == "north");
    REQUIRE(c->keys.size() == 1);
    CHECK(c->keys[0].id == "0a1b2c3d4e5f");
    CHECK(c->keys[0].sha256_hex == kHash);
    CHECK(c->keys[0].created_at == 1'796'040'000'000'000);
    CHECK(c->keys[0].expires_at == *rxflow::ParseRfc3339("2027-11-30T12:00:00Z"));
    CHECK(r->Find("pharm-1")->ncpdp_ids == std::vector<std::string>{"4712345"});
    CHECK(r->Find("ops")->role == Role::kOperator);
    CHECK(r->Find("nobody") == nullptr);
  }

  TEST_CASE("FromJson errors name the JSON path") {
    // A key object with the given members after "id" (sha256 and created unless given).
    auto key = [](const std::string& id, const std::string& rest = "") {
      return R"({"id":")" + id + "\"," +
             (rest.empty() ? R"("sha256":")" + kHash + R"(","created":"2026-11-30T12:00:00Z")"
                           : rest) +
             "}";
    };
    // One prescriber "a" with the given keys.
    auto with_keys = [](const std::string& keys) {
      return R"({"clients":[{"id":"a","role":"prescriber","tenant":"n","keys":[)" + keys + "]}]}";
    };
    const std::string hash = R"("sha256":")" + kHash + "\",";
    CHECK(FromJsonError(R"({"clients":[{"id":"a","role":"prescriber"}]})") ==
          "$.clients[0].tenant: required for the prescriber role");
    CHECK(FromJsonError(R"({"clients":[{"id":"a","role":"prescriber","tenant":"n"},
                                        {"id":"p","role":"pharmacy","ncpdp_ids":["471234"]}]})")
              .starts_with("$.clients[1].ncpdp_ids[0]: must be exactly 7 digits"));
    CHECK(FromJsonError(R"({"clients":[{"id":"p","role":"pharmacy","ncpdp_ids":["4712345","*"]}]})")
              .starts_with("$.clients[0].ncpdp_ids[1]: \"*\" must be the only entry"));
    CHECK(FromJsonError(R"({"clients":[{"id":"a","role":"prescriber","tenant":"n"},
             {"id":"p","role":"pharmacy","tenant":"n","ncpdp_ids":["4712345"]}]})") ==
          "$.clients[1].tenant: not allowed for the pharmacy role");
    CHECK(FromJsonError(R"({"clients":[{"id":"m","role":"metrics","ncpdp_ids":["4712345"]}]})")
              .starts_with("$.clients[0].ncpdp_ids: not allowed for the metrics role"));
    CHECK(FromJsonError(R"({"clients":[{"id":"o","role":"operator"}]})")
              .starts_with("$.clients[0].tenant: required for the operator role"));
    CHECK(FromJsonError(R"({"clients":[{"id":"a","role":"prescriber","tenant":"n","keys":[)" +
                        key("0a1b2c3d4e5f") +
                        R"(]},{"id":"b","role":"prescriber","tenant":"n","keys":[)" +
                        key("0a1b2c3d4e5f") + "]}]}") ==
          "$.clients[1].keys[0].id: key id \"0a1b2c3d4e5f\" is already used by client \"a\"");
    CHECK(FromJsonError(with_keys(key("0a1b2c3d4e5f") + "," + key("0a1b2c3d4e5f")))
              .starts_with("$.clients[0].keys[1].id: key id \"0a1b2c3d4e5f\" is listed twice"));
    CHECK(FromJsonError(R"({"clients":[{"id":"a","role":"prescriber","tenant":"n"},
                                        {"id":"a","role":"prescriber","tenant":"s"}]})") ==
          "$.clients[1].id: client \"a\" already exists");
    // A misspelt "expires" must not leave a key valid forever.
    CHECK(FromJsonError(
              with_keys(key("0a1b2c3d4e5f", hash + R"("created":"2026-11-30T12:00:00Z",)"
                                                   R"("expire":"2027-01-01T00:00:00Z")"))) ==
          "$.clients[0].keys[0].expire: unknown member");
    CHECK(
        FromJsonError(with_keys(key("0a1b2c3d4e5f", hash + R"("created":"2026-11-31T12:00:00Z")")))
            .starts_with("$.clients[0].keys[0].created: "));
    CHECK(
        FromJsonError(with_keys(key("0a1b2c3d4e5f", hash + R"("created":"2026-11-30T12:00:00Z",)"
                                                           R"("expires":"1970-01-01T00:00:00Z")")))
            .starts_with("$.clients[0].keys[0].expires: must be after 1970-01-01T00:00:00Z"));
    CHECK(FromJsonError(with_keys(key("0a1b2c3d4e5f", R"("sha256":")" + kHash + "\"")))
              .starts_with("$.clients[0].keys[0].created: required"));
    CHECK(FromJsonError(with_keys(key("0A1B2C3D4E5F")))
              .starts_with("$.clients[0].keys[0].id: must be 12 lowercase hex digits"));
    CHECK(FromJsonError(
              with_keys(key("0a1b2c3d4e5f", R"("sha256":"abc","created":"2026-11-30T12:00:00Z")")))
              .starts_with("$.clients[0].keys[0].sha256: must be 64 lowercase hex digits"));
    CHECK(FromJsonError(R"({"clients":[{"id":"a b","role":"prescriber","tenant":"n"}]})")
              .starts_with("$.clients[0].id: must be 1 to 64 characters"));
    CHECK(FromJsonError(R"({"clients":[{"id":"a","role":"admin","tenant":"n"}]})")
              .starts_with("$.clients[0].role: role \"admin\" is not one of"));
    CHECK(FromJsonError(R"({"clients":[{"role":"prescriber","tenant":"n"}]})") ==
          "$.clients[0].id: required");
    CHECK(FromJsonError(R"({"clients":{}})") == "$.clients: must be an array");
    CHECK(FromJsonError(R"({})") == "$.clients: required");
    CHECK(FromJsonError(R"([])").starts_with("$: must be an object"));
    CHECK(FromJsonError(R"({"clients":[)").starts_with("$: not valid JSON"));
  }

  TEST_CASE("ToJson round-trips through FromJson") {
    ClientRegistry r;
    RXFLOW_REQUIRE_OK(r.Add(Prescriber("ehr-north")));
    RXFLOW_REQUIRE_OK(r.Add(Pharmacy("pharm-1", {"4712345", "4712346"})));
    RXFLOW_REQUIRE_OK(r.Add(Pharmacy("sim", {"*"})));
    REQUIRE(r.Add(Client{.id = "ops",
                         .role = Role::kOperator,
                         .tenant = "*",
                         .ncpdp_ids = {},
                         .keys = {},
                         .certificates = {}})
                .ok());
    REQUIRE(r.Add(Client{.id = "prom",
                         .role = Role::kMetrics,
                         .tenant = "",
                         .ncpdp_ids = {},
                         .keys = {},
                         .certificates = {}})
                .ok());
    RXFLOW_REQUIRE_OK(r.AddKey("ehr-north", kNow));
    RXFLOW_REQUIRE_OK(r.AddKey("ehr-north", kNow + 123, kNow + 30 * kDay + 456));
    RXFLOW_REQUIRE_OK(r.AddKey("pharm-1", kNow));
    RXFLOW_REQUIRE_OK(
        r.AddEnvKeys({"0123456789abcdef0123456789abcdef"}, Role::kMetrics, "", {}, kNow));
    const std::string json = r.ToJson();
    CHECK(json.find("\"sha256\"") != std::string::npos);
    auto back = ClientRegistry::FromJson(json);
    REQUIRE_MESSAGE(back.ok(), Message(back.status()));
    CHECK(back->ToJson() == json);
    REQUIRE(back->clients().size() == r.clients().size());
    for (size_t i = 0; i < r.clients().size(); ++i) {
      const Client& a = r.clients()[i];
      const Client& b = back->clients()[i];
      CHECK(a.id == b.id);
      CHECK(a.role == b.role);
      CHECK(a.tenant == b.tenant);
      CHECK(a.ncpdp_ids == b.ncpdp_ids);
      REQUIRE(a.keys.size() == b.keys.size());
      for (size_t k = 0; k < a.keys.size(); ++k) {
        CHECK(a.keys[k].id == b.keys[k].id);
        CHECK(a.keys[k].sha256_hex == b.keys[k].sha256_hex);
        CHECK(a.keys[k].created_at == b.keys[k].created_at);
        CHECK(a.keys[k].expires_at == b.keys[k].expires_at);
      }
    }
  }

  TEST_CASE("Add checks as FromJson does and refuses ids in use with AlreadyExists") {
    ClientRegistry r;
    rxflow::Status s = r.Add(Prescriber("a", ""));
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(Message(s) == "$.clients[0].tenant: required for the prescriber role");
    RXFLOW_REQUIRE_OK(r.Add(Prescriber("a")));
    CHECK(r.Add(Prescriber("a")).code() == StatusCode::kAlreadyExists);
    Client with_key = Prescriber("b");
    with_key.keys.push_back(
        ApiKey{.id = "0a1b2c3d4e5f", .sha256_hex = kHash, .created_at = kNow, .expires_at = 0});
    RXFLOW_REQUIRE_OK(r.Add(with_key));
    with_key.id = "c";
    s = r.Add(with_key);
    CHECK(s.code() == StatusCode::kAlreadyExists);
    CHECK(Message(s).find("key id \"0a1b2c3d4e5f\" is already used by client \"b\"") !=
          std::string::npos);
    CHECK(r.Find("c") == nullptr);
    CHECK(r.AddKey("nobody", kNow).status().code() == StatusCode::kNotFound);
    CHECK(r.AddKey("a", kNow, kNow).status().code() == StatusCode::kInvalidArgument);
  }

  TEST_CASE("environment keys become env-<key id> clients, all or none") {
    const std::string strong = "0123456789abcdef0123456789abcdef";
    const std::string other = GenerateKey(kNow).key;
    ClientRegistry r;
    RXFLOW_REQUIRE_OK(r.AddEnvKeys({strong, other}, Role::kPrescriber, "north", {}, kNow));
    auto p = r.Authenticate(strong, kNow);
    RXFLOW_REQUIRE_OK(p);
    CHECK(p->client_id == "env-" + KeyIdOf(strong));
    CHECK(p->tenant == "north");
    auto q = r.Authenticate(other, kNow);
    RXFLOW_REQUIRE_OK(q);
    CHECK(q->client_id == "env-" + other.substr(4, 12));

    ClientRegistry s;
    const std::string weak = "password-password-password-pass";
    rxflow::Status st = s.AddEnvKeys({strong, weak}, Role::kPrescriber, "north", {}, kNow);
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK(Message(st).starts_with("key 2 of 2: "));
    CHECK(Message(st).find(weak) == std::string::npos);
    CHECK(s.clients().empty());
    // The role's rules hold for environment clients too.
    st = s.AddEnvKeys({strong}, Role::kPrescriber, "", {}, kNow);
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK(Message(st).starts_with("key 1 of 1: "));
    CHECK(s.AddEnvKeys({strong}, Role::kPharmacy, "", {"*"}, kNow).ok());
    CHECK(s.Authenticate(strong, kNow)->SpeaksFor("4712345"));
    CHECK(s.AddEnvKeys({strong}, Role::kPharmacy, "", {"*"}, kNow).code() ==
          StatusCode::kAlreadyExists);
  }

  TEST_CASE("Rotate: both keys during the overlap, only the new one after") {
    OneKey f;
    const int64_t overlap = 7 * kDay;
    auto rotated = f.registry.Rotate("ehr-north", kNow, overlap);
    RXFLOW_REQUIRE_OK(rotated);
    CHECK(rotated->record.id != f.key_id);
    CHECK(f.registry.Find("ehr-north")->keys.size() == 2);
    for (int64_t t : {kNow, kNow + kDay, kNow + overlap - 1}) {
      CAPTURE(t);
      CHECK(f.registry.Authenticate(f.key, t).ok());
      CHECK(f.registry.Authenticate(rotated->key, t).ok());
    }
    CheckRefused(f.registry, f.key, kNow + overlap);
    CHECK(f.registry.Authenticate(rotated->key, kNow + overlap).ok());
    CHECK(f.registry.Authenticate(rotated->key, kNow + 400 * kDay).ok());
  }

  TEST_CASE("Rotate keeps an earlier expiry and leaves expired keys alone") {
    OneKey f(kNow + kDay);
    auto second = f.registry.Rotate("ehr-north", kNow, 7 * kDay, kNow + 100 * kDay);
    RXFLOW_REQUIRE_OK(second);
    const Client* c = f.registry.Find("ehr-north");
    CHECK(c->keys[0].expires_at == kNow + kDay);  // sooner than the overlap's end
    CHECK(c->keys[1].expires_at == kNow + 100 * kDay);
    // Ten days later the first key has expired: a rotation does not revive it.
    auto third = f.registry.Rotate("ehr-north", kNow + 10 * kDay, 3 * kDay);
    RXFLOW_REQUIRE_OK(third);
    c = f.registry.Find("ehr-north");
    CHECK(c->keys[0].expires_at == kNow + kDay);
    CHECK(c->keys[1].expires_at == kNow + 13 * kDay);
    CHECK(c->keys[2].expires_at == 0);
    // No overlap: the other keys stop at once.
    auto fourth = f.registry.Rotate("ehr-north", kNow + 11 * kDay, 0);
    RXFLOW_REQUIRE_OK(fourth);
    CheckRefused(f.registry, third->key, kNow + 11 * kDay);
    CHECK(f.registry.Authenticate(fourth->key, kNow + 11 * kDay).ok());
    CHECK(f.registry.Rotate("ehr-north", kNow, -1).status().code() == StatusCode::kInvalidArgument);
    CHECK(f.registry.Rotate("nobody", kNow, 0).status().code() == StatusCode::kNotFound);
  }

  TEST_CASE("Revoke removes one key, or the client with all its keys") {
    OneKey f;
    auto second = f.registry.AddKey("ehr-north", kNow);
    RXFLOW_REQUIRE_OK(second);
    RXFLOW_REQUIRE_OK(f.registry.Add(Prescriber("ehr-south", "south")));
    auto south = f.registry.AddKey("ehr-south", kNow);
    RXFLOW_REQUIRE_OK(south);

    RXFLOW_REQUIRE_OK(f.registry.Revoke("ehr-north", f.key_id));
    CheckRefused(f.registry, f.key, kNow);
    CHECK(f.registry.Authenticate(second->key, kNow).ok());
    CHECK(f.registry.Revoke("ehr-north", f.key_id).code() == StatusCode::kNotFound);

    RXFLOW_REQUIRE_OK(f.registry.Revoke("ehr-north"));
    CHECK(f.registry.Find("ehr-north") == nullptr);
    CheckRefused(f.registry, second->key, kNow);
    // The other client's key still works (the index was rebuilt, not broken).
    auto p = f.registry.Authenticate(south->key, kNow);
    RXFLOW_REQUIRE_OK(p);
    CHECK(p->client_id == "ehr-south");
    CHECK(f.registry.Revoke("ehr-north").code() == StatusCode::kNotFound);
    CHECK(f.registry.Revoke("nobody", "0a1b2c3d4e5f").code() == StatusCode::kNotFound);
  }

  TEST_CASE("SaveFile writes 0600 in a 0700 directory, atomically, LoadFile reads it back") {
    const auto root = TempDir("save");
    const auto dir = root / "nested" / "data";
    const auto file = dir / "clients.json";
    OneKey f;
    RXFLOW_REQUIRE_OK(f.registry.SaveFile(file.string()));
    CHECK(Mode(file) == 0600);
    CHECK(Mode(dir) == 0700);
    CHECK(Mode(root / "nested") == 0700);
    CHECK_FALSE(std::filesystem::exists(file.string() + ".tmp"));
    const std::string text = rxflow::testing::ReadFile(file);
    CHECK(text.find(f.key) == std::string::npos);  // never the key
    CHECK(text.find(f.key.substr(17)) == std::string::npos);

    auto loaded = ClientRegistry::LoadFile(file.string());
    REQUIRE_MESSAGE(loaded.ok(), Message(loaded.status()));
    CHECK(loaded->Authenticate(f.key, kNow).ok());

    // Saving again replaces the file (still 0600).
    RXFLOW_REQUIRE_OK(f.registry.Revoke("ehr-north"));
    RXFLOW_REQUIRE_OK(f.registry.SaveFile(file.string()));
    CHECK(Mode(file) == 0600);
    auto empty = ClientRegistry::LoadFile(file.string());
    RXFLOW_REQUIRE_OK(empty);
    CHECK(empty->clients().empty());

    // A leftover temporary file is named, never written through.
    rxflow::testing::WriteFile(file.string() + ".tmp", "someone else's");
    rxflow::Status s = f.registry.SaveFile(file.string());
    CHECK(s.code() == StatusCode::kUnavailable);
    CHECK(Message(s).find("clients.json.tmp exists") != std::string::npos);
    CHECK(rxflow::testing::ReadFile(file.string() + ".tmp") == "someone else's");

    auto missing = ClientRegistry::LoadFile((root / "none.json").string());
    CHECK(missing.status().code() == StatusCode::kNotFound);
    rxflow::testing::WriteFile(root / "bad.json", R"({"clients":[{"id":"a","role":"x"}]})");
    auto bad = ClientRegistry::LoadFile((root / "bad.json").string());
    CHECK(bad.status().code() == StatusCode::kInvalidArgument);
    CHECK(Message(bad.status()).starts_with((root / "bad.json").string() + ": $.clients[0].role"));
    std::filesystem::remove_all(root);
  }
}

TEST_SUITE("Auth certificates") {
  // ISRG Root X1, a public certificate; Let's Encrypt publishes its SHA-256 fingerprint
  // (https://letsencrypt.org/certificates/) as 96:BC:EC:06:...:DF:08:C6.
  constexpr char kIsrgRootX1[] = "96bcec06264976f37460779acf28c5a7cfe8a3c0aae11a8ffcee05c0bddf08c6";

  TEST_CASE("CertificateFingerprint is the SHA-256 of the DER, as published for a real root") {
    const std::string pem = rxflow::testing::ReadFixture("auth/isrg-root-x1.pem");
    auto fingerprint = rxflow::auth::CertificateFingerprint(pem);
    REQUIRE_MESSAGE(fingerprint.ok(), Message(fingerprint.status()));
    CHECK(*fingerprint == kIsrgRootX1);
    // Text around the PEM block (as in a bundle with comments) is skipped.
    CHECK(*rxflow::auth::CertificateFingerprint("# ISRG Root X1\n" + pem) == kIsrgRootX1);
    for (const std::string& bad :
         {std::string(), std::string("not a certificate"), pem.substr(0, pem.size() / 2)}) {
      auto r = rxflow::auth::CertificateFingerprint(bad);
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == StatusCode::kInvalidArgument);
      CHECK(Message(r.status()).starts_with("no PEM certificate"));
      CHECK(ERR_peek_error() == 0);  // OpenSSL's error queue is left clean
    }
  }

  TEST_CASE("a bound certificate authenticates as its client, an unbound one is refused") {
    ClientRegistry r;
    RXFLOW_REQUIRE_OK(r.Add(Pharmacy("pharm-1", {"4712345"})));
    RXFLOW_REQUIRE_OK(r.Add(Prescriber("ehr-north")));
    RXFLOW_REQUIRE_OK(r.AddCertificate("pharm-1", kIsrgRootX1));
    auto p = r.AuthenticateCertificate(kIsrgRootX1);
    RXFLOW_REQUIRE_OK(p);
    CHECK(p->client_id == "pharm-1");
    CHECK(p->role == Role::kPharmacy);
    CHECK(p->SpeaksFor("4712345"));
    CHECK_FALSE(p->SpeaksFor("9999999"));
    CHECK(p->key_id == "cert-96bcec062649");
    CHECK(rxflow::auth::CertificateIdOf(kIsrgRootX1) == p->key_id);  // what the API logs
    auto unbound = r.AuthenticateCertificate(kHash);
    REQUIRE_FALSE(unbound.ok());
    CHECK(unbound.status().code() == StatusCode::kUnauthenticated);
    CHECK(Message(unbound.status()) == "client certificate not bound to a client");
    // Exactly the hex CertificateFingerprint writes: no colons, no upper case.
    std::string upper(kIsrgRootX1);
    std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
    CHECK_FALSE(r.AuthenticateCertificate(upper).ok());
    CHECK_FALSE(r.AuthenticateCertificate("").ok());

    // One client per certificate; well-formed fingerprints only; the client must exist.
    CHECK(r.AddCertificate("ehr-north", kIsrgRootX1).code() == StatusCode::kAlreadyExists);
    CHECK(r.AddCertificate("pharm-1", kIsrgRootX1).code() == StatusCode::kAlreadyExists);
    CHECK(r.AddCertificate("pharm-1", upper).code() == StatusCode::kInvalidArgument);
    CHECK(r.AddCertificate("nobody", kHash).code() == StatusCode::kNotFound);

    // Unbinding, and revoking the client, end the certificate's access; others keep theirs.
    RXFLOW_REQUIRE_OK(r.AddCertificate("ehr-north", kHash));
    RXFLOW_REQUIRE_OK(r.RemoveCertificate("pharm-1", kIsrgRootX1));
    CHECK_FALSE(r.AuthenticateCertificate(kIsrgRootX1).ok());
    CHECK(r.RemoveCertificate("pharm-1", kIsrgRootX1).code() == StatusCode::kNotFound);
    CHECK(r.AuthenticateCertificate(kHash)->client_id == "ehr-north");
    RXFLOW_REQUIRE_OK(r.AddCertificate("pharm-1", kIsrgRootX1));
    RXFLOW_REQUIRE_OK(r.Revoke("ehr-north"));
    CHECK_FALSE(r.AuthenticateCertificate(kHash).ok());
    CHECK(r.AuthenticateCertificate(kIsrgRootX1)->client_id == "pharm-1");
  }

  TEST_CASE("certificates in the clients file: read, checked with their path, written back") {
    const std::string json =
        std::string(R"({"clients":[{"id":"pharm-1","role":"pharmacy","ncpdp_ids":["4712345"],)") +
        R"("certificates":[")" + kIsrgRootX1 + R"("]}]})";
    auto r = ClientRegistry::FromJson(json);
    REQUIRE_MESSAGE(r.ok(), Message(r.status()));
    CHECK(r->Find("pharm-1")->certificates == std::vector<std::string>{kIsrgRootX1});
    CHECK(r->AuthenticateCertificate(kIsrgRootX1)->client_id == "pharm-1");
    auto back = ClientRegistry::FromJson(r->ToJson());
    RXFLOW_REQUIRE_OK(back);
    CHECK(back->ToJson() == r->ToJson());
    CHECK(back->Find("pharm-1")->certificates == std::vector<std::string>{kIsrgRootX1});

    auto pharmacy = [](const std::string& id, const std::string& certificates) {
      return R"({"id":")" + id + R"(","role":"pharmacy","ncpdp_ids":["4712345"],"certificates":)" +
             certificates + "}";
    };
    const std::string fp = std::string("\"") + kIsrgRootX1 + "\"";
    CHECK(FromJsonError(R"({"clients":[)" + pharmacy("p", "\"" + std::string(kIsrgRootX1) + "\"") +
                        "]}") == "$.clients[0].certificates: must be an array of strings");
    CHECK(FromJsonError(R"({"clients":[)" + pharmacy("p", "[1]") + "]}") ==
          "$.clients[0].certificates[0]: must be a string");
    CHECK(FromJsonError(R"({"clients":[)" + pharmacy("p", R"(["96:BC:EC"])") + "]}")
              .starts_with("$.clients[0].certificates[0]: must be a SHA-256 certificate "
                           "fingerprint, 64 lowercase hex digits"));
    CHECK(FromJsonError(R"({"clients":[)" + pharmacy("p", "[" + fp + "," + fp + "]") + "]}") ==
          "$.clients[0].certificates[1]: the certificate is listed twice");
    CHECK(FromJsonError(R"({"clients":[)" + pharmacy("p", "[" + fp + "]") + "," +
                        pharmacy("q", "[" + fp + "]") + "]}") ==
          "$.clients[1].certificates[0]: the certificate is already bound to client \"p\"");
  }
}
