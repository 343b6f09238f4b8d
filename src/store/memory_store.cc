// SPDX-License-Identifier: Apache-2.0
// The in-memory store: the reference implementation of the storage ports. One mutex;
// every operation is atomic, and an inbox effect runs against a staging view whose appends
// commit together with the inbox record, or not at all.
#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/store/event_store.h"

namespace rxflow::store {
namespace {

using internal::Cat;

struct Subscription {
  int64_t position = 0;
  std::string owner;
  int64_t lease_until = 0;  // micros; the owner's lease ends then
};

struct Projection {
  int64_t checkpoint = 0;
  std::map<std::string, std::string> rows;
};

struct State {
  std::map<std::string, std::vector<EventRecord>, std::less<>> streams;
  std::vector<EventRecord> all;
  std::set<std::string, std::less<>> event_ids;
  std::map<std::string, std::string, std::less<>> idempotency;
  std::map<std::string, Snapshot, std::less<>> snapshots;
  std::set<std::pair<std::string, std::string>> inbox;
  std::map<std::string, Projection, std::less<>> projections;
  std::map<std::string, Subscription, std::less<>> subscriptions;
  std::map<std::string, std::vector<WrappedDataKey>> keys;  // by key id, versions ascending
};

// AlreadyExists when `k` may not be stored: its version exists or the key was destroyed.
Status CheckNewDataKey(const State& state, const WrappedDataKey& k) {
  RXFLOW_RETURN_IF_ERROR(ValidateDataKey(k));
  if (auto it = state.keys.find(k.key_id); it != state.keys.end()) {
    for (const WrappedDataKey& old : it->second) {
      if (old.version == k.version || old.version == 0) {
        return absl::AlreadyExistsError(Cat(kDataKeyExists, k.key_id));
      }
    }
  }
  return absl::OkStatus();
}

void StoreDataKey(State& state, const WrappedDataKey& k) {
  std::vector<WrappedDataKey>& versions = state.keys[k.key_id];
  versions.push_back(k);
  std::sort(versions.begin(), versions.end(),
            [](const auto& a, const auto& b) { return a.version < b.version; });
}

// Validates `req` against `state` plus what `staged` already adds; fills versions.
Status Check(const State& state, const std::vector<AppendRequest>& staged, AppendRequest& req) {
  if (req.stream_id.empty()) return absl::InvalidArgumentError("append: stream id is empty");
  int64_t current = 0;
  if (auto it = state.streams.find(req.stream_id); it != state.streams.end()) {
    current = static_cast<int64_t>(it->second.size());
  }
  for (const AppendRequest& s : staged) {
    if (s.stream_id == req.stream_id) current += static_cast<int64_t>(s.events.size());
  }
  if (req.expected_version != kAnyVersion && req.expected_version != current) {
    return absl::AbortedError(Cat("version conflict on stream ", req.stream_id, ": expected ",
                                  req.expected_version, ", current ", current));
  }
  if (!req.idempotency_key.empty()) {
    auto it = state.idempotency.find(req.idempotency_key);
    if (it != state.idempotency.end()) {
      return absl::AlreadyExistsError(Cat("idempotency key exists: ", it->second));
    }
    for (const AppendRequest& s : staged) {
      if (s.idempotency_key == req.idempotency_key) {
        return absl::AlreadyExistsError(Cat("idempotency key exists: ", s.stream_id));
      }
    }
  }
  for (const WrappedDataKey& k : req.data_keys) {
    RXFLOW_RETURN_IF_ERROR(CheckNewDataKey(state, k));
    for (const AppendRequest& s : staged) {
      for (const WrappedDataKey& x : s.data_keys) {
        if (x.key_id == k.key_id) return absl::AlreadyExistsError(Cat(kDataKeyExists, k.key_id));
      }
    }
  }
  std::set<std::string_view> ids;
  for (EventRecord& e : req.events) {
    if (e.event_id.empty()) return absl::InvalidArgumentError("append: an event has no id");
    bool staged_dup = false;
    for (const AppendRequest& s : staged) {
      for (const EventRecord& x : s.events) staged_dup |= x.event_id == e.event_id;
    }
    if (state.event_ids.count(e.event_id) || staged_dup || !ids.insert(e.event_id).second) {
      return absl::AlreadyExistsError(Cat("event id exists: ", e.event_id));
    }
    e.stream_id = req.stream_id;
    e.version = ++current;
  }
  return absl::OkStatus();
}

AppendResult Commit(State& state, AppendRequest& req) {
  auto& stream = state.streams[req.stream_id];
  AppendResult result;
  for (EventRecord& e : req.events) {
    e.global_position = static_cast<int64_t>(state.all.size()) + 1;
    state.event_ids.insert(e.event_id);
    state.all.push_back(e);
    stream.push_back(e);
    result.last_version = e.version;
    result.last_global_position = e.global_position;
  }
  if (req.events.empty()) result.last_version = static_cast<int64_t>(stream.size());
  if (stream.empty()) state.streams.erase(req.stream_id);
  if (!req.idempotency_key.empty()) state.idempotency[req.idempotency_key] = req.stream_id;
  for (const WrappedDataKey& k : req.data_keys) StoreDataKey(state, k);
  return result;
}

std::vector<EventRecord> ReadStreamLocked(const State& state,
                                          const std::vector<AppendRequest>* staged,
                                          const std::string& stream_id, int64_t after_version) {
  std::vector<EventRecord> out;
  if (auto it = state.streams.find(stream_id); it != state.streams.end()) {
    for (const EventRecord& e : it->second) {
      if (e.version > after_version) out.push_back(e);
    }
  }
  if (staged) {
    for (const AppendRequest& s : *staged) {
      if (s.stream_id != stream_id) continue;
      for (const EventRecord& e : s.events) {
        if (e.version > after_version) out.push_back(e);
      }
    }
  }
  return out;
}

class MemoryStore;

// The EventStore an inbox effect sees: reads include its own staged appends; appends are
// staged and commit with the inbox record.
class StagingView : public EventStore {
 public:
  explicit StagingView(State& state) : state_(state) {}
  StatusOr<AppendResult> Append(AppendRequest request) override {
    RXFLOW_RETURN_IF_ERROR(Check(state_, staged_, request));
    AppendResult r;
    r.last_version = request.events.empty() ? 0 : request.events.back().version;
    staged_.push_back(std::move(request));
    return r;
  }
  StatusOr<std::vector<EventRecord>> ReadStream(const std::string& stream_id,
                                                int64_t after_version) override {
    return ReadStreamLocked(state_, &staged_, stream_id, after_version);
  }
  StatusOr<std::vector<EventRecord>> ReadAll(int64_t, size_t) override {
    return absl::UnimplementedError("ReadAll inside an inbox effect");
  }
  StatusOr<std::string> FindByIdempotencyKey(const std::string& key) override {
    if (auto it = state_.idempotency.find(key); it != state_.idempotency.end()) return it->second;
    for (const AppendRequest& s : staged_) {
      if (s.idempotency_key == key) return s.stream_id;
    }
    return absl::NotFoundError(Cat("no stream for idempotency key ", key));
  }
  Status SaveSnapshot(const Snapshot&) override {
    return absl::UnimplementedError("snapshots inside an inbox effect");
  }
  StatusOr<Snapshot> LoadSnapshot(const std::string& stream_id) override {
    return absl::UnimplementedError("snapshots inside an inbox effect");
  }
  std::vector<AppendRequest>& staged() { return staged_; }

 private:
  State& state_;
  std::vector<AppendRequest> staged_;
};

class MemoryStore : public Store {
 public:
  explicit MemoryStore(Clock& clock) : clock_(clock) {}

  StatusOr<AppendResult> Append(AppendRequest request) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = Check(state_, {}, request); !s.ok()) return s;
    return Commit(state_, request);
  }

  StatusOr<std::vector<EventRecord>> ReadStream(const std::string& stream_id,
                                                int64_t after_version) override {
    std::lock_guard<std::mutex> lock(mu_);
    return ReadStreamLocked(state_, nullptr, stream_id, after_version);
  }

  StatusOr<std::vector<EventRecord>> ReadAll(int64_t after_position, size_t limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<EventRecord> out;
    for (size_t i = static_cast<size_t>(std::max<int64_t>(after_position, 0));
         i < state_.all.size() && out.size() < limit; ++i) {
      out.push_back(state_.all[i]);
    }
    return out;
  }

  StatusOr<std::string> FindByIdempotencyKey(const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = state_.idempotency.find(key); it != state_.idempotency.end()) return it->second;
    return absl::NotFoundError(Cat("no stream for idempotency key ", key));
  }

  Status SaveSnapshot(const Snapshot& snapshot) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = state_.snapshots.find(snapshot.stream_id);
    if (it == state_.snapshots.end() || it->second.version <= snapshot.version) {
      state_.snapshots[snapshot.stream_id] = snapshot;
    }
    return absl::OkStatus();
  }

  StatusOr<Snapshot> LoadSnapshot(const std::string& stream_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = state_.snapshots.find(stream_id); it != state_.snapshots.end()) return it->second;
    return absl::NotFoundError(Cat("no snapshot for stream ", stream_id));
  }

  StatusOr<bool> AcquireLease(const std::string& name, const std::string& owner,
                              int64_t ttl_micros) override {
    RXFLOW_RETURN_IF_ERROR(ValidateLeaseArguments("acquire lease", name, owner));
    std::lock_guard<std::mutex> lock(mu_);
    int64_t now = clock_.NowMicros();
    Subscription& sub = state_.subscriptions[name];
    if (sub.owner != owner && sub.lease_until > now) return false;
    sub.owner = owner;
    sub.lease_until = now + ttl_micros;
    return true;
  }

  Status ReleaseLease(const std::string& name, const std::string& owner) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = state_.subscriptions.find(name);
    if (it != state_.subscriptions.end() && it->second.owner == owner) {
      it->second.owner.clear();
      it->second.lease_until = 0;
    }
    return absl::OkStatus();
  }

  StatusOr<int64_t> SubscriptionCheckpoint(const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = state_.subscriptions.find(name);
    return it == state_.subscriptions.end() ? 0 : it->second.position;
  }

  Status CommitCheckpoint(const std::string& name, const std::string& owner, int64_t position,
                          int64_t ttl_micros) override {
    RXFLOW_RETURN_IF_ERROR(ValidateLeaseArguments("commit checkpoint", name, owner));
    std::lock_guard<std::mutex> lock(mu_);
    int64_t now = clock_.NowMicros();
    auto it = state_.subscriptions.find(name);
    if (it == state_.subscriptions.end() || it->second.owner != owner) {
      // Take the lease first; a lapsed lease of one's own may still be renewed here.
      return absl::FailedPreconditionError(
          Cat("subscription ", name, " is held by another reader, not ", owner));
    }
    Subscription& sub = it->second;
    if (position < sub.position) {
      return absl::AbortedError(
          Cat("subscription ", name, " is at ", sub.position, ", not moving back to ", position));
    }
    sub.position = position;
    sub.lease_until = now + ttl_micros;
    return absl::OkStatus();
  }

  StatusOr<int64_t> HeadPosition() override {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int64_t>(state_.all.size());
  }

  Status Process(const std::string& consumer, const std::string& message_id,
                 const InboxEffect& effect) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_.inbox.count({consumer, message_id})) {
      return absl::AlreadyExistsError(
          Cat("message ", message_id, " already processed by ", consumer));
    }
    StagingView view(state_);
    RXFLOW_RETURN_IF_ERROR(effect(view));  // nothing staged is kept
    for (AppendRequest& r : view.staged()) Commit(state_, r);
    state_.inbox.insert({consumer, message_id});
    return absl::OkStatus();
  }

  StatusOr<int64_t> Checkpoint(const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = state_.projections.find(name);
    return it == state_.projections.end() ? 0 : it->second.checkpoint;
  }

  Status Apply(const std::string& name, int64_t checkpoint,
               std::span<const std::pair<std::string, std::string>> rows) override {
    std::lock_guard<std::mutex> lock(mu_);
    Projection& p = state_.projections[name];
    if (checkpoint < p.checkpoint) {
      return absl::AbortedError(
          Cat("projection ", name, " is at ", p.checkpoint, ", not moving back to ", checkpoint));
    }
    for (const auto& [k, v] : rows) p.rows[k] = v;
    p.checkpoint = checkpoint;
    return absl::OkStatus();
  }

  StatusOr<std::string> Get(const std::string& name, const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = state_.projections.find(name);
    if (it != state_.projections.end()) {
      if (auto r = it->second.rows.find(key); r != it->second.rows.end()) return r->second;
    }
    return absl::NotFoundError(Cat("no row ", key, " in projection ", name));
  }

  StatusOr<std::vector<std::pair<std::string, std::string>>> All(const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::pair<std::string, std::string>> out;
    if (auto it = state_.projections.find(name); it != state_.projections.end()) {
      out.assign(it->second.rows.begin(), it->second.rows.end());
    }
    return out;
  }

  Status Reset(const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    state_.projections.erase(name);
    return absl::OkStatus();
  }

  Status PutDataKey(const WrappedDataKey& key) override {
    RXFLOW_RETURN_IF_ERROR(ValidateDataKey(key));
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<WrappedDataKey>& versions = state_.keys[key.key_id];
    for (const WrappedDataKey& k : versions) {
      if (k.version == key.version || k.version == 0) {
        return absl::AlreadyExistsError(Cat("data key ", key.key_id, " version ", key.version,
                                            k.version == 0 ? " was destroyed" : " exists"));
      }
    }
    versions.push_back(key);
    std::sort(versions.begin(), versions.end(),
              [](const auto& a, const auto& b) { return a.version < b.version; });
    return absl::OkStatus();
  }

  StatusOr<std::vector<WrappedDataKey>> DataKeyVersions(const std::string& key_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = state_.keys.find(key_id);
    return it == state_.keys.end() ? std::vector<WrappedDataKey>() : it->second;
  }

  Status RewrapDataKey(const WrappedDataKey& key, const std::string& expected_kek_id) override {
    RXFLOW_RETURN_IF_ERROR(ValidateDataKey(key));
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = state_.keys.find(key.key_id); it != state_.keys.end()) {
      for (WrappedDataKey& k : it->second) {
        if (k.version != key.version) continue;
        if (k.kek_id != expected_kek_id) return RewrapRefused(key, true);
        k.kek_id = key.kek_id;
        k.wrapped = key.wrapped;
        return absl::OkStatus();
      }
    }
    return RewrapRefused(key, false);
  }

  StatusOr<int64_t> DestroyDataKeys(const std::string& key_id, int64_t destroyed_at) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<WrappedDataKey>& versions = state_.keys[key_id];
    int64_t n = 0;
    for (const WrappedDataKey& k : versions) n += k.version > 0 ? 1 : 0;
    if (n == 0 && !versions.empty()) return 0;  // destroyed before: keep the first stamp
    versions.assign(1, WrappedDataKey{key_id, 0, kDestroyedKek, "", destroyed_at});
    return n;
  }

  Status ReplaceEventPayload(const std::string& event_id, const std::string& expected,
                             const std::string& replacement) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (EventRecord& e : state_.all) {
      if (e.event_id != event_id) continue;
      if (e.payload != expected) return PayloadReplaceRefused(event_id, true);
      e.payload = replacement;
      for (EventRecord& s : state_.streams[e.stream_id]) {
        if (s.event_id == event_id) s.payload = replacement;
      }
      return absl::OkStatus();
    }
    return PayloadReplaceRefused(event_id, false);
  }

  StatusOr<std::vector<WrappedDataKey>> DataKeysNotWrappedBy(const std::string& kek_id,
                                                             const std::string& after_key_id,
                                                             int after_version,
                                                             size_t limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<WrappedDataKey> out;
    for (auto it = state_.keys.lower_bound(after_key_id);
         it != state_.keys.end() && out.size() < limit; ++it) {
      for (const WrappedDataKey& k : it->second) {
        if (k.version == 0 || k.kek_id == kek_id) continue;
        if (it->first == after_key_id && k.version <= after_version) continue;
        if (out.size() < limit) out.push_back(k);
      }
    }
    return out;
  }

 private:
  Clock& clock_;
  std::mutex mu_;
  State state_;
};

}  // namespace

std::unique_ptr<Store> NewMemoryStore(Clock& clock) { return std::make_unique<MemoryStore>(clock); }

}  // namespace rxflow::store
