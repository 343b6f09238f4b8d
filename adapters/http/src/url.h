// Splits "http://host:port/path" into the origin ("http://host:port") and the path ("/path",
// "/" when absent). Internal to the HTTP library.
#ifndef RXFLOW_HTTP_SRC_URL_H_
#define RXFLOW_HTTP_SRC_URL_H_

#include <string>
#include <string_view>
#include <utility>

namespace rxflow::http::internal {

inline std::pair<std::string, std::string> SplitUrl(std::string_view url) {
  size_t scheme = url.find("://");
  size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  size_t slash = url.find('/', start);
  if (slash == std::string_view::npos) return {std::string(url), "/"};
  return {std::string(url.substr(0, slash)), std::string(url.substr(slash))};
}

// Whether `host` (a name or address, IPv6 with or without brackets) is the loopback.
inline bool IsLoopback(std::string_view host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
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
