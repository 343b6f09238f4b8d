// SPDX-License-Identifier: Apache-2.0
// File: rxflow/auth/clients.h
//
// Who may call RxFlow's API: client identities, their roles and API keys, and the check of a
// presented key. No HTTP here: a server asks Authenticate() and applies the Principal.
//
// Roles (what a client is, and what it is scoped to):
//
//   role        tenant                          ncpdp_ids
//   prescriber  required: its tenant            none
//   pharmacy    none                            required: 7-digit NCPDP ids, or the single
//                                               entry "*" (a network hub that speaks for
//                                               every pharmacy: a clearinghouse, the test
//                                               simulator)
//   operator    required: a tenant, or "*"      none
//               (every tenant)
//   metrics     none                            none
//
// Client ids and tenants are 1 to 64 characters of A-Z a-z 0-9 . _ -.
//
// Client certificates. A client may be bound to TLS client certificates (by their SHA-256
// fingerprints, see the clients file below) instead of, or besides, API keys. The chain is
// the TLS server's business (its client CA file); the binding says which client a verified
// certificate is. A request presenting both a key and a bound certificate must name the
// same client with both.
//
// API keys. A key RxFlow makes is "rxf_" + a 12-lowercase-hex key id + "_" + 43 base64url
// characters (256 bits from OpenSSL's CSPRNG): "rxf_0a1b2c3d4e5f_<43 characters>".
// The key id is not secret: it finds the stored record and names the key in lists and logs.
// A key chosen outside RxFlow (the API_KEYS environment) must pass CheckKeyStrength; its key
// id is "h" + the first 11 hex digits of its SHA-256.
//
// Only SHA-256 digests of keys are stored, and a presented key is checked by comparing its
// SHA-256 with the stored digest in constant time. A fast, unsalted hash is right here (a
// slow password hash such as scrypt is not needed) because every accepted key carries at
// least 128 bits of entropy: no dictionary or brute-force search over such keys is feasible,
// however fast each guess, and a slow hash would only make each request slower.
//
// Clients file (LoadFile / SaveFile):
//
//   {"clients":[{"id":"ehr-north","role":"prescriber","tenant":"north",
//     "keys":[{"id":"0a1b2c3d4e5f","sha256":"<64 hex>","created":"2026-11-30T12:00:00Z",
//              "expires":"2027-11-30T12:00:00Z"}]}, ...]}
//
//   - "tenant" for prescribers and operators, "ncpdp_ids" (an array of strings) for
//     pharmacies; "keys" may be empty or absent (a client whose keys were all revoked).
//   - "certificates" (optional, any role): the TLS client certificates bound to the client,
//     each the SHA-256 of the certificate's DER encoding as 64 lowercase hex digits (what
//     `openssl x509 -noout -fingerprint -sha256` prints, without the colons, lowercased; RFC
//     8705's "x5t#S256" in hex). A certificate is bound to one client at most. Behind mutual
//     TLS (the server's --tls-client-ca), a request that presents no key is the client its
//     verified certificate is bound to: a pharmacy authenticates as itself by the
//     certificate its network issued, the way national e-prescribing networks connect.
//   - A key's "id" is 12 lowercase hex digits, or "h" + 11 (a key chosen outside RxFlow);
//     "sha256" is 64 lowercase hex digits; "created" and the optional "expires" are RFC 3339
//     (SaveFile writes UTC with microseconds, "2027-11-30T12:00:00.000000Z"). A key without
//     "expires" never expires; from "expires" on it is refused.
//   - Client ids are unique, and so are key ids across all clients. Unknown members are
//     refused (a misspelt "expires" must not make a key valid forever).
//   Errors are InvalidArgument naming the JSON path:
//     "$.clients[2].tenant: required for the prescriber role".
//
// The file holds no secret (only digests), but SaveFile still writes it 0600 in a 0700
// directory: who can change it can let anyone in.
#ifndef RXFLOW_AUTH_CLIENTS_H_
#define RXFLOW_AUTH_CLIENTS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rxflow/status.h"

namespace rxflow::auth {

enum class Role { kPrescriber, kPharmacy, kOperator, kMetrics };

// "prescriber", "pharmacy", "operator", "metrics".
std::string_view RoleName(Role role);
// The role of one of RoleName's names (exactly); InvalidArgument naming the accepted names.
StatusOr<Role> ParseRole(std::string_view name);

// One API key of a client, as stored: never the key itself.
struct ApiKey {
  std::string id;          // see KeyIdOf
  std::string sha256_hex;  // SHA-256 of the key, 64 lowercase hex digits
  int64_t created_at = 0;  // Unix microseconds
  int64_t expires_at = 0;  // Unix microseconds; 0: never
};

struct Client {
  std::string id;  // [A-Za-z0-9._-]{1,64}
  Role role = Role::kPrescriber;
  // prescriber: required, [A-Za-z0-9._-]{1,64}; operator: such a tenant or "*" (all tenants),
  // required; pharmacy, metrics: empty.
  std::string tenant;
  // pharmacy: required, each exactly 7 digits, or the single entry "*" (speaks for every
  // pharmacy); other roles: empty.
  std::vector<std::string> ncpdp_ids;
  std::vector<ApiKey> keys;
  // The bound TLS client certificates: SHA-256 of each one's DER, 64 lowercase hex digits.
  std::vector<std::string> certificates;
};

// An authenticated caller: its client's identity and scope, and the key it used.
struct Principal {
  std::string client_id;
  Role role = Role::kPrescriber;
  std::string tenant;
  std::vector<std::string> ncpdp_ids;
  // The key's id, or for a client certificate "cert-" + the first 12 hex digits of its
  // fingerprint (not secret either: it names the credential in logs).
  std::string key_id;

  // A pharmacy client that lists `ncpdp_id` or "*". False for every other role.
  bool SpeaksFor(std::string_view ncpdp_id) const;
  // `tenant` is this principal's tenant, or this principal's tenant is "*". A principal
  // without a tenant (pharmacy, metrics) sees none, not even the empty one.
  bool SeesTenant(std::string_view tenant) const;
};

// A new key (shown once, never stored) and its record (stored).
struct GeneratedKey {
  std::string key;
  ApiKey record;
};

// A new "rxf_" key: 12-hex key id from 48 random bits, 256 random bits of secret (OpenSSL's
// RAND_bytes; the process aborts when the CSPRNG fails: there is nothing safe to do).
GeneratedKey GenerateKey(int64_t now_micros, int64_t expires_at_micros = 0);

// For keys chosen outside RxFlow (the API_KEYS environment). OK when `key` is 32 to 512
// printable ASCII characters with no space, control character or '%' (a key is compared as
// it is sent, never percent-decoded), has at least 10 distinct characters, and an estimated
// entropy of at least 128 bits: its length times log2 of the size of the character classes
// it uses (digits 10, lowercase 26, uppercase 26, other printable 32). A 43-character
// base64url key (256 random bits) passes. 32 random lowercase hex digits (165 bits by the
// estimate) pass too, except about 1 in 10 000 that has fewer than 10 distinct digits:
// prefer GenerateKey's keys, or longer hex.
// InvalidArgument naming the rule that failed otherwise; the message never holds the key or
// any part of it.
Status CheckKeyStrength(std::string_view key);

// How logs and security events name a client certificate: "cert-" + the first 12 hex
// digits of its fingerprint (Principal::key_id for a certificate).
std::string CertificateIdOf(std::string_view sha256_hex);

// The key id of a presented key: for "rxf_<12 lowercase hex>_..." the embedded id; for any
// other key "h" + the first 11 hex digits of its SHA-256 (so the two never collide).
std::string KeyIdOf(std::string_view key);

// The SHA-256 fingerprint (64 lowercase hex digits) of the first certificate in `pem` (PEM,
// "-----BEGIN CERTIFICATE-----"), over its DER encoding. InvalidArgument when `pem` holds no
// certificate OpenSSL can read.
StatusOr<std::string> CertificateFingerprint(std::string_view pem);

// The clients and their keys. Not synchronized: mutate one copy, and let a server swap whole
// registries (e.g. std::shared_ptr<const ClientRegistry>); const calls may run concurrently.
class ClientRegistry {
 public:
  ClientRegistry() = default;

  // The clients file (format above). InvalidArgument naming the JSON path.
  static StatusOr<ClientRegistry> FromJson(std::string_view json);
  // FromJson of the file at `path`, its errors prefixed with the path. NotFound when there is
  // no such file; Unavailable when it cannot be read.
  static StatusOr<ClientRegistry> LoadFile(const std::string& path);
  // The clients file, indented; FromJson(ToJson()) gives the same registry. Every client is
  // written, those of AddEnvKeys too: a program that adds environment keys should not save.
  std::string ToJson() const;
  // Writes ToJson() to `path` atomically: into "<path>.tmp" (created 0600 with O_EXCL: an
  // existing one, left by a crash or another writer, is an error naming it), fsync, rename
  // over `path`, fsync of the directory. Missing parent directories are created 0700.
  // Unavailable on an I/O error.
  Status SaveFile(const std::string& path) const;

  // The keys of the API_KEYS environment: each must pass CheckKeyStrength (InvalidArgument
  // "key 2 of 3: ..." otherwise, never quoting the key) and becomes the client
  // "env-<key id>" with `role`, `tenant` and `ncpdp_ids` (checked as Add does) and one key
  // that never expires. Nothing is added unless every key is accepted.
  Status AddEnvKeys(const std::vector<std::string>& keys, Role role, const std::string& tenant,
                    const std::vector<std::string>& ncpdp_ids, int64_t now_micros);
  // Adds a client, checked as FromJson checks one (InvalidArgument naming the path it would
  // have, "$.clients[N]..."); AlreadyExists when its id or one of its key ids is in use.
  Status Add(Client client);
  // Generates a key for the client (NotFound without it). InvalidArgument when
  // `expires_at_micros` is neither 0 (never) nor after `now_micros`.
  StatusOr<GeneratedKey> AddKey(const std::string& client_id, int64_t now_micros,
                                int64_t expires_at_micros = 0);
  // Rotation: adds a new key (as AddKey); every other key of the client that has not expired
  // now expires at min(its expiry, now + overlap), so both work during the overlap and only
  // the new one after. InvalidArgument for a negative overlap.
  StatusOr<GeneratedKey> Rotate(const std::string& client_id, int64_t now_micros,
                                int64_t overlap_micros, int64_t expires_at_micros = 0);
  // Removes one key of the client (`key_id` not empty) or the client with all its keys.
  // NotFound when the client, or that key of it, does not exist.
  Status Revoke(const std::string& client_id, const std::string& key_id = "");
  // Binds a client certificate (its fingerprint, CertificateFingerprint) to the client:
  // NotFound without the client, InvalidArgument for a malformed fingerprint, AlreadyExists
  // when it is bound already (to this client or another).
  Status AddCertificate(const std::string& client_id, const std::string& sha256_hex);
  // Unbinds it. NotFound when the client, or that certificate of it, does not exist.
  Status RemoveCertificate(const std::string& client_id, const std::string& sha256_hex);

  // In insertion (file) order. References and pointers are invalidated by any change.
  const std::vector<Client>& clients() const { return clients_; }
  const Client* Find(std::string_view client_id) const;

  // The principal of a presented key (the bytes as sent: no trimming, no decoding). Finds
  // the record by KeyIdOf (a map), then compares SHA-256(presented_key) with the stored
  // digest with CRYPTO_memcmp; for an unknown id it still makes one comparison, against a
  // dummy digest. Unauthenticated("unknown or expired API key") for an unknown key id, a
  // wrong secret and an expired key (expires_at != 0 && now >= expires_at) alike. Logs
  // nothing.
  StatusOr<Principal> Authenticate(std::string_view presented_key, int64_t now_micros) const;
  // The principal of a verified TLS client certificate, by its fingerprint (lowercase hex, as
  // CertificateFingerprint gives it). Unauthenticated("client certificate not bound to a
  // client") otherwise. The fingerprint is public: no constant-time comparison is needed;
  // what proves the caller holds the certificate's key is the TLS handshake.
  StatusOr<Principal> AuthenticateCertificate(std::string_view sha256_hex) const;

 private:
  struct KeyRef {
    size_t client = 0;  // index into clients_
    size_t key = 0;     // index into clients_[client].keys
  };
  // Checks `client` (its JSON path `at`) and its uniqueness against this registry, then
  // appends it; a duplicate id is reported with `duplicate_code`.
  Status Append(Client client, const std::string& at, absl::StatusCode duplicate_code);
  // Rebuilds the indexes from clients_ after a change.
  void Reindex();
  // A key id that no key of the registry has.
  GeneratedKey NewKey(int64_t now_micros, int64_t expires_at_micros) const;

  std::vector<Client> clients_;
  std::map<std::string, size_t, std::less<>> client_index_;
  std::map<std::string, KeyRef, std::less<>> key_index_;
  std::map<std::string, size_t, std::less<>> certificate_index_;  // fingerprint -> client
};

}  // namespace rxflow::auth

#endif  // RXFLOW_AUTH_CLIENTS_H_
