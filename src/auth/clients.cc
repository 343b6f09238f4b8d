// SPDX-License-Identifier: Apache-2.0
// API clients and keys (rxflow/auth/clients.h): key generation and strength, the clients
// file (read and written with nlohmann; written atomically, 0600), and the constant-time
// check of a presented key.
#include "rxflow/auth/clients.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "rxflow/clock.h"
#include "rxflow/internal/crypto.h"
#include "rxflow/internal/files.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

namespace rxflow::auth {

using internal::Cat;

namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kKeyPrefix = "rxf_";
constexpr size_t kKeyIdChars = 12;
constexpr size_t kSecretBytes = 32;  // 256 bits: 43 base64url characters
constexpr size_t kMinKeyChars = 32;
constexpr size_t kMaxKeyChars = 512;
constexpr size_t kMinDistinctChars = 10;
constexpr double kMinEntropyBits = 128;
constexpr size_t kMaxNameChars = 64;
constexpr size_t kNcpdpIdDigits = 7;
// 10000-01-01T00:00:00Z: FormatRfc3339 writes four-digit years.
constexpr int64_t kEndOfTime = 253'402'300'800'000'000;
constexpr char kUnauthenticated[] = "unknown or expired API key";
constexpr char kCertificateUnbound[] = "client certificate not bound to a client";
constexpr size_t kFingerprintChars = 64;
constexpr size_t kCertificateIdChars = 12;
constexpr std::string_view kNameRule = "must be 1 to 64 characters of A-Z a-z 0-9 . _ -";

absl::Status Invalid(absl::string_view message) { return absl::InvalidArgumentError(message); }

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool AllLowerHex(std::string_view s) { return std::all_of(s.begin(), s.end(), IsLowerHex); }

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsFingerprint(std::string_view s) { return s.size() == kFingerprintChars && AllLowerHex(s); }

// [A-Za-z0-9._-]{1,64}: client ids and tenants.
bool IsName(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameChars) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || IsDigit(c) || c == '.' || c == '_' ||
           c == '-';
  });
}

bool IsNcpdpId(std::string_view s) {
  return s.size() == kNcpdpIdDigits && std::all_of(s.begin(), s.end(), IsDigit);
}

// What KeyIdOf gives: 12 lowercase hex digits, or "h" and 11.
bool IsKeyId(std::string_view s) {
  if (s.size() != kKeyIdChars) return false;
  return s[0] == 'h' ? AllLowerHex(s.substr(1)) : AllLowerHex(s);
}

// The embedded id of "rxf_<12 lowercase hex>_...", or empty.
std::string_view EmbeddedKeyId(std::string_view key) {
  const size_t end = kKeyPrefix.size() + kKeyIdChars;
  if (key.size() <= end || !key.starts_with(kKeyPrefix) || key[end] != '_') return {};
  std::string_view id = key.substr(kKeyPrefix.size(), kKeyIdChars);
  return AllLowerHex(id) ? id : std::string_view();
}

// KeyIdOf, given the key's SHA-256 hex digest.
std::string KeyIdOf(std::string_view key, std::string_view sha256_hex) {
  if (std::string_view id = EmbeddedKeyId(key); !id.empty()) return std::string(id);
  return Cat("h", sha256_hex.substr(0, kKeyIdChars - 1));
}

// The path of member `name` of the object at `at`: "$.clients[0].tenant", or
// "$.clients[0][\"odd name\"]" (JSON-quoted) for a name that is not a plain word.
std::string MemberPath(std::string_view at, std::string_view name) {
  if (IsName(name)) return Cat(at, ".", name);
  return Cat(at, "[",
             Json(std::string(name.substr(0, kMaxNameChars)))
                 .dump(-1, ' ', false, Json::error_handler_t::replace),
             "]");
}

// InvalidArgument for the first member of `j` not in `known`.
Status CheckMembers(const Json& j, std::string_view at,
                    std::initializer_list<std::string_view> known) {
  for (const auto& [name, value] : j.items()) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      return Invalid(Cat(MemberPath(at, name), ": unknown member"));
    }
  }
  return absl::OkStatus();
}

// The string member `name` of `j` into `out` (left as it is when absent and not required).
Status ReadString(const Json& j, std::string_view name, std::string_view at, bool required,
                  std::string& out) {
  auto it = j.find(std::string(name));
  if (it == j.end()) {
    return required ? Invalid(Cat(at, ".", name, ": required")) : absl::OkStatus();
  }
  if (!it->is_string()) return Invalid(Cat(at, ".", name, ": must be a string"));
  out = it->get<std::string>();
  return absl::OkStatus();
}

// An RFC 3339 member `name` of `j` into `out`, before the year 10000 and from 1970 on (after
// its first instant when `after_epoch`: an ApiKey::expires_at of 0 means "never"); left as it
// is when absent and not required.
Status ReadTime(const Json& j, std::string_view name, std::string_view at, bool required,
                bool after_epoch, int64_t& out) {
  std::string text;
  if (!required && !j.contains(std::string(name))) return absl::OkStatus();
  RXFLOW_RETURN_IF_ERROR(ReadString(j, name, at, required, text));
  StatusOr<int64_t> t = ParseRfc3339(text);
  if (!t.ok()) return Invalid(Cat(at, ".", name, ": ", std::string(t.status().message())));
  if (*t < (after_epoch ? 1 : 0) || *t >= kEndOfTime) {
    return Invalid(Cat(at, ".", name, ": must be ", after_epoch ? "after" : "from",
                       " 1970-01-01T00:00:00Z and before the year 10000"));
  }
  out = *t;
  return absl::OkStatus();
}

StatusOr<ApiKey> KeyFromJson(const Json& j, const std::string& at) {
  if (!j.is_object()) return Invalid(Cat(at, ": must be an object"));
  RXFLOW_RETURN_IF_ERROR(CheckMembers(j, at, {"id", "sha256", "created", "expires"}));
  ApiKey k;
  RXFLOW_RETURN_IF_ERROR(ReadString(j, "id", at, /*required=*/true, k.id));
  RXFLOW_RETURN_IF_ERROR(ReadString(j, "sha256", at, /*required=*/true, k.sha256_hex));
  RXFLOW_RETURN_IF_ERROR(
      ReadTime(j, "created", at, /*required=*/true, /*after_epoch=*/false, k.created_at));
  RXFLOW_RETURN_IF_ERROR(
      ReadTime(j, "expires", at, /*required=*/false, /*after_epoch=*/true, k.expires_at));
  return k;
}

StatusOr<Client> ClientFromJson(const Json& j, const std::string& at) {
  if (!j.is_object()) return Invalid(Cat(at, ": must be an object"));
  RXFLOW_RETURN_IF_ERROR(
      CheckMembers(j, at, {"id", "role", "tenant", "ncpdp_ids", "keys", "certificates"}));
  Client c;
  RXFLOW_RETURN_IF_ERROR(ReadString(j, "id", at, /*required=*/true, c.id));
  std::string role;
  RXFLOW_RETURN_IF_ERROR(ReadString(j, "role", at, /*required=*/true, role));
  StatusOr<Role> parsed = ParseRole(role);
  if (!parsed.ok()) return Invalid(Cat(at, ".role: ", std::string(parsed.status().message())));
  c.role = *parsed;
  RXFLOW_RETURN_IF_ERROR(ReadString(j, "tenant", at, /*required=*/false, c.tenant));
  if (auto it = j.find("ncpdp_ids"); it != j.end()) {
    if (!it->is_array()) return Invalid(Cat(at, ".ncpdp_ids: must be an array of strings"));
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& id = (*it)[i];
      if (!id.is_string()) return Invalid(Cat(at, ".ncpdp_ids[", i, "]: must be a string"));
      c.ncpdp_ids.push_back(id.get<std::string>());
    }
  }
  if (auto it = j.find("keys"); it != j.end()) {
    if (!it->is_array()) return Invalid(Cat(at, ".keys: must be an array"));
    for (size_t i = 0; i < it->size(); ++i) {
      RXFLOW_ASSIGN_OR_RETURN(ApiKey k, KeyFromJson((*it)[i], Cat(at, ".keys[", i, "]")));
      c.keys.push_back(std::move(k));
    }
  }
  if (auto it = j.find("certificates"); it != j.end()) {
    if (!it->is_array()) return Invalid(Cat(at, ".certificates: must be an array of strings"));
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& fp = (*it)[i];
      if (!fp.is_string()) return Invalid(Cat(at, ".certificates[", i, "]: must be a string"));
      c.certificates.push_back(fp.get<std::string>());
    }
  }
  return c;
}

// The rules of one client on its own (uniqueness is the registry's); `at` is its JSON path.
Status CheckClient(const Client& c, const std::string& at) {
  if (!IsName(c.id)) return Invalid(Cat(at, ".id: ", kNameRule));
  const std::string_view role = RoleName(c.role);
  switch (c.role) {
    case Role::kPrescriber:
      if (c.tenant.empty()) return Invalid(Cat(at, ".tenant: required for the prescriber role"));
      if (!IsName(c.tenant)) return Invalid(Cat(at, ".tenant: ", kNameRule));
      break;
    case Role::kOperator:
      if (c.tenant.empty()) {
        return Invalid(
            Cat(at, ".tenant: required for the operator role (a tenant, or \"*\" for all)"));
      }
      if (c.tenant != "*" && !IsName(c.tenant)) {
        return Invalid(Cat(at, ".tenant: ", kNameRule, ", or \"*\""));
      }
      break;
    case Role::kPharmacy:
    case Role::kMetrics:
      if (!c.tenant.empty())
        return Invalid(Cat(at, ".tenant: not allowed for the ", role, " role"));
      break;
  }
  if (c.role == Role::kPharmacy) {
    if (c.ncpdp_ids.empty()) {
      return Invalid(Cat(at,
                         ".ncpdp_ids: required for the pharmacy role (7-digit NCPDP ids, or "
                         "\"*\" for every pharmacy)"));
    }
    for (size_t i = 0; i < c.ncpdp_ids.size(); ++i) {
      const std::string& id = c.ncpdp_ids[i];
      const std::string path = Cat(at, ".ncpdp_ids[", i, "]");
      if (id == "*") {
        if (c.ncpdp_ids.size() != 1) return Invalid(Cat(path, ": \"*\" must be the only entry"));
        continue;
      }
      if (!IsNcpdpId(id)) return Invalid(Cat(path, ": must be exactly 7 digits, or \"*\""));
      if (std::find(c.ncpdp_ids.begin(), c.ncpdp_ids.begin() + static_cast<ptrdiff_t>(i), id) !=
          c.ncpdp_ids.begin() + static_cast<ptrdiff_t>(i)) {
        return Invalid(Cat(path, ": \"", id, "\" is listed twice"));
      }
    }
  } else if (!c.ncpdp_ids.empty()) {
    return Invalid(Cat(at, ".ncpdp_ids: not allowed for the ", role, " role (pharmacy only)"));
  }
  for (size_t i = 0; i < c.keys.size(); ++i) {
    const ApiKey& k = c.keys[i];
    const std::string path = Cat(at, ".keys[", i, "]");
    if (!IsKeyId(k.id)) {
      return Invalid(Cat(path, ".id: must be 12 lowercase hex digits, or \"h\" and 11"));
    }
    if (k.sha256_hex.size() != 64 || !AllLowerHex(k.sha256_hex)) {
      return Invalid(Cat(path, ".sha256: must be 64 lowercase hex digits"));
    }
    if (k.created_at < 0 || k.created_at >= kEndOfTime) {
      return Invalid(Cat(path, ".created: must be from 1970 and before 10000"));
    }
    if (k.expires_at < 0 || k.expires_at >= kEndOfTime) {
      return Invalid(Cat(path, ".expires: must be after 1970 and before 10000 (or 0: never)"));
    }
  }
  for (size_t i = 0; i < c.certificates.size(); ++i) {
    const std::string& fp = c.certificates[i];
    const std::string path = Cat(at, ".certificates[", i, "]");
    if (!IsFingerprint(fp)) {
      return Invalid(
          Cat(path, ": must be a SHA-256 certificate fingerprint, 64 lowercase hex digits"));
    }
    if (std::find(c.certificates.begin(), c.certificates.begin() + static_cast<ptrdiff_t>(i), fp) !=
        c.certificates.begin() + static_cast<ptrdiff_t>(i)) {
      return Invalid(Cat(path, ": the certificate is listed twice"));
    }
  }
  return absl::OkStatus();
}

// The Principal of client `c`, authenticated by the credential `credential_id`.
Principal PrincipalOf(const Client& c, std::string credential_id) {
  return Principal{.client_id = c.id,
                   .role = c.role,
                   .tenant = c.tenant,
                   .ncpdp_ids = c.ncpdp_ids,
                   .key_id = std::move(credential_id)};
}

Status Expiry(int64_t now_micros, int64_t expires_at_micros) {
  if (expires_at_micros != 0 &&
      (expires_at_micros <= now_micros || expires_at_micros >= kEndOfTime)) {
    return Invalid("the key's expiry must be after now (and before the year 10000), or 0: never");
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kPrescriber:
      return "prescriber";
    case Role::kPharmacy:
      return "pharmacy";
    case Role::kOperator:
      return "operator";
    case Role::kMetrics:
      return "metrics";
  }
  return "unknown";
}

StatusOr<Role> ParseRole(std::string_view name) {
  for (Role r : {Role::kPrescriber, Role::kPharmacy, Role::kOperator, Role::kMetrics}) {
    if (name == RoleName(r)) return r;
  }
  return Invalid(Cat("role \"", name.substr(0, kMaxNameChars),
                     "\" is not one of prescriber, pharmacy, operator, metrics"));
}

bool Principal::SpeaksFor(std::string_view ncpdp_id) const {
  if (role != Role::kPharmacy) return false;
  return std::any_of(ncpdp_ids.begin(), ncpdp_ids.end(),
                     [&](const std::string& id) { return id == "*" || id == ncpdp_id; });
}

bool Principal::SeesTenant(std::string_view t) const {
  if (tenant.empty()) return false;
  return tenant == "*" || tenant == t;
}

GeneratedKey GenerateKey(int64_t now_micros, int64_t expires_at_micros) {
  std::array<unsigned char, kSecretBytes> secret;
  if (RAND_bytes(secret.data(), static_cast<int>(secret.size())) != 1) {
    std::abort();  // no entropy: nothing safe to do
  }
  // base64url without padding (RFC 4648 §5): 32 bytes are 43 characters.
  std::string text = internal::Base64Encode(
      std::string_view(reinterpret_cast<const char*>(secret.data()), secret.size()));
  OPENSSL_cleanse(secret.data(), secret.size());
  while (!text.empty() && text.back() == '=') text.pop_back();
  for (char& c : text) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  const std::string id = internal::RandomHex128().substr(0, kKeyIdChars);  // 48 random bits
  GeneratedKey g;
  g.key = Cat(kKeyPrefix, id, "_", text);
  OPENSSL_cleanse(text.data(), text.size());
  g.record = ApiKey{.id = id,
                    .sha256_hex = internal::Sha256Hex(g.key),
                    .created_at = now_micros,
                    .expires_at = expires_at_micros};
  return g;
}

Status CheckKeyStrength(std::string_view key) {
  if (key.size() < kMinKeyChars) {
    return Invalid(
        Cat("the key has ", key.size(), " characters: at least ", kMinKeyChars, " are required"));
  }
  if (key.size() > kMaxKeyChars) {
    return Invalid(
        Cat("the key has ", key.size(), " characters: at most ", kMaxKeyChars, " are accepted"));
  }
  std::array<bool, 128> seen{};
  bool digit = false, lower = false, upper = false, other = false;
  for (char ch : key) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '%') {
      return Invalid(
          "the key contains '%': keys are compared as sent, never percent-decoded; choose one "
          "without '%'");
    }
    if (c <= 0x20 || c >= 0x7f) {
      return Invalid(
          "the key contains a space, a control character or a non-ASCII byte: only printable "
          "ASCII is accepted");
    }
    seen[c] = true;
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c >= 'a' && c <= 'z') {
      lower = true;
    } else if (c >= 'A' && c <= 'Z') {
      upper = true;
    } else {
      other = true;
    }
  }
  const size_t distinct = static_cast<size_t>(std::count(seen.begin(), seen.end(), true));
  if (distinct < kMinDistinctChars) {
    return Invalid(Cat("the key has ", distinct, " distinct characters: at least ",
                       kMinDistinctChars, " are required"));
  }
  const int pool = (digit ? 10 : 0) + (lower ? 26 : 0) + (upper ? 26 : 0) + (other ? 32 : 0);
  const double bits = static_cast<double>(key.size()) * std::log2(static_cast<double>(pool));
  if (bits < kMinEntropyBits) {
    return Invalid(Cat("the key's estimated entropy is ", static_cast<int>(bits),
                       " bits: at least 128 are required (a longer key, or more kinds of "
                       "character)"));
  }
  return absl::OkStatus();
}

StatusOr<std::string> CertificateFingerprint(std::string_view pem) {
  if (pem.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return Invalid("not a PEM certificate: too large");
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  if (!bio) return absl::ResourceExhaustedError("out of memory reading a certificate");
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
  if (!cert) {
    ERR_clear_error();  // (what PEM_read left on this thread's queue is not the next call's)
    return Invalid("no PEM certificate (-----BEGIN CERTIFICATE-----) could be read");
  }
  unsigned char* der = nullptr;
  const int length = i2d_X509(cert.get(), &der);
  if (length <= 0) {
    ERR_clear_error();
    return Invalid("the certificate could not be encoded as DER");
  }
  std::string fingerprint =
      internal::Sha256Hex(std::string_view(reinterpret_cast<const char*>(der), length));
  OPENSSL_free(der);
  return fingerprint;
}

std::string CertificateIdOf(std::string_view sha256_hex) {
  return Cat("cert-", sha256_hex.substr(0, kCertificateIdChars));
}

std::string KeyIdOf(std::string_view key) {
  if (std::string_view id = EmbeddedKeyId(key); !id.empty()) return std::string(id);
  return KeyIdOf(key, internal::Sha256Hex(key));
}

// ---- the clients file ----------------------------------------------------------------------

StatusOr<ClientRegistry> ClientRegistry::FromJson(std::string_view json) {
  Json root;
  try {
    root = Json::parse(json.begin(), json.end());
  } catch (const Json::parse_error& e) {
    return Invalid(Cat("$: not valid JSON: ", std::string(e.what())));
  }
  if (!root.is_object()) return Invalid("$: must be an object {\"clients\": [...]}");
  RXFLOW_RETURN_IF_ERROR(CheckMembers(root, "$", {"clients"}));
  auto clients = root.find("clients");
  if (clients == root.end()) return Invalid("$.clients: required");
  if (!clients->is_array()) return Invalid("$.clients: must be an array");
  ClientRegistry registry;
  for (size_t i = 0; i < clients->size(); ++i) {
    const std::string at = Cat("$.clients[", i, "]");
    RXFLOW_ASSIGN_OR_RETURN(Client c, ClientFromJson((*clients)[i], at));
    RXFLOW_RETURN_IF_ERROR(registry.Append(std::move(c), at, absl::StatusCode::kInvalidArgument));
  }
  return registry;
}

StatusOr<ClientRegistry> ClientRegistry::LoadFile(const std::string& path) {
  StatusOr<std::string> text = internal::ReadWholeFile(path);
  if (absl::IsNotFound(text.status())) {
    return absl::NotFoundError(Cat("no clients file at ", path));
  }
  if (!text.ok()) return text.status();
  StatusOr<ClientRegistry> registry = FromJson(*text);
  if (!registry.ok()) {
    return Status(registry.status().code(),
                  Cat(path, ": ", std::string(registry.status().message())));
  }
  return registry;
}

std::string ClientRegistry::ToJson() const {
  Json clients = Json::array();
  for (const Client& c : clients_) {
    Json j = Json::object();
    j["id"] = c.id;
    j["role"] = std::string(RoleName(c.role));
    if (!c.tenant.empty()) j["tenant"] = c.tenant;
    if (!c.ncpdp_ids.empty()) j["ncpdp_ids"] = c.ncpdp_ids;
    Json keys = Json::array();
    for (const ApiKey& k : c.keys) {
      Json kj = Json::object();
      kj["id"] = k.id;
      kj["sha256"] = k.sha256_hex;
      kj["created"] = FormatRfc3339(k.created_at);
      if (k.expires_at != 0) kj["expires"] = FormatRfc3339(k.expires_at);
      keys.push_back(std::move(kj));
    }
    j["keys"] = std::move(keys);
    if (!c.certificates.empty()) j["certificates"] = c.certificates;
    clients.push_back(std::move(j));
  }
  Json root = Json::object();
  root["clients"] = std::move(clients);
  return root.dump(2, ' ', false, Json::error_handler_t::replace);
}

Status ClientRegistry::SaveFile(const std::string& path) const {
  return internal::WritePrivateFile(path, ToJson() + "\n");
}

// ---- changes ---------------------------------------------------------------------------------

Status ClientRegistry::Append(Client client, const std::string& at,
                              absl::StatusCode duplicate_code) {
  RXFLOW_RETURN_IF_ERROR(CheckClient(client, at));
  if (client_index_.contains(client.id)) {
    return Status(duplicate_code, Cat(at, ".id: client \"", client.id, "\" already exists"));
  }
  for (size_t i = 0; i < client.keys.size(); ++i) {
    const std::string& id = client.keys[i].id;
    if (auto it = key_index_.find(id); it != key_index_.end()) {
      return Status(duplicate_code,
                    Cat(at, ".keys[", i, "].id: key id \"", id, "\" is already used by client \"",
                        clients_[it->second.client].id, "\""));
    }
    for (size_t j = 0; j < i; ++j) {
      if (client.keys[j].id == id) {
        return Status(duplicate_code,
                      Cat(at, ".keys[", i, "].id: key id \"", id, "\" is listed twice"));
      }
    }
  }
  for (size_t i = 0; i < client.certificates.size(); ++i) {
    const std::string& fp = client.certificates[i];
    if (auto it = certificate_index_.find(fp); it != certificate_index_.end()) {
      return Status(duplicate_code,
                    Cat(at, ".certificates[", i, "]: the certificate is already bound to client \"",
                        clients_[it->second].id, "\""));
    }
  }
  const size_t index = clients_.size();
  client_index_.emplace(client.id, index);
  for (size_t i = 0; i < client.keys.size(); ++i) {
    key_index_.emplace(client.keys[i].id, KeyRef{.client = index, .key = i});
  }
  for (const std::string& fp : client.certificates) certificate_index_.emplace(fp, index);
  clients_.push_back(std::move(client));
  return absl::OkStatus();
}

void ClientRegistry::Reindex() {
  client_index_.clear();
  key_index_.clear();
  certificate_index_.clear();
  for (size_t c = 0; c < clients_.size(); ++c) {
    client_index_.emplace(clients_[c].id, c);
    for (const std::string& fp : clients_[c].certificates) certificate_index_.emplace(fp, c);
    for (size_t k = 0; k < clients_[c].keys.size(); ++k) {
      key_index_.emplace(clients_[c].keys[k].id, KeyRef{.client = c, .key = k});
    }
  }
}

GeneratedKey ClientRegistry::NewKey(int64_t now_micros, int64_t expires_at_micros) const {
  for (;;) {
    GeneratedKey g = GenerateKey(now_micros, expires_at_micros);
    if (!key_index_.contains(g.record.id)) return g;
  }
}

Status ClientRegistry::Add(Client client) {
  return Append(std::move(client), Cat("$.clients[", clients_.size(), "]"),
                absl::StatusCode::kAlreadyExists);
}

Status ClientRegistry::AddEnvKeys(const std::vector<std::string>& keys, Role role,
                                  const std::string& tenant,
                                  const std::vector<std::string>& ncpdp_ids, int64_t now_micros) {
  ClientRegistry next = *this;  // all or nothing
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string which = Cat("key ", i + 1, " of ", keys.size());
    if (Status s = CheckKeyStrength(keys[i]); !s.ok()) {
      return Invalid(Cat(which, ": ", std::string(s.message())));
    }
    const std::string digest = internal::Sha256Hex(keys[i]);
    const std::string key_id = KeyIdOf(keys[i], digest);
    Client c{.id = Cat("env-", key_id),
             .role = role,
             .tenant = tenant,
             .ncpdp_ids = ncpdp_ids,
             .keys = {ApiKey{
                 .id = key_id, .sha256_hex = digest, .created_at = now_micros, .expires_at = 0}},
             .certificates = {}};
    if (Status s = next.Add(std::move(c)); !s.ok()) {
      return Status(s.code(), Cat(which, ": ", std::string(s.message())));
    }
  }
  *this = std::move(next);
  return absl::OkStatus();
}

StatusOr<GeneratedKey> ClientRegistry::AddKey(const std::string& client_id, int64_t now_micros,
                                              int64_t expires_at_micros) {
  auto it = client_index_.find(client_id);
  if (it == client_index_.end()) return absl::NotFoundError(Cat("no client \"", client_id, "\""));
  RXFLOW_RETURN_IF_ERROR(Expiry(now_micros, expires_at_micros));
  GeneratedKey g = NewKey(now_micros, expires_at_micros);
  Client& c = clients_[it->second];
  key_index_.emplace(g.record.id, KeyRef{.client = it->second, .key = c.keys.size()});
  c.keys.push_back(g.record);
  return g;
}

StatusOr<GeneratedKey> ClientRegistry::Rotate(const std::string& client_id, int64_t now_micros,
                                              int64_t overlap_micros, int64_t expires_at_micros) {
  if (overlap_micros < 0) return Invalid("the rotation overlap must not be negative");
  auto it = client_index_.find(client_id);
  if (it == client_index_.end()) return absl::NotFoundError(Cat("no client \"", client_id, "\""));
  RXFLOW_RETURN_IF_ERROR(Expiry(now_micros, expires_at_micros));
  // Saturating now + overlap; never 0, which would mean "never expires".
  int64_t end = overlap_micros > std::numeric_limits<int64_t>::max() - now_micros
                    ? std::numeric_limits<int64_t>::max()
                    : now_micros + overlap_micros;
  end = std::clamp<int64_t>(end, 1, kEndOfTime - 1);
  for (ApiKey& k : clients_[it->second].keys) {
    const bool expired = k.expires_at != 0 && now_micros >= k.expires_at;
    if (!expired && (k.expires_at == 0 || k.expires_at > end)) k.expires_at = end;
  }
  return AddKey(client_id, now_micros, expires_at_micros);
}

Status ClientRegistry::Revoke(const std::string& client_id, const std::string& key_id) {
  auto it = client_index_.find(client_id);
  if (it == client_index_.end()) return absl::NotFoundError(Cat("no client \"", client_id, "\""));
  if (key_id.empty()) {
    clients_.erase(clients_.begin() + static_cast<ptrdiff_t>(it->second));
  } else {
    std::vector<ApiKey>& keys = clients_[it->second].keys;
    auto k =
        std::find_if(keys.begin(), keys.end(), [&](const ApiKey& key) { return key.id == key_id; });
    if (k == keys.end()) {
      return absl::NotFoundError(Cat("client \"", client_id, "\" has no key \"", key_id, "\""));
    }
    keys.erase(k);
  }
  Reindex();
  return absl::OkStatus();
}

Status ClientRegistry::AddCertificate(const std::string& client_id, const std::string& sha256_hex) {
  auto it = client_index_.find(client_id);
  if (it == client_index_.end()) return absl::NotFoundError(Cat("no client \"", client_id, "\""));
  if (!IsFingerprint(sha256_hex)) {
    return Invalid("a certificate fingerprint is the SHA-256 of its DER, 64 lowercase hex digits");
  }
  if (auto bound = certificate_index_.find(sha256_hex); bound != certificate_index_.end()) {
    return absl::AlreadyExistsError(Cat("certificate ", sha256_hex.substr(0, kCertificateIdChars),
                                        "… is already bound to client \"",
                                        clients_[bound->second].id, "\""));
  }
  clients_[it->second].certificates.push_back(sha256_hex);
  certificate_index_.emplace(sha256_hex, it->second);
  return absl::OkStatus();
}

Status ClientRegistry::RemoveCertificate(const std::string& client_id,
                                         const std::string& sha256_hex) {
  auto it = client_index_.find(client_id);
  if (it == client_index_.end()) return absl::NotFoundError(Cat("no client \"", client_id, "\""));
  std::vector<std::string>& certificates = clients_[it->second].certificates;
  auto c = std::find(certificates.begin(), certificates.end(), sha256_hex);
  if (c == certificates.end()) {
    return absl::NotFoundError(Cat("client \"", client_id, "\" has no certificate \"",
                                   sha256_hex.substr(0, kFingerprintChars), "\""));
  }
  certificates.erase(c);
  Reindex();
  return absl::OkStatus();
}

const Client* ClientRegistry::Find(std::string_view client_id) const {
  auto it = client_index_.find(client_id);
  return it == client_index_.end() ? nullptr : &clients_[it->second];
}

// ---- authentication --------------------------------------------------------------------------

StatusOr<Principal> ClientRegistry::Authenticate(std::string_view presented_key,
                                                 int64_t now_micros) const {
  // Compared against for an unknown key id, so that it costs what a known one does.
  static constexpr char kDummyDigest[64] = {};
  const std::string digest = internal::Sha256Hex(presented_key);
  auto it = key_index_.find(KeyIdOf(presented_key, digest));
  const ApiKey* key =
      it == key_index_.end() ? nullptr : &clients_[it->second.client].keys[it->second.key];
  const char* stored = key != nullptr ? key->sha256_hex.data() : kDummyDigest;
  const bool match = CRYPTO_memcmp(digest.data(), stored, sizeof kDummyDigest) == 0;
  if (key == nullptr || !match || (key->expires_at != 0 && now_micros >= key->expires_at)) {
    return absl::UnauthenticatedError(kUnauthenticated);
  }
  return PrincipalOf(clients_[it->second.client], key->id);
}

StatusOr<Principal> ClientRegistry::AuthenticateCertificate(std::string_view sha256_hex) const {
  auto it = certificate_index_.find(sha256_hex);
  if (it == certificate_index_.end()) return absl::UnauthenticatedError(kCertificateUnbound);
  return PrincipalOf(clients_[it->second], CertificateIdOf(sha256_hex));
}

}  // namespace rxflow::auth
