// SPDX-License-Identifier: Apache-2.0
// A VFS that gathers a transaction's WAL writes into few writes: see wal_gather_vfs.h.
#include "wal_gather_vfs.h"

#include <atomic>
#include <cstddef>
#include <new>
#include <vector>

#include <sqlite3.h>

#include "sqlite_db.h"

namespace rxflow::sqlite_internal {
namespace {

constexpr const char* kName = "rxflow-wal-gather";

// A run that would grow past this is written and a new one begun. The bound is the default
// VFS's: the unix VFS writes at most 128 KiB - 1 bytes per call (its seekAndWriteFd masks
// the count with 0x1ffff; SQLite itself never writes more than a 64 KiB page), so a longer
// run would be cut short and reported as a full disk. ~31 frames of 4 KiB pages per write.
constexpr size_t kMaxRun = 0x1ffff;

std::atomic<int64_t> writes_asked{0};
std::atomic<int64_t> writes_issued{0};

// The default VFS, below the shim.
sqlite3_vfs* Base() {
  static sqlite3_vfs* const base = sqlite3_vfs_find(nullptr);
  return base;
}

// A gathered file's state: the default VFS's file, and the run of bytes not yet written (they
// belong at run_offset onwards).
struct Gather {
  sqlite3_file* real = nullptr;
  bool wal = false;  // else a statement journal
  std::vector<char> run;
  sqlite3_int64 run_offset = 0;
  bool commit_frame_next = false;  // the last write was a commit frame's header
};

// A WAL frame's header (https://www.sqlite.org/fileformat2.html#walformat) is written alone,
// 24 bytes: the page number, then, in a commit frame only, the database's size in pages after
// the commit (big-endian, non-zero). Were a SQLite to write header and page in one call, no
// commit would be seen here, and with synchronous=FULL the commit's sync still writes it.
constexpr int kWalFrameHeader = 24;
bool IsCommitFrameHeader(const void* data, int n) {
  if (n != kWalFrameHeader) return false;
  const auto* b = static_cast<const unsigned char*>(data);
  return (b[4] | b[5] | b[6] | b[7]) != 0;
}

// What SQLite allocates (szOsFile bytes) and sees: its sqlite3_file first, so the pointer
// SQLite passes is this struct's; the default VFS's file follows at kRealOffset.
struct GatherFile {
  sqlite3_file base;
  Gather* gather;
};
constexpr size_t kRealOffset = (sizeof(GatherFile) + 15) / 16 * 16;

Gather& Of(sqlite3_file* f) { return *reinterpret_cast<GatherFile*>(f)->gather; }

int Write(Gather& g, const void* data, int n, sqlite3_int64 offset) {
  writes_issued.fetch_add(1, std::memory_order_relaxed);
  return g.real->pMethods->xWrite(g.real, data, n, offset);
}

int Flush(Gather& g) {
  if (g.run.empty()) return SQLITE_OK;
  int rc = Write(g, g.run.data(), static_cast<int>(g.run.size()), g.run_offset);
  g.run.clear();
  return rc;
}

// The file's methods: writes join the run; anything else writes the run first, then is the
// default VFS's.
int GatherWrite(sqlite3_file* f, const void* data, int n, sqlite3_int64 offset) {
  writes_asked.fetch_add(1, std::memory_order_relaxed);
  Gather& g = Of(f);
  // A commit frame's page is written as soon as it is gathered: other connections may read
  // the commit once SQLite publishes it in the WAL index, and only with synchronous=FULL is
  // there a sync between the two (with NORMAL, a commit is not synced).
  const bool ends_commit = g.commit_frame_next;
  g.commit_frame_next = g.wal && IsCommitFrameHeader(data, n);
  const auto size = static_cast<size_t>(n);
  const bool continues =
      !g.run.empty() && offset == g.run_offset + static_cast<sqlite3_int64>(g.run.size());
  if (!continues || g.run.size() + size > kMaxRun) {
    if (int rc = Flush(g); rc != SQLITE_OK) return rc;
    g.run_offset = offset;
  }
  if (size > kMaxRun) return Write(g, data, n, offset);
  try {
    const auto* bytes = static_cast<const char*>(data);
    g.run.insert(g.run.end(), bytes, bytes + size);
  } catch (const std::bad_alloc&) {
    // No memory to gather: write what was gathered, then this, as the default VFS would.
    if (int rc = Flush(g); rc != SQLITE_OK) return rc;
    return Write(g, data, n, offset);
  }
  return ends_commit ? Flush(g) : SQLITE_OK;
}

int GatherClose(sqlite3_file* f) {
  Gather* g = reinterpret_cast<GatherFile*>(f)->gather;
  int flushed = Flush(*g);
  int rc = g->real->pMethods->xClose(g->real);
  delete g;
  return flushed != SQLITE_OK ? flushed : rc;
}

// Writes the run, then calls the default VFS's method.
template <auto Method, typename... Args>
int Then(sqlite3_file* f, Args... args) {
  Gather& g = Of(f);
  if (int rc = Flush(g); rc != SQLITE_OK) return rc;
  auto method = g.real->pMethods->*Method;
  if (method == nullptr) return SQLITE_NOTFOUND;
  return method(g.real, args...);
}

int GatherRead(sqlite3_file* f, void* out, int n, sqlite3_int64 offset) {
  return Then<&sqlite3_io_methods::xRead>(f, out, n, offset);
}
int GatherTruncate(sqlite3_file* f, sqlite3_int64 size) {
  return Then<&sqlite3_io_methods::xTruncate>(f, size);
}
int GatherSync(sqlite3_file* f, int flags) { return Then<&sqlite3_io_methods::xSync>(f, flags); }
int GatherFileSize(sqlite3_file* f, sqlite3_int64* size) {
  return Then<&sqlite3_io_methods::xFileSize>(f, size);
}
int GatherLock(sqlite3_file* f, int level) { return Then<&sqlite3_io_methods::xLock>(f, level); }
int GatherUnlock(sqlite3_file* f, int level) {
  return Then<&sqlite3_io_methods::xUnlock>(f, level);
}
int GatherCheckReservedLock(sqlite3_file* f, int* out) {
  return Then<&sqlite3_io_methods::xCheckReservedLock>(f, out);
}
int GatherFileControl(sqlite3_file* f, int op, void* arg) {
  return Then<&sqlite3_io_methods::xFileControl>(f, op, arg);
}
int GatherSectorSize(sqlite3_file* f) {
  sqlite3_file* real = Of(f).real;
  return real->pMethods->xSectorSize(real);
}
int GatherDeviceCharacteristics(sqlite3_file* f) {
  sqlite3_file* real = Of(f).real;
  return real->pMethods->xDeviceCharacteristics(real);
}
int GatherShmMap(sqlite3_file* f, int page, int page_size, int extend, void volatile** out) {
  return Then<&sqlite3_io_methods::xShmMap>(f, page, page_size, extend, out);
}
int GatherShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Then<&sqlite3_io_methods::xShmLock>(f, offset, n, flags);
}
void GatherShmBarrier(sqlite3_file* f) {
  sqlite3_file* real = Of(f).real;
  if (real->pMethods->xShmBarrier != nullptr) real->pMethods->xShmBarrier(real);
}
int GatherShmUnmap(sqlite3_file* f, int delete_flag) {
  return Then<&sqlite3_io_methods::xShmUnmap>(f, delete_flag);
}
int GatherFetch(sqlite3_file* f, sqlite3_int64 offset, int n, void** out) {
  *out = nullptr;  // no memory map of a WAL file: SQLite reads it instead
  return Then<&sqlite3_io_methods::xFetch>(f, offset, n, out);
}
int GatherUnfetch(sqlite3_file* f, sqlite3_int64 offset, void* p) {
  return Then<&sqlite3_io_methods::xUnfetch>(f, offset, p);
}

const sqlite3_io_methods kMethods = {
    3,
    GatherClose,
    GatherRead,
    GatherWrite,
    GatherTruncate,
    GatherSync,
    GatherFileSize,
    GatherLock,
    GatherUnlock,
    GatherCheckReservedLock,
    GatherFileControl,
    GatherSectorSize,
    GatherDeviceCharacteristics,
    GatherShmMap,
    GatherShmLock,
    GatherShmBarrier,
    GatherShmUnmap,
    GatherFetch,
    GatherUnfetch,
};

// A WAL file or a statement journal gets the shim; any other file is opened by the default
// VFS straight into the memory SQLite gave, so SQLite calls the default VFS's methods with
// nothing between.
int GatherOpen(sqlite3_vfs* /*vfs*/, sqlite3_filename name, sqlite3_file* file, int flags,
               int* out_flags) {
  sqlite3_vfs* base = Base();
  if ((flags & (SQLITE_OPEN_WAL | SQLITE_OPEN_SUBJOURNAL)) == 0) {
    return base->xOpen(base, name, file, flags, out_flags);
  }
  file->pMethods = nullptr;  // SQLite closes a file only if its methods are set
  auto* g = new (std::nothrow) Gather;
  if (g == nullptr) return SQLITE_NOMEM;
  g->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
  g->wal = (flags & SQLITE_OPEN_WAL) != 0;
  g->real->pMethods = nullptr;
  int rc = base->xOpen(base, name, g->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (g->real->pMethods != nullptr) g->real->pMethods->xClose(g->real);
    delete g;
    return rc;
  }
  reinterpret_cast<GatherFile*>(file)->gather = g;
  file->pMethods = &kMethods;
  return SQLITE_OK;
}

// Everything else is the default VFS's.
sqlite3_vfs MakeVfs(sqlite3_vfs* base) {
  sqlite3_vfs v{};
  v.iVersion = 3;
  v.szOsFile = static_cast<int>(kRealOffset) + base->szOsFile;
  v.mxPathname = base->mxPathname;
  v.zName = kName;
  v.xOpen = GatherOpen;
  v.xDelete = [](sqlite3_vfs*, const char* name, int sync_dir) {
    return Base()->xDelete(Base(), name, sync_dir);
  };
  v.xAccess = [](sqlite3_vfs*, const char* name, int flags, int* out) {
    return Base()->xAccess(Base(), name, flags, out);
  };
  v.xFullPathname = [](sqlite3_vfs*, const char* name, int n, char* out) {
    return Base()->xFullPathname(Base(), name, n, out);
  };
  v.xDlOpen = [](sqlite3_vfs*, const char* name) { return Base()->xDlOpen(Base(), name); };
  v.xDlError = [](sqlite3_vfs*, int n, char* out) { Base()->xDlError(Base(), n, out); };
  v.xDlSym = [](sqlite3_vfs*, void* lib, const char* sym) {
    return Base()->xDlSym(Base(), lib, sym);
  };
  v.xDlClose = [](sqlite3_vfs*, void* lib) { Base()->xDlClose(Base(), lib); };
  v.xRandomness = [](sqlite3_vfs*, int n, char* out) {
    return Base()->xRandomness(Base(), n, out);
  };
  v.xSleep = [](sqlite3_vfs*, int micros) { return Base()->xSleep(Base(), micros); };
  v.xCurrentTime = [](sqlite3_vfs*, double* out) { return Base()->xCurrentTime(Base(), out); };
  v.xGetLastError = [](sqlite3_vfs*, int n, char* out) {
    return Base()->xGetLastError != nullptr ? Base()->xGetLastError(Base(), n, out) : 0;
  };
  v.xCurrentTimeInt64 = [](sqlite3_vfs*, sqlite3_int64* out) {
    return Base()->xCurrentTimeInt64(Base(), out);
  };
  // No system-call overrides through the shim (they are the default VFS's to make).
  return v;
}

}  // namespace

const char* WalGatherVfs() {
  static const char* const name = []() -> const char* {
    ConfigureSqliteOnce();  // before sqlite3_vfs_find initialises SQLite
    sqlite3_vfs* base = Base();
    if (base == nullptr || base->iVersion < 2 || base->xCurrentTimeInt64 == nullptr) {
      return nullptr;
    }
    static sqlite3_vfs vfs = MakeVfs(base);
    return sqlite3_vfs_register(&vfs, /*makeDflt=*/0) == SQLITE_OK ? kName : nullptr;
  }();
  return name;
}

WalGatherCounts WalGatherCountsNow() {
  return {writes_asked.load(std::memory_order_relaxed),
          writes_issued.load(std::memory_order_relaxed)};
}

}  // namespace rxflow::sqlite_internal
