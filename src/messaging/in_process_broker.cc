// SPDX-License-Identifier: Apache-2.0
// The in-process broker: one mutex over topics, partitions and groups. Partitions are
// deques with a base offset; a topic consumed by groups is trimmed to the slowest group's
// committed offset and bounds its uncommitted backlog in messages and bytes (publishers wait
// for room); a topic nobody consumes keeps only recent messages, bounded in bytes and age.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include "rxflow/internal/strcat.h"
#include "rxflow/messaging/broker.h"

namespace rxflow::messaging {
namespace {

using internal::Cat;

size_t SizeOf(const Message& m) {
  size_t n = m.topic.size() + m.key.size() + m.payload.size();
  for (const auto& [k, v] : m.headers) n += k.size() + v.size();
  return n;
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Partition {
  std::deque<Message> log;
  std::deque<int64_t> published;  // steady-clock micros, one per message in `log`
  int64_t base = 0;               // offset of log.front()
  size_t bytes = 0;               // SizeOf over `log`
  int64_t end() const { return base + static_cast<int64_t>(log.size()); }
  void PopFront() {
    bytes -= SizeOf(log.front());
    log.pop_front();
    published.pop_front();
    ++base;
  }
};

struct Topic {
  std::vector<Partition> partitions;
  std::set<std::string> groups;  // groups that ever subscribed
};

using PartitionId = std::pair<std::string, int32_t>;  // (topic, partition)

class Member;

struct Group {
  std::vector<std::string> topics;
  std::map<PartitionId, int64_t> committed;  // next offset to consume
  std::vector<Member*> members;              // in join order
  int64_t generation = 0;
};

struct State {
  InProcessBrokerOptions options;
  std::mutex mu;
  std::condition_variable data;  // new messages or a rebalance
  std::condition_variable room;  // a trim made room
  std::map<std::string, Topic, std::less<>> topics;
  std::map<std::string, Group> groups;
  int64_t next_member = 0;

  // The topic's entry, made on first use (its key outlives any message of the topic).
  std::map<std::string, Topic, std::less<>>::iterator TopicEntryLocked(const std::string& name) {
    auto it = topics.find(name);
    if (it == topics.end()) {
      it = topics.emplace(name, Topic{}).first;
      it->second.partitions.resize(static_cast<size_t>(options.partitions));
    }
    return it;
  }
  Topic& TopicLocked(const std::string& name) { return TopicEntryLocked(name)->second; }

  int64_t Committed(const Group& g, const PartitionId& p) const {
    auto it = g.committed.find(p);
    return it == g.committed.end() ? 0 : it->second;
  }

  // Drops what every consuming group has committed (or, unconsumed, what exceeds retention).
  void TrimLocked(const std::string& topic_name, int32_t partition) {
    Topic& t = TopicLocked(topic_name);
    Partition& p = t.partitions[static_cast<size_t>(partition)];
    bool trimmed = false;
    if (t.groups.empty()) {
      const int64_t oldest = NowMicros() - std::chrono::duration_cast<std::chrono::microseconds>(
                                               options.unconsumed_retention)
                                               .count();
      while (!p.log.empty() &&
             (p.log.size() > options.capacity || p.bytes > options.unconsumed_retention_bytes ||
              p.published.front() < oldest)) {
        p.PopFront();
        trimmed = true;
      }
    } else {
      int64_t keep_from = p.end();
      for (const std::string& g : t.groups) {
        keep_from = std::min(keep_from, Committed(groups[g], {topic_name, partition}));
      }
      while (p.base < keep_from && !p.log.empty()) {
        p.PopFront();
        trimmed = true;
      }
    }
    if (trimmed) room.notify_all();
  }

  // Applies the age and size retention to every topic nobody consumes (on each publish and
  // poll, so that an idle topic's messages do not outlive the retention by much).
  void TrimUnconsumedLocked() {
    for (auto& [name, t] : topics) {
      if (!t.groups.empty()) continue;
      for (size_t i = 0; i < t.partitions.size(); ++i) {
        if (!t.partitions[i].log.empty()) TrimLocked(name, static_cast<int32_t>(i));
      }
    }
  }

  void RebalanceLocked(Group& g);
};

class Member final : public Consumer {
 public:
  Member(std::shared_ptr<State> state, std::string group)
      : state_(std::move(state)), group_(std::move(group)) {}
  ~Member() override { Close(); }

  StatusOr<std::vector<Message>> Poll(size_t max, std::chrono::milliseconds timeout) override {
    std::vector<Message> out;
    std::unique_lock lock(state_->mu);
    if (closed_) return absl::FailedPreconditionError("consumer is closed");
    state_->TrimUnconsumedLocked();
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      Group& g = state_->groups[group_];
      if (generation_ != g.generation) {  // rebalanced: restart from the committed offsets
        generation_ = g.generation;
        positions_.clear();
        for (const PartitionId& p : assigned_) positions_[p] = state_->Committed(g, p);
      }
      for (auto& [pid, position] : positions_) {
        const Partition& p =
            state_->TopicLocked(pid.first).partitions[static_cast<size_t>(pid.second)];
        position = std::max(position, p.base);  // retention dropped what was never consumed
        while (position < p.end() && out.size() < max) {
          Message m = p.log[static_cast<size_t>(position - p.base)];
          m.partition = pid.second;
          m.offset = position++;
          out.push_back(std::move(m));
        }
        if (out.size() >= max) break;
      }
      if (!out.empty() || closed_) return out;
      if (state_->data.wait_until(lock, deadline) == std::cv_status::timeout) return out;
    }
  }

  Status Commit(const Message& m) override {
    std::lock_guard lock(state_->mu);
    if (m.partition < 0 || m.offset < 0) {
      return absl::InvalidArgumentError("Commit needs a delivered message (partition, offset)");
    }
    Group& g = state_->groups[group_];
    PartitionId pid{m.topic, m.partition};
    int64_t& c = g.committed[pid];
    c = std::max(c, m.offset + 1);
    state_->TrimLocked(m.topic, m.partition);
    return absl::OkStatus();
  }

  void Close() override {
    std::lock_guard lock(state_->mu);
    if (closed_) return;
    closed_ = true;
    Group& g = state_->groups[group_];
    std::erase(g.members, this);
    state_->RebalanceLocked(g);
  }

  void Join(const std::vector<std::string>& topics) {
    std::lock_guard lock(state_->mu);
    Group& g = state_->groups[group_];
    for (const std::string& t : topics) {
      if (std::find(g.topics.begin(), g.topics.end(), t) == g.topics.end()) g.topics.push_back(t);
      state_->TopicLocked(t).groups.insert(group_);
    }
    g.members.push_back(this);
    state_->RebalanceLocked(g);
  }

  std::vector<PartitionId> assigned_;  // guarded by state_->mu

 private:
  std::shared_ptr<State> state_;
  std::string group_;
  bool closed_ = false;
  int64_t generation_ = -1;
  std::map<PartitionId, int64_t> positions_;
};

void State::RebalanceLocked(Group& g) {
  ++g.generation;
  std::vector<PartitionId> all;
  for (const std::string& t : g.topics) {
    for (int32_t p = 0; p < options.partitions; ++p) all.emplace_back(t, p);
  }
  for (Member* m : g.members) m->assigned_.clear();
  if (!g.members.empty()) {
    for (size_t i = 0; i < all.size(); ++i) {
      g.members[i % g.members.size()]->assigned_.push_back(all[i]);
    }
  }
  data.notify_all();
}

class InProcessProducer final : public Producer {
 public:
  explicit InProcessProducer(std::shared_ptr<State> state) : state_(std::move(state)) {}

  Status Publish(std::span<const Message> batch) override {
    return Add(batch, [](const Message& m) -> const Message& { return m; });
  }

  Status PublishOwned(std::vector<Message>& batch) override {
    return Add(batch, [](Message& m) -> Message&& { return std::move(m); });
  }

 private:
  // Appends each message of `batch`, as `give` hands it over (a copy or a move).
  template <typename Batch, typename Give>
  Status Add(Batch& batch, Give give) {
    std::unique_lock lock(state_->mu);
    auto deadline = std::chrono::steady_clock::now() + state_->options.publish_timeout;
    for (auto& m : batch) {
      if (m.topic.empty()) return absl::InvalidArgumentError("a message needs a topic");
      auto entry = state_->TopicEntryLocked(m.topic);
      const std::string& topic = entry->first;
      Topic& t = entry->second;
      auto index = static_cast<int32_t>(std::hash<std::string>{}(m.key) %
                                        static_cast<size_t>(state_->options.partitions));
      Partition& p = t.partitions[static_cast<size_t>(index)];
      const size_t size = SizeOf(m);
      auto full = [&] {
        return !t.groups.empty() && !p.log.empty() &&
               (p.log.size() >= state_->options.capacity ||
                p.bytes + size > state_->options.capacity_bytes);
      };
      while (full()) {
        if (state_->room.wait_until(lock, deadline) == std::cv_status::timeout && full()) {
          return absl::UnavailableError(Cat("in-process broker: partition ", topic, "/", index,
                                            " is full (", p.log.size(), " uncommitted messages, ",
                                            p.bytes, " bytes)"));
        }
      }
      p.log.emplace_back(give(m));  // (m may be moved from now)
      p.log.back().partition = -1;
      p.log.back().offset = -1;
      p.published.push_back(NowMicros());
      p.bytes += size;
      state_->TrimLocked(topic, index);
    }
    state_->TrimUnconsumedLocked();
    state_->data.notify_all();
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<State> state_;
};

class InProcessBroker final : public Broker {
 public:
  explicit InProcessBroker(InProcessBrokerOptions o) : state_(std::make_shared<State>()) {
    state_->options = o;
    if (state_->options.partitions < 1) state_->options.partitions = 1;
    if (state_->options.capacity < 1) state_->options.capacity = 1;
  }
  StatusOr<std::unique_ptr<Producer>> NewProducer() override {
    return std::unique_ptr<Producer>(new InProcessProducer(state_));
  }
  StatusOr<std::unique_ptr<Consumer>> NewConsumer(const std::string& group,
                                                  const std::vector<std::string>& topics) override {
    if (group.empty()) return absl::InvalidArgumentError("a consumer needs a group");
    if (topics.empty()) return absl::InvalidArgumentError("a consumer needs at least one topic");
    auto m = std::make_unique<Member>(state_, group);
    m->Join(topics);
    return std::unique_ptr<Consumer>(std::move(m));
  }
  std::string_view Name() const override { return "in-process"; }

 private:
  std::shared_ptr<State> state_;
};

}  // namespace

std::unique_ptr<Broker> NewInProcessBroker(InProcessBrokerOptions options) {
  return std::make_unique<InProcessBroker>(options);
}

}  // namespace rxflow::messaging
