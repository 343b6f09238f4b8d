// SPDX-License-Identifier: Apache-2.0
// File: rxflow/obs/trace.h
//
// Distributed tracing: W3C Trace Context (the `traceparent` header), spans, their OTLP/HTTP
// JSON encoding, and a Tracer that batches finished spans to a SpanExporter on a
// background thread. The OTLP/HTTP exporter is in rxflow/http/otlp.h (rxflow::http).
//
//   obs::Tracer tracer(exporter.get());            // null exporter: tracing off
//   {
//     obs::ScopedSpan span(&tracer, "submit", incoming_context, obs::SpanKind::kServer);
//     span.SetAttribute("rxflow.prescription_id", id);
//     ... pass FormatTraceparent(span.context()) downstream ...
//   }                                              // recorded here
//
// Thread-safety: the free functions are thread-safe. Tracer is safe for concurrent use;
// Record never blocks on the exporter: when the queue is full the span is dropped and
// counted. A ScopedSpan belongs to one thread at a time.
//
// Errors: ParseTraceparent returns InvalidArgument naming the part that is wrong; a caller
// that gets it starts a new root trace (what the W3C spec asks of a receiver).
#ifndef RXFLOW_OBS_TRACE_H_
#define RXFLOW_OBS_TRACE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rxflow/status.h"

namespace rxflow::obs {

// The propagated identity of a span.
struct TraceContext {
  std::string trace_id;  // 32 lowercase hex digits, not all zero
  std::string span_id;   // 16 lowercase hex digits, not all zero
  uint8_t flags = 0;     // bit 0: sampled
  bool sampled() const { return (flags & 1) != 0; }
};

// Parses a `traceparent` header value, e.g.
// "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01". Version 00 must be exactly 55
// characters; a later version may be longer (a '-' must follow the flags) and only its
// first four fields are read; version ff is invalid. Hex must be lowercase.
StatusOr<TraceContext> ParseTraceparent(std::string_view header);

// "00-<trace_id>-<span_id>-<flags>" (always version 00).
std::string FormatTraceparent(const TraceContext& context);

// A new trace: random trace and span ids, sampled.
TraceContext NewRootContext();
// A child span of `parent`: the same trace id and flags, a new random span id. A parent
// without a valid trace id gives a new root.
TraceContext ChildOf(const TraceContext& parent);

// OTLP span kinds.
struct SpanKind {
  static constexpr int kInternal = 1;
  static constexpr int kServer = 2;
  static constexpr int kClient = 3;
  static constexpr int kProducer = 4;
  static constexpr int kConsumer = 5;
};

// A finished span.
struct Span {
  std::string name;
  TraceContext context;
  std::string parent_span_id;  // empty for a root span
  int64_t start_unix_nanos = 0;
  int64_t end_unix_nanos = 0;
  std::vector<std::pair<std::string, std::string>> attributes;
  bool error = false;
  std::string status_message;  // exported with an error only
  int kind = SpanKind::kInternal;
};

// Nanoseconds since the Unix epoch from the system clock.
int64_t UnixNanosNow();

// An OTLP/HTTP JSON ExportTraceServiceRequest: one resource (service.name), one scope
// ("rxflow"), ids as lowercase hex, times as decimal strings, status code 2 (error) or 0
// (unset). Invalid UTF-8 in names or attributes is replaced with U+FFFD.
std::string EncodeOtlpJson(std::span<const Span> spans, std::string_view service_name);

// Where finished spans go (port). Export is called from one Tracer thread at a time, but an
// exporter shared between tracers must be thread-safe. It should bound its own time (the
// OTLP/HTTP exporter times out after 2 s).
class SpanExporter {
 public:
  virtual ~SpanExporter() = default;
  virtual Status Export(std::span<const Span> spans) = 0;
};

struct TracerOptions {
  size_t max_queue = 8192;                         // spans waiting; beyond this Record drops
  size_t max_batch = 512;                          // spans per Export call
  std::chrono::milliseconds flush_interval{1000};  // export at least this often
};

// Queues finished spans and exports them in batches from a background thread. A failed
// batch is counted and dropped (no retry). The destructor exports what is queued, each
// batch once, then stops.
class Tracer {
 public:
  // `exporter` is not owned and must outlive the Tracer; null turns tracing off (Record is
  // a no-op and no thread is started).
  explicit Tracer(SpanExporter* exporter, TracerOptions options = {});
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  bool enabled() const;

  // Queues a finished span. Never waits for the exporter; drops the span when the queue is
  // full (counted in dropped()).
  void Record(Span span);

  // Waits until every span queued before the call has been through Export. Returns OK, or
  // the last export error if an export failed meanwhile.
  Status Flush();

  uint64_t dropped() const;          // spans dropped because the queue was full
  uint64_t exported() const;         // spans exported successfully
  uint64_t export_failures() const;  // Export calls that failed (their spans are lost)

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Times a span on this thread and records it to the tracer when destroyed. With a null or
// disabled tracer it still gives a context to propagate but records nothing.
class ScopedSpan {
 public:
  // `parent` null or without a trace id: a new root.
  ScopedSpan(Tracer* tracer, std::string name, const TraceContext* parent = nullptr,
             int kind = SpanKind::kInternal);
  ~ScopedSpan();
  ScopedSpan(const ScopedSpan&) = delete;
  ScopedSpan& operator=(const ScopedSpan&) = delete;

  const TraceContext& context() const { return span_.context; }
  void SetAttribute(std::string key, std::string value);
  void SetError(std::string message);

 private:
  Tracer* tracer_;
  Span span_;
};

}  // namespace rxflow::obs

#endif  // RXFLOW_OBS_TRACE_H_
