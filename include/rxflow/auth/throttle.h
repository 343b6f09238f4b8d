// SPDX-License-Identifier: Apache-2.0
// File: rxflow/auth/throttle.h
//
// Failed-authentication throttling: a caller that keeps presenting wrong API keys is told to
// wait (HTTP 429 with Retry-After) before it may try again, so keys cannot be guessed at the
// server's speed and a stolen key id cannot be hammered.
//
// Failures are counted in a sliding window (default 60 s) twice: per key id (KeyIdOf of the
// presented key: 5 failures block that key id) and per client address (20 failures block the
// address, whatever keys it presents). A request that presented no key is counted under its
// address only. The server asks RetryAfterSeconds before checking a key and calls Failure
// after a key was refused:
//
//   if (int64_t wait = throttle.RetryAfterSeconds(key_id, address, now); wait > 0)
//     return TooManyRequests(wait);  // Retry-After: wait
//   auto principal = registry.Authenticate(key, now);
//   if (!principal.ok()) throttle.Failure(key_id, address, now);
//
// Memory is bounded: at most `max_tracked` key ids and as many addresses are tracked, each
// with at most its limit of timestamps. When a map is full, entries whose failures have all
// left the window are dropped; if it is still full, the entry whose last failure is oldest
// goes (an attacker cycling through addresses can thus make the throttle forget an address,
// never grow it).
#ifndef RXFLOW_AUTH_THROTTLE_H_
#define RXFLOW_AUTH_THROTTLE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace rxflow::auth {

struct ThrottleOptions {
  int max_failures_per_key = 5;
  int max_failures_per_address = 20;
  int64_t window_micros = 60'000'000;
  size_t max_tracked = 65536;  // per map (key ids, addresses)
};

// Thread-safe (one mutex). Values below 1 in the options are taken as 1.
class AuthThrottle {
 public:
  explicit AuthThrottle(ThrottleOptions o = {});
  ~AuthThrottle();
  AuthThrottle(const AuthThrottle&) = delete;
  AuthThrottle& operator=(const AuthThrottle&) = delete;

  // 0: the caller may try. Above 0: blocked, the whole seconds to wait (at least 1, rounded
  // up; for Retry-After). Blocked while the key id (when not empty) has max_failures_per_key
  // failures in the last window, or the address max_failures_per_address.
  int64_t RetryAfterSeconds(std::string_view key_id, std::string_view address, int64_t now_micros);
  // Records one failed authentication. An empty key id (no key presented) counts against the
  // address only.
  void Failure(std::string_view key_id, std::string_view address, int64_t now_micros);

  // How many times RetryAfterSeconds returned more than 0.
  int64_t blocked_total() const;
  // The key ids and addresses tracked now (at most 2 * max_tracked).
  size_t tracked() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rxflow::auth

#endif  // RXFLOW_AUTH_THROTTLE_H_
