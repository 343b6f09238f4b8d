// SPDX-License-Identifier: Apache-2.0
// File: rxflow/fhir/r5.h
//
// Typed HL7 FHIR R5 values for the resources an e-prescription touches: MedicationRequest,
// Patient, Practitioner, PractitionerRole, Organization, Medication, AllergyIntolerance,
// Observation, Coverage, Location, Bundle, and the resources RxFlow writes back
// (MedicationDispense, MedicationStatement, Task, OperationOutcome), with the datatypes they use.
//
// These are plain value types (copyable, no hidden state). Optional elements are
// `std::optional`, repeating elements `std::vector`, primitives are kept as the text that
// appeared on the wire (a FHIR decimal keeps its precision: "1.50" stays "1.50").
// Elements RxFlow does not model are not silently lost: the JSON reader reports each one
// as an issue with its path (see rxflow/fhir/json.h). Extensions are kept with their value
// as raw JSON; a modifier extension is an error (RxFlow cannot map what it does not
// understand).
#ifndef RXFLOW_FHIR_R5_H_
#define RXFLOW_FHIR_R5_H_

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace rxflow::fhir {

// An extension. `value_type` is the JSON key's suffix ("Code" for `valueCode`, "Coding",
// "String", ...); `value_json` is the value's JSON text, exactly as it appeared (minified
// for objects written by RxFlow). A complex extension has `extension` children instead.
struct Extension {
  std::string url;
  std::string value_type;
  std::string value_json;
  std::vector<Extension> extension;
};

struct Coding {
  std::string system;
  std::string version;
  std::string code;
  std::string display;
  std::optional<bool> user_selected;
};

struct CodeableConcept {
  std::vector<Coding> coding;
  std::string text;
};

struct Period {
  std::string start;  // FHIR dateTime
  std::string end;
};

struct Identifier {
  std::string use;
  std::optional<CodeableConcept> type;
  std::string system;
  std::string value;
  std::optional<Period> period;
};

struct Reference {
  std::string reference;  // "Patient/p1", "urn:uuid:...", "#contained-id"
  std::string type;
  std::optional<Identifier> identifier;
  std::string display;
};

struct CodeableReference {
  std::optional<CodeableConcept> concept_;  // FHIR `concept` (a C++20 keyword)
  std::optional<Reference> reference;
};

// Quantity, and its profiles Duration, Age, SimpleQuantity. `value` is a FHIR decimal as
// written ("1.50").
struct Quantity {
  std::string value;
  std::string comparator;
  std::string unit;
  std::string system;
  std::string code;
};

struct Range {
  std::optional<Quantity> low;
  std::optional<Quantity> high;
};

struct Ratio {
  std::optional<Quantity> numerator;
  std::optional<Quantity> denominator;
};

struct HumanName {
  std::string use;
  std::string text;
  std::string family;
  std::vector<std::string> given;
  std::vector<std::string> prefix;
  std::vector<std::string> suffix;
  std::optional<Period> period;
};

struct Address {
  std::string use;
  std::string type;
  std::string text;
  std::vector<std::string> line;
  std::string city;
  std::string district;
  std::string state;
  std::string postal_code;
  std::string country;
  std::optional<Period> period;
};

struct ContactPoint {
  std::string system;  // phone | fax | email | pager | url | sms | other
  std::string value;
  std::string use;  // home | work | temp | old | mobile
  std::optional<int64_t> rank;
  std::vector<Extension> extension;  // written first, like every element's extensions
};

// R5 ExtendedContactDetail (Organization.contact, PractitionerRole.contact).
struct ExtendedContactDetail {
  std::optional<CodeableConcept> purpose;
  std::vector<HumanName> name;
  std::vector<ContactPoint> telecom;
  std::optional<Address> address;
  std::optional<Reference> organization;
  std::optional<Period> period;
};

struct Annotation {
  std::string author_string;
  std::optional<Reference> author_reference;
  std::string time;
  std::string text;  // markdown
};

struct TimingRepeat {
  std::optional<Quantity> bounds_duration;
  std::optional<Range> bounds_range;
  std::optional<Period> bounds_period;
  std::optional<int64_t> count;
  std::optional<int64_t> count_max;
  std::string duration;  // decimal
  std::string duration_max;
  std::string duration_unit;  // s | min | h | d | wk | mo | a
  std::optional<int64_t> frequency;
  std::optional<int64_t> frequency_max;
  std::string period;  // decimal
  std::string period_max;
  std::string period_unit;
  std::vector<std::string> day_of_week;
  std::vector<std::string> time_of_day;
  std::vector<std::string> when;  // EventTiming codes: HS, WAKE, C, AC, PC, ...
  std::optional<int64_t> offset;
};

struct Timing {
  std::vector<std::string> event;
  std::optional<TimingRepeat> repeat;
  std::optional<CodeableConcept> code;  // BID, TID, QD, ...
};

struct DoseAndRate {
  std::optional<CodeableConcept> type;
  std::optional<Range> dose_range;
  std::optional<Quantity> dose_quantity;
  std::optional<Ratio> rate_ratio;
  std::optional<Range> rate_range;
  std::optional<Quantity> rate_quantity;
};

struct Dosage {
  std::vector<Extension> extension;
  std::optional<int64_t> sequence;
  std::string text;
  std::vector<CodeableConcept> additional_instruction;
  std::string patient_instruction;
  std::optional<Timing> timing;
  std::optional<bool> as_needed;
  std::vector<CodeableConcept> as_needed_for;
  std::optional<CodeableConcept> site;
  std::optional<CodeableConcept> route;
  std::optional<CodeableConcept> method;
  std::vector<DoseAndRate> dose_and_rate;
  std::vector<Ratio> max_dose_per_period;
  std::optional<Quantity> max_dose_per_administration;
  std::optional<Quantity> max_dose_per_lifetime;
};

// Fields every resource has (Resource + DomainResource). `contained` resources are kept
// in the owning MedicationRequest/Bundle entry and resolved by `#id`.
struct ResourceBase {
  std::string id;
  std::string language;
  std::vector<Extension> extension;
  std::vector<Extension> modifier_extension;
};

struct Patient : ResourceBase {
  std::vector<Identifier> identifier;
  std::optional<bool> active;
  std::vector<HumanName> name;
  std::vector<ContactPoint> telecom;
  std::string gender;      // male | female | other | unknown
  std::string birth_date;  // FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)
  std::vector<Address> address;
};

struct Qualification {
  std::vector<Identifier> identifier;
  std::optional<CodeableConcept> code;
  std::optional<Period> period;
  std::optional<Reference> issuer;
};

struct Practitioner : ResourceBase {
  std::vector<Identifier> identifier;
  std::optional<bool> active;
  std::vector<HumanName> name;
  std::vector<ContactPoint> telecom;
  std::string gender;
  std::string birth_date;
  std::vector<Address> address;
  std::vector<Qualification> qualification;
};

struct PractitionerRole : ResourceBase {
  std::vector<Identifier> identifier;
  std::optional<bool> active;
  std::optional<Period> period;
  std::optional<Reference> practitioner;
  std::optional<Reference> organization;
  std::vector<Reference> location;
  std::vector<CodeableConcept> code;
  std::vector<CodeableConcept> specialty;
  std::vector<ExtendedContactDetail> contact;
};

struct Organization : ResourceBase {
  std::vector<Identifier> identifier;
  std::optional<bool> active;
  std::vector<CodeableConcept> type;
  std::string name;
  std::vector<std::string> alias;
  std::vector<ExtendedContactDetail> contact;
};

struct MedicationIngredient {
  std::vector<Extension> extension;  // written first, like every element's extensions
  CodeableReference item;
  std::optional<bool> is_active;
  std::optional<Ratio> strength_ratio;
  std::optional<CodeableConcept> strength_codeable_concept;
  std::optional<Quantity> strength_quantity;
};

struct Medication : ResourceBase {
  std::vector<Identifier> identifier;
  std::optional<CodeableConcept> code;
  std::string status;
  std::optional<CodeableConcept> dose_form;
  std::optional<Quantity> total_volume;
  std::vector<MedicationIngredient> ingredient;
};

struct DispenseRequestInitialFill {
  std::optional<Quantity> quantity;
  std::optional<Quantity> duration;
};

struct DispenseRequest {
  std::optional<DispenseRequestInitialFill> initial_fill;
  std::optional<Quantity> dispense_interval;
  std::optional<Period> validity_period;
  std::optional<int64_t> number_of_repeats_allowed;
  std::optional<Quantity> quantity;
  std::optional<Quantity> expected_supply_duration;
  std::optional<Reference> dispenser;
  std::vector<Annotation> dispenser_instruction;
};

struct Substitution {
  std::optional<bool> allowed_boolean;
  std::optional<CodeableConcept> allowed_codeable_concept;
  std::optional<CodeableConcept> reason;
};

struct Resource;  // defined below; MedicationRequest may contain resources

struct MedicationRequest : ResourceBase {
  std::vector<Resource> contained;
  std::vector<Identifier> identifier;
  std::vector<Reference> based_on;
  std::optional<Reference> prior_prescription;
  std::optional<Identifier> group_identifier;
  std::string status;  // active | on-hold | ended | stopped | completed | cancelled | ...
  std::optional<CodeableConcept> status_reason;
  std::string status_changed;
  std::string intent;  // proposal | plan | order | original-order | ...
  std::vector<CodeableConcept> category;
  std::string priority;  // routine | urgent | asap | stat
  std::optional<bool> do_not_perform;
  CodeableReference medication;
  std::optional<Reference> subject;
  std::optional<Reference> encounter;
  std::string authored_on;  // FHIR dateTime
  std::optional<Reference> requester;
  std::optional<Reference> recorder;
  std::vector<CodeableReference> reason;
  std::optional<CodeableConcept> course_of_therapy_type;
  std::vector<Reference> insurance;  // Coverage | ClaimResponse
  std::vector<Annotation> note;
  std::string rendered_dosage_instruction;
  std::vector<Dosage> dosage_instruction;
  std::optional<DispenseRequest> dispense_request;
  std::optional<Substitution> substitution;
};

// Written by RxFlow for an RxFill (SCRIPT → FHIR).
struct MedicationDispense : ResourceBase {
  std::vector<Identifier> identifier;
  std::vector<Reference> authorizing_prescription;
  std::string status;  // completed | in-progress | declined | ...
  std::optional<CodeableReference> not_performed_reason;
  CodeableReference medication;
  std::optional<Reference> subject;
  std::vector<Reference> performer;     // performer.actor: the dispensing pharmacy
  std::optional<Reference> location;    // a Location (RxFlow sets none)
  std::optional<CodeableConcept> type;  // first fill, partial fill, ...
  std::optional<Quantity> quantity;
  std::optional<Quantity> days_supply;
  std::string when_prepared;
  std::string when_handed_over;
  std::vector<Annotation> note;
  std::vector<Dosage> dosage_instruction;
};

// Written by RxFlow for a medication history response's prescribed entries.
struct MedicationStatement : ResourceBase {
  std::vector<Identifier> identifier;
  std::string status;  // recorded | entered-in-error | draft
  CodeableReference medication;
  std::optional<Reference> subject;
  std::string effective_date_time;  // effectiveDateTime
  std::string date_asserted;
  std::vector<Reference> information_source;
  std::vector<CodeableReference> reason;
  std::vector<Annotation> note;
  std::vector<Dosage> dosage;
};

// AllergyIntolerance.participant: who took part in the record, and how (`function`, e.g.
// informant).
struct AllergyIntoleranceParticipant {
  std::optional<CodeableConcept> function;
  std::optional<Reference> actor;  // 1..1
};

// AllergyIntolerance.reaction (RxFlow keeps the manifestations and the severity).
struct AllergyIntoleranceReaction {
  std::vector<CodeableReference> manifestation;  // 1..*
  std::string severity;                          // mild | moderate | severe
};

// Read and written: one of the patient's allergies or intolerances (SCRIPT
// AllergyOrAdverseEvent). R5: `type` is a CodeableConcept; `participant` replaces R4's
// recorder and asserter.
struct AllergyIntolerance : ResourceBase {
  std::optional<CodeableConcept> clinical_status;      // active | inactive | resolved
  std::optional<CodeableConcept> verification_status;  // unconfirmed | presumed | confirmed | ...
  std::optional<CodeableConcept> type;                 // allergy | intolerance
  std::vector<std::string> category;                   // food | medication | environment | biologic
  std::optional<CodeableConcept> code;
  std::optional<Reference> patient;  // 1..1
  std::string onset_date_time;       // onsetDateTime
  std::vector<AllergyIntoleranceParticipant> participant;
  std::vector<AllergyIntoleranceReaction> reaction;
};

// Read and written: a measurement of the patient (SCRIPT Observation/Measurement, a vital
// sign).
struct Observation : ResourceBase {
  std::string status;  // registered | preliminary | final | amended | ...
  std::vector<CodeableConcept> category;
  CodeableConcept code;  // 1..1
  std::optional<Reference> subject;
  std::string effective_date_time;  // effectiveDateTime
  std::optional<Quantity> value_quantity;
  std::vector<Annotation> note;
};

// Task.input: a typed value (value[x]: valueString, valuePeriod or valueReference).
struct TaskInput {
  CodeableConcept type;
  std::string value_string;
  std::optional<Period> value_period;
  std::optional<Reference> value_reference;
};

// Written by RxFlow for a pharmacy's Status / Verify / CancelRxResponse and the other
// transactions that ask or answer (renewal, change, history, transfer, new prescription).
struct Task : ResourceBase {
  std::vector<Identifier> identifier;
  std::string status;  // requested | accepted | rejected | completed | ...
  std::string intent;  // order
  std::optional<CodeableConcept> code;
  std::optional<CodeableConcept> status_reason;
  std::string description;
  std::optional<Reference> focus;
  std::optional<Reference> for_;  // FHIR `for` (a C++ keyword): the patient
  std::string authored_on;
  std::string last_modified;
  std::optional<Reference> requester;
  std::optional<Reference> owner;
  std::vector<Reference> insurance;  // Coverage | ClaimResponse
  std::vector<Annotation> note;
  std::vector<TaskInput> input;
};

// Coverage.class (R5: its value is an Identifier): a group, plan or pharmacy benefit
// identifier, typed by http://terminology.hl7.org/CodeSystem/coverage-class (group, plan,
// rxbin, rxpcn, rxid, rxgroup, ...).
struct CoverageClass {
  CodeableConcept type;  // 1..1
  Identifier value;      // 1..1
  std::string name;
};

// Insurance a prescription is billed to: read from a Bundle (a SCRIPT BenefitsCoordination
// of the NewRx) and written for each BenefitsCoordination RxFlow receives. R5 elements RxFlow
// does not model (identifier, paymentBy, policyHolder, period, network, costToBeneficiary,
// subrogation, contract, insurancePlan) are reported by the reader as dropped.
struct Coverage : ResourceBase {
  std::string status;  // 1..1 active | cancelled | draft | entered-in-error
  std::string kind;    // 1..1 insurance | self-pay | other
  std::optional<CodeableConcept> type;
  std::optional<Reference> subscriber;  // Patient | RelatedPerson
  std::vector<Identifier> subscriber_id;
  std::optional<Reference> beneficiary;  // 1..1 in FHIR: the Patient
  std::string dependent;
  std::optional<CodeableConcept> relationship;  // subscriber-relationship
  std::optional<Reference> insurer;             // Organization
  std::vector<CoverageClass> class_;            // FHIR `class` (a C++ keyword)
  std::optional<int64_t> order;                 // positiveInt
};

// Read and written: where the patient resides or receives care (SCRIPT NewRx Facility), named
// by the MedicationRequest's RxFlow facility extension. R5 Location has one `address` and
// its phones in `contact` (ExtendedContactDetail), not R4's `telecom`. R5 elements RxFlow
// does not model (operationalStatus, description, form, position, managingOrganization,
// partOf, characteristic, hoursOfOperation, virtualService, endpoint) are reported by the
// reader as dropped.
struct Location : ResourceBase {
  std::vector<Identifier> identifier;
  std::string status;  // active | suspended | inactive
  std::string name;
  std::vector<std::string> alias;
  std::string mode;  // instance | kind
  std::vector<CodeableConcept> type;
  std::vector<ExtendedContactDetail> contact;
  std::optional<Address> address;
};

struct OperationOutcomeIssue {
  std::string severity;  // fatal | error | warning | information
  std::string code;      // HL7 issue-type
  std::optional<CodeableConcept> details;
  std::string diagnostics;
  std::vector<std::string> location;    // R5 (deprecated) XPath of the problem
  std::vector<std::string> expression;  // FHIRPath, or the JSON path RxFlow reports
};

struct OperationOutcome : ResourceBase {
  std::vector<OperationOutcomeIssue> issue;
};

struct MessageHeader : ResourceBase {
  std::optional<Coding> event_coding;
  std::string event_canonical;
  std::vector<Reference> focus;
};

struct BundleEntryRequest {
  std::string method;
  std::string url;
};

struct BundleEntry;

struct Bundle : ResourceBase {
  std::optional<Identifier> identifier;
  std::string type;  // collection | transaction | message | document | ...
  std::string timestamp;
  std::vector<BundleEntry> entry;
};

// Any resource RxFlow reads or writes.
struct Resource {
  std::variant<MedicationRequest, Patient, Practitioner, PractitionerRole, Organization, Medication,
               MedicationDispense, Task, OperationOutcome, MessageHeader, Bundle,
               MedicationStatement, AllergyIntolerance, Observation, Coverage, Location>
      value;

  // "MedicationRequest", "Patient", ...
  std::string_view resource_type() const;
  const std::string& id() const;
  template <typename T>
  const T* get() const {
    return std::get_if<T>(&value);
  }
  template <typename T>
  T* get() {
    return std::get_if<T>(&value);
  }
};

struct BundleEntry {
  std::string full_url;
  std::optional<Resource> resource;
  std::optional<BundleEntryRequest> request;
};

}  // namespace rxflow::fhir

#endif  // RXFLOW_FHIR_R5_H_
