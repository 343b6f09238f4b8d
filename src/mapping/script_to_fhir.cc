// SPDX-License-Identifier: Apache-2.0
// SCRIPT → FHIR R5 Bundle.
#include <algorithm>
#include <utility>
#include <vector>

#include <absl/strings/match.h>

#include "rxflow/internal/crypto.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/mapping/codes.h"
#include "rxflow/mapping/mapping.h"

#include "common/text.h"
#include "mapping/routing_header.h"
#include "mapping/sig.h"

namespace rxflow::mapping {
namespace {

using rxflow::internal::Cat;

// A JSON string literal for an extension's raw value.
// A SCRIPT date or dateTime as FHIR has it. xsd:dateTime may omit the zone (read as UTC,
// the reader warns: docs/mapping.md §4.6); FHIR requires one once there is a time.
// Surrounding white space, which xsd ignores, is dropped.
std::string FhirDateTime(std::string_view v) {
  v = rxflow::internal::Trim(v);
  size_t t = v.find('T');
  if (t == std::string_view::npos) return std::string(v);
  std::string_view time = v.substr(t + 1);
  bool zoned = !time.empty() && (time.back() == 'Z' || time.find('+') != std::string_view::npos ||
                                 time.find('-') != std::string_view::npos);
  return zoned ? std::string(v) : Cat(v, "Z");
}

// A DateType's value: its Date, else its DateTime.
const std::string& DateText(const script::DateValue& d) {
  return !d.date.empty() ? d.date : d.date_time;
}

std::string JsonString(std::string_view v) {
  std::string out = "\"";
  internal::AppendJsonEscaped(out, v);
  out += "\"";
  return out;
}

// A SCRIPT element with no FHIR home, kept as an RxFlow script-element extension.
fhir::Extension ScriptElement(std::string_view element, std::string_view value) {
  return fhir::Extension{std::string(kScriptElementExtension),
                         "",
                         "",
                         {fhir::Extension{"element", "String", JsonString(element), {}},
                          fhir::Extension{"value", "String", JsonString(value), {}}}};
}

// ICD codes travel without the dot in SCRIPT; FHIR writes it after the category (three
// characters; four for ICD-9-CM E codes, e.g. E849.7).
std::string IcdWithDot(const std::string& code, bool icd9) {
  size_t category = icd9 && !code.empty() && code[0] == 'E' ? 4 : 3;
  if (code.size() <= category || absl::StrContains(code, '.')) return code;
  return code.substr(0, category) + "." + code.substr(category);
}

fhir::Identifier Id(std::string_view system, const std::string& value) {
  fhir::Identifier i;
  i.system = std::string(system);
  i.value = value;
  return i;
}

fhir::Identifier TypedId(std::string_view type_code, const std::string& value) {
  fhir::Identifier i;
  i.type = fhir::CodeableConcept{
      {fhir::Coding{std::string(kV2IdentifierType), "", std::string(type_code), "", std::nullopt}},
      ""};
  i.value = value;
  return i;
}

class Builder {
 public:
  Builder(const script::Message& m, IssueList& issues, const ToFhirOptions& options)
      : m_(m), issues_(issues), options_(options) {
    base_ = options.id_prefix + (m.header.message_id.empty() ? "msg" : m.header.message_id);
  }

  // A FHIR id ([A-Za-z0-9-.]{1,64}) derived from the MessageID, so output is reproducible.
  std::string NewId(std::string_view kind) {
    std::string id = Cat(base_, "-", kind);
    for (char& c : id) {
      bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.';
      if (!ok) c = '-';
    }
    if (id.size() > 64) id = id.substr(id.size() - 64);
    return id;
  }

  // Adds a resource; its fullUrl is a urn:uuid derived from the MessageID and its role, so
  // the same message always yields the same Bundle, and references use that fullUrl.
  fhir::Reference Add(fhir::Resource r, std::string_view kind) {
    int n = 1;
    for (auto& [k, count] : kind_count_) {
      if (k == kind) n = ++count;
    }
    if (n == 1) kind_count_.emplace_back(std::string(kind), 1);
    std::string role = n == 1 ? std::string(kind) : Cat(kind, "-", n);
    std::string id = NewId(role);
    const std::string h = internal::Sha256Hex(Cat(base_, "|", role));
    // RFC 4122 layout, version 8 (custom) and the variant bits set.
    fhir::BundleEntry& e = bundle_.entry.emplace_back();
    e.full_url = Cat("urn:uuid:", h.substr(0, 8), "-", h.substr(8, 4), "-8", h.substr(13, 3), "-",
                     "89ab"[h[16] % 4], h.substr(17, 3), "-", h.substr(20, 12));
    e.resource = std::move(r);
    std::visit([&](auto& v) { v.id = std::move(id); }, e.resource->value);
    fhir::Reference ref;
    ref.reference = e.full_url;
    return ref;
  }

  static fhir::HumanName Name(const script::Name& n) {
    fhir::HumanName h;
    h.use = "official";
    h.family = n.last_name;
    if (!n.first_name.empty()) h.given.push_back(n.first_name);
    if (!n.middle_name.empty()) h.given.push_back(n.middle_name);
    if (!n.prefix.empty()) h.prefix.push_back(n.prefix);
    if (!n.suffix.empty()) h.suffix.push_back(n.suffix);
    return h;
  }

  static fhir::Address Addr(const script::Address& a, std::string_view use) {
    fhir::Address out;
    out.use = std::string(use);
    if (!a.address_line1.empty()) out.line.push_back(a.address_line1);
    if (!a.address_line2.empty()) out.line.push_back(a.address_line2);
    out.city = a.city;
    out.state = a.state_province;
    out.postal_code = a.postal_code;
    out.country = a.country_code;
    return out;
  }

  // CommunicationNumbers → telecom, the primary phone first. Each phone keeps its kind in
  // `use` (the primary one the party's usual use) and its extension in the value (RFC 3966's
  // ";ext="). SupportsSMS=Y: a primary or other telephone is `mobile`; a home or work telephone, a
  // pager or a fax gets a second ContactPoint of system sms with the same number. The
  // Direct address is an email marked with US Core's us-core-direct extension.
  static std::vector<fhir::ContactPoint> Telecom(
      const std::optional<script::CommunicationNumbers>& c, std::string_view primary_use) {
    std::vector<fhir::ContactPoint> out;
    if (!c) return out;
    auto phone = [&](const script::Phone& p, std::string_view system, std::string_view use,
                     bool primary = false) {
      const bool sms = p.supports_sms == "Y";
      const bool mobile = sms && system == "phone" && (primary || use.empty());
      fhir::ContactPoint cp;
      cp.system = std::string(system);
      cp.value = p.extension.empty() ? p.number : Cat(p.number, ";ext=", p.extension);
      cp.use = mobile ? "mobile" : std::string(use);
      out.push_back(cp);
      if (sms && !mobile) {
        cp.system = "sms";
        out.push_back(std::move(cp));
      }
    };
    if (c->primary_telephone) phone(*c->primary_telephone, "phone", primary_use, true);
    for (const auto& p : c->beeper) phone(p, "pager", "");
    for (const auto& e : c->electronic_mail)
      out.push_back(fhir::ContactPoint{"email", e, "", {}, {}});
    for (const auto& p : c->fax) phone(p, "fax", "");
    for (const auto& p : c->home_telephone) phone(p, "phone", "home");
    for (const auto& p : c->work_telephone) phone(p, "phone", "work");
    for (const auto& p : c->other_telephone) phone(p, "phone", "");
    if (!c->direct_address.empty()) {
      fhir::ContactPoint direct{"email", c->direct_address, "", {}, {}};
      direct.extension.push_back(
          fhir::Extension{std::string(kUsCoreDirectExtension), "Boolean", "true", {}});
      out.push_back(std::move(direct));
    }
    return out;
  }

  // An organisation's address and numbers → its one contact (R5 has no Organization.address
  // or telecom); none when SCRIPT gives neither.
  static void AddContact(const std::optional<script::Address>& address,
                         const std::optional<script::CommunicationNumbers>& numbers,
                         fhir::Organization& o) {
    if (!address && !numbers) return;
    fhir::ExtendedContactDetail c;
    if (address) c.address = Addr(*address, "work");
    c.telecom = Telecom(numbers, "work");
    o.contact.push_back(std::move(c));
  }

  fhir::Reference AddPatient(const script::Patient& p, const std::string& path) {
    fhir::Patient out;
    const script::Identification& id = p.identification;
    const std::string party = Cat(path, p.human ? "/HumanPatient" : "/NonHumanPatient");
    if (!id.medical_record_identification_number_ehr.empty()) {
      out.identifier.push_back(TypedId("MR", id.medical_record_identification_number_ehr));
    }
    if (!id.social_security.empty()) out.identifier.push_back(Id(kSsn, id.social_security));
    if (!id.rems_patient_id.empty()) {
      out.identifier.push_back(Id(kRemsPatientIdSystem, id.rems_patient_id));
    }
    WarnIdentification(id, party,
                       {"MedicalRecordIdentificationNumberEHR", "SocialSecurity", "REMSPatientID"});
    out.name.push_back(Name(p.name));
    out.gender = p.gender == "M" ? "male" : p.gender == "F" ? "female" : "unknown";
    out.birth_date = !p.date_of_birth.date.empty() ? p.date_of_birth.date
                                                   : p.date_of_birth.date_time.substr(0, 10);
    if (p.address) out.address.push_back(Addr(*p.address, "home"));
    out.telecom = Telecom(p.communication_numbers, "home");
    if (!p.human) {
      issues_.Warning(path, IssueCode::kNotSupported,
                      "a non-human (veterinary) patient is mapped as a Patient");
    }
    // Patient.communication.language is the FHIR home, but RxFlow's FHIR model does not hold
    // it: the code is kept as a script-element extension, which FHIR → SCRIPT reads back.
    if (!p.language_name_code.empty())
      out.extension.push_back(ScriptElement("LanguageNameCode", p.language_name_code));
    return Add(fhir::Resource{std::move(out)}, "patient");
  }

  // One warning per Identification field that has no FHIR identifier system here, naming the
  // element. `mapped` lists the fields the caller carries.
  void WarnIdentification(const script::Identification& id, const std::string& party,
                          std::initializer_list<std::string_view> mapped,
                          std::string_view element = "/Identification") {
    const std::pair<std::string_view, const std::string*> fields[] = {
        {"NCPDPID", &id.ncpdp_id},
        {"StateLicenseNumber", &id.state_license_number},
        {"MedicareNumber", &id.medicare_number},
        {"MedicaidNumber", &id.medicaid_number},
        {"UPIN", &id.upin},
        {"FacilityID", &id.facility_id},
        {"DEANumber", &id.dea_number},
        {"HIN", &id.hin},
        {"SocialSecurity", &id.social_security},
        {"NPI", &id.npi},
        {"CertificateToPrescribe", &id.certificate_to_prescribe},
        {"Data2000WaiverID", &id.data2000_waiver_id},
        {"MutuallyDefined", &id.mutually_defined},
        {"REMSHealthcareProviderEnrollmentID", &id.rems_healthcare_provider_enrollment_id},
        {"StateControlSubstanceNumber", &id.state_control_substance_number},
        {"MedicalRecordIdentificationNumberEHR", &id.medical_record_identification_number_ehr},
        {"PatientAccountNumber", &id.patient_account_number},
        {"REMSPatientID", &id.rems_patient_id},
        {"REMSHealthcareSettingEnrollmentID", &id.rems_healthcare_setting_enrollment_id},
    };
    for (const auto& [name, value] : fields) {
      if (value->empty() || std::find(mapped.begin(), mapped.end(), name) != mapped.end()) continue;
      issues_.Warning(Cat(party, element, "/", name), IssueCode::kNotSupported,
                      "identifier without a FHIR system mapping: not mapped to FHIR: dropped");
    }
  }

  // A prescriber's or pharmacist's NPI, DEA number, state licence and REMS enrollment id as
  // identifiers; the other identifications are named as dropped.
  std::vector<fhir::Identifier> PractitionerIds(const script::Identification& id,
                                                const std::string& path) {
    std::vector<fhir::Identifier> out;
    if (!id.npi.empty()) out.push_back(Id(kNpi, id.npi));
    if (!id.dea_number.empty()) out.push_back(Id(kDeaOid, id.dea_number));
    if (!id.state_license_number.empty()) out.push_back(TypedId("SL", id.state_license_number));
    if (!id.rems_healthcare_provider_enrollment_id.empty()) {
      out.push_back(Id(kRemsProviderEnrollmentSystem, id.rems_healthcare_provider_enrollment_id));
    }
    WarnIdentification(
        id, path, {"NPI", "DEANumber", "StateLicenseNumber", "REMSHealthcareProviderEnrollmentID"});
    return out;
  }

  // `path` is the transaction's Prescriber element. With `with_agent`, a PrescriberAgent
  // becomes a Practitioner that the next Request() names as `recorder` (the person who keyed
  // the order for the prescriber); without (RxFill: a MedicationDispense has no recorder),
  // it is reported as dropped.
  // `kind` names the resources (the Practitioner's role; `<kind>-role`, and the practice
  // Organization `practice` for the prescriber, `<kind>-practice` otherwise); only the
  // prescriber ("prescriber") has a PrescriberAgent. A NewRx Supervisor is built here too.
  fhir::Reference AddPrescriber(const script::Prescriber& p, const std::string& path,
                                bool with_agent = true, std::string_view kind = "prescriber") {
    const bool prescriber = kind == "prescriber";
    const std::string party = Cat(path, p.veterinarian ? "/Veterinarian" : "/NonVeterinarian");
    fhir::Practitioner pr;
    pr.identifier = PractitionerIds(p.identification, party);
    if (p.veterinarian) {
      issues_.Warning(party, IssueCode::kNotSupported,
                      "a veterinarian prescriber is mapped as a Practitioner; the veterinarian "
                      "flag is not mapped to FHIR: dropped");
    }
    if (!p.prescriber_place_of_service.empty()) {
      issues_.Warning(party + "/PrescriberPlaceOfService", IssueCode::kNotSupported,
                      "not mapped to FHIR: dropped");
    }
    pr.name.push_back(Name(p.name));
    if (p.address) pr.address.push_back(Addr(*p.address, "work"));
    pr.telecom = Telecom(p.communication_numbers, "work");
    fhir::Reference practitioner = Add(fhir::Resource{std::move(pr)}, kind);
    if (prescriber) agent_.reset();  // a Supervisor has no PrescriberAgent (nor its table)
    if (!prescriber || !p.prescriber_agent) {
      // nothing to carry
    } else if (with_agent) {
      fhir::Practitioner agent;
      agent.name.push_back(Name(*p.prescriber_agent));
      agent_ = Add(fhir::Resource{std::move(agent)}, "prescriber-agent");
    } else {
      issues_.Warning(party + "/PrescriberAgent", IssueCode::kNotSupported,
                      "a PrescriberAgent is carried only as a MedicationRequest's recorder: not "
                      "mapped to FHIR: dropped");
    }
    if (p.specialty.empty() && !p.practice_location) return practitioner;
    fhir::PractitionerRole role;
    role.practitioner = practitioner;
    if (!p.specialty.empty()) {
      fhir::CodeableConcept cc;
      cc.coding.push_back(fhir::Coding{std::string(kNucc), "", p.specialty, "", std::nullopt});
      role.specialty.push_back(cc);
    }
    if (p.practice_location) {
      fhir::Organization org;
      org.identifier =
          FacilityIdentifiers(p.practice_location->identification, party + "/PracticeLocation");
      org.name = p.practice_location->business_name;
      role.organization =
          Add(fhir::Resource{std::move(org)}, prescriber ? "practice" : Cat(kind, "-practice"));
    }
    return Add(fhir::Resource{std::move(role)}, Cat(kind, "-role"));
  }

  // NewRx Supervisor/NonVeterinarian → a Practitioner (role `supervisor`; with a Specialty
  // or PracticeLocation, a PractitionerRole `supervisor-role` naming it, as for the
  // prescriber), which the MedicationRequest names in RxFlow's supervisor extension (no HL7
  // extension or R5 element carries a supervising prescriber). A Veterinarian supervisor is
  // warned about and dropped.
  void AddSupervisor(const script::Prescriber& s, const std::string& path,
                     fhir::MedicationRequest& mr) {
    if (s.veterinarian) {
      issues_.Warning(path + "/Veterinarian", IssueCode::kNotSupported,
                      "a veterinarian Supervisor is not mapped to FHIR: dropped");
      return;
    }
    fhir::Reference ref = AddPrescriber(s, path, /*with_agent=*/false, "supervisor");
    mr.extension.push_back(fhir::Extension{std::string(kSupervisorExtension),
                                           "Reference",
                                           Cat("{\"reference\":", JsonString(ref.reference), "}"),
                                           {}});
  }

  // `path` is the transaction's Pharmacy element.
  fhir::Reference AddPharmacy(const script::Pharmacy& p, const std::string& path) {
    fhir::Organization o;
    const script::Identification& id = p.identification;
    if (!id.ncpdp_id.empty()) o.identifier.push_back(Id(kNcpdpId, id.ncpdp_id));
    if (!id.npi.empty()) o.identifier.push_back(Id(kNpi, id.npi));
    if (!id.dea_number.empty()) o.identifier.push_back(Id(kDeaOid, id.dea_number));
    if (!id.state_license_number.empty())
      o.identifier.push_back(TypedId("SL", id.state_license_number));
    WarnIdentification(id, path, {"NCPDPID", "NPI", "DEANumber", "StateLicenseNumber"});
    // Specialty → Organization.type: a NUCC taxonomy code (ten characters ending in X) as a
    // NUCC coding, anything else as the type's text.
    if (!p.specialty.empty()) {
      fhir::CodeableConcept type;
      if (p.specialty.size() == 10 && p.specialty.back() == 'X') {
        type.coding.push_back(fhir::Coding{std::string(kNucc), "", p.specialty, "", std::nullopt});
      } else {
        type.text = p.specialty;
      }
      o.type.push_back(std::move(type));
    }
    o.name = p.business_name;
    AddContact(p.address, p.communication_numbers, o);
    return Add(fhir::Resource{std::move(o)}, "pharmacy");
  }

  // NewRx Facility → a Location (role `facility`): every FacilityID identifier (NCPDPID,
  // NPI, DEANumber with the pharmacy's systems, StateLicenseNumber typed SL, the others with
  // RxFlow's urn:rxflow:ncpdp systems), FacilityName → name, Address → address, and
  // CommunicationNumbers → the one contact's telecom (R5 Location has no telecom).
  fhir::Reference AddFacility(const script::Facility& f, const std::string& path) {
    fhir::Location l;
    l.identifier = FacilityIdentifiers(f.identification, path);
    l.name = f.facility_name;
    if (f.address) l.address = Addr(*f.address, "work");
    if (f.communication_numbers) {
      fhir::ExtendedContactDetail c;
      c.telecom = Telecom(f.communication_numbers, "work");
      l.contact.push_back(std::move(c));
    }
    return Add(fhir::Resource{std::move(l)}, "facility");
  }
  // A FacilityID (a Facility's or a PracticeLocation's Identification, under `path`) →
  // identifiers, as AddFacility says.
  std::vector<fhir::Identifier> FacilityIdentifiers(const script::Identification& id,
                                                    const std::string& path) {
    std::vector<fhir::Identifier> out;
    if (!id.ncpdp_id.empty()) out.push_back(Id(kNcpdpId, id.ncpdp_id));
    if (!id.state_license_number.empty()) out.push_back(TypedId("SL", id.state_license_number));
    const std::pair<std::string_view, const std::string*> ids[] = {
        {kFacilityMedicareNumberSystem, &id.medicare_number},
        {kFacilityMedicaidNumberSystem, &id.medicaid_number},
        {kFacilityUpinSystem, &id.upin},
        {kFacilityIdSystem, &id.facility_id},
        {kDeaOid, &id.dea_number},
        {kFacilityHinSystem, &id.hin},
        {kNpi, &id.npi},
        {kFacilityMutuallyDefinedSystem, &id.mutually_defined},
        {kFacilityRemsEnrollmentSystem, &id.rems_healthcare_setting_enrollment_id}};
    for (const auto& [system, value] : ids) {
      if (!value->empty()) out.push_back(Id(system, *value));
    }
    // FacilityID declares no other member; one the reader accepted anyway is named.
    WarnIdentification(
        id, path,
        {"NCPDPID", "StateLicenseNumber", "MedicareNumber", "MedicaidNumber", "UPIN", "FacilityID",
         "DEANumber", "HIN", "NPI", "MutuallyDefined", "REMSHealthcareSettingEnrollmentID"});
    return out;
  }

  // The drug: a CodeableConcept, plus a Medication resource when strength, the DEA schedule
  // or a compound needs one.
  fhir::CodeableReference Drug(const script::Medication& m, const std::string& path) {
    fhir::CodeableConcept cc;
    cc.text = m.drug_description;
    fhir::CodeableReference out;
    const script::DrugCoded* d = m.drug_coded ? &*m.drug_coded : nullptr;
    if (d) DrugCodings(*d, path, cc);
    const bool compound = m.compound_information.has_value();
    if (!compound && (!d || (!d->strength && d->dea_schedule_code.empty()))) {
      out.concept_ = std::move(cc);
      return out;
    }
    fhir::Medication med;
    med.code = std::move(cc);
    if (compound) {
      med.extension.push_back(
          fhir::Extension{std::string(kCompoundExtension), "Boolean", "true", {}});
    }
    if (d && d->strength) {
      fhir::MedicationIngredient ing;
      fhir::CodeableConcept item;
      item.text = m.drug_description;
      ing.item.concept_ = item;
      const script::Strength& s = *d->strength;
      if (std::string value = internal::FhirDecimalFromScript(s.strength_value); !value.empty()) {
        fhir::Quantity num;
        num.value = value;
        if (!s.strength_unit_of_measure_code.empty()) {
          num.system = std::string(kNci);
          num.code = s.strength_unit_of_measure_code;
          num.unit = std::string(NciUnitText(s.strength_unit_of_measure_code));
        }
        ing.strength_ratio = fhir::Ratio{num, std::nullopt};
      } else if (!s.strength_value.empty()) {
        ing.strength_codeable_concept = fhir::CodeableConcept{{}, s.strength_value};
      }
      // A compound's doseForm is its final dose form: the drug's StrengthForm stays with its
      // strength, in a script-element extension.
      if (!s.strength_form_code.empty() && compound) {
        ing.extension.push_back(ScriptElement("StrengthForm/Code", s.strength_form_code));
      } else if (!s.strength_form_code.empty()) {
        med.dose_form = Concept(kNci, s.strength_form_code);
      }
      med.ingredient.push_back(std::move(ing));
    }
    if (d && !d->dea_schedule_code.empty()) {
      DeaSchedule(d->dea_schedule_code, path + "/DrugCoded/DEASchedule", med.extension);
    }
    if (compound) AddCompound(*m.compound_information, path + "/CompoundInformation", med);
    out.reference = Add(fhir::Resource{std::move(med)}, "medication");
    return out;
  }

  // DrugCoded's ProductCode (NDC) and DrugDBCode (RxNorm) → codings of the drug.
  void DrugCodings(const script::DrugCoded& d, const std::string& path, fhir::CodeableConcept& cc) {
    if (d.product_code) {
      if (d.product_code->qualifier == "ND") {
        cc.coding.push_back(
            fhir::Coding{std::string(kNdc), "", d.product_code->code, "", std::nullopt});
      } else {
        issues_.Warning(path + "/DrugCoded/ProductCode", IssueCode::kNotSupported,
                        Cat("product code qualifier ", d.product_code->qualifier,
                            " has no FHIR system: not carried"));
      }
    }
    if (d.drug_db_code) {
      const std::string& q = d.drug_db_code->qualifier;
      if (IsRxNormTermType(q)) {  // the term type: a script-element (KeepScriptElements)
        cc.coding.push_back(
            fhir::Coding{std::string(kRxNorm), "", d.drug_db_code->code, "", std::nullopt});
      } else {
        issues_.Warning(path + "/DrugCoded/DrugDBCode", IssueCode::kNotSupported,
                        Cat("drug database qualifier ", q, " has no FHIR system: not carried"));
      }
    }
  }

  // A DEASchedule (NCI) → RxFlow's dea-schedule extension (valueCode CI … CV) in `out`.
  // C38046 (Unspecified) says no schedule: nothing; another code: a warning at `path`.
  void DeaSchedule(const std::string& nci, const std::string& path,
                   std::vector<fhir::Extension>& out) {
    if (auto name = NciToDeaSchedule(nci)) {
      out.push_back(
          fhir::Extension{std::string(kDeaScheduleExtension), "Code", Cat("\"", *name, "\""), {}});
    } else if (nci != kNciUnspecified) {
      issues_.Warning(path, IssueCode::kValue,
                      Cat("unknown DEA schedule code ", nci, ": not carried"));
    }
  }

  // CompoundInformation → the Medication of a compounded preparation (docs/mapping.md §4.3):
  // RxFlow's compound extension (Drug), doseForm = FinalCompoundPharmaceuticalDosageForm
  // (NCI), one ingredient per CompoundIngredientsLotNotUsed, in order.
  void AddCompound(const script::CompoundInformation& c, const std::string& path,
                   fhir::Medication& med) {
    if (!c.final_compound_pharmaceutical_dosage_form.empty()) {
      med.dose_form = Concept(kNci, c.final_compound_pharmaceutical_dosage_form);
    }
    const size_t n = c.ingredients.size();
    for (size_t i = 0; i < n; ++i) {
      const std::string lot = n > 1 ? Cat(path, "/CompoundIngredientsLotNotUsed[", i + 1, "]")
                                    : path + "/CompoundIngredientsLotNotUsed";
      med.ingredient.push_back(CompoundLot(c.ingredients[i], lot));
    }
  }

  // One CompoundIngredientsLotNotUsed → an ingredient. CompoundIngredientItemDescription →
  // item.concept.text, ItemNumber → its coding (ItemNumberSystem); Quantity →
  // strengthQuantity (the amount in the compound: value, NCI unit); the ingredient's
  // DEASchedule → the dea-schedule extension. What has no FHIR element is a script-element
  // extension on the ingredient, named by its path under CompoundIngredientsLotNotUsed: an
  // RxNorm ItemNumber's term type (CompoundIngredient/ItemNumber/Qualifier), the ingredient's
  // Strength (CompoundIngredient/Strength/StrengthValue, …/StrengthForm/Code,
  // …/StrengthUnitOfMeasure/Code), and a Quantity/CodeListQualifier other than 38.
  fhir::MedicationIngredient CompoundLot(const script::CompoundIngredientLot& lot,
                                         const std::string& path) {
    fhir::MedicationIngredient ing;
    auto keep = [&](std::string_view element, const std::string& value) {
      if (!value.empty()) ing.extension.push_back(ScriptElement(element, value));
    };
    fhir::CodeableConcept item;
    if (lot.compound_ingredient) {
      const script::CompoundIngredient& c = *lot.compound_ingredient;
      const std::string cp = path + "/CompoundIngredient";
      item.text = c.item_description;
      if (c.item_number) {
        const script::CodeQualifier& n = *c.item_number;
        const std::string system = ItemNumberSystem(n.qualifier, n.code);
        item.coding.push_back(fhir::Coding{system, "", n.code, "", std::nullopt});
        if (system == kRxNorm) keep("CompoundIngredient/ItemNumber/Qualifier", n.qualifier);
        if (n.qualifier == "ND" && system != kNdc) {
          issues_.Add(Severity::kInformation, IssueCode::kInformational, cp + "/ItemNumber",
                      Cat("ND code \"", std::string_view(n.code).substr(0, 20),
                          "\" is not an 11-digit NDC: kept in ", system));
        }
      }
      if (c.strength) {
        keep("CompoundIngredient/Strength/StrengthValue", c.strength->strength_value);
        keep("CompoundIngredient/Strength/StrengthForm/Code", c.strength->strength_form_code);
        keep("CompoundIngredient/Strength/StrengthUnitOfMeasure/Code",
             c.strength->strength_unit_of_measure_code);
      }
      if (!c.dea_schedule_code.empty()) {
        DeaSchedule(c.dea_schedule_code, cp + "/DEASchedule", ing.extension);
      }
    }
    // FHIR requires the item; a lot without CompoundIngredient (the schema allows one) says
    // which ingredient it is nowhere: data-absent-reason `unknown`.
    if (item.text.empty() && item.coding.empty()) {
      item.coding.push_back(
          fhir::Coding{std::string(kDataAbsentReason), "", "unknown", "Unknown", std::nullopt});
    }
    ing.item.concept_ = std::move(item);
    ing.strength_quantity = Qty(lot.quantity);
    if (lot.quantity.code_list_qualifier != "38") {
      keep("Quantity/CodeListQualifier", lot.quantity.code_list_qualifier);
    }
    return ing;
  }

  static fhir::Quantity Qty(const script::Quantity& q) {
    fhir::Quantity out;
    out.value = internal::FhirDecimalFromScript(q.value);
    out.system = std::string(kNci);
    out.code = q.unit_of_measure_code;
    out.unit = std::string(NciUnitText(q.unit_of_measure_code));
    return out;
  }

  // Diagnosis/Primary and /Secondary → reasons (ICD-10-CM, ICD-9-CM with the dot; SNOMED).
  std::vector<fhir::CodeableReference> Reasons(const script::Medication& m,
                                               const std::string& path) {
    std::vector<fhir::CodeableReference> out;
    for (size_t i = 0; i < m.diagnosis.size(); ++i) {
      const script::Diagnosis& d = m.diagnosis[i];
      // 1 (the prescriber's, which FHIR → SCRIPT writes) is implied; another qualifier has no
      // home in a CodeableReference.
      if (d.clinical_information_qualifier != "1") {
        issues_.Warning(
            Indexed(path + "/Diagnosis", i, m.diagnosis) + "/ClinicalInformationQualifier",
            IssueCode::kNotSupported,
            Cat("ClinicalInformationQualifier ", d.clinical_information_qualifier.substr(0, 10),
                " has no FHIR form (FHIR → SCRIPT sends 1): not mapped to FHIR: dropped"));
      }
      for (const script::DiagnosisCode* c : {&d.primary, d.secondary ? &*d.secondary : nullptr}) {
        if (!c) continue;
        std::string system, code = c->code;
        if (c->qualifier == "ABF") {
          system = std::string(kIcd10Cm);
          code = IcdWithDot(code, false);
        } else if (c->qualifier == "DX") {
          system = std::string(kIcd9Cm);
          code = IcdWithDot(code, true);
        } else if (c->qualifier == "LD") {
          system = std::string(kSnomed);
        } else {
          issues_.Warning(
              path + "/Diagnosis", IssueCode::kNotSupported,
              Cat("diagnosis qualifier ", c->qualifier, " has no FHIR system: not carried"));
          continue;
        }
        fhir::CodeableReference r;
        r.concept_ = fhir::CodeableConcept{
            {fhir::Coding{system, "", code, c->description, std::nullopt}}, ""};
        out.push_back(std::move(r));
      }
    }
    return out;
  }

  fhir::MedicationRequest Request(const script::Medication& m, const std::string& path,
                                  const fhir::Reference& patient,
                                  const std::optional<fhir::Reference>& requester,
                                  const std::optional<fhir::Reference>& pharmacy) {
    fhir::MedicationRequest mr;
    const script::Header& h = m_.header;
    if (!h.prescriber_order_number.empty()) {
      mr.identifier.push_back(Id(kPrescriberOrderNumberSystem, h.prescriber_order_number));
    }
    if (!h.message_id.empty()) mr.identifier.push_back(Id(kMessageIdSystem, h.message_id));
    if (!h.rx_reference_number.empty())
      mr.identifier.push_back(Id(kRxReferenceSystem, h.rx_reference_number));
    mr.status = "active";
    mr.intent = "order";
    mr.medication = Drug(m, path);
    mr.subject = patient;
    mr.requester = requester;
    mr.recorder = agent_;
    mr.authored_on =
        FhirDateTime(!m.written_date.date.empty() ? m.written_date.date : m.written_date.date_time);
    mr.reason = Reasons(m, path);
    if (!m.note.empty()) mr.note.push_back(fhir::Annotation{"", std::nullopt, "", m.note});
    if (m.sig) {
      mr.dosage_instruction = SigToDosage(*m.sig, path + "/Sig", issues_);
      KeepSigVersions(*m.sig, mr.dosage_instruction, mr.extension);
    }
    fhir::DispenseRequest dr;
    bool any = false;
    if (m.quantity) {
      dr.quantity = Qty(*m.quantity);
      if (m.quantity->code_list_qualifier != "38") {
        issues_.Warning(path + "/Quantity/CodeListQualifier", IssueCode::kNotSupported,
                        Cat("quantity qualifier ", m.quantity->code_list_qualifier,
                            " is not carried (38 assumed)"));
      }
      any = true;
    }
    if (!m.number_of_refills.empty()) {
      // Validated input holds digits; a lenient read may not.
      if (rxflow::internal::IsAllDigits(m.number_of_refills) && m.number_of_refills.size() <= 9) {
        dr.number_of_repeats_allowed = std::stoll(m.number_of_refills);
        any = true;
      } else {
        issues_.Warning(path + "/NumberOfRefills", IssueCode::kValue,
                        "not a whole number: not carried");
      }
    }
    if (!m.days_supply.empty()) {
      dr.expected_supply_duration = fhir::Quantity{internal::FhirDecimalFromScript(m.days_supply),
                                                   "", "days", std::string(kUcum), "d"};
      any = true;
    }
    for (const script::OtherMedicationDate& o : m.other_medication_date) {
      std::string v = FhirDateTime(!o.date.date.empty() ? o.date.date : o.date.date_time);
      if (o.qualifier == "EffectiveDate") {
        if (!dr.validity_period) dr.validity_period.emplace();
        dr.validity_period->start = v;
        any = true;
      } else if (o.qualifier == "ExpirationDate") {
        if (!dr.validity_period) dr.validity_period.emplace();
        dr.validity_period->end = v;
        any = true;
      } else {
        issues_.Warning(path + "/OtherMedicationDate", IssueCode::kNotSupported,
                        Cat("date qualifier ", o.qualifier, " has no FHIR element: not carried"));
      }
    }
    if (pharmacy) {
      dr.dispenser = *pharmacy;
      any = true;
    }
    if (any) mr.dispense_request = std::move(dr);
    if (!m.substitutions.empty()) {
      fhir::Substitution s;
      s.allowed_boolean = m.substitutions != "1";
      if (!m.reason_for_substitution_code_used.empty()) {
        s.reason = fhir::CodeableConcept{{}, m.reason_for_substitution_code_used};
      }
      mr.substitution = s;
    } else if (!m.reason_for_substitution_code_used.empty()) {
      issues_.Warning(path + "/ReasonForSubstitutionCodeUsed", IssueCode::kNotSupported,
                      "a substitution reason without Substitutions: not mapped to FHIR: dropped");
    }
    KeepScriptElements(m, mr.extension);
    KeepHistorySource(m, path, mr.extension);
    return mr;
  }

  // SCRIPT elements of a medication with no FHIR home, kept as RxFlow script-element
  // extensions (the history and transfer elements come only in those transactions).
  // `last_fill`: whether LastFillDate is kept too (a MedicationDispense has a home for it).
  static void KeepScriptElements(const script::Medication& m, std::vector<fhir::Extension>& out,
                                 bool last_fill = true) {
    auto keep = [&](std::string_view element, const std::string& value) {
      if (!value.empty()) out.push_back(ScriptElement(element, value));
    };
    // The RxNorm code's term type: a FHIR coding has none.
    if (m.drug_coded && m.drug_coded->drug_db_code &&
        IsRxNormTermType(m.drug_coded->drug_db_code->qualifier)) {
      keep("DrugCoded/DrugDBCode/Qualifier", m.drug_coded->drug_db_code->qualifier);
    }
    keep("DoNotFill", m.do_not_fill);
    keep("OrderCaptureMethod", m.order_capture_method);
    keep("PriorAuthorization", m.prior_authorization);
    keep("RxFillIndicator", m.rx_fill_indicator);
    for (const std::string& c : m.drug_coverage_status_code) keep("DrugCoverageStatusCode", c);
    if (last_fill) keep("LastFillDate", DateText(m.last_fill_date));
    keep("PharmacyRequestedRefills", m.pharmacy_requested_refills);
    keep("RefillsRemaining", m.refills_remaining);
    keep("PrescriberCheckedREMS", m.prescriber_checked_rems);
    keep("REMSPatientRiskCategory", m.rems_patient_risk_category);
    keep("REMSAuthorizationNumber", m.rems_authorization_number);
    // What was dispensed: each lot's number, then its expiration (FHIR → SCRIPT pairs them
    // in this order).
    keep("ManufacturerName", m.manufacturer_name);
    for (const script::LotNumber& l : m.lot_number) {
      keep("LotNumber/LotNumber", l.lot_number);
      keep("LotNumber/LotExpiration", DateText(l.lot_expiration));
    }
  }

  // HistorySource (history and transfer medications): script-element extensions; of the
  // source's Reference, the NCPDPID and NPI (the other identifiers: a warning each).
  void KeepHistorySource(const script::Medication& m, const std::string& path,
                         std::vector<fhir::Extension>& out) {
    if (!m.history_source) return;
    const script::HistorySource& h = *m.history_source;
    auto keep = [&](std::string_view element, const std::string& value) {
      if (!value.empty()) out.push_back(ScriptElement(element, value));
    };
    keep("HistorySource/Source/Reference/NCPDPID", h.reference.ncpdp_id);
    keep("HistorySource/Source/Reference/NPI", h.reference.npi);
    WarnIdentification(h.reference, path + "/HistorySource/Source/Reference", {"NCPDPID", "NPI"},
                       "");
    keep("HistorySource/Source/SourceDescription", h.source_description);
    keep("HistorySource/Source/SourceQualifier", h.source_qualifier);
    keep("HistorySource/SourceReference", h.source_reference);
    keep("HistorySource/FillNumber", h.fill_number);
    keep("HistorySource/PaymentType", h.payment_type);
  }

  fhir::Reference AddRequest(fhir::MedicationRequest mr) {
    return Add(fhir::Resource{std::move(mr)}, "medication-request");
  }

  // A reference to the prescription this message is about, by its identifiers.
  fhir::Reference RelatedRequest() const {
    fhir::Reference r;
    r.type = "MedicationRequest";
    const script::Header& h = m_.header;
    if (!h.prescriber_order_number.empty()) {
      r.identifier = Id(kPrescriberOrderNumberSystem, h.prescriber_order_number);
    } else if (!h.relates_to_message_id.empty()) {
      r.identifier = Id(kMessageIdSystem, h.relates_to_message_id);
    }
    return r;
  }

  fhir::Task NewTask(std::string status, std::string code, std::string_view code_system,
                     std::string display) {
    fhir::Task t;
    const script::Header& h = m_.header;
    if (!h.message_id.empty()) t.identifier.push_back(Id(kMessageIdSystem, h.message_id));
    t.status = std::move(status);
    t.intent = "order";
    t.code = fhir::CodeableConcept{{fhir::Coding{std::string(code_system), "", std::move(code),
                                                 std::move(display), std::nullopt}},
                                   ""};
    t.focus = RelatedRequest();
    t.last_modified = FhirDateTime(h.sent_time);
    return t;
  }

  void MapBody() {
    const std::string path = Cat("/Message/Body/", script::TransactionName(m_.body));
    std::visit([&](const auto& b) { MapTx(b, path); }, m_.body);
  }

  // NewRx and CancelRx carry the same parties and medication.
  template <typename Tx>
  fhir::MedicationRequest PrescriptionRequest(const Tx& tx, const std::string& path) {
    auto patient = AddPatient(tx.patient, path + "/Patient");
    auto prescriber = AddPrescriber(tx.prescriber, path + "/Prescriber");
    std::optional<fhir::Reference> pharmacy;
    if (tx.pharmacy) pharmacy = AddPharmacy(*tx.pharmacy, path + "/Pharmacy");
    return Request(tx.medication_prescribed, path + "/MedicationPrescribed", patient, prescriber,
                   pharmacy);
  }
  // Header/TestMessage: a test message's prescription stays a test when it is sent on.
  void KeepTestMessage(fhir::MedicationRequest& mr) {
    if (m_.header.test_message.empty()) return;
    mr.extension.push_back(ScriptElement("TestMessage", m_.header.test_message));
    test_message_kept_ = true;
  }
  // The routing header of a request that becomes a Bundle without a Task (NewRx, CancelRx,
  // RxRenewalRequest, RxChangeRequest, RxFill): script-element extensions on its
  // MedicationRequest or MedicationDispense. The answers keep the same elements as Task
  // inputs (KeepHeader). RxReferenceNumber is an identifier already; RelatesToMessageID is
  // kept unless the prescription is referred to by it (`relates_to_carried`).
  void KeepRoutingHeader(std::vector<fhir::Extension>& out, bool relates_to_carried = false) {
    for (const RoutingElement& e : kRoutingEnvelope) {
      Keep(out, e.path, m_.header.*e.member);
    }
    if (!relates_to_carried) {
      Keep(out, kRelatesTo.path, m_.header.*kRelatesTo.member);
    }
  }
  void MapTx(const script::NewRx& n, const std::string& path) {
    fhir::MedicationRequest mr = PrescriptionRequest(n, path);
    KeepTestMessage(mr);
    KeepRoutingHeader(mr.extension);
    mr.insurance = Coverages(n.benefits_coordination, path, *mr.subject);
    if (n.facility) {
      // RxFlow's facility extension (valueReference): R5 MedicationRequest has no element
      // for where the patient resides or receives care.
      const fhir::Reference loc = AddFacility(*n.facility, path + "/Facility");
      mr.extension.push_back(fhir::Extension{std::string(kFacilityExtension),
                                             "Reference",
                                             Cat("{\"reference\":", JsonString(loc.reference), "}"),
                                             {}});
    }
    Priority(n.urgency_indicator_code, path, mr);
    if (n.prohibit_renewal_request) {
      mr.extension.push_back(
          ScriptElement("ProhibitRenewalRequest", *n.prohibit_renewal_request ? "true" : "false"));
    }
    if (n.supervisor) AddSupervisor(*n.supervisor, path + "/Supervisor", mr);
    const fhir::Reference patient = *mr.subject;
    AddRequest(std::move(mr));
    if (n.allergy_or_adverse_event) {
      AddAllergies(*n.allergy_or_adverse_event, patient, path + "/AllergyOrAdverseEvent");
    }
    if (n.observation) AddObservations(*n.observation, patient, path + "/Observation");
  }

  // ---- Clinical information of a NewRx: allergies and measurements ----

  // A CodeableConcept of one coding.
  static fhir::CodeableConcept Concept(std::string_view system, std::string_view code,
                                       std::string_view display = {}) {
    return fhir::CodeableConcept{{fhir::Coding{std::string(system), "", std::string(code),
                                               std::string(display), std::nullopt}},
                                 ""};
  }

  // NoKnownAllergies → the FHIR statement of no known allergy (SNOMED CT 716186003,
  // confirmed); each Allergies → an AllergyIntolerance. All are about the patient.
  void AddAllergies(const script::AllergyOrAdverseEvent& a, const fhir::Reference& patient,
                    const std::string& path) {
    const std::string nka = path + "/NoKnownAllergies";
    if (!a.no_known_allergies.empty() && !a.allergies.empty()) {
      issues_.Warning(nka, IssueCode::kValue,
                      "NoKnownAllergies next to Allergies contradicts them: not mapped to FHIR: "
                      "dropped");
    } else if (!a.no_known_allergies.empty() && a.no_known_allergies != "Y") {
      issues_.Warning(nka, IssueCode::kValue,
                      "NoKnownAllergies is not Y: not mapped to FHIR: dropped");
    } else if (!a.no_known_allergies.empty()) {
      fhir::AllergyIntolerance ai;
      ai.clinical_status = Concept(kAllergyClinicalStatus, "active", "Active");
      ai.verification_status = Concept(kAllergyVerificationStatus, "confirmed", "Confirmed");
      ai.code = Concept(kSnomed, kNoKnownAllergy, "No known allergy");
      ai.patient = patient;
      Add(fhir::Resource{std::move(ai)}, "allergy");
    }
    for (size_t i = 0; i < a.allergies.size(); ++i) {
      fhir::AllergyIntolerance ai =
          Allergy(a.allergies[i], patient, Cat(path, "/Allergies[", i + 1, "]"));
      Add(fhir::Resource{std::move(ai)}, "allergy");
    }
  }

  // One Allergies → an AllergyIntolerance (active): type and category from AdverseEvent, code
  // from DrugProductCoded, onsetDateTime from EffectiveDate, the informant participant from
  // SourceOfInformation, the reaction from ReactionCoded and SeverityCoded. ExpirationDate
  // and an RxNorm code's term type have no FHIR element: script-element extensions.
  fhir::AllergyIntolerance Allergy(const script::Allergy& a, const fhir::Reference& patient,
                                   const std::string& path) {
    fhir::AllergyIntolerance ai;
    ai.clinical_status = Concept(kAllergyClinicalStatus, "active", "Active");
    const std::optional<AdverseEventConcept> kind = FindAdverseEvent(a.adverse_event.code);
    ai.type = AdverseEventType(a.adverse_event, kind);
    ai.category.emplace_back(kind && kind->category == "food" ? "food" : "medication");
    ai.code = DrugProduct(a.drug_product_coded, path + "/DrugProductCoded");
    if (ai.code && !ai.code->coding.empty() && IsRxNormTermType(a.drug_product_coded.qualifier)) {
      // A coding has no term type.
      ai.extension.push_back(
          ScriptElement("DrugProductCoded/Qualifier", a.drug_product_coded.qualifier));
    }
    ai.patient = patient;
    ai.onset_date_time = FhirDateTime(DateText(a.effective_date));
    fhir::AllergyIntoleranceParticipant informant;
    informant.function = Concept(kParticipantType, "informant", "Informant");
    if (a.source_of_information == "P") {
      informant.actor = patient;
    } else if (a.source_of_information == "C") {
      // A clinician, whom SCRIPT does not name: a logical reference by type and display.
      informant.actor = fhir::Reference{"", "Practitioner", std::nullopt, "clinician"};
    } else if (!a.source_of_information.empty()) {
      issues_.Warning(path + "/SourceOfInformation", IssueCode::kValue,
                      Cat("source of information ", a.source_of_information,
                          " is neither P nor C: not mapped to FHIR: dropped"));
    }
    if (informant.actor) ai.participant.push_back(std::move(informant));
    if (!a.expiration_date.empty()) {
      ai.extension.push_back(ScriptElement("ExpirationDate", DateText(a.expiration_date)));
    }
    AllergyReaction(a, ai);
    return ai;
  }

  // AdverseEvent → AllergyIntolerance.type: the allergy | intolerance coding its SNOMED CT code
  // implies (none for a propensity), the SNOMED CT coding itself, and its Text.
  static std::optional<fhir::CodeableConcept> AdverseEventType(
      const script::SnomedCode& e, const std::optional<AdverseEventConcept>& kind) {
    fhir::CodeableConcept cc;
    cc.text = e.text;
    if (kind && !kind->type.empty()) {
      cc.coding.push_back(
          fhir::Coding{std::string(kAllergyIntoleranceType), "", std::string(kind->type),
                       kind->type == "allergy" ? "Allergy" : "Intolerance", std::nullopt});
    }
    if (!e.code.empty()) {
      cc.coding.push_back(fhir::Coding{std::string(kSnomed), "", e.code,
                                       kind ? std::string(kind->text) : "", std::nullopt});
    }
    if (cc.coding.empty() && cc.text.empty()) return std::nullopt;
    return cc;
  }

  // DrugProductCoded → AllergyIntolerance.code: its Text, and its Code in the FHIR system of
  // its Qualifier (NDC, RxNorm, UNII; the other qualifiers have none: a warning).
  fhir::CodeableConcept DrugProduct(const script::DrugProductCode& d, const std::string& path) {
    fhir::CodeableConcept cc;
    cc.text = d.text;
    if (d.code.empty()) return cc;
    std::string_view system = DrugProductSystem(d.qualifier);
    if (system.empty()) {
      issues_.Warning(path, IssueCode::kNotSupported,
                      Cat("drug product qualifier \"", d.qualifier,
                          "\" has no FHIR system: Code and Qualifier not mapped to FHIR: dropped"));
      return cc;
    }
    if (d.qualifier == "ND" && !NormalizeNdc(d.code)) {
      issues_.Warning(path, IssueCode::kValue,
                      "Code is not an NDC (11 digits, or 5-4-2/4-4-2/5-3-2/5-4-1 with hyphens): "
                      "Code and Qualifier not mapped to FHIR: dropped");
      return cc;
    }
    cc.coding.push_back(fhir::Coding{std::string(system), "", d.code, "", std::nullopt});
    return cc;  // an RxNorm term type: a script-element extension (Allergy)
  }

  // ReactionCoded → reaction[0].manifestation[0] (a SNOMED CT concept); SeverityCoded →
  // reaction[0].severity. What FHIR cannot hold exactly (a severity term or code other than
  // the one RxFlow sends back for that severity; a severity without a reaction, since a FHIR
  // reaction needs a manifestation) is kept as the script-element extensions
  // SeverityCoded/Text and SeverityCoded/Code.
  static void AllergyReaction(const script::Allergy& a, fhir::AllergyIntolerance& ai) {
    const std::string_view severity =
        a.severity_coded ? SeverityFromSnomed(a.severity_coded->code) : std::string_view();
    if (a.reaction_coded) {
      fhir::CodeableConcept cc;
      cc.text = a.reaction_coded->text;
      if (!a.reaction_coded->code.empty()) {
        cc.coding.push_back(
            fhir::Coding{std::string(kSnomed), "", a.reaction_coded->code, "", std::nullopt});
      }
      fhir::AllergyIntoleranceReaction r;
      r.manifestation.push_back(fhir::CodeableReference{std::move(cc), std::nullopt});
      r.severity = std::string(severity);
      ai.reaction.push_back(std::move(r));
    }
    if (!a.severity_coded) return;
    const auto standard = SeverityToSnomed(severity);
    if (a.reaction_coded && standard && standard->code == a.severity_coded->code &&
        standard->text == a.severity_coded->text) {
      return;  // reaction.severity says it all
    }
    ai.extension.push_back(ScriptElement("SeverityCoded/Text", a.severity_coded->text));
    if (!a.severity_coded->code.empty()) {
      ai.extension.push_back(ScriptElement("SeverityCoded/Code", a.severity_coded->code));
    }
  }

  // Each Measurement → an Observation (vital signs, final); ObservationNotes → the first
  // one's note. Notes without a Measurement have no Observation to go on.
  void AddObservations(const script::Observation& o, const fhir::Reference& patient,
                       const std::string& path) {
    for (size_t i = 0; i < o.measurement.size(); ++i) {
      fhir::Observation obs = MeasurementObservation(o.measurement[i], patient);
      if (i == 0 && !o.observation_notes.empty()) {
        obs.note.push_back(fhir::Annotation{"", std::nullopt, "", o.observation_notes});
      }
      Add(fhir::Resource{std::move(obs)}, "observation");
    }
    if (o.measurement.empty() && !o.observation_notes.empty()) {
      issues_.Warning(path + "/ObservationNotes", IssueCode::kNotSupported,
                      "notes without a Measurement have no FHIR Observation to go on: not mapped "
                      "to FHIR: dropped");
    }
  }

  // VitalSign (LOINC, LOINCVersion as the coding's version) → code; Value and UnitOfMeasure →
  // valueQuantity (UCUM); ObservationDate → effectiveDateTime. UCUMVersion has no FHIR element
  // (a Quantity has no version): a script-element extension.
  static fhir::Observation MeasurementObservation(const script::Measurement& m,
                                                  const fhir::Reference& patient) {
    fhir::Observation o;
    o.status = "final";
    o.category.push_back(Concept(kObservationCategory, "vital-signs", "Vital Signs"));
    o.code = Concept(kLoinc, m.vital_sign, "");
    o.code.coding[0].version = m.loinc_version;
    o.subject = patient;
    o.effective_date_time = FhirDateTime(DateText(m.observation_date));
    fhir::Quantity q;
    q.value = internal::FhirDecimalFromScript(m.value);
    q.unit = m.unit_of_measure;
    q.system = std::string(kUcum);
    q.code = m.unit_of_measure;
    o.value_quantity = std::move(q);
    if (!m.ucum_version.empty()) {
      o.extension.push_back(ScriptElement("UCUMVersion", m.ucum_version));
    }
    return o;
  }
  void MapTx(const script::CancelRx& c, const std::string& path) {
    fhir::MedicationRequest mr = PrescriptionRequest(c, path);
    KeepTestMessage(mr);
    KeepRoutingHeader(mr.extension);
    mr.status = "cancelled";
    if (!c.change_of_prescription_status_flag.empty()) {
      mr.extension.push_back(
          ScriptElement("ChangeOfPrescriptionStatusFlag", c.change_of_prescription_status_flag));
    }
    AddRequest(std::move(mr));
  }
  void MapTx(const script::Status& s, const std::string&) {
    fhir::Task t = NewTask(s.code == "010" ? "completed" : "accepted", s.code, kNcpdpStatusSystem,
                           s.code == "010" ? "accepted by the ultimate receiver" : "accepted");
    t.description = s.description;
    for (const std::string& c : s.description_code) InputString(t, "DescriptionCode", c);
    KeepHeader(t);
    Add(fhir::Resource{std::move(t)}, "task");
  }
  void MapTx(const script::Verify& v, const std::string&) {
    fhir::Task t = NewTask("completed", v.code.empty() ? "010" : v.code, kNcpdpStatusSystem,
                           "verified (return receipt)");
    t.description = v.description;
    KeepHeader(t);
    Add(fhir::Resource{std::move(t)}, "task");
  }
  void MapTx(const script::Error& e, const std::string& path) {
    fhir::OperationOutcome oo;
    fhir::OperationOutcomeIssue issue;
    issue.severity = "error";
    issue.code = e.retryable() ? "transient" : "processing";
    fhir::CodeableConcept details;
    details.coding.push_back(
        fhir::Coding{std::string(kNcpdpErrorSystem), "", e.code, "", std::nullopt});
    for (const std::string& d : e.description_code) {
      details.coding.push_back(
          fhir::Coding{std::string(kNcpdpErrorSystem), "", d, "", std::nullopt});
    }
    issue.details = details;
    issue.diagnostics = e.description;
    // For 500/1000/2000/3000 the Description carries the XPath of the offending element.
    if (!e.description.empty() && e.description[0] == '/') issue.location.push_back(e.description);
    oo.issue.push_back(std::move(issue));
    Add(fhir::Resource{std::move(oo)}, "outcome");
    fhir::Task t =
        NewTask("failed", e.code, kNcpdpErrorSystem, e.retryable() ? "error (retryable)" : "error");
    t.description = e.description;
    KeepHeader(t);
    Add(fhir::Resource{std::move(t)}, "task");
    (void)path;
  }
  void MapTx(const script::CancelRxResponse& c, const std::string&) {
    bool approved = c.response.kind == "Approved";
    fhir::Task t = NewTask(approved ? "completed" : "rejected", c.response.kind,
                           kNcpdpResponseSystem, approved ? "cancel approved" : "cancel denied");
    ResponseToTask(c.response, t);
    KeepHeader(t);
    Add(fhir::Resource{std::move(t)}, "task");
  }
  void MapTx(const script::RxRenewalRequest& r, const std::string& path) {
    auto patient = AddPatient(r.patient, path + "/Patient");
    auto prescriber = AddPrescriber(r.prescriber, path + "/Prescriber");
    auto pharmacy = AddPharmacy(r.pharmacy, path + "/Pharmacy");
    fhir::MedicationRequest mr = Request(r.medication_dispensed, path + "/MedicationDispensed",
                                         patient, prescriber, pharmacy);
    mr.intent = "proposal";  // the pharmacy asks; the prescriber decides
    KeepRoutingHeader(mr.extension);
    if (r.medication_prescribed) {
      // The prescription as written, which the proposal would renew: its priorPrescription.
      // It is the order the header's PrescriberOrderNumber names; the message's own ids
      // belong to the proposal.
      fhir::MedicationRequest prior = Request(
          *r.medication_prescribed, path + "/MedicationPrescribed", patient, prescriber, pharmacy);
      std::erase_if(prior.identifier, [](const fhir::Identifier& id) {
        return id.system != kPrescriberOrderNumberSystem;
      });
      mr.prior_prescription = Add(fhir::Resource{std::move(prior)}, "prior-prescription");
    }
    AddRequest(std::move(mr));
  }
  void MapTx(const script::RxRenewalResponse& r, const std::string& path) {
    auto patient = AddPatient(r.patient, path + "/Patient");
    auto prescriber = AddPrescriber(r.prescriber, path + "/Prescriber");
    auto pharmacy = AddPharmacy(r.pharmacy, path + "/Pharmacy");
    bool denied = r.response.kind.starts_with("Denied");
    fhir::MedicationRequest mr =
        Request(r.medication_response, path + "/MedicationResponse", patient, prescriber, pharmacy);
    if (denied) mr.status = "cancelled";  // the renewal was refused: no order to fill
    AddRequest(std::move(mr));
    fhir::Task t = NewTask(denied ? "rejected" : "completed", r.response.kind, kNcpdpResponseSystem,
                           "renewal response");
    ResponseToTask(r.response, t);
    KeepHeader(t);
    Add(fhir::Resource{std::move(t)}, "task");
  }
  void MapTx(const script::RxChangeRequest& r, const std::string& path) {
    auto patient = AddPatient(r.patient, path + "/Patient");
    auto prescriber = AddPrescriber(r.prescriber, path + "/Prescriber");
    auto pharmacy = AddPharmacy(r.pharmacy, path + "/Pharmacy");
    fhir::MedicationRequest prescribed = Request(
        r.medication_prescribed, path + "/MedicationPrescribed", patient, prescriber, pharmacy);
    KeepRoutingHeader(prescribed.extension);
    AddRequest(std::move(prescribed));
    for (size_t i = 0; i < r.medication_requested.size(); ++i) {
      fhir::MedicationRequest mr =
          Request(r.medication_requested[i], Cat(path, "/MedicationRequested[", i + 1, "]"),
                  patient, prescriber, pharmacy);
      mr.intent = "proposal";
      Add(fhir::Resource{std::move(mr)}, Cat("requested-", i + 1));
    }
    fhir::Task t =
        NewTask("requested", r.message_request_code, kNcpdpChangeCodeSystem, "change request");
    t.description = r.change_reason_text;
    for (const std::string& c : r.message_request_sub_code) {
      InputString(t, "MessageRequestSubCode", c);
    }
    Add(fhir::Resource{std::move(t)}, "task");
  }
  void MapTx(const script::RxChangeResponse& r, const std::string& path) {
    auto patient = AddPatient(r.patient, path + "/Patient");
    auto prescriber = AddPrescriber(r.prescriber, path + "/Prescriber");
    auto pharmacy = AddPharmacy(r.pharmacy, path + "/Pharmacy");
    if (r.medication_prescribed) {
      AddRequest(Request(*r.medication_prescribed, path + "/MedicationPrescribed", patient,
                         prescriber, pharmacy));
    }
    fhir::Task t = NewTask(r.response.kind == "Denied" ? "rejected" : "completed", r.response.kind,
                           kNcpdpResponseSystem, "change response");
    ResponseToTask(r.response, t);
    InputString(t, "MessageRequestCode", r.message_request_code);
    for (const std::string& c : r.message_request_sub_code) {
      InputString(t, "MessageRequestSubCode", c);
    }
    KeepHeader(t);
    Add(fhir::Resource{std::move(t)}, "task");
  }
  void MapTx(const script::RxFill& r, const std::string& path) {
    auto patient = AddPatient(r.patient, path + "/Patient");
    auto pharmacy = AddPharmacy(r.pharmacy, path + "/Pharmacy");
    const script::Medication* m = r.medication_dispensed    ? &*r.medication_dispensed
                                  : r.medication_prescribed ? &*r.medication_prescribed
                                                            : nullptr;
    std::string mp =
        path + (r.medication_dispensed ? "/MedicationDispensed" : "/MedicationPrescribed");
    // The fill's medication as a history's dispensed one: each element is carried (those a
    // MedicationDispense has no home for as script-element extensions) or named in a warning.
    fhir::MedicationDispense d;
    if (m) {
      d = HistoryDispense(*m, mp, patient, pharmacy, RelatedRequest());
    } else {
      d.subject = patient;
      d.performer.push_back(pharmacy);
      d.authorizing_prescription.push_back(RelatedRequest());
    }
    const script::Header& h = m_.header;
    if (!h.message_id.empty()) d.identifier.push_back(Id(kMessageIdSystem, h.message_id));
    if (!h.rx_reference_number.empty())
      d.identifier.push_back(Id(kRxReferenceSystem, h.rx_reference_number));
    if (r.fill_status == "Dispensed") {
      d.status = "completed";
    } else if (r.fill_status == "PartiallyDispensed") {
      d.status = "in-progress";
    } else if (r.fill_status == "NotDispensed") {
      d.status = "declined";
    } else {
      d.status = "stopped";  // Transferred
    }
    if (!r.fill_status_reason_code.empty()) {
      fhir::CodeableReference reason;
      reason.concept_ =
          fhir::CodeableConcept{{fhir::Coding{std::string(kNcpdpReasonSystem), "",
                                              r.fill_status_reason_code, "", std::nullopt}},
                                ""};
      d.not_performed_reason = std::move(reason);
    }
    if (!r.fill_status_note.empty())
      d.note.insert(d.note.begin(), fhir::Annotation{"", std::nullopt, "", r.fill_status_note});
    Keep(d.extension, "FillStatus/" + r.fill_status + "/ReferenceNumber",
         r.fill_status_reference_number);
    // The authorizing prescription is named by RelatesToMessageID when there is no order number.
    KeepRoutingHeader(d.extension, h.prescriber_order_number.empty());
    if (r.medication_dispensed && r.medication_prescribed) {
      issues_.Warning(path + "/MedicationPrescribed", IssueCode::kNotSupported,
                      "the prescribed medication is not repeated in the MedicationDispense (it "
                      "names the dispensed one): not mapped to FHIR: dropped");
    }
    AddPrescriber(r.prescriber, path + "/Prescriber", /*with_agent=*/false);
    Add(fhir::Resource{std::move(d)}, "dispense");
  }

  // ---- Tasks for the other requests and answers ----

  // A Task input: the SCRIPT element it carries (script-element code system) and no value.
  static fhir::TaskInput Input(std::string_view element) {
    fhir::TaskInput in;
    in.type.coding.push_back(fhir::Coding{std::string(kScriptElementCodeSystem), "",
                                          std::string(element), "", std::nullopt});
    return in;
  }
  static void InputString(fhir::Task& t, std::string_view element, const std::string& value) {
    if (value.empty()) return;
    fhir::TaskInput in = Input(element);
    in.value_string = value;
    t.input.push_back(std::move(in));
  }
  static void InputReference(fhir::Task& t, std::string_view element, fhir::Reference r) {
    fhir::TaskInput in = Input(element);
    in.value_reference = std::move(r);
    t.input.push_back(std::move(in));
  }
  static void InputPeriod(fhir::Task& t, std::string_view element, const script::DateRange& d) {
    fhir::TaskInput in = Input(element);
    in.value_period =
        fhir::Period{FhirDateTime(DateText(d.start_date)), FhirDateTime(DateText(d.end_date))};
    t.input.push_back(std::move(in));
  }

  // A Task answering the message RelatesToMessageID names: its focus is that message's
  // Task (a logical reference by its message-id identifier), when there is one.
  fhir::Task AnswerTask(std::string status, std::string code, std::string_view system,
                        std::string display) {
    fhir::Task t = NewTask(std::move(status), std::move(code), system, std::move(display));
    t.focus.reset();
    if (!m_.header.relates_to_message_id.empty()) {
      fhir::Reference r;
      r.type = "Task";
      r.identifier = Id(kMessageIdSystem, m_.header.relates_to_message_id);
      t.focus = std::move(r);
    }
    return t;
  }

  // A Response's kind, reason codes, note or denial reason, and reference number.
  static void ResponseToTask(const script::Response& r, fhir::Task& t) {
    for (const std::string& code : r.reason_code) {
      if (!t.status_reason) t.status_reason.emplace();
      t.status_reason->coding.push_back(
          fhir::Coding{std::string(kNcpdpReasonSystem), "", code, "", std::nullopt});
    }
    t.description = !r.note.empty() ? r.note : r.denial_reason;
    InputString(t, "Response/ReferenceNumber", r.reference_number);
  }

  // ---- BenefitsCoordination → Coverage (NewRx, the history and transfer transactions) ----

  // Each BenefitsCoordination → a Coverage of `patient` (docs/mapping.md §4.4.2); the
  // references of those made, for an `insurance` element.
  std::vector<fhir::Reference> Coverages(const std::vector<script::BenefitsCoordination>& bs,
                                         const std::string& path, const fhir::Reference& patient) {
    std::vector<fhir::Reference> out;
    for (size_t i = 0; i < bs.size(); ++i) {
      auto r = AddCoverage(bs[i], Indexed(path + "/BenefitsCoordination", i, bs), patient);
      if (r) out.push_back(std::move(*r));
    }
    return out;
  }

  // The history's and the transfer's BenefitsCoordination: Coverages the Task names as
  // `insurance`, and each Consent a Task input.
  void Benefits(const std::vector<script::BenefitsCoordination>& bs, const std::string& path,
                const fhir::Reference& patient, fhir::Task& t) {
    for (const script::BenefitsCoordination& b : bs) {
      InputString(t, "BenefitsCoordination/Consent", b.consent);
    }
    t.insurance = Coverages(bs, path, patient);
  }

  // One BenefitsCoordination (at `path`) → a Coverage of `patient`, with an Organization for
  // its payer; nullopt when it holds nothing a Coverage carries (a history's Consent alone).
  std::optional<fhir::Reference> AddCoverage(const script::BenefitsCoordination& b,
                                             const std::string& path,
                                             const fhir::Reference& patient) {
    fhir::Coverage c;
    c.status = "active";
    c.kind = "insurance";
    if (!b.payer_type.empty()) c.type = Concept(kNcpdpPayerTypeSystem, b.payer_type);
    if (b.patient_relationship == "1") {
      c.subscriber = patient;  // the patient is the cardholder
    } else if (b.cardholder_name) {
      c.subscriber.emplace().display = DisplayName(*b.cardholder_name);
    }
    if (!b.cardholder_id.empty()) c.subscriber_id.push_back(Id("", b.cardholder_id));
    c.beneficiary = patient;
    c.dependent = b.person_code;
    c.relationship = Relationship(b.patient_relationship, path);
    c.insurer = AddPayer(b);
    c.class_ = CoverageClasses(b);
    // P, S, T → order 1, 2, 3; any other code (U, PP) has no FHIR home.
    const size_t order = std::string_view("PST").find(b.payer_responsibility_code);
    if (b.payer_responsibility_code.size() == 1 && order != std::string_view::npos) {
      c.order = static_cast<int64_t>(order + 1);
    } else {
      Keep(c.extension, "PayerResponsibilityCode", b.payer_responsibility_code);
    }
    if (b.group_id.empty()) Keep(c.extension, "GroupName", b.group_name);  // no class for it
    KeepName(c.extension, "CardHolderName", b.cardholder_name);
    KeepName(c.extension, "ResponsibleParty", b.responsible_party);
    const bool empty = !c.type && !c.subscriber && c.subscriber_id.empty() && c.dependent.empty() &&
                       !c.relationship && !c.insurer && c.class_.empty() && !c.order &&
                       c.extension.empty();
    if (empty) return std::nullopt;
    return Add(fhir::Resource{std::move(c)}, "coverage");
  }

  // PatientRelationship 1 (cardholder), 2, 3, 4 → subscriber-relationship self, spouse, child,
  // other.
  std::optional<fhir::CodeableConcept> Relationship(const std::string& code,
                                                    const std::string& path) {
    static constexpr std::string_view kCodes[][3] = {{"1", "self", "Self"},
                                                     {"2", "spouse", "Spouse"},
                                                     {"3", "child", "Child"},
                                                     {"4", "other", "Other"}};
    if (code.empty()) return std::nullopt;
    for (const auto& [ncpdp, fhir_code, display] : kCodes) {
      if (code == ncpdp) return Concept(kSubscriberRelationship, fhir_code, display);
    }
    issues_.Warning(path + "/PatientRelationship", IssueCode::kValue,
                    Cat("patient relationship code ", code.substr(0, 10),
                        " is not 1 to 4: not mapped to FHIR: dropped"));
    return std::nullopt;
  }

  // The payer: PayerName, the PayerIdentification identifiers but the BIN and PCN (classes of
  // the Coverage), the Address and the CommunicationNumbers → an Organization (role `payer`,
  // type Payer), when there is any of them.
  std::optional<fhir::Reference> AddPayer(const script::BenefitsCoordination& b) {
    fhir::Organization o;
    const std::pair<std::string_view, const std::string*> ids[] = {
        {kPayerIdSystem, &b.payer_id},
        {kNaicCompanyCode, &b.naic_code},
        {kPayerMutuallyDefinedSystem, &b.mutually_defined},
        {kHealthPlanIdSystem, &b.standard_unique_health_plan_identifier}};
    for (const auto& [system, value] : ids) {
      if (!value->empty()) o.identifier.push_back(Id(system, *value));
    }
    o.name = b.payer_name;
    AddContact(b.address, b.communication_numbers, o);
    if (o.name.empty() && o.identifier.empty() && o.contact.empty()) return std::nullopt;
    o.type.push_back(Concept(kOrganizationType, "pay", "Payer"));
    return Add(fhir::Resource{std::move(o)}, "payer");
  }

  // GroupID (with GroupName), IINNumber, ProcessorIdentificationNumber and PBMMemberID →
  // coverage-class group, rxbin, rxpcn and rxid.
  static std::vector<fhir::CoverageClass> CoverageClasses(const script::BenefitsCoordination& b) {
    std::vector<fhir::CoverageClass> out;
    auto add = [&](std::string_view code, std::string_view display, const std::string& value,
                   const std::string& name) {
      if (value.empty()) return;
      fhir::CoverageClass k;
      k.type = Concept(kCoverageClass, code, display);
      k.value.value = value;
      k.name = name;
      out.push_back(std::move(k));
    };
    add("group", "Group", b.group_id, b.group_name);
    add("rxbin", "RX BIN", b.iin_number, {});
    add("rxpcn", "RX PCN", b.processor_identification_number, {});
    add("rxid", "RX Id", b.pbm_member_id, {});
    return out;
  }

  // A NameType with no FHIR home here: script-element extensions, one per part.
  static void KeepName(std::vector<fhir::Extension>& out, std::string_view element,
                       const std::optional<script::Name>& n) {
    if (!n) return;
    Keep(out, Cat(element, "/LastName"), n->last_name);
    Keep(out, Cat(element, "/FirstName"), n->first_name);
    Keep(out, Cat(element, "/MiddleName"), n->middle_name);
    Keep(out, Cat(element, "/Suffix"), n->suffix);
    Keep(out, Cat(element, "/Prefix"), n->prefix);
  }

  // "Prefix First Middle Last Suffix", for a Reference's display.
  static std::string DisplayName(const script::Name& n) {
    std::string out;
    for (const std::string* part :
         {&n.prefix, &n.first_name, &n.middle_name, &n.last_name, &n.suffix}) {
      if (part->empty()) continue;
      if (!out.empty()) out.push_back(' ');
      out += *part;
    }
    return out;
  }

  // A Pharmacist → a Practitioner (role `pharmacist`).
  fhir::Reference AddPharmacist(const script::Pharmacist& p, const std::string& path) {
    fhir::Practitioner pr;
    pr.identifier = PractitionerIds(p.identification, path);
    if (!p.business_name.empty()) {
      issues_.Warning(path + "/BusinessName", IssueCode::kNotSupported,
                      "not mapped to FHIR: dropped");
    }
    pr.name.push_back(Name(p.name));
    if (p.address) pr.address.push_back(Addr(*p.address, "work"));
    pr.telecom = Telecom(p.communication_numbers, "work");
    return Add(fhir::Resource{std::move(pr)}, "pharmacist");
  }

  // The pharmacies of a transfer: each an Organization; the one the prescription goes to
  // is the Task's requester, the one it comes from its owner.
  void TransferParties(const std::vector<script::Pharmacy>& pharmacies,
                       const std::optional<script::Pharmacist>& pharmacist, const std::string& path,
                       fhir::Task& t) {
    for (size_t i = 0; i < pharmacies.size(); ++i) {
      const std::string at =
          pharmacies.size() > 1 ? Cat(path, "/Pharmacy[", i + 1, "]") : path + "/Pharmacy";
      const std::string& type = pharmacies[i].transfer_type;
      fhir::Reference org = AddPharmacy(pharmacies[i], at);
      std::optional<fhir::Reference>* slot = type == "TRANSFER TO PHARMACY"     ? &t.requester
                                             : type == "TRANSFER FROM PHARMACY" ? &t.owner
                                                                                : nullptr;
      if (!slot || *slot) {
        issues_.Warning(at + "/TransferType", IssueCode::kValue,
                        Cat("transfer type \"", type,
                            "\" names no pharmacy the Task has yet: the Organization is in the "
                            "Bundle, no Task names it"));
        continue;
      }
      *slot = std::move(org);
    }
    if (pharmacist)
      InputReference(t, "Pharmacist", AddPharmacist(*pharmacist, path + "/Pharmacist"));
  }

  // The header of an answer (Status, Verify, Error and the Responses), which FHIR → SCRIPT
  // does not write: its routing envelope, and the references the Task's focus does not
  // carry, each an input named by its path under Message ("Header/To", "Header/To/@Qualifier").
  void KeepHeader(fhir::Task& t) {
    const script::Header& h = m_.header;
    for (const RoutingElement& e : kRoutingEnvelope) {
      InputString(t, e.path, h.*e.member);
    }
    InputString(t, "Header/RxReferenceNumber", h.rx_reference_number);
    // The focus names the prescription by its order number when there is one.
    if (!h.prescriber_order_number.empty()) {
      InputString(t, "Header/RelatesToMessageID", h.relates_to_message_id);
    }
  }

  // Header elements the transaction's Task has no place for: a warning for each one sent
  // (FHIR → SCRIPT cannot send it back).
  void HeaderNotCarried(std::initializer_list<std::string_view> elements) {
    const script::Header& h = m_.header;
    for (std::string_view e : elements) {
      const std::string& v = e == "PrescriberOrderNumber" ? h.prescriber_order_number
                             : e == "RxReferenceNumber"   ? h.rx_reference_number
                                                          : h.relates_to_message_id;
      if (v.empty()) continue;
      issues_.Warning(Cat("/Message/Header/", e), IssueCode::kNotSupported,
                      Cat("the ", script::TransactionName(m_.body),
                          "'s Task has no place for it: not mapped to FHIR: dropped"));
    }
  }

  void MapTx(const script::RxFillIndicatorChange& r, const std::string&) {
    // The focus names the prescription by its order number, else by RelatesToMessageID.
    HeaderNotCarried({"RxReferenceNumber"});
    if (!m_.header.prescriber_order_number.empty()) HeaderNotCarried({"RelatesToMessageID"});
    fhir::Task t = NewTask("requested", "RxFillIndicatorChange", kNcpdpTransactionSystem,
                           "fill indicator change");
    InputString(t, "RxFillIndicator", r.rx_fill_indicator);
    Add(fhir::Resource{std::move(t)}, "task");
  }

  void MapTx(const script::RxHistoryRequest& r, const std::string& path) {
    HeaderNotCarried({"PrescriberOrderNumber", "RxReferenceNumber", "RelatesToMessageID"});
    fhir::Task t = NewTask("requested", "RxHistoryRequest", kNcpdpTransactionSystem,
                           "medication history request");
    t.focus.reset();
    t.for_ = AddPatient(r.patient, path + "/Patient");
    if (r.prescriber) t.requester = AddPrescriber(*r.prescriber, path + "/Prescriber", false);
    if (r.pharmacy) InputReference(t, "Pharmacy", AddPharmacy(*r.pharmacy, path + "/Pharmacy"));
    InputPeriod(t, "RequestedDates", r.requested_dates);
    for (const std::string& s : r.pdmp_states_requested) {
      InputString(t, "PDMPStatesRequested/StateProvince", s);
    }
    InputString(t, "RequestorRole", r.requestor_role);
    Benefits(r.benefits_coordination, path, *t.for_, t);
    Add(fhir::Resource{std::move(t)}, "task");
  }

  // The Task that answers a request (completed when Approved, else rejected), for the
  // patient; the caller adds the rest.
  template <class Answer>
  std::pair<fhir::Task, fhir::Reference> ResponseTask(const Answer& r, const std::string& path,
                                                      const std::string& what) {
    HeaderNotCarried({"PrescriberOrderNumber", "RxReferenceNumber"});
    const bool approved = r.response.kind == "Approved";
    fhir::Task t = AnswerTask(approved ? "completed" : "rejected", r.response.kind,
                              kNcpdpResponseSystem, what);
    ResponseToTask(r.response, t);
    fhir::Reference patient = AddPatient(r.patient, path + "/Patient");
    t.for_ = patient;
    return {std::move(t), std::move(patient)};
  }

  void MapTx(const script::RxHistoryResponse& r, const std::string& path) {
    auto [t, patient] = ResponseTask(r, path, "medication history response");
    std::optional<fhir::Reference> pharmacy, prescriber;
    if (r.pharmacy) pharmacy = AddPharmacy(*r.pharmacy, path + "/Pharmacy");
    if (r.prescriber) prescriber = AddPrescriber(*r.prescriber, path + "/Prescriber", false);
    // They reach FHIR only as the entries' (MedicationDispense.performer,
    // MedicationStatement.informationSource), where FHIR → SCRIPT sends them back.
    for (const auto& [party, name] : {std::pair{pharmacy.has_value(), "Pharmacy"},
                                      std::pair{prescriber.has_value(), "Prescriber"}}) {
      if (!party) continue;
      issues_.Warning(Cat(path, "/", name), IssueCode::kNotSupported,
                      Cat("the response's ", name,
                          " is carried only as that of each entry without its own: FHIR → "
                          "SCRIPT sends it with those entries, not here"));
    }
    for (size_t i = 0; i < r.medication_dispensed.size(); ++i) {
      const std::string at = Indexed(path + "/MedicationDispensed", i, r.medication_dispensed);
      Add(fhir::Resource{HistoryDispense(r.medication_dispensed[i], at, patient, pharmacy, {})},
          "dispense");
    }
    for (size_t i = 0; i < r.medication_prescribed.size(); ++i) {
      const std::string at = Indexed(path + "/MedicationPrescribed", i, r.medication_prescribed);
      Add(fhir::Resource{HistoryStatement(r.medication_prescribed[i], at, patient, prescriber)},
          "statement");
    }
    InputPeriod(t, "RequestedDates", r.requested_dates);
    Benefits(r.benefits_coordination, path, patient, t);
    Add(fhir::Resource{std::move(t)}, "task");
  }

  template <typename T>
  static std::string Indexed(const std::string& path, size_t i, const std::vector<T>& all) {
    return all.size() > 1 ? Cat(path, "[", i + 1, "]") : path;
  }

  static void Keep(std::vector<fhir::Extension>& out, std::string_view element,
                   const std::string& value) {
    if (!value.empty()) out.push_back(ScriptElement(element, value));
  }
  // The code system versions a Sig's codes were chosen from, when its structure reached FHIR
  // (else SigToDosage named them): FHIR → SCRIPT sends them back instead of its options'.
  static void KeepSigVersions(const script::Sig& sig, const std::vector<fhir::Dosage>& dosages,
                              std::vector<fhir::Extension>& out) {
    if (std::none_of(dosages.begin(), dosages.end(), HasStructure)) return;
    Keep(out, "Sig/CodeSystem/SNOMEDVersion", sig.snomed_version);
    Keep(out, "Sig/CodeSystem/FMTVersion", sig.fmt_version);
  }

  // A medication's dates other than the written and fill dates: none has a home in a
  // MedicationDispense or MedicationStatement.
  void WarnOtherDates(const script::Medication& m, const std::string& path) {
    if (m.other_medication_date.empty()) return;
    issues_.Warning(path + "/OtherMedicationDate", IssueCode::kNotSupported,
                    "not mapped to FHIR: dropped");
  }

  fhir::Quantity CheckedQuantity(const script::Quantity& q, const std::string& path) {
    if (q.code_list_qualifier != "38") {
      issues_.Warning(
          path + "/Quantity/CodeListQualifier", IssueCode::kNotSupported,
          Cat("quantity qualifier ", q.code_list_qualifier, " is not carried (38 assumed)"));
    }
    return Qty(q);
  }

  // One dispensed medication of a history or a transfer → MedicationDispense (completed).
  // The entry's own Pharmacy, else `pharmacy`, is the performer; its Prescriber a
  // Practitioner no resource refers to (a MedicationDispense has no prescriber).
  fhir::MedicationDispense HistoryDispense(const script::Medication& m, const std::string& path,
                                           const fhir::Reference& patient,
                                           const std::optional<fhir::Reference>& pharmacy,
                                           std::optional<fhir::Reference> prescription) {
    fhir::MedicationDispense d;
    d.status = "completed";
    d.medication = Drug(m, path);
    d.subject = patient;
    std::optional<fhir::Reference> performer = pharmacy;
    if (m.pharmacy) performer = AddPharmacy(*m.pharmacy, path + "/Pharmacy");
    if (performer) d.performer.push_back(*performer);
    if (m.prescriber) {
      AddPrescriber(*m.prescriber, path + "/Prescriber", false);
      issues_.Warning(path + "/Prescriber", IssueCode::kNotSupported,
                      "a MedicationDispense has no prescriber: the Practitioner is in the Bundle "
                      "but nothing names it, so FHIR → SCRIPT cannot send it back");
    }
    if (!m.history_prescriber_order_number.empty()) {
      if (prescription) {
        Keep(d.extension, "HistoryPrescriberOrderNumber", m.history_prescriber_order_number);
      } else {
        prescription.emplace();
        prescription->type = "MedicationRequest";
        prescription->identifier =
            Id(kPrescriberOrderNumberSystem, m.history_prescriber_order_number);
      }
    }
    if (prescription) d.authorizing_prescription.push_back(std::move(*prescription));
    if (m.quantity) d.quantity = CheckedQuantity(*m.quantity, path);
    if (!m.days_supply.empty())
      d.days_supply = fhir::Quantity{internal::FhirDecimalFromScript(m.days_supply), "", "days",
                                     std::string(kUcum), "d"};
    d.when_handed_over = FhirDateTime(DateText(m.last_fill_date));
    if (!m.note.empty()) d.note.push_back(fhir::Annotation{"", std::nullopt, "", m.note});
    if (m.sig) {
      d.dosage_instruction = SigToDosage(*m.sig, path + "/Sig", issues_);
      KeepSigVersions(*m.sig, d.dosage_instruction, d.extension);
    }
    if (!m.diagnosis.empty()) {
      issues_.Warning(path + "/Diagnosis", IssueCode::kNotSupported,
                      "a MedicationDispense has no reason: not mapped to FHIR: dropped");
    }
    WarnOtherDates(m, path);
    Keep(d.extension, "WrittenDate", DateText(m.written_date));
    Keep(d.extension, "Substitutions", m.substitutions);
    Keep(d.extension, "NumberOfRefills", m.number_of_refills);
    Keep(d.extension, "ReasonForSubstitutionCodeUsed", m.reason_for_substitution_code_used);
    KeepScriptElements(m, d.extension, /*last_fill=*/false);
    KeepHistorySource(m, path, d.extension);
    return d;
  }

  // One prescribed medication of a history → MedicationStatement (recorded): what the
  // patient was prescribed, asserted by the history's sender at SentTime.
  fhir::MedicationStatement HistoryStatement(const script::Medication& m, const std::string& path,
                                             const fhir::Reference& patient,
                                             const std::optional<fhir::Reference>& prescriber) {
    fhir::MedicationStatement s;
    s.status = "recorded";
    s.medication = Drug(m, path);
    s.subject = patient;
    s.effective_date_time = FhirDateTime(DateText(m.written_date));
    s.date_asserted = FhirDateTime(m_.header.sent_time);
    std::optional<fhir::Reference> source = prescriber;
    if (m.prescriber) source = AddPrescriber(*m.prescriber, path + "/Prescriber", false);
    if (source) s.information_source.push_back(*source);
    if (m.pharmacy) s.information_source.push_back(AddPharmacy(*m.pharmacy, path + "/Pharmacy"));
    s.reason = Reasons(m, path);
    if (!m.note.empty()) s.note.push_back(fhir::Annotation{"", std::nullopt, "", m.note});
    if (m.sig) {
      s.dosage = SigToDosage(*m.sig, path + "/Sig", issues_);
      KeepSigVersions(*m.sig, s.dosage, s.extension);
    }
    WarnOtherDates(m, path);
    if (m.quantity) {
      CheckedQuantity(*m.quantity, path);
      Keep(s.extension, "Quantity/Value", m.quantity->value);
      Keep(s.extension, "Quantity/QuantityUnitOfMeasure/Code", m.quantity->unit_of_measure_code);
    }
    Keep(s.extension, "DaysSupply", m.days_supply);
    Keep(s.extension, "Substitutions", m.substitutions);
    Keep(s.extension, "NumberOfRefills", m.number_of_refills);
    Keep(s.extension, "ReasonForSubstitutionCodeUsed", m.reason_for_substitution_code_used);
    Keep(s.extension, "HistoryPrescriberOrderNumber", m.history_prescriber_order_number);
    KeepScriptElements(m, s.extension);
    KeepHistorySource(m, path, s.extension);
    return s;
  }

  void MapTx(const script::RxTransferRequest& r, const std::string& path) {
    HeaderNotCarried({"PrescriberOrderNumber", "RxReferenceNumber", "RelatesToMessageID"});
    fhir::Task t = NewTask("requested", "RxTransferRequest", kNcpdpTransactionSystem,
                           "prescription transfer request");
    t.focus.reset();
    fhir::Reference patient = AddPatient(r.patient, path + "/Patient");
    t.for_ = patient;
    TransferParties(r.pharmacy, r.pharmacist, path, t);
    std::optional<fhir::Reference> prescriber;
    if (r.prescriber) prescriber = AddPrescriber(*r.prescriber, path + "/Prescriber");
    if (r.medication_transfer_requested) {
      // The prescription asked for, as the requesting pharmacy knows it.
      fhir::MedicationRequest mr =
          Request(*r.medication_transfer_requested, path + "/MedicationTransferRequested", patient,
                  prescriber, t.owner);
      mr.identifier.clear();  // the header's identify the request, not this prescription
      t.focus = AddRequest(std::move(mr));
    } else if (prescriber) {
      InputReference(t, "Prescriber", *prescriber);
    }
    InputString(t, "TransferRequest", r.transfer_request);
    Add(fhir::Resource{std::move(t)}, "task");
  }

  void MapTx(const script::RxTransferResponse& r, const std::string& path) {
    auto [t, patient] = ResponseTask(r, path, "prescription transfer response");
    TransferParties(r.pharmacy, r.pharmacist, path, t);
    for (size_t i = 0; i < r.medication_transferred.size(); ++i) {
      Transferred(r.medication_transferred[i],
                  Indexed(path + "/MedicationTransferred", i, r.medication_transferred), patient,
                  t);
    }
    InputString(t, "TransferRequest", r.transfer_request);
    Benefits(r.benefits_coordination, path, patient, t);
    Add(fhir::Resource{std::move(t)}, "task");
  }

  // One MedicationTransferred: the prescription (a MedicationRequest the receiving pharmacy
  // will dispense, its Prescriber the requester) and its fills at the sending pharmacy.
  void Transferred(const script::MedicationTransferred& x, const std::string& path,
                   const fhir::Reference& patient, fhir::Task& t) {
    const script::Medication& m = x.medication_prescribed;
    const std::string mp = path + "/MedicationPrescribed";
    std::optional<fhir::Reference> prescriber;
    if (m.prescriber) prescriber = AddPrescriber(*m.prescriber, mp + "/Prescriber");
    fhir::MedicationRequest mr = Request(m, mp, patient, prescriber, t.requester);
    mr.identifier.clear();  // the header's identify the response, not this prescription
    if (!m.history_prescriber_order_number.empty()) {
      mr.identifier.push_back(Id(kPrescriberOrderNumberSystem, m.history_prescriber_order_number));
    }
    if (!m.rx_reference_number.empty())
      mr.identifier.push_back(Id(kRxReferenceSystem, m.rx_reference_number));
    Keep(mr.extension, "PrescriptionPreviouslyFilled", x.prescription_previously_filled);
    fhir::Reference request = AddRequest(std::move(mr));
    InputReference(t, "MedicationTransferred", request);
    for (size_t i = 0; i < x.medication_dispensed.size(); ++i) {
      const std::string at = Indexed(path + "/MedicationDispensed", i, x.medication_dispensed);
      Add(fhir::Resource{HistoryDispense(x.medication_dispensed[i], at, patient, t.owner, request)},
          "dispense");
    }
  }

  void MapTx(const script::RxTransferConfirm& r, const std::string& path) {
    HeaderNotCarried({"PrescriberOrderNumber", "RxReferenceNumber"});
    fhir::Task t = AnswerTask("completed", "RxTransferConfirm", kNcpdpTransactionSystem,
                              "prescription transfer confirmation");
    t.for_ = AddPatient(r.patient, path + "/Patient");
    TransferParties(r.pharmacy, r.pharmacist, path, t);
    InputString(t, "RxFillConfirmIndicator", r.rx_fill_confirm_indicator);
    InputString(t, "TransferRequest", r.transfer_request);
    Add(fhir::Resource{std::move(t)}, "task");
  }

  // UrgencyIndicatorCode: S (standard) → routine, X (urgent) → urgent.
  void Priority(const std::string& code, const std::string& path, fhir::MedicationRequest& mr) {
    if (code == "X") {
      mr.priority = "urgent";
    } else if (code == "S") {
      mr.priority = "routine";
    } else if (!code.empty()) {
      issues_.Warning(
          path + "/UrgencyIndicatorCode", IssueCode::kValue,
          Cat("urgency code ", code, " is neither S nor X: not mapped to FHIR: dropped"));
    }
  }

  // NewRxRequest and NewRxResponseDenied: the prescription asked for (intent proposal), the
  // pharmacy its dispenser, and a Task whose focus it is.
  template <typename Tx>
  fhir::Task NewRxAsked(const Tx& tx, const std::string& path, fhir::Task t, bool denied) {
    HeaderNotCarried({"RelatesToMessageID"});  // the Task's focus is the proposal
    fhir::Reference patient = AddPatient(tx.patient, path + "/Patient");
    fhir::Reference prescriber = AddPrescriber(tx.prescriber, path + "/Prescriber");
    fhir::Reference pharmacy = AddPharmacy(tx.pharmacy, path + "/Pharmacy");
    fhir::MedicationRequest mr = Request(tx.medication_requested, path + "/MedicationRequested",
                                         patient, prescriber, pharmacy);
    mr.intent = "proposal";
    if (denied) mr.status = "cancelled";
    Priority(tx.urgency_indicator_code, path, mr);
    t.focus = AddRequest(std::move(mr));
    t.for_ = patient;
    t.requester = denied ? prescriber : pharmacy;
    t.owner = denied ? pharmacy : prescriber;
    if (!tx.note.empty()) t.note.push_back(fhir::Annotation{"", std::nullopt, "", tx.note});
    return t;
  }

  void MapTx(const script::NewRxRequest& r, const std::string& path) {
    fhir::Task t =
        NewTask("requested", "NewRxRequest", kNcpdpTransactionSystem, "new prescription request");
    Add(fhir::Resource{NewRxAsked(r, path, std::move(t), false)}, "task");
  }

  void MapTx(const script::NewRxResponseDenied& r, const std::string& path) {
    fhir::Task t =
        NewTask("rejected", "Denied", kNcpdpResponseSystem, "new prescription request denied");
    ResponseToTask(r.response, t);
    Add(fhir::Resource{NewRxAsked(r, path, std::move(t), true)}, "task");
  }

  StatusOr<fhir::Bundle> Build() {
    if (m_.header.digital_signature) {
      issues_.Warning("/Message/Header/DigitalSignature", IssueCode::kNotSupported,
                      "the digital signature is not carried into FHIR (verify it before mapping)");
    }
    bundle_.type = options_.bundle_type;
    bundle_.timestamp = FhirDateTime(m_.header.sent_time);
    MapBody();
    if (!m_.header.test_message.empty() && !test_message_kept_) {
      issues_.Warning("/Message/Header/TestMessage", IssueCode::kNotSupported,
                      "a test message: the marking reaches FHIR only with a NewRx or CancelRx "
                      "(a script-element extension on the MedicationRequest): not mapped");
    }
    return std::move(bundle_);
  }

 private:
  const script::Message& m_;
  bool test_message_kept_ = false;
  IssueList& issues_;
  const ToFhirOptions& options_;
  fhir::Bundle bundle_;
  std::string base_;
  // Resources added so far by kind (a handful of kinds: a scan, no map).
  std::vector<std::pair<std::string, int>> kind_count_;
  // The last prescriber's PrescriberAgent, a Practitioner: the `recorder` of the requests.
  std::optional<fhir::Reference> agent_;
};

}  // namespace

StatusOr<fhir::Bundle> ToFhir(const script::Message& message, IssueList& issues,
                              const ToFhirOptions& options) {
  Builder b(message, issues, options);
  return b.Build();
}

}  // namespace rxflow::mapping
