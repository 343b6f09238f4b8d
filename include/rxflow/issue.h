// SPDX-License-Identifier: Apache-2.0
// File: rxflow/issue.h
//
// An `Issue` is one problem found in clinical data: its severity (HL7 issue-severity), the
// place it was found (a JSON path such as
// `medication_request.dosageInstruction[0].timing.repeat.period`, or an XML path such as
// `/Message/Body/NewRx/MedicationPrescribed/Quantity/Value`), a machine-readable code
// (HL7 issue-type) and a message for people.
//
// Every parse, mapping and validation result in RxFlow carries an `IssueList`; nothing the
// library drops or refuses goes unreported.
//
// An `IssueList` is bounded, so that hostile input (a message with 250,000 unknown
// elements) cannot make the list, or the OperationOutcome written from it, grow with the
// input. It stores at most `max_issues()` issues (default `IssueList::kDefaultMaxIssues`,
// 100) plus one summary issue. Once it is full, an issue added is stored only if a stored
// issue of a lower severity can make room for it (the last stored of the lowest severity
// is dropped instead), so warnings never crowd out errors; fatal issues are never dropped
// (with more than max_issues() of them, size() exceeds the cap). Dropped issues are counted,
// not stored: error_count(), warning_count(), has_errors() and total_count() count every
// issue ever added. They are summed up in one summary issue, updated in place:
//   "… and N more issues (E errors, W warnings)"   (", I information" when there are any)
// Its path is the path of the first dropped issue (a place where the flood starts, in any
// path syntax); its severity the worst dropped severity; its code that of the dropped
// issues of that severity (too-costly if one of them is; business-rule when they are all
// business-rule or value; invalid when they differ), so that callers reading codes see the
// same kind of failure as when every issue was kept.
// Order: issues in the order added, then the summary, which is always last, except right
// after an issue was stored: that issue is then last (issues[size() - 1] is the issue just
// added, whenever it was kept). Dropping an issue to make room, or moving the summary,
// shifts the indices of the issues after it; a loop over the issues added since some
// index can miss them once the list is full (compare error_count() instead).
//
// Example:
//   rxflow::IssueList issues;
//   issues.Error("patient.birthDate", IssueCode::kValue, "expected a date, got \"1970-13-01\"");
//   if (issues.has_errors()) { for (const auto& i : issues) std::cerr << i << "\n"; }
#ifndef RXFLOW_ISSUE_H_
#define RXFLOW_ISSUE_H_

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace rxflow {

// HL7 FHIR issue-severity.
enum class Severity { kFatal, kError, kWarning, kInformation };

// A subset of HL7 FHIR issue-type, enough to classify what RxFlow reports.
enum class IssueCode {
  kInvalid,       // generic: content invalid against the specification
  kStructure,     // structural problem: syntax, element order, unknown element
  kRequired,      // a required element is missing
  kValue,         // an element value is invalid (format, code, check digit)
  kTooLong,       // a value exceeds its maximum length
  kTooCostly,     // a configured limit was exceeded (size, depth)
  kNotFound,      // a reference could not be resolved
  kNotSupported,  // the content is valid but not supported; dropped with a warning
  kBusinessRule,  // a prescribing rule is broken (controlled-substance refills, ...)
  kSecurity,      // refused for safety (DTD, entity expansion)
  kInformational,
};

// "fatal", "error", "warning", "information".
std::string_view SeverityName(Severity s);
// The FHIR issue-type code, e.g. "structure", "required", "too-long".
std::string_view IssueCodeName(IssueCode c);

struct Issue {
  Severity severity = Severity::kError;
  IssueCode code = IssueCode::kInvalid;
  std::string path;
  std::string message;

  friend bool operator==(const Issue&, const Issue&) = default;
};

// Writes `severity: path: message` (the rxflow tool's stderr format).
std::ostream& operator<<(std::ostream& os, const Issue& issue);
std::string ToString(const Issue& issue);

// An ordered, bounded collection of issues (see the top of this file). Thread-compatible.
class IssueList {
 public:
  using const_iterator = std::vector<Issue>::const_iterator;

  static constexpr size_t kDefaultMaxIssues = 100;

  IssueList() = default;
  // Stores at most `max_issues` issues (0: only fatal issues and the summary).
  explicit IssueList(size_t max_issues) : max_issues_(max_issues) {}

  // Changes the cap for issues added from now on; issues already kept stay.
  void set_max_issues(size_t max_issues) { max_issues_ = max_issues; }
  size_t max_issues() const { return max_issues_; }

  void Add(Issue issue);
  void Add(Severity s, IssueCode c, std::string path, std::string message);
  void Error(std::string path, IssueCode c, std::string message) {
    Add(Severity::kError, c, std::move(path), std::move(message));
  }
  void Warning(std::string path, IssueCode c, std::string message) {
    Add(Severity::kWarning, c, std::move(path), std::move(message));
  }
  void Fatal(std::string path, IssueCode c, std::string message) {
    Add(Severity::kFatal, c, std::move(path), std::move(message));
  }
  // Adds every issue of `other`, with `path_prefix` prepended to each path, under this
  // list's cap; the issues `other` dropped are counted here as dropped.
  void Append(const IssueList& other, std::string_view path_prefix = {});

  // Counts of every issue added, kept or dropped (the summary issue itself is not counted).
  // has_errors(): any error or fatal issue.
  bool has_errors() const { return error_count() > 0; }
  size_t error_count() const { return fatals_ + errors_; }  // errors and fatal issues
  size_t warning_count() const { return warnings_; }
  size_t total_count() const { return fatals_ + errors_ + warnings_ + infos_; }
  // Issues counted but not stored (0 when nothing was dropped).
  size_t dropped_count() const { return dropped_[0] + dropped_[1] + dropped_[2]; }

  // The stored issues and the summary issue (see the top of this file for the order).
  bool empty() const { return issues_.empty(); }
  size_t size() const { return issues_.size(); }
  const Issue& operator[](size_t i) const { return issues_[i]; }
  const_iterator begin() const { return issues_.begin(); }
  const_iterator end() const { return issues_.end(); }
  const std::vector<Issue>& items() const { return issues_; }
  // The summary issue, or nullptr when nothing was dropped.
  const Issue* summary() const { return summary_ == kNone ? nullptr : &issues_[summary_]; }
  // The issue added last, whether it was kept or dropped. Requires !empty().
  const Issue& last_added() const { return last_dropped_ ? last_ : issues_.back(); }
  // Removes every issue and resets the counts; the cap stays.
  void clear();

  // Returns the first stored issue whose path equals `path` (never the summary), or nullptr.
  const Issue* Find(std::string_view path) const;

 private:
  static constexpr size_t kNone = static_cast<size_t>(-1);
  void Store(Issue issue);
  void MakeRoomFor(Severity s);
  void Drop(Issue issue);
  void MergeDropped(const IssueList& other, std::string_view path_prefix);
  void NoteDropped(Severity s, IssueCode c, size_t n, std::string_view path,
                   std::string_view path_prefix);
  void SummaryToEnd();
  void UpdateSummary();

  std::vector<Issue> issues_;
  size_t max_issues_ = kDefaultMaxIssues;
  // Every issue added, by severity.
  size_t fatals_ = 0, errors_ = 0, warnings_ = 0, infos_ = 0;
  // Stored issues (not the summary) by severity rank: information, warning, error, fatal.
  size_t kept_[4] = {0, 0, 0, 0};
  // Dropped issues: errors, warnings, information.
  size_t dropped_[3] = {0, 0, 0};
  // The codes of the dropped issues of the summary's severity (bit per IssueCode).
  uint32_t dropped_codes_ = 0;
  size_t summary_ = kNone;  // index of the summary issue in issues_
  bool last_dropped_ = false;
  Issue last_;  // the issue added last, when it was dropped
};

}  // namespace rxflow

#endif  // RXFLOW_ISSUE_H_
