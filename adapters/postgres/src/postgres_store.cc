// PostgreSQL store over libpqxx 6.4. Every libpqxx exception is caught in this file and
// becomes a Status (broken connection → Unavailable, unique violation → Aborted or
// AlreadyExists, anything else → Unavailable with the server's message).
#include "rxflow/postgres/postgres_store.h"

#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <pqxx/pqxx>

namespace rxflow::internal::embedded {
extern const std::string_view k001_init_sql;
extern const std::string_view k002_append_function_sql;
}  // namespace rxflow::internal::embedded

namespace rxflow::store {
namespace {

struct Migration {
  int version;
  std::string_view sql;
};
const Migration kMigrations[] = {{1, rxflow::internal::embedded::k001_init_sql},
                                 {2, rxflow::internal::embedded::k002_append_function_sql}};

void JsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20) {
      out += "\\u00";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
}

void JsonField(std::string& out, std::string_view name, std::string_view value,
               bool first = false) {
  if (!first) out.push_back(',');
  JsonString(out, name);
  out.push_back(':');
  JsonString(out, value);
}

// One append as a single call of rxflow_append (migrations/002): one round trip.
StatusOr<AppendResult> CallAppend(pqxx::transaction_base& tx, AppendRequest& req, int64_t now) {
  if (req.stream_id.empty()) return absl::InvalidArgumentError("append: stream id is empty");
  std::string events = "[";
  for (size_t i = 0; i < req.events.size(); ++i) {
    const EventRecord& e = req.events[i];
    if (e.event_id.empty()) return absl::InvalidArgumentError("append: an event has no id");
    if (i) events.push_back(',');
    events.push_back('{');
    JsonField(events, "event_id", e.event_id, true);
    JsonField(events, "type", e.type);
    JsonField(events, "schema_version", std::to_string(e.schema_version));
    JsonField(events, "occurred_at", std::to_string(e.occurred_at));
    JsonField(events, "correlation_id", e.correlation_id);
    JsonField(events, "causation_id", e.causation_id);
    JsonField(events, "actor", e.actor);
    JsonField(events, "tenant", e.tenant);
    JsonField(events, "traceparent", e.traceparent);
    JsonField(events, "payload", e.payload);
    events.push_back('}');
  }
  events.push_back(']');
  std::string outbox = "[";
  for (size_t i = 0; i < req.outbox.size(); ++i) {
    const OutboxMessage& m = req.outbox[i];
    if (m.message_id.empty() || m.topic.empty()) {
      return absl::InvalidArgumentError("append: an outbox message needs a message id and a topic");
    }
    if (i) outbox.push_back(',');
    outbox.push_back('{');
    JsonField(outbox, "message_id", m.message_id, true);
    JsonField(outbox, "topic", m.topic);
    JsonField(outbox, "key", m.key);
    JsonField(outbox, "payload", m.payload);
    JsonField(outbox, "headers", m.headers);
    outbox.push_back('}');
  }
  outbox.push_back(']');
  pqxx::row r = tx.exec_params1(
      "SELECT code, detail, last_version, last_position, outbox_ids FROM "
      "rxflow_append($1, $2, $3, $4::jsonb, $5::jsonb, $6)",
      req.stream_id, req.expected_version, req.idempotency_key, events, outbox, now);
  std::string code = r[0].as<std::string>();
  std::string detail = r[1].is_null() ? std::string() : r[1].as<std::string>();
  if (code == "aborted") {
    return absl::AbortedError("version conflict on stream " + req.stream_id + ": " + detail);
  }
  if (code == "exists") return absl::AlreadyExistsError("idempotency key exists: " + detail);
  if (code == "unique") {
    if (detail.find("event_id") != std::string::npos)
      return absl::AlreadyExistsError("event id exists");
    if (detail.find("message_id") != std::string::npos) {
      return absl::AlreadyExistsError("outbox message id exists");
    }
    if (detail.find("idempotency") != std::string::npos) {
      return absl::AlreadyExistsError("idempotency key exists: (concurrent)");
    }
    return absl::AbortedError("version conflict on stream " + req.stream_id + " (" + detail + ")");
  }
  AppendResult result;
  result.last_version = r[2].as<int64_t>();
  result.last_global_position = r[3].as<int64_t>();
  int64_t version = result.last_version - static_cast<int64_t>(req.events.size());
  int64_t position = result.last_global_position - static_cast<int64_t>(req.events.size());
  for (EventRecord& e : req.events) {
    e.stream_id = req.stream_id;
    e.version = ++version;
    e.global_position = ++position;
  }
  // outbox_ids comes back as a PostgreSQL array literal "{1,2,3}".
  std::string ids = r[4].as<std::string>();
  size_t k = 0;
  for (size_t i = 1; i + 1 < ids.size() && k < req.outbox.size(); ++i) {
    size_t end = ids.find_first_of(",}", i);
    req.outbox[k].id = std::stoll(ids.substr(i, end - i));
    req.outbox[k++].created_at = now;
    i = end;
  }
  return result;
}

Status FromException(const std::exception& e, std::string_view what) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e)) {
    return absl::UnavailableError(std::string("postgres: connection lost during ") +
                                  std::string(what));
  }
  return absl::UnavailableError(std::string("postgres: ") + std::string(what) + ": " + e.what());
}

EventRecord ReadEvent(const pqxx::row& r) {
  EventRecord e;
  e.global_position = r[0].as<int64_t>();
  e.event_id = r[1].as<std::string>();
  e.stream_id = r[2].as<std::string>();
  e.version = r[3].as<int64_t>();
  e.type = r[4].as<std::string>();
  e.schema_version = r[5].as<int>();
  e.occurred_at = r[6].as<int64_t>();
  e.correlation_id = r[7].as<std::string>();
  e.causation_id = r[8].as<std::string>();
  e.actor = r[9].as<std::string>();
  e.tenant = r[10].as<std::string>();
  e.traceparent = r[11].as<std::string>();
  e.payload = r[12].as<std::string>();
  return e;
}

constexpr const char* kEventColumns =
    "global_position, event_id, stream_id, version, type, schema_version, occurred_at, "
    "correlation_id, causation_id, actor, tenant, traceparent, payload";

class PostgresStore;

// The EventStore an inbox effect sees: the inbox's own transaction.
class TxView : public EventStore {
 public:
  TxView(pqxx::work& tx, int64_t now) : tx_(tx), now_(now) {}
  // rxflow_append refuses a conflicting append inside its own savepoint, so a refused
  // append leaves the effect's transaction usable and unchanged.
  StatusOr<AppendResult> Append(AppendRequest r) override { return CallAppend(tx_, r, now_); }
  StatusOr<std::vector<EventRecord>> ReadStream(const std::string& s, int64_t after) override {
    std::vector<EventRecord> out;
    for (const auto& row :
         tx_.exec_params(std::string("SELECT ") + kEventColumns +
                             " FROM events WHERE stream_id = $1 AND version > $2 ORDER BY version",
                         s, after)) {
      out.push_back(ReadEvent(row));
    }
    return out;
  }
  StatusOr<std::vector<EventRecord>> ReadAll(int64_t, size_t) override {
    return absl::UnimplementedError("ReadAll inside an inbox effect");
  }
  StatusOr<std::string> FindByIdempotencyKey(const std::string& k) override {
    pqxx::result r = tx_.exec_params("SELECT stream_id FROM idempotency WHERE key = $1", k);
    if (r.empty()) return absl::NotFoundError("no stream for idempotency key " + k);
    return r[0][0].as<std::string>();
  }
  Status SaveSnapshot(const Snapshot&) override {
    return absl::UnimplementedError("snapshots inside an inbox effect");
  }
  StatusOr<Snapshot> LoadSnapshot(const std::string&) override {
    return absl::UnimplementedError("snapshots inside an inbox effect");
  }

 private:
  pqxx::work& tx_;
  int64_t now_;
};

class PostgresStore : public Store {
 public:
  PostgresStore(const PostgresOptions& o, Clock& clock) : options_(o), clock_(clock) {}

  Status Init() {
    try {
      for (size_t i = 0; i < std::max<size_t>(1, options_.connections); ++i) {
        pool_.push_back(Connect());
      }
      pqxx::work tx(*pool_.front());
      // One migrator at a time across processes.
      tx.exec("SELECT pg_advisory_xact_lock(7269786677)");
      tx.exec(
          "CREATE TABLE IF NOT EXISTS rxflow_migrations (version INTEGER PRIMARY KEY, applied_at "
          "TIMESTAMPTZ NOT NULL DEFAULT now())");
      for (const Migration& m : kMigrations) {
        if (!tx.exec_params("SELECT 1 FROM rxflow_migrations WHERE version = $1", m.version)
                 .empty())
          continue;
        tx.exec(std::string(m.sql));
        tx.exec_params("INSERT INTO rxflow_migrations (version) VALUES ($1)", m.version);
      }
      tx.commit();
      if (options_.batch_appends) writer_thread_ = std::thread([this] { WriterLoop(); });
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return FromException(e, "open");
    }
  }

  ~PostgresStore() override {
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      stop_ = true;
    }
    queue_cv_.notify_all();
    if (writer_thread_.joinable()) writer_thread_.join();
  }

  // A connection whose search_path is the store's schema (created when missing).
  std::unique_ptr<pqxx::connection> Connect() {
    auto c = std::make_unique<pqxx::connection>(options_.url);
    pqxx::nontransaction n(*c);
    if (options_.schema != "public")
      n.exec("CREATE SCHEMA IF NOT EXISTS " + c->quote_name(options_.schema));
    n.exec("SET search_path TO " + c->quote_name(options_.schema));
    return c;
  }

  // Runs `fn(tx)` in a transaction on a pooled connection; commits when it returns OK.
  template <typename F>
  Status InTx(std::string_view what, F&& fn) {
    Lease c(*this);
    if (!c.conn) return absl::UnavailableError("postgres: no connection");
    try {
      pqxx::work tx(*c.conn);
      Status s = fn(tx);
      if (!s.ok()) {
        tx.abort();
        return s;
      }
      tx.commit();
      return absl::OkStatus();
    } catch (const pqxx::broken_connection& e) {
      c.Reconnect();
      return FromException(e, what);
    } catch (const std::exception& e) {
      return FromException(e, what);
    }
  }

  // Appends go through one writer thread that commits them in batches: the position row
  // lock and the WAL flush are paid once per batch, not once per append. Each append runs
  // in its own savepoint, so a refused one rolls back alone.
  StatusOr<AppendResult> Append(AppendRequest request) override {
    if (options_.batch_appends) return BatchedAppend(std::move(request));
    return DirectAppend(std::move(request));
  }

  StatusOr<AppendResult> BatchedAppend(AppendRequest request) {
    Pending p;
    p.request = std::move(request);
    std::future<StatusOr<AppendResult>> result = p.done.get_future();
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      if (stop_) return absl::UnavailableError("postgres store is closing");
      queue_.push_back(std::move(p));
    }
    queue_cv_.notify_one();
    return result.get();
  }

  void WriterLoop() {
    for (;;) {
      std::vector<Pending> batch;
      {
        std::unique_lock<std::mutex> lock(queue_mu_);
        queue_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty() && stop_) return;
        while (!queue_.empty() && batch.size() < 256) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      std::vector<StatusOr<AppendResult>> results(batch.size(), absl::UnknownError("not run"));
      Status commit_status = absl::OkStatus();
      try {
        if (!writer_) writer_ = Connect();
        pqxx::work tx(*writer_);
        int64_t now = clock_.NowMicros();
        for (size_t i = 0; i < batch.size(); ++i) {
          // rxflow_append refuses a conflicting append without aborting the transaction.
          results[i] = CallAppend(tx, batch[i].request, now);
        }
        tx.commit();
      } catch (const pqxx::broken_connection& e) {
        writer_.reset();
        commit_status = FromException(e, "append");
      } catch (const std::exception& e) {
        writer_.reset();
        commit_status = FromException(e, "append");
      }
      for (size_t i = 0; i < batch.size(); ++i) {
        if (!commit_status.ok() && results[i].ok()) results[i] = commit_status;
        if (!commit_status.ok() && results[i].status().code() == absl::StatusCode::kUnknown) {
          results[i] = commit_status;
        }
        batch[i].done.set_value(std::move(results[i]));
      }
    }
  }

  StatusOr<AppendResult> DirectAppend(AppendRequest request) {
    AppendResult result;
    Status st;
    Lease c(*this);
    if (!c.conn) return absl::UnavailableError("postgres: no connection");
    try {
      pqxx::work tx(*c.conn);
      auto r = CallAppend(tx, request, clock_.NowMicros());
      if (!r.ok()) {
        tx.abort();
        return r.status();
      }
      tx.commit();
      result = *r;
      return result;
    } catch (const pqxx::broken_connection& e) {
      c.Reconnect();
      return FromException(e, "append");
    } catch (const std::exception& e) {
      return FromException(e, "append");
    }
  }

  StatusOr<std::vector<EventRecord>> ReadStream(const std::string& stream_id,
                                                int64_t after) override {
    std::vector<EventRecord> out;
    Status s = InTx("read stream", [&](pqxx::work& tx) {
      for (const auto& row :
           tx.exec_params(std::string("SELECT ") + kEventColumns +
                              " FROM events WHERE stream_id = $1 AND version > $2 ORDER BY version",
                          stream_id, after)) {
        out.push_back(ReadEvent(row));
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  StatusOr<std::vector<EventRecord>> ReadAll(int64_t after, size_t limit) override {
    std::vector<EventRecord> out;
    Status s = InTx("read all", [&](pqxx::work& tx) {
      for (const auto& row : tx.exec_params(
               std::string("SELECT ") + kEventColumns +
                   " FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2",
               after, static_cast<int64_t>(limit))) {
        out.push_back(ReadEvent(row));
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  StatusOr<std::string> FindByIdempotencyKey(const std::string& key) override {
    std::string out;
    Status s = InTx("find idempotency key", [&](pqxx::work& tx) -> Status {
      pqxx::result r = tx.exec_params("SELECT stream_id FROM idempotency WHERE key = $1", key);
      if (r.empty()) return absl::NotFoundError("no stream for idempotency key " + key);
      out = r[0][0].as<std::string>();
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  Status SaveSnapshot(const Snapshot& snap) override {
    return InTx("save snapshot", [&](pqxx::work& tx) {
      tx.exec_params(
          "INSERT INTO snapshots (stream_id, version, state) VALUES ($1, $2, $3) "
          "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = "
          "excluded.state "
          "WHERE excluded.version >= snapshots.version",
          snap.stream_id, snap.version, snap.state);
      return absl::OkStatus();
    });
  }

  StatusOr<Snapshot> LoadSnapshot(const std::string& stream_id) override {
    Snapshot out;
    Status s = InTx("load snapshot", [&](pqxx::work& tx) -> Status {
      pqxx::result r =
          tx.exec_params("SELECT version, state FROM snapshots WHERE stream_id = $1", stream_id);
      if (r.empty()) return absl::NotFoundError("no snapshot for stream " + stream_id);
      out = Snapshot{stream_id, r[0][0].as<int64_t>(), r[0][1].as<std::string>()};
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  // Claims in id order without handing a key's messages out of order, with several relays
  // claiming at once: candidates are read, then locked FOR UPDATE SKIP LOCKED with the
  // claimability re-checked; a key whose earlier message is locked or claimed elsewhere is
  // skipped from that message on.
  StatusOr<std::vector<OutboxMessage>> Claim(size_t limit, int64_t lease_micros) override {
    std::vector<OutboxMessage> out;
    Status s = InTx("claim", [&](pqxx::work& tx) -> Status {
      out.clear();
      int64_t now = clock_.NowMicros();
      pqxx::result pending = tx.exec_params(
          "SELECT id, key, claimed_until, available_at FROM outbox WHERE NOT published ORDER BY id "
          "LIMIT $1",
          static_cast<int64_t>(limit * 4 + 64));
      std::set<std::string> blocked;
      std::vector<std::pair<int64_t, std::string>> candidates;
      for (const auto& row : pending) {
        std::string key = row[1].as<std::string>();
        bool claimable = row[2].as<int64_t>() <= now && row[3].as<int64_t>() <= now;
        if (blocked.count(key) || !claimable || candidates.size() >= limit) {
          blocked.insert(key);
          continue;
        }
        candidates.emplace_back(row[0].as<int64_t>(), key);
      }
      if (candidates.empty()) return absl::OkStatus();
      std::string ids = "{";
      for (size_t i = 0; i < candidates.size(); ++i)
        ids += (i ? "," : "") + std::to_string(candidates[i].first);
      ids += "}";
      pqxx::result locked = tx.exec_params(
          "SELECT id, message_id, topic, key, payload, headers, attempts, created_at FROM outbox "
          "WHERE id = ANY($1::bigint[]) AND NOT published AND claimed_until <= $2 AND available_at "
          "<= $2 "
          "ORDER BY id FOR UPDATE SKIP LOCKED",
          ids, now);
      std::map<int64_t, OutboxMessage> got;
      for (const auto& row : locked) {
        OutboxMessage m;
        m.id = row[0].as<int64_t>();
        m.message_id = row[1].as<std::string>();
        m.topic = row[2].as<std::string>();
        m.key = row[3].as<std::string>();
        m.payload = row[4].as<std::string>();
        m.headers = row[5].as<std::string>();
        m.attempts = row[6].as<int>();
        m.created_at = row[7].as<int64_t>();
        got.emplace(m.id, std::move(m));
      }
      std::set<std::string> broken;  // keys with a candidate someone else holds
      for (const auto& [id, key] : candidates) {
        auto it = got.find(id);
        if (it == got.end() || broken.count(key)) {
          broken.insert(key);
          continue;
        }
        out.push_back(std::move(it->second));
      }
      for (const OutboxMessage& m : out) {
        tx.exec_params("UPDATE outbox SET claimed_until = $1 WHERE id = $2", now + lease_micros,
                       m.id);
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  Status MarkPublished(std::span<const int64_t> ids) override {
    return InTx("mark published", [&](pqxx::work& tx) -> Status {
      for (int64_t id : ids) {
        pqxx::result r = tx.exec_params(
            "UPDATE outbox SET published = TRUE, claimed_until = 0 WHERE id = $1 RETURNING id", id);
        if (r.empty()) return absl::NotFoundError("no outbox message " + std::to_string(id));
      }
      return absl::OkStatus();
    });
  }

  Status MarkFailed(int64_t id, int64_t retry_after_micros) override {
    return InTx("mark failed", [&](pqxx::work& tx) -> Status {
      pqxx::result r = tx.exec_params(
          "UPDATE outbox SET claimed_until = 0, available_at = $1, attempts = attempts + 1 WHERE "
          "id = $2 "
          "RETURNING id",
          clock_.NowMicros() + retry_after_micros, id);
      if (r.empty()) return absl::NotFoundError("no outbox message " + std::to_string(id));
      return absl::OkStatus();
    });
  }

  StatusOr<int64_t> Backlog() override {
    int64_t n = 0;
    Status s = InTx("backlog", [&](pqxx::work& tx) {
      n = tx.exec("SELECT COUNT(*) FROM outbox WHERE NOT published")[0][0].as<int64_t>();
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return n;
  }

  Status Process(const std::string& consumer, const std::string& message_id,
                 const InboxEffect& effect) override {
    return InTx("inbox", [&](pqxx::work& tx) -> Status {
      int64_t now = clock_.NowMicros();
      pqxx::result r = tx.exec_params(
          "INSERT INTO inbox (consumer, message_id, processed_at) VALUES ($1, $2, $3) "
          "ON CONFLICT DO NOTHING RETURNING message_id",
          consumer, message_id, now);
      if (r.empty()) {
        return absl::AlreadyExistsError("message " + message_id + " already processed by " +
                                        consumer);
      }
      TxView view(tx, now);
      return effect(view);  // a failure aborts the transaction: the inbox row included
    });
  }

  StatusOr<int64_t> Checkpoint(const std::string& name) override {
    int64_t out = 0;
    Status s = InTx("checkpoint", [&](pqxx::work& tx) {
      pqxx::result r =
          tx.exec_params("SELECT position FROM projection_checkpoints WHERE name = $1", name);
      out = r.empty() ? 0 : r[0][0].as<int64_t>();
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  Status Apply(const std::string& name, int64_t checkpoint,
               std::span<const std::pair<std::string, std::string>> rows) override {
    return InTx("projection", [&](pqxx::work& tx) -> Status {
      pqxx::result cur = tx.exec_params(
          "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE", name);
      if (!cur.empty() && cur[0][0].as<int64_t>() > checkpoint) {
        return absl::AbortedError("projection " + name + " is at " + cur[0][0].as<std::string>() +
                                  ", not moving back to " + std::to_string(checkpoint));
      }
      for (const auto& [k, v] : rows) {
        tx.exec_params(
            "INSERT INTO projection_rows (name, key, doc) VALUES ($1, $2, $3) "
            "ON CONFLICT (name, key) DO UPDATE SET doc = excluded.doc",
            name, k, v);
      }
      tx.exec_params(
          "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2) "
          "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
          name, checkpoint);
      return absl::OkStatus();
    });
  }

  StatusOr<std::string> Get(const std::string& name, const std::string& key) override {
    std::string out;
    Status s = InTx("projection get", [&](pqxx::work& tx) -> Status {
      pqxx::result r =
          tx.exec_params("SELECT doc FROM projection_rows WHERE name = $1 AND key = $2", name, key);
      if (r.empty()) return absl::NotFoundError("no row " + key + " in projection " + name);
      out = r[0][0].as<std::string>();
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  StatusOr<std::vector<std::pair<std::string, std::string>>> All(const std::string& name) override {
    std::vector<std::pair<std::string, std::string>> out;
    Status s = InTx("projection all", [&](pqxx::work& tx) {
      for (const auto& row : tx.exec_params(
               "SELECT key, doc FROM projection_rows WHERE name = $1 ORDER BY key", name)) {
        out.emplace_back(row[0].as<std::string>(), row[1].as<std::string>());
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  Status Reset(const std::string& name) override {
    return InTx("projection reset", [&](pqxx::work& tx) {
      tx.exec_params("DELETE FROM projection_rows WHERE name = $1", name);
      tx.exec_params("DELETE FROM projection_checkpoints WHERE name = $1", name);
      return absl::OkStatus();
    });
  }

 private:
  // A connection borrowed from the pool for one operation.
  struct Lease {
    PostgresStore& store;
    std::unique_ptr<pqxx::connection> conn;
    explicit Lease(PostgresStore& s) : store(s) {
      std::unique_lock<std::mutex> lock(store.mu_);
      store.cv_.wait(lock, [&] { return !store.pool_.empty(); });
      conn = std::move(store.pool_.back());
      store.pool_.pop_back();
    }
    void Reconnect() {
      try {
        conn = store.Connect();
      } catch (const std::exception&) {
        // Keep the broken one; the next operation fails and tries again.
      }
    }
    ~Lease() {
      {
        std::lock_guard<std::mutex> lock(store.mu_);
        store.pool_.push_back(std::move(conn));
      }
      store.cv_.notify_one();
    }
  };

  struct Pending {
    AppendRequest request;
    std::promise<StatusOr<AppendResult>> done;
  };

  PostgresOptions options_;
  Clock& clock_;
  std::unique_ptr<pqxx::connection> writer_;  // the writer thread's own connection
  std::thread writer_thread_;
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Pending> queue_;
  bool stop_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<pqxx::connection>> pool_;
};

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const PostgresOptions& options) {
  if (options.url.empty()) return absl::InvalidArgumentError("postgres store: url is empty");
  auto store =
      std::make_unique<PostgresStore>(options, options.clock ? *options.clock : SystemClock());
  if (Status s = store->Init(); !s.ok()) return s;
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace rxflow::store
