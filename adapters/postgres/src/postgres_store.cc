// SPDX-License-Identifier: Apache-2.0
// PostgreSQL store over libpqxx 6.4. Every libpqxx exception is caught in this file and
// becomes a Status (broken connection → Unavailable, unique violation → Aborted or
// AlreadyExists, anything else → Unavailable with the server's message).
#include "rxflow/postgres/postgres_store.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include <absl/strings/match.h>
#include <pqxx/pqxx>

#include "rxflow/internal/crypto.h"
#include "rxflow/internal/one_shot_event.h"
#include "rxflow/internal/status_macros.h"

namespace rxflow::internal::embedded {
extern const std::string_view k001_init_sql;
extern const std::string_view k002_append_function_sql;
extern const std::string_view k003_event_log_outbox_sql;
extern const std::string_view k004_append_without_subtransactions_sql;
extern const std::string_view k005_data_keys_sql;
}  // namespace rxflow::internal::embedded

namespace rxflow::store {
namespace {

struct Migration {
  int version;
  std::string_view sql;
};
const Migration kMigrations[] = {
    {1, rxflow::internal::embedded::k001_init_sql},
    {2, rxflow::internal::embedded::k002_append_function_sql},
    {3, rxflow::internal::embedded::k003_event_log_outbox_sql},
    {4, rxflow::internal::embedded::k004_append_without_subtransactions_sql},
    {5, rxflow::internal::embedded::k005_data_keys_sql}};

void JsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
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

// The JSON array of `req`'s events that rxflow_append takes (every value a JSON string;
// the function casts), or InvalidArgument.
Status EventsJson(const AppendRequest& req, std::string& out) {
  if (req.stream_id.empty()) return absl::InvalidArgumentError("append: stream id is empty");
  out = "[";
  for (size_t i = 0; i < req.events.size(); ++i) {
    const EventRecord& e = req.events[i];
    if (e.event_id.empty()) return absl::InvalidArgumentError("append: an event has no id");
    if (i) out.push_back(',');
    out.push_back('{');
    JsonField(out, "event_id", e.event_id, true);
    JsonField(out, "type", e.type);
    JsonField(out, "schema_version", std::to_string(e.schema_version));
    JsonField(out, "occurred_at", std::to_string(e.occurred_at));
    JsonField(out, "correlation_id", e.correlation_id);
    JsonField(out, "causation_id", e.causation_id);
    JsonField(out, "actor", e.actor);
    JsonField(out, "tenant", e.tenant);
    JsonField(out, "traceparent", e.traceparent);
    JsonField(out, "payload", e.payload);
    out.push_back('}');
  }
  out.push_back(']');
  return absl::OkStatus();
}

// What rxflow_append answered for `req` (code, detail, last_version, last_position) as a
// result; on 'ok' the request's events get their stream id, versions and positions.
StatusOr<AppendResult> AppendOutcome(AppendRequest& req, const std::string& code,
                                     const std::string& detail, int64_t last_version,
                                     int64_t last_position) {
  if (code == "aborted") {
    return absl::AbortedError("version conflict on stream " + req.stream_id + ": " + detail);
  }
  if (code == "exists") return absl::AlreadyExistsError("idempotency key exists: " + detail);
  if (code == "unique") {
    if (absl::StrContains(detail, "event_id")) return absl::AlreadyExistsError("event id exists");
    if (absl::StrContains(detail, "idempotency")) {
      return absl::AlreadyExistsError("idempotency key exists: (concurrent)");
    }
    return absl::AbortedError("version conflict on stream " + req.stream_id + " (" + detail + ")");
  }
  if (code != "ok") return absl::InternalError("postgres: rxflow_append answered " + code);
  AppendResult result;
  result.last_version = last_version;
  result.last_global_position = last_position;
  int64_t version = last_version - static_cast<int64_t>(req.events.size());
  int64_t position = last_position - static_cast<int64_t>(req.events.size());
  for (EventRecord& e : req.events) {
    e.stream_id = req.stream_id;
    e.version = ++version;
    e.global_position = ++position;
  }
  return result;
}

// The statements of the hot paths (appends, stream and log reads, idempotency look-ups,
// the inbox, subscriptions and projections), prepared on every connection (Connect): the
// server parses and plans each once per connection instead of on every call (libpqxx sends
// the Parse on first use). Measured: docs/performance.md, "PostgreSQL + Kafka".
struct PreparedSql {
  const char* name;
  const char* sql;
};
#define RXFLOW_PG_EVENT_COLUMNS                                                        \
  "global_position, event_id, stream_id, version, type, schema_version, occurred_at, " \
  "correlation_id, causation_id, actor, tenant, traceparent, payload"
constexpr PreparedSql kAppendSql{
    "rxflow_append",
    "SELECT code, detail, last_version, last_position FROM rxflow_append($1, $2, $3, $4::jsonb)"};
constexpr PreparedSql kAppendBatchSql{
    "rxflow_append_batch",
    "SELECT ord, code, detail, last_version, last_position FROM rxflow_append_batch($1::jsonb)"};
constexpr PreparedSql kReadStreamSql{
    "read_stream", "SELECT " RXFLOW_PG_EVENT_COLUMNS
                   " FROM events WHERE stream_id = $1 AND version > $2 ORDER BY version"};
constexpr PreparedSql kReadAllSql{
    "read_all", "SELECT " RXFLOW_PG_EVENT_COLUMNS
                " FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2"};
constexpr PreparedSql kFindKeySql{"find_key", "SELECT stream_id FROM idempotency WHERE key = $1"};
constexpr PreparedSql kInboxSql{"inbox",
                                "INSERT INTO inbox (consumer, message_id, processed_at) "
                                "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING message_id"};
constexpr PreparedSql kAcquireLeaseSql{
    "acquire_lease",
    "INSERT INTO subscriptions AS s (name, owner, lease_until) VALUES ($1, $2, $3) "
    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, lease_until = "
    "excluded.lease_until "
    "WHERE s.owner = excluded.owner OR s.lease_until <= $4 "
    "RETURNING s.owner = $2"};
constexpr PreparedSql kSubscriptionSql{"subscription",
                                       "SELECT position FROM subscriptions WHERE name = $1"};
constexpr PreparedSql kCommitCheckpointSql{
    "commit_checkpoint",
    "UPDATE subscriptions SET position = $2, lease_until = $4 "
    "WHERE name = $1 AND owner = $3 AND position <= $2 RETURNING position"};
constexpr PreparedSql kHeadSql{"head", "SELECT last FROM event_position WHERE id = 1"};
constexpr PreparedSql kProjectionCheckpointSql{
    "projection_checkpoint", "SELECT position FROM projection_checkpoints WHERE name = $1"};
constexpr PreparedSql kProjectionLockSql{
    "projection_lock", "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE"};
constexpr PreparedSql kProjectionRowSql{
    "projection_row",
    "INSERT INTO projection_rows (name, key, doc) VALUES ($1, $2, $3) "
    "ON CONFLICT (name, key) DO UPDATE SET doc = excluded.doc"};
constexpr PreparedSql kProjectionMoveSql{
    "projection_move",
    "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2) "
    "ON CONFLICT (name) DO UPDATE SET position = excluded.position"};
constexpr PreparedSql kProjectionGetSql{
    "projection_get", "SELECT doc FROM projection_rows WHERE name = $1 AND key = $2"};
constexpr PreparedSql kPrepared[] = {
    kAppendSql,           kAppendBatchSql,    kReadStreamSql,           kReadAllSql,
    kFindKeySql,          kInboxSql,          kAcquireLeaseSql,         kSubscriptionSql,
    kCommitCheckpointSql, kHeadSql,           kProjectionCheckpointSql, kProjectionLockSql,
    kProjectionRowSql,    kProjectionMoveSql, kProjectionGetSql};

// Stores one new data key version; AlreadyExists ("data key exists: <id>") when the version
// exists or the key was destroyed. (A destroy that has not committed yet is invisible here:
// a key created in that window survives beside the tombstone, which readers honour; see
// docs/security.md, "Left open".)
Status InsertDataKey(pqxx::transaction_base& tx, const WrappedDataKey& key) {
  RXFLOW_RETURN_IF_ERROR(ValidateDataKey(key));
  if (!tx.exec_params("SELECT 1 FROM data_keys WHERE key_id = $1 AND version = 0 FOR SHARE",
                      key.key_id)
           .empty()) {
    return absl::AlreadyExistsError(std::string(kDataKeyExists) + key.key_id);
  }
  pqxx::result r = tx.exec_params(
      "INSERT INTO data_keys (key_id, version, kek_id, wrapped, created_at) "
      "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
      key.key_id, key.version, key.kek_id, internal::Base64Encode(key.wrapped), key.created_at);
  if (r.affected_rows() == 0) {
    return absl::AlreadyExistsError(std::string(kDataKeyExists) + key.key_id);
  }
  return absl::OkStatus();
}

// One append as a single call of rxflow_append (migrations/003): one round trip.
StatusOr<AppendResult> CallAppend(pqxx::transaction_base& tx, AppendRequest& req) {
  std::string events;
  RXFLOW_RETURN_IF_ERROR(EventsJson(req, events));
  pqxx::row r = tx.exec_prepared1(kAppendSql.name, req.stream_id, req.expected_version,
                                  req.idempotency_key, events);
  return AppendOutcome(req, r[0].as<std::string>(),
                       r[1].is_null() ? std::string() : r[1].as<std::string>(), r[2].as<int64_t>(),
                       r[3].as<int64_t>());
}

// One element of rxflow_append_batch's argument (migrations/003): `req` with its events
// (EventsJson), appended to `out`.
void AppendBatchElement(std::string& out, const AppendRequest& req, const std::string& events) {
  out.push_back('{');
  JsonField(out, "stream", req.stream_id, true);
  JsonField(out, "expected", std::to_string(req.expected_version));
  JsonField(out, "key", req.idempotency_key);
  out += ",\"events\":";
  out += events;
  out.push_back('}');
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

// Every row of a read of events, in order (sized once).
std::vector<EventRecord> ReadEvents(const pqxx::result& rows) {
  std::vector<EventRecord> out;
  out.reserve(static_cast<size_t>(rows.size()));
  for (const auto& row : rows) out.push_back(ReadEvent(row));
  return out;
}

class PostgresStore;

// The EventStore an inbox effect sees: the inbox's own transaction.
class TxView : public EventStore {
 public:
  explicit TxView(pqxx::work& tx) : tx_(tx) {}
  // rxflow_append checks an append before it writes (migrations/004), so a refused append
  // leaves the effect's transaction usable and unchanged.
  StatusOr<AppendResult> Append(AppendRequest r) override {
    if (!r.data_keys.empty()) {
      // (Refused keys would leave the effect's transaction aborted: checked in a subtransaction.)
      pqxx::subtransaction sub(tx_, "data_keys");
      for (const WrappedDataKey& key : r.data_keys) {
        if (Status s = InsertDataKey(sub, key); !s.ok()) {
          sub.abort();
          return s;
        }
      }
      auto result = CallAppend(sub, r);
      if (!result.ok()) {
        sub.abort();
        return result;
      }
      sub.commit();
      return result;
    }
    return CallAppend(tx_, r);
  }
  StatusOr<std::vector<EventRecord>> ReadStream(const std::string& s, int64_t after) override {
    return ReadEvents(tx_.exec_prepared(kReadStreamSql.name, s, after));
  }
  StatusOr<std::vector<EventRecord>> ReadAll(int64_t, size_t) override {
    return absl::UnimplementedError("ReadAll inside an inbox effect");
  }
  StatusOr<std::string> FindByIdempotencyKey(const std::string& k) override {
    pqxx::result r = tx_.exec_prepared(kFindKeySql.name, k);
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
    if (options_.schema != "public") {
      pqxx::nontransaction n(*c);
      n.exec("CREATE SCHEMA IF NOT EXISTS " + c->quote_name(options_.schema));
    }
    // set_variable and prepare: libpqxx restores both when it reconnects the connection by
    // itself. libpqxx 6 prepares lazily (on first use, here after the migrations); a libpqxx
    // that prepares at once would need the schema to exist first.
    c->set_variable("search_path", c->quote_name(options_.schema));
    for (const PreparedSql& p : kPrepared) c->prepare(p.name, p.sql);
    return c;
  }

  // Runs `fn(tx)` in a transaction on a pooled connection; commits when it returns OK.
  // With Tx = pqxx::nontransaction, each statement commits by itself (no BEGIN/COMMIT round
  // trips): for operations that are one statement, or whose statements need no atomicity.
  template <typename Tx = pqxx::work, typename F>
  Status InTx(std::string_view what, F&& fn) {
    Lease c(*this);
    if (!c.conn) return absl::UnavailableError("postgres: no connection");
    try {
      Tx tx(*c.conn);
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
  // lock and the WAL flush are paid once per batch, not once per append, and the whole
  // batch is one server round trip (rxflow_append_batch). Each append is checked before
  // it writes (migrations/004), so a refused one changes nothing and the others commit.
  StatusOr<AppendResult> Append(AppendRequest request) override {
    // An append that brings new data keys stores them in its own transaction, beside it.
    if (options_.batch_appends && request.data_keys.empty()) {
      return BatchedAppend(std::move(request));
    }
    return DirectAppend(std::move(request));
  }

  StatusOr<AppendResult> BatchedAppend(AppendRequest request) {
    if (std::this_thread::get_id() == writer_thread_.get_id()) {
      // From an AppendAsync callback: waiting here would wait for this very thread.
      return absl::FailedPreconditionError(
          "postgres store: an append was made from the writer thread (an AppendAsync "
          "callback); it would wait for itself");
    }
    internal::Answer<StatusOr<AppendResult>> answer;
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      if (stop_) return absl::UnavailableError("postgres store is closing");
      queue_.push_back({std::move(request), &answer, nullptr});
    }
    queue_cv_.notify_one();
    return answer.Take();
  }

  // Queued like Append; the writer calls `done` right after its batch's commit instead of
  // waking a waiting caller, so no thread waits for the append (EventStore::AppendAsync): a
  // few submitting threads fill batches as many waiting ones would. An append bringing new
  // data keys commits on its own (Append), and `done` runs before this returns.
  void AppendAsync(AppendRequest request, AppendDone done) override {
    if (!options_.batch_appends || !request.data_keys.empty()) {
      done(Append(std::move(request)));
      return;
    }
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      if (!stop_) {
        queue_.push_back({std::move(request), nullptr, std::move(done)});
        lock.unlock();
        queue_cv_.notify_one();
        return;
      }
    }
    done(absl::UnavailableError("postgres store is closing"));
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
      // kUnknown marks "not answered yet": every element is given its own Status below before
      // its caller is answered (none keeps a share of this placeholder's payload).
      std::vector<StatusOr<AppendResult>> results(batch.size(), absl::UnknownError("not run"));
      // The valid appends go to the server as one rxflow_append_batch call: one round trip
      // for the batch. sent[k] is the batch index of the call's element k + 1.
      std::string appends = "[";
      std::vector<size_t> sent;
      sent.reserve(batch.size());
      for (size_t i = 0; i < batch.size(); ++i) {
        std::string events;
        if (Status s = EventsJson(batch[i].request, events); !s.ok()) {
          results[i] = std::move(s);
          continue;
        }
        if (!sent.empty()) appends.push_back(',');
        AppendBatchElement(appends, batch[i].request, events);
        sent.push_back(i);
      }
      appends.push_back(']');
      Status commit_status = absl::OkStatus();
      if (!sent.empty()) {
        try {
          if (!writer_) writer_ = Connect();
          pqxx::work tx(*writer_);
          // rxflow_append refuses a conflicting append without aborting the transaction.
          pqxx::result rows = tx.exec_prepared(kAppendBatchSql.name, appends);
          for (const auto& row : rows) {
            auto k = row[0].as<int64_t>();
            if (k < 1 || k > static_cast<int64_t>(sent.size())) continue;
            size_t i = sent[static_cast<size_t>(k - 1)];
            results[i] = AppendOutcome(batch[i].request, row[1].as<std::string>(),
                                       row[2].is_null() ? std::string() : row[2].as<std::string>(),
                                       row[3].as<int64_t>(), row[4].as<int64_t>());
          }
          tx.commit();
        } catch (const pqxx::broken_connection& e) {
          writer_.reset();
          commit_status = FromException(e, "append");
        } catch (const std::exception& e) {
          writer_.reset();
          commit_status = FromException(e, "append");
        }
      }
      for (size_t i = 0; i < batch.size(); ++i) {
        // Each caller gets a Status of its own (internal::UnsharedCopy).
        if (!commit_status.ok() && results[i].ok()) {
          results[i] = internal::UnsharedCopy(commit_status);
        }
        if (results[i].status().code() == absl::StatusCode::kUnknown) {
          // Not run (the batch failed first), or, never expected, left unanswered.
          results[i] = commit_status.ok()
                           ? Status(absl::InternalError("postgres: append batch left an append "
                                                        "unanswered"))
                           : internal::UnsharedCopy(commit_status);
        }
        if (batch[i].done) {
          batch[i].done(std::move(results[i]));
        } else {
          batch[i].answer->Give(std::move(results[i]));
        }
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
      for (const WrappedDataKey& key : request.data_keys) {
        if (Status s = InsertDataKey(tx, key); !s.ok()) {
          tx.abort();
          return s;
        }
      }
      auto r = CallAppend(tx, request);
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
      out = ReadEvents(tx.exec_prepared(kReadStreamSql.name, stream_id, after));
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  StatusOr<std::vector<EventRecord>> ReadAll(int64_t after, size_t limit) override {
    std::vector<EventRecord> out;
    Status s = InTx("read all", [&](pqxx::work& tx) {
      out = ReadEvents(tx.exec_prepared(kReadAllSql.name, after, static_cast<int64_t>(limit)));
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  StatusOr<std::string> FindByIdempotencyKey(const std::string& key) override {
    std::string out;
    Status s = InTx("find idempotency key", [&](pqxx::work& tx) -> Status {
      pqxx::result r = tx.exec_prepared(kFindKeySql.name, key);
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

  // Subscriptions: one row per subscription (migrations/003). Each method is one statement
  // (CommitCheckpoint: one, plus a read to tell why when it stored nothing), run outside a
  // transaction block; times come from the store's clock.
  StatusOr<bool> AcquireLease(const std::string& name, const std::string& owner,
                              int64_t ttl_micros) override {
    RXFLOW_RETURN_IF_ERROR(ValidateLeaseArguments("acquire lease", name, owner));
    bool held = false;
    Status s = InTx<pqxx::nontransaction>("acquire lease", [&](pqxx::nontransaction& tx) {
      int64_t now = clock_.NowMicros();
      pqxx::result r = tx.exec_prepared(kAcquireLeaseSql.name, name, owner, now + ttl_micros, now);
      held = !r.empty() && r[0][0].as<bool>();
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return held;
  }

  Status ReleaseLease(const std::string& name, const std::string& owner) override {
    return InTx<pqxx::nontransaction>("release lease", [&](pqxx::nontransaction& tx) {
      tx.exec_params(
          "UPDATE subscriptions SET owner = '', lease_until = 0 WHERE name = $1 AND owner = $2",
          name, owner);
      return absl::OkStatus();
    });
  }

  StatusOr<int64_t> SubscriptionCheckpoint(const std::string& name) override {
    int64_t out = 0;
    Status s = InTx<pqxx::nontransaction>("subscription checkpoint", [&](pqxx::nontransaction& tx) {
      pqxx::result r = tx.exec_prepared(kSubscriptionSql.name, name);
      out = r.empty() ? 0 : r[0][0].as<int64_t>();
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  // Stores the checkpoint and renews the lease when `owner` holds it (also a lapsed lease
  // nobody took over), never below the stored position. When nothing was stored, the row
  // says why: another owner (FailedPrecondition: take the lease first) or a higher stored
  // position (Aborted).
  Status CommitCheckpoint(const std::string& name, const std::string& owner, int64_t position,
                          int64_t ttl_micros) override {
    RXFLOW_RETURN_IF_ERROR(ValidateLeaseArguments("commit checkpoint", name, owner));
    return InTx<pqxx::nontransaction>("commit checkpoint", [&](pqxx::nontransaction& tx) -> Status {
      pqxx::result r = tx.exec_prepared(kCommitCheckpointSql.name, name, position, owner,
                                        clock_.NowMicros() + ttl_micros);
      if (!r.empty()) return absl::OkStatus();
      pqxx::result cur =
          tx.exec_params("SELECT owner, position FROM subscriptions WHERE name = $1", name);
      if (!cur.empty() && cur[0][0].as<std::string>() == owner) {
        return absl::AbortedError("subscription " + name + " is at " + cur[0][1].as<std::string>() +
                                  ", not moving back to " + std::to_string(position));
      }
      return absl::FailedPreconditionError("subscription " + name +
                                           " is held by another reader, not " + owner);
    });
  }

  // The position row's value: the highest committed global position (rxflow_append moves
  // it in the transaction that inserts the events).
  StatusOr<int64_t> HeadPosition() override {
    int64_t out = 0;
    Status s = InTx<pqxx::nontransaction>("head position", [&](pqxx::nontransaction& tx) {
      pqxx::result r = tx.exec_prepared(kHeadSql.name);
      out = r.empty() ? 0 : r[0][0].as<int64_t>();
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  Status Process(const std::string& consumer, const std::string& message_id,
                 const InboxEffect& effect) override {
    return InTx("inbox", [&](pqxx::work& tx) -> Status {
      int64_t now = clock_.NowMicros();
      pqxx::result r = tx.exec_prepared(kInboxSql.name, consumer, message_id, now);
      if (r.empty()) {
        return absl::AlreadyExistsError("message " + message_id + " already processed by " +
                                        consumer);
      }
      TxView view(tx);
      return effect(view);  // a failure aborts the transaction: the inbox row included
    });
  }

  StatusOr<int64_t> Checkpoint(const std::string& name) override {
    int64_t out = 0;
    Status s = InTx("checkpoint", [&](pqxx::work& tx) {
      pqxx::result r = tx.exec_prepared(kProjectionCheckpointSql.name, name);
      out = r.empty() ? 0 : r[0][0].as<int64_t>();
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }

  Status Apply(const std::string& name, int64_t checkpoint,
               std::span<const std::pair<std::string, std::string>> rows) override {
    return InTx("projection", [&](pqxx::work& tx) -> Status {
      pqxx::result cur = tx.exec_prepared(kProjectionLockSql.name, name);
      if (!cur.empty() && cur[0][0].as<int64_t>() > checkpoint) {
        return absl::AbortedError("projection " + name + " is at " + cur[0][0].as<std::string>() +
                                  ", not moving back to " + std::to_string(checkpoint));
      }
      for (const auto& [k, v] : rows) {
        tx.exec_prepared(kProjectionRowSql.name, name, k, v);
      }
      tx.exec_prepared(kProjectionMoveSql.name, name, checkpoint);
      return absl::OkStatus();
    });
  }

  StatusOr<std::string> Get(const std::string& name, const std::string& key) override {
    std::string out;
    Status s = InTx("projection get", [&](pqxx::work& tx) -> Status {
      pqxx::result r = tx.exec_prepared(kProjectionGetSql.name, name, key);
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

  // ---- data keys (wrapped keys stored as base64 text) --------------------------------------
  Status PutDataKey(const WrappedDataKey& key) override {
    RXFLOW_RETURN_IF_ERROR(ValidateDataKey(key));
    return InTx("put data key", [&](pqxx::work& tx) { return InsertDataKey(tx, key); });
  }

  StatusOr<std::vector<WrappedDataKey>> DataKeyVersions(const std::string& key_id) override {
    std::vector<WrappedDataKey> out;
    Status s = InTx("data key versions", [&](pqxx::work& tx) {
      return DataKeysFrom(tx.exec_params("SELECT key_id, version, kek_id, wrapped, created_at "
                                         "FROM data_keys WHERE key_id = $1 ORDER BY version",
                                         key_id),
                          out);
    });
    if (!s.ok()) return s;
    return out;
  }

  Status RewrapDataKey(const WrappedDataKey& key, const std::string& expected_kek_id) override {
    RXFLOW_RETURN_IF_ERROR(ValidateDataKey(key));
    return InTx("rewrap data key", [&](pqxx::work& tx) -> Status {
      pqxx::result r = tx.exec_params(
          "UPDATE data_keys SET kek_id = $3, wrapped = $4 "
          "WHERE key_id = $1 AND version = $2 AND kek_id = $5",
          key.key_id, key.version, key.kek_id, internal::Base64Encode(key.wrapped),
          expected_kek_id);
      if (r.affected_rows() == 1) return absl::OkStatus();
      return RewrapRefused(key, !tx.exec_params("SELECT 1 FROM data_keys WHERE key_id = $1 "
                                                "AND version = $2",
                                                key.key_id, key.version)
                                     .empty());
    });
  }

  StatusOr<int64_t> DestroyDataKeys(const std::string& key_id, int64_t destroyed_at) override {
    int64_t deleted = 0;
    Status s = InTx("destroy data key", [&](pqxx::work& tx) {
      tx.exec_params(
          "INSERT INTO data_keys (key_id, version, kek_id, wrapped, created_at) "
          "VALUES ($1, 0, $2, '', $3) ON CONFLICT DO NOTHING",
          key_id, std::string(kDestroyedKek), destroyed_at);
      deleted = tx.exec_params("DELETE FROM data_keys WHERE key_id = $1 AND version > 0", key_id)
                    .affected_rows();
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    // The deleted rows stay as dead tuples until vacuumed: vacuum the table now (outside a
    // transaction; best effort: autovacuum does it later if this one cannot run).
    Lease c(*this);
    if (c.conn) {
      try {
        pqxx::nontransaction n(*c.conn);
        n.exec("VACUUM data_keys");
      } catch (const std::exception&) {
      }
    }
    return deleted;
  }

  Status ReplaceEventPayload(const std::string& event_id, const std::string& expected,
                             const std::string& replacement) override {
    return InTx("replace event payload", [&](pqxx::work& tx) -> Status {
      pqxx::result r =
          tx.exec_params("UPDATE events SET payload = $3 WHERE event_id = $1 AND payload = $2",
                         event_id, expected, replacement);
      if (r.affected_rows() == 1) return absl::OkStatus();
      return PayloadReplaceRefused(
          event_id, !tx.exec_params("SELECT 1 FROM events WHERE event_id = $1", event_id).empty());
    });
  }

  StatusOr<std::vector<WrappedDataKey>> DataKeysNotWrappedBy(const std::string& kek_id,
                                                             const std::string& after_key_id,
                                                             int after_version,
                                                             size_t limit) override {
    std::vector<WrappedDataKey> out;
    Status s = InTx("data keys to rewrap", [&](pqxx::work& tx) {
      return DataKeysFrom(
          tx.exec_params("SELECT key_id, version, kek_id, wrapped, created_at FROM data_keys "
                         "WHERE version > 0 AND kek_id <> $1 AND (key_id, version) > ($2, $3) "
                         "ORDER BY key_id, version LIMIT $4",
                         kek_id, after_key_id, after_version, static_cast<int64_t>(limit)),
          out);
    });
    if (!s.ok()) return s;
    return out;
  }

  static Status DataKeysFrom(const pqxx::result& rows, std::vector<WrappedDataKey>& out) {
    for (const auto& row : rows) {
      WrappedDataKey k{row[0].as<std::string>(),
                       row[1].as<int>(),
                       row[2].as<std::string>(),
                       {},
                       row[4].as<int64_t>()};
      std::optional<std::string> wrapped = internal::Base64Decode(row[3].as<std::string>());
      if (!wrapped) return absl::DataLossError("data key " + k.key_id + ": malformed wrapped key");
      k.wrapped = std::move(*wrapped);
      out.push_back(std::move(k));
    }
    return absl::OkStatus();
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

  // A queued append and its waiting caller's answer (gone once given), or (AppendAsync) the
  // callback the writer calls instead.
  struct Pending {
    AppendRequest request;
    internal::Answer<StatusOr<AppendResult>>* answer;
    AppendDone done;
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
  RXFLOW_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace rxflow::store
