// Round-trip properties over generated prescriptions (a seeded generator, so failures
// reproduce):
//   FHIR → SCRIPT → FHIR keeps every mapped field;
//   SCRIPT → FHIR → SCRIPT reproduces the canonical XML byte for byte (both profiles).
#include <random>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "rxflow/fhir/json.h"
#include "rxflow/mapping/mapping.h"
#include "rxflow/script/xml.h"
#include "rxflow/transform.h"

using namespace rxflow;
using nlohmann::json;

namespace {

class Generator {
 public:
  explicit Generator(uint32_t seed) : rng_(seed) {}

  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng_)];
  }
  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Coin(double p = 0.5) { return std::bernoulli_distribution(p)(rng_); }
  std::string Digits(int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s.push_back(static_cast<char>('0' + Int(0, 9)));
    return s;
  }

  // A valid NPI: 9 digits starting with 1, then the Luhn check digit with prefix 80840.
  std::string Npi() {
    std::string base = "1" + Digits(8);
    std::string full = "80840" + base;
    int sum = 0;
    bool dbl = true;
    for (size_t i = full.size(); i-- > 0;) {
      int d = full[i] - '0';
      if (dbl) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
      sum += d;
      dbl = !dbl;
    }
    return base + std::to_string((10 - sum % 10) % 10);
  }
  std::string Dea(char initial) {
    std::string d = Digits(6);
    int c = ((d[0] - '0') + (d[2] - '0') + (d[4] - '0') +
             2 * ((d[1] - '0') + (d[3] - '0') + (d[5] - '0'))) %
            10;
    return std::string(1, Pick(std::vector<char>{'A', 'B', 'F', 'G', 'M'})) + initial + d +
           std::to_string(c);
  }
  std::string Phone() { return std::to_string(Int(201, 989)) + "555" + Digits(4); }

  json Address(const std::string& use) {
    json a = {{"use", use},
              {"line", json::array({std::to_string(Int(1, 9999)) + " " + Pick(streets_)})},
              {"city", Pick(cities_)},
              {"state", Pick(states_)},
              {"postalCode", Digits(5)},
              {"country", "US"}};
    if (Coin(0.3)) a["line"].push_back("Suite " + std::to_string(Int(1, 500)));
    return a;
  }

  json Prescription() {
    std::string family = Pick(families_);
    json patient = {
        {"resourceType", "Patient"},
        {"id", "p1"},
        {"name", json::array({{{"use", "official"},
                               {"family", Pick(families_)},
                               {"given", Coin(0.4) ? json::array({Pick(givens_), Pick(givens_)})
                                                   : json::array({Pick(givens_)})}}})},
        {"gender", Pick(std::vector<std::string>{"male", "female", "unknown"})},
        {"birthDate", std::to_string(Int(1930, 2022)) + "-0" + std::to_string(Int(1, 9)) + "-1" +
                          std::to_string(Int(0, 9))},
        {"address", json::array({Address("home")})}};
    if (Coin(0.7)) {
      patient["telecom"] = json::array(
          {{{"system", "phone"}, {"value", Phone()}, {"use", Coin() ? "mobile" : "home"}}});
    }
    if (Coin(0.5)) {
      patient["identifier"] = json::array(
          {{{"type",
             {{"coding", json::array({{{"system", "http://terminology.hl7.org/CodeSystem/v2-0203"},
                                       {"code", "MR"}}})}}},
            {"value", "MRN" + Digits(6)}}});
    }
    int schedule = Coin(0.3) ? Int(2, 5) : 0;
    json practitioner = {
        {"resourceType", "Practitioner"},
        {"id", "pr1"},
        {"identifier",
         json::array({{{"system", "http://hl7.org/fhir/sid/us-npi"}, {"value", Npi()}}})},
        {"name", json::array({{{"family", family}, {"given", json::array({Pick(givens_)})}}})},
        {"address", json::array({Address("work")})},
        {"telecom", json::array({{{"system", "phone"}, {"value", Phone()}, {"use", "work"}}})}};
    if (schedule > 0 || Coin(0.3)) {
      practitioner["identifier"].push_back(
          {{"system", "urn:oid:2.16.840.1.113883.4.814"}, {"value", Dea(family[0])}});
    }
    json pharmacy = {
        {"resourceType", "Organization"},
        {"id", "ph1"},
        {"identifier",
         json::array({{{"system",
                        "http://terminology.hl7.org/CodeSystem/NCPDPProviderIdentificationNumber"},
                       {"value", Digits(7)}},
                      {{"system", "http://hl7.org/fhir/sid/us-npi"}, {"value", Npi()}}})},
        {"name", Pick(pharmacies_)},
        {"contact",
         json::array({{{"address", Address("work")},
                       {"telecom", json::array({{{"system", "phone"}, {"value", Phone()}}})}}})}};
    const auto& drug = Pick(drugs_);
    json concept_ = {{"text", drug[0]}};
    json codings = json::array();
    if (Coin(0.6))
      codings.push_back(
          {{"system", "http://www.nlm.nih.gov/research/umls/rxnorm"}, {"code", drug[1]}});
    if (Coin(0.4))
      codings.push_back({{"system", "http://hl7.org/fhir/sid/ndc"},
                         {"code", Digits(5) + "-" + Digits(4) + "-" + Digits(2)}});
    if (!codings.empty()) concept_["coding"] = codings;
    json mr = {{"resourceType", "MedicationRequest"},
               {"id", "mr1"},
               {"identifier", json::array({{{"value", "ORD-" + Digits(6)}}})},
               {"status", "active"},
               {"intent", "order"},
               {"medication", {{"concept", concept_}}},
               {"subject", {{"reference", "Patient/p1"}}},
               {"requester", {{"reference", "Practitioner/pr1"}}},
               {"authoredOn",
                "2026-" + std::string(Coin() ? "10" : "11") + "-1" + std::to_string(Int(0, 9))}};
    if (schedule > 0) {
      static const char* kNames[] = {"", "CI", "CII", "CIII", "CIV", "CV"};
      mr["extension"] =
          json::array({{{"url", "https://rxflow.dev/fhir/StructureDefinition/dea-schedule"},
                        {"valueCode", kNames[schedule]}}});
    }
    int refills = schedule == 2 ? 0 : schedule == 3 || schedule == 4 ? Int(0, 5) : Int(0, 11);
    json qty = {{"value", Coin(0.8) ? json(Int(1, 120)) : json(Int(1, 300) + 0.5)}};
    const auto& unit = Pick(units_);
    qty["unit"] = unit[0];
    if (!unit[1].empty()) {
      qty["system"] = unit[1];
      qty["code"] = unit[2];
    }
    json dispense = {{"quantity", qty}, {"dispenser", {{"reference", "Organization/ph1"}}}};
    if (refills > 0 || Coin()) dispense["numberOfRepeatsAllowed"] = refills;
    if (Coin(0.7))
      dispense["expectedSupplyDuration"] = {{"value", Int(1, 90)},
                                            {"unit", "days"},
                                            {"system", "http://unitsofmeasure.org"},
                                            {"code", "d"}};
    mr["dispenseRequest"] = dispense;
    json dosage = {{"text", "Take " + std::to_string(Int(1, 2)) + " by mouth " + Pick(texts_)}};
    if (Coin(0.7)) {
      dosage["route"] = {{"coding", json::array({{{"system", "http://snomed.info/sct"},
                                                  {"code", "26643006"},
                                                  {"display", "Oral route"}}})}};
      dosage["doseAndRate"] =
          json::array({{{"doseQuantity",
                         {{"value", Int(1, 2)},
                          {"unit", "tablet"},
                          {"system", "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm"},
                          {"code", "TAB"}}}}});
      json repeat;
      if (Coin()) {
        repeat = {{"frequency", Int(1, 4)}, {"period", 1}, {"periodUnit", "d"}};
      } else {
        repeat = {
            {"frequency", 1}, {"period", Pick(std::vector<int>{4, 6, 8, 12})}, {"periodUnit", "h"}};
      }
      if (Coin(0.3))
        repeat["boundsDuration"] = {{"value", Int(3, 30)},
                                    {"unit", "day"},
                                    {"system", "http://unitsofmeasure.org"},
                                    {"code", "d"}};
      dosage["timing"] = {{"repeat", repeat}};
      if (Coin(0.3))
        dosage["asNeededFor"] =
            json::array({{{"coding", json::array({{{"system", "http://snomed.info/sct"},
                                                   {"code", "22253000"},
                                                   {"display", "Pain"}}})}}});
    }
    mr["dosageInstruction"] = json::array({dosage});
    if (Coin(0.3)) mr["substitution"] = {{"allowedBoolean", false}};
    if (Coin(0.3)) mr["note"] = json::array({{{"text", "Generated note " + Digits(4)}}});
    if (Coin(0.3)) {
      mr["reason"] =
          json::array({{{"concept",
                         {{"coding", json::array({{{"system", "http://hl7.org/fhir/sid/icd-10-cm"},
                                                   {"code", "I10"},
                                                   {"display", "Essential hypertension"}}})}}}}});
    }
    return {{"medication_request", mr},
            {"patient", patient},
            {"practitioner", practitioner},
            {"pharmacy", pharmacy}};
  }

 private:
  std::mt19937 rng_;
  std::vector<std::string> families_{"Okafor", "Lindqvist", "Nakamura", "Brennan",  "Delacroix",
                                     "Haddad", "Moreno",    "Ivanova",  "Kowalski", "Smith"};
  std::vector<std::string> givens_{"Ada",   "Ben",   "Chioma", "Dmitri", "Elena",
                                   "Farid", "Grace", "Hiro",   "Ines",   "Jon"};
  std::vector<std::string> streets_{"Main St", "Oak Ave", "Canal Walk", "Juniper Rd", "Elm Ct"};
  std::vector<std::string> cities_{"Richmond", "Columbus", "Madison", "Austin", "Portland"};
  std::vector<std::string> states_{"VA", "OH", "WI", "TX", "OR"};
  std::vector<std::string> pharmacies_{"Riverbend Pharmacy", "Corner Drug", "Northside Rx",
                                       "Valley Apothecary"};
  std::vector<std::vector<std::string>> drugs_{
      {"lisinopril 10 MG Oral Tablet", "314076"},
      {"metformin hydrochloride 500 MG Oral Tablet", "861007"},
      {"atorvastatin 20 MG Oral Tablet", "617310"},
      {"amoxicillin 500 MG Oral Capsule", "308191"}};
  std::vector<std::vector<std::string>> units_{
      {"tablet", "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm", "TAB"},
      {"capsule", "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm", "CAP"},
      {"mL", "http://unitsofmeasure.org", "mL"},
      {"Tablet", "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl#", "C48542"},
      {"tablets", "", ""}};
  std::vector<std::string> texts_{"once daily", "twice daily", "every 6 hours as needed",
                                  "at bedtime"};
};

TransformOptions Fixed(script::Version v) {
  TransformOptions o;
  o.version = v;
  o.newrx.message_id = "roundtrip-1";
  o.newrx.sent_time = "2026-11-26T10:00:00Z";
  return o;
}

const fhir::Resource* FindType(const fhir::Bundle& b, std::string_view type) {
  for (const auto& e : b.entry) {
    if (e.resource && e.resource->resource_type() == type) return &*e.resource;
  }
  return nullptr;
}

}  // namespace

TEST_SUITE("Round trip") {
  TEST_CASE("FHIR → SCRIPT → FHIR keeps every mapped field (300 generated prescriptions)") {
    Generator gen(20261126);
    for (int n = 0; n < 300; ++n) {
      json doc = gen.Prescription();
      std::string text = doc.dump();
      CAPTURE(n);
      CAPTURE(text);
      IssueList issues;
      auto input = fhir::ParsePrescription(text, issues);
      REQUIRE(input.ok());
      auto out = ToScript(text, issues, Fixed(script::Version::k2017071));
      for (const auto& i : issues) {
        if (i.severity == Severity::kError) MESSAGE(ToString(i));
      }
      REQUIRE(out.ok());
      IssueList back_issues;
      auto msg = script::ReadXml(out->xml, back_issues);
      REQUIRE(msg.ok());
      auto bundle = mapping::ToFhir(*msg, back_issues);
      REQUIRE(bundle.ok());
      CHECK_FALSE(back_issues.has_errors());

      const auto* p = FindType(*bundle, "Patient")->get<fhir::Patient>();
      const fhir::Patient& p0 = input->patient;
      CHECK(p->name[0].family == p0.name[0].family);
      CHECK(p->name[0].given == p0.name[0].given);
      CHECK(p->birth_date == p0.birth_date);
      CHECK(p->gender == p0.gender);
      CHECK(p->address[0].line == p0.address[0].line);
      CHECK(p->address[0].city == p0.address[0].city);
      CHECK(p->address[0].postal_code == p0.address[0].postal_code);
      CHECK(p->telecom.size() == p0.telecom.size());

      const auto* pr = FindType(*bundle, "Practitioner")->get<fhir::Practitioner>();
      CHECK(pr->identifier.size() == input->practitioner->identifier.size());
      for (size_t i = 0; i < pr->identifier.size(); ++i) {
        CHECK(pr->identifier[i].value == input->practitioner->identifier[i].value);
      }
      const auto* org = FindType(*bundle, "Organization")->get<fhir::Organization>();
      CHECK(org->name == input->pharmacy->name);
      CHECK(org->identifier[0].value == input->pharmacy->identifier[0].value);

      const auto* mr = FindType(*bundle, "MedicationRequest")->get<fhir::MedicationRequest>();
      const fhir::MedicationRequest& mr0 = input->medication_request;
      CHECK(mr->authored_on == mr0.authored_on);
      CHECK(mr->identifier[0].value == mr0.identifier[0].value);
      CHECK(mr->dosage_instruction[0].text == mr0.dosage_instruction[0].text);
      CHECK(mr->dispense_request->quantity->value == mr0.dispense_request->quantity->value);
      CHECK(mr->dispense_request->number_of_repeats_allowed.value_or(0) ==
            mr0.dispense_request->number_of_repeats_allowed.value_or(0));
      if (mr0.dispense_request->expected_supply_duration) {
        CHECK(mr->dispense_request->expected_supply_duration->value ==
              mr0.dispense_request->expected_supply_duration->value);
      }
      CHECK(mr->substitution->allowed_boolean ==
            (mr0.substitution ? mr0.substitution->allowed_boolean.value_or(true) : true));
      CHECK(mr->note.size() == mr0.note.size());
      CHECK(mr->reason.size() == mr0.reason.size());
      // The drug: its text, and each code.
      const fhir::CodeableConcept* cc =
          mr->medication.concept_ ? &*mr->medication.concept_ : nullptr;
      if (!cc) {
        const auto* med = FindType(*bundle, "Medication")->get<fhir::Medication>();
        REQUIRE(med);
        cc = &*med->code;
      }
      CHECK(cc->text == mr0.medication.concept_->text);
      CHECK(cc->coding.size() == mr0.medication.concept_->coding.size());
      // Structured timing comes back as it went.
      const fhir::Dosage& d0 = mr0.dosage_instruction[0];
      const fhir::Dosage& d1 = mr->dosage_instruction[0];
      if (d0.timing && d0.route) {
        REQUIRE(d1.timing);
        CHECK(d1.timing->repeat->frequency == d0.timing->repeat->frequency);
        CHECK(d1.timing->repeat->period == d0.timing->repeat->period);
        CHECK(d1.timing->repeat->period_unit == d0.timing->repeat->period_unit);
        CHECK(d1.dose_and_rate[0].dose_quantity->value == d0.dose_and_rate[0].dose_quantity->value);
        CHECK(d1.as_needed_for.size() == d0.as_needed_for.size());
      }
    }
  }

  TEST_CASE("SCRIPT → FHIR → SCRIPT reproduces the canonical XML byte for byte (both profiles)") {
    Generator gen(7);
    for (script::Version v : {script::Version::k2017071, script::Version::k2023011}) {
      for (int n = 0; n < 200; ++n) {
        std::string text = gen.Prescription().dump();
        CAPTURE(n);
        IssueList issues;
        auto first = ToScript(text, issues, Fixed(v));
        REQUIRE(first.ok());
        auto fhir_json = ToFhirJson(first->xml, issues, Fixed(v));
        REQUIRE(fhir_json.ok());
        auto second = ToScript(*fhir_json, issues, Fixed(v));
        REQUIRE(second.ok());
        CHECK(second->xml == first->xml);
      }
    }
  }
}
