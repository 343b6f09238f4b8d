#include <doctest/doctest.h>

#include "rxflow/script/xml.h"

#include "testing/files.h"

using namespace rxflow;

namespace {
const char* kTinyStructure = R"(### Message  (@TransportVersion)
- Header 1..1 : HeaderType
- Body 1..1 : BodyType

### HeaderType
- MessageID 1..1 [an1..5]

### BodyType
- (one of 1..1)
  - Status 1..1 : Status

### Status
- Code 1..1 [StatusCode: 000, 010]
- Description 0..1 [an1..70]
)";
}

TEST_SUITE("Profiles") {
  TEST_CASE("a loaded structure table validates with its own lengths and codes") {
    auto p = script::LoadProfile(kTinyStructure);
    REQUIRE(p.ok());
    script::ReadOptions o;
    o.profile = p->get();
    IssueList ok;
    CHECK(script::ValidateXml("<Message><Header><MessageID>ab</MessageID></"
                              "Header><Body><Status><Code>010</Code></Status></Body></Message>",
                              ok, o)
              .ok());
    IssueList bad;
    CHECK_FALSE(
        script::ValidateXml("<Message><Header><MessageID>abcdef</MessageID></"
                            "Header><Body><Status><Code>999</Code></Status></Body></Message>",
                            bad, o)
            .ok());
    REQUIRE(bad.Find("/Message/Header/MessageID"));
    CHECK(bad.Find("/Message/Header/MessageID")->code == IssueCode::kTooLong);
    REQUIRE(bad.Find("/Message/Body/Status/Code"));
    CHECK(bad.Find("/Message/Body/Status/Code")->message.find("StatusCode") != std::string::npos);
  }

  TEST_CASE("version rules: wrap, rename and remove change what is valid") {
    auto p = script::LoadProfile(
        kTinyStructure,
        "version test1\nwrap Status/Code Codes/TheCode\nrename */Description Text\n");
    REQUIRE(p.ok());
    CHECK((*p)->name() == "test1");
    CHECK((*p)->provisional());
    script::ReadOptions o;
    o.profile = p->get();
    IssueList ok;
    auto msg = script::ReadXml(
        "<Message><Header><MessageID>ab</MessageID></Header><Body><Status><Codes><TheCode>000</"
        "TheCode></Codes><Text>fine</Text></Status></Body></Message>",
        ok, o);
    REQUIRE(msg.ok());
    CHECK(std::get<script::Status>(msg->body).code == "000");
    CHECK(std::get<script::Status>(msg->body).description == "fine");
    IssueList bad;
    CHECK_FALSE(
        script::ValidateXml("<Message><Header><MessageID>ab</MessageID></"
                            "Header><Body><Status><Code>000</Code></Status></Body></Message>",
                            bad, o)
            .ok());
  }

  TEST_CASE("a broken table or rule names its line") {
    auto bad_table = script::LoadProfile("### Message\n- Header one..1 : X\n");
    REQUIRE_FALSE(bad_table.ok());
    CHECK(std::string(bad_table.status().message()).find("line 2") != std::string::npos);
    auto bad_rule = script::LoadProfile(kTinyStructure, "\n\nfrobnicate Status/Code\n");
    REQUIRE_FALSE(bad_rule.ok());
    CHECK(std::string(bad_rule.status().message()).find("profile line 3") != std::string::npos);
    auto missing = script::LoadProfile(kTinyStructure, "wrap Status/Nothing A/B\n");
    CHECK_FALSE(missing.ok());
    auto undefined = script::LoadProfile("### Message\n- Header 1..1 : Nowhere\n");
    CHECK_FALSE(undefined.ok());
  }

  TEST_CASE("the built-in profiles: names and version attributes") {
    CHECK(script::BuiltinProfile(script::Version::k2017071).name() == "2017071");
    CHECK_FALSE(script::BuiltinProfile(script::Version::k2017071).provisional());
    CHECK(script::BuiltinProfile(script::Version::k2023011).name() == "2023011");
    CHECK(script::BuiltinProfile(script::Version::k2023011).provisional());
    CHECK(script::ParseVersion("2017071").ok());
    CHECK_FALSE(script::ParseVersion("10.6").ok());
  }

  TEST_CASE("the version is detected from TransportVersion") {
    std::string x17 = testing::ReadFixture("script/status_000.xml");
    IssueList issues;
    CHECK(script::ReadXml(x17, issues).ok());
    CHECK_FALSE(issues.has_errors());
    // An unknown version is read as 2023011, with a warning.
    std::string unknown = x17;
    size_t at = unknown.find("TransportVersion=\"20170715\"");
    REQUIRE(at != std::string::npos);
    unknown.replace(at, 27, "TransportVersion=\"19990101\"");
    IssueList w;
    script::ValidateXml(unknown, w).IgnoreError();
    REQUIRE(w.Find("/Message/@TransportVersion"));
  }

  TEST_CASE("namespaced (10.6-style) input still loads") {
    std::string x = testing::ReadFixture("script/status_010.xml");
    size_t at = x.find("<Message ");
    REQUIRE(at != std::string::npos);
    x.insert(at + 9, "xmlns=\"http://www.ncpdp.org/schema/SCRIPT\" ");
    IssueList issues;
    auto m = script::ReadXml(x, issues);
    REQUIRE(m.ok());
    CHECK(std::get<script::Status>(m->body).code == "010");
  }

#ifdef RXFLOW_TEST_HAVE_LIBXML2
  TEST_CASE("XSD validation against a user-supplied schema set") {
    std::string dir = testing::Fixture("xsd").string();
    IssueList ok;
    CHECK(script::ValidateWithXsd(testing::ReadFixture("script/status_000.xml"), dir, ok).ok());
    CHECK_FALSE(ok.has_errors());
    std::string x = testing::ReadFixture("script/status_000.xml");
    size_t at = x.find("<MessageID>");
    REQUIRE(at != std::string::npos);
    x.insert(at + 11, std::string(40, 'x'));
    IssueList bad;
    CHECK(script::ValidateWithXsd(x, dir, bad).code() == absl::StatusCode::kInvalidArgument);
    REQUIRE(bad.has_errors());
    CHECK(bad[0].message.find("XSD:") == 0);
    CHECK(bad[0].path.find("line ") == 0);
    IssueList missing;
    CHECK(script::ValidateWithXsd(x, "/nonexistent", missing).code() ==
          absl::StatusCode::kNotFound);
  }
#endif
}
