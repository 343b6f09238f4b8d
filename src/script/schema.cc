// SPDX-License-Identifier: Apache-2.0
#include "script/schema.h"

#include <algorithm>
#include <atomic>
#include <charconv>

#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

#include "common/text.h"

namespace rxflow::script::internal {
namespace {

using rxflow::internal::Cat;

bool ParseCard(std::string_view s, uint32_t& min, uint32_t& max) {
  size_t dots = s.find("..");
  if (dots == std::string_view::npos) return false;
  std::string_view a = s.substr(0, dots), b = s.substr(dots + 2);
  if (std::from_chars(a.data(), a.data() + a.size(), min).ec != std::errc()) return false;
  if (b == "n") {
    max = kUnbounded;
    return true;
  }
  return std::from_chars(b.data(), b.data() + b.size(), max).ec == std::errc();
}

// The length part of "an1..35", "an", "n1..11" ("1..35", "", "1..11") → length bounds;
// false unless all of `s` is read.
bool ParseLength(std::string_view s, size_t& min, size_t& max) {
  if (s.empty()) return true;
  auto number = [](std::string_view d, size_t& v) {
    auto r = std::from_chars(d.data(), d.data() + d.size(), v);
    return r.ec == std::errc() && r.ptr == d.data() + d.size();
  };
  size_t dots = s.find("..");
  if (dots == std::string_view::npos) {
    size_t n;
    if (!number(s, n)) return false;
    min = max = n;
    return true;
  }
  return number(s.substr(0, dots), min) && number(s.substr(dots + 2), max);
}

// --- value types ------------------------------------------------------------------------
//
// The value-type notations of a structure table, as the notes' "Value types" section defines
// them from the 2017071 schema: `anN..M`/`an`, `nN..M`/`n`, `n2`, code lists `[Name: A, B]`
// and `[inline: A, B]`, patterns `[inline pattern P]`, and the named types below.

bool IsXmlSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// xsd:boolean, date, dateTime and base64Binary have whiteSpace="collapse": a schema
// validator ignores the whitespace around their values (and so does CheckSimple).
std::string_view Collapse(std::string_view s) {
  while (!s.empty() && IsXmlSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsXmlSpace(s.back())) s.remove_suffix(1);
  return s;
}

size_t CountDigits(std::string_view s, size_t pos) {
  size_t n = 0;
  while (pos + n < s.size() && s[pos + n] >= '0' && s[pos + n] <= '9') ++n;
  return n;
}

int Two(std::string_view s, size_t pos) { return (s[pos] - '0') * 10 + (s[pos + 1] - '0'); }

// The date at the start of an xsd:date or xsd:dateTime: -?YYYY-MM-DD, a year of four or more
// digits (no leading zero beyond four; 0000 does not exist in XML Schema 1.0) and a real
// calendar day. Returns its length, or npos.
size_t XsdDatePart(std::string_view s) {
  constexpr size_t kBad = std::string_view::npos;
  size_t i = s.empty() || s[0] != '-' ? 0 : 1;
  size_t year_digits = CountDigits(s, i);
  if (year_digits < 4 || (year_digits > 4 && s[i] == '0')) return kBad;
  unsigned mod400 = 0;  // the year modulo 400 is all the leap-year rule needs
  bool zero = true;
  for (size_t k = i; k < i + year_digits; ++k) {
    mod400 = (mod400 * 10 + static_cast<unsigned>(s[k] - '0')) % 400;
    zero &= s[k] == '0';
  }
  if (zero) return kBad;
  i += year_digits;
  if (i + 6 > s.size() || s[i] != '-' || CountDigits(s, i + 1) != 2 || s[i + 3] != '-' ||
      CountDigits(s, i + 4) < 2) {
    return kBad;
  }
  int month = Two(s, i + 1), day = Two(s, i + 4);
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1) return kBad;
  bool leap = (mod400 % 4 == 0 && mod400 % 100 != 0) || mod400 == 0;
  if (day > kDays[month - 1] + (month == 2 && leap ? 1 : 0)) return kBad;
  return i + 6;
}

// hh:mm:ss with an optional fraction of any number of digits, at `pos`; 24:00:00 (with a
// zero fraction) is the end of the day. Returns the position after it, or npos.
size_t XsdTimePart(std::string_view s, size_t pos) {
  constexpr size_t kBad = std::string_view::npos;
  if (pos + 8 > s.size() || CountDigits(s, pos) != 2 || s[pos + 2] != ':' ||
      CountDigits(s, pos + 3) != 2 || s[pos + 5] != ':' || CountDigits(s, pos + 6) < 2) {
    return kBad;
  }
  int hh = Two(s, pos), mm = Two(s, pos + 3), ss = Two(s, pos + 6);
  size_t end = pos + 8;
  bool zero_fraction = true;
  if (end < s.size() && s[end] == '.') {
    size_t n = CountDigits(s, end + 1);
    if (n == 0) return kBad;
    for (size_t k = end + 1; k < end + 1 + n; ++k) zero_fraction &= s[k] == '0';
    end += 1 + n;
  }
  if (hh == 24) return mm == 0 && ss == 0 && zero_fraction ? end : kBad;
  return hh <= 23 && mm <= 59 && ss <= 59 ? end : kBad;
}

// An optional zone ending the value at `pos`: Z, or +hh:mm / -hh:mm within ±14:00.
bool XsdZoneAtEnd(std::string_view s, size_t pos, bool& has_zone) {
  has_zone = pos < s.size();
  if (!has_zone) return true;
  if (s.size() - pos == 1) return s[pos] == 'Z';
  if (s.size() - pos != 6 || (s[pos] != '+' && s[pos] != '-') || CountDigits(s, pos + 1) != 2 ||
      s[pos + 3] != ':' || CountDigits(s, pos + 4) != 2) {
    return false;
  }
  int hh = Two(s, pos + 1), mm = Two(s, pos + 4);
  return hh < 14 ? mm <= 59 : hh == 14 && mm == 0;
}

// xsd:date (SimpleDateType): YYYY-MM-DD, optionally with a zone.
bool IsXsdDate(std::string_view s) {
  size_t end = XsdDatePart(s);
  bool has_zone;
  return end != std::string_view::npos && XsdZoneAtEnd(s, end, has_zone);
}

// xsd:dateTime (UtcDateType): YYYY-MM-DDThh:mm:ss, an optional fraction of any number of
// digits, an optional zone.
bool IsXsdDateTime(std::string_view s, bool& has_zone) {
  size_t end = XsdDatePart(s);
  if (end == std::string_view::npos || end >= s.size() || s[end] != 'T') return false;
  end = XsdTimePart(s, end + 1);
  return end != std::string_view::npos && XsdZoneAtEnd(s, end, has_zone);
}

// xsd:base64Binary: groups of four characters of A-Z a-z 0-9 + /, the last one padded with
// "=" or "==" (then its last data character carries no stray bits); whitespace may separate
// the characters; the empty string is valid.
bool IsBase64Binary(std::string_view s) {
  size_t n = 0, pad = 0;
  char last = 0, before_pad = 0;
  for (char c : s) {
    if (IsXmlSpace(c)) continue;
    ++n;
    if (c == '=') {
      if (pad++ == 0) before_pad = last;
      continue;
    }
    bool b64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '+' || c == '/';
    if (!b64 || pad > 0) return false;
    last = c;
  }
  if (n % 4 != 0 || pad > 2) return false;
  // The data character before the padding: its low 2 ("=") or 4 ("==") bits are zero.
  std::string_view allowed = pad == 1 ? "AEIMQUYcgkosw048" : pad == 2 ? "AQgw" : "";
  return pad == 0 || allowed.find(before_pad) != std::string_view::npos;
}

// One character of a pattern at `i`, escaped or not; false for an unsupported escape or a
// non-ASCII byte.
bool PatternChar(std::string_view p, size_t& i, unsigned char& c) {
  if (p[i] != '\\') {
    c = static_cast<unsigned char>(p[i++]);
    return c < 0x80;
  }
  if (++i >= p.size()) return false;
  char e = p[i++];
  switch (e) {
    case 'n':
      c = '\n';
      return true;
    case 'r':
      c = '\r';
      return true;
    case 't':
      c = '\t';
      return true;
    default:
      c = static_cast<unsigned char>(e);
      return std::string_view("\\|.-^?*+{}()[]").find(e) != std::string_view::npos;
  }
}

// A character class at `i` (just after `[`) into `atom`; why not, or "".
std::string PatternClass(std::string_view p, size_t& i, PatternAtom& atom) {
  bool negate = i < p.size() && p[i] == '^';
  if (negate) ++i;
  bool empty = true;
  while (true) {
    if (i >= p.size()) return "unterminated [";
    if (p[i] == ']' && !empty) {
      ++i;
      break;
    }
    if (p[i] == '[') return "class subtraction and nested classes are not supported";
    unsigned char lo, hi;
    if (!PatternChar(p, i, lo)) return "an unsupported escape or character in a class";
    hi = lo;
    if (i + 1 < p.size() && p[i] == '-' && p[i + 1] != ']') {
      ++i;
      if (p[i] == '[') return "class subtraction is not supported";
      if (!PatternChar(p, i, hi) || hi < lo) return "a bad range in a class";
    }
    for (unsigned v = lo; v <= hi; ++v) atom.set.set(v);
    empty = false;
  }
  if (negate) atom.set.flip();
  return "";
}

// The quantifier at `i`, if any (max SIZE_MAX: unbounded); why not, or "".
std::string PatternQuantifier(std::string_view p, size_t& i, size_t& min, size_t& max) {
  min = max = 1;
  if (i < p.size() && (p[i] == '?' || p[i] == '*' || p[i] == '+')) {
    min = p[i] == '+' ? 1 : 0;
    max = p[i] == '?' ? 1 : SIZE_MAX;
    ++i;
    return "";
  }
  if (i >= p.size() || p[i] != '{') return "";
  size_t close = p.find('}', i);
  if (close == std::string_view::npos) return "unterminated {";
  std::string_view q = p.substr(i + 1, close - i - 1);
  size_t comma = q.find(',');
  std::string_view a = q.substr(0, comma);
  if (std::from_chars(a.data(), a.data() + a.size(), min).ec != std::errc()) {
    return "a bad {n,m}";
  }
  max = min;
  if (comma != std::string_view::npos) {
    std::string_view b = q.substr(comma + 1);
    max = SIZE_MAX;
    if (!b.empty() && std::from_chars(b.data(), b.data() + b.size(), max).ec != std::errc()) {
      return "a bad {n,m}";
    }
  }
  if (max < min || min > 1000 || (max != SIZE_MAX && max > 1000)) return "a bad or too large {n,m}";
  i = close + 1;
  return "";
}

// Compiles an XSD pattern (implicitly anchored at both ends) of the subset the tables use:
// alternatives (`|`) of atoms, an atom being a character, a single-character escape (`\+`,
// `\-`, `\.`, `\\`, `\n`, ...) or a character class (`[0-9]`, `[\+\-]`, `[^...]`), each
// with an optional quantifier `?`, `*`, `+`, `{n}`, `{n,}` or `{n,m}`. Groups, `.`,
// multi-character escapes (`\d`, `\s`, ... which XML Schema defines over Unicode) and
// class subtraction are refused when the table loads. The 2017071 notes use two patterns
// in place: `010` (Verify/VerifyStatus/Code) and `[\+\-]?[0-9][0-9]?[0-9]?[0-9]?`
// (TimeZone/TimeZoneDifferenceQuantity); `n2` is the pattern `[0-9][0-9]`.
bool CompilePattern(std::string_view p, std::vector<std::vector<PatternAtom>>& out,
                    std::string& error) {
  auto fail = [&](std::string_view why) {
    error = Cat("pattern ", p, ": ", why);
    return false;
  };
  out.assign(1, {});
  size_t i = 0;
  while (i < p.size()) {
    char c = p[i];
    if (c == '|') {
      out.emplace_back();
      ++i;
      continue;
    }
    PatternAtom atom;
    if (c == '[') {
      if (std::string why = PatternClass(p, ++i, atom); !why.empty()) return fail(why);
    } else if (std::string_view("().?*+{}]").find(c) != std::string_view::npos) {
      return fail(Cat("\"", std::string_view(&p[i], 1), "\" is not supported here"));
    } else {
      unsigned char v;
      if (!PatternChar(p, i, v)) return fail("an unsupported escape or a non-ASCII character");
      atom.set.set(v);
    }
    size_t min, max;
    if (std::string why = PatternQuantifier(p, i, min, max); !why.empty()) return fail(why);
    std::vector<PatternAtom>& alt = out.back();
    for (size_t k = 0; k < min; ++k) alt.push_back(atom);
    atom.repeat = PatternAtom::Repeat::kOptional;
    if (max == SIZE_MAX) {
      atom.repeat = PatternAtom::Repeat::kAny;
      alt.push_back(atom);
    } else {
      for (size_t k = min; k < max; ++k) alt.push_back(atom);
    }
  }
  return true;
}

// Runs one compiled alternative over `s` as a set of states (the atom to match next):
// linear in the text for any pattern.
bool MatchPattern(const std::vector<PatternAtom>& atoms, std::string_view s) {
  size_t n = atoms.size();
  std::vector<char> cur(n + 1, 0), next(n + 1, 0);
  auto close = [&](std::vector<char>& st) {
    for (size_t i = 0; i < n; ++i) {
      if (st[i] && atoms[i].repeat != PatternAtom::Repeat::kOne) st[i + 1] = 1;
    }
  };
  cur[0] = 1;
  close(cur);
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    std::fill(next.begin(), next.end(), 0);
    bool any = false;
    for (size_t i = 0; i < n; ++i) {
      if (!cur[i] || !atoms[i].set.test(c)) continue;
      any = true;
      next[atoms[i].repeat == PatternAtom::Repeat::kAny ? i : i + 1] = 1;
    }
    if (!any) return false;
    close(next);
    cur.swap(next);
  }
  return cur[n] != 0;
}

// "[ListName: A, B]", or "[inline: A, B]" for a list the schema defines in place.
bool MakeCodeList(std::string_view spec, size_t colon, SimpleType& t, std::string& error) {
  t.kind = SimpleType::Kind::kCodes;
  std::string_view name = rxflow::internal::Trim(spec.substr(0, colon));
  if (name != "inline") t.list_name = std::string(name);
  std::string_view rest = spec.substr(colon + 1);
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = rxflow::internal::Trim(rest.substr(0, comma));
    if (item.starts_with("\xE2\x80\xA6")) {  // "… N more": the list is known in part
      t.open = true;
    } else if (!item.empty()) {
      t.codes.emplace_back(item);
    }
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  if (t.codes.empty() && !t.open) {
    error = Cat("code list ", spec, " has no codes");
    return false;
  }
  return true;
}

// `an`: printable ASCII and spaces, at least one non-blank; `n`: [0-9]+(\.[0-9]+)?, the
// point counted in the length. anN..M and nN..M restrict them by maximum length.
bool MakeTextOrNumber(std::string_view spec, SimpleType& t, std::string& error) {
  bool is_an = spec.starts_with("an");
  bool is_n =
      !is_an && spec.starts_with('n') && (spec.size() == 1 || (spec[1] >= '0' && spec[1] <= '9'));
  if (!is_an && !is_n) {
    error = Cat("unknown value type [", spec, "]");
    return false;
  }
  t.kind = is_an ? SimpleType::Kind::kText : SimpleType::Kind::kNumeric;
  if (!ParseLength(spec.substr(is_an ? 2 : 1), t.min_len, t.max_len) || t.min_len > t.max_len) {
    error = Cat("bad length in value type ", spec);
    return false;
  }
  // The schema gives its type n1..5 maxLength 1 (not 5): a schema validator refuses "12"
  // in FacilitySpecificHoursOfAdministrationTiming/HoursOfAdministrationValue. RxFlow
  // follows the schema, not the name: it accepts and refuses what the schema does, so a
  // message it accepts passes a partner's XSD validation.
  if (spec == "n1..5") t.max_len = 1;
  return true;
}

// Builds the simple type a value-type notation names; false, with `error`, for a notation
// it does not know (a table's typo is a load error, not a type that accepts anything).
bool MakeSimple(std::string_view spec, SimpleType& t, std::string& error) {
  using Kind = SimpleType::Kind;
  t = SimpleType();
  t.spec = std::string(spec);
  auto codes = [&](std::initializer_list<const char*> list) {
    t.kind = Kind::kCodes;
    t.list_name = std::string(spec);
    for (const char* c : list) t.codes.emplace_back(c);
    return true;
  };
  auto kind = [&](Kind k) {
    t.kind = k;
    return true;
  };
  auto text = [&](size_t max) {  // `an` restricted by length
    t.kind = Kind::kText;
    t.max_len = max;
    return true;
  };
  if (spec.starts_with("inline pattern ")) {
    t.kind = Kind::kPattern;
    t.pattern_source = std::string(spec.substr(15));
    return CompilePattern(t.pattern_source, t.pattern, error);
  }
  if (size_t colon = spec.find(':'); colon != std::string_view::npos) {
    return MakeCodeList(spec, colon, t, error);
  }
  // XML Schema types.
  if (spec == "string") {
    t.kind = Kind::kString;
    t.min_len = 0;
    return true;
  }
  if (spec == "date" || spec == "SimpleDateType") return kind(Kind::kDate);
  if (spec == "dateTime" || spec == "UtcDateType") return kind(Kind::kDateTime);
  if (spec == "boolean") return kind(Kind::kBoolean);
  if (spec == "base64Binary") {
    t.kind = Kind::kBase64;
    t.min_len = 0;
    return true;
  }
  // SCRIPT's named types.
  if (spec == "Code") return text(SIZE_MAX);  // the characters of `an`, no length limit
  if (spec == "QualifiedAddress") {
    // Header To and From: GeneralAddressType text with @Qualifier from AddressTypeQualifier
    // (NCPDP's 2017071 schema, ecl.xsd).
    t.attribute = "Qualifier";
    t.attribute_codes = {"P", "C", "M", "D", "CF", "ZZZ", "PY", "DIRECT", "REMS"};
    return text(255);
  }
  if (spec == "GeneralAddressType") return text(255);
  if (spec == "MailAddressType") return text(80);
  if (spec == "PasswordType") {
    // xsd:string; its required @Type="PasswordDigest" is an attribute the validator knows
    // but does not check (only QualifiedAddress's @Qualifier is: no codes here).
    t.attribute = "Type";
    t.kind = Kind::kString;
    t.min_len = 0;
    return true;
  }
  // Patterns of literal alternatives (AND|OR, 1|2, ...): code lists.
  if (spec == "ANDORTHENNOT") return codes({"AND", "OR", "THEN", "NOT"});
  if (spec == "ANDORTO") return codes({"AND", "OR", "TO"});
  if (spec == "ANDOR") return codes({"AND", "OR"});
  if (spec == "TOOR") return codes({"TO", "OR"});
  if (spec == "BodyMetricQualifier") return codes({"1", "2"});
  if (spec == "n2") {  // exactly two digits: pattern [0-9][0-9], maxLength 2
    t.kind = Kind::kPattern;
    t.pattern_source = "[0-9][0-9]";
    return CompilePattern(t.pattern_source, t.pattern, error);
  }
  return MakeTextOrNumber(spec, t, error);
}

struct Line {
  size_t number;
  size_t indent;          // 0 for top-level "- ", 1 for "  - ", ...
  std::string_view text;  // after "- "
};

class StructureParser {
 public:
  explicit StructureParser(Schema& s) : s_(s) {}

  absl::Status Parse(std::string_view text) {
    // Split into sections.
    size_t line_no = 0;
    int current = -1;
    std::vector<Line> lines;
    auto flush = [&]() -> absl::Status {
      if (current < 0) return absl::OkStatus();
      absl::Status st = BuildType(current, lines);
      lines.clear();
      return st;
    };
    while (!text.empty()) {
      size_t nl = text.find('\n');
      std::string_view raw = text.substr(0, nl);
      text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
      ++line_no;
      if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
      std::string_view t = rxflow::internal::Trim(raw);
      if (t.empty() || t[0] == '#' ? (!t.starts_with("###")) : false) continue;
      if (t.starts_with("###")) {
        RXFLOW_RETURN_IF_ERROR(flush());
        std::string_view head = rxflow::internal::Trim(t.substr(3));
        std::string_view name = head.substr(0, head.find(' '));
        current = TypeFor(name);
        ComplexType& ct = s_.types[current];
        if (defined_[current]) {
          return absl::InvalidArgumentError(
              Cat("line ", line_no, ": type ", name, " defined twice"));
        }
        defined_[current] = true;
        size_t at = head.find("(@");
        if (at != std::string_view::npos) {
          std::string_view attrs = head.substr(at + 1, head.find(')', at) - at - 1);
          while (!attrs.empty()) {
            size_t sp = attrs.find(' ');
            std::string_view a = attrs.substr(0, sp);
            if (!a.empty() && a[0] == '@') ct.attributes.emplace_back(a.substr(1));
            if (sp == std::string_view::npos) break;
            attrs = attrs.substr(sp + 1);
          }
        }
        continue;
      }
      if (current < 0) continue;  // preamble
      size_t lead = raw.find_first_not_of(' ');
      if (raw.substr(lead, 2) != "- ") {
        return absl::InvalidArgumentError(Cat("line ", line_no, ": expected \"- \" item"));
      }
      lines.push_back(Line{line_no, lead / 2, raw.substr(lead + 2)});
    }
    RXFLOW_RETURN_IF_ERROR(flush());
    for (size_t i = 0; i < s_.types.size(); ++i) {
      if (!defined_[i]) {
        return absl::InvalidArgumentError(
            Cat("type ", s_.types[i].name, " is used but not defined"));
      }
    }
    s_.root = s_.FindType("Message");
    if (s_.root < 0) return absl::InvalidArgumentError("the table has no Message type");
    return absl::OkStatus();
  }

 private:
  int TypeFor(std::string_view name) {
    int i = s_.FindType(name);
    if (i >= 0) return i;
    s_.types.emplace_back();
    s_.types.back().name = std::string(name);
    defined_.push_back(false);
    i = static_cast<int>(s_.types.size()) - 1;
    s_.type_index.emplace(std::string(name), i);
    return i;
  }

  // The simple type of a value-type notation (one per distinct notation); -1 and `error`
  // for a notation MakeSimple does not know.
  int SimpleFor(std::string_view spec, std::string& error) {
    auto it = simple_index_.find(std::string(spec));
    if (it != simple_index_.end()) return it->second;
    SimpleType st;
    if (!MakeSimple(spec, st, error)) return -1;
    s_.simples.push_back(std::move(st));
    int i = static_cast<int>(s_.simples.size()) - 1;
    simple_index_.emplace(std::string(spec), i);
    return i;
  }

  int DeclFor(int type, std::string_view name) {
    ComplexType& ct = s_.types[type];
    auto it = ct.decl_index.find(std::string(name));
    if (it != ct.decl_index.end()) return it->second;
    ct.decls.push_back(ElementDecl{std::string(name)});
    int i = static_cast<int>(ct.decls.size()) - 1;
    ct.decl_index.emplace(std::string(name), i);
    return i;
  }

  // Builds type `t`'s content from its item lines.
  absl::Status BuildType(int t, const std::vector<Line>& lines) {
    Particle root;
    root.kind = Particle::Kind::kSequence;
    size_t pos = 0;
    RXFLOW_RETURN_IF_ERROR(BuildChildren(t, lines, pos, 0, root));
    s_.types[t].content = std::move(root);
    return absl::OkStatus();
  }

  absl::Status BuildChildren(int t, const std::vector<Line>& lines, size_t& pos, size_t indent,
                             Particle& parent) {
    while (pos < lines.size() && lines[pos].indent >= indent) {
      const Line& l = lines[pos];
      if (l.indent > indent) {
        return absl::InvalidArgumentError(Cat("line ", l.number, ": unexpected indentation"));
      }
      ++pos;
      std::string_view text = l.text;
      Particle p;
      if (text.starts_with("(one of ") || text.starts_with("(seq ")) {
        bool choice = text[1] == 'o';
        std::string_view card = text.substr(choice ? 8 : 5);
        card = card.substr(0, card.find(')'));
        if (!ParseCard(card, p.min, p.max)) {
          return absl::InvalidArgumentError(Cat("line ", l.number, ": bad cardinality"));
        }
        p.kind = choice ? Particle::Kind::kChoice : Particle::Kind::kSequence;
        RXFLOW_RETURN_IF_ERROR(BuildChildren(t, lines, pos, indent + 1, p));
        parent.children.push_back(std::move(p));
        continue;
      }
      // "Name min..max", then optional " [simple]" or " : Type".
      size_t sp = text.find(' ');
      std::string_view name = text.substr(0, sp);
      std::string_view rest = sp == std::string_view::npos ? "" : text.substr(sp + 1);
      size_t sp2 = rest.find(' ');
      std::string_view card = rest.substr(0, sp2);
      rest = sp2 == std::string_view::npos ? "" : rxflow::internal::Trim(rest.substr(sp2 + 1));
      if (name.empty() || !ParseCard(card, p.min, p.max)) {
        return absl::InvalidArgumentError(Cat("line ", l.number, ": expected \"Name min..max\""));
      }
      p.kind = Particle::Kind::kElement;
      p.decl = DeclFor(t, name);
      ElementDecl decl = s_.types[t].decls[p.decl];
      if (!rest.empty() && rest[0] == '[') {
        size_t close = rest.rfind(']');
        std::string error = "missing ]";
        int simple = -1;
        if (close != std::string_view::npos) simple = SimpleFor(rest.substr(1, close - 1), error);
        if (simple < 0) return absl::InvalidArgumentError(Cat("line ", l.number, ": ", error));
        decl.simple_type = simple;
      } else if (!rest.empty() && rest[0] == ':') {
        decl.complex_type = TypeFor(rxflow::internal::Trim(rest.substr(1)));
      } else if (pos < lines.size() && lines[pos].indent > indent) {
        // Inline children: an anonymous type.
        int anon = TypeFor(Cat(s_.types[t].name, "/", name));
        defined_[anon] = true;
        Particle content;
        content.kind = Particle::Kind::kSequence;
        RXFLOW_RETURN_IF_ERROR(BuildChildren(anon, lines, pos, indent + 1, content));
        s_.types[anon].content = std::move(content);
        decl.complex_type = anon;
      } else {
        // No type in the schema (xsd:anyType): any text.
        std::string error;
        decl.simple_type = SimpleFor("string", error);
      }
      s_.types[t].decls[p.decl] = decl;  // same name, same declaration (XSD rule)
      parent.children.push_back(std::move(p));
    }
    return absl::OkStatus();
  }

  Schema& s_;
  std::vector<bool> defined_;
  absl::flat_hash_map<std::string, int> simple_index_;
};

// --- content-model matching -------------------------------------------------------------

bool FirstContains(const Particle& p, int decl) {
  switch (p.kind) {
    case Particle::Kind::kElement:
      return p.decl == decl;
    case Particle::Kind::kChoice:
      for (const Particle& c : p.children) {
        if (FirstContains(c, decl)) return true;
      }
      return false;
    case Particle::Kind::kSequence:
      for (const Particle& c : p.children) {
        if (FirstContains(c, decl)) return true;
        if (c.min > 0 && !(c.kind != Particle::Kind::kElement && [&] {
              // a group with min>0 can still be empty if all its content is optional
              return false;
            }())) {
          // Required element or group: the first set stops here unless it can be empty.
          bool nullable = false;
          if (c.kind == Particle::Kind::kSequence) {
            nullable = std::all_of(c.children.begin(), c.children.end(),
                                   [](const Particle& x) { return x.min == 0; });
          }
          if (!nullable) return false;
        }
      }
      return false;
  }
  return false;
}

bool Nullable(const Particle& p) {
  if (p.min == 0) return true;
  switch (p.kind) {
    case Particle::Kind::kElement:
      return false;
    case Particle::Kind::kSequence:
      return std::all_of(p.children.begin(), p.children.end(), Nullable);
    case Particle::Kind::kChoice:
      return std::any_of(p.children.begin(), p.children.end(), Nullable);
  }
  return false;
}

int FirstDecl(const Particle& p) {
  if (p.kind == Particle::Kind::kElement) return p.decl;
  for (const Particle& c : p.children) {
    int d = FirstDecl(c);
    if (d >= 0) return d;
  }
  return -1;
}

struct Matcher {
  const std::vector<int>& kids;
  size_t pos = 0;
  size_t fail_pos = 0;
  int fail_decl = -1;
  const Particle* fail_choice = nullptr;  // set when the failure is an unmatched choice
  bool failed = false;

  void Fail(int decl, const Particle* choice = nullptr) {
    if (!failed || pos >= fail_pos) {
      fail_pos = pos;
      fail_decl = decl;
      fail_choice = choice;
      failed = true;
    }
  }

  bool Match(const Particle& p) {
    switch (p.kind) {
      case Particle::Kind::kElement: {
        uint32_t count = 0;
        while (count < p.max && pos < kids.size() && kids[pos] == p.decl) {
          ++pos;
          ++count;
        }
        if (count < p.min) {
          Fail(p.decl);
          return false;
        }
        return true;
      }
      case Particle::Kind::kSequence: {
        uint32_t reps = 0;
        while (reps < p.max) {
          size_t save = pos;
          // A repetition beyond the minimum starts only if the next child can begin it.
          if (reps >= p.min && (pos >= kids.size() || !FirstContains(p, kids[pos]))) break;
          bool ok = true;
          for (const Particle& c : p.children) {
            if (!Match(c)) {
              ok = false;
              break;
            }
          }
          if (!ok) {
            pos = save;
            break;
          }
          ++reps;
          if (pos == save) break;  // matched empty: further repetitions change nothing
        }
        if (reps < p.min && !(reps == 0 && pos < kids.size() ? false : Nullable(p))) {
          if (reps < p.min && !Nullable(p)) return false;
        }
        return true;
      }
      case Particle::Kind::kChoice: {
        uint32_t reps = 0;
        while (reps < p.max) {
          size_t save = pos;
          const Particle* alt = nullptr;
          if (pos < kids.size()) {
            for (const Particle& c : p.children) {
              if (FirstContains(c, kids[pos])) {
                alt = &c;
                break;
              }
            }
          }
          if (!alt) break;
          if (!Match(*alt)) {
            pos = save;
            break;
          }
          ++reps;
          if (pos == save) break;
        }
        if (reps < p.min) {
          for (const Particle& c : p.children) {
            if (Nullable(c)) return true;
          }
          Fail(FirstDecl(p), &p);
          return false;
        }
        return true;
      }
    }
    return false;
  }
};

}  // namespace

int ComplexType::FindDecl(std::string_view name) const {
  // Linear for small types (most are), hash lookup without a temporary string otherwise.
  if (decls.size() <= 12) {
    for (size_t i = 0; i < decls.size(); ++i) {
      if (decls[i].name == name) return static_cast<int>(i);
    }
    return -1;
  }
  auto it = decl_index.find(absl::string_view(name.data(), name.size()));
  return it == decl_index.end() ? -1 : it->second;
}

int ComplexType::FindDecl(std::string_view name, int hint) const {
  constexpr size_t kLookAhead = 6;
  size_t from = hint < 0 ? 0 : static_cast<size_t>(hint);
  for (size_t i = from; i < decls.size() && i < from + kLookAhead; ++i) {
    if (decls[i].name == name) return static_cast<int>(i);
  }
  return FindDecl(name);
}

uint64_t NewSchemaId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

int Schema::FindType(std::string_view name) const {
  auto it = type_index.find(std::string(name));
  return it == type_index.end() ? -1 : it->second;
}

StatusOr<Schema> ParseStructure(std::string_view text) {
  Schema s;
  StructureParser parser(s);
  RXFLOW_RETURN_IF_ERROR(parser.Parse(text));
  return s;
}

// --- version rules ----------------------------------------------------------------------

namespace {

std::vector<std::string_view> Words(std::string_view line) {
  std::vector<std::string_view> out;
  while (!line.empty()) {
    size_t start = line.find_first_not_of(' ');
    if (start == std::string_view::npos) break;
    line = line.substr(start);
    size_t end = line.find(' ');
    out.push_back(line.substr(0, end));
    if (end == std::string_view::npos) break;
    line = line.substr(end);
  }
  return out;
}

// Calls fn(type index) for every complex type that is the type of an element named
// `parent` (or every type, for "*").
template <typename F>
void ForParentTypes(Schema& s, std::string_view parent, F&& fn) {
  // Collect first: `fn` may add types (wrappers), which invalidates references.
  std::vector<bool> done(s.types.size(), false);
  std::vector<int> targets;
  for (const ComplexType& type : s.types) {
    for (const ElementDecl& d : type.decls) {
      if (d.complex_type < 0 || done[d.complex_type]) continue;
      if (parent == "*" || d.name == parent) {
        done[d.complex_type] = true;
        targets.push_back(d.complex_type);
      }
    }
  }
  for (int t : targets) fn(t);
}

void RemoveParticles(Particle& p, int decl) {
  auto& c = p.children;
  c.erase(std::remove_if(c.begin(), c.end(),
                         [&](const Particle& x) {
                           return x.kind == Particle::Kind::kElement && x.decl == decl;
                         }),
          c.end());
  for (Particle& x : c) RemoveParticles(x, decl);
}

// `code LIST OLD NEW`: renames a code in every list of that name; false if none has it.
bool ApplyCodeRule(Schema& s, const Rule& r) {
  bool found = false;
  for (SimpleType& st : s.simples) {
    if (st.list_name != r.list) continue;
    found |= std::find(st.codes.begin(), st.codes.end(), r.old_code) != st.codes.end();
    std::replace(st.codes.begin(), st.codes.end(), r.old_code, r.name);
  }
  return found;
}

// Wrap: the declaration `d` of type `t` becomes the wrapper, of a new type holding the
// element under its new name.
void WrapDecl(Schema& s, int t, int d, const Rule& r) {
  const ComplexType& ct = s.types[t];
  std::string anon_name = Cat(ct.name, "/", r.wrapper);
  int anon = s.FindType(anon_name);
  if (anon < 0) {
    ComplexType wrapper;
    wrapper.name = anon_name;
    wrapper.decls.push_back(ElementDecl{r.name, ct.decls[d].complex_type, ct.decls[d].simple_type});
    wrapper.decl_index[r.name] = 0;
    wrapper.content.kind = Particle::Kind::kSequence;
    Particle inner;
    inner.decl = 0;
    wrapper.content.children.push_back(inner);
    s.types.push_back(std::move(wrapper));
    anon = static_cast<int>(s.types.size()) - 1;
    s.type_index[anon_name] = anon;
  }
  ComplexType& ct2 = s.types[t];  // push_back may have moved it
  ct2.decl_index.erase(ct2.decls[d].name);
  ct2.decls[d].name = r.wrapper;
  ct2.decls[d].complex_type = anon;
  ct2.decls[d].simple_type = -1;
  ct2.decl_index[r.wrapper] = d;
}

// wrap, rename or remove PARENT/ELEMENT in every type of a PARENT; false if none has it.
bool ApplyElementRule(Schema& s, const Rule& r) {
  bool applied = false;
  ForParentTypes(s, r.parent, [&](int t) {
    int d = s.types[t].FindDecl(r.element);
    if (d < 0) return;
    applied = true;
    ComplexType& ct = s.types[t];
    if (r.kind == Rule::Kind::kRemove) {
      RemoveParticles(ct.content, d);
    } else if (r.kind == Rule::Kind::kRename) {
      ct.decl_index.erase(ct.decls[d].name);
      ct.decls[d].name = r.name;
      ct.decl_index[r.name] = d;
    } else {
      WrapDecl(s, t, d, r);
    }
  });
  return applied;
}

}  // namespace

absl::Status ApplyRules(std::string_view text, Profile::Impl& impl) {
  Schema& s = impl.schema;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = rxflow::internal::Trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string_view> w = Words(line);
    auto bad = [&](std::string_view why) {
      return absl::InvalidArgumentError(Cat("profile line ", line_no, ": ", why));
    };
    auto split = [&](std::string_view pe, std::string& parent, std::string& element) {
      size_t slash = pe.find('/');
      if (slash == std::string_view::npos) return false;
      parent = std::string(pe.substr(0, slash));
      element = std::string(pe.substr(slash + 1));
      return !parent.empty() && !element.empty();
    };
    if (w[0] == "version" && w.size() == 2) {
      impl.name = std::string(w[1]);
    } else if (w[0] == "attribute" && w.size() == 3) {
      impl.attributes.emplace_back(std::string(w[1]), std::string(w[2]));
    } else if (w[0] == "detect" && w.size() == 2) {
      impl.detect.emplace_back(w[1]);
    } else if (w[0] == "code" && w.size() == 4) {
      Rule r;
      r.kind = Rule::Kind::kCode;
      r.list = std::string(w[1]);
      r.old_code = std::string(w[2]);
      r.name = std::string(w[3]);
      if (!ApplyCodeRule(s, r)) return bad(Cat("no code ", r.old_code, " in a code list ", r.list));
      impl.rules.push_back(std::move(r));
    } else if ((w[0] == "wrap" && w.size() == 3) || (w[0] == "rename" && w.size() == 3) ||
               (w[0] == "remove" && w.size() == 2)) {
      Rule r;
      if (!split(w[1], r.parent, r.element)) return bad("expected PARENT/ELEMENT");
      if (w[0] == "wrap") {
        r.kind = Rule::Kind::kWrap;
        std::string_view target = w[2];
        size_t slash = target.find('/');
        if (slash == std::string_view::npos) return bad("expected WRAPPER/NAME");
        r.wrapper = std::string(target.substr(0, slash));
        r.name = std::string(target.substr(slash + 1));
      } else if (w[0] == "rename") {
        r.kind = Rule::Kind::kRename;
        r.name = std::string(w[2]);
      } else {
        r.kind = Rule::Kind::kRemove;
      }
      if (!ApplyElementRule(s, r)) return bad(Cat("no element ", w[1], " in the structure table"));
      impl.rules.push_back(std::move(r));
    } else {
      return bad(Cat("unknown directive \"", line.substr(0, 40), "\""));
    }
  }
  return absl::OkStatus();
}

// --- validator --------------------------------------------------------------------------

namespace {

// Why `text` is not a code of `t` (empty: it is).
std::string CheckCode(const SimpleType& t, std::string_view text) {
  if (!rxflow::internal::IsPrintableAscii(text)) {
    return "contains characters outside printable ASCII";
  }
  if (t.open) return text.empty() ? "empty value" : "";
  if (std::find(t.codes.begin(), t.codes.end(), text) != t.codes.end()) return "";
  std::string list;
  for (size_t i = 0; i < t.codes.size() && i < 12; ++i) {
    if (i) list += ", ";
    list += t.codes[i];
  }
  if (t.codes.size() > 12) list += ", ...";
  return Cat(
      "\"", text.substr(0, 40), "\" is not in ",
      t.list_name.empty() ? std::string("the element's code list") : Cat("code list ", t.list_name),
      " (", list, ")");
}

}  // namespace

ValueCheck CheckSimple(const SimpleType& t, std::string_view text) {
  using rxflow::internal::IsPrintableAscii;
  ValueCheck r;
  auto fail = [&r](IssueCode code, std::string message) {
    r.code = code;
    r.message = std::move(message);
    return r;
  };
  auto got = [&] { return Cat(", got \"", text.substr(0, 40), "\""); };
  switch (t.kind) {
    case SimpleType::Kind::kText:
      if (!IsPrintableAscii(text)) {
        return fail(IssueCode::kValue,
                    "contains characters outside printable ASCII (SCRIPT's an character set)");
      }
      // `an`'s pattern needs one character that is not a space.
      if (text.size() < t.min_len || rxflow::internal::Trim(text).empty()) {
        return fail(IssueCode::kRequired, "empty value");
      }
      if (text.size() > t.max_len) {
        return fail(IssueCode::kTooLong, Cat("value of ", text.size(),
                                             " characters exceeds the maximum of ", t.max_len));
      }
      return r;
    case SimpleType::Kind::kString:
      return r;
    case SimpleType::Kind::kNumeric:
      if (!rxflow::internal::IsScriptNumeric(text)) {
        return fail(IssueCode::kValue, Cat("expected a number (digits, optional decimals)", got()));
      }
      if (text.size() > t.max_len || text.size() < t.min_len) {
        return fail(IssueCode::kTooLong, Cat("number of ", text.size(), " characters is outside ",
                                             t.min_len, "..", t.max_len));
      }
      return r;
    case SimpleType::Kind::kDate:
      if (!IsXsdDate(Collapse(text))) {
        return fail(IssueCode::kValue, Cat("expected a date YYYY-MM-DD", got()));
      }
      return r;
    case SimpleType::Kind::kDateTime: {
      bool has_zone = false;
      if (!IsXsdDateTime(Collapse(text), has_zone)) {
        return fail(
            IssueCode::kValue,
            Cat("expected a dateTime YYYY-MM-DDThh:mm:ss (optional fraction and zone)", got()));
      }
      if (!has_zone) {
        // Valid for the schema; RxFlow reads it as UTC (docs/mapping.md §4.6) and says so.
        r.severity = Severity::kWarning;
        r.message = "dateTime without a time zone: read as UTC";
      }
      return r;
    }
    case SimpleType::Kind::kBoolean: {
      std::string_view v = Collapse(text);
      if (v != "true" && v != "false" && v != "1" && v != "0") {
        return fail(IssueCode::kValue, Cat("expected a boolean (true, false, 1 or 0)", got()));
      }
      return r;
    }
    case SimpleType::Kind::kBase64:
      if (!IsBase64Binary(text)) return fail(IssueCode::kValue, "expected base64 data");
      return r;
    case SimpleType::Kind::kCodes:
      if (std::string why = CheckCode(t, text); !why.empty()) return fail(IssueCode::kValue, why);
      return r;
    case SimpleType::Kind::kPattern:
      for (const std::vector<PatternAtom>& alt : t.pattern) {
        if (MatchPattern(alt, text)) return r;
      }
      return fail(IssueCode::kValue,
                  Cat("\"", text.substr(0, 40), "\" does not match the pattern ", t.pattern_source,
                      t.spec.starts_with("inline") ? "" : Cat(" of ", t.spec)));
  }
  return r;
}

std::vector<Validator::Frame>& Validator::SpareFrames() {
  thread_local std::vector<Frame> spare;
  return spare;
}

Validator::Validator(const Schema& schema, IssueList& issues) : schema_(schema), issues_(issues) {
  stack_.swap(SpareFrames());  // empty when another validator on this thread holds them
  stack_.reserve(16);
}

// What is kept for the next message is bounded: a frame that grew for a hostile message
// (250,000 siblings, or nesting as deep as the reader allows) is not kept at that size.
Validator::~Validator() {
  constexpr size_t kKeptFrames = 32, kKeptKids = 64;
  std::vector<Frame>& spare = SpareFrames();
  if (!spare.empty()) return;
  if (stack_.size() > kKeptFrames) stack_.resize(kKeptFrames);
  for (Frame& f : stack_) {
    if (f.kids.capacity() > kKeptKids) {
      f.kids = {};
      f.kids.reserve(16);
    }
    if (f.kid_names.capacity() > kKeptKids) {
      f.kid_names = {};
      f.kid_names.reserve(16);
    }
    if (f.kid_counts.capacity() > kKeptKids) f.kid_counts = {};
  }
  spare.swap(stack_);
}

// Frames are pooled: a frame popped keeps its vectors' capacity for the next element at
// that depth, and the next validator on the thread takes them (SpareFrames), so a warm
// validator allocates nothing per element or per message.
Validator::Frame& Validator::Push() {
  if (depth_ == stack_.size()) {
    // A new depth: room for the children of most elements, so that its first elements do
    // not grow the vectors one doubling at a time.
    Frame& fresh = stack_.emplace_back();
    fresh.kids.reserve(16);
    fresh.kid_names.reserve(16);
  }
  Frame& f = stack_[depth_++];
  f.name = {};
  f.type = -1;
  f.simple = -1;
  f.unknown = false;
  f.has_text = false;
  f.kids.clear();
  f.kid_names.clear();
  f.same_index = 0;
  f.kid_counts.clear();
  return f;
}

std::string Validator::Path(size_t depth) const {
  std::string out;
  for (size_t i = 0; i <= depth && i < depth_; ++i) {
    out.push_back('/');
    out.append(stack_[i].name);
    // XPath index among the same-named siblings seen so far, when there is more than one
    // (an open element is its parent's last child; past kScanKids children the index was
    // counted when it started).
    if (i == 0) continue;
    uint32_t same_index = stack_[i].same_index;
    if (same_index == 0) {  // a short list of siblings: this element is the last of them
      for (std::string_view k : stack_[i - 1].kid_names) same_index += k == stack_[i].name;
    }
    if (same_index > 1) rxflow::internal::Append(out, "[", same_index, "]");
  }
  return out;
}

std::string Validator::ChildPath(size_t depth, size_t kid) const {
  std::string out = Path(depth);
  const Frame& f = stack_[depth];
  std::string_view name = f.kid_names[kid];
  size_t n = 0, total = 0;
  for (size_t k = 0; k < f.kid_names.size(); ++k) {
    if (f.kid_names[k] == name) {
      ++total;
      if (k <= kid) ++n;
    }
  }
  rxflow::internal::Append(out, "/", name);
  if (total > 1) rxflow::internal::Append(out, "[", n, "]");
  return out;
}

void Validator::Report(std::string path, IssueCode code, std::string message) {
  ++errors_;
  issues_.Error(std::move(path), code, std::move(message));
}

void Validator::Start(std::string_view name) {
  if (depth_ == 0) {
    Frame& f = Push();
    f.name = name;
    if (root_seen_) {
      Report("/" + std::string(name), IssueCode::kStructure, "a second root element");
      f.unknown = true;
    } else if (name != schema_.types[schema_.root].name) {
      Report("/" + std::string(name), IssueCode::kStructure,
             Cat("expected root element ", schema_.types[schema_.root].name));
      f.unknown = true;
    } else {
      f.type = schema_.root;
    }
    root_seen_ = true;
    return;
  }
  size_t parent_index = depth_ - 1;
  int type = -1, simple = -1;
  bool unknown = false;
  uint32_t same_index = 0;
  {
    Frame& parent = stack_[parent_index];
    parent.kid_names.push_back(name);
    // Same-named siblings so far, this one included: while the list is short, counted by
    // Path when an issue needs it (most elements never do); then a count per name kept
    // here, so that no path costs a scan of a long run of siblings.
    if (parent.kid_names.size() > kScanKids) {
      if (parent.kid_counts.empty()) {
        for (size_t k = 0; k + 1 < parent.kid_names.size(); ++k) {
          std::string_view n = parent.kid_names[k];
          ++parent.kid_counts[absl::string_view(n.data(), n.size())];
        }
      }
      same_index = ++parent.kid_counts[absl::string_view(name.data(), name.size())];
    }
    if (parent.unknown) {
      unknown = true;
    } else if (parent.type < 0) {
      unknown = true;
      parent.kids.push_back(-1);
    } else {
      const ComplexType& ct = schema_.types[parent.type];
      int d = ct.FindDecl(name, parent.kids.empty() ? 0 : parent.kids.back());
      parent.kids.push_back(d);
      if (d < 0) {
        unknown = true;
      } else {
        type = ct.decls[d].complex_type;
        simple = ct.decls[d].simple_type;
      }
    }
  }
  bool parent_unknown = stack_[parent_index].unknown;
  bool parent_simple = !parent_unknown && stack_[parent_index].type < 0;
  std::string_view parent_name = stack_[parent_index].name;
  Frame& f = Push();  // may reallocate stack_: no Frame references held across it
  f.name = name;
  f.same_index = same_index;
  f.type = type;
  f.simple = simple;
  f.unknown = unknown;
  if (unknown && !parent_unknown) {
    if (parent_simple) {
      Report(Path(depth_ - 1), IssueCode::kStructure, "element not allowed inside a value element");
    } else {
      Report(Path(depth_ - 1), IssueCode::kStructure,
             Cat("unknown element ", name, " in ", parent_name));
    }
  }
}

void Validator::Attribute(std::string_view name, std::string_view value) {
  if (depth_ == 0) return;
  const Frame& f = stack_[depth_ - 1];
  if (f.unknown) return;
  if (f.simple < 0 || schema_.simples[f.simple].attribute != name) {
    // Message's `version` and `release` (SCRIPT 10.6's) are read to choose the profile.
    const bool root = depth_ == 1;
    const std::vector<std::string>* declared =
        f.type >= 0 ? &schema_.types[f.type].attributes : nullptr;
    if ((root && (name == "version" || name == "release")) ||
        (declared && std::find(declared->begin(), declared->end(), name) != declared->end())) {
      return;
    }
    // Not in the schema: nothing reads it, and the sender is told so (never dropped unsaid).
    issues_.Add(Severity::kWarning, IssueCode::kStructure, Cat(Path(depth_ - 1), "/@", name),
                Cat("attribute ", name, " is not part of SCRIPT: ignored"));
    return;
  }
  const SimpleType& t = schema_.simples[f.simple];
  if (t.attribute_codes.empty() || std::find(t.attribute_codes.begin(), t.attribute_codes.end(),
                                             value) != t.attribute_codes.end()) {
    return;
  }
  std::string allowed;
  for (const std::string& c : t.attribute_codes) {
    if (!allowed.empty()) allowed += ", ";
    allowed += c;
  }
  Report(Cat(Path(depth_ - 1), "/@", name), IssueCode::kValue,
         Cat("\"", value.substr(0, 40), "\" is not one of ", allowed));
}

void Validator::Text(std::string_view text) {
  if (depth_ == 0) return;
  Frame& f = stack_[depth_ - 1];
  if (f.unknown) return;
  if (f.simple < 0) {
    if (!rxflow::internal::Trim(text).empty()) {
      Report(Path(depth_ - 1), IssueCode::kStructure, "text is not allowed here");
    }
    return;
  }
  f.has_text = true;
  ValueCheck check = CheckSimple(schema_.simples[f.simple], text);
  if (check.message.empty()) return;
  if (!check.accepted()) {
    Report(Path(depth_ - 1), check.code, std::move(check.message));
  } else {  // valid, with a warning (not counted as an error)
    issues_.Add(check.severity, check.code, Path(depth_ - 1), std::move(check.message));
  }
}

namespace {

void ChoiceNames(const Particle& p, const ComplexType& ct, std::string& out) {
  if (p.kind == Particle::Kind::kElement) {
    if (!out.empty()) out += ", ";
    out += ct.decls[p.decl].name;
    return;
  }
  if (p.kind == Particle::Kind::kChoice) {
    for (const Particle& c : p.children) ChoiceNames(c, ct, out);
  } else if (!p.children.empty()) {
    ChoiceNames(p.children.front(), ct, out);
  }
}

}  // namespace

void Validator::CheckContent(size_t depth) {
  Frame& f = stack_[depth];
  const ComplexType& ct = schema_.types[f.type];
  // An unknown child was reported already; the content model says nothing more useful.
  for (int k : f.kids) {
    if (k < 0) return;
  }
  // The last sequence of children each type accepted, per thread and schema: messages
  // repeat the same structures (an Identification with an NPI, an Address, a Phone), and a
  // sequence the content model matched once matches again — one comparison instead of a
  // match. Only accepted sequences are kept; anything else is matched (and reported) anew.
  // A few schemas per thread (a service reads 2017071 and writes 2023011), the oldest
  // replaced first.
  struct Accepted {
    uint64_t schema = 0;
    std::vector<std::vector<int>> by_type;
  };
  thread_local std::array<Accepted, 4> cache;
  thread_local size_t next_slot = 0;
  Accepted* accepted = nullptr;
  for (Accepted& a : cache) {
    if (a.schema == schema_.id && a.by_type.size() == schema_.types.size()) accepted = &a;
  }
  if (!accepted) {
    accepted = &cache[next_slot++ % cache.size()];
    accepted->schema = schema_.id;
    accepted->by_type.assign(schema_.types.size(), {});
  }
  std::vector<int>& last = accepted->by_type[static_cast<size_t>(f.type)];
  if (!last.empty() && last == f.kids) return;
  Matcher m{f.kids};
  bool ok = m.Match(ct.content);
  if (ok && m.pos == f.kids.size()) {
    last = f.kids;
    return;
  }
  size_t at = ok ? m.pos : m.fail_pos;
  if (!ok && m.fail_choice && (at >= f.kids.size() || !FirstContains(*m.fail_choice, f.kids[at]))) {
    std::string names;
    ChoiceNames(*m.fail_choice, ct, names);
    Report(Path(depth), IssueCode::kRequired, Cat("one of these elements is required: ", names));
    return;
  }
  if (!ok && m.fail_decl >= 0 && (at >= f.kids.size() || f.kids[at] != m.fail_decl)) {
    std::string_view want = ct.decls[m.fail_decl].name;
    bool later = false;
    for (size_t k = at; k < f.kids.size(); ++k) later |= f.kids[k] == m.fail_decl;
    if (at < f.kids.size() && at > 0 && f.kids[at] == f.kids[at - 1]) {
      size_t count = 0;
      for (int k : f.kids) count += k == f.kids[at];
      Report(ChildPath(depth, at), IssueCode::kStructure,
             Cat("too many ", f.kid_names[at], " elements (", count, ")"));
    } else if (later) {
      Report(ChildPath(depth, at), IssueCode::kStructure,
             Cat("element out of order: expected ", want, " before ", f.kid_names[at]));
    } else {
      Report(Cat(Path(depth), "/", want), IssueCode::kRequired,
             Cat("missing required element ", want));
    }
    return;
  }
  if (at < f.kids.size()) {
    // Either too many of one element, or out of order.
    size_t count = 0;
    for (size_t k = 0; k < f.kids.size(); ++k) count += f.kids[k] == f.kids[at];
    bool repeated = at > 0 && f.kids[at - 1] == f.kids[at];
    Report(ChildPath(depth, at), IssueCode::kStructure,
           repeated ? Cat("too many ", f.kid_names[at], " elements (", count, ")")
                    : Cat("element out of order or not allowed here: ", f.kid_names[at]));
  } else if (!ok) {
    Report(Path(depth), IssueCode::kStructure, "content does not match the schema");
  }
}

void Validator::End() {
  if (depth_ == 0) return;
  size_t depth = depth_ - 1;
  Frame& f = stack_[depth];
  if (!f.unknown) {
    if (f.simple >= 0 && !f.has_text) {
      // No text: an error unless the type accepts the empty string (string, base64Binary).
      if (!CheckSimple(schema_.simples[f.simple], {}).accepted()) {
        Report(Path(depth), IssueCode::kRequired, "empty value");
      }
    } else if (f.type >= 0) {
      CheckContent(depth);
    }
  }
  --depth_;
}

void Validator::Finish() {
  if (!root_seen_) Report("/", IssueCode::kStructure, "no root element");
  while (depth_ > 0) End();
}

}  // namespace rxflow::script::internal
