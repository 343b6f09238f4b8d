// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include "rxflow/clinical/checks.h"
#include "rxflow/transform.h"

#include "testing/files.h"

using namespace rxflow;

TEST_SUITE("Clinical") {
  TEST_CASE("NPI check digits: CMS and published examples") {
    for (const char* ok : {"1234567893", "1558598797", "1245319599", "1003000126"}) {
      CAPTURE(ok);
      CHECK(clinical::CheckNpi(ok).empty());
    }
    CHECK(clinical::CheckNpi("1234567890").find("check digit") != std::string::npos);
    CHECK(clinical::CheckNpi("123456789").find("10 digits") != std::string::npos);
    CHECK(clinical::CheckNpi("12345678a3").find("10 digits") != std::string::npos);
    CHECK(clinical::CheckNpi("3234567893").find("starts with 1 or 2") != std::string::npos);
  }

  TEST_CASE("DEA check digits, registrant type and last-name letter") {
    CHECK(clinical::CheckDea("AP5836727").empty());
    CHECK(clinical::CheckDea("AJ5184279", "Jones").empty());
    CHECK(clinical::CheckDea("F91234563", "Anyone").empty());
    CHECK(clinical::CheckDea("BJ1234563").empty());
    CHECK(clinical::CheckDea("MS1234563").empty());
    CHECK(clinical::CheckDea("F91234563-001AB").empty());  // supervised suffix stripped
    CHECK(clinical::CheckDea("AB4523767").find("check digit") != std::string::npos);
    CHECK(clinical::CheckDea("AB4523763").find("check digit") != std::string::npos);
    CHECK(clinical::CheckDea("AJ5184279", "Smith").find("last name") != std::string::npos);
    CHECK(clinical::CheckDea("ZJ5184279").find("registrant type") != std::string::npos);
    CHECK(clinical::CheckDea("AJ518427").find("2 letters and 7 digits") != std::string::npos);
  }

  // Edits a fixture with string replacement and runs the whole transform.
  Status Run(const std::string& fixture, std::vector<std::pair<std::string, std::string>> edits,
             IssueList& issues, const TransformOptions& options = {}) {
    std::string json = testing::ReadFixture(fixture);
    for (const auto& [from, to] : edits) {
      size_t at = json.find(from);
      REQUIRE_MESSAGE(at != std::string::npos, "fixture has no " << from);
      json.replace(at, from.size(), to);
    }
    auto out = ToScript(json, issues, options);
    return out.status();
  }

  TEST_CASE("a Schedule II prescription with refills is refused (422-class)") {
    IssueList issues;
    Status s = Run("fhir/schedule2_oxycodone.json",
                   {{"\"numberOfRepeatsAllowed\": 0", "\"numberOfRepeatsAllowed\": 1"}}, issues);
    CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
    const Issue* i = issues.Find("medication_request.dispenseRequest.numberOfRepeatsAllowed");
    REQUIRE(i);
    CHECK(i->code == IssueCode::kBusinessRule);
    CHECK(i->message.find("Schedule II") != std::string::npos);
  }

  TEST_CASE("Schedule III/IV allow at most 5 refills") {
    IssueList ok_issues;
    CHECK(Run("fhir/schedule4_alprazolam_refills.json",
              {{"\"numberOfRepeatsAllowed\": 2", "\"numberOfRepeatsAllowed\": 5"}}, ok_issues)
              .ok());
    IssueList issues;
    Status s = Run("fhir/schedule4_alprazolam_refills.json",
                   {{"\"numberOfRepeatsAllowed\": 2", "\"numberOfRepeatsAllowed\": 6"}}, issues);
    CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(issues.Find("medication_request.dispenseRequest.numberOfRepeatsAllowed"));
  }

  TEST_CASE("Schedule III/IV cannot be filled more than 6 months after issue") {
    IssueList issues;
    std::string json = testing::ReadFixture("fhir/schedule4_alprazolam_refills.json");
    size_t at = json.find("\"dispenseRequest\": {");
    REQUIRE(at != std::string::npos);
    json.insert(at + std::string("\"dispenseRequest\": {").size(),
                "\"validityPeriod\": {\"end\": \"2027-09-01\"},");
    auto out = ToScript(json, issues);
    CHECK(out.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(issues.Find("medication_request.dispenseRequest.validityPeriod.end"));
  }

  TEST_CASE("Schedule V: accepted federally, refused by a state policy that caps refills") {
    IssueList federal;
    CHECK(Run("fhir/schedule5_pregabalin.json", {}, federal).ok());
    TransformOptions state;
    state.checks.policy.schedule5_max_refills = 2;
    state.checks.policy.name = "state-test";
    IssueList issues;
    Status s = Run("fhir/schedule5_pregabalin.json", {}, issues, state);
    CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
    const Issue* i = issues.Find("medication_request.dispenseRequest.numberOfRepeatsAllowed");
    REQUIRE(i);
    CHECK(i->message.find("state-test") != std::string::npos);
  }

  TEST_CASE("a controlled substance needs the prescriber's DEA number") {
    IssueList issues;
    std::string json = testing::ReadFixture("fhir/schedule2_oxycodone.json");
    // Point the DEA identifier at an unknown system: the prescriber then has none.
    size_t at = json.find("urn:oid:2.16.840.1.113883.4.814");
    REQUIRE(at != std::string::npos);
    json.replace(at, std::string("urn:oid:2.16.840.1.113883.4.814").size(), "urn:example:other");
    at = json.find("\"code\": \"DEA\"");
    if (at != std::string::npos) json.replace(at, 13, "\"code\": \"XX\"");
    auto out = ToScript(json, issues);
    CHECK(out.status().code() == absl::StatusCode::kFailedPrecondition);
    bool found = false;
    for (const auto& i : issues)
      found |= i.message.find("requires the prescriber's DEA number") != std::string::npos;
    CHECK(found);
  }

  TEST_CASE("a bad prescriber NPI check digit is refused with the identifier's path") {
    IssueList issues;
    std::string json = testing::ReadFixture("fhir/medication_request_lisinopril.json");
    size_t at = json.find("1738294614");
    REQUIRE(at != std::string::npos);
    json.replace(at, 10, "1738294615");
    auto out = ToScript(json, issues);
    CHECK(out.status().code() == absl::StatusCode::kFailedPrecondition);
    const Issue* i = issues.Find("practitioner.identifier[0].value");
    REQUIRE(i);
    CHECK(i->message.find("NPI check digit") != std::string::npos);
  }

  TEST_CASE("a DEA number whose second letter is not the last-name initial is refused") {
    IssueList issues;
    std::string json = testing::ReadFixture("fhir/schedule4_alprazolam_refills.json");
    // Rename the prescriber: the DEA number no longer matches.
    size_t fam = json.find("\"family\"", json.find("\"practitioner\""));
    REQUIRE(fam != std::string::npos);
    size_t q1 = json.find('"', json.find(':', fam) + 1);
    size_t q2 = json.find('"', q1 + 1);
    json.replace(q1 + 1, q2 - q1 - 1, "Zzyzx");
    auto out = ToScript(json, issues);
    CHECK(out.status().code() == absl::StatusCode::kFailedPrecondition);
    bool found = false;
    for (const auto& i : issues) found |= i.message.find("last name initial") != std::string::npos;
    CHECK(found);
  }
}
