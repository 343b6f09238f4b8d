// SPDX-License-Identifier: Apache-2.0
// The Kafka broker adapter: an idempotent producer that waits for every delivery report
// of a batch, and a consumer-group member with explicit synchronous commits.
//
// Producer: one librdkafka handle (a "client") with a poller thread that serves delivery
// reports. Each message carries a reference to its batch's Batch record; the delivery
// report callback counts down and wakes the publishing thread, so any number of threads
// may publish at once. A client that hit a fatal error (the idempotent producer's state
// cannot be recovered) is replaced by a fresh one on the next Publish.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "rxflow/internal/status_macros.h"

#include "kafka_internal.h"

namespace rxflow::kafka {
namespace {

using internal::ConfPtr;
using Clock = std::chrono::steady_clock;

std::string ErrorText(rd_kafka_resp_err_t err) {
  return std::string(rd_kafka_err2name(err)) + ": " + rd_kafka_err2str(err);
}

// A consumer error event's text: librdkafka puts it in the payload, with its length (not
// necessarily NUL-terminated).
std::string ConsumerErrorText(const rd_kafka_message_t& m) {
  if (m.payload != nullptr && m.len > 0) {
    return std::string(static_cast<const char*>(m.payload), m.len);
  }
  return rd_kafka_err2str(m.err);
}

// The distinct topics of `batch`, comma-separated.
std::string Topics(std::span<const messaging::Message> batch) {
  std::vector<std::string_view> topics;
  for (const messaging::Message& m : batch) {
    if (std::find(topics.begin(), topics.end(), m.topic) == topics.end()) {
      topics.push_back(m.topic);
    }
  }
  std::string out;
  for (std::string_view t : topics) {
    if (!out.empty()) out += ",";
    out += t;
  }
  return out;
}

// The delivery state of one Publish call.
struct Batch {
  std::mutex mu;
  std::condition_variable done;
  size_t pending = 0;
  rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::string error_topic;
  std::string error_reason;
};

// One librdkafka producer handle and its poller thread.
class ProducerClient {
 public:
  static StatusOr<std::shared_ptr<ProducerClient>> Create(const KafkaOptions& options) {
    RXFLOW_ASSIGN_OR_RETURN(ConfPtr conf, internal::ProducerConf(options));
    auto client = std::shared_ptr<ProducerClient>(new ProducerClient());
    rd_kafka_conf_set_dr_msg_cb(conf.get(), &ProducerClient::OnDelivery);
    rd_kafka_conf_set_error_cb(conf.get(), &ProducerClient::OnError);
    rd_kafka_conf_set_opaque(conf.get(), client.get());
    RXFLOW_ASSIGN_OR_RETURN(client->rk_, internal::NewHandle(RD_KAFKA_PRODUCER, std::move(conf)));
    client->poller_ = std::thread([c = client.get()] { c->PollLoop(); });
    return client;
  }

  ~ProducerClient() {
    stop_ = true;
    if (poller_.joinable()) poller_.join();
    if (rk_ == nullptr) return;  // Create failed
    // Every Publish has returned: what is left belongs to failed calls that the callers
    // republish. Drop it, and serve the purge reports so their Batch references are freed.
    rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(rk_, 1000);
    rd_kafka_destroy(rk_);
  }

  rd_kafka_t* handle() const { return rk_; }

  // The reason of a fatal error, or "" when the client is usable.
  std::string FatalError() const {
    char reason[512];
    if (rd_kafka_fatal_error(rk_, reason, sizeof(reason)) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      return "";
    }
    return reason;
  }

  // The last error librdkafka reported on the client (connection refused, all brokers
  // down), for timeout messages.
  std::string LastError() {
    std::lock_guard lock(mu_);
    return last_error_;
  }

 private:
  ProducerClient() = default;

  void PollLoop() {
    while (!stop_.load(std::memory_order_relaxed)) rd_kafka_poll(rk_, 50);
  }

  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
    auto* ref = static_cast<std::shared_ptr<Batch>*>(m->_private);
    if (ref == nullptr) return;
    Batch& batch = **ref;
    {
      std::lock_guard lock(batch.mu);
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && batch.error == RD_KAFKA_RESP_ERR_NO_ERROR) {
        batch.error = m->err;
        batch.error_topic = rd_kafka_topic_name(m->rkt);
        // Not rd_kafka_message_errstr: on a delivery report it returns the message payload
        // (not NUL-terminated, and PHI).
        batch.error_reason = rd_kafka_err2str(m->err);
      }
      if (--batch.pending == 0) batch.done.notify_all();
    }
    delete ref;
  }

  static void OnError(rd_kafka_t*, int err, const char* reason, void* opaque) {
    auto* self = static_cast<ProducerClient*>(opaque);
    std::lock_guard lock(self->mu_);
    self->last_error_ =
        std::string(rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err))) + ": " + reason;
  }

  rd_kafka_t* rk_ = nullptr;
  std::thread poller_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string last_error_;
};

class KafkaProducer final : public messaging::Producer {
 public:
  KafkaProducer(KafkaOptions options, std::shared_ptr<ProducerClient> client)
      : options_(std::move(options)), client_(std::move(client)) {}

  Status Publish(std::span<const messaging::Message> batch) override {
    for (const messaging::Message& m : batch) {
      if (m.topic.empty()) return absl::InvalidArgumentError("kafka: a message needs a topic");
    }
    if (batch.empty()) return absl::OkStatus();
    RXFLOW_ASSIGN_OR_RETURN(std::shared_ptr<ProducerClient> client, Client());
    rd_kafka_t* rk = client->handle();
    const auto deadline = Clock::now() + options_.publish_timeout;
    auto state = std::make_shared<Batch>();

    for (const messaging::Message& m : batch) {
      for (;;) {
        rd_kafka_headers_t* headers = rd_kafka_headers_new(m.headers.size());
        for (const auto& [name, value] : m.headers) {
          rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                              static_cast<ssize_t>(value.size()));
        }
        auto* ref = new std::shared_ptr<Batch>(state);
        {
          std::lock_guard lock(state->mu);
          ++state->pending;
        }
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(m.topic.c_str()),
            RD_KAFKA_V_KEY(m.key.empty() ? nullptr : m.key.data(), m.key.size()),
            RD_KAFKA_V_VALUE(const_cast<char*>(m.payload.data()), m.payload.size()),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
            RD_KAFKA_V_OPAQUE(ref), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;  // librdkafka owns the headers now
        rd_kafka_headers_destroy(headers);
        delete ref;
        {
          std::lock_guard lock(state->mu);
          --state->pending;
        }
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && Clock::now() < deadline) {
          rd_kafka_poll(rk, 10);  // serve delivery reports to make room, then retry
          continue;
        }
        if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
          return absl::InvalidArgumentError("kafka: a message to " + m.topic +
                                            " is larger than message.max.bytes");
        }
        if (err == RD_KAFKA_RESP_ERR__FATAL) Replace(client);
        std::string detail = err == RD_KAFKA_RESP_ERR__FATAL ? client->FatalError() : "";
        return absl::UnavailableError("kafka: publishing to " + m.topic + " failed: " +
                                      ErrorText(err) + (detail.empty() ? "" : " (" + detail + ")"));
      }
    }

    std::unique_lock lock(state->mu);
    if (!state->done.wait_until(lock, deadline, [&] { return state->pending == 0; })) {
      std::string topic = Topics(batch);
      size_t pending = state->pending;
      lock.unlock();
      std::string last = client->LastError();
      return absl::UnavailableError("kafka: publishing to " + topic + " timed out after " +
                                    std::to_string(options_.publish_timeout.count()) + " ms with " +
                                    std::to_string(pending) + " of " +
                                    std::to_string(batch.size()) + " messages unacknowledged" +
                                    (last.empty() ? "" : " (last error " + last + ")"));
    }
    if (state->error != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::string reason = state->error_reason;
      std::string topic = state->error_topic;
      rd_kafka_resp_err_t err = state->error;
      lock.unlock();
      if (err == RD_KAFKA_RESP_ERR__FATAL) {
        reason += " (" + client->FatalError() + ")";
        Replace(client);
      } else if (err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT) {
        std::string last = client->LastError();
        if (!last.empty()) reason += " (last error " + last + ")";
      }
      return absl::UnavailableError("kafka: publishing to " + topic +
                                    " failed: " + rd_kafka_err2name(err) + ": " + reason);
    }
    return absl::OkStatus();
  }

 private:
  // The current client; a client with a fatal error is replaced first.
  StatusOr<std::shared_ptr<ProducerClient>> Client() {
    std::lock_guard lock(mu_);
    if (client_ != nullptr && !client_->FatalError().empty()) client_.reset();
    if (client_ == nullptr) {
      RXFLOW_ASSIGN_OR_RETURN(client_, ProducerClient::Create(options_));
    }
    return client_;
  }

  void Replace(const std::shared_ptr<ProducerClient>& failed) {
    std::lock_guard lock(mu_);
    if (client_ == failed) client_.reset();
  }

  const KafkaOptions options_;
  std::mutex mu_;
  std::shared_ptr<ProducerClient> client_;  // guarded by mu_
};

class KafkaConsumer final : public messaging::Consumer {
 public:
  static StatusOr<std::unique_ptr<KafkaConsumer>> Create(const KafkaOptions& options,
                                                         const std::string& group,
                                                         const std::vector<std::string>& topics) {
    RXFLOW_ASSIGN_OR_RETURN(ConfPtr conf, internal::ConsumerConf(options, group));
    std::unique_ptr<KafkaConsumer> c(new KafkaConsumer(group));
    rd_kafka_conf_set_error_cb(conf.get(), &KafkaConsumer::OnError);
    rd_kafka_conf_set_opaque(conf.get(), c.get());
    RXFLOW_ASSIGN_OR_RETURN(c->rk_, internal::NewHandle(RD_KAFKA_CONSUMER, std::move(conf)));
    rd_kafka_poll_set_consumer(c->rk_);
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(topics.size()));
    for (const std::string& t : topics) {
      rd_kafka_topic_partition_list_add(list, t.c_str(), RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk_, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return absl::InvalidArgumentError("kafka: subscribing group " + group +
                                        " failed: " + ErrorText(err));
    }
    return c;
  }

  ~KafkaConsumer() override {
    Close();
    if (rk_ != nullptr) rd_kafka_destroy(rk_);
  }

  StatusOr<std::vector<messaging::Message>> Poll(size_t max,
                                                 std::chrono::milliseconds timeout) override {
    std::shared_lock lock(close_mu_);
    if (closed_) return absl::FailedPreconditionError("kafka: consumer is closed");
    RXFLOW_RETURN_IF_ERROR(Fatal());
    std::vector<messaging::Message> out;
    {
      std::lock_guard pending_lock(pending_mu_);
      if (!pending_error_.ok()) return std::exchange(pending_error_, absl::OkStatus());
    }
    const auto deadline = Clock::now() + timeout;
    while (out.size() < max) {
      int wait_ms = 0;
      if (out.empty()) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        wait_ms =
            static_cast<int>(std::clamp<int64_t>(left.count(), 0, std::numeric_limits<int>::max()));
      }
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, wait_ms);
      if (m == nullptr) {
        if (!out.empty() || Clock::now() >= deadline) break;
        continue;
      }
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        rd_kafka_message_destroy(m);
        continue;
      }
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        Status error = absl::UnavailableError(
            "kafka: consuming " +
            std::string(m->rkt != nullptr ? rd_kafka_topic_name(m->rkt) : "") + " for group " +
            group_ + " failed: " + rd_kafka_err2name(m->err) + ": " + ConsumerErrorText(*m));
        rd_kafka_message_destroy(m);
        if (out.empty()) return error;
        std::lock_guard pending_lock(pending_mu_);
        pending_error_ = error;  // reported by the next Poll, after these messages
        break;
      }
      out.push_back(Convert(*m));
      rd_kafka_message_destroy(m);
    }
    return out;
  }

  Status Commit(const messaging::Message& message) override {
    if (message.topic.empty() || message.partition < 0 || message.offset < 0) {
      return absl::InvalidArgumentError(
          "kafka: Commit needs a delivered message (topic, partition, offset)");
    }
    std::shared_lock lock(close_mu_);
    if (closed_) return absl::FailedPreconditionError("kafka: consumer is closed");
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, message.topic.c_str(), message.partition)->offset =
        message.offset + 1;
    rd_kafka_resp_err_t err = rd_kafka_commit(rk_, list, /*async=*/0);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = list->elems[0].err;
    rd_kafka_topic_partition_list_destroy(list);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return absl::UnavailableError(
          "kafka: committing " + message.topic + "/" + std::to_string(message.partition) + "@" +
          std::to_string(message.offset) + " for group " + group_ + " failed: " + ErrorText(err));
    }
    return absl::OkStatus();
  }

  void Close() override {
    std::unique_lock lock(close_mu_);
    if (closed_ || rk_ == nullptr) return;
    closed_ = true;
    rd_kafka_consumer_close(rk_);
  }

 private:
  explicit KafkaConsumer(std::string group) : group_(std::move(group)) {}

  static messaging::Message Convert(const rd_kafka_message_t& m) {
    messaging::Message out;
    out.topic = rd_kafka_topic_name(m.rkt);
    if (m.key != nullptr) out.key.assign(static_cast<const char*>(m.key), m.key_len);
    if (m.payload != nullptr) out.payload.assign(static_cast<const char*>(m.payload), m.len);
    out.partition = m.partition;
    out.offset = m.offset;
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(&m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name;
      const void* value;
      size_t size;
      for (size_t i = 0;
           rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
           ++i) {
        out.headers.emplace_back(
            name, value != nullptr ? std::string(static_cast<const char*>(value), size) : "");
      }
    }
    return out;
  }

  Status Fatal() {
    char reason[512];
    rd_kafka_resp_err_t err = rd_kafka_fatal_error(rk_, reason, sizeof(reason));
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return absl::OkStatus();
    return absl::UnavailableError("kafka: consumer of group " + group_ +
                                  " hit a fatal error: " + rd_kafka_err2name(err) + ": " + reason);
  }

  // Transient errors (a broker connection dropped): librdkafka retries by itself; Poll
  // reports only consume errors and fatal errors.
  static void OnError(rd_kafka_t*, int, const char*, void*) {}

  std::string group_;
  rd_kafka_t* rk_ = nullptr;
  std::shared_mutex close_mu_;  // Close excludes Poll and Commit
  bool closed_ = false;         // guarded by close_mu_
  std::mutex pending_mu_;
  Status pending_error_;  // guarded by pending_mu_
};

class KafkaBroker final : public messaging::Broker {
 public:
  explicit KafkaBroker(KafkaOptions options) : options_(std::move(options)) {}

  StatusOr<std::unique_ptr<messaging::Producer>> NewProducer() override {
    RXFLOW_ASSIGN_OR_RETURN(std::shared_ptr<ProducerClient> client,
                            ProducerClient::Create(options_));
    return std::unique_ptr<messaging::Producer>(new KafkaProducer(options_, std::move(client)));
  }

  StatusOr<std::unique_ptr<messaging::Consumer>> NewConsumer(
      const std::string& group, const std::vector<std::string>& topics) override {
    if (group.empty()) return absl::InvalidArgumentError("kafka: a consumer needs a group");
    if (topics.empty()) {
      return absl::InvalidArgumentError("kafka: a consumer needs at least one topic");
    }
    RXFLOW_ASSIGN_OR_RETURN(std::unique_ptr<KafkaConsumer> consumer,
                            KafkaConsumer::Create(options_, group, topics));
    return std::unique_ptr<messaging::Consumer>(std::move(consumer));
  }

  std::string_view Name() const override { return "kafka"; }

 private:
  const KafkaOptions options_;
};

}  // namespace

StatusOr<std::unique_ptr<messaging::Broker>> NewKafkaBroker(KafkaOptions options) {
  // Check both configurations now rather than at the first producer or consumer.
  RXFLOW_RETURN_IF_ERROR(internal::ProducerConf(options).status());
  RXFLOW_RETURN_IF_ERROR(internal::ConsumerConf(options, "rxflow-check").status());
  return std::unique_ptr<messaging::Broker>(new KafkaBroker(std::move(options)));
}

}  // namespace rxflow::kafka
