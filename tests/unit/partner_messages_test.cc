// SPDX-License-Identifier: Apache-2.0
// Partner messages: SCRIPT as other systems write it (issue 15 §2, "Read what partners
// send"). Every fixture in tests/fixtures/script/partners/ is synthetic but reproduces a
// shape seen in public senders' material; its README names the source of each quirk and
// the outcome listed here. Each one goes through rxflow::ToFhirJson, as a partner's
// message does in the service.
//
// The rules:
//   - the version comes from the Message attributes (TransportVersion "20170715",
//     "20170714", "2017071…", or a `version` attribute naming 2017071); none, or one RxFlow
//     does not know → read as 2017071 with ONE warning at /Message/@TransportVersion;
//   - the SCRIPT namespace http://www.ncpdp.org/schema/SCRIPT → read, with a warning;
//     any other namespace → an error naming it; xmlns:xsi / xmlns:xsd → nothing;
//   - a dateTime without a zone → read, with a warning at its path; fractions of any
//     number of digits are fine;
//   - SCRIPT 10.6 (version="010") → exactly one error naming 10.6 and 2017071, 2023011;
//   - a valid SCRIPT transaction RxFlow does not handle → exactly one error
//     "transaction <Name> is not supported by RxFlow", Unimplemented;
//   - lenient (TransformOptions::lenient): an invalid message still gives a Bundle with an
//     OperationOutcome entry holding the issues.
#include <algorithm>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "rxflow/transform.h"

#include "testing/files.h"
#include "testing/status.h"

using namespace rxflow;

namespace {

const char* const kDir = "script/partners";

std::string Partner(const std::string& file) {
  std::string xml = testing::ReadFixture(std::string(kDir) + "/" + file);
  REQUIRE_MESSAGE(!xml.empty(), "missing fixture " << kDir << "/" << file);
  return xml;
}

// Every issue, one a line: shown with a failing check (INFO is evaluated only then).
std::string Describe(const IssueList& issues) {
  std::string out;
  for (const Issue& i : issues) out += "\n  " + ToString(i);
  return out;
}

// Warnings about how the partner wrote the message (version, namespace, a dateTime's
// zone), by path, sorted. Warnings of kind not-supported are about what RxFlow's model
// keeps (an element "not mapped by RxFlow: dropped", a code with no FHIR system, the
// digital signature not carried into FHIR), not about the partner's shape: left out.
std::vector<std::string> ShapeWarnings(const IssueList& issues) {
  std::vector<std::string> out;
  for (const Issue& i : issues) {
    if (i.severity == Severity::kWarning && i.code != IssueCode::kNotSupported) {
      out.push_back(i.path);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The issues at `path` with severity `s`.
std::vector<Issue> At(const IssueList& issues, std::string_view path, Severity s) {
  std::vector<Issue> out;
  for (const Issue& i : issues) {
    if (i.path == path && i.severity == s) out.push_back(i);
  }
  return out;
}

std::vector<Issue> Errors(const IssueList& issues) {
  std::vector<Issue> out;
  for (const Issue& i : issues) {
    if (i.severity == Severity::kError || i.severity == Severity::kFatal) out.push_back(i);
  }
  return out;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// The Bundle JSON (always indented) holds a resource of this type.
bool HasResource(const std::string& json, std::string_view type) {
  return Contains(json, std::string("\"resourceType\": \"") + std::string(type) + "\"");
}

struct Accepted {
  const char* file;
  std::vector<std::string> warnings;  // ShapeWarnings, sorted
  const char* resource;               // a resource type the Bundle must hold
};

// The fixtures RxFlow reads: OK, no error, exactly these shape warnings.
const std::vector<Accepted>& AcceptedFixtures() {
  static const std::vector<Accepted> kAll = {
      {"newrx_no_version_attributes.xml", {"/Message/@TransportVersion"}, "MedicationRequest"},
      {"newrx_version_attribute_only.xml", {}, "MedicationRequest"},
      {"newrx_transport_20170715_mixed_versions.xml", {}, "MedicationRequest"},
      {"newrx_xsi_xsd_fraction7_signature_indicator.xml", {}, "MedicationRequest"},
      {"newrx_default_namespace.xml", {"/Message/@xmlns"}, "MedicationRequest"},
      {"newrx_security_created_no_zone.xml",
       {"/Message/Header/Security/UsernameToken/Created"},
       "MedicationRequest"},
      {"rxfill_dispensed_utc_offset.xml", {}, "MedicationDispense"},
      {"status_000_tabs_in_start_tag.xml", {}, "Task"},
      {"status_senttime_no_zone.xml", {"/Message/Header/SentTime"}, "Task"},
      {"status_senttime_fraction5_no_zone.xml", {"/Message/Header/SentTime"}, "Task"},
      {"status_unknown_version_placeholders.xml", {"/Message/@TransportVersion"}, "Task"},
      {"cancelrx_response_fraction7_no_zone.xml", {"/Message/Header/SentTime"}, "Task"},
      {"error_900_switch_fraction5.xml", {}, "OperationOutcome"},
  };
  return kAll;
}

// The fixtures RxFlow refuses, with the one error it gives.
const std::vector<std::string>& RefusedFixtures() {
  static const std::vector<std::string> kAll = {
      "status_foreign_default_namespace.xml",
      "status_foreign_prefixed_namespace.xml",
      "newrx_script_10_6.xml",
      "clinicalinforesponse_2017071.xml",
      "getmessage_2017071.xml",
  };
  return kAll;
}

// Invalid on purpose: read only in lenient mode.
const char* const kInvalid = "newrx_rems_prototype_invalid.xml";

}  // namespace

TEST_SUITE("Partner messages") {
  TEST_CASE("every partner fixture has an expected outcome here and a row in the README") {
    std::set<std::string> known;
    for (const Accepted& a : AcceptedFixtures()) known.insert(a.file);
    for (const std::string& r : RefusedFixtures()) known.insert(r);
    known.insert(kInvalid);
    std::set<std::string> on_disk;
    for (const auto& path : testing::FixtureFiles(kDir, ".xml")) {
      on_disk.insert(path.filename().string());
    }
    CHECK(on_disk == known);
    std::string readme = testing::ReadFixture(std::string(kDir) + "/README.md");
    for (const std::string& f : on_disk) {
      CAPTURE(f);
      CHECK(Contains(readme, "`" + f + "`"));
    }
  }

  TEST_CASE("messages as partners write them are read: the Bundle, no error, their warnings") {
    for (const Accepted& a : AcceptedFixtures()) {
      CAPTURE(a.file);
      IssueList issues;
      auto out = ToFhirJson(Partner(a.file), issues);
      INFO(Describe(issues));
      RXFLOW_REQUIRE_OK(out);
      CHECK(issues.error_count() == 0);
      CHECK(ShapeWarnings(issues) == a.warnings);
      CHECK(HasResource(*out, a.resource));
      if (std::string_view(a.file).rfind("newrx_", 0) == 0) {
        CHECK(HasResource(*out, "MedicationRequest"));
      }
    }
  }

  TEST_CASE("no version, or an unknown one: read as 2017071 with one warning") {
    for (const char* file :
         {"newrx_no_version_attributes.xml", "status_unknown_version_placeholders.xml"}) {
      CAPTURE(file);
      IssueList issues;
      auto out = ToFhirJson(Partner(file), issues);
      INFO(Describe(issues));
      RXFLOW_REQUIRE_OK(out);
      std::vector<Issue> w = At(issues, "/Message/@TransportVersion", Severity::kWarning);
      REQUIRE(w.size() == 1);
      CHECK(Contains(w[0].message, "2017071"));
      CHECK(issues.error_count() == 0);
    }
    // The unknown value is named.
    IssueList issues;
    RXFLOW_REQUIRE_OK(ToFhirJson(Partner("status_unknown_version_placeholders.xml"), issues));
    REQUIRE(issues.Find("/Message/@TransportVersion") != nullptr);
    CHECK(Contains(issues.Find("/Message/@TransportVersion")->message, "TransportVersion0"));

    // Versions real senders write: no warning.
    for (const char* file :
         {"newrx_version_attribute_only.xml", "newrx_transport_20170715_mixed_versions.xml",
          "newrx_xsi_xsd_fraction7_signature_indicator.xml"}) {
      CAPTURE(file);
      issues.clear();
      RXFLOW_REQUIRE_OK(ToFhirJson(Partner(file), issues));
      CHECK(issues.Find("/Message/@TransportVersion") == nullptr);
      CHECK(issues.Find("/Message/@version") == nullptr);
    }

    // A version the caller forces is not a guess: no warning.
    TransformOptions forced;
    forced.read_version = script::Version::k2017071;
    issues.clear();
    auto out = ToFhirJson(Partner("newrx_no_version_attributes.xml"), issues, forced);
    RXFLOW_REQUIRE_OK(out);
    CHECK(issues.Find("/Message/@TransportVersion") == nullptr);
    CHECK(HasResource(*out, "MedicationRequest"));
  }

  TEST_CASE("the SCRIPT namespace is read with a warning, xsi and xsd declarations are fine") {
    IssueList issues;
    auto out = ToFhirJson(Partner("newrx_default_namespace.xml"), issues);
    INFO(Describe(issues));
    RXFLOW_REQUIRE_OK(out);
    std::vector<Issue> w = At(issues, "/Message/@xmlns", Severity::kWarning);
    REQUIRE(w.size() == 1);
    CHECK(Contains(w[0].message, "http://www.ncpdp.org/schema/SCRIPT"));
    CHECK(HasResource(*out, "MedicationRequest"));

    for (const char* file :
         {"newrx_xsi_xsd_fraction7_signature_indicator.xml", "newrx_security_created_no_zone.xml",
          "error_900_switch_fraction5.xml", "status_unknown_version_placeholders.xml",
          "clinicalinforesponse_2017071.xml"}) {
      CAPTURE(file);
      issues.clear();
      (void)ToFhirJson(Partner(file), issues);
      for (const Issue& i : issues) {
        CHECK_MESSAGE(!Contains(i.path, "xmlns"), ToString(i));
        CHECK_MESSAGE(!Contains(i.path, "@xsi"), ToString(i));
      }
    }
  }

  TEST_CASE("any other namespace: one error naming it") {
    struct Case {
      const char* file;
      const char* ns;
    };
    for (const Case& c :
         {Case{"status_foreign_default_namespace.xml", "http://www.surescripts.com/messaging"},
          Case{"status_foreign_prefixed_namespace.xml", "http://www.ncpdp.org/schema/Transport"}}) {
      CAPTURE(c.file);
      IssueList issues;
      auto out = ToFhirJson(Partner(c.file), issues);
      INFO(Describe(issues));
      CHECK(out.status().code() == absl::StatusCode::kInvalidArgument);
      std::vector<Issue> errors = Errors(issues);
      REQUIRE(errors.size() == 1);
      CHECK(Contains(errors[0].message, c.ns));
    }
  }

  TEST_CASE("dateTimes: no zone → one warning at its path, fractions of any length are fine") {
    struct Case {
      const char* file;
      const char* path;  // the zone-less dateTime, or "" when every dateTime has a zone
    };
    const Case cases[] = {
        {"status_senttime_no_zone.xml", "/Message/Header/SentTime"},  // .0
        {"newrx_security_created_no_zone.xml",
         "/Message/Header/Security/UsernameToken/Created"},                       // .53
        {"status_senttime_fraction5_no_zone.xml", "/Message/Header/SentTime"},    // .04268
        {"cancelrx_response_fraction7_no_zone.xml", "/Message/Header/SentTime"},  // .5304856
        {"newrx_default_namespace.xml", ""},                                      // .53Z
        {"error_900_switch_fraction5.xml", ""},                                   // .04268Z
        {"newrx_xsi_xsd_fraction7_signature_indicator.xml", ""},  // .5304856Z, .463565Z
        {"rxfill_dispensed_utc_offset.xml", ""},                  // .127-05:00
        {"status_000_tabs_in_start_tag.xml", ""},                 // no fraction, Z
    };
    for (const Case& c : cases) {
      CAPTURE(c.file);
      IssueList issues;
      auto out = ToFhirJson(Partner(c.file), issues);
      INFO(Describe(issues));
      RXFLOW_REQUIRE_OK(out);
      CHECK(issues.error_count() == 0);
      if (*c.path != '\0') {
        std::vector<Issue> w = At(issues, c.path, Severity::kWarning);
        CHECK(w.size() == 1);
      }
      // No other dateTime is reported: SentTime is flagged only where it lacks a zone.
      if (std::string_view(c.path) != "/Message/Header/SentTime") {
        CHECK(issues.Find("/Message/Header/SentTime") == nullptr);
      }
    }
    // Read as UTC: FHIR gets the value with "Z" appended (docs/mapping.md §4.6).
    IssueList issues;
    auto out = ToFhirJson(Partner("status_senttime_no_zone.xml"), issues);
    RXFLOW_REQUIRE_OK(out);
    CHECK(Contains(*out, "\"timestamp\": \"2026-05-04T18:13:51.0Z\""));
  }

  TEST_CASE("DigitalSignature Version 1.1: the indicator and the full signature are read") {
    for (const char* file : {"newrx_xsi_xsd_fraction7_signature_indicator.xml",
                             "newrx_transport_20170715_mixed_versions.xml"}) {
      CAPTURE(file);
      IssueList issues;
      auto out = ToFhirJson(Partner(file), issues);
      INFO(Describe(issues));
      RXFLOW_REQUIRE_OK(out);
      CHECK(issues.error_count() == 0);
      for (const Issue& i : issues) {
        if (Contains(i.path, "DigitalSignature")) {
          CHECK_MESSAGE(i.severity != Severity::kError, ToString(i));
          CHECK_MESSAGE(i.code != IssueCode::kStructure, ToString(i));
        }
      }
      CHECK(HasResource(*out, "MedicationRequest"));
    }
  }

  // The partner's Sig says "before bedtime" with an AdministrationTimingModifier RxFlow does
  // not model: the structure cannot be carried, and the warning says that all of it (dose,
  // route, frequency, duration) is dropped, not only the modifier; SigText carries it.
  TEST_CASE("a structured Sig FHIR cannot carry is named whole, at its Instruction path") {
    IssueList issues;
    auto out = ToFhirJson(Partner("newrx_xsi_xsd_fraction7_signature_indicator.xml"), issues);
    RXFLOW_REQUIRE_OK(out);
    const std::string sig = "/Message/Body/NewRx/MedicationPrescribed/Sig";
    int named = 0;
    for (const Issue& i : issues) {
      if (i.path != sig + "/Instruction") continue;
      ++named;
      CHECK(i.severity == Severity::kWarning);
      CHECK(i.code == IssueCode::kNotSupported);
      CHECK_MESSAGE(Contains(i.message, "the structured Sig is not mapped to FHIR (timing event)"),
                    i.message);
      CHECK(Contains(i.message, "dosageInstruction[0].text carries SigText"));
    }
    CHECK(named == 1);
    CHECK(Contains(*out,
                   "\"text\": \"Take 1 tablet by mouth before bedtime once a day for 30 "
                   "days\""));
    CHECK_FALSE(Contains(*out, "doseAndRate"));
  }

  TEST_CASE("SCRIPT 10.6: exactly one error naming 10.6 and the versions RxFlow reads") {
    for (bool lenient : {false, true}) {
      CAPTURE(lenient);
      TransformOptions o;
      o.lenient = lenient;
      IssueList issues;
      auto out = ToFhirJson(Partner("newrx_script_10_6.xml"), issues, o);
      INFO(Describe(issues));
      CHECK(out.status().code() == absl::StatusCode::kUnimplemented);
      std::vector<Issue> errors = Errors(issues);
      REQUIRE(errors.size() == 1);
      CHECK(Contains(errors[0].message, "10.6"));
      CHECK(Contains(errors[0].message, "2017071"));
      CHECK(Contains(errors[0].message, "2023011"));
    }
  }

  TEST_CASE("a valid transaction RxFlow does not handle: one error, Unimplemented") {
    struct Case {
      const char* file;
      const char* name;
    };
    for (const Case& c : {Case{"clinicalinforesponse_2017071.xml", "ClinicalInfoResponse"},
                          Case{"getmessage_2017071.xml", "GetMessage"}}) {
      for (bool lenient : {false, true}) {
        CAPTURE(c.file);
        CAPTURE(lenient);
        TransformOptions o;
        o.lenient = lenient;
        IssueList issues;
        auto out = ToFhirJson(Partner(c.file), issues, o);
        INFO(Describe(issues));
        CHECK(out.status().code() == absl::StatusCode::kUnimplemented);
        std::vector<Issue> errors = Errors(issues);
        REQUIRE(errors.size() == 1);
        CHECK(Contains(errors[0].message,
                       std::string("transaction ") + c.name + " is not supported by RxFlow"));
        CHECK(errors[0].path == std::string("/Message/Body/") + c.name);
      }
    }
  }

  TEST_CASE("lenient: an invalid partner message still gives a Bundle with an OperationOutcome") {
    std::string xml = Partner(kInvalid);
    IssueList strict_issues;
    auto strict = ToFhirJson(xml, strict_issues);
    CHECK(strict.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(strict_issues.has_errors());

    TransformOptions o;
    o.lenient = true;
    IssueList issues;
    auto out = ToFhirJson(xml, issues, o);
    INFO(Describe(issues));
    RXFLOW_REQUIRE_OK(out);
    CHECK(issues.has_errors());
    CHECK(HasResource(*out, "Bundle"));
    CHECK(HasResource(*out, "OperationOutcome"));
    CHECK(Contains(*out, "\"severity\": \"error\""));
    // The partner's quirks are among the issues: the missing header fields, Country for
    // CountryCode, a hyphenated telephone number; and no version on Message.
    bool header = false, country = false, phone = false;
    for (const Issue& i : Errors(issues)) {
      header |= i.path.rfind("/Message/Header", 0) == 0;
      country |= Contains(i.path, "/Address");
      phone |= Contains(i.path, "/PrimaryTelephone");
    }
    CHECK(header);
    CHECK(country);
    CHECK(phone);
    CHECK(At(issues, "/Message/@TransportVersion", Severity::kWarning).size() == 1);
  }
}
