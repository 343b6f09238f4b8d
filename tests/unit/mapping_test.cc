// SPDX-License-Identifier: Apache-2.0
#include "rxflow/mapping/mapping.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "rxflow/idempotency.h"
#include "rxflow/mapping/codes.h"
#include "rxflow/script/xml.h"
#include "rxflow/transform.h"

#include "testing/files.h"
#include "testing/status.h"

using namespace rxflow;
using nlohmann::json;

namespace {

StatusOr<ScriptOutput> Map(const std::string& json, IssueList& issues) {
  TransformOptions o;
  o.newrx.message_id = "M1";
  o.newrx.sent_time = "2026-11-26T10:00:00Z";
  return ToScript(json, issues, o);
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  size_t at = s.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, "no " << from);
  s.replace(at, from.size(), to);
  return s;
}

constexpr std::string_view kKey = "0123456789abcdef0123456789abcdef";

}  // namespace

TEST_SUITE("Codes") {
  TEST_CASE("NDC normalisation to 11 digits") {
    CHECK(*mapping::NormalizeNdc("0071-0155-23") == "00071015523");
    CHECK(*mapping::NormalizeNdc("12345-678-90") == "12345067890");
    CHECK(*mapping::NormalizeNdc("12345-6789-1") == "12345678901");
    CHECK(*mapping::NormalizeNdc("12345-6789-01") == "12345678901");
    CHECK(*mapping::NormalizeNdc("00071015523") == "00071015523");
    CHECK_FALSE(mapping::NormalizeNdc("0071015523"));  // 10 digits without hyphens is ambiguous
    CHECK_FALSE(mapping::NormalizeNdc("12-34-56"));
    CHECK_FALSE(mapping::NormalizeNdc("abcde-1234-12"));
  }
  TEST_CASE("DEA schedules ⇄ NCI codes") {
    CHECK(*mapping::DeaScheduleToNci("CII") == "C48675");
    CHECK(*mapping::DeaScheduleToNci("C-IV") == "C48677");
    CHECK(*mapping::DeaScheduleToNci("3") == "C48676");
    CHECK(*mapping::DeaScheduleToNci("C48679") == "C48679");
    CHECK(*mapping::NciToDeaSchedule("C48672") == "CI");
    CHECK_FALSE(mapping::DeaScheduleToNci("CVI"));
    CHECK(mapping::DeaScheduleNumber("CV") == 5);
    CHECK(mapping::DeaScheduleNumber("none") == 0);
  }
  TEST_CASE("units to NCI: UCUM, orderableDrugForm, NCI and plain text") {
    CHECK(mapping::UnitToNci(mapping::kUcum, "mL", "")->code == "C28254");
    CHECK(mapping::UnitToNci(mapping::kOrderableDrugForm, "TAB", "")->code == "C48542");
    CHECK(mapping::UnitToNci(mapping::kNci, "C48480", "")->code == "C48480");
    CHECK(mapping::UnitToNci("", "", "tablets")->code == "C48542");
    CHECK_FALSE(mapping::UnitToNci(mapping::kUcum, "{puff}", "puff"));
  }
  TEST_CASE("identifier systems: URL, OID and v2-0203 type forms") {
    using K = mapping::IdentifierKind;
    CHECK(mapping::ClassifyIdentifier("http://hl7.org/fhir/sid/us-npi", "") == K::kNpi);
    CHECK(mapping::ClassifyIdentifier("urn:oid:2.16.840.1.113883.4.6", "") == K::kNpi);
    CHECK(mapping::ClassifyIdentifier("urn:oid:2.16.840.1.113883.4.814", "") == K::kDea);
    CHECK(mapping::ClassifyIdentifier("http://hl7.org/fhir/sid/us-dea", "") == K::kDea);
    CHECK(mapping::ClassifyIdentifier(
              "http://terminology.hl7.org/NamingSystem/NCPDPProviderIdentificationNumber", "") ==
          K::kNcpdpId);
    CHECK(mapping::ClassifyIdentifier("urn:example", "SL") == K::kStateLicense);
    CHECK(mapping::ClassifyIdentifier("urn:example", "MR") == K::kMrn);
    CHECK(mapping::ClassifyIdentifier("urn:example", "") == K::kOther);
  }
}

TEST_SUITE("Mapping") {
  // ToScript maps into the result it returns (src/mapping/into.h); the public ToNewRx and
  // ToCancelRx wrap the same mapping in a StatusOr of their own. Both roads must agree, and
  // ToCancelRx must still refuse an order that is not cancelled, naming the status.
  TEST_CASE("ToNewRx and ToCancelRx give what ToScript maps, and refuse what it refuses") {
    IssueList parse_issues;
    auto input = fhir::ParsePrescription(
        testing::ReadFixture("fhir/medication_request_lisinopril.json"), parse_issues);
    RXFLOW_REQUIRE_OK(input.status());
    TransformOptions o;
    o.newrx.message_id = "M1";
    o.newrx.sent_time = "2026-11-26T10:00:00Z";
    IssueList via_transform, via_mapping;
    auto out =
        ToScript(testing::ReadFixture("fhir/medication_request_lisinopril.json"), via_transform, o);
    RXFLOW_REQUIRE_OK(out.status());
    auto newrx = mapping::ToNewRx(*input, via_mapping, o.newrx);
    RXFLOW_REQUIRE_OK(newrx.status());
    REQUIRE(std::holds_alternative<script::NewRx>(newrx->message.body));
    IssueList write_issues;
    auto xml = script::WriteXml(newrx->message, write_issues);
    RXFLOW_REQUIRE_OK(xml.status());
    CHECK(*xml == out->xml);
    CHECK(newrx->sig_provenance.size() == out->newrx.sig_provenance.size());

    IssueList refused;
    auto not_cancelled = mapping::ToCancelRx(*input, "NEWRX-1", refused, o.newrx);
    CHECK(not_cancelled.status().code() == absl::StatusCode::kInvalidArgument);
    REQUIRE(refused.Find("medication_request.status") != nullptr);
    CHECK(refused.Find("medication_request.status")->message.find("\"active\"") !=
          std::string::npos);

    fhir::PrescriptionInput cancelled = *input;
    cancelled.medication_request.status = "cancelled";
    IssueList cancel_issues;
    auto cancel = mapping::ToCancelRx(cancelled, "NEWRX-1", cancel_issues, o.newrx);
    RXFLOW_REQUIRE_OK(cancel.status());
    REQUIRE(std::holds_alternative<script::CancelRx>(cancel->message.body));
    CHECK(cancel->message.header.relates_to_message_id == "NEWRX-1");
    CHECK(std::get<script::CancelRx>(cancel->message.body).patient.name.last_name ==
          std::get<script::NewRx>(newrx->message.body).patient.name.last_name);
  }

  // The MessageID ToScript makes when none is given is a UUID v7 in hex (RandomIds): later
  // messages sort after earlier ones, so the service's message-id index (keyed by it) takes
  // each at its right edge instead of on a random page (docs/mapping.md §3).
  TEST_CASE("a generated MessageID is a time-ordered UUID v7 within SCRIPT's 35 characters") {
    const std::string fhir = testing::ReadFixture("fhir/medication_request_lisinopril.json");
    auto message_id = [&fhir] {
      IssueList issues;
      auto out = ToScript(fhir, issues, TransformOptions{});
      REQUIRE(out.ok());
      return out->newrx.message.header.message_id;
    };
    const std::string first = message_id();
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    const std::string second = message_id();
    for (const std::string& id : {first, second}) {
      CAPTURE(id);
      REQUIRE(id.size() == 32);
      CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
      CHECK(id[12] == '7');
    }
    CHECK(first.substr(0, 12) < second.substr(0, 12));  // milliseconds, in order
  }

  TEST_CASE("a structured Sig's code system versions go to FHIR and back, not the options'") {
    IssueList issues;
    auto bundle = ToFhirJson(testing::ReadFixture("script/newrx_2017071_lisinopril.xml"), issues);
    RXFLOW_REQUIRE_OK(bundle);
    CHECK(bundle->find("\"Sig/CodeSystem/SNOMEDVersion\"") != std::string::npos);
    issues.clear();
    auto back = Map(*bundle, issues);
    RXFLOW_REQUIRE_OK(back);
    CHECK(back->xml.find("<SNOMEDVersion>20250901</SNOMEDVersion>") != std::string::npos);
    CHECK(back->xml.find("<FMTVersion>25.08d</FMTVersion>") != std::string::npos);

    // Without a structured Sig there is no CodeSystem to send them in: named, not sent.
    json b = json::parse(*bundle);
    for (size_t i = 0; i < b["entry"].size(); ++i) {
      json& r = b["entry"][i]["resource"];
      if (r["resourceType"] != "MedicationRequest") continue;
      json text_only = {{"text", r["dosageInstruction"][0]["text"]}};
      r["dosageInstruction"] = json::array({text_only});
    }
    issues.clear();
    back = Map(b.dump(), issues);
    RXFLOW_REQUIRE_OK(back);
    CHECK(back->xml.find("<CodeSystem>") == std::string::npos);
    int named = 0;
    for (const Issue& i : issues) {
      if (i.severity == Severity::kWarning &&
          i.message.find("Sig/CodeSystem/SNOMEDVersion (script-element extension): sent only "
                         "with a structured Sig") != std::string::npos) {
        ++named;
      }
    }
    CHECK(named == 1);
  }
  // A FHIR coding has no RxNorm term type: SCRIPT → FHIR keeps DrugDBCode/Qualifier in a
  // script-element extension, and FHIR → SCRIPT sends it instead of NewRxOptions'.
  TEST_CASE("an RxNorm code's term type goes to FHIR and back, not the option's") {
    const std::string xml = Replace(testing::ReadFixture("script/newrx_2017071_lisinopril.xml"),
                                    "<Qualifier>SCD</Qualifier>\n          </DrugDBCode>",
                                    "<Qualifier>SBD</Qualifier>\n          </DrugDBCode>");
    IssueList issues;
    auto bundle = ToFhirJson(xml, issues);
    RXFLOW_REQUIRE_OK(bundle);
    CHECK(bundle->find("\"DrugCoded/DrugDBCode/Qualifier\"") != std::string::npos);
    issues.clear();
    auto back = Map(*bundle, issues);  // options' term type: SCD
    RXFLOW_REQUIRE_OK(back);
    CHECK(back->xml.find("<Qualifier>SBD</Qualifier>") != std::string::npos);
    CHECK(back->xml.find("<Qualifier>SCD</Qualifier>") == std::string::npos);

    // The MedicationRequest's extension, found by its element.
    json b = json::parse(*bundle);
    json* mr = nullptr;
    size_t at = 0;
    for (json& e : b["entry"]) {
      if (e["resource"]["resourceType"] == "MedicationRequest") mr = &e["resource"];
    }
    REQUIRE(mr != nullptr);
    for (size_t i = 0; i < (*mr)["extension"].size(); ++i) {
      if ((*mr)["extension"][i]["extension"][0]["valueString"] ==
          "DrugCoded/DrugDBCode/Qualifier") {
        at = i;
      }
    }
    // Not a term type: an error at the extension.
    (*mr)["extension"][at]["extension"][1]["valueString"] = "XYZ";
    issues.clear();
    CHECK_FALSE(Map(b.dump(), issues).ok());
    bool refused = false;
    for (const Issue& i : issues) {
      refused = refused || (i.severity == Severity::kError &&
                            i.path.ends_with(".extension[" + std::to_string(at) + "]") &&
                            i.message.find("RxNorm term type") != std::string::npos);
    }
    CHECK(refused);
    // A term type with no RxNorm coding to go with: named, not sent.
    (*mr)["extension"][at]["extension"][1]["valueString"] = "SBD";
    json* medication = nullptr;  // the drug is a Medication resource (it has a Strength)
    for (json& e : b["entry"]) {
      if (e["resource"]["resourceType"] == "Medication") medication = &e["resource"];
    }
    REQUIRE(medication != nullptr);
    (*medication)["code"]["coding"] =
        json::array({{{"system", "http://hl7.org/fhir/sid/ndc"}, {"code", "00093111301"}}});
    issues.clear();
    back = Map(b.dump(), issues);
    RXFLOW_REQUIRE_OK(back);
    CHECK(back->xml.find("<DrugDBCode>") == std::string::npos);
    bool named = false;
    for (const Issue& i : issues) {
      named = named || (i.severity == Severity::kWarning &&
                        i.message.find("DrugCoded/DrugDBCode/Qualifier (script-element extension): "
                                       "sent only with an RxNorm coding") != std::string::npos);
    }
    CHECK(named);
  }
  // PracticeLocation/Identification (a FacilityID) ⇄ the practice Organization's identifiers.
  TEST_CASE("a practice's identifiers go to FHIR and back as PracticeLocation/Identification") {
    const std::string xml =
        Replace(testing::ReadFixture("script/newrx_2017071_lisinopril.xml"),
                "<PracticeLocation>\n            <BusinessName>",
                "<PracticeLocation><Identification><NCPDPID>4419907</NCPDPID><NPI>1882045176</NPI>"
                "</Identification><BusinessName>");
    TransformOptions o;
    o.version = script::Version::k2017071;
    IssueList issues;
    auto fhir_json = ToFhirJson(xml, issues, o);
    RXFLOW_REQUIRE_OK(fhir_json);
    CHECK(issues.Find("/Message/Body/NewRx/Prescriber/NonVeterinarian/PracticeLocation/"
                      "Identification") == nullptr);
    json practice;
    const json parsed = json::parse(*fhir_json);
    for (const json& e : parsed["entry"]) {
      if (e["resource"].value("id", std::string()).ends_with("-practice")) practice = e["resource"];
    }
    REQUIRE(practice.contains("identifier"));
    REQUIRE(practice["identifier"].size() == 2);
    CHECK(practice["identifier"][1]["system"] == "http://hl7.org/fhir/sid/us-npi");
    CHECK(practice["identifier"][1]["value"] == "1882045176");

    o.newrx.message_id = "again";
    o.newrx.sent_time = "2026-11-30T10:00:00Z";
    IssueList back;
    auto again = ToScript(*fhir_json, back, o);
    RXFLOW_REQUIRE_OK(again);
    const auto& location = again->newrx.message.body;
    const auto* newrx = std::get_if<script::NewRx>(&location);
    REQUIRE(newrx != nullptr);
    REQUIRE(newrx->prescriber.practice_location.has_value());
    CHECK(newrx->prescriber.practice_location->identification.npi == "1882045176");
    CHECK(newrx->prescriber.practice_location->identification.ncpdp_id == "4419907");
    CHECK(again->xml.find("<PracticeLocation><Identification><NCPDPID>4419907</NCPDPID><NPI>"
                          "1882045176</NPI></Identification>") != std::string::npos);

    // An identifier FacilityID has no member for, and a second NPI: named, not sent, at the
    // practice Organization's own path.
    json b = json::parse(*fhir_json);
    std::string practice_path;  // the practice Organization's own path: where issues point
    for (size_t k = 0; k < b["entry"].size(); ++k) {
      json& e = b["entry"][k];
      if (!e["resource"].value("id", std::string()).ends_with("-practice")) continue;
      practice_path = "entry[" + std::to_string(k) + "].resource.identifier[";
      e["resource"]["identifier"].push_back({{"system", "urn:example:clinic"}, {"value", "C-1"}});
      e["resource"]["identifier"].push_back(
          {{"system", "http://hl7.org/fhir/sid/us-npi"}, {"value", "1999999992"}});
    }
    REQUIRE_FALSE(practice_path.empty());
    back.clear();
    again = ToScript(b.dump(), back, o);
    RXFLOW_REQUIRE_OK(again);
    int named = 0;
    for (const Issue& i : back) {
      if (i.message ==
              "identifier system not mapped to SCRIPT PracticeLocation/Identification: "
              "not sent" ||
          i.message == "SCRIPT carries one practice NPI: not sent") {
        CHECK_MESSAGE(i.path.find(practice_path) != std::string::npos, i.path);
        ++named;
      }
    }
    CHECK(named == 2);
    CHECK(again->xml.find("C-1") == std::string::npos);
  }
  // docs/mapping.md §5.3 "What a sent identifier keeps" and §6.1: SCRIPT carries an
  // identifier's value alone; the other members that the way back does not give again are
  // each named, as are a role's, a practice's and a product's elements SCRIPT has no place for.
  TEST_CASE("what of a sent identifier, role or product SCRIPT has no place for is named") {
    struct Named {
      std::string_view path_end;  // the warning's path ends so
      std::string_view message;   // and its message contains this
    };
    // Maps the fixture (a warning, never an error: the prescription is sent) and checks that
    // each of `named` is a warning; returns the issues for more checks.
    auto expect_named = [](std::string_view fixture, std::initializer_list<Named> named) {
      CAPTURE(fixture);
      IssueList issues(1 << 20);
      auto script = ToScript(testing::ReadFixture(std::string(fixture)), issues);
      RXFLOW_REQUIRE_OK(script);
      CHECK(issues.error_count() == 0);
      for (const Named& n : named) {
        CAPTURE(n.path_end);
        CHECK(std::any_of(issues.begin(), issues.end(), [&](const Issue& i) {
          return i.severity == Severity::kWarning && i.path.ends_with(n.path_end) &&
                 i.message.find(n.message) != std::string::npos;
        }));
      }
      return std::make_pair(std::move(issues), std::move(script->xml));
    };
    auto none_at = [](const IssueList& issues, std::string_view path_end) {
      return std::none_of(issues.begin(), issues.end(),
                          [&](const Issue& i) { return i.path.ends_with(path_end); });
    };
    // The state licence: its number is sent, its issuer (the system names the state) is not.
    // The DEA number and the NPI come back by their systems: kept; the DEA type is implied.
    auto [oxy, xml] = expect_named(
        "fhir/schedule2_oxycodone.json",
        {{"practitioner.identifier[2].system",
          "SCRIPT StateLicenseNumber carries the value alone: the identifier's system (who "
          "issued it) is not sent"},
         {"practitioner.identifier[2].type.coding[0].display",
          "the type's display is not sent (SCRIPT StateLicenseNumber implies it)"},
         {"practitioner.identifier[1].type",
          "the identifier's type is implied by SCRIPT DEANumber: not sent"},
         {"practitioner.identifier[0].use", "SCRIPT NPI has no identifier use: not sent"}});
    CHECK(xml.find("<StateLicenseNumber>35.998877</StateLicenseNumber>") != std::string::npos);
    CHECK(none_at(oxy, "practitioner.identifier[1].system"));
    CHECK(none_at(oxy, "practitioner.identifier[0].system"));
    // The medical record number (value sent); a product's SNOMED CT dose form, its strength's
    // ingredient and denominator.
    expect_named(
        "fhir/bundle_contained_medication.json",
        {{"entry[1].resource.identifier[0].use",
          "SCRIPT MedicalRecordIdentificationNumberEHR has no identifier use: not sent"},
         {"entry[1].resource.identifier[0].system",
          "SCRIPT MedicalRecordIdentificationNumberEHR carries the value alone"},
         {".doseForm.coding[0]",
          "SCRIPT carries a product's dose form only as the Strength's StrengthForm"},
         {".ingredient[0].item", "the drug's own code names the ingredient: not sent"},
         {".ingredient[0].strengthRatio.denominator", "the denominator is implied, not sent"}});
    // The prescriber's role and practice, and a dose's type.
    expect_named(
        "fhir/bundle_transaction_practitionerrole.json",
        {{"entry[2].resource.code[0]", "SCRIPT has no role code for a prescriber"},
         {"entry[2].resource.contact[0].purpose",
          "SCRIPT has no contact purpose: the contact is sent, its purpose is not"},
         {"entry[2].resource.specialty[0].coding[0].display",
          "SCRIPT Specialty is the NUCC code alone: its display is not sent"},
         {"entry[2].resource.practitioner.display", "a reference's display text: not sent"},
         {"entry[4].resource.type[0]", "SCRIPT PracticeLocation has no organization type"},
         {"entry[0].resource.dosageInstruction[0].doseAndRate[0].type",
          "SCRIPT Dosage has no dose type"}});
  }

  // HL7's own: FHIR R5 example medicationrequest0301 identifies its order as
  // {"use": "official", "system": "http://www.bmc.nl/portal/prescriptions", "value": "12345689"}.
  // SCRIPT's PrescriberOrderNumber takes the value; the hospital's system and the use are named.
  TEST_CASE("FHIR R5 example medicationrequest0301's order identifier: value sent, rest named") {
    json j = json::parse(testing::ReadFixture("fhir/medication_request_lisinopril.json"));
    j["medication_request"]["identifier"] =
        json::array({{{"use", "official"},
                      {"system", "http://www.bmc.nl/portal/prescriptions"},
                      {"value", "12345689"}}});
    IssueList issues(1 << 20);
    auto script = ToScript(j.dump(), issues);
    RXFLOW_REQUIRE_OK(script);
    CHECK(script->xml.find("<PrescriberOrderNumber>12345689</PrescriberOrderNumber>") !=
          std::string::npos);
    std::vector<std::string> named;
    for (const Issue& i : issues) {
      if (i.severity == Severity::kWarning &&
          i.path.starts_with("medication_request.identifier[0]")) {
        named.push_back(i.path + ": " + i.message);
      }
    }
    CHECK(named == std::vector<std::string>{
                       "medication_request.identifier[0].system: SCRIPT PrescriberOrderNumber "
                       "carries the value alone: the identifier's system (who issued it) is not "
                       "sent",
                       "medication_request.identifier[0].use: SCRIPT PrescriberOrderNumber has no "
                       "identifier use: not sent"});
  }

  TEST_CASE("a structured Sig FHIR cannot carry takes its code system versions along, named") {
    IssueList issues(1 << 20);
    auto bundle =
        ToFhirJson(testing::ReadFixture("script/exhaustive/newrx_2017071_first.xml"), issues);
    RXFLOW_REQUIRE_OK(bundle);
    const Issue* i = issues.Find("/Message/Body/NewRx/MedicationPrescribed/Sig/CodeSystem");
    REQUIRE(i != nullptr);
    CHECK(i->severity == Severity::kWarning);
    CHECK(bundle->find("Sig/CodeSystem/") == std::string::npos);
  }
  TEST_CASE(
      "what SCRIPT has no place for is named: inactive records, statusChanged, address "
      "type, text and period") {
    std::string json = testing::ReadFixture("fhir/medication_request_lisinopril.json");
    json = Replace(json, "\"resourceType\": \"MedicationRequest\",",
                   "\"resourceType\": \"MedicationRequest\", \"statusChanged\": \"2026-11-01\",");
    // The Patient's "active": true (the first of three: Patient, Practitioner, pharmacy).
    json = Replace(json, "\"active\": true", "\"active\": false");
    json = Replace(json, "\"use\": \"home\",",
                   "\"use\": \"home\", \"text\": \"4417 Juniper Hollow Rd\", "
                   "\"period\": {\"start\": \"2020-01-01\"},");
    IssueList issues;
    RXFLOW_REQUIRE_OK(Map(json, issues));
    auto warned = [&](std::string_view path) {
      for (const Issue& i : issues) {
        if (i.severity == Severity::kWarning && i.path.ends_with(path)) return true;
      }
      return false;
    };
    CHECK(warned("medication_request.statusChanged"));
    CHECK(warned("patient.active"));
    CHECK_FALSE(warned("practitioner.active"));  // true is what SCRIPT implies
    CHECK(warned("patient.address[0].type"));
    CHECK(warned("patient.address[0].text"));
    CHECK(warned("patient.address[0].period"));
  }
  TEST_CASE("a substitution reason is sent as SCRIPT's one value, and named unless it is that") {
    IssueList issues;
    auto out = Map(testing::ReadFixture("fhir/substitution_not_allowed.json"), issues);
    RXFLOW_REQUIRE_OK(out);
    CHECK(out->xml.find("<ReasonForSubstitutionCodeUsed>BRAND MEDICALLY NECESSARY<") !=
          std::string::npos);
    const Issue* i = issues.Find("medication_request.substitution.reason");
    REQUIRE(i != nullptr);
    CHECK(i->severity == Severity::kWarning);
    CHECK(i->message.find("codes and text are not sent") != std::string::npos);

    // SCRIPT → FHIR writes the reason as that text alone: it goes back without a word.
    issues.clear();
    auto bundle = ToFhirJson(out->xml, issues);
    RXFLOW_REQUIRE_OK(bundle);
    issues.clear();
    RXFLOW_REQUIRE_OK(Map(*bundle, issues));
    for (const Issue& x : issues) CHECK(x.path.find("substitution.reason") == std::string::npos);
  }
  TEST_CASE("an over-long drug description is refused, never truncated") {
    std::string json = Replace(testing::ReadFixture("fhir/medication_request_lisinopril.json"),
                               "\"text\": \"lisinopril 10 MG Oral Tablet\"",
                               "\"text\": \"" + std::string(106, 'x') + "\"");
    IssueList issues;
    auto out = Map(json, issues);
    CHECK(out.status().code() == absl::StatusCode::kInvalidArgument);
    bool found = false;
    for (const auto& i : issues)
      found |= i.code == IssueCode::kTooLong && i.message.find("105") != std::string::npos;
    CHECK(found);
  }
  TEST_CASE("non-ASCII names are refused with the name's path") {
    std::string json = Replace(testing::ReadFixture("fhir/medication_request_lisinopril.json"),
                               "\"Delacroix\"", "\"Delacroïx\"");
    IssueList issues;
    auto out = Map(json, issues);
    CHECK_FALSE(out.ok());
    CHECK(issues.Find("patient.name[0].family"));
  }
  TEST_CASE("with transliterate, text SCRIPT cannot carry goes as printable ASCII, each named") {
    std::string json = testing::ReadFixture("fhir/medication_request_lisinopril.json");
    json = Replace(json, "\"Delacroix\"", "\"Muñoz-O’Brien\"");
    json = Replace(json, "\"Marisol\"", "\"José\"");
    json = Replace(json, "\"4417 Juniper Hollow Rd\"", "\"4417 Straße\"");
    json = Replace(json, "\"Recheck blood pressure and BMP in 4 weeks.\"",
                   "\"Recheck blood pressure — and BMP\\nin 4 weeks…\"");
    json = Replace(json, "\"Take 1 tablet by mouth once daily\"",
                   "\"Take 1 tablet by mouth once daily – with food\"");
    const std::vector<std::string> paths = {"patient.name[0].family", "patient.name[0].given[0]",
                                            "patient.address[0].line[0]", "medication_request.note",
                                            "medication_request.dosageInstruction"};
    {
      IssueList issues;  // the default: refused, each at its path
      CHECK_FALSE(Map(json, issues).ok());
      for (const std::string& path : paths) {
        const Issue* i = issues.Find(path);
        REQUIRE_MESSAGE(i != nullptr, path);
        CHECK(i->severity == Severity::kError);
        CHECK(i->message.find("printable ASCII only") != std::string::npos);
      }
    }
    TransformOptions o;
    o.newrx.message_id = "M1";
    o.newrx.sent_time = "2026-11-26T10:00:00Z";
    o.newrx.transliterate = true;
    IssueList issues;
    auto out = ToScript(json, issues, o);
    RXFLOW_REQUIRE_OK(out.status());
    const auto& rx = std::get<script::NewRx>(out->newrx.message.body);
    CHECK(rx.patient.name.last_name == "Munoz-O'Brien");
    CHECK(rx.patient.name.first_name == "Jose");
    REQUIRE(rx.patient.address.has_value());
    CHECK(rx.patient.address->address_line1 == "4417 Strasse");
    CHECK(rx.medication_prescribed.note == "Recheck blood pressure - and BMP in 4 weeks...");
    REQUIRE(rx.medication_prescribed.sig.has_value());
    CHECK(rx.medication_prescribed.sig->sig_text ==
          "Take 1 tablet by mouth once daily - with food");
    CHECK(out->xml.find("<LastName>Munoz-O&apos;Brien</LastName>") != std::string::npos);
    for (const std::string& path : paths) {
      const Issue* i = issues.Find(path);
      REQUIRE_MESSAGE(i != nullptr, path);
      CHECK(i->severity == Severity::kWarning);
      CHECK(i->code == IssueCode::kValue);
      CHECK(i->message.find("transliterated to printable ASCII") != std::string::npos);
    }
    // The warnings name the field, never its value (they reach logs and error labels).
    for (const Issue& i : issues) {
      CHECK(i.message.find("Mu") == std::string::npos);
      CHECK(i.message.find("Stra") == std::string::npos);
    }
    // An ASCII value gets no such warning.
    CHECK(issues.Find("practitioner.name[0].family") == nullptr);
  }
  TEST_CASE("with transliterate, what no rule makes ASCII is refused at its path as before") {
    TransformOptions o;
    o.newrx.message_id = "M1";
    o.newrx.sent_time = "2026-11-26T10:00:00Z";
    o.newrx.transliterate = true;
    const std::string fixture = testing::ReadFixture("fhir/medication_request_lisinopril.json");
    struct Case {
      std::string from, to, path, message;
    };
    const Case cases[] = {
        {"\"Marisol\"", "\"Иван\"", "patient.name[0].given[0]", "not transliterable"},
        {"\"Take 1 tablet by mouth once daily\"", "\"Take 250 µg daily\"",
         "medication_request.dosageInstruction", "not transliterable"},
        // 18 × ß is 36 letters once spelt out: over LastName's 35, never truncated.
        {"\"Delacroix\"",
         "\"" +
             [] {
               std::string s;
               for (int k = 0; k < 18; ++k) s += "ß";
               return s;
             }() +
             "\"",
         "patient.name[0].family", "SCRIPT allows 35"},
    };
    for (const Case& c : cases) {
      CAPTURE(c.path);
      IssueList issues;
      auto out = ToScript(Replace(fixture, c.from, c.to), issues, o);
      CHECK_FALSE(out.ok());
      bool refused = false;
      for (const Issue& i : issues) {
        refused |= i.path == c.path && i.severity == Severity::kError &&
                   i.message.find(c.message) != std::string::npos;
      }
      CHECK(refused);
    }
  }
  TEST_CASE("a partial birth date cannot be sent") {
    std::string json = Replace(testing::ReadFixture("fhir/medication_request_lisinopril.json"),
                               "\"1968-04-17\"", "\"1968-04\"");
    IssueList issues;
    CHECK_FALSE(Map(json, issues).ok());
    CHECK(issues.Find("patient.birthDate"));
  }
  TEST_CASE("every dropped FHIR element is reported with its path") {
    IssueList issues;
    RXFLOW_REQUIRE_OK(Map(testing::ReadFixture("fhir/medication_request_lisinopril.json"), issues));
    const Issue* i = issues.Find("medication_request.category");
    REQUIRE(i);
    CHECK(i->severity == Severity::kWarning);
  }
  TEST_CASE("structured Sig provenance: coded, derived and absent") {
    IssueList issues;
    auto out = Map(testing::ReadFixture("fhir/schedule2_oxycodone.json"), issues);
    RXFLOW_REQUIRE_OK(out);
    bool coded = false, derived = false;
    for (const auto& p : out->newrx.sig_provenance) {
      coded |= p.provenance == mapping::Provenance::kCoded &&
               p.element == "Instruction/DoseAdministration/RouteOfAdministration";
      derived |= p.provenance == mapping::Provenance::kDerived &&
                 p.element == "Instruction/IndicationForUse/IndicationPrecursor";
    }
    CHECK(coded);
    CHECK(derived);
    IssueList issues2;
    auto text_only = Map(testing::ReadFixture("fhir/ndc_coded_atorvastatin.json"), issues2);
    RXFLOW_REQUIRE_OK(text_only);
    REQUIRE(text_only->newrx.sig_provenance.size() == 1);
    CHECK(text_only->newrx.sig_provenance[0].provenance == mapping::Provenance::kAbsent);
    CHECK(text_only->xml.find("<SigText>") != std::string::npos);
    CHECK(text_only->xml.find("<Instruction>") == std::string::npos);
  }
  // The structure is dropped whole: a warning at dosageInstruction when there was structure
  // to lose (the atorvastatin's "in the evening" has no SCRIPT form), an information issue
  // when the dosage is text alone (nothing is lost).
  TEST_CASE("a structured Sig that is not sent: a warning when structure is lost, else info") {
    auto structure_issues = [](const std::string& json) {
      IssueList issues;
      auto out = Map(json, issues);
      RXFLOW_REQUIRE_OK(out);
      CHECK(out->xml.find("<Instruction>") == std::string::npos);
      std::vector<Issue> found;
      for (const Issue& i : issues) {
        if (i.message.find("structured Sig not sent") != std::string::npos) found.push_back(i);
      }
      return found;
    };
    const std::string evening = testing::ReadFixture("fhir/ndc_coded_atorvastatin.json");
    auto lost = structure_issues(evening);
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].severity == Severity::kWarning);
    CHECK(lost[0].path == "medication_request.dosageInstruction");
    CHECK(lost[0].message.find("medication_request.dosageInstruction[0].timing.repeat.when[0]") !=
          std::string::npos);
    CHECK(lost[0].message.find("structured elements are dropped") != std::string::npos);

    nlohmann::json doc = nlohmann::json::parse(evening);
    doc["medication_request"]["dosageInstruction"] =
        nlohmann::json::array({{{"text", "Take 1 tablet by mouth once daily in the evening"}}});
    auto text_only = structure_issues(doc.dump());
    REQUIRE(text_only.size() == 1);
    CHECK(text_only[0].severity == Severity::kInformation);
  }

  // The reason given is the first element, in SCRIPT's order of the Instruction (route, dose,
  // timing, as needed, maximum dose, then what has no form at all) and dosage by dosage, that
  // has no SCRIPT form; a later dosage's failure drops the earlier dosages' structure too.
  TEST_CASE("a structured Sig that is not sent names the first element without a SCRIPT form") {
    const nlohmann::json base =
        nlohmann::json::parse(testing::ReadFixture("fhir/medication_request_lisinopril.json"));
    const nlohmann::json dosage = base["medication_request"]["dosageInstruction"][0];
    auto reason_of = [&](const std::vector<nlohmann::json>& dosages) {
      nlohmann::json doc = base;
      doc["medication_request"]["dosageInstruction"] = dosages;
      IssueList issues;
      auto out = Map(doc.dump(), issues);
      RXFLOW_REQUIRE_OK(out);
      CHECK(out->xml.find("<Instruction>") == std::string::npos);
      CHECK(out->xml.find("<SigText>") != std::string::npos);
      for (const Issue& i : issues) {
        if (i.message.find("structured Sig not sent") != std::string::npos) return i.message;
      }
      return std::string("no structured-Sig issue");
    };
    auto says = [](const std::string& message, const std::string& part) {
      INFO(message);
      CHECK(message.find(part) != std::string::npos);
    };
    const std::string dp = "medication_request.dosageInstruction[0]";
    nlohmann::json no_route = dosage;
    no_route["route"]["coding"][0]["system"] = "urn:example:routes";
    no_route["timing"]["event"] = {"2026-11-20T08:00:00Z"};  // also unmapped, but later
    says(reason_of({no_route}), dp + ".route: no SNOMED CT route");
    nlohmann::json rate = dosage;
    rate["doseAndRate"][0]["rateQuantity"] = {{"value", 1}, {"unit", "mL/h"}};
    rate["maxDosePerLifetime"] = {{"value", 10}, {"unit", "tablet"}};
    says(reason_of({rate}), dp + ".doseAndRate[0]: rates are not mapped");
    nlohmann::json bad_unit = dosage;
    bad_unit["timing"]["repeat"]["periodUnit"] = "fortnight";
    bad_unit["timing"]["repeat"]["when"] = {"ACM"};
    says(reason_of({bad_unit}), dp + ".timing.repeat.periodUnit: time unit");
    nlohmann::json lifetime = dosage;
    lifetime["maxDosePerLifetime"] = {{"value", 10}, {"unit", "tablet"}};
    lifetime["additionalInstruction"] = {{{"text", "with food"}}};
    says(reason_of({lifetime}), dp + ".maxDosePerLifetime: not mapped");
    nlohmann::json second = dosage;
    second["sequence"] = 2;
    second["doseAndRate"][0]["doseQuantity"]["value"] = -1;
    says(reason_of({dosage, second}),
         "medication_request.dosageInstruction[1].doseAndRate[0].doseQuantity.value");
    nlohmann::json told = dosage;
    told["patientInstruction"] = "Take in the morning";
    nlohmann::json told_again = told;
    told_again["sequence"] = 2;
    says(reason_of({told, told_again}),
         "medication_request.dosageInstruction[1].patientInstruction: more than one patient");
    // Each dosage's patientInstruction is then named as not sent (SCRIPT carries it only in a
    // structured Sig), as it is when the options send no structured Sig at all.
    auto dropped_instructions = [&](bool structured) {
      nlohmann::json doc = base;
      doc["medication_request"]["dosageInstruction"] = {told, told_again};
      TransformOptions o;
      o.newrx.message_id = "M1";
      o.newrx.sent_time = "2026-11-26T10:00:00Z";
      o.newrx.structured_sig = structured;
      IssueList issues;
      RXFLOW_REQUIRE_OK(ToScript(doc.dump(), issues, o));
      size_t named = 0;
      for (const Issue& i : issues) {
        named += i.path.ends_with("].patientInstruction") && i.severity == Severity::kWarning &&
                 i.message.find("only with a structured Sig") != std::string::npos;
      }
      return named;
    };
    CHECK(dropped_instructions(true) == 2);
    CHECK(dropped_instructions(false) == 2);
  }

  TEST_CASE("validityPeriod.start: on the written date not sent, any other as EffectiveDate") {
    auto with_start = [](const std::string& start) {
      nlohmann::json doc =
          nlohmann::json::parse(testing::ReadFixture("fhir/medication_request_lisinopril.json"));
      doc["medication_request"]["authoredOn"] = "2026-11-20T09:30:00-05:00";
      doc["medication_request"]["dispenseRequest"]["validityPeriod"] = {{"start", start}};
      IssueList issues;
      auto out = Map(doc.dump(), issues);
      RXFLOW_REQUIRE_OK(out);
      return out->xml;
    };
    CHECK(with_start("2026-11-20").find("EffectiveDate") == std::string::npos);
    const std::string before = with_start("2026-11-19");  // a partner's, kept as it was
    CHECK(before.find("<Date>2026-11-19</Date></OtherMedicationDate><OtherMedicationDateQualifier>"
                      "EffectiveDate</OtherMedicationDateQualifier>") != std::string::npos);
    CHECK(with_start("2026-12-21").find("<Date>2026-12-21</Date>") != std::string::npos);
  }

  TEST_CASE("a taper becomes several instructions joined by THEN") {
    IssueList issues;
    auto out = Map(testing::ReadFixture("fhir/prednisone_taper.json"), issues);
    RXFLOW_REQUIRE_OK(out);
    CHECK(out->xml.find("<MultipleInstructionModifier>THEN</MultipleInstructionModifier>") !=
          std::string::npos);
  }
  TEST_CASE("NDC and RxNorm codes land in ProductCode and DrugDBCode") {
    IssueList issues;
    auto ndc = Map(testing::ReadFixture("fhir/ndc_coded_atorvastatin.json"), issues);
    RXFLOW_REQUIRE_OK(ndc);
    CHECK(ndc->xml.find(
              "<ProductCode><Code>00071015523</Code><Qualifier>ND</Qualifier></ProductCode>") !=
          std::string::npos);
    auto rx = Map(testing::ReadFixture("fhir/rxnorm_coded_metformin.json"), issues);
    RXFLOW_REQUIRE_OK(rx);
    CHECK(rx->xml.find("<Qualifier>SCD</Qualifier>") != std::string::npos);
  }
  TEST_CASE("the 2023011 profile writes its wrappers and reads them back") {
    IssueList issues;
    auto out = Map(testing::ReadFixture("fhir/medication_request_lisinopril.json"), issues);
    RXFLOW_REQUIRE_OK(out);
    const std::string& x = out->xml;
    CHECK(x.find("TransportVersion=\"2023011\"") != std::string::npos);
    CHECK(x.find("<Names><Name><LastName>") != std::string::npos);
    CHECK(x.find("<GenderAndSex><AdministrativeGender>F</AdministrativeGender></GenderAndSex>") !=
          std::string::npos);
    CHECK(x.find("<Product><DrugCoded>") != std::string::npos);
    CHECK(x.find("<Substitutions><Substitutions>0</Substitutions></Substitutions>") !=
          std::string::npos);
    IssueList back;
    auto msg = script::ReadXml(x, back);
    RXFLOW_REQUIRE_OK(msg);
    const auto& n = std::get<script::NewRx>(msg->body);
    CHECK(n.patient.name.last_name == "Delacroix");
    CHECK(n.patient.gender == "F");
    CHECK(n.medication_prescribed.substitutions == "0");
    CHECK(n.medication_prescribed.drug_coded->drug_db_code->code == "314076");
    // The same document read as 2017071 fails its structure check.
    IssueList wrong;
    script::ReadOptions o;
    o.profile = &script::BuiltinProfile(script::Version::k2017071);
    CHECK_FALSE(script::ReadXml(x, wrong, o).ok());
    CHECK(wrong.has_errors());
  }
}

TEST_SUITE("Mapping: history, transfer, new prescription requests") {
  // The FHIR resources of one Bundle, by type (and the Task, the only one of its kind).
  json Resources(const std::string& bundle, const std::string& type) {
    json out = json::array();
    const json parsed = json::parse(bundle);
    for (const json& e : parsed["entry"]) {
      if (e["resource"]["resourceType"] == type) out.push_back(e["resource"]);
    }
    return out;
  }
  std::string ToFhir(const std::string& xml, IssueList& issues) {
    auto out = ToFhirJson(xml, issues);
    RXFLOW_REQUIRE_OK(out);
    return *out;
  }

  // The envelope of a PBM's RxHistoryResponse to the prescriber.
  TransformOptions HistoryAnswerOptions() {
    TransformOptions o;
    o.newrx.message_id = "M1";
    o.newrx.sent_time = "2026-11-26T10:00:00Z";
    o.newrx.to = "6719450382001";
    o.newrx.to_qualifier = "D";
    o.newrx.from = "SYNPBM001";
    o.newrx.from_qualifier = "PY";
    return o;
  }
  // A resource's script-element extensions, element → value.
  std::map<std::string, std::string> ScriptElements(const json& resource) {
    std::map<std::string, std::string> out;
    for (const json& e : resource.value("extension", json::array())) {
      out[e["extension"][0]["valueString"]] = e["extension"][1]["valueString"];
    }
    return out;
  }

  TEST_CASE(
      "RxHistoryResponse: a MedicationDispense per dispensed entry, its pharmacy the performer") {
    IssueList issues;
    std::string b = ToFhir(testing::ReadFixture("script/rxhistory_response_dispensed.xml"), issues);
    json dispenses = Resources(b, "MedicationDispense");
    REQUIRE(dispenses.size() == 2);
    CHECK(dispenses[0]["status"] == "completed");
    CHECK(dispenses[0]["whenHandedOver"] == "2026-12-19");
    CHECK(dispenses[0]["performer"].size() == 1);
    CHECK(dispenses[0]["authorizingPrescription"][0]["identifier"]["value"] == "ORD-1001");
    CHECK_FALSE(dispenses[1].contains("performer"));  // no Pharmacy in that entry
    json task = Resources(b, "Task")[0];
    CHECK(task["status"] == "completed");
    CHECK(task["focus"]["identifier"]["value"] == "d81f3c6a2e5b47c9a0b7e4f1c3d9a528");
    // The BenefitsCoordination is a Coverage the Task names as insurance (its Consent a Task
    // input): nothing of it is dropped.
    json coverages = Resources(b, "Coverage");
    REQUIRE(coverages.size() == 1);
    CHECK(coverages[0]["subscriberId"][0]["value"] == "SHP55012873");
    CHECK(coverages[0]["beneficiary"] == task["for"]);
    REQUIRE(task["insurance"].size() == 1);
    CHECK(task["input"].dump().find("BenefitsCoordination/Consent") != std::string::npos);
    CHECK_FALSE(issues.Find("/Message/Body/RxHistoryResponse/BenefitsCoordination/CardholderID"));
    CHECK_FALSE(
        issues.Find("/Message/Body/RxHistoryResponse/BenefitsCoordination/PayerIdentification"));
  }

  TEST_CASE("RxHistoryResponse: the lots of a dispensed entry go to FHIR and back, paired") {
    IssueList issues;
    std::string b = ToFhir(testing::ReadFixture("script/rxhistory_response_dispensed.xml"), issues);
    CHECK_FALSE(issues.Find("/Message/Body/RxHistoryResponse/MedicationDispensed[1]/LotNumber"));
    TransformOptions o = HistoryAnswerOptions();
    auto back = ToScript(b, issues, o);
    RXFLOW_REQUIRE_OK(back);
    CHECK(back->xml.find("<ManufacturerName>Lupin Pharmaceuticals, Inc.</ManufacturerName>") !=
          std::string::npos);
    CHECK(back->xml.find("<LotNumber>L2611A12</LotNumber>") != std::string::npos);

    // An expiration without the lot before it cannot be paired: named, not sent.
    json bundle = json::parse(b);
    for (json& e : bundle["entry"]) {
      json& r = e["resource"];
      if (r["resourceType"] != "MedicationDispense" || !r.contains("extension")) continue;
      json kept = json::array();
      for (const json& x : r["extension"]) {
        if (x["extension"][0]["valueString"] != "LotNumber/LotNumber") kept.push_back(x);
      }
      r["extension"] = kept;
    }
    issues.clear();
    back = ToScript(bundle.dump(), issues, o);
    RXFLOW_REQUIRE_OK(back);
    CHECK(back->xml.find("<LotExpiration>") == std::string::npos);
    int named = 0;
    for (const Issue& i : issues) {
      named += i.message.find("comes after its LotNumber/LotNumber extension") != std::string::npos;
    }
    CHECK(named == 2);
  }

  // A history entry's structured Sig keeps the code system versions it was written with, on
  // the MedicationDispense or MedicationStatement, and they go back instead of the options'.
  TEST_CASE("RxHistoryResponse: a structured Sig's code system versions go to FHIR and back") {
    const std::string newrx = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
    const size_t sig_at = newrx.find("<Sig>");
    const std::string sig =
        newrx.substr(sig_at, newrx.find("</Sig>") + std::string("</Sig>").size() - sig_at);
    for (const char* fixture : {"rxhistory_response_dispensed", "rxhistory_response_prescribed"}) {
      const std::string name = fixture;
      CAPTURE(name);
      std::string xml = testing::ReadFixture("script/" + name + ".xml");
      const size_t at = xml.find("<Sig>");
      REQUIRE(at != std::string::npos);
      xml.replace(at, xml.find("</Sig>", at) + std::string("</Sig>").size() - at, sig);
      IssueList issues;
      std::string b = ToFhir(xml, issues);
      const json entry = Resources(
          b, name.ends_with("dispensed") ? "MedicationDispense" : "MedicationStatement")[0];
      auto kept = ScriptElements(entry);
      CHECK(kept["Sig/CodeSystem/SNOMEDVersion"] == "20250901");
      CHECK(kept["Sig/CodeSystem/FMTVersion"] == "25.08d");
      const TransformOptions o = HistoryAnswerOptions();
      issues.clear();
      auto back = ToScript(b, issues, o);
      RXFLOW_REQUIRE_OK(back);
      CHECK(back->xml.find("<SNOMEDVersion>20250901</SNOMEDVersion>") != std::string::npos);
      CHECK(back->xml.find("<FMTVersion>25.08d</FMTVersion>") != std::string::npos);
      CHECK(back->xml.find(o.newrx.snomed_version) == std::string::npos);
      for (const Issue& i : issues) {
        CHECK_MESSAGE(i.message.find("Sig/CodeSystem") == std::string::npos, ToString(i));
      }
    }
  }

  TEST_CASE("RxHistoryResponse: prescribed entries become MedicationStatements") {
    IssueList issues;
    std::string b =
        ToFhir(testing::ReadFixture("script/rxhistory_response_prescribed.xml"), issues);
    json statements = Resources(b, "MedicationStatement");
    REQUIRE(statements.size() == 1);
    CHECK(statements[0]["status"] == "recorded");
    CHECK(statements[0]["effectiveDateTime"] == "2026-09-14");
    CHECK(statements[0]["dateAsserted"] == "2027-01-08T09:05:15Z");
    CHECK(statements[0]["reason"][0]["concept"]["coding"][0]["code"] == "E11.9");
    CHECK(statements[0]["informationSource"].size() == 1);
  }

  TEST_CASE("transfers: the pharmacy receiving the prescription asks, the other owns the Task") {
    IssueList issues;
    std::string b = ToFhir(testing::ReadFixture("script/rxtransfer_request.xml"), issues);
    json orgs = Resources(b, "Organization");
    REQUIRE(orgs.size() == 2);
    json task = Resources(b, "Task")[0];
    CHECK(task["status"] == "requested");
    std::string to, from;
    const json parsed = json::parse(b);
    for (const json& e : parsed["entry"]) {
      if (e["resource"]["resourceType"] != "Organization") continue;
      if (e["resource"]["name"] == "Harbor Point Pharmacy") to = e["fullUrl"];
      if (e["resource"]["name"] == "Riverbend Community Pharmacy") from = e["fullUrl"];
    }
    CHECK(task["requester"]["reference"] == to);
    CHECK(task["owner"]["reference"] == from);

    // A transfer type naming neither side: the pharmacy is mapped, the Task does not name
    // it, and a warning says so.
    std::string xml = testing::ReadFixture("script/rxtransfer_request.xml");
    xml.replace(xml.find("TRANSFER FROM PHARMACY"), 22, "TRANSFER TO PHARMACY");
    IssueList twice;
    b = ToFhir(xml, twice);
    CHECK_FALSE(Resources(b, "Task")[0].contains("owner"));
    CHECK(twice.Find("/Message/Body/RxTransferRequest/Pharmacy[2]/TransferType"));
  }

  TEST_CASE("NewRxRequest and NewRxResponseDenied: a proposal and the Task about it") {
    IssueList issues;
    std::string b = ToFhir(testing::ReadFixture("script/newrx_request.xml"), issues);
    json mr = Resources(b, "MedicationRequest")[0];
    CHECK(mr["intent"] == "proposal");
    CHECK(mr["status"] == "active");
    CHECK(mr["priority"] == "routine");
    json task = Resources(b, "Task")[0];
    CHECK(task["status"] == "requested");
    CHECK(task["code"]["coding"][0]["code"] == "NewRxRequest");

    issues.clear();
    b = ToFhir(testing::ReadFixture("script/newrx_response_denied.xml"), issues);
    CHECK(Resources(b, "MedicationRequest")[0]["status"] == "cancelled");
    task = Resources(b, "Task")[0];
    CHECK(task["status"] == "rejected");
    CHECK(task["statusReason"]["coding"][0]["code"] == "AM");
    CHECK(task["description"] == "Patient must be seen before a new prescription");
  }

  // A Task's inputs, by the SCRIPT element each carries (valueString).
  std::map<std::string, std::vector<std::string>> Inputs(const json& task) {
    std::map<std::string, std::vector<std::string>> out;
    for (const json& in : task.value("input", json::array())) {
      out[in["type"]["coding"][0]["code"].get<std::string>()].push_back(
          in.value("valueString", std::string()));
    }
    return out;
  }
  json TaskOf(const std::string& bundle) {
    const json parsed = json::parse(bundle);
    for (const json& e : parsed["entry"]) {
      if (e["resource"]["resourceType"] == "Task") return e["resource"];
    }
    FAIL("no Task in the Bundle");
    return {};
  }

  TEST_CASE("the answers keep their routing header as Task inputs") {
    for (const char* fixture : {"status_000", "verify", "error_900", "cancelrx_response_denied",
                                "rxrenewal_response_denied", "rxchange_response_denied"}) {
      CAPTURE(fixture);
      IssueList issues;
      auto out =
          ToFhirJson(testing::ReadFixture(std::string("script/") + fixture + ".xml"), issues);
      RXFLOW_REQUIRE_OK(out);
      auto in = Inputs(TaskOf(*out));
      REQUIRE(in.count("Header/To") == 1);
      CHECK(in["Header/To/@Qualifier"].size() == 1);
      CHECK(in["Header/From"].size() == 1);
      CHECK(in["Header/From/@Qualifier"].size() == 1);
      CHECK(in["Header/SenderSoftware/SenderSoftwareProduct"].size() == 1);
      // Each of these names its prescription by order number, so the focus does not carry
      // the RelatesToMessageID: an input does.
      CHECK(in["Header/RelatesToMessageID"].size() == 1);
    }
    IssueList issues;
    auto out = ToFhirJson(testing::ReadFixture("script/cancelrx_response_denied.xml"), issues);
    RXFLOW_REQUIRE_OK(out);
    auto in = Inputs(TaskOf(*out));
    CHECK(in["Header/To"] == std::vector<std::string>{"9036274810001"});
    CHECK(in["Header/From/@Qualifier"] == std::vector<std::string>{"P"});
    CHECK(in["Header/RelatesToMessageID"] ==
          std::vector<std::string>{"1a7c4e9b2d5f4386b1e8a3c6d0f7b924"});
    CHECK(in["Header/RxReferenceNumber"] == std::vector<std::string>{"RX2219043"});
    CHECK(in["Response/ReferenceNumber"] == std::vector<std::string>{"CX-2219043"});
  }

  TEST_CASE("an answer without an order number: the focus carries RelatesToMessageID") {
    // A Status without a PrescriberOrderNumber: the focus names the answered message.
    IssueList issues;
    std::string xml = Replace(testing::ReadFixture("script/status_000.xml"),
                              "    <PrescriberOrderNumber>ORD-1001</PrescriberOrderNumber>\n", "");
    auto out = ToFhirJson(xml, issues);
    RXFLOW_REQUIRE_OK(out);
    json task = TaskOf(*out);
    CHECK(task["focus"]["identifier"]["value"] == "5e0a7c1d92b34f6e8a1c3b5d7f9e2a40");
    CHECK(Inputs(task).count("Header/RelatesToMessageID") == 0);
  }

  TEST_CASE("a Status's DescriptionCodes are Task inputs") {
    std::string xml = Replace(testing::ReadFixture("script/status_010.xml"), "<Code>010</Code>",
                              "<Code>010</Code><DescriptionCode>008</DescriptionCode>"
                              "<DescriptionCode>4000</DescriptionCode>");
    IssueList issues;
    auto out = ToFhirJson(xml, issues);
    RXFLOW_REQUIRE_OK(out);
    CHECK(Inputs(TaskOf(*out))["DescriptionCode"] == std::vector<std::string>{"008", "4000"});
  }

  TEST_CASE("a diagnosis qualifier other than the prescriber's is named, 1 is implied") {
    const std::string xml = testing::ReadFixture("script/rxrenewal_request.xml");
    IssueList issues;
    RXFLOW_REQUIRE_OK(ToFhirJson(xml, issues));
    CHECK_FALSE(
        issues.Find("/Message/Body/RxRenewalRequest/MedicationPrescribed/Diagnosis/"
                    "ClinicalInformationQualifier"));
    issues.clear();
    RXFLOW_REQUIRE_OK(
        ToFhirJson(Replace(xml, "<ClinicalInformationQualifier>1</ClinicalInformationQualifier>",
                           "<ClinicalInformationQualifier>2</ClinicalInformationQualifier>"),
                   issues));
    const Issue* i = issues.Find(
        "/Message/Body/RxRenewalRequest/MedicationPrescribed/Diagnosis/"
        "ClinicalInformationQualifier");
    REQUIRE(i != nullptr);
    CHECK(i->severity == Severity::kWarning);
    CHECK(i->message.find("ClinicalInformationQualifier 2 has no FHIR form") != std::string::npos);
  }

  TEST_CASE("RxChangeResponse: the response, the request code and each sub-code are inputs") {
    std::string xml = Replace(testing::ReadFixture("script/rxchange_response_denied.xml"),
                              "<MessageRequestCode>G</MessageRequestCode>",
                              "<MessageRequestCode>U</MessageRequestCode>"
                              "<MessageRequestSubCode>A</MessageRequestSubCode>"
                              "<MessageRequestSubCode>J</MessageRequestSubCode>");
    IssueList issues;
    auto out = ToFhirJson(xml, issues);
    RXFLOW_REQUIRE_OK(out);
    json task = TaskOf(*out);
    CHECK(task["status"] == "rejected");
    CHECK(task["statusReason"]["coding"][0]["code"] == "AL");
    CHECK(task["description"] ==
          "Brand medically necessary; prior authorization submitted to the plan");
    auto in = Inputs(task);
    CHECK(in["MessageRequestCode"] == std::vector<std::string>{"U"});
    CHECK(in["MessageRequestSubCode"] == std::vector<std::string>{"A", "J"});
    CHECK(in["Response/ReferenceNumber"] == std::vector<std::string>{"CH-88310"});
  }

  TEST_CASE("RxRenewalRequest: the prescription as written is the proposal's priorPrescription") {
    IssueList issues;
    std::string b = ToFhir(testing::ReadFixture("script/rxrenewal_request.xml"), issues);
    json requests = Resources(b, "MedicationRequest");
    REQUIRE(requests.size() == 2);
    json proposal, prior;
    for (const json& r : requests) (r["intent"] == "proposal" ? proposal : prior) = r;
    REQUIRE(proposal.contains("priorPrescription"));
    std::string prior_url;
    const json parsed = json::parse(b);
    for (const json& e : parsed["entry"]) {
      if (e["resource"]["id"] == prior["id"]) prior_url = e["fullUrl"];
    }
    CHECK(proposal["priorPrescription"]["reference"] == prior_url);
    CHECK(prior["intent"] == "order");
    CHECK(prior["dispenseRequest"]["numberOfRepeatsAllowed"] == 2);
    CHECK(prior["reason"][0]["concept"]["coding"][0]["code"] == "I10");
    // Only the order number: the MessageID and RxReferenceNumber are the proposal's.
    REQUIRE(prior["identifier"].size() == 1);
    CHECK(prior["identifier"][0]["value"] == "ORD-1001");
  }

  TEST_CASE("RxFill: every field of the fill reaches the MedicationDispense or a warning") {
    IssueList issues;
    std::string b = ToFhir(testing::ReadFixture("script/rxfill_partial.xml"), issues);
    json d = Resources(b, "MedicationDispense")[0];
    std::map<std::string, std::string> ext;
    for (const json& e : d["extension"]) {
      ext[e["extension"][0]["valueString"]] = e["extension"][1]["valueString"];
    }
    CHECK(ext["FillStatus/PartiallyDispensed/ReferenceNumber"] == "RX3308815-P1");
    CHECK(ext["WrittenDate"] == "2026-11-21T15:42:00Z");
    CHECK(ext["NumberOfRefills"] == "0");
    CHECK(ext["Substitutions"] == "0");
    REQUIRE(d["note"].size() == 2);  // the FillStatus Note first, then the medication's
    CHECK(d["note"][0]["text"] == "Partial fill of 10 tablets at patient request");
    // Both medications: the prescribed one is named in a warning, not an information issue.
    const Issue* i = issues.Find("/Message/Body/RxFill/MedicationPrescribed");
    REQUIRE(i != nullptr);
    CHECK(i->severity == Severity::kWarning);
    CHECK(i->message.find("not repeated") != std::string::npos);
  }

  TEST_CASE("a request's routing header reaches FHIR as script-element extensions") {
    struct Case {
      const char* fixture;
      const char* type;  // the resource that keeps it
      const char* to;
      const char* to_qualifier;
      const char* from;
      const char* intent;  // of the MedicationRequest that keeps it
    };
    for (const Case& c :
         {Case{"newrx_2017071_lisinopril", "MedicationRequest", "4712345", "P", "6719450382001",
               "order"},
          Case{"rxrenewal_request", "MedicationRequest", "6719450382001", "D", "4712345",
               "proposal"},
          Case{"rxchange_request", "MedicationRequest", "6719450382001", "D", "4712345", "order"},
          Case{"rxfill_dispensed", "MedicationDispense", "6719450382001", "D", "4712345", ""}}) {
      const std::string fixture = c.fixture;
      CAPTURE(fixture);
      IssueList issues;
      std::string b =
          ToFhir(testing::ReadFixture(std::string("script/") + c.fixture + ".xml"), issues);
      json keeper;
      for (const json& r : Resources(b, c.type)) {
        if (r.value("intent", std::string()) == c.intent) {
          keeper = r;
          break;
        }
      }
      auto kept = ScriptElements(keeper);
      CHECK(kept["Header/To"] == c.to);
      CHECK(kept["Header/To/@Qualifier"] == c.to_qualifier);
      CHECK(kept["Header/From"] == c.from);
      CHECK(kept["Header/From/@Qualifier"] == (std::string(c.to_qualifier) == "P" ? "D" : "P"));
      CHECK_FALSE(kept["Header/SenderSoftware/SenderSoftwareDeveloper"].empty());
      CHECK_FALSE(kept["Header/SenderSoftware/SenderSoftwareProduct"].empty());
      CHECK_FALSE(kept["Header/SenderSoftware/SenderSoftwareVersionRelease"].empty());
      CHECK(issues.Find("/Message/Header/To") == nullptr);
    }
    // RxRenewalRequest: the proposal keeps it, not the prescription it would renew.
    IssueList issues;
    std::string b = ToFhir(testing::ReadFixture("script/rxrenewal_request.xml"), issues);
    for (const json& mr : Resources(b, "MedicationRequest")) {
      CHECK(ScriptElements(mr).count("Header/To") == (mr["intent"] == "proposal" ? 1u : 0u));
    }
    // An RxFill names its prescription by the order number: RelatesToMessageID is kept. Without
    // one, the authorizingPrescription carries it and no extension repeats it.
    issues.clear();
    std::string xml = testing::ReadFixture("script/rxfill_dispensed.xml");
    b = ToFhir(xml, issues);
    CHECK(ScriptElements(Resources(b, "MedicationDispense")[0])["Header/RelatesToMessageID"] ==
          "5e0a7c1d92b34f6e8a1c3b5d7f9e2a40");
    issues.clear();
    b = ToFhir(Replace(xml, "    <PrescriberOrderNumber>ORD-1001</PrescriberOrderNumber>\n", ""),
               issues);
    json d = Resources(b, "MedicationDispense")[0];
    CHECK(ScriptElements(d).count("Header/RelatesToMessageID") == 0);
    CHECK(d["authorizingPrescription"][0]["identifier"]["value"] ==
          "5e0a7c1d92b34f6e8a1c3b5d7f9e2a40");
  }

  TEST_CASE("FHIR → SCRIPT writes its own header and names a kept one it does not send") {
    const std::string xml = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
    TransformOptions o;
    o.version = script::Version::k2017071;
    IssueList issues;
    auto fhir_json = ToFhirJson(xml, issues, o);
    RXFLOW_REQUIRE_OK(fhir_json);
    o.newrx.message_id = "again";
    o.newrx.sent_time = "2026-11-30T10:00:00Z";
    o.newrx.sender_software_version = "9.9.9";

    // RxFlow's header: To is the pharmacy's NCPDP ID as before (no issue); From is the NPI, not
    // the SPI the message came from; the SenderSoftware version is ours.
    IssueList back;
    auto again = ToScript(*fhir_json, back, o);
    RXFLOW_REQUIRE_OK(again);
    const script::Header& h = again->newrx.message.header;
    CHECK(h.to == "4712345");
    CHECK(h.from == "1738294614");
    CHECK(h.sender_software_version_release == "9.9.9");
    std::map<std::string, const Issue*> named;  // SCRIPT element → its warning
    for (const Issue& i : back) {
      const size_t at = i.message.find("SCRIPT Header/");
      if (at == std::string::npos || i.severity != Severity::kWarning) continue;
      if (i.message.find("(script-element extension)") == std::string::npos) continue;
      named[i.message.substr(at + 7, i.message.find(' ', at + 7) - at - 7)] = &i;
    }
    CHECK(named.count("Header/From") == 1);
    CHECK(named.count("Header/SenderSoftware/SenderSoftwareVersionRelease") == 1);
    CHECK(named.count("Header/To") == 0);
    CHECK(named.count("Header/To/@Qualifier") == 0);
    CHECK(named.count("Header/From/@Qualifier") == 0);
    CHECK(named.count("Header/SenderSoftware/SenderSoftwareDeveloper") == 0);  // RxFlow both
    REQUIRE(named.count("Header/From") == 1);
    CHECK(named["Header/From"]->path.starts_with("Bundle.entry["));
    CHECK(named["Header/From"]->path.find(".extension[") != std::string::npos);
    CHECK(named["Header/From"]->message.find("not sent") != std::string::npos);
    CHECK(again->xml.find("6719450382001") == std::string::npos);

    // Options that give the same header: no kept element is named.
    o.newrx.from = "6719450382001";
    o.newrx.sender_software_version = "0.1.0";
    back.clear();
    again = ToScript(*fhir_json, back, o);
    RXFLOW_REQUIRE_OK(again);
    for (const Issue& i : back) {
      CHECK_MESSAGE(i.message.find("(script-element extension) is the header") == std::string::npos,
                    ToString(i));
    }
  }
}

TEST_SUITE("Idempotency") {
  TEST_CASE("the key ignores spelling differences and message metadata") {
    std::string json = testing::ReadFixture("fhir/ndc_coded_atorvastatin.json");
    IssueList issues;
    auto a = Map(json, issues);
    RXFLOW_REQUIRE_OK(a);
    // Same content: hyphenless NDC, a new message id and time.
    TransformOptions o;
    o.newrx.message_id = "OTHER";
    o.newrx.sent_time = "2026-11-27T10:00:00Z";
    auto b = ToScript(Replace(json, "\"0071-0155-23\"", "\"00071015523\""), issues, o);
    RXFLOW_REQUIRE_OK(b);
    CHECK(*IdempotencyKey(a->newrx.message, kKey) == *IdempotencyKey(b->newrx.message, kKey));
    CHECK(IdempotencyKey(a->newrx.message, kKey)->size() == 64);
  }
  TEST_CASE("the key changes with the content, the patient and the HMAC key") {
    std::string json = testing::ReadFixture("fhir/medication_request_lisinopril.json");
    IssueList issues;
    auto base = Map(json, issues);
    auto qty = Map(Replace(json, "\"value\": 30,", "\"value\": 60,"), issues);
    auto patient = Map(Replace(json, "\"1968-04-17\"", "\"1968-04-18\""), issues);
    RXFLOW_REQUIRE_OK(base);
    RXFLOW_REQUIRE_OK(qty);
    RXFLOW_REQUIRE_OK(patient);
    std::string k = *IdempotencyKey(base->newrx.message, kKey);
    CHECK(k != *IdempotencyKey(qty->newrx.message, kKey));
    CHECK(k != *IdempotencyKey(patient->newrx.message, kKey));
    CHECK(k != *IdempotencyKey(base->newrx.message, "another-key-another-key-12345678"));
  }
  TEST_CASE("the canonical content holds no patient identity, and short keys are refused") {
    IssueList issues;
    auto base = Map(testing::ReadFixture("fhir/medication_request_lisinopril.json"), issues);
    RXFLOW_REQUIRE_OK(base);
    std::string canon = *CanonicalPrescription(base->newrx.message, kKey);
    CHECK(canon.find("Delacroix") == std::string::npos);
    CHECK(canon.find("1968-04-17") == std::string::npos);
    CHECK(canon.find("MRN-448812") == std::string::npos);
    CHECK(IdempotencyKey(base->newrx.message, "short").status().code() ==
          absl::StatusCode::kInvalidArgument);
  }
}

TEST_SUITE("Mapping") {
  // A clinic with its own pharmacy: the PractitionerRole's organization and the dispenser
  // are one Organization. It was moved out of the Bundle for the practice, and the pharmacy
  // then came back empty ("pharmacy NCPDP ID is required").
  TEST_CASE("one Organization as both practice and pharmacy is read for both") {
    json b = json::parse(testing::ReadFixture("fhir/bundle_transaction_practitionerrole.json"));
    for (json& e : b["entry"]) {
      if (e["resource"]["resourceType"] == "PractitionerRole") {
        e["resource"]["organization"] = {{"reference", "Organization/pharm1"}};
      }
    }
    IssueList issues;
    TransformOptions o;
    o.version = script::Version::k2017071;
    o.newrx.message_id = "same-org";
    o.newrx.sent_time = "2026-11-30T10:00:00Z";
    auto out = ToScript(b.dump(), issues, o);
    for (const Issue& i : issues) {
      if (i.severity == Severity::kError) MESSAGE(ToString(i));
    }
    RXFLOW_REQUIRE_OK(out);
    const auto& rx = std::get<script::NewRx>(out->newrx.message.body);
    REQUIRE(rx.pharmacy.has_value());
    CHECK_FALSE(rx.pharmacy->identification.ncpdp_id.empty());
    CHECK_FALSE(rx.pharmacy->business_name.empty());
    REQUIRE(rx.prescriber.practice_location.has_value());
    CHECK(rx.prescriber.practice_location->business_name == rx.pharmacy->business_name);
  }

  // Telecom both ways (docs/mapping.md §2.7 and §4.2): the kind of each phone, its
  // extension, SupportsSMS and the Direct address survive FHIR → SCRIPT → FHIR → SCRIPT.
  TEST_CASE("telecom: phone kinds, extensions, SMS and the Direct address both ways") {
    json in = json::parse(testing::ReadFixture("fhir/medication_request_lisinopril.json"));
    in["patient"]["telecom"] = json::parse(R"([
      {"system": "phone", "value": "tel:+1-804-555-0142", "use": "mobile"},
      {"system": "phone", "value": "(804) 555-0143 x12", "use": "home"},
      {"system": "sms", "value": "804-555-0143;ext=12"},
      {"system": "phone", "value": "8045550144 ext. 7", "use": "work"},
      {"system": "email", "value": "patient@direct.example.org",
       "extension": [{"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-direct",
                      "valueBoolean": true}]},
      {"system": "email", "value": "marisol@example.com",
       "extension": [{"url": "https://example.org/unknown", "valueString": "x"}]}
    ])");
    TransformOptions o;
    o.version = script::Version::k2017071;
    o.newrx.message_id = "telecom";
    o.newrx.sent_time = "2026-11-30T10:00:00Z";
    IssueList issues;
    auto out = ToScript(in.dump(), issues, o);
    for (const Issue& i : issues) {
      if (i.severity == Severity::kError) MESSAGE(ToString(i));
    }
    RXFLOW_REQUIRE_OK(out);
    const auto& rx = std::get<script::NewRx>(out->newrx.message.body);
    REQUIRE(rx.patient.communication_numbers.has_value());
    const script::CommunicationNumbers& c = *rx.patient.communication_numbers;
    REQUIRE(c.primary_telephone.has_value());
    CHECK(c.primary_telephone->number == "8045550142");
    CHECK(c.primary_telephone->supports_sms == "Y");
    REQUIRE(c.home_telephone.size() == 1);
    CHECK(c.home_telephone[0].number == "8045550143");
    CHECK(c.home_telephone[0].extension == "12");
    CHECK(c.home_telephone[0].supports_sms == "Y");  // the sms ContactPoint, not a new phone
    REQUIRE(c.work_telephone.size() == 1);
    CHECK(c.work_telephone[0].extension == "7");
    CHECK(c.work_telephone[0].supports_sms.empty());
    CHECK(c.other_telephone.empty());
    CHECK(c.direct_address == "patient@direct.example.org");
    REQUIRE(c.electronic_mail.size() == 1);
    CHECK(c.electronic_mail[0] == "marisol@example.com");
    bool unknown_named = false;
    for (const Issue& i : issues) {
      unknown_named |= i.severity == Severity::kWarning &&
                       i.path == "patient.telecom[5].extension[0]" &&
                       i.message.find("https://example.org/unknown") != std::string::npos;
    }
    CHECK(unknown_named);

    // SCRIPT → FHIR → SCRIPT: the same CommunicationNumbers come back.
    IssueList back_issues;
    auto fhir_json = ToFhirJson(out->xml, back_issues, o);
    RXFLOW_REQUIRE_OK(fhir_json);
    const json bundle = json::parse(*fhir_json);
    json patient;
    for (const json& e : bundle["entry"]) {
      if (e["resource"]["resourceType"] == "Patient") patient = e["resource"];
    }
    json home, sms;
    for (const json& t : patient["telecom"]) {
      if (t["value"] != "8045550143;ext=12") continue;
      (t["system"] == "sms" ? sms : home) = t;
    }
    CHECK(home["system"] == "phone");
    CHECK(home["use"] == "home");
    CHECK(sms["use"] == "home");
    IssueList again_issues;
    auto again = ToScript(*fhir_json, again_issues, o);
    RXFLOW_REQUIRE_OK(again);
    CHECK(again->xml == out->xml);
  }

  TEST_CASE("telecom: a phone extension of more than 8 digits is refused at its path") {
    json in = json::parse(testing::ReadFixture("fhir/medication_request_lisinopril.json"));
    in["patient"]["telecom"] = json::parse(R"([
      {"system": "phone", "value": "8045550142;ext=123456789"}])");
    IssueList issues;
    TransformOptions o;
    o.newrx.message_id = "telecom";
    o.newrx.sent_time = "2026-11-30T10:00:00Z";
    auto out = ToScript(in.dump(), issues, o);
    CHECK_FALSE(out.ok());
    bool named = false;
    for (const Issue& i : issues) {
      named |= i.severity == Severity::kError && i.path == "patient.telecom[0].value" &&
               i.message.find("at most 8 digits") != std::string::npos;
    }
    CHECK(named);
  }

  // A SCRIPT test message stays a test message when its prescription is sent on.
  TEST_CASE("Header/TestMessage reaches FHIR and comes back") {
    std::string xml = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
    const std::string after = "</SentTime>";
    size_t at = xml.find(after);
    REQUIRE(at != std::string::npos);
    // TestMessage comes after SenderSoftware and Mailbox in the header.
    size_t sender_end = xml.find("</SenderSoftware>");
    REQUIRE(sender_end != std::string::npos);
    xml.insert(sender_end + std::string("</SenderSoftware>").size(),
               "<TestMessage>1</TestMessage>");
    TransformOptions o;
    o.version = script::Version::k2017071;
    IssueList issues;
    auto fhir_json = ToFhirJson(xml, issues, o);
    for (const Issue& i : issues) {
      if (i.severity == Severity::kError) MESSAGE(ToString(i));
    }
    RXFLOW_REQUIRE_OK(fhir_json);
    CHECK(fhir_json->find("\"TestMessage\"") != std::string::npos);
    o.newrx.message_id = "again";
    o.newrx.sent_time = "2026-11-30T10:00:00Z";
    IssueList back;
    auto again = ToScript(*fhir_json, back, o);
    RXFLOW_REQUIRE_OK(again);
    CHECK(again->newrx.message.header.test_message == "1");
    CHECK(again->xml.find("<TestMessage>1</TestMessage>") != std::string::npos);
  }
}

TEST_SUITE("Mapping: allergies and observations") {
  constexpr const char* kAllergyFixture = "script/newrx_allergies_observation.xml";

  // The resources of one type in a Bundle, in entry order.
  json OfType(const json& bundle, std::string_view type) {
    json out = json::array();
    for (const json& e : bundle["entry"]) {
      if (e["resource"]["resourceType"] == type) out.push_back(e["resource"]);
    }
    return out;
  }
  std::string FullUrlOf(const json& bundle, std::string_view type) {
    for (const json& e : bundle["entry"]) {
      if (e["resource"]["resourceType"] == type) return e["fullUrl"].get<std::string>();
    }
    FAIL("no " << type << " in the Bundle");
    return {};
  }
  // A Bundle entry holding `resource` (JSON, PATIENT standing for the patient's reference).
  json Entry(std::string resource, const std::string& patient) {
    for (size_t at = resource.find("PATIENT"); at != std::string::npos;
         at = resource.find("PATIENT", at)) {
      resource.replace(at, 7, patient);
    }
    return json{{"resource", json::parse(resource)}};
  }
  void ShowErrors(const IssueList& issues) {
    for (const Issue& i : issues) {
      if (i.severity == Severity::kError || i.severity == Severity::kFatal) MESSAGE(ToString(i));
    }
  }
  bool Same(const std::optional<script::SnomedCode>& a,
            const std::optional<script::SnomedCode>& b) {
    return a.has_value() == b.has_value() && (!a || (a->text == b->text && a->code == b->code));
  }
  bool Same(const script::DateValue& a, const script::DateValue& b) {
    return a.date == b.date && a.date_time == b.date_time;
  }

  const char* const kNoKnownAllergy = R"({"resourceType": "AllergyIntolerance",
      "clinicalStatus": {"coding": [{"system":
          "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
      "verificationStatus": {"coding": [{"system":
          "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
          "code": "confirmed"}]},
      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "716186003"}]},
      "patient": {"reference": "Patient/pat-delacroix"}})";

  TEST_CASE("a NewRx's allergies and measurements become AllergyIntolerance and Observation") {
    IssueList issues;
    auto out = ToFhirJson(testing::ReadFixture(kAllergyFixture), issues);
    ShowErrors(issues);
    RXFLOW_REQUIRE_OK(out);
    const json b = json::parse(*out);
    const std::string patient = FullUrlOf(b, "Patient");

    const json allergies = OfType(b, "AllergyIntolerance");
    REQUIRE(allergies.size() == 2);
    const json& a = allergies[0];
    CHECK(a["clinicalStatus"]["coding"][0]["code"] == "active");
    CHECK_FALSE(a.contains("verificationStatus"));  // SCRIPT does not say
    CHECK(a["type"]["text"] == "Drug allergy");
    CHECK(a["type"]["coding"][0]["system"] == "http://hl7.org/fhir/allergy-intolerance-type");
    CHECK(a["type"]["coding"][0]["code"] == "allergy");
    CHECK(a["type"]["coding"][1]["system"] == "http://snomed.info/sct");
    CHECK(a["type"]["coding"][1]["code"] == "416098002");
    CHECK(a["category"] == json::array({"medication"}));
    CHECK(a["code"]["text"] == "amoxicillin 250 MG Oral Capsule");
    CHECK(a["code"]["coding"][0]["system"] == "http://www.nlm.nih.gov/research/umls/rxnorm");
    CHECK(a["code"]["coding"][0]["code"] == "308182");
    CHECK(a["patient"]["reference"] == patient);
    CHECK(a["onsetDateTime"] == "2022-03-14");
    CHECK(a["participant"][0]["function"]["coding"][0]["code"] == "informant");
    CHECK(a["participant"][0]["actor"]["reference"] == patient);  // SourceOfInformation P
    CHECK(a["reaction"][0]["manifestation"][0]["concept"]["text"] == "Hives");
    CHECK(a["reaction"][0]["manifestation"][0]["concept"]["coding"][0]["code"] == "247472004");
    CHECK(a["reaction"][0]["severity"] == "moderate");
    // FHIR holds all of it but the RxNorm code's term type (a coding has none).
    REQUIRE(a["extension"].size() == 1);
    CHECK(a["extension"][0]["extension"][0]["valueString"] == "DrugProductCoded/Qualifier");
    CHECK(a["extension"][0]["extension"][1]["valueString"] == "SCD");

    const json& c = allergies[1];
    CHECK(c["type"]["coding"][0]["code"] == "intolerance");
    CHECK(c["type"]["coding"][1]["code"] == "59037007");
    CHECK(c["code"] == json{{"text", "Codeine"}});
    CHECK(c["onsetDateTime"] == "2024-06-02T09:30:00Z");
    CHECK(c["participant"][0]["actor"] == json{{"type", "Practitioner"}, {"display", "clinician"}});
    CHECK_FALSE(c.contains("reaction"));
    REQUIRE(c["extension"].size() == 1);  // ExpirationDate has no FHIR element
    CHECK(c["extension"][0]["url"] == std::string(mapping::kScriptElementExtension));
    CHECK(c["extension"][0]["extension"][0]["valueString"] == "ExpirationDate");
    CHECK(c["extension"][0]["extension"][1]["valueString"] == "2027-06-01");

    const json obs = OfType(b, "Observation");
    REQUIRE(obs.size() == 2);
    CHECK(obs[0]["status"] == "final");
    CHECK(obs[0]["category"][0]["coding"][0]["code"] == "vital-signs");
    CHECK(obs[0]["code"]["coding"][0] ==
          json{{"system", "http://loinc.org"}, {"version", "2.72"}, {"code", "29463-7"}});
    CHECK(obs[0]["subject"]["reference"] == patient);
    CHECK(obs[0]["effectiveDateTime"] == "2026-11-19");
    CHECK(obs[0]["valueQuantity"] == json{{"value", 18.2},
                                          {"unit", "kg"},
                                          {"system", "http://unitsofmeasure.org"},
                                          {"code", "kg"}});
    CHECK(obs[0]["note"][0]["text"] == "Weighed and measured at the clinic visit.");
    CHECK(obs[0]["extension"][0]["extension"][0]["valueString"] == "UCUMVersion");
    CHECK(obs[0]["extension"][0]["extension"][1]["valueString"] == "2.1");
    CHECK(obs[1]["code"]["coding"][0]["code"] == "8302-2");
    CHECK(obs[1]["effectiveDateTime"] == "2026-11-19T15:04:00Z");
    CHECK(obs[1]["valueQuantity"]["value"] == 108.5);
    CHECK_FALSE(obs[1].contains("note"));  // the notes go on the first Observation
    // Nothing of either element is reported as dropped.
    for (const Issue& i : issues) {
      CHECK_MESSAGE(i.path.find("/AllergyOrAdverseEvent") == std::string::npos, ToString(i));
      CHECK_MESSAGE(i.path.find("/Observation") == std::string::npos, ToString(i));
    }
  }

  TEST_CASE("a NewRx's allergies and measurements come back from its FHIR Bundle unchanged") {
    const std::string xml = testing::ReadFixture(kAllergyFixture);
    IssueList read_issues;
    auto original = script::ReadXml(xml, read_issues);
    RXFLOW_REQUIRE_OK(original);
    IssueList issues;
    auto fhir_json = ToFhirJson(xml, issues);
    RXFLOW_REQUIRE_OK(fhir_json);
    auto back = Map(*fhir_json, issues);
    ShowErrors(issues);
    RXFLOW_REQUIRE_OK(back);
    const auto& was = std::get<script::NewRx>(original->body);
    const auto& now = std::get<script::NewRx>(back->newrx.message.body);
    REQUIRE(was.allergy_or_adverse_event);
    REQUIRE(now.allergy_or_adverse_event);
    CHECK(now.allergy_or_adverse_event->no_known_allergies.empty());
    const auto& x = was.allergy_or_adverse_event->allergies;
    const auto& y = now.allergy_or_adverse_event->allergies;
    REQUIRE(x.size() == 2);
    REQUIRE(y.size() == x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      CAPTURE(i);
      CHECK(y[i].source_of_information == x[i].source_of_information);
      CHECK(Same(y[i].effective_date, x[i].effective_date));
      CHECK(Same(y[i].expiration_date, x[i].expiration_date));
      CHECK(Same(y[i].adverse_event, x[i].adverse_event));
      CHECK(y[i].drug_product_coded.code == x[i].drug_product_coded.code);
      CHECK(y[i].drug_product_coded.qualifier == x[i].drug_product_coded.qualifier);
      CHECK(y[i].drug_product_coded.text == x[i].drug_product_coded.text);
      CHECK(Same(y[i].reaction_coded, x[i].reaction_coded));
      CHECK(Same(y[i].severity_coded, x[i].severity_coded));
    }
    REQUIRE(was.observation);
    REQUIRE(now.observation);
    CHECK(now.observation->observation_notes == was.observation->observation_notes);
    const auto& mx = was.observation->measurement;
    const auto& my = now.observation->measurement;
    REQUIRE(mx.size() == 2);
    REQUIRE(my.size() == mx.size());
    for (size_t i = 0; i < mx.size(); ++i) {
      CAPTURE(i);
      CHECK(my[i].vital_sign == mx[i].vital_sign);
      CHECK(my[i].loinc_version == mx[i].loinc_version);
      CHECK(my[i].value == mx[i].value);
      CHECK(my[i].unit_of_measure == mx[i].unit_of_measure);
      CHECK(my[i].ucum_version == mx[i].ucum_version);
      CHECK(Same(my[i].observation_date, mx[i].observation_date));
    }
  }

  TEST_CASE("an allergy's RxNorm term type goes to FHIR and back, not the option's") {
    std::string xml = testing::ReadFixture(kAllergyFixture);
    const size_t at = xml.find("<Qualifier>SCD</Qualifier>");
    REQUIRE(at != std::string::npos);
    xml.replace(at, 26, "<Qualifier>SBD</Qualifier>");
    IssueList issues;
    auto fhir_json = ToFhirJson(xml, issues);
    RXFLOW_REQUIRE_OK(fhir_json);
    json b = json::parse(*fhir_json);
    auto back = Map(b.dump(), issues);  // the options' term type: SCD
    RXFLOW_REQUIRE_OK(back);
    const auto& allergy =
        std::get<script::NewRx>(back->newrx.message.body).allergy_or_adverse_event->allergies[0];
    CHECK(allergy.drug_product_coded.qualifier == "SBD");
    // Not a term type: an error at the extension.
    int changed = 0;
    for (json& e : b["entry"]) {
      json& r = e["resource"];
      if (r["resourceType"] != "AllergyIntolerance" || !r.contains("extension")) continue;
      for (json& x : r["extension"]) {
        if (x["extension"][0]["valueString"] != "DrugProductCoded/Qualifier") continue;
        x["extension"][1]["valueString"] = "XYZ";
        ++changed;
      }
    }
    REQUIRE(changed >= 1);
    issues.clear();
    CHECK_FALSE(Map(b.dump(), issues).ok());
    bool refused = false;
    for (const Issue& i : issues) {
      refused =
          refused || (i.severity == Severity::kError &&
                      i.message.find("RxNorm term type is SCD, SBD, GPK or BPK, got \"XYZ\"") !=
                          std::string::npos &&
                      i.path.find(".extension[") != std::string::npos);
    }
    CHECK(refused);
  }
  TEST_CASE("a SeverityCoded FHIR has no code for, or without a reaction, is kept exactly") {
    std::string xml = testing::ReadFixture(kAllergyFixture);
    xml.replace(xml.find("<Text>Moderate</Text>"), 21, "<Text>Life threatening</Text>");
    xml.replace(xml.find("<Code>6736007</Code>"), 20, "<Code>442452003</Code>");
    IssueList issues;
    auto fhir_json = ToFhirJson(xml, issues);
    RXFLOW_REQUIRE_OK(fhir_json);
    const json a = OfType(json::parse(*fhir_json), "AllergyIntolerance")[0];
    CHECK(a["reaction"][0]["severity"] == "severe");
    REQUIRE(a["extension"].size() == 3);  // the RxNorm term type first
    CHECK(a["extension"][1]["extension"][0]["valueString"] == "SeverityCoded/Text");
    CHECK(a["extension"][1]["extension"][1]["valueString"] == "Life threatening");
    CHECK(a["extension"][2]["extension"][1]["valueString"] == "442452003");
    auto back = Map(*fhir_json, issues);
    RXFLOW_REQUIRE_OK(back);
    const auto& s = std::get<script::NewRx>(back->newrx.message.body)
                        .allergy_or_adverse_event->allergies[0]
                        .severity_coded;
    REQUIRE(s);
    CHECK(s->text == "Life threatening");
    CHECK(s->code == "442452003");
  }

  TEST_CASE("AllergyIntolerance and Observation entries about the patient go into the NewRx") {
    json b = json::parse(testing::ReadFixture("fhir/bundle_contained_medication.json"));
    REQUIRE(b["entry"].size() == 4);
    const std::string patient = FullUrlOf(b, "Patient");
    const std::string penicillin = R"({"resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{"system":
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
            "code": "active"}]},
        "type": {"coding": [{"system": "http://hl7.org/fhir/allergy-intolerance-type",
                             "code": "allergy"}]},
        "category": ["medication"],
        "criticality": "high",
        "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                             "code": "7980", "display": "penicillin G"}]},
        "patient": {"reference": "PATIENT"},
        "onsetDateTime": "2019-05-02",
        "participant": [{"function": {"coding": [{"system":
            "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
            "code": "informant"}]}, "actor": {"reference": "PATIENT"}}],
        "reaction": [{"manifestation": [{"concept": {"coding": [{"system":
            "http://snomed.info/sct", "code": "271807003", "display": "Eruption of skin"}],
            "text": "Rash"}}], "severity": "severe"}]})";
    const std::string sulfonamide = R"({"resourceType": "AllergyIntolerance",
        "category": ["medication"], "code": {"text": "Sulfonamide antibiotics"},
        "patient": {"reference": "PATIENT"}})";
    const std::string vital = R"({"resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system":
            "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"}]}], "subject": {"reference": "PATIENT"},)";
    const std::string weight = vital + R"(
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7",
                             "display": "Body weight"}]},
        "effectiveDateTime": "2026-11-18",
        "valueQuantity": {"value": 72.5, "unit": "kg", "system": "http://unitsofmeasure.org",
                          "code": "kg"},
        "note": [{"text": "Weighed in clinic."}]})";
    const std::string height = vital + R"(
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2", "version": "2.74"}]},
        "effectiveDateTime": "2026-11-18T09:15:00Z",
        "valueQuantity": {"value": 165, "unit": "cm", "system": "http://unitsofmeasure.org",
                          "code": "cm"},
        "note": [{"text": "Shoes off."}]})";
    const std::string someone_else = R"({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/someone-else"}, "effectiveDateTime": "2026-11-18",
        "valueQuantity": {"value": 80, "unit": "kg", "system": "http://unitsofmeasure.org",
                          "code": "kg"}})";
    // Entries 4 to 8, after the fixture's four.
    for (const std::string& r : {penicillin, sulfonamide, weight, height, someone_else}) {
      b["entry"].push_back(Entry(r, patient));
    }
    IssueList issues;
    auto out = Map(b.dump(), issues);
    ShowErrors(issues);
    RXFLOW_REQUIRE_OK(out);
    const auto& n = std::get<script::NewRx>(out->newrx.message.body);

    REQUIRE(n.allergy_or_adverse_event);
    const auto& allergies = n.allergy_or_adverse_event->allergies;
    REQUIRE(allergies.size() == 2);
    CHECK(allergies[0].source_of_information == "P");
    CHECK(allergies[0].effective_date.date == "2019-05-02");
    CHECK(allergies[0].adverse_event.code == "416098002");  // allergy, medication
    CHECK(allergies[0].adverse_event.text == "Allergy to drug");
    CHECK(allergies[0].drug_product_coded.code == "7980");
    CHECK(allergies[0].drug_product_coded.qualifier == "SCD");  // NewRxOptions.rxnorm_qualifier
    CHECK(allergies[0].drug_product_coded.text == "penicillin G");
    REQUIRE(allergies[0].reaction_coded);
    CHECK(allergies[0].reaction_coded->text == "Rash");
    CHECK(allergies[0].reaction_coded->code == "271807003");
    REQUIRE(allergies[0].severity_coded);
    CHECK(allergies[0].severity_coded->code == "24484000");
    CHECK(allergies[0].severity_coded->text == "Severe");
    CHECK(allergies[1].source_of_information == "C");  // no informant: the prescriber's record
    CHECK(allergies[1].adverse_event.code == "419511003");
    CHECK(allergies[1].drug_product_coded.text == "Sulfonamide antibiotics");
    CHECK(allergies[1].drug_product_coded.code.empty());
    CHECK_FALSE(allergies[1].reaction_coded);
    const Issue* criticality = issues.Find("Bundle.entry[4].resource.criticality");
    REQUIRE(criticality);
    CHECK(criticality->severity == Severity::kWarning);

    REQUIRE(n.observation);
    const auto& m = n.observation->measurement;
    REQUIRE(m.size() == 2);
    CHECK(m[0].vital_sign == "29463-7");
    CHECK(m[0].loinc_version == mapping::NewRxOptions().loinc_version);
    CHECK(m[0].value == "72.5");
    CHECK(m[0].unit_of_measure == "kg");
    CHECK(m[0].ucum_version == mapping::NewRxOptions().ucum_version);
    CHECK(m[0].observation_date.date == "2026-11-18");
    CHECK(m[1].vital_sign == "8302-2");
    CHECK(m[1].loinc_version == "2.74");
    CHECK(m[1].value == "165");
    CHECK(m[1].observation_date.date_time == "2026-11-18T09:15:00Z");
    CHECK(n.observation->observation_notes == "Weighed in clinic. Shoes off.");
    // Another patient's Observation: named, not sent.
    const Issue* other = issues.Find("Bundle.entry[8].resource.subject");
    REQUIRE(other);
    CHECK(other->severity == Severity::kWarning);

    // In SCRIPT's order: AllergyOrAdverseEvent before Patient, Observation after Prescriber.
    const std::string& x = out->xml;
    REQUIRE(x.find("<AllergyOrAdverseEvent>") != std::string::npos);
    CHECK(x.find("<AllergyOrAdverseEvent>") < x.find("<Patient>"));
    REQUIRE(x.find("<Observation>") != std::string::npos);
    CHECK(x.find("</Prescriber>") < x.find("<Observation>"));
    CHECK(x.find("</Observation>") < x.find("<MedicationPrescribed>"));
  }

  TEST_CASE("NoKnownAllergies is FHIR's no-known-allergy statement, both ways") {
    std::string xml = testing::ReadFixture(kAllergyFixture);
    const size_t from = xml.find("<AllergyOrAdverseEvent>");
    const size_t to = xml.find("</AllergyOrAdverseEvent>");
    REQUIRE(from != std::string::npos);
    REQUIRE(to != std::string::npos);
    xml.replace(from, to - from, "<AllergyOrAdverseEvent><NoKnownAllergies>Y</NoKnownAllergies>");
    IssueList issues;
    auto fhir_json = ToFhirJson(xml, issues);
    ShowErrors(issues);
    RXFLOW_REQUIRE_OK(fhir_json);
    const json b = json::parse(*fhir_json);
    const json allergies = OfType(b, "AllergyIntolerance");
    REQUIRE(allergies.size() == 1);
    CHECK(allergies[0]["code"]["coding"][0] == json{{"system", "http://snomed.info/sct"},
                                                    {"code", "716186003"},
                                                    {"display", "No known allergy"}});
    CHECK(allergies[0]["verificationStatus"]["coding"][0]["code"] == "confirmed");
    CHECK(allergies[0]["clinicalStatus"]["coding"][0]["code"] == "active");
    CHECK(allergies[0]["patient"]["reference"] == FullUrlOf(b, "Patient"));
    auto back = Map(*fhir_json, issues);
    ShowErrors(issues);
    RXFLOW_REQUIRE_OK(back);
    const auto& n = std::get<script::NewRx>(back->newrx.message.body);
    REQUIRE(n.allergy_or_adverse_event);
    CHECK(n.allergy_or_adverse_event->no_known_allergies == "Y");
    CHECK(n.allergy_or_adverse_event->allergies.empty());
    CHECK(back->xml.find("<NoKnownAllergies>Y</NoKnownAllergies>") != std::string::npos);

    // From the envelope's "allergies".
    json env = json::parse(testing::ReadFixture("fhir/medication_request_lisinopril.json"));
    env["allergies"] = json::array({json::parse(kNoKnownAllergy)});
    IssueList env_issues;
    auto from_env = Map(env.dump(), env_issues);
    ShowErrors(env_issues);
    RXFLOW_REQUIRE_OK(from_env);
    const auto& e = std::get<script::NewRx>(from_env->newrx.message.body);
    REQUIRE(e.allergy_or_adverse_event);
    CHECK(e.allergy_or_adverse_event->no_known_allergies == "Y");
  }

  TEST_CASE("an allergy that cannot be sent is named, and rules NoKnownAllergies out") {
    json env = json::parse(testing::ReadFixture("fhir/medication_request_lisinopril.json"));
    env["allergies"] = json::array(
        {json::parse(R"({"resourceType": "AllergyIntolerance", "category": ["medication"],
                         "patient": {"reference": "Patient/pat-delacroix"}})"),
         json::parse(kNoKnownAllergy), json::parse(R"({"resourceType": "AllergyIntolerance",
             "clinicalStatus": {"coding": [{"system":
                 "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                 "code": "resolved"}]},
             "code": {"text": "Latex"}, "patient": {"reference": "Patient/pat-delacroix"}})")});
    IssueList issues;
    auto out = Map(env.dump(), issues);
    ShowErrors(issues);
    RXFLOW_REQUIRE_OK(out);
    CHECK_FALSE(std::get<script::NewRx>(out->newrx.message.body).allergy_or_adverse_event);
    CHECK(out->xml.find("AllergyOrAdverseEvent") == std::string::npos);
    const Issue* no_code = issues.Find("allergies[0]");  // no `code`: nothing to name the drug
    REQUIRE(no_code);
    CHECK(no_code->severity == Severity::kWarning);
    CHECK(no_code->message.find("the allergy is not sent") != std::string::npos);
    const Issue* nka = issues.Find("allergies[1]");
    REQUIRE(nka);
    CHECK(nka->severity == Severity::kWarning);
    CHECK(nka->message.find("contradicts") != std::string::npos);
    const Issue* resolved = issues.Find("allergies[2].clinicalStatus");
    REQUIRE(resolved);
    CHECK(resolved->severity == Severity::kWarning);
  }

  TEST_CASE("a measurement SCRIPT cannot carry is named, another patient's is refused") {
    json env = json::parse(testing::ReadFixture("fhir/medication_request_lisinopril.json"));
    env["observations"] = json::array({json::parse(R"({"resourceType": "Observation",
        "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/pat-delacroix"}, "effectiveDateTime": "2026-11-18",
        "valueQuantity": {"value": 160, "unit": "lb"}})")});
    IssueList issues;
    auto out = Map(env.dump(), issues);
    ShowErrors(issues);
    RXFLOW_REQUIRE_OK(out);
    CHECK_FALSE(std::get<script::NewRx>(out->newrx.message.body).observation);
    const Issue* unit = issues.Find("observations[0].valueQuantity");
    REQUIRE(unit);
    CHECK(unit->severity == Severity::kWarning);
    CHECK(unit->message.find("UCUM") != std::string::npos);

    env["observations"][0]["subject"]["reference"] = "Patient/someone-else";
    IssueList other;
    CHECK_FALSE(Map(env.dump(), other).ok());
    const Issue* refused = other.Find("observations[0].subject.reference");
    REQUIRE(refused);
    CHECK(refused->severity == Severity::kError);
  }
}

// ---- Coverage ⇄ BenefitsCoordination ------------------------------------------------------

namespace {

constexpr std::string_view kCoverageClassSystem =
    "http://terminology.hl7.org/CodeSystem/coverage-class";
constexpr std::string_view kRelationshipSystem =
    "http://terminology.hl7.org/CodeSystem/subscriber-relationship";
constexpr std::string_view kPayerTypeSystem = "https://rxflow.dev/fhir/CodeSystem/ncpdp-payer-type";

TransformOptions Options2017() {
  TransformOptions o;
  o.version = script::Version::k2017071;
  o.newrx.message_id = "M1";
  o.newrx.sent_time = "2026-11-26T10:00:00Z";
  return o;
}

// The entries of a Bundle whose resource is of `type`, in entry order.
json EntriesOf(const json& bundle, const std::string& type) {
  json out = json::array();
  for (const json& e : bundle["entry"]) {
    if (e["resource"]["resourceType"] == type) out.push_back(e);
  }
  return out;
}

// The resource a reference names by its fullUrl (null when none does).
json Named(const json& bundle, const json& reference) {
  for (const json& e : bundle["entry"]) {
    if (e["fullUrl"] == reference["reference"]) return e["resource"];
  }
  return nullptr;
}

// The code of the first coding of `cc` in `system` ("" when none).
std::string CodeIn(const json& cc, std::string_view system) {
  for (const json& c : cc.value("coding", json::array())) {
    if (c.value("system", "") == system) return c.value("code", "");
  }
  return "";
}

// The value of the identifier of `resource` in `system` ("" when none).
std::string IdentifierIn(const json& resource, std::string_view system) {
  for (const json& i : resource.value("identifier", json::array())) {
    if (i.value("system", "") == system) return i.value("value", "");
  }
  return "";
}

// The Coverage's classes by coverage-class code: (value, name).
std::map<std::string, std::pair<std::string, std::string>> ClassesOf(const json& coverage) {
  std::map<std::string, std::pair<std::string, std::string>> out;
  for (const json& k : coverage.value("class", json::array())) {
    out[CodeIn(k["type"], kCoverageClassSystem)] = {k["value"].value("value", ""),
                                                    k.value("name", "")};
  }
  return out;
}

// The value of the RxFlow script-element extension naming `element` ("" when none).
std::string ScriptElementValue(const json& resource, const std::string& element) {
  for (const json& e : resource.value("extension", json::array())) {
    if (e["url"] != "https://rxflow.dev/fhir/StructureDefinition/script-element") continue;
    std::string name, value;
    for (const json& sub : e["extension"]) {
      if (sub["url"] == "element") name = sub["valueString"];
      if (sub["url"] == "value") value = sub["valueString"];
    }
    if (name == element) return value;
  }
  return "";
}

// An active insurance Coverage of the fixture's patient (Patient/p1).
json CoverageJson(const std::string& id, const std::string& member) {
  return {{"resourceType", "Coverage"},
          {"id", id},
          {"status", "active"},
          {"kind", "insurance"},
          {"subscriberId", json::array({{{"value", member}}})},
          {"beneficiary", {{"reference", "Patient/p1"}}}};
}

// bundle_transaction_practitionerrole.json (six entries) with `coverages` added as entries 6,
// 7, ... (each named in MedicationRequest.insurance when `named`), then a payer Organization
// (Organization/payer1).
json BundleWithCoverages(const std::vector<json>& coverages, bool named = true) {
  json b = json::parse(testing::ReadFixture("fhir/bundle_transaction_practitionerrole.json"));
  json& mr = b["entry"][0]["resource"];
  REQUIRE(mr["resourceType"] == "MedicationRequest");
  REQUIRE(b["entry"].size() == 6);
  for (const json& c : coverages) {
    const std::string id = c["id"];
    b["entry"].push_back({{"fullUrl", "http://example.org/fhir/Coverage/" + id}, {"resource", c}});
    if (named) mr["insurance"].push_back({{"reference", "Coverage/" + id}});
  }
  json payer = {
      {"resourceType", "Organization"},
      {"id", "payer1"},
      {"identifier",
       json::array({{{"system", "urn:rxflow:ncpdp:payer-id"}, {"value", "PAYER-77"}}})},
      {"name", "Acme Health"},
      {"contact",
       json::array(
           {{{"telecom", json::array({{{"system", "phone"}, {"value", "800-555-0199"}}})}}})}};
  b["entry"].push_back(
      {{"fullUrl", "http://example.org/fhir/Organization/payer1"}, {"resource", payer}});
  return b;
}

const script::NewRx& NewRxOf(const ScriptOutput& out) {
  return std::get<script::NewRx>(out.newrx.message.body);
}

}  // namespace

TEST_SUITE("Mapping: Coverage and BenefitsCoordination") {
  TEST_CASE("two BenefitsCoordination become two Coverages the MedicationRequest names") {
    IssueList issues;
    auto out = ToFhirJson(testing::ReadFixture("script/newrx_benefits_coordination.xml"), issues);
    RXFLOW_REQUIRE_OK(out);
    for (const Issue& i : issues) {  // nothing of them dropped
      CHECK_MESSAGE(i.path.find("BenefitsCoordination") == std::string::npos, ToString(i));
    }
    const json b = json::parse(*out);
    const json mr = EntriesOf(b, "MedicationRequest")[0]["resource"];
    const json coverages = EntriesOf(b, "Coverage");
    REQUIRE(coverages.size() == 2);
    REQUIRE(mr["insurance"].size() == 2);
    CHECK(mr["insurance"][0]["reference"] == coverages[0]["fullUrl"]);
    CHECK(mr["insurance"][1]["reference"] == coverages[1]["fullUrl"]);
    const json patient = {{"reference", EntriesOf(b, "Patient")[0]["fullUrl"]}};

    // The primary payer: the patient is the cardholder (PatientRelationship 1).
    const json first = coverages[0]["resource"];
    CHECK(first["status"] == "active");
    CHECK(first["kind"] == "insurance");
    CHECK(first["beneficiary"] == patient);
    CHECK(first["subscriber"] == patient);
    CHECK(first["subscriberId"][0]["value"] == "SHP44881200");
    CHECK(first["dependent"] == "001");
    CHECK(CodeIn(first["relationship"], kRelationshipSystem) == "self");
    CHECK(first["order"] == 1);  // PayerResponsibilityCode P
    CHECK(CodeIn(first["type"], kPayerTypeSystem) == "L");
    auto classes = ClassesOf(first);
    CHECK(classes.size() == 4);
    CHECK(classes["group"] ==
          std::pair<std::string, std::string>("GRP7741", "Synthetic Employers Trust"));
    CHECK(classes["rxbin"].first == "610999");
    CHECK(classes["rxpcn"].first == "SYNPCN01");
    CHECK(classes["rxid"].first == "PBM-44881200-01");
    CHECK_FALSE(first.contains("extension"));
    const json payer = Named(b, first["insurer"]);
    REQUIRE(payer.is_object());
    CHECK(payer["resourceType"] == "Organization");
    CHECK(payer["name"] == "Synthetic Health Plan");
    CHECK(IdentifierIn(payer, "urn:rxflow:ncpdp:payer-id") == "T00000000021234");
    CHECK(IdentifierIn(payer, "urn:oid:2.16.840.1.113883.6.300") == "99901");  // NAIC
    CHECK(CodeIn(payer["type"][0], "http://terminology.hl7.org/CodeSystem/organization-type") ==
          "pay");

    // The secondary payer: the patient is the cardholder's spouse.
    const json second = coverages[1]["resource"];
    CHECK(second["beneficiary"] == patient);
    CHECK(second["subscriber"] == json{{"display", "Mr Julien Paul Delacroix Jr"}});
    CHECK(second["subscriberId"][0]["value"] == "SSM90012200");
    CHECK(CodeIn(second["relationship"], kRelationshipSystem) == "spouse");
    CHECK(second["dependent"] == "02");
    CHECK_FALSE(second.contains("order"));  // U has no order
    CHECK_FALSE(second.contains("class"));  // no GroupID, BIN, PCN or PBM member id
    CHECK(CodeIn(second["type"], kPayerTypeSystem) == "ZZ");
    CHECK(ScriptElementValue(second, "PayerResponsibilityCode") == "U");
    CHECK(ScriptElementValue(second, "GroupName") == "Spouse plan without group id");
    CHECK(ScriptElementValue(second, "CardHolderName/LastName") == "Delacroix");
    CHECK(ScriptElementValue(second, "CardHolderName/Prefix") == "Mr");
    CHECK(ScriptElementValue(second, "ResponsibleParty/FirstName") == "Julien");
    const json payer2 = Named(b, second["insurer"]);
    REQUIRE(payer2.is_object());
    CHECK(payer2["name"] == "Second Synthetic Mutual");
    CHECK(IdentifierIn(payer2, "urn:rxflow:ncpdp:payer-mutually-defined") == "SECPAYER-77");
    CHECK(IdentifierIn(payer2, "urn:rxflow:ncpdp:standard-unique-health-plan-identifier") ==
          "7000000001");
    CHECK(payer2["contact"][0]["address"]["city"] == "Hartford");
    CHECK(payer2["contact"][0]["telecom"].size() == 2);
  }

  TEST_CASE("a Coverage becomes a BenefitsCoordination, its elements in the schema's order") {
    auto klass = [](const std::string& code, const std::string& value) {
      return json{
          {"type", {{"coding", json::array({{{"system", kCoverageClassSystem}, {"code", code}}})}}},
          {"value", {{"value", value}}}};
    };
    json cov = CoverageJson("cov1", "MEM-1001");
    cov["type"] = {{"coding", json::array({{{"system", kPayerTypeSystem}, {"code", "B"}}})}};
    cov["subscriber"] = {{"reference", "Patient/p1"}};
    cov["dependent"] = "01";
    cov["relationship"] = {
        {"coding", json::array({{{"system", kRelationshipSystem}, {"code", "self"}}})}};
    cov["insurer"] = {{"reference", "Organization/payer1"}};
    json group = klass("group", "GRP-12");
    group["name"] = "Acme Employees";
    cov["class"] = json::array(
        {klass("rxid", "RXID-9"), klass("rxpcn", "PCN77"), group, klass("rxbin", "004336")});
    cov["order"] = 2;
    IssueList issues;
    auto out = ToScript(BundleWithCoverages({cov}).dump(), issues, Options2017());
    for (const Issue& i : issues) {
      if (i.severity == Severity::kError) MESSAGE(ToString(i));
      // Nothing of the Coverage (entry 6) or its insurer (entry 7) is left out.
      CHECK_MESSAGE(i.path.rfind("Bundle.entry[6]", 0) != 0, ToString(i));
      CHECK_MESSAGE(i.path.rfind("Bundle.entry[7]", 0) != 0, ToString(i));
    }
    RXFLOW_REQUIRE_OK(out);
    REQUIRE(NewRxOf(*out).benefits_coordination.size() == 1);
    const script::BenefitsCoordination& bc = NewRxOf(*out).benefits_coordination[0];
    CHECK(bc.payer_id == "PAYER-77");
    CHECK(bc.payer_name == "Acme Health");
    CHECK(bc.iin_number == "004336");
    CHECK(bc.processor_identification_number == "PCN77");
    CHECK(bc.cardholder_id == "MEM-1001");
    CHECK(bc.group_id == "GRP-12");
    CHECK(bc.group_name == "Acme Employees");
    CHECK(bc.payer_responsibility_code == "S");  // order 2
    CHECK(bc.patient_relationship == "1");
    CHECK(bc.person_code == "01");
    CHECK(bc.pbm_member_id == "RXID-9");
    CHECK(bc.payer_type == "B");
    REQUIRE(bc.communication_numbers.has_value());
    CHECK(bc.communication_numbers->primary_telephone->number == "8005550199");
    CHECK_FALSE(bc.cardholder_name.has_value());
    // In the XML: BenefitsCoordinationRestricted's order, before the Patient.
    const std::string& x = out->xml;
    size_t at = x.find("<BenefitsCoordination>");
    REQUIRE(at != std::string::npos);
    for (const char* tag :
         {"<PayerIdentification>", "<PayerID>PAYER-77</PayerID>",
          "<ProcessorIdentificationNumber>PCN77</ProcessorIdentificationNumber>",
          "<IINNumber>004336</IINNumber>", "</PayerIdentification>",
          "<PayerName>Acme Health</PayerName>", "<CardholderID>MEM-1001</CardholderID>",
          "<GroupID>GRP-12</GroupID>", "<PayerResponsibilityCode>S</PayerResponsibilityCode>",
          "<PatientRelationship>1</PatientRelationship>", "<PersonCode>01</PersonCode>",
          "<GroupName>Acme Employees</GroupName>", "<CommunicationNumbers>",
          "<PBMMemberID>RXID-9</PBMMemberID>", "<PayerType>B</PayerType>",
          "</BenefitsCoordination>", "<Patient>"}) {
      const size_t next = x.find(tag, at);
      CHECK_MESSAGE(next != std::string::npos, tag << ": missing, or out of order");
      if (next != std::string::npos) at = next;
    }
    CHECK(x.find("<BenefitsCoordination>", x.find("</BenefitsCoordination>")) == std::string::npos);
  }

  TEST_CASE("five Coverages: four are sent, in order, and the fifth is named by its path") {
    std::vector<json> coverages;
    for (int i = 1; i <= 5; ++i) {
      coverages.push_back(CoverageJson("cov" + std::to_string(i), "MEM-" + std::to_string(i)));
    }
    IssueList issues;
    auto out = ToScript(BundleWithCoverages(coverages).dump(), issues, Options2017());
    RXFLOW_REQUIRE_OK(out);
    const auto& benefits = NewRxOf(*out).benefits_coordination;
    REQUIRE(benefits.size() == 4);
    for (size_t i = 0; i < benefits.size(); ++i) {
      CHECK(benefits[i].cardholder_id == "MEM-" + std::to_string(i + 1));
    }
    const Issue* fifth = issues.Find("Bundle.entry[10].resource");  // Coverage/cov5
    REQUIRE(fifth != nullptr);
    CHECK(fifth->severity == Severity::kWarning);
    CHECK(fifth->message.find("at most four BenefitsCoordination") != std::string::npos);
    for (int i = 6; i < 10; ++i) {
      CHECK(issues.Find("Bundle.entry[" + std::to_string(i) + "].resource") == nullptr);
    }
    size_t sent = 0;
    for (size_t at = out->xml.find("<BenefitsCoordination>"); at != std::string::npos;
         at = out->xml.find("<BenefitsCoordination>", at + 1)) {
      ++sent;
    }
    CHECK(sent == 4);
  }

  TEST_CASE("Coverages that are not sent are named: status, beneficiary, CancelRx") {
    json cancelled = CoverageJson("cov1", "MEM-1");
    cancelled["status"] = "cancelled";
    json other_patient = CoverageJson("cov2", "MEM-2");
    other_patient["beneficiary"] = {{"reference", "Patient/someone-else"}};
    json unnamed = CoverageJson("cov3", "MEM-3");  // of Patient/p1: sent
    json b = BundleWithCoverages({cancelled, other_patient, unnamed}, /*named=*/false);
    b["entry"][0]["resource"]["insurance"] = json::array({{{"reference", "Coverage/cov1"}}});
    IssueList issues;
    auto out = ToScript(b.dump(), issues, Options2017());
    RXFLOW_REQUIRE_OK(out);
    const auto& benefits = NewRxOf(*out).benefits_coordination;
    REQUIRE(benefits.size() == 1);
    CHECK(benefits[0].cardholder_id == "MEM-3");
    const Issue* status = issues.Find("Bundle.entry[6].resource.status");
    REQUIRE(status != nullptr);
    CHECK(status->severity == Severity::kWarning);
    const Issue* beneficiary = issues.Find("Bundle.entry[7].resource.beneficiary");
    REQUIRE(beneficiary != nullptr);
    CHECK(beneficiary->severity == Severity::kWarning);

    // A CancelRx carries no BenefitsCoordination: the Coverage is named as not sent.
    json cancel = BundleWithCoverages({CoverageJson("cov1", "MEM-1")});
    cancel["entry"][0]["resource"]["status"] = "cancelled";
    IssueList cancel_issues;
    auto c = ToScript(cancel.dump(), cancel_issues, Options2017(), "M0");
    RXFLOW_REQUIRE_OK(c);
    CHECK(std::holds_alternative<script::CancelRx>(c->newrx.message.body));
    const Issue* dropped = cancel_issues.Find("Bundle.entry[6].resource");
    REQUIRE(dropped != nullptr);
    CHECK(dropped->message == "a CancelRx carries no BenefitsCoordination: not sent");
  }

  TEST_CASE("a too long payer name is refused, never truncated") {
    json cov = CoverageJson("cov1", "MEM-1");
    cov["insurer"] = {{"display", std::string(71, 'P')}};
    IssueList issues;
    auto out = ToScript(BundleWithCoverages({cov}).dump(), issues, Options2017());
    CHECK(out.status().code() == absl::StatusCode::kInvalidArgument);
    const Issue* i = issues.Find("Bundle.entry[6].resource.insurer.display");
    REQUIRE(i != nullptr);
    CHECK(i->code == IssueCode::kTooLong);
  }
}

TEST_SUITE("Mapping: NewRx Supervisor") {
  // A Supervisor/NonVeterinarian, compact as the writer writes it, placed in schema order
  // (after MedicationPrescribed, before ProhibitRenewalRequest and the rest).
  const std::string kSupervisorPlain =
      "<Supervisor><NonVeterinarian><Identification><StateLicenseNumber>0101299881"
      "</StateLicenseNumber><DEANumber>BW1234563</DEANumber><NPI>1497758544</NPI>"
      "</Identification><Name><LastName>Whitfield</LastName><FirstName>Harold</FirstName>"
      "</Name><Address><AddressLine1>120 Medical Pkwy</AddressLine1><City>Richmond</City>"
      "<StateProvince>VA</StateProvince><PostalCode>23226</PostalCode>"
      "<CountryCode>US</CountryCode></Address><CommunicationNumbers><PrimaryTelephone>"
      "<Number>8045550177</Number></PrimaryTelephone></CommunicationNumbers>"
      "</NonVeterinarian></Supervisor>";
  // With every part the prescriber's mapping carries (Specialty, PracticeLocation, a full
  // name, a second address line, a fax).
  const std::string kSupervisorFull =
      "<Supervisor><NonVeterinarian><Identification><StateLicenseNumber>0101299881"
      "</StateLicenseNumber><DEANumber>BW1234563</DEANumber><NPI>1497758544</NPI>"
      "</Identification><Specialty>207Q00000X</Specialty><PracticeLocation><BusinessName>"
      "Westover Supervising Physicians</BusinessName></PracticeLocation><Name><LastName>"
      "Whitfield</LastName><FirstName>Harold</FirstName><MiddleName>James</MiddleName>"
      "<Suffix>MD</Suffix><Prefix>Dr.</Prefix></Name><Address><AddressLine1>120 Medical Pkwy"
      "</AddressLine1><AddressLine2>Suite 5</AddressLine2><City>Richmond</City><StateProvince>"
      "VA</StateProvince><PostalCode>23226</PostalCode><CountryCode>US</CountryCode></Address>"
      "<CommunicationNumbers><PrimaryTelephone><Number>8045550177</Number></PrimaryTelephone>"
      "<Fax><Number>8045550178</Number></Fax></CommunicationNumbers></NonVeterinarian>"
      "</Supervisor>";

  std::string WithSupervisor(const std::string& supervisor) {
    std::string xml = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
    const std::string after = "</MedicationPrescribed>";
    size_t at = xml.find(after);
    REQUIRE(at != std::string::npos);
    xml.insert(at + after.size(), supervisor);
    return xml;
  }
  std::string Subtree(const std::string& xml, const std::string& name) {
    size_t from = xml.find("<" + name + ">");
    size_t to = xml.find("</" + name + ">");
    if (from == std::string::npos || to == std::string::npos) return {};
    return xml.substr(from, to + name.size() + 3 - from);
  }
  void ShowProblems(const IssueList& issues) {
    for (const Issue& i : issues) {
      if (i.severity == Severity::kError || i.severity == Severity::kFatal) MESSAGE(ToString(i));
    }
  }
  const json* EntryByUrl(const json& bundle, const std::string& url) {
    for (const json& e : bundle["entry"]) {
      if (e.value("fullUrl", "") == url) return &e["resource"];
    }
    return nullptr;
  }

  TEST_CASE("a Supervisor becomes a Practitioner the MedicationRequest names in an extension") {
    TransformOptions o;
    o.version = script::Version::k2017071;
    IssueList issues;
    auto fhir_json = ToFhirJson(WithSupervisor(kSupervisorPlain), issues, o);
    ShowProblems(issues);
    RXFLOW_REQUIRE_OK(fhir_json);
    for (const Issue& i : issues) {
      CAPTURE(ToString(i));
      CHECK(i.path.find("Supervisor") == std::string::npos);  // nothing of it dropped
    }
    const json b = json::parse(*fhir_json);
    const json* mr = nullptr;
    for (const json& e : b["entry"]) {
      if (e["resource"]["resourceType"] == "MedicationRequest") mr = &e["resource"];
    }
    REQUIRE(mr != nullptr);
    std::string ref;
    for (const json& ext : mr->value("extension", json::array())) {
      if (ext["url"] == mapping::kSupervisorExtension) {
        ref = ext["valueReference"]["reference"].get<std::string>();
      }
    }
    REQUIRE_FALSE(ref.empty());
    const json* pr = EntryByUrl(b, ref);
    REQUIRE(pr != nullptr);
    CHECK((*pr)["resourceType"] == "Practitioner");
    bool npi = false;
    for (const json& id : (*pr)["identifier"]) {
      if (id.value("system", "") == "http://hl7.org/fhir/sid/us-npi" &&
          id.value("value", "") == "1497758544") {
        npi = true;
      }
    }
    CHECK(npi);
    CHECK((*pr)["name"][0]["family"] == "Whitfield");
    CHECK((*pr)["name"][0]["given"][0] == "Harold");
    // The supervisor is neither the requester nor the recorder.
    CHECK(mr->value("requester", json::object()).value("reference", "") != ref);
  }

  TEST_CASE("a Supervisor comes back from FHIR unchanged (2017071)") {
    for (const std::string& supervisor : {kSupervisorPlain, kSupervisorFull}) {
      CAPTURE(supervisor);
      TransformOptions o;
      o.version = script::Version::k2017071;
      IssueList issues;
      auto fhir_json = ToFhirJson(WithSupervisor(supervisor), issues, o);
      ShowProblems(issues);
      RXFLOW_REQUIRE_OK(fhir_json);
      o.newrx.message_id = "again";
      o.newrx.sent_time = "2026-11-30T10:00:00Z";
      IssueList back;
      auto again = ToScript(*fhir_json, back, o);
      ShowProblems(back);
      RXFLOW_REQUIRE_OK(again);
      for (const Issue& i : back) {
        CAPTURE(ToString(i));
        CHECK(i.message.find("Supervisor") == std::string::npos);
      }
      CHECK(Subtree(again->xml, "Supervisor") == supervisor);
      // In schema order: after MedicationPrescribed.
      CHECK(again->xml.find("</MedicationPrescribed><Supervisor>") != std::string::npos);
    }
  }

  TEST_CASE("a supervisor reference that does not resolve is named, the NewRx still goes") {
    json in = json::parse(testing::ReadFixture("fhir/medication_request_lisinopril.json"));
    json& ext = in["medication_request"]["extension"];
    if (ext.is_null()) ext = json::array();
    ext.push_back({{"url", std::string(mapping::kSupervisorExtension)},
                   {"valueReference", {{"reference", "Practitioner/nowhere"}}}});
    const std::string path =
        "medication_request.extension[" + std::to_string(ext.size() - 1) + "].valueReference";
    IssueList issues;
    auto out = Map(in.dump(), issues);
    ShowProblems(issues);
    RXFLOW_REQUIRE_OK(out);
    const Issue* i = issues.Find(path);
    REQUIRE(i != nullptr);
    CHECK(i->severity == Severity::kWarning);
    CHECK(i->message.find("not sent") != std::string::npos);
    const auto& n = std::get<script::NewRx>(out->newrx.message.body);
    CHECK_FALSE(n.supervisor);
    CHECK(out->xml.find("<Supervisor>") == std::string::npos);
  }

  TEST_CASE("a supervisor without an address or a phone is a warning, not an error") {
    json in = json::parse(testing::ReadFixture("fhir/medication_request_lisinopril.json"));
    json& contained = in["medication_request"]["contained"];
    if (contained.is_null()) contained = json::array();
    contained.push_back(json::parse(R"({"resourceType": "Practitioner", "id": "sup",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1497758544"}],
        "name": [{"family": "Whitfield", "given": ["Harold"]}]})"));
    json& ext = in["medication_request"]["extension"];
    if (ext.is_null()) ext = json::array();
    ext.push_back({{"url", std::string(mapping::kSupervisorExtension)},
                   {"valueReference", {{"reference", "#sup"}}}});
    IssueList issues;
    auto out = Map(in.dump(), issues);
    ShowProblems(issues);
    RXFLOW_REQUIRE_OK(out);
    const std::string mr_path =
        "medication_request.extension[" + std::to_string(ext.size() - 1) + "].valueReference";
    REQUIRE(issues.Find(mr_path) != nullptr);
    CHECK(issues.Find(mr_path)->severity == Severity::kWarning);
    const std::string sup =
        "medication_request.contained[" + std::to_string(contained.size() - 1) + "]";
    const Issue* address = issues.Find(sup + ".address");
    REQUIRE(address != nullptr);
    CHECK(address->severity == Severity::kWarning);
    CHECK_FALSE(std::get<script::NewRx>(out->newrx.message.body).supervisor);
  }
}

namespace {

// A NewRx Facility with an identifier of each system kind (NCPDP, NPI, DEA, state license typed
// SL, an RxFlow urn), a name, an address and two numbers, compact as the writer sends it.
constexpr std::string_view kFacilityXml =
    "<Facility>"
    "<Identification>"
    "<NCPDPID>7701234</NCPDPID>"
    "<StateLicenseNumber>LTC-IL-0912</StateLicenseNumber>"
    "<MedicareNumber>145512</MedicareNumber>"
    "<FacilityID>SUNNY-LTC-01</FacilityID>"
    "<DEANumber>FS1234563</DEANumber>"
    "<NPI>1699887760</NPI>"
    "</Identification>"
    "<FacilityName>Sunnyvale Care Center</FacilityName>"
    "<Address>"
    "<AddressLine1>400 Orchard Lane</AddressLine1>"
    "<AddressLine2>Building C</AddressLine2>"
    "<City>Springfield</City>"
    "<StateProvince>IL</StateProvince>"
    "<PostalCode>62704</PostalCode>"
    "<CountryCode>US</CountryCode>"
    "</Address>"
    "<CommunicationNumbers>"
    "<PrimaryTelephone><Number>2175550142</Number></PrimaryTelephone>"
    "<Fax><Number>2175550143</Number></Fax>"
    "</CommunicationNumbers>"
    "</Facility>";

// The lisinopril NewRx with kFacilityXml in its schema place: after BenefitsCoordination,
// before Patient.
std::string NewRxWithFacility() {
  return Replace(testing::ReadFixture("script/newrx_2017071_lisinopril.xml"), "<Patient>",
                 std::string(kFacilityXml) + "<Patient>");
}

// The <Facility> subtree of `xml` with the white space between tags removed ("" when none).
std::string FacilitySubtree(const std::string& xml) {
  const size_t begin = xml.find("<Facility>");
  const size_t end = xml.find("</Facility>");
  if (begin == std::string::npos || end == std::string::npos) return "";
  const std::string sub = xml.substr(begin, end + std::string_view("</Facility>").size() - begin);
  std::string out;
  for (size_t i = 0; i < sub.size(); ++i) {
    if (sub[i] == '>') {
      out += '>';
      size_t next = sub.find_first_not_of(" \t\r\n", i + 1);
      if (next != std::string::npos && sub[next] == '<') i = next - 1;
      continue;
    }
    out += sub[i];
  }
  return out;
}

}  // namespace

TEST_SUITE("Mapping: Facility and Location") {
  TEST_CASE("a NewRx Facility becomes a Location the MedicationRequest names") {
    IssueList issues;
    auto out = ToFhirJson(NewRxWithFacility(), issues, Options2017());
    RXFLOW_REQUIRE_OK(out);
    for (const Issue& i : issues) {  // nothing of it dropped
      CHECK_MESSAGE(i.path.find("/Facility") == std::string::npos, ToString(i));
    }
    const json b = json::parse(*out);
    const json locations = EntriesOf(b, "Location");
    REQUIRE(locations.size() == 1);
    const json mr = EntriesOf(b, "MedicationRequest")[0]["resource"];
    json facility_ref;
    for (const json& e : mr.value("extension", json::array())) {
      if (e["url"] == mapping::kFacilityExtension) facility_ref = e["valueReference"];
    }
    REQUIRE(facility_ref.is_object());
    CHECK(facility_ref["reference"] == locations[0]["fullUrl"]);
    const json loc = Named(b, facility_ref);
    REQUIRE(loc.is_object());
    CHECK(loc["resourceType"] == "Location");
    CHECK(IdentifierIn(loc, mapping::kNcpdpId) == "7701234");
    CHECK(IdentifierIn(loc, mapping::kNpi) == "1699887760");
    CHECK(IdentifierIn(loc, mapping::kDeaOid) == "FS1234563");
    CHECK(IdentifierIn(loc, mapping::kFacilityMedicareNumberSystem) == "145512");
    CHECK(IdentifierIn(loc, mapping::kFacilityIdSystem) == "SUNNY-LTC-01");
    bool state_license = false;
    for (const json& i : loc["identifier"]) {
      if (i.contains("type") && CodeIn(i["type"], mapping::kV2IdentifierType) == "SL") {
        state_license = i["value"] == "LTC-IL-0912";
      }
    }
    CHECK(state_license);
    CHECK(loc["identifier"].size() == 6);
    CHECK(loc["name"] == "Sunnyvale Care Center");
    CHECK(loc["address"]["line"] == json::array({"400 Orchard Lane", "Building C"}));
    CHECK(loc["address"]["city"] == "Springfield");
    CHECK(loc["address"]["state"] == "IL");
    CHECK(loc["address"]["postalCode"] == "62704");
    CHECK(loc["address"]["country"] == "US");
    REQUIRE(loc["contact"].size() == 1);
    const json telecom = loc["contact"][0]["telecom"];
    REQUIRE(telecom.size() == 2);
    CHECK(telecom[0]["system"] == "phone");
    CHECK(telecom[0]["value"] == "2175550142");
    CHECK(telecom[1]["system"] == "fax");
    CHECK(telecom[1]["value"] == "2175550143");
    CHECK_FALSE(loc.contains("telecom"));  // R4's element: R5 has contact
  }

  TEST_CASE("SCRIPT → FHIR → SCRIPT keeps the Facility subtree byte for byte") {
    const std::string xml = NewRxWithFacility();
    IssueList to_fhir_issues;
    auto fhir_json = ToFhirJson(xml, to_fhir_issues, Options2017());
    RXFLOW_REQUIRE_OK(fhir_json);
    IssueList back_issues;
    auto again = ToScript(*fhir_json, back_issues, Options2017());
    for (const Issue& i : back_issues) {
      if (i.severity == Severity::kError) MESSAGE(ToString(i));
      const bool about_facility = i.message.find("acility") != std::string::npos;
      CHECK_MESSAGE(!about_facility, ToString(i));
    }
    RXFLOW_REQUIRE_OK(again);
    REQUIRE(NewRxOf(*again).facility.has_value());
    CHECK(FacilitySubtree(again->xml) == kFacilityXml);
    CHECK(FacilitySubtree(xml) == kFacilityXml);
    // In its schema place: after BenefitsCoordination, before Patient.
    const size_t facility = again->xml.find("<Facility>");
    CHECK(again->xml.find("</BenefitsCoordination>") < facility);
    CHECK(facility < again->xml.find("<Patient>"));
  }

  TEST_CASE("an unresolvable facility reference is named at its path, the NewRx still goes") {
    json b = json::parse(testing::ReadFixture("fhir/bundle_transaction_practitionerrole.json"));
    json& mr = b["entry"][0]["resource"];
    REQUIRE(mr["resourceType"] == "MedicationRequest");
    const size_t at = mr.value("extension", json::array()).size();
    mr["extension"].push_back({{"url", std::string(mapping::kFacilityExtension)},
                               {"valueReference", {{"reference", "Location/nowhere"}}}});
    IssueList issues;
    auto out = ToScript(b.dump(), issues, Options2017());
    RXFLOW_REQUIRE_OK(out);
    CHECK_FALSE(NewRxOf(*out).facility.has_value());
    CHECK(out->xml.find("<Facility>") == std::string::npos);
    const Issue* i = issues.Find("Bundle.entry[0].resource.extension[" + std::to_string(at) +
                                 "].valueReference.reference");
    REQUIRE(i != nullptr);
    CHECK(i->severity == Severity::kWarning);
    CHECK(i->message.find("Location/nowhere") != std::string::npos);
    CHECK(i->message.find("no Facility sent") != std::string::npos);
  }

  TEST_CASE("a contained Location is sent as the Facility, an Organization target is not") {
    json b = json::parse(testing::ReadFixture("fhir/bundle_transaction_practitionerrole.json"));
    json& mr = b["entry"][0]["resource"];
    mr["contained"].push_back(
        {{"resourceType", "Location"},
         {"id", "fac"},
         {"identifier", json::array({{{"system", std::string(mapping::kFacilityHinSystem)},
                                      {"value", "HIN-0042"}}})},
         {"name", "Maple Ridge Assisted Living"},
         {"type", json::array({{{"text", "assisted living"}}})}});
    const size_t at = mr.value("extension", json::array()).size();
    mr["extension"].push_back({{"url", std::string(mapping::kFacilityExtension)},
                               {"valueReference", {{"reference", "#fac"}}}});
    mr["extension"].push_back(
        {{"url", std::string(mapping::kFacilityExtension)},
         {"valueReference", {{"reference", b["entry"][4]["fullUrl"]}}}});  // a second one
    IssueList issues;
    auto out = ToScript(b.dump(), issues, Options2017());
    RXFLOW_REQUIRE_OK(out);
    const auto& f = NewRxOf(*out).facility;
    REQUIRE(f.has_value());
    CHECK(f->identification.hin == "HIN-0042");
    CHECK(f->facility_name == "Maple Ridge Assisted Living");
    CHECK(out->xml.find("<Facility><Identification><HIN>HIN-0042</HIN></Identification>"
                        "<FacilityName>Maple Ridge Assisted Living</FacilityName></Facility>") !=
          std::string::npos);
    const Issue* type = issues.Find("Bundle.entry[0].resource.contained[" +
                                    std::to_string(mr["contained"].size() - 1) + "].type[0]");
    REQUIRE(type != nullptr);
    CHECK(type->severity == Severity::kWarning);
    const Issue* second =
        issues.Find("Bundle.entry[0].resource.extension[" + std::to_string(at + 1) + "]");
    REQUIRE(second != nullptr);
    CHECK(second->message.find("SCRIPT carries one Facility") != std::string::npos);
  }
}

namespace {

// A 2017071 NewRx for a three-ingredient compound (ketamine C-III by NDC, Neurontin by RxNorm
// SBD with its own Strength, Lipoderm base by UPC, quantity sufficient) with the REMS elements.
constexpr std::string_view kCompoundFixture = "script/newrx_compound_rems.xml";

// The subtree <name>…</name> of `xml` (its first) with the white space between tags removed
// ("" when none).
std::string CompactSubtree(const std::string& xml, const std::string& name) {
  const size_t begin = xml.find("<" + name + ">");
  const size_t end = xml.find("</" + name + ">");
  if (begin == std::string::npos || end == std::string::npos) return "";
  const std::string sub = xml.substr(begin, end + name.size() + 3 - begin);
  std::string out;
  for (size_t i = 0; i < sub.size(); ++i) {
    out += sub[i];
    if (sub[i] != '>') continue;
    size_t next = sub.find_first_not_of(" \t\r\n", i + 1);
    if (next != std::string::npos && sub[next] == '<') i = next - 1;
  }
  return out;
}

void ShowErrors(const IssueList& issues) {
  for (const Issue& i : issues) {
    if (i.severity == Severity::kError || i.severity == Severity::kFatal) MESSAGE(ToString(i));
  }
}

// The lisinopril envelope turned into a compound written as FHIR R5 writes one: the
// MedicationRequest names the drug by text, and a Medication with no code gives the dose form
// (NCI) and the ingredients with their amounts (strengthQuantity): hydrocortisone by NDC,
// ketoconazole by RxNorm (a display, no text), Cetaphil cream quantity sufficient (QS).
json CompoundEnvelope() {
  json in = json::parse(testing::ReadFixture("fhir/medication_request_lisinopril.json"));
  json& mr = in["medication_request"];
  mr["medication"] = {
      {"concept", {{"text", "Hydrocortisone 1% / ketoconazole 2% in Cetaphil cream"}}}};
  mr["dosageInstruction"] = json::array({{{"text", "Apply a thin layer twice daily"}}});
  mr["dispenseRequest"]["quantity"] = {
      {"value", 30}, {"unit", "g"}, {"system", "http://unitsofmeasure.org"}, {"code", "g"}};
  in["medication"] = json::parse(R"({"resourceType": "Medication", "id": "cream",
      "doseForm": {"coding": [{"system": "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl#",
                               "code": "C28944"}]},
      "ingredient": [
        {"item": {"concept": {"coding": [{"system": "http://hl7.org/fhir/sid/ndc",
                                          "code": "0409-1234-01"}],
                              "text": "Hydrocortisone powder USP"}},
         "strengthQuantity": {"value": 0.3, "system": "http://unitsofmeasure.org", "code": "g"}},
        {"item": {"concept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                          "code": "6135", "display": "ketoconazole powder"}]}},
         "strengthQuantity": {"value": 0.6, "system": "http://unitsofmeasure.org", "code": "g"}},
        {"extension": [{"url": "https://rxflow.dev/fhir/StructureDefinition/script-element",
                        "extension": [{"url": "element",
                                       "valueString": "Quantity/CodeListQualifier"},
                                      {"url": "value", "valueString": "QS"}]}],
         "item": {"concept": {"text": "Cetaphil cream"}},
         "strengthQuantity": {"value": 30, "system": "http://unitsofmeasure.org", "code": "g"}}
      ]})");
  return in;
}

}  // namespace

TEST_SUITE("Mapping: compounds and REMS") {
  TEST_CASE("a compound ingredient's ItemNumber: the system by its qualifier, and back") {
    CHECK(mapping::ItemNumberSystem("ND", "00409123401") == mapping::kNdc);
    CHECK(mapping::ItemNumberSystem("ND", "0409-1234-01") == "urn:rxflow:ncpdp:product-code:ND");
    CHECK(mapping::ItemNumberSystem("SBD", "105029") == mapping::kRxNorm);
    CHECK(mapping::ItemNumberSystem("UN", "WI4X0X7BPJ") == mapping::kUnii);
    CHECK(mapping::ItemNumberSystem("GPI", "90150030002900") ==
          "urn:rxflow:ncpdp:product-code:GPI");
    CHECK(mapping::ProductCodeQualifierOf("urn:rxflow:ncpdp:product-code:GPI") == "GPI");
    CHECK(mapping::ProductCodeQualifierOf("urn:rxflow:ncpdp:product-code:ND") == "ND");
    CHECK(mapping::ProductCodeQualifierOf("urn:rxflow:ncpdp:product-code:XX").empty());
    CHECK(mapping::ProductCodeQualifierOf(mapping::kNdc).empty());
  }

  TEST_CASE("CompoundInformation becomes the Medication's doseForm and ingredients") {
    IssueList issues;
    auto out =
        ToFhirJson(testing::ReadFixture(std::string(kCompoundFixture)), issues, Options2017());
    ShowErrors(issues);
    RXFLOW_REQUIRE_OK(out);
    for (const Issue& i : issues) {  // nothing of the compound or of the REMS elements dropped
      CHECK_MESSAGE(i.path.find("Compound") == std::string::npos, ToString(i));
      CHECK_MESSAGE(i.path.find("REMS") == std::string::npos, ToString(i));
    }
    const json b = json::parse(*out);
    const json meds = EntriesOf(b, "Medication");
    REQUIRE(meds.size() == 1);
    const json med = meds[0]["resource"];
    const json mr = EntriesOf(b, "MedicationRequest")[0]["resource"];
    CHECK(mr["medication"]["reference"]["reference"] == meds[0]["fullUrl"]);
    CHECK(med["code"] ==
          json{{"text", "Ketamine 10% / gabapentin 6% in Lipoderm base (compounded cream)"}});
    CHECK(med["extension"] == json::array({{{"url", std::string(mapping::kCompoundExtension)},
                                            {"valueBoolean", true}}}));
    CHECK(CodeIn(med["doseForm"], mapping::kNci) == "C28944");
    const json& ing = med["ingredient"];
    REQUIRE(ing.size() == 3);
    // Ketamine: an NDC, its DEA schedule, 3 g; isActive is not set.
    CHECK(ing[0]["item"]["concept"]["text"] == "Ketamine hydrochloride powder USP");
    CHECK(CodeIn(ing[0]["item"]["concept"], mapping::kNdc) == "38779246109");
    CHECK(ing[0]["extension"] == json::array({{{"url", std::string(mapping::kDeaScheduleExtension)},
                                               {"valueCode", "CIII"}}}));
    CHECK(ing[0]["strengthQuantity"] == json{{"value", 3},
                                             {"unit", "Gram"},
                                             {"system", std::string(mapping::kNci)},
                                             {"code", "C48155"}});
    CHECK_FALSE(ing[0].contains("isActive"));
    CHECK_FALSE(ing[0].contains("strengthRatio"));
    // Neurontin: RxNorm, its term type and its own Strength in script-element extensions.
    CHECK(ing[1]["item"]["concept"]["text"] == "Neurontin 300 MG Oral Capsule (contents)");
    CHECK(CodeIn(ing[1]["item"]["concept"], mapping::kRxNorm) == "105029");
    CHECK(ScriptElementValue(ing[1], "CompoundIngredient/ItemNumber/Qualifier") == "SBD");
    CHECK(ScriptElementValue(ing[1], "CompoundIngredient/Strength/StrengthValue") == "300");
    CHECK(ScriptElementValue(ing[1], "CompoundIngredient/Strength/StrengthForm/Code") == "C25158");
    CHECK(ScriptElementValue(ing[1], "CompoundIngredient/Strength/StrengthUnitOfMeasure/Code") ==
          "C28253");
    CHECK(ing[1]["strengthQuantity"]["value"] == 6);
    CHECK(ing[1]["strengthQuantity"]["code"] == "C48480");
    // Lipoderm: a UPC in RxFlow's product-code system; quantity sufficient (QS) to 30 g. The
    // other two have CodeListQualifier 38, which is not written.
    CHECK(CodeIn(ing[2]["item"]["concept"], "urn:rxflow:ncpdp:product-code:UP") == "300450449108");
    CHECK(ScriptElementValue(ing[2], "Quantity/CodeListQualifier") == "QS");
    CHECK(ScriptElementValue(ing[0], "Quantity/CodeListQualifier").empty());
    CHECK(ing[2]["strengthQuantity"]["value"] == 30);

    // REMS: script-element extensions on the MedicationRequest; the patient's and the
    // prescriber's ids as identifiers.
    CHECK(ScriptElementValue(mr, "PrescriberCheckedREMS") == "A");
    CHECK(ScriptElementValue(mr, "REMSPatientRiskCategory") == "Standard risk");
    CHECK(ScriptElementValue(mr, "REMSAuthorizationNumber") == "RA-20261120-0042");
    CHECK(IdentifierIn(EntriesOf(b, "Patient")[0]["resource"], mapping::kRemsPatientIdSystem) ==
          "RP-5508213");
    CHECK(IdentifierIn(EntriesOf(b, "Practitioner")[0]["resource"],
                       mapping::kRemsProviderEnrollmentSystem) == "RE-0093317");
  }

  TEST_CASE("SCRIPT → FHIR → SCRIPT keeps the compound and the REMS elements") {
    const std::string xml = testing::ReadFixture(std::string(kCompoundFixture));
    IssueList to_fhir_issues;
    auto fhir_json = ToFhirJson(xml, to_fhir_issues, Options2017());
    RXFLOW_REQUIRE_OK(fhir_json);
    IssueList back_issues;
    auto again = ToScript(*fhir_json, back_issues, Options2017());
    ShowErrors(back_issues);
    RXFLOW_REQUIRE_OK(again);
    for (const Issue& i : back_issues) {
      CHECK_MESSAGE(i.path.find("ingredient") == std::string::npos, ToString(i));
      CHECK_MESSAGE(i.message.find("Compound") == std::string::npos, ToString(i));
      CHECK_MESSAGE(i.message.find("REMS") == std::string::npos, ToString(i));
    }
    const std::string compound = CompactSubtree(xml, "CompoundInformation");
    CHECK(compound.size() > 1000);  // the three ingredients
    CHECK(CompactSubtree(again->xml, "CompoundInformation") == compound);
    for (const char* name :
         {"PrescriberCheckedREMS", "REMSPatientRiskCategory", "REMSAuthorizationNumber",
          "REMSPatientID", "REMSHealthcareProviderEnrollmentID"}) {
      CAPTURE(name);
      CHECK_FALSE(CompactSubtree(xml, name).empty());
      CHECK(CompactSubtree(again->xml, name) == CompactSubtree(xml, name));
    }
    // In the schema's order: the REMS elements after the Sig, CompoundInformation after them.
    CHECK(again->xml.find("</Sig>") < again->xml.find("<PrescriberCheckedREMS>"));
    CHECK(again->xml.find("</REMSAuthorizationNumber>") < again->xml.find("<CompoundInformation>"));
    // The ketamine (C-III) makes the compound a controlled prescription; SCRIPT keeps the
    // schedule on the ingredient (no DrugCoded/DEASchedule).
    CHECK(again->newrx.dea_schedule == "CIII");
    CHECK_FALSE(NewRxOf(*again).medication_prescribed.drug_coded.has_value());
  }

  TEST_CASE("a Medication without a code whose ingredients give their amounts is a compound") {
    IssueList issues;
    auto out = ToScript(CompoundEnvelope().dump(), issues, Options2017());
    ShowErrors(issues);
    RXFLOW_REQUIRE_OK(out);
    const script::Medication& m = NewRxOf(*out).medication_prescribed;
    CHECK(m.drug_description == "Hydrocortisone 1% / ketoconazole 2% in Cetaphil cream");
    CHECK_FALSE(m.drug_coded.has_value());
    REQUIRE(m.compound_information.has_value());
    const script::CompoundInformation& c = *m.compound_information;
    CHECK(c.final_compound_pharmaceutical_dosage_form == "C28944");
    REQUIRE(c.ingredients.size() == 3);
    REQUIRE(c.ingredients[0].compound_ingredient.has_value());
    CHECK(c.ingredients[0].compound_ingredient->item_description == "Hydrocortisone powder USP");
    REQUIRE(c.ingredients[0].compound_ingredient->item_number.has_value());
    CHECK(c.ingredients[0].compound_ingredient->item_number->code == "00409123401");  // 4-4-2
    CHECK(c.ingredients[0].compound_ingredient->item_number->qualifier == "ND");
    CHECK(c.ingredients[0].quantity.value == "0.3");
    CHECK(c.ingredients[0].quantity.code_list_qualifier == "38");
    CHECK(c.ingredients[0].quantity.unit_of_measure_code == "C48155");
    REQUIRE(c.ingredients[1].compound_ingredient.has_value());
    CHECK(c.ingredients[1].compound_ingredient->item_description == "ketoconazole powder");
    REQUIRE(c.ingredients[1].compound_ingredient->item_number.has_value());
    CHECK(c.ingredients[1].compound_ingredient->item_number->code == "6135");
    CHECK(c.ingredients[1].compound_ingredient->item_number->qualifier == "SCD");  // the option
    REQUIRE(c.ingredients[2].compound_ingredient.has_value());
    CHECK_FALSE(c.ingredients[2].compound_ingredient->item_number.has_value());
    CHECK(c.ingredients[2].quantity.value == "30");
    CHECK(c.ingredients[2].quantity.code_list_qualifier == "QS");
    CHECK(out->xml.find(
              "<CompoundInformation><FinalCompoundPharmaceuticalDosageForm>C28944"
              "</FinalCompoundPharmaceuticalDosageForm><CompoundIngredientsLotNotUsed>"
              "<CompoundIngredient><CompoundIngredientItemDescription>Hydrocortisone powder USP"
              "</CompoundIngredientItemDescription><ItemNumber><Code>00409123401</Code>"
              "<Qualifier>ND</Qualifier></ItemNumber></CompoundIngredient><Quantity><Value>0.3"
              "</Value><CodeListQualifier>38</CodeListQualifier><QuantityUnitOfMeasure><Code>"
              "C48155</Code></QuantityUnitOfMeasure></Quantity></CompoundIngredientsLotNotUsed>") !=
          std::string::npos);
    CHECK(out->newrx.dea_schedule.empty());

    // With a code and no compound extension, an ingredient's amount is not sent (named).
    json coded = CompoundEnvelope();
    coded["medication"]["code"] = {{"text", "Hydrocortisone / ketoconazole cream"}};
    issues.clear();
    out = ToScript(coded.dump(), issues, Options2017());
    RXFLOW_REQUIRE_OK(out);
    CHECK_FALSE(NewRxOf(*out).medication_prescribed.compound_information.has_value());
    const Issue* amount = issues.Find("medication.ingredient[0].strengthQuantity");
    REQUIRE(amount != nullptr);
    CHECK(amount->severity == Severity::kWarning);
    CHECK(amount->message.find("compound extension") != std::string::npos);
    REQUIRE(issues.Find("medication.ingredient[2].extension[0]") != nullptr);

    // RxFlow's compound extension makes it a compound whatever its code.
    coded["medication"]["extension"] =
        json::array({{{"url", std::string(mapping::kCompoundExtension)}, {"valueBoolean", true}}});
    issues.clear();
    out = ToScript(coded.dump(), issues, Options2017());
    RXFLOW_REQUIRE_OK(out);
    CHECK(NewRxOf(*out).medication_prescribed.compound_information.has_value());
    CHECK(issues.Find("medication.extension[0]") == nullptr);
  }

  TEST_CASE("an ingredient that lacks what SCRIPT needs is named, the NewRx goes without it") {
    json in = CompoundEnvelope();
    json& ing = in["medication"]["ingredient"];
    ing[1]["item"]["concept"]["coding"][0].erase("display");  // no description left
    ing[2]["strengthQuantity"]["code"] = "[drp]";             // no NCI code for drops
    in["medication"].erase("doseForm");
    IssueList issues;
    auto out = ToScript(in.dump(), issues, Options2017());
    ShowErrors(issues);
    RXFLOW_REQUIRE_OK(out);
    CHECK_FALSE(NewRxOf(*out).medication_prescribed.compound_information.has_value());
    CHECK(out->xml.find("CompoundInformation") == std::string::npos);
    for (const char* path :
         {"medication.ingredient[1].item.concept.text", "medication.ingredient[2].strengthQuantity",
          "medication.doseForm", "medication"}) {
      CAPTURE(path);
      const Issue* i = issues.Find(path);
      REQUIRE(i != nullptr);
      CHECK(i->severity == Severity::kWarning);
    }
    CHECK(issues.Find("medication.ingredient[1].item.concept.text")
              ->message.find("CompoundIngredientItemDescription") != std::string::npos);
    CHECK(issues.Find("medication.ingredient[2].strengthQuantity")->message.find("[drp]") !=
          std::string::npos);
    CHECK(issues.Find("medication")->message.find("CompoundInformation not sent") !=
          std::string::npos);
    CHECK(issues.Find("medication.ingredient[0]") == nullptr);  // complete, but not sent alone
  }

  TEST_CASE("a compound ingredient's NDC that is not one is an error at its code") {
    json in = CompoundEnvelope();
    in["medication"]["ingredient"][0]["item"]["concept"]["coding"][0]["code"] = "12-34";
    IssueList issues;
    auto out = ToScript(in.dump(), issues, Options2017());
    CHECK_FALSE(out.ok());
    const Issue* bad = issues.Find("medication.ingredient[0].item.concept.coding[0].code");
    REQUIRE(bad != nullptr);
    CHECK(bad->severity == Severity::kError);
    CHECK(bad->message ==
          "not an NDC: \"12-34\" (11 digits, or 5-4-2/4-4-2/5-3-2/5-4-1 with "
          "hyphens)");
  }

  TEST_CASE("a controlled ingredient makes the compound a controlled prescription") {
    json in = CompoundEnvelope();
    in["medication"]["ingredient"][0]["extension"] =
        json::array({{{"url", std::string(mapping::kDeaScheduleExtension)}, {"valueCode", "CIV"}}});
    IssueList issues;
    auto out = ToScript(in.dump(), issues, Options2017());
    CHECK_FALSE(out.ok());  // the lisinopril prescriber has no DEA number
    bool dea = false;
    for (const Issue& i : issues) {
      dea |= i.severity == Severity::kError &&
             i.message.find("a Schedule CIV prescription requires the prescriber's DEA number") !=
                 std::string::npos;
    }
    CHECK(dea);
  }

  TEST_CASE("REMS identifiers come back to Identification, a supervisor's is named") {
    json in = json::parse(testing::ReadFixture("fhir/medication_request_lisinopril.json"));
    in["patient"]["identifier"].push_back(
        {{"system", std::string(mapping::kRemsPatientIdSystem)}, {"value", "RP-1"}});
    in["practitioner"]["identifier"].push_back(
        {{"system", std::string(mapping::kRemsProviderEnrollmentSystem)}, {"value", "RE-1"}});
    in["practitioner"]["identifier"].push_back(
        {{"system", std::string(mapping::kRemsProviderEnrollmentSystem)}, {"value", "RE-2"}});
    IssueList issues;
    auto out = ToScript(in.dump(), issues, Options2017());
    ShowErrors(issues);
    RXFLOW_REQUIRE_OK(out);
    const script::NewRx& n = NewRxOf(*out);
    CHECK(n.patient.identification.rems_patient_id == "RP-1");
    CHECK(n.prescriber.identification.rems_healthcare_provider_enrollment_id == "RE-1");
    const std::string second = "practitioner.identifier[" +
                               std::to_string(in["practitioner"]["identifier"].size() - 1) + "]";
    REQUIRE(issues.Find(second) != nullptr);
    CHECK(issues.Find(second)->message.find("SCRIPT carries one") != std::string::npos);

    // SupervisorID has no REMSHealthcareProviderEnrollmentID: named, the Supervisor still sent.
    json& contained = in["medication_request"]["contained"];
    if (contained.is_null()) contained = json::array();
    contained.push_back(json::parse(R"({"resourceType": "Practitioner", "id": "sup",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1497758544"},
                       {"system": "urn:rxflow:ncpdp:rems-healthcare-provider-enrollment-id",
                        "value": "RE-9"}],
        "name": [{"family": "Whitfield", "given": ["Harold"]}],
        "address": [{"line": ["120 Medical Pkwy"], "city": "Richmond", "state": "VA",
                     "postalCode": "23226", "country": "US"}],
        "telecom": [{"system": "phone", "value": "804-555-0177"}]})"));
    json& ext = in["medication_request"]["extension"];
    if (ext.is_null()) ext = json::array();
    ext.push_back({{"url", std::string(mapping::kSupervisorExtension)},
                   {"valueReference", {{"reference", "#sup"}}}});
    issues.clear();
    out = ToScript(in.dump(), issues, Options2017());
    ShowErrors(issues);
    RXFLOW_REQUIRE_OK(out);
    REQUIRE(NewRxOf(*out).supervisor.has_value());
    CHECK(NewRxOf(*out).supervisor->identification.rems_healthcare_provider_enrollment_id.empty());
    const std::string sup =
        "medication_request.contained[" + std::to_string(contained.size() - 1) + "].identifier[1]";
    REQUIRE(issues.Find(sup) != nullptr);
    CHECK(issues.Find(sup)->message.find("SupervisorID") != std::string::npos);
  }
}

TEST_SUITE("Mapping: compounds and REMS") {
  // HL7's own compound, FHIR R5 example medicationexample0323 ("med0323", WHO Hand Sanitizer
  // Formulation): its ingredients are contained Substances given by reference, with amounts
  // in UCUM mL and a last one "qs". It has a code and no RxFlow compound extension, so it goes
  // as a product by its description — and each of its parts that is not sent is named, none
  // lost without a word (the fourth ingredient and the contained Substances were, before).
  TEST_CASE("FHIR R5's compound example med0323: every ingredient not sent is named") {
    nlohmann::json env = nlohmann::json::parse(testing::ReadFile(
        std::string(RXFLOW_SOURCE_DIR) + "/examples/data/medication_request_lisinopril.json"));
    nlohmann::json contained = nlohmann::json::array();
    for (const char* id : {"sub10", "sub11", "sub12", "sub13"}) {
      contained.push_back({{"resourceType", "Substance"},
                           {"id", id},
                           {"instance", false},
                           {"code", {{"concept", {{"text", id}}}}}});
    }
    auto ml = [](int v) {
      return nlohmann::json{{"value", v}, {"system", "http://unitsofmeasure.org"}, {"code", "mL"}};
    };
    auto ref = [](const char* id) {
      return nlohmann::json{{"reference", {{"reference", std::string("#") + id}}}};
    };
    env["medication"] = {
        {"resourceType", "Medication"},
        {"id", "med0323"},
        {"contained", contained},
        {"code", {{"text", "WHO Hand Sanitizer Formulation 1% - 10L"}}},
        {"doseForm",
         {{"coding",
           {{{"system", "http://snomed.info/sct"},
             {"code", "739006009"},
             {"display", "Solution (basic dose form) (qualifier value)"}}}}}},
        {"ingredient",
         {{{"item", ref("sub10")}, {"strengthQuantity", ml(8333)}},
          {{"item", ref("sub11")}, {"strengthQuantity", ml(417)}},
          {{"item", ref("sub12")}, {"strengthQuantity", ml(145)}},
          {{"item", ref("sub13")},
           {"strengthCodeableConcept",
            {{"coding",
              {{{"system", "http://hl7.org/fhir/CodeSystem/medication-ingredientstrength"},
                {"code", "qs"},
                {"display", "QS"}}}}}}}}}};
    env["medication_request"]["medication"] = {
        {"reference", {{"reference", "Medication/med0323"}}}};
    TransformOptions o;
    o.version = script::Version::k2017071;
    IssueList issues;
    auto out = ToScript(env.dump(), issues, o);
    REQUIRE_MESSAGE(out.ok(), out.status().ToString());
    CHECK(out->xml.find(
              "<DrugDescription>WHO Hand Sanitizer Formulation 1% - 10L</DrugDescription>") !=
          std::string::npos);
    CHECK(out->xml.find("CompoundInformation") == std::string::npos);
    auto warned = [&](const std::string& path) {
      for (const Issue& i : issues) {
        if (i.severity == Severity::kWarning && i.path.rfind(path, 0) == 0) return true;
      }
      return false;
    };
    CHECK(warned("medication.contained"));
    for (int i = 0; i < 4; ++i) {
      CAPTURE(i);
      CHECK(warned("medication.ingredient[" + std::to_string(i) + "]"));
    }
  }
}
