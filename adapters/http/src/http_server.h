// SPDX-License-Identifier: Apache-2.0
// An HTTP/1.1 server on Boost.Beast over Asio (internal to the HTTP library): non-blocking
// sockets on one I/O thread, request handlers on a pool of worker threads. It enforces what a
// thread-per-connection server cannot (issue 10, docs/security.md "Abuse limits"):
//   * a cap on open connections (beyond it a new connection is closed at once);
//   * a deadline for the whole request head (slowloris) and for the whole body;
//   * limits on the head's size and its number of fields (431);
//   * the body limit on the decoded size, while reading: Content-Length, chunked and gzip
//     bodies alike (413 before the memory is spent); other content codings are 415;
//   * header values exactly as sent (nothing is URL-decoded).
// An idle or slow connection costs a socket and a buffer, never a thread: the workers only
// ever see complete requests.
#ifndef RXFLOW_HTTP_SRC_HTTP_SERVER_H_
#define RXFLOW_HTTP_SRC_HTTP_SERVER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <absl/functional/any_invocable.h>

#include "rxflow/status.h"

namespace rxflow::http {
class ApiServer;
}  // namespace rxflow::http

namespace rxflow::http::internal {

struct HttpRequest {
  std::string method;
  std::string target;                                        // as sent
  std::string path;                                          // the target before '?', not decoded
  std::string query;                                         // after '?'
  std::vector<std::pair<std::string, std::string>> headers;  // as sent, in order
  std::string body;                                          // decoded (gzip inflated)
  std::string remote_address;
  // Behind mutual TLS: the SHA-256 (64 lowercase hex) of the DER of the client certificate
  // the handshake verified against the client CA file; "" without one (plain HTTP, TLS
  // without client certificates).
  std::string client_certificate_sha256;
  std::vector<std::string> matches;  // the route's captures (set by the caller's router)
  // Set by the HeadCheck: this request's handler never waits (what it waits for, it defers:
  // HttpResponse::Defer), so it runs on the quick workers (ServerLimits::quick_workers).
  bool quick = false;

  // The first field named `name` (ASCII case-insensitive), its value as sent; "" if absent.
  std::string_view header(std::string_view name) const;
  bool has_header(std::string_view name) const;
  // A query parameter, percent-decoded ('+' is a space); "" if absent.
  std::string param(std::string_view name) const;
};

// A response its handler finishes later, from any thread (HttpResponse::Defer): the handler
// returns without an answer, and its request and response stay alive until Send. Send posts
// `fill` to the connection's own thread, which runs it (to set the response's status,
// headers and body) and writes the response. Sent at most once; destroyed unsent, it
// answers 500, so a handler that loses it never leaves its client waiting.
class DeferredResponse {
 public:
  // What the server does with the answer: `fill` to run (empty: abandoned, a 500).
  using Sender = absl::AnyInvocable<void(absl::AnyInvocable<void()> fill)>;
  DeferredResponse() = default;
  explicit DeferredResponse(Sender sender) : sender_(std::move(sender)) {}
  DeferredResponse(DeferredResponse&& other) noexcept = default;
  DeferredResponse& operator=(DeferredResponse&&) = delete;
  ~DeferredResponse() {
    if (sender_) std::move(*this).Send({});
  }
  void Send(absl::AnyInvocable<void()> fill) && {
    Sender sender = std::move(sender_);
    sender_ = nullptr;
    if (sender) sender(std::move(fill));
  }

 private:
  Sender sender_;
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  void set_header(std::string name, std::string value);
  void set_content(std::string content, std::string content_type);
  // For a handler that answers later without holding its thread (it waits for a store's
  // commit): the server writes nothing when the handler returns, and the answer goes out
  // when the returned DeferredResponse is sent. Only during the handler's call; once; and
  // a handler that deferred must not throw afterwards.
  DeferredResponse Defer() { return defer_ ? defer_() : DeferredResponse(); }
  std::function<DeferredResponse()> defer_;  // set by the server around the handler's call
};

// Where a client connects from, for limits and throttling: an IPv4 address (an IPv4-mapped
// IPv6 address counts as its IPv4 address), or an IPv6 /64 (one host's share of a network: a
// client changing addresses inside it is still one source).
std::string SourceOf(const std::string& address);

struct ServerLimits {
  size_t max_connections = 1024;
  size_t max_connections_per_source = 256;  // one source cannot hold every connection
  size_t max_body_bytes = size_t{1} << 20;
  size_t max_header_bytes = size_t{16} * 1024;  // request line and fields together
  size_t max_headers = 100;
  // The whole head of a request must arrive within this (on a kept-alive connection the
  // clock starts when the previous response was written: it is also the idle timeout).
  std::chrono::milliseconds head_timeout{10000};
  std::chrono::milliseconds body_timeout{30000};  // the whole body, after the head
  std::chrono::milliseconds write_timeout{30000};
  int workers = 32;  // request handler threads
  // Threads for the requests the HeadCheck marks quick (HttpRequest::quick); 0: those run on
  // the workers too. Kept apart so that they neither queue behind handlers that wait nor
  // wake one of many idle workers each (threads sleeping on one queue contend for its lock).
  int quick_workers = 0;
};

// TLS for a server (OpenSSL through Asio): TLS 1.2 and 1.3, forward-secret AEAD suites only.
struct TlsOptions {
  std::string certificate_file;  // PEM chain, leaf first; empty: plain HTTP
  std::string key_file;          // PEM private key
  // PEM CA certificates: clients must present a certificate that chains to one (mutual
  // TLS); empty: no client certificate asked for.
  std::string client_ca_file;
};

class HttpServer {
 public:
  // Runs on a worker thread for every complete request.
  using Handler = std::function<void(HttpRequest&, HttpResponse&)>;
  // Formats what the server answers by itself (400, 413, 415, 431) before a handler ran;
  // `request` has what was read of the head (method, target, headers: may be empty).
  using Refusal = std::function<void(const HttpRequest& request, int status,
                                     const std::string& message, HttpResponse&)>;

  // Runs on the I/O thread once a request's head is read, before any body is read (and before
  // "100 Continue"): false refuses the request with `response` (the connection then closes).
  // It must be quick: it holds up every connection. `request` has no body yet.
  using HeadCheck = std::function<bool(HttpRequest& request, HttpResponse& response)>;

  HttpServer(ServerLimits limits, Handler handler, Refusal refusal, HeadCheck head_check = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (port 0: any free port) and starts serving, over TLS when `tls` names a
  // certificate. Unavailable when the address cannot be bound; InvalidArgument naming the
  // file for a certificate or key that cannot be used.
  Status Start(const std::string& host, int port, const TlsOptions& tls = {});
  // Rereads the certificate and key (SIGHUP): connections accepted from now on use them;
  // on an error the old ones stay.
  Status ReloadTls();
  // Stops accepting, closes every connection, waits for running handlers and for every
  // deferred response to be sent (unwritten: the connections are closed). Idempotent.
  void Stop();
  int port() const;

  int64_t open_connections() const;
  // Closed at once: over max_connections, or over max_connections_per_source.
  int64_t refused_connections() const;

  struct Impl;  // (shared with the connections, which may outlive a Stop by a moment)

 private:
  std::shared_ptr<Impl> impl_;
};

// One connection's bytes through the server's own reading steps, synchronously and without a
// socket: the head and body limits and their refusals, the head check, gzip decoding and the
// handler, for each request the connection carries (pipelined and kept alive) until one
// closes it or the bytes run out. The bytes running out is the client closing its side: a
// head cut short is then malformed (400, as Beast reports a partial message), a body cut
// short is left unanswered. The responses, in order. For the fuzz target
// (tests/fuzz/fuzz_http.cc) and tests: the same steps a Session takes, in the same functions.
// Not modelled: time (the head, body and write deadlines), the interim "100 Continue", TLS,
// and the 64 KiB read-ahead buffer (a chunk-size line or trailer longer than that ends a real
// connection; here the parser reads on).
std::vector<HttpResponse> ServeBytes(const ServerLimits& limits, const HttpServer::Handler& handler,
                                     const HttpServer::Refusal& refusal,
                                     const HttpServer::HeadCheck& head_check,
                                     std::string_view bytes, const std::string& remote_address);

// The ApiServer's steps without a socket (ApiServer befriends this): Prepare what Start
// prepares (the keys of the options), then Serve a connection's bytes through ServeBytes with
// the API's limits, head check, dispatch and refusals.
struct ApiServerAccess {
  static Status Prepare(ApiServer& server);
  static std::vector<HttpResponse> Serve(ApiServer& server, std::string_view bytes,
                                         const std::string& remote_address);
};

}  // namespace rxflow::http::internal

#endif  // RXFLOW_HTTP_SRC_HTTP_SERVER_H_
