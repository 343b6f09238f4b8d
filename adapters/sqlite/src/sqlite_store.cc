// SPDX-License-Identifier: Apache-2.0
// SQLite store: WAL + synchronous=FULL, one writer thread with group commit, pooled
// reader connections, and a checkpointer thread on its own connection (so WAL checkpoints
// never stall the writer).
#include "rxflow/sqlite/sqlite_store.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

#include <absl/strings/match.h>
#include <sqlite3.h>

#include "rxflow/internal/crypto.h"
#include "rxflow/internal/one_shot_event.h"
#include "rxflow/internal/status_macros.h"

#include "sqlite_db.h"
#include "wal_gather_vfs.h"
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rxflow::store {
namespace {

using sqlite_internal::Db;
using sqlite_internal::Stmt;

// Only the indexes a read path uses: events' primary key (global_position) serves ReadAll
// and HeadPosition, UNIQUE (stream_id, version) serves ReadStream and the current-version
// query of Append; event_id UNIQUE is a constraint. The other tables are read by their
// primary keys; those with small rows keyed by text are WITHOUT ROWID (one B-tree instead of
// a table plus its key index: half the pages an insert writes). Stores created by 0.1.0 keep
// their rowid tables, which behave the same.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS events (
  global_position INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL UNIQUE,
  stream_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  type TEXT NOT NULL,
  schema_version INTEGER NOT NULL,
  occurred_at INTEGER NOT NULL,
  correlation_id TEXT NOT NULL, causation_id TEXT NOT NULL, actor TEXT NOT NULL,
  tenant TEXT NOT NULL, traceparent TEXT NOT NULL,
  payload TEXT NOT NULL,
  UNIQUE (stream_id, version));
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, stream_id TEXT NOT NULL)
  WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (stream_id TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (name TEXT PRIMARY KEY,
  position INTEGER NOT NULL DEFAULT 0,
  owner TEXT NOT NULL DEFAULT '', lease_until INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS inbox (consumer TEXT NOT NULL, message_id TEXT NOT NULL,
  processed_at INTEGER NOT NULL, PRIMARY KEY (consumer, message_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS projection_rows (name TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (name, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS projection_checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS data_keys (key_id TEXT NOT NULL, version INTEGER NOT NULL,
  kek_id TEXT NOT NULL, wrapped TEXT NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY (key_id, version)) WITHOUT ROWID;
)sql";

// Upgrading a store written by release 0.1.0, which kept an `outbox` table (a row per
// message, `published` = 0 while pending). The relay now derives those messages from the
// log, so the relay's subscription starts just before the first event that still has a
// pending row: the relay sends, from there on, the same messages with the same message ids
// (consumers deduplicate by message id, so one that was published already has no second
// effect). With nothing pending it starts at the head. A 0.1.0 message id is
// "<event id>:audit", ":event" or ":route" (event ids hold no ':'), which names its event.
// A pending row whose event is not in the log could not be sent again from any position,
// so it does not hold the start back.
constexpr const char* kLegacyOutboxExists =
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'";
constexpr const char* kStartRelayAfterLegacyOutbox =
    "INSERT OR IGNORE INTO subscriptions (name, position) VALUES (?1, COALESCE("
    "(SELECT MIN(e.global_position) - 1 FROM outbox o JOIN events e"
    " ON e.event_id = substr(o.message_id, 1, instr(o.message_id, ':') - 1)"
    " WHERE o.published = 0),"
    " (SELECT COALESCE(MAX(global_position), 0) FROM events)))";
constexpr const char* kDropLegacyOutbox = "DROP INDEX IF EXISTS outbox_pending; DROP TABLE outbox;";

// How often the checkpointer copies the WAL back into the database file.
constexpr std::chrono::milliseconds kCheckpointInterval{1000};
// How long the writer waits, when it starts the WAL over, for the readers still reading in
// it and for another process's writer (RestartWal); then it goes on and tries again later.
// (Another process's checkpoint under way makes it give up at once.)
constexpr int kWalRestartWaitMs = 100;
// A WAL frame's header, before each page (SQLite's WAL format).
constexpr int64_t kWalFrameHeaderBytes = 24;

Status Run(Db& db, const char* sql) {
  Stmt s(db, sql);
  int rc = s.Step();
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? absl::OkStatus() : s.Fail(sql);
}

EventRecord ReadEvent(const Stmt& s) {
  EventRecord e;
  e.global_position = s.Int(0);
  e.event_id = s.Text(1);
  e.stream_id = s.Text(2);
  e.version = s.Int(3);
  e.type = s.Text(4);
  e.schema_version = static_cast<int>(s.Int(5));
  e.occurred_at = s.Int(6);
  e.correlation_id = s.Text(7);
  e.causation_id = s.Text(8);
  e.actor = s.Text(9);
  e.tenant = s.Text(10);
  e.traceparent = s.Text(11);
  e.payload = s.Text(12);
  return e;
}

// Room for this many records before a read's first row: a prescription's stream as a rule,
// and the relay's usual batch, without the vector moving its records as it grows.
constexpr size_t kEventsReserved = 16;

constexpr const char* kEventColumns =
    "global_position, event_id, stream_id, version, type, schema_version, occurred_at, "
    "correlation_id, causation_id, actor, tenant, traceparent, payload";

// Operations on one connection, shared by the writer (inside a transaction) and readers.
StatusOr<std::vector<EventRecord>> ReadStreamOn(Db& db, const std::string& stream_id,
                                                int64_t after) {
  Stmt s(db, std::string("SELECT ") + kEventColumns +
                 " FROM events WHERE stream_id = ?1 AND version > ?2 ORDER BY version");
  if (!s.ok()) return absl::UnavailableError(std::string("sqlite: ") + sqlite3_errmsg(db.get()));
  s.Bind(1, stream_id).Bind(2, after);
  std::vector<EventRecord> out;
  out.reserve(kEventsReserved);
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadEvent(s));
  if (rc != SQLITE_DONE) return s.Fail("read stream");
  return out;
}

StatusOr<std::string> FindKeyOn(Db& db, const std::string& key) {
  Stmt s(db, "SELECT stream_id FROM idempotency WHERE key = ?1");
  s.Bind(1, key);
  int rc = s.Step();
  if (rc == SQLITE_ROW) return s.Text(0);
  if (rc == SQLITE_DONE) return absl::NotFoundError("no stream for idempotency key " + key);
  return s.Fail("find idempotency key");
}

// Appends within the writer's open transaction (the caller wraps it in a savepoint).
// Stores one new data key version (wrapped key as base64 text); AlreadyExists ("data key
// exists: <id>") when the version exists or the key was destroyed.
Status InsertDataKeyOn(Db& db, const WrappedDataKey& key) {
  RXFLOW_RETURN_IF_ERROR(ValidateDataKey(key));
  Stmt destroyed(db, "SELECT 1 FROM data_keys WHERE key_id = ?1 AND version = 0");
  destroyed.Bind(1, key.key_id);
  if (destroyed.Step() == SQLITE_ROW) {
    return absl::AlreadyExistsError(std::string(kDataKeyExists) + key.key_id);
  }
  Stmt ins(db,
           "INSERT INTO data_keys (key_id, version, kek_id, wrapped, created_at) "
           "VALUES (?1, ?2, ?3, ?4, ?5)");
  ins.Bind(1, key.key_id).Bind(2, int64_t{key.version}).Bind(3, key.kek_id);
  ins.Bind(4, internal::Base64Encode(key.wrapped)).Bind(5, key.created_at);
  int rc = ins.Step();
  if (rc == SQLITE_CONSTRAINT) {
    return absl::AlreadyExistsError(std::string(kDataKeyExists) + key.key_id);
  }
  return rc == SQLITE_DONE ? absl::OkStatus() : ins.Fail("insert data key");
}

// The stream's current version (0 when it does not exist).
StatusOr<int64_t> CurrentVersionOn(Db& db, const std::string& stream_id) {
  Stmt cur(db, "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?1");
  cur.Bind(1, stream_id);
  if (cur.Step() != SQLITE_ROW) return cur.Fail("current version");
  return cur.Int(0);
}

Status VersionConflict(const AppendRequest& req, int64_t current) {
  return absl::AbortedError("version conflict on stream " + req.stream_id + ": expected " +
                            std::to_string(req.expected_version) + ", current " +
                            std::to_string(current));
}

// A new stream (kNoStream, what every submission appends) is not looked up first: its first
// event's insert meets UNIQUE (stream_id, version) when the stream exists, and the key's
// insert meets the key's primary key when it was used; each refusal then reads what it needs
// for its message. An append that fails leaves nothing: the caller's savepoint rolls back.
// The refusals are those of the look-ups: a version conflict before a used key.
StatusOr<AppendResult> AppendOn(Db& db, AppendRequest& req) {
  if (req.stream_id.empty()) return absl::InvalidArgumentError("append: stream id is empty");
  int64_t current = 0;
  if (req.expected_version != kNoStream) {
    RXFLOW_ASSIGN_OR_RETURN(current, CurrentVersionOn(db, req.stream_id));
    if (req.expected_version != kAnyVersion && req.expected_version != current) {
      return VersionConflict(req, current);
    }
  }
  if (!req.idempotency_key.empty()) {
    Stmt ins(db, "INSERT INTO idempotency (key, stream_id) VALUES (?1, ?2)");
    ins.BindView(1, req.idempotency_key).BindView(2, req.stream_id);  // `req` outlives `ins`
    if (int rc = ins.Step(); rc != SQLITE_DONE) {
      if (rc != SQLITE_CONSTRAINT) return ins.Fail("insert idempotency key");
      if (req.expected_version == kNoStream) {
        RXFLOW_ASSIGN_OR_RETURN(int64_t now, CurrentVersionOn(db, req.stream_id));
        if (now != 0) return VersionConflict(req, now);
      }
      RXFLOW_ASSIGN_OR_RETURN(std::string existing, FindKeyOn(db, req.idempotency_key));
      return absl::AlreadyExistsError("idempotency key exists: " + existing);
    }
  }
  for (const WrappedDataKey& key : req.data_keys) RXFLOW_RETURN_IF_ERROR(InsertDataKeyOn(db, key));
  AppendResult result;
  result.last_version = current;
  for (EventRecord& e : req.events) {
    if (e.event_id.empty()) return absl::InvalidArgumentError("append: an event has no id");
    e.stream_id = req.stream_id;
    e.version = ++current;
    Stmt one(db,
             "INSERT INTO events (event_id, stream_id, version, type, schema_version, occurred_at, "
             "correlation_id, causation_id, actor, tenant, traceparent, payload) "
             "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
    // `e` outlives `one`: its text is bound in place, not copied into SQLite (a copy was a
    // malloc per column per event on the writer thread).
    one.BindView(1, e.event_id)
        .BindView(2, e.stream_id)
        .Bind(3, e.version)
        .BindView(4, e.type)
        .Bind(5, static_cast<int64_t>(e.schema_version))
        .Bind(6, e.occurred_at)
        .BindView(7, e.correlation_id)
        .BindView(8, e.causation_id)
        .BindView(9, e.actor)
        .BindView(10, e.tenant)
        .BindView(11, e.traceparent)
        .BindView(12, e.payload);
    int rc = one.Step();
    if (rc == SQLITE_CONSTRAINT) {
      int ext = sqlite3_extended_errcode(db.get());
      if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY) {
        std::string msg = sqlite3_errmsg(db.get());
        if (absl::StrContains(msg, "event_id")) {
          return absl::AlreadyExistsError("event id exists: " + e.event_id);
        }
        if (req.expected_version == kNoStream) {
          RXFLOW_ASSIGN_OR_RETURN(int64_t now, CurrentVersionOn(db, req.stream_id));
          return VersionConflict(req, now);
        }
        return absl::AbortedError("version conflict on stream " + req.stream_id);
      }
    }
    if (rc != SQLITE_DONE) return one.Fail("insert event");
    e.global_position = sqlite3_last_insert_rowid(db.get());
    result.last_version = e.version;
    result.last_global_position = e.global_position;
  }
  return result;
}

// The EventStore an inbox effect sees: the writer's connection inside its savepoint.
class TxView : public EventStore {
 public:
  explicit TxView(Db& db) : db_(db) {}
  // A savepoint per append: a refused append leaves nothing behind even if the effect
  // carries on.
  StatusOr<AppendResult> Append(AppendRequest r) override {
    Run(db_, "SAVEPOINT effect_append").IgnoreError();
    auto result = AppendOn(db_, r);
    if (!result.ok()) Run(db_, "ROLLBACK TO effect_append").IgnoreError();
    Run(db_, "RELEASE effect_append").IgnoreError();
    return result;
  }
  StatusOr<std::vector<EventRecord>> ReadStream(const std::string& s, int64_t after) override {
    return ReadStreamOn(db_, s, after);
  }
  StatusOr<std::vector<EventRecord>> ReadAll(int64_t, size_t) override {
    return absl::UnimplementedError("ReadAll inside an inbox effect");
  }
  StatusOr<std::string> FindByIdempotencyKey(const std::string& k) override {
    return FindKeyOn(db_, k);
  }
  Status SaveSnapshot(const Snapshot&) override {
    return absl::UnimplementedError("snapshots inside an inbox effect");
  }
  StatusOr<Snapshot> LoadSnapshot(const std::string&) override {
    return absl::UnimplementedError("snapshots inside an inbox effect");
  }

 private:
  Db& db_;
};

class SqliteStore : public Store {
 public:
  SqliteStore(const SqliteOptions& options, Clock& clock) : options_(options), clock_(clock) {}

  Status Init() {
    std::filesystem::path p(options_.path);
    std::error_code ec;
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
    // Every connection through the WAL-gathering VFS: the writer's group commit reaches the
    // WAL, and the statement journal of the savepoint each job runs in reaches its temporary
    // file, in writes of up to 128 KiB (wal_gather_vfs.h); without it (not registrable) the
    // default VFS.
    const char* vfs = sqlite_internal::WalGatherVfs();
    RXFLOW_RETURN_IF_ERROR(writer_db_.Open(options_.path, vfs));
    // The checkpointer thread checkpoints; the writer's automatic checkpoint would run on
    // the writer thread after a commit and hold up every caller of the next batch.
    if (Status s = writer_db_.Exec("PRAGMA wal_autocheckpoint=0;"); !s.ok()) return s;
    RXFLOW_RETURN_IF_ERROR(BoundWal());
    // Deleted content is overwritten with zeros: a destroyed data key leaves no bytes behind
    // in the database file (crypto-erasure, DestroyDataKeys).
    if (Status s = writer_db_.Exec("PRAGMA secure_delete=ON;"); !s.ok()) return s;
    RXFLOW_RETURN_IF_ERROR(writer_db_.Exec(kSchema));
    RXFLOW_RETURN_IF_ERROR(UpgradeLegacyOutbox());
    for (size_t i = 0; i < std::max<size_t>(1, options_.readers); ++i) {
      auto db = std::make_unique<Db>();
      RXFLOW_RETURN_IF_ERROR(db->Open(options_.path, vfs));
      readers_.push_back(std::move(db));
    }
    RXFLOW_RETURN_IF_ERROR(checkpoint_db_.Open(options_.path, vfs));
    writer_ = std::thread([this] { WriterLoop(); });
    writer_id_ = writer_.get_id();
    checkpointer_ = std::thread([this] { CheckpointLoop(); });
    // Named for `top -H`, perf and gdb (at most 15 characters), here rather than by the
    // threads themselves: the names hold once the store is open.
    ::pthread_setname_np(writer_.native_handle(), "rxflow-sqlite-w");
    ::pthread_setname_np(checkpointer_.native_handle(), "rxflow-sqlite-c");
    return absl::OkStatus();
  }

  ~SqliteStore() override {
    {
      std::lock_guard<std::mutex> lock(checkpoint_mu_);
      checkpoint_stop_ = true;
    }
    checkpoint_cv_.notify_all();
    if (checkpointer_.joinable()) checkpointer_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (writer_.joinable()) writer_.join();
  }

  // ---- writes: jobs run by the writer thread, group-committed ----------------------------
  using Job = std::function<Status(Db&, int64_t now)>;

  // Queues `job` for the writer and waits for its answer.
  Status Write(Job job) {
    if (std::this_thread::get_id() == writer_id_) {
      // From an AppendAsync callback: waiting here would wait for this very thread.
      return absl::FailedPreconditionError(
          "sqlite store: a write was made from the writer thread (an AppendAsync callback); "
          "it would wait for itself");
    }
    internal::Answer<Status> answer;
    if (Status queued =
            Enqueue({std::move(job), [&answer](Status s) { answer.Give(std::move(s)); }});
        !queued.ok()) {
      return queued;
    }
    return answer.Take();
  }

  StatusOr<AppendResult> Append(AppendRequest request) override {
    AppendResult result;
    Status s = Write([&](Db& db, int64_t) -> Status {
      auto r = AppendOn(db, request);
      if (!r.ok()) return r.status();
      result = *r;
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return result;
  }

  // Queued like Append; the writer calls `done` after the batch's commit instead of waking a
  // waiting caller, so no thread waits for the append (EventStore::AppendAsync).
  void AppendAsync(AppendRequest request, AppendDone done) override {
    struct Op {
      AppendRequest request;
      AppendDone done;
      AppendResult result;
    };
    auto op = std::make_unique<Op>(Op{std::move(request), std::move(done), {}});
    Op* raw = op.get();
    Job job = [raw](Db& db, int64_t) -> Status {
      auto r = AppendOn(db, raw->request);
      if (!r.ok()) return r.status();
      raw->result = *r;
      return absl::OkStatus();
    };
    Finish finish = [op = std::move(op)](const Status& s) mutable {
      AppendDone done = std::move(op->done);
      StatusOr<AppendResult> outcome = s.ok() ? StatusOr<AppendResult>(op->result) : s;
      op.reset();  // the request (its payloads) is freed before the caller's callback runs
      done(std::move(outcome));
    };
    Pending pending{std::move(job), std::move(finish)};
    if (Status queued = Enqueue(pending); !queued.ok()) pending.finish(std::move(queued));
  }

  Status SaveSnapshot(const Snapshot& snap) override {
    return Write([&](Db& db, int64_t) -> Status {
      Stmt s(db,
             "INSERT INTO snapshots (stream_id, version, state) VALUES (?1, ?2, ?3) "
             "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = "
             "excluded.state "
             "WHERE excluded.version >= snapshots.version");
      s.Bind(1, snap.stream_id).Bind(2, snap.version).Bind(3, snap.state);
      return s.Step() == SQLITE_DONE ? absl::OkStatus() : s.Fail("save snapshot");
    });
  }

  // Leases are decided inside a write job: the writer serializes them with every other
  // write of this process, and BEGIN IMMEDIATE with those of other processes, so two
  // readers never both see the lease free.
  StatusOr<bool> AcquireLease(const std::string& name, const std::string& owner,
                              int64_t ttl_micros) override {
    RXFLOW_RETURN_IF_ERROR(ValidateLeaseArguments("acquire lease", name, owner));
    bool held = false;
    Status st = Write([&](Db& db, int64_t now) -> Status {
      // Taken when absent, when its lease has run out, or renewed when `owner` holds it;
      // otherwise the upsert's WHERE leaves the row alone and changes nothing.
      Stmt s(db,
             "INSERT INTO subscriptions (name, owner, lease_until) VALUES (?1, ?2, ?3) "
             "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
             "lease_until = excluded.lease_until "
             "WHERE subscriptions.owner = excluded.owner OR subscriptions.lease_until <= ?4");
      s.Bind(1, name).Bind(2, owner).Bind(3, now + ttl_micros).Bind(4, now);
      if (s.Step() != SQLITE_DONE) return s.Fail("acquire lease");
      held = sqlite3_changes(db.get()) > 0;
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return held;
  }

  Status ReleaseLease(const std::string& name, const std::string& owner) override {
    return Write([&](Db& db, int64_t) -> Status {
      Stmt s(db,
             "UPDATE subscriptions SET owner = '', lease_until = 0 "
             "WHERE name = ?1 AND owner = ?2");
      s.Bind(1, name).Bind(2, owner);
      return s.Step() == SQLITE_DONE ? absl::OkStatus() : s.Fail("release lease");
    });
  }

  // Only the lease's owner moves the checkpoint: a reader whose lease ran out may still
  // commit (and renew) while nobody took over, but once another reader took the lease this
  // one is fenced off and must stop.
  Status CommitCheckpoint(const std::string& name, const std::string& owner, int64_t position,
                          int64_t ttl_micros) override {
    RXFLOW_RETURN_IF_ERROR(ValidateLeaseArguments("commit checkpoint", name, owner));
    return Write([&](Db& db, int64_t now) -> Status {
      bool found = false;
      int64_t stored = 0;
      std::string holder;
      {
        Stmt cur(db, "SELECT position, owner FROM subscriptions WHERE name = ?1");
        cur.Bind(1, name);
        int rc = cur.Step();
        if (rc == SQLITE_ROW) {
          found = true;
          stored = cur.Int(0);
          holder = cur.Text(1);
        } else if (rc != SQLITE_DONE) {
          return cur.Fail("commit checkpoint");
        }
      }
      if (!found || holder.empty()) {
        return absl::FailedPreconditionError("subscription " + name + " is not held by " + owner);
      }
      if (holder != owner) {
        return absl::FailedPreconditionError("subscription " + name + " is held by another reader");
      }
      if (position < stored) {
        return absl::AbortedError("subscription " + name + " is at " + std::to_string(stored) +
                                  ", not moving back to " + std::to_string(position));
      }
      Stmt u(db, "UPDATE subscriptions SET position = ?2, lease_until = ?3 WHERE name = ?1");
      u.Bind(1, name).Bind(2, position).Bind(3, now + ttl_micros);
      return u.Step() == SQLITE_DONE ? absl::OkStatus() : u.Fail("commit checkpoint");
    });
  }

  Status Process(const std::string& consumer, const std::string& message_id,
                 const InboxEffect& effect) override {
    return Write([&](Db& db, int64_t now) -> Status {
      Stmt ins(db, "INSERT INTO inbox (consumer, message_id, processed_at) VALUES (?1, ?2, ?3)");
      ins.Bind(1, consumer).Bind(2, message_id).Bind(3, now);
      int rc = ins.Step();
      if (rc == SQLITE_CONSTRAINT) {
        return absl::AlreadyExistsError("message " + message_id + " already processed by " +
                                        consumer);
      }
      if (rc != SQLITE_DONE) return ins.Fail("inbox");
      TxView view(db);
      return effect(view);  // a failure rolls back the savepoint: inbox row included
    });
  }

  Status Apply(const std::string& name, int64_t checkpoint,
               std::span<const std::pair<std::string, std::string>> rows) override {
    std::vector<std::pair<std::string, std::string>> copy(rows.begin(), rows.end());
    return Write([&](Db& db, int64_t) -> Status {
      Stmt cur(db, "SELECT position FROM projection_checkpoints WHERE name = ?1");
      cur.Bind(1, name);
      if (cur.Step() == SQLITE_ROW && cur.Int(0) > checkpoint) {
        return absl::AbortedError("projection " + name + " is at " + std::to_string(cur.Int(0)) +
                                  ", not moving back to " + std::to_string(checkpoint));
      }
      for (const auto& [k, v] : copy) {
        Stmt u(db,
               "INSERT INTO projection_rows (name, key, doc) VALUES (?1, ?2, ?3) "
               "ON CONFLICT (name, key) DO UPDATE SET doc = excluded.doc");
        u.Bind(1, name).Bind(2, k).Bind(3, v);
        if (u.Step() != SQLITE_DONE) return u.Fail("projection row");
      }
      Stmt c(db,
             "INSERT INTO projection_checkpoints (name, position) VALUES (?1, ?2) "
             "ON CONFLICT (name) DO UPDATE SET position = excluded.position");
      c.Bind(1, name).Bind(2, checkpoint);
      return c.Step() == SQLITE_DONE ? absl::OkStatus() : c.Fail("checkpoint");
    });
  }

  Status Reset(const std::string& name) override {
    return Write([&](Db& db, int64_t) -> Status {
      Stmt a(db, "DELETE FROM projection_rows WHERE name = ?1");
      a.Bind(1, name);
      if (a.Step() != SQLITE_DONE) return a.Fail("reset");
      Stmt b(db, "DELETE FROM projection_checkpoints WHERE name = ?1");
      b.Bind(1, name);
      return b.Step() == SQLITE_DONE ? absl::OkStatus() : b.Fail("reset");
    });
  }

  // ---- reads: pooled reader connections ----------------------------------------------------
  template <typename F>
  auto Read(F&& fn) {
    std::unique_ptr<Db> db;
    {
      std::unique_lock<std::mutex> lock(readers_mu_);
      readers_cv_.wait(lock, [&] { return !readers_.empty(); });
      db = std::move(readers_.back());
      readers_.pop_back();
    }
    auto result = fn(*db);
    {
      std::lock_guard<std::mutex> lock(readers_mu_);
      readers_.push_back(std::move(db));
    }
    readers_cv_.notify_one();
    return result;
  }

  StatusOr<std::vector<EventRecord>> ReadStream(const std::string& stream_id,
                                                int64_t after) override {
    return Read([&](Db& db) { return ReadStreamOn(db, stream_id, after); });
  }

  // One writer commits batches in turn and assigns positions inside them, so positions
  // become visible in order: a reader never sees an event before one with a lower position.
  StatusOr<std::vector<EventRecord>> ReadAll(int64_t after, size_t limit) override {
    return Read([&](Db& db) -> StatusOr<std::vector<EventRecord>> {
      Stmt s(db, std::string("SELECT ") + kEventColumns +
                     " FROM events WHERE global_position > ?1 ORDER BY global_position LIMIT ?2");
      s.Bind(1, after).Bind(2, static_cast<int64_t>(limit));
      std::vector<EventRecord> out;
      out.reserve(std::min(limit, kEventsReserved));
      int rc;
      while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadEvent(s));
      if (rc != SQLITE_DONE) return s.Fail("read all");
      return out;
    });
  }

  StatusOr<std::string> FindByIdempotencyKey(const std::string& key) override {
    return Read([&](Db& db) { return FindKeyOn(db, key); });
  }

  StatusOr<Snapshot> LoadSnapshot(const std::string& stream_id) override {
    return Read([&](Db& db) -> StatusOr<Snapshot> {
      Stmt s(db, "SELECT version, state FROM snapshots WHERE stream_id = ?1");
      s.Bind(1, stream_id);
      int rc = s.Step();
      if (rc == SQLITE_ROW) return Snapshot{stream_id, s.Int(0), s.Text(1)};
      if (rc == SQLITE_DONE) return absl::NotFoundError("no snapshot for stream " + stream_id);
      return s.Fail("load snapshot");
    });
  }

  StatusOr<int64_t> SubscriptionCheckpoint(const std::string& name) override {
    return PositionOf("SELECT position FROM subscriptions WHERE name = ?1", name);
  }

  StatusOr<int64_t> HeadPosition() override {
    return Read([&](Db& db) -> StatusOr<int64_t> {
      Stmt s(db, "SELECT COALESCE(MAX(global_position), 0) FROM events");
      if (s.Step() != SQLITE_ROW) return s.Fail("head position");
      return s.Int(0);
    });
  }

  StatusOr<int64_t> Checkpoint(const std::string& name) override {
    return PositionOf("SELECT position FROM projection_checkpoints WHERE name = ?1", name);
  }

  // A subscription's or a projection's position by name; 0 when it has none yet.
  StatusOr<int64_t> PositionOf(const char* sql, const std::string& name) {
    return Read([&](Db& db) -> StatusOr<int64_t> {
      Stmt s(db, sql);
      s.Bind(1, name);
      int rc = s.Step();
      if (rc == SQLITE_ROW) return s.Int(0);
      if (rc == SQLITE_DONE) return int64_t{0};
      return s.Fail(sql);
    });
  }

  StatusOr<std::string> Get(const std::string& name, const std::string& key) override {
    return Read([&](Db& db) -> StatusOr<std::string> {
      Stmt s(db, "SELECT doc FROM projection_rows WHERE name = ?1 AND key = ?2");
      s.Bind(1, name).Bind(2, key);
      int rc = s.Step();
      if (rc == SQLITE_ROW) return s.Text(0);
      if (rc == SQLITE_DONE) return absl::NotFoundError("no row " + key + " in projection " + name);
      return s.Fail("projection get");
    });
  }

  StatusOr<std::vector<std::pair<std::string, std::string>>> All(const std::string& name) override {
    return Read([&](Db& db) -> StatusOr<std::vector<std::pair<std::string, std::string>>> {
      Stmt s(db, "SELECT key, doc FROM projection_rows WHERE name = ?1 ORDER BY key");
      s.Bind(1, name);
      std::vector<std::pair<std::string, std::string>> out;
      int rc;
      while ((rc = s.Step()) == SQLITE_ROW) out.emplace_back(s.Text(0), s.Text(1));
      if (rc != SQLITE_DONE) return s.Fail("projection all");
      return out;
    });
  }

  // ---- data keys (wrapped keys stored as base64 text) ------------------------------------
  Status PutDataKey(const WrappedDataKey& key) override {
    RXFLOW_RETURN_IF_ERROR(ValidateDataKey(key));
    return Write([&](Db& db, int64_t) { return InsertDataKeyOn(db, key); });
  }

  StatusOr<std::vector<WrappedDataKey>> DataKeyVersions(const std::string& key_id) override {
    return Read([&](Db& db) -> StatusOr<std::vector<WrappedDataKey>> {
      Stmt s(db,
             "SELECT key_id, version, kek_id, wrapped, created_at FROM data_keys "
             "WHERE key_id = ?1 ORDER BY version");
      s.Bind(1, key_id);
      return DataKeysFrom(s);
    });
  }

  Status RewrapDataKey(const WrappedDataKey& key, const std::string& expected_kek_id) override {
    RXFLOW_RETURN_IF_ERROR(ValidateDataKey(key));
    const std::string wrapped = internal::Base64Encode(key.wrapped);
    return Write([&](Db& db, int64_t) -> Status {
      Stmt u(db,
             "UPDATE data_keys SET kek_id = ?3, wrapped = ?4 "
             "WHERE key_id = ?1 AND version = ?2 AND kek_id = ?5");
      u.Bind(1, key.key_id).Bind(2, int64_t{key.version}).Bind(3, key.kek_id).Bind(4, wrapped);
      u.Bind(5, expected_kek_id);
      if (u.Step() != SQLITE_DONE) return u.Fail("rewrap data key");
      if (sqlite3_changes(db.get()) == 1) return absl::OkStatus();
      Stmt e(db, "SELECT 1 FROM data_keys WHERE key_id = ?1 AND version = ?2");
      e.Bind(1, key.key_id).Bind(2, int64_t{key.version});
      return RewrapRefused(key, e.Step() == SQLITE_ROW);
    });
  }

  StatusOr<int64_t> DestroyDataKeys(const std::string& key_id, int64_t destroyed_at) override {
    int64_t deleted = 0;
    Status s = Write([&](Db& db, int64_t) -> Status {
      Stmt d(db, "DELETE FROM data_keys WHERE key_id = ?1 AND version > 0");
      d.Bind(1, key_id);
      if (d.Step() != SQLITE_DONE) return d.Fail("destroy data key");
      deleted = sqlite3_changes(db.get());
      Stmt t(db,
             "INSERT OR IGNORE INTO data_keys (key_id, version, kek_id, wrapped, created_at) "
             "VALUES (?1, 0, ?2, '', ?3)");
      t.Bind(1, key_id).Bind(2, std::string(kDestroyedKek)).Bind(3, destroyed_at);
      return t.Step() == SQLITE_DONE ? absl::OkStatus() : t.Fail("data key tombstone");
    });
    if (!s.ok()) return s;
    // The WAL still holds the pages as they were before the delete: copy it back and truncate
    // it (best effort: a reader holding an old snapshot defers it to the next checkpoint).
    Read([&](Db& db) { return db.Exec("PRAGMA wal_checkpoint(TRUNCATE);"); }).IgnoreError();
    return deleted;
  }

  Status ReplaceEventPayload(const std::string& event_id, const std::string& expected,
                             const std::string& replacement) override {
    return Write([&](Db& db, int64_t) -> Status {
      Stmt u(db, "UPDATE events SET payload = ?3 WHERE event_id = ?1 AND payload = ?2");
      u.Bind(1, event_id).Bind(2, expected).Bind(3, replacement);
      if (u.Step() != SQLITE_DONE) return u.Fail("replace event payload");
      if (sqlite3_changes(db.get()) == 1) return absl::OkStatus();
      Stmt e(db, "SELECT 1 FROM events WHERE event_id = ?1");
      e.Bind(1, event_id);
      return PayloadReplaceRefused(event_id, e.Step() == SQLITE_ROW);
    });
  }

  StatusOr<std::vector<WrappedDataKey>> DataKeysNotWrappedBy(const std::string& kek_id,
                                                             const std::string& after_key_id,
                                                             int after_version,
                                                             size_t limit) override {
    return Read([&](Db& db) -> StatusOr<std::vector<WrappedDataKey>> {
      Stmt s(
          db,
          "SELECT key_id, version, kek_id, wrapped, created_at FROM data_keys "
          "WHERE version > 0 AND kek_id <> ?1 AND (key_id > ?2 OR (key_id = ?2 AND version > ?3)) "
          "ORDER BY key_id, version LIMIT ?4");
      s.Bind(1, kek_id).Bind(2, after_key_id).Bind(3, int64_t{after_version});
      s.Bind(4, static_cast<int64_t>(limit));
      return DataKeysFrom(s);
    });
  }

  static StatusOr<std::vector<WrappedDataKey>> DataKeysFrom(Stmt& s) {
    std::vector<WrappedDataKey> out;
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) {
      WrappedDataKey k{s.Text(0), static_cast<int>(s.Int(1)), s.Text(2), {}, s.Int(4)};
      std::optional<std::string> wrapped = internal::Base64Decode(s.Text(3));
      if (!wrapped) return absl::DataLossError("data key " + k.key_id + ": malformed wrapped key");
      k.wrapped = std::move(*wrapped);
      out.push_back(std::move(k));
    }
    if (rc != SQLITE_DONE) return s.Fail("read data keys");
    return out;
  }

 private:
  // What the writer calls once a job's outcome is known (after the commit): wakes a waiting
  // caller (Write) or calls an AppendAsync callback.
  using Finish = absl::AnyInvocable<void(Status)>;
  struct Pending {
    Job job;
    Finish finish;
  };

  // Queues `pending` for the writer; Unavailable (and `pending` left with the caller) once
  // the store is closing.
  Status Enqueue(Pending& pending) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return absl::UnavailableError("sqlite store is closing");
      queue_.push_back(std::move(pending));
    }
    cv_.notify_one();
    return absl::OkStatus();
  }
  Status Enqueue(Pending&& pending) { return Enqueue(pending); }

  // Upgrades a 0.1.0 store in place (see kStartRelayAfterLegacyOutbox): the relay's start
  // and the outbox's removal commit together, on the writer connection before the writer
  // thread runs. BEGIN IMMEDIATE makes processes opening the store at once take turns; the
  // later ones find no outbox left.
  Status UpgradeLegacyOutbox() {
    RXFLOW_RETURN_IF_ERROR(Run(writer_db_, "BEGIN IMMEDIATE"));
    Status s = UpgradeLegacyOutboxInTransaction();
    if (s.ok()) s = Run(writer_db_, "COMMIT");
    if (!s.ok()) writer_db_.Exec("ROLLBACK").IgnoreError();
    return s;
  }

  Status UpgradeLegacyOutboxInTransaction() {
    {
      Stmt exists(writer_db_, kLegacyOutboxExists);
      int rc = exists.Step();
      if (rc == SQLITE_DONE) return absl::OkStatus();  // a current store: nothing to do
      if (rc != SQLITE_ROW) return exists.Fail("find legacy outbox");
    }
    {
      Stmt start(writer_db_, kStartRelayAfterLegacyOutbox);
      start.Bind(1, std::string(kRelaySubscription));
      if (start.Step() != SQLITE_DONE) return start.Fail("start relay after legacy outbox");
    }
    return writer_db_.Exec(kDropLegacyOutbox);
  }

  // Takes every queued job (up to max_batch), runs each in its own savepoint inside one
  // transaction, commits once (one fsync), then answers every caller.
  void WriterLoop() {
    Db& db = writer_db_;
    for (;;) {
      std::vector<Pending> batch;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty() && stop_) return;
        while (!queue_.empty() && batch.size() < std::max<size_t>(1, options_.max_batch)) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      std::vector<Status> results(batch.size());
      Status begin = Run(db, "BEGIN IMMEDIATE");
      if (!begin.ok()) {
        for (auto& p : batch) p.finish(internal::UnsharedCopy(begin));
        continue;
      }
      int64_t now = clock_.NowMicros();
      for (size_t i = 0; i < batch.size(); ++i) {
        Run(db, "SAVEPOINT op").IgnoreError();
        Status s = batch[i].job(db, now);
        if (s.ok()) {
          Run(db, "RELEASE op").IgnoreError();
        } else {
          Run(db, "ROLLBACK TO op").IgnoreError();
          Run(db, "RELEASE op").IgnoreError();
        }
        results[i] = std::move(s);
      }
      Status commit = Run(db, "COMMIT");
      if (!commit.ok()) {
        writer_db_.Exec("ROLLBACK").IgnoreError();
        for (auto& r : results) {
          if (r.ok()) r = internal::UnsharedCopy(commit);
        }
      }
      batches_.fetch_add(1);
      // Each caller gets a Status of its own: moved here, an UnsharedCopy of a batch-wide
      // failure above (see internal/status_macros.h).
      for (size_t i = 0; i < batch.size(); ++i) batch[i].finish(std::move(results[i]));
      // After the answers: the callers of this batch do not wait for it.
      if (wal_limit_frames_ > 0) KeepWalBounded();
    }
  }

  // Each eighth of the bound written, the checkpointer is asked to copy it now rather than at
  // its next second. Past the bound, it is asked once more, and once it has copied that far
  // the writer starts the WAL over (RestartWal), with only what was committed during that
  // copy left to copy itself: the writer stops for a short copy, not for the whole WAL's. If
  // the checkpointer has not got that far after another eighth (another process's checkpoint
  // in its way), the writer starts over anyway, copying what is left.
  void KeepWalBounded() {
    if (wal_frames_ <= restart_after_frames_) {
      if (wal_frames_ >= copy_after_frames_) {
        copy_after_frames_ = wal_frames_ + WalStep();
        RequestCopy();
      }
      return;
    }
    if (restart_copy_at_ == 0) {
      restart_copy_at_ = wal_frames_;
      RequestCopy();
      return;
    }
    bool copied;
    {
      std::lock_guard<std::mutex> lock(checkpoint_mu_);
      copied = copied_generation_ == wal_generation_.load() && copied_frames_ >= restart_copy_at_;
    }
    if (copied || wal_frames_ > restart_copy_at_ + WalStep()) RestartWal();
  }

  void RequestCopy() {
    {
      std::lock_guard<std::mutex> lock(checkpoint_mu_);
      checkpoint_now_ = true;
    }
    checkpoint_cv_.notify_one();
  }

  // The bound on the WAL (SqliteOptions::wal_limit_bytes), set up on the writer's connection:
  // its commits report the WAL's length (OnWalCommit), and a WAL file that grew past the
  // bound is cut back to it when SQLite starts it over (journal_size_limit).
  Status BoundWal() {
    if (options_.wal_limit_bytes == 0) return absl::OkStatus();
    Stmt page(writer_db_, "PRAGMA page_size");
    if (page.Step() != SQLITE_ROW) return page.Fail("page size");
    const int64_t frame = page.Int(0) + kWalFrameHeaderBytes;
    const auto limit = static_cast<int64_t>(
        std::min<size_t>(options_.wal_limit_bytes, std::numeric_limits<int64_t>::max() / 2));
    wal_limit_frames_ = std::max<int64_t>(1, limit / frame);
    restart_after_frames_ = wal_limit_frames_;
    copy_after_frames_ = WalStep();
    RXFLOW_RETURN_IF_ERROR(
        writer_db_.Exec(("PRAGMA journal_size_limit=" + std::to_string(limit) + ";").c_str()));
    sqlite3_wal_hook(writer_db_.get(), &SqliteStore::OnWalCommit, this);
    return absl::OkStatus();
  }

  // An eighth of the bound, in frames: how often the checkpointer is asked to copy, and how
  // much later a restart that could not be made is tried again.
  int64_t WalStep() const { return std::max<int64_t>(1, wal_limit_frames_ / 8); }

  // Called by SQLite on the writer thread after each of its commits, with the frames the WAL
  // now holds. (Setting it replaces SQLite's automatic checkpoint, which is off here anyway.)
  static int OnWalCommit(void* self, sqlite3* /*db*/, const char* /*schema*/, int frames) {
    static_cast<SqliteStore*>(self)->wal_frames_ = frames;
    return SQLITE_OK;
  }

  // Starts the WAL over. Readers always hold a snapshot in a WAL that is written without
  // pause, so SQLite never finds a moment to start it over by itself: it would grow by every
  // commit's pages for as long as the load lasts. A RESTART checkpoint copies what the
  // checkpointer has not yet copied, then waits until no reader reads in the WAL (a reader
  // that starts meanwhile reads the database file, all of it copied), so that the next
  // commit writes from the WAL's first byte. It waits at most kWalRestartWaitMs (a long read
  // in progress, another process's writer), after the checkpointer's copy under way if any,
  // and not at all for another process's checkpoint; then the writer goes on, and tries
  // again once the WAL has grown by another eighth of the bound.
  void RestartWal() {
    sqlite3* db = writer_db_.get();
    int rc;
    {
      // Not beside the checkpointer's copy: SQLite would refuse this one at once.
      std::lock_guard<std::mutex> copying(checkpoint_run_mu_);
      sqlite3_busy_timeout(db, kWalRestartWaitMs);
      rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_RESTART, nullptr, nullptr);
      sqlite3_busy_timeout(db, sqlite_internal::kBusyTimeoutMs);
    }
    restart_copy_at_ = 0;
    if (rc == SQLITE_OK) {
      wal_generation_.fetch_add(1);
      wal_frames_ = 0;
      restart_after_frames_ = wal_limit_frames_;
      copy_after_frames_ = WalStep();
    } else {
      restart_after_frames_ = wal_frames_ + WalStep();
    }
  }

  // Copies the WAL back into the database file once a second, and at once when the writer
  // asks (KeepWalBounded), on its own connection.
  // PASSIVE never waits for readers or the writer (nor calls the busy handler): it copies
  // what it can, and the writer starts the WAL over once everything was copied. A failed
  // attempt (another process checkpointing) is simply retried next time.
  void CheckpointLoop() {
    std::unique_lock<std::mutex> lock(checkpoint_mu_);
    for (;;) {
      checkpoint_cv_.wait_for(lock, kCheckpointInterval,
                              [&] { return checkpoint_stop_ || checkpoint_now_; });
      if (checkpoint_stop_) return;
      checkpoint_now_ = false;
      lock.unlock();
      int wal_frames = 0;
      int copied_frames = 0;
      const uint64_t generation = wal_generation_.load();
      int rc;
      {
        std::lock_guard<std::mutex> copying(checkpoint_run_mu_);
        rc = sqlite3_wal_checkpoint_v2(checkpoint_db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                       &wal_frames, &copied_frames);
      }
      lock.lock();
      if (rc == SQLITE_OK) {
        copied_generation_ = generation;
        copied_frames_ = copied_frames;
      }
    }
  }

  SqliteOptions options_;
  Clock& clock_;
  Db writer_db_;
  std::thread writer_;
  std::thread::id writer_id_;  // set before any caller can write
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stop_ = false;
  std::atomic<int64_t> batches_{0};
  // The WAL bound, in frames (0: none); the frames the WAL held after the writer's last
  // commit; past how many the writer next starts it over. Writer thread only.
  int64_t wal_limit_frames_ = 0;
  int64_t wal_frames_ = 0;
  int64_t restart_after_frames_ = 0;
  int64_t copy_after_frames_ = 0;  // past how many it next asks the checkpointer to copy
  int64_t restart_copy_at_ = 0;    // past the bound: the length it asked to have copied, or 0
  std::atomic<uint64_t> wal_generation_{0};  // the WAL's restarts (the writer counts)
  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<Db>> readers_;
  Db checkpoint_db_;
  std::thread checkpointer_;
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_stop_ = false;
  bool checkpoint_now_ = false;  // the writer asks for a copy before the next second
  // Held by whoever checkpoints in this process (the checkpointer's copy, the writer's
  // restart): two checkpoints at once, SQLite refuses the second at once.
  std::mutex checkpoint_run_mu_;
  // What the checkpointer last copied: the WAL's generation and the frames copied in it.
  uint64_t copied_generation_ = 0;
  int64_t copied_frames_ = 0;
};

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("sqlite store: path is empty");
  auto store =
      std::make_unique<SqliteStore>(options, options.clock ? *options.clock : SystemClock());
  RXFLOW_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace rxflow::store
