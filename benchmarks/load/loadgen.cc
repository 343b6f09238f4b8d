// SPDX-License-Identifier: Apache-2.0
// rxflow_loadgen: an HTTP load generator for POST /api/v1/prescriptions.
//
//   rxflow_loadgen --url http://127.0.0.1:8080 --key KEY --body FILE
//                  [--connections 64] [--duration 30] [--rate 0] [--warmup 2]
//   rxflow_loadgen --ceiling ...   the same load against an empty handler on the service's
//                                  own HTTP server (Boost.Beast, the API's 64 handler threads)
//
// --rate 0 is closed loop (each connection sends its next request when the last returns):
// the maximum throughput. --rate R is open loop: requests are scheduled at R per second
// and latency is measured from the scheduled time, so a stall is not hidden (no
// coordinated omission). Every request carries a unique Idempotency-Key, so each one is
// a new durable prescription. Prints one JSON object; a request that failed is counted by
// what failed ("error_kinds": the HTTP status, or the client's error such as "Connection").
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <httplib.h>

#include "http_server.h"  // the service's HTTP server (adapters/http/src), for the ceiling

namespace {

using Clock = std::chrono::steady_clock;

struct Result {
  std::vector<double> latencies_ms;
  int64_t ok = 0, errors = 0;
  std::map<std::string, int64_t> error_kinds;  // "status 503", "Connection", "Read", ...
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rxflow_loadgen: POST /api/v1/prescriptions under load"};
  std::string url = "http://127.0.0.1:8080", key, body_file;
  int connections = 64, server_threads = 64;
  double duration = 30, rate = 0, warmup = 2;
  bool ceiling = false;
  app.add_option("--url", url, "API base URL");
  app.add_option("--key", key, "X-API-Key");
  app.add_option("--body", body_file, "request body (FHIR JSON)")->required();
  app.add_option("--connections", connections, "concurrent keep-alive connections");
  app.add_option("--duration", duration, "seconds measured");
  app.add_option("--warmup", warmup, "seconds before measuring");
  app.add_option("--rate", rate, "requests per second in total (0: closed loop)");
  app.add_flag("--ceiling", ceiling, "measure an empty handler of the same HTTP stack instead");
  app.add_option("--server-threads", server_threads, "ceiling server's request threads");
  CLI11_PARSE(app, argc, argv);

  std::ifstream in(body_file);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string body = ss.str();
  if (body.empty()) {
    std::cerr << "rxflow_loadgen: cannot read " << body_file << "\n";
    return 2;
  }

  // The ceiling: an empty handler on the server the service runs (its limits' defaults).
  std::unique_ptr<rxflow::http::internal::HttpServer> empty;
  if (ceiling) {
    rxflow::http::internal::ServerLimits limits;
    limits.workers = server_threads;
    // Every connection comes from 127.0.0.1: the per-source cap would refuse more than 256.
    limits.max_connections_per_source = limits.max_connections;
    empty = std::make_unique<rxflow::http::internal::HttpServer>(
        limits,
        [](rxflow::http::internal::HttpRequest&, rxflow::http::internal::HttpResponse& res) {
          res.status = 201;
          res.set_content("{}", "application/json");
        },
        [](const rxflow::http::internal::HttpRequest&, int status, const std::string& message,
           rxflow::http::internal::HttpResponse& res) {
          res.status = status;
          res.set_content(message, "text/plain");
        });
    if (rxflow::Status s = empty->Start("127.0.0.1", 0); !s.ok()) {
      std::cerr << "rxflow_loadgen: ceiling server: " << s.message() << "\n";
      return 2;
    }
    url = "http://127.0.0.1:" + std::to_string(empty->port());
  }

  const std::string run =
      std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1000000007);
  std::atomic<bool> measuring{false}, stop{false};
  std::vector<Result> results(static_cast<size_t>(connections));
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  auto seconds = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  const auto measure_from = start + seconds(warmup);
  const auto end = measure_from + seconds(duration);
  for (int t = 0; t < connections; ++t) {
    threads.emplace_back([&, t] {
      httplib::Client client(url);
      client.set_tcp_nodelay(true);
      client.set_keep_alive(true);
      client.set_read_timeout(30, 0);
      Result& r = results[static_cast<size_t>(t)];
      const double interval = rate > 0 ? connections / rate : 0;  // seconds per request
      auto next = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(interval * t / connections));
      for (int64_t k = 0;; ++k) {
        auto scheduled = Clock::now();
        if (rate > 0) {
          std::this_thread::sleep_until(next);
          scheduled = next;
          next +=
              std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval));
        }
        if (scheduled >= end) break;
        httplib::Headers h{
            {"X-API-Key", key},
            {"Idempotency-Key", run + "-" + std::to_string(t) + "-" + std::to_string(k)}};
        auto res = client.Post("/api/v1/prescriptions", h, body, "application/fhir+json");
        auto done = Clock::now();
        if (scheduled < measure_from) continue;
        if (res && (res->status == 201 || res->status == 200)) {
          ++r.ok;
          r.latencies_ms.push_back(
              std::chrono::duration<double, std::milli>(done - scheduled).count());
        } else {
          ++r.errors;
          ++r.error_kinds[res ? "status " + std::to_string(res->status)
                              : httplib::to_string(res.error())];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  if (empty) empty->Stop();
  // Throughput over the time the measured requests actually took to complete (an open
  // loop that falls behind finishes after `end`).
  const double elapsed =
      std::max(duration, std::chrono::duration<double>(Clock::now() - measure_from).count());
  std::vector<double> all;
  int64_t ok = 0, errors = 0;
  std::map<std::string, int64_t> error_kinds;
  for (auto& r : results) {
    all.insert(all.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    ok += r.ok;
    errors += r.errors;
    for (const auto& [kind, n] : r.error_kinds) error_kinds[kind] += n;
  }
  std::string kinds;
  for (const auto& [kind, n] : error_kinds) {
    kinds += (kinds.empty() ? "\"" : ", \"") + kind + "\": " + std::to_string(n);
  }
  double p50 = Percentile(all, 0.50), p90 = Percentile(all, 0.90), p99 = Percentile(all, 0.99),
         max = all.empty() ? 0 : *std::max_element(all.begin(), all.end());
  std::printf(
      "{\"target\": \"%s\", \"mode\": \"%s\", \"connections\": %d, \"rate\": %.0f, "
      "\"seconds\": %.1f, \"ok\": %lld, \"errors\": %lld, \"tps\": %.0f, \"p50_ms\": %.2f, "
      "\"p90_ms\": %.2f, \"p99_ms\": %.2f, \"max_ms\": %.2f, \"error_kinds\": {%s}}\n",
      ceiling ? "empty-handler" : url.c_str(), rate > 0 ? "open-loop" : "closed-loop", connections,
      rate, elapsed, static_cast<long long>(ok), static_cast<long long>(errors),
      static_cast<double>(ok) / elapsed, p50, p90, p99, max, kinds.c_str());
  return errors > 0 ? 1 : 0;
}
