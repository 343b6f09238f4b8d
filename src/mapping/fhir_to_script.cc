// SPDX-License-Identifier: Apache-2.0
// FHIR R5 prescription → SCRIPT NewRx / CancelRx.
#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "rxflow/internal/strcat.h"
#include "rxflow/mapping/codes.h"
#include "rxflow/mapping/mapping.h"

#include "common/text.h"
#include "mapping/into.h"
#include "mapping/parties.h"
#include "mapping/routing_header.h"
#include "mapping/sig.h"
#include "mapping/transliterate.h"

namespace rxflow::mapping {

using rxflow::internal::Cat;

std::string_view ProvenanceName(Provenance p) {
  switch (p) {
    case Provenance::kCoded:
      return "coded";
    case Provenance::kDerived:
      return "derived";
    case Provenance::kAbsent:
      return "absent";
  }
  return "absent";
}

namespace {

std::string TypeCode(const fhir::Identifier& id) {
  if (!id.type) return {};
  for (const fhir::Coding& c : id.type->coding) {
    if (c.system == kV2IdentifierType || c.system.empty()) return c.code;
  }
  return {};
}

// The text of a JSON string literal as an extension keeps it (`"a\\"b"` → `a"b`); nullopt
// when `json` is not a string literal.
std::optional<std::string> JsonStringValue(std::string_view json) {
  if (json.size() < 2 || json.front() != '"' || json.back() != '"') return std::nullopt;
  std::string out;
  auto append_utf8 = [&](uint32_t cp) { rxflow::internal::AppendUtf8(out, cp); };
  auto hex4 = [&](size_t at) -> std::optional<uint32_t> {
    if (at + 4 > json.size() - 1) return std::nullopt;
    uint32_t v = 0;
    for (size_t k = at; k < at + 4; ++k) {
      char c = json[k];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= c - '0';
      else if (c >= 'a' && c <= 'f')
        v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        v |= c - 'A' + 10;
      else
        return std::nullopt;
    }
    return v;
  };
  for (size_t i = 1; i + 1 < json.size(); ++i) {
    char c = json[i];
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (++i + 1 > json.size() - 1) return std::nullopt;
    switch (json[i]) {
      case '"':
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '/':
        out.push_back('/');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        auto cp = hex4(i + 1);
        if (!cp) return std::nullopt;
        i += 4;
        if (*cp >= 0xD800 && *cp < 0xDC00 && i + 2 < json.size() - 1 && json[i + 1] == '\\' &&
            json[i + 2] == 'u') {
          auto low = hex4(i + 3);
          if (low && *low >= 0xDC00 && *low < 0xE000) {
            *cp = 0x10000 + ((*cp - 0xD800) << 10) + (*low - 0xDC00);
            i += 6;
          }
        }
        append_utf8(*cp);
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return out;
}

// RxFlow's script-element extension (written by SCRIPT → FHIR for SCRIPT elements with no
// FHIR home): the SCRIPT element's name and its value, each a valueString sub-extension.
struct ScriptElementValue {
  std::string element;
  std::optional<std::string> value;
};
std::optional<ScriptElementValue> ReadScriptElement(const fhir::Extension& e) {
  if (e.url != kScriptElementExtension) return std::nullopt;
  ScriptElementValue out;
  for (const fhir::Extension& sub : e.extension) {
    if (sub.value_type != "String") continue;
    if (sub.url == "element") {
      if (auto v = JsonStringValue(sub.value_json)) out.element = *v;
    } else if (sub.url == "value") {
      out.value = JsonStringValue(sub.value_json);
    }
  }
  return out;
}

// The script-element extensions FHIR → SCRIPT sends back, with where they sit: on the
// Patient or the MedicationRequest, and which of NewRx / CancelRx has the element (per the
// 2017071 NewRxPrescribedMedication and PrescribedMedicationForCancelRx types).
struct ScriptElementRow {
  std::string_view element;   // the extension's `element`
  std::string_view xml_path;  // the SCRIPT element, under the transaction
  bool on_patient;
  bool newrx;
  bool cancelrx;
  size_t max;  // longest value sent (RxFlow never truncates)
};
constexpr ScriptElementRow kScriptElements[] = {
    // An RxNorm code's term type (a FHIR coding has none): sent instead of
    // NewRxOptions.rxnorm_qualifier with the first RxNorm coding.
    {"DrugCoded/DrugDBCode/Qualifier", "MedicationPrescribed/DrugCoded/DrugDBCode/Qualifier", false,
     true, true, 3},
    {"DoNotFill", "MedicationPrescribed/DoNotFill", false, true, false, 1},
    {"OrderCaptureMethod", "MedicationPrescribed/OrderCaptureMethod", false, true, false, 2},
    {"PriorAuthorization", "MedicationPrescribed/PriorAuthorization", false, true, true, 35},
    {"RxFillIndicator", "MedicationPrescribed/RxFillIndicator", false, true, false, 40},
    {"DrugCoverageStatusCode", "MedicationPrescribed/DrugCoverageStatusCode", false, true, true, 2},
    {"LastFillDate", "MedicationPrescribed/LastFillDate", false, true, true, 35},
    {"PharmacyRequestedRefills", "MedicationDispensed/PharmacyRequestedRefills", false, false,
     false, 2},
    {"PrescriberCheckedREMS", "MedicationPrescribed/PrescriberCheckedREMS", false, true, false, 1},
    {"REMSPatientRiskCategory", "MedicationPrescribed/REMSPatientRiskCategory", false, true, false,
     35},
    {"REMSAuthorizationNumber", "MedicationPrescribed/REMSAuthorizationNumber", false, true, false,
     140},
    {"ProhibitRenewalRequest", "ProhibitRenewalRequest", false, true, false, 5},
    {"ChangeOfPrescriptionStatusFlag", "ChangeOfPrescriptionStatusFlag", false, false, true, 1},
    {"LanguageNameCode", "Patient/HumanPatient/LanguageNameCode", true, true, true, 3},
    {"TestMessage", "Header/TestMessage", false, true, true, 1},
    // The routing header of the message a prescription was read from (SCRIPT → FHIR keeps
    // it). Each message has its own header: compared with the one sent, never sent as such
    // (KeptHeaderNotSent).
    {"Header/To", "Header/To", false, true, true, 35},
    {"Header/To/@Qualifier", "Header/To/@Qualifier", false, true, true, 3},
    {"Header/From", "Header/From", false, true, true, 35},
    {"Header/From/@Qualifier", "Header/From/@Qualifier", false, true, true, 3},
    {"Header/SenderSoftware/SenderSoftwareDeveloper",
     "Header/SenderSoftware/SenderSoftwareDeveloper", false, true, true, 35},
    {"Header/SenderSoftware/SenderSoftwareProduct", "Header/SenderSoftware/SenderSoftwareProduct",
     false, true, true, 35},
    {"Header/SenderSoftware/SenderSoftwareVersionRelease",
     "Header/SenderSoftware/SenderSoftwareVersionRelease", false, true, true, 35},
    {"Header/RelatesToMessageID", "Header/RelatesToMessageID", false, true, true, 35},
    // The code system versions of a structured Sig (sent instead of NewRxOptions'); the
    // schema's type is an unbounded string.
    {"Sig/CodeSystem/SNOMEDVersion", "MedicationPrescribed/Sig/CodeSystem/SNOMEDVersion", false,
     true, true, 100},
    {"Sig/CodeSystem/FMTVersion", "MedicationPrescribed/Sig/CodeSystem/FMTVersion", false, true,
     true, 100},
};
// The Header member of a kept routing element (kRoutingEnvelope, RelatesToMessageID).
std::string script::Header::*RoutingMember(std::string_view element) {
  for (const RoutingElement& e : kRoutingEnvelope) {
    if (e.path == element) return e.member;
  }
  return kRelatesTo.member;
}
const ScriptElementRow* FindScriptElement(std::string_view element) {
  for (const ScriptElementRow& r : kScriptElements) {
    if (r.element == element) return &r;
  }
  return nullptr;
}

// What an extension RxFlow does not send carries, for its warning: the SCRIPT element of a
// script-element extension, else the URL.
std::string ExtensionSubject(const fhir::Extension& e) {
  if (auto se = ReadScriptElement(e)) {
    if (se->element.empty()) return "a script-element extension naming no SCRIPT element";
    const ScriptElementRow* row = FindScriptElement(se->element);
    return Cat("SCRIPT ", row ? row->xml_path : std::string_view(se->element).substr(0, 100),
               " (script-element extension)");
  }
  return Cat("extension ", std::string_view(e.url).substr(0, 200));
}

// Whether `cc` has a coding of `system` (or of no system) with one of `codes`.
bool HasCoding(const std::optional<fhir::CodeableConcept>& cc, std::string_view system,
               std::initializer_list<std::string_view> codes) {
  if (!cc) return false;
  for (const fhir::Coding& c : cc->coding) {
    if (c.system != system && !c.system.empty()) continue;
    if (std::find(codes.begin(), codes.end(), c.code) != codes.end()) return true;
  }
  return false;
}

// Whether `cc` has a SNOMED CT coding with one of `codes`.
bool HasSnomed(const std::optional<fhir::CodeableConcept>& cc,
               std::initializer_list<std::string_view> codes) {
  if (!cc) return false;
  for (const fhir::Coding& c : cc->coding) {
    if (c.system == kSnomed && std::find(codes.begin(), codes.end(), c.code) != codes.end()) {
      return true;
    }
  }
  return false;
}

// Whether an allergy's informant is the patient or someone on the patient's side (a
// RelatedPerson): by the actor's type, its reference to the patient, or a Type/id reference.
// (ParsePrescription fills in the type of an actor that resolves in a Bundle.)
bool PatientSide(const std::optional<fhir::Reference>& actor,
                 const std::optional<fhir::Reference>& patient) {
  if (!actor) return false;
  if (!actor->type.empty()) return actor->type == "Patient" || actor->type == "RelatedPerson";
  const std::string& r = actor->reference;
  if (r.empty()) return false;
  if (patient && r == patient->reference) return true;
  for (std::string_view type : {"Patient/", "RelatedPerson/"}) {
    if (r.starts_with(type) || r.find(Cat("/", type)) != std::string::npos) return true;
  }
  return false;
}

// A SCRIPT text one FHIR element fills: the code or system that selects it, the field, its
// longest value and what the issues call it.
struct TextSlot {
  std::string_view key;
  std::string* field = nullptr;
  size_t max = 0;
  std::string_view what;
};

// The code of the first coding of `cc` in `system`, or "".
std::string_view CodeIn(const fhir::CodeableConcept& cc, std::string_view system) {
  for (const fhir::Coding& c : cc.coding) {
    if (c.system == system) return c.code;
  }
  return {};
}

// The Coverage script-element extension `element` (written by SCRIPT → FHIR for the
// BenefitsCoordination elements with no FHIR home): the field it fills, or none.
TextSlot CoverageElement(std::string_view element, script::BenefitsCoordination& b,
                         script::Name& holder, script::Name& responsible) {
  if (element == "PayerResponsibilityCode") {
    return {element, &b.payer_responsibility_code, 2, element};
  }
  if (element == "GroupName") return {element, &b.group_name, 70, element};
  const std::pair<std::string_view, script::Name*> names[] = {{"CardHolderName/", &holder},
                                                              {"ResponsibleParty/", &responsible}};
  for (const auto& [prefix, name] : names) {
    if (!element.starts_with(prefix)) continue;
    const std::string_view part = element.substr(prefix.size());
    const TextSlot parts[] = {{"LastName", &name->last_name, 35, element},
                              {"FirstName", &name->first_name, 35, element},
                              {"MiddleName", &name->middle_name, 35, element},
                              {"Suffix", &name->suffix, 10, element},
                              {"Prefix", &name->prefix, 10, element}};
    for (const TextSlot& s : parts) {
      if (s.key == part) return s;
    }
  }
  return {};
}

class Mapper {
 public:
  Mapper(const fhir::PrescriptionInput& in, IssueList& issues, const NewRxOptions& options)
      : in_(in), issues_(issues), options_(options) {}

  // Text checks shared by every SCRIPT string: printable ASCII and a maximum length.
  // Refuses instead of truncating (21 CFR 1311.170(e)). `path` is a callable returning the
  // FHIR path, evaluated only when there is something to report.
  template <typename PathFn>
  std::string Text(std::string_view value, PathFn&& path, size_t max, std::string_view what) {
    if (value.empty()) return {};
    std::optional<std::string> transliterated = TransliteratedIfAsked(value, options_);
    if (transliterated) {
      value = *transliterated;
      issues_.Warning(std::string(path()), IssueCode::kValue, TransliteratedWarning(what));
    }
    if (value.size() > max) {
      issues_.Error(std::string(path()), IssueCode::kTooLong,
                    Cat(what, " is ", value.size(), " characters; SCRIPT allows ", max,
                        " (RxFlow never truncates)"));
      return {};
    }
    if (!internal::IsPrintableAscii(value)) {
      issues_.Error(std::string(path()), IssueCode::kValue,
                    Cat(what, " contains characters SCRIPT cannot carry (printable ASCII only)",
                        NotTransliterable(options_)));
      return {};
    }
    return std::string(value);
  }

  void Require(bool present, std::string path, std::string_view what) {
    if (!present) issues_.Error(std::move(path), IssueCode::kRequired, Cat(what, " is required"));
  }
  // The same with the path in two parts, joined only when it is reported.
  void Require(bool present, std::string_view path, std::string_view member,
               std::string_view what) {
    if (!present) Require(false, Cat(path, member), what);
  }

  void Dropped(std::string path, std::string_view why = {}) {
    issues_.Warning(std::move(path), IssueCode::kNotSupported,
                    why.empty() ? "no SCRIPT element for this: not sent" : std::string(why));
  }

  // How SCRIPT → FHIR gives a sent identifier back: by a system (NPI, DEA number, NCPDP ID,
  // SSN, RxFlow's own systems) or by its v2-0203 type (a state licence, a medical record
  // number).
  enum class IdBack { kBySystem, kByType };

  // An identifier whose value SCRIPT `element` carries: SCRIPT holds the value alone, so each
  // other member that the value's way back does not give again is named in a warning
  // (docs/mapping.md §5.3, "What a sent identifier keeps"). The system is kept when it is the one
  // that says what the identifier is; otherwise (a state licence's issuer, a medical record
  // number's assigning system, a system only the type code explained) it is lost.
  void IdentifierRest(const fhir::Identifier& id, const std::string& ip, std::string_view element,
                      IdBack back, bool system_kept = false) {
    if (!id.system.empty() && !system_kept &&
        (back == IdBack::kByType || ClassifyIdentifier(id.system, {}) == IdentifierKind::kOther)) {
      Dropped(ip + ".system", Cat("SCRIPT ", element,
                                  " carries the value alone: the identifier's system (who issued "
                                  "it) is not sent"));
    }
    if (!id.use.empty()) {
      Dropped(ip + ".use", Cat("SCRIPT ", element, " has no identifier use: not sent"));
    }
    if (id.period) {
      Dropped(ip + ".period", Cat("SCRIPT ", element, " has no validity period: not sent"));
    }
    if (!id.type) return;
    if (back == IdBack::kBySystem) {
      Dropped(ip + ".type",
              Cat("the identifier's type is implied by SCRIPT ", element, ": not sent"));
      return;
    }
    const std::string type_code = TypeCode(id);
    bool coded = false;  // the coding that comes back (the first v2-0203 one)
    for (size_t k = 0; k < id.type->coding.size(); ++k) {
      const fhir::Coding& c = id.type->coding[k];
      auto cp = [&](std::string_view member = {}) {  // built only for a warning
        return Cat(ip, ".type.coding[", k, "]", member);
      };
      if (!coded && (c.system == kV2IdentifierType || c.system.empty()) && c.code == type_code) {
        coded = true;
        if (!c.display.empty()) {
          Dropped(cp(".display"),
                  Cat("the type's display is not sent (SCRIPT ", element, " implies it)"));
        }
        if (!c.version.empty()) Dropped(cp(".version"), "a code system version: not sent");
        if (c.user_selected) Dropped(cp(".userSelected"), "no SCRIPT element for this: not sent");
      } else {
        Dropped(cp(), Cat("another coding of the identifier's type: SCRIPT ", element,
                          " implies one, not sent"));
      }
    }
    if (!id.type->text.empty()) {
      Dropped(ip + ".type.text",
              Cat("the type's text is not sent (SCRIPT ", element, " implies it)"));
    }
  }

  // An identifier SCRIPT `element` carries: its value (Text: at most 35 characters, printable
  // ASCII; `what` names it in the issues), and what of the rest is not sent, named
  // (IdentifierRest). Every identifier a party sends goes through here.
  std::string SendIdentifier(const fhir::Identifier& id, const std::string& ip,
                             std::string_view what, std::string_view element, IdBack back,
                             bool system_kept = false) {
    std::string value = Text(
        id.value, [&] { return ip + ".value"; }, 35, what);
    IdentifierRest(id, ip, element, back, system_kept);
    return value;
  }

  script::Name MapName(const std::vector<fhir::HumanName>& names, const std::string& path) {
    script::Name out;
    if (names.empty()) {
      Require(false, path, ".name", "a name");
      return out;
    }
    size_t pick = 0;
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i].use == "official") {
        pick = i;
        break;
      }
    }
    const fhir::HumanName& n = names[pick];
    std::string p = Cat(path, ".name[", pick, "]");
    Require(!n.family.empty(), p, ".family", "family name");
    Require(!n.given.empty(), p, ".given", "given name");
    out.last_name = Text(
        n.family, [&] { return p + ".family"; }, 35, "family name");
    if (!n.given.empty())
      out.first_name = Text(
          n.given[0], [&] { return p + ".given[0]"; }, 35, "given name");
    if (n.given.size() > 1) {
      std::string middle = n.given[1];
      for (size_t i = 2; i < n.given.size(); ++i) middle += " " + n.given[i];
      out.middle_name = Text(
          middle, [&] { return p + ".given[1]"; }, 35, "middle name");
    }
    if (!n.prefix.empty())
      out.prefix = Text(
          n.prefix[0], [&] { return p + ".prefix[0]"; }, 10, "name prefix");
    if (!n.suffix.empty())
      out.suffix = Text(
          n.suffix[0], [&] { return p + ".suffix[0]"; }, 10, "name suffix");
    for (size_t i = 1; i < n.prefix.size(); ++i)
      Dropped(Cat(p, ".prefix[", i, "]"), "SCRIPT carries one prefix: not sent");
    for (size_t i = 1; i < n.suffix.size(); ++i)
      Dropped(Cat(p, ".suffix[", i, "]"), "SCRIPT carries one suffix: not sent");
    for (size_t i = 0; i < names.size(); ++i) {
      if (i != pick) Dropped(Cat(path, ".name[", i, "]"), "SCRIPT carries one name: not sent");
    }
    return out;
  }

  std::optional<script::Address> MapAddress(const fhir::Address& a, const std::string& p,
                                            bool mandatory) {
    script::Address out;
    if (mandatory) {
      Require(!a.line.empty(), p, ".line", "address line");
      Require(!a.city.empty(), p, ".city", "city");
      Require(!a.state.empty(), p, ".state", "state");
      Require(!a.postal_code.empty(), p, ".postalCode", "postal code");
    }
    if (!a.line.empty())
      out.address_line1 = Text(
          a.line[0], [&] { return p + ".line[0]"; }, 40, "address line");
    if (a.line.size() > 1) {
      std::string rest = a.line[1];
      for (size_t i = 2; i < a.line.size(); ++i) rest += ", " + a.line[i];
      out.address_line2 = Text(
          rest, [&] { return p + ".line[1]"; }, 40, "address line 2");
    }
    out.city = Text(
        a.city, [&] { return p + ".city"; }, 35, "city");
    out.state_province = Text(
        a.state, [&] { return p + ".state"; }, 35, "state");
    out.postal_code = Text(
        a.postal_code, [&] { return p + ".postalCode"; }, 35, "postal code");
    std::string country = a.country;
    if (country.empty()) country = options_.default_country;
    if (country == "USA" || country == "United States" || country == "United States of America") {
      country = "US";
    }
    if (country.size() != 2) {
      issues_.Error(
          p + ".country", IssueCode::kValue,
          Cat("country must be an ISO 3166 two-letter code, got \"", country.substr(0, 40), "\""));
    } else {
      out.country_code = country;
    }
    if (!a.district.empty()) Dropped(p + ".district");
    if (!a.type.empty()) Dropped(p + ".type");  // postal | physical | both
    if (!a.text.empty()) Dropped(p + ".text", "the address's parts are sent, not its text");
    if (a.period) Dropped(p + ".period");
    return out;
  }

  std::optional<script::Address> PickAddress(const std::vector<fhir::Address>& list,
                                             const std::string& path, std::string_view prefer,
                                             bool mandatory) {
    if (list.empty()) {
      if (mandatory) Require(false, path, ".address", "an address");
      return std::nullopt;
    }
    size_t pick = 0;
    for (size_t i = 0; i < list.size(); ++i) {
      if (list[i].use == prefer) {
        pick = i;
        break;
      }
    }
    for (size_t i = 0; i < list.size(); ++i) {
      if (i != pick)
        Dropped(Cat(path, ".address[", i, "]"), "SCRIPT carries one address: not sent");
    }
    return MapAddress(list[pick], Cat(path, ".address[", pick, "]"), mandatory);
  }

  // A phone: ten digits (a leading 1 of eleven dropped), and an extension after them
  // (";ext=12" as RFC 3966 writes it, or "x12", "ext. 12").
  std::optional<script::Phone> MapPhone(const fhir::ContactPoint& c, const std::string& p) {
    std::string_view value = c.value, extension;
    if (value.starts_with("tel:")) value.remove_prefix(4);
    if (size_t at = value.find_first_of(";xXeE"); at != std::string_view::npos) {
      extension = value.substr(at);
      value = value.substr(0, at);
    }
    std::string digits = internal::DigitsOnly(value);
    if (digits.size() == 11 && digits[0] == '1') digits.erase(0, 1);
    if (digits.size() != 10) {
      issues_.Error(p + ".value", IssueCode::kValue,
                    Cat("phone number must have 10 digits (US), got ", digits.size()));
      return std::nullopt;
    }
    script::Phone out;
    out.number = digits;
    out.extension = internal::DigitsOnly(extension);
    if (out.extension.size() > 8) {
      issues_.Error(p + ".value", IssueCode::kValue,
                    Cat("phone extension must have at most 8 digits, got ", out.extension.size()));
      return std::nullopt;
    }
    if (c.use == "mobile") out.supports_sms = "Y";
    return out;
  }

  // telecom → CommunicationNumbers; the first phone is the PrimaryTelephone. An sms
  // ContactPoint with the number of a phone already sent marks it SupportsSMS=Y; an email
  // with US Core's us-core-direct extension is the DirectAddress.
  std::optional<script::CommunicationNumbers> MapTelecom(
      const std::vector<std::pair<const fhir::ContactPoint*, std::string>>& list,
      const std::string& where, bool mandatory) {
    script::CommunicationNumbers out;
    std::vector<std::pair<const fhir::ContactPoint*, std::string>> sms;
    for (const auto& entry : list) {
      const fhir::ContactPoint* c = entry.first;
      const std::string& p = entry.second;
      bool direct = false;
      for (size_t i = 0; i < c->extension.size(); ++i) {
        const fhir::Extension& e = c->extension[i];
        if (e.url == kUsCoreDirectExtension && c->system == "email") {
          direct = e.value_type == "Boolean" && e.value_json == "true";
        } else {
          Dropped(Cat(p, ".extension[", i, "]"),
                  Cat(ExtensionSubject(e), ": not mapped to SCRIPT: not sent"));
        }
      }
      if (c->system == "sms") {
        sms.push_back(entry);
      } else if (c->system == "phone") {
        auto phone = MapPhone(*c, p);
        if (!phone) continue;
        if (!out.primary_telephone) {
          out.primary_telephone = *phone;
        } else if (c->use == "home") {
          out.home_telephone.push_back(*phone);
        } else if (c->use == "work") {
          out.work_telephone.push_back(*phone);
        } else {
          out.other_telephone.push_back(*phone);
        }
      } else if (c->system == "email" && direct) {
        if (!out.direct_address.empty()) {
          Dropped(p, "SCRIPT carries one DirectAddress: not sent");
          continue;
        }
        out.direct_address = Text(
            c->value, [&] { return p + ".value"; }, 254, "Direct address");
      } else if (c->system == "email") {
        std::string e = Text(
            c->value, [&] { return p + ".value"; }, 80, "email address");
        if (!e.empty()) out.electronic_mail.push_back(e);
      } else if (c->system == "fax") {
        if (auto phone = MapPhone(*c, p)) out.fax.push_back(*phone);
      } else if (c->system == "pager") {
        if (auto phone = MapPhone(*c, p)) out.beeper.push_back(*phone);
      } else {
        Dropped(p, Cat("telecom system \"", c->system, "\" has no SCRIPT element: not sent"));
      }
    }
    for (const auto& [c, p] : sms) MarkSms(*c, p, out);
    if (!out.primary_telephone) {
      if (mandatory) {
        issues_.Error(where, IssueCode::kRequired, "a phone number is required (PrimaryTelephone)");
      } else if (!out.electronic_mail.empty() || !out.fax.empty() || !out.beeper.empty() ||
                 !out.direct_address.empty()) {
        Dropped(where,
                "SCRIPT needs a phone number before email, fax, pager or Direct address: "
                "not sent");
      }
      return std::nullopt;
    }
    return out;
  }

  // An sms ContactPoint: SupportsSMS=Y on the phone (pager, fax) with its number, else a
  // phone of its own that supports SMS.
  void MarkSms(const fhir::ContactPoint& c, const std::string& p,
               script::CommunicationNumbers& out) {
    auto phone = MapPhone(c, p);
    if (!phone) return;
    phone->supports_sms = "Y";
    auto same = [&](script::Phone& q) {
      if (q.number != phone->number || q.extension != phone->extension) return false;
      q.supports_sms = "Y";
      return true;
    };
    if (out.primary_telephone && same(*out.primary_telephone)) return;
    for (auto* list :
         {&out.home_telephone, &out.work_telephone, &out.other_telephone, &out.beeper, &out.fax}) {
      for (script::Phone& q : *list) {
        if (same(q)) return;
      }
    }
    if (!out.primary_telephone) {
      out.primary_telephone = *phone;
    } else if (c.use == "home") {
      out.home_telephone.push_back(*phone);
    } else if (c.use == "work") {
      out.work_telephone.push_back(*phone);
    } else {
      out.other_telephone.push_back(*phone);
    }
  }

  static std::vector<std::pair<const fhir::ContactPoint*, std::string>> Telecoms(
      const std::vector<fhir::ContactPoint>& list, const std::string& path) {
    std::vector<std::pair<const fhir::ContactPoint*, std::string>> out;
    for (size_t i = 0; i < list.size(); ++i) out.emplace_back(&list[i], Cat(path, "[", i, "]"));
    return out;
  }

  script::DateValue MapDate(const std::string& value, const std::string& path,
                            std::string_view what) {
    script::DateValue d;
    if (value.empty()) return d;
    if (value.size() == 10) {
      d.date = value;
    } else if (value.size() > 10) {
      d.date = value.substr(0, 10);  // the date of issue as written; the time is not carried
      issues_.Add(Severity::kInformation, IssueCode::kInformational, path,
                  Cat(what, ": the date is sent; the time of day is not"));
    } else {
      issues_.Error(path, IssueCode::kValue,
                    Cat(what, " must be a full date (YYYY-MM-DD), got \"", value, "\""));
    }
    return d;
  }

  void MapPatient(script::Patient& out) {
    const fhir::Patient& p = in_.patient;
    const std::string& path = in_.patient_path;
    for (size_t i = 0; i < p.identifier.size(); ++i) {
      const fhir::Identifier& id = p.identifier[i];
      std::string ip = Cat(path, ".identifier[", i, "]");
      switch (ClassifyIdentifier(id.system, TypeCode(id))) {
        case IdentifierKind::kMrn:
          if (out.identification.medical_record_identification_number_ehr.empty()) {
            out.identification.medical_record_identification_number_ehr =
                SendIdentifier(id, ip, "medical record number",
                               "MedicalRecordIdentificationNumberEHR", IdBack::kByType);
          } else {
            Dropped(ip, "SCRIPT carries one medical record number: not sent");
          }
          break;
        case IdentifierKind::kSsn:
          if (!out.identification.social_security.empty()) {
            Dropped(ip, "SCRIPT carries one SSN: not sent");
            break;
          }
          out.identification.social_security =
              SendIdentifier(id, ip, "SSN", "SocialSecurity", IdBack::kBySystem);
          break;
        default:
          if (id.system != kRemsPatientIdSystem) {
            Dropped(ip, "identifier system not mapped to SCRIPT: not sent");
          } else if (!out.identification.rems_patient_id.empty()) {
            Dropped(ip, "SCRIPT carries one REMS patient id: not sent");
          } else {
            out.identification.rems_patient_id =
                SendIdentifier(id, ip, "REMS patient id", "REMSPatientID", IdBack::kBySystem, true);
          }
      }
    }
    out.name = MapName(p.name, path);
    if (p.gender == "male") {
      out.gender = "M";
    } else if (p.gender == "female") {
      out.gender = "F";
    } else {
      out.gender = "U";
      if (p.gender == "other") {
        issues_.Warning(path + ".gender", IssueCode::kValue,
                        "SCRIPT has no code for \"other\": sent as U (unknown)");
      }
    }
    Require(!p.birth_date.empty(), path, ".birthDate", "patient birth date");
    if (!p.birth_date.empty()) {
      if (p.birth_date.size() != 10) {
        issues_.Error(path + ".birthDate", IssueCode::kValue,
                      "SCRIPT needs a full birth date (YYYY-MM-DD); a partial date cannot be sent");
      } else {
        out.date_of_birth.date = p.birth_date;
      }
    }
    out.address = PickAddress(p.address, path, "home", true);
    out.communication_numbers =
        MapTelecom(Telecoms(p.telecom, path + ".telecom"), path + ".telecom", false);
  }

  void MapPrescriber(script::Prescriber& out, std::string& npi_out) {
    if (!in_.practitioner) {
      Require(false, "practitioner", "the prescriber (Practitioner)");
      return;
    }
    const fhir::Practitioner& pr = *in_.practitioner;
    const std::string& path = in_.practitioner_path;
    for (size_t i = 0; i < pr.identifier.size(); ++i) {
      const fhir::Identifier& id = pr.identifier[i];
      std::string ip = Cat(path, ".identifier[", i, "]");
      switch (ClassifyIdentifier(id.system, TypeCode(id))) {
        case IdentifierKind::kNpi:
          if (!out.identification.npi.empty()) {
            Dropped(ip, "SCRIPT carries one prescriber NPI: not sent");
            break;
          }
          out.identification.npi = SendIdentifier(id, ip, "NPI", "NPI", IdBack::kBySystem);
          npi_path_ = ip + ".value";
          break;
        case IdentifierKind::kDea:
          if (!out.identification.dea_number.empty()) {
            // 21 CFR 1311.135(b): with several registrations, one is chosen per prescription.
            Dropped(ip, "SCRIPT carries one DEA number (the first is used): not sent");
            break;
          }
          out.identification.dea_number =
              SendIdentifier(id, ip, "DEA number", "DEANumber", IdBack::kBySystem);
          dea_path_ = ip + ".value";
          break;
        case IdentifierKind::kStateLicense:
          if (!out.identification.state_license_number.empty()) {
            Dropped(ip, "SCRIPT carries one state license number: not sent");
            break;
          }
          out.identification.state_license_number =
              SendIdentifier(id, ip, "state license number", "StateLicenseNumber", IdBack::kByType);
          break;
        default:
          if (id.system != kRemsProviderEnrollmentSystem) {
            Dropped(ip, "identifier system not mapped to SCRIPT: not sent");
          } else if (!out.identification.rems_healthcare_provider_enrollment_id.empty()) {
            Dropped(ip, "SCRIPT carries one REMS healthcare provider enrollment id: not sent");
          } else {
            out.identification.rems_healthcare_provider_enrollment_id =
                SendIdentifier(id, ip, "REMS healthcare provider enrollment id",
                               "REMSHealthcareProviderEnrollmentID", IdBack::kBySystem, true);
            rems_enrollment_path_ = ip;
          }
      }
    }
    for (size_t q = 0; q < pr.qualification.size(); ++q) {
      for (size_t i = 0; i < pr.qualification[q].identifier.size(); ++i) {
        const fhir::Identifier& id = pr.qualification[q].identifier[i];
        std::string ip = Cat(path, ".qualification[", q, "].identifier[", i, "]");
        IdentifierKind kind = ClassifyIdentifier(id.system, TypeCode(id));
        if (kind == IdentifierKind::kDea && out.identification.dea_number.empty()) {
          out.identification.dea_number =
              SendIdentifier(id, ip, "DEA number", "DEANumber", IdBack::kBySystem);
          dea_path_ = ip + ".value";
        } else if (kind == IdentifierKind::kStateLicense &&
                   out.identification.state_license_number.empty()) {
          out.identification.state_license_number =
              SendIdentifier(id, ip, "state license number", "StateLicenseNumber", IdBack::kByType);
        }
      }
    }
    if (out.identification.npi.empty()) {
      issues_.Error(path + ".identifier", IssueCode::kRequired,
                    "prescriber NPI (system http://hl7.org/fhir/sid/us-npi) is required");
    }
    npi_out = out.identification.npi;
    out.name = MapName(pr.name, path);
    MapPrescriberAgent(out);

    // Address and phone: the practitioner's own, else the role's contact, else the
    // practice organisation's contact.
    std::vector<std::pair<const fhir::Address*, std::string>> addresses;
    for (size_t i = 0; i < pr.address.size(); ++i) {
      addresses.emplace_back(&pr.address[i], Cat(path, ".address[", i, "]"));
    }
    auto telecoms = Telecoms(pr.telecom, path + ".telecom");
    if (in_.practitioner_role) {
      const fhir::PractitionerRole& role = *in_.practitioner_role;
      const std::string& rp = in_.practitioner_role_path;
      for (size_t i = 0; i < role.contact.size(); ++i) {
        const auto& c = role.contact[i];
        if (c.address) addresses.emplace_back(&*c.address, Cat(rp, ".contact[", i, "].address"));
        for (size_t t = 0; t < c.telecom.size(); ++t) {
          telecoms.emplace_back(&c.telecom[t], Cat(rp, ".contact[", i, "].telecom[", t, "]"));
        }
      }
      for (size_t i = 0; i < role.specialty.size(); ++i) {
        const fhir::CodeableConcept& sp = role.specialty[i];
        const std::string sp_path = Cat(rp, ".specialty[", i, "]");
        for (size_t k = 0; k < sp.coding.size(); ++k) {
          const fhir::Coding& c = sp.coding[k];
          const std::string cp = Cat(sp_path, ".coding[", k, "]");
          if (c.system == kNucc && out.specialty.empty()) {
            out.specialty = Text(
                c.code, [&] { return std::string_view(sp_path); }, 10, "specialty");
            if (!c.display.empty()) {
              Dropped(cp + ".display",
                      "SCRIPT Specialty is the NUCC code alone: its display is not sent");
            }
          } else {
            Dropped(cp, "SCRIPT carries one specialty, a NUCC taxonomy code: not sent");
          }
        }
        if (!sp.text.empty()) {
          Dropped(sp_path + ".text", "SCRIPT Specialty is the NUCC code alone: not sent");
        }
      }
      // What else of the role SCRIPT has no place for (docs/mapping.md §6.1).
      for (size_t i = 0; i < role.code.size(); ++i) {
        Dropped(Cat(rp, ".code[", i, "]"),
                "SCRIPT has no role code for a prescriber (doctor, nurse): not sent");
      }
      for (size_t i = 0; i < role.contact.size(); ++i) {
        if (role.contact[i].purpose) {
          Dropped(Cat(rp, ".contact[", i, "].purpose"),
                  "SCRIPT has no contact purpose: the contact is sent, its purpose is not");
        }
      }
      if (role.practitioner && !role.practitioner->display.empty()) {
        Dropped(rp + ".practitioner.display",
                "a reference's display text: not sent (SCRIPT carries the practitioner itself)");
      }
      if (in_.practice) {
        // The practice → PracticeLocation: its identifiers (a FacilityID) and name. Issues
        // name the practice's own path (else the role's reference to it).
        const std::string op =
            !in_.practice_path.empty() ? in_.practice_path : rp + ".organization";
        for (size_t i = 0; i < in_.practice->type.size(); ++i) {
          Dropped(Cat(op, ".type[", i, "]"),
                  "SCRIPT PracticeLocation has no organization type: not sent");
        }
        script::PracticeLocation location;
        FacilityIdentification(in_.practice->identifier, op, "PracticeLocation", "practice",
                               location.identification);
        location.business_name = Text(
            in_.practice->name, [&] { return std::string_view(op); }, 70, "practice name");
        if (!location.identification.empty() || !location.business_name.empty()) {
          out.practice_location = std::move(location);
        }
        for (size_t i = 0; i < in_.practice->contact.size(); ++i) {
          const auto& c = in_.practice->contact[i];
          if (c.address) addresses.emplace_back(&*c.address, Cat(op, ".contact[", i, "].address"));
          for (size_t t = 0; t < c.telecom.size(); ++t) {
            telecoms.emplace_back(&c.telecom[t], Cat(op, ".contact[", i, "].telecom[", t, "]"));
          }
        }
      }
    }
    if (addresses.empty()) {
      issues_.Error(path + ".address", IssueCode::kRequired,
                    "the prescriber's address is required (Practitioner.address, "
                    "PractitionerRole.contact.address or the role organization's contact)");
    } else {
      size_t pick = 0;
      for (size_t i = 0; i < addresses.size(); ++i) {
        if (addresses[i].first->use == "work") {
          pick = i;
          break;
        }
      }
      out.address = MapAddress(*addresses[pick].first, addresses[pick].second, true);
      for (size_t i = 0; i < addresses.size(); ++i) {
        if (i != pick)
          Dropped(addresses[i].second, "SCRIPT carries one prescriber address: not sent");
      }
    }
    out.communication_numbers = MapTelecom(telecoms, path + ".telecom", true);
  }

  // MedicationRequest.recorder (a Practitioner other than the prescriber) → PrescriberAgent:
  // its name only. SCRIPT's NameType needs a family and a given name; without them the
  // recorder is not sent (a warning, not an error: the prescription itself is complete).
  void MapPrescriberAgent(script::Prescriber& out) {
    if (!in_.recorder || in_.recorder_path == in_.practitioner_path) return;
    const fhir::Practitioner& r = *in_.recorder;
    const std::string& path = in_.recorder_path;
    const fhir::HumanName* name = nullptr;
    for (const fhir::HumanName& n : r.name) {
      if (!name || (n.use == "official" && name->use != "official")) name = &n;
    }
    if (!name || name->family.empty() || name->given.empty()) {
      Dropped(path + ".name",
              "the recorder needs a family and a given name for SCRIPT PrescriberAgent/Name: "
              "not sent");
      return;
    }
    out.prescriber_agent = MapName(r.name, path);
    const char* why = "SCRIPT PrescriberAgent carries only a name: not sent";
    if (!r.identifier.empty()) Dropped(path + ".identifier", why);
    if (!r.telecom.empty()) Dropped(path + ".telecom", why);
    if (!r.address.empty()) Dropped(path + ".address", why);
    if (!r.qualification.empty()) Dropped(path + ".qualification", why);
    ReportExtensions(r, path);
  }

  // RxFlow's supervisor extension on the MedicationRequest → NewRx Supervisor/NonVeterinarian,
  // mapped as the prescriber is (MapPrescriber on the supervising Practitioner and, when the
  // extension names a PractitionerRole, that role and its organization). Never an error: a
  // reference that does not resolve, or what would be an error for the prescriber (no name,
  // address or phone; no identifier SCRIPT's SupervisorID carries), is a warning and the
  // Supervisor is not sent; the prescription still is.
  void MapSupervisor(bool cancel, std::optional<script::Prescriber>& out) {
    const std::string& ref_path = in_.supervisor_reference_path;
    if (ref_path.empty()) return;
    if (cancel) {
      Dropped(ref_path, "a CancelRx has no Supervisor: not sent");
      return;
    }
    if (!in_.supervisor) {
      Dropped(ref_path,
              "the supervisor reference does not resolve to a Practitioner (or a "
              "PractitionerRole naming one), which SCRIPT Supervisor would carry: not sent");
      return;
    }
    fhir::PrescriptionInput sub_in;
    sub_in.practitioner = in_.supervisor;
    sub_in.practitioner_path = in_.supervisor_path;
    sub_in.practitioner_role = in_.supervisor_role;
    sub_in.practitioner_role_path = in_.supervisor_role_path;
    sub_in.practice = in_.supervisor_practice;
    sub_in.practice_path = in_.supervisor_practice_path;
    IssueList scratch;
    Mapper sub(sub_in, scratch, options_);
    script::Prescriber s;
    std::string npi;
    sub.MapPrescriber(s, npi);
    if (!s.identification.rems_healthcare_provider_enrollment_id.empty()) {
      // SupervisorID has no REMSHealthcareProviderEnrollmentID (the writer would leave it out).
      Dropped(sub.rems_enrollment_path_,
              "SCRIPT Supervisor (SupervisorID) carries no REMS healthcare provider enrollment "
              "id: not sent");
      s.identification.rems_healthcare_provider_enrollment_id.clear();
    }
    sub.ReportExtensions(*in_.supervisor, in_.supervisor_path);
    if (in_.supervisor_role) sub.ReportExtensions(*in_.supervisor_role, in_.supervisor_role_path);
    bool complete = true;
    for (const Issue& i : scratch) {
      const bool error = i.severity == Severity::kError || i.severity == Severity::kFatal;
      // SupervisorID needs no NPI: another identifier (DEA number, state licence) will do.
      if (error && i.code == IssueCode::kRequired &&
          i.path == in_.supervisor_path + ".identifier" && !s.identification.empty()) {
        continue;
      }
      if (!error) {
        issues_.Add(i);
        continue;
      }
      complete = false;
      issues_.Warning(i.path, i.code, Cat("SCRIPT Supervisor not sent: ", i.message));
    }
    if (!complete) {
      Dropped(ref_path, Cat("the supervisor (", in_.supervisor_path,
                            ") lacks what SCRIPT Supervisor requires: not sent"));
      return;
    }
    out = std::move(s);
  }

  void MapPharmacy(std::optional<script::Pharmacy>& out, std::string& ncpdp) {
    if (!in_.pharmacy) {
      issues_.Error(in_.medication_request_path + ".dispenseRequest.dispenser",
                    IssueCode::kRequired,
                    "the pharmacy (an Organization with an NCPDP ID) is required to route a NewRx");
      return;
    }
    const fhir::Organization& o = *in_.pharmacy;
    const std::string& path = in_.pharmacy_path;
    script::Pharmacy ph;
    for (size_t i = 0; i < o.identifier.size(); ++i) {
      const fhir::Identifier& id = o.identifier[i];
      std::string ip = Cat(path, ".identifier[", i, "]");
      switch (ClassifyIdentifier(id.system, TypeCode(id))) {
        case IdentifierKind::kNcpdpId:
          if (!ph.identification.ncpdp_id.empty()) {
            Dropped(ip, "SCRIPT carries one pharmacy NCPDP ID: not sent");
            break;
          }
          ph.identification.ncpdp_id =
              SendIdentifier(id, ip, "NCPDP ID", "NCPDPID", IdBack::kBySystem);
          if (!ph.identification.ncpdp_id.empty() &&
              (id.value.size() != 7 || !internal::IsAllDigits(id.value))) {
            issues_.Error(ip + ".value", IssueCode::kValue, "NCPDP ID must be 7 digits");
          }
          break;
        case IdentifierKind::kNpi:
          if (!ph.identification.npi.empty()) {
            Dropped(ip, "SCRIPT carries one pharmacy NPI: not sent");
            break;
          }
          ph.identification.npi = SendIdentifier(id, ip, "NPI", "NPI", IdBack::kBySystem);
          pharmacy_npi_path_ = ip + ".value";
          break;
        case IdentifierKind::kDea:
          if (!ph.identification.dea_number.empty()) {
            Dropped(ip, "SCRIPT carries one pharmacy DEA number: not sent");
            break;
          }
          ph.identification.dea_number =
              SendIdentifier(id, ip, "DEA number", "DEANumber", IdBack::kBySystem);
          break;
        case IdentifierKind::kStateLicense:
          if (!ph.identification.state_license_number.empty()) {
            Dropped(ip, "SCRIPT carries one pharmacy state license number: not sent");
            break;
          }
          ph.identification.state_license_number =
              SendIdentifier(id, ip, "state license number", "StateLicenseNumber", IdBack::kByType);
          break;
        default:
          Dropped(ip, "identifier system not mapped to SCRIPT: not sent");
      }
    }
    if (ph.identification.ncpdp_id.empty()) {
      Require(false, path, ".identifier", Cat("pharmacy NCPDP ID (system ", kNcpdpId, ")"));
    }
    Require(!ph.identification.npi.empty(), path, ".identifier", "pharmacy NPI");
    Require(!o.name.empty(), path, ".name", "pharmacy name");
    ph.business_name = Text(
        o.name, [&] { return path + ".name"; }, 70, "pharmacy name");
    // Organization.type with a NUCC taxonomy coding → Specialty (the first one).
    for (size_t i = 0; i < o.type.size(); ++i) {
      const fhir::Coding* nucc = nullptr;
      for (const fhir::Coding& c : o.type[i].coding) {
        if (c.system == kNucc && !nucc) nucc = &c;
      }
      std::string tp = Cat(path, ".type[", i, "]");
      if (nucc && ph.specialty.empty()) {
        ph.specialty = Text(
            nucc->code, [&] { return tp; }, 10, "pharmacy specialty");
      } else if (nucc) {
        Dropped(tp, "SCRIPT carries one pharmacy Specialty: not sent");
      } else {
        Dropped(tp, "only a NUCC taxonomy type is sent (as Pharmacy/Specialty): not sent");
      }
    }
    std::vector<std::pair<const fhir::ContactPoint*, std::string>> telecoms;
    for (size_t i = 0; i < o.contact.size(); ++i) {
      const auto& c = o.contact[i];
      std::string cp = Cat(path, ".contact[", i, "]");
      if (c.address && !ph.address) {
        ph.address = MapAddress(*c.address, cp + ".address", false);
      } else if (c.address) {
        Dropped(cp + ".address", "SCRIPT carries one pharmacy address: not sent");
      }
      for (size_t t = 0; t < c.telecom.size(); ++t) {
        telecoms.emplace_back(&c.telecom[t], Cat(cp, ".telecom[", t, "]"));
      }
    }
    ph.communication_numbers = MapTelecom(telecoms, path + ".contact", true);
    ncpdp = ph.identification.ncpdp_id;
    out = std::move(ph);
  }

  // Extension value: "CII" from valueCode "CII" or valueCoding {"code": "C48675"}.
  static std::string ExtensionCode(const fhir::Extension& e) {
    std::string_view v = e.value_json;
    if (e.value_type == "Code" || e.value_type == "String") {
      if (v.size() >= 2 && v.front() == '"') return std::string(v.substr(1, v.size() - 2));
      return std::string(v);
    }
    size_t k = v.find("\"code\"");
    if (k == std::string_view::npos) return {};
    size_t q1 = v.find('"', v.find(':', k) + 1);
    size_t q2 = v.find('"', q1 + 1);
    if (q1 == std::string_view::npos || q2 == std::string_view::npos) return {};
    return std::string(v.substr(q1 + 1, q2 - q1 - 1));
  }

  std::string FindSchedule(std::string& path_out) {
    auto scan = [&](const std::vector<fhir::Extension>& list,
                    const std::string& base) -> std::string {
      for (size_t i = 0; i < list.size(); ++i) {
        if (list[i].url != kDeaScheduleExtension) continue;
        path_out = Cat(base, ".extension[", i, "]");
        std::string code = ExtensionCode(list[i]);
        if (DeaScheduleNumber(code) == 0) {
          issues_.Error(path_out, IssueCode::kValue,
                        Cat("unknown DEA schedule \"", code.substr(0, 20), "\" (expected CI..CV)"));
          return {};
        }
        static constexpr std::string_view kNames[] = {"", "CI", "CII", "CIII", "CIV", "CV"};
        return std::string(kNames[DeaScheduleNumber(code)]);
      }
      return {};
    };
    std::string s = scan(in_.medication_request.extension, in_.medication_request_path);
    if (s.empty() && in_.medication) s = scan(in_.medication->extension, in_.medication_path);
    return s;
  }

  // The index of the first script-element extension of `ing` naming `element` with a value,
  // or SIZE_MAX.
  static size_t IngredientElement(const fhir::MedicationIngredient& ing, std::string_view element) {
    for (size_t j = 0; j < ing.extension.size(); ++j) {
      auto se = ReadScriptElement(ing.extension[j]);
      if (se && se->element == element && se->value && !se->value->empty()) return j;
    }
    return SIZE_MAX;
  }

  // Whether the Medication is a compounded preparation (SCRIPT CompoundInformation): RxFlow's
  // compound extension says so (valueBoolean), else a Medication with no code whose
  // ingredients give their amounts (strengthQuantity) is one.
  bool IsCompound(const fhir::Medication& med, const std::string& mp) {
    for (size_t i = 0; i < med.extension.size(); ++i) {
      const fhir::Extension& e = med.extension[i];
      if (e.url != kCompoundExtension) continue;
      if (e.value_type == "Boolean") return e.value_json == "true";
      Dropped(Cat(mp, ".extension[", i, "]"),
              "RxFlow's compound extension needs a valueBoolean: not read");
    }
    return !med.code && std::any_of(med.ingredient.begin(), med.ingredient.end(),
                                    [](const auto& ing) { return ing.strength_quantity; });
  }

  // A compound Medication → CompoundInformation: doseForm's NCI coding →
  // FinalCompoundPharmaceuticalDosageForm; each ingredient with a strengthQuantity, in order →
  // a CompoundIngredientsLotNotUsed (MapCompoundIngredient). All or nothing: what SCRIPT
  // requires and the compound lacks is a warning at its FHIR path, and then no
  // CompoundInformation is sent (DrugDescription still names the compound). The DEA schedules
  // of the ingredients (1 … 5) are added to `schedules`.
  std::optional<script::CompoundInformation> MapCompound(const fhir::Medication& med,
                                                         const std::string& mp,
                                                         std::vector<int>& schedules) {
    script::CompoundInformation out;
    bool complete = true;
    std::string form;
    if (med.dose_form) {
      for (size_t i = 0; i < med.dose_form->coding.size(); ++i) {
        const fhir::Coding& c = med.dose_form->coding[i];
        if (c.system != kNci) continue;
        if (form.empty()) {
          form = c.code;
        } else {
          Dropped(Cat(mp, ".doseForm.coding[", i, "]"),
                  "SCRIPT carries one final dose form: not sent");
        }
      }
    }
    if (form.empty()) {
      issues_.Warning(mp + ".doseForm", IssueCode::kRequired,
                      "SCRIPT CompoundInformation not sent: it needs the compound's final dose "
                      "form (FinalCompoundPharmaceuticalDosageForm: an NCI coding of doseForm)");
      complete = false;
    } else {
      out.final_compound_pharmaceutical_dosage_form = Text(
          form, [&] { return mp + ".doseForm"; }, 35, "final compound dose form");
    }
    size_t count = 0;
    for (size_t i = 0; i < med.ingredient.size(); ++i) {
      if (!med.ingredient[i].strength_quantity) continue;
      ++count;
      script::CompoundIngredientLot lot;
      if (MapCompoundIngredient(med.ingredient[i], Cat(mp, ".ingredient[", i, "]"), lot,
                                schedules)) {
        out.ingredients.push_back(std::move(lot));
      } else {
        complete = false;
      }
    }
    if (count == 0) {
      issues_.Warning(mp + ".ingredient", IssueCode::kRequired,
                      "SCRIPT CompoundInformation not sent: it needs the compound's ingredients, "
                      "each with its amount (strengthQuantity)");
      complete = false;
    } else if (count > 25) {
      issues_.Warning(mp + ".ingredient", IssueCode::kValue,
                      Cat("SCRIPT CompoundInformation not sent: it carries at most 25 "
                          "ingredients; the compound has ",
                          count));
      complete = false;
    }
    if (!complete) {
      Dropped(mp,
              "the compound lacks what SCRIPT CompoundInformation requires (see the warnings at "
              "its elements): CompoundInformation not sent; DrugDescription names the compound");
      return std::nullopt;
    }
    return out;
  }

  // One ingredient of a compound → a CompoundIngredientsLotNotUsed: strengthQuantity →
  // Quantity (value, NCI unit); item.concept → CompoundIngredient (text, else a coding's
  // display → CompoundIngredientItemDescription; the first NDC, RxNorm, UNII or RxFlow
  // product-code coding → ItemNumber); the dea-schedule extension → DEASchedule (its number
  // added to `schedules`); the script-element extensions SCRIPT → FHIR writes (docs/mapping.md
  // §4.3) → their elements. False, with a warning at each gap, when a part SCRIPT requires is
  // missing or cannot be sent.
  bool MapCompoundIngredient(const fhir::MedicationIngredient& ing, const std::string& ip,
                             script::CompoundIngredientLot& lot, std::vector<int>& schedules) {
    bool ok = true;
    auto lacks = [&](std::string path, IssueCode code, std::string_view what) {
      issues_.Warning(std::move(path), code, Cat("SCRIPT CompoundInformation not sent: ", what));
      ok = false;
    };
    script::CompoundIngredient c;
    script::Strength strength;
    std::string item_qualifier, code_list;
    std::string item_qualifier_path, code_list_path;
    const TextSlot slots[] = {
        {"CompoundIngredient/ItemNumber/Qualifier", &item_qualifier, 3, "ItemNumber qualifier"},
        {"CompoundIngredient/Strength/StrengthValue", &strength.strength_value, 70,
         "ingredient strength"},
        {"CompoundIngredient/Strength/StrengthForm/Code", &strength.strength_form_code, 35,
         "ingredient strength form"},
        {"CompoundIngredient/Strength/StrengthUnitOfMeasure/Code",
         &strength.strength_unit_of_measure_code, 35, "ingredient strength unit"},
        {"Quantity/CodeListQualifier", &code_list, 2, "quantity qualifier"}};
    for (size_t j = 0; j < ing.extension.size(); ++j) {
      const fhir::Extension& e = ing.extension[j];
      const std::string ep = Cat(ip, ".extension[", j, "]");
      if (e.url == kDeaScheduleExtension) {
        const std::string code = ExtensionCode(e);
        const int n = DeaScheduleNumber(code);
        if (n == 0) {
          issues_.Error(ep, IssueCode::kValue,
                        Cat("unknown DEA schedule \"", code.substr(0, 20), "\" (expected CI..CV)"));
        } else if (!c.dea_schedule_code.empty()) {
          Dropped(ep, "SCRIPT carries one DEA schedule per ingredient: not sent");
        } else {
          c.dea_schedule_code = std::string(*DeaScheduleToNci(code));
          schedules.push_back(n);
        }
        continue;
      }
      auto se = ReadScriptElement(e);
      const TextSlot* slot = nullptr;
      for (const TextSlot& t : slots) {
        if (se && se->element == t.key) slot = &t;
      }
      if (!slot) {
        Dropped(ep, Cat(ExtensionSubject(e), ": not mapped to SCRIPT here: not sent"));
      } else if (!se->value || se->value->empty()) {
        Dropped(ep, Cat("SCRIPT ", slot->key,
                        " (script-element extension): no value (a valueString sub-extension "
                        "\"value\"): not sent"));
      } else if (!slot->field->empty()) {
        Dropped(ep, Cat("SCRIPT ", slot->key,
                        " (script-element extension): SCRIPT carries one: not sent"));
      } else {
        *slot->field = Text(
            *se->value, [&] { return std::string_view(ep); }, slot->max, slot->what);
        if (slot->field == &item_qualifier) item_qualifier_path = ep;
        if (slot->field == &code_list) code_list_path = ep;
      }
    }
    static constexpr std::string_view kCodeLists[] = {"38", "40", "87", "QS", "CF", "UQ", "QT"};
    if (code_list.empty()) {
      code_list = "38";
    } else if (std::find(std::begin(kCodeLists), std::end(kCodeLists), code_list) ==
               std::end(kCodeLists)) {
      lacks(code_list_path, IssueCode::kValue,
            Cat("quantity qualifier \"", code_list, "\" is not 38, 40, 87, QS, CF, UQ or QT"));
    }
    lot.quantity.code_list_qualifier = code_list;
    static constexpr std::string_view kRxNormTypes[] = {"SCD", "SBD", "GPK", "BPK"};
    if (!item_qualifier.empty() && std::find(std::begin(kRxNormTypes), std::end(kRxNormTypes),
                                             item_qualifier) == std::end(kRxNormTypes)) {
      lacks(item_qualifier_path, IssueCode::kValue,
            Cat("an RxNorm ItemNumber's qualifier is SCD, SBD, GPK or BPK, not \"", item_qualifier,
                "\""));
      item_qualifier.clear();
    }

    // Quantity: how much of the ingredient goes into the compound.
    const fhir::Quantity& q = *ing.strength_quantity;
    const std::string qp = ip + ".strengthQuantity";
    if (!q.comparator.empty()) {
      lacks(qp + ".comparator", IssueCode::kValue,
            "an ingredient's amount must be exact (no comparator)");
    } else if (q.value.empty()) {
      lacks(qp + ".value", IssueCode::kRequired, "an ingredient's amount needs a value");
    } else if (!internal::IsScriptNumeric(q.value) || q.value.size() > 14) {
      lacks(qp + ".value", IssueCode::kValue,
            Cat("an ingredient's amount must be a plain decimal of at most 14 characters, got ",
                q.value.substr(0, 20)));
    } else {
      lot.quantity.value = q.value;
    }
    if (auto u = UnitToNci(q.system, q.code, q.unit)) {
      lot.quantity.unit_of_measure_code = std::string(u->code);
    } else {
      lacks(qp, IssueCode::kValue,
            Cat("the unit \"", std::string_view(q.code.empty() ? q.unit : q.code).substr(0, 20),
                "\" of an ingredient's amount has no NCI code in RxFlow's table"));
    }

    // CompoundIngredient: what the ingredient is. An item with no concept (nor a reference) is
    // a Quantity alone, as the schema allows.
    const fhir::CodeableReference& item = ing.item;
    if (item.reference) {
      Dropped(ip + ".item.reference",
              "an ingredient given by reference is not sent: SCRIPT CompoundIngredient carries "
              "its description and code (item.concept)");
    }
    const bool has_strength = !strength.strength_value.empty() ||
                              !strength.strength_form_code.empty() ||
                              !strength.strength_unit_of_measure_code.empty();
    bool rxnorm_item = false;
    // A concept saying only that the ingredient is unknown (data-absent-reason, as SCRIPT → FHIR
    // writes a lot without CompoundIngredient) describes none.
    const bool unknown =
        item.concept_ && item.concept_->text.empty() && !item.concept_->coding.empty() &&
        std::all_of(item.concept_->coding.begin(), item.concept_->coding.end(),
                    [](const fhir::Coding& k) { return k.system == kDataAbsentReason; });
    if (!item.concept_ || unknown) {
      if (item.reference || has_strength || !c.dea_schedule_code.empty()) {
        lacks(ip + ".item.concept", IssueCode::kRequired,
              "the ingredient needs a description (CompoundIngredientItemDescription: "
              "item.concept text or a coding display)");
      }
    } else {
      const fhir::CodeableConcept& cc = *item.concept_;
      std::string description = cc.text;
      for (size_t k = 0; k < cc.coding.size() && description.empty(); ++k) {
        description = cc.coding[k].display;
      }
      if (description.empty()) {
        lacks(ip + ".item.concept.text", IssueCode::kRequired,
              "the ingredient needs a description (CompoundIngredientItemDescription: "
              "item.concept text or a coding display)");
      } else {
        c.item_description = Text(
            description, [&] { return ip + ".item.concept.text"; }, 105,
            "compound ingredient description");
      }
      for (size_t k = 0; k < cc.coding.size(); ++k) {
        const fhir::Coding& coding = cc.coding[k];
        const std::string cp = Cat(ip, ".item.concept.coding[", k, "]");
        std::string code = coding.code, qualifier;
        if (coding.system == kNdc) {
          auto ndc = NdcOrError(coding, cp);
          if (!ndc) continue;
          code = *ndc;
          qualifier = "ND";
        } else if (coding.system == kRxNorm) {
          qualifier = item_qualifier.empty() ? options_.rxnorm_qualifier : item_qualifier;
        } else if (coding.system == kUnii) {
          qualifier = "UN";
        } else {
          qualifier = std::string(ProductCodeQualifierOf(coding.system));
        }
        if (qualifier.empty()) {
          Dropped(cp,
                  "ingredient coding system not mapped to SCRIPT ItemNumber (NDC, RxNorm, UNII "
                  "and RxFlow's urn:rxflow:ncpdp:product-code:<Qualifier> are): not sent");
        } else if (c.item_number) {
          Dropped(cp, "SCRIPT carries one ItemNumber per ingredient: not sent");
        } else if (code.empty()) {
          Dropped(cp, "a coding without a code: not sent");
        } else {
          c.item_number = script::CodeQualifier{
              Text(
                  code, [&] { return cp + ".code"; }, 35, "ingredient item number"),
              qualifier};
          rxnorm_item = coding.system == kRxNorm;
        }
      }
    }
    if (!item_qualifier.empty() && !rxnorm_item) {
      Dropped(item_qualifier_path,
              "SCRIPT CompoundIngredient/ItemNumber/Qualifier (script-element extension) is sent "
              "for an RxNorm ItemNumber only: not sent");
    }
    if (item.concept_ && !unknown) {
      if (has_strength) c.strength = strength;
      lot.compound_ingredient = std::move(c);
    }
    return ok;
  }

  // An NDC coding's code in 11 digits; nullopt, with an error at `cp`.code, when it is none.
  std::optional<std::string> NdcOrError(const fhir::Coding& c, const std::string& cp) {
    std::optional<std::string> ndc = NormalizeNdc(c.code);
    if (!ndc) {
      issues_.Error(cp + ".code", IssueCode::kValue,
                    Cat("not an NDC: \"", c.code.substr(0, 20),
                        "\" (11 digits, or 5-4-2/4-4-2/5-3-2/5-4-1 with hyphens)"));
    }
    return ndc;
  }

  // The drug (its description, codes, strength, schedule), the quantity, days supply, dates,
  // substitution, refills, diagnoses, note and Sig of the MedicationRequest: each step below
  // maps one part and names what it does not send.
  void MapMedication(script::Medication& m, std::string& schedule) {
    const fhir::MedicationRequest& mr = in_.medication_request;
    const std::string& p = in_.medication_request_path;
    std::string code_path;
    const fhir::CodeableConcept* code = MedicationCode(code_path);
    if (!code) return;
    MapDrugDescription(*code, code_path, m);
    script::DrugCoded coded;
    bool any = MapDrugCodings(*code, code_path, coded, m.drug_description);
    // Strength from the Medication's first active ingredient (but a compound's own
    // ingredients, those with an amount: CompoundInformation).
    const bool compound = in_.medication && IsCompound(*in_.medication, in_.medication_path);
    if (in_.medication) {
      StrengthUsed used = MapStrength(*in_.medication, compound, coded);
      any = any || coded.strength.has_value();
      ReportUnsentIngredients(*in_.medication, compound, used);
      if (!compound) ReportUnsentDoseForm(*in_.medication, used, coded);
    }
    std::vector<int> ingredient_schedules;
    if (compound) {
      m.compound_information =
          MapCompound(*in_.medication, in_.medication_path, ingredient_schedules);
    }
    schedule = FindSchedule(schedule_path_);
    if (!schedule.empty()) {
      coded.dea_schedule_code = std::string(*DeaScheduleToNci(schedule));
      any = true;
    }
    if (any) m.drug_coded = std::move(coded);
    // A compound is as controlled as its most restricted ingredient: NewRxResult.dea_schedule
    // (the controlled-substance checks and signing), not DrugCoded/DEASchedule (SCRIPT has
    // each ingredient's).
    if (schedule.empty() && !ingredient_schedules.empty()) {
      static constexpr std::string_view kNames[] = {"", "CI", "CII", "CIII", "CIV", "CV"};
      schedule = std::string(
          kNames[*std::min_element(ingredient_schedules.begin(), ingredient_schedules.end())]);
    }
    MapQuantity(m);
    MapDaysSupply(m);
    Require(!mr.authored_on.empty(), p, ".authoredOn", "the date written (authoredOn)");
    m.written_date = MapDate(mr.authored_on, p + ".authoredOn", "authoredOn");
    MapSubstitution(m);
    MapRefills(m);
    MapDiagnoses(m);
    MapNote(m);
    MapValidityPeriod(m);
    // The Sig.
    SigMapper sig(issues_, options_);
    m.sig = sig.Map(mr.dosage_instruction, p + ".dosageInstruction", provenance_);
  }

  // The drug's concept: the request's own, or the code of the Medication it references; null
  // (and an error) when there is neither.
  const fhir::CodeableConcept* MedicationCode(std::string& code_path) {
    const fhir::MedicationRequest& mr = in_.medication_request;
    const std::string& p = in_.medication_request_path;
    const fhir::CodeableConcept* code = nullptr;
    if (mr.medication.concept_) {
      code = &*mr.medication.concept_;
      code_path = p + ".medication.concept";
    } else if (in_.medication && in_.medication->code) {
      code = &*in_.medication->code;
      code_path = in_.medication_path + ".code";
    }
    if (!code) {
      issues_.Error(
          p + ".medication", IssueCode::kRequired,
          "the medication (a concept, or a resolvable Medication with a code) is required");
      return nullptr;
    }
    return code;
  }

  // DrugDescription: the concept's text, or its first coding's display.
  void MapDrugDescription(const fhir::CodeableConcept& concept_, const std::string& code_path,
                          script::Medication& m) {
    std::string description = concept_.text;
    if (description.empty()) {
      for (const fhir::Coding& c : concept_.coding) {
        if (!c.display.empty()) {
          description = c.display;
          break;
        }
      }
    }
    Require(!description.empty(), code_path, ".text",
            "the drug description (text or a coding display)");
    m.drug_description = Text(
        description, [&] { return code_path + ".text"; }, 105, "drug description");
  }

  // DrugCoded's ProductCode (NDC) and DrugDBCode (RxNorm) from the concept's codings; true
  // when either was set.
  // A sent coding's display that is not the DrugDescription is named (SCRIPT has one
  // description for the drug).
  bool MapDrugCodings(const fhir::CodeableConcept& concept_, const std::string& code_path,
                      script::DrugCoded& coded, std::string_view description) {
    bool any = false;
    for (size_t i = 0; i < concept_.coding.size(); ++i) {
      const fhir::Coding& c = concept_.coding[i];
      std::string cp = Cat(code_path, ".coding[", i, "]");
      const bool display_lost = !c.display.empty() && c.display != description;
      auto sent = [&] {
        any = true;
        if (display_lost) {
          Dropped(cp + ".display",
                  "SCRIPT DrugDescription is the drug's one description: this coding's "
                  "display, another text, is not sent");
        }
      };
      if (c.system == kNdc) {
        if (auto ndc = NdcOrError(c, cp); ndc && !coded.product_code) {
          coded.product_code = script::CodeQualifier{*ndc, "ND"};
          sent();
        } else if (ndc) {
          Dropped(cp, "SCRIPT carries one product code: not sent");
        }
      } else if (c.system == kRxNorm) {
        if (!coded.drug_db_code) {
          coded.drug_db_code =
              script::CodeQualifier{Text(
                                        c.code, [&] { return cp + ".code"; }, 35, "RxNorm code"),
                                    options_.rxnorm_qualifier};
          sent();
        } else {
          Dropped(cp, "SCRIPT carries one drug database code: not sent");
        }
      } else {
        Dropped(cp, "drug coding system not mapped to SCRIPT (NDC and RxNorm are): not sent");
      }
    }
    return any;
  }

  // Which ingredient gave the Strength (SIZE_MAX: none), the StrengthForm extension sent with
  // it, and the ingredients already named in a warning.
  struct StrengthUsed {
    size_t ingredient = SIZE_MAX;
    const fhir::Extension* form = nullptr;
    std::vector<bool> named;
  };

  // Strength from the first active ingredient that has one SCRIPT can carry.
  StrengthUsed MapStrength(const fhir::Medication& med, bool compound, script::DrugCoded& coded) {
    StrengthUsed used;
    used.named.assign(med.ingredient.size(), false);
    for (size_t i = 0; i < med.ingredient.size() && !coded.strength; ++i) {
      const auto& ing = med.ingredient[i];
      if (compound && ing.strength_quantity) continue;
      if (ing.is_active && !*ing.is_active) continue;
      const fhir::Extension* form = nullptr;
      bool named = false;
      if (auto strength = IngredientStrength(med, i, compound, form, named)) {
        coded.strength = std::move(*strength);
        used.ingredient = i;
        used.form = form;
      }
      used.named[i] = named;
    }
    return used;
  }

  // The Strength of ingredient i, with the StrengthForm extension it used in `form_out`; or
  // nullopt, `named` set when a warning named the ingredient.
  std::optional<script::Strength> IngredientStrength(const fhir::Medication& med, size_t i,
                                                     bool compound,
                                                     const fhir::Extension*& form_out,
                                                     bool& named) {
    const auto& ing = med.ingredient[i];
    std::string ip = Cat(in_.medication_path, ".ingredient[", i, "]");
    // The StrengthForm SCRIPT → FHIR keeps with the strength of a compound (whose doseForm
    // is the final dose form): its script-element extension.
    const size_t form_at = IngredientElement(ing, "StrengthForm/Code");
    const fhir::Extension* form = form_at == SIZE_MAX ? nullptr : &ing.extension[form_at];
    auto form_code = [&]() -> std::string {
      if (!form) return {};
      return Text(
          *ReadScriptElement(*form)->value, [&] { return Cat(ip, ".extension[", form_at, "]"); },
          35, "strength form");
    };
    if (ing.strength_codeable_concept && !ing.strength_codeable_concept->text.empty()) {
      form_out = form;
      return script::Strength{
          Text(
              ing.strength_codeable_concept->text,
              [&] { return ip + ".strengthCodeableConcept.text"; }, 70, "strength"),
          form_code(), ""};
    }
    if (ing.strength_quantity) {
      named = true;
      Dropped(ip + ".strengthQuantity",
              "strength as a quantity is not sent as Strength (use strengthRatio); as an "
              "ingredient's amount in a compound it is sent when the Medication carries "
              "RxFlow's compound extension: not sent");
      return std::nullopt;
    }
    if (!ing.strength_ratio || !ing.strength_ratio->numerator) return std::nullopt;
    const auto& den = ing.strength_ratio->denominator;
    // Strength is per one unit of a dose form (tablet, capsule, ...). "400 mg / 5 mL" or
    // "100 units / mL" has no single StrengthValue and unit: DrugDescription carries it.
    static constexpr std::string_view kPerUnit[] = {"",         "1",         "TAB",     "CAP",
                                                    "PATCH",    "SUPP",      "LOZ",     "{tbl}",
                                                    "{tablet}", "{capsule}", "{patch}", "{each}"};
    bool per_unit = !den || (internal::ParseDecimal(den->value).value_or(0) == 1 &&
                             std::find(std::begin(kPerUnit), std::end(kPerUnit), den->code) !=
                                 std::end(kPerUnit));
    if (!per_unit) {
      Dropped(ip + ".strengthRatio",
              "a strength per a volume or per more than one unit is not sent as Strength");
      return std::nullopt;
    }
    if (!ing.strength_ratio->numerator->comparator.empty()) {
      Dropped(ip + ".strengthRatio.numerator.comparator",
              "a strength with a comparator is not sent");
      return std::nullopt;
    }
    const fhir::Quantity& num = *ing.strength_ratio->numerator;
    script::Strength s;
    s.strength_value = Text(
        num.value,
        [&] {
          return Cat(in_.medication_path, ".ingredient[", i, "].strengthRatio.numerator.value");
        },
        70, "strength");
    if (auto u = UnitToNci(num.system, num.code, num.unit)) {
      s.strength_unit_of_measure_code = std::string(u->code);
    } else if (!num.unit.empty() || !num.code.empty()) {
      Dropped(ip + ".strengthRatio.numerator", "strength unit has no NCI code: strength not sent");
      return std::nullopt;
    }
    if (form) {
      s.strength_form_code = form_code();
    } else if (med.dose_form && !compound) {
      for (const fhir::Coding& c : med.dose_form->coding) {
        if (c.system == kNci) s.strength_form_code = c.code;
      }
    }
    form_out = form;
    return s;
  }

  // The extensions of the ingredients that are not a compound's (MapCompound reads those):
  // only the StrengthForm of the one that gave the Strength is sent. An ingredient that gave
  // nothing is named: SCRIPT has no ingredient list but a compound's.
  void ReportUnsentIngredients(const fhir::Medication& med, bool compound,
                               const StrengthUsed& used) {
    for (size_t i = 0; i < med.ingredient.size(); ++i) {
      const auto& ing = med.ingredient[i];
      if (compound && ing.strength_quantity) continue;
      if (i != used.ingredient && !used.named[i]) {
        Dropped(Cat(in_.medication_path, ".ingredient[", i, "]"),
                "SCRIPT carries a product's ingredients only as one Strength (the first "
                "active ingredient's) or as a compound's CompoundInformation (RxFlow's "
                "compound extension): this ingredient is not sent");
      }
      if (i == used.ingredient) {
        // Strength carries the amount per unit alone (§2.5): what the ingredient is, and the
        // "per one unit" that Strength implies, are not sent.
        const std::string ip = Cat(in_.medication_path, ".ingredient[", i, "]");
        if (ing.item.concept_ || ing.item.reference) {
          Dropped(ip + ".item",
                  "SCRIPT Strength carries the strength alone; the drug's own code names the "
                  "ingredient: not sent");
        }
        if (ing.strength_ratio && ing.strength_ratio->denominator) {
          Dropped(ip + ".strengthRatio.denominator",
                  "SCRIPT Strength is per one unit of the dose form: the denominator is implied, "
                  "not sent");
        }
      }
      for (size_t j = 0; j < ing.extension.size(); ++j) {
        if (i == used.ingredient && &ing.extension[j] == used.form) continue;
        Dropped(Cat(in_.medication_path, ".ingredient[", i, "].extension[", j, "]"),
                Cat(ExtensionSubject(ing.extension[j]), ": not mapped to SCRIPT here: not sent"));
      }
    }
  }

  // A product's (not a compound's) dose form reaches SCRIPT only as the Strength's
  // StrengthForm, from the form's NCI coding when no StrengthForm extension gave it: each other
  // coding, and its text, are named.
  void ReportUnsentDoseForm(const fhir::Medication& med, const StrengthUsed& used,
                            const script::DrugCoded& coded) {
    if (!med.dose_form) return;
    const std::string fp = in_.medication_path + ".doseForm";
    const std::string sent_form =
        coded.strength && !used.form ? coded.strength->strength_form_code : std::string();
    for (size_t k = 0; k < med.dose_form->coding.size(); ++k) {
      const fhir::Coding& c = med.dose_form->coding[k];
      if (c.system == kNci && !sent_form.empty() && c.code == sent_form) continue;
      Dropped(Cat(fp, ".coding[", k, "]"),
              "SCRIPT carries a product's dose form only as the Strength's StrengthForm (an NCI "
              "code, with a strength): not sent");
    }
    if (!med.dose_form->text.empty()) {
      Dropped(fp + ".text",
              "SCRIPT StrengthForm is a code alone: the dose form's text is not sent");
    }
  }

  // Quantity: exact, positive, at most 11 characters, its unit as an NCI code.
  void MapQuantity(script::Medication& m) {
    const fhir::MedicationRequest& mr = in_.medication_request;
    const std::string& p = in_.medication_request_path;
    const auto& dr = mr.dispense_request;
    if (!dr || !dr->quantity) {
      issues_.Error(p + ".dispenseRequest.quantity", IssueCode::kRequired,
                    "the quantity to dispense is required");
    } else {
      const fhir::Quantity& q = *dr->quantity;
      std::string qp = p + ".dispenseRequest.quantity";
      script::Quantity sq;
      if (!q.comparator.empty()) {
        issues_.Error(qp + ".comparator", IssueCode::kValue,
                      "the quantity to dispense must be exact (no comparator)");
      } else if (q.value.empty()) {
        Require(false, qp, ".value", "quantity value");
      } else if (!internal::IsScriptNumeric(q.value)) {
        issues_.Error(qp + ".value", IssueCode::kValue,
                      Cat("quantity must be a positive decimal without exponent, got ", q.value));
      } else if (q.value.size() > 11) {
        issues_.Error(qp + ".value", IssueCode::kTooLong, "quantity has more than 11 characters");
      } else if (internal::ParseDecimal(q.value).value_or(0) <= 0) {
        issues_.Error(qp + ".value", IssueCode::kValue, "quantity must be greater than zero");
      } else {
        sq.value = q.value;
      }
      if (auto u = UnitToNci(q.system, q.code, q.unit)) {
        sq.unit_of_measure_code = std::string(u->code);
      } else {
        sq.unit_of_measure_code = std::string(kNciUnspecified);
        issues_.Warning(qp, IssueCode::kValue,
                        Cat("unit \"", q.code.empty() ? q.unit : q.code,
                            "\" has no NCI code in RxFlow's table: sent as C38046 (Unspecified)"));
      }
      m.quantity = sq;
    }
  }

  // DaysSupply from expectedSupplyDuration in days or weeks.
  void MapDaysSupply(script::Medication& m) {
    const fhir::MedicationRequest& mr = in_.medication_request;
    const std::string& p = in_.medication_request_path;
    const auto& dr = mr.dispense_request;
    if (dr && dr->expected_supply_duration) {
      const fhir::Quantity& d = *dr->expected_supply_duration;
      std::string dp = p + ".dispenseRequest.expectedSupplyDuration";
      auto v = d.comparator.empty() ? internal::ParseDecimal(d.value) : std::nullopt;
      double factor = 0;
      std::string_view unit = d.code.empty() ? std::string_view(d.unit) : std::string_view(d.code);
      if (unit == "d" || unit == "day" || unit == "days") factor = 1;
      if (unit == "wk" || unit == "week" || unit == "weeks") factor = 7;
      if (!v || factor == 0) {
        issues_.Error(dp, IssueCode::kValue,
                      "supply duration must be an exact number of days (unit d) or weeks (wk)");
      } else {
        double days = *v * factor;
        if (days != std::floor(days) || days < 1 || days > 999) {
          issues_.Error(dp, IssueCode::kValue, "days supply must be a whole number from 1 to 999");
        } else {
          m.days_supply = std::to_string(static_cast<int>(days));
        }
      }
    }
  }

  // Substitution: allowed (absent or true) → 0; not allowed → 1.
  void MapSubstitution(script::Medication& m) {
    const fhir::MedicationRequest& mr = in_.medication_request;
    const std::string& p = in_.medication_request_path;
    m.substitutions = "0";
    if (mr.substitution) {
      const auto& s = *mr.substitution;
      bool not_allowed = s.allowed_boolean && !*s.allowed_boolean;
      if (s.allowed_codeable_concept) {
        for (const fhir::Coding& c : s.allowed_codeable_concept->coding) {
          if (c.code == "N") not_allowed = true;
        }
      }
      if (not_allowed) {
        m.substitutions = "1";
        if (s.reason) {
          m.reason_for_substitution_code_used = "BRAND MEDICALLY NECESSARY";
          // SCRIPT's one reason says no more: a reason other than that text (what SCRIPT → FHIR
          // writes) is named.
          if (!s.reason->coding.empty() || s.reason->text != "BRAND MEDICALLY NECESSARY") {
            Dropped(p + ".substitution.reason",
                    "sent as ReasonForSubstitutionCodeUsed BRAND MEDICALLY NECESSARY, the one "
                    "value SCRIPT has: the reason's codes and text are not sent");
          }
        }
      } else if (s.reason) {
        Dropped(p + ".substitution.reason",
                "a reason is sent only when substitution is not allowed");
      }
    }
  }

  // NumberOfRefills: numberOfRepeatsAllowed, at most 99.
  void MapRefills(script::Medication& m) {
    const fhir::MedicationRequest& mr = in_.medication_request;
    const std::string& p = in_.medication_request_path;
    const auto& dr = mr.dispense_request;
    int64_t refills = dr && dr->number_of_repeats_allowed ? *dr->number_of_repeats_allowed : 0;
    if (refills > 99) {
      issues_.Error(p + ".dispenseRequest.numberOfRepeatsAllowed", IssueCode::kValue,
                    "SCRIPT allows at most 99 refills");
    }
    m.number_of_refills = std::to_string(refills);
  }

  // Diagnoses: reason[0] → Primary, reason[1] → Secondary.
  void MapDiagnoses(script::Medication& m) {
    const fhir::MedicationRequest& mr = in_.medication_request;
    const std::string& p = in_.medication_request_path;
    std::vector<script::DiagnosisCode> dx;
    std::vector<size_t> dx_index;
    for (size_t i = 0; i < mr.reason.size(); ++i) {
      std::string rp = Cat(p, ".reason[", i, "]");
      if (!mr.reason[i].concept_) {
        Dropped(rp, "a reason given by reference is not sent");
        continue;
      }
      const fhir::CodeableConcept& cc = *mr.reason[i].concept_;
      bool mapped = false;
      for (const fhir::Coding& c : cc.coding) {
        std::string qualifier = c.system == kIcd10Cm  ? "ABF"
                                : c.system == kIcd9Cm ? "DX"
                                : c.system == kSnomed ? "LD"
                                                      : "";
        if (qualifier.empty()) continue;
        std::string codev = c.code;
        if (qualifier != "LD")
          codev.erase(std::remove(codev.begin(), codev.end(), '.'), codev.end());
        std::string desc = !c.display.empty() ? c.display : cc.text;
        mapped = true;
        if (desc.empty()) {
          issues_.Error(rp, IssueCode::kRequired,
                        "a diagnosis needs a description (display or text)");
          break;
        }
        dx.push_back(
            script::DiagnosisCode{Text(
                                      codev, [&] { return rp; }, 35, "diagnosis code"),
                                  qualifier,
                                  Text(
                                      desc, [&] { return rp; }, 255, "diagnosis description")});
        dx_index.push_back(i);
        break;
      }
      if (!mapped) Dropped(rp, "only ICD-10-CM, ICD-9-CM and SNOMED CT diagnoses are sent");
    }
    if (!dx.empty()) {
      script::Diagnosis d;
      d.primary = dx[0];
      if (dx.size() > 1) d.secondary = dx[1];
      for (size_t i = 2; i < dx.size(); ++i)
        Dropped(Cat(p, ".reason[", dx_index[i], "]"), "SCRIPT carries two diagnoses: not sent");
      m.diagnosis.push_back(std::move(d));
    }
  }

  // Note: the request's notes joined, at most 210 characters.
  void MapNote(script::Medication& m) {
    const fhir::MedicationRequest& mr = in_.medication_request;
    const std::string& p = in_.medication_request_path;
    if (!mr.note.empty()) {
      std::string note;
      for (const auto& n : mr.note) {
        if (!note.empty()) note += " ";
        note += n.text;
      }
      m.note = Text(
          note, [&] { return p + ".note"; }, 210, "the note");
    }
  }

  // Do-not-fill-before and expiry.
  void MapValidityPeriod(script::Medication& m) {
    const fhir::MedicationRequest& mr = in_.medication_request;
    const std::string& p = in_.medication_request_path;
    const auto& dr = mr.dispense_request;
    if (dr && dr->validity_period) {
      const fhir::Period& vp = *dr->validity_period;
      // A start on the written date says no more than WrittenDate; any other is sent, one
      // before it too (a partner's EffectiveDate comes back as it was read).
      if (!vp.start.empty() && vp.start.substr(0, 10) != mr.authored_on.substr(0, 10)) {
        m.other_medication_date.push_back(
            {MapDate(vp.start, p + ".dispenseRequest.validityPeriod.start", "validityPeriod.start"),
             "EffectiveDate"});
      }
      if (!vp.end.empty()) {
        m.other_medication_date.push_back(
            {MapDate(vp.end, p + ".dispenseRequest.validityPeriod.end", "validityPeriod.end"),
             "ExpirationDate"});
      }
    }
  }

  // ---- Clinical information: allergies (AllergyOrAdverseEvent) ----

  // The patient's AllergyIntolerance resources → AllergyOrAdverseEvent: the allergies, or
  // NoKnownAllergies for a "no known allergy" statement (SNOMED CT 716186003) when no current
  // allergy is recorded. An allergy that cannot be sent is named in a warning, and still
  // rules out NoKnownAllergies.
  std::optional<script::AllergyOrAdverseEvent> MapAllergies() {
    script::AllergyOrAdverseEvent out;
    std::vector<std::string> no_known;  // the paths of the "no known allergy" statements
    bool any_allergy = false;
    for (const auto& item : in_.allergies) {
      const fhir::AllergyIntolerance& ai = item.resource;
      const std::string& path = item.path;
      if (!CurrentAllergy(ai, path)) continue;
      if (HasSnomed(ai.code, {kNoKnownAllergy})) {
        no_known.push_back(path);
        ReportExtensions(ai, path);
      } else if (HasSnomed(ai.code, {"409137002", "429625007", "428607008"})) {
        // No known drug, food or environmental allergy (SNOMED CT).
        Dropped(path + ".code",
                "a statement of no known drug, food or environmental allergy has no SCRIPT form "
                "(NoKnownAllergies says no allergy of any kind): not sent");
      } else {
        any_allergy = true;
        if (auto a = MapAllergy(ai, path)) out.allergies.push_back(std::move(*a));
      }
    }
    for (const std::string& p : no_known) {
      if (any_allergy) {
        Dropped(p,
                "a \"no known allergy\" statement next to recorded allergies contradicts "
                "them: not sent");
      }
    }
    if (!out.allergies.empty()) return out;
    if (no_known.empty() || any_allergy) return std::nullopt;
    out.no_known_allergies = "Y";
    return out;
  }

  // Whether an AllergyIntolerance is current: not refuted or entered in error, not inactive
  // or resolved (SCRIPT lists the patient's current allergies). Warns when it is not.
  bool CurrentAllergy(const fhir::AllergyIntolerance& ai, const std::string& path) {
    if (HasCoding(ai.verification_status, kAllergyVerificationStatus,
                  {"refuted", "entered-in-error"})) {
      Dropped(path + ".verificationStatus",
              "a refuted or entered-in-error allergy is not sent (SCRIPT lists current allergies)");
      return false;
    }
    if (HasCoding(ai.clinical_status, kAllergyClinicalStatus, {"inactive", "resolved"})) {
      Dropped(path + ".clinicalStatus",
              "an inactive or resolved allergy is not sent (SCRIPT lists current allergies)");
      return false;
    }
    return true;
  }

  // One AllergyIntolerance → Allergies; nullopt, with a warning, when there is no drug or
  // substance text to send (DrugProductCoded/Text is required).
  std::optional<script::Allergy> MapAllergy(const fhir::AllergyIntolerance& ai,
                                            const std::string& path) {
    script::Allergy a;
    if (!MapDrugProduct(ai, path, a.drug_product_coded)) return std::nullopt;
    a.adverse_event = MapAdverseEvent(ai, path);
    a.source_of_information = SourceOfInformation(ai, path);
    if (!ai.onset_date_time.empty()) {
      a.effective_date = AllergyDate(ai.onset_date_time, path + ".onsetDateTime");
    }
    MapAllergyExtensions(ai, path, a);
    MapAllergyReaction(ai, path, a);
    return a;
  }

  // A full date → Date, a dateTime → DateTime; a partial date cannot be sent (a warning).
  script::DateValue AllergyDate(const std::string& value, const std::string& path) {
    script::DateValue d;
    if (internal::IsFullDate(value)) {
      d.date = value;
    } else if (internal::IsXsdDateTime(value)) {
      d.date_time = value;
    } else {
      Dropped(path, "SCRIPT needs a full date (YYYY-MM-DD) or a dateTime with a zone: not sent");
    }
    return d;
  }

  // AllergyIntolerance.code → DrugProductCoded: its text (code.text, else a coding's display)
  // and the first NDC, RxNorm or UNII coding (Qualifier ND, NewRxOptions.rxnorm_qualifier,
  // UN). False, with a warning, when there is no text.
  bool MapDrugProduct(const fhir::AllergyIntolerance& ai, const std::string& path,
                      script::DrugProductCode& out) {
    const std::string cp = path + ".code";
    std::string text = ai.code ? ai.code->text : "";
    for (size_t i = 0; ai.code && i < ai.code->coding.size() && text.empty(); ++i) {
      text = ai.code->coding[i].display;
    }
    if (text.empty()) {
      Dropped(ai.code ? cp : path,
              "an allergy needs the drug or substance as text (code.text or a coding display) "
              "for SCRIPT DrugProductCoded/Text: the allergy is not sent");
      return false;
    }
    out.text = Text(
        text, [&] { return cp + ".text"; }, SIZE_MAX, "allergy drug product");
    for (size_t i = 0; i < ai.code->coding.size(); ++i) {
      const fhir::Coding& c = ai.code->coding[i];
      const std::string ip = Cat(cp, ".coding[", i, "]");
      std::string qualifier = c.system == kNdc      ? "ND"
                              : c.system == kRxNorm ? options_.rxnorm_qualifier
                              : c.system == kUnii   ? "UN"
                                                    : "";
      if (qualifier.empty()) {
        Dropped(ip,
                "code system not mapped to SCRIPT DrugProductCoded (NDC, RxNorm and UNII "
                "are): not sent");
        continue;
      }
      if (!out.code.empty()) {
        Dropped(ip, "SCRIPT carries one drug product code: not sent");
        continue;
      }
      std::optional<std::string> code =
          qualifier == "ND" ? NormalizeNdc(c.code) : std::optional<std::string>(c.code);
      if (!code || code->empty()) {
        Dropped(ip + ".code", qualifier == "ND" ? "not an NDC (11 digits, or 5-4-2/4-4-2/5-3-2/"
                                                  "5-4-1 with hyphens): not sent"
                                                : "no code: not sent");
        continue;
      }
      out.code = Text(
          *code, [&] { return ip + ".code"; }, SIZE_MAX, "allergy drug product code");
      out.qualifier = qualifier;
    }
    return true;
  }

  // AllergyIntolerance.type (and category) → AdverseEvent: a SNOMED CT coding of SCRIPT's
  // list, else the concept for the allergy | intolerance coding and the category; Text is
  // type.text, else the concept's term. A type given as text only is sent as text only.
  script::SnomedCode MapAdverseEvent(const fhir::AllergyIntolerance& ai, const std::string& path) {
    std::optional<AdverseEventConcept> chosen;
    std::string_view mechanism;
    for (size_t i = 0; ai.type && i < ai.type->coding.size(); ++i) {
      const fhir::Coding& c = ai.type->coding[i];
      if (c.system == kAllergyIntoleranceType && mechanism.empty()) {
        mechanism = c.code;
      } else if (auto row = c.system == kSnomed ? FindAdverseEvent(c.code) : std::nullopt;
                 row && !chosen) {
        chosen = row;
      } else {
        Dropped(Cat(path, ".type.coding[", i, "]"),
                "only one SNOMED CT code of SCRIPT's AdverseEvent list (and allergy | "
                "intolerance) is sent: not sent");
      }
    }
    const std::string text = ai.type ? ai.type->text : "";
    std::string_view category;
    for (const std::string& c : ai.category) {
      if (c == "medication" || (c == "food" && category.empty())) category = c;
    }
    if (!chosen && (text.empty() || !mechanism.empty())) {
      chosen = AdverseEventFor(mechanism, category);
    }
    script::SnomedCode out;
    if (chosen) out.code = std::string(chosen->code);
    out.text = Text(
        text.empty() ? std::string(chosen->text) : text, [&] { return path + ".type.text"; },
        SIZE_MAX, "adverse event text");
    return out;
  }

  // The informant participant → SourceOfInformation: P for the patient (or a RelatedPerson),
  // C for anyone else. Without an informant: C (the prescriber's record is the source), with
  // an information issue. The other participants are not sent.
  std::string SourceOfInformation(const fhir::AllergyIntolerance& ai, const std::string& path) {
    std::string source;
    for (size_t i = 0; i < ai.participant.size(); ++i) {
      const fhir::AllergyIntoleranceParticipant& p = ai.participant[i];
      const std::string pp = Cat(path, ".participant[", i, "]");
      if (!HasCoding(p.function, kParticipantType, {"informant"})) {
        Dropped(pp, "only the informant is sent (as SourceOfInformation): not sent");
      } else if (!source.empty()) {
        Dropped(pp, "SCRIPT carries one source of information: not sent");
      } else {
        source = PatientSide(p.actor, ai.patient) ? "P" : "C";
      }
    }
    if (source.empty()) {
      source = "C";
      issues_.Add(Severity::kInformation, IssueCode::kInformational, path,
                  "no informant participant: SourceOfInformation is sent as C (clinician)");
    }
    return source;
  }

  // The AllergyIntolerance's script-element extensions that SCRIPT → FHIR keeps there
  // (ExpirationDate, SeverityCoded/Text and /Code, DrugProductCoded/Qualifier: an RxNorm
  // code's term type, sent instead of NewRxOptions.rxnorm_qualifier); any other extension is
  // named in a warning.
  void MapAllergyExtensions(const fhir::AllergyIntolerance& ai, const std::string& path,
                            script::Allergy& a) {
    script::SnomedCode severity;
    std::string severity_path;
    bool term_type_seen = false;
    for (size_t i = 0; i < ai.extension.size(); ++i) {
      const std::string ep = Cat(path, ".extension[", i, "]");
      auto se = ReadScriptElement(ai.extension[i]);
      const std::string_view el = se ? std::string_view(se->element) : std::string_view();
      if (el == "DrugProductCoded/Qualifier") {
        const std::string v = se->value.value_or("");
        if (v.empty()) {
          Dropped(ep,
                  "SCRIPT DrugProductCoded/Qualifier (script-element extension): no value: "
                  "not sent");
        } else if (!IsRxNormTermType(a.drug_product_coded.qualifier)) {
          Dropped(ep,
                  "SCRIPT DrugProductCoded/Qualifier (script-element extension): sent only "
                  "with an RxNorm code: not sent");
        } else if (term_type_seen) {
          Dropped(ep,
                  "SCRIPT DrugProductCoded/Qualifier (script-element extension): SCRIPT "
                  "carries one: not sent");
        } else if (!IsRxNormTermType(v)) {
          issues_.Error(ep, IssueCode::kValue, NotAnRxNormTermType(v));
        } else {
          term_type_seen = true;
          a.drug_product_coded.qualifier = v;
        }
        continue;
      }
      std::string* field = el == "SeverityCoded/Text"   ? &severity.text
                           : el == "SeverityCoded/Code" ? &severity.code
                                                        : nullptr;
      if (el != "ExpirationDate" && !field) {
        Dropped(ep,
                Cat(ExtensionSubject(ai.extension[i]), ": not mapped to SCRIPT here: not sent"));
      } else if (!se->value || se->value->empty()) {
        Dropped(ep, Cat("SCRIPT ", el, " (script-element extension): no value: not sent"));
      } else if (!field && !a.expiration_date.empty()) {
        Dropped(ep,
                "SCRIPT ExpirationDate (script-element extension): SCRIPT carries one: not sent");
      } else if (!field) {
        a.expiration_date = AllergyDate(*se->value, ep);
      } else {
        *field = Text(
            *se->value, [&] { return std::string_view(ep); }, SIZE_MAX, "severity");
        severity_path = ep;
      }
    }
    if (!severity.text.empty()) {
      a.severity_coded = std::move(severity);
    } else if (!severity.code.empty()) {
      Dropped(severity_path,
              "SCRIPT SeverityCoded needs its Text (the SeverityCoded/Text "
              "script-element extension): not sent");
    }
  }

  // reaction[0] → ReactionCoded (its first manifestation given as a concept) and
  // SeverityCoded (its severity, unless the SeverityCoded extensions say the same more
  // exactly). SCRIPT carries one reaction.
  void MapAllergyReaction(const fhir::AllergyIntolerance& ai, const std::string& path,
                          script::Allergy& a) {
    for (size_t r = 1; r < ai.reaction.size(); ++r) {
      Dropped(Cat(path, ".reaction[", r, "]"), "SCRIPT carries one reaction: not sent");
    }
    if (ai.reaction.empty()) return;
    const fhir::AllergyIntoleranceReaction& re = ai.reaction[0];
    const std::string rp = path + ".reaction[0]";
    for (size_t m = 0; m < re.manifestation.size(); ++m) {
      const std::string mp = Cat(rp, ".manifestation[", m, "]");
      if (a.reaction_coded) {
        Dropped(mp, "SCRIPT carries one reaction manifestation (ReactionCoded): not sent");
      } else if (!re.manifestation[m].concept_) {
        Dropped(mp, "a manifestation given by reference is not sent");
      } else {
        a.reaction_coded = SnomedText(*re.manifestation[m].concept_, mp + ".concept", "reaction");
      }
    }
    if (re.severity.empty()) return;
    if (a.severity_coded && SeverityFromSnomed(a.severity_coded->code) == re.severity) return;
    if (a.severity_coded) {
      Dropped(path + ".extension",
              "the SeverityCoded script-element extensions disagree with reaction.severity, "
              "which is sent instead: not sent");
    }
    a.severity_coded.reset();
    if (auto s = SeverityToSnomed(re.severity)) {
      a.severity_coded = script::SnomedCode{std::string(s->text), std::string(s->code)};
    } else {
      Dropped(rp + ".severity", "not a severity (mild | moderate | severe): not sent");
    }
  }

  // A concept → SNOMEDCode: its text (else a coding's display) and its SNOMED CT code.
  // nullopt, with a warning, when there is no text (SCRIPT requires it).
  std::optional<script::SnomedCode> SnomedText(const fhir::CodeableConcept& cc,
                                               const std::string& path, std::string_view what) {
    script::SnomedCode out;
    std::string text = cc.text;
    for (size_t i = 0; i < cc.coding.size(); ++i) {
      const fhir::Coding& c = cc.coding[i];
      const std::string ip = Cat(path, ".coding[", i, "]");
      if (text.empty()) text = c.display;
      if (c.system == kSnomed && out.code.empty() && !c.code.empty()) {
        out.code = Text(
            c.code, [&] { return ip + ".code"; }, SIZE_MAX, what);
      } else {
        Dropped(ip, "SCRIPT carries one SNOMED CT code here: not sent");
      }
    }
    if (text.empty()) {
      Dropped(path,
              Cat("SCRIPT needs the ", what, " as text (text or a coding display): not sent"));
      return std::nullopt;
    }
    out.text = Text(
        text, [&] { return path + ".text"; }, SIZE_MAX, what);
    return out;
  }

  // ---- Clinical information: vital signs (Observation) ----

  // The patient's Observations → Observation: a Measurement each (at most 10), the notes of
  // those sent joined with a space as ObservationNotes. One that cannot be sent is named in a
  // warning.
  std::optional<script::Observation> MapObservations() {
    script::Observation out;
    std::string notes, notes_path;
    for (const auto& item : in_.observations) {
      const fhir::Observation& o = item.resource;
      const std::string& path = item.path;
      if (out.measurement.size() == 10) {
        Dropped(path, "SCRIPT carries at most 10 measurements: not sent");
        continue;
      }
      auto m = MapMeasurement(o, path);
      if (!m) continue;
      out.measurement.push_back(std::move(*m));
      for (size_t i = 0; i < o.note.size(); ++i) {
        if (!notes.empty()) notes += " ";
        notes += o.note[i].text;
        if (notes_path.empty()) notes_path = Cat(path, ".note[", i, "]");
      }
    }
    if (out.measurement.empty()) return std::nullopt;
    out.observation_notes = Text(
        notes, [&] { return notes_path; }, 140, "the observation notes");
    return out;
  }

  // Whether SCRIPT can carry an Observation as a Measurement: a usable status, a vital sign
  // (or no category), a LOINC code, an exact valueQuantity in UCUM and a full
  // effectiveDateTime. Warns, at the element, when it cannot.
  bool Measurable(const fhir::Observation& o, const std::string& path) {
    auto no = [&](std::string where, std::string_view why) {
      Dropped(std::move(where), Cat(why, ": the Observation is not sent"));
      return false;
    };
    static constexpr std::string_view kSent[] = {"final", "amended", "corrected", "preliminary"};
    if (std::find(std::begin(kSent), std::end(kSent), o.status) == std::end(kSent)) {
      return no(path + ".status", Cat("status \"", std::string_view(o.status).substr(0, 40),
                                      "\" is not a measurement to send"));
    }
    bool vital = o.category.empty();
    for (const fhir::CodeableConcept& c : o.category) {
      vital = vital || HasCoding(c, kObservationCategory, {"vital-signs"});
    }
    if (!vital) return no(path + ".category", "only vital signs are sent as SCRIPT Measurement");
    bool loinc = false;
    for (const fhir::Coding& c : o.code.coding) {
      loinc = loinc || (c.system == kLoinc && !c.code.empty());
    }
    if (!loinc) return no(path + ".code", "SCRIPT Measurement/VitalSign needs a LOINC code");
    const auto& q = o.value_quantity;
    if (!q || q->value.empty()) {
      return no(path + ".valueQuantity", "SCRIPT Measurement needs a value");
    }
    if (!q->comparator.empty()) {
      return no(path + ".valueQuantity.comparator", "a value with a comparator is not exact");
    }
    if (q->system != kUcum || q->code.empty()) {
      return no(path + ".valueQuantity",
                "SCRIPT Measurement/UnitOfMeasure needs a UCUM code (system "
                "http://unitsofmeasure.org)");
    }
    if (!internal::IsScriptNumeric(q->value) || q->value.size() > 18) {
      return no(path + ".valueQuantity.value",
                "SCRIPT Measurement/Value is a number without sign or exponent, at most 18 "
                "characters");
    }
    const std::string& when = o.effective_date_time;
    if (!internal::IsFullDate(when) && !internal::IsXsdDateTime(when)) {
      return no(path + ".effectiveDateTime",
                "SCRIPT Measurement/ObservationDate needs a full date (YYYY-MM-DD) or a dateTime "
                "with a zone (effectiveDateTime)");
    }
    return true;
  }

  // One Observation → Measurement: the LOINC coding (VitalSign; its version, else
  // NewRxOptions.loinc_version, LOINCVersion), valueQuantity (Value, UnitOfMeasure), the
  // script-element extension UCUMVersion (else NewRxOptions.ucum_version), effectiveDateTime
  // (ObservationDate). nullopt, with a warning, when SCRIPT cannot carry it.
  std::optional<script::Measurement> MapMeasurement(const fhir::Observation& o,
                                                    const std::string& path) {
    if (!Measurable(o, path)) return std::nullopt;
    script::Measurement m;
    for (size_t i = 0; i < o.code.coding.size(); ++i) {
      const fhir::Coding& c = o.code.coding[i];
      const std::string ip = Cat(path, ".code.coding[", i, "]");
      if (c.system != kLoinc || c.code.empty() || !m.vital_sign.empty()) {
        Dropped(ip, "SCRIPT carries one code, the LOINC VitalSign: not sent");
        continue;
      }
      m.vital_sign = Text(
          c.code, [&] { return ip + ".code"; }, SIZE_MAX, "LOINC code");
      m.loinc_version = Text(
          c.version.empty() ? options_.loinc_version : c.version, [&] { return ip + ".version"; },
          SIZE_MAX, "LOINC version");
    }
    const fhir::Quantity& q = *o.value_quantity;
    m.value = q.value;
    m.unit_of_measure = Text(
        q.code, [&] { return path + ".valueQuantity.code"; }, SIZE_MAX, "UCUM unit");
    m.ucum_version = options_.ucum_version;
    for (size_t i = 0; i < o.extension.size(); ++i) {
      const std::string ep = Cat(path, ".extension[", i, "]");
      auto se = ReadScriptElement(o.extension[i]);
      if (!se || se->element != "UCUMVersion" || !se->value || se->value->empty()) {
        Dropped(ep, Cat(ExtensionSubject(o.extension[i]), ": not mapped to SCRIPT here: not sent"));
        continue;
      }
      m.ucum_version = Text(
          *se->value, [&] { return std::string_view(ep); }, SIZE_MAX, "UCUM version");
    }
    if (internal::IsFullDate(o.effective_date_time)) {
      m.observation_date.date = o.effective_date_time;
    } else {
      m.observation_date.date_time = o.effective_date_time;
    }
    return m;
  }

  // Allergies and measurements go with a NewRx; a CancelRx has neither element.
  void MapClinicalInformation(bool cancel, std::optional<script::AllergyOrAdverseEvent>& allergies,
                              std::optional<script::Observation>& observation) {
    if (!cancel) {
      allergies = MapAllergies();
      observation = MapObservations();
      return;
    }
    for (const auto& a : in_.allergies) {
      Dropped(a.path, "a CancelRx carries no allergies (AllergyOrAdverseEvent): not sent");
    }
    for (const auto& o : in_.observations) {
      Dropped(o.path, "a CancelRx carries no Observation: not sent");
    }
  }

  // Identifiers (of a Location, or of a practice Organization) → a FacilityID (`element`'s
  // Identification, "Facility" or "PracticeLocation"), each to its member by system, one each;
  // `what` names the party in the issues ("facility", "practice").
  void FacilityIdentification(const std::vector<fhir::Identifier>& identifiers,
                              const std::string& path, std::string_view element,
                              std::string_view what, script::Identification& id) {
    for (size_t i = 0; i < identifiers.size(); ++i) {
      const fhir::Identifier& fi = identifiers[i];
      const std::string ip = Cat(path, ".identifier[", i, "]");
      TextSlot slot;
      const IdentifierKind kind = ClassifyIdentifier(fi.system, TypeCode(fi));
      switch (kind) {
        case IdentifierKind::kNcpdpId:
          slot = {"NCPDPID", &id.ncpdp_id, 35, "NCPDP ID"};
          break;
        case IdentifierKind::kNpi:
          slot = {"NPI", &id.npi, 35, "NPI"};
          break;
        case IdentifierKind::kDea:
          slot = {"DEANumber", &id.dea_number, 35, "DEA number"};
          break;
        case IdentifierKind::kStateLicense:
          slot = {"StateLicenseNumber", &id.state_license_number, 35, "state license number"};
          break;
        default: {
          const TextSlot slots[] = {
              {kFacilityMedicareNumberSystem, &id.medicare_number, 35, "Medicare number"},
              {kFacilityMedicaidNumberSystem, &id.medicaid_number, 35, "Medicaid number"},
              {kFacilityUpinSystem, &id.upin, 35, "UPIN"},
              {kFacilityIdSystem, &id.facility_id, 35, "id (FacilityID)"},
              {kFacilityHinSystem, &id.hin, 35, "HIN"},
              {kFacilityMutuallyDefinedSystem, &id.mutually_defined, 35, "id (mutually defined)"},
              {kFacilityRemsEnrollmentSystem, &id.rems_healthcare_setting_enrollment_id, 35,
               "REMS healthcare setting enrollment id"}};
          for (const TextSlot& s : slots) {
            if (fi.system == s.key) slot = s;
          }
        }
      }
      if (!slot.field) {
        Dropped(ip, Cat("identifier system not mapped to SCRIPT ", element,
                        "/Identification: not sent"));
      } else if (!slot.field->empty()) {
        Dropped(ip, Cat("SCRIPT carries one ", what, " ", slot.what, ": not sent"));
      } else {
        *slot.field = Text(
            fi.value, [&] { return ip + ".value"; }, slot.max, Cat(what, " ", slot.what));
        // The RxFlow systems (kind kOther) name the member themselves and come back.
        IdentifierRest(fi, ip, Cat(element, "/Identification ", slot.what),
                       kind == IdentifierKind::kStateLicense ? IdBack::kByType : IdBack::kBySystem,
                       kind == IdentifierKind::kOther);
      }
    }
  }

  // ---- Location → Facility (docs/mapping.md §2.12) ----

  // The Location the MedicationRequest's facility extension names (ParsePrescription
  // resolved it) → NewRx Facility. A CancelRx has none. Each identifier goes to its
  // FacilityID member by system (one each), name → FacilityName, address (else the first
  // contact's) → Address, the contacts' telecoms → CommunicationNumbers. A Location with no
  // identifier SCRIPT carries is not sent (FacilityID is required): a warning says so.
  std::optional<script::Facility> MapFacility(bool cancel) {
    if (!in_.facility) return std::nullopt;
    const fhir::Location& l = in_.facility->resource;
    const std::string& path = in_.facility->path;
    if (cancel) {
      Dropped(path, "RxFlow's CancelRx carries no Facility: not sent");
      return std::nullopt;
    }
    script::Facility f;
    script::Identification& id = f.identification;
    FacilityIdentification(l.identifier, path, "Facility", "facility", id);
    if (id.empty()) {
      Dropped(path + ".identifier",
              "SCRIPT Facility needs an identifier it carries (NCPDP ID, NPI, DEA, state license "
              "or an RxFlow urn:rxflow:ncpdp facility system): no Facility sent");
      return std::nullopt;
    }
    f.facility_name = Text(
        l.name, [&] { return path + ".name"; }, 70, "facility name");
    if (l.address) f.address = MapAddress(*l.address, path + ".address", false);
    std::vector<std::pair<const fhir::ContactPoint*, std::string>> telecoms;
    for (size_t i = 0; i < l.contact.size(); ++i) {
      const fhir::ExtendedContactDetail& cd = l.contact[i];
      const std::string cp = Cat(path, ".contact[", i, "]");
      if (cd.address && !f.address) {
        f.address = MapAddress(*cd.address, cp + ".address", false);
      } else if (cd.address) {
        Dropped(cp + ".address", "SCRIPT carries one facility address: not sent");
      }
      if (cd.purpose) Dropped(cp + ".purpose");
      if (!cd.name.empty()) Dropped(cp + ".name");
      if (cd.organization) Dropped(cp + ".organization");
      if (cd.period) Dropped(cp + ".period");
      for (size_t t = 0; t < cd.telecom.size(); ++t) {
        telecoms.emplace_back(&cd.telecom[t], Cat(cp, ".telecom[", t, "]"));
      }
    }
    f.communication_numbers = MapTelecom(telecoms, path + ".contact", false);
    for (size_t i = 0; i < l.type.size(); ++i) Dropped(Cat(path, ".type[", i, "]"));
    for (size_t i = 0; i < l.alias.size(); ++i) Dropped(Cat(path, ".alias[", i, "]"));
    if (!l.status.empty() && l.status != "active") {
      issues_.Warning(path + ".status", IssueCode::kValue,
                      Cat("the facility Location's status is \"", l.status.substr(0, 20),
                          "\"; SCRIPT Facility carries no status: sent as the patient's facility"));
    }
    ReportExtensions(l, path);
    return f;
  }

  // ---- Coverage → BenefitsCoordination (docs/mapping.md §2.11) ----

  // The Coverages ParsePrescription collected (at most four) → NewRx BenefitsCoordination,
  // in their order. A CancelRx has none: each Coverage is named as not sent.
  std::vector<script::BenefitsCoordination> MapBenefits(bool cancel) {
    std::vector<script::BenefitsCoordination> out;
    for (const fhir::CoverageInput& c : in_.coverages) {
      if (cancel) {
        Dropped(c.path, "a CancelRx carries no BenefitsCoordination: not sent");
        continue;
      }
      script::BenefitsCoordination b = MapCoverage(c);
      if (IsEmpty(b)) {
        Dropped(c.path, "the Coverage holds nothing SCRIPT BenefitsCoordination carries: not sent");
      } else {
        out.push_back(std::move(b));
      }
    }
    return out;
  }

  static bool IsEmpty(const script::BenefitsCoordination& b) {
    for (const std::string* s :
         {&b.payer_id, &b.processor_identification_number, &b.naic_code, &b.mutually_defined,
          &b.standard_unique_health_plan_identifier, &b.iin_number, &b.payer_name, &b.cardholder_id,
          &b.group_id, &b.payer_responsibility_code, &b.patient_relationship, &b.person_code,
          &b.group_name, &b.pbm_member_id, &b.payer_type}) {
      if (!s->empty()) return false;
    }
    return !b.cardholder_name && !b.address && !b.communication_numbers && !b.responsible_party;
  }

  script::BenefitsCoordination MapCoverage(const fhir::CoverageInput& in) {
    const fhir::Coverage& c = in.coverage;
    const std::string& p = in.path;
    script::BenefitsCoordination b;
    MapInsurer(in, b);
    for (size_t i = 0; i < c.subscriber_id.size(); ++i) {
      const std::string ip = Cat(p, ".subscriberId[", i, "]");
      if (!b.cardholder_id.empty()) {
        Dropped(ip, "SCRIPT carries one CardholderID: not sent");
        continue;
      }
      b.cardholder_id = Text(
          c.subscriber_id[i].value, [&] { return ip + ".value"; }, 35, "cardholder id");
    }
    MapCoverageClasses(c, p, b);
    if (!c.dependent.empty()) {
      if (c.dependent.size() <= 3 && internal::IsScriptNumeric(c.dependent)) {
        b.person_code = c.dependent;
      } else {
        Dropped(p + ".dependent", "SCRIPT PersonCode is a number of 1 to 3 characters: not sent");
      }
    }
    b.patient_relationship = MapRelationship(c, p);
    // order 1, 2, 3 → P (primary), S (secondary), T (tertiary); U and PP come as extensions.
    if (c.order && *c.order >= 1 && *c.order <= 3) {
      b.payer_responsibility_code = std::string(1, "PST"[*c.order - 1]);
    } else if (c.order) {
      Dropped(p + ".order",
              "SCRIPT PayerResponsibilityCode has P, S and T for orders 1 to 3: not sent");
    }
    b.payer_type = MapPayerType(c, p);
    MapCoverageElements(c, p, b);
    if (c.subscriber && !in.subscriber_is_patient && !b.cardholder_name) {
      Dropped(p + ".subscriber",
              "SCRIPT CardHolderName is sent from RxFlow script-element extensions "
              "(CardHolderName/LastName, ...) only: not sent");
    }
    return b;
  }

  // Coverage.insurer. An Organization: its name (PayerName), its payer identifiers
  // (PayerIdentification but the BIN and PCN, which are classes), its first contact address
  // (Address) and its contacts' telecoms (CommunicationNumbers). An insurer that does not
  // resolve: its display (PayerName) and identifier.
  void MapInsurer(const fhir::CoverageInput& in, script::BenefitsCoordination& b) {
    const std::optional<fhir::Reference>& ref = in.coverage.insurer;
    if (!ref) return;
    const std::string rp = in.path + ".insurer";
    if (!in.insurer) {
      b.payer_name = Text(
          ref->display, [&] { return rp + ".display"; }, 70, "payer name");
      if (ref->identifier) PayerIdentifier(*ref->identifier, rp + ".identifier", b);
      if (!ref->reference.empty()) {
        Dropped(rp + ".reference",
                "does not resolve to an Organization: only the insurer's display and identifier "
                "are sent");
      }
      return;
    }
    const fhir::Organization& o = *in.insurer;
    const std::string& op = in.insurer_path;
    if (!o.name.empty()) {
      b.payer_name = Text(
          o.name, [&] { return op + ".name"; }, 70, "payer name");
    } else {
      b.payer_name = Text(
          ref->display, [&] { return rp + ".display"; }, 70, "payer name");
    }
    for (size_t i = 0; i < o.identifier.size(); ++i) {
      PayerIdentifier(o.identifier[i], Cat(op, ".identifier[", i, "]"), b);
    }
    std::vector<std::pair<const fhir::ContactPoint*, std::string>> telecoms;
    for (size_t i = 0; i < o.contact.size(); ++i) {
      const fhir::ExtendedContactDetail& cd = o.contact[i];
      const std::string cp = Cat(op, ".contact[", i, "]");
      if (cd.address && !b.address) {
        b.address = MapAddress(*cd.address, cp + ".address", false);
      } else if (cd.address) {
        Dropped(cp + ".address", "SCRIPT carries one payer address: not sent");
      }
      for (size_t t = 0; t < cd.telecom.size(); ++t) {
        telecoms.emplace_back(&cd.telecom[t], Cat(cp, ".telecom[", t, "]"));
      }
    }
    b.communication_numbers = MapTelecom(telecoms, op + ".contact", false);
    for (size_t i = 0; i < o.type.size(); ++i) {
      if (CodeIn(o.type[i], kOrganizationType) != "pay") Dropped(Cat(op, ".type[", i, "]"));
    }
    if (!o.alias.empty()) Dropped(op + ".alias");
    ReportExtensions(o, op);
  }

  // A payer identifier → PayerIdentification/PayerID, NAICCode, MutuallyDefined or
  // StandardUniqueHealthPlanIdentifier, by its system.
  void PayerIdentifier(const fhir::Identifier& id, const std::string& ip,
                       script::BenefitsCoordination& b) {
    const TextSlot slots[] = {
        {kPayerIdSystem, &b.payer_id, 80, "payer id"},
        {kNaicCompanyCode, &b.naic_code, 35, "NAIC code"},
        {kPayerMutuallyDefinedSystem, &b.mutually_defined, 35, "payer id (mutually defined)"},
        {kHealthPlanIdSystem, &b.standard_unique_health_plan_identifier, 35,
         "health plan identifier"}};
    for (const TextSlot& s : slots) {
      if (id.system != s.key) continue;
      if (!s.field->empty()) {
        Dropped(ip, Cat("SCRIPT carries one ", s.what, ": not sent"));
      } else {
        *s.field = Text(
            id.value, [&] { return ip + ".value"; }, s.max, s.what);
      }
      return;
    }
    Dropped(ip, "identifier system not mapped to SCRIPT PayerIdentification: not sent");
  }

  // Coverage.class (coverage-class) → IINNumber (rxbin), ProcessorIdentificationNumber
  // (rxpcn), PBMMemberID (rxid), and GroupID with GroupName (the group class, else rxgroup).
  void MapCoverageClasses(const fhir::Coverage& c, const std::string& p,
                          script::BenefitsCoordination& b) {
    const TextSlot slots[] = {
        {"rxbin", &b.iin_number, 35, "BIN (IINNumber)"},
        {"rxpcn", &b.processor_identification_number, 35, "processor control number"},
        {"rxid", &b.pbm_member_id, 80, "PBM member id"}};
    std::pair<const fhir::CoverageClass*, std::string> group, rxgroup;  // (class, path)
    for (size_t i = 0; i < c.class_.size(); ++i) {
      const fhir::CoverageClass& k = c.class_[i];
      const std::string kp = Cat(p, ".class[", i, "]");
      const std::string_view code = CodeIn(k.type, kCoverageClass);
      if (k.value.value.empty()) {
        Dropped(kp, "a class without value.value: not sent");
        continue;
      }
      if (code == "group" || code == "rxgroup") {
        auto& slot = code == "group" ? group : rxgroup;
        if (slot.first) {
          Dropped(kp, "SCRIPT carries one GroupID: not sent");
        } else {
          slot = {&k, kp};
        }
        continue;
      }
      const TextSlot* s = nullptr;
      for (const TextSlot& candidate : slots) {
        if (candidate.key == code) s = &candidate;
      }
      if (code.empty()) {
        Dropped(kp, Cat("only a class typed in ", kCoverageClass, " is sent: not sent"));
        continue;
      }
      if (!s || !s->field->empty()) {
        Dropped(kp, !s ? Cat("coverage class \"", code.substr(0, 40),
                             "\" has no SCRIPT element: not sent")
                       : Cat("SCRIPT carries one ", s->what, ": not sent"));
        continue;
      }
      *s->field = Text(
          k.value.value, [&] { return kp + ".value.value"; }, s->max, s->what);
      if (!k.name.empty()) {
        Dropped(kp + ".name", "SCRIPT carries a name for the group only (GroupName): not sent");
      }
    }
    // Not a structured binding: clang 14 cannot capture one in the lambdas below.
    const auto& picked = group.first ? group : rxgroup;
    const auto* chosen = picked.first;
    const std::string& at = picked.second;
    if (!chosen) return;
    b.group_id = Text(
        chosen->value.value, [&] { return at + ".value.value"; }, 35, "group id");
    b.group_name = Text(
        chosen->name, [&] { return at + ".name"; }, 70, "group name");
    if (group.first && rxgroup.first &&
        (rxgroup.first->value.value != group.first->value.value ||
         (!rxgroup.first->name.empty() && rxgroup.first->name != group.first->name))) {
      Dropped(rxgroup.second, "SCRIPT carries one GroupID (the group class's is sent): not sent");
    }
  }

  // Coverage.relationship (subscriber-relationship) → PatientRelationship: 1 cardholder (self),
  // 2 spouse, 3 child, 4 other. A common-law spouse is sent as 2, a parent or an injured party
  // as 4, each with an information issue.
  std::string MapRelationship(const fhir::Coverage& c, const std::string& p) {
    if (!c.relationship) return {};
    static constexpr std::pair<std::string_view, std::string_view> kCodes[] = {
        {"self", "1"},   {"spouse", "2"}, {"child", "3"},  {"other", "4"},
        {"common", "2"}, {"parent", "4"}, {"injured", "4"}};
    const std::string_view code = CodeIn(*c.relationship, kSubscriberRelationship);
    for (const auto& [fhir_code, ncpdp] : kCodes) {
      if (code != fhir_code) continue;
      if (fhir_code != "self" && fhir_code != "spouse" && fhir_code != "child" &&
          fhir_code != "other") {
        issues_.Add(Severity::kInformation, IssueCode::kInformational, p + ".relationship",
                    Cat("relationship ", fhir_code, " is sent as PatientRelationship ", ncpdp));
      }
      return std::string(ncpdp);
    }
    Dropped(p + ".relationship", Cat("only a relationship coded in ", kSubscriberRelationship,
                                     " is sent (PatientRelationship): not sent"));
    return {};
  }

  // Coverage.type: a coding in RxFlow's ncpdp-payer-type system → PayerType.
  std::string MapPayerType(const fhir::Coverage& c, const std::string& p) {
    if (!c.type) return {};
    static constexpr std::string_view kCodes[] = {"A", "B", "C", "D", "E", "F", "G",  "H",
                                                  "J", "K", "L", "M", "N", "P", "ZY", "ZZ"};
    for (const fhir::Coding& cd : c.type->coding) {
      if (cd.system != kNcpdpPayerTypeSystem) continue;
      if (std::find(std::begin(kCodes), std::end(kCodes), cd.code) != std::end(kCodes)) {
        return cd.code;
      }
      Dropped(p + ".type",
              Cat("SCRIPT PayerType has no code \"", cd.code.substr(0, 20), "\": not sent"));
      return {};
    }
    Dropped(p + ".type",
            Cat("only a type coded in ", kNcpdpPayerTypeSystem, " is sent (PayerType): not sent"));
    return {};
  }

  // RxFlow script-element extensions on a Coverage: the BenefitsCoordination elements with no
  // FHIR home (PayerResponsibilityCode U and PP, a GroupName without GroupID, the parts of
  // CardHolderName and ResponsibleParty). Any other extension is named as not sent.
  void MapCoverageElements(const fhir::Coverage& c, const std::string& p,
                           script::BenefitsCoordination& b) {
    script::Name holder, responsible;
    for (size_t i = 0; i < c.extension.size(); ++i) {
      const fhir::Extension& e = c.extension[i];
      const std::string ep = Cat(p, ".extension[", i, "]");
      auto se = ReadScriptElement(e);
      const TextSlot slot = se ? CoverageElement(se->element, b, holder, responsible) : TextSlot{};
      if (!slot.field) {
        Dropped(ep, Cat(ExtensionSubject(e), ": not mapped to SCRIPT: not sent"));
        continue;
      }
      const std::string subject =
          Cat("SCRIPT BenefitsCoordination/", se->element, " (script-element extension)");
      if (!se->value || se->value->empty()) {
        Dropped(ep, Cat(subject, ": no value (a valueString sub-extension \"value\"): not sent"));
      } else if (!slot.field->empty()) {
        Dropped(ep, Cat(subject, ": SCRIPT carries one: not sent"));
      } else {
        *slot.field = Text(
            *se->value, [&] { return std::string_view(ep); }, slot.max, slot.what);
      }
      static constexpr std::string_view kResponsibility[] = {"P", "S", "T", "U", "PP"};
      if (slot.field == &b.payer_responsibility_code && !slot.field->empty() &&
          std::find(std::begin(kResponsibility), std::end(kResponsibility), *slot.field) ==
              std::end(kResponsibility)) {
        Dropped(ep, Cat(subject, ": not a PayerResponsibilityCode (P, S, T, U, PP): not sent"));
        slot.field->clear();
      }
    }
    b.cardholder_name = NameFromParts(holder, p, "CardHolderName");
    b.responsible_party = NameFromParts(responsible, p, "ResponsibleParty");
  }

  // A NameType sent from its script-element parts: SCRIPT requires LastName and FirstName.
  std::optional<script::Name> NameFromParts(const script::Name& n, const std::string& p,
                                            std::string_view element) {
    if (n.last_name.empty() && n.first_name.empty() && n.middle_name.empty() && n.suffix.empty() &&
        n.prefix.empty()) {
      return std::nullopt;
    }
    if (n.last_name.empty() || n.first_name.empty()) {
      Dropped(p + ".extension", Cat("SCRIPT BenefitsCoordination/", element,
                                    " needs its LastName and FirstName (script-element "
                                    "extensions): not sent"));
      return std::nullopt;
    }
    return n;
  }

  // Extensions RxFlow does not send from this resource; each warning names what the
  // extension carries (its SCRIPT element, else its URL).
  // `dea_schedule_read`: the resource is the Medication, whose DEA schedule and compound
  // extensions are read (FindSchedule, MapMedication).
  void ReportExtensions(const fhir::ResourceBase& r, const std::string& path,
                        bool dea_schedule_read = false) {
    for (size_t i = 0; i < r.extension.size(); ++i) {
      const std::string& url = r.extension[i].url;
      if (dea_schedule_read && (url == kDeaScheduleExtension || url == kCompoundExtension)) {
        continue;
      }
      Dropped(Cat(path, ".extension[", i, "]"),
              Cat(ExtensionSubject(r.extension[i]), ": not mapped to SCRIPT here: not sent"));
    }
  }

  // The Patient's and the MedicationRequest's extensions: RxFlow's script-element extensions
  // go back to their SCRIPT element (kScriptElements) when the transaction has it; every
  // other extension (but the DEA schedule, read by FindSchedule) is reported, by what it
  // carries.
  void MapScriptElements(bool cancel, script::Patient& patient, script::Medication& med,
                         std::optional<bool>& prohibit_renewal, std::string& change_flag) {
    bool snomed_version_seen = false, fmt_version_seen = false, term_type_seen = false;
    auto visit = [&](const std::vector<fhir::Extension>& list, const std::string& base,
                     bool on_patient) {
      for (size_t i = 0; i < list.size(); ++i) {
        const fhir::Extension& e = list[i];
        const std::string ep = Cat(base, ".extension[", i, "]");
        if (!on_patient && e.url == kDeaScheduleExtension) continue;
        if (!on_patient && e.url == kSupervisorExtension) {
          // The first one is the Supervisor (MapSupervisor reports what it does not send).
          if (ep + ".valueReference" != in_.supervisor_reference_path) {
            Dropped(ep, "SCRIPT carries one Supervisor (the first supervisor extension): not sent");
          }
          continue;
        }
        if (!on_patient && e.url == kFacilityExtension) continue;  // ParsePrescription, MapFacility
        // Read by interaction screening (the service), not sent: the prescriber's reason.
        if (!on_patient && e.url == kInteractionOverrideExtension) continue;
        auto se = ReadScriptElement(e);
        const ScriptElementRow* row = se ? FindScriptElement(se->element) : nullptr;
        if (!row) {
          Dropped(ep, Cat(ExtensionSubject(e), ": not mapped to SCRIPT: not sent"));
          continue;
        }
        const std::string subject = Cat("SCRIPT ", row->xml_path, " (script-element extension)");
        if (row->on_patient != on_patient) {
          Dropped(ep, Cat(subject, ": expected on the ",
                          row->on_patient ? "Patient" : "MedicationRequest", ": not sent"));
          continue;
        }
        if (!(cancel ? row->cancelrx : row->newrx)) {
          Dropped(ep, Cat(subject, ": a ", cancel ? "CancelRx" : "NewRx",
                          " has no such element: not sent"));
          continue;
        }
        if (!se->value || se->value->empty()) {
          Dropped(ep, Cat(subject, ": no value (a valueString sub-extension \"value\"): not sent"));
          continue;
        }
        const std::string& v = *se->value;
        auto text = [&] {
          return Text(
              v, [&] { return std::string_view(ep); }, row->max, row->element);
        };
        auto once = [&](std::string& field) {
          if (!field.empty()) {
            Dropped(ep, Cat(subject, ": SCRIPT carries one: not sent"));
          } else {
            field = text();
          }
        };
        const std::string_view el = row->element;
        if (el == "DrugCoded/DrugDBCode/Qualifier") {
          if (!med.drug_coded || !med.drug_coded->drug_db_code) {
            Dropped(ep, Cat(subject, ": sent only with an RxNorm coding: not sent"));
          } else if (term_type_seen) {
            Dropped(ep, Cat(subject, ": SCRIPT carries one: not sent"));
          } else if (IsRxNormTermType(v)) {
            term_type_seen = true;
            med.drug_coded->drug_db_code->qualifier = v;
          } else {
            issues_.Error(ep, IssueCode::kValue, NotAnRxNormTermType(v));
          }
        } else if (el == "DoNotFill") {
          once(med.do_not_fill);
        } else if (el == "OrderCaptureMethod") {
          once(med.order_capture_method);
        } else if (el == "PriorAuthorization") {
          once(med.prior_authorization);
        } else if (el == "RxFillIndicator") {
          once(med.rx_fill_indicator);
        } else if (el == "PrescriberCheckedREMS") {
          once(med.prescriber_checked_rems);
        } else if (el == "REMSPatientRiskCategory") {
          once(med.rems_patient_risk_category);
        } else if (el == "REMSAuthorizationNumber") {
          once(med.rems_authorization_number);
        } else if (el == "DrugCoverageStatusCode") {
          std::string code = text();
          if (!code.empty()) med.drug_coverage_status_code.push_back(std::move(code));
        } else if (el == "LastFillDate") {
          if (!med.last_fill_date.empty()) {
            Dropped(ep, Cat(subject, ": SCRIPT carries one: not sent"));
          } else if (internal::IsFullDate(v)) {
            med.last_fill_date.date = v;
          } else if (internal::IsXsdDateTime(v)) {
            med.last_fill_date.date_time = v;
          } else {
            issues_.Error(ep, IssueCode::kValue,
                          Cat("LastFillDate must be a date (YYYY-MM-DD) or a UTC dateTime, got \"",
                              v.substr(0, 40), "\""));
          }
        } else if (el == "ProhibitRenewalRequest") {
          if (prohibit_renewal) {
            Dropped(ep, Cat(subject, ": SCRIPT carries one: not sent"));
          } else if (v == "true" || v == "false") {
            prohibit_renewal = v == "true";
          } else {
            issues_.Error(
                ep, IssueCode::kValue,
                Cat("ProhibitRenewalRequest must be true or false, got \"", v.substr(0, 20), "\""));
          }
        } else if (el == "ChangeOfPrescriptionStatusFlag") {
          once(change_flag);
        } else if (el == "LanguageNameCode") {
          once(patient.language_name_code);
        } else if (el == "TestMessage") {
          once(test_message_);
        } else if (el.starts_with("Header/")) {
          kept_header_.push_back(KeptHeader{ep, row, RoutingMember(el), v});
        } else if (el == "Sig/CodeSystem/SNOMEDVersion" || el == "Sig/CodeSystem/FMTVersion") {
          const bool snomed = el == "Sig/CodeSystem/SNOMEDVersion";
          bool& seen = snomed ? snomed_version_seen : fmt_version_seen;
          if (!med.sig || !med.sig->structured()) {
            Dropped(ep, Cat(subject, ": sent only with a structured Sig: not sent"));
          } else if (seen) {
            Dropped(ep, Cat(subject, ": SCRIPT carries one: not sent"));
          } else {
            seen = true;
            (snomed ? med.sig->snomed_version : med.sig->fmt_version) = text();
          }
        }
      }
    };
    visit(in_.patient.extension, in_.patient_path, true);
    visit(in_.medication_request.extension, in_.medication_request_path, false);
  }

  // A kept header element whose value is not the one this message sends (the message it was
  // read from had another sender, receiver or software): named in a warning.
  void KeptHeaderNotSent(const script::Header& h) {
    for (const KeptHeader& k : kept_header_) {
      if (h.*k.member == k.value) continue;
      Dropped(k.path, Cat("SCRIPT ", k.row->xml_path,
                          " (script-element extension) is the header of the message this "
                          "prescription was read from; this message has its own (NewRxOptions, "
                          "the pharmacy, the prescriber): not sent"));
    }
  }

  void ReportUnmapped() {
    const fhir::MedicationRequest& mr = in_.medication_request;
    const std::string& p = in_.medication_request_path;
    // The Patient's and the MedicationRequest's extensions: MapScriptElements.
    if (in_.practitioner) ReportExtensions(*in_.practitioner, in_.practitioner_path);
    if (in_.practitioner_role) ReportExtensions(*in_.practitioner_role, in_.practitioner_role_path);
    if (in_.pharmacy) ReportExtensions(*in_.pharmacy, in_.pharmacy_path);
    if (in_.medication) ReportExtensions(*in_.medication, in_.medication_path, true);
    if (!mr.category.empty()) Dropped(p + ".category");
    if (mr.encounter) Dropped(p + ".encounter");
    if (mr.course_of_therapy_type) Dropped(p + ".courseOfTherapyType");
    if (!mr.based_on.empty()) Dropped(p + ".basedOn");
    if (mr.prior_prescription) Dropped(p + ".priorPrescription");
    if (mr.group_identifier) Dropped(p + ".groupIdentifier");
    if (mr.status_reason) Dropped(p + ".statusReason");
    if (!mr.status_changed.empty()) Dropped(p + ".statusChanged");
    // SCRIPT has no inactive party: a record marked inactive is sent as it stands, named.
    auto inactive = [&](const std::optional<bool>& active, const std::string& path) {
      if (active && !*active) {
        Dropped(path + ".active", "SCRIPT has no active flag: the record is sent as if active");
      }
    };
    inactive(in_.patient.active, in_.patient_path);
    if (in_.practitioner) inactive(in_.practitioner->active, in_.practitioner_path);
    if (in_.practitioner_role) inactive(in_.practitioner_role->active, in_.practitioner_role_path);
    if (in_.pharmacy) inactive(in_.pharmacy->active, in_.pharmacy_path);
    if (mr.do_not_perform && *mr.do_not_perform) {
      issues_.Error(p + ".doNotPerform", IssueCode::kNotSupported,
                    "a do-not-perform order cannot be sent as a NewRx");
    }
    if (mr.recorder && !in_.recorder) {
      Dropped(p + ".recorder",
              "the recorder does not resolve to a Practitioner, whose name SCRIPT "
              "PrescriberAgent/Name would carry: not sent");
    }
    if (mr.dispense_request) {
      if (mr.dispense_request->initial_fill) Dropped(p + ".dispenseRequest.initialFill");
      if (mr.dispense_request->dispense_interval) Dropped(p + ".dispenseRequest.dispenseInterval");
      if (!mr.dispense_request->dispenser_instruction.empty())
        Dropped(p + ".dispenseRequest.dispenserInstruction");
    }
    for (size_t i = 0; i < mr.identifier.size(); ++i) {
      if (i == order_number_index_) continue;
      const std::string& sys = mr.identifier[i].system;
      if (sys == "urn:rxflow:ncpdp:message-id" || sys == "urn:rxflow:ncpdp:rx-reference-number") {
        Dropped(Cat(p, ".identifier[", i, "]"),
                Cat("SCRIPT Header/",
                    sys == "urn:rxflow:ncpdp:message-id" ? "MessageID" : "RxReferenceNumber",
                    " of an earlier message is not resent (each message gets its own): not sent"));
        continue;
      }
      Dropped(Cat(p, ".identifier[", i, "]"),
              "SCRIPT carries one prescriber order number: not sent");
    }
    if (!mr.rendered_dosage_instruction.empty()) {
      Dropped(p + ".renderedDosageInstruction", "SigText is built from dosageInstruction.text");
    }
  }

  // Maps into `result`, whose body it sets to the NewRx (or CancelRx) and fills in place: the
  // message (~14 KB of members) is not moved on its way out (each move of it cost ~3 % of
  // a FHIR → NewRx transformation).
  Status Build(bool cancel, std::string_view relates_to, NewRxResult& result) {
    script::Header& h = result.message.header;
    const fhir::MedicationRequest& mr = in_.medication_request;
    const std::string& p = in_.medication_request_path;
    size_t errors_before = issues_.error_count();

    // What the transaction carries, in its body; what a CancelRx does not carry is mapped
    // into locals (which report it as not sent).
    struct NotInCancelRx {
      std::optional<bool> prohibit_renewal;
      std::optional<script::Prescriber> supervisor;
      std::optional<script::AllergyOrAdverseEvent> allergies;
      std::optional<script::Observation> observation;
      std::vector<script::BenefitsCoordination> benefits;
      std::optional<script::Facility> facility;
    };
    std::string change_flag;  // a NewRx has none
    std::optional<NotInCancelRx> not_in_cancel;
    script::NewRx* n = nullptr;
    script::CancelRx* c = nullptr;
    if (cancel) {
      c = &result.message.body.emplace<script::CancelRx>();
      not_in_cancel.emplace();
    } else if (n = std::get_if<script::NewRx>(&result.message.body); !n) {
      n = &result.message.body.emplace<script::NewRx>();  // (a fresh result holds one)
    }
    script::Patient& patient = n ? n->patient : c->patient;
    script::Prescriber& prescriber = n ? n->prescriber : c->prescriber;
    std::optional<script::Pharmacy>& pharmacy = n ? n->pharmacy : c->pharmacy;
    script::Medication& med = n ? n->medication_prescribed : c->medication_prescribed;
    std::optional<bool>& prohibit_renewal =
        n ? n->prohibit_renewal_request : not_in_cancel->prohibit_renewal;
    std::optional<script::Prescriber>& supervisor = n ? n->supervisor : not_in_cancel->supervisor;
    std::optional<script::AllergyOrAdverseEvent>& allergies =
        n ? n->allergy_or_adverse_event : not_in_cancel->allergies;
    std::optional<script::Observation>& observation =
        n ? n->observation : not_in_cancel->observation;

    MapPatient(patient);
    std::string npi;
    MapPrescriber(prescriber, npi);
    std::string ncpdp;
    MapPharmacy(pharmacy, ncpdp);
    MapMedication(med, result.dea_schedule);
    result.dea_schedule_path = schedule_path_;
    MapScriptElements(cancel, patient, med, prohibit_renewal,
                      c ? c->change_of_prescription_status_flag : change_flag);
    MapSupervisor(cancel, supervisor);
    MapClinicalInformation(cancel, allergies, observation);
    (n ? n->benefits_coordination : not_in_cancel->benefits) = MapBenefits(cancel);
    (n ? n->facility : not_in_cancel->facility) = MapFacility(cancel);

    h.to = options_.to.empty() ? ncpdp : options_.to;
    h.to_qualifier =
        options_.to.empty() || options_.to_qualifier.empty() ? "P" : options_.to_qualifier;
    h.from = options_.from.empty() ? npi : options_.from;
    h.from_qualifier = options_.from_qualifier;
    h.message_id = Text(
        options_.message_id, [&] { return "options.message_id"; }, 35, "message id");
    Require(!options_.message_id.empty(), "options.message_id", "a message id");
    h.relates_to_message_id = std::string(relates_to);
    h.sent_time = options_.sent_time;
    Require(!options_.sent_time.empty(), "options.sent_time", "the sent time");
    h.sender_software_developer = options_.sender_software_developer;
    h.sender_software_product = options_.sender_software_product;
    h.sender_software_version_release = options_.sender_software_version;
    // A test message stays one: the option, or the marking read from a SCRIPT test message.
    h.test_message = options_.test_message ? "1" : test_message_;
    KeptHeaderNotSent(h);
    // The prescriber's order number: the first identifier that is not one RxFlow wrote for
    // a SCRIPT message id or a pharmacy Rx number.
    for (size_t i = 0; i < mr.identifier.size(); ++i) {
      const std::string& sys = mr.identifier[i].system;
      if (sys == "urn:rxflow:ncpdp:message-id" || sys == "urn:rxflow:ncpdp:rx-reference-number")
        continue;
      h.prescriber_order_number = Text(
          mr.identifier[i].value, [&] { return Cat(p, ".identifier[", i, "].value"); }, 35,
          "prescriber order number");
      IdentifierRest(mr.identifier[i], Cat(p, ".identifier[", i, "]"), "PrescriberOrderNumber",
                     IdBack::kBySystem, sys == kPrescriberOrderNumberSystem);
      order_number_index_ = i;
      break;
    }
    ReportUnmapped();

    if (c) {
      if (!mr.priority.empty()) {
        Dropped(p + ".priority", "RxFlow's CancelRx carries no UrgencyIndicatorCode: not sent");
      }
    } else {
      if (mr.status != "active" && mr.status != "draft" && !mr.status.empty()) {
        issues_.Error(
            p + ".status", IssueCode::kBusinessRule,
            Cat("a NewRx is sent for an active order, not one with status \"", mr.status, "\""));
      }
      if (!mr.intent.empty() && mr.intent != "order" && mr.intent != "original-order" &&
          mr.intent != "instance-order") {
        issues_.Error(p + ".intent", IssueCode::kBusinessRule,
                      Cat("a NewRx is an order; intent \"", mr.intent, "\" cannot be sent"));
      }
      // priority → UrgencyIndicatorCode: routine → S (standard); urgent, asap, stat → X
      // (urgent, SCRIPT's only other code).
      if (mr.priority == "routine") {
        n->urgency_indicator_code = "S";
      } else if (mr.priority == "urgent") {
        n->urgency_indicator_code = "X";
      } else if (mr.priority == "stat" || mr.priority == "asap") {
        n->urgency_indicator_code = "X";
        issues_.Add(Severity::kInformation, IssueCode::kInformational, p + ".priority",
                    Cat("priority ", mr.priority, " is sent as UrgencyIndicatorCode X (urgent)"));
      }
    }
    result.sig_provenance = std::move(provenance_);
    if (issues_.error_count() > errors_before) {
      for (const Issue& i : issues_) {
        if (i.severity == Severity::kError || i.severity == Severity::kFatal) {
          return absl::InvalidArgumentError(
              Cat("cannot map to ", cancel ? "CancelRx" : "NewRx", ": ", ToString(i)));
        }
      }
    }
    return absl::OkStatus();
  }

  const std::string& npi_path() const { return npi_path_; }

 private:
  const fhir::PrescriptionInput& in_;
  IssueList& issues_;
  const NewRxOptions& options_;
  // Where MapMedication found the DEA schedule extension, if it did.
  std::string schedule_path_;
  std::vector<SigElementProvenance> provenance_;
  std::string npi_path_, dea_path_, pharmacy_npi_path_;
  std::string rems_enrollment_path_;  // the prescriber's REMS enrollment identifier
  size_t order_number_index_ = SIZE_MAX;
  std::string test_message_;  // Header/TestMessage from a script-element extension
  // The routing header kept from the message the prescription was read from.
  struct KeptHeader {
    std::string path;  // the extension's
    const ScriptElementRow* row;
    std::string script::Header::*member;  // what this message sends for it
    std::string value;
  };
  std::vector<KeptHeader> kept_header_;
};

}  // namespace

Status MapNewRxInto(const fhir::PrescriptionInput& input, IssueList& issues,
                    const NewRxOptions& options, NewRxResult& out) {
  Mapper m(input, issues, options);
  return m.Build(false, {}, out);
}

StatusOr<NewRxResult> ToNewRx(const fhir::PrescriptionInput& input, IssueList& issues,
                              const NewRxOptions& options) {
  StatusOr<NewRxResult> result(absl::in_place);
  if (Status s = MapNewRxInto(input, issues, options, *result); !s.ok()) result = std::move(s);
  return result;
}

Status MapCancelRxInto(const fhir::PrescriptionInput& input, std::string_view relates_to_message_id,
                       IssueList& issues, const NewRxOptions& options, NewRxResult& out) {
  const std::string& status = input.medication_request.status;
  if (status != "cancelled" && status != "stopped") {
    issues.Error(input.medication_request_path + ".status", IssueCode::kBusinessRule,
                 Cat("a CancelRx is sent for a cancelled or stopped order, not \"", status, "\""));
    return absl::InvalidArgumentError(ToString(issues[issues.size() - 1]));
  }
  Mapper m(input, issues, options);
  return m.Build(true, relates_to_message_id, out);
}

StatusOr<NewRxResult> ToCancelRx(const fhir::PrescriptionInput& input,
                                 std::string_view relates_to_message_id, IssueList& issues,
                                 const NewRxOptions& options) {
  StatusOr<NewRxResult> result(absl::in_place);
  if (Status s = MapCancelRxInto(input, relates_to_message_id, issues, options, *result); !s.ok()) {
    result = std::move(s);
  }
  return result;
}

// ---- One party, medication or Coverage, for the other transactions (parties.h) ----

namespace parties {

script::Patient Patient(const fhir::PrescriptionInput& in, IssueList& issues,
                        const NewRxOptions& options) {
  script::Patient out;
  Mapper(in, issues, options).MapPatient(out);
  return out;
}

script::Prescriber Prescriber(const fhir::PrescriptionInput& in, IssueList& issues,
                              const NewRxOptions& options) {
  script::Prescriber out;
  std::string npi;
  Mapper(in, issues, options).MapPrescriber(out, npi);
  return out;
}

script::Pharmacy Pharmacy(const fhir::PrescriptionInput& in, IssueList& issues,
                          const NewRxOptions& options) {
  std::optional<script::Pharmacy> out;
  std::string ncpdp;
  Mapper(in, issues, options).MapPharmacy(out, ncpdp);
  return out.value_or(script::Pharmacy{});
}

script::Medication Medication(const fhir::PrescriptionInput& in, IssueList& issues,
                              const NewRxOptions& options, std::string& dea_schedule) {
  script::Medication out;
  Mapper(in, issues, options).MapMedication(out, dea_schedule);
  return out;
}

script::BenefitsCoordination Benefits(const fhir::CoverageInput& in, IssueList& issues,
                                      const NewRxOptions& options) {
  const fhir::PrescriptionInput none;
  return Mapper(none, issues, options).MapCoverage(in);
}

void ReportExtensions(const fhir::ResourceBase& r, const std::string& path, IssueList& issues,
                      bool dea_schedule_read) {
  const fhir::PrescriptionInput none;
  const NewRxOptions options;
  Mapper(none, issues, options).ReportExtensions(r, path, dea_schedule_read);
}

std::optional<ScriptElementValue> ScriptElementOf(const fhir::Extension& e) {
  auto v = ReadScriptElement(e);
  if (!v) return std::nullopt;
  return ScriptElementValue{std::move(v->element), std::move(v->value)};
}

std::string ExtensionSubject(const fhir::Extension& e) { return mapping::ExtensionSubject(e); }

}  // namespace parties

}  // namespace rxflow::mapping
