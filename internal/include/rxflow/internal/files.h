// SPDX-License-Identifier: Apache-2.0
// Internal (core and adapters; not installed): files that hold secrets (the clients file, the
// ML-DSA co-signing key). Definitions in src/common/files.cc.
#ifndef RXFLOW_INTERNAL_FILES_H_
#define RXFLOW_INTERNAL_FILES_H_

#include <string>
#include <string_view>

#include "rxflow/status.h"

namespace rxflow::internal {

// Writes `bytes` to `path` atomically: a sibling "<path>.tmp" created 0600 with O_EXCL (never
// through a file or link someone else put there), synced, renamed over `path`, the directory
// synced. Missing directories are created 0700. Unavailable naming the step and the file.
Status WritePrivateFile(const std::string& path, std::string_view bytes);

// Creates `path` with `bytes`, never replacing a file: written 0600 under a unique temporary
// name, synced, then linked into place. AlreadyExists when `path` exists (another process
// created it first: read that one). Missing directories are created 0700.
Status CreatePrivateFile(const std::string& path, std::string_view bytes);

// The contents of `path`: NotFound when it is missing, Unavailable when it cannot be read.
StatusOr<std::string> ReadWholeFile(const std::string& path);

// The contents of `path`, refused (PermissionDenied, naming the mode) when the file is
// readable or writable by group or others, as ssh refuses a private key; NotFound when it is
// missing; Unavailable when it cannot be read.
StatusOr<std::string> ReadPrivateFile(const std::string& path);

}  // namespace rxflow::internal

#endif  // RXFLOW_INTERNAL_FILES_H_
