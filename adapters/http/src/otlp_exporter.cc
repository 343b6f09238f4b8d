// SPDX-License-Identifier: Apache-2.0
#include <string_view>
#include <utility>

#include <httplib.h>

#include "rxflow/http/otlp.h"
#include "rxflow/internal/strcat.h"

namespace rxflow::http {
namespace {

using internal::Cat;

constexpr time_t kTimeoutSeconds = 2;

class OtlpHttpExporter : public obs::SpanExporter {
 public:
  OtlpHttpExporter(std::string endpoint, std::string service_name)
      : endpoint_(std::move(endpoint)), service_name_(std::move(service_name)) {
    // scheme://authority[/path]
    std::string_view e = endpoint_;
    size_t sep = e.find("://");
    if (sep == std::string_view::npos) return;
    std::string scheme = internal::AsciiLower(e.substr(0, sep));
    if (scheme != "http" && scheme != "https") return;
    std::string_view rest = e.substr(sep + 3);
    size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
    if (authority.empty()) return;
    base_ = Cat(scheme, "://", authority);
    path_ = path.empty() || path == "/" ? std::string("/v1/traces") : std::string(path);
  }

  Status Export(std::span<const obs::Span> spans) override {
    if (base_.empty()) {
      return absl::InvalidArgumentError(
          Cat("otlp endpoint is not http[s]://host[:port][/path]: ", endpoint_));
    }
    if (spans.empty()) return Status();
    std::string body = obs::EncodeOtlpJson(spans, service_name_);
    httplib::Client cli(base_);
    if (!cli.is_valid()) {
      return absl::InvalidArgumentError(Cat("otlp endpoint is invalid: ", endpoint_));
    }
    cli.set_connection_timeout(kTimeoutSeconds, 0);
    cli.set_read_timeout(kTimeoutSeconds, 0);
    cli.set_write_timeout(kTimeoutSeconds, 0);
    cli.set_tcp_nodelay(true);
    httplib::Result res = cli.Post(path_, body, "application/json");
    if (!res) {
      return absl::UnavailableError(
          Cat("otlp export to ", base_, path_, " failed: ", httplib::to_string(res.error())));
    }
    if (res->status < 200 || res->status > 299) {
      return absl::UnavailableError(Cat("otlp collector ", base_, path_, " returned HTTP ",
                                        res->status, ": ",
                                        std::string_view(res->body).substr(0, 200)));
    }
    return Status();
  }

 private:
  std::string endpoint_;
  std::string service_name_;
  std::string base_;  // "scheme://host[:port]"; empty when the endpoint is malformed
  std::string path_;
};

}  // namespace

std::unique_ptr<obs::SpanExporter> NewOtlpHttpExporter(std::string endpoint,
                                                       std::string service_name) {
  return std::make_unique<OtlpHttpExporter>(std::move(endpoint), std::move(service_name));
}

}  // namespace rxflow::http
