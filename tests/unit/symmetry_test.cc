// SPDX-License-Identifier: Apache-2.0
// Symmetry (issue 15 §4): what the SCRIPT reader accepts as a NewRx, `to-script` writes back,
// or the refusal names a FHIR path and a rule of docs/mapping.md §8.0 / §8.1.
//
//   every SCRIPT NewRx fixture the reader accepts: SCRIPT → FHIR → SCRIPT succeeds, or each
//     error has a FHIR path (the Bundle's, never a SCRIPT `/Message/...` path) and a message of
//     a listed rule;
//   mutations of newrx_2017071_lisinopril.xml that the reader still accepts (strict mode) but
//     that break a rule (quantity 0, no pharmacy, bad NPI check digits, a C-II with refills...):
//     the reader accepts each; the round trip is refused with the expected rule at the expected
//     FHIR path, and every other error is a listed rule too;
//   every rule listed here is quoted in docs/mapping.md §8.
#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "rxflow/script/xml.h"
#include "rxflow/transform.h"

#include "testing/files.h"
#include "testing/status.h"

using namespace rxflow;

namespace {

// The rules that may refuse a NewRx on the way out (docs/mapping.md §8.0 and §8.1): for each,
// the fixed parts of its message. A message matches a rule when it contains every part.
const std::vector<std::vector<std::string>> kRules = {
    // §8.0, fhir_to_script.cc
    {"a name is required"},
    {"family name is required"},
    {"given name is required"},
    {"patient birth date is required"},
    {"SCRIPT needs a full birth date (YYYY-MM-DD); a partial date cannot be sent"},
    {"an address is required"},
    {"address line is required"},
    {"city is required"},
    {"state is required"},
    {"postal code is required"},
    {"country must be an ISO 3166 two-letter code, got "},
    {"the prescriber (Practitioner) is required"},
    {"prescriber NPI (system http://hl7.org/fhir/sid/us-npi) is required"},
    {"the prescriber's address is required (Practitioner.address, "
     "PractitionerRole.contact.address or the role organization's contact)"},
    {"a phone number is required (PrimaryTelephone)"},
    {"phone number must have 10 digits (US), got "},
    {"the pharmacy (an Organization with an NCPDP ID) is required to route a NewRx"},
    {"pharmacy NCPDP ID (system "
     "http://terminology.hl7.org/CodeSystem/NCPDPProviderIdentificationNumber) is required"},
    {"pharmacy NPI is required"},
    {"pharmacy name is required"},
    {"NCPDP ID must be 7 digits"},
    {"the medication (a concept, or a resolvable Medication with a code) is required"},
    {"the drug description (text or a coding display) is required"},
    {"not an NDC: ", " (11 digits, or 5-4-2/4-4-2/5-3-2/5-4-1 with hyphens)"},
    {"unknown DEA schedule ", " (expected CI..CV)"},
    {"the quantity to dispense is required"},
    {"the quantity to dispense must be exact (no comparator)"},
    {"quantity value is required"},
    {"quantity must be a positive decimal without exponent, got "},
    {"quantity has more than 11 characters"},
    {"quantity must be greater than zero"},
    {"supply duration must be an exact number of days (unit d) or weeks (wk)"},
    {"days supply must be a whole number from 1 to 999"},
    {"the date written (authoredOn) is required"},
    {" must be a full date (YYYY-MM-DD), got "},
    {"SCRIPT allows at most 99 refills"},
    {"a diagnosis needs a description (display or text)"},
    {" characters; SCRIPT allows ", " (RxFlow never truncates)"},
    {" contains characters SCRIPT cannot carry (printable ASCII only)"},
    {"LastFillDate must be a date (YYYY-MM-DD) or a UTC dateTime, got "},
    {"ProhibitRenewalRequest must be true or false, got "},
    {"a do-not-perform order cannot be sent as a NewRx"},
    {"a NewRx is sent for an active order, not one with status "},
    {"a NewRx is an order; intent ", " cannot be sent"},
    {"a CancelRx is sent for a cancelled or stopped order, not "},
    {"a message id is required"},
    {"the sent time is required"},
    // §8.0, sig.cc
    {"at least one dosageInstruction (with text) is required"},
    {"dosage text is required: SigText is the authoritative instruction"},
    {"dosage text contains characters SCRIPT cannot carry (printable ASCII only)"},
    {" characters; SigText allows 1000 (RxFlow never truncates)"},
    // §8.1, clinical/checks.cc
    {"an NPI has exactly 10 digits"},
    {"an NPI starts with 1 or 2"},
    {"NPI check digit is wrong (expected "},
    {"a DEA number is 2 letters and 7 digits"},
    {"a DEA number starts with two letters (the second may be 9)"},
    {"a DEA number ends with 7 digits"},
    {"DEA registrant type ", " is not a known type"},
    {"DEA check digit is wrong (expected "},
    {"DEA number's second letter ", " does not match the prescriber's last name initial "},
    {" prescription requires the prescriber's DEA number"},
    {"Schedule I substances have no accepted medical use and cannot be prescribed"},
    {"Schedule II prescriptions cannot be refilled (21 CFR 1306.12); got "},
    {"Schedule III/IV prescriptions allow at most 5 refills (21 CFR 1306.22); got "},
    {"Schedule III/IV prescriptions cannot be filled more than ",
     " months after the date written (21 CFR 1306.22)"},
    {"Schedule V prescriptions allow at most ", " refills under the ", " policy; got "},
};

bool MatchesRule(const std::string& message) {
  for (const auto& parts : kRules) {
    bool all = true;
    for (const std::string& part : parts) all = all && message.find(part) != std::string::npos;
    if (all) return true;
  }
  return false;
}

bool IsError(const Issue& i) {
  return i.severity == Severity::kError || i.severity == Severity::kFatal;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// ToScript's options for the way back: SCRIPT 2017071, the header fixed.
TransformOptions BackOptions() {
  TransformOptions o;
  o.version = script::Version::k2017071;
  o.newrx.message_id = "5e0a7c1d92b34f6e8a1c3b5d7f9e2a40";
  o.newrx.sent_time = "2026-11-20T14:32:07Z";
  return o;
}

// Every error of a refused `to-script` names a FHIR path (the Bundle's) and a listed rule.
void CheckRefusal(const IssueList& issues) {
  size_t errors = 0;
  for (const Issue& i : issues) {
    if (!IsError(i)) continue;
    ++errors;
    const std::string shown = ToString(i);
    CAPTURE(shown);
    CHECK_FALSE(i.path.empty());
    CHECK_MESSAGE(i.path.rfind('/', 0) != 0, "a SCRIPT path: the refusal must name FHIR");
    CHECK_MESSAGE(i.path.rfind("Bundle.", 0) == 0, "not a path in the Bundle");
    CHECK_MESSAGE(MatchesRule(i.message), "not a rule of docs/mapping.md §8.0 / §8.1");
  }
  CHECK(errors > 0);  // a refusal without an error issue names nothing
}

// One edit of a fixture: the first `from` after `after` (from the start when empty), through
// the end of the first `until` after it when given, is replaced by `to`.
struct Edit {
  std::string after, from, until, to;
};

std::string Apply(std::string xml, const std::vector<Edit>& edits) {
  for (const Edit& e : edits) {
    CAPTURE(e.after);
    CAPTURE(e.from);
    size_t start = 0;
    if (!e.after.empty()) {
      start = xml.find(e.after);
      REQUIRE(start != std::string::npos);
    }
    size_t at = xml.find(e.from, start);
    REQUIRE(at != std::string::npos);
    size_t end = at + e.from.size();
    if (!e.until.empty()) {
      size_t u = xml.find(e.until, end);
      REQUIRE(u != std::string::npos);
      end = u + e.until.size();
    }
    xml.replace(at, end - at, e.to);
  }
  return xml;
}

struct Mutation {
  std::string name;
  std::vector<Edit> edits;
  // The refusal expected: an error at `Bundle.entry[i].<path_suffix>` whose message contains
  // `message`.
  std::string path_suffix;
  std::string message;
};

// newrx_2017071_lisinopril.xml: pharmacy NCPDP ID 4712345, NPI 1847293655; prescriber NPI
// 1738294614, last name Castellano, no DEA number; no DEA schedule; NumberOfRefills 2.
const Edit kDeaNumber{"", "<NPI>1738294614</NPI>", "",
                      "<DEANumber>AC1234563</DEANumber><NPI>1738294614</NPI>"};
Edit Schedule(const std::string& nci) {
  return {"", "</DrugDBCode>", "",
          "</DrugDBCode><DEASchedule><Code>" + nci + "</Code></DEASchedule>"};
}
Edit Refills(const std::string& n) {
  return {"", "<NumberOfRefills>2</NumberOfRefills>", "",
          "<NumberOfRefills>" + n + "</NumberOfRefills>"};
}

std::vector<Mutation> Mutations() {
  return {
      {"Quantity/Value 0",
       {{"", "<Value>30</Value>", "", "<Value>0</Value>"}},
       "resource.dispenseRequest.quantity.value",
       "quantity must be greater than zero"},
      {"Quantity/Value 0.000",
       {{"", "<Value>30</Value>", "", "<Value>0.000</Value>"}},
       "resource.dispenseRequest.quantity.value",
       "quantity must be greater than zero"},
      {"no Pharmacy",
       {{"", "<Pharmacy>", "</Pharmacy>", ""}},
       "resource.dispenseRequest.dispenser",
       "the pharmacy (an Organization with an NCPDP ID) is required to route a NewRx"},
      {"pharmacy NPI with a wrong check digit",
       {{"", "<NPI>1847293655</NPI>", "", "<NPI>1847293650</NPI>"}},
       "resource.identifier[1].value",
       "pharmacy NPI: NPI check digit is wrong (expected 5)"},
      {"prescriber NPI with a wrong check digit",
       {{"", "<NPI>1738294614</NPI>", "", "<NPI>1738294610</NPI>"}},
       "resource.identifier[0].value",
       "prescriber NPI: NPI check digit is wrong (expected 4)"},
      {"pharmacy NPI of 5 digits",
       {{"", "<NPI>1847293655</NPI>", "", "<NPI>12345</NPI>"}},
       "resource.identifier[1].value",
       "pharmacy NPI: an NPI has exactly 10 digits"},
      {"NCPDPID of 6 digits",
       {{"", "<NCPDPID>4712345</NCPDPID>", "", "<NCPDPID>471234</NCPDPID>"}},
       "resource.identifier[0].value",
       "NCPDP ID must be 7 digits"},
      {"DaysSupply 0",
       {{"", "<DaysSupply>30</DaysSupply>", "", "<DaysSupply>0</DaysSupply>"}},
       "resource.dispenseRequest.expectedSupplyDuration",
       "days supply must be a whole number from 1 to 999"},
      {"DaysSupply 1.5",
       {{"", "<DaysSupply>30</DaysSupply>", "", "<DaysSupply>1.5</DaysSupply>"}},
       "resource.dispenseRequest.expectedSupplyDuration",
       "days supply must be a whole number from 1 to 999"},
      {"pharmacy phone of 8 digits",
       {{"", "<Number>8045550110</Number>", "", "<Number>80455501</Number>"}},
       "resource.contact[0].telecom[0].value",
       "phone number must have 10 digits (US), got 8"},
      {"prescriber phone of 8 digits",
       {{"", "<Number>8045550187</Number>", "", "<Number>80455501</Number>"}},
       "resource.telecom[0].value",
       "phone number must have 10 digits (US), got 8"},
      {"patient phone of 8 digits",
       {{"", "<Number>8045550142</Number>", "", "<Number>80455501</Number>"}},
       "resource.telecom[0].value",
       "phone number must have 10 digits (US), got 8"},
      {"patient CountryCode of one letter",
       {{"<HumanPatient>", "<CountryCode>US</CountryCode>", "", "<CountryCode>U</CountryCode>"}},
       "resource.address[0].country",
       "country must be an ISO 3166 two-letter code, got \"U\""},
      {"prescriber StateProvince of 36 characters",
       {{"<Prescriber>", "<StateProvince>VA</StateProvince>", "",
         "<StateProvince>" + std::string(36, 'V') + "</StateProvince>"}},
       "resource.address[0].state",
       "state is 36 characters; SCRIPT allows 35 (RxFlow never truncates)"},
      {"prescriber PostalCode of 36 characters",
       {{"", "<PostalCode>23226</PostalCode>", "",
         "<PostalCode>" + std::string(36, '9') + "</PostalCode>"}},
       "resource.address[0].postalCode",
       "postal code is 36 characters; SCRIPT allows 35 (RxFlow never truncates)"},
      {"diagnosis Description of 256 characters",
       {{"", "<Description>Essential (primary) hypertension</Description>", "",
         "<Description>" + std::string(256, 'E') + "</Description>"}},
       "resource.reason[0]",
       "diagnosis description is 256 characters; SCRIPT allows 255"},
      {"diagnosis Code of 36 characters",
       {{"", "<Code>I10</Code>", "", "<Code>I" + std::string(35, '1') + "</Code>"}},
       "resource.reason[0]",
       "diagnosis code is 36 characters; SCRIPT allows 35"},
      {"DrugDBCode/Code of 36 characters",
       {{"", "<Code>314076</Code>", "", "<Code>" + std::string(36, '3') + "</Code>"}},
       "resource.code.coding[0].code",
       "RxNorm code is 36 characters; SCRIPT allows 35"},
      {"ProductCode ND that is not an NDC",
       {{"", "<DrugCoded>", "",
         "<DrugCoded><ProductCode><Code>12345</Code><Qualifier>ND</Qualifier></ProductCode>"}},
       "resource.code.coding[0].code",
       "not an NDC: \"12345\""},
      {"DEA number with a wrong check digit (C-II, no refills)",
       {{"", "<NPI>1738294614</NPI>", "", "<DEANumber>AC1234560</DEANumber><NPI>1738294614</NPI>"},
        Schedule("C48675"),
        Refills("0")},
       "resource.identifier[1].value",
       "prescriber DEA number: DEA check digit is wrong (expected 3)"},
      {"DEA number's second letter is not the last name's initial",
       {{"", "<NPI>1738294614</NPI>", "", "<DEANumber>AB1234563</DEANumber><NPI>1738294614</NPI>"}},
       "resource.identifier[1].value",
       "prescriber DEA number: DEA number's second letter B does not match the prescriber's last "
       "name initial C"},
      {"C-II with NumberOfRefills 2",
       {kDeaNumber, Schedule("C48675")},
       "resource.dispenseRequest.numberOfRepeatsAllowed",
       "Schedule II prescriptions cannot be refilled (21 CFR 1306.12); got 2 refills"},
      {"C-II without a DEA number",
       {Schedule("C48675"), Refills("0")},
       "resource.identifier",
       "a Schedule CII prescription requires the prescriber's DEA number"},
      {"C-I",
       {kDeaNumber, Schedule("C48672")},
       "resource.medication",
       "Schedule I substances have no accepted medical use and cannot be prescribed"},
      {"C-III with NumberOfRefills 6",
       {kDeaNumber, Schedule("C48676"), Refills("6")},
       "resource.dispenseRequest.numberOfRepeatsAllowed",
       "Schedule III/IV prescriptions allow at most 5 refills (21 CFR 1306.22); got 6"},
      {"C-IV expiring 7 months after WrittenDate",
       {kDeaNumber,
        Schedule("C48677"),
        {"", "</RxFillIndicator>", "",
         "</RxFillIndicator><OtherMedicationDate><OtherMedicationDate><Date>2027-06-21</Date>"
         "</OtherMedicationDate><OtherMedicationDateQualifier>ExpirationDate"
         "</OtherMedicationDateQualifier></OtherMedicationDate>"}},
       "resource.dispenseRequest.validityPeriod.end",
       "Schedule III/IV prescriptions cannot be filled more than 6 months after the date written"},
      {"Veterinarian prescriber (no NPI in its Identification)",
       {{"", "<NonVeterinarian>", "", "<Veterinarian>"},
        {"", "</NonVeterinarian>", "", "</Veterinarian>"},
        {"", "<NPI>1738294614</NPI>", "", ""}},
       "resource.identifier",
       "prescriber NPI (system http://hl7.org/fhir/sid/us-npi) is required"},
      {"Veterinarian prescriber whose Address has no City",
       {{"", "<NonVeterinarian>", "", "<Veterinarian>"},
        {"", "</NonVeterinarian>", "", "</Veterinarian>"},
        {"", "<NPI>1738294614</NPI>", "", ""},
        {"<Veterinarian>", "<City>Richmond</City>", "", ""}},
       "resource.address[0].city",
       "city is required"},
      {"NonHumanPatient without an Address",
       {{"", "<HumanPatient>", "", "<NonHumanPatient>"},
        {"", "</HumanPatient>", "",
         "<Species><Text>Canine</Text><Code>448771007</Code></Species>"
         "</NonHumanPatient>"},
        {"<NonHumanPatient>", "<Identification>", "</Identification>", ""},
        {"<NonHumanPatient>", "<Address>", "</Address>", ""}},
       "resource.address",
       "an address is required"},
  };
}

// SCRIPT → FHIR → SCRIPT of a mutation: the reader accepts it (strict), and `to-script`
// refuses it with the expected rule at the expected FHIR path, every other error a rule too.
void CheckMutation(const std::string& base, const Mutation& m) {
  CAPTURE(m.name);
  const std::string xml = Apply(base, m.edits);
  CAPTURE(xml);

  IssueList read_issues;
  auto message = script::ReadXml(xml, read_issues);  // strict (ReadOptions::lenient = false)
  for (const Issue& i : read_issues) {
    if (IsError(i)) MESSAGE(ToString(i));
  }
  if (!message.ok() || read_issues.has_errors()) {
    FAIL_CHECK("the mutation must be one the SCRIPT reader accepts (strict)");
    return;
  }

  IssueList to_fhir_issues;
  auto fhir_json = ToFhirJson(xml, to_fhir_issues);
  if (!fhir_json.ok()) {
    FAIL_CHECK("SCRIPT → FHIR refused: " << fhir_json.status().message());
    return;
  }

  IssueList issues;
  auto back = ToScript(*fhir_json, issues, BackOptions());
  CHECK_FALSE(back.ok());
  CheckRefusal(issues);
  bool found = false;
  for (const Issue& i : issues) {
    if (!IsError(i)) continue;
    if (i.path.rfind("Bundle.entry[", 0) == 0 && EndsWith(i.path, "]." + m.path_suffix) &&
        i.message.find(m.message) != std::string::npos) {
      found = true;
    }
  }
  std::string all;
  for (const Issue& i : issues) {
    if (IsError(i)) all += "\n  " + ToString(i);
  }
  CHECK_MESSAGE(found, "expected an error at Bundle.entry[i]." << m.path_suffix << ": " << m.message
                                                               << "; got:" << all);
}

std::string MappingDocSection8() {
  const std::string doc =
      testing::ReadFile(std::filesystem::path(RXFLOW_SOURCE_DIR) / "docs" / "mapping.md");
  const size_t start = doc.find("### 8.0 Rules a NewRx must meet");
  const size_t end = doc.find("### 8.2 ");
  if (start == std::string::npos || end == std::string::npos || end < start) return {};
  return doc.substr(start, end - start);
}

}  // namespace

TEST_SUITE("Symmetry") {
  TEST_CASE("every SCRIPT NewRx fixture the reader accepts is written back, or refused by a rule") {
    std::vector<std::filesystem::path> files;
    for (const char* dir : {"script", "script/partners"}) {
      for (const auto& p : testing::FixtureFiles(dir, ".xml")) {
        // newrx_request.xml and newrx_response_denied.xml hold no NewRx.
        const std::string file = p.filename().string();
        if (file.rfind("newrx_", 0) == 0 && file != "newrx_request.xml" &&
            file != "newrx_response_denied.xml") {
          files.push_back(p);
        }
      }
    }
    REQUIRE(files.size() >= 9);
    size_t accepted = 0;
    for (const auto& path : files) {
      const std::string name = path.filename().string();
      CAPTURE(name);
      const std::string xml = testing::ReadFile(path);
      IssueList to_fhir_issues;
      auto fhir_json = ToFhirJson(xml, to_fhir_issues);
      if (!fhir_json.ok()) {
        MESSAGE(name << ": not accepted by the reader (" << fhir_json.status().message()
                     << "): skipped");
        continue;
      }
      ++accepted;
      IssueList issues;
      auto back = ToScript(*fhir_json, issues, BackOptions());
      if (back.ok()) {
        CHECK_FALSE(issues.has_errors());
        continue;
      }
      CheckRefusal(issues);
    }
    CHECK(accepted >= 7);
  }

  TEST_CASE("mutations the SCRIPT reader accepts are refused only by a rule, at a FHIR path") {
    const std::string base = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
    // The fixture itself goes through.
    {
      IssueList to_fhir_issues;
      auto fhir_json = ToFhirJson(base, to_fhir_issues);
      RXFLOW_REQUIRE_OK(fhir_json);
      IssueList issues;
      auto back = ToScript(*fhir_json, issues, BackOptions());
      RXFLOW_REQUIRE_OK(back);
    }
    for (const Mutation& m : Mutations()) CheckMutation(base, m);
  }

  TEST_CASE("every rule is quoted in docs/mapping.md §8") {
    const std::string section = MappingDocSection8();
    REQUIRE_FALSE(section.empty());
    for (const auto& parts : kRules) {
      for (const std::string& part : parts) {
        CHECK_MESSAGE(section.find(part) != std::string::npos,
                      "not quoted in docs/mapping.md §8.0 / §8.1: \"" << part << "\"");
      }
    }
  }

  // SCRIPT's `n` type allows a leading zero; FHIR decimals (JSON numbers) do not: SCRIPT → FHIR
  // drops the zeros ("030" → 30), so the Bundle is valid JSON and goes back without a refusal.
  TEST_CASE("numbers with a leading zero are written back") {
    const std::string base = testing::ReadFixture("script/newrx_2017071_lisinopril.xml");
    const std::vector<std::pair<std::string, Edit>> cases = {
        {"Quantity/Value 030", {"", "<Value>30</Value>", "", "<Value>030</Value>"}},
        {"DaysSupply 030", {"", "<DaysSupply>30</DaysSupply>", "", "<DaysSupply>030</DaysSupply>"}},
        {"DoseQuantity 01",
         {"", "<DoseQuantity>1</DoseQuantity>", "", "<DoseQuantity>01</DoseQuantity>"}},
    };
    for (const auto& [name, edit] : cases) {
      CAPTURE(name);
      const std::string xml = Apply(base, {edit});
      IssueList read_issues;
      RXFLOW_REQUIRE_OK(script::ReadXml(xml, read_issues));
      IssueList to_fhir_issues;
      auto fhir_json = ToFhirJson(xml, to_fhir_issues);
      RXFLOW_REQUIRE_OK(fhir_json);
      CHECK(nlohmann::json::accept(*fhir_json));
      IssueList issues;
      auto back = ToScript(*fhir_json, issues, BackOptions());
      CHECK(back.ok());
      if (!back.ok()) CheckRefusal(issues);
    }
  }
}
