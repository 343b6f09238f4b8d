// SPDX-License-Identifier: Apache-2.0
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "rxflow/script/xml.h"

#include "testing/files.h"
#include "testing/status.h"

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

  // A validator lives for one message; its frames (with their vectors' capacity) are kept
  // for the next validator on the thread (schema.cc, Validator::SpareFrames), bounded after a
  // hostile message. Nothing of one message may reach the next one's issues.
  TEST_CASE("a message validated after a hostile one on the same thread gets the same issues") {
    auto issues_of = [](const std::string& xml) {
      IssueList issues;
      (void)script::ReadXml(xml, issues);
      std::vector<std::string> out;
      for (const Issue& i : issues) out.push_back(ToString(i));
      return out;
    };
    const std::string good = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
    std::string bad = good;
    const std::string names = "<LastName>Delacroix</LastName>";
    const size_t at = bad.find(names);
    REQUIRE(at != std::string::npos);
    // 5,000 unknown siblings beside the patient's name, and a name left out of order.
    std::string unknown;
    for (int i = 0; i < 5000; ++i) unknown += "<Unknown/>";
    bad.insert(at, unknown);
    std::vector<std::string> fresh_good, fresh_bad;
    std::thread([&] {  // a thread whose validators start with no kept frames
      fresh_good = issues_of(good);
      fresh_bad = issues_of(bad);
    })
        .join();
    CHECK(fresh_good.empty());
    REQUIRE(fresh_bad.size() > 10);
    for (int round = 0; round < 3; ++round) {
      CAPTURE(round);
      CHECK(issues_of(bad) == fresh_bad);
      CHECK(issues_of(good) == fresh_good);
    }
    // The writer's validator takes the same frames: a message written after them is clean.
    IssueList read_issues;
    auto message = script::ReadXml(good, read_issues);
    REQUIRE(message.ok());
    (void)issues_of(bad);
    IssueList write_issues;
    script::WriteOptions wo;
    wo.profile = &script::BuiltinProfile(script::Version::k2017071);
    auto written = script::WriteXml(*message, write_issues, wo);
    RXFLOW_REQUIRE_OK(written.status());
    CHECK_FALSE(write_issues.has_errors());
    CHECK(issues_of(*written) == fresh_good);
  }

  // The validator remembers, per thread and schema, the last sequence of children each type
  // accepted (schema.cc, CheckContent): a sequence it refuses must be refused every time,
  // however warm that memory is, and in either order of reading.
  TEST_CASE("an order of children the schema refuses is refused after the right order was read") {
    const std::string good = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
    const std::string names =
        "<LastName>Delacroix</LastName>\n            <FirstName>Marisol</FirstName>";
    const size_t at = good.find(names);
    REQUIRE(at != std::string::npos);
    std::string bad = good;
    bad.replace(at, names.size(),
                "<FirstName>Marisol</FirstName>\n            <LastName>Delacroix</LastName>");
    for (int round = 0; round < 3; ++round) {
      CAPTURE(round);
      IssueList issues;
      RXFLOW_REQUIRE_OK(script::ReadXml(good, issues));
      CHECK_FALSE(issues.has_errors());
      issues.clear();
      CHECK_FALSE(script::ReadXml(bad, issues).ok());
      const Issue* i = issues.Find("/Message/Body/NewRx/Patient/HumanPatient/Name/FirstName");
      REQUIRE(i != nullptr);
      CHECK(i->message == "element out of order: expected LastName before FirstName");
    }
  }

  // Some model members have defaults for writing (Quantity's CodeListQualifier "38"): a
  // message read without the element must not come back with the default invented.
  TEST_CASE("a lenient read of a message without a required element does not invent it") {
    std::string xml = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
    const std::string qualifier = "<CodeListQualifier>38</CodeListQualifier>";
    const size_t at = xml.find(qualifier);
    REQUIRE(at != std::string::npos);
    xml.erase(at, qualifier.size());
    script::ReadOptions o;
    o.lenient = true;
    IssueList issues;
    auto m = script::ReadXml(xml, issues, o);
    RXFLOW_REQUIRE_OK(m);
    CHECK(issues.has_errors());
    const auto& quantity = std::get<script::NewRx>(m->body).medication_prescribed.quantity;
    REQUIRE(quantity.has_value());
    CHECK(quantity->code_list_qualifier == "");
  }

  // ReadHeader answers a refused message: it reads the Header and looks at nothing else.
  TEST_CASE("ReadHeader reads the Header of a message whose Body is not SCRIPT") {
    std::string xml = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
    const size_t open = xml.find("<NewRx>"), close = xml.find("</NewRx>");
    REQUIRE((open != std::string::npos && close != std::string::npos));
    xml.replace(open, close + 8 - open, "<Madeup><Deep><Deeper>x</Deeper></Deep></Madeup>");
    IssueList issues;
    auto h = script::ReadHeader(xml, issues);
    RXFLOW_REQUIRE_OK(h);
    CHECK(h->message_id == "5e0a7c1d92b34f6e8a1c3b5d7f9e2a40");
    CHECK(h->to == "4712345");
    CHECK(h->to_qualifier == "P");
    CHECK_FALSE(issues.has_errors());
  }

  // The version a message is read with: the caller's, else its own attributes, else 2017071.
  TEST_CASE("the SCRIPT version comes from the Message, can be forced, and defaults to 2017071") {
    std::string xml = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
    std::string bare = xml;
    for (const char* a : {"DatatypesVersion", "TransportVersion", "TransactionDomain",
                          "TransactionVersion", "StructuresVersion", "ECLVersion"}) {
      size_t at = bare.find(std::string(" ") + a + "=\"");
      REQUIRE(at != std::string::npos);
      bare.erase(at, bare.find('"', bare.find('"', at) + 1) + 1 - at);
    }
    REQUIRE(bare.find("<Message>") != std::string::npos);

    IssueList issues;
    RXFLOW_REQUIRE_OK(script::ReadXml(xml, issues));
    CHECK(issues.Find("/Message/@TransportVersion") == nullptr);

    issues.clear();
    RXFLOW_REQUIRE_OK(script::ReadXml(bare, issues));
    const Issue* w = issues.Find("/Message/@TransportVersion");
    REQUIRE(w != nullptr);
    CHECK(w->severity == Severity::kWarning);
    CHECK(w->message == "no SCRIPT version on Message: read as 2017071");
    CHECK_FALSE(issues.has_errors());

    // 20170712-style values name 2017071 too; an unknown value is named in the warning.
    std::string other = xml;
    other.replace(other.find("TransportVersion=\"20170715\""), 27, "TransportVersion=\"20170712\"");
    issues.clear();
    CHECK(script::ReadXml(other, issues).ok());
    CHECK(issues.Find("/Message/@TransportVersion") == nullptr);
    other.replace(other.find("TransportVersion=\"20170712\""), 27, "TransportVersion=\"99999999\"");
    issues.clear();
    CHECK(script::ReadXml(other, issues).ok());
    REQUIRE(issues.Find("/Message/@TransportVersion") != nullptr);
    CHECK(issues.Find("/Message/@TransportVersion")->message ==
          "unknown SCRIPT version \"99999999\": read as 2017071");

    // Forced: the same 2017071 message read with the 2023011 profile is wrong for it
    // (2023011 wraps the patient's Name in Names), whatever its attributes say.
    script::ReadOptions forced;
    forced.version = script::Version::k2023011;
    issues.clear();
    auto as2023 = script::ReadXml(xml, issues, forced);
    CHECK_FALSE(as2023.ok());
    CHECK(issues.has_errors());
    forced.version = script::Version::k2017071;
    issues.clear();
    CHECK(script::ReadXml(bare, issues, forced).ok());
    CHECK(issues.Find("/Message/@TransportVersion") == nullptr);  // asked for: no warning
  }

  TEST_CASE("namespaces: SCRIPT's is read with a warning, xsi/xsd are fine, others refused") {
    std::string xml = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
    auto with = [&](const std::string& attributes) {
      std::string out = xml;
      out.insert(out.find("<Message ") + 8, " " + attributes);
      return out;
    };
    IssueList issues;
    CHECK(script::ReadXml(with("xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
                               "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\""),
                          issues)
              .ok());
    CHECK_FALSE(issues.has_errors());
    CHECK(issues.Find("/Message/@xmlns") == nullptr);
    CHECK(issues.Find("/Message/@TransportVersion") == nullptr);
    issues.clear();
    CHECK(script::ReadXml(with("xmlns=\"http://www.ncpdp.org/schema/SCRIPT\""), issues).ok());
    REQUIRE(issues.Find("/Message/@xmlns") != nullptr);
    CHECK(issues.Find("/Message/@xmlns")->severity == Severity::kWarning);
    CHECK_FALSE(issues.has_errors());
    issues.clear();
    auto other = script::ReadXml(with("xmlns=\"urn:example:not-script\""), issues);
    CHECK(other.status().code() == absl::StatusCode::kInvalidArgument);
    REQUIRE(issues.size() == 1);
    CHECK(issues[0].path == "/Message/@xmlns");
    CHECK(issues[0].message.find("urn:example:not-script") != std::string::npos);
    // A prefixed root element is judged by its prefix's namespace.
    std::string prefixed = "<s:Message xmlns:s=\"urn:example:other\"><s:Header/></s:Message>";
    issues.clear();
    CHECK_FALSE(script::ReadXml(prefixed, issues).ok());
    CHECK(issues[0].message.find("urn:example:other") != std::string::npos);
  }

  TEST_CASE("SCRIPT 10.6 and unsupported transactions: one error each, Unimplemented") {
    std::string xml = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
    std::string v106 = xml;
    v106.replace(v106.find("<Message "), 9, "<Message version=\"010\" release=\"006\" ");
    IssueList issues;
    auto r = script::ReadXml(v106, issues);
    CHECK(r.status().code() == absl::StatusCode::kUnimplemented);
    REQUIRE(issues.size() == 1);
    CHECK(issues[0].message ==
          "SCRIPT 10.6 is not supported by RxFlow: it reads SCRIPT 2017071 and 2023011");

    std::string cir = xml;
    size_t open = cir.find("<NewRx>"), close = cir.find("</NewRx>");
    cir.replace(open, close + 8 - open, "<ClinicalInfoResponse><X/></ClinicalInfoResponse>");
    for (bool lenient : {false, true}) {
      CAPTURE(lenient);
      script::ReadOptions o;
      o.lenient = lenient;
      issues.clear();
      r = script::ReadXml(cir, issues, o);
      CHECK(r.status().code() == absl::StatusCode::kUnimplemented);
      REQUIRE(issues.error_count() == 1);
      CHECK(issues.Find("/Message/Body/ClinicalInfoResponse")->message ==
            "transaction ClinicalInfoResponse is not supported by RxFlow");
    }
    // Not a SCRIPT transaction at all: the validator names the unknown element.
    std::string made_up = cir;
    made_up.replace(made_up.find("<ClinicalInfoResponse>"), 22, "<Madeup>");
    made_up.replace(made_up.find("</ClinicalInfoResponse>"), 23, "</Madeup>");
    issues.clear();
    CHECK(script::ReadXml(made_up, issues).status().code() == absl::StatusCode::kInvalidArgument);
  }

  TEST_CASE("lenient reading returns what could be read, with every error") {
    std::string xml = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
    std::string bad = xml;
    size_t at = bad.find("<MessageID>");
    bad.insert(at, "<Bogus>x</Bogus>");
    IssueList issues;
    CHECK(script::ReadXml(bad, issues).status().code() == absl::StatusCode::kInvalidArgument);
    script::ReadOptions lenient;
    lenient.lenient = true;
    issues.clear();
    auto m = script::ReadXml(bad, issues, lenient);
    RXFLOW_REQUIRE_OK(m);
    CHECK(issues.has_errors());
    CHECK(issues.Find("/Message/Header/Bogus") != nullptr);
    CHECK(std::holds_alternative<script::NewRx>(m->body));
    CHECK_FALSE(m->header.message_id.empty());
    // What stays refused: malformed XML and limits.
    issues.clear();
    CHECK_FALSE(script::ReadXml("<Message><Header>", issues, lenient).ok());
  }

  TEST_CASE("bytes that are not UTF-8 are malformed XML, named by line and column") {
    std::string xml = testing::ReadFixture("script/status_000.xml");
    for (std::string bad : {"\x9a", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82"}) {
      CAPTURE(bad.size());
      std::string x = xml;
      x.insert(x.find("<Code>") + 6, bad);
      IssueList issues;
      script::ReadOptions lenient;
      lenient.lenient = true;
      CHECK(script::ReadXml(x, issues, lenient).status().code() ==
            absl::StatusCode::kInvalidArgument);
      REQUIRE(issues.size() == 1);
      CHECK(issues[0].severity == Severity::kFatal);
      CHECK(issues[0].message.find("invalid UTF-8") != std::string::npos);
      CHECK(issues[0].message.find("malformed XML at line ") == 0);
    }
    IssueList issues;
    std::string ok = xml;
    ok.insert(ok.find("<Code>") + 6, "");
    CHECK(script::ReadXml(ok, issues).ok());
  }

  // The transactions of the second structure notes (issue 15 §2): each fixture reads into
  // its struct, writes back in both profiles, and reads and writes again to the same bytes;
  // in 2017071 the output is the fixture itself (every element of these fixtures is modelled).
  TEST_CASE("the history, transfer and new-prescription-request transactions write back") {
    const std::pair<const char*, const char*> fixtures[] = {
        {"rxfill_indicator_change", "RxFillIndicatorChange"},
        {"rxhistory_request", "RxHistoryRequest"},
        {"rxhistory_response_dispensed", "RxHistoryResponse"},
        {"rxhistory_response_prescribed", "RxHistoryResponse"},
        {"rxtransfer_request", "RxTransferRequest"},
        {"rxtransfer_response", "RxTransferResponse"},
        {"rxtransfer_confirm", "RxTransferConfirm"},
        {"newrx_request", "NewRxRequest"},
        {"newrx_response_denied", "NewRxResponseDenied"}};
    for (const auto& [file, transaction] : fixtures) {
      CAPTURE(file);
      const std::string xml = testing::ReadFixture(std::string("script/") + file + ".xml");
      IssueList issues;
      auto first = script::ReadXml(xml, issues);
      RXFLOW_REQUIRE_OK(first);
      CHECK(issues.empty());  // nothing dropped, nothing wrong
      CHECK(script::TransactionName(first->body) == transaction);
      for (script::Version v : {script::Version::k2017071, script::Version::k2023011}) {
        CAPTURE(script::VersionName(v));
        script::WriteOptions w;
        w.profile = &script::BuiltinProfile(v);
        w.pretty = true;
        IssueList write_issues, read_issues, again_issues;
        auto out = script::WriteXml(*first, write_issues, w);
        for (const Issue& i : write_issues) MESSAGE(ToString(i));
        RXFLOW_REQUIRE_OK(out);
        auto back = script::ReadXml(*out, read_issues);
        RXFLOW_REQUIRE_OK(back);
        CHECK(read_issues.empty());
        auto again = script::WriteXml(*back, again_issues, w);
        RXFLOW_REQUIRE_OK(again);
        CHECK(*again == *out);
        if (v == script::Version::k2017071) CHECK(*out == xml);
      }
    }
  }

  // A NewRx's AllergyOrAdverseEvent and Observation are modelled (issue "Codecs part 2" §3):
  // read into the NewRx, written back where the schema puts them, in both profiles.
  TEST_CASE("a NewRx's AllergyOrAdverseEvent and Observation are read and written back") {
    const std::string xml = testing::ReadFixture("script/newrx_allergies_observation.xml");
    IssueList issues;
    auto first = script::ReadXml(xml, issues);
    RXFLOW_REQUIRE_OK(first);
    for (const Issue& i : issues) MESSAGE(ToString(i));
    CHECK(issues.empty());  // nothing dropped, nothing wrong
    const auto& n = std::get<script::NewRx>(first->body);
    REQUIRE(n.allergy_or_adverse_event);
    CHECK(n.allergy_or_adverse_event->no_known_allergies.empty());
    REQUIRE(n.allergy_or_adverse_event->allergies.size() == 2);
    const script::Allergy& a = n.allergy_or_adverse_event->allergies[0];
    CHECK(a.source_of_information == "P");
    CHECK(a.effective_date.date == "2022-03-14");
    CHECK(a.adverse_event.code == "416098002");
    CHECK(a.drug_product_coded.qualifier == "SCD");
    REQUIRE(a.reaction_coded);
    CHECK(a.reaction_coded->text == "Hives");
    REQUIRE(a.severity_coded);
    CHECK(a.severity_coded->code == "6736007");
    const script::Allergy& c = n.allergy_or_adverse_event->allergies[1];
    CHECK(c.effective_date.date_time == "2024-06-02T09:30:00Z");
    CHECK(c.expiration_date.date == "2027-06-01");
    CHECK(c.drug_product_coded.code.empty());
    CHECK(c.drug_product_coded.text == "Codeine");
    CHECK_FALSE(c.reaction_coded);
    REQUIRE(n.observation);
    REQUIRE(n.observation->measurement.size() == 2);
    CHECK(n.observation->measurement[0].vital_sign == "29463-7");
    CHECK(n.observation->measurement[0].observation_date.date == "2026-11-19");
    CHECK(n.observation->measurement[1].value == "108.5");
    CHECK(n.observation->measurement[1].observation_date.date_time == "2026-11-19T15:04:00Z");
    CHECK(n.observation->observation_notes == "Weighed and measured at the clinic visit.");
    for (script::Version v : {script::Version::k2017071, script::Version::k2023011}) {
      CAPTURE(script::VersionName(v));
      script::WriteOptions w;
      w.profile = &script::BuiltinProfile(v);
      w.pretty = true;
      IssueList write_issues, read_issues;
      auto out = script::WriteXml(*first, write_issues, w);
      for (const Issue& i : write_issues) MESSAGE(ToString(i));
      RXFLOW_REQUIRE_OK(out);
      auto back = script::ReadXml(*out, read_issues);
      RXFLOW_REQUIRE_OK(back);
      CHECK(read_issues.empty());
      if (v == script::Version::k2017071) CHECK(*out == xml);
    }
    // NoKnownAllergies, the other alternative of the choice.
    std::string nka = xml;
    const size_t from = nka.find("<Allergies>");
    const size_t to = nka.rfind("</Allergies>") + std::string_view("</Allergies>").size();
    nka.replace(from, to - from, "<NoKnownAllergies>Y</NoKnownAllergies>");
    IssueList nka_issues;
    auto none = script::ReadXml(nka, nka_issues);
    RXFLOW_REQUIRE_OK(none);
    CHECK(nka_issues.empty());
    const auto& known = std::get<script::NewRx>(none->body).allergy_or_adverse_event;
    REQUIRE(known);
    CHECK(known->no_known_allergies == "Y");
    CHECK(known->allergies.empty());
  }

  TEST_CASE("the new transactions' elements RxFlow does not model are named when read") {
    std::string xml = testing::ReadFixture("script/rxtransfer_confirm.xml");
    xml.insert(xml.find("</RxTransferConfirm>"),
               "<FollowUpPrescriber><NonVeterinarian><Name><LastName>Castellano</LastName>"
               "<FirstName>Owen</FirstName></Name><CommunicationNumbers><PrimaryTelephone>"
               "<Number>8045550187</Number></PrimaryTelephone></CommunicationNumbers>"
               "</NonVeterinarian></FollowUpPrescriber>");
    IssueList issues;
    RXFLOW_REQUIRE_OK(script::ReadXml(xml, issues));
    const Issue* dropped = issues.Find("/Message/Body/RxTransferConfirm/FollowUpPrescriber");
    REQUIRE(dropped != nullptr);
    CHECK(dropped->severity == Severity::kWarning);
    CHECK(dropped->message == "not mapped by RxFlow: dropped");
  }
}
