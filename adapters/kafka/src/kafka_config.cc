// SPDX-License-Identifier: Apache-2.0
// librdkafka configuration: defaults, the user's properties, and the checks that keep the
// guarantees of rxflow/messaging/broker.h.
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "rxflow/internal/status_macros.h"

#include "kafka_internal.h"

namespace rxflow::kafka::internal {
namespace {

// What log_level lets through (warnings and errors by default; everything when the user
// sets `debug`) on stderr, without the "property X is a consumer property and will be
// ignored by this producer" notes that KafkaOptions::config, shared by both kinds,
// produces. librdkafka never puts payloads in its log lines.
void LogCallback(const rd_kafka_t* rk, int level, const char* facility, const char* line) {
  if (std::strcmp(facility, "CONFWARN") == 0) return;
  std::fprintf(stderr, "rxflow kafka %s [%s]: %s\n", rk != nullptr ? rd_kafka_name(rk) : "-",
               facility, line);
}

}  // namespace

ConfPtr NewQuietConf() {
  ConfPtr conf(rd_kafka_conf_new());
  rd_kafka_conf_set_log_cb(conf.get(), LogCallback);
  char err[256];
  rd_kafka_conf_set(conf.get(), "log_level", "4", err, sizeof(err));
  return conf;
}

Status SetProperty(rd_kafka_conf_t* conf, const std::string& name, const std::string& value) {
  char err[512];
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
    return absl::InvalidArgumentError("kafka: property " + name + ": " + err);
  }
  return absl::OkStatus();
}

std::string GetProperty(const rd_kafka_conf_t* conf, const std::string& name) {
  size_t size = 0;
  if (rd_kafka_conf_get(conf, name.c_str(), nullptr, &size) == RD_KAFKA_CONF_OK) {
    std::string value(size, '\0');
    rd_kafka_conf_get(conf, name.c_str(), value.data(), &size);
    value.resize(size > 0 ? size - 1 : 0);  // size counts the terminating NUL
    return value;
  }
  // A topic-level property (acks) lives in the default topic configuration.
  const rd_kafka_topic_conf_t* topic_conf =
      rd_kafka_conf_get_default_topic_conf(const_cast<rd_kafka_conf_t*>(conf));
  if (topic_conf == nullptr) return "";
  size = 0;
  if (rd_kafka_topic_conf_get(topic_conf, name.c_str(), nullptr, &size) != RD_KAFKA_CONF_OK) {
    return "";
  }
  std::string value(size, '\0');
  rd_kafka_topic_conf_get(topic_conf, name.c_str(), value.data(), &size);
  value.resize(size > 0 ? size - 1 : 0);
  return value;
}

Status ApplyOptions(rd_kafka_conf_t* conf, const KafkaOptions& options) {
  if (options.brokers.empty()) {
    return absl::InvalidArgumentError("kafka: KafkaOptions::brokers is empty");
  }
  RXFLOW_RETURN_IF_ERROR(SetProperty(conf, "bootstrap.servers", options.brokers));
  RXFLOW_RETURN_IF_ERROR(SetProperty(conf, "client.id", options.client_id));
  for (const auto& [name, value] : options.config) {
    RXFLOW_RETURN_IF_ERROR(SetProperty(conf, name, value));
  }
  return absl::OkStatus();
}

StatusOr<ConfPtr> ProducerConf(const KafkaOptions& options) {
  if (options.publish_timeout.count() <= 0) {
    return absl::InvalidArgumentError("kafka: KafkaOptions::publish_timeout must be positive");
  }
  ConfPtr conf = NewQuietConf();
  const std::pair<const char*, std::string> defaults[] = {
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"linger.ms", "5"},
      // Java's default partitioner: a key maps to the same partition as from a Java client.
      {"partitioner", "murmur2_random"},
      {"message.timeout.ms", std::to_string(options.publish_timeout.count())},
  };
  for (const auto& [name, value] : defaults) {
    RXFLOW_RETURN_IF_ERROR(SetProperty(conf.get(), name, value));
  }
  RXFLOW_RETURN_IF_ERROR(ApplyOptions(conf.get(), options));
  std::string idempotence = GetProperty(conf.get(), "enable.idempotence");
  if (idempotence != "true") {
    return absl::FailedPreconditionError(
        "kafka: enable.idempotence=" + idempotence +
        " breaks per-key order and exactly-once writes on retry; the producer needs true");
  }
  std::string acks = GetProperty(conf.get(), "acks");
  if (acks != "-1" && acks != "all") {
    return absl::FailedPreconditionError(
        "kafka: acks=" + acks +
        " does not wait for every in-sync replica; the producer needs acks=all");
  }
  return conf;
}

StatusOr<ConfPtr> ConsumerConf(const KafkaOptions& options, const std::string& group) {
  ConfPtr conf = NewQuietConf();
  const std::pair<const char*, const char*> defaults[] = {
      {"enable.auto.commit", "false"},   {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"}, {"partition.assignment.strategy", "range"},
      {"enable.partition.eof", "false"},
  };
  for (const auto& [name, value] : defaults) {
    RXFLOW_RETURN_IF_ERROR(SetProperty(conf.get(), name, value));
  }
  RXFLOW_RETURN_IF_ERROR(ApplyOptions(conf.get(), options));
  RXFLOW_RETURN_IF_ERROR(SetProperty(conf.get(), "group.id", group));
  if (GetProperty(conf.get(), "enable.auto.commit") != "false") {
    return absl::FailedPreconditionError(
        "kafka: enable.auto.commit=true moves offsets before the inbox transaction; the "
        "consumer commits explicitly");
  }
  return conf;
}

StatusOr<rd_kafka_t*> NewHandle(rd_kafka_type_t type, ConfPtr conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err, sizeof(err));
  if (rk == nullptr) return absl::InvalidArgumentError(std::string("kafka: ") + err);
  (void)conf.release();  // rd_kafka_new took it
  return rk;
}

}  // namespace rxflow::kafka::internal
