// SPDX-License-Identifier: Apache-2.0
// A one-shot event between two threads: one thread sets it once, another waits for it.
//
// What a group-committing writer needs to answer each caller, and no more: no shared state
// on the heap, no call_once and no mutex (std::promise and std::future have all three), and,
// on Linux, a process-private futex that the waiter sleeps on without spinning first (libstdc++
// waits for a future on a futex shared between processes, which the kernel must first find
// through the page tables). Elsewhere, C++20's atomic wait.
#ifndef RXFLOW_INTERNAL_ONE_SHOT_EVENT_H_
#define RXFLOW_INTERNAL_ONE_SHOT_EVENT_H_

#include <atomic>
#include <cstdint>
#include <utility>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace rxflow::internal {

class OneShotEvent {
 public:
  // Sets the event; whatever this thread wrote before happens-before Wait's return.
  void Set() {
    if (state_.exchange(kSet, std::memory_order_acq_rel) == kWaiting) Wake();
  }

  // Returns once the event is set.
  void Wait() {
    uint32_t seen = kUnset;
    if (state_.compare_exchange_strong(seen, kWaiting, std::memory_order_acq_rel)) {
      seen = kWaiting;
    }
    while (seen != kSet) {
      Sleep(kWaiting);
      seen = state_.load(std::memory_order_acquire);
    }
  }

 private:
  static constexpr uint32_t kUnset = 0;
  static constexpr uint32_t kWaiting = 1;  // a thread sleeps (or is about to) in Wait
  static constexpr uint32_t kSet = 2;

  // Sleeps while the state is `expected` (returns at once when it is not, or spuriously).
  void Sleep(uint32_t expected) {
#ifdef __linux__
    ::syscall(SYS_futex, &state_, FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
#else
    state_.wait(expected, std::memory_order_acquire);
#endif
  }
  void Wake() {
#ifdef __linux__
    ::syscall(SYS_futex, &state_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
#else
    state_.notify_one();
#endif
  }

  std::atomic<uint32_t> state_{kUnset};
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "a futex is 32 bits");
};

// A value one thread hands to another that waits for it, as a store's writer answers each
// caller: the waiter owns it (in its own frame) and Takes it; the answering thread Gives it
// once — the value first, then the event, and nothing after, since the waiter's frame may
// end as soon as the event is set.
template <typename T>
class Answer {
 public:
  void Give(T value) {
    value_ = std::move(value);
    ready_.Set();
  }
  T Take() {
    ready_.Wait();
    return std::move(value_);
  }

 private:
  T value_{};
  OneShotEvent ready_;
};

}  // namespace rxflow::internal

#endif  // RXFLOW_INTERNAL_ONE_SHOT_EVENT_H_
