// SPDX-License-Identifier: Apache-2.0
#include "common/text.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace rxflow::internal {
namespace {

bool Digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return false;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

int Num(std::string_view s, size_t pos, size_t n) {
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) v = v * 10 + (s[i] - '0');
  return v;
}

bool ValidDay(int y, int m, int d) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return false;
  int max = kDays[m - 1];
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) max = 29;
  return d <= max;
}

// Parses hh:mm:ss(.f+) at `pos`; returns the position after it or npos.
size_t ParseTime(std::string_view s, size_t pos) {
  if (!Digits(s, pos, 2) || pos + 8 > s.size() || s[pos + 2] != ':' || !Digits(s, pos + 3, 2) ||
      s[pos + 5] != ':' || !Digits(s, pos + 6, 2)) {
    return std::string_view::npos;
  }
  int hh = Num(s, pos, 2), mm = Num(s, pos + 3, 2), ss = Num(s, pos + 6, 2);
  if (hh > 24 || mm > 59 || ss > 60) return std::string_view::npos;
  if (hh == 24 && (mm != 0 || ss != 0)) return std::string_view::npos;
  pos += 8;
  if (pos < s.size() && s[pos] == '.') {
    size_t start = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return std::string_view::npos;
  }
  return pos;
}

// Z or +hh:mm / -hh:mm at `pos`, ending the string.
bool ZoneAtEnd(std::string_view s, size_t pos) {
  if (pos == s.size() - 1 && s[pos] == 'Z') return true;
  if (pos + 6 != s.size()) return false;
  if (s[pos] != '+' && s[pos] != '-') return false;
  if (!Digits(s, pos + 1, 2) || s[pos + 3] != ':' || !Digits(s, pos + 4, 2)) return false;
  return Num(s, pos + 1, 2) <= 14 && Num(s, pos + 4, 2) <= 59;
}

}  // namespace

bool IsFullDate(std::string_view s) {
  if (s.size() != 10 || !Digits(s, 0, 4) || s[4] != '-' || !Digits(s, 5, 2) || s[7] != '-' ||
      !Digits(s, 8, 2)) {
    return false;
  }
  return ValidDay(Num(s, 0, 4), Num(s, 5, 2), Num(s, 8, 2));
}

bool IsFhirDate(std::string_view s) {
  if (s.size() == 4) return Digits(s, 0, 4);
  if (s.size() == 7) {
    if (!Digits(s, 0, 4) || s[4] != '-' || !Digits(s, 5, 2)) return false;
    int m = Num(s, 5, 2);
    return m >= 1 && m <= 12;
  }
  return IsFullDate(s);
}

bool IsFhirDateTime(std::string_view s) {
  if (s.size() <= 10) return IsFhirDate(s);
  if (!IsFullDate(s.substr(0, 10)) || s[10] != 'T') return false;
  size_t pos = ParseTime(s, 11);
  if (pos == std::string_view::npos || pos >= s.size()) return false;  // zone required
  return ZoneAtEnd(s, pos);
}

bool IsFhirInstant(std::string_view s) { return s.size() > 10 && IsFhirDateTime(s); }

bool IsXsdDateTime(std::string_view s) { return IsFhirInstant(s); }

bool IsFhirTime(std::string_view s) {
  size_t pos = ParseTime(s, 0);
  return pos == s.size();
}

bool IsFhirDecimal(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  if (i >= s.size()) return false;
  if (s[i] == '0') {
    ++i;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  } else {
    return false;
  }
  if (i < s.size() && s[i] == '.') {
    size_t start = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return false;
  }
  return i == s.size();
}

bool IsFhirCode(std::string_view s) {
  if (s.empty() || s.front() == ' ' || s.back() == ' ') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20) return false;
    if (c == ' ' && i + 1 < s.size() && s[i + 1] == ' ') return false;
  }
  return true;
}

bool IsFhirId(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// Branch-free loops: the compiler vectorizes them, and these run on every value.
namespace {

constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighBits = 0x8080808080808080ULL;

// Whether any byte of `x` is below n (n <= 128): a borrow starts only at such a byte.
constexpr bool AnyBelow(uint64_t x, uint64_t n) { return ((x - kOnes * n) & ~x & kHighBits) != 0; }
// Whether any byte of `x` is above n (n < 128): a carry starts only at a byte above 127.
constexpr bool AnyAbove(uint64_t x, uint64_t n) {
  return (((x + kOnes * (127 - n)) | x) & kHighBits) != 0;
}

uint64_t Load8(const char* p) {
  uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}

}  // namespace

size_t FirstControlChar(std::string_view s) {
  auto bad = [](unsigned char c) { return c < 0x20 && c != '\t' && c != '\n' && c != '\r'; };
  size_t i = 0;
  // Eight bytes at a time; a chunk with a byte below 0x20 (often white space) byte by byte.
  for (; i + 8 <= s.size(); i += 8) {
    if (!AnyBelow(Load8(s.data() + i), 0x20)) continue;
    for (size_t k = i; k < i + 8; ++k) {
      if (bad(static_cast<unsigned char>(s[k]))) return k;
    }
  }
  for (; i < s.size(); ++i) {
    if (bad(static_cast<unsigned char>(s[i]))) return i;
  }
  return std::string_view::npos;
}

bool HasNoControlChars(std::string_view s) { return FirstControlChar(s) == std::string_view::npos; }

bool IsFhirUri(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    if (AnyBelow(Load8(s.data() + i), 0x21)) return false;  // a control byte or a space
  }
  for (; i < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) <= 0x20) return false;
  }
  return true;
}

bool IsPrintableAscii(std::string_view s) {
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t x = Load8(s.data() + i);
    if (AnyBelow(x, 0x20) || AnyAbove(x, 0x7E)) return false;
  }
  unsigned bad = 0;
  for (; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    bad |= static_cast<unsigned>(c < 0x20) | static_cast<unsigned>(c > 0x7E);
  }
  return bad == 0;
}

bool IsScriptNumeric(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  if (i == 0) return false;
  if (i == s.size()) return true;
  if (s[i] != '.') return false;
  size_t start = ++i;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  return i > start && i == s.size();
}

bool IsAllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::string DigitsOnly(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c >= '0' && c <= '9') out.push_back(c);
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

namespace {

// Whether any byte of `x` is `c`: a zero byte of x ^ c, found as AnyBelow(…, 1) finds it.
constexpr bool AnyEqual(uint64_t x, unsigned char c) { return AnyBelow(x ^ (kOnes * c), 1); }

// The first byte at or after `i` that JSON must escape (a quote, a backslash, a control
// character), or s.size(): eight bytes at a time, as most values have none.
size_t NextJsonSpecial(std::string_view s, size_t i) {
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t x = Load8(s.data() + i);
    if (AnyBelow(x, 0x20) || AnyEqual(x, '"') || AnyEqual(x, '\\')) break;
  }
  for (; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == '"' || c == '\\') return i;
  }
  return s.size();
}

}  // namespace

void MakeValidUtf8(std::string& s) {
  size_t bad;
  if (IsValidUtf8(s, &bad)) return;
  std::string out(s, 0, bad);
  std::string_view rest = std::string_view(s).substr(bad);
  while (!rest.empty()) {
    if (IsValidUtf8(rest, &bad)) {
      out.append(rest);
      break;
    }
    out.append(rest.substr(0, bad));
    out.append("\xEF\xBF\xBD");  // U+FFFD REPLACEMENT CHARACTER
    rest.remove_prefix(bad + 1);
  }
  s = std::move(out);
}

bool JsonEscapeFree(std::string_view s) { return NextJsonSpecial(s, 0) == s.size(); }

void AppendJsonEscaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t run = 0;
  for (size_t i = NextJsonSpecial(s, 0); i < s.size(); i = NextJsonSpecial(s, i + 1)) {
    auto c = static_cast<unsigned char>(s[i]);
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
  }
  out.append(s.data() + run, s.size() - run);
}

void AppendXmlEscaped(std::string& out, std::string_view s) {
  // Most values need no escaping: check first, then append in one go.
  unsigned special = 0;
  for (char c : s) {
    special |= static_cast<unsigned>(c == '&') | static_cast<unsigned>(c == '<') |
               static_cast<unsigned>(c == '>') | static_cast<unsigned>(c == '"') |
               static_cast<unsigned>(c == '\'');
  }
  if (!special) {
    out.append(s);
    return;
  }
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char* rep;
    switch (s[i]) {
      case '&':
        rep = "&amp;";
        break;
      case '<':
        rep = "&lt;";
        break;
      case '>':
        rep = "&gt;";
        break;
      case '"':
        rep = "&quot;";
        break;
      case '\'':
        rep = "&apos;";
        break;
      default:
        continue;
    }
    out.append(s.data() + run, i - run);
    out += rep;
    run = i + 1;
  }
  out.append(s.data() + run, s.size() - run);
}

std::optional<double> ParseDecimal(std::string_view s) {
  if (!IsFhirDecimal(s)) return std::nullopt;
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string FormatDecimal(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v));
    return std::string(buf, ptr);
  }
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  return std::string(buf, ptr);
}

std::string FhirDecimalFromScript(std::string_view s) {
  s = Trim(s);
  size_t i = 0;
  while (i + 1 < s.size() && s[i] == '0' && s[i + 1] >= '0' && s[i + 1] <= '9') ++i;
  std::string out(s.substr(i));
  return IsFhirDecimal(out) ? out : std::string();
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsValidUtf8(std::string_view s, size_t* bad_offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  for (size_t i = 0; i < n;) {
    // Eight ASCII bytes at a time: most text is ASCII.
    if (i + 8 <= n) {
      uint64_t chunk;
      std::memcpy(&chunk, p + i, 8);
      if ((chunk & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range (RFC 3629 §4)
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool ok = len != 0 && i + len <= n && p[i + 1] >= lo && p[i + 1] <= hi;
    for (size_t k = 2; ok && k < len; ++k) ok = p[i + k] >= 0x80 && p[i + k] <= 0xBF;
    if (!ok) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

std::vector<std::string_view> SplitView(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (size_t start = 0;;) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

}  // namespace rxflow::internal
