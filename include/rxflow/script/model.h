// SPDX-License-Identifier: Apache-2.0
// File: rxflow/script/model.h
//
// Typed NCPDP SCRIPT messages: the envelope (Message, Header) and the transactions NewRx,
// Status, Error, Verify, CancelRx, CancelRxResponse, RxRenewalRequest, RxRenewalResponse,
// RxChangeRequest, RxChangeResponse, RxFill, RxFillIndicatorChange, RxHistoryRequest,
// RxHistoryResponse, RxTransferRequest, RxTransferResponse, RxTransferConfirm, NewRxRequest
// and NewRxResponseDenied.
//
// The model follows SCRIPT 2017071's element names; the 2023011 profile's differences
// (wrappers, renames) are applied by the XML codec from per-version tables, so one model
// serves both versions. Every text is kept as written; an empty string or an absent
// optional means "not sent". Elements RxFlow does not model are reported by the reader as
// warnings with their XML path, never dropped silently.
#ifndef RXFLOW_SCRIPT_MODEL_H_
#define RXFLOW_SCRIPT_MODEL_H_

#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace rxflow::script {

// Name (NameType): LastName and FirstName are required by the schema.
struct Name {
  std::string last_name;
  std::string first_name;
  std::string middle_name;
  std::string suffix;
  std::string prefix;
};

// Address (AddressType / MandatoryAddressType).
struct Address {
  std::string address_line1;
  std::string address_line2;
  std::string city;
  std::string state_province;
  std::string postal_code;
  std::string country_code;
};

struct Phone {
  std::string number;  // digits only, at most 10
  std::string extension;
  std::string supports_sms;  // Y | N
};

struct CommunicationNumbers {
  std::optional<Phone> primary_telephone;
  std::vector<Phone> beeper;
  std::vector<std::string> electronic_mail;
  std::vector<Phone> fax;
  std::vector<Phone> home_telephone;
  std::vector<Phone> work_telephone;
  std::vector<Phone> other_telephone;
  std::string direct_address;
};

// DateType: exactly one of Date (YYYY-MM-DD) or DateTime (UTC dateTime).
struct DateValue {
  std::string date;
  std::string date_time;
  bool empty() const { return date.empty() && date_time.empty(); }
};

// The union of the identification blocks (PatientID, PharmacyID, NonVeterinarianID, ...).
// The writer emits, in the schema's order for the block, the fields that block allows.
struct Identification {
  std::string ncpdp_id;
  std::string state_license_number;
  std::string medicare_number;
  std::string medicaid_number;
  std::string upin;
  std::string facility_id;  // FacilityID (a Facility's Identification)
  std::string dea_number;
  std::string hin;
  std::string social_security;
  std::string npi;
  std::string certificate_to_prescribe;
  std::string data2000_waiver_id;
  std::string mutually_defined;
  std::string rems_healthcare_provider_enrollment_id;
  std::string state_control_substance_number;
  std::string medical_record_identification_number_ehr;
  std::string patient_account_number;
  std::string rems_patient_id;
  std::string rems_healthcare_setting_enrollment_id;  // FacilityID only
  bool empty() const;
};

struct Patient {
  bool human = true;  // HumanPatient (false: NonHumanPatient, read only)
  Identification identification;
  Name name;
  std::string gender;  // M | F | U
  DateValue date_of_birth;
  std::optional<Address> address;
  std::optional<CommunicationNumbers> communication_numbers;
  std::string language_name_code;
};

// Facility (NewRx): the long-term-care or other facility where the patient resides or
// receives care. Identification (FacilityID: NCPDPID, StateLicenseNumber, MedicareNumber,
// MedicaidNumber, UPIN, FacilityID, DEANumber, HIN, NPI, MutuallyDefined,
// REMSHealthcareSettingEnrollmentID) is required by the schema.
struct Facility {
  Identification identification;
  std::string facility_name;
  std::optional<Address> address;
  std::optional<CommunicationNumbers> communication_numbers;
};

struct Pharmacy {
  Identification identification;  // NCPDPID and NPI
  std::string specialty;
  std::string business_name;
  std::optional<Address> address;
  std::optional<CommunicationNumbers> communication_numbers;
  // The RxTransfer* transactions' PharmacyTransfer only: TRANSFER TO PHARMACY |
  // TRANSFER FROM PHARMACY.
  std::string transfer_type;
};

// Pharmacist (RxTransferRequest, RxTransferResponse, RxTransferConfirm).
struct Pharmacist {
  Identification identification;  // PharmacistID: NPI, StateLicenseNumber, ...
  Name name;
  std::string business_name;
  std::optional<Address> address;
  std::optional<CommunicationNumbers> communication_numbers;
};

struct PracticeLocation {
  Identification identification;  // a FacilityID
  std::string business_name;
};

struct Prescriber {
  bool veterinarian = false;
  Identification identification;
  std::string specialty;  // NUCC taxonomy code
  std::optional<PracticeLocation> practice_location;
  Name name;
  std::optional<Address> address;
  std::optional<Name> prescriber_agent;
  std::optional<CommunicationNumbers> communication_numbers;
  std::string prescriber_place_of_service;
};

struct CodeQualifier {
  std::string code;
  std::string qualifier;
};

struct Strength {
  std::string strength_value;
  std::string strength_form_code;             // NCI
  std::string strength_unit_of_measure_code;  // NCI
};

struct DrugCoded {
  std::optional<CodeQualifier> product_code;  // ND (NDC), UP, ...
  std::optional<Strength> strength;
  std::optional<CodeQualifier> drug_db_code;  // SCD / SBD / GPK / BPK (RxNorm), ...
  std::string dea_schedule_code;              // NCI C48672..C48679, C38046
};

struct Quantity {
  std::string value;
  std::string code_list_qualifier = "38";
  std::string unit_of_measure_code;  // NCI
};

// CompoundIngredient (IngredientLotNotUsed): one ingredient of a compound.
struct CompoundIngredient {
  std::string item_description;              // CompoundIngredientItemDescription (required)
  std::optional<CodeQualifier> item_number;  // ItemNumber: ND, UP, RT, NH, UN, SCD, SBD, GPK,
                                             // BPK, GMP, GPI, GSP, DI
  std::optional<Strength> strength;
  std::string dea_schedule_code;  // DEASchedule/Code (NCI)
};

// CompoundIngredientsLotNotUsed: an ingredient (optional in the schema) and how much of it
// goes into the compound (CompoundQuantity: Value up to 14 characters). DrugUseEvaluation
// is not modelled.
struct CompoundIngredientLot {
  std::optional<CompoundIngredient> compound_ingredient;
  Quantity quantity;
};

// CompoundInformation (CompoundLotNotUsed): the compound's final dose form and its 1 to 25
// ingredients.
struct CompoundInformation {
  std::string final_compound_pharmaceutical_dosage_form;  // NCI
  std::vector<CompoundIngredientLot> ingredients;         // CompoundIngredientsLotNotUsed
};

struct DiagnosisCode {
  std::string code;
  std::string qualifier;  // ABF (ICD-10-CM) | DX | LD (SNOMED)
  std::string description;
};

struct Diagnosis {
  std::string clinical_information_qualifier = "1";
  DiagnosisCode primary;
  std::optional<DiagnosisCode> secondary;
};

struct OtherMedicationDate {
  DateValue date;
  std::string qualifier;  // StartDate | EffectiveDate | ExpirationDate | ...
};

// SigCode: Text, Qualifier (SNOMED), Code.
struct SigCode {
  std::string text;
  std::string qualifier = "SNOMED";
  std::string code;
};

// DoseUnitOfMeasure: Text, Qualifier (DoseUnitOfMeasure), Code (NCI).
struct DoseUnit {
  std::string text;
  std::string code;
};

// HistorySource (the medication history and transfer medications): where a history
// entry came from.
struct HistorySource {
  Identification reference;        // Source/Reference (HistorySourceID)
  std::string source_description;  // Source/SourceDescription
  std::string source_qualifier;    // Source/SourceQualifier: P2 | PC | PY
  std::string source_reference;
  std::string fill_number;
  std::string payment_type;
};

struct DoseAdministration {
  std::optional<SigCode> dose_delivery_method;
  std::string dose_quantity;  // Dosage
  std::optional<DoseUnit> dose_unit;
  std::string dose_range_modifier;  // TO | OR
  std::string dose_quantity_high;
  std::optional<DoseUnit> dose_unit_high;
  SigCode route;  // RouteOfAdministration (required once structure is sent)
  std::optional<SigCode> site;
};

// One TimingAndDuration. Exactly one of the parts is set.
struct TimingAndDuration {
  enum class Kind { kAdministrationTiming, kFrequency, kInterval, kDuration, kStopIndicator };
  Kind kind = Kind::kFrequency;
  // AdministrationTiming
  SigCode administration_timing_event;
  // Frequency / Interval / Duration
  std::string numeric_value;
  std::string variable_modifier;  // TO | AND | OR
  std::string numeric_value_high;
  SigCode units;
  std::string clarifying_free_text;
};

struct Indication {
  std::optional<SigCode> precursor;
  std::optional<SigCode> indication;
};

struct MaximumDose {
  std::string numeric_value;
  std::optional<DoseUnit> form;
  std::optional<SigCode> units;
  std::string duration_value;
  SigCode duration_unit;
  std::string clarifying_free_text;
};

struct Instruction {
  std::string multiple_instruction_modifier;  // before this instruction: AND | OR | THEN
  DoseAdministration dose_administration;
  std::vector<std::pair<std::string, TimingAndDuration>> timing;  // (modifier, timing)
  std::vector<Indication> indication_for_use;
  std::vector<MaximumDose> maximum_dose_restriction;
};

struct Sig {
  std::string sig_text;  // always sent, authoritative
  // Structured part (optional): CodeSystem versions, then the instructions.
  std::string snomed_version;
  std::string fmt_version;
  std::vector<Instruction> instruction;
  std::string clarifying_free_text;
  bool structured() const { return !instruction.empty(); }
};

// A dispensed product's lot (RxFill, medication history): LotNumber and LotExpiration.
struct LotNumber {
  std::string lot_number;
  DateValue lot_expiration;
};

// MedicationPrescribed / MedicationDispensed / MedicationRequested / MedicationResponse.
struct Medication {
  std::string drug_description;
  std::optional<DrugCoded> drug_coded;
  std::optional<Quantity> quantity;
  std::string days_supply;
  DateValue written_date;
  DateValue last_fill_date;
  std::string substitutions;  // 0 | 1
  std::string number_of_refills;
  std::vector<Diagnosis> diagnosis;
  std::string prior_authorization;
  std::string note;
  std::vector<std::string> drug_coverage_status_code;  // SI = signed (EPCS)
  std::optional<Sig> sig;
  std::string do_not_fill;
  std::string order_capture_method;
  std::string reason_for_substitution_code_used;
  std::string rx_fill_indicator;
  std::string pharmacy_requested_refills;  // RxRenewalRequest's MedicationDispensed
  // REMS (Risk Evaluation and Mitigation Strategy); declared by the medication types of
  // NewRx, RxRenewalResponse, RxChangeRequest/Response and a transferred prescription.
  std::string prescriber_checked_rems;     // PrescriberCheckedREMS: A | B | N
  std::string rems_patient_risk_category;  // REMSPatientRiskCategory
  std::string rems_authorization_number;   // REMSAuthorizationNumber
  std::optional<CompoundInformation> compound_information;
  std::vector<OtherMedicationDate> other_medication_date;
  // The medication history and transfer medications only.
  std::string refills_remaining;
  std::string history_prescriber_order_number;
  std::optional<Pharmacy> pharmacy;      // the dispensing pharmacy of a history entry
  std::optional<Prescriber> prescriber;  // the prescriber of a history or transferred entry
  std::optional<HistorySource> history_source;
  std::string rx_reference_number;  // TransferResponseMedication
  // What was dispensed (RxFill, a history's and a transfer's MedicationDispensed).
  std::string manufacturer_name;
  std::vector<LotNumber> lot_number;  // 0..9
};

struct DigitalSignature {
  std::string version;        // attribute Version
  std::string digest_method;  // SHA-1 | SHA-256
  std::string digest_value;
  std::string signature_value;
  std::string x509_data;
  std::optional<bool> indicator;  // DigitalSignatureIndicator form
};

struct Header {
  std::string to;
  std::string to_qualifier;  // P pharmacy, D prescriber, ...
  std::string from;
  std::string from_qualifier;
  std::string message_id;
  std::string relates_to_message_id;
  std::string sent_time;  // UTC xsd:dateTime
  std::string sender_software_developer;
  std::string sender_software_product;
  std::string sender_software_version_release;
  std::string test_message;
  std::string rx_reference_number;
  std::string prescriber_order_number;
  std::optional<DigitalSignature> digital_signature;
};

// SNOMEDCode and SNOMEDAdverseEventCode: Text (required) and Code (SNOMED CT, optional;
// for an AdverseEvent, one of the eclSNOMEDAdverseEventCode list).
struct SnomedCode {
  std::string text;
  std::string code;
};

// DrugProductCodeWithText: what an allergy is to. Text is required; Code and Qualifier
// (ND | UP | RT | NH | UN | SCD | SBD | GPK | BPK | GMP | GPI | GSP | DI) are optional.
struct DrugProductCode {
  std::string code;
  std::string qualifier;
  std::string text;
};

// One Allergies of an AllergyOrAdverseEvent (AllergyRestricted).
struct Allergy {
  std::string source_of_information;  // P (patient) | C (clinician)
  DateValue effective_date;
  DateValue expiration_date;
  SnomedCode adverse_event;  // SNOMEDAdverseEventCode
  DrugProductCode drug_product_coded;
  std::optional<SnomedCode> reaction_coded;
  std::optional<SnomedCode> severity_coded;
};

// AllergyOrAdverseEvent (AllergyRestrictedChoice): NoKnownAllergies ("Y") or the allergies.
// The schema allows one of the two; the writer sends the first that is set.
struct AllergyOrAdverseEvent {
  std::string no_known_allergies;  // Y
  std::vector<Allergy> allergies;
};

// One Measurement (MeasurementType) of an Observation: a LOINC vital sign in UCUM units.
struct Measurement {
  std::string vital_sign;  // LOINC code
  std::string loinc_version;
  std::string value;            // n1..18
  std::string unit_of_measure;  // UCUM code
  std::string ucum_version;
  DateValue observation_date;
};

// Observation: up to 10 measurements and a note (an1..140).
struct Observation {
  std::vector<Measurement> measurement;
  std::string observation_notes;
};

// BenefitsCoordination: the union of NewRx's BenefitsCoordinationRestricted and the medication
// history transactions' RxHistoryBenefitsCoordination (the writer leaves out what the
// element's type does not declare: Consent in a NewRx). ServiceTypeCoded (history only) is
// not modelled: the reader names it as dropped.
struct BenefitsCoordination {
  // PayerIdentification (PayerID type).
  std::string payer_id;                                // PayerID
  std::string processor_identification_number;         // PCN
  std::string naic_code;                               // NAICCode
  std::string mutually_defined;                        // MutuallyDefined
  std::string standard_unique_health_plan_identifier;  // StandardUniqueHealthPlanIdentifier
  std::string iin_number;                              // IINNumber (BIN)
  std::string payer_name;
  std::string cardholder_id;
  std::optional<Name> cardholder_name;  // CardHolderName
  std::string group_id;
  std::string payer_responsibility_code;  // P | S | T | U | PP
  std::string patient_relationship;       // 1 cardholder | 2 spouse | 3 child | 4 other
  std::string person_code;                // n1..3
  std::string group_name;
  std::optional<Address> address;  // the payer's
  std::optional<CommunicationNumbers> communication_numbers;
  std::string consent;  // history only: Y | N | P | X | Z | TPO
  std::string pbm_member_id;
  std::optional<Name> responsible_party;
  std::string payer_type;  // A | B | ... | ZZ
};

// Shared by NewRx and CancelRx (and the parties of the other requests).
struct NewRx {
  std::string urgency_indicator_code;
  std::optional<AllergyOrAdverseEvent> allergy_or_adverse_event;
  std::vector<BenefitsCoordination> benefits_coordination;  // 0..4
  std::optional<Facility> facility;
  Patient patient;
  std::optional<Pharmacy> pharmacy;
  Prescriber prescriber;
  std::optional<Observation> observation;
  Medication medication_prescribed;
  // Supervisor (SupervisorMandatoryAddressType): the supervising prescriber of a mid-level
  // practitioner. A Prescriber without PrescriberAgent and PrescriberPlaceOfService (which
  // the Supervisor types do not have); `veterinarian` tells which alternative was read.
  std::optional<Prescriber> supervisor;
  std::optional<bool> prohibit_renewal_request;
};

struct CancelRx {
  std::string change_of_prescription_status_flag;  // C | D
  Patient patient;
  std::optional<Pharmacy> pharmacy;
  Prescriber prescriber;
  Medication medication_prescribed;
};

struct Status {
  std::string code;  // 000 | 001 | 002 | 003 | 005 | 010
  std::vector<std::string> description_code;
  std::string description;
};

struct Error {
  std::string code;  // 600 | 601 | 602 | 700 | 900
  std::vector<std::string> description_code;
  std::string description;
  // 600 (communication problem) and 602 (receiver system error) invite a retry.
  bool retryable() const { return code == "600" || code == "602"; }
};

struct Verify {
  std::string code;  // 010
  std::string description;
};

// The Response choice of CancelRxResponse, RxRenewalResponse and RxChangeResponse.
struct Response {
  // Approved | Denied | ApprovedWithChanges | DeniedNewPrescriptionToFollow | Replace |
  // Validated
  std::string kind;
  std::vector<std::string> reason_code;
  std::string reference_number;
  std::string note;
  std::string denial_reason;
};

struct CancelRxResponse {
  Response response;
};

struct RxRenewalRequest {
  Patient patient;
  Pharmacy pharmacy;
  Prescriber prescriber;
  Medication medication_dispensed;
  std::optional<Medication> medication_prescribed;
};

struct RxRenewalResponse {
  Response response;
  Patient patient;
  Pharmacy pharmacy;
  Prescriber prescriber;
  Medication medication_response;
};

struct RxChangeRequest {
  std::string message_request_code;  // G | P | T | D | S | OS | U
  std::vector<std::string> message_request_sub_code;
  Patient patient;
  Pharmacy pharmacy;
  Prescriber prescriber;
  Medication medication_prescribed;
  std::vector<Medication> medication_requested;
  std::string change_reason_text;
};

struct RxChangeResponse {
  std::string message_request_code;
  std::vector<std::string> message_request_sub_code;
  Response response;
  Patient patient;
  Pharmacy pharmacy;
  Prescriber prescriber;
  std::optional<Medication> medication_prescribed;
};

struct RxFill {
  // Dispensed | PartiallyDispensed | NotDispensed | Transferred
  std::string fill_status;
  std::string fill_status_reason_code;
  std::string fill_status_note;
  std::string fill_status_reference_number;  // the pharmacy's reference for this fill
  Patient patient;
  Pharmacy pharmacy;
  Prescriber prescriber;
  std::optional<Medication> medication_dispensed;
  std::optional<Medication> medication_prescribed;
};

// RxFillIndicatorChange: the prescriber changes which fill statuses the pharmacy reports
// for the prescription the header names.
struct RxFillIndicatorChange {
  std::string rx_fill_indicator;  // "All Fill Statuses", ..., "Cancel All Fill Statuses"
};

struct DateRange {
  DateValue start_date;
  DateValue end_date;
};

struct RxHistoryRequest {
  std::vector<BenefitsCoordination> benefits_coordination;
  Patient patient;
  std::optional<Pharmacy> pharmacy;
  std::optional<Prescriber> prescriber;
  DateRange requested_dates;
  std::vector<std::string> pdmp_states_requested;  // PDMPStatesRequested/StateProvince
  std::string requestor_role;
};

struct RxHistoryResponse {
  Response response;  // Approved | Denied
  std::vector<BenefitsCoordination> benefits_coordination;
  Patient patient;
  std::optional<Pharmacy> pharmacy;
  std::optional<Prescriber> prescriber;
  std::vector<Medication> medication_dispensed;   // HistoryDispensedMedication
  std::vector<Medication> medication_prescribed;  // HistoryPrescribedMedication
  DateRange requested_dates;
};

// The two pharmacies of a transfer carry their Pharmacy::transfer_type.
struct RxTransferRequest {
  Patient patient;
  std::vector<Pharmacy> pharmacy;  // two: TRANSFER TO and TRANSFER FROM
  std::optional<Prescriber> prescriber;
  std::optional<Pharmacist> pharmacist;
  std::optional<Medication> medication_transfer_requested;
  std::string transfer_request;  // ALL | SPECIFIC
};

// One MedicationTransferred of an RxTransferResponse.
struct MedicationTransferred {
  std::vector<Medication> medication_dispensed;  // TransferDispensedMedication
  Medication medication_prescribed;              // TransferResponseMedication
  std::string prescription_previously_filled;    // Y | N
};

struct RxTransferResponse {
  Response response;  // Approved | Denied
  std::vector<BenefitsCoordination> benefits_coordination;
  Patient patient;
  std::vector<Pharmacy> pharmacy;
  std::optional<Pharmacist> pharmacist;
  std::vector<MedicationTransferred> medication_transferred;
  std::string transfer_request;
};

struct RxTransferConfirm {
  Patient patient;
  std::vector<Pharmacy> pharmacy;
  Pharmacist pharmacist;
  std::string rx_fill_confirm_indicator;  // Y | N
  std::string transfer_request;
};

// NewRxRequest: a pharmacy asks a prescriber for a new prescription.
struct NewRxRequest {
  std::string urgency_indicator_code;
  Patient patient;
  Pharmacy pharmacy;
  Prescriber prescriber;
  Medication medication_requested;  // NewRxRequestMedication
  std::string note;
};

// NewRxResponseDenied: the prescriber refuses a NewRxRequest. Its Response is not a choice:
// `response.kind` stays empty (ReasonCode, ReferenceNumber, DenialReason).
struct NewRxResponseDenied {
  std::string urgency_indicator_code;
  Response response;
  Patient patient;
  Pharmacy pharmacy;
  Prescriber prescriber;
  Medication medication_requested;
  std::string note;
};

using Body =
    std::variant<NewRx, Status, Error, Verify, CancelRx, CancelRxResponse, RxRenewalRequest,
                 RxRenewalResponse, RxChangeRequest, RxChangeResponse, RxFill,
                 RxFillIndicatorChange, RxHistoryRequest, RxHistoryResponse, RxTransferRequest,
                 RxTransferResponse, RxTransferConfirm, NewRxRequest, NewRxResponseDenied>;

// "NewRx", "Status", ...
std::string_view TransactionName(const Body& body);

struct Message {
  Header header;
  Body body;
};

}  // namespace rxflow::script

#endif  // RXFLOW_SCRIPT_MODEL_H_
