// SQLite store: WAL + synchronous=FULL, one writer thread with group commit, pooled
// reader connections.
#include "rxflow/sqlite/sqlite_store.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <sqlite3.h>

namespace rxflow::store {
namespace {

class StmtCache;
void Register(sqlite3* db, StmtCache* cache);
void Unregister(sqlite3* db);

class Db {
 public:
  Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();
  Status Open(const std::string& path) {
    int rc =
        sqlite3_open_v2(path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) return Error("open " + path);
    Register(db_, cache_.get());
    sqlite3_busy_timeout(db_, 10'000);
    return Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
  }
  Status Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "error";
      sqlite3_free(err);
      return absl::UnavailableError("sqlite: " + msg);
    }
    return absl::OkStatus();
  }
  Status Error(const std::string& what) const {
    return absl::UnavailableError("sqlite: " + what + ": " +
                                  (db_ ? sqlite3_errmsg(db_) : "no database"));
  }
  sqlite3* get() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::unique_ptr<StmtCache> cache_;
};

// Prepared statements are cached per connection (keyed by their SQL text) and reset for
// reuse: preparing costs more than executing for these small statements.
class StmtCache {
 public:
  ~StmtCache() {
    for (auto& [sql, st] : cache_) sqlite3_finalize(st);
  }
  sqlite3_stmt* Get(sqlite3* db, const std::string& sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v3(db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr) !=
        SQLITE_OK) {
      return nullptr;
    }
    cache_.emplace(sql, st);
    return st;
  }

 private:
  std::map<std::string, sqlite3_stmt*> cache_;
};

// sqlite3* → its connection's statement cache. Each connection is used by one thread at a
// time, so a cache needs no lock of its own; the registry does.
std::mutex registry_mu;
std::map<sqlite3*, StmtCache*>& Registry() {
  static auto* r = new std::map<sqlite3*, StmtCache*>;
  return *r;
}

StmtCache& CacheFor(sqlite3* db) {
  std::lock_guard<std::mutex> lock(registry_mu);
  return *Registry().at(db);
}

void Register(sqlite3* db, StmtCache* cache) {
  std::lock_guard<std::mutex> lock(registry_mu);
  Registry()[db] = cache;
}
void Unregister(sqlite3* db) {
  std::lock_guard<std::mutex> lock(registry_mu);
  Registry().erase(db);
}

Db::Db() : cache_(std::make_unique<StmtCache>()) {}
Db::~Db() {
  if (db_) {
    Unregister(db_);
    cache_.reset();  // finalize the statements before closing
    sqlite3_close_v2(db_);
  }
}

// A prepared statement from the connection's cache, reset on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql) : db_(db), s_(CacheFor(db).Get(db, sql)) {}
  ~Stmt() {
    if (s_) {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
  }
  bool ok() const { return s_ != nullptr; }
  Stmt& Bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE, or an error code.
  int Step() { return s_ ? sqlite3_step(s_) : SQLITE_ERROR; }
  int64_t Int(int col) const { return sqlite3_column_int64(s_, col); }
  std::string Text(int col) const {
    const unsigned char* t = sqlite3_column_text(s_, col);
    return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(s_, col))
             : std::string();
  }
  Status Fail(const std::string& what) const {
    return absl::UnavailableError("sqlite: " + what + ": " + sqlite3_errmsg(db_));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_;
};

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
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, stream_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (stream_id TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL UNIQUE,
  topic TEXT NOT NULL, key TEXT NOT NULL, payload TEXT NOT NULL, headers TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,
  published INTEGER NOT NULL DEFAULT 0, claimed_until INTEGER NOT NULL DEFAULT 0,
  available_at INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (published, id);
CREATE TABLE IF NOT EXISTS inbox (consumer TEXT NOT NULL, message_id TEXT NOT NULL,
  processed_at INTEGER NOT NULL, PRIMARY KEY (consumer, message_id));
CREATE TABLE IF NOT EXISTS projection_rows (name TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (name, key));
CREATE TABLE IF NOT EXISTS projection_checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
)sql";

Status Run(sqlite3* db, const char* sql) {
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

constexpr const char* kEventColumns =
    "global_position, event_id, stream_id, version, type, schema_version, occurred_at, "
    "correlation_id, causation_id, actor, tenant, traceparent, payload";

// Operations on one connection, shared by the writer (inside a transaction) and readers.
StatusOr<std::vector<EventRecord>> ReadStreamOn(sqlite3* db, const std::string& stream_id,
                                                int64_t after) {
  Stmt s(db, std::string("SELECT ") + kEventColumns +
                 " FROM events WHERE stream_id = ?1 AND version > ?2 ORDER BY version");
  if (!s.ok()) return absl::UnavailableError(std::string("sqlite: ") + sqlite3_errmsg(db));
  s.Bind(1, stream_id).Bind(2, after);
  std::vector<EventRecord> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadEvent(s));
  if (rc != SQLITE_DONE) return s.Fail("read stream");
  return out;
}

StatusOr<std::string> FindKeyOn(sqlite3* db, const std::string& key) {
  Stmt s(db, "SELECT stream_id FROM idempotency WHERE key = ?1");
  s.Bind(1, key);
  int rc = s.Step();
  if (rc == SQLITE_ROW) return s.Text(0);
  if (rc == SQLITE_DONE) return absl::NotFoundError("no stream for idempotency key " + key);
  return s.Fail("find idempotency key");
}

// Appends within the writer's open transaction (the caller wraps it in a savepoint).
StatusOr<AppendResult> AppendOn(sqlite3* db, AppendRequest& req, int64_t now) {
  if (req.stream_id.empty()) return absl::InvalidArgumentError("append: stream id is empty");
  Stmt cur(db, "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?1");
  cur.Bind(1, req.stream_id);
  if (cur.Step() != SQLITE_ROW) return cur.Fail("current version");
  int64_t current = cur.Int(0);
  if (req.expected_version != kAnyVersion && req.expected_version != current) {
    return absl::AbortedError("version conflict on stream " + req.stream_id + ": expected " +
                              std::to_string(req.expected_version) + ", current " +
                              std::to_string(current));
  }
  if (!req.idempotency_key.empty()) {
    auto existing = FindKeyOn(db, req.idempotency_key);
    if (existing.ok()) return absl::AlreadyExistsError("idempotency key exists: " + *existing);
    if (existing.status().code() != absl::StatusCode::kNotFound) return existing.status();
    Stmt ins(db, "INSERT INTO idempotency (key, stream_id) VALUES (?1, ?2)");
    ins.Bind(1, req.idempotency_key).Bind(2, req.stream_id);
    if (ins.Step() != SQLITE_DONE) return ins.Fail("insert idempotency key");
  }
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
    one.Bind(1, e.event_id)
        .Bind(2, e.stream_id)
        .Bind(3, e.version)
        .Bind(4, e.type)
        .Bind(5, static_cast<int64_t>(e.schema_version))
        .Bind(6, e.occurred_at)
        .Bind(7, e.correlation_id)
        .Bind(8, e.causation_id)
        .Bind(9, e.actor)
        .Bind(10, e.tenant)
        .Bind(11, e.traceparent)
        .Bind(12, e.payload);
    int rc = one.Step();
    if (rc == SQLITE_CONSTRAINT) {
      int ext = sqlite3_extended_errcode(db);
      if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY) {
        std::string msg = sqlite3_errmsg(db);
        if (msg.find("event_id") != std::string::npos) {
          return absl::AlreadyExistsError("event id exists: " + e.event_id);
        }
        return absl::AbortedError("version conflict on stream " + req.stream_id);
      }
    }
    if (rc != SQLITE_DONE) return one.Fail("insert event");
    e.global_position = sqlite3_last_insert_rowid(db);
    result.last_version = e.version;
    result.last_global_position = e.global_position;
  }
  for (OutboxMessage& m : req.outbox) {
    if (m.message_id.empty() || m.topic.empty()) {
      return absl::InvalidArgumentError("append: an outbox message needs a message id and a topic");
    }
    Stmt o(db,
           "INSERT INTO outbox (message_id, topic, key, payload, headers, created_at) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    o.Bind(1, m.message_id)
        .Bind(2, m.topic)
        .Bind(3, m.key)
        .Bind(4, m.payload)
        .Bind(5, m.headers)
        .Bind(6, now);
    int rc = o.Step();
    if (rc == SQLITE_CONSTRAINT)
      return absl::AlreadyExistsError("outbox message id exists: " + m.message_id);
    if (rc != SQLITE_DONE) return o.Fail("insert outbox");
    m.id = sqlite3_last_insert_rowid(db);
    m.created_at = now;
  }
  return result;
}

// The EventStore an inbox effect sees: the writer's connection inside its savepoint.
class TxView : public EventStore {
 public:
  TxView(sqlite3* db, int64_t now) : db_(db), now_(now) {}
  // A savepoint per append: a refused append leaves nothing behind even if the effect
  // carries on.
  StatusOr<AppendResult> Append(AppendRequest r) override {
    Run(db_, "SAVEPOINT effect_append").IgnoreError();
    auto result = AppendOn(db_, r, now_);
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
  sqlite3* db_;
  int64_t now_;
};

class SqliteStore : public Store {
 public:
  SqliteStore(const SqliteOptions& options, Clock& clock) : options_(options), clock_(clock) {}

  Status Init() {
    std::filesystem::path p(options_.path);
    std::error_code ec;
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
    if (Status s = writer_db_.Open(options_.path); !s.ok()) return s;
    if (Status s = writer_db_.Exec(kSchema); !s.ok()) return s;
    for (size_t i = 0; i < std::max<size_t>(1, options_.readers); ++i) {
      auto db = std::make_unique<Db>();
      if (Status s = db->Open(options_.path); !s.ok()) return s;
      readers_.push_back(std::move(db));
    }
    writer_ = std::thread([this] { WriterLoop(); });
    return absl::OkStatus();
  }

  ~SqliteStore() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (writer_.joinable()) writer_.join();
  }

  // ---- writes: jobs run by the writer thread, group-committed ----------------------------
  using Job = std::function<Status(sqlite3*, int64_t now)>;

  Status Write(Job job) {
    std::promise<Status> done;
    std::future<Status> result = done.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return absl::UnavailableError("sqlite store is closing");
      queue_.push_back({std::move(job), std::move(done)});
    }
    cv_.notify_one();
    return result.get();
  }

  StatusOr<AppendResult> Append(AppendRequest request) override {
    AppendResult result;
    Status s = Write([&](sqlite3* db, int64_t now) -> Status {
      auto r = AppendOn(db, request, now);
      if (!r.ok()) return r.status();
      result = *r;
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return result;
  }

  Status SaveSnapshot(const Snapshot& snap) override {
    return Write([&](sqlite3* db, int64_t) -> Status {
      Stmt s(db,
             "INSERT INTO snapshots (stream_id, version, state) VALUES (?1, ?2, ?3) "
             "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = "
             "excluded.state "
             "WHERE excluded.version >= snapshots.version");
      s.Bind(1, snap.stream_id).Bind(2, snap.version).Bind(3, snap.state);
      return s.Step() == SQLITE_DONE ? absl::OkStatus() : s.Fail("save snapshot");
    });
  }

  StatusOr<std::vector<OutboxMessage>> Claim(size_t limit, int64_t lease_micros) override {
    std::vector<OutboxMessage> out;
    Status st = Write([&](sqlite3* db, int64_t now) -> Status {
      out.clear();
      Stmt s(db,
             "SELECT id, message_id, topic, key, payload, headers, attempts, created_at, "
             "claimed_until, "
             "available_at FROM outbox WHERE published = 0 ORDER BY id");
      std::set<std::string> blocked;
      std::vector<int64_t> ids;
      int rc;
      while ((rc = s.Step()) == SQLITE_ROW) {
        // Full: no later row can be returned, so none can be handed out of order.
        if (out.size() >= limit) {
          rc = SQLITE_DONE;
          break;
        }
        std::string key = s.Text(3);
        bool claimable = s.Int(8) <= now && s.Int(9) <= now;
        if (blocked.count(key) || !claimable) {
          blocked.insert(key);
          continue;
        }
        OutboxMessage m;
        m.id = s.Int(0);
        m.message_id = s.Text(1);
        m.topic = s.Text(2);
        m.key = key;
        m.payload = s.Text(4);
        m.headers = s.Text(5);
        m.attempts = static_cast<int>(s.Int(6));
        m.created_at = s.Int(7);
        out.push_back(std::move(m));
      }
      if (rc != SQLITE_DONE) return s.Fail("claim");
      for (const OutboxMessage& m : out) {
        Stmt u(db, "UPDATE outbox SET claimed_until = ?1 WHERE id = ?2");
        u.Bind(1, now + lease_micros).Bind(2, m.id);
        if (u.Step() != SQLITE_DONE) return u.Fail("claim");
      }
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return out;
  }

  Status MarkPublished(std::span<const int64_t> ids) override {
    std::vector<int64_t> copy(ids.begin(), ids.end());
    return Write([&](sqlite3* db, int64_t) -> Status {
      for (int64_t id : copy) {
        Stmt u(db, "UPDATE outbox SET published = 1, claimed_until = 0 WHERE id = ?1");
        u.Bind(1, id);
        if (u.Step() != SQLITE_DONE) return u.Fail("mark published");
        if (sqlite3_changes(db) == 0)
          return absl::NotFoundError("no outbox message " + std::to_string(id));
      }
      return absl::OkStatus();
    });
  }

  Status MarkFailed(int64_t id, int64_t retry_after_micros) override {
    return Write([&](sqlite3* db, int64_t now) -> Status {
      Stmt u(db,
             "UPDATE outbox SET claimed_until = 0, available_at = ?1, attempts = attempts + 1 "
             "WHERE id = ?2");
      u.Bind(1, now + retry_after_micros).Bind(2, id);
      if (u.Step() != SQLITE_DONE) return u.Fail("mark failed");
      if (sqlite3_changes(db) == 0)
        return absl::NotFoundError("no outbox message " + std::to_string(id));
      return absl::OkStatus();
    });
  }

  Status Process(const std::string& consumer, const std::string& message_id,
                 const InboxEffect& effect) override {
    return Write([&](sqlite3* db, int64_t now) -> Status {
      Stmt ins(db, "INSERT INTO inbox (consumer, message_id, processed_at) VALUES (?1, ?2, ?3)");
      ins.Bind(1, consumer).Bind(2, message_id).Bind(3, now);
      int rc = ins.Step();
      if (rc == SQLITE_CONSTRAINT) {
        return absl::AlreadyExistsError("message " + message_id + " already processed by " +
                                        consumer);
      }
      if (rc != SQLITE_DONE) return ins.Fail("inbox");
      TxView view(db, now);
      return effect(view);  // a failure rolls back the savepoint: inbox row included
    });
  }

  Status Apply(const std::string& name, int64_t checkpoint,
               std::span<const std::pair<std::string, std::string>> rows) override {
    std::vector<std::pair<std::string, std::string>> copy(rows.begin(), rows.end());
    return Write([&](sqlite3* db, int64_t) -> Status {
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
    return Write([&](sqlite3* db, int64_t) -> Status {
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
    auto result = fn(db->get());
    {
      std::lock_guard<std::mutex> lock(readers_mu_);
      readers_.push_back(std::move(db));
    }
    readers_cv_.notify_one();
    return result;
  }

  StatusOr<std::vector<EventRecord>> ReadStream(const std::string& stream_id,
                                                int64_t after) override {
    return Read([&](sqlite3* db) { return ReadStreamOn(db, stream_id, after); });
  }

  StatusOr<std::vector<EventRecord>> ReadAll(int64_t after, size_t limit) override {
    return Read([&](sqlite3* db) -> StatusOr<std::vector<EventRecord>> {
      Stmt s(db, std::string("SELECT ") + kEventColumns +
                     " FROM events WHERE global_position > ?1 ORDER BY global_position LIMIT ?2");
      s.Bind(1, after).Bind(2, static_cast<int64_t>(limit));
      std::vector<EventRecord> out;
      int rc;
      while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadEvent(s));
      if (rc != SQLITE_DONE) return s.Fail("read all");
      return out;
    });
  }

  StatusOr<std::string> FindByIdempotencyKey(const std::string& key) override {
    return Read([&](sqlite3* db) { return FindKeyOn(db, key); });
  }

  StatusOr<Snapshot> LoadSnapshot(const std::string& stream_id) override {
    return Read([&](sqlite3* db) -> StatusOr<Snapshot> {
      Stmt s(db, "SELECT version, state FROM snapshots WHERE stream_id = ?1");
      s.Bind(1, stream_id);
      int rc = s.Step();
      if (rc == SQLITE_ROW) return Snapshot{stream_id, s.Int(0), s.Text(1)};
      if (rc == SQLITE_DONE) return absl::NotFoundError("no snapshot for stream " + stream_id);
      return s.Fail("load snapshot");
    });
  }

  StatusOr<int64_t> Backlog() override {
    return Read([&](sqlite3* db) -> StatusOr<int64_t> {
      Stmt s(db, "SELECT COUNT(*) FROM outbox WHERE published = 0");
      if (s.Step() != SQLITE_ROW) return s.Fail("backlog");
      return s.Int(0);
    });
  }

  StatusOr<int64_t> Checkpoint(const std::string& name) override {
    return Read([&](sqlite3* db) -> StatusOr<int64_t> {
      Stmt s(db, "SELECT position FROM projection_checkpoints WHERE name = ?1");
      s.Bind(1, name);
      int rc = s.Step();
      if (rc == SQLITE_ROW) return s.Int(0);
      if (rc == SQLITE_DONE) return int64_t{0};
      return s.Fail("checkpoint");
    });
  }

  StatusOr<std::string> Get(const std::string& name, const std::string& key) override {
    return Read([&](sqlite3* db) -> StatusOr<std::string> {
      Stmt s(db, "SELECT doc FROM projection_rows WHERE name = ?1 AND key = ?2");
      s.Bind(1, name).Bind(2, key);
      int rc = s.Step();
      if (rc == SQLITE_ROW) return s.Text(0);
      if (rc == SQLITE_DONE) return absl::NotFoundError("no row " + key + " in projection " + name);
      return s.Fail("projection get");
    });
  }

  StatusOr<std::vector<std::pair<std::string, std::string>>> All(const std::string& name) override {
    return Read([&](sqlite3* db) -> StatusOr<std::vector<std::pair<std::string, std::string>>> {
      Stmt s(db, "SELECT key, doc FROM projection_rows WHERE name = ?1 ORDER BY key");
      s.Bind(1, name);
      std::vector<std::pair<std::string, std::string>> out;
      int rc;
      while ((rc = s.Step()) == SQLITE_ROW) out.emplace_back(s.Text(0), s.Text(1));
      if (rc != SQLITE_DONE) return s.Fail("projection all");
      return out;
    });
  }

 private:
  struct Pending {
    Job job;
    std::promise<Status> done;
  };

  // Takes every queued job (up to max_batch), runs each in its own savepoint inside one
  // transaction, commits once (one fsync), then answers every caller.
  void WriterLoop() {
    sqlite3* db = writer_db_.get();
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
        for (auto& p : batch) p.done.set_value(begin);
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
        results[i] = s;
      }
      Status commit = Run(db, "COMMIT");
      if (!commit.ok()) {
        writer_db_.Exec("ROLLBACK").IgnoreError();
        for (auto& r : results) {
          if (r.ok()) r = commit;
        }
      }
      batches_.fetch_add(1);
      for (size_t i = 0; i < batch.size(); ++i) batch[i].done.set_value(results[i]);
    }
  }

  SqliteOptions options_;
  Clock& clock_;
  Db writer_db_;
  std::thread writer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stop_ = false;
  std::atomic<int64_t> batches_{0};
  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<Db>> readers_;
};

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("sqlite store: path is empty");
  auto store =
      std::make_unique<SqliteStore>(options, options.clock ? *options.clock : SystemClock());
  if (Status s = store->Init(); !s.ok()) return s;
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace rxflow::store
