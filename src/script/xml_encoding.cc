// SPDX-License-Identifier: Apache-2.0
#include "script/xml_encoding.h"

#include <cstdint>

#include "rxflow/internal/strcat.h"

#include "common/text.h"

namespace rxflow::script::internal {
namespace {

using rxflow::internal::AppendUtf8;
using rxflow::internal::Cat;
using Outcome = XmlEncoding::Outcome;

enum class Family { kUtf8, kAscii, kLatin1, kCp1252, kUtf16, kOther };

constexpr std::string_view kSupported =
    "RxFlow reads SCRIPT in UTF-8, UTF-16, ISO-8859-1, windows-1252 and US-ASCII";

char Upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Upper(c);
  return out;
}

// The IANA names (and the aliases senders use) of the encodings RxFlow decodes.
Family FamilyOf(std::string_view declared) {
  const std::string n = Upper(declared);
  for (std::string_view a : {"UTF-8", "UTF8"}) {
    if (n == a) return Family::kUtf8;
  }
  for (std::string_view a : {"US-ASCII", "ASCII", "ANSI_X3.4-1968", "ISO646-US", "US"}) {
    if (n == a) return Family::kAscii;
  }
  for (std::string_view a : {"ISO-8859-1", "ISO_8859-1", "ISO8859-1", "ISO_8859-1:1987", "LATIN1",
                             "LATIN-1", "L1", "ISO-IR-100", "CP819", "IBM819"}) {
    if (n == a) return Family::kLatin1;
  }
  for (std::string_view a : {"WINDOWS-1252", "CP1252", "X-CP1252"}) {
    if (n == a) return Family::kCp1252;
  }
  for (std::string_view a :
       {"UTF-16", "UTF-16LE", "UTF-16BE", "UTF16", "UCS-2", "ISO-10646-UCS-2"}) {
    if (n == a) return Family::kUtf16;
  }
  return Family::kOther;
}

bool Space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// The value of the XML declaration's `encoding` pseudo-attribute; empty when there is no
// declaration or it names none. `text` is read as ASCII (a declaration is ASCII).
std::string_view DeclaredEncoding(std::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  if (text.size() < 6 || text.substr(0, 5) != "<?xml" || !Space(text[5])) return {};
  text = text.substr(0, text.find("?>"));
  size_t at = text.find("encoding");
  if (at == std::string_view::npos) return {};
  size_t i = at + 8;
  while (i < text.size() && Space(text[i])) ++i;
  if (i >= text.size() || text[i] != '=') return {};
  ++i;
  while (i < text.size() && Space(text[i])) ++i;
  if (i >= text.size() || (text[i] != '"' && text[i] != '\'')) return {};
  size_t end = text.find(text[i], i + 1);
  if (end == std::string_view::npos) return {};
  return text.substr(i + 1, end - i - 1);
}

// A declared encoding name as an issue shows it: printable ASCII, at most 40 characters (the
// name comes from the sender; an issue's cost and content stay bounded).
std::string Shown(std::string_view declared) {
  std::string out;
  for (char c : declared.substr(0, 40)) out.push_back(c >= 0x20 && c <= 0x7E ? c : '?');
  if (declared.size() > 40) out += "...";
  return out;
}

std::string Hex(unsigned char b) {
  constexpr char kDigits[] = "0123456789ABCDEF";
  return {'0', 'x', kDigits[b >> 4], kDigits[b & 15]};
}

// The encoding is not one RxFlow reads.
XmlEncoding Unsupported(std::string name, std::string message) {
  XmlEncoding e;
  e.outcome = Outcome::kRefused;
  e.name = std::move(name);
  e.message = std::move(message);
  return e;
}

// The byte at `offset` is malformed in the encoding `name`.
XmlEncoding Malformed(std::string name, std::string message, size_t offset) {
  XmlEncoding e = Unsupported(std::move(name), std::move(message));
  e.malformed = true;
  e.offset = offset;
  return e;
}

// `bytes` (after any byte-order mark, which starts at `skip`) as UTF-16 in `big_endian` order.
XmlEncoding FromUtf16(std::string_view bytes, size_t skip, bool big_endian) {
  std::string name = big_endian ? "UTF-16BE" : "UTF-16LE";
  std::string_view units = bytes.substr(skip);
  if (units.size() % 2 != 0) {
    return Malformed(name, Cat("invalid ", name, ": an odd number of bytes (", units.size(), ")"),
                     bytes.size() - 1);
  }
  auto unit = [&](size_t i) -> uint32_t {
    auto hi = static_cast<unsigned char>(units[i + (big_endian ? 0 : 1)]);
    auto lo = static_cast<unsigned char>(units[i + (big_endian ? 1 : 0)]);
    return uint32_t{hi} << 8 | lo;
  };
  XmlEncoding e;
  e.outcome = Outcome::kDecoded;
  e.utf8.reserve(units.size() / 2 + units.size() / 8);
  for (size_t i = 0; i < units.size(); i += 2) {
    uint32_t u = unit(i);
    if (u >= 0xDC00 && u <= 0xDFFF) {
      return Malformed(name, Cat("invalid ", name, ": a low surrogate without a high one"),
                       skip + i);
    }
    if (u >= 0xD800 && u <= 0xDBFF) {
      uint32_t low = i + 2 < units.size() ? unit(i + 2) : 0;
      if (low < 0xDC00 || low > 0xDFFF) {
        return Malformed(name, Cat("invalid ", name, ": a high surrogate without a low one"),
                         skip + i);
      }
      u = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
      i += 2;
    }
    AppendUtf8(e.utf8, u);
  }
  e.name = std::move(name);
  std::string_view declared = DeclaredEncoding(e.utf8);
  if (!declared.empty() && FamilyOf(declared) != Family::kUtf16) {
    e.message = Cat("the XML declaration names encoding \"", Shown(declared),
                    "\" but the document is ", e.name, " (by its first bytes): read as ", e.name);
  }
  return e;
}

// The 32 characters windows-1252 puts at 0x80–0x9F (0: a byte it leaves undefined).
constexpr uint16_t kCp1252High[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

// `source` names where the encoding was read: "the XML declaration" or "the Content-Type
// charset".
XmlEncoding FromSingleByte(std::string_view bytes, Family family, std::string_view declared,
                           std::string_view source) {
  std::string name = family == Family::kLatin1 ? "ISO-8859-1" : "windows-1252";
  XmlEncoding e;
  e.outcome = Outcome::kDecoded;
  e.name = name;
  e.utf8.reserve(bytes.size() + bytes.size() / 8);
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto b = static_cast<unsigned char>(bytes[i]);
    uint32_t cp = b;
    if (family == Family::kCp1252 && b >= 0x80 && b <= 0x9F) {
      cp = kCp1252High[b - 0x80];
      if (cp == 0) {
        return Malformed(name,
                         Cat("byte ", Hex(b), " is not a character of ", Shown(declared),
                             " (the encoding ", source, " names)"),
                         i);
      }
    }
    AppendUtf8(e.utf8, cp);
  }
  return e;
}

// Adds `warning` to what `e` says (a warning already there stays first).
XmlEncoding& Warn(XmlEncoding& e, const std::string& warning) {
  e.message = e.message.empty() ? warning : Cat(e.message, "; ", warning);
  return e;
}

}  // namespace

XmlEncoding DecodeXmlEncoding(std::string_view xml, std::string_view charset) {
  auto at = [&](size_t i) -> int {
    return i < xml.size() ? static_cast<unsigned char>(xml[i]) : -1;
  };
  // Byte-order marks and first bytes (XML 1.0, Appendix F): they decide over a charset
  // parameter too (RFC 7303, section 3.3), which is then said to be wrong.
  const auto by_first_bytes = [&](XmlEncoding e, Family family) {
    if (!charset.empty() && e.outcome != Outcome::kRefused && FamilyOf(charset) != family) {
      Warn(e, Cat("the Content-Type charset \"", Shown(charset), "\" is not the document's ",
                  family == Family::kUtf8 ? std::string("UTF-8") : e.name,
                  " (by its first bytes): read as the first bytes say"));
    }
    return e;
  };
  if (at(0) == 0x00 && at(1) == 0x00 && (at(2) == 0xFE || at(2) == 0x00)) {
    return Unsupported("UTF-32", Cat("the document is UTF-32 (by its first bytes); ", kSupported));
  }
  if (at(0) == 0xFF && at(1) == 0xFE && at(2) == 0x00 && at(3) == 0x00) {
    return Unsupported("UTF-32", Cat("the document is UTF-32 (by its first bytes); ", kSupported));
  }
  if (at(0) == 0x3C && at(1) == 0x00 && at(2) == 0x00 && at(3) == 0x00) {
    return Unsupported("UTF-32", Cat("the document is UTF-32 (by its first bytes); ", kSupported));
  }
  if (at(0) == 0x4C && at(1) == 0x6F && at(2) == 0xA7 && at(3) == 0x94) {
    return Unsupported("EBCDIC", Cat("the document is EBCDIC (by its first bytes); ", kSupported));
  }
  if (at(0) == 0xFE && at(1) == 0xFF)
    return by_first_bytes(FromUtf16(xml, 2, true), Family::kUtf16);
  if (at(0) == 0xFF && at(1) == 0xFE)
    return by_first_bytes(FromUtf16(xml, 2, false), Family::kUtf16);
  if (at(0) == 0x00 && at(1) == 0x3C)
    return by_first_bytes(FromUtf16(xml, 0, true), Family::kUtf16);
  if (at(0) == 0x3C && at(1) == 0x00)
    return by_first_bytes(FromUtf16(xml, 0, false), Family::kUtf16);
  std::string_view declared = DeclaredEncoding(xml);
  if (at(0) == 0xEF && at(1) == 0xBB && at(2) == 0xBF) {  // UTF-8's byte-order mark
    XmlEncoding e = by_first_bytes({}, Family::kUtf8);
    if (!declared.empty() && FamilyOf(declared) != Family::kUtf8 &&
        FamilyOf(declared) != Family::kAscii) {
      Warn(e, Cat("the XML declaration names encoding \"", Shown(declared),
                  "\" but the document starts with UTF-8's byte-order mark: read as UTF-8"));
    }
    return e;
  }

  // An 8-bit document: a charset parameter names its encoding (RFC 7303, section 3.2), else
  // its declaration does (neither: UTF-8).
  XmlEncoding said;
  std::string_view source = "the XML declaration";
  std::string_view source_s = "the XML declaration's";
  std::string_view name = declared;
  if (!charset.empty()) {
    if (!declared.empty() && FamilyOf(declared) != FamilyOf(charset)) {
      Warn(said, Cat("the XML declaration names encoding \"", Shown(declared),
                     "\" but the Content-Type charset is \"", Shown(charset),
                     "\": read as the charset says (RFC 7303)"));
    }
    source = "the Content-Type charset";
    source_s = "the Content-Type charset's";
    name = charset;
  }
  if (name.empty()) return said;
  switch (FamilyOf(name)) {
    case Family::kUtf8:
      return said;
    case Family::kAscii:
      for (size_t i = 0; i < xml.size(); ++i) {
        if (static_cast<unsigned char>(xml[i]) >= 0x80) {
          return Malformed(
              "US-ASCII",
              Cat("byte ", Hex(static_cast<unsigned char>(xml[i])), " is not a character of ",
                  Shown(name), " (the encoding ", source, " names)"),
              i);
        }
      }
      return said;
    case Family::kLatin1:
    case Family::kCp1252: {
      XmlEncoding e = FromSingleByte(xml, FamilyOf(name), name, source);
      return e.outcome == Outcome::kRefused || said.message.empty() ? e : Warn(e, said.message);
    }
    case Family::kUtf16:
      return Warn(said, Cat(source, " names encoding \"", Shown(name),
                            "\" but the document is written in 8-bit bytes: read as UTF-8"));
    case Family::kOther:
      break;
  }
  return Unsupported(Shown(name), Cat("encoding \"", Shown(name), "\" (", source_s,
                                      ") is not supported; ", kSupported));
}

}  // namespace rxflow::script::internal
