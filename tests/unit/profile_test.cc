// SPDX-License-Identifier: Apache-2.0
#include <string>
#include <string_view>

#include <doctest/doctest.h>

#include "rxflow/script/xml.h"

#include "testing/files.h"
#include "testing/status.h"

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

// Value-type notations of the structure table format, each on an element of Status.
const char* kValueTypeStructure = R"(### Message  (@TransportVersion)
- Header 1..1 : HeaderType
- Body 1..1 : BodyType

### HeaderType
- MessageID 1..1 [an1..5]

### BodyType
- (one of 1..1)
  - Status 1..1 : Status

### Status
- Code 1..1 [inline pattern 010]
- Allergy 0..1 [inline: Y]
- Offset 0..1 [inline pattern [\+\-]?[0-9][0-9]?[0-9]?[0-9]?]
- Hours 0..1 [n1..5]
- Place 0..1 [n2]
- Flag 0..1 [boolean]
- Day 0..1 [SimpleDateType]
- Data 0..1 [base64Binary]
- Any 0..1
)";

// `text` with its one occurrence of `from` replaced by `to`.
std::string Replace(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, "no ", from);
  REQUIRE_MESSAGE(text.find(from, at + 1) == std::string::npos, "twice: ", from);
  return text.replace(at, from.size(), to);
}

// The NewRx fixture with its Instruction's content replaced by `content`.
std::string NewRxWithInstruction(const std::string& content) {
  std::string x = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
  size_t begin = x.find("<Instruction>");
  size_t end = x.find("</Instruction>");
  REQUIRE(begin != std::string::npos);
  REQUIRE(end != std::string::npos);
  begin += std::string_view("<Instruction>").size();
  return x.replace(begin, end - begin, content);
}

size_t Errors(const IssueList& issues) {
  size_t n = 0;
  for (const Issue& i : issues) n += i.severity == Severity::kError;
  return n;
}
}  // namespace

TEST_SUITE("Profiles") {
  TEST_CASE("a loaded structure table validates with its own lengths and codes") {
    auto p = script::LoadProfile(kTinyStructure);
    RXFLOW_REQUIRE_OK(p);
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
    RXFLOW_REQUIRE_OK(p);
    CHECK((*p)->name() == "test1");
    CHECK((*p)->provisional());
    script::ReadOptions o;
    o.profile = p->get();
    IssueList ok;
    auto msg = script::ReadXml(
        "<Message><Header><MessageID>ab</MessageID></Header><Body><Status><Codes><TheCode>000</"
        "TheCode></Codes><Text>fine</Text></Status></Body></Message>",
        ok, o);
    RXFLOW_REQUIRE_OK(msg);
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
    RXFLOW_REQUIRE_OK(m);
    CHECK(std::get<script::Status>(m->body).code == "010");
  }

  TEST_CASE("value types: inline codes, inline patterns and the schema's named types") {
    auto p = script::LoadProfile(kValueTypeStructure);
    RXFLOW_REQUIRE_OK(p);
    script::ReadOptions o;
    o.profile = p->get();
    // Validates <Status> with `content`; returns the issues.
    auto check = [&](const std::string& content) {
      IssueList issues;
      script::ValidateXml("<Message><Header><MessageID>ab</MessageID></Header><Body><Status>" +
                              content + "</Status></Body></Message>",
                          issues, o)
          .IgnoreError();
      return issues;
    };
    auto accepted = [&](const std::string& content) {
      IssueList issues = check(content);
      INFO(content);
      CHECK_FALSE(issues.has_errors());
    };
    // Refused, with an error at /Message/Body/Status/<element>.
    auto refused = [&](const std::string& element, const std::string& value) {
      std::string content = "<Code>010</Code><" + element + ">" + value + "</" + element + ">";
      IssueList issues = check(content);
      INFO(content);
      REQUIRE(issues.Find("/Message/Body/Status/" + element));
      CHECK(issues.Find("/Message/Body/Status/" + element)->severity == Severity::kError);
    };
    accepted("<Code>010</Code>");
    IssueList code = check("<Code>011</Code>");
    REQUIRE(code.Find("/Message/Body/Status/Code"));
    CHECK(code.Find("/Message/Body/Status/Code")->message.find("does not match the pattern 010") !=
          std::string::npos);
    // [inline: Y]
    accepted("<Code>010</Code><Allergy>Y</Allergy>");
    refused("Allergy", "N");
    // [inline pattern [\+\-]?[0-9][0-9]?[0-9]?[0-9]?]
    for (const char* v : {"-5", "+0530", "0", "1200"}) {
      accepted(std::string("<Code>010</Code><Offset>") + v + "</Offset>");
    }
    for (const char* v : {"12345", "+", "-05:00", "", " 5"}) refused("Offset", v);
    // n1..5: maxLength 1 in the schema, whatever its name says.
    accepted("<Code>010</Code><Hours>5</Hours>");
    refused("Hours", "12");
    // n2: exactly two digits.
    accepted("<Code>010</Code><Place>05</Place>");
    for (const char* v : {"5", "123", "5.", "ab"}) refused("Place", v);
    // xsd:boolean (whitespace around it collapses).
    for (const char* v : {"true", "false", "1", "0", " true "}) {
      accepted(std::string("<Code>010</Code><Flag>") + v + "</Flag>");
    }
    for (const char* v : {"yes", "TRUE", "Y"}) refused("Flag", v);
    // xsd:date, optionally with a zone.
    for (const char* v : {"2024-02-29", "2024-02-29Z", "2024-02-29-05:00"}) {
      accepted(std::string("<Code>010</Code><Day>") + v + "</Day>");
    }
    for (const char* v : {"2023-02-29", "2024-2-29", "2024-02-29T00:00:00Z", "2024-02-29+15:00"}) {
      refused("Day", v);
    }
    // xsd:base64Binary (may be empty).
    for (const char* v : {"", "QUJD", "QUI=", "QQ==", "QUJD\nRA=="}) {
      accepted(std::string("<Code>010</Code><Data>") + v + "</Data>");
    }
    for (const char* v : {"QUJ", "QR==", "Q===", "QU=D", "QU*D"}) refused("Data", v);
    // No type in the schema: any text.
    accepted("<Code>010</Code><Any>D\xC3\xA9j\xC3\xA0 vu</Any>");

    // A notation the loader does not know, or a pattern outside its subset, names its line.
    for (const char* bad : {"- Code 1..1 [Frobnicate]", "- Code 1..1 [inline pattern (a|b)]",
                            "- Code 1..1 [inline pattern \\d+]"}) {
      auto broken = script::LoadProfile(std::string("### Message\n") + bad + "\n");
      INFO(bad);
      REQUIRE_FALSE(broken.ok());
      CHECK(std::string(broken.status().message()).find("line 2") != std::string::npos);
    }
  }

  TEST_CASE("dateTime: any fraction, an optional zone, without one, a warning") {
    const std::string x = testing::ReadFixture("script/status_000.xml");
    const std::string sent = "<SentTime>2026-11-20T14:32:08Z</SentTime>";
    auto with = [&](const std::string& v) {
      return Replace(x, sent, "<SentTime>" + v + "</SentTime>");
    };
    for (const char* v : {"2026-11-20T14:32:08.1Z", "2026-11-20T14:32:08.12Z",
                          "2026-11-20T14:32:08.12345-05:00", "2026-11-20T14:32:08.1234567+01:00",
                          "2026-11-20T14:32:08+14:00", "2026-11-20T24:00:00Z"}) {
      IssueList issues;
      INFO(v);
      CHECK(script::ValidateXml(with(v), issues).ok());
      CHECK(issues.empty());
    }
    // No zone: valid xsd:dateTime, read as UTC, with exactly one warning naming the element.
    for (const char* v : {"2026-11-20T14:32:08", "2026-11-20T14:32:08.1234567"}) {
      IssueList issues;
      INFO(v);
      CHECK(script::ValidateXml(with(v), issues).ok());
      CHECK_FALSE(issues.has_errors());
      REQUIRE(issues.warning_count() == 1);
      REQUIRE(issues.size() == 1);
      CHECK(issues[0].severity == Severity::kWarning);
      CHECK(issues[0].path == "/Message/Header/SentTime");
      CHECK(issues[0].message.find("without a time zone") != std::string::npos);
      CHECK(issues[0].message.find("UTC") != std::string::npos);
    }
    for (const char* v : {"2006-13-04T18:13:51", "2026-02-30T14:32:08Z", "2026-11-20T25:00:00Z",
                          "2026-11-20T14:60:00Z", "2026-11-20T14:32:60Z", "2026-11-20T14:32:08.Z",
                          "2026-11-20T14:32Z", "2026-11-20 14:32:08Z", "2026-11-20T14:32:08+15:00",
                          "2026-11-20T14:32:08+0500", "2026-11-20", ""}) {
      IssueList issues;
      INFO(v);
      CHECK_FALSE(script::ValidateXml(with(v), issues).ok());
      REQUIRE(issues.Find("/Message/Header/SentTime"));
      CHECK(issues.Find("/Message/Header/SentTime")->severity == Severity::kError);
    }
  }

  TEST_CASE("code lists are complete: a code the schema does not list is refused") {
    const std::string x = testing::ReadFixture("script/error_900.xml");
    const std::string dc = "<DescriptionCode>1000</DescriptionCode>";
    IssueList ok;
    // 3000 was past the end of the list the old notes shortened ("… 1 more").
    CHECK(script::ValidateXml(Replace(x, dc, "<DescriptionCode>3000</DescriptionCode>"), ok).ok());
    CHECK_FALSE(ok.has_errors());
    IssueList bad;
    CHECK_FALSE(
        script::ValidateXml(Replace(x, dc, "<DescriptionCode>9999</DescriptionCode>"), bad).ok());
    REQUIRE(bad.Find("/Message/Body/Error/DescriptionCode"));
    CHECK(bad.Find("/Message/Body/Error/DescriptionCode")
              ->message.find("\"9999\" is not in code list DescriptionCode") != std::string::npos);
    // A pattern defined in place: VerifyStatus/Code is exactly 010.
    std::string v = testing::ReadFixture("script/verify.xml");
    IssueList verify;
    CHECK_FALSE(
        script::ValidateXml(Replace(v, "<Code>010</Code>", "<Code>000</Code>"), verify).ok());
    CHECK(verify.Find("/Message/Body/Verify/VerifyStatus/Code"));
  }

  TEST_CASE("the eight transactions of the second notes file are in the Body choice") {
    std::string_view table = script::BuiltinStructureTable();
    size_t body = table.find("### BodyType\n");
    REQUIRE(body != std::string_view::npos);
    std::string_view choice = table.substr(body, table.find("\n\n", body) + 1 - body);
    const std::string status = testing::ReadFixture("script/status_000.xml");
    const std::string code = "<Status>\n      <Code>000</Code>\n    </Status>";
    for (std::string t :
         {"RxFillIndicatorChange", "RxHistoryRequest", "RxHistoryResponse", "RxTransferRequest",
          "RxTransferResponse", "RxTransferConfirm", "NewRxRequest", "NewRxResponseDenied"}) {
      INFO(t);
      CHECK(choice.find("  - " + t + " 1..1 : " + t + "\n") != std::string_view::npos);
      // An empty one is checked against its content model: not an unknown element, not an
      // unsupported transaction.
      IssueList issues;
      script::ValidateXml(Replace(status, code, "<" + t + "/>"), issues).IgnoreError();
      for (const Issue& i : issues) {
        CHECK(i.message.find("unknown element") == std::string::npos);
        CHECK(i.message.find("not supported") == std::string::npos);
        CHECK(i.path.rfind("/Message/Body/" + t, 0) == 0);
      }
    }
    // The eleven transactions of the first notes file stay.
    for (std::string t :
         {"NewRx", "Status", "Error", "Verify", "CancelRx", "CancelRxResponse", "RxRenewalRequest",
          "RxRenewalResponse", "RxChangeRequest", "RxChangeResponse", "RxFill"}) {
      CHECK(choice.find("  - " + t + " 1..1 : " + t + "\n") != std::string_view::npos);
    }
    // A complete one validates.
    IssueList issues;
    CHECK(script::ValidateXml(Replace(status, code,
                                      "<RxFillIndicatorChange><RxFillIndicator>Cancel All Fill "
                                      "Statuses</RxFillIndicator></RxFillIndicatorChange>"),
                              issues)
              .ok());
    CHECK_FALSE(issues.has_errors());
  }

  TEST_CASE("Instruction and TimingAndDuration: the schema's nested sequences") {
    const std::string sig = "<Text>x</Text><Qualifier>SNOMED</Qualifier><Code>1</Code>";
    const std::string dose = "<DoseAdministration><RouteOfAdministration>" + sig +
                             "</RouteOfAdministration></DoseAdministration>";
    const std::string frequency =
        "<Frequency><FrequencyNumericValue>1</FrequencyNumericValue>"
        "<FrequencyUnits>" +
        sig + "</FrequencyUnits></Frequency>";
    const std::string duration =
        "<Duration><DurationNumericValue>10</DurationNumericValue>"
        "<DurationText>" +
        sig + "</DurationText></Duration>";
    const std::string timing = "<TimingAndDuration>" + frequency + "</TimingAndDuration>";
    const std::string indicator = "<InstructionIndicator>MEDICALENCOUNTER</InstructionIndicator>";
    const std::string indication =
        "<IndicationForUse><Indication>" + sig + "</Indication></IndicationForUse>";
    const std::string clarified = "<TimingAndDuration>" + frequency +
                                  "<TimingClarifyingFreeText>with food</TimingClarifyingFreeText>"
                                  "</TimingAndDuration>";
    const std::string and_then = "<MultipleTimingModifier>AND</MultipleTimingModifier>";
    for (const std::string& ok : {
             indicator,                                          // (a) alone
             indicator + timing + and_then + timing,             // (a) with timings
             dose + timing,                                      // (b)
             dose + timing + and_then + clarified + indication,  // (b) with its sequences
             dose + "<TimingAndDuration>" + duration + "</TimingAndDuration>",
             "<AdministrationIndicator>MANUFACTURERSINSTRUCTIONS</AdministrationIndicator>" +
                 indication,
         }) {
      IssueList issues;
      INFO(ok);
      CHECK(script::ValidateXml(NewRxWithInstruction(ok), issues).ok());
      CHECK(Errors(issues) == 0);
    }
    for (const std::string& bad : {
             indicator + dose + timing,  // the two alternatives mixed
             indicator + indication,     // an indication belongs to (b)
             dose,                       // (b) needs a timing
             dose + "<TimingAndDuration>" + duration +
                 "<TimingClarifyingFreeText>x</TimingClarifyingFreeText></TimingAndDuration>",
             dose + "<TimingAndDuration><TimingClarifyingFreeText>x</TimingClarifyingFreeText>"
                    "</TimingAndDuration>",
         }) {
      IssueList issues;
      INFO(bad);
      CHECK_FALSE(script::ValidateXml(NewRxWithInstruction(bad), issues).ok());
      CHECK(Errors(issues) > 0);
    }
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
