// SPDX-License-Identifier: Apache-2.0
#include "rxflow/obs/trace.h"

#include <chrono>
#include <future>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "testing/status.h"

#ifdef RXFLOW_TEST_HAVE_HTTP
#include <httplib.h>

#include "rxflow/http/otlp.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

using namespace rxflow;
using namespace rxflow::obs;

namespace {

constexpr const char* kW3cExample = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

bool IsLowerHex(const std::string& s, size_t size) {
  return s.size() == size && s.find_first_not_of("0123456789abcdef") == std::string::npos &&
         s.find_first_not_of('0') != std::string::npos;
}

Span MakeSpan(std::string name) {
  Span s;
  s.name = std::move(name);
  s.context = NewRootContext();
  s.start_unix_nanos = 1'764'151'200'000'000'000;
  s.end_unix_nanos = s.start_unix_nanos + 1500;
  return s;
}

// Keeps every span it is given.
class CollectingExporter : public SpanExporter {
 public:
  Status Export(std::span<const Span> spans) override {
    std::lock_guard lock(mu);
    batch_sizes.push_back(spans.size());
    for (const Span& s : spans) {
      names.push_back(s.name);
      spans_seen.push_back(s);
    }
    return fail ? absl::UnavailableError("collector down") : Status();
  }
  std::mutex mu;
  std::vector<size_t> batch_sizes;
  std::vector<std::string> names;
  std::vector<Span> spans_seen;
  bool fail = false;
};

// Blocks in Export until released.
class BlockingExporter : public SpanExporter {
 public:
  Status Export(std::span<const Span> spans) override {
    entered.set_value_once();
    release.wait();
    return Status();
  }
  struct Once {
    void set_value_once() {
      std::call_once(flag, [this] { promise.set_value(); });
    }
    std::once_flag flag;
    std::promise<void> promise;
  } entered;
  std::latch release{1};
};

}  // namespace

TEST_SUITE("Tracing") {
  TEST_CASE("traceparent: the W3C example parses and formats back") {
    auto ctx = ParseTraceparent(kW3cExample);
    RXFLOW_REQUIRE_OK(ctx);
    CHECK(ctx->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(ctx->span_id == "00f067aa0ba902b7");
    CHECK(ctx->flags == 1);
    CHECK(ctx->sampled());
    CHECK(FormatTraceparent(*ctx) == kW3cExample);

    auto unsampled = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    RXFLOW_REQUIRE_OK(unsampled);
    CHECK_FALSE(unsampled->sampled());
    auto flags = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff");
    RXFLOW_REQUIRE_OK(flags);
    CHECK(flags->flags == 0xff);
    CHECK(FormatTraceparent(*flags).ends_with("-ff"));
  }

  TEST_CASE("traceparent: later versions may carry more fields") {
    const std::string base = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    CHECK(ParseTraceparent(base).ok());
    auto longer = ParseTraceparent(base + "-what-the-future-will-be-like");
    RXFLOW_REQUIRE_OK(longer);
    CHECK(longer->span_id == "00f067aa0ba902b7");
    CHECK(FormatTraceparent(*longer) == kW3cExample);  // we speak version 00
    CHECK(ParseTraceparent(base + "x").status().message().find("'-' must follow") !=
          std::string::npos);
  }

  TEST_CASE("traceparent: invalid values name what is wrong") {
    struct Case {
      const char* value;
      const char* message_part;
    };
    const Case cases[] = {
        {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "trace-id"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", "parent-id"},
        {"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "trace-id is all zeros"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "parent-id is all zeros"},
        {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version ff"},
        {"0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", "too short"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", "version 00 must be 55"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", "trace-flags"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1X", "trace-flags"},
        {"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "separated"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736+00f067aa0ba902b7-01", "separated"},
        {"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", "separated"},
        {"", "too short"},
    };
    for (const Case& c : cases) {
      CAPTURE(c.value);
      auto ctx = ParseTraceparent(c.value);
      REQUIRE_FALSE(ctx.ok());
      CHECK(absl::IsInvalidArgument(ctx.status()));
      CHECK(ctx.status().message().find(c.message_part) != std::string::npos);
      CHECK(ctx.status().message().substr(0, 13) == "traceparent: ");
    }
  }

  TEST_CASE("new roots are random and valid, ChildOf keeps the trace id") {
    TraceContext a = NewRootContext();
    TraceContext b = NewRootContext();
    CHECK(IsLowerHex(a.trace_id, 32));
    CHECK(IsLowerHex(a.span_id, 16));
    CHECK(a.sampled());
    CHECK(a.trace_id != b.trace_id);
    CHECK(ParseTraceparent(FormatTraceparent(a)).ok());

    TraceContext child = ChildOf(a);
    CHECK(child.trace_id == a.trace_id);
    CHECK(child.span_id != a.span_id);
    CHECK(IsLowerHex(child.span_id, 16));
    CHECK(child.flags == a.flags);

    TraceContext orphan = ChildOf(TraceContext{});
    CHECK(IsLowerHex(orphan.trace_id, 32));
  }

  TEST_CASE("EncodeOtlpJson is an OTLP/HTTP JSON ExportTraceServiceRequest") {
    Span server = MakeSpan("POST /prescriptions");
    server.kind = SpanKind::kServer;
    server.attributes = {{"http.method", "POST"}, {"http.route", "/prescriptions"}};
    Span client = MakeSpan("route");
    client.context = ChildOf(server.context);
    client.parent_span_id = server.context.span_id;
    client.kind = SpanKind::kClient;
    client.error = true;
    client.status_message = "pharmacy unreachable";
    client.attributes = {{"bad.utf8", std::string("\xff\xfe", 2)}};
    const Span spans[] = {server, client};

    auto j = nlohmann::json::parse(EncodeOtlpJson(spans, "rxflow-api"));
    REQUIRE(j["resourceSpans"].size() == 1);
    const auto& rs = j["resourceSpans"][0];
    CHECK(rs["resource"]["attributes"][0]["key"] == "service.name");
    CHECK(rs["resource"]["attributes"][0]["value"]["stringValue"] == "rxflow-api");
    REQUIRE(rs["scopeSpans"].size() == 1);
    CHECK(rs["scopeSpans"][0]["scope"]["name"] == "rxflow");
    const auto& out = rs["scopeSpans"][0]["spans"];
    REQUIRE(out.size() == 2);

    CHECK(out[0]["traceId"] == server.context.trace_id);
    CHECK(out[0]["spanId"] == server.context.span_id);
    CHECK_FALSE(out[0].contains("parentSpanId"));
    CHECK(out[0]["name"] == "POST /prescriptions");
    CHECK(out[0]["kind"] == 2);
    CHECK(out[0]["startTimeUnixNano"] == "1764151200000000000");
    CHECK(out[0]["endTimeUnixNano"] == "1764151200000001500");
    CHECK(out[0]["attributes"][1]["key"] == "http.route");
    CHECK(out[0]["attributes"][1]["value"]["stringValue"] == "/prescriptions");
    CHECK(out[0]["status"]["code"] == 0);

    CHECK(out[1]["traceId"] == server.context.trace_id);
    CHECK(out[1]["parentSpanId"] == server.context.span_id);
    CHECK(out[1]["kind"] == 3);
    CHECK(out[1]["status"]["code"] == 2);
    CHECK(out[1]["status"]["message"] == "pharmacy unreachable");
    CHECK(out[1]["attributes"][0]["value"]["stringValue"] == "\xEF\xBF\xBD\xEF\xBF\xBD");
  }

  TEST_CASE("Tracer batches, flushes, and drains on destruction") {
    CollectingExporter exporter;
    {
      Tracer tracer(&exporter,
                    {.max_queue = 8192, .max_batch = 100, .flush_interval = std::chrono::hours(1)});
      CHECK(tracer.enabled());
      for (int i = 0; i < 1000; ++i) tracer.Record(MakeSpan("s" + std::to_string(i)));
      CHECK(tracer.Flush().ok());
      CHECK(tracer.exported() == 1000);
      CHECK(tracer.dropped() == 0);
      for (int i = 0; i < 10; ++i) tracer.Record(MakeSpan("tail"));
    }  // the destructor exports the 10 left
    std::lock_guard lock(exporter.mu);
    CHECK(exporter.names.size() == 1010);
    CHECK(exporter.names.front() == "s0");
    CHECK(exporter.names.back() == "tail");
    for (size_t n : exporter.batch_sizes) CHECK(n <= 100);
  }

  TEST_CASE("Tracer exports on its interval without a flush") {
    CollectingExporter exporter;
    Tracer tracer(&exporter, {.flush_interval = std::chrono::milliseconds(20)});
    tracer.Record(MakeSpan("lonely"));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (tracer.exported() == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    CHECK(tracer.exported() == 1);
  }

  TEST_CASE("Tracer counts export failures and Flush reports them") {
    CollectingExporter exporter;
    exporter.fail = true;
    // No interval export: the last, partial batch is left for Flush however slow this is.
    Tracer tracer(&exporter, {.max_batch = 10, .flush_interval = std::chrono::hours(1)});
    for (int i = 0; i < 25; ++i) tracer.Record(MakeSpan("x"));
    Status s = tracer.Flush();
    CHECK(absl::IsUnavailable(s));
    CHECK(tracer.export_failures() >= 3);  // 10 + 10 + 5
    CHECK(tracer.exported() == 0);
  }

  TEST_CASE("Tracer without an exporter is off") {
    Tracer tracer(nullptr);
    CHECK_FALSE(tracer.enabled());
    tracer.Record(MakeSpan("ignored"));
    CHECK(tracer.Flush().ok());
    CHECK(tracer.dropped() == 0);
    ScopedSpan span(&tracer, "still gives a context");
    CHECK(IsLowerHex(span.context().trace_id, 32));
  }

  TEST_CASE("Tracer drops when full and never blocks on the exporter") {
    BlockingExporter exporter;
    auto entered = exporter.entered.promise.get_future();
    constexpr int kSpans = 100000;
    const Span span = MakeSpan("hot");
    {
      Tracer tracer(
          &exporter,
          {.max_queue = 16, .max_batch = 4, .flush_interval = std::chrono::milliseconds(10)});
      // Should the Record loop block, this watchdog frees the exporter (after 120 s) so the
      // test fails instead of hanging: the loop finishing while the exporter is still held —
      // the watchdog not having fired — is the proof that Record never waited for it.
      std::promise<void> done;
      std::atomic<bool> watchdog_fired{false};
      std::thread watchdog([&exporter, &watchdog_fired, f = done.get_future()] {
        if (f.wait_for(std::chrono::seconds(120)) != std::future_status::ready) {
          watchdog_fired = true;
        }
        exporter.release.count_down();
      });
      for (int i = 0; i < kSpans; ++i) tracer.Record(span);
      CHECK_FALSE(watchdog_fired.load());  // finished while the exporter was blocked
      CHECK(entered.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
      CHECK(tracer.dropped() > 0);
      CHECK(tracer.dropped() >= kSpans - 16 - 4);  // at most a queue and a batch kept
      done.set_value();                            // releases the exporter
      watchdog.join();
      CHECK(tracer.Flush().ok());
      CHECK(tracer.exported() + tracer.dropped() == kSpans);
    }
  }

  TEST_CASE("ScopedSpan records a child span with its attributes and error") {
    CollectingExporter exporter;
    Tracer tracer(&exporter);
    TraceContext parent = *ParseTraceparent(kW3cExample);
    TraceContext child;
    {
      ScopedSpan span(&tracer, "route", &parent, SpanKind::kClient);
      span.SetAttribute("rxflow.pharmacy", "1234567");
      span.SetError("timeout");
      child = span.context();
    }
    CHECK(child.trace_id == parent.trace_id);
    CHECK(child.span_id != parent.span_id);
    CHECK(tracer.Flush().ok());
    std::lock_guard lock(exporter.mu);
    REQUIRE(exporter.spans_seen.size() == 1);
    const Span& got = exporter.spans_seen[0];
    CHECK(got.name == "route");
    CHECK(got.kind == SpanKind::kClient);
    CHECK(got.context.trace_id == parent.trace_id);
    CHECK(got.context.span_id == child.span_id);
    CHECK(got.parent_span_id == parent.span_id);
    CHECK(got.attributes ==
          std::vector<std::pair<std::string, std::string>>{{"rxflow.pharmacy", "1234567"}});
    CHECK(got.error);
    CHECK(got.status_message == "timeout");
    CHECK(got.start_unix_nanos > 0);
    CHECK(got.end_unix_nanos >= got.start_unix_nanos);
  }

#ifdef RXFLOW_TEST_HAVE_HTTP
  // A loopback TCP socket on a free port: listening (connections queue, nobody answers) or
  // only bound (connections are refused). Closed by the destructor.
  struct RawSocket {
    explicit RawSocket(bool listening) {
      fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof addr;
      REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
      if (listening) REQUIRE(listen(fd, 16) == 0);
      REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
      port = ntohs(addr.sin_port);
    }
    ~RawSocket() { close(fd); }
    int fd = -1;
    int port = 0;
  };

  TEST_CASE("OTLP HTTP exporter posts JSON to a collector") {
    struct Received {
      std::string method, path, content_type, body;
    };
    std::mutex mu;
    std::vector<Received> received;
    httplib::Server svr;
    auto handler = [&](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mu);
        received.push_back({req.method, req.path, req.get_header_value("Content-Type"), req.body});
      }
      if (req.path == "/fail") {
        res.status = 503;
        res.set_content("overloaded", "text/plain");
      } else {
        res.set_content("{}", "application/json");
      }
    };
    svr.Post("/v1/traces", handler);
    svr.Post("/custom/traces", handler);
    svr.Post("/fail", handler);
    int port = svr.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    std::thread server([&] { svr.listen_after_bind(); });
    while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const std::string base = "http://127.0.0.1:" + std::to_string(port);

    SUBCASE("through a Tracer, to /v1/traces") {
      auto exporter = http::NewOtlpHttpExporter(base, "rxflow-test");
      Tracer tracer(exporter.get());
      tracer.Record(MakeSpan("submit"));
      tracer.Record(MakeSpan("route"));
      CHECK(tracer.Flush().ok());
      CHECK(tracer.exported() == 2);
      std::lock_guard lock(mu);
      REQUIRE(received.size() == 1);
      CHECK(received[0].method == "POST");
      CHECK(received[0].path == "/v1/traces");
      CHECK(received[0].content_type == "application/json");
      auto j = nlohmann::json::parse(received[0].body);
      const auto& rs = j["resourceSpans"][0];
      CHECK(rs["resource"]["attributes"][0]["value"]["stringValue"] == "rxflow-test");
      const auto& spans = rs["scopeSpans"][0]["spans"];
      REQUIRE(spans.size() == 2);
      CHECK(spans[0]["name"] == "submit");
      CHECK(spans[1]["name"] == "route");
    }
    SUBCASE("a trailing slash still means /v1/traces; a path is used as given") {
      const Span spans[] = {MakeSpan("a")};
      CHECK(http::NewOtlpHttpExporter(base + "/", "s")->Export(spans).ok());
      CHECK(http::NewOtlpHttpExporter(base + "/custom/traces", "s")->Export(spans).ok());
      std::lock_guard lock(mu);
      REQUIRE(received.size() == 2);
      CHECK(received[0].path == "/v1/traces");
      CHECK(received[1].path == "/custom/traces");
    }
    SUBCASE("a non-2xx answer is Unavailable naming the status") {
      const Span spans[] = {MakeSpan("a")};
      Status s = http::NewOtlpHttpExporter(base + "/fail", "s")->Export(spans);
      CHECK(absl::IsUnavailable(s));
      CHECK(s.message().find("HTTP 503") != std::string_view::npos);
    }

    svr.stop();
    server.join();
  }

  TEST_CASE("OTLP HTTP exporter: a closed port is Unavailable at once") {
    RawSocket closed(/*listening=*/false);
    auto exporter =
        http::NewOtlpHttpExporter("http://127.0.0.1:" + std::to_string(closed.port), "s");
    const Span spans[] = {MakeSpan("a")};
    auto start = std::chrono::steady_clock::now();
    Status s = exporter->Export(spans);
    // Refused at connect: well before the 2 s timeout would have ended a wait.
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
    CHECK(absl::IsUnavailable(s));
    CHECK(s.message().find("127.0.0.1") != std::string_view::npos);
  }

  // The lower bound shows the exporter waited for its 2 s timeout; the upper one only that it
  // gives up (a loaded machine or a sanitizer build may add seconds, never minutes).
  TEST_CASE("OTLP HTTP exporter: a collector that never answers is Unavailable after the timeout") {
    RawSocket silent(/*listening=*/true);
    auto exporter =
        http::NewOtlpHttpExporter("http://127.0.0.1:" + std::to_string(silent.port), "s");
    const Span spans[] = {MakeSpan("a")};
    auto start = std::chrono::steady_clock::now();
    Status s = exporter->Export(spans);
    auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(absl::IsUnavailable(s));
    CHECK(elapsed >= std::chrono::milliseconds(1500));
    CHECK(elapsed < std::chrono::seconds(60));
  }

  TEST_CASE("OTLP HTTP exporter: a malformed endpoint is InvalidArgument") {
    const Span spans[] = {MakeSpan("a")};
    for (const char* endpoint : {"127.0.0.1:4318", "ftp://host", "http://", ""}) {
      CAPTURE(endpoint);
      CHECK(absl::IsInvalidArgument(http::NewOtlpHttpExporter(endpoint, "s")->Export(spans)));
    }
  }
#endif
}
