// SPDX-License-Identifier: Apache-2.0
// Internal (core and adapters; not installed): string concatenation over std::string_view.
// (Debian's Abseil is built with its own absl::string_view, which absl::StrCat does not take
// std::string_view for; pass an absl::string_view, e.g. Status::message(), as std::string.)
#ifndef RXFLOW_INTERNAL_STRCAT_H_
#define RXFLOW_INTERNAL_STRCAT_H_

#include <algorithm>
#include <charconv>
#include <concepts>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

namespace rxflow::internal {

// One piece of a Cat or Append as text: a string as it is, a char, an integer in decimal, or a
// floating-point number in the shortest form that reads back exactly, without an exponent when
// that fits ("0.0001", "2.5"; "1e+300"). Numbers are formatted into the piece's own buffer, so
// a Cat knows every piece's exact size before it allocates (like absl::AlphaNum). A Piece
// lives for the full expression that made it; it is neither copied nor moved.
class Piece {
 public:
  Piece(std::string_view s) : view_(s) {}
  Piece(const char* s) : view_(s) {}
  Piece(const std::string& s) : view_(s) {}
  Piece(char c) : view_(buf_, 1) { buf_[0] = c; }
  template <std::integral T>
  requires(!std::same_as<T, char> && !std::same_as<T, bool>) Piece(T v) {
    auto [ptr, ec] = std::to_chars(buf_, buf_ + sizeof buf_, v);
    view_ = std::string_view(buf_, static_cast<size_t>(ptr - buf_));
  }
  // Without this constructor a double would convert to char.
  template <std::floating_point T>
  Piece(T v) {
    auto r = std::to_chars(buf_, buf_ + sizeof buf_, v, std::chars_format::fixed);
    if (r.ec != std::errc()) r = std::to_chars(buf_, buf_ + sizeof buf_, v);
    view_ = std::string_view(buf_, static_cast<size_t>(r.ptr - buf_));
  }
  Piece(const Piece&) = delete;
  Piece& operator=(const Piece&) = delete;

  std::string_view view() const { return view_; }

 private:
  char buf_[64];  // a number's text: 20 digits and a sign, or a double's fixed form
  std::string_view view_;
};

template <typename T>
void AppendPiece(std::string& out, const T& v) {
  out.append(Piece(v).view());
}

// The pieces joined, in one allocation of their exact size.
inline std::string CatPieces(std::initializer_list<std::string_view> pieces) {
  size_t size = 0;
  for (std::string_view p : pieces) size += p.size();
  std::string out;
  out.reserve(size);
  for (std::string_view p : pieces) out.append(p);
  return out;
}

// The pieces appended to `out`, which grows at most once, and geometrically (never to each
// call's exact size, which would copy the whole string at every call). A piece may view `out`
// itself: then `out` grows as std::string::append grows it.
inline void AppendPieces(std::string& out, std::initializer_list<std::string_view> pieces) {
  size_t need = out.size();
  bool aliases = false;
  for (std::string_view p : pieces) {
    need += p.size();
    aliases |= !p.empty() && std::less_equal<>()(out.data(), p.data()) &&
               std::less<>()(p.data(), out.data() + out.capacity());
  }
  if (need > out.capacity() && !aliases) out.reserve(std::max(need, 2 * out.capacity()));
  for (std::string_view p : pieces) out.append(p);
}

template <typename... Args>
std::string Cat(const Args&... args) {
  return CatPieces({Piece(args).view()...});
}

template <typename... Args>
void Append(std::string& out, const Args&... args) {
  AppendPieces(out, {Piece(args).view()...});
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
