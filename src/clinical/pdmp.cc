// SPDX-License-Identifier: Apache-2.0
// The FHIR PDMP IG's $pdmp-history operation as JSON, and the ASAP-fed PDMP simulator.
// nlohmann/json without exceptions: every member is type-checked before it is read.
#include "rxflow/clinical/pdmp.h"

#include <algorithm>
#include <cctype>
#include <map>

#include <nlohmann/json.hpp>

#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

namespace rxflow::clinical::pdmp {
namespace {

using internal::Cat;
using Json = nlohmann::json;

constexpr std::string_view kNpi = "http://hl7.org/fhir/sid/us-npi";
constexpr std::string_view kDea = "http://terminology.hl7.org/NamingSystem/USDEA";
constexpr std::string_view kNcpdp =
    "http://terminology.hl7.org/CodeSystem/NCPDPProviderIdentificationNumber";
constexpr std::string_view kNdc = "http://hl7.org/fhir/sid/ndc";
constexpr std::string_view kRxNorm = "http://www.nlm.nih.gov/research/umls/rxnorm";
constexpr std::string_view kRefill =
    "http://hl7.org/fhir/us/pdmp/StructureDefinition/pdmp-extension-rx-refill-number";
constexpr std::string_view kV20203 = "http://terminology.hl7.org/CodeSystem/v2-0203";
constexpr std::string_view kMedDispenseProfile =
    "http://hl7.org/fhir/us/pdmp/StructureDefinition/pdmp-medicationdispense";
constexpr std::string_view kPharmacyProfile =
    "http://hl7.org/fhir/us/pdmp/StructureDefinition/pdmp-organization-pharmacy";

// A string member, or "" when absent or not a string.
std::string Str(const Json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
// A number member as text ("10", "2.5"), or "" when absent.
std::string Num(const Json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  if (it == j.end()) return {};
  if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
  if (it->is_number_unsigned()) return std::to_string(it->get<uint64_t>());
  if (it->is_number_float()) {
    std::string s = it->dump();
    return s;
  }
  return {};
}
const Json& Member(const Json& j, const char* key) {
  static const Json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}
const Json& First(const Json& array) {
  static const Json kNull;
  return array.is_array() && !array.empty() ? array[0] : kNull;
}
// The value of the first identifier with `system`.
std::string IdentifierValue(const Json& identifiers, std::string_view system) {
  if (!identifiers.is_array()) return {};
  for (const Json& id : identifiers) {
    if (Str(id, "system") == system) return Str(id, "value");
  }
  return {};
}

bool IsDate(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

Json HumanName(const std::string& family, const std::string& given) {
  Json name = Json::object();
  if (!family.empty()) name["family"] = family;
  if (!given.empty()) name["given"] = Json::array({given});
  return name;
}

Json Identifier(std::string_view system, const std::string& value) {
  return Json{{"system", system}, {"value", value}};
}

Json Parameter(const char* name, Json resource) {
  return Json{{"name", name}, {"resource", std::move(resource)}};
}

// JSON text; a string that is not UTF-8 (an ASAP file in Latin-1, a PDMP's diagnostics cut
// short) is written with U+FFFD rather than thrown on.
std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// "0030" → "30", "" or non-digits → "" (ASAP counts carry leading zeros; JSON numbers and
// comparisons must not).
std::string CanonicalCount(std::string_view s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string_view::npos) return {};
  size_t first = s.find_first_not_of('0');
  return first == std::string_view::npos ? "0" : std::string(s.substr(first));
}

// A JSON number from an ASAP or RxFlow decimal ("20", "7.5", "030"); null when it is none.
Json Number(const std::string& s) {
  std::string t = s;
  if (std::string c = CanonicalCount(s); !c.empty()) t = c;
  Json n = Json::parse(t, nullptr, /*allow_exceptions=*/false);
  return n.is_number() ? n : Json();
}

constexpr std::string_view kFillNumber =
    "http://hl7.org/fhir/us/pdmp/StructureDefinition/pdmp-extension-rx-fill-number";
constexpr std::string_view kResponseProfile =
    "http://hl7.org/fhir/us/pdmp/StructureDefinition/pdmp-parameters-response";
constexpr std::string_view kPmixStatus = "http://terminology.hl7.org/CodeSystem/PMIXStatusCode";

// A FHIR Patient as the PDMP IG profiles it: name[0].family, name[0].given[0], birthDate,
// gender, address[0].postalCode and .state (what a query sends and an answer echoes).
Patient PatientOf(const Json& r) {
  Patient p;
  const Json& n = First(Member(r, "name"));
  p.family = Str(n, "family");
  if (const Json& g = First(Member(n, "given")); g.is_string()) p.given = g.get<std::string>();
  p.birth_date = Str(r, "birthDate");
  p.gender = Str(r, "gender");
  const Json& a = First(Member(r, "address"));
  p.postal_code = Str(a, "postalCode");
  p.state = Str(a, "state");
  return p;
}

}  // namespace

std::string_view OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kFound:
      return "found";
    case Outcome::kNotFound:
      return "not-found";
    case Outcome::kError:
      return "error";
    case Outcome::kReport:
      return "report";
    case Outcome::kUnavailable:
      return "unavailable";
  }
  return "unknown";
}

// ---- request ------------------------------------------------------------------------------

std::string HistoryRequestJson(const Query& q) {
  Json patient{
      {"resourceType", "Patient"},
      {"id", "patient"},
      {"meta", {{"profile", {"http://hl7.org/fhir/us/pdmp/StructureDefinition/pdmp-patient"}}}},
      {"name", Json::array({HumanName(q.patient.family, q.patient.given)})},
      {"birthDate", q.patient.birth_date}};
  if (!q.patient.gender.empty()) patient["gender"] = q.patient.gender;
  if (!q.patient.postal_code.empty() || !q.patient.state.empty()) {
    Json address = Json::object();
    if (!q.patient.state.empty()) address["state"] = q.patient.state;
    if (!q.patient.postal_code.empty()) address["postalCode"] = q.patient.postal_code;
    patient["address"] = Json::array({address});
  }
  Json practitioner{{"resourceType", "Practitioner"}, {"id", "requester"}};
  Json ids = Json::array();
  if (!q.requester.npi.empty()) ids.push_back(Identifier(kNpi, q.requester.npi));
  if (!q.requester.dea_number.empty()) ids.push_back(Identifier(kDea, q.requester.dea_number));
  if (!ids.empty()) practitioner["identifier"] = ids;
  practitioner["name"] = Json::array({HumanName(q.requester.family, q.requester.given)});
  if (!q.requester.state.empty()) {
    practitioner["address"] = Json::array({Json{{"state", q.requester.state}}});
  }
  Json role{{"resourceType", "PractitionerRole"},
            {"id", "requester-role"},
            {"practitioner", {{"reference", "Practitioner/requester"}}}};
  Json params = Json::array(
      {Parameter("patient", patient), Parameter("authorized-practitioner", practitioner)});
  if (!q.requester.organization_name.empty()) {
    role["organization"] = {{"reference", "Organization/requester-organization"},
                            {"display", q.requester.organization_name}};
    params.push_back(Parameter("authorized-practitioner-role", role));
    params.push_back(Parameter("authorized-practitioner-organization",
                               Json{{"resourceType", "Organization"},
                                    {"id", "requester-organization"},
                                    {"name", q.requester.organization_name}}));
  } else {
    params.push_back(Parameter("authorized-practitioner-role", role));
  }
  params.push_back(Json{{"name", "pre-stage-only"}, {"valueBoolean", false}});
  Json out{
      {"resourceType", "Parameters"},
      {"meta",
       {{"profile",
         {"http://hl7.org/fhir/us/pdmp/StructureDefinition/pdmp-parameters-request-operation"}}}},
      {"parameter", std::move(params)}};
  return out.dump();
}

StatusOr<Query> ParseHistoryRequest(std::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("$: not JSON");
  if (Str(j, "resourceType") != "Parameters") {
    return absl::InvalidArgumentError("$.resourceType: not Parameters");
  }
  const Json& params = Member(j, "parameter");
  if (!params.is_array()) return absl::InvalidArgumentError("$.parameter: missing");
  Query q;
  bool have_patient = false;
  for (size_t i = 0; i < params.size(); ++i) {
    const Json& p = params[i];
    const std::string name = Str(p, "name");
    const Json& r = Member(p, "resource");
    const std::string at = Cat("$.parameter[", i, "].resource");
    if (name == "patient") {
      if (Str(r, "resourceType") != "Patient") {
        return absl::InvalidArgumentError(Cat(at, ".resourceType: not Patient"));
      }
      q.patient = PatientOf(r);
      if (q.patient.family.empty()) {
        return absl::InvalidArgumentError(Cat(at, ".name[0].family: required"));
      }
      if (q.patient.given.empty()) {
        return absl::InvalidArgumentError(Cat(at, ".name[0].given[0]: required"));
      }
      if (!IsDate(q.patient.birth_date)) {
        return absl::InvalidArgumentError(
            Cat(at, ".birthDate: ", q.patient.birth_date.empty() ? "required" : "not YYYY-MM-DD"));
      }
      have_patient = true;
    } else if (name == "authorized-practitioner") {
      const Json& n = First(Member(r, "name"));
      q.requester.family = Str(n, "family");
      if (const Json& g = First(Member(n, "given")); g.is_string()) {
        q.requester.given = g.get<std::string>();
      }
      q.requester.npi = IdentifierValue(Member(r, "identifier"), kNpi);
      q.requester.dea_number = IdentifierValue(Member(r, "identifier"), kDea);
      q.requester.state = Str(First(Member(r, "address")), "state");
    } else if (name == "authorized-practitioner-organization") {
      q.requester.organization_name = Str(r, "name");
    }
  }
  if (!have_patient) return absl::InvalidArgumentError("$.parameter: no patient parameter");
  return q;
}

// ---- response -----------------------------------------------------------------------------

std::string HistoryResponseJson(const Result& result) {
  Json params = Json::array();
  if (!result.dispenses.empty()) {
    Json entries = Json::array();
    const Patient& patient = result.patient;
    Json p{{"resourceType", "Patient"},
           {"name", Json::array({HumanName(patient.family, patient.given)})}};
    if (!patient.birth_date.empty()) p["birthDate"] = patient.birth_date;
    if (!patient.gender.empty()) p["gender"] = patient.gender;
    if (!patient.postal_code.empty() || !patient.state.empty()) {
      Json address = Json::object();
      if (!patient.state.empty()) address["state"] = patient.state;
      if (!patient.postal_code.empty()) address["postalCode"] = patient.postal_code;
      p["address"] = Json::array({address});
    }
    entries.push_back(Json{{"fullUrl", "urn:uuid:patient"}, {"resource", p}});
    std::vector<std::string> pharmacies;  // "ncpdp|npi" already added
    for (size_t i = 0; i < result.dispenses.size(); ++i) {
      const Dispense& d = result.dispenses[i];
      const std::string pharmacy_key = Cat(d.pharmacy_ncpdp_id, "|", d.pharmacy_npi);
      const size_t pharmacy_at =
          std::find(pharmacies.begin(), pharmacies.end(), pharmacy_key) - pharmacies.begin();
      const std::string pharmacy_url = Cat("urn:uuid:pharmacy-", pharmacy_at + 1);
      if (pharmacy_at == pharmacies.size()) {
        pharmacies.push_back(pharmacy_key);
        Json ids = Json::array();
        if (!d.pharmacy_npi.empty()) ids.push_back(Identifier(kNpi, d.pharmacy_npi));
        if (!d.pharmacy_ncpdp_id.empty()) ids.push_back(Identifier(kNcpdp, d.pharmacy_ncpdp_id));
        Json org{{"resourceType", "Organization"},
                 {"meta", {{"profile", {kPharmacyProfile}}}},
                 {"identifier", ids},
                 {"active", true}};
        if (!d.pharmacy_name.empty()) org["name"] = d.pharmacy_name;
        entries.push_back(Json{{"fullUrl", pharmacy_url}, {"resource", org}});
      }
      Json coding = Json::array();
      if (!d.rxcui.empty()) {
        Json c{{"system", kRxNorm}, {"code", d.rxcui}};
        if (!d.drug_name.empty()) c["display"] = d.drug_name;
        coding.push_back(c);
      }
      if (!d.ndc11.empty()) coding.push_back(Json{{"system", kNdc}, {"code", d.ndc11}});
      Json medication{{"coding", coding}};
      if (!d.drug_name.empty()) medication["text"] = d.drug_name;
      Json actor{{"reference", pharmacy_url}};
      if (!d.pharmacy_ncpdp_id.empty()) {
        actor["identifier"] = Identifier(kNcpdp, d.pharmacy_ncpdp_id);
      } else if (!d.pharmacy_npi.empty()) {
        actor["identifier"] = Identifier(kNpi, d.pharmacy_npi);
      }
      if (!d.pharmacy_name.empty()) actor["display"] = d.pharmacy_name;
      Json md{{"resourceType", "MedicationDispense"},
              {"meta", {{"profile", {kMedDispenseProfile}}}},
              {"status", d.status.empty() ? "completed" : d.status},
              {"medicationCodeableConcept", medication},
              {"subject", {{"reference", "urn:uuid:patient"}}},
              {"performer", Json::array({Json{{"actor", actor}}})},
              {"quantity", {{"unit", d.quantity_unit.empty() ? "each" : d.quantity_unit}}},
              {"daysSupply", Json::object()},
              {"whenPrepared", d.date_filled}};
      if (Json q = Number(d.quantity); !q.is_null()) md["quantity"]["value"] = q;
      if (Json q = Number(d.days_supply); !q.is_null()) md["daysSupply"]["value"] = q;
      if (!d.rx_number.empty()) {
        md["authorizingPrescription"] = Json::array({Json{
            {"identifier",
             {{"type", {{"coding", Json::array({Json{{"system", kV20203}, {"code", "FILL"}}})}}},
              {"value", d.rx_number}}}}});
      }
      if (Json n = Number(d.refill_number); n.is_number_integer() && n.get<int64_t>() > 0) {
        md["extension"] = Json::array({Json{{"url", kFillNumber}, {"valuePositiveInt", n}}});
      }
      entries.push_back(Json{{"fullUrl", Cat("urn:uuid:dispense-", i + 1)}, {"resource", md}});
    }
    params.push_back(Parameter(
        "pdmp-history-data",
        Json{{"resourceType", "Bundle"},
             {"meta",
              {{"profile",
                {"http://hl7.org/fhir/us/pdmp/StructureDefinition/pdmp-bundle-history-result"}}}},
             {"type", "collection"},
             {"entry", entries}}));
  }
  if (!result.report_url.empty()) {
    params.push_back(Json{{"name", "pdmp-history-link"}, {"valueUrl", result.report_url}});
  }
  const bool not_found =
      result.outcome == Outcome::kNotFound ||
      (result.dispenses.empty() && result.report_url.empty() && result.outcome != Outcome::kError);
  if (!result.messages.empty() || not_found || result.outcome == Outcome::kError) {
    const bool error = result.outcome == Outcome::kError;
    Json issues = Json::array();
    auto issue = [&](const std::string* text) {
      Json i{{"severity", error ? "error" : "information"},
             {"code", error ? "processing" : "informational"}};
      if (not_found) {
        i["details"] = {{"coding", Json::array({Json{{"system", kPmixStatus},
                                                     {"code", "no-data"},
                                                     {"display", "No Data"}}})}};
      }
      if (text) i["diagnostics"] = *text;
      issues.push_back(std::move(i));
    };
    for (const std::string& m : result.messages) issue(&m);
    if (issues.empty()) issue(nullptr);
    params.push_back(
        Parameter("outcome", Json{{"resourceType", "OperationOutcome"}, {"issue", issues}}));
  }
  Json out{{"resourceType", "Parameters"},
           {"meta", {{"profile", {kResponseProfile}}}},
           {"parameter", std::move(params)}};
  return Dump(out);
}

StatusOr<Result> ParseHistoryResponse(std::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("$: not JSON");
  if (Str(j, "resourceType") != "Parameters") {
    return absl::InvalidArgumentError(
        Cat("$.resourceType: ", Str(j, "resourceType").substr(0, 40), " is not Parameters"));
  }
  const Json& params = Member(j, "parameter");
  const Json* bundle = nullptr;
  std::string bundle_path;
  std::vector<const Json*> outcomes;  // OperationOutcome resources
  Result out;
  bool any = false;
  if (params.is_array()) {
    for (size_t i = 0; i < params.size(); ++i) {
      const std::string name = Str(params[i], "name");
      const Json& resource = Member(params[i], "resource");
      // STU1's name, and the pre-publication draft's.
      if ((name == "pdmp-history-data" || name == "pdmp-history-result") &&
          Str(resource, "resourceType") == "Bundle") {
        bundle = &resource;
        bundle_path = Cat("$.parameter[", i, "].resource.entry");
        any = true;
      } else if (name == "pdmp-history-link") {
        out.report_url = Str(params[i], "valueUrl");
        if (out.report_url.empty()) out.report_url = Str(params[i], "valueUri");
        any = !out.report_url.empty() || any;
      } else if (name == "outcome" && Str(resource, "resourceType") == "OperationOutcome") {
        outcomes.push_back(&resource);
        any = true;
      } else if (name == "pre-stage-retrieval-key") {
        return absl::InvalidArgumentError(
            Cat("$.parameter[", i,
                "]: a pre-stage-retrieval-key (RxFlow does not ask for pre-staging)"));
      }
    }
  }
  if (!any) {
    return absl::InvalidArgumentError(
        "$.parameter: none of pdmp-history-data, pdmp-history-link, outcome");
  }
  const Json& entries = bundle ? Member(*bundle, "entry") : Json();
  // Resources of the Bundle by fullUrl and by "Type/id", for references.
  std::map<std::string, const Json*> by_reference;
  if (entries.is_array()) {
    for (const Json& e : entries) {
      const Json& r = Member(e, "resource");
      if (std::string url = Str(e, "fullUrl"); !url.empty()) by_reference.emplace(url, &r);
      if (std::string id = Str(r, "id"); !id.empty()) {
        by_reference.emplace(Cat(Str(r, "resourceType"), "/", id), &r);
      }
    }
  }
  auto resolve = [&](const std::string& reference) -> const Json* {
    auto it = by_reference.find(reference);
    return it == by_reference.end() ? nullptr : it->second;
  };
  if (entries.is_array()) {
    for (size_t i = 0; i < entries.size(); ++i) {
      const Json& r = Member(entries[i], "resource");
      const std::string at = Cat(bundle_path, "[", i, "].resource");
      const std::string type = Str(r, "resourceType");
      if (type == "OperationOutcome") {
        outcomes.push_back(&r);  // the draft put it in the Bundle
      } else if (type == "Patient" && out.patient.family.empty()) {
        out.patient = PatientOf(r);
      } else if (type == "MedicationDispense") {
        Dispense d;
        d.status = Str(r, "status");
        const std::string prepared = Str(r, "whenPrepared");
        if (prepared.size() < 10 || !IsDate(std::string_view(prepared).substr(0, 10))) {
          return absl::InvalidArgumentError(
              Cat(at, ".whenPrepared: ", prepared.empty() ? "required" : "not a date"));
        }
        d.date_filled = prepared.substr(0, 10);
        const Json* med_concept = &Member(r, "medicationCodeableConcept");
        if (med_concept->is_null()) med_concept = &Member(Member(r, "medication"), "concept");
        if (const Json& codings = Member(*med_concept, "coding"); codings.is_array()) {
          for (const Json& c : codings) {
            const std::string system = Str(c, "system");
            if (system == kRxNorm && d.rxcui.empty()) {
              d.rxcui = Str(c, "code");
              if (d.drug_name.empty()) d.drug_name = Str(c, "display");
            } else if (system == kNdc && d.ndc11.empty()) {
              d.ndc11 = Str(c, "code");
            }
          }
        }
        if (std::string t = Str(*med_concept, "text"); !t.empty()) d.drug_name = t;
        const Json& quantity = Member(r, "quantity");
        d.quantity = Num(quantity, "value");
        d.quantity_unit = Str(quantity, "unit");
        d.days_supply = Num(Member(r, "daysSupply"), "value");
        // STU1 names the prescription in authorizingPrescription; the draft's examples
        // used the dispense's own FILL identifier.
        const Json& prescription =
            Member(First(Member(r, "authorizingPrescription")), "identifier");
        if (Str(First(Member(Member(prescription, "type"), "coding")), "code") == "FILL") {
          d.rx_number = Str(prescription, "value");  // not a PLAC (the prescriber's order)
        }
        if (const Json& ids = Member(r, "identifier"); d.rx_number.empty() && ids.is_array()) {
          for (const Json& id : ids) {
            const Json& coding = First(Member(Member(id, "type"), "coding"));
            if (Str(coding, "code") == "FILL") d.rx_number = Str(id, "value");
          }
        }
        if (const Json& exts = Member(r, "extension"); exts.is_array()) {
          for (const Json& e : exts) {
            const std::string url = Str(e, "url");
            if (url == kFillNumber || url == kRefill) d.refill_number = Num(e, "valuePositiveInt");
          }
        }
        const Json& actor = Member(First(Member(r, "performer")), "actor");
        const Json& actor_id = Member(actor, "identifier");
        if (Str(actor_id, "system") == kNcpdp) d.pharmacy_ncpdp_id = Str(actor_id, "value");
        if (Str(actor_id, "system") == kNpi) d.pharmacy_npi = Str(actor_id, "value");
        d.pharmacy_name = Str(actor, "display");
        if (const Json* org = resolve(Str(actor, "reference"))) {
          const Json& ids = Member(*org, "identifier");
          if (d.pharmacy_ncpdp_id.empty()) d.pharmacy_ncpdp_id = IdentifierValue(ids, kNcpdp);
          if (d.pharmacy_npi.empty()) d.pharmacy_npi = IdentifierValue(ids, kNpi);
          if (d.pharmacy_name.empty()) d.pharmacy_name = Str(*org, "name");
        }
        out.dispenses.push_back(std::move(d));
      }
    }
  }
  bool error = false;
  for (const Json* o : outcomes) {
    const Json& issues = Member(*o, "issue");
    if (!issues.is_array()) continue;
    for (const Json& issue : issues) {
      const std::string severity = Str(issue, "severity");
      if (severity == "error" || severity == "fatal") error = true;
      std::string text = Str(issue, "diagnostics");
      if (text.empty()) text = Str(Member(issue, "details"), "text");
      if (!text.empty() && out.messages.size() < 20) out.messages.push_back(text.substr(0, 1000));
    }
  }
  std::stable_sort(
      out.dispenses.begin(), out.dispenses.end(),
      [](const Dispense& a, const Dispense& b) { return a.date_filled > b.date_filled; });
  if (!out.dispenses.empty()) {
    out.outcome = Outcome::kFound;
  } else if (!out.report_url.empty()) {
    out.outcome = Outcome::kReport;
  } else if (error) {
    out.outcome = Outcome::kError;
  } else {
    out.outcome = Outcome::kNotFound;
  }
  return out;
}

std::string ResultJson(const Result& r, std::string_view pdmp_name) {
  Json dispensings = Json::array();
  for (const Dispense& d : r.dispenses) {
    dispensings.push_back({{"date_filled", d.date_filled},
                           {"rx_number", d.rx_number},
                           {"refill_number", d.refill_number},
                           {"ndc", d.ndc11},
                           {"rxcui", d.rxcui},
                           {"drug", d.drug_name},
                           {"quantity", d.quantity},
                           {"quantity_unit", d.quantity_unit},
                           {"days_supply", d.days_supply},
                           {"status", d.status},
                           {"pharmacy",
                            {{"ncpdp_id", d.pharmacy_ncpdp_id},
                             {"npi", d.pharmacy_npi},
                             {"name", d.pharmacy_name}}}});
  }
  return Dump(Json{{"pdmp", pdmp_name},
                   {"outcome", OutcomeName(r.outcome)},
                   {"dispensings", std::move(dispensings)},
                   {"report_url", r.report_url},
                   {"messages", r.messages}});
}

// ---- simulator ----------------------------------------------------------------------------

namespace {

std::string Fold(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
std::string Digits(std::string_view s, size_t n) {
  std::string out;
  for (char c : s) {
    if (std::isdigit(static_cast<unsigned char>(c))) out.push_back(c);
    if (out.size() == n) break;
  }
  return out;
}
// CCYYMMDD → YYYY-MM-DD.
std::string IsoDate(std::string_view d) {
  if (d.size() != 8) return std::string(d);
  return Cat(d.substr(0, 4), "-", d.substr(4, 2), "-", d.substr(6, 2));
}
bool SameDispensing(const asap::Pharmacy& pa, const asap::Dispensing& a, const asap::Pharmacy& pb,
                    const asap::Dispensing& b) {
  return pa.ncpdp_id == pb.ncpdp_id && pa.npi == pb.npi && pa.dea_number == pb.dea_number &&
         a.rx_number == b.rx_number &&
         CanonicalCount(a.refill_number) == CanonicalCount(b.refill_number);
}

}  // namespace

Status Simulator::AddAsapFile(std::string_view text) {
  RXFLOW_ASSIGN_OR_RETURN(asap::Report report, asap::Read(text));
  std::lock_guard<std::mutex> lock(mu_);
  const std::string file_key = Cat(report.source_id, "\n", report.control_number);
  if (std::find(control_numbers_.begin(), control_numbers_.end(), file_key) !=
      control_numbers_.end()) {
    return absl::AlreadyExistsError(Cat("ASAP file ", report.control_number, " from ",
                                        report.source_id, " was received before"));
  }
  for (asap::PharmacyReport& pr : report.pharmacies) {
    for (asap::Dispensing& d : pr.dispensings) {
      auto same = [&](const Record& r) {
        return SameDispensing(r.pharmacy, r.dispensing, pr.pharmacy, d);
      };
      if (d.reporting_status == "01" || d.reporting_status == "02") {
        records_.erase(std::remove_if(records_.begin(), records_.end(), same), records_.end());
        if (d.reporting_status == "02") continue;
      }
      records_.push_back(Record{pr.pharmacy, std::move(d)});
    }
  }
  control_numbers_.push_back(file_key);
  return absl::OkStatus();
}

size_t Simulator::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return records_.size();
}

StatusOr<Result> Simulator::History(const Query& q) {
  const std::string family = Fold(q.patient.family), given = Fold(q.patient.given);
  const std::string birth = Digits(q.patient.birth_date, 8);
  const std::string zip = Digits(q.patient.postal_code, 5);
  if (family.empty() || given.empty() || birth.size() != 8) {
    Result r;
    r.outcome = Outcome::kError;
    r.messages.emplace_back("a query needs the patient's family name, given name and birth date");
    return r;
  }
  Result out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const Record& rec : records_) {
    const asap::Patient& p = rec.dispensing.patient;
    if (Fold(p.last_name) != family || Fold(p.first_name) != given || p.birth_date != birth) {
      continue;
    }
    const std::string rec_zip = Digits(p.zip, 5);
    if (zip.size() == 5 && rec_zip.size() == 5 && zip != rec_zip) continue;
    const asap::Dispensing& d = rec.dispensing;
    if (out.dispenses.empty()) {  // the PDMP's record of the patient, not the request's
      out.patient.family = p.last_name;
      out.patient.given = p.first_name;
      out.patient.birth_date = IsoDate(p.birth_date);
      out.patient.gender = p.gender == "F" ? "female" : p.gender == "M" ? "male" : "unknown";
      out.patient.postal_code = p.zip;
      out.patient.state = p.state;
    }
    Dispense x;
    x.date_filled = IsoDate(d.date_filled);
    x.rx_number = d.rx_number;
    x.refill_number = CanonicalCount(d.refill_number);
    if (x.refill_number == "0") x.refill_number.clear();
    if (d.product_qualifier == "01") x.ndc11 = d.product_id;
    x.rxcui = d.rxnorm_code;
    x.quantity = d.quantity;
    x.quantity_unit = d.dosage_units == "02" ? "mL" : d.dosage_units == "03" ? "g" : "each";
    x.days_supply = d.days_supply;
    x.pharmacy_ncpdp_id = rec.pharmacy.ncpdp_id;
    x.pharmacy_npi = rec.pharmacy.npi;
    x.pharmacy_name = rec.pharmacy.name;
    out.dispenses.push_back(std::move(x));
  }
  std::stable_sort(
      out.dispenses.begin(), out.dispenses.end(),
      [](const Dispense& a, const Dispense& b) { return a.date_filled > b.date_filled; });
  out.outcome = out.dispenses.empty() ? Outcome::kNotFound : Outcome::kFound;
  if (out.dispenses.empty()) {
    out.messages.emplace_back("No PDMP history was found for the submitted patient");
  }
  return out;
}

}  // namespace rxflow::clinical::pdmp
