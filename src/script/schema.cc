#include "script/schema.h"

#include <algorithm>
#include <charconv>

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

// "an1..35", "an", "n1..11", "n2" → length bounds.
bool ParseLength(std::string_view s, size_t& min, size_t& max) {
  if (s.empty()) return true;
  size_t dots = s.find("..");
  if (dots == std::string_view::npos) {
    size_t n;
    if (std::from_chars(s.data(), s.data() + s.size(), n).ec != std::errc()) return false;
    min = max = n;
    return true;
  }
  std::string_view a = s.substr(0, dots), b = s.substr(dots + 2);
  return std::from_chars(a.data(), a.data() + a.size(), min).ec == std::errc() &&
         std::from_chars(b.data(), b.data() + b.size(), max).ec == std::errc();
}

SimpleType MakeSimple(std::string_view spec) {
  SimpleType t;
  t.spec = std::string(spec);
  auto codes = [&](std::initializer_list<const char*> list) {
    t.kind = SimpleType::Kind::kCodes;
    for (const char* c : list) t.codes.emplace_back(c);
  };
  if (size_t colon = spec.find(':'); colon != std::string_view::npos) {
    t.kind = SimpleType::Kind::kCodes;
    t.list_name = std::string(spec.substr(0, colon));
    std::string_view rest = spec.substr(colon + 1);
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = rxflow::internal::Trim(rest.substr(0, comma));
      if (item.rfind("\xE2\x80\xA6", 0) == 0) {  // "… N more": the list is known in part
        t.open = true;
      } else if (!item.empty()) {
        t.codes.emplace_back(item);
      }
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
    return t;
  }
  if (spec == "SimpleDateType") {
    t.kind = SimpleType::Kind::kDate;
  } else if (spec == "UtcDateType") {
    t.kind = SimpleType::Kind::kDateTime;
  } else if (spec == "boolean") {
    t.kind = SimpleType::Kind::kBoolean;
  } else if (spec == "ANDORTHENNOT") {
    codes({"AND", "OR", "THEN", "NOT"});
  } else if (spec == "ANDORTO") {
    codes({"AND", "OR", "TO"});
  } else if (spec == "ANDOR") {
    codes({"AND", "OR"});
  } else if (spec == "TOOR") {
    codes({"TO", "OR"});
  } else if (spec == "MailAddressType") {
    t.max_len = 80;
  } else if (spec == "QualifiedAddress") {
    t.max_len = 255;
  } else if (spec.rfind("an", 0) == 0) {
    ParseLength(spec.substr(2), t.min_len, t.max_len);
  } else if (spec.rfind("n", 0) == 0 && (spec.size() == 1 || (spec[1] >= '0' && spec[1] <= '9'))) {
    t.kind = SimpleType::Kind::kNumeric;
    ParseLength(spec.substr(1), t.min_len, t.max_len);
  }
  // Code, PasswordType, BodyMetricQualifier and untyped leaves: printable text.
  return t;
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
      if (t.empty() || t[0] == '#' ? (t.rfind("###", 0) != 0) : false) continue;
      if (t.rfind("###", 0) == 0) {
        if (absl::Status st = flush(); !st.ok()) return st;
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
    if (absl::Status st = flush(); !st.ok()) return st;
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

  int SimpleFor(std::string_view spec) {
    auto it = simple_index_.find(std::string(spec));
    if (it != simple_index_.end()) return it->second;
    s_.simples.push_back(MakeSimple(spec));
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
    if (absl::Status st = BuildChildren(t, lines, pos, 0, root); !st.ok()) return st;
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
      if (text.rfind("(one of ", 0) == 0 || text.rfind("(seq ", 0) == 0) {
        bool choice = text[1] == 'o';
        std::string_view card = text.substr(choice ? 8 : 5);
        card = card.substr(0, card.find(')'));
        if (!ParseCard(card, p.min, p.max)) {
          return absl::InvalidArgumentError(Cat("line ", l.number, ": bad cardinality"));
        }
        p.kind = choice ? Particle::Kind::kChoice : Particle::Kind::kSequence;
        if (absl::Status st = BuildChildren(t, lines, pos, indent + 1, p); !st.ok()) return st;
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
        decl.simple_type = SimpleFor(rest.substr(1, close - 1));
      } else if (!rest.empty() && rest[0] == ':') {
        decl.complex_type = TypeFor(rxflow::internal::Trim(rest.substr(1)));
      } else if (pos < lines.size() && lines[pos].indent > indent) {
        // Inline children: an anonymous type.
        int anon = TypeFor(Cat(s_.types[t].name, "/", name));
        defined_[anon] = true;
        Particle content;
        content.kind = Particle::Kind::kSequence;
        if (absl::Status st = BuildChildren(anon, lines, pos, indent + 1, content); !st.ok())
          return st;
        s_.types[anon].content = std::move(content);
        decl.complex_type = anon;
      } else {
        SimpleType any = MakeSimple("an");
        any.min_len = 0;
        s_.simples.push_back(std::move(any));
        decl.simple_type = static_cast<int>(s_.simples.size()) - 1;
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

int Schema::FindType(std::string_view name) const {
  auto it = type_index.find(std::string(name));
  return it == type_index.end() ? -1 : it->second;
}

StatusOr<Schema> ParseStructure(std::string_view text) {
  Schema s;
  StructureParser parser(s);
  if (absl::Status st = parser.Parse(text); !st.ok()) return st;
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
  for (size_t t = 0; t < s.types.size(); ++t) {
    for (const ElementDecl& d : s.types[t].decls) {
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
      bool found = false;
      for (SimpleType& st : s.simples) {
        if (st.list_name != r.list) continue;
        found |= std::find(st.codes.begin(), st.codes.end(), r.old_code) != st.codes.end();
        std::replace(st.codes.begin(), st.codes.end(), r.old_code, r.name);
      }
      if (!found) return bad(Cat("no code ", r.old_code, " in a code list ", r.list));
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
      bool applied = false;
      ForParentTypes(s, r.parent, [&](int t) {
        int d = s.types[t].FindDecl(r.element);
        if (d < 0) return;
        applied = true;
        ComplexType& ct = s.types[t];
        if (r.kind == Rule::Kind::kRemove) {
          RemoveParticles(ct.content, d);
          return;
        }
        if (r.kind == Rule::Kind::kRename) {
          ct.decl_index.erase(ct.decls[d].name);
          ct.decls[d].name = r.name;
          ct.decl_index[r.name] = d;
          return;
        }
        // Wrap: the declaration becomes the wrapper, of a new type holding the element.
        std::string anon_name = Cat(ct.name, "/", r.wrapper);
        int anon = s.FindType(anon_name);
        if (anon < 0) {
          ComplexType wrapper;
          wrapper.name = anon_name;
          wrapper.decls.push_back(
              ElementDecl{r.name, ct.decls[d].complex_type, ct.decls[d].simple_type});
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
      });
      if (!applied) return bad(Cat("no element ", w[1], " in the structure table"));
      impl.rules.push_back(std::move(r));
    } else {
      return bad(Cat("unknown directive \"", line.substr(0, 40), "\""));
    }
  }
  return absl::OkStatus();
}

// --- validator --------------------------------------------------------------------------

std::string CheckSimple(const SimpleType& t, std::string_view text, IssueCode* code) {
  using rxflow::internal::IsPrintableAscii;
  *code = IssueCode::kValue;
  switch (t.kind) {
    case SimpleType::Kind::kText:
      if (!IsPrintableAscii(text)) {
        return "contains characters outside printable ASCII (SCRIPT's an character set)";
      }
      if (text.size() < t.min_len || (t.min_len > 0 && rxflow::internal::Trim(text).empty())) {
        *code = IssueCode::kRequired;
        return "empty value";
      }
      if (text.size() > t.max_len) {
        *code = IssueCode::kTooLong;
        return Cat("value of ", text.size(), " characters exceeds the maximum of ", t.max_len);
      }
      return {};
    case SimpleType::Kind::kNumeric:
      if (!rxflow::internal::IsScriptNumeric(text)) {
        return Cat("expected a number (digits, optional decimals), got \"", text.substr(0, 40),
                   "\"");
      }
      if (text.size() > t.max_len || text.size() < t.min_len) {
        *code = IssueCode::kTooLong;
        return Cat("number of ", text.size(), " characters is outside ", t.min_len, "..",
                   t.max_len);
      }
      return {};
    case SimpleType::Kind::kDate:
      if (!rxflow::internal::IsFullDate(text)) {
        return Cat("expected a date YYYY-MM-DD, got \"", text.substr(0, 40), "\"");
      }
      return {};
    case SimpleType::Kind::kDateTime:
      if (!rxflow::internal::IsXsdDateTime(text)) {
        return Cat("expected a dateTime with zone, got \"", text.substr(0, 40), "\"");
      }
      return {};
    case SimpleType::Kind::kBoolean:
      if (text != "true" && text != "false" && text != "1" && text != "0") {
        return Cat("expected a boolean, got \"", text.substr(0, 40), "\"");
      }
      return {};
    case SimpleType::Kind::kCodes:
      if (!IsPrintableAscii(text)) return "contains characters outside printable ASCII";
      if (t.open) return text.empty() ? "empty value" : "";
      if (std::find(t.codes.begin(), t.codes.end(), text) == t.codes.end()) {
        std::string list;
        for (size_t i = 0; i < t.codes.size() && i < 12; ++i) {
          if (i) list += ", ";
          list += t.codes[i];
        }
        if (t.codes.size() > 12) list += ", ...";
        return Cat("\"", text.substr(0, 40), "\" is not in code list ",
                   t.list_name.empty() ? t.spec : t.list_name, " (", list, ")");
      }
      return {};
  }
  return {};
}

Validator::Validator(const Schema& schema, IssueList& issues) : schema_(schema), issues_(issues) {
  stack_.reserve(16);
}

// Frames are pooled: a frame popped keeps its vectors' capacity for the next element at
// that depth, so a warm validator allocates nothing per element.
Validator::Frame& Validator::Push() {
  if (depth_ == stack_.size()) stack_.emplace_back();
  Frame& f = stack_[depth_++];
  f.name = {};
  f.type = -1;
  f.simple = -1;
  f.unknown = false;
  f.has_text = false;
  f.kids.clear();
  f.kid_names.clear();
  return f;
}

std::string Validator::Path(size_t depth) const {
  std::string out;
  for (size_t i = 0; i <= depth && i < depth_; ++i) {
    out.push_back('/');
    out.append(stack_[i].name);
    if (i > 0) {
      // XPath index among same-named siblings, when there is more than one.
      const Frame& parent = stack_[i - 1];
      size_t kid = parent.kid_names.size() - 1;
      size_t n = 0, total = 0;
      for (size_t k = 0; k < parent.kid_names.size(); ++k) {
        if (parent.kid_names[k] == stack_[i].name) {
          ++total;
          if (k <= kid) ++n;
        }
      }
      if (total > 1) rxflow::internal::Append(out, "[", n, "]");
    }
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
  {
    Frame& parent = stack_[parent_index];
    parent.kid_names.push_back(name);
    if (parent.unknown) {
      unknown = true;
    } else if (parent.type < 0) {
      unknown = true;
      parent.kids.push_back(-1);
    } else {
      const ComplexType& ct = schema_.types[parent.type];
      int d = ct.FindDecl(name);
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
  IssueCode code;
  std::string problem = CheckSimple(schema_.simples[f.simple], text, &code);
  if (!problem.empty()) Report(Path(depth_ - 1), code, std::move(problem));
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
  Matcher m{f.kids};
  bool ok = m.Match(ct.content);
  if (ok && m.pos == f.kids.size()) return;
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
      const SimpleType& st = schema_.simples[f.simple];
      if (st.min_len > 0 || st.kind != SimpleType::Kind::kText) {
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
