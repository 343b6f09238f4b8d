// SPDX-License-Identifier: Apache-2.0
// Internal to the SQLite adapter: one connection with its prepared-statement cache, and a
// cached statement that resets itself. Shared by the event store and the drug store.
#ifndef RXFLOW_ADAPTERS_SQLITE_SRC_SQLITE_DB_H_
#define RXFLOW_ADAPTERS_SQLITE_SRC_SQLITE_DB_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <sqlite3.h>

#include "rxflow/status.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rxflow::sqlite_internal {

// Process-wide SQLite settings, made once before SQLite first initialises (by the first
// connection or VFS this adapter opens); sqlite3_config refuses them, harmlessly, when the
// process initialised SQLite before. SQLite's memory statistics are turned off: they take a
// global mutex on every SQLite allocation and free (4 % of the writer thread's samples under
// the store benchmark), and RxFlow reads none of them. sqlite3_memory_used() and
// sqlite3_soft_heap_limit64() then report and enforce nothing (docs/event-model.md).
inline void ConfigureSqliteOnce() {
  static const bool configured = [] {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    return true;
  }();
  (void)configured;
}

// Prepared statements are cached per connection (keyed by their SQL text) and reset for
// reuse: preparing costs more than executing for these small statements. A cache belongs
// to its connection (Db) and, like it, is used by one thread at a time: it needs no lock.
// A look-up that finds its statement allocates nothing (the key is compared as a view).
class StmtCache {
 public:
  StmtCache() = default;
  StmtCache(const StmtCache&) = delete;
  StmtCache& operator=(const StmtCache&) = delete;
  ~StmtCache() { Clear(); }
  sqlite3_stmt* Get(sqlite3* db, std::string_view sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                           &st, nullptr) != SQLITE_OK) {
      return nullptr;
    }
    cache_.emplace(std::string(sql), st);
    return st;
  }
  // Finalizes every statement (before the connection closes).
  void Clear() {
    for (auto& [sql, st] : cache_) sqlite3_finalize(st);
    cache_.clear();
  }

 private:
  std::map<std::string, sqlite3_stmt*, std::less<>> cache_;
};

// How long a connection waits for a lock another holds (another process's writer, a
// checkpoint) before SQLITE_BUSY.
inline constexpr int kBusyTimeoutMs = 10'000;

// One connection and its statement cache.
class Db {
 public:
  Db() = default;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db() {
    if (db_) {
      cache_.Clear();  // finalize the statements before closing
      sqlite3_close_v2(db_);
    }
  }
  // `vfs`: a registered VFS's name (e.g. WalGatherVfs()), or null for the default.
  Status Open(const std::string& path, const char* vfs = nullptr) {
    ConfigureSqliteOnce();
    // The database holds PHI: owner-only (0600) from its first byte, and SQLite gives the
    // WAL and shared-memory files the database file's mode. A file left group- or
    // world-readable by an older version is tightened.
    if (path != ":memory:" && !path.starts_with("file:")) {
      int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (fd < 0) return absl::UnavailableError("sqlite: cannot create " + path);
      struct stat st {};
      bool ok = ::fstat(fd, &st) == 0 && ((st.st_mode & 077) == 0 || ::fchmod(fd, 0600) == 0);
      ::close(fd);
      if (!ok) return absl::UnavailableError("sqlite: cannot make " + path + " owner-only");
      for (const char* suffix : {"-wal", "-shm"}) ::chmod((path + suffix).c_str(), 0600);
    }
    int rc = sqlite3_open_v2(path.c_str(), &db_,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs);
    if (rc != SQLITE_OK) return Error("open " + path);
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
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
  StmtCache& cache() { return cache_; }

 private:
  sqlite3* db_ = nullptr;
  StmtCache cache_;
};

// A prepared statement from the connection's cache, reset on destruction.
class Stmt {
 public:
  Stmt(Db& db, std::string_view sql) : db_(db.get()), s_(db.cache().Get(db.get(), sql)) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
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
  // Binds `v` without copying it: its bytes must stay valid, unchanged, until this Stmt is
  // destroyed (which resets the statement). For large values that outlive the statement.
  Stmt& BindView(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
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

}  // namespace rxflow::sqlite_internal

#endif  // RXFLOW_ADAPTERS_SQLITE_SRC_SQLITE_DB_H_
