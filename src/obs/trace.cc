// SPDX-License-Identifier: Apache-2.0
#include "rxflow/obs/trace.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "rxflow/internal/crypto.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

namespace rxflow::obs {
namespace {

using internal::Cat;

constexpr size_t kTraceparentSize = 55;  // 2 + 1 + 32 + 1 + 16 + 1 + 2

bool IsLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool IsAllZero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '0'; });
}

Status Invalid(std::string_view what) {
  return absl::InvalidArgumentError(Cat("traceparent: ", what));
}

// `bytes` random bytes as lowercase hex, never all zero.
std::string RandomHexId(size_t bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  unsigned char buf[16];
  std::string out(bytes * 2, '0');
  do {
    rxflow::internal::IdRandomBytes(buf, bytes);  // ids: unique, not secret
    for (size_t i = 0; i < bytes; ++i) {
      out[2 * i] = kHex[buf[i] >> 4];
      out[2 * i + 1] = kHex[buf[i] & 0xf];
    }
  } while (IsAllZero(out));
  return out;
}

int HexValue(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

}  // namespace

StatusOr<TraceContext> ParseTraceparent(std::string_view header) {
  if (header.size() < kTraceparentSize) {
    return Invalid(Cat("too short: ", header.size(), " characters, need 55"));
  }
  std::string_view version = header.substr(0, 2);
  if (!IsLowerHex(version)) return Invalid("version must be 2 lowercase hex digits");
  if (version == "ff") return Invalid("version ff is invalid");
  if (version == "00" && header.size() != kTraceparentSize) {
    return Invalid(Cat("version 00 must be 55 characters, got ", header.size()));
  }
  if (header.size() > kTraceparentSize && header[kTraceparentSize] != '-') {
    return Invalid(Cat("version ", version, ": a '-' must follow the trace-flags"));
  }
  if (header[2] != '-' || header[35] != '-' || header[52] != '-') {
    return Invalid("fields must be separated by '-'");
  }
  std::string_view trace_id = header.substr(3, 32);
  std::string_view span_id = header.substr(36, 16);
  std::string_view flags = header.substr(53, 2);
  if (!IsLowerHex(trace_id)) return Invalid("trace-id must be 32 lowercase hex digits");
  if (IsAllZero(trace_id)) return Invalid("trace-id is all zeros");
  if (!IsLowerHex(span_id)) return Invalid("parent-id must be 16 lowercase hex digits");
  if (IsAllZero(span_id)) return Invalid("parent-id is all zeros");
  if (!IsLowerHex(flags)) return Invalid("trace-flags must be 2 lowercase hex digits");
  return TraceContext{std::string(trace_id), std::string(span_id),
                      static_cast<uint8_t>(HexValue(flags[0]) * 16 + HexValue(flags[1]))};
}

std::string FormatTraceparent(const TraceContext& context) {
  static constexpr char kHex[] = "0123456789abcdef";
  return Cat("00-", context.trace_id, '-', context.span_id, '-', kHex[context.flags >> 4],
             kHex[context.flags & 0xf]);
}

TraceContext NewRootContext() { return TraceContext{RandomHexId(16), RandomHexId(8), 1}; }

TraceContext ChildOf(const TraceContext& parent) {
  if (parent.trace_id.size() != 32) return NewRootContext();
  return TraceContext{parent.trace_id, RandomHexId(8), parent.flags};
}

int64_t UnixNanosNow() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string EncodeOtlpJson(std::span<const Span> spans, std::string_view service_name) {
  using Json = nlohmann::ordered_json;
  auto string_attribute = [](std::string_view key, std::string_view value) {
    return Json{{"key", key}, {"value", {{"stringValue", value}}}};
  };
  Json out_spans = Json::array();
  for (const Span& s : spans) {
    Json j = {{"traceId", s.context.trace_id}, {"spanId", s.context.span_id}};
    if (!s.parent_span_id.empty()) j["parentSpanId"] = s.parent_span_id;
    j["name"] = s.name;
    j["kind"] = s.kind;
    j["startTimeUnixNano"] = std::to_string(s.start_unix_nanos);
    j["endTimeUnixNano"] = std::to_string(s.end_unix_nanos);
    Json attributes = Json::array();
    for (const auto& [key, value] : s.attributes) {
      attributes.push_back(string_attribute(key, value));
    }
    j["attributes"] = std::move(attributes);
    j["status"] = s.error ? Json{{"code", 2}, {"message", s.status_message}} : Json{{"code", 0}};
    out_spans.push_back(std::move(j));
  }
  Json request = {
      {"resourceSpans",
       Json::array(
           {{{"resource",
              {{"attributes", Json::array({string_attribute("service.name", service_name)})}}},
             {"scopeSpans", Json::array({{{"scope", {{"name", "rxflow"}}},
                                          {"spans", std::move(out_spans)}}})}}})}};
  return request.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// ---------------------------------------------------------------------------------------
// Tracer

struct Tracer::State {
  SpanExporter* exporter;
  TracerOptions options;

  std::mutex mu;
  std::condition_variable work_cv;  // to the worker: a batch is ready, a flush, or stop
  std::condition_variable done_cv;  // to Flush: spans went through Export
  std::deque<Span> queue;
  uint64_t enqueued = 0;      // spans ever queued
  uint64_t taken = 0;         // spans ever taken off the queue by the worker
  uint64_t processed = 0;     // spans ever through Export (either result)
  uint64_t flush_target = 0;  // a Flush wants `enqueued` up to here processed
  bool stop = false;
  Status last_error;

  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> exported{0};
  std::atomic<uint64_t> failures{0};
  std::thread worker;

  void Run() {
    std::unique_lock lock(mu);
    while (true) {
      work_cv.wait_for(lock, options.flush_interval, [&] {
        return stop || queue.size() >= options.max_batch || flush_target > taken;
      });
      if (queue.empty()) {
        if (stop) return;
        continue;
      }
      size_t n = std::min(queue.size(), options.max_batch);
      std::vector<Span> batch(std::make_move_iterator(queue.begin()),
                              std::make_move_iterator(queue.begin() + n));
      queue.erase(queue.begin(), queue.begin() + n);
      taken += n;
      lock.unlock();
      Status status;
      try {
        status = exporter->Export(batch);
      } catch (const std::exception& e) {
        status = absl::InternalError(Cat("span exporter threw: ", e.what()));
      } catch (...) {
        status = absl::InternalError("span exporter threw");
      }
      if (status.ok()) {
        exported.fetch_add(n, std::memory_order_relaxed);
      } else {
        failures.fetch_add(1, std::memory_order_relaxed);
      }
      lock.lock();
      if (!status.ok()) last_error = std::move(status);
      processed += n;
      done_cv.notify_all();
    }
  }
};

Tracer::Tracer(SpanExporter* exporter, TracerOptions options) : state_(std::make_unique<State>()) {
  options.max_batch = std::max<size_t>(1, options.max_batch);
  if (options.flush_interval <= std::chrono::milliseconds::zero()) {
    options.flush_interval = std::chrono::milliseconds(1);
  }
  state_->exporter = exporter;
  state_->options = options;
  if (exporter == nullptr) return;
  try {
    state_->worker = std::thread([s = state_.get()] { s->Run(); });
  } catch (const std::system_error&) {
    state_->exporter = nullptr;  // no thread: tracing off rather than a growing queue
  }
}

Tracer::~Tracer() {
  if (!state_->worker.joinable()) return;
  {
    std::lock_guard lock(state_->mu);
    state_->stop = true;
  }
  state_->work_cv.notify_one();
  state_->worker.join();
}

bool Tracer::enabled() const { return state_->exporter != nullptr; }

void Tracer::Record(Span span) {
  if (state_->exporter == nullptr) return;
  std::lock_guard lock(state_->mu);
  if (state_->queue.size() >= state_->options.max_queue) {
    state_->dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  state_->queue.push_back(std::move(span));
  ++state_->enqueued;
  if (state_->queue.size() == state_->options.max_batch) state_->work_cv.notify_one();
}

Status Tracer::Flush() {
  if (state_->exporter == nullptr) return Status();
  uint64_t failures_before = state_->failures.load();
  std::unique_lock lock(state_->mu);
  uint64_t target = state_->enqueued;
  state_->flush_target = std::max(state_->flush_target, target);
  state_->work_cv.notify_one();
  state_->done_cv.wait(lock, [&] { return state_->processed >= target; });
  // A copy of its own: the worker may replace last_error once the lock is released.
  if (state_->failures.load() != failures_before) {
    return internal::UnsharedCopy(state_->last_error);
  }
  return Status();
}

uint64_t Tracer::dropped() const { return state_->dropped.load(std::memory_order_relaxed); }
uint64_t Tracer::exported() const { return state_->exported.load(std::memory_order_relaxed); }
uint64_t Tracer::export_failures() const {
  return state_->failures.load(std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------------------
// ScopedSpan

ScopedSpan::ScopedSpan(Tracer* tracer, std::string name, const TraceContext* parent, int kind)
    : tracer_(tracer) {
  span_.name = std::move(name);
  span_.kind = kind;
  if (parent != nullptr && parent->trace_id.size() == 32) {
    span_.context = ChildOf(*parent);
    span_.parent_span_id = parent->span_id;
  } else {
    span_.context = NewRootContext();
  }
  span_.start_unix_nanos = UnixNanosNow();
}

ScopedSpan::~ScopedSpan() {
  if (tracer_ == nullptr || !tracer_->enabled()) return;
  span_.end_unix_nanos = UnixNanosNow();
  tracer_->Record(std::move(span_));
}

void ScopedSpan::SetAttribute(std::string key, std::string value) {
  span_.attributes.emplace_back(std::move(key), std::move(value));
}

void ScopedSpan::SetError(std::string message) {
  span_.error = true;
  span_.status_message = std::move(message);
}

}  // namespace rxflow::obs
