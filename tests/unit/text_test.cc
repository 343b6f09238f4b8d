// SPDX-License-Identifier: Apache-2.0
// The eight-bytes-at-a-time scans of src/common/text.cc against byte-by-byte references:
// every special byte at every position around the 8-byte chunk edges, and random strings;
// and the transliteration of FHIR text to SCRIPT's printable ASCII (mapping/transliterate.h).
#include "common/text.h"

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>

#include <doctest/doctest.h>

#include "rxflow/internal/json.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/service.h"

#include "mapping/transliterate.h"
#include "testing/status.h"

namespace {

std::string JsonEscapedReference(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      out += "\\u00";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

size_t FirstControlReference(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return i;
  }
  return std::string_view::npos;
}

bool IsFhirUriReference(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20) return false;
  }
  return true;
}

std::string Escaped(std::string_view s) {
  std::string out = "prefix:";
  rxflow::internal::AppendJsonEscaped(out, s);
  return out.substr(7);
}

}  // namespace

TEST_SUITE("Text scans") {
  TEST_CASE("JSON escaping: each special byte at each position around the chunk edges") {
    for (unsigned char special :
         {'"', '\\', '\n', '\r', '\t', '\x01', '\x1f', '\x00', ' ', '\x21'}) {
      for (size_t len = 0; len <= 20; ++len) {
        for (size_t at = 0; at < len; ++at) {
          std::string s(len, 'a');
          s[at] = static_cast<char>(special);
          CAPTURE(len);
          CAPTURE(at);
          CAPTURE(static_cast<int>(special));
          CHECK(Escaped(s) == JsonEscapedReference(s));
          CHECK(rxflow::internal::FirstControlChar(s) == FirstControlReference(s));
          CHECK(rxflow::internal::IsFhirUri(s) == IsFhirUriReference(s));
        }
      }
    }
    // Bytes that are not special but sit next to the specials' values, and UTF-8.
    std::string near = " !#[]^\x7f\xc3\xa9\xe2\x82\xac";
    CHECK(Escaped(near) == near);
  }

  TEST_CASE(
      "JSON escaping, the control-character scan and the URI check agree with the references") {
    std::mt19937 rng(20261130);
    std::uniform_int_distribution<int> len(0, 64), byte(0, 255), pick(0, 9);
    for (int n = 0; n < 20000; ++n) {
      std::string s(static_cast<size_t>(len(rng)), 'x');
      // Mostly printable, sometimes anything: specials are rare, as in real values.
      for (char& c : s) c = static_cast<char>(pick(rng) == 0 ? byte(rng) : 'a' + pick(rng));
      CHECK(Escaped(s) == JsonEscapedReference(s));
      CHECK(rxflow::internal::FirstControlChar(s) == FirstControlReference(s));
      CHECK(rxflow::internal::IsFhirUri(s) == IsFhirUriReference(s));
    }
  }
}

TEST_CASE("Cat writes numbers as numbers: integers, and doubles in their shortest exact form") {
  using rxflow::internal::Cat;
  CHECK(Cat("n=", 42, " m=", -7L) == "n=42 m=-7");
  // A double once converted to char here (0.0001 became a NUL byte).
  CHECK(Cat("rate ", 0.0001) == "rate 0.0001");
  CHECK(Cat(2.5, " ", 0.1f) == "2.5 0.1");
  CHECK(Cat(1e300) == "1e+300");  // no 301 digits
  CHECK(Cat('x', true ? "y" : "z") == "xy");
}

TEST_CASE("Cat allocates once, exactly its result's size; Append may take a view of itself") {
  using rxflow::internal::Append;
  using rxflow::internal::Cat;
  const std::string a(40, 'a');
  const std::string_view b = "a view of twenty bytes";
  // Grown piece by piece, the string was reallocated at the first, second and fifth piece.
  std::string s = Cat(a, "|", b, '|', int64_t{-9'223'372'036'854'775'807} - 1, 2.5);
  CHECK(s == a + "|" + std::string(b) + "|-9223372036854775808" + "2.5");
#if defined(__GLIBCXX__)
  CHECK(s.capacity() == s.size());  // grown piece by piece: 160
  // A short result stays in the string's own 15 bytes, numbers included (no heap at all).
  CHECK(Cat("[", 12345, "]", 2.5).capacity() == 15);
#endif
  // Numbers at their widest.
  CHECK(Cat(UINT64_MAX) == "18446744073709551615");
  CHECK(Cat(INT64_MIN) == "-9223372036854775808");
  CHECK(Cat(-2.2250738585072014e-308) == "-2.2250738585072014e-308");
  CHECK(Cat(1e-60) == Cat("0.", std::string(59, '0'), "1"));  // 62 bytes: still fixed
  CHECK(Cat(-1.17549435e-38f) == Cat("-0.", std::string(37, '0'), "11754944"));
  // A piece that views the string appended to (it may move when the string grows).
  std::string grown = "0123456789abcdef";
  for (int i = 0; i < 6; ++i) Append(grown, "|", std::string_view(grown).substr(0, 16), i);
  CHECK(grown.size() == 16 + 6 * 18);
  CHECK(grown.substr(grown.size() - 18) == "|0123456789abcdef5");
}

TEST_CASE("JsonObject writes members in order and escapes their values") {
  rxflow::internal::JsonObject o;
  o.String("s", "quote \" backslash \\ newline \n tab \t bell \x07 é")
      .Int("n", -9'007'199'254'740'993)
      .Bool("t", true)
      .Bool("f", false)
      .Raw("raw", "[1,{\"a\":null}]");
  const std::string text = o.Finish();
  CHECK(text.rfind("{\"s\":\"quote \\\" backslash \\\\ newline \\n tab \\t bell \\u0007 é\",", 0) ==
        0);
  CHECK(text.find(",\"n\":-9007199254740993,\"t\":true,\"f\":false,\"raw\":[1,{\"a\":null}]}") !=
        std::string::npos);
  rxflow::internal::JsonObject empty;
  CHECK(empty.Finish() == "{}");
}

TEST_CASE("a prescription summary written without a DOM reads back field for field") {
  rxflow::PrescriptionSummary s;
  s.id = "rx-\"1\"\\";
  s.state = rxflow::domain::State::kCancelRequested;
  s.pharmacy_ncpdp_id = "4712345";
  s.is_controlled = true;
  s.dea_schedule = "CII";
  s.message_id = "m\n1";
  s.created_at = "2026-12-01T20:00:00Z";
  s.updated_at = "2026-12-01T20:00:01Z";
  s.version = 7;
  auto back = rxflow::DecodeSummary(rxflow::EncodeSummary(s));
  RXFLOW_REQUIRE_OK(back);
  CHECK(back->id == s.id);
  CHECK(back->state == s.state);
  CHECK(back->pharmacy_ncpdp_id == s.pharmacy_ncpdp_id);
  CHECK(back->is_controlled);
  CHECK(back->dea_schedule == "CII");
  CHECK(back->message_id == s.message_id);
  CHECK(back->created_at == s.created_at);
  CHECK(back->updated_at == s.updated_at);
  CHECK(back->version == 7);
}

// CLDR's Latin-ASCII rules as ICU ships them (the characters of names, addresses and notes
// seen in EHR exports), and what they leave alone.
TEST_CASE("transliteration to printable ASCII: Latin letters, punctuation and line breaks") {
  using rxflow::mapping::TransliterateToAscii;
  const std::pair<std::string_view, std::string_view> made[] = {
      {"José Muñoz", "Jose Munoz"},
      {"Jose\u0301", "Jose"},  // é as e + a combining acute (NFD, as macOS writes it)
      {"Łukasz Żółć", "Lukasz Zolc"},
      {"Straße", "Strasse"},
      {"Ærø", "AEro"},
      {"Œuvre", "OEuvre"},
      {"Đorđe", "Dorde"},
      {"O’Brien", "O'Brien"},
      {"“quoted”", "\"quoted\""},
      {"tab — with food…", "tab - with food..."},
      {"a\u00a0b", "a b"},  // a no-break space
      {"ﬁne", "fine"},
      {"½ tablet", "1/2 tablet"},  // ICU writes " 1/2": the leading space is dropped
      {"line one\r\nline two\n\n\tthree", "line one line two three"},
      {"already ASCII", "already ASCII"},
  };
  for (const auto& pair : made) {
    CAPTURE(pair.first);
    std::optional<std::string> got = TransliterateToAscii(pair.first);
    REQUIRE(got.has_value());
    CHECK(*got == pair.second);
    CHECK(rxflow::internal::IsPrintableAscii(*got));
  }
  // No rule makes these ASCII: another script, the micro sign (write mcg), a superscript, an
  // emoji, a control character, text of nothing but line breaks.
  for (std::string_view refused :
       {"Иван", "李", "5 µg", "x²", "ok 👍", "bell\x07", "\n\r\n", "\xef\xbf\xbd"}) {
    CAPTURE(refused);
    CHECK_FALSE(TransliterateToAscii(refused).has_value());
  }
}
