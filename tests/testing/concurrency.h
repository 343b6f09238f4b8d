// SPDX-License-Identifier: Apache-2.0
// Test helpers for races that really race: threads and processes released together, results
// collected and asserted in the test's own thread (a REQUIRE in a worker thread would end the
// whole binary), and conditions awaited with a deadline instead of sleeps.
#ifndef RXFLOW_TESTS_TESTING_CONCURRENCY_H_
#define RXFLOW_TESTS_TESTING_CONCURRENCY_H_

#include <cerrno>
#include <chrono>
#include <functional>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace rxflow::testing {

// Runs fn(i) for i in [0, n) on n threads that all start together behind a latch, and joins
// them. fn must not use REQUIRE: record failures (see Failures) and assert after this returns.
inline void RunTogether(int n, const std::function<void(int)>& fn) {
  std::latch start(n);
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&start, &fn, i] {
      start.arrive_and_wait();
      fn(i);
    });
  }
  for (auto& t : threads) t.join();
}

// Failures seen in worker threads, asserted empty in the test's thread:
// `CHECK_MESSAGE(failures.empty(), failures.Text())`.
class Failures {
 public:
  void Add(std::string what) {
    std::lock_guard lock(mu_);
    items_.push_back(std::move(what));
  }
  bool empty() const {
    std::lock_guard lock(mu_);
    return items_.empty();
  }
  std::string Text() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& s : items_) out += s + "\n";
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> items_;
};

// Releases forked children together: each child calls Wait() (blocks until the parent calls
// Release()), so every child has done its set-up before any of them starts the race.
class ProcessBarrier {
 public:
  ProcessBarrier() {
    if (::pipe(fds_) != 0) fds_[0] = fds_[1] = -1;
  }
  ProcessBarrier(const ProcessBarrier&) = delete;
  ProcessBarrier& operator=(const ProcessBarrier&) = delete;
  ~ProcessBarrier() { Release(); }
  bool ok() const { return fds_[0] >= 0; }
  // In the child, right after fork: blocks until Release() in the parent.
  void Wait() {
    ::close(fds_[1]);  // the child's copy of the write end
    char c;
    while (::read(fds_[0], &c, 1) < 0 && errno == EINTR) {
    }
    ::close(fds_[0]);
    fds_[0] = fds_[1] = -1;
  }
  // In the parent, once every child is forked: all their reads see end-of-file at once.
  void Release() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    if (fds_[0] >= 0) ::close(fds_[0]);
    fds_[0] = fds_[1] = -1;
  }

 private:
  int fds_[2];
};

// Polls `condition` until it holds or `timeout` passes; returns whether it held.
inline bool WaitFor(const std::function<bool()>& condition,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// A child process with a pipe to its parent. In the child `pid` is 0 and `fd` the pipe's
// write end; in the parent `pid` is the child's and `fd` the read end. Each side's other end
// is closed. `pid` < 0: the pipe or the fork failed (REQUIRE it in the test).
struct PipedChild {
  pid_t pid = -1;
  int fd = -1;
};
inline PipedChild ForkPiped() {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return {};
  }
  ::close(fds[pid == 0 ? 0 : 1]);
  return {pid, fds[pid == 0 ? 1 : 0]};
}

// Everything `fd` gives until its end (or an error); `fd` is closed.
inline std::string ReadToEnd(int fd, std::string data = {}) {
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) data.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return data;
}

}  // namespace rxflow::testing

#endif  // RXFLOW_TESTS_TESTING_CONCURRENCY_H_
