// SPDX-License-Identifier: Apache-2.0
// Private: the one description of the FHIR R5 types of rxflow/fhir/r5.h, walked by both the
// JSON reader (json_reader.cc: field names are looked up in it) and the JSON writer
// (json_writer.cc: it emits the elements in its order).
//
// `Fhir<T>::kFields` lists the elements of T in the order of the FHIR specification: the
// JSON name, the struct member, the primitive format, flags. Cardinality and kind come from
// the member's C++ type: std::string (0..1 primitive), std::vector<std::string> (0..*
// primitive), std::optional<bool | int64_t>, std::optional<T> (0..1 datatype),
// std::vector<T> (0..*), T (1..1), Resource (a resource inside a resource). What only one
// side does stays with it: the reader's hooks (R4 names, elements RxFlow drops, the value[x]
// of Extension, required elements), the writer's Extension value and resourceType.
#ifndef RXFLOW_SRC_FHIR_FIELDS_H_
#define RXFLOW_SRC_FHIR_FIELDS_H_

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <tuple>
#include <type_traits>

#include "rxflow/fhir/r5.h"

namespace rxflow::fhir::fields {

// The FHIR type of a primitive element. kString for elements that are not primitives.
enum class Fmt : uint8_t {
  kString,
  kMarkdown,
  kCode,
  kId,
  kUri,
  kDate,
  kDateTime,
  kInstant,
  kTime,
  kDecimal,  // kept as its JSON text ("1.50")
  kInteger,
  kPositiveInt,
  kUnsignedInt,
};
using enum Fmt;

enum Flag : uint8_t {
  kWriteEmpty = 1,  // 1..1, written even when empty (MedicationIngredient.item)
  kModifier = 2,    // a resource's modifierExtension: read, then refused
  kActor = 4,       // MedicationDispense.performer: each Reference written as {"actor": ...}
};

template <typename M>
struct Field {
  std::string_view name;
  M member;  // pointer to member
  Fmt fmt;
  uint8_t flags;
};

template <typename C, typename M>
constexpr Field<M C::*> F(std::string_view name, M C::*member, Fmt fmt = kString,
                          uint8_t flags = 0) {
  return {name, member, fmt, flags};
}

template <typename T>
struct Fhir;  // the table of T: kFields, and kName for a resource

// Every resource starts with id, language, (contained,) extension, modifierExtension.
inline constexpr auto kResourceHead =
    std::tuple{F("id", &ResourceBase::id, kId), F("language", &ResourceBase::language, kCode)};
inline constexpr auto kResourceExtensions =
    std::tuple{F("extension", &ResourceBase::extension),
               F("modifierExtension", &ResourceBase::modifier_extension, kString, kModifier)};

template <typename... Fs>
constexpr auto ResourceFields(Fs... fs) {
  return std::tuple_cat(kResourceHead, kResourceExtensions, std::tuple{fs...});
}

// --- datatypes and backbone elements ----------------------------------------------------

template <>
struct Fhir<Extension> {  // value[x]: a hook on each side
  static constexpr auto kFields =
      std::tuple{F("url", &Extension::url, kUri), F("extension", &Extension::extension)};
};
template <>
struct Fhir<Coding> {
  static constexpr auto kFields =
      std::tuple{F("system", &Coding::system, kUri), F("version", &Coding::version),
                 F("code", &Coding::code, kCode), F("display", &Coding::display),
                 F("userSelected", &Coding::user_selected)};
};
template <>
struct Fhir<CodeableConcept> {
  static constexpr auto kFields =
      std::tuple{F("coding", &CodeableConcept::coding), F("text", &CodeableConcept::text)};
};
template <>
struct Fhir<Period> {
  static constexpr auto kFields =
      std::tuple{F("start", &Period::start, kDateTime), F("end", &Period::end, kDateTime)};
};
template <>
struct Fhir<Identifier> {
  static constexpr auto kFields =
      std::tuple{F("use", &Identifier::use, kCode), F("type", &Identifier::type),
                 F("system", &Identifier::system, kUri), F("value", &Identifier::value),
                 F("period", &Identifier::period)};
};
template <>
struct Fhir<Reference> {
  static constexpr auto kFields =
      std::tuple{F("reference", &Reference::reference), F("type", &Reference::type, kUri),
                 F("identifier", &Reference::identifier), F("display", &Reference::display)};
};
template <>
struct Fhir<CodeableReference> {
  static constexpr auto kFields = std::tuple{F("concept", &CodeableReference::concept_),
                                             F("reference", &CodeableReference::reference)};
};
template <>
struct Fhir<Quantity> {
  static constexpr auto kFields =
      std::tuple{F("value", &Quantity::value, kDecimal),
                 F("comparator", &Quantity::comparator, kCode), F("unit", &Quantity::unit),
                 F("system", &Quantity::system, kUri), F("code", &Quantity::code, kCode)};
};
template <>
struct Fhir<Range> {
  static constexpr auto kFields = std::tuple{F("low", &Range::low), F("high", &Range::high)};
};
template <>
struct Fhir<Ratio> {
  static constexpr auto kFields =
      std::tuple{F("numerator", &Ratio::numerator), F("denominator", &Ratio::denominator)};
};
template <>
struct Fhir<HumanName> {
  static constexpr auto kFields =
      std::tuple{F("use", &HumanName::use, kCode), F("text", &HumanName::text),
                 F("family", &HumanName::family),  F("given", &HumanName::given),
                 F("prefix", &HumanName::prefix),  F("suffix", &HumanName::suffix),
                 F("period", &HumanName::period)};
};
template <>
struct Fhir<Address> {
  static constexpr auto kFields =
      std::tuple{F("use", &Address::use, kCode),  F("type", &Address::type, kCode),
                 F("text", &Address::text),       F("line", &Address::line),
                 F("city", &Address::city),       F("district", &Address::district),
                 F("state", &Address::state),     F("postalCode", &Address::postal_code),
                 F("country", &Address::country), F("period", &Address::period)};
};
template <>
struct Fhir<ContactPoint> {
  static constexpr auto kFields =
      std::tuple{F("extension", &ContactPoint::extension),
                 F("system", &ContactPoint::system, kCode), F("value", &ContactPoint::value),
                 F("use", &ContactPoint::use, kCode), F("rank", &ContactPoint::rank, kPositiveInt)};
};
template <>
struct Fhir<ExtendedContactDetail> {
  using E = ExtendedContactDetail;
  static constexpr auto kFields =
      std::tuple{F("purpose", &E::purpose),           F("name", &E::name),
                 F("telecom", &E::telecom),           F("address", &E::address),
                 F("organization", &E::organization), F("period", &E::period)};
};
template <>
struct Fhir<Annotation> {
  static constexpr auto kFields =
      std::tuple{F("authorReference", &Annotation::author_reference),
                 F("authorString", &Annotation::author_string),
                 F("time", &Annotation::time, kDateTime), F("text", &Annotation::text, kMarkdown)};
};
template <>
struct Fhir<TimingRepeat> {
  using R = TimingRepeat;
  static constexpr auto kFields = std::tuple{F("boundsDuration", &R::bounds_duration),
                                             F("boundsRange", &R::bounds_range),
                                             F("boundsPeriod", &R::bounds_period),
                                             F("count", &R::count, kPositiveInt),
                                             F("countMax", &R::count_max, kPositiveInt),
                                             F("duration", &R::duration, kDecimal),
                                             F("durationMax", &R::duration_max, kDecimal),
                                             F("durationUnit", &R::duration_unit, kCode),
                                             F("frequency", &R::frequency, kPositiveInt),
                                             F("frequencyMax", &R::frequency_max, kPositiveInt),
                                             F("period", &R::period, kDecimal),
                                             F("periodMax", &R::period_max, kDecimal),
                                             F("periodUnit", &R::period_unit, kCode),
                                             F("dayOfWeek", &R::day_of_week, kCode),
                                             F("timeOfDay", &R::time_of_day, kTime),
                                             F("when", &R::when, kCode),
                                             F("offset", &R::offset, kUnsignedInt)};
};
template <>
struct Fhir<Timing> {
  static constexpr auto kFields =
      std::tuple{F("event", &Timing::event, kDateTime), F("repeat", &Timing::repeat),
                 F("code", &Timing::code)};
};
template <>
struct Fhir<DoseAndRate> {
  using D = DoseAndRate;
  static constexpr auto kFields = std::tuple{F("type", &D::type),
                                             F("doseRange", &D::dose_range),
                                             F("doseQuantity", &D::dose_quantity),
                                             F("rateRatio", &D::rate_ratio),
                                             F("rateRange", &D::rate_range),
                                             F("rateQuantity", &D::rate_quantity)};
};
template <>
struct Fhir<Dosage> {
  using D = Dosage;
  static constexpr auto kFields =
      std::tuple{F("extension", &D::extension),
                 F("sequence", &D::sequence, kInteger),
                 F("text", &D::text),
                 F("additionalInstruction", &D::additional_instruction),
                 F("patientInstruction", &D::patient_instruction),
                 F("timing", &D::timing),
                 F("asNeeded", &D::as_needed),
                 F("asNeededFor", &D::as_needed_for),
                 F("site", &D::site),
                 F("route", &D::route),
                 F("method", &D::method),
                 F("doseAndRate", &D::dose_and_rate),
                 F("maxDosePerPeriod", &D::max_dose_per_period),
                 F("maxDosePerAdministration", &D::max_dose_per_administration),
                 F("maxDosePerLifetime", &D::max_dose_per_lifetime)};
};
template <>
struct Fhir<Qualification> {
  using Q = Qualification;
  static constexpr auto kFields = std::tuple{F("identifier", &Q::identifier), F("code", &Q::code),
                                             F("period", &Q::period), F("issuer", &Q::issuer)};
};
template <>
struct Fhir<MedicationIngredient> {
  using I = MedicationIngredient;
  static constexpr auto kFields =
      std::tuple{F("extension", &I::extension),
                 F("item", &I::item, kString, kWriteEmpty),
                 F("isActive", &I::is_active),
                 F("strengthRatio", &I::strength_ratio),
                 F("strengthCodeableConcept", &I::strength_codeable_concept),
                 F("strengthQuantity", &I::strength_quantity)};
};
template <>
struct Fhir<DispenseRequestInitialFill> {
  using I = DispenseRequestInitialFill;
  static constexpr auto kFields =
      std::tuple{F("quantity", &I::quantity), F("duration", &I::duration)};
};
template <>
struct Fhir<DispenseRequest> {
  using D = DispenseRequest;
  static constexpr auto kFields =
      std::tuple{F("initialFill", &D::initial_fill),
                 F("dispenseInterval", &D::dispense_interval),
                 F("validityPeriod", &D::validity_period),
                 F("numberOfRepeatsAllowed", &D::number_of_repeats_allowed, kUnsignedInt),
                 F("quantity", &D::quantity),
                 F("expectedSupplyDuration", &D::expected_supply_duration),
                 F("dispenser", &D::dispenser),
                 F("dispenserInstruction", &D::dispenser_instruction)};
};
template <>
struct Fhir<Substitution> {
  using S = Substitution;
  static constexpr auto kFields = std::tuple{
      F("allowedBoolean", &S::allowed_boolean),
      F("allowedCodeableConcept", &S::allowed_codeable_concept), F("reason", &S::reason)};
};
template <>
struct Fhir<OperationOutcomeIssue> {
  using I = OperationOutcomeIssue;
  static constexpr auto kFields =
      std::tuple{F("severity", &I::severity, kCode), F("code", &I::code, kCode),
                 F("details", &I::details),          F("diagnostics", &I::diagnostics),
                 F("location", &I::location),        F("expression", &I::expression)};
};
template <>
struct Fhir<AllergyIntoleranceParticipant> {
  using P = AllergyIntoleranceParticipant;
  static constexpr auto kFields = std::tuple{F("function", &P::function), F("actor", &P::actor)};
};
template <>
struct Fhir<AllergyIntoleranceReaction> {  // the reader drops the rest (json_reader.cc)
  using R = AllergyIntoleranceReaction;
  static constexpr auto kFields =
      std::tuple{F("manifestation", &R::manifestation), F("severity", &R::severity, kCode)};
};
template <>
struct Fhir<TaskInput> {
  using I = TaskInput;
  static constexpr auto kFields =
      std::tuple{F("type", &I::type), F("valueString", &I::value_string),
                 F("valuePeriod", &I::value_period), F("valueReference", &I::value_reference)};
};
template <>
struct Fhir<CoverageClass> {
  static constexpr auto kFields =
      std::tuple{F("type", &CoverageClass::type), F("value", &CoverageClass::value),
                 F("name", &CoverageClass::name)};
};
template <>
struct Fhir<BundleEntryRequest> {
  static constexpr auto kFields = std::tuple{F("method", &BundleEntryRequest::method, kCode),
                                             F("url", &BundleEntryRequest::url, kUri)};
};
template <>
struct Fhir<BundleEntry> {
  static constexpr auto kFields =
      std::tuple{F("fullUrl", &BundleEntry::full_url, kUri), F("resource", &BundleEntry::resource),
                 F("request", &BundleEntry::request)};
};

// --- resources ------------------------------------------------------------------------------

template <>
struct Fhir<Patient> {
  using P = Patient;
  static constexpr std::string_view kName = "Patient";
  static constexpr auto kFields =
      ResourceFields(F("identifier", &P::identifier), F("active", &P::active), F("name", &P::name),
                     F("telecom", &P::telecom), F("gender", &P::gender, kCode),
                     F("birthDate", &P::birth_date, kDate), F("address", &P::address));
};
template <>
struct Fhir<Practitioner> {
  using P = Practitioner;
  static constexpr std::string_view kName = "Practitioner";
  static constexpr auto kFields =
      ResourceFields(F("identifier", &P::identifier), F("active", &P::active), F("name", &P::name),
                     F("telecom", &P::telecom), F("gender", &P::gender, kCode),
                     F("birthDate", &P::birth_date, kDate), F("address", &P::address),
                     F("qualification", &P::qualification));
};
template <>
struct Fhir<PractitionerRole> {
  using P = PractitionerRole;
  static constexpr std::string_view kName = "PractitionerRole";
  static constexpr auto kFields =
      ResourceFields(F("identifier", &P::identifier), F("active", &P::active),
                     F("period", &P::period), F("practitioner", &P::practitioner),
                     F("organization", &P::organization), F("location", &P::location),
                     F("code", &P::code), F("specialty", &P::specialty), F("contact", &P::contact));
};
template <>
struct Fhir<Organization> {
  using O = Organization;
  static constexpr std::string_view kName = "Organization";
  static constexpr auto kFields =
      ResourceFields(F("identifier", &O::identifier), F("active", &O::active), F("type", &O::type),
                     F("name", &O::name), F("alias", &O::alias), F("contact", &O::contact));
};
template <>
struct Fhir<Medication> {
  using M = Medication;
  static constexpr std::string_view kName = "Medication";
  static constexpr auto kFields =
      ResourceFields(F("identifier", &M::identifier), F("code", &M::code),
                     F("status", &M::status, kCode), F("doseForm", &M::dose_form),
                     F("totalVolume", &M::total_volume), F("ingredient", &M::ingredient));
};
template <>
struct Fhir<MedicationRequest> {
  using M = MedicationRequest;
  static constexpr std::string_view kName = "MedicationRequest";
  static constexpr auto kFields = std::tuple_cat(
      kResourceHead, std::tuple{F("contained", &M::contained)}, kResourceExtensions,
      std::tuple{F("identifier", &M::identifier),
                 F("basedOn", &M::based_on),
                 F("priorPrescription", &M::prior_prescription),
                 F("groupIdentifier", &M::group_identifier),
                 F("status", &M::status, kCode),
                 F("statusReason", &M::status_reason),
                 F("statusChanged", &M::status_changed, kDateTime),
                 F("intent", &M::intent, kCode),
                 F("category", &M::category),
                 F("priority", &M::priority, kCode),
                 F("doNotPerform", &M::do_not_perform),
                 F("medication", &M::medication),
                 F("subject", &M::subject),
                 F("encounter", &M::encounter),
                 F("authoredOn", &M::authored_on, kDateTime),
                 F("requester", &M::requester),
                 F("recorder", &M::recorder),
                 F("reason", &M::reason),
                 F("courseOfTherapyType", &M::course_of_therapy_type),
                 F("insurance", &M::insurance),
                 F("note", &M::note),
                 F("renderedDosageInstruction", &M::rendered_dosage_instruction, kMarkdown),
                 F("dosageInstruction", &M::dosage_instruction),
                 F("dispenseRequest", &M::dispense_request),
                 F("substitution", &M::substitution)});
};
template <>
struct Fhir<MedicationDispense> {
  using M = MedicationDispense;
  static constexpr std::string_view kName = "MedicationDispense";
  static constexpr auto kFields = ResourceFields(
      F("identifier", &M::identifier), F("status", &M::status, kCode),
      F("notPerformedReason", &M::not_performed_reason), F("medication", &M::medication),
      F("subject", &M::subject), F("performer", &M::performer, kString, kActor),
      F("location", &M::location), F("authorizingPrescription", &M::authorizing_prescription),
      F("type", &M::type), F("quantity", &M::quantity), F("daysSupply", &M::days_supply),
      F("whenPrepared", &M::when_prepared, kDateTime),
      F("whenHandedOver", &M::when_handed_over, kDateTime), F("note", &M::note),
      F("dosageInstruction", &M::dosage_instruction));
};
template <>
struct Fhir<MedicationStatement> {
  using M = MedicationStatement;
  static constexpr std::string_view kName = "MedicationStatement";
  static constexpr auto kFields =
      ResourceFields(F("identifier", &M::identifier), F("status", &M::status, kCode),
                     F("medication", &M::medication), F("subject", &M::subject),
                     F("effectiveDateTime", &M::effective_date_time, kDateTime),
                     F("dateAsserted", &M::date_asserted, kDateTime),
                     F("informationSource", &M::information_source), F("reason", &M::reason),
                     F("note", &M::note), F("dosage", &M::dosage));
};
template <>
struct Fhir<AllergyIntolerance> {
  using A = AllergyIntolerance;
  static constexpr std::string_view kName = "AllergyIntolerance";
  static constexpr auto kFields = ResourceFields(
      F("clinicalStatus", &A::clinical_status), F("verificationStatus", &A::verification_status),
      F("type", &A::type), F("category", &A::category, kCode), F("code", &A::code),
      F("patient", &A::patient), F("onsetDateTime", &A::onset_date_time, kDateTime),
      F("participant", &A::participant), F("reaction", &A::reaction));
};
template <>
struct Fhir<Observation> {
  using O = Observation;
  static constexpr std::string_view kName = "Observation";
  static constexpr auto kFields = ResourceFields(
      F("status", &O::status, kCode), F("category", &O::category), F("code", &O::code),
      F("subject", &O::subject), F("effectiveDateTime", &O::effective_date_time, kDateTime),
      F("valueQuantity", &O::value_quantity), F("note", &O::note));
};
template <>
struct Fhir<Task> {
  using T = Task;
  static constexpr std::string_view kName = "Task";
  static constexpr auto kFields = ResourceFields(
      F("identifier", &T::identifier), F("status", &T::status, kCode),
      F("statusReason", &T::status_reason), F("intent", &T::intent, kCode), F("code", &T::code),
      F("description", &T::description), F("focus", &T::focus), F("for", &T::for_),
      F("authoredOn", &T::authored_on, kDateTime), F("lastModified", &T::last_modified, kDateTime),
      F("requester", &T::requester), F("owner", &T::owner), F("insurance", &T::insurance),
      F("note", &T::note), F("input", &T::input));
};
template <>
struct Fhir<Coverage> {
  using C = Coverage;
  static constexpr std::string_view kName = "Coverage";
  static constexpr auto kFields = ResourceFields(
      F("status", &C::status, kCode), F("kind", &C::kind, kCode), F("type", &C::type),
      F("subscriber", &C::subscriber), F("subscriberId", &C::subscriber_id),
      F("beneficiary", &C::beneficiary), F("dependent", &C::dependent),
      F("relationship", &C::relationship), F("insurer", &C::insurer), F("class", &C::class_),
      F("order", &C::order, kPositiveInt));
};
template <>
struct Fhir<Location> {
  using L = Location;
  static constexpr std::string_view kName = "Location";
  static constexpr auto kFields =
      ResourceFields(F("identifier", &L::identifier), F("status", &L::status, kCode),
                     F("name", &L::name), F("alias", &L::alias), F("mode", &L::mode, kCode),
                     F("type", &L::type), F("contact", &L::contact), F("address", &L::address));
};
template <>
struct Fhir<OperationOutcome> {
  static constexpr std::string_view kName = "OperationOutcome";
  static constexpr auto kFields = ResourceFields(F("issue", &OperationOutcome::issue));
};
template <>
struct Fhir<MessageHeader> {
  using M = MessageHeader;
  static constexpr std::string_view kName = "MessageHeader";
  static constexpr auto kFields =
      ResourceFields(F("eventCoding", &M::event_coding),
                     F("eventCanonical", &M::event_canonical, kUri), F("focus", &M::focus));
};
template <>
struct Fhir<Bundle> {
  using B = Bundle;
  static constexpr std::string_view kName = "Bundle";
  static constexpr auto kFields =
      ResourceFields(F("identifier", &B::identifier), F("type", &B::type, kCode),
                     F("timestamp", &B::timestamp, kInstant), F("entry", &B::entry));
};

// --- lookup by name ------------------------------------------------------------------------

template <typename T>
inline constexpr size_t kCount = std::tuple_size_v<std::remove_cv_t<decltype(Fhir<T>::kFields)>>;

struct NameEntry {
  std::string_view name;
  uint8_t index;  // in Fhir<T>::kFields
};

// Ordered by length first: most probes of a lookup are decided by the length alone.
constexpr bool NameLess(std::string_view a, std::string_view b) {
  return a.size() != b.size() ? a.size() < b.size() : a < b;
}

template <typename T>
constexpr std::array<NameEntry, kCount<T>> SortedNames() {
  std::array<NameEntry, kCount<T>> out{};
  uint8_t i = 0;
  std::apply(
      [&](const auto&... f) {
        ((out[i] = NameEntry{f.name, i}, ++i), ...);
      },
      Fhir<T>::kFields);
  std::sort(out.begin(), out.end(),
            [](const NameEntry& a, const NameEntry& b) { return NameLess(a.name, b.name); });
  return out;
}

template <typename T>
inline constexpr std::array<NameEntry, kCount<T>> kSortedNames = SortedNames<T>();

template <typename T>
constexpr bool NamesAreDistinct() {
  const auto& names = kSortedNames<T>;
  for (size_t i = 1; i < names.size(); ++i) {
    if (names[i - 1].name == names[i].name) return false;
  }
  return true;
}

// The index in Fhir<T>::kFields of the element named `key`, or -1.
template <typename T>
constexpr int FindField(std::string_view key) {
  static_assert(NamesAreDistinct<T>(), "a field table names an element twice");
  const auto& names = kSortedNames<T>;
  auto it =
      std::lower_bound(names.begin(), names.end(), key,
                       [](const NameEntry& e, std::string_view k) { return NameLess(e.name, k); });
  return it != names.end() && it->name == key ? it->index : -1;
}

}  // namespace rxflow::fhir::fields

#endif  // RXFLOW_SRC_FHIR_FIELDS_H_
