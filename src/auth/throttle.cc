// SPDX-License-Identifier: Apache-2.0
// Failed-authentication throttling (rxflow/auth/throttle.h): per key id and per address, the
// last failures' timestamps in a sliding window, in maps of bounded size.
#include "rxflow/auth/throttle.h"

#include <algorithm>
#include <deque>
#include <iterator>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace rxflow::auth {
namespace {

// The failure timestamps of each name (key id or address) in the last window. Keeps at most
// `limit` timestamps per name (enough to tell whether the name is blocked, and until when) and
// at most `max_tracked` names. Not synchronized.
class FailureWindow {
 public:
  FailureWindow(int limit, int64_t window_micros, size_t max_tracked)
      : limit_(static_cast<size_t>(std::max(limit, 1))),
        window_(std::max<int64_t>(window_micros, 1)),
        max_tracked_(std::max<size_t>(max_tracked, 1)) {}

  // Microseconds until `name` may try again; 0 when it is not blocked.
  int64_t BlockedMicros(std::string_view name, int64_t now) {
    auto it = index_.find(name);
    if (it == index_.end()) return 0;
    Entry& e = *it->second;
    while (!e.failures.empty() && Expired(e.failures.front(), now)) e.failures.pop_front();
    if (e.failures.empty()) {
      auto node = it->second;
      index_.erase(it);  // before the node: the map's key is a view of its name
      lru_.erase(node);
      return 0;
    }
    if (e.failures.size() < limit_) return 0;
    // The deque holds the last `limit_` failures: the name is blocked until the oldest of them
    // leaves the window.
    return e.failures.front() + window_ - now;
  }

  void Add(std::string_view name, int64_t now) {
    if (auto it = index_.find(name); it != index_.end()) {
      Entry& e = *it->second;
      e.failures.push_back(now);
      while (e.failures.size() > limit_) e.failures.pop_front();
      lru_.splice(lru_.end(), lru_, it->second);  // now the most recent failure
      return;
    }
    if (index_.size() >= max_tracked_) {
      // The entries are in the order of their last failure: those whose failures have all left
      // the window are at the front. Drop them; then, if still full, the oldest one.
      while (!lru_.empty() && index_.size() >= max_tracked_ &&
             Expired(lru_.front().failures.back(), now)) {
        EraseFront();
      }
      if (index_.size() >= max_tracked_) EraseFront();
    }
    lru_.push_back(Entry{std::string(name), std::deque<int64_t>{now}});
    index_.emplace(lru_.back().name, std::prev(lru_.end()));
  }

  size_t size() const { return index_.size(); }

 private:
  struct Entry {
    std::string name;
    std::deque<int64_t> failures;  // oldest first; never empty while tracked
  };
  using List = std::list<Entry>;

  bool Expired(int64_t failure, int64_t now) const { return now - failure >= window_; }

  void EraseFront() {
    index_.erase(lru_.front().name);
    lru_.pop_front();
  }

  const size_t limit_;
  const int64_t window_;
  const size_t max_tracked_;
  List lru_;  // by last failure, least recent first
  std::unordered_map<std::string_view, List::iterator> index_;  // keys view the entries' names
};

}  // namespace

struct AuthThrottle::Impl {
  explicit Impl(const ThrottleOptions& o)
      : keys(o.max_failures_per_key, o.window_micros, o.max_tracked),
        addresses(o.max_failures_per_address, o.window_micros, o.max_tracked) {}

  std::mutex mu;
  FailureWindow keys;
  FailureWindow addresses;
  int64_t blocked_total = 0;
};

AuthThrottle::AuthThrottle(ThrottleOptions o) : impl_(std::make_unique<Impl>(o)) {}

AuthThrottle::~AuthThrottle() = default;

int64_t AuthThrottle::RetryAfterSeconds(std::string_view key_id, std::string_view address,
                                        int64_t now_micros) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  int64_t micros = impl_->addresses.BlockedMicros(address, now_micros);
  if (!key_id.empty()) micros = std::max(micros, impl_->keys.BlockedMicros(key_id, now_micros));
  if (micros <= 0) return 0;
  ++impl_->blocked_total;
  return std::max<int64_t>(1, (micros + 999'999) / 1'000'000);
}

void AuthThrottle::Failure(std::string_view key_id, std::string_view address, int64_t now_micros) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!key_id.empty()) impl_->keys.Add(key_id, now_micros);
  impl_->addresses.Add(address, now_micros);
}

int64_t AuthThrottle::blocked_total() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->blocked_total;
}

size_t AuthThrottle::tracked() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->keys.size() + impl_->addresses.size();
}

}  // namespace rxflow::auth
