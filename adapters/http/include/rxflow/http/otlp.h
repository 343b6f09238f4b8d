// SPDX-License-Identifier: Apache-2.0
// File: rxflow/http/otlp.h
//
// The OTLP/HTTP span exporter (target rxflow::http): POSTs each batch as OTLP JSON
// (obs::EncodeOtlpJson) to a collector, e.g. the OpenTelemetry Collector or Jaeger on port
// 4318. Give it to an obs::Tracer, which calls it from its background thread.
//
//   auto exporter = http::NewOtlpHttpExporter("http://127.0.0.1:4318", "rxflow-api");
//   obs::Tracer tracer(exporter.get());
//
// Export returns Unavailable when the collector cannot be reached, times out (2 s to
// connect, 2 s per read or write) or answers other than 2xx (the message names the URL and
// the HTTP status); InvalidArgument when the endpoint is malformed. No retry: the Tracer
// counts the failure and drops the batch.
//
// Thread-safety: Export may be called concurrently (each call uses its own connection).
#ifndef RXFLOW_HTTP_OTLP_H_
#define RXFLOW_HTTP_OTLP_H_

#include <memory>
#include <string>

#include "rxflow/obs/trace.h"

namespace rxflow::http {

// `endpoint`: "http[s]://host[:port][/path]". Without a path (or with "/") the OTLP traces
// path "/v1/traces" is used; a path is used as given. A malformed endpoint gives an
// exporter whose every Export returns InvalidArgument naming it.
std::unique_ptr<obs::SpanExporter> NewOtlpHttpExporter(std::string endpoint,
                                                       std::string service_name);

}  // namespace rxflow::http

#endif  // RXFLOW_HTTP_OTLP_H_
