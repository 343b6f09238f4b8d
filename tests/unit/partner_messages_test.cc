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
#include <cstdint>
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

// Encodings (XML 1.0 §4.3.3 and Appendix F): the lisinopril NewRx in UTF-8, its patient's
// names and its Note's last word replaced. SCRIPT's `an` values are printable ASCII, so a
// name outside ASCII ("Muñoz" — in Latin-1's range —, "Łukasz" — outside it —, U+1D538 — a
// surrogate pair in UTF-16) makes the message invalid: such messages are read leniently,
// where the Bundle carries the values and the errors name them.
std::string Utf8NewRx(std::string_view last_name = "Munoz", std::string_view first_name = "Luis",
                      std::string_view note_word = "weeks") {
  std::string xml = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
  REQUIRE(!xml.empty());
  auto replace = [&](std::string_view from, std::string_view to) {
    size_t at = xml.find(from);
    REQUIRE(at != std::string::npos);
    xml.replace(at, from.size(), to);
  };
  replace("<LastName>Delacroix</LastName>", "<LastName>" + std::string(last_name) + "</LastName>");
  size_t patient = xml.find("<Patient>");
  REQUIRE(patient != std::string::npos);
  size_t first = xml.find("<FirstName>", patient);
  size_t end = xml.find("</FirstName>", first);
  REQUIRE(end != std::string::npos);
  xml.replace(first + 11, end - first - 11, first_name);
  replace("in 4 weeks.</Note>", "in 4 " + std::string(note_word) + ".</Note>");
  return xml;
}

// The UTF-8 of names outside ASCII used below.
const std::string kMunoz = "Mu\xC3\xB1oz";
const std::string kLukasz = "\xC5\x81ukasz";
const std::string kDoubleStruckA = "\xF0\x9D\x94\xB8";  // U+1D538

TransformOptions Lenient() {
  TransformOptions o;
  o.lenient = true;
  return o;
}

// The document with its XML declaration's encoding set to `name`.
std::string Declared(std::string xml, std::string_view name) {
  const std::string_view from = "encoding=\"UTF-8\"";
  size_t at = xml.find(from);
  REQUIRE(at != std::string::npos);
  return xml.replace(at, from.size(), "encoding=\"" + std::string(name) + "\"");
}

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

  TEST_CASE("a UTF-16 message, either byte order, with or without a mark, reads as its UTF-8") {
    // ASCII content (as SCRIPT's values are): strict, the same Bundle, no issue more.
    // Outside ASCII (leniently): the same Bundle, the same errors, the characters intact.
    struct Case {
      std::string utf8;
      TransformOptions options;
    };
    for (const Case& c :
         {Case{Utf8NewRx(), {}}, Case{Utf8NewRx(kMunoz, kLukasz, kDoubleStruckA), Lenient()}}) {
      IssueList base_issues;
      auto base = ToFhirJson(c.utf8, base_issues, c.options);
      INFO(Describe(base_issues));
      RXFLOW_REQUIRE_OK(base);
      for (bool big_endian : {false, true}) {
        for (bool mark : {true, false}) {
          CAPTURE(big_endian);
          CAPTURE(mark);
          const std::string utf16 = testing::Utf16(Declared(c.utf8, "UTF-16"), big_endian, mark);
          CHECK(DetectInput(utf16) == InputKind::kScriptXml);
          IssueList issues;
          auto out = ToFhirJson(utf16, issues, c.options);
          INFO(Describe(issues));
          RXFLOW_REQUIRE_OK(out);
          CHECK(*out == *base);
          CHECK(Describe(issues) == Describe(base_issues));
        }
      }
    }
    IssueList lenient_issues;
    auto lenient =
        ToFhirJson(testing::Utf16(Utf8NewRx(kMunoz, kLukasz, kDoubleStruckA), true, true),
                   lenient_issues, Lenient());
    RXFLOW_REQUIRE_OK(lenient);
    CHECK(Contains(*lenient, kMunoz));
    CHECK(Contains(*lenient, kLukasz));
    CHECK(Contains(*lenient, kDoubleStruckA));
    IssueList check_issues;
    RXFLOW_CHECK_OK(
        Check(testing::Utf16(Declared(Utf8NewRx(), "UTF-16"), false, false), check_issues));
    // A declaration that names another encoding than the bytes: read by the bytes, one word.
    IssueList issues;
    RXFLOW_REQUIRE_OK(ToFhirJson(testing::Utf16(Utf8NewRx(), false, true), issues));
    auto warned = At(issues, "/", Severity::kWarning);
    REQUIRE(warned.size() == 1);
    CHECK(warned[0].message ==
          "the XML declaration names encoding \"UTF-8\" but the document is UTF-16LE (by its "
          "first bytes): read as UTF-16LE");
  }

  TEST_CASE("malformed UTF-16 is refused at its byte, leniently too") {
    const std::string utf16 =
        testing::Utf16(Declared(Utf8NewRx("Munoz", "Luis", kDoubleStruckA), "UTF-16"), false, true);
    IssueList odd_issues;
    auto odd = ToFhirJson(utf16.substr(0, utf16.size() - 1), odd_issues, Lenient());
    CHECK(odd.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(Contains(std::string(odd.status().message()),
                   "malformed XML at byte " + std::to_string(utf16.size() - 2) +
                       ": invalid UTF-16LE: an odd number of bytes"));
    // The Note's surrogate pair cut to its high half.
    const std::string pair = testing::Utf16(kDoubleStruckA, false, false);
    size_t at = utf16.find(pair);
    REQUIRE(at != std::string::npos);
    std::string cut = utf16;
    cut.erase(at + 2, 2);
    IssueList issues;
    auto out = ToFhirJson(cut, issues, Lenient());
    CHECK(out.status().code() == absl::StatusCode::kInvalidArgument);
    REQUIRE(Errors(issues).size() == 1);
    CHECK(Errors(issues)[0].message ==
          "malformed XML at byte " + std::to_string(at) +
              ": invalid UTF-16LE: a high surrogate without a low one");
  }

  TEST_CASE("ISO-8859-1 and windows-1252, when declared, are read as those encodings") {
    // "Muñoz" in Latin-1 (ñ = 0xF1): leniently, the same Bundle as the UTF-8 message (whose
    // errors name the name: SCRIPT text is printable ASCII), not "malformed XML".
    IssueList base_issues;
    auto base = ToFhirJson(Utf8NewRx(kMunoz), base_issues, Lenient());
    RXFLOW_REQUIRE_OK(base);
    REQUIRE(Errors(base_issues).size() == 1);
    CHECK(Errors(base_issues)[0].path == "/Message/Body/NewRx/Patient/HumanPatient/Name/LastName");
    for (const char* name : {"ISO-8859-1", "iso-8859-1", "latin1", "windows-1252"}) {
      CAPTURE(name);
      IssueList issues;
      auto out = ToFhirJson(Declared(Utf8NewRx("Mu\xF1oz"), name), issues, Lenient());
      INFO(Describe(issues));
      RXFLOW_REQUIRE_OK(out);
      CHECK(*out == *base);
      CHECK(Describe(issues) == Describe(base_issues));
    }
    // windows-1252's own characters: 0x93 and 0x94 are the curly quotes.
    IssueList issues;
    auto out = ToFhirJson(Declared(Utf8NewRx("\x93Munoz\x94"), "windows-1252"), issues, Lenient());
    INFO(Describe(issues));
    RXFLOW_REQUIRE_OK(out);
    CHECK(Contains(*out, "\xE2\x80\x9CMunoz\xE2\x80\x9D"));
    // An ASCII message declared Latin-1 is valid as it is.
    IssueList strict_issues;
    RXFLOW_CHECK_OK(ToFhirJson(Declared(Utf8NewRx(), "ISO-8859-1"), strict_issues));
  }

  TEST_CASE("a byte the declared encoding has no character for is refused at its line") {
    struct Case {
      const char* encoding;
      const char* name;
      const char* expected;
    };
    for (const Case& c : {
             Case{"windows-1252", "Mu\x81oz",
                  "byte 0x81 is not a character of windows-1252 (the encoding the XML "
                  "declaration names)"},
             Case{"US-ASCII", "Mu\xE9oz",
                  "byte 0xE9 is not a character of US-ASCII (the encoding the XML declaration "
                  "names)"},
         }) {
      CAPTURE(c.encoding);
      IssueList issues;
      auto out = ToFhirJson(Declared(Utf8NewRx(c.name), c.encoding), issues, Lenient());
      CHECK(out.status().code() == absl::StatusCode::kInvalidArgument);
      REQUIRE(Errors(issues).size() == 1);
      CHECK(Errors(issues)[0].message ==
            std::string("malformed XML at line 33, column 25: ") + c.expected);
    }
    IssueList ascii_issues;
    RXFLOW_CHECK_OK(ToFhirJson(Declared(Utf8NewRx(), "US-ASCII"), ascii_issues));
  }

  TEST_CASE("a Content-Type charset decides over the declaration, a byte-order mark over it") {
    // RFC 7303, section 3: what HTTP's charset parameter says is read, unless the document
    // starts with a byte-order mark (or UTF-16's first bytes); each disagreement is a warning.
    auto read = [](const std::string& xml, std::string_view charset, IssueList& issues) {
      script::ReadOptions ro;
      ro.lenient = true;  // the name outside ASCII is an error of SCRIPT's, not of reading
      ro.charset = std::string(charset);
      return script::ReadXml(xml, issues, ro);
    };
    const std::string latin1 = Utf8NewRx("Mu\xF1oz");  // declares UTF-8, holds Latin-1
    {
      IssueList issues;  // without the charset: not UTF-8
      CHECK(read(latin1, "", issues).status().code() == absl::StatusCode::kInvalidArgument);
    }
    struct Case {
      const char* what;
      std::string xml;
      const char* charset;
      const char* warning;  // the one warning at "/", or null for none
    };
    const Case cases[] = {
        {"the charset decides over the declaration", latin1, "ISO-8859-1",
         "the XML declaration names encoding \"UTF-8\" but the Content-Type charset is "
         "\"ISO-8859-1\": read as the charset says (RFC 7303)"},
        {"no declaration: the charset alone", latin1.substr(latin1.find("?>") + 2), "latin1",
         nullptr},
        {"a byte-order mark decides: UTF-16 sent as charset=utf-8",
         testing::Utf16(Declared(Utf8NewRx(kMunoz), "UTF-16"), false, true), "utf-8",
         "the Content-Type charset \"utf-8\" is not the document's UTF-16LE (by its first "
         "bytes): read as the first bytes say"},
        {"UTF-8's byte-order mark decides over a declaration naming another encoding",
         "\xEF\xBB\xBF" + Declared(Utf8NewRx(kMunoz), "ISO-8859-1"), "",
         "the XML declaration names encoding \"ISO-8859-1\" but the document starts with "
         "UTF-8's byte-order mark: read as UTF-8"},
    };
    for (const Case& c : cases) {
      CAPTURE(c.what);
      IssueList issues;
      auto m = read(c.xml, c.charset, issues);
      INFO(Describe(issues));
      RXFLOW_REQUIRE_OK(m);
      CHECK(std::get<script::NewRx>(m->body).patient.name.last_name == kMunoz);
      std::vector<std::string> warned;
      for (const Issue& i : At(issues, "/", Severity::kWarning)) warned.push_back(i.message);
      CHECK(warned ==
            (c.warning ? std::vector<std::string>{c.warning} : std::vector<std::string>{}));
    }
    {
      IssueList issues;  // a charset RxFlow does not read: refused by name, as the sender wrote it
      auto m = read(Utf8NewRx(), "Shift_JIS", issues);
      CHECK(m.status().code() == absl::StatusCode::kInvalidArgument);
      REQUIRE(Errors(issues).size() == 1);
      CHECK(Errors(issues)[0].code == IssueCode::kNotSupported);
      CHECK(Errors(issues)[0].message ==
            "encoding \"Shift_JIS\" (the Content-Type charset's) is not supported; RxFlow reads "
            "SCRIPT in UTF-8, UTF-16, ISO-8859-1, windows-1252 and US-ASCII");
    }
    {
      IssueList issues;  // a byte the charset has no character for: at its line and column
      auto m = read(Utf8NewRx("Mu\xE9oz"), "us-ascii", issues);
      CHECK(m.status().code() == absl::StatusCode::kInvalidArgument);
      REQUIRE(Errors(issues).size() == 1);
      CHECK(Errors(issues)[0].message ==
            "malformed XML at line 33, column 25: byte 0xE9 is not a character of us-ascii (the "
            "encoding the Content-Type charset names)");
    }
    {
      // The transform's own entry points take it too (TransformOptions::charset: the CLI's
      // --charset, Python's charset=): ToFhirJson leniently, and Check.
      TransformOptions o = Lenient();
      o.charset = "ISO-8859-1";
      IssueList without, with;
      CHECK_FALSE(ToFhirJson(latin1, without, Lenient()).ok());
      auto out = ToFhirJson(latin1, with, o);
      RXFLOW_REQUIRE_OK(out);
      CHECK(Contains(*out, "\"family\": \"Mu\xC3\xB1oz\""));  // read as Latin-1: ñ
      IssueList checked;
      (void)Check(latin1, checked, o);
      CHECK(At(checked, "/", Severity::kWarning).size() == 1);  // the declaration disagrees
      CHECK(At(checked, "/", Severity::kFatal).empty());
    }
  }

  TEST_CASE("a UTF-16 declaration on 8-bit bytes (a .NET writer's text sent as UTF-8) reads") {
    IssueList issues;
    auto out = ToFhirJson(Declared(Utf8NewRx(), "utf-16"), issues);
    INFO(Describe(issues));
    RXFLOW_REQUIRE_OK(out);
    CHECK(Contains(*out, "Munoz"));
    auto warned = At(issues, "/", Severity::kWarning);
    REQUIRE(warned.size() == 1);
    CHECK(warned[0].message ==
          "the XML declaration names encoding \"utf-16\" but the document is written in 8-bit "
          "bytes: read as UTF-8");
  }

  TEST_CASE("UTF-32, EBCDIC and other declared encodings are refused by name, leniently too") {
    const std::string supported =
        "RxFlow reads SCRIPT in UTF-8, UTF-16, ISO-8859-1, windows-1252 and US-ASCII";
    struct Case {
      std::string xml;
      std::string expected;
    };
    std::string utf32 = "\xFF\xFE";
    utf32 += std::string("\0\0<\0\0\0?\0\0\0", 10);
    for (const Case& c : {
             Case{Declared(Utf8NewRx(), "Shift_JIS"),
                  "encoding \"Shift_JIS\" (the XML declaration's) is not supported; " + supported},
             Case{utf32, "the document is UTF-32 (by its first bytes); " + supported},
             Case{std::string("\x4C\x6F\xA7\x94\x93\xC0", 6),
                  "the document is EBCDIC (by its first bytes); " + supported},
             // The sender's name for it is shown bounded, printable ASCII only.
             Case{Declared(Utf8NewRx(), std::string(5000, 'x') + "\x01"),
                  "encoding \"" + std::string(40, 'x') +
                      "...\" (the XML declaration's) is not supported; " + supported},
         }) {
      for (bool lenient : {false, true}) {
        TransformOptions o;
        o.lenient = lenient;
        IssueList issues;
        auto out = ToFhirJson(c.xml, issues, o);
        CHECK(out.status().code() == absl::StatusCode::kInvalidArgument);
        REQUIRE(Errors(issues).size() == 1);
        CHECK(Errors(issues)[0].code == IssueCode::kNotSupported);
        CHECK(Errors(issues)[0].message == c.expected);
      }
    }
  }

  TEST_CASE("FHIR JSON is UTF-8 only: UTF-16 JSON is refused as such") {
    for (bool mark : {true, false}) {
      std::string json = testing::Utf16(
          testing::ReadFixture("fhir/medication_request_lisinopril.json"), false, mark);
      CHECK(DetectInput(json) == InputKind::kFhirJson);
      IssueList issues;
      auto out = ToScript(json, issues);
      CHECK(out.status().code() == absl::StatusCode::kInvalidArgument);
      REQUIRE(Errors(issues).size() == 1);
      CHECK(Errors(issues)[0].message ==
            "input is UTF-16 or UTF-32 (by its first bytes): FHIR JSON is read as UTF-8 only");
    }
  }

  TEST_CASE("an attribute SCRIPT does not have is named in a warning; XML's own are not") {
    std::string xml = Utf8NewRx();
    size_t note = xml.find("<Note>");
    REQUIRE(note != std::string::npos);
    xml.replace(note, 6, "<Note foo=\"bar\" xml:lang=\"en\">");
    size_t message = xml.find("<Message ");
    xml.replace(message, 9,
                "<Message xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
                "xsi:noNamespaceSchemaLocation=\"transport.xsd\" ");
    IssueList issues;
    auto out = ToFhirJson(xml, issues);
    INFO(Describe(issues));
    RXFLOW_REQUIRE_OK(out);
    std::vector<Issue> attribute_warnings;
    for (const Issue& i : issues) {
      if (i.severity == Severity::kWarning && Contains(i.path, "/@"))
        attribute_warnings.push_back(i);
    }
    REQUIRE(attribute_warnings.size() == 1);
    CHECK(attribute_warnings[0].path == "/Message/Body/NewRx/MedicationPrescribed/Note/@foo");
    CHECK(attribute_warnings[0].message == "attribute foo is not part of SCRIPT: ignored");
    // The schema's own attributes, on every partner fixture RxFlow reads: no such warning.
    for (const Accepted& a : AcceptedFixtures()) {
      CAPTURE(a.file);
      IssueList fixture_issues;
      RXFLOW_CHECK_OK(ToFhirJson(Partner(a.file), fixture_issues));
      for (const Issue& i : fixture_issues) {
        CHECK(!Contains(i.message, "is not part of SCRIPT: ignored"));
      }
    }
  }

  TEST_CASE("a DTD in a UTF-16 message is refused like any other") {
    std::string xml = Declared(Utf8NewRx(), "UTF-16");
    size_t message = xml.find("<Message ");
    xml.insert(message, "<!DOCTYPE Message [<!ENTITY x \"y\">]>\n");
    for (bool big_endian : {false, true}) {
      IssueList issues;
      auto out = ToFhirJson(testing::Utf16(xml, big_endian, true), issues, Lenient());
      CHECK(out.status().code() == absl::StatusCode::kInvalidArgument);
      REQUIRE(Errors(issues).size() == 1);
      CHECK(Errors(issues)[0].code == IssueCode::kSecurity);
      CHECK(Errors(issues)[0].message == "document type (DTD) and entity declarations are refused");
    }
  }
}
