// SPDX-License-Identifier: Apache-2.0
// Splits "http://host:port/path" into the origin ("http://host:port") and the path ("/path",
// "/" when absent). Internal to the HTTP library.
#ifndef RXFLOW_HTTP_SRC_URL_H_
#define RXFLOW_HTTP_SRC_URL_H_

#include <string>
#include <string_view>
#include <utility>

#include <arpa/inet.h>
#include <netinet/in.h>

namespace rxflow::http::internal {

inline std::pair<std::string, std::string> SplitUrl(std::string_view url) {
  size_t scheme = url.find("://");
  size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  size_t slash = url.find('/', start);
  if (slash == std::string_view::npos) return {std::string(url), "/"};
  return {std::string(url.substr(0, slash)), std::string(url.substr(slash))};
}

// Whether `host` is the loopback: "localhost", an IPv4 address in 127.0.0.0/8, or ::1 (with
// or without brackets). A name is not resolved: "127.0.0.1.example.org" is not loopback.
inline bool IsLoopback(std::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  in_addr v4{};
  const std::string h(host);
  return inet_pton(AF_INET, h.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

// "host:port" of "scheme://host:port/path".
inline std::string_view UrlAuthority(std::string_view url) {
  size_t scheme = url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  return rest.substr(0, rest.find('/'));
}

// The host of "scheme://host:port/path" ("[::1]" for a bracketed IPv6 address).
inline std::string_view UrlHost(std::string_view url) {
  size_t scheme = url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  rest = rest.substr(0, rest.find('/'));
  if (!rest.empty() && rest.front() == '[') return rest.substr(0, rest.find(']') + 1);
  return rest.substr(0, rest.find(':'));
}

}  // namespace rxflow::http::internal

#endif  // RXFLOW_HTTP_SRC_URL_H_
