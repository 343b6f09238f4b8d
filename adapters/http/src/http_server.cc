// SPDX-License-Identifier: Apache-2.0
// The Beast/Asio HTTP server (http_server.h). One strand per connection on the I/O thread:
// read the head (deadline, size and field limits), check it, read the body (deadline, decoded
// size limit), hand the request to a worker, write the answer, and go round again while the
// connection is kept alive. Refusals end the connection with a lingering close: the rest of
// what the client sends is read and discarded (for a bounded time) so that it gets the answer
// instead of a reset.
#include "http_server.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>

#include <absl/strings/match.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "rxflow/internal/crypto.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

#include <arpa/inet.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <sys/resource.h>
#include <zlib.h>

namespace rxflow::http::internal {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using rxflow::internal::Cat;

constexpr auto kLinger = std::chrono::seconds(2);       // reading what follows a refusal
constexpr size_t kReadAhead = size_t{64} * 1024;        // see Session::buffer_
constexpr size_t kReadChunk = size_t{16} * 1024;        // see Session::buffer_
constexpr long kClientCertificateSessionSeconds = 300;  // see MakeTlsContext

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 &&
               HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Inflates a gzip body into `out`, refusing (false, `too_large`) past `limit` decoded bytes.
bool Gunzip(std::string_view in, size_t limit, std::string& out, bool& too_large) {
  too_large = false;
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return false;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  char chunk[16384];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof(chunk);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    size_t n = sizeof(chunk) - zs.avail_out;
    if (out.size() + n > limit) {
      too_large = true;
      break;
    }
    out.append(chunk, n);
    if (rc == Z_OK && n == 0 && zs.avail_in == 0) break;  // truncated input
  }
  inflateEnd(&zs);
  return rc == Z_STREAM_END && !too_large;
}

using Parser = bhttp::request_parser<bhttp::string_body>;

// A parser for the next request of a connection, with the server's head and body limits.
void NewParser(std::optional<Parser>& parser, const ServerLimits& limits) {
  parser.emplace();
  parser->header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  parser->body_limit(limits.max_body_bytes);
}

// What was read of the head, for refusals and handlers: only the head's first `head_fields`
// fields (Beast adds a chunked body's trailer fields to the same list, and those were never
// checked nor counted with the head).
void FillHead(const Parser& parser, size_t head_fields, const std::string& remote, HttpRequest& r) {
  const auto& m = parser.get();
  r.method = std::string(m.method_string());
  r.target = std::string(m.target());
  size_t q = r.target.find('?');
  r.path = r.target.substr(0, q);
  if (q != std::string::npos) r.query = r.target.substr(q + 1);
  size_t n = 0;
  for (const auto& f : m) {
    if (n++ == head_fields) break;
    r.headers.emplace_back(f.name_string(), f.value());
  }
  r.remote_address = remote;
}

// What reading a head ended in: go on, refuse with `status` (and close), or close silently.
struct HeadOutcome {
  enum Kind { kProceed, kRefuse, kClose } kind = kProceed;
  int status = 0;
  std::string message;
};

HeadOutcome BodyTooLarge(const ServerLimits& limits) {
  return {HeadOutcome::kRefuse, 413,
          Cat("request body too large (limit ", limits.max_body_bytes, " bytes)")};
}

// The head as read (`ec`), checked against the limits: its number of fields and its
// Content-Encoding (`gzip` set for a gzip body). Sets `head_fields`.
HeadOutcome CheckHeadLimits(beast::error_code ec, const Parser& parser, const ServerLimits& limits,
                            size_t& head_fields, bool& gzip) {
  if (ec == bhttp::error::header_limit) {
    return {HeadOutcome::kRefuse, 431, "request header fields too large"};
  }
  if (ec == bhttp::error::body_limit) return BodyTooLarge(limits);
  if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
      ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
      ec == asio::error::eof) {
    return {HeadOutcome::kClose, 0, {}};
  }
  if (ec) return {HeadOutcome::kRefuse, 400, Cat("malformed request: ", ec.message())};
  const auto& m = parser.get();
  auto fields = static_cast<size_t>(std::distance(m.begin(), m.end()));
  head_fields = fields;
  if (fields > limits.max_headers) {
    return {HeadOutcome::kRefuse, 431,
            Cat("too many header fields (", fields, "; limit ", limits.max_headers, ")")};
  }
  std::string_view coding = Trim(std::string_view(m[bhttp::field::content_encoding]));
  gzip = IEquals(coding, "gzip") || IEquals(coding, "x-gzip");
  if (!coding.empty() && !gzip && !IEquals(coding, "identity")) {
    return {HeadOutcome::kRefuse, 415, "Content-Encoding must be identity or gzip"};
  }
  return {};
}

// A complete request on a worker: the body inflated (gzip, within the limit) and the handler
// run; a body that cannot be inflated is refused and the connection is not kept alive.
void HandleComplete(const ServerLimits& limits, const HttpServer::Handler& handler,
                    const HttpServer::Refusal& refusal, HttpRequest& request, bool gzip,
                    HttpResponse& response, bool& keep_alive) {
  const size_t limit = limits.max_body_bytes;
  std::string inflated;
  bool too_large = false;
  if (gzip && !Gunzip(request.body, limit, inflated, too_large)) {
    refusal(request, too_large ? 413 : 400,
            too_large ? Cat("request body too large once decompressed (limit ", limit, " bytes)")
                      : std::string("the gzip body is malformed"),
            response);
    keep_alive = false;
    return;
  }
  if (gzip) request.body = std::move(inflated);
  try {
    handler(request, response);
  } catch (const std::exception&) {
    response = HttpResponse{};
    refusal(request, 500, "internal error", response);
  }
}

}  // namespace

std::string SourceOf(const std::string& address) {
  in6_addr a6{};
  if (!absl::StrContains(address, ':') || inet_pton(AF_INET6, address.c_str(), &a6) != 1) {
    return address;
  }
  if (IN6_IS_ADDR_V4MAPPED(&a6)) {  // an IPv4 client of a dual-stack listener
    char v4[INET_ADDRSTRLEN];
    return inet_ntop(AF_INET, a6.s6_addr + 12, v4, sizeof(v4));
  }
  char out[INET6_ADDRSTRLEN];
  std::memset(a6.s6_addr + 8, 0, 8);
  return Cat(inet_ntop(AF_INET6, &a6, out, sizeof(out)), "/64");
}

std::string_view HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (IEquals(k, name)) return v;
  }
  return {};
}

bool HttpRequest::has_header(std::string_view name) const {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return IEquals(h.first, name); });
}

std::string HttpRequest::param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    size_t eq = pair.find('=');
    if (PercentDecode(pair.substr(0, eq)) == name) {
      return eq == std::string_view::npos ? std::string() : PercentDecode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return {};
}

void HttpResponse::set_header(std::string name, std::string value) {
  for (auto& [k, v] : headers) {
    if (IEquals(k, name)) {
      v = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

void HttpResponse::set_content(std::string content, std::string content_type) {
  body = std::move(content);
  set_header("Content-Type", std::move(content_type));
}

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  ServerLimits limits;
  Handler handler;
  Refusal refusal;
  HeadCheck head_check;
  std::atomic<int64_t> open{0};
  std::atomic<int64_t> refused{0};
  int bound_port = 0;
  std::unique_ptr<asio::io_context> ioc;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<asio::thread_pool> pool;
  std::unique_ptr<asio::thread_pool> quick_pool;  // null without quick workers
  std::thread io_thread;
  std::mutex sources_mu;
  std::map<std::string, size_t> sources;  // open connections per SourceOf
  TlsOptions tls;
  std::mutex tls_mu;
  std::shared_ptr<asio::ssl::context> tls_context;  // null: plain HTTP
  // Deferred responses not sent yet (HttpResponse::Defer); Stop waits for them.
  std::mutex deferred_mu;
  std::condition_variable deferred_cv;
  int64_t deferred = 0;

  void Accept();
  std::shared_ptr<asio::ssl::context> TlsContext() {
    std::lock_guard lock(tls_mu);
    return tls_context;
  }
};

namespace {

// The fingerprint of the client certificate `ssl`'s handshake verified (also on a resumed
// session, which keeps the peer certificate and the verification result), or "".
std::string VerifiedPeerFingerprint(SSL* ssl) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return {};
  unsigned char* der = nullptr;
  const int length = i2d_X509(peer, &der);
  if (length <= 0) return {};
  std::string fingerprint = rxflow::internal::Sha256Hex(
      std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(length)));
  OPENSSL_free(der);
  return fingerprint;
}

// One connection: `Stream` is a beast::tcp_stream (plain HTTP) or a TLS stream over one.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  // `remote` is the peer's address; its source already counts this connection.
  Session(Stream stream, std::shared_ptr<HttpServer::Impl> server, std::string remote,
          std::string source)
      : stream_(std::move(stream)),
        server_(std::move(server)),
        remote_(std::move(remote)),
        source_(std::move(source)) {
    buffer_.reserve(kReadChunk);
    server_->open.fetch_add(1);
  }
  ~Session() {
    server_->open.fetch_sub(1);
    std::lock_guard lock(server_->sources_mu);
    if (auto it = server_->sources.find(source_);
        it != server_->sources.end() && --it->second == 0) {
      server_->sources.erase(it);
    }
  }

  void Start() {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        // The handshake is part of the head: the same deadline.
        self->tcp_stream().expires_after(self->limits().head_timeout);
        self->stream_.async_handshake(asio::ssl::stream_base::server, [self](beast::error_code ec) {
          if (ec) return self->Close();
          self->client_certificate_ = VerifiedPeerFingerprint(self->stream_.native_handle());
          self->ReadHead();
        });
      } else {
        self->ReadHead();
      }
    });
  }

 private:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;

  beast::tcp_stream& tcp_stream() { return beast::get_lowest_layer(stream_); }
  const ServerLimits& limits() const { return server_->limits; }

  // What was read of the current request's head, with who sent it.
  void Fill(HttpRequest& r) const {
    FillHead(*parser_, head_fields_, remote_, r);
    r.client_certificate_sha256 = client_certificate_;
  }

  void ReadHead() {
    head_fields_ = SIZE_MAX;
    NewParser(parser_, limits());
    tcp_stream().expires_after(limits().head_timeout);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHead(ec); });
  }

  void OnHead(beast::error_code ec) {
    HeadOutcome outcome = CheckHeadLimits(ec, *parser_, limits(), head_fields_, gzip_);
    if (outcome.kind == HeadOutcome::kClose) return Close();
    if (outcome.kind == HeadOutcome::kRefuse) return Refuse(outcome.status, outcome.message);
    const auto& m = parser_->get();
    if (server_->head_check) {
      HttpRequest head;
      Fill(head);
      HttpResponse refused;
      if (!server_->head_check(head, refused)) {
        parser_.reset();
        return Write(std::move(refused), /*keep_alive=*/false);
      }
      quick_ = head.quick;
    }
    if (parser_->is_done()) return OnBody({});
    tcp_stream().expires_after(limits().body_timeout);
    if (IEquals(Trim(std::string_view(m[bhttp::field::expect])), "100-continue")) {
      continue_.emplace(bhttp::status::continue_, m.version());
      bhttp::async_write(stream_, *continue_,
                         [self = shared_from_this()](beast::error_code ec, size_t) {
                           if (ec) return self->Close();
                           self->ReadBody();
                         });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) {
      const HeadOutcome too_large = BodyTooLarge(limits());
      return Refuse(too_large.status, too_large.message);
    }
    if (ec) return Close();  // timeout, reset, or a malformed chunk: nothing to answer
    auto request = std::make_shared<HttpRequest>();
    Fill(*request);
    keep_alive_ = parser_->get().keep_alive();
    request->body = std::move(parser_->get().body());
    parser_.reset();
    tcp_stream().expires_never();  // the handler's time is not the client's
    // Inflating is CPU work: on the worker, not on the thread every connection shares.
    request->quick = std::exchange(quick_, false);
    asio::thread_pool& workers =
        request->quick && server_->quick_pool ? *server_->quick_pool : *server_->pool;
    asio::post(workers, [self = shared_from_this(), request, gzip = gzip_] {
      auto response = std::make_shared<HttpResponse>();
      bool keep_alive = self->keep_alive_;
      bool deferred = false;
      response->defer_ = [&]() {
        deferred = true;
        return self->Deferred(request, response, keep_alive);
      };
      HandleComplete(self->limits(), self->server_->handler, self->server_->refusal, *request, gzip,
                     *response, keep_alive);
      // Deferred: the response is the DeferredResponse's now (its sender may be writing it on
      // the connection's thread already), not to be touched here.
      if (deferred) return;
      response->defer_ = nullptr;
      asio::post(self->stream_.get_executor(),
                 [self, response, keep_alive] { self->Write(std::move(*response), keep_alive); });
    });
  }

  // What a handler's HttpResponse::Defer returns: keeps the request and response, and posts
  // the answer to this connection's strand; counted until sent, for Stop.
  DeferredResponse Deferred(std::shared_ptr<HttpRequest> request,
                            std::shared_ptr<HttpResponse> response, bool keep_alive) {
    {
      std::lock_guard lock(server_->deferred_mu);
      ++server_->deferred;
    }
    return DeferredResponse([self = shared_from_this(), request = std::move(request),
                             response = std::move(response),
                             keep_alive](absl::AnyInvocable<void()> fill) mutable {
      // Stop may destroy the context as soon as the count below reaches 0: nothing of the
      // context (the strand executor holds its state) may be left on this thread by then.
      const std::shared_ptr<HttpServer::Impl> server = self->server_;
      {
        auto executor = self->stream_.get_executor();
        asio::post(executor,
                   [self = std::move(self), request = std::move(request),
                    response = std::move(response), keep_alive, fill = std::move(fill)]() mutable {
                     if (!fill) {  // abandoned by its handler
                       HttpResponse failed;
                       self->server_->refusal(*request, 500, "internal error", failed);
                       return self->Write(std::move(failed), keep_alive);
                     }
                     fill();
                     self->Write(std::move(*response), keep_alive);
                   });
      }
      std::lock_guard lock(server->deferred_mu);
      if (--server->deferred == 0) server->deferred_cv.notify_all();
    });
  }

  void Write(HttpResponse r, bool keep_alive) {
    res_.emplace();
    res_->version(11);
    res_->result(static_cast<unsigned>(r.status));
    for (auto& [k, v] : r.headers) res_->set(k, v);
    res_->body() = std::move(r.body);
    res_->keep_alive(keep_alive);
    res_->prepare_payload();
    tcp_stream().expires_after(limits().write_timeout);
    bhttp::async_write(stream_, *res_,
                       [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                         self->res_.reset();
                         if (ec) return self->Close();
                         if (!keep_alive) return self->Linger();
                         self->ReadHead();
                       });
  }

  void Refuse(int status, const std::string& message) {
    HttpRequest partial;
    if (parser_) Fill(partial);
    partial.remote_address = remote_;
    HttpResponse r;
    r.status = status;
    server_->refusal(partial, status, message, r);
    parser_.reset();
    Write(std::move(r), /*keep_alive=*/false);
  }

  // After the last answer: no more writes, read and drop what the client still sends (so a
  // refused upload sees the answer, not a reset), for at most kLinger.
  void Linger() {
    beast::error_code ec;
    tcp_stream().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    tcp_stream().expires_after(kLinger);
    Drain();
  }

  void Drain() {
    stream_.async_read_some(asio::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->Close();
                              self->Drain();
                            });
  }

  void Close() {
    beast::error_code ec;
    tcp_stream().socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp_stream().close();
  }

  Stream stream_;
  std::shared_ptr<HttpServer::Impl> server_;
  std::string remote_;
  std::string source_;
  std::string client_certificate_;  // HttpRequest::client_certificate_sha256
  // Bounded: what is read ahead of the parser (a head, a chunk header or extension, a
  // trailer) never grows past kReadAhead; a longer line ends the connection. Each socket read
  // asks for the buffer's free capacity, at least 512 bytes: the body parser consumes what is
  // read, so a buffer left to grow by itself stays at 512 and a 6.5 KB body takes 13 reads
  // (each a recvmsg, an epoll_wait and a timer re-arm). Reserved at kReadChunk, one read
  // takes what has arrived, up to 16 KB (docs/performance.md "The server's socket reads").
  beast::flat_buffer buffer_{kReadAhead};
  std::optional<Parser> parser_;
  std::optional<bhttp::response<bhttp::empty_body>> continue_;
  std::optional<bhttp::response<bhttp::string_body>> res_;
  bool gzip_ = false;
  bool keep_alive_ = false;
  bool quick_ = false;             // the head check marked the request being read quick
  size_t head_fields_ = SIZE_MAX;  // fields of the current request's head
  std::array<char, 16384> drain_{};
};

}  // namespace

std::vector<HttpResponse> ServeBytes(const ServerLimits& limits, const HttpServer::Handler& handler,
                                     const HttpServer::Refusal& refusal,
                                     const HttpServer::HeadCheck& head_check,
                                     std::string_view bytes, const std::string& remote_address) {
  std::vector<HttpResponse> out;
  std::optional<Parser> parser;
  size_t head_fields = SIZE_MAX;
  auto refuse = [&](const HeadOutcome& outcome) {
    HttpRequest partial;
    FillHead(*parser, head_fields, remote_address, partial);
    HttpResponse r;
    r.status = outcome.status;
    refusal(partial, outcome.status, outcome.message, r);
    out.push_back(std::move(r));
  };
  asio::const_buffer in(bytes.data(), bytes.size());
  while (in.size() > 0) {
    NewParser(parser, limits);
    head_fields = SIZE_MAX;
    bool gzip = false;
    beast::error_code ec;
    // The head: what async_read_header does, with all that is left as what arrived.
    in += parser->put(in, ec);
    if (ec == bhttp::error::need_more) {
      ec = {};
      parser->put_eof(ec);  // the client sent no more: a partial head is malformed
    }
    HeadOutcome outcome = CheckHeadLimits(ec, *parser, limits, head_fields, gzip);
    if (outcome.kind == HeadOutcome::kClose) return out;
    if (outcome.kind == HeadOutcome::kRefuse) {
      refuse(outcome);
      return out;
    }
    if (head_check) {
      HttpRequest head;
      FillHead(*parser, head_fields, remote_address, head);
      HttpResponse refused;
      if (!head_check(head, refused)) {
        out.push_back(std::move(refused));
        return out;
      }
    }
    // The body: what async_read does (a body cut short ends the connection unanswered).
    parser->eager(true);
    while (!parser->is_done()) {
      size_t n = parser->put(in, ec);
      in += n;
      if (ec == bhttp::error::body_limit) {
        refuse(BodyTooLarge(limits));
        return out;
      }
      if (ec == bhttp::error::need_more && n > 0) continue;
      if (ec || n == 0) return out;
    }
    HttpRequest request;
    FillHead(*parser, head_fields, remote_address, request);
    bool keep_alive = parser->get().keep_alive();
    request.body = std::move(parser->get().body());
    HttpResponse response;
    // A deferred answer is waited for here (it may come from another thread).
    bool deferred = false;
    std::promise<void> answered;
    response.defer_ = [&] {
      deferred = true;
      return DeferredResponse([&](absl::AnyInvocable<void()> fill) {
        if (fill) {
          fill();
        } else {
          response = HttpResponse{};
          refusal(request, 500, "internal error", response);
        }
        answered.set_value();
      });
    };
    HandleComplete(limits, handler, refusal, request, gzip, response, keep_alive);
    if (deferred) answered.get_future().wait();
    response.defer_ = nullptr;
    out.push_back(std::move(response));
    if (!keep_alive) return out;
  }
  return out;
}

void HttpServer::Impl::Accept() {
  acceptor->async_accept(
      asio::make_strand(*ioc), [self = shared_from_this()](beast::error_code ec, tcp::socket s) {
        if (ec == asio::error::operation_aborted) return;  // stopping
        if (ec) {
          // Out of descriptors (or another transient error): the connection stays in the
          // backlog; wait a moment instead of spinning on it.
          auto timer = std::make_shared<asio::steady_timer>(*self->ioc);
          timer->expires_after(std::chrono::milliseconds(50));
          timer->async_wait([self, timer](beast::error_code) { self->Accept(); });
          return;
        }
        {
          beast::error_code peer_ec;
          auto peer = s.remote_endpoint(peer_ec);
          std::string remote = peer_ec ? std::string() : peer.address().to_string();
          std::string source = SourceOf(remote);
          bool admitted = static_cast<size_t>(self->open.load()) < self->limits.max_connections;
          if (admitted) {
            std::lock_guard lock(self->sources_mu);
            size_t& n = self->sources[source];
            admitted = n < self->limits.max_connections_per_source;
            if (admitted) {
              ++n;
            } else if (n == 0) {
              self->sources.erase(source);
            }
          }
          if (!admitted) {
            self->refused.fetch_add(1);
            beast::error_code ignored;
            s.close(ignored);
          } else {
            s.set_option(tcp::no_delay(true), ec);
            if (auto context = self->TlsContext()) {
              using TlsStream = beast::ssl_stream<beast::tcp_stream>;
              // (OpenSSL keeps the context alive for the connection's own SSL object: a
              // reload affects new connections only.)
              auto session = std::make_shared<Session<TlsStream>>(
                  TlsStream(beast::tcp_stream(std::move(s)), *context), self, std::move(remote),
                  std::move(source));
              session->Start();
            } else {
              std::make_shared<Session<beast::tcp_stream>>(beast::tcp_stream(std::move(s)), self,
                                                           std::move(remote), std::move(source))
                  ->Start();
            }
          }
        }
        self->Accept();
      });
}

HttpServer::HttpServer(ServerLimits limits, Handler handler, Refusal refusal, HeadCheck head_check)
    : impl_(std::make_shared<Impl>()) {
  impl_->limits = limits;
  impl_->handler = std::move(handler);
  impl_->refusal = std::move(refusal);
  impl_->head_check = std::move(head_check);
}

HttpServer::~HttpServer() { Stop(); }

static StatusOr<std::shared_ptr<asio::ssl::context>> MakeTlsContext(const TlsOptions& tls) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  // TLS 1.2 and 1.3 only; for 1.2, forward-secret AEAD suites (Mozilla "intermediate").
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Needed for session resumption once client certificates are verified (OpenSSL refuses
  // to resume without one: "session id context uninitialized").
  static constexpr unsigned char kSessionContext[] = "rxflow-api";
  SSL_CTX_set_session_id_context(native, kSessionContext, sizeof(kSessionContext) - 1);
  if (SSL_CTX_set_cipher_list(native,
                              "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                              "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                              "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305") != 1) {
    return absl::InternalError("TLS: the cipher list was refused");
  }
  beast::error_code ec;
  ctx->use_certificate_chain_file(tls.certificate_file, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        Cat("TLS certificate ", tls.certificate_file, ": ", ec.message()));
  }
  ctx->use_private_key_file(tls.key_file, asio::ssl::context::pem, ec);
  if (ec || SSL_CTX_check_private_key(native) != 1) {
    return absl::InvalidArgumentError(
        Cat("TLS key ", tls.key_file, ": ", ec ? ec.message() : "does not match the certificate"));
  }
  if (!tls.client_ca_file.empty()) {
    ctx->load_verify_file(tls.client_ca_file, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          Cat("TLS client CA ", tls.client_ca_file, ": ", ec.message()));
    }
    ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    // A resumed session keeps the certificate verified at its full handshake: resumption may
    // defer a certificate's expiry for at most this long (OpenSSL's default is 2 hours).
    SSL_CTX_set_timeout(native, kClientCertificateSessionSeconds);
  }
  return ctx;
}

Status HttpServer::ReloadTls() {
  Impl& im = *impl_;
  if (im.tls.certificate_file.empty()) return absl::OkStatus();
  RXFLOW_ASSIGN_OR_RETURN(auto context, MakeTlsContext(im.tls));
  std::lock_guard lock(im.tls_mu);
  im.tls_context = std::move(context);
  return absl::OkStatus();
}

Status HttpServer::Start(const std::string& host, int port, const TlsOptions& tls) {
  Impl& im = *impl_;
  im.tls = tls;
  if (!tls.certificate_file.empty()) RXFLOW_RETURN_IF_ERROR(ReloadTls());
  im.ioc = std::make_unique<asio::io_context>(1);
  beast::error_code ec;
  auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return absl::InvalidArgumentError(Cat("cannot listen on ", host, ": not an address"));
  tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  im.acceptor = std::make_unique<tcp::acceptor>(*im.ioc);
  im.acceptor->open(endpoint.protocol(), ec);
  if (!ec) im.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) im.acceptor->bind(endpoint, ec);
  if (!ec) im.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    im.acceptor.reset();
    im.ioc.reset();
    return absl::UnavailableError(
        Cat("cannot listen on ", host, ":", port, " (", ec.message(), ")"));
  }
  im.bound_port = im.acceptor->local_endpoint().port();
  // Connections must not take the descriptors the store, the broker and pharmacy calls need:
  // raise the soft limit to the hard one, and keep 256 (or half of a small limit) in reserve.
  rlimit fds{};
  if (::getrlimit(RLIMIT_NOFILE, &fds) == 0) {
    if (fds.rlim_cur < fds.rlim_max) {
      fds.rlim_cur = fds.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &fds);
      ::getrlimit(RLIMIT_NOFILE, &fds);
    }
    if (fds.rlim_cur != RLIM_INFINITY) {
      const auto fd_limit = static_cast<size_t>(fds.rlim_cur);
      const size_t reserve = std::min<size_t>(256, fd_limit / 2);
      im.limits.max_connections =
          std::max<size_t>(1, std::min(im.limits.max_connections, fd_limit - reserve));
    }
  }
  im.pool = std::make_unique<asio::thread_pool>(std::max(1, im.limits.workers));
  if (im.limits.quick_workers > 0) {
    im.quick_pool = std::make_unique<asio::thread_pool>(im.limits.quick_workers);
  }
  im.Accept();
  im.io_thread = std::thread([ioc = im.ioc.get()] { ioc->run(); });
  return absl::OkStatus();
}

void HttpServer::Stop() {
  Impl& im = *impl_;
  if (!im.io_thread.joinable()) return;
  asio::post(*im.ioc, [&im] {
    beast::error_code ec;
    im.acceptor->close(ec);
  });
  im.ioc->stop();
  im.io_thread.join();
  im.pool->stop();
  im.pool->join();
  if (im.quick_pool) {
    im.quick_pool->stop();
    im.quick_pool->join();
  }
  {
    // A deferred response posts to the context: it must still exist when it is sent.
    std::unique_lock lock(im.deferred_mu);
    im.deferred_cv.wait(lock, [&] { return im.deferred == 0; });
  }
  // Destroying the pool and then the context destroys the pending work, and with it the
  // sessions (their sockets close while their context still exists).
  im.pool.reset();
  im.quick_pool.reset();
  im.acceptor.reset();
  im.ioc.reset();
}

int HttpServer::port() const { return impl_->bound_port; }
int64_t HttpServer::open_connections() const { return impl_->open.load(); }
int64_t HttpServer::refused_connections() const { return impl_->refused.load(); }

}  // namespace rxflow::http::internal
