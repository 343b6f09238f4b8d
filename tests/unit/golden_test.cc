// Golden files: every FHIR fixture → NewRx (2017071 and 2023011) → FHIR, and every SCRIPT
// fixture → FHIR, compared byte for byte with tests/fixtures/golden/. Set
// RXFLOW_UPDATE_GOLDEN=1 to rewrite them after an intended change (then review the diff).
#include <cstdlib>

#include <doctest/doctest.h>

#include "rxflow/transform.h"

#include "testing/files.h"

using namespace rxflow;

namespace {

bool Updating() {
  const char* v = std::getenv("RXFLOW_UPDATE_GOLDEN");
  return v && std::string(v) == "1";
}

void CompareGolden(const std::string& rel, const std::string& actual) {
  auto path = testing::Fixture("golden/" + rel);
  if (Updating()) {
    testing::WriteFile(path, actual);
    return;
  }
  REQUIRE_MESSAGE(std::filesystem::exists(path),
                  "missing golden file " << rel << " (run with RXFLOW_UPDATE_GOLDEN=1)");
  std::string expected = testing::ReadFile(path);
  CHECK_MESSAGE(expected == actual, "golden mismatch: " << rel);
}

TransformOptions GoldenOptions(script::Version v, const std::string& name) {
  TransformOptions o;
  o.version = v;
  o.pretty = true;
  o.newrx.message_id = "golden-" + name.substr(0, 28);
  o.newrx.sent_time = "2026-11-26T10:00:00Z";
  return o;
}

}  // namespace

TEST_SUITE("Golden") {
  TEST_CASE("FHIR fixtures map to the golden NewRx in both profiles and back to golden FHIR") {
    auto files = testing::FixtureFiles("fhir", ".json");
    CHECK(files.size() >= 15);
    for (const auto& path : files) {
      std::string name = path.stem().string();
      CAPTURE(name);
      std::string json = testing::ReadFile(path);
      for (script::Version v : {script::Version::k2017071, script::Version::k2023011}) {
        IssueList issues;
        auto out = ToScript(json, issues, GoldenOptions(v, name));
        for (const auto& i : issues) {
          if (i.severity == Severity::kError) MESSAGE(ToString(i));
        }
        REQUIRE(out.ok());
        std::string version(script::VersionName(v));
        CompareGolden(name + "." + version + ".xml", out->xml);
        // Back to FHIR, from either profile: the same Bundle.
        IssueList back_issues;
        auto back = ToFhirJson(out->xml, back_issues, GoldenOptions(v, name));
        REQUIRE(back.ok());
        CHECK_FALSE(back_issues.has_errors());
        if (v == script::Version::k2017071) {
          CompareGolden(name + ".fhir.json", *back);
        } else {
          CHECK(testing::ReadFile(testing::Fixture("golden/" + name + ".fhir.json")) == *back);
        }
      }
    }
  }

  TEST_CASE("SCRIPT fixtures map to golden FHIR") {
    for (const auto& path : testing::FixtureFiles("script", ".xml")) {
      std::string name = path.stem().string();
      CAPTURE(name);
      IssueList issues;
      TransformOptions o;
      o.pretty = true;
      auto out = ToFhirJson(testing::ReadFile(path), issues, o);
      REQUIRE(out.ok());
      CompareGolden("script/" + name + ".fhir.json", *out);
    }
  }

  TEST_CASE("the cancelled fixture becomes a CancelRx that names the original NewRx") {
    IssueList issues;
    auto o = GoldenOptions(script::Version::k2017071, "cancel");
    auto out = ToScript(testing::ReadFixture("fhir/schedule3_testosterone_cancelled.json"), issues,
                        o, "ORIGINAL-NEWRX-1");
    REQUIRE(out.ok());
    CHECK(out->xml.find("<CancelRx>") != std::string::npos);
    CHECK(out->xml.find("<RelatesToMessageID>ORIGINAL-NEWRX-1</RelatesToMessageID>") !=
          std::string::npos);
  }
}
