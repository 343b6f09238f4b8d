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
// Example:
//   rxflow::IssueList issues;
//   issues.Error("patient.birthDate", IssueCode::kValue, "expected a date, got \"1970-13-01\"");
//   if (issues.has_errors()) { for (const auto& i : issues) std::cerr << i << "\n"; }
#ifndef RXFLOW_ISSUE_H_
#define RXFLOW_ISSUE_H_

#include <cstddef>
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

// An ordered collection of issues. Thread-compatible.
class IssueList {
 public:
  using const_iterator = std::vector<Issue>::const_iterator;

  void Add(Issue issue) { issues_.push_back(std::move(issue)); }
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
  // Appends every issue of `other`, with `path_prefix` prepended to each path.
  void Append(const IssueList& other, std::string_view path_prefix = {});

  // True when any issue is an error or fatal.
  bool has_errors() const;
  size_t error_count() const;
  size_t warning_count() const;
  bool empty() const { return issues_.empty(); }
  size_t size() const { return issues_.size(); }
  const Issue& operator[](size_t i) const { return issues_[i]; }
  const_iterator begin() const { return issues_.begin(); }
  const_iterator end() const { return issues_.end(); }
  const std::vector<Issue>& items() const { return issues_; }
  void clear() { issues_.clear(); }

  // Returns the first issue whose path equals `path`, or nullptr.
  const Issue* Find(std::string_view path) const;

 private:
  std::vector<Issue> issues_;
};

}  // namespace rxflow

#endif  // RXFLOW_ISSUE_H_
