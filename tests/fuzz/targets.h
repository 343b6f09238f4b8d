// SPDX-License-Identifier: Apache-2.0
// The fuzz targets' bodies, shared by the libFuzzer executables (`make fuzz`) and the unit
// test that replays the minimised corpus (tests/fixtures/fuzz/) in every `make test`.
//
// Besides "no crash, no sanitizer report", each target checks what a reader promises, and
// traps when a promise is broken (libFuzzer then saves the input):
//   * a refusal is explained: a failed call leaves at least one error or fatal issue;
//   * the issue list stays bounded (at most 100 kept, plus the "… and N more" summary);
//   * lenient output of a message with errors ends with an OperationOutcome;
//   * what ToFhirJson returns is JSON (nlohmann::json::accept), whatever the input held;
//   * FHIR that checks without transliteration checks with it (NewRxOptions::transliterate
//     only ever sends what would be refused), and its refusals are explained too.
#ifndef RXFLOW_TESTS_FUZZ_TARGETS_H_
#define RXFLOW_TESTS_FUZZ_TARGETS_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "rxflow/transform.h"

namespace rxflow::fuzz {

inline void Require(bool promise) {
  if (!promise) __builtin_trap();
}

inline void RequireExplained(const Status& s, const IssueList& issues) {
  Require(issues.size() <= 101);
  if (!s.ok()) Require(issues.has_errors());
}

// Any bytes through rxflow::Check (FHIR JSON or SCRIPT XML, picked by the first byte) and,
// for SCRIPT, through the FHIR mapping too; FHIR once more with transliteration.
inline void CheckAnything(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  IssueList issues;
  TransformOptions options;
  options.newrx.message_id = "fuzz";
  options.newrx.sent_time = "2026-11-26T10:00:00Z";
  const Status checked = Check(text, issues, options);
  RequireExplained(checked, issues);
  if (DetectInput(text) == InputKind::kFhirJson) {
    IssueList transliterated_issues;
    TransformOptions transliterating = options;
    transliterating.newrx.transliterate = true;
    const Status transliterated = Check(text, transliterated_issues, transliterating);
    RequireExplained(transliterated, transliterated_issues);
    if (checked.ok()) Require(transliterated.ok());
  }
  if (DetectInput(text) == InputKind::kScriptXml) {
    IssueList more;
    auto out = ToFhirJson(text, more, options);
    RequireExplained(out.status(), more);
    if (out.ok()) Require(nlohmann::json::accept(*out));
  }
}

// The SCRIPT read paths: the first byte picks strict or lenient, and the version read
// (the message's own, forced 2017071, forced 2023011); the rest is the message.
inline void ReadScript(const uint8_t* data, size_t size) {
  if (size == 0) return;
  TransformOptions options;
  options.lenient = (data[0] & 1) != 0;
  switch ((data[0] >> 1) % 3) {
    case 1:
      options.read_version = script::Version::k2017071;
      break;
    case 2:
      options.read_version = script::Version::k2023011;
      break;
    default:
      break;
  }
  std::string_view xml(reinterpret_cast<const char*>(data + 1), size - 1);
  IssueList issues;
  auto out = ToFhirJson(xml, issues, options);
  RequireExplained(out.status(), issues);
  if (out.ok()) Require(nlohmann::json::accept(*out));
  if (out.ok() && options.lenient && issues.has_errors()) {
    Require(out->find("\"OperationOutcome\"") != std::string::npos);
  }
  if (out.ok() && !options.lenient) Require(!issues.has_errors());
}

}  // namespace rxflow::fuzz

#endif  // RXFLOW_TESTS_FUZZ_TARGETS_H_
