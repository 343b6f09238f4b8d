// SPDX-License-Identifier: Apache-2.0
// The HTTP pharmacy transport: one keep-alive httplib::Client per thread and origin
// (httplib serializes requests on one client, so clients are not shared across threads).
#include <atomic>
#include <cstdint>
#include <map>

#include <httplib.h>
#include <openssl/ssl.h>

#include "rxflow/http/servers.h"
#include "rxflow/internal/strcat.h"

#include "url.h"

namespace rxflow::http {
namespace {

using rxflow::internal::Cat;

class HttpPharmacyTransport final : public runtime::PharmacyTransport {
 public:
  explicit HttpPharmacyTransport(HttpTransportOptions o) : options_(std::move(o)) {}

  StatusOr<std::string> Post(const std::string& url, std::string_view xml,
                             std::string_view traceparent) override {
    auto [origin, path] = internal::SplitUrl(url);
    httplib::Client& client = ClientFor(origin, url);
    if (!client.is_valid()) {  // a link certificate or key that could not be loaded
      return absl::FailedPreconditionError(
          Cat("POST ", url, ": the TLS link's certificate or key cannot be used"));
    }
    httplib::Headers headers;
    if (!traceparent.empty()) headers.emplace("traceparent", std::string(traceparent));
    auto res = client.Post(path, headers, xml.data(), xml.size(), "application/xml");
    if (!res) {
      return absl::UnavailableError(Cat("POST ", url, ": ", httplib::to_string(res.error())));
    }
    if (res->status >= 200 && res->status < 300) return std::move(res->body);
    std::string what = Cat("POST ", url, ": HTTP ", res->status);
    if (res->status >= 500 || res->status == 429 || res->status == 408) {
      return absl::UnavailableError(what);
    }
    return absl::FailedPreconditionError(what);
  }

 private:
  // One client per thread, origin and TLS link (two links to one origin are two clients).
  httplib::Client& ClientFor(const std::string& origin, const std::string& url) {
    thread_local std::map<std::pair<uint64_t, std::string>, std::unique_ptr<httplib::Client>>
        clients;
    auto link = options_.tls.find(url);
    auto& c = clients[{id_, link == options_.tls.end() ? origin : origin + " " + url}];
    if (!c) {
      if (link != options_.tls.end() && !link->second.certificate_file.empty()) {
        c = std::make_unique<httplib::Client>(origin, link->second.certificate_file,
                                              link->second.key_file);
        // The whole chain (cpp-httplib loads the leaf alone): a link certificate from an
        // intermediate CA must bring its intermediate.
        if (SSL_CTX* ctx = c->ssl_context()) {
          SSL_CTX_use_certificate_chain_file(ctx, link->second.certificate_file.c_str());
        }
      } else {
        c = std::make_unique<httplib::Client>(origin);
      }
      if (link != options_.tls.end() && !link->second.ca_file.empty()) {
        c->set_ca_cert_path(link->second.ca_file.c_str());
      }
      if (origin.starts_with("https://")) c->enable_server_certificate_verification(true);
      c->set_tcp_nodelay(true);
      c->set_keep_alive(true);
      auto ct = options_.connect_timeout.count();
      auto rt = options_.read_timeout.count();
      c->set_connection_timeout(ct / 1000, (ct % 1000) * 1000);
      c->set_read_timeout(rt / 1000, (rt % 1000) * 1000);
      c->set_write_timeout(rt / 1000, (rt % 1000) * 1000);
    }
    return *c;
  }
  HttpTransportOptions options_;
  // Keys the thread-local clients: never reused, unlike an address (a later transport at
  // the same address must not inherit another's certificates).
  const uint64_t id_ = next_id_.fetch_add(1);
  static inline std::atomic<uint64_t> next_id_{1};
};

}  // namespace

std::unique_ptr<runtime::PharmacyTransport> NewHttpPharmacyTransport(HttpTransportOptions options) {
  return std::make_unique<HttpPharmacyTransport>(std::move(options));
}

}  // namespace rxflow::http
