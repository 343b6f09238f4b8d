// SPDX-License-Identifier: Apache-2.0
// Configuration helpers shared by the Kafka adapter's producer, consumer, admin client and
// mock cluster. Internal: librdkafka types appear only here and in the .cc files.
#ifndef RXFLOW_ADAPTERS_KAFKA_SRC_KAFKA_INTERNAL_H_
#define RXFLOW_ADAPTERS_KAFKA_SRC_KAFKA_INTERNAL_H_

#include <memory>
#include <string>

#include <librdkafka/rdkafka.h>

#include "rxflow/kafka/kafka_broker.h"
#include "rxflow/status.h"

namespace rxflow::kafka::internal {

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

// A configuration with the adapter's log callback (warnings and errors on stderr) and
// log_level 4; nothing else set.
ConfPtr NewQuietConf();

// Sets one property; InvalidArgument naming the property when librdkafka refuses it.
Status SetProperty(rd_kafka_conf_t* conf, const std::string& name, const std::string& value);

// The effective value of `name` (global or default-topic property), or "" when unknown.
std::string GetProperty(const rd_kafka_conf_t* conf, const std::string& name);

// bootstrap.servers, client.id and the extra properties of `options`, over `conf`'s
// defaults.
Status ApplyOptions(rd_kafka_conf_t* conf, const KafkaOptions& options);

// The producer's configuration, checked: FailedPrecondition when `options.config` turned
// idempotence off or acks to anything but all.
StatusOr<ConfPtr> ProducerConf(const KafkaOptions& options);

// A consumer's configuration for `group`, checked: FailedPrecondition when
// `options.config` turned auto-commit on.
StatusOr<ConfPtr> ConsumerConf(const KafkaOptions& options, const std::string& group);

// A handle of `type` over `conf` (which it takes, also on failure).
StatusOr<rd_kafka_t*> NewHandle(rd_kafka_type_t type, ConfPtr conf);

}  // namespace rxflow::kafka::internal

#endif  // RXFLOW_ADAPTERS_KAFKA_SRC_KAFKA_INTERNAL_H_
