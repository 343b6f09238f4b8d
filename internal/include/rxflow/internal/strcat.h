// SPDX-License-Identifier: Apache-2.0
// Internal (core and adapters; not installed): string concatenation over std::string_view.
// (Debian's Abseil is built with its own absl::string_view, which absl::StrCat does not take
// std::string_view for; pass an absl::string_view, e.g. Status::message(), as std::string.)
#ifndef RXFLOW_INTERNAL_STRCAT_H_
#define RXFLOW_INTERNAL_STRCAT_H_

#include <algorithm>
#include <charconv>
#include <concepts>
#include <string>
#include <string_view>

namespace rxflow::internal {

inline void AppendPiece(std::string& out, std::string_view s) { out.append(s); }
inline void AppendPiece(std::string& out, const char* s) { out.append(s); }
inline void AppendPiece(std::string& out, const std::string& s) { out.append(s); }
inline void AppendPiece(std::string& out, char c) { out.push_back(c); }
template <std::integral T>
requires(!std::same_as<T, char> && !std::same_as<T, bool>) void AppendPiece(std::string& out, T v) {
  char buf[24];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, ptr);
}

// The shortest form that reads back exactly, without an exponent when that fits ("0.0001",
// "2.5"; "1e+300"). Without this overload a double would convert to char.
template <std::floating_point T>
void AppendPiece(std::string& out, T v) {
  char buf[64];
  auto fixed = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  if (fixed.ec == std::errc()) {
    out.append(buf, fixed.ptr);
    return;
  }
  auto general = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, general.ptr);
}

// An upper bound of the bytes AppendPiece writes for `v`: Cat and Append size the string
// once, not at each piece that outgrows it (a Cat of a few pieces past the 15 bytes a
// std::string holds inline otherwise reallocated two or three times).
inline size_t PieceBound(std::string_view s) { return s.size(); }
inline size_t PieceBound(const char* s) { return std::char_traits<char>::length(s); }
inline size_t PieceBound(const std::string& s) { return s.size(); }
inline size_t PieceBound(char) { return 1; }
template <std::integral T>
requires(!std::same_as<T, char> && !std::same_as<T, bool>) constexpr size_t PieceBound(T) {
  return 24;  // AppendPiece's buffer: 20 digits and a sign fit
}
template <std::floating_point T>
constexpr size_t PieceBound(T) {
  return 64;  // AppendPiece's buffer
}

template <typename... Args>
std::string Cat(const Args&... args) {
  std::string out;
  out.reserve((size_t{0} + ... + PieceBound(args)));
  (AppendPiece(out, args), ...);
  return out;
}

// Appends to `out`, growing it at most once; repeated Appends still grow it geometrically
// (never to the exact size only, which would copy the whole string at every call).
template <typename... Args>
void Append(std::string& out, const Args&... args) {
  const size_t need = out.size() + (size_t{0} + ... + PieceBound(args));
  if (need > out.capacity()) out.reserve(std::max(need, 2 * out.capacity()));
  (AppendPiece(out, args), ...);
}

inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace rxflow::internal

#endif  // RXFLOW_INTERNAL_STRCAT_H_
