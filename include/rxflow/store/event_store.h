// SPDX-License-Identifier: Apache-2.0
// File: rxflow/store/event_store.h
//
// The storage ports of RxFlow's event-sourced core. Adapters (memory, SQLite, PostgreSQL)
// implement them and pass one contract suite (tests/contract/). Every method is safe for
// concurrent use unless it says otherwise.
//
// Guarantees every adapter gives:
//   * Append writes a stream's events and (optionally) an idempotency key in ONE atomic,
//     durable transaction: when Append returns OK, all of it survives a crash; when it
//     fails, none of it exists.
//   * Versions of a stream are 1, 2, 3, ... without gaps; `expected_version` makes appends
//     optimistic: a stale writer gets Aborted and must re-read.
//   * Global positions increase in commit order, and an event is visible to ReadAll only
//     once every event before it is: a reader tailing the log from a position never skips
//     one. ReadAll(from) returns every event once.
//   * The event log is the outbox: what an event means for other systems is derived from it
//     by a subscription (the relay, runtime/outbox_relay.h) that reads the log from its
//     checkpoint. Subscriptions keep that checkpoint, and a lease that makes one reader of a
//     subscription active across processes.
//   * The inbox records (consumer, message id) in the same transaction as the effect the
//     caller passes, so a message's effect happens exactly once.
//
// Status codes: Aborted (version conflict: re-read and retry), AlreadyExists (idempotency
// key, inbox duplicate, or a duplicate event id), FailedPrecondition (a subscription's lease
// is held by another reader), Unavailable (store down:
// retry with backoff), NotFound, InvalidArgument (caller error), DataLoss (a stored record cannot
// be decoded).
#ifndef RXFLOW_STORE_EVENT_STORE_H_
#define RXFLOW_STORE_EVENT_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <absl/functional/any_invocable.h>

#include "rxflow/clock.h"
#include "rxflow/status.h"

namespace rxflow::store {

// One stored event. The store assigns `global_position`; the caller fills the rest.
struct EventRecord {
  std::string event_id;   // unique across the store (UUID)
  std::string stream_id;  // the aggregate (prescription) id
  int64_t version = 0;    // 1-based position within the stream
  int64_t global_position = 0;
  std::string type;         // "PrescriptionReceived", ...
  int schema_version = 1;   // of `type`'s payload; old versions are upcast on read
  int64_t occurred_at = 0;  // microseconds since the epoch (from the injected Clock)
  std::string correlation_id;
  std::string causation_id;
  std::string actor;
  std::string tenant;
  std::string traceparent;  // W3C trace context
  std::string payload;      // JSON

  friend bool operator==(const EventRecord&, const EventRecord&) = default;
};

// Append expectations: an exact version, or one of these.
inline constexpr int64_t kNoStream = 0;     // the stream must not exist yet
inline constexpr int64_t kAnyVersion = -1;  // no check (used only by tests and tools)

// A data key as stored: wrapped (encrypted) by a key-encryption key that never enters the
// store (rxflow/crypto/phi.h). `key_id` names whose key it is (a patient's pseudonymous
// reference); versions are 1, 2, ... (a rotation adds one). A destroyed key leaves one
// tombstone row: version 0, empty `wrapped`, `kek_id` "destroyed", `created_at` = when.
struct WrappedDataKey {
  std::string key_id;
  int version = 0;
  std::string kek_id;   // which key-encryption key wrapped it
  std::string wrapped;  // the wrapped key (binary)
  int64_t created_at = 0;

  friend bool operator==(const WrappedDataKey&, const WrappedDataKey&) = default;
};

struct AppendRequest {
  std::string stream_id;
  int64_t expected_version = kNoStream;
  std::vector<EventRecord> events;  // versions expected_version+1, +2, ... (filled in)
  // When set, recorded with the stream; a second append with the same key fails with
  // AlreadyExists naming the existing stream (idempotent submit).
  std::string idempotency_key;
  // New data keys (rxflow/crypto/phi.h) the events are sealed under, stored in the same
  // transaction: the key is durable exactly when what it seals is. When one exists already
  // (or was destroyed) the append fails with AlreadyExists, message "data key exists: <id>",
  // and writes nothing.
  std::vector<WrappedDataKey> data_keys;
};

// The message prefix of an append refused because one of its data keys exists.
inline constexpr std::string_view kDataKeyExists = "data key exists: ";

struct AppendResult {
  int64_t last_version = 0;
  int64_t last_global_position = 0;
};

struct Snapshot {
  std::string stream_id;
  int64_t version = 0;
  std::string state;  // the aggregate's serialized state at `version`
};

class EventStore {
 public:
  virtual ~EventStore() = default;

  // Atomically appends events and the idempotency key. Assigns versions
  // expected_version+1.. (or the stream's next ones for kAnyVersion) and global positions.
  // Aborted when the stream's version is not `expected_version`; AlreadyExists (message
  // "idempotency key exists: <stream id>") when the key is taken.
  virtual StatusOr<AppendResult> Append(AppendRequest request) = 0;

  // What AppendAsync calls with the append's outcome: what Append would have returned.
  using AppendDone = absl::AnyInvocable<void(StatusOr<AppendResult>)>;

  // Append without waiting for it: `done` is called exactly once, with what Append would
  // return, once the transaction committed durably (or failed). It may run on the store's
  // own thread (SQLite, PostgreSQL: the writer, after its batch's commit, while the next one
  // waits: keep it short, and never make one of the store's writes (PostgreSQL: appends) from
  // it — it would wait for the thread it runs on, and fails with FailedPrecondition instead),
  // or on the caller's thread before AppendAsync returns (this default, which is Append; the
  // memory store, and PostgreSQL for an append bringing new data keys). A decorator that
  // overrides Append alone sees async appends there too: StoreWrapper keeps this default.
  virtual void AppendAsync(AppendRequest request, AppendDone done) {
    done(Append(std::move(request)));
  }

  // The events of a stream with version > `after_version`, in order. An unknown stream
  // yields an empty list.
  virtual StatusOr<std::vector<EventRecord>> ReadStream(const std::string& stream_id,
                                                        int64_t after_version = 0) = 0;

  // Up to `limit` events with global position > `after_position`, in order.
  virtual StatusOr<std::vector<EventRecord>> ReadAll(int64_t after_position, size_t limit) = 0;

  // The stream holding `idempotency_key`, or NotFound.
  virtual StatusOr<std::string> FindByIdempotencyKey(const std::string& idempotency_key) = 0;

  // Snapshots: the latest one stored for a stream (NotFound if none).
  virtual Status SaveSnapshot(const Snapshot& snapshot) = 0;
  virtual StatusOr<Snapshot> LoadSnapshot(const std::string& stream_id) = 0;
};

// The subscription the outbox relay keeps (stores upgraded from a release that wrote outbox
// rows start it where their pending rows began: docs/event-model.md, "Upgrading").
inline constexpr const char* kRelaySubscription = "outbox-relay";

// What every adapter checks first in AcquireLease and CommitCheckpoint: an empty name or
// owner is InvalidArgument ("" is the owner of a released lease, so it can hold nothing).
inline Status ValidateLeaseArguments(const char* operation, const std::string& name,
                                     const std::string& owner) {
  if (!name.empty() && !owner.empty()) return Status();
  return absl::InvalidArgumentError(std::string(operation) + ": " +
                                    (name.empty() ? "the subscription name" : "the owner") +
                                    " is empty");
}

// Readers of the event log that keep their place: a checkpoint per subscription, and a lease
// so that one reader of a subscription is active at a time across processes (the others
// stand by and take over when its lease runs out).
class Subscriptions {
 public:
  virtual ~Subscriptions() = default;
  // Takes the lease on subscription `name` for `owner` until now + ttl, or renews it when
  // `owner` holds it (InvalidArgument for an empty name or owner, here and in
  // CommitCheckpoint). True when `owner` holds the lease afterwards; false while another
  // owner's lease has not run out.
  virtual StatusOr<bool> AcquireLease(const std::string& name, const std::string& owner,
                                      int64_t ttl_micros) = 0;
  // Gives the lease up if `owner` holds it, so that a standby may take it at once.
  virtual Status ReleaseLease(const std::string& name, const std::string& owner) = 0;
  // The global position up to which `name` has handled the log (0: from the start).
  virtual StatusOr<int64_t> SubscriptionCheckpoint(const std::string& name) = 0;
  // Stores `position` as the checkpoint of `name` and renews the lease until now + ttl, if
  // `owner` holds the lease; FailedPrecondition (nothing stored) when it does not: another
  // reader took over, and this one must stop. A position below the stored one is Aborted.
  virtual Status CommitCheckpoint(const std::string& name, const std::string& owner,
                                  int64_t position, int64_t ttl_micros) = 0;
  // The log's head: the highest global position (0 when the log is empty).
  virtual StatusOr<int64_t> HeadPosition() = 0;
};

// The effect a consumer applies with an inbox entry, inside the store's transaction. It
// may append events (through the `EventStore` it is given, which joins the transaction).
using InboxEffect = std::function<Status(EventStore& in_transaction)>;

class Inbox {
 public:
  virtual ~Inbox() = default;
  // Runs `effect` and records (consumer, message_id) in one transaction. AlreadyExists
  // (without running the effect) when this consumer processed the message before.
  virtual Status Process(const std::string& consumer, const std::string& message_id,
                         const InboxEffect& effect) = 0;
};

// A read model with its checkpoint, both written in one transaction.
class ProjectionStore {
 public:
  virtual ~ProjectionStore() = default;
  // The global position the projection `name` has applied up to (0 if never).
  virtual StatusOr<int64_t> Checkpoint(const std::string& name) = 0;
  // Upserts rows (key → JSON document) and moves the checkpoint, atomically.
  virtual Status Apply(const std::string& name, int64_t checkpoint,
                       std::span<const std::pair<std::string, std::string>> rows) = 0;
  virtual StatusOr<std::string> Get(const std::string& name, const std::string& key) = 0;
  // Every row of the projection, by key.
  virtual StatusOr<std::vector<std::pair<std::string, std::string>>> All(
      const std::string& name) = 0;
  // Drops the projection's rows and checkpoint (for a rebuild).
  virtual Status Reset(const std::string& name) = 0;
};

// The data keys of field-level encryption (docs/security.md, "PHI at rest"). Rows are few and
// small; unlike events they are mutable, because crypto-erasure must really delete a key:
// adapters delete in place (SQLite with secure_delete, so the freed bytes are zeroed).
class DataKeys {
 public:
  virtual ~DataKeys() = default;
  // Stores a new version. AlreadyExists when (key_id, version) exists or the key was
  // destroyed (a racing creator lost: read the versions again); InvalidArgument for a version
  // below 1 or an empty key id, kek id or wrapped key.
  virtual Status PutDataKey(const WrappedDataKey& key) = 0;
  // Every version of `key_id`, oldest first (a destroyed key: its tombstone alone); empty
  // when there is none.
  virtual StatusOr<std::vector<WrappedDataKey>> DataKeyVersions(const std::string& key_id) = 0;
  // Replaces the wrapping of an existing version (a key-encryption key rotated), when it is
  // still wrapped by `expected_kek_id`. NotFound when the version is gone; Aborted when
  // another writer rewrapped it first.
  virtual Status RewrapDataKey(const WrappedDataKey& key, const std::string& expected_kek_id) = 0;
  // Deletes every version of `key_id` and leaves its tombstone (stamped `destroyed_at`).
  // Returns how many versions were deleted (0 when none existed or it was destroyed before).
  virtual StatusOr<int64_t> DestroyDataKeys(const std::string& key_id, int64_t destroyed_at) = 0;
  // Up to `limit` live versions wrapped by a key-encryption key other than `kek_id`, ordered
  // by (key_id, version), after (`after_key_id`, `after_version`): the rewrap job's pages.
  virtual StatusOr<std::vector<WrappedDataKey>> DataKeysNotWrappedBy(
      const std::string& kek_id, const std::string& after_key_id, int after_version,
      size_t limit) = 0;
  // The one change the event log allows in place: an event's payload with a PHI member sealed
  // or sealed again (phi::ResealAll), everything else about the event unchanged.
  // Compare-and-set: Aborted when the stored payload is no longer `expected`; NotFound for an
  // unknown event id.
  virtual Status ReplaceEventPayload(const std::string& event_id, const std::string& expected,
                                     const std::string& replacement) = 0;
};

// What every adapter checks first in PutDataKey and RewrapDataKey.
inline Status ValidateDataKey(const WrappedDataKey& k) {
  if (k.key_id.empty()) return absl::InvalidArgumentError("data key: the key id is empty");
  if (k.version < 1) return absl::InvalidArgumentError("data key: the version is below 1");
  if (k.kek_id.empty() || k.kek_id == "destroyed") {
    return absl::InvalidArgumentError("data key: the key-encryption key id is empty or reserved");
  }
  if (k.wrapped.empty()) return absl::InvalidArgumentError("data key: the wrapped key is empty");
  return absl::OkStatus();
}
inline constexpr const char* kDestroyedKek = "destroyed";

// What RewrapDataKey answers when its compare-and-set did not apply: Aborted when the
// version exists (wrapped by another KEK now), NotFound when it does not (destroyed).
inline Status RewrapRefused(const WrappedDataKey& k, bool version_exists) {
  std::string what = "data key " + k.key_id + " version " + std::to_string(k.version);
  if (version_exists) return absl::AbortedError(what + " is wrapped by another key now");
  return absl::NotFoundError("no " + what);
}

// What ReplaceEventPayload answers when its compare-and-set did not apply: Aborted when the
// event exists (its payload changed), NotFound when it does not.
inline Status PayloadReplaceRefused(const std::string& event_id, bool event_exists) {
  if (event_exists) return absl::AbortedError("event " + event_id + ": its payload changed");
  return absl::NotFoundError("no event " + event_id);
}

// One store implementing every port (what adapters return).
class Store : public EventStore,
              public Subscriptions,
              public Inbox,
              public ProjectionStore,
              public DataKeys {};

// Forwarding base for decorators (metrics, fault injection): override what you need.
// AppendAsync is not forwarded: it goes through this decorator's Append (EventStore's
// default), so that a decorator overriding Append alone sees every append; one that wants
// the target's own asynchronous append overrides AppendAsync too.
class StoreWrapper : public Store {
 public:
  explicit StoreWrapper(Store& target) : target_(target) {}
  StatusOr<AppendResult> Append(AppendRequest r) override { return target_.Append(std::move(r)); }
  StatusOr<std::vector<EventRecord>> ReadStream(const std::string& s, int64_t after) override {
    return target_.ReadStream(s, after);
  }
  StatusOr<std::vector<EventRecord>> ReadAll(int64_t after, size_t limit) override {
    return target_.ReadAll(after, limit);
  }
  StatusOr<std::string> FindByIdempotencyKey(const std::string& k) override {
    return target_.FindByIdempotencyKey(k);
  }
  Status SaveSnapshot(const Snapshot& s) override { return target_.SaveSnapshot(s); }
  StatusOr<Snapshot> LoadSnapshot(const std::string& s) override { return target_.LoadSnapshot(s); }
  StatusOr<bool> AcquireLease(const std::string& n, const std::string& o, int64_t ttl) override {
    return target_.AcquireLease(n, o, ttl);
  }
  Status ReleaseLease(const std::string& n, const std::string& o) override {
    return target_.ReleaseLease(n, o);
  }
  StatusOr<int64_t> SubscriptionCheckpoint(const std::string& n) override {
    return target_.SubscriptionCheckpoint(n);
  }
  Status CommitCheckpoint(const std::string& n, const std::string& o, int64_t position,
                          int64_t ttl) override {
    return target_.CommitCheckpoint(n, o, position, ttl);
  }
  StatusOr<int64_t> HeadPosition() override { return target_.HeadPosition(); }
  Status Process(const std::string& c, const std::string& m, const InboxEffect& e) override {
    return target_.Process(c, m, e);
  }
  StatusOr<int64_t> Checkpoint(const std::string& n) override { return target_.Checkpoint(n); }
  Status Apply(const std::string& n, int64_t cp,
               std::span<const std::pair<std::string, std::string>> rows) override {
    return target_.Apply(n, cp, rows);
  }
  StatusOr<std::string> Get(const std::string& n, const std::string& k) override {
    return target_.Get(n, k);
  }
  StatusOr<std::vector<std::pair<std::string, std::string>>> All(const std::string& n) override {
    return target_.All(n);
  }
  Status Reset(const std::string& n) override { return target_.Reset(n); }
  Status PutDataKey(const WrappedDataKey& k) override { return target_.PutDataKey(k); }
  StatusOr<std::vector<WrappedDataKey>> DataKeyVersions(const std::string& id) override {
    return target_.DataKeyVersions(id);
  }
  Status RewrapDataKey(const WrappedDataKey& k, const std::string& expected) override {
    return target_.RewrapDataKey(k, expected);
  }
  StatusOr<int64_t> DestroyDataKeys(const std::string& id, int64_t at) override {
    return target_.DestroyDataKeys(id, at);
  }
  StatusOr<std::vector<WrappedDataKey>> DataKeysNotWrappedBy(const std::string& kek,
                                                             const std::string& after_id,
                                                             int after_version,
                                                             size_t limit) override {
    return target_.DataKeysNotWrappedBy(kek, after_id, after_version, limit);
  }
  Status ReplaceEventPayload(const std::string& id, const std::string& expected,
                             const std::string& replacement) override {
    return target_.ReplaceEventPayload(id, expected, replacement);
  }

 protected:
  Store& target_;
};

// The in-memory store: the reference implementation, with the same atomicity as the
// durable adapters (nothing survives the process). `clock` must outlive the store.
std::unique_ptr<Store> NewMemoryStore(Clock& clock);

}  // namespace rxflow::store

#endif  // RXFLOW_STORE_EVENT_STORE_H_
