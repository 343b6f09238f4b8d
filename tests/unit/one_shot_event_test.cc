// SPDX-License-Identifier: Apache-2.0
// internal::OneShotEvent: how the stores' writer threads answer each waiting caller (see
// adapters/sqlite and adapters/postgres). What the setter wrote before Set is what the waiter
// reads after Wait; Wait blocks until Set; an event may end with its waiter's frame.
#include "rxflow/internal/one_shot_event.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

namespace {

using rxflow::internal::OneShotEvent;

TEST_SUITE("one shot event") {
  TEST_CASE("a Wait after Set returns at once, and so does every later Wait") {
    OneShotEvent e;
    std::string answer;
    answer = "committed";
    e.Set();
    e.Wait();
    CHECK(answer == "committed");
    e.Wait();  // still set
  }

  TEST_CASE("Wait blocks until another thread sets the event") {
    OneShotEvent e;
    std::string answer;
    std::atomic<bool> returned{false};
    std::thread waiter([&] {
      e.Wait();
      returned = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK_FALSE(returned.load());
    answer = "durable";
    e.Set();
    waiter.join();
    CHECK(returned.load());
    CHECK(answer == "durable");
  }

  // The writer's pattern: callers wait on events in their own frames, the writer answers
  // them in any order; each caller reads its own answer, and its frame (the event) is gone as
  // soon as Wait returns, perhaps before Set has finished waking it.
  TEST_CASE("many waiters, each on its own event in its own frame, all answered") {
    constexpr int kCallers = 32;
    constexpr int kRounds = 100;
    struct Slot {
      std::atomic<OneShotEvent*> event{nullptr};
      int* answer = nullptr;
    };
    std::mt19937 random(7);
    for (int round = 0; round < kRounds; ++round) {
      std::vector<Slot> slots(kCallers);
      std::atomic<int> wrong{0};
      std::vector<std::thread> callers;
      callers.reserve(kCallers);
      for (int c = 0; c < kCallers; ++c) {
        callers.emplace_back([&, c] {
          int answer = -1;
          OneShotEvent answered;
          slots[static_cast<size_t>(c)].answer = &answer;
          slots[static_cast<size_t>(c)].event.store(&answered, std::memory_order_release);
          answered.Wait();
          if (answer != round * kCallers + c) ++wrong;
        });
      }
      std::vector<int> order(kCallers);
      for (int c = 0; c < kCallers; ++c) order[static_cast<size_t>(c)] = c;
      std::shuffle(order.begin(), order.end(), random);
      for (int c : order) {
        Slot& s = slots[static_cast<size_t>(c)];
        OneShotEvent* e = nullptr;
        while ((e = s.event.load(std::memory_order_acquire)) == nullptr) std::this_thread::yield();
        *s.answer = round * kCallers + c;
        e->Set();
      }
      for (auto& t : callers) t.join();
      REQUIRE(wrong.load() == 0);
    }
  }
}

}  // namespace
