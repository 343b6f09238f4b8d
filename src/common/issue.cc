// SPDX-License-Identifier: Apache-2.0
#include "rxflow/issue.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>

#include "common/text.h"

namespace rxflow {

std::string_view SeverityName(Severity s) {
  switch (s) {
    case Severity::kFatal:
      return "fatal";
    case Severity::kError:
      return "error";
    case Severity::kWarning:
      return "warning";
    case Severity::kInformation:
      return "information";
  }
  return "error";
}

std::string_view IssueCodeName(IssueCode c) {
  switch (c) {
    case IssueCode::kInvalid:
      return "invalid";
    case IssueCode::kStructure:
      return "structure";
    case IssueCode::kRequired:
      return "required";
    case IssueCode::kValue:
      return "value";
    case IssueCode::kTooLong:
      return "too-long";
    case IssueCode::kTooCostly:
      return "too-costly";
    case IssueCode::kNotFound:
      return "not-found";
    case IssueCode::kNotSupported:
      return "not-supported";
    case IssueCode::kBusinessRule:
      return "business-rule";
    case IssueCode::kSecurity:
      return "security";
    case IssueCode::kInformational:
      return "informational";
  }
  return "invalid";
}

std::ostream& operator<<(std::ostream& os, const Issue& issue) {
  os << SeverityName(issue.severity) << ": " << (issue.path.empty() ? "$" : issue.path) << ": "
     << issue.message;
  return os;
}

std::string ToString(const Issue& issue) {
  std::ostringstream os;
  os << issue;
  return os.str();
}

void IssueList::Add(Severity s, IssueCode c, std::string path, std::string message) {
  Add(Issue{s, c, std::move(path), std::move(message)});
}

namespace {

// Index into IssueList::dropped_ (fatal issues are never dropped).
size_t DroppedSlot(Severity s) {
  switch (s) {
    case Severity::kWarning:
      return 1;
    case Severity::kInformation:
      return 2;
    default:
      return 0;
  }
}

int Rank(Severity s) {
  switch (s) {
    case Severity::kFatal:
      return 3;
    case Severity::kError:
      return 2;
    case Severity::kWarning:
      return 1;
    case Severity::kInformation:
      return 0;
  }
  return 2;
}

constexpr uint32_t Bit(IssueCode c) { return uint32_t{1} << static_cast<unsigned>(c); }

IssueCode SummaryCode(uint32_t codes) {
  // Keeps what callers read from codes (a limit was hit; only prescribing rules failed).
  if (codes & Bit(IssueCode::kTooCostly)) return IssueCode::kTooCostly;
  if (std::has_single_bit(codes)) return static_cast<IssueCode>(std::countr_zero(codes));
  if ((codes & ~(Bit(IssueCode::kBusinessRule) | Bit(IssueCode::kValue))) == 0) {
    return IssueCode::kBusinessRule;
  }
  return IssueCode::kInvalid;
}

void AppendCount(std::string& out, size_t n, std::string_view one, std::string_view many) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
  out.push_back(' ');
  out.append(n == 1 ? one : many);
}

}  // namespace

void IssueList::Add(Issue issue) {
  // Issue texts quote input, cut to a few dozen bytes wherever they quote it: a cut can split
  // a UTF-8 sequence, and what an issue says ends up in JSON (OperationOutcome) and logs.
  internal::MakeValidUtf8(issue.message);
  internal::MakeValidUtf8(issue.path);
  switch (issue.severity) {
    case Severity::kFatal:
      ++fatals_;
      break;
    case Severity::kError:
      ++errors_;
      break;
    case Severity::kWarning:
      ++warnings_;
      break;
    case Severity::kInformation:
      ++infos_;
      break;
  }
  size_t stored = kept_[0] + kept_[1] + kept_[2] + kept_[3];
  if (stored >= max_issues_) {
    int rank = Rank(issue.severity);
    bool lower = false;
    for (int r = 0; r < rank && r < 3; ++r) lower |= kept_[r] > 0;
    if (lower) {
      MakeRoomFor(issue.severity);
    } else if (issue.severity != Severity::kFatal) {
      Drop(std::move(issue));
      return;
    }  // else: a fatal issue is stored even over the cap
  }
  Store(std::move(issue));
}

void IssueList::Store(Issue issue) {
  ++kept_[Rank(issue.severity)];
  SummaryToEnd();  // the issue just added comes last
  last_dropped_ = false;
  issues_.push_back(std::move(issue));
}

// Drops the last stored issue of the lowest severity (below `s`) to make room.
void IssueList::MakeRoomFor(Severity s) {
  int lowest = 0;
  while (lowest < Rank(s) && kept_[lowest] == 0) ++lowest;
  for (size_t k = issues_.size(); k-- > 0;) {
    if (k == summary_ || Rank(issues_[k].severity) != lowest) continue;
    Issue out = std::move(issues_[k]);
    issues_.erase(issues_.begin() + static_cast<std::ptrdiff_t>(k));
    if (summary_ != kNone && summary_ > k) --summary_;
    --kept_[lowest];
    NoteDropped(out.severity, out.code, 1, out.path, {});
    return;
  }
}

void IssueList::Drop(Issue issue) {
  NoteDropped(issue.severity, issue.code, 1, issue.path, {});
  SummaryToEnd();
  last_ = std::move(issue);
  last_dropped_ = true;
}

void IssueList::SummaryToEnd() {
  if (summary_ == kNone || summary_ + 1 == issues_.size()) return;
  auto at = issues_.begin() + static_cast<std::ptrdiff_t>(summary_);
  std::rotate(at, at + 1, issues_.end());
  summary_ = issues_.size() - 1;
}

// Counts `n` dropped issues of severity `s` and code `c`; `path` (with `path_prefix`) is the
// summary's path when these are the first dropped.
void IssueList::NoteDropped(Severity s, IssueCode c, size_t n, std::string_view path,
                            std::string_view path_prefix) {
  if (n == 0) return;
  if (s == Severity::kFatal) s = Severity::kError;  // not reached: fatal issues are kept
  dropped_[DroppedSlot(s)] += n;
  if (summary_ == kNone) {
    summary_ = issues_.size();
    Issue summary{s, c, std::string(path_prefix), {}};
    summary.path.append(path);
    issues_.push_back(std::move(summary));
    dropped_codes_ = Bit(c);
  } else {
    Issue& summary = issues_[summary_];
    if (Rank(s) > Rank(summary.severity)) {
      summary.severity = s;
      dropped_codes_ = Bit(c);
    } else if (s == summary.severity) {
      dropped_codes_ |= Bit(c);
    }
    summary.code = SummaryCode(dropped_codes_);
  }
  UpdateSummary();
}

void IssueList::UpdateSummary() {
  // Rewritten in place: the message keeps its capacity, so dropping allocates nothing.
  std::string& m = issues_[summary_].message;
  m.clear();
  m.append("\xE2\x80\xA6 and ");  // U+2026 HORIZONTAL ELLIPSIS
  AppendCount(m, dropped_count(), "more issue", "more issues");
  m.append(" (");
  AppendCount(m, dropped_[0], "error", "errors");
  m.append(", ");
  AppendCount(m, dropped_[1], "warning", "warnings");
  if (dropped_[2] > 0) {
    m.append(", ");
    AppendCount(m, dropped_[2], "information", "information");
  }
  m.push_back(')');
}

void IssueList::MergeDropped(const IssueList& other, std::string_view path_prefix) {
  if (other.summary_ == kNone) return;
  const Issue& theirs = other.issues_[other.summary_];
  // Their summary's severity first, so that it sets the code; then the rest by count.
  const Severity order[3] = {Severity::kError, Severity::kWarning, Severity::kInformation};
  bool first = true;
  for (Severity s : order) {
    size_t n = other.dropped_[DroppedSlot(s)];
    if (n == 0) continue;
    IssueCode c = s == theirs.severity ? theirs.code : IssueCode::kInvalid;
    NoteDropped(s, c, n, first ? std::string_view(theirs.path) : std::string_view(),
                first ? path_prefix : std::string_view());
    first = false;
  }
  errors_ += other.dropped_[0];
  warnings_ += other.dropped_[1];
  infos_ += other.dropped_[2];
  SummaryToEnd();
}

void IssueList::Append(const IssueList& other, std::string_view path_prefix) {
  if (&other == this) {
    // Appending a list to itself reads a copy, not the list it grows.
    const IssueList copy = other;  // NOLINT(performance-unnecessary-copy-initialization)
    Append(copy, path_prefix);
    return;
  }
  for (size_t k = 0; k < other.issues_.size(); ++k) {
    if (k == other.summary_) {
      MergeDropped(other, path_prefix);
      continue;
    }
    Issue copy = other.issues_[k];
    if (!path_prefix.empty()) copy.path.insert(0, path_prefix);
    Add(std::move(copy));
  }
}

void IssueList::clear() {
  issues_.clear();
  fatals_ = errors_ = warnings_ = infos_ = 0;
  kept_[0] = kept_[1] = kept_[2] = kept_[3] = 0;
  dropped_[0] = dropped_[1] = dropped_[2] = 0;
  dropped_codes_ = 0;
  summary_ = kNone;
  last_dropped_ = false;
  last_ = Issue{};
}

const Issue* IssueList::Find(std::string_view path) const {
  for (size_t k = 0; k < issues_.size(); ++k) {
    if (k != summary_ && issues_[k].path == path) return &issues_[k];
  }
  return nullptr;
}

}  // namespace rxflow
