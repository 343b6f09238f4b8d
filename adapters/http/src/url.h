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

}  // namespace rxflow::http::internal

#endif  // RXFLOW_HTTP_SRC_URL_H_
