#include <doctest/doctest.h>

#include "rxflow/script/xml.h"

#include "testing/files.h"

using namespace rxflow;

TEST_SUITE("SCRIPT XML") {
  TEST_CASE("every SCRIPT fixture is valid 2017071 and reads back") {
    for (const auto& path : testing::FixtureFiles("script", ".xml")) {
      CAPTURE(path.filename().string());
      IssueList issues;
      auto msg = script::ReadXml(testing::ReadFile(path), issues);
      for (const auto& i : issues) MESSAGE(ToString(i));
      CHECK(msg.ok());
      CHECK_FALSE(issues.has_errors());
    }
  }
}
