// SPDX-License-Identifier: Apache-2.0
// CreateTopics through librdkafka's admin API, and the mock cluster for tests.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "rxflow/internal/status_macros.h"

#include "kafka_internal.h"

// rdkafka_mock.h needs rdkafka.h (from kafka_internal.h) first.
// clang-format off
#include <librdkafka/rdkafka_mock.h>
// clang-format on

namespace rxflow::kafka {

Status CreateTopics(const std::string& brokers, const std::vector<std::string>& topics,
                    int partitions) {
  KafkaOptions options;
  options.brokers = brokers;
  return CreateTopics(options, topics, partitions);
}

Status CreateTopics(const KafkaOptions& options, const std::vector<std::string>& topics,
                    int partitions) {
  if (partitions < 1) return absl::InvalidArgumentError("kafka: partitions must be at least 1");
  if (topics.empty()) return absl::OkStatus();
  internal::ConfPtr conf = internal::NewQuietConf();
  RXFLOW_RETURN_IF_ERROR(internal::ApplyOptions(conf.get(), options));
  RXFLOW_ASSIGN_OR_RETURN(auto rk, internal::NewHandle(RD_KAFKA_PRODUCER, std::move(conf)));

  char err[512];
  std::vector<rd_kafka_NewTopic_t*> new_topics;
  Status status;
  for (const std::string& t : topics) {
    // Replication factor -1: the cluster's default (KIP-464).
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(t.c_str(), partitions, -1, err, sizeof(err));
    if (nt == nullptr) {
      status = absl::InvalidArgumentError("kafka: topic " + t + ": " + err);
      break;
    }
    new_topics.push_back(nt);
  }
  if (status.ok()) {
    const int timeout_ms = 30000;
    rd_kafka_AdminOptions_t* admin_options =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(admin_options, timeout_ms, err, sizeof(err));
    rd_kafka_AdminOptions_set_operation_timeout(admin_options, timeout_ms, err, sizeof(err));
    rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, new_topics.data(), new_topics.size(), admin_options, queue);
    rd_kafka_event_t* event = rd_kafka_queue_poll(queue, timeout_ms + 5000);
    if (event == nullptr) {
      status =
          absl::UnavailableError("kafka: creating topics on " + options.brokers + " timed out");
    } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      status = absl::UnavailableError("kafka: creating topics on " + options.brokers +
                                      " failed: " + rd_kafka_event_error_string(event));
    } else {
      const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event);
      size_t count = 0;
      const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
      for (size_t i = 0; i < count && status.ok(); ++i) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
          continue;
        }
        const char* why = rd_kafka_topic_result_error_string(results[i]);
        status = absl::UnavailableError(std::string("kafka: creating topic ") +
                                        rd_kafka_topic_result_name(results[i]) +
                                        " failed: " + rd_kafka_err2name(e) + ": " +
                                        (why != nullptr ? why : rd_kafka_err2str(e)));
      }
    }
    if (event != nullptr) rd_kafka_event_destroy(event);
    rd_kafka_queue_destroy(queue);
    rd_kafka_AdminOptions_destroy(admin_options);
  }
  for (rd_kafka_NewTopic_t* nt : new_topics) rd_kafka_NewTopic_destroy(nt);
  rd_kafka_destroy(rk);
  return status;
}

struct MockCluster::Impl {
  rd_kafka_t* rk = nullptr;  // the handle the cluster is bound to
  rd_kafka_mock_cluster_t* cluster = nullptr;
  int brokers = 0;

  ~Impl() {
    if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
    if (rk != nullptr) rd_kafka_destroy(rk);
  }
};

MockCluster::MockCluster(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MockCluster::~MockCluster() = default;

StatusOr<std::unique_ptr<MockCluster>> MockCluster::Start(int brokers,
                                                          const std::vector<std::string>& topics,
                                                          int partitions) {
  if (brokers < 1) return absl::InvalidArgumentError("kafka mock: brokers must be at least 1");
  auto impl = std::make_unique<Impl>();
  impl->brokers = brokers;
  // A dedicated handle that never connects anywhere: the cluster's bookkeeping lives on it.
  internal::ConfPtr conf = internal::NewQuietConf();
  RXFLOW_RETURN_IF_ERROR(internal::SetProperty(conf.get(), "client.id", "rxflow-mock-cluster"));
  RXFLOW_ASSIGN_OR_RETURN(impl->rk, internal::NewHandle(RD_KAFKA_PRODUCER, std::move(conf)));
  impl->cluster = rd_kafka_mock_cluster_new(impl->rk, brokers);
  if (impl->cluster == nullptr) {
    return absl::UnavailableError("kafka mock: could not start the mock cluster");
  }
  std::unique_ptr<MockCluster> cluster(new MockCluster(std::move(impl)));
  for (const std::string& t : topics) {
    RXFLOW_RETURN_IF_ERROR(cluster->CreateTopic(t, partitions));
  }
  return cluster;
}

std::string MockCluster::bootstrap_servers() const {
  return rd_kafka_mock_cluster_bootstraps(impl_->cluster);
}

Status MockCluster::CreateTopic(const std::string& topic, int partitions) {
  if (topic.empty() || partitions < 1) {
    return absl::InvalidArgumentError("kafka mock: CreateTopic needs a name and partitions");
  }
  rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(impl_->cluster, topic.c_str(), partitions,
                                                       std::min(3, impl_->brokers));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    return absl::InternalError("kafka mock: creating topic " + topic +
                               " failed: " + rd_kafka_err2str(err));
  }
  return absl::OkStatus();
}

Status MockCluster::SetBrokerDown(int broker_id, bool down) {
  if (broker_id != -1 && (broker_id < 1 || broker_id > impl_->brokers)) {
    return absl::InvalidArgumentError("kafka mock: no broker " + std::to_string(broker_id));
  }
  rd_kafka_resp_err_t err = down ? rd_kafka_mock_broker_set_down(impl_->cluster, broker_id)
                                 : rd_kafka_mock_broker_set_up(impl_->cluster, broker_id);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError("kafka mock: broker " + std::to_string(broker_id) + ": " +
                               rd_kafka_err2str(err));
  }
  return absl::OkStatus();
}

}  // namespace rxflow::kafka
