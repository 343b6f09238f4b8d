// SCRIPT XML reader: pugixml DOM → structural validation → version rules undone → typed
// message. Elements the typed model does not hold are reported as warnings with their path.
#include <algorithm>
#include <cstring>
#include <string>

#include <pugixml.hpp>

#include "rxflow/internal/strcat.h"
#include "rxflow/script/xml.h"

#include "common/text.h"
#include "script/schema.h"

namespace rxflow::script {
namespace {

using internal::Rule;
using rxflow::internal::Cat;

std::string_view Local(const char* name) {
  std::string_view n(name);
  size_t colon = n.rfind(':');
  return colon == std::string_view::npos ? n : n.substr(colon + 1);
}

// Concatenated character data of an element's own text children.
std::string OwnText(pugi::xml_node n) {
  std::string out;
  for (pugi::xml_node c : n.children()) {
    if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) out += c.value();
  }
  return out;
}

// Refuses document type declarations and entity declarations outright: SCRIPT never
// needs them, and they are how XXE and entity-expansion attacks start.
bool HasDtdOrEntity(std::string_view xml) {
  return xml.find("<!DOCTYPE") != std::string_view::npos ||
         xml.find("<!ENTITY") != std::string_view::npos ||
         xml.find("<!doctype") != std::string_view::npos;
}

void LineColumn(std::string_view xml, size_t offset, size_t& line, size_t& col) {
  line = 1;
  col = 1;
  for (size_t i = 0; i < offset && i < xml.size(); ++i) {
    if (xml[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
}

// The XML path of `n` (local names, with [i] among same-named siblings when repeated).
std::string NodePath(pugi::xml_node n) {
  std::vector<std::string> parts;
  for (; n && n.type() == pugi::node_element; n = n.parent()) {
    std::string_view name = Local(n.name());
    size_t index = 0, total = 0;
    for (pugi::xml_node s = n.parent().first_child(); s; s = s.next_sibling()) {
      if (s.type() != pugi::node_element || Local(s.name()) != name) continue;
      ++total;
      if (s == n) index = total;
    }
    parts.push_back(total > 1 ? Cat(name, "[", index, "]") : std::string(name));
  }
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) out += "/" + *it;
  return out;
}

// Refuses what pugixml would accept but XML 1.0 does not: control characters, raw or as
// character references (&#0; would silently end a value early in pugixml's strings).
bool BadCharacter(std::string_view xml, size_t& offset, std::string& what) {
  for (size_t i = 0; i < xml.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(xml[i]);
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
      offset = i;
      what = Cat("control character 0x", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15],
                 " is not allowed in XML 1.0");
      return true;
    }
  }
  for (size_t at = xml.find("&#"); at != std::string_view::npos; at = xml.find("&#", at + 2)) {
    size_t i = at + 2;
    bool hex = i < xml.size() && (xml[i] == 'x' || xml[i] == 'X');
    if (hex) ++i;
    unsigned long v = 0;
    size_t digits = 0;
    for (; i < xml.size() && xml[i] != ';' && digits < 9; ++i, ++digits) {
      char ch = xml[i];
      int d = ch >= '0' && ch <= '9'          ? ch - '0'
              : hex && ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : hex && ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                              : -1;
      if (d < 0) break;
      v = v * (hex ? 16 : 10) + static_cast<unsigned long>(d);
    }
    bool allowed = v == 0x9 || v == 0xA || v == 0xD || (v >= 0x20 && v <= 0xD7FF) ||
                   (v >= 0xE000 && v <= 0xFFFD) || (v >= 0x10000 && v <= 0x10FFFF);
    if (digits > 0 && !allowed) {
      offset = at;
      what = Cat("character reference ", xml.substr(at, i - at + 1), " is not allowed in XML 1.0");
      return true;
    }
  }
  return false;
}

class DomWalker {
 public:
  DomWalker(internal::Validator& v, IssueList& issues, size_t max_depth)
      : v_(v), issues_(issues), max_depth_(max_depth) {}
  void Walk(pugi::xml_node n, size_t depth) {
    if (depth > max_depth_) {
      if (!deep_reported_) {
        issues_.Error(NodePath(n), IssueCode::kTooCostly,
                      Cat("elements nested deeper than ", max_depth_, " levels"));
        deep_reported_ = true;
      }
      return;
    }
    v_.Start(Local(n.name()));
    bool has_text = false;
    for (pugi::xml_node c : n.children()) {
      if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) has_text = true;
    }
    if (has_text) {
      std::string text = OwnText(n);
      v_.Text(text);
    }
    for (pugi::xml_node c : n.children()) {
      if (c.type() == pugi::node_element) Walk(c, depth + 1);
    }
    v_.End();
  }

 private:
  internal::Validator& v_;
  IssueList& issues_;
  size_t max_depth_;
  bool deep_reported_ = false;
};

// Undoes a profile's wrap/rename rules so that the typed reader sees 2017071 names.
void UndoRules(pugi::xml_node n, const std::vector<Rule>& rules) {
  for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
    if (c.type() != pugi::node_element) continue;
    std::string_view parent = Local(n.name());
    std::string_view name = Local(c.name());
    for (const Rule& r : rules) {
      if (r.parent != "*" && r.parent != parent) continue;
      if (r.kind == Rule::Kind::kRename && name == r.name) {
        c.set_name(r.element.c_str());
      } else if (r.kind == Rule::Kind::kWrap && name == r.wrapper) {
        pugi::xml_node inner;
        for (pugi::xml_node k : c.children()) {
          if (k.type() == pugi::node_element && Local(k.name()) == r.name) inner = k;
        }
        if (!inner) continue;
        pugi::xml_node moved = n.insert_move_before(inner, c);
        moved.set_name(r.element.c_str());
        pugi::xml_node dead = c;
        c = moved;
        n.remove_child(dead);
      }
    }
    UndoRules(c, rules);
  }
}

// One element being read. Children asked for are marked used; at the end, element
// children nobody asked for are reported: the typed model does not hold them.
class In {
 public:
  In(pugi::xml_node node, std::string path, IssueList& issues)
      : node_(node), path_(std::move(path)), issues_(issues) {}
  In(const In&) = delete;
  In& operator=(const In&) = delete;
  ~In() {
    if (!node_) return;
    // Sorted once, searched per child: linear-logarithmic however many siblings there are.
    std::sort(used_.begin(), used_.end());
    for (pugi::xml_node c : node_.children()) {
      if (c.type() != pugi::node_element) continue;
      if (!std::binary_search(used_.begin(), used_.end(), c)) {
        issues_.Warning(Cat(path_, "/", Local(c.name())), IssueCode::kNotSupported,
                        "not mapped by RxFlow: dropped");
      }
    }
  }

  explicit operator bool() const { return static_cast<bool>(node_); }
  const std::string& path() const { return path_; }
  pugi::xml_node node() const { return node_; }

  pugi::xml_node Find(std::string_view name) {
    for (pugi::xml_node c : node_.children()) {
      if (c.type() == pugi::node_element && Local(c.name()) == name) {
        used_.push_back(c);
        return c;
      }
    }
    return {};
  }
  std::vector<pugi::xml_node> FindAll(std::string_view name) {
    std::vector<pugi::xml_node> out;
    for (pugi::xml_node c : node_.children()) {
      if (c.type() == pugi::node_element && Local(c.name()) == name) {
        used_.push_back(c);
        out.push_back(c);
      }
    }
    return out;
  }
  std::string ChildPath(std::string_view name, size_t index = 0, size_t count = 1) const {
    return count > 1 ? Cat(path_, "/", name, "[", index + 1, "]") : Cat(path_, "/", name);
  }
  std::string Text(std::string_view name) {
    pugi::xml_node c = Find(name);
    return c ? OwnText(c) : std::string();
  }
  std::vector<std::string> Texts(std::string_view name) {
    std::vector<std::string> out;
    for (pugi::xml_node c : FindAll(name)) out.push_back(OwnText(c));
    return out;
  }
  IssueList& issues() { return issues_; }

 private:
  pugi::xml_node node_;
  std::string path_;
  IssueList& issues_;
  std::vector<pugi::xml_node> used_;
};

class Decoder {
 public:
  explicit Decoder(IssueList& issues) : issues_(issues) {}

  Name ReadName(In& parent, std::string_view element) {
    Name n;
    pugi::xml_node node = parent.Find(element);
    if (!node) return n;
    In in(node, parent.ChildPath(element), issues_);
    n.last_name = in.Text("LastName");
    n.first_name = in.Text("FirstName");
    n.middle_name = in.Text("MiddleName");
    n.suffix = in.Text("Suffix");
    n.prefix = in.Text("Prefix");
    return n;
  }

  std::optional<Address> ReadAddress(In& parent) {
    pugi::xml_node node = parent.Find("Address");
    if (!node) return std::nullopt;
    In in(node, parent.ChildPath("Address"), issues_);
    Address a;
    a.address_line1 = in.Text("AddressLine1");
    a.address_line2 = in.Text("AddressLine2");
    a.city = in.Text("City");
    a.state_province = in.Text("StateProvince");
    a.postal_code = in.Text("PostalCode");
    a.country_code = in.Text("CountryCode");
    return a;
  }

  Phone ReadPhone(pugi::xml_node node, std::string path) {
    In in(node, std::move(path), issues_);
    Phone p;
    p.number = in.Text("Number");
    p.extension = in.Text("Extension");
    p.supports_sms = in.Text("SupportsSMS");
    return p;
  }

  std::vector<Phone> ReadPhones(In& parent, std::string_view element) {
    std::vector<Phone> out;
    auto nodes = parent.FindAll(element);
    for (size_t i = 0; i < nodes.size(); ++i) {
      out.push_back(ReadPhone(nodes[i], parent.ChildPath(element, i, nodes.size())));
    }
    return out;
  }

  std::optional<CommunicationNumbers> ReadComm(In& parent) {
    pugi::xml_node node = parent.Find("CommunicationNumbers");
    if (!node) return std::nullopt;
    In in(node, parent.ChildPath("CommunicationNumbers"), issues_);
    CommunicationNumbers c;
    if (pugi::xml_node p = in.Find("PrimaryTelephone")) {
      c.primary_telephone = ReadPhone(p, in.ChildPath("PrimaryTelephone"));
    }
    c.beeper = ReadPhones(in, "Beeper");
    c.electronic_mail = in.Texts("ElectronicMail");
    c.fax = ReadPhones(in, "Fax");
    c.home_telephone = ReadPhones(in, "HomeTelephone");
    c.work_telephone = ReadPhones(in, "WorkTelephone");
    c.other_telephone = ReadPhones(in, "OtherTelephone");
    c.direct_address = in.Text("DirectAddress");
    return c;
  }

  DateValue ReadDate(In& parent, std::string_view element) {
    DateValue d;
    pugi::xml_node node = parent.Find(element);
    if (!node) return d;
    In in(node, parent.ChildPath(element), issues_);
    d.date = in.Text("Date");
    d.date_time = in.Text("DateTime");
    return d;
  }

  Identification ReadIdentification(In& parent) {
    Identification id;
    pugi::xml_node node = parent.Find("Identification");
    if (!node) return id;
    In in(node, parent.ChildPath("Identification"), issues_);
    id.ncpdp_id = in.Text("NCPDPID");
    id.state_license_number = in.Text("StateLicenseNumber");
    id.medicare_number = in.Text("MedicareNumber");
    id.medicaid_number = in.Text("MedicaidNumber");
    id.upin = in.Text("UPIN");
    id.dea_number = in.Text("DEANumber");
    id.hin = in.Text("HIN");
    id.social_security = in.Text("SocialSecurity");
    id.npi = in.Text("NPI");
    id.certificate_to_prescribe = in.Text("CertificateToPrescribe");
    id.data2000_waiver_id = in.Text("Data2000WaiverID");
    id.mutually_defined = in.Text("MutuallyDefined");
    id.rems_healthcare_provider_enrollment_id = in.Text("REMSHealthcareProviderEnrollmentID");
    id.state_control_substance_number = in.Text("StateControlSubstanceNumber");
    id.medical_record_identification_number_ehr = in.Text("MedicalRecordIdentificationNumberEHR");
    id.patient_account_number = in.Text("PatientAccountNumber");
    id.rems_patient_id = in.Text("REMSPatientID");
    return id;
  }

  Patient ReadPatient(In& parent) {
    Patient p;
    pugi::xml_node node = parent.Find("Patient");
    if (!node) return p;
    In outer(node, parent.ChildPath("Patient"), issues_);
    pugi::xml_node h = outer.Find("HumanPatient");
    std::string_view kind = "HumanPatient";
    if (!h) {
      h = outer.Find("NonHumanPatient");
      kind = "NonHumanPatient";
      p.human = false;
    }
    if (!h) return p;
    In in(h, outer.ChildPath(kind), issues_);
    p.identification = ReadIdentification(in);
    p.name = ReadName(in, "Name");
    p.gender = in.Text("Gender");
    p.date_of_birth = ReadDate(in, "DateOfBirth");
    p.address = ReadAddress(in);
    p.communication_numbers = ReadComm(in);
    p.language_name_code = in.Text("LanguageNameCode");
    return p;
  }

  std::optional<Pharmacy> ReadPharmacy(In& parent) {
    pugi::xml_node node = parent.Find("Pharmacy");
    if (!node) return std::nullopt;
    In in(node, parent.ChildPath("Pharmacy"), issues_);
    Pharmacy p;
    p.identification = ReadIdentification(in);
    p.specialty = in.Text("Specialty");
    p.business_name = in.Text("BusinessName");
    p.address = ReadAddress(in);
    p.communication_numbers = ReadComm(in);
    return p;
  }

  Prescriber ReadPrescriber(In& parent) {
    Prescriber p;
    pugi::xml_node node = parent.Find("Prescriber");
    if (!node) return p;
    In outer(node, parent.ChildPath("Prescriber"), issues_);
    std::string_view kind = "NonVeterinarian";
    pugi::xml_node n = outer.Find(kind);
    if (!n) {
      kind = "Veterinarian";
      n = outer.Find(kind);
      p.veterinarian = true;
    }
    if (!n) return p;
    In in(n, outer.ChildPath(kind), issues_);
    p.identification = ReadIdentification(in);
    p.specialty = in.Text("Specialty");
    if (pugi::xml_node pl = in.Find("PracticeLocation")) {
      In pin(pl, in.ChildPath("PracticeLocation"), issues_);
      p.practice_location = PracticeLocation{pin.Text("BusinessName")};
    }
    p.name = ReadName(in, "Name");
    p.address = ReadAddress(in);
    if (pugi::xml_node ag = in.Find("PrescriberAgent")) {
      In ain(ag, in.ChildPath("PrescriberAgent"), issues_);
      p.prescriber_agent = ReadName(ain, "Name");
    }
    p.communication_numbers = ReadComm(in);
    p.prescriber_place_of_service = in.Text("PrescriberPlaceOfService");
    return p;
  }

  std::optional<CodeQualifier> ReadCodeQualifier(In& parent, std::string_view element) {
    pugi::xml_node node = parent.Find(element);
    if (!node) return std::nullopt;
    In in(node, parent.ChildPath(element), issues_);
    return CodeQualifier{in.Text("Code"), in.Text("Qualifier")};
  }

  std::string ReadNci(In& parent, std::string_view element) {
    pugi::xml_node node = parent.Find(element);
    if (!node) return {};
    In in(node, parent.ChildPath(element), issues_);
    return in.Text("Code");
  }

  SigCode ReadSigCode(pugi::xml_node node, std::string path) {
    In in(node, std::move(path), issues_);
    SigCode c;
    c.text = in.Text("Text");
    c.qualifier = in.Text("Qualifier");
    c.code = in.Text("Code");
    return c;
  }
  std::optional<SigCode> ReadSigCode(In& parent, std::string_view element) {
    pugi::xml_node node = parent.Find(element);
    if (!node) return std::nullopt;
    return ReadSigCode(node, parent.ChildPath(element));
  }
  DoseUnit ReadDoseUnit(pugi::xml_node node, std::string path) {
    In in(node, std::move(path), issues_);
    DoseUnit u;
    u.text = in.Text("Text");
    in.Text("Qualifier");
    u.code = in.Text("Code");
    return u;
  }

  TimingAndDuration ReadTiming(pugi::xml_node node, std::string path) {
    In in(node, std::move(path), issues_);
    TimingAndDuration t;
    using K = TimingAndDuration::Kind;
    auto numeric = [&](In& x, std::string_view prefix) {
      auto values = x.Texts(Cat(prefix, "NumericValue"));
      if (!values.empty()) t.numeric_value = values[0];
      if (values.size() > 1) t.numeric_value_high = values[1];
      t.variable_modifier = x.Text(Cat("Variable", prefix, "Modifier"));
    };
    if (pugi::xml_node a = in.Find("AdministrationTiming")) {
      t.kind = K::kAdministrationTiming;
      In x(a, in.ChildPath("AdministrationTiming"), issues_);
      if (auto ev = ReadSigCode(x, "AdministrationTimingEvent"))
        t.administration_timing_event = *ev;
    } else if (pugi::xml_node f = in.Find("Frequency")) {
      t.kind = K::kFrequency;
      In x(f, in.ChildPath("Frequency"), issues_);
      numeric(x, "Frequency");
      if (auto u = ReadSigCode(x, "FrequencyUnits")) t.units = *u;
    } else if (pugi::xml_node i = in.Find("Interval")) {
      t.kind = K::kInterval;
      In x(i, in.ChildPath("Interval"), issues_);
      numeric(x, "Interval");
      if (auto u = ReadSigCode(x, "IntervalUnits")) t.units = *u;
    } else if (pugi::xml_node d = in.Find("Duration")) {
      t.kind = K::kDuration;
      In x(d, in.ChildPath("Duration"), issues_);
      t.numeric_value = x.Text("DurationNumericValue");
      if (auto u = ReadSigCode(x, "DurationText")) t.units = *u;
    } else if (auto s = ReadSigCode(in, "StopIndicator")) {
      t.kind = K::kStopIndicator;
      t.units = *s;
    }
    t.clarifying_free_text = in.Text("TimingClarifyingFreeText");
    return t;
  }

  Instruction ReadInstruction(pugi::xml_node node, std::string path) {
    In in(node, std::move(path), issues_);
    Instruction out;
    if (pugi::xml_node da = in.Find("DoseAdministration")) {
      In d(da, in.ChildPath("DoseAdministration"), issues_);
      DoseAdministration& a = out.dose_administration;
      a.dose_delivery_method = ReadSigCode(d, "DoseDeliveryMethod");
      if (pugi::xml_node dn = d.Find("Dosage")) {
        In ds(dn, d.ChildPath("Dosage"), issues_);
        auto q = ds.Texts("DoseQuantity");
        auto units = ds.FindAll("DoseUnitOfMeasure");
        if (!q.empty()) a.dose_quantity = q[0];
        if (!units.empty())
          a.dose_unit = ReadDoseUnit(units[0], ds.ChildPath("DoseUnitOfMeasure", 0, units.size()));
        a.dose_range_modifier = ds.Text("DoseRangeModifier");
        if (q.size() > 1) a.dose_quantity_high = q[1];
        if (units.size() > 1)
          a.dose_unit_high =
              ReadDoseUnit(units[1], ds.ChildPath("DoseUnitOfMeasure", 1, units.size()));
      }
      if (auto r = ReadSigCode(d, "RouteOfAdministration")) a.route = *r;
      a.site = ReadSigCode(d, "SiteOfAdministration");
    }
    auto modifiers = in.Texts("MultipleTimingModifier");
    auto timings = in.FindAll("TimingAndDuration");
    for (size_t i = 0; i < timings.size(); ++i) {
      std::string mod = i > 0 && i - 1 < modifiers.size() ? modifiers[i - 1] : "";
      out.timing.emplace_back(
          mod, ReadTiming(timings[i], in.ChildPath("TimingAndDuration", i, timings.size())));
    }
    auto inds = in.FindAll("IndicationForUse");
    for (size_t i = 0; i < inds.size(); ++i) {
      In x(inds[i], in.ChildPath("IndicationForUse", i, inds.size()), issues_);
      Indication ind;
      ind.precursor = ReadSigCode(x, "IndicationPrecursor");
      ind.indication = ReadSigCode(x, "Indication");
      out.indication_for_use.push_back(std::move(ind));
    }
    auto maxes = in.FindAll("MaximumDoseRestriction");
    for (size_t i = 0; i < maxes.size(); ++i) {
      In x(maxes[i], in.ChildPath("MaximumDoseRestriction", i, maxes.size()), issues_);
      MaximumDose m;
      m.numeric_value = x.Text("MaximumDoseRestrictionNumericValue");
      if (pugi::xml_node f = x.Find("MaximumDoseRestrictionForm")) {
        m.form = ReadDoseUnit(f, x.ChildPath("MaximumDoseRestrictionForm"));
      }
      m.units = ReadSigCode(x, "MaximumDoseRestrictionUnits");
      m.duration_value = x.Text("MaximumDoseRestrictionDurationValue");
      if (auto u = ReadSigCode(x, "MaximumDoseRestrictionDurationUnit")) m.duration_unit = *u;
      m.clarifying_free_text = x.Text("MaximumDoseRestrictionClarifyingFreeText");
      out.maximum_dose_restriction.push_back(std::move(m));
    }
    return out;
  }

  Sig ReadSig(pugi::xml_node node, std::string path) {
    In in(node, std::move(path), issues_);
    Sig s;
    s.sig_text = in.Text("SigText");
    if (pugi::xml_node cs = in.Find("CodeSystem")) {
      In c(cs, in.ChildPath("CodeSystem"), issues_);
      s.snomed_version = c.Text("SNOMEDVersion");
      s.fmt_version = c.Text("FMTVersion");
    }
    auto modifiers = in.Texts("MultipleInstructionModifier");
    auto instructions = in.FindAll("Instruction");
    for (size_t i = 0; i < instructions.size(); ++i) {
      Instruction ins =
          ReadInstruction(instructions[i], in.ChildPath("Instruction", i, instructions.size()));
      if (i > 0 && i - 1 < modifiers.size()) ins.multiple_instruction_modifier = modifiers[i - 1];
      s.instruction.push_back(std::move(ins));
    }
    s.clarifying_free_text = in.Text("ClarifyingFreeText");
    return s;
  }

  Medication ReadMedication(pugi::xml_node node, std::string path) {
    In in(node, std::move(path), issues_);
    Medication m;
    m.drug_description = in.Text("DrugDescription");
    if (pugi::xml_node dc = in.Find("DrugCoded")) {
      In d(dc, in.ChildPath("DrugCoded"), issues_);
      DrugCoded c;
      c.product_code = ReadCodeQualifier(d, "ProductCode");
      if (pugi::xml_node st = d.Find("Strength")) {
        In s(st, d.ChildPath("Strength"), issues_);
        Strength str;
        str.strength_value = s.Text("StrengthValue");
        str.strength_form_code = ReadNci(s, "StrengthForm");
        str.strength_unit_of_measure_code = ReadNci(s, "StrengthUnitOfMeasure");
        c.strength = str;
      }
      c.drug_db_code = ReadCodeQualifier(d, "DrugDBCode");
      c.dea_schedule_code = ReadNci(d, "DEASchedule");
      m.drug_coded = std::move(c);
    }
    if (pugi::xml_node q = in.Find("Quantity")) {
      In x(q, in.ChildPath("Quantity"), issues_);
      Quantity qty;
      qty.value = x.Text("Value");
      qty.code_list_qualifier = x.Text("CodeListQualifier");
      qty.unit_of_measure_code = ReadNci(x, "QuantityUnitOfMeasure");
      m.quantity = qty;
    }
    m.days_supply = in.Text("DaysSupply");
    m.written_date = ReadDate(in, "WrittenDate");
    m.last_fill_date = ReadDate(in, "LastFillDate");
    m.substitutions = in.Text("Substitutions");
    m.number_of_refills = in.Text("NumberOfRefills");
    auto diags = in.FindAll("Diagnosis");
    for (size_t i = 0; i < diags.size(); ++i) {
      In x(diags[i], in.ChildPath("Diagnosis", i, diags.size()), issues_);
      Diagnosis d;
      d.clinical_information_qualifier = x.Text("ClinicalInformationQualifier");
      auto code = [&](std::string_view el) -> std::optional<DiagnosisCode> {
        pugi::xml_node n = x.Find(el);
        if (!n) return std::nullopt;
        In c(n, x.ChildPath(el), issues_);
        return DiagnosisCode{c.Text("Code"), c.Text("Qualifier"), c.Text("Description")};
      };
      if (auto p = code("Primary")) d.primary = *p;
      d.secondary = code("Secondary");
      m.diagnosis.push_back(std::move(d));
    }
    m.prior_authorization = in.Text("PriorAuthorization");
    m.note = in.Text("Note");
    m.drug_coverage_status_code = in.Texts("DrugCoverageStatusCode");
    if (pugi::xml_node s = in.Find("Sig")) m.sig = ReadSig(s, in.ChildPath("Sig"));
    m.pharmacy_requested_refills = in.Text("PharmacyRequestedRefills");
    m.do_not_fill = in.Text("DoNotFill");
    m.order_capture_method = in.Text("OrderCaptureMethod");
    m.reason_for_substitution_code_used = in.Text("ReasonForSubstitutionCodeUsed");
    m.rx_fill_indicator = in.Text("RxFillIndicator");
    auto others = in.FindAll("OtherMedicationDate");
    for (size_t i = 0; i < others.size(); ++i) {
      In x(others[i], in.ChildPath("OtherMedicationDate", i, others.size()), issues_);
      OtherMedicationDate o;
      o.date = ReadDate(x, "OtherMedicationDate");
      o.qualifier = x.Text("OtherMedicationDateQualifier");
      m.other_medication_date.push_back(std::move(o));
    }
    return m;
  }

  std::optional<Medication> ReadMedication(In& parent, std::string_view element) {
    pugi::xml_node n = parent.Find(element);
    if (!n) return std::nullopt;
    return ReadMedication(n, parent.ChildPath(element));
  }

  Response ReadResponse(In& parent) {
    Response r;
    pugi::xml_node node = parent.Find("Response");
    if (!node) return r;
    In outer(node, parent.ChildPath("Response"), issues_);
    for (pugi::xml_node c : node.children()) {
      if (c.type() != pugi::node_element) continue;
      r.kind = std::string(Local(c.name()));
      outer.Find(r.kind);
      In in(c, outer.ChildPath(r.kind), issues_);
      r.reason_code = in.Texts("ReasonCode");
      r.reference_number = in.Text("ReferenceNumber");
      r.note = in.Text("Note");
      r.denial_reason = in.Text("DenialReason");
      break;
    }
    return r;
  }

  Header ReadHeader(In& msg) {
    Header h;
    pugi::xml_node node = msg.Find("Header");
    if (!node) return h;
    In in(node, msg.ChildPath("Header"), issues_);
    if (pugi::xml_node to = in.Find("To")) {
      h.to = OwnText(to);
      h.to_qualifier = to.attribute("Qualifier").value();
    }
    if (pugi::xml_node from = in.Find("From")) {
      h.from = OwnText(from);
      h.from_qualifier = from.attribute("Qualifier").value();
    }
    h.message_id = in.Text("MessageID");
    h.relates_to_message_id = in.Text("RelatesToMessageID");
    h.sent_time = in.Text("SentTime");
    if (pugi::xml_node ss = in.Find("SenderSoftware")) {
      In s(ss, in.ChildPath("SenderSoftware"), issues_);
      h.sender_software_developer = s.Text("SenderSoftwareDeveloper");
      h.sender_software_product = s.Text("SenderSoftwareProduct");
      h.sender_software_version_release = s.Text("SenderSoftwareVersionRelease");
    }
    h.test_message = in.Text("TestMessage");
    h.rx_reference_number = in.Text("RxReferenceNumber");
    h.prescriber_order_number = in.Text("PrescriberOrderNumber");
    if (pugi::xml_node ds = in.Find("DigitalSignature")) {
      In s(ds, in.ChildPath("DigitalSignature"), issues_);
      DigitalSignature d;
      d.version = ds.attribute("Version").value();
      d.digest_method = s.Text("DigestMethod");
      d.digest_value = s.Text("DigestValue");
      d.signature_value = s.Text("SignatureValue");
      d.x509_data = s.Text("X509Data");
      if (pugi::xml_node ind = s.Find("DigitalSignatureIndicator")) {
        std::string v = OwnText(ind);
        d.indicator = v == "true" || v == "1";
      }
      h.digital_signature = d;
    }
    return h;
  }

  std::optional<Body> ReadBody(In& msg) {
    pugi::xml_node node = msg.Find("Body");
    if (!node) return std::nullopt;
    In body(node, msg.ChildPath("Body"), issues_);
    pugi::xml_node tx;
    for (pugi::xml_node c : node.children()) {
      if (c.type() == pugi::node_element) {
        tx = c;
        break;
      }
    }
    if (!tx) return std::nullopt;
    std::string_view name = Local(tx.name());
    body.Find(name);
    In in(tx, body.ChildPath(name), issues_);
    if (name == "NewRx") {
      NewRx n;
      n.urgency_indicator_code = in.Text("UrgencyIndicatorCode");
      n.patient = ReadPatient(in);
      n.pharmacy = ReadPharmacy(in);
      n.prescriber = ReadPrescriber(in);
      if (auto m = ReadMedication(in, "MedicationPrescribed")) n.medication_prescribed = *m;
      if (pugi::xml_node p = in.Find("ProhibitRenewalRequest")) {
        std::string v = OwnText(p);
        n.prohibit_renewal_request = v == "true" || v == "1";
      }
      return Body(std::move(n));
    }
    if (name == "CancelRx") {
      CancelRx c;
      c.change_of_prescription_status_flag = in.Text("ChangeOfPrescriptionStatusFlag");
      c.patient = ReadPatient(in);
      c.pharmacy = ReadPharmacy(in);
      c.prescriber = ReadPrescriber(in);
      if (auto m = ReadMedication(in, "MedicationPrescribed")) c.medication_prescribed = *m;
      return Body(std::move(c));
    }
    if (name == "Status") {
      Status s;
      s.code = in.Text("Code");
      s.description_code = in.Texts("DescriptionCode");
      s.description = in.Text("Description");
      return Body(std::move(s));
    }
    if (name == "Error") {
      Error e;
      e.code = in.Text("Code");
      e.description_code = in.Texts("DescriptionCode");
      e.description = in.Text("Description");
      return Body(std::move(e));
    }
    if (name == "Verify") {
      Verify v;
      if (pugi::xml_node vs = in.Find("VerifyStatus")) {
        In x(vs, in.ChildPath("VerifyStatus"), issues_);
        v.code = x.Text("Code");
        v.description = x.Text("Description");
      }
      return Body(std::move(v));
    }
    if (name == "CancelRxResponse") {
      CancelRxResponse c;
      c.response = ReadResponse(in);
      return Body(std::move(c));
    }
    if (name == "RxRenewalRequest") {
      RxRenewalRequest r;
      r.patient = ReadPatient(in);
      if (auto p = ReadPharmacy(in)) r.pharmacy = *p;
      r.prescriber = ReadPrescriber(in);
      if (auto m = ReadMedication(in, "MedicationDispensed")) r.medication_dispensed = *m;
      r.medication_prescribed = ReadMedication(in, "MedicationPrescribed");
      return Body(std::move(r));
    }
    if (name == "RxRenewalResponse") {
      RxRenewalResponse r;
      r.response = ReadResponse(in);
      r.patient = ReadPatient(in);
      if (auto p = ReadPharmacy(in)) r.pharmacy = *p;
      r.prescriber = ReadPrescriber(in);
      if (auto m = ReadMedication(in, "MedicationResponse")) r.medication_response = *m;
      return Body(std::move(r));
    }
    if (name == "RxChangeRequest") {
      RxChangeRequest r;
      r.message_request_code = in.Text("MessageRequestCode");
      r.message_request_sub_code = in.Texts("MessageRequestSubCode");
      r.patient = ReadPatient(in);
      if (auto p = ReadPharmacy(in)) r.pharmacy = *p;
      r.prescriber = ReadPrescriber(in);
      if (auto m = ReadMedication(in, "MedicationPrescribed")) r.medication_prescribed = *m;
      auto reqs = in.FindAll("MedicationRequested");
      for (size_t i = 0; i < reqs.size(); ++i) {
        r.medication_requested.push_back(
            ReadMedication(reqs[i], in.ChildPath("MedicationRequested", i, reqs.size())));
      }
      r.change_reason_text = in.Text("ChangeReasonText");
      return Body(std::move(r));
    }
    if (name == "RxChangeResponse") {
      RxChangeResponse r;
      r.message_request_code = in.Text("MessageRequestCode");
      r.message_request_sub_code = in.Texts("MessageRequestSubCode");
      r.response = ReadResponse(in);
      r.patient = ReadPatient(in);
      if (auto p = ReadPharmacy(in)) r.pharmacy = *p;
      r.prescriber = ReadPrescriber(in);
      r.medication_prescribed = ReadMedication(in, "MedicationPrescribed");
      return Body(std::move(r));
    }
    if (name == "RxFill") {
      RxFill r;
      if (pugi::xml_node fs = in.Find("FillStatus")) {
        In f(fs, in.ChildPath("FillStatus"), issues_);
        for (pugi::xml_node c : fs.children()) {
          if (c.type() != pugi::node_element) continue;
          r.fill_status = std::string(Local(c.name()));
          f.Find(r.fill_status);
          In x(c, f.ChildPath(r.fill_status), issues_);
          x.Text("ReferenceNumber");
          r.fill_status_note = x.Text("Note");
          r.fill_status_reason_code = x.Text("ReasonCode");
          break;
        }
      }
      r.patient = ReadPatient(in);
      if (auto p = ReadPharmacy(in)) r.pharmacy = *p;
      r.prescriber = ReadPrescriber(in);
      r.medication_dispensed = ReadMedication(in, "MedicationDispensed");
      r.medication_prescribed = ReadMedication(in, "MedicationPrescribed");
      return Body(std::move(r));
    }
    issues_.Error(in.path(), IssueCode::kNotSupported,
                  Cat("transaction ", name, " is not supported by RxFlow"));
    return std::nullopt;
  }

 private:
  IssueList& issues_;
};

// The 49 transactions of NCPDP SCRIPT 2017071's Body choice (schema order). A valid
// transaction outside the profile's tables is refused with one "not supported" error
// rather than as an unknown element.
constexpr std::string_view kScriptTransactions[] = {"Status",
                                                    "Error",
                                                    "Verify",
                                                    "GetMessage",
                                                    "PasswordChange",
                                                    "CancelRx",
                                                    "CancelRxResponse",
                                                    "Census",
                                                    "DrugAdministration",
                                                    "MTMServiceRequest",
                                                    "MTMServiceResponse",
                                                    "RxRenewalRequest",
                                                    "RxRenewalResponse",
                                                    "Resupply",
                                                    "RxChangeRequest",
                                                    "RxChangeResponse",
                                                    "RxFill",
                                                    "RxHistoryRequest",
                                                    "RxHistoryResponse",
                                                    "MTMServiceDocumentation",
                                                    "ClinicalInfoRequest",
                                                    "ClinicalInfoResponse",
                                                    "NewRxResponseDenied",
                                                    "NewRxRequest",
                                                    "NewRx",
                                                    "PAInitiationRequest",
                                                    "PAInitiationResponse",
                                                    "PARequest",
                                                    "PAResponse",
                                                    "PACancelRequest",
                                                    "PACancelResponse",
                                                    "PAAppealRequest",
                                                    "PAAppealResponse",
                                                    "CFManifest",
                                                    "CFRxOrderRequest",
                                                    "CFInventoryList",
                                                    "CFRxOrderCancel",
                                                    "CFRxOrderCompletion",
                                                    "CFProductInquiry",
                                                    "CFProductInquiryResponse",
                                                    "RxTransferRequest",
                                                    "RxTransferResponse",
                                                    "RxTransferConfirm",
                                                    "RxFillIndicatorChange",
                                                    "Recertification",
                                                    "REMSRequest",
                                                    "REMSResponse",
                                                    "REMSInitiationRequest",
                                                    "REMSInitiationResponse"};

absl::Status Refuse(IssueList& issues, std::string path, std::string message) {
  issues.Error(std::move(path), IssueCode::kNotSupported, message);
  return absl::UnimplementedError(std::move(message));
}

// SCRIPT 10.x marks its version with `version="010" release="006"` on Message; 2017071 and
// later use TransportVersion and friends. One error naming what was found.
absl::Status RefuseOldVersion(pugi::xml_node root, IssueList& issues) {
  std::string_view version = root.attribute("version").value();
  if (version.empty() || version.rfind("2017", 0) == 0 || version.rfind("2023", 0) == 0) {
    return absl::OkStatus();
  }
  std::string_view release = root.attribute("release").value();
  auto number = [](std::string_view digits) {
    size_t i = 0;
    while (i + 1 < digits.size() && digits[i] == '0') ++i;
    return std::string(digits.substr(i, 8));
  };
  std::string found = release.empty() ? Cat("version \"", version.substr(0, 20), "\"")
                                      : Cat(number(version), ".", number(release));
  return Refuse(
      issues, "/Message/@version",
      Cat("SCRIPT ", found, " is not supported by RxFlow: it reads SCRIPT 2017071 and 2023011"));
}

// The namespace of the root element: its prefix's declaration, or the default one.
std::string_view RootNamespace(pugi::xml_node root) {
  std::string_view name(root.name());
  size_t colon = name.find(':');
  std::string attr =
      colon == std::string_view::npos ? "xmlns" : Cat("xmlns:", name.substr(0, colon));
  return root.attribute(attr.c_str()).value();
}

// NCPDP's 2017071 schema has no target namespace. Some senders put SCRIPT's own on the
// message anyway: read it, with a warning. Anything else is not a SCRIPT message.
absl::Status CheckNamespace(pugi::xml_node root, IssueList& issues) {
  std::string_view ns = RootNamespace(root);
  if (ns.empty()) return absl::OkStatus();
  if (ns == kScriptNamespace) {
    issues.Warning("/Message/@xmlns", IssueCode::kValue,
                   Cat("namespace ", ns, " is not part of SCRIPT 2017071: read as 2017071 names"));
    return absl::OkStatus();
  }
  issues.Fatal("/Message/@xmlns", IssueCode::kStructure,
               Cat("namespace \"", ns.substr(0, 200), "\" is not SCRIPT's (expected none, or ",
                   kScriptNamespace, ")"));
  return absl::InvalidArgumentError(ToString(issues[issues.size() - 1]));
}

// The profile to read with: the caller's, the forced version's, or the one the Message
// attributes name. No version, or one RxFlow does not know → 2017071, with a warning.
const Profile* ChooseProfile(pugi::xml_node root, const ReadOptions& options, IssueList& issues) {
  if (options.profile) return options.profile;
  if (options.version) return &BuiltinProfile(*options.version);
  const Profile& p17 = BuiltinProfile(Version::k2017071);
  const Profile& p23 = BuiltinProfile(Version::k2023011);
  std::string_view tv = root.attribute("TransportVersion").value();
  std::string_view where = "TransportVersion";
  if (tv.empty()) {
    tv = root.attribute("version").value();
    if (!tv.empty()) where = "version";
  }
  if (tv.rfind("2017071", 0) == 0) return &p17;
  if (tv.rfind("2023011", 0) == 0) return &p23;
  for (const std::string& d : p23.impl().detect) {
    if (d == tv) return &p23;
  }
  issues.Warning(
      Cat("/Message/@", where), IssueCode::kValue,
      tv.empty() ? Cat("no SCRIPT version on Message: read as ", p17.name())
                 : Cat("unknown SCRIPT version \"", tv.substr(0, 20), "\": read as ", p17.name()));
  return &p17;
}

// A transaction of SCRIPT that the profile has no tables for: one error, before the
// validator would call its every element unknown.
absl::Status RefuseUnsupportedTransaction(pugi::xml_node root, const Profile& profile,
                                          IssueList& issues) {
  pugi::xml_node body;
  for (pugi::xml_node c : root.children()) {
    if (c.type() == pugi::node_element && Local(c.name()) == "Body") body = c;
  }
  pugi::xml_node tx;
  for (pugi::xml_node c = body.first_child(); c && !tx; c = c.next_sibling()) {
    if (c.type() == pugi::node_element) tx = c;
  }
  if (!tx) return absl::OkStatus();
  std::string_view name = Local(tx.name());
  const internal::Schema& schema = profile.impl().schema;
  int body_type = schema.FindType("BodyType");
  if (body_type >= 0 && schema.types[body_type].FindDecl(name) >= 0) return absl::OkStatus();
  for (std::string_view known : kScriptTransactions) {
    if (known == name) {
      return Refuse(issues, Cat("/Message/Body/", name),
                    Cat("transaction ", name, " is not supported by RxFlow"));
    }
  }
  return absl::OkStatus();  // not a SCRIPT transaction: the validator names it
}

struct Parsed {
  pugi::xml_document doc;
  pugi::xml_node root;
  const Profile* profile = nullptr;
};

// Parses a well-formed document whose root is Message, within the limits; fills `out`.
absl::Status ParseMessage(std::string_view xml, IssueList& issues, const ReadOptions& options,
                          Parsed& out) {
  if (xml.size() > options.max_input_bytes) {
    issues.Fatal(
        "/", IssueCode::kTooCostly,
        Cat("input of ", xml.size(), " bytes exceeds the limit of ", options.max_input_bytes));
    return absl::ResourceExhaustedError(ToString(issues[issues.size() - 1]));
  }
  if (HasDtdOrEntity(xml)) {
    issues.Fatal("/", IssueCode::kSecurity,
                 "document type (DTD) and entity declarations are refused");
    return absl::InvalidArgumentError(ToString(issues[issues.size() - 1]));
  }
  size_t bad_at;
  std::string bad_what;
  if (BadCharacter(xml, bad_at, bad_what)) {
    size_t line, col;
    LineColumn(xml, bad_at, line, col);
    issues.Fatal("/", IssueCode::kStructure,
                 Cat("malformed XML at line ", line, ", column ", col, ": ", bad_what));
    return absl::InvalidArgumentError(ToString(issues[issues.size() - 1]));
  }
  pugi::xml_parse_result r = out.doc.load_buffer(
      xml.data(), xml.size(), pugi::parse_default & ~pugi::parse_doctype & ~pugi::parse_pi,
      pugi::encoding_utf8);
  if (!r) {
    size_t line, col;
    LineColumn(xml, static_cast<size_t>(r.offset), line, col);
    issues.Fatal("/", IssueCode::kStructure,
                 Cat("malformed XML at line ", line, ", column ", col, ": ", r.description()));
    return absl::InvalidArgumentError(ToString(issues[issues.size() - 1]));
  }
  out.root = out.doc.document_element();
  size_t roots = 0;
  bool text_outside = false;
  for (pugi::xml_node c : out.doc.children()) {
    if (c.type() == pugi::node_element) ++roots;
    if ((c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) &&
        !rxflow::internal::Trim(c.value()).empty()) {
      text_outside = true;
    }
  }
  // pugixml drops text after the root element: look for it in the input itself.
  size_t last_gt = xml.rfind('>');
  if (last_gt != std::string_view::npos &&
      !rxflow::internal::Trim(xml.substr(last_gt + 1)).empty()) {
    text_outside = true;
  }
  if (roots > 1 || text_outside) {
    issues.Fatal("/", IssueCode::kStructure,
                 roots > 1 ? "malformed XML: a second element after the root element"
                           : "malformed XML: text after the root element");
    return absl::InvalidArgumentError(ToString(issues[issues.size() - 1]));
  }
  if (!out.root || Local(out.root.name()) != "Message") {
    issues.Fatal("/", IssueCode::kStructure, "the root element must be Message");
    return absl::InvalidArgumentError(ToString(issues[issues.size() - 1]));
  }
  return absl::OkStatus();
}

// Parses and validates; fills `out`. Returns InvalidArgument/ResourceExhausted on failure.
absl::Status ParseAndValidate(std::string_view xml, IssueList& issues, const ReadOptions& options,
                              Parsed& out) {
  const size_t first_issue = issues.size();
  if (absl::Status p = ParseMessage(xml, issues, options, out); !p.ok()) return p;
  if (absl::Status v = RefuseOldVersion(out.root, issues); !v.ok()) return v;
  if (absl::Status ns = CheckNamespace(out.root, issues); !ns.ok()) return ns;
  out.profile = ChooseProfile(out.root, options, issues);
  if (absl::Status t = RefuseUnsupportedTransaction(out.root, *out.profile, issues); !t.ok()) {
    return t;
  }
  size_t errors_before = issues.error_count();
  internal::Validator validator(out.profile->impl().schema, issues);
  DomWalker walker(validator, issues, options.max_depth);
  walker.Walk(out.root, 0);
  validator.Finish();
  if (!options.xsd_dir.empty()) {
    absl::Status xs = ValidateWithXsd(xml, options.xsd_dir, issues);
    if (!xs.ok() && xs.code() != absl::StatusCode::kInvalidArgument) return xs;
  }
  if (issues.error_count() > errors_before) {
    // Only this call's issues: a caller may pass a list holding earlier ones.
    // A limit stays a refusal in lenient mode too: what follows was never looked at.
    for (size_t k = first_issue; k < issues.size(); ++k) {
      const Issue& i = issues[k];
      if (i.severity == Severity::kError && i.code == IssueCode::kTooCostly) {
        return absl::ResourceExhaustedError(ToString(i));
      }
    }
    if (options.lenient) return absl::OkStatus();
    for (size_t k = first_issue; k < issues.size(); ++k) {
      const Issue& i = issues[k];
      if (i.severity == Severity::kError || i.severity == Severity::kFatal) {
        return absl::InvalidArgumentError(
            Cat("SCRIPT ", out.profile->name(), " message is invalid: ", ToString(i)));
      }
    }
    // This call's errors were counted but not kept (the list was full before it).
    return absl::InvalidArgumentError(Cat("SCRIPT ", out.profile->name(),
                                          " message is invalid: ", ToString(issues.last_added())));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateXml(std::string_view xml, IssueList& issues, const ReadOptions& options) {
  Parsed parsed;
  return ParseAndValidate(xml, issues, options, parsed);
}

StatusOr<Header> ReadHeader(std::string_view xml, IssueList& issues, const ReadOptions& options) {
  Parsed parsed;
  if (absl::Status s = ParseMessage(xml, issues, options, parsed); !s.ok()) return s;
  IssueList unused;  // what the typed header does not hold is not this call's business
  Decoder decoder(unused);
  In msg(parsed.root, "/Message", unused);
  return decoder.ReadHeader(msg);
}

StatusOr<Message> ReadXml(std::string_view xml, IssueList& issues, const ReadOptions& options) {
  Parsed parsed;
  if (absl::Status s = ParseAndValidate(xml, issues, options, parsed); !s.ok()) return s;
  UndoRules(parsed.root, parsed.profile->impl().rules);
  Decoder decoder(issues);
  Message m;
  {
    In msg(parsed.root, "/Message", issues);
    m.header = decoder.ReadHeader(msg);
    std::optional<Body> body = decoder.ReadBody(msg);
    if (!body) {
      // The reader names a transaction it has tables but no model for; anything else
      // (no Body, an empty one) was reported by the validator, or is in lenient mode.
      for (const Issue& i : issues) {
        if (i.code == IssueCode::kNotSupported && i.severity == Severity::kError) {
          return absl::UnimplementedError(i.message);
        }
      }
      if (!issues.has_errors()) {
        issues.Error("/Message/Body", IssueCode::kRequired, "required: one SCRIPT transaction");
      }
      return absl::InvalidArgumentError("SCRIPT message has no supported transaction");
    }
    m.body = std::move(*body);
  }
  return m;
}

}  // namespace rxflow::script
