// SPDX-License-Identifier: Apache-2.0
// File: rxflow/crypto/phi.h
//
// Field-level encryption of PHI at rest (docs/security.md, "PHI at rest"). The NewRx a
// prescription carries (PrescriptionTransformed.newrx_xml, PrescriptionSigned.signed_newrx_xml)
// is the only patient identity in RxFlow's events; everything else stored or published holds
// identifiers, codes and pseudonymous references only. Those two fields are stored encrypted:
//
//   * AES-256-GCM (OpenSSL EVP), a fresh 96-bit nonce per value, associated data = the
//     tenant, the stream, the field, the data key's id and version: a ciphertext moved to
//     another prescription, field or tenant does not decrypt.
//   * One data key per patient: its id is the patient's pseudonymous reference
//     (rxflow::PatientReference, an HMAC under the service's patient key), so destroying it
//     erases that patient's PHI from every prescription at once (crypto-erasure) while the
//     events stay.
//   * Data keys are stored wrapped (store::DataKeys) by a key-encryption key (KEK) that never
//     enters the store: a key file (AES-256-GCM key wrap), a PKCS#11 token
//     (rxflow/pkcs11/token.h: AES-256 on the token, CKM_AES_GCM), or a hybrid ML-KEM-768 +
//     X25519 recipient key (rxflow/crypto/pq.h).
//   * Rotation: a new KEK wraps every new data key at once; Vault::RewrapAll moves the old
//     ones over (the re-encryption job), after which the old KEK can be retired. A data key
//     rotates per patient (Vault::RotateDataKey): new values under the new version, old values
//     readable under theirs.
//
// The stored form of an encrypted value is the text
//   "rxenc1." <key id> "." <version> ["z"] "." base64(nonce || ciphertext || tag)
// in place of the JSON string's contents. A value of 1 KiB or more is compressed (one zstd
// frame, level 1) before it is encrypted when that saves at least an eighth — a NewRx to
// about 37 % — and its version is then followed by "z", which the associated data also binds
// (removing or adding the mark fails authentication). Compression before encryption lets
// the ciphertext's length depend on the content's redundancy; docs/security.md ("PHI at
// rest") says why that is acceptable here. What is encrypted is the value exactly as it stands
// between the quotes of the event's JSON (escapes included), so sealing and opening never
// re-encode the payload.
#ifndef RXFLOW_CRYPTO_PHI_H_
#define RXFLOW_CRYPTO_PHI_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rxflow/clock.h"
#include "rxflow/status.h"
#include "rxflow/store/event_store.h"

namespace rxflow::phi {

inline constexpr std::string_view kEnvelopePrefix = "rxenc1.";
inline constexpr size_t kDataKeyBytes = 32;

// True when `status` says a value's data key was destroyed (crypto-erased), as opposed to
// any other FailedPrecondition (a KEK that is not configured, ...).
bool IsErased(const Status& status);

// True when `value` is an encrypted value ("rxenc1." ...).
inline bool IsSealed(std::string_view value) { return value.starts_with(kEnvelopePrefix); }

// A key-encryption key. Implementations are safe for concurrent use.
class KeyEncryptionKey {
 public:
  virtual ~KeyEncryptionKey() = default;
  // A stable name, stored beside each key it wraps ("file:<16 hex>", "pkcs11:<label>", ...).
  virtual const std::string& id() const = 0;
  // Seals a data key with `aad` authenticated.
  virtual StatusOr<std::string> Wrap(std::string_view key, std::string_view aad) = 0;
  // The data key Wrap sealed; Unauthenticated when `wrapped` or `aad` differ.
  virtual StatusOr<std::string> Unwrap(std::string_view wrapped, std::string_view aad) = 0;
};

// An AES-256 KEK held in memory (tests, tools).
std::unique_ptr<KeyEncryptionKey> NewInMemoryKek(std::string id);

// The AES-256 KEK in `path`, created (0600, directories 0700; never replacing an existing
// file) when the file does not exist. The file: the line "RXFLOW PHI KEK v1" and the base64
// of the 32-byte key. Its id is "file:" and the first 16 hex digits of SHA-256(key).
// PermissionDenied when the file is readable by group or others; InvalidArgument naming what
// is wrong with its contents.
StatusOr<std::unique_ptr<KeyEncryptionKey>> OpenKekFile(const std::string& path);

// A hybrid ML-KEM-768 + X25519 KEK (pq::WrapKey) from `path`, created like OpenKekFile: the
// line "RXFLOW PHI HYBRID KEK v1", then the base64 of the secret and of the public key. Id:
// "hybrid:" and the first 16 hex digits of SHA-256(public key).
StatusOr<std::unique_ptr<KeyEncryptionKey>> OpenHybridKekFile(const std::string& path);

struct VaultOptions {
  // Wraps every new data key, and every key RewrapAll moves. Required.
  std::shared_ptr<KeyEncryptionKey> current;
  // Earlier KEKs: they unwrap the keys they wrapped until RewrapAll has moved them.
  std::vector<std::shared_ptr<KeyEncryptionKey>> retired;
  // Default: SystemClock(). Must outlive the vault.
  Clock* clock = nullptr;
  // Unwrapped data keys kept in memory (per process): at most this many, each for at most
  // `cache_ttl_micros`, so that an erasure made by another process holds here within that
  // time. 0 entries: no cache (every value unwraps its key).
  size_t cache_entries = 4096;
  int64_t cache_ttl_micros = 60'000'000;
};

// What RewrapAll did.
struct RewrapReport {
  int64_t rewrapped = 0;        // versions now wrapped by the current KEK
  int64_t already_current = 0;  // versions found wrapped by it (moved by another job)
};

// Where one value belongs: what its associated data binds.
struct Binding {
  std::string_view tenant;
  std::string_view stream;
  std::string_view field;
};

// The data keys of one store, and sealing and opening with them. Thread-safe.
class Vault {
 public:
  static StatusOr<std::unique_ptr<Vault>> Create(store::DataKeys& keys, VaultOptions options);
  ~Vault();

  // Encrypts `plaintext` under the newest version of `key_id`'s data key, creating the key
  // (version 1) on first use. FailedPrecondition when the key was destroyed (crypto-erased);
  // Unavailable when the store or the KEK's device is.
  StatusOr<std::string> Seal(std::string_view key_id, const Binding& where,
                             std::string_view plaintext);
  // The plaintext of a sealed value. FailedPrecondition ("... was erased") when its key was
  // destroyed; DataLoss when the value is malformed, its key version is missing, or it does
  // not authenticate for `where` (moved or tampered with); Unavailable as Seal.
  StatusOr<std::string> Open(std::string_view sealed, const Binding& where);

  // A new version of `key_id`'s data key: new values are sealed under it, old ones stay
  // readable under theirs. Returns the new version (1 when the key did not exist).
  StatusOr<int> RotateDataKey(const std::string& key_id);
  // The re-encryption job: every data key version not wrapped by the current KEK is unwrapped
  // (by the retired KEK that wrapped it) and wrapped again by the current one, in pages.
  // Fails on the first version no configured KEK unwraps (naming the KEK id it needs).
  StatusOr<RewrapReport> RewrapAll();
  // Crypto-erasure: destroys every version of `key_id`'s data key (the store keeps a
  // tombstone with the time). Returns how many versions were destroyed.
  StatusOr<int64_t> Erase(const std::string& key_id);

  // For writers that store a new key in the same transaction as the first value it seals
  // (NewProtectedStore does, through AppendRequest::data_keys: no separate commit for a new
  // patient). SealExisting seals as Seal does but never creates a key: NotFound when
  // `key_id` has none. Prepare makes version 1 of a new key, wrapped, without storing it;
  // SealWith seals under it; Adopt makes it the vault's once it is stored (after the append
  // committed). A prepared key that lost a race is simply dropped.
  struct NewKey {
    store::WrappedDataKey row;  // what to store
    std::string key;            // the key itself (wiped on destruction)
    ~NewKey();
  };
  StatusOr<std::string> SealExisting(std::string_view key_id, const Binding& where,
                                     std::string_view plaintext);
  StatusOr<std::shared_ptr<NewKey>> Prepare(const std::string& key_id);
  StatusOr<std::string> SealWith(const NewKey& key, const Binding& where,
                                 std::string_view plaintext);
  void Adopt(const NewKey& key);

  const std::string& current_kek_id() const;
  // The newest version of `key_id`'s data key (0 when it has none); an erased key is the
  // FailedPrecondition IsErased names.
  StatusOr<int> NewestVersion(const std::string& key_id);

 private:
  struct Impl;
  explicit Vault(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The data key id of a prescription: its PrescriptionTransformed event's phi_key, else the key
// its sealed NewRx names, else "stream:<id>". NotFound for an unknown prescription. `store`
// may be raw or protected.
StatusOr<std::string> DataKeyIdOf(store::EventStore& store, const std::string& prescription_id);

// What ErasePatientOf did.
struct Erasure {
  std::string key_id;  // the patient's data key id (a pseudonymous reference)
  int64_t versions_destroyed = 0;
  std::string event_id;  // the PatientDataErased event that records it
};

inline constexpr std::string_view kPatientDataErased = "PatientDataErased";
inline constexpr size_t kMaxErasureReasonBytes = 500;

// Crypto-erasure of the patient of `prescription_id`: destroys the patient's data key (so
// the NewRx of every prescription of that patient becomes unreadable, while the events stay)
// and records a PatientDataErased event (key id, prescription, versions destroyed, reason;
// `actor` on the record) in the stream "phi-erasure:<key id>". `reason` is at most 500 bytes
// and must hold no PHI. Erasing again records again (with 0 versions destroyed).
StatusOr<Erasure> ErasePatientOf(store::Store& store, Vault& vault,
                                 const std::string& prescription_id, const std::string& actor,
                                 const std::string& reason, Clock* clock = nullptr);

// What ResealAll did.
struct ResealReport {
  int64_t sealed = 0;  // values stored in plain text (before encryption was turned on), now sealed
  int64_t resealed = 0;  // values under an older data key version, now under the newest
  int64_t erased = 0;    // values whose key was destroyed (left as they are: unreadable)
  int64_t changed = 0;   // events another writer changed meanwhile (left to them)
};

// The re-encryption job for old data, over the raw store (`raw`: what NewProtectedStore wraps):
// every PHI member of the log that is in plain text (written before encryption was turned
// on) is sealed, and every one sealed under an older version of its data key is sealed again
// under the newest, each event replaced in place (store::DataKeys::ReplaceEventPayload,
// compare-and-set). A plain NewRx is sealed under its patient's key: the PatientReference of
// the patient it names, under `patient_key` (the service's), as the service would have;
// "stream:<id>" when it names none. Safe to run while the service runs, and again.
StatusOr<ResealReport> ResealAll(store::Store& raw, Vault& vault, std::string_view patient_key);

// The event fields that hold PHI, by event type: the name of the JSON string member that is
// sealed, or "" for a type without one.
std::string_view PhiFieldOf(std::string_view event_type);

// A store whose PrescriptionTransformed and PrescriptionSigned events are sealed on the way in
// and opened on the way out, for every reader that goes through it (the service, routing,
// EPCS, reports): plaintext PHI reaches neither the database nor anything that copies it
// (backups, replicas, the broker: derived messages carry no PHI). The data key is the one
// named by the event's "phi_key" member (the patient reference the service records), else
// the one of the stream's PrescriptionTransformed event, else "stream:<stream id>". Values
// stored before encryption was turned on are read as they are. A value whose key was erased
// reads as "" (what was there is gone; the event's other members are intact). `target` and
// `vault` must outlive the returned store.
std::unique_ptr<store::Store> NewProtectedStore(store::Store& target, Vault& vault);

}  // namespace rxflow::phi

#endif  // RXFLOW_CRYPTO_PHI_H_
