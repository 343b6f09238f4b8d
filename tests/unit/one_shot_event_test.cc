// SPDX-License-Identifier: Apache-2.0
// internal::OneShotEvent and internal::Answer: how the stores' writer threads answer each
// waiting caller (adapters/sqlite, adapters/postgres). What the setter wrote before Set is what
// the waiter reads after Wait; Wait blocks until Set; an Answer may end with its waiter's frame.
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

using rxflow::internal::Answer;
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

  // The writer's pattern: callers wait for an Answer in their own frames, the writer gives
  // them in any order; each caller takes its own, and its frame (the Answer) is gone as soon
  // as Take returns, perhaps before Give has finished waking it.
  TEST_CASE("many callers, each taking its own Answer from its own frame, all answered") {
    constexpr int kCallers = 32;
    constexpr int kRounds = 100;
    std::mt19937 random(7);
    for (int round = 0; round < kRounds; ++round) {
      std::vector<std::atomic<Answer<std::string>*>> slots(kCallers);
      std::atomic<int> wrong{0};
      std::vector<std::thread> callers;
      callers.reserve(kCallers);
      for (int c = 0; c < kCallers; ++c) {
        callers.emplace_back([&, c] {
          Answer<std::string> answer;
          slots[static_cast<size_t>(c)].store(&answer, std::memory_order_release);
          if (answer.Take() != std::to_string(round * kCallers + c)) ++wrong;
        });
      }
      std::vector<int> order(kCallers);
      for (int c = 0; c < kCallers; ++c) order[static_cast<size_t>(c)] = c;
      std::shuffle(order.begin(), order.end(), random);
      for (int c : order) {
        Answer<std::string>* a = nullptr;
        while ((a = slots[static_cast<size_t>(c)].load(std::memory_order_acquire)) == nullptr) {
          std::this_thread::yield();
        }
        a->Give(std::to_string(round * kCallers + c));
      }
      for (auto& t : callers) t.join();
      REQUIRE(wrong.load() == 0);
    }
  }
}

}  // namespace
