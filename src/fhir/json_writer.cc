// FHIR R5 JSON writer: a small streaming writer over std::string, in the element order of
// the FHIR specification. Empty values are omitted, as FHIR JSON requires.
#include <string>

#include "rxflow/fhir/json.h"

#include "common/text.h"

namespace rxflow::fhir {
namespace {

class Out {
 public:
  explicit Out(JsonStyle style) : pretty_(style == JsonStyle::kPretty) {}

  void BeginObject() {
    Value();
    s_.push_back('{');
    first_.push_back(true);
  }
  void EndObject() { Close('}'); }
  void BeginArray() {
    Value();
    s_.push_back('[');
    first_.push_back(true);
  }
  void EndArray() { Close(']'); }

  void Key(std::string_view k) {
    Sep();
    s_.push_back('"');
    s_.append(k);
    s_ += pretty_ ? "\": " : "\":";
    after_key_ = true;
  }
  void String(std::string_view v) {
    Value();
    s_.push_back('"');
    internal::AppendJsonEscaped(s_, v);
    s_.push_back('"');
  }
  void Raw(std::string_view v) {
    Value();
    s_.append(v);
  }
  void Bool(bool b) { Raw(b ? "true" : "false"); }
  void Int(int64_t i) { Raw(std::to_string(i)); }

  // Field helpers that skip empty values.
  void Str(std::string_view k, std::string_view v) {
    if (v.empty()) return;
    Key(k);
    String(v);
  }
  void Dec(std::string_view k, std::string_view v) {
    if (v.empty()) return;
    Key(k);
    Raw(v);
  }
  void OptBool(std::string_view k, const std::optional<bool>& v) {
    if (!v) return;
    Key(k);
    Bool(*v);
  }
  void OptInt(std::string_view k, const std::optional<int64_t>& v) {
    if (!v) return;
    Key(k);
    Int(*v);
  }
  void StrList(std::string_view k, const std::vector<std::string>& v) {
    if (v.empty()) return;
    Key(k);
    BeginArray();
    for (const auto& s : v) String(s);
    EndArray();
  }

  std::string Take() {
    if (pretty_) s_.push_back('\n');
    return std::move(s_);
  }

 private:
  void Sep() {
    if (!first_.empty()) {
      if (!first_.back()) s_.push_back(',');
      first_.back() = false;
    }
    Newline();
  }
  void Value() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) Sep();
  }
  void Close(char c) {
    bool empty = first_.back();
    first_.pop_back();
    if (!empty) Newline();
    s_.push_back(c);
  }
  void Newline() {
    if (!pretty_) return;
    if (first_.empty()) return;
    s_.push_back('\n');
    s_.append(first_.size() * 2, ' ');
  }

  std::string s_;
  std::vector<bool> first_;
  bool pretty_;
  bool after_key_ = false;
};

class Writer {
 public:
  explicit Writer(JsonStyle style) : o_(style) {}
  std::string Take() { return o_.Take(); }

  template <typename T>
  void Opt(std::string_view k, const std::optional<T>& v) {
    if (!v) return;
    o_.Key(k);
    Write(*v);
  }
  template <typename T>
  void List(std::string_view k, const std::vector<T>& v) {
    if (v.empty()) return;
    o_.Key(k);
    o_.BeginArray();
    for (const auto& item : v) Write(item);
    o_.EndArray();
  }

  void Write(const Extension& e) {
    o_.BeginObject();
    o_.Str("url", e.url);
    List("extension", e.extension);
    if (!e.value_type.empty()) {
      o_.Key("value" + e.value_type);
      o_.Raw(e.value_json);
    }
    o_.EndObject();
  }
  void Write(const Coding& c) {
    o_.BeginObject();
    o_.Str("system", c.system);
    o_.Str("version", c.version);
    o_.Str("code", c.code);
    o_.Str("display", c.display);
    o_.OptBool("userSelected", c.user_selected);
    o_.EndObject();
  }
  void Write(const CodeableConcept& c) {
    o_.BeginObject();
    List("coding", c.coding);
    o_.Str("text", c.text);
    o_.EndObject();
  }
  void Write(const Period& p) {
    o_.BeginObject();
    o_.Str("start", p.start);
    o_.Str("end", p.end);
    o_.EndObject();
  }
  void Write(const Identifier& i) {
    o_.BeginObject();
    o_.Str("use", i.use);
    Opt("type", i.type);
    o_.Str("system", i.system);
    o_.Str("value", i.value);
    Opt("period", i.period);
    o_.EndObject();
  }
  void Write(const Reference& r) {
    o_.BeginObject();
    o_.Str("reference", r.reference);
    o_.Str("type", r.type);
    Opt("identifier", r.identifier);
    o_.Str("display", r.display);
    o_.EndObject();
  }
  void Write(const CodeableReference& r) {
    o_.BeginObject();
    Opt("concept", r.concept_);
    Opt("reference", r.reference);
    o_.EndObject();
  }
  void Write(const Quantity& q) {
    o_.BeginObject();
    o_.Dec("value", q.value);
    o_.Str("comparator", q.comparator);
    o_.Str("unit", q.unit);
    o_.Str("system", q.system);
    o_.Str("code", q.code);
    o_.EndObject();
  }
  void Write(const Range& r) {
    o_.BeginObject();
    Opt("low", r.low);
    Opt("high", r.high);
    o_.EndObject();
  }
  void Write(const Ratio& r) {
    o_.BeginObject();
    Opt("numerator", r.numerator);
    Opt("denominator", r.denominator);
    o_.EndObject();
  }
  void Write(const HumanName& n) {
    o_.BeginObject();
    o_.Str("use", n.use);
    o_.Str("text", n.text);
    o_.Str("family", n.family);
    o_.StrList("given", n.given);
    o_.StrList("prefix", n.prefix);
    o_.StrList("suffix", n.suffix);
    Opt("period", n.period);
    o_.EndObject();
  }
  void Write(const Address& a) {
    o_.BeginObject();
    o_.Str("use", a.use);
    o_.Str("type", a.type);
    o_.Str("text", a.text);
    o_.StrList("line", a.line);
    o_.Str("city", a.city);
    o_.Str("district", a.district);
    o_.Str("state", a.state);
    o_.Str("postalCode", a.postal_code);
    o_.Str("country", a.country);
    Opt("period", a.period);
    o_.EndObject();
  }
  void Write(const ContactPoint& c) {
    o_.BeginObject();
    o_.Str("system", c.system);
    o_.Str("value", c.value);
    o_.Str("use", c.use);
    o_.OptInt("rank", c.rank);
    o_.EndObject();
  }
  void Write(const ExtendedContactDetail& c) {
    o_.BeginObject();
    Opt("purpose", c.purpose);
    List("name", c.name);
    List("telecom", c.telecom);
    Opt("address", c.address);
    Opt("organization", c.organization);
    Opt("period", c.period);
    o_.EndObject();
  }
  void Write(const Annotation& a) {
    o_.BeginObject();
    Opt("authorReference", a.author_reference);
    o_.Str("authorString", a.author_string);
    o_.Str("time", a.time);
    o_.Str("text", a.text);
    o_.EndObject();
  }
  void Write(const TimingRepeat& r) {
    o_.BeginObject();
    Opt("boundsDuration", r.bounds_duration);
    Opt("boundsRange", r.bounds_range);
    Opt("boundsPeriod", r.bounds_period);
    o_.OptInt("count", r.count);
    o_.OptInt("countMax", r.count_max);
    o_.Dec("duration", r.duration);
    o_.Dec("durationMax", r.duration_max);
    o_.Str("durationUnit", r.duration_unit);
    o_.OptInt("frequency", r.frequency);
    o_.OptInt("frequencyMax", r.frequency_max);
    o_.Dec("period", r.period);
    o_.Dec("periodMax", r.period_max);
    o_.Str("periodUnit", r.period_unit);
    o_.StrList("dayOfWeek", r.day_of_week);
    o_.StrList("timeOfDay", r.time_of_day);
    o_.StrList("when", r.when);
    o_.OptInt("offset", r.offset);
    o_.EndObject();
  }
  void Write(const Timing& t) {
    o_.BeginObject();
    o_.StrList("event", t.event);
    Opt("repeat", t.repeat);
    Opt("code", t.code);
    o_.EndObject();
  }
  void Write(const DoseAndRate& d) {
    o_.BeginObject();
    Opt("type", d.type);
    Opt("doseRange", d.dose_range);
    Opt("doseQuantity", d.dose_quantity);
    Opt("rateRatio", d.rate_ratio);
    Opt("rateRange", d.rate_range);
    Opt("rateQuantity", d.rate_quantity);
    o_.EndObject();
  }
  void Write(const Dosage& d) {
    o_.BeginObject();
    List("extension", d.extension);
    o_.OptInt("sequence", d.sequence);
    o_.Str("text", d.text);
    List("additionalInstruction", d.additional_instruction);
    o_.Str("patientInstruction", d.patient_instruction);
    Opt("timing", d.timing);
    o_.OptBool("asNeeded", d.as_needed);
    List("asNeededFor", d.as_needed_for);
    Opt("site", d.site);
    Opt("route", d.route);
    Opt("method", d.method);
    List("doseAndRate", d.dose_and_rate);
    List("maxDosePerPeriod", d.max_dose_per_period);
    Opt("maxDosePerAdministration", d.max_dose_per_administration);
    Opt("maxDosePerLifetime", d.max_dose_per_lifetime);
    o_.EndObject();
  }
  void Write(const Qualification& q) {
    o_.BeginObject();
    List("identifier", q.identifier);
    Opt("code", q.code);
    Opt("period", q.period);
    Opt("issuer", q.issuer);
    o_.EndObject();
  }
  void Write(const MedicationIngredient& i) {
    o_.BeginObject();
    o_.Key("item");
    Write(i.item);
    o_.OptBool("isActive", i.is_active);
    Opt("strengthRatio", i.strength_ratio);
    Opt("strengthCodeableConcept", i.strength_codeable_concept);
    Opt("strengthQuantity", i.strength_quantity);
    o_.EndObject();
  }
  void Write(const DispenseRequestInitialFill& f) {
    o_.BeginObject();
    Opt("quantity", f.quantity);
    Opt("duration", f.duration);
    o_.EndObject();
  }
  void Write(const DispenseRequest& d) {
    o_.BeginObject();
    Opt("initialFill", d.initial_fill);
    Opt("dispenseInterval", d.dispense_interval);
    Opt("validityPeriod", d.validity_period);
    o_.OptInt("numberOfRepeatsAllowed", d.number_of_repeats_allowed);
    Opt("quantity", d.quantity);
    Opt("expectedSupplyDuration", d.expected_supply_duration);
    Opt("dispenser", d.dispenser);
    List("dispenserInstruction", d.dispenser_instruction);
    o_.EndObject();
  }
  void Write(const Substitution& s) {
    o_.BeginObject();
    o_.OptBool("allowedBoolean", s.allowed_boolean);
    Opt("allowedCodeableConcept", s.allowed_codeable_concept);
    Opt("reason", s.reason);
    o_.EndObject();
  }
  void Write(const OperationOutcomeIssue& i) {
    o_.BeginObject();
    o_.Str("severity", i.severity);
    o_.Str("code", i.code);
    Opt("details", i.details);
    o_.Str("diagnostics", i.diagnostics);
    o_.StrList("location", i.location);
    o_.StrList("expression", i.expression);
    o_.EndObject();
  }
  void Write(const BundleEntry& e) {
    o_.BeginObject();
    o_.Str("fullUrl", e.full_url);
    Opt("resource", e.resource);
    if (e.request) {
      o_.Key("request");
      o_.BeginObject();
      o_.Str("method", e.request->method);
      o_.Str("url", e.request->url);
      o_.EndObject();
    }
    o_.EndObject();
  }

  void Base(std::string_view type, const ResourceBase& r) {
    o_.Key("resourceType");
    o_.String(type);
    o_.Str("id", r.id);
    o_.Str("language", r.language);
  }
  void BaseExtensions(const ResourceBase& r) {
    List("extension", r.extension);
    List("modifierExtension", r.modifier_extension);
  }

  void Write(const Resource& r) {
    std::visit([this](const auto& v) { WriteResource(v); }, r.value);
  }

  void WriteResource(const Patient& p) {
    o_.BeginObject();
    Base("Patient", p);
    BaseExtensions(p);
    List("identifier", p.identifier);
    o_.OptBool("active", p.active);
    List("name", p.name);
    List("telecom", p.telecom);
    o_.Str("gender", p.gender);
    o_.Str("birthDate", p.birth_date);
    List("address", p.address);
    o_.EndObject();
  }
  void WriteResource(const Practitioner& p) {
    o_.BeginObject();
    Base("Practitioner", p);
    BaseExtensions(p);
    List("identifier", p.identifier);
    o_.OptBool("active", p.active);
    List("name", p.name);
    List("telecom", p.telecom);
    o_.Str("gender", p.gender);
    o_.Str("birthDate", p.birth_date);
    List("address", p.address);
    List("qualification", p.qualification);
    o_.EndObject();
  }
  void WriteResource(const PractitionerRole& p) {
    o_.BeginObject();
    Base("PractitionerRole", p);
    BaseExtensions(p);
    List("identifier", p.identifier);
    o_.OptBool("active", p.active);
    Opt("period", p.period);
    Opt("practitioner", p.practitioner);
    Opt("organization", p.organization);
    List("location", p.location);
    List("code", p.code);
    List("specialty", p.specialty);
    List("contact", p.contact);
    o_.EndObject();
  }
  void WriteResource(const Organization& org) {
    o_.BeginObject();
    Base("Organization", org);
    BaseExtensions(org);
    List("identifier", org.identifier);
    o_.OptBool("active", org.active);
    List("type", org.type);
    o_.Str("name", org.name);
    o_.StrList("alias", org.alias);
    List("contact", org.contact);
    o_.EndObject();
  }
  void WriteResource(const Medication& m) {
    o_.BeginObject();
    Base("Medication", m);
    BaseExtensions(m);
    List("identifier", m.identifier);
    Opt("code", m.code);
    o_.Str("status", m.status);
    Opt("doseForm", m.dose_form);
    Opt("totalVolume", m.total_volume);
    List("ingredient", m.ingredient);
    o_.EndObject();
  }
  void WriteResource(const MedicationRequest& m) {
    o_.BeginObject();
    Base("MedicationRequest", m);
    List("contained", m.contained);
    BaseExtensions(m);
    List("identifier", m.identifier);
    List("basedOn", m.based_on);
    Opt("priorPrescription", m.prior_prescription);
    Opt("groupIdentifier", m.group_identifier);
    o_.Str("status", m.status);
    Opt("statusReason", m.status_reason);
    o_.Str("statusChanged", m.status_changed);
    o_.Str("intent", m.intent);
    List("category", m.category);
    o_.Str("priority", m.priority);
    o_.OptBool("doNotPerform", m.do_not_perform);
    if (m.medication.concept_ || m.medication.reference) {
      o_.Key("medication");
      Write(m.medication);
    }
    Opt("subject", m.subject);
    Opt("encounter", m.encounter);
    o_.Str("authoredOn", m.authored_on);
    Opt("requester", m.requester);
    Opt("recorder", m.recorder);
    List("reason", m.reason);
    Opt("courseOfTherapyType", m.course_of_therapy_type);
    List("note", m.note);
    o_.Str("renderedDosageInstruction", m.rendered_dosage_instruction);
    List("dosageInstruction", m.dosage_instruction);
    Opt("dispenseRequest", m.dispense_request);
    Opt("substitution", m.substitution);
    o_.EndObject();
  }
  void WriteResource(const MedicationDispense& m) {
    o_.BeginObject();
    Base("MedicationDispense", m);
    BaseExtensions(m);
    List("identifier", m.identifier);
    o_.Str("status", m.status);
    Opt("notPerformedReason", m.not_performed_reason);
    if (m.medication.concept_ || m.medication.reference) {
      o_.Key("medication");
      Write(m.medication);
    }
    Opt("subject", m.subject);
    if (!m.performer.empty()) {
      o_.Key("performer");
      o_.BeginArray();
      for (const Reference& actor : m.performer) {
        o_.BeginObject();
        o_.Key("actor");
        Write(actor);
        o_.EndObject();
      }
      o_.EndArray();
    }
    Opt("location", m.location);
    List("authorizingPrescription", m.authorizing_prescription);
    Opt("type", m.type);
    Opt("quantity", m.quantity);
    Opt("daysSupply", m.days_supply);
    o_.Str("whenPrepared", m.when_prepared);
    o_.Str("whenHandedOver", m.when_handed_over);
    List("note", m.note);
    List("dosageInstruction", m.dosage_instruction);
    o_.EndObject();
  }
  void WriteResource(const Task& t) {
    o_.BeginObject();
    Base("Task", t);
    BaseExtensions(t);
    List("identifier", t.identifier);
    o_.Str("status", t.status);
    Opt("statusReason", t.status_reason);
    o_.Str("intent", t.intent);
    Opt("code", t.code);
    o_.Str("description", t.description);
    Opt("focus", t.focus);
    o_.Str("authoredOn", t.authored_on);
    o_.Str("lastModified", t.last_modified);
    List("note", t.note);
    o_.EndObject();
  }
  void WriteResource(const OperationOutcome& oo) {
    o_.BeginObject();
    Base("OperationOutcome", oo);
    BaseExtensions(oo);
    List("issue", oo.issue);
    o_.EndObject();
  }
  void WriteResource(const MessageHeader& m) {
    o_.BeginObject();
    Base("MessageHeader", m);
    BaseExtensions(m);
    Opt("eventCoding", m.event_coding);
    o_.Str("eventCanonical", m.event_canonical);
    List("focus", m.focus);
    o_.EndObject();
  }
  void WriteResource(const Bundle& b) {
    o_.BeginObject();
    Base("Bundle", b);
    BaseExtensions(b);
    Opt("identifier", b.identifier);
    o_.Str("type", b.type);
    o_.Str("timestamp", b.timestamp);
    List("entry", b.entry);
    o_.EndObject();
  }

 private:
  Out o_;
};

}  // namespace

std::string WriteJson(const Resource& resource, JsonStyle style) {
  Writer w(style);
  w.Write(resource);
  return w.Take();
}

OperationOutcome ToOperationOutcome(const IssueList& issues) {
  OperationOutcome oo;
  for (const Issue& i : issues) {
    OperationOutcomeIssue& out = oo.issue.emplace_back();
    out.severity = std::string(SeverityName(i.severity));
    out.code = std::string(IssueCodeName(i.code));
    out.diagnostics = i.message;
    if (!i.path.empty()) out.expression.push_back(i.path);
  }
  if (oo.issue.empty()) {
    OperationOutcomeIssue& ok = oo.issue.emplace_back();
    ok.severity = "information";
    ok.code = "informational";
    ok.diagnostics = "no issues";
  }
  return oo;
}

std::string_view Resource::resource_type() const {
  static constexpr std::string_view kNames[] = {
      "MedicationRequest",  "Patient",      "Practitioner",
      "PractitionerRole",   "Organization", "Medication",
      "MedicationDispense", "Task",         "OperationOutcome",
      "MessageHeader",      "Bundle"};
  return kNames[value.index()];
}

const std::string& Resource::id() const {
  return std::visit([](const auto& v) -> const std::string& { return v.id; }, value);
}

}  // namespace rxflow::fhir
