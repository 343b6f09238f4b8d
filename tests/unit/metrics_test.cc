// SPDX-License-Identifier: Apache-2.0
#include "rxflow/obs/metrics.h"

#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

using namespace rxflow::obs;

TEST_SUITE("Metrics") {
  TEST_CASE("exposition text is exact: families sorted, labels sorted and escaped") {
    Registry r;
    r.Counter("rxflow_requests_total", "Requests served.", {{"route", "/a"}, {"code", "200"}})
        .Inc();
    // The same series with its labels in another order, and a help text that is ignored.
    r.Counter("rxflow_requests_total", "other help", {{"code", "200"}, {"route", "/a"}}).Inc(2);
    r.Counter("rxflow_requests_total", "", {{"code", "500"}, {"route", "/a"}}).Inc();
    r.Gauge("rxflow_outbox_backlog", "Outbox messages waiting.").Set(7);
    Histogram& h = r.Histogram("rxflow_latency_seconds", "Latency.\nIn seconds \\ wall.",
                               {{"route", "/a"}}, {1, 0.1, 0.5, 0.5});
    h.Observe(0.25);
    h.Observe(0.5);  // upper bounds are inclusive
    h.Observe(0.75);
    h.Observe(3);
    r.Gauge("rxflow_info", "Build info.", {{"version", "a\"b\\c\nd"}}).Set(1.5);

    CHECK(r.Expose() ==
          "# HELP rxflow_info Build info.\n"
          "# TYPE rxflow_info gauge\n"
          "rxflow_info{version=\"a\\\"b\\\\c\\nd\"} 1.5\n"
          "# HELP rxflow_latency_seconds Latency.\\nIn seconds \\\\ wall.\n"
          "# TYPE rxflow_latency_seconds histogram\n"
          "rxflow_latency_seconds_bucket{route=\"/a\",le=\"0.1\"} 0\n"
          "rxflow_latency_seconds_bucket{route=\"/a\",le=\"0.5\"} 2\n"
          "rxflow_latency_seconds_bucket{route=\"/a\",le=\"1\"} 3\n"
          "rxflow_latency_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n"
          "rxflow_latency_seconds_sum{route=\"/a\"} 4.5\n"
          "rxflow_latency_seconds_count{route=\"/a\"} 4\n"
          "# HELP rxflow_outbox_backlog Outbox messages waiting.\n"
          "# TYPE rxflow_outbox_backlog gauge\n"
          "rxflow_outbox_backlog 7\n"
          "# HELP rxflow_requests_total Requests served.\n"
          "# TYPE rxflow_requests_total counter\n"
          "rxflow_requests_total{code=\"200\",route=\"/a\"} 3\n"
          "rxflow_requests_total{code=\"500\",route=\"/a\"} 1\n");
  }

  TEST_CASE("same name and labels give the same object") {
    Registry r;
    Counter& a = r.Counter("c_total", "C.", {{"x", "1"}});
    CHECK(&a == &r.Counter("c_total", "C.", {{"x", "1"}}));
    CHECK(&a != &r.Counter("c_total", "C.", {{"x", "2"}}));
    Gauge& g = r.Gauge("g", "G.");
    CHECK(&g == &r.Gauge("g", "G."));
    Histogram& h = r.Histogram("h_seconds", "H.");
    CHECK(&h == &r.Histogram("h_seconds", "H.", {}, {1, 2}));  // first buckets win
    CHECK(h.bounds() == DefaultLatencyBuckets());
  }

  TEST_CASE("default buckets print as Prometheus clients print them") {
    Registry r;
    r.Histogram("h_seconds", "H.").Observe(0.003);
    std::string text = r.Expose();
    CHECK(text.find("h_seconds_bucket{le=\"0.0005\"} 0\n") != std::string::npos);
    CHECK(text.find("h_seconds_bucket{le=\"0.0025\"} 0\n") != std::string::npos);
    CHECK(text.find("h_seconds_bucket{le=\"0.005\"} 1\n") != std::string::npos);
    CHECK(text.find("h_seconds_bucket{le=\"10\"} 1\n") != std::string::npos);
    CHECK(text.find("h_seconds_bucket{le=\"+Inf\"} 1\n") != std::string::npos);
    CHECK(text.find("h_seconds_sum 0.003\n") != std::string::npos);
  }

  TEST_CASE("gauge and counter semantics") {
    Registry r;
    Gauge& g = r.Gauge("g", "G.");
    g.Set(10);
    g.Inc();
    g.Dec(3.5);
    CHECK(g.Value() == 7.5);
    Counter& c = r.Counter("c_total", "C.");
    c.Inc(2);
    c.Inc(-1);  // ignored: counters only go up
    CHECK(c.Value() == 2);
  }

  TEST_CASE("misuse gives a working metric that is not exposed") {
    Registry r;
    r.Counter("dup", "Counter.").Inc();
    Gauge& wrong_type = r.Gauge("dup", "Gauge.");
    wrong_type.Set(5);
    CHECK(wrong_type.Value() == 5);
    r.Counter("bad name", "C.").Inc();
    r.Counter("ok_total", "C.", {{"0bad", "v"}}).Inc();
    r.Histogram("h", "H.", {{"le", "1"}}).Observe(1);
    CHECK(r.Expose() == "# HELP dup Counter.\n# TYPE dup counter\ndup 1\n");
  }

  TEST_CASE("collectors refresh gauges before each exposition") {
    Registry r;
    int backlog = 3;
    r.AddCollector([&backlog](Registry& reg) {
      reg.Gauge("rxflow_outbox_backlog", "Outbox messages waiting.").Set(backlog);
    });
    CHECK(r.Expose().find("rxflow_outbox_backlog 3\n") != std::string::npos);
    backlog = 42;
    CHECK(r.Expose().find("rxflow_outbox_backlog 42\n") != std::string::npos);
  }

  TEST_CASE("concurrent increments from 4 threads sum correctly") {
    Registry r;
    constexpr int kThreads = 4;
    constexpr int kPerThread = 100000;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&r] {
        // Each thread looks the metrics up itself: registration is concurrent too.
        Counter& c = r.Counter("hits_total", "Hits.", {{"k", "v"}});
        Gauge& g = r.Gauge("level", "Level.");
        Histogram& h = r.Histogram("lat_seconds", "Latency.");
        for (int i = 0; i < kPerThread; ++i) {
          c.Inc();
          g.Inc();
          h.Observe(0.25);
        }
      });
    }
    for (auto& t : threads) t.join();
    CHECK(r.Counter("hits_total", "", {{"k", "v"}}).Value() == kThreads * kPerThread);
    CHECK(r.Gauge("level", "").Value() == kThreads * kPerThread);
    Histogram& h = r.Histogram("lat_seconds", "");
    CHECK(h.Count() == kThreads * kPerThread);
    CHECK(h.Sum() == 0.25 * kThreads * kPerThread);
    CHECK(r.Expose().find("hits_total{k=\"v\"} 400000\n") != std::string::npos);
  }

  TEST_CASE("the default registry is one object") {
    CHECK(&DefaultRegistry() == &DefaultRegistry());
  }
}
