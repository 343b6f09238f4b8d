// SPDX-License-Identifier: Apache-2.0
// Files that hold secrets (rxflow/internal/files.h).
#include "rxflow/internal/files.h"

#include <cerrno>
#include <filesystem>
#include <system_error>
#include <vector>

#include <openssl/crypto.h>

#include "rxflow/internal/crypto.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rxflow::internal {
namespace {

// Unavailable "cannot <what> <path>: <errno's text>".
Status IoError(std::string_view what, std::string_view path, int err) {
  return absl::UnavailableError(Cat("cannot ", what, " ", path, ": ",
                                    std::error_code(err, std::generic_category()).message()));
}

// Creates `dir` and its missing ancestors, each 0700.
Status MakePrivateDirectories(const std::filesystem::path& dir) {
  std::error_code ec;
  std::vector<std::filesystem::path> missing;
  for (std::filesystem::path p = dir; !p.empty() && !std::filesystem::exists(p, ec);
       p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0700) != 0 && errno != EEXIST) {
      return IoError("create the directory", it->string(), errno);
    }
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

// Writes `text` to the new file `tmp` (0600, O_EXCL, O_NOFOLLOW) and syncs it; on an error
// the file is gone.
Status WriteNewFile(const std::string& tmp, std::string_view text) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == EEXIST) {
      return absl::UnavailableError(
          Cat(tmp, " exists: another save is in progress, or one was interrupted (remove it)"));
    }
    return IoError("create", tmp, errno);
  }
  auto fail = [&](std::string_view what, int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return IoError(what, tmp, err);
  };
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write", errno);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("sync", errno);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return IoError("close", tmp, err);
  }
  return absl::OkStatus();
}

// The directory entry is durable once the directory is synced. The file is in place already,
// so a directory that cannot be opened or synced (some filesystems refuse) is not an error.
void SyncDirectory(const std::filesystem::path& dir) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::filesystem::path DirectoryOf(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  return dir.empty() ? std::filesystem::path(".") : dir;
}

}  // namespace

Status WritePrivateFile(const std::string& path, std::string_view text) {
  const std::filesystem::path dir = DirectoryOf(path);
  RXFLOW_RETURN_IF_ERROR(MakePrivateDirectories(dir));
  const std::string tmp = path + ".tmp";
  RXFLOW_RETURN_IF_ERROR(WriteNewFile(tmp, text));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return IoError("rename to " + path, tmp, err);
  }
  SyncDirectory(dir);
  return absl::OkStatus();
}

Status CreatePrivateFile(const std::string& path, std::string_view text) {
  const std::filesystem::path dir = DirectoryOf(path);
  RXFLOW_RETURN_IF_ERROR(MakePrivateDirectories(dir));
  const std::string tmp = Cat(path, ".new-", RandomHex128());
  RXFLOW_RETURN_IF_ERROR(WriteNewFile(tmp, text));
  const int linked = ::link(tmp.c_str(), path.c_str());
  const int err = errno;
  ::unlink(tmp.c_str());
  if (linked != 0) {
    if (err == EEXIST) return absl::AlreadyExistsError(Cat(path, " exists"));
    return IoError("link into place", path, err);
  }
  SyncDirectory(dir);
  return absl::OkStatus();
}

namespace {

StatusOr<std::string> Read(const std::string& path, bool private_only) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(Cat(path, " does not exist"));
    return IoError("open", path, errno);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return IoError("stat", path, err);
  }
  if (private_only && (st.st_mode & 077) != 0) {
    ::close(fd);
    return absl::PermissionDeniedError(Cat(path,
                                           " is accessible to group or others: a secret "
                                           "key file must be 0600 (chmod 600 ",
                                           path, ")"));
  }
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return IoError("read", path, err);
    }
    if (n == 0) break;
    // Reserved ahead: appending never reallocates, leaving copies of a secret behind.
    if (out.capacity() < out.size() + static_cast<size_t>(n)) {
      std::string bigger;
      bigger.reserve(2 * (out.size() + static_cast<size_t>(n)));
      bigger.append(out);
      OPENSSL_cleanse(out.data(), out.size());
      out.swap(bigger);
    }
    out.append(buf, static_cast<size_t>(n));
  }
  OPENSSL_cleanse(buf, sizeof buf);
  ::close(fd);
  return out;
}

}  // namespace

StatusOr<std::string> ReadWholeFile(const std::string& path) { return Read(path, false); }

StatusOr<std::string> ReadPrivateFile(const std::string& path) { return Read(path, true); }

}  // namespace rxflow::internal
