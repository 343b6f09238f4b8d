// SPDX-License-Identifier: Apache-2.0
// The server's reading steps without a socket (ServeBytes, adapters/http/src/http_server.h):
// what the HTTP fuzz target drives, checked on known inputs; and the fuzz target's committed
// corpus (tests/fixtures/fuzz/http/) replayed through its own body (tests/fuzz/http_target.h),
// which traps on a broken promise (in the ASan build every sanitizer check runs on it too).
#ifdef RXFLOW_TEST_HAVE_HTTP
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <httplib.h>

#include "fuzz/http_target.h"
#include "http_server.h"
#include "testing/files.h"

namespace {

using rxflow::http::internal::HttpRequest;
using rxflow::http::internal::HttpResponse;

// Echoes the method, path and body; refusals carry their status and message.
std::vector<HttpResponse> Serve(const std::string& bytes, size_t max_body = 64) {
  rxflow::http::internal::ServerLimits limits;
  limits.max_body_bytes = max_body;
  limits.max_headers = 4;
  limits.max_header_bytes = 512;
  return rxflow::http::internal::ServeBytes(
      limits,
      [](HttpRequest& q, HttpResponse& r) {
        r.body = q.method + " " + q.path + " " + q.body;
        r.set_header("X-Fields", std::to_string(q.headers.size()));
      },
      [](const HttpRequest&, int status, const std::string& message, HttpResponse& r) {
        r.status = status;
        r.body = message;
      },
      {}, bytes, "192.0.2.1");
}

}  // namespace

TEST_SUITE("HTTP reading steps") {
  TEST_CASE("pipelined requests are answered in order, Connection: close ends the connection") {
    auto out = Serve(
        "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        "GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        "GET /never HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(out.size() == 3);
    CHECK(out[0].body == "GET /a ");
    CHECK(out[1].body == "POST /b abc");
    CHECK(out[2].body == "GET /c ");
  }

  TEST_CASE("a chunked body is decoded, its trailer fields are not head fields") {
    auto out = Serve(
        "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "2\r\nab\r\n1\r\nc\r\n0\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\nX-D: 4\r\n\r\n");
    REQUIRE(out.size() == 1);
    CHECK(out[0].body == "POST /t abc");
    // Host and Transfer-Encoding: the four trailer fields are not among them (nor counted
    // against the limit of 4).
    REQUIRE(out[0].headers.size() == 1);
    CHECK(out[0].headers[0].second == "2");
  }

  TEST_CASE("refusals: a head cut short is 400, too many fields 431, a large body 413, br 415") {
    auto cut = Serve("GET /a HTTP/1.1\r\nHost: x\r\n");
    REQUIRE(cut.size() == 1);
    CHECK(cut[0].status == 400);
    auto fields = Serve("GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n");
    REQUIRE(fields.size() == 1);
    CHECK(fields[0].status == 431);
    auto large = Serve("POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n" + std::string(65, 'x'));
    REQUIRE(large.size() == 1);
    CHECK(large[0].status == 413);
    auto coding = Serve("POST / HTTP/1.1\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx");
    REQUIRE(coding.size() == 1);
    CHECK(coding[0].status == 415);
  }

  TEST_CASE("a body cut short is not answered (the connection would time out), nor is silence") {
    CHECK(Serve("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc").empty());
    CHECK(Serve("").empty());
  }
}

TEST_SUITE("Fuzz regressions") {
  TEST_CASE(
      "the HTTP fuzz corpus replays: documented statuses, OperationOutcomes, no effect "
      "without a key") {
    size_t replayed = 0;
    for (const auto& path : rxflow::testing::FixtureFiles("fuzz/http", "")) {
      CAPTURE(path.string());
      rxflow::fuzz::ServeHttp(rxflow::testing::ReadFile(path));
      ++replayed;
    }
    CHECK(replayed >= 20);
  }

  // HttpResponse::Defer without a socket (what the fuzz target drives): the answer set from
  // another thread is the one given; a deferred answer dropped unsent is a 500.
  TEST_CASE("a deferred answer is the one sent from another thread, one dropped unsent is a 500") {
    rxflow::http::internal::ServerLimits limits;
    std::vector<std::thread> senders;
    auto out = rxflow::http::internal::ServeBytes(
        limits,
        [&](HttpRequest& q, HttpResponse& r) {
          if (q.path == "/drop") {
            rxflow::http::internal::DeferredResponse dropped = r.Defer();
            return;
          }
          senders.emplace_back([&r, d = r.Defer(), path = q.path]() mutable {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            std::move(d).Send([&r, path] {
              r.status = 202;
              r.body = "later " + path;
            });
          });
        },
        [](const HttpRequest&, int status, const std::string& message, HttpResponse& r) {
          r.status = status;
          r.body = message;
        },
        {}, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /drop HTTP/1.1\r\nHost: x\r\n\r\n", "192.0.2.1");
    for (auto& t : senders) t.join();
    REQUIRE(out.size() == 2);
    CHECK(out[0].status == 202);
    CHECK(out[0].body == "later /a");
    CHECK(out[1].status == 500);
  }

  // Over a socket, with one worker thread: a request whose handler deferred its answer holds
  // no thread, so a second connection's request is answered while the first still waits; and
  // Stop waits for a deferred answer still to come before it lets the server go.
  TEST_CASE("a deferred request holds no worker, and Stop waits for its answer") {
    rxflow::http::internal::ServerLimits limits;
    limits.workers = 1;
    std::mutex mu;
    std::vector<rxflow::http::internal::DeferredResponse> waiting;
    std::atomic<int> deferred{0};
    rxflow::http::internal::HttpServer server(
        limits,
        [&](HttpRequest& q, HttpResponse& r) {
          if (q.path == "/fast") {
            r.body = "fast";
            return;
          }
          std::lock_guard lock(mu);
          waiting.push_back(r.Defer());
          deferred.fetch_add(1);
        },
        [](const HttpRequest&, int status, const std::string&, HttpResponse& r) {
          r.status = status;
        });
    REQUIRE(server.Start("127.0.0.1", 0).ok());
    std::promise<std::string> slow_answer;
    std::thread slow([&] {
      httplib::Client c("127.0.0.1", server.port());
      auto res = c.Get("/slow");
      slow_answer.set_value(res ? std::to_string(res->status) + " " + res->body : "no answer");
    });
    for (int i = 0; i < 2000 && deferred.load() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    REQUIRE(deferred.load() == 1);
    {
      httplib::Client c("127.0.0.1", server.port());
      auto fast = c.Get("/fast");  // the only worker is free: answered now
      REQUIRE(fast);
      CHECK(fast->body == "fast");
    }
    auto future = slow_answer.get_future();
    CHECK(future.wait_for(std::chrono::milliseconds(50)) == std::future_status::timeout);
    {
      std::lock_guard lock(mu);
      std::move(waiting.front()).Send([&] {});  // the handler's response as it is: 200, ""
      waiting.clear();
    }
    CHECK(future.get() == "200 ");
    slow.join();
    // A deferred answer pending when Stop is called: Stop returns only once it was sent.
    std::atomic<bool> sent{false};
    std::thread late([&] {
      httplib::Client c("127.0.0.1", server.port());
      c.set_read_timeout(std::chrono::seconds(5));
      (void)c.Get("/slow-again");
    });
    for (int i = 0; i < 2000 && deferred.load() == 1; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    REQUIRE(deferred.load() == 2);
    std::thread sender([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::lock_guard lock(mu);
      sent = true;
      std::move(waiting.front()).Send([] {});
      waiting.clear();
    });
    server.Stop();
    CHECK(sent.load());
    sender.join();
    late.join();
  }
}
#endif  // RXFLOW_TEST_HAVE_HTTP
