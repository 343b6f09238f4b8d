// SCRIPT XML writer: typed message → element events → version rules → validator and text.
//
// The emit functions below write each structure in 2017071 schema order. The profile's
// rules (wrap, rename, remove) rewrite the element stream for other versions, and every
// element goes through the table-driven validator as it is written, so what leaves here
// has been checked against the profile it claims.
#include <string>

#include "rxflow/internal/strcat.h"
#include "rxflow/script/xml.h"

#include "common/text.h"
#include "script/schema.h"

namespace rxflow::script {
namespace {

using internal::Rule;
using rxflow::internal::Cat;

class Emitter {
 public:
  Emitter(const Profile::Impl& profile, IssueList& issues, bool pretty)
      : profile_(profile), validator_(profile.schema, issues), pretty_(pretty) {
    out_.reserve(16384);
    out_ += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
    for (const Rule& r : profile.rules) {
      if (r.kind != Rule::Kind::kCode) rules_.push_back(&r);
    }
  }

  // Opens an element; attributes are (name, value) pairs with empty values skipped.
  void Open(std::string_view name,
            std::initializer_list<std::pair<std::string_view, std::string_view>> attrs = {}) {
    Frame f;
    if (skip_ > 0) {
      ++skip_;
      frames_.push_back(f);
      return;
    }
    std::string_view parent = frames_.empty() ? std::string_view() : frames_.back().canonical;
    f.canonical = name;
    std::string_view emitted = name;
    for (const Rule* r : rules_) {
      if (r->element != name || (r->parent != "*" && r->parent != parent)) continue;
      if (r->kind == Rule::Kind::kRemove) {
        skip_ = 1;
        frames_.push_back(f);
        return;
      }
      if (r->kind == Rule::Kind::kRename) emitted = r->name;
      if (r->kind == Rule::Kind::kWrap) {
        StartTag(r->wrapper, {});
        f.wrapper = r->wrapper;
        emitted = r->name;
      }
    }
    f.emitted = emitted;
    StartTag(emitted, attrs);
    frames_.push_back(f);
  }

  void Close() {
    Frame f = frames_.back();
    frames_.pop_back();
    if (skip_ > 0) {
      --skip_;
      return;
    }
    EndTag(f.emitted);
    if (!f.wrapper.empty()) EndTag(f.wrapper);
  }

  // <name>value</name>; nothing when value is empty (SCRIPT sends no empty elements).
  void Leaf(std::string_view name, std::string_view value) {
    if (value.empty()) return;
    Open(name);
    if (skip_ == 0) {
      validator_.Text(value);
      rxflow::internal::AppendXmlEscaped(out_, value);
      leaf_ = true;
    }
    Close();
  }

  // Text content of the element just opened (for elements that also carry attributes).
  void Text(std::string_view value) {
    if (skip_ > 0) return;
    validator_.Text(value);
    rxflow::internal::AppendXmlEscaped(out_, value);
    leaf_ = true;
  }

  std::string Finish() {
    validator_.Finish();
    if (pretty_) out_.push_back('\n');
    return std::move(out_);
  }

 private:
  struct Frame {
    std::string_view canonical;
    std::string_view emitted;
    std::string_view wrapper;
  };

  void StartTag(std::string_view name,
                std::initializer_list<std::pair<std::string_view, std::string_view>> attrs) {
    validator_.Start(name);
    Indent();
    out_.push_back('<');
    out_.append(name);
    for (const auto& [k, v] : attrs) {
      if (v.empty()) continue;
      rxflow::internal::Append(out_, " ", k, "=\"");
      rxflow::internal::AppendXmlEscaped(out_, v);
      out_.push_back('"');
    }
    out_.push_back('>');
    ++depth_;
    leaf_ = false;
  }

  void EndTag(std::string_view name) {
    validator_.End();
    --depth_;
    if (!leaf_) Indent();
    leaf_ = false;
    rxflow::internal::Append(out_, "</", name, ">");
  }

  void Indent() {
    if (!pretty_) return;
    out_.push_back('\n');
    out_.append(static_cast<size_t>(depth_) * 2, ' ');
  }

  const Profile::Impl& profile_;
  internal::Validator validator_;
  std::vector<const Rule*> rules_;
  std::vector<Frame> frames_;
  std::string out_;
  bool pretty_;
  bool leaf_ = false;
  int depth_ = 0;
  int skip_ = 0;
};

class MessageWriter {
 public:
  MessageWriter(Emitter& e) : e_(e) {}

  void Write(const Message& m, const Profile::Impl& profile) {
    std::vector<std::pair<std::string_view, std::string_view>> attrs;
    static constexpr std::string_view kAttrs[] = {"DatatypesVersion",  "TransportVersion",
                                                  "TransactionDomain", "TransactionVersion",
                                                  "StructuresVersion", "ECLVersion"};
    // Message attributes in a fixed order, values from the profile.
    std::string_view v[6];
    for (size_t i = 0; i < 6; ++i) {
      for (const auto& [k, val] : profile.attributes) {
        if (k == kAttrs[i]) v[i] = val;
      }
    }
    e_.Open("Message", {{kAttrs[0], v[0]},
                        {kAttrs[1], v[1]},
                        {kAttrs[2], v[2]},
                        {kAttrs[3], v[3]},
                        {kAttrs[4], v[4]},
                        {kAttrs[5], v[5]}});
    WriteHeader(m.header);
    e_.Open("Body");
    std::visit([this](const auto& b) { WriteBody(b); }, m.body);
    e_.Close();
    e_.Close();
  }

 private:
  void WriteHeader(const Header& h) {
    e_.Open("Header");
    e_.Open("To", {{"Qualifier", h.to_qualifier}});
    Text(h.to);
    e_.Close();
    e_.Open("From", {{"Qualifier", h.from_qualifier}});
    Text(h.from);
    e_.Close();
    e_.Leaf("MessageID", h.message_id);
    e_.Leaf("RelatesToMessageID", h.relates_to_message_id);
    e_.Leaf("SentTime", h.sent_time);
    e_.Open("SenderSoftware");
    e_.Leaf("SenderSoftwareDeveloper", h.sender_software_developer);
    e_.Leaf("SenderSoftwareProduct", h.sender_software_product);
    e_.Leaf("SenderSoftwareVersionRelease", h.sender_software_version_release);
    e_.Close();
    e_.Leaf("TestMessage", h.test_message);
    e_.Leaf("RxReferenceNumber", h.rx_reference_number);
    e_.Leaf("PrescriberOrderNumber", h.prescriber_order_number);
    if (h.digital_signature) {
      const DigitalSignature& d = *h.digital_signature;
      e_.Open("DigitalSignature", {{"Version", d.version}});
      if (d.indicator) {
        e_.Leaf("DigitalSignatureIndicator", *d.indicator ? "true" : "false");
      } else {
        e_.Leaf("DigestMethod", d.digest_method);
        e_.Leaf("DigestValue", d.digest_value);
        e_.Leaf("SignatureValue", d.signature_value);
        e_.Leaf("X509Data", d.x509_data);
      }
      e_.Close();
    }
    e_.Close();
  }

  // Text content for an element opened with attributes.
  void Text(std::string_view s) { e_.Text(s); }

  enum class IdBlock { kPatient, kPharmacy, kPrescriber };

  void WriteIdentification(const Identification& id, IdBlock block) {
    if (id.empty()) return;
    e_.Open("Identification");
    switch (block) {
      case IdBlock::kPatient:
        e_.Leaf("MedicareNumber", id.medicare_number);
        e_.Leaf("MedicaidNumber", id.medicaid_number);
        e_.Leaf("MedicalRecordIdentificationNumberEHR",
                id.medical_record_identification_number_ehr);
        e_.Leaf("PatientAccountNumber", id.patient_account_number);
        e_.Leaf("SocialSecurity", id.social_security);
        e_.Leaf("MutuallyDefined", id.mutually_defined);
        e_.Leaf("REMSPatientID", id.rems_patient_id);
        break;
      case IdBlock::kPharmacy:
        e_.Leaf("NCPDPID", id.ncpdp_id);
        e_.Leaf("StateLicenseNumber", id.state_license_number);
        e_.Leaf("MedicareNumber", id.medicare_number);
        e_.Leaf("MedicaidNumber", id.medicaid_number);
        e_.Leaf("UPIN", id.upin);
        e_.Leaf("DEANumber", id.dea_number);
        e_.Leaf("HIN", id.hin);
        e_.Leaf("NPI", id.npi);
        e_.Leaf("MutuallyDefined", id.mutually_defined);
        break;
      case IdBlock::kPrescriber:
        e_.Leaf("StateLicenseNumber", id.state_license_number);
        e_.Leaf("MedicareNumber", id.medicare_number);
        e_.Leaf("MedicaidNumber", id.medicaid_number);
        e_.Leaf("UPIN", id.upin);
        e_.Leaf("DEANumber", id.dea_number);
        e_.Leaf("HIN", id.hin);
        e_.Leaf("SocialSecurity", id.social_security);
        e_.Leaf("NPI", id.npi);
        e_.Leaf("CertificateToPrescribe", id.certificate_to_prescribe);
        e_.Leaf("Data2000WaiverID", id.data2000_waiver_id);
        e_.Leaf("MutuallyDefined", id.mutually_defined);
        e_.Leaf("REMSHealthcareProviderEnrollmentID", id.rems_healthcare_provider_enrollment_id);
        e_.Leaf("StateControlSubstanceNumber", id.state_control_substance_number);
        break;
    }
    e_.Close();
  }

  void WriteName(std::string_view element, const Name& n) {
    e_.Open(element);
    e_.Leaf("LastName", n.last_name);
    e_.Leaf("FirstName", n.first_name);
    e_.Leaf("MiddleName", n.middle_name);
    e_.Leaf("Suffix", n.suffix);
    e_.Leaf("Prefix", n.prefix);
    e_.Close();
  }

  void WriteAddress(const std::optional<Address>& a) {
    if (!a) return;
    e_.Open("Address");
    e_.Leaf("AddressLine1", a->address_line1);
    e_.Leaf("AddressLine2", a->address_line2);
    e_.Leaf("City", a->city);
    e_.Leaf("StateProvince", a->state_province);
    e_.Leaf("PostalCode", a->postal_code);
    e_.Leaf("CountryCode", a->country_code);
    e_.Close();
  }

  void WritePhone(std::string_view element, const Phone& p) {
    e_.Open(element);
    e_.Leaf("Number", p.number);
    e_.Leaf("Extension", p.extension);
    e_.Leaf("SupportsSMS", p.supports_sms);
    e_.Close();
  }

  void WriteComm(const std::optional<CommunicationNumbers>& c) {
    if (!c) return;
    e_.Open("CommunicationNumbers");
    if (c->primary_telephone) WritePhone("PrimaryTelephone", *c->primary_telephone);
    for (const Phone& p : c->beeper) WritePhone("Beeper", p);
    for (const std::string& m : c->electronic_mail) e_.Leaf("ElectronicMail", m);
    for (const Phone& p : c->fax) WritePhone("Fax", p);
    for (const Phone& p : c->home_telephone) WritePhone("HomeTelephone", p);
    for (const Phone& p : c->work_telephone) WritePhone("WorkTelephone", p);
    for (const Phone& p : c->other_telephone) WritePhone("OtherTelephone", p);
    e_.Leaf("DirectAddress", c->direct_address);
    e_.Close();
  }

  void WriteDate(std::string_view element, const DateValue& d) {
    if (d.empty()) return;
    e_.Open(element);
    if (!d.date.empty()) {
      e_.Leaf("Date", d.date);
    } else {
      e_.Leaf("DateTime", d.date_time);
    }
    e_.Close();
  }

  void WritePatient(const Patient& p) {
    e_.Open("Patient");
    e_.Open(p.human ? "HumanPatient" : "NonHumanPatient");
    WriteIdentification(p.identification, IdBlock::kPatient);
    WriteName("Name", p.name);
    e_.Leaf("Gender", p.gender);
    WriteDate("DateOfBirth", p.date_of_birth);
    WriteAddress(p.address);
    WriteComm(p.communication_numbers);
    e_.Leaf("LanguageNameCode", p.language_name_code);
    e_.Close();
    e_.Close();
  }

  void WritePharmacy(const Pharmacy& p) {
    e_.Open("Pharmacy");
    WriteIdentification(p.identification, IdBlock::kPharmacy);
    e_.Leaf("Specialty", p.specialty);
    e_.Leaf("BusinessName", p.business_name);
    WriteAddress(p.address);
    WriteComm(p.communication_numbers);
    e_.Close();
  }

  void WritePrescriber(const Prescriber& p) {
    e_.Open("Prescriber");
    e_.Open(p.veterinarian ? "Veterinarian" : "NonVeterinarian");
    WriteIdentification(p.identification, IdBlock::kPrescriber);
    e_.Leaf("Specialty", p.specialty);
    if (p.practice_location) {
      e_.Open("PracticeLocation");
      e_.Leaf("BusinessName", p.practice_location->business_name);
      e_.Close();
    }
    WriteName("Name", p.name);
    WriteAddress(p.address);
    if (p.prescriber_agent) {
      e_.Open("PrescriberAgent");
      WriteName("Name", *p.prescriber_agent);
      e_.Close();
    }
    WriteComm(p.communication_numbers);
    e_.Leaf("PrescriberPlaceOfService", p.prescriber_place_of_service);
    e_.Close();
    e_.Close();
  }

  void WriteCodeQualifier(std::string_view element, const std::optional<CodeQualifier>& c) {
    if (!c) return;
    e_.Open(element);
    e_.Leaf("Code", c->code);
    e_.Leaf("Qualifier", c->qualifier);
    e_.Close();
  }

  void WriteNci(std::string_view element, std::string_view code) {
    if (code.empty()) return;
    e_.Open(element);
    e_.Leaf("Code", code);
    e_.Close();
  }

  void WriteSigCode(std::string_view element, const SigCode& c) {
    e_.Open(element);
    e_.Leaf("Text", c.text);
    e_.Leaf("Qualifier", c.qualifier);
    e_.Leaf("Code", c.code);
    e_.Close();
  }

  void WriteDoseUnit(std::string_view element, const DoseUnit& u) {
    e_.Open(element);
    e_.Leaf("Text", u.text);
    e_.Leaf("Qualifier", "DoseUnitOfMeasure");
    e_.Leaf("Code", u.code);
    e_.Close();
  }

  void WriteTiming(const TimingAndDuration& t) {
    e_.Open("TimingAndDuration");
    using K = TimingAndDuration::Kind;
    auto numeric = [&](std::string_view prefix) {
      e_.Leaf(Intern(prefix, "NumericValue"), t.numeric_value);
      if (!t.variable_modifier.empty()) {
        e_.Leaf(Intern("Variable", prefix, "Modifier"), t.variable_modifier);
        e_.Leaf(Intern(prefix, "NumericValue"), t.numeric_value_high);
      }
    };
    switch (t.kind) {
      case K::kAdministrationTiming:
        e_.Open("AdministrationTiming");
        WriteSigCode("AdministrationTimingEvent", t.administration_timing_event);
        e_.Close();
        e_.Leaf("TimingClarifyingFreeText", t.clarifying_free_text);
        break;
      case K::kFrequency:
        e_.Open("Frequency");
        numeric("Frequency");
        WriteSigCode("FrequencyUnits", t.units);
        e_.Close();
        e_.Leaf("TimingClarifyingFreeText", t.clarifying_free_text);
        break;
      case K::kInterval:
        e_.Open("Interval");
        numeric("Interval");
        WriteSigCode("IntervalUnits", t.units);
        e_.Close();
        e_.Leaf("TimingClarifyingFreeText", t.clarifying_free_text);
        break;
      case K::kDuration:
        e_.Open("Duration");
        e_.Leaf("DurationNumericValue", t.numeric_value);
        WriteSigCode("DurationText", t.units);
        e_.Close();
        break;
      case K::kStopIndicator:
        WriteSigCode("StopIndicator", t.units);
        break;
    }
    e_.Close();
  }

  // Element names built from parts must outlive the emitter's validator: keep them here.
  std::string_view Intern(std::string_view a, std::string_view b, std::string_view c = {}) {
    std::string s = Cat(a, b, c);
    for (const auto& existing : interned_) {
      if (*existing == s) return *existing;
    }
    interned_.push_back(std::make_unique<std::string>(std::move(s)));
    return *interned_.back();
  }

  void WriteInstruction(const Instruction& in) {
    e_.Open("Instruction");
    const DoseAdministration& d = in.dose_administration;
    e_.Open("DoseAdministration");
    if (d.dose_delivery_method) WriteSigCode("DoseDeliveryMethod", *d.dose_delivery_method);
    if (!d.dose_quantity.empty() && d.dose_unit) {
      e_.Open("Dosage");
      e_.Leaf("DoseQuantity", d.dose_quantity);
      WriteDoseUnit("DoseUnitOfMeasure", *d.dose_unit);
      if (!d.dose_range_modifier.empty() && d.dose_unit_high) {
        e_.Leaf("DoseRangeModifier", d.dose_range_modifier);
        e_.Leaf("DoseQuantity", d.dose_quantity_high);
        WriteDoseUnit("DoseUnitOfMeasure", *d.dose_unit_high);
      }
      e_.Close();
    }
    WriteSigCode("RouteOfAdministration", d.route);
    if (d.site) WriteSigCode("SiteOfAdministration", *d.site);
    e_.Close();
    for (size_t i = 0; i < in.timing.size(); ++i) {
      if (i > 0) e_.Leaf("MultipleTimingModifier", in.timing[i].first);
      WriteTiming(in.timing[i].second);
    }
    for (const Indication& ind : in.indication_for_use) {
      e_.Open("IndicationForUse");
      if (ind.precursor) WriteSigCode("IndicationPrecursor", *ind.precursor);
      if (ind.indication) WriteSigCode("Indication", *ind.indication);
      e_.Close();
    }
    for (const MaximumDose& m : in.maximum_dose_restriction) {
      e_.Open("MaximumDoseRestriction");
      e_.Leaf("MaximumDoseRestrictionNumericValue", m.numeric_value);
      if (m.form) {
        WriteDoseUnit("MaximumDoseRestrictionForm", *m.form);
      } else if (m.units) {
        WriteSigCode("MaximumDoseRestrictionUnits", *m.units);
      }
      e_.Leaf("MaximumDoseRestrictionDurationValue", m.duration_value);
      WriteSigCode("MaximumDoseRestrictionDurationUnit", m.duration_unit);
      e_.Leaf("MaximumDoseRestrictionClarifyingFreeText", m.clarifying_free_text);
      e_.Close();
    }
    e_.Close();
  }

  void WriteSig(const Sig& s) {
    e_.Open("Sig");
    e_.Leaf("SigText", s.sig_text);
    if (s.structured()) {
      e_.Open("CodeSystem");
      e_.Leaf("SNOMEDVersion", s.snomed_version);
      e_.Leaf("FMTVersion", s.fmt_version);
      e_.Close();
      for (size_t i = 0; i < s.instruction.size(); ++i) {
        if (i > 0)
          e_.Leaf("MultipleInstructionModifier", s.instruction[i].multiple_instruction_modifier);
        WriteInstruction(s.instruction[i]);
      }
      e_.Leaf("ClarifyingFreeText", s.clarifying_free_text);
    }
    e_.Close();
  }

  void WriteMedication(std::string_view element, const Medication& m) {
    e_.Open(element);
    e_.Leaf("DrugDescription", m.drug_description);
    if (m.drug_coded) {
      const DrugCoded& d = *m.drug_coded;
      e_.Open("DrugCoded");
      WriteCodeQualifier("ProductCode", d.product_code);
      if (d.strength) {
        e_.Open("Strength");
        e_.Leaf("StrengthValue", d.strength->strength_value);
        WriteNci("StrengthForm", d.strength->strength_form_code);
        WriteNci("StrengthUnitOfMeasure", d.strength->strength_unit_of_measure_code);
        e_.Close();
      }
      WriteCodeQualifier("DrugDBCode", d.drug_db_code);
      WriteNci("DEASchedule", d.dea_schedule_code);
      e_.Close();
    }
    if (m.quantity) {
      e_.Open("Quantity");
      e_.Leaf("Value", m.quantity->value);
      e_.Leaf("CodeListQualifier", m.quantity->code_list_qualifier);
      WriteNci("QuantityUnitOfMeasure", m.quantity->unit_of_measure_code);
      e_.Close();
    }
    e_.Leaf("DaysSupply", m.days_supply);
    WriteDate("WrittenDate", m.written_date);
    WriteDate("LastFillDate", m.last_fill_date);
    e_.Leaf("Substitutions", m.substitutions);
    e_.Leaf("NumberOfRefills", m.number_of_refills);
    for (const Diagnosis& d : m.diagnosis) {
      e_.Open("Diagnosis");
      e_.Leaf("ClinicalInformationQualifier", d.clinical_information_qualifier);
      auto code = [&](std::string_view el, const DiagnosisCode& c) {
        e_.Open(el);
        e_.Leaf("Code", c.code);
        e_.Leaf("Qualifier", c.qualifier);
        e_.Leaf("Description", c.description);
        e_.Close();
      };
      code("Primary", d.primary);
      if (d.secondary) code("Secondary", *d.secondary);
      e_.Close();
    }
    e_.Leaf("PriorAuthorization", m.prior_authorization);
    e_.Leaf("Note", m.note);
    for (const std::string& c : m.drug_coverage_status_code) e_.Leaf("DrugCoverageStatusCode", c);
    if (m.sig) WriteSig(*m.sig);
    e_.Leaf("PharmacyRequestedRefills", m.pharmacy_requested_refills);
    e_.Leaf("DoNotFill", m.do_not_fill);
    e_.Leaf("OrderCaptureMethod", m.order_capture_method);
    e_.Leaf("ReasonForSubstitutionCodeUsed", m.reason_for_substitution_code_used);
    e_.Leaf("RxFillIndicator", m.rx_fill_indicator);
    for (const OtherMedicationDate& o : m.other_medication_date) {
      e_.Open("OtherMedicationDate");
      WriteDate("OtherMedicationDate", o.date);
      e_.Leaf("OtherMedicationDateQualifier", o.qualifier);
      e_.Close();
    }
    e_.Close();
  }

  void WriteResponse(const Response& r) {
    e_.Open("Response");
    e_.Open(r.kind);
    for (const std::string& c : r.reason_code) e_.Leaf("ReasonCode", c);
    e_.Leaf("ReferenceNumber", r.reference_number);
    if (r.kind == "Denied") {
      e_.Leaf("DenialReason", r.denial_reason);
    } else {
      e_.Leaf("Note", r.note);
    }
    e_.Close();
    e_.Close();
  }

  void WriteBody(const NewRx& n) {
    e_.Open("NewRx");
    e_.Leaf("UrgencyIndicatorCode", n.urgency_indicator_code);
    WritePatient(n.patient);
    if (n.pharmacy) WritePharmacy(*n.pharmacy);
    WritePrescriber(n.prescriber);
    WriteMedication("MedicationPrescribed", n.medication_prescribed);
    if (n.prohibit_renewal_request) {
      e_.Leaf("ProhibitRenewalRequest", *n.prohibit_renewal_request ? "true" : "false");
    }
    e_.Close();
  }
  void WriteBody(const CancelRx& c) {
    e_.Open("CancelRx");
    e_.Leaf("ChangeOfPrescriptionStatusFlag", c.change_of_prescription_status_flag);
    WritePatient(c.patient);
    if (c.pharmacy) WritePharmacy(*c.pharmacy);
    WritePrescriber(c.prescriber);
    WriteMedication("MedicationPrescribed", c.medication_prescribed);
    e_.Close();
  }
  void WriteBody(const Status& s) {
    e_.Open("Status");
    e_.Leaf("Code", s.code);
    for (const std::string& d : s.description_code) e_.Leaf("DescriptionCode", d);
    e_.Leaf("Description", s.description);
    e_.Close();
  }
  void WriteBody(const Error& s) {
    e_.Open("Error");
    e_.Leaf("Code", s.code);
    for (const std::string& d : s.description_code) e_.Leaf("DescriptionCode", d);
    e_.Leaf("Description", s.description);
    e_.Close();
  }
  void WriteBody(const Verify& v) {
    e_.Open("Verify");
    e_.Open("VerifyStatus");
    e_.Leaf("Code", v.code);
    e_.Leaf("Description", v.description);
    e_.Close();
    e_.Close();
  }
  void WriteBody(const CancelRxResponse& c) {
    e_.Open("CancelRxResponse");
    WriteResponse(c.response);
    e_.Close();
  }
  void WriteBody(const RxRenewalRequest& r) {
    e_.Open("RxRenewalRequest");
    WritePatient(r.patient);
    WritePharmacy(r.pharmacy);
    WritePrescriber(r.prescriber);
    WriteMedication("MedicationDispensed", r.medication_dispensed);
    if (r.medication_prescribed) WriteMedication("MedicationPrescribed", *r.medication_prescribed);
    e_.Close();
  }
  void WriteBody(const RxRenewalResponse& r) {
    e_.Open("RxRenewalResponse");
    WriteResponse(r.response);
    WritePatient(r.patient);
    WritePharmacy(r.pharmacy);
    WritePrescriber(r.prescriber);
    WriteMedication("MedicationResponse", r.medication_response);
    e_.Close();
  }
  void WriteBody(const RxChangeRequest& r) {
    e_.Open("RxChangeRequest");
    e_.Leaf("MessageRequestCode", r.message_request_code);
    for (const std::string& s : r.message_request_sub_code) e_.Leaf("MessageRequestSubCode", s);
    WritePatient(r.patient);
    WritePharmacy(r.pharmacy);
    WritePrescriber(r.prescriber);
    WriteMedication("MedicationPrescribed", r.medication_prescribed);
    for (const Medication& m : r.medication_requested) WriteMedication("MedicationRequested", m);
    e_.Leaf("ChangeReasonText", r.change_reason_text);
    e_.Close();
  }
  void WriteBody(const RxChangeResponse& r) {
    e_.Open("RxChangeResponse");
    e_.Leaf("MessageRequestCode", r.message_request_code);
    for (const std::string& s : r.message_request_sub_code) e_.Leaf("MessageRequestSubCode", s);
    WriteResponse(r.response);
    WritePatient(r.patient);
    WritePharmacy(r.pharmacy);
    WritePrescriber(r.prescriber);
    if (r.medication_prescribed) WriteMedication("MedicationPrescribed", *r.medication_prescribed);
    e_.Close();
  }
  void WriteBody(const RxFill& r) {
    e_.Open("RxFill");
    e_.Open("FillStatus");
    e_.Open(r.fill_status);
    // Element order differs per fill status (schema types NoteTypeWithReasonCode*).
    if (r.fill_status == "PartiallyDispensed") {
      e_.Leaf("ReasonCode", r.fill_status_reason_code);
      e_.Leaf("Note", r.fill_status_note);
    } else {
      e_.Leaf("Note", r.fill_status_note);
      if (r.fill_status != "Transferred") e_.Leaf("ReasonCode", r.fill_status_reason_code);
    }
    e_.Close();
    e_.Close();
    WritePatient(r.patient);
    WritePharmacy(r.pharmacy);
    WritePrescriber(r.prescriber);
    if (r.medication_dispensed) WriteMedication("MedicationDispensed", *r.medication_dispensed);
    if (r.medication_prescribed) WriteMedication("MedicationPrescribed", *r.medication_prescribed);
    e_.Close();
  }

  Emitter& e_;
  std::vector<std::unique_ptr<std::string>> interned_;
};

}  // namespace

StatusOr<std::string> WriteXml(const Message& message, IssueList& issues,
                               const WriteOptions& options) {
  const Profile& profile = options.profile ? *options.profile : BuiltinProfile(Version::k2023011);
  size_t errors_before = issues.error_count();
  Emitter emitter(profile.impl(), issues, options.pretty);
  MessageWriter writer(emitter);
  writer.Write(message, profile.impl());
  std::string xml = emitter.Finish();
  if (issues.error_count() > errors_before) {
    for (const Issue& i : issues) {
      if (i.severity == Severity::kError || i.severity == Severity::kFatal) {
        return absl::InvalidArgumentError(
            Cat("SCRIPT ", profile.name(), " message is invalid: ", ToString(i)));
      }
    }
  }
  return xml;
}

}  // namespace rxflow::script
