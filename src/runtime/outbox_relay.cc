#include "rxflow/runtime/outbox_relay.h"

#include <nlohmann/json.hpp>

namespace rxflow::runtime {

namespace {

// The row's JSON headers as message headers, with the row's message id first.
std::vector<std::pair<std::string, std::string>> Headers(const store::OutboxMessage& row) {
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back(messaging::kMessageIdHeader, row.message_id);
  if (row.headers.empty()) return out;
  auto j = nlohmann::json::parse(row.headers, nullptr, false);
  if (!j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    out.emplace_back(it.key(), it->is_string() ? it->get<std::string>() : it->dump());
  }
  return out;
}

}  // namespace

OutboxRelay::OutboxRelay(store::Outbox& outbox, messaging::Producer& producer,
                         OutboxRelayOptions options, Clock* clock)
    : outbox_(outbox),
      producer_(producer),
      options_(options),
      clock_(clock ? *clock : SystemClock()) {}

OutboxRelay::~OutboxRelay() { Stop(); }

StatusOr<size_t> OutboxRelay::RunOnce() {
  auto rows = outbox_.Claim(options_.batch, options_.lease.count() * 1000);
  if (!rows.ok()) return rows.status();
  if (rows->empty()) {
    lag_.store(0);
    return size_t{0};
  }
  std::vector<messaging::Message> batch;
  batch.reserve(rows->size());
  std::vector<int64_t> ids;
  ids.reserve(rows->size());
  int64_t oldest = rows->front().created_at;
  for (const store::OutboxMessage& row : *rows) {
    messaging::Message m;
    m.topic = row.topic;
    m.key = row.key;
    m.payload = row.payload;
    m.headers = Headers(row);
    batch.push_back(std::move(m));
    ids.push_back(row.id);
    oldest = std::min(oldest, row.created_at);
  }
  if (Status s = producer_.Publish(batch); !s.ok()) {
    errors_.fetch_add(1);
    // Release the claims so that this or another relay retries them in order.
    for (const store::OutboxMessage& row : *rows) {
      (void)outbox_.MarkFailed(row.id, 0);
    }
    return s;
  }
  if (Status s = outbox_.MarkPublished(ids); !s.ok()) return s;
  published_.fetch_add(static_cast<int64_t>(ids.size()));
  lag_.store(std::max<int64_t>(0, clock_.NowMicros() - oldest));
  return ids.size();
}

void OutboxRelay::Start() {
  if (running_.exchange(true)) return;
  thread_ = std::thread([this] { Loop(); });
}

void OutboxRelay::Stop() {
  running_.store(false);
  if (thread_.joinable()) thread_.join();
}

void OutboxRelay::Loop() {
  int failures = 0;
  while (running_.load()) {
    auto n = RunOnce();
    if (!n.ok()) {
      auto delay = BackoffDelay(options_.backoff, ++failures);
      auto until = std::chrono::steady_clock::now() + delay;
      while (running_.load() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(
            std::min<std::chrono::microseconds>(delay, std::chrono::milliseconds(20)));
      }
      continue;
    }
    failures = 0;
    if (*n == 0) std::this_thread::sleep_for(options_.idle_poll);
  }
}

}  // namespace rxflow::runtime
