#include "rxflow/issue.h"

#include <ostream>
#include <sstream>

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
  issues_.push_back(Issue{s, c, std::move(path), std::move(message)});
}

void IssueList::Append(const IssueList& other, std::string_view path_prefix) {
  for (const Issue& i : other.issues_) {
    Issue copy = i;
    if (!path_prefix.empty()) copy.path = std::string(path_prefix) + copy.path;
    issues_.push_back(std::move(copy));
  }
}

bool IssueList::has_errors() const { return error_count() > 0; }

size_t IssueList::error_count() const {
  size_t n = 0;
  for (const Issue& i : issues_) {
    if (i.severity == Severity::kError || i.severity == Severity::kFatal) ++n;
  }
  return n;
}

size_t IssueList::warning_count() const {
  size_t n = 0;
  for (const Issue& i : issues_) {
    if (i.severity == Severity::kWarning) ++n;
  }
  return n;
}

const Issue* IssueList::Find(std::string_view path) const {
  for (const Issue& i : issues_) {
    if (i.path == path) return &i;
  }
  return nullptr;
}

}  // namespace rxflow
