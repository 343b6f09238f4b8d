// The Beast/Asio HTTP server (http_server.h). One strand per connection on the I/O thread:
// read the head (deadline, size and field limits), check it, read the body (deadline, decoded
// size limit), hand the request to a worker, write the answer, and go round again while the
// connection is kept alive. Refusals end the connection with a lingering close: the rest of
// what the client sends is read and discarded (for a bounded time) so that it gets the answer
// instead of a reset.
#include "http_server.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <thread>

#include <zlib.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "rxflow/internal/strcat.h"

namespace rxflow::http::internal {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using rxflow::internal::Cat;

constexpr auto kLinger = std::chrono::seconds(2);  // reading what follows a refusal

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

}  // namespace

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
  std::atomic<int64_t> open{0};
  std::atomic<int64_t> refused{0};
  int bound_port = 0;
  std::unique_ptr<asio::io_context> ioc;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<asio::thread_pool> pool;
  std::thread io_thread;

  void Accept();
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpServer::Impl> server)
      : stream_(std::move(socket)), server_(std::move(server)) {
    server_->open.fetch_add(1);
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = ep.address().to_string();
  }
  ~Session() { server_->open.fetch_sub(1); }

  void Start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadHead(); });
  }

 private:
  const ServerLimits& limits() const { return server_->limits; }

  void ReadHead() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(limits().max_header_bytes));
    parser_->body_limit(limits().max_body_bytes);
    stream_.expires_after(limits().head_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = shared_from_this()](beast::error_code ec, size_t) {
                               self->OnHead(ec);
                             });
  }

  // What was read of the head, for refusals and handlers.
  void FillHead(HttpRequest& r) const {
    const auto& m = parser_->get();
    r.method = std::string(m.method_string());
    r.target = std::string(m.target());
    size_t q = r.target.find('?');
    r.path = r.target.substr(0, q);
    if (q != std::string::npos) r.query = r.target.substr(q + 1);
    for (const auto& f : m) r.headers.emplace_back(f.name_string(), f.value());
    r.remote_address = remote_;
  }

  void OnHead(beast::error_code ec) {
    if (ec == bhttp::error::header_limit) return Refuse(431, "request header fields too large");
    if (ec == bhttp::error::body_limit) {
      return Refuse(413, Cat("request body too large (limit ", limits().max_body_bytes,
                             " bytes)"));
    }
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::eof) {
      return Close();
    }
    if (ec) return Refuse(400, Cat("malformed request: ", ec.message()));
    const auto& m = parser_->get();
    size_t fields = static_cast<size_t>(std::distance(m.begin(), m.end()));
    if (fields > limits().max_headers) {
      return Refuse(431, Cat("too many header fields (", fields, "; limit ",
                             limits().max_headers, ")"));
    }
    std::string_view coding = Trim(std::string_view(m[bhttp::field::content_encoding]));
    gzip_ = IEquals(coding, "gzip") || IEquals(coding, "x-gzip");
    if (!coding.empty() && !gzip_ && !IEquals(coding, "identity")) {
      return Refuse(415, "Content-Encoding must be identity or gzip");
    }
    if (parser_->is_done()) return OnBody({});
    stream_.expires_after(limits().body_timeout);
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
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        self->OnBody(ec);
                      });
  }

  void OnBody(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) {
      return Refuse(413, Cat("request body too large (limit ", limits().max_body_bytes,
                             " bytes)"));
    }
    if (ec) return Close();  // timeout, reset, or a malformed chunk: nothing to answer
    auto request = std::make_shared<HttpRequest>();
    FillHead(*request);
    keep_alive_ = parser_->get().keep_alive();
    if (gzip_) {
      bool too_large = false;
      if (!Gunzip(parser_->get().body(), limits().max_body_bytes, request->body, too_large)) {
        return too_large ? Refuse(413, Cat("request body too large once decompressed (limit ",
                                           limits().max_body_bytes, " bytes)"))
                         : Refuse(400, "the gzip body is malformed");
      }
    } else {
      request->body = std::move(parser_->get().body());
    }
    parser_.reset();
    stream_.expires_never();  // the handler's time is not the client's
    asio::post(*server_->pool, [self = shared_from_this(), request] {
      auto response = std::make_shared<HttpResponse>();
      try {
        self->server_->handler(*request, *response);
      } catch (const std::exception&) {
        *response = HttpResponse{};
        self->server_->refusal(*request, 500, "internal error", *response);
      }
      asio::post(self->stream_.get_executor(),
                 [self, response] { self->Write(std::move(*response), self->keep_alive_); });
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
    stream_.expires_after(limits().write_timeout);
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
    if (parser_) FillHead(partial);
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
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    stream_.expires_after(kLinger);
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
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  beast::tcp_stream stream_;
  std::shared_ptr<HttpServer::Impl> server_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::empty_body>> continue_;
  std::optional<bhttp::response<bhttp::string_body>> res_;
  bool gzip_ = false;
  bool keep_alive_ = false;
  std::array<char, 16384> drain_{};
};

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor->async_accept(
      asio::make_strand(*ioc), [self = shared_from_this()](beast::error_code ec, tcp::socket s) {
        if (ec == asio::error::operation_aborted) return;  // stopping
        if (!ec) {
          if (static_cast<size_t>(self->open.load()) >= self->limits.max_connections) {
            self->refused.fetch_add(1);
            beast::error_code ignored;
            s.close(ignored);
          } else {
            s.set_option(tcp::no_delay(true), ec);
            std::make_shared<Session>(std::move(s), self)->Start();
          }
        }
        self->Accept();
      });
}

HttpServer::HttpServer(ServerLimits limits, Handler handler, Refusal refusal)
    : impl_(std::make_shared<Impl>()) {
  impl_->limits = limits;
  impl_->handler = std::move(handler);
  impl_->refusal = std::move(refusal);
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start(const std::string& host, int port) {
  Impl& im = *impl_;
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
  im.pool = std::make_unique<asio::thread_pool>(std::max(1, im.limits.workers));
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
  // Destroying the pool and then the context destroys the pending work, and with it the
  // sessions (their sockets close while their context still exists).
  im.pool.reset();
  im.acceptor.reset();
  im.ioc.reset();
}

int HttpServer::port() const { return impl_->bound_port; }
int64_t HttpServer::open_connections() const { return impl_->open.load(); }
int64_t HttpServer::refused_connections() const { return impl_->refused.load(); }

}  // namespace rxflow::http::internal
