// SPDX-License-Identifier: Apache-2.0
// The server's reading steps without a socket (ServeBytes, adapters/http/src/http_server.h):
// what the HTTP fuzz target drives, checked on known inputs; and the fuzz target's committed
// corpus (tests/fixtures/fuzz/http/) replayed through its own body (tests/fuzz/http_target.h),
// which traps on a broken promise (in the ASan build every sanitizer check runs on it too).
#ifdef RXFLOW_TEST_HAVE_HTTP
#include <string>
#include <vector>

#include <doctest/doctest.h>

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
}
#endif  // RXFLOW_TEST_HAVE_HTTP
