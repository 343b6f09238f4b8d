// SPDX-License-Identifier: Apache-2.0
// Internal to the SQLite adapter: a VFS that gathers a transaction's WAL writes into few
// writes.
//
// SQLite appends each WAL frame with two writes (its 24-byte header, then the page), so a
// group commit of a few hundred pages is a few hundred pwrite(2) calls before its one
// fdatasync(2). A statement journal (the pages a savepoint changed, kept to roll back to it)
// that outgrew its 64 KiB in memory is likewise two writes per page (its number, then the
// page). This shim over the default VFS ("unix") buffers contiguous writes to those two
// kinds of file, up to 128 KiB - 1 bytes, and issues them as one write when SQLite next does
// anything else with that file: sync it, read it, truncate it, ask its size, lock, close, or
// write somewhere that does not continue the buffered run; and at once after a WAL commit
// frame. So every byte is in the file before the sync that makes a commit durable, before
// SQLite publishes the commit to other connections (whatever the synchronous setting), and
// SQLite never reads a byte that is still only in the buffer. Other files (the database,
// its shared-memory index, rollback journals) are the default VFS's own, with no shim in
// their path.
#ifndef RXFLOW_ADAPTERS_SQLITE_SRC_WAL_GATHER_VFS_H_
#define RXFLOW_ADAPTERS_SQLITE_SRC_WAL_GATHER_VFS_H_

#include <cstdint>

namespace rxflow::sqlite_internal {

// The VFS's name, for sqlite3_open_v2; registered (not as the default) on first use.
// Null if it could not be registered (no default VFS, out of memory): the caller opens with
// the default VFS.
const char* WalGatherVfs();

// Writes to gathered files (WAL files, statement journals) since the process started:
// asked for by SQLite, and issued to the default VFS. For tests and benchmarks.
struct WalGatherCounts {
  int64_t writes_asked = 0;
  int64_t writes_issued = 0;
};
WalGatherCounts WalGatherCountsNow();

}  // namespace rxflow::sqlite_internal

#endif  // RXFLOW_ADAPTERS_SQLITE_SRC_WAL_GATHER_VFS_H_
