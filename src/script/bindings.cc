// SPDX-License-Identifier: Apache-2.0
// The SCRIPT model's tables (see bindings.h): each struct's fields, in schema order.
#include "script/bindings.h"

namespace rxflow::script::internal {
namespace {

template <auto M>
bool NotEmpty(const void* owner) {
  return !(static_cast<const typename MemberOf<decltype(M)>::Owner*>(owner)->*M).empty();
}

// An element holding one code: <Name><Code>…</Code></Name>, sent when the code is.
template <auto M>
constexpr Field kCodeOnly[] = {Leaf<M>("Code")};
template <auto M>
constexpr Field Coded(std::string_view name) {
  return Group(name, kCodeOnly<M>, &NotEmpty<M>);
}

// ---- Parties ----

constexpr Field kName[] = {Leaf<&Name::last_name>("LastName"), Leaf<&Name::first_name>("FirstName"),
                           Leaf<&Name::middle_name>("MiddleName"), Leaf<&Name::suffix>("Suffix"),
                           Leaf<&Name::prefix>("Prefix")};
constexpr Field kNameComposite[] = {Group("Name", kName)};

constexpr Field kAddress[] = {Leaf<&Address::address_line1>("AddressLine1"),
                              Leaf<&Address::address_line2>("AddressLine2"),
                              Leaf<&Address::city>("City"),
                              Leaf<&Address::state_province>("StateProvince"),
                              Leaf<&Address::postal_code>("PostalCode"),
                              Leaf<&Address::country_code>("CountryCode")};

constexpr Field kPhone[] = {Leaf<&Phone::number>("Number"), Leaf<&Phone::extension>("Extension"),
                            Leaf<&Phone::supports_sms>("SupportsSMS")};

using Comm = CommunicationNumbers;
constexpr Field kComm[] = {Sub<&Comm::primary_telephone>("PrimaryTelephone", kPhone),
                           Sub<&Comm::beeper>("Beeper", kPhone),
                           Leaf<&Comm::electronic_mail>("ElectronicMail"),
                           Sub<&Comm::fax>("Fax", kPhone),
                           Sub<&Comm::home_telephone>("HomeTelephone", kPhone),
                           Sub<&Comm::work_telephone>("WorkTelephone", kPhone),
                           Sub<&Comm::other_telephone>("OtherTelephone", kPhone),
                           Leaf<&Comm::direct_address>("DirectAddress")};

constexpr Field kDate[] = {Leaf<&DateValue::date>("Date"), Leaf<&DateValue::date_time>("DateTime")};

using Id = Identification;
constexpr Field kIdentificationFields[] = {
    Leaf<&Id::ncpdp_id>("NCPDPID"),
    Leaf<&Id::state_license_number>("StateLicenseNumber"),
    Leaf<&Id::medicare_number>("MedicareNumber"),
    Leaf<&Id::medicaid_number>("MedicaidNumber"),
    Leaf<&Id::upin>("UPIN"),
    Leaf<&Id::facility_id>("FacilityID"),
    Leaf<&Id::dea_number>("DEANumber"),
    Leaf<&Id::hin>("HIN"),
    Leaf<&Id::social_security>("SocialSecurity"),
    Leaf<&Id::npi>("NPI"),
    Leaf<&Id::certificate_to_prescribe>("CertificateToPrescribe"),
    Leaf<&Id::data2000_waiver_id>("Data2000WaiverID"),
    Leaf<&Id::mutually_defined>("MutuallyDefined"),
    Leaf<&Id::rems_healthcare_provider_enrollment_id>("REMSHealthcareProviderEnrollmentID"),
    Leaf<&Id::state_control_substance_number>("StateControlSubstanceNumber"),
    Leaf<&Id::medical_record_identification_number_ehr>("MedicalRecordIdentificationNumberEHR"),
    Leaf<&Id::patient_account_number>("PatientAccountNumber"),
    Leaf<&Id::rems_patient_id>("REMSPatientID"),
    Leaf<&Id::rems_healthcare_setting_enrollment_id>("REMSHealthcareSettingEnrollmentID")};
constexpr Table kIdentification(kIdentificationFields, /*only_declared=*/true);

constexpr Field kPatientParty[] = {
    Sub<&Patient::identification>("Identification", kIdentification),
    Sub<&Patient::name>("Name", kName),
    Leaf<&Patient::gender>("Gender"),
    Sub<&Patient::date_of_birth>("DateOfBirth", kDate),
    Sub<&Patient::address>("Address", kAddress),
    Sub<&Patient::communication_numbers>("CommunicationNumbers", kComm),
    Leaf<&Patient::language_name_code>("LanguageNameCode")};
constexpr Field kPatient[] = {
    Choice<&Patient::human>(kPatientParty, {"HumanPatient", "NonHumanPatient"}, "HumanPatient")};

// Facility (NewRx): its Identification is a FacilityID.
constexpr Field kFacility[] = {
    Sub<&Facility::identification>("Identification", kIdentification),
    Leaf<&Facility::facility_name>("FacilityName"), Sub<&Facility::address>("Address", kAddress),
    Sub<&Facility::communication_numbers>("CommunicationNumbers", kComm)};

constexpr Field kPharmacy[] = {
    Sub<&Pharmacy::identification>("Identification", kIdentification),
    Leaf<&Pharmacy::specialty>("Specialty"), Leaf<&Pharmacy::business_name>("BusinessName"),
    Sub<&Pharmacy::address>("Address", kAddress),
    Sub<&Pharmacy::communication_numbers>("CommunicationNumbers", kComm)};

// PharmacyTransfer (the RxTransfer* transactions): a Pharmacy and its TransferType.
constexpr Field kPharmacyTransfer[] = {
    Sub<&Pharmacy::identification>("Identification", kIdentification),
    Leaf<&Pharmacy::specialty>("Specialty"),
    Leaf<&Pharmacy::business_name>("BusinessName"),
    Sub<&Pharmacy::address>("Address", kAddress),
    Sub<&Pharmacy::communication_numbers>("CommunicationNumbers", kComm),
    Leaf<&Pharmacy::transfer_type>("TransferType")};

constexpr Field kPharmacist[] = {
    Sub<&Pharmacist::identification>("Identification", kIdentification),
    Sub<&Pharmacist::name>("Name", kName), Leaf<&Pharmacist::business_name>("BusinessName"),
    Sub<&Pharmacist::address>("Address", kAddress),
    Sub<&Pharmacist::communication_numbers>("CommunicationNumbers", kComm)};

// PracticeLocationType: its Identification is a FacilityID, as a Facility's.
constexpr Field kPracticeLocation[] = {
    Sub<&PracticeLocation::identification>("Identification", kIdentification),
    Leaf<&PracticeLocation::business_name>("BusinessName")};

constexpr Field kPrescriberParty[] = {
    Sub<&Prescriber::identification>("Identification", kIdentification),
    Leaf<&Prescriber::specialty>("Specialty"),
    Sub<&Prescriber::practice_location>("PracticeLocation", kPracticeLocation),
    Sub<&Prescriber::name>("Name", kName),
    Sub<&Prescriber::address>("Address", kAddress),
    Sub<&Prescriber::prescriber_agent>("PrescriberAgent", kNameComposite),
    Sub<&Prescriber::communication_numbers>("CommunicationNumbers", kComm),
    Leaf<&Prescriber::prescriber_place_of_service>("PrescriberPlaceOfService")};
constexpr Field kPrescriber[] = {Choice<&Prescriber::veterinarian>(
    kPrescriberParty, {"NonVeterinarian", "Veterinarian"}, "Veterinarian")};

// NewRx Supervisor (SupervisorMandatoryAddressType): SupervisorMandatoryAddress or
// VetSupervisorMirrorSupervisorMandatoryAddress, a prescriber's party without
// PrescriberAgent and PrescriberPlaceOfService.
constexpr Field kSupervisorParty[] = {
    Sub<&Prescriber::identification>("Identification", kIdentification),
    Leaf<&Prescriber::specialty>("Specialty"),
    Sub<&Prescriber::practice_location>("PracticeLocation", kPracticeLocation),
    Sub<&Prescriber::name>("Name", kName),
    Sub<&Prescriber::address>("Address", kAddress),
    Sub<&Prescriber::communication_numbers>("CommunicationNumbers", kComm)};
constexpr Field kSupervisor[] = {Choice<&Prescriber::veterinarian>(
    kSupervisorParty, {"NonVeterinarian", "Veterinarian"}, "Veterinarian")};

// ---- Medication ----

constexpr Field kCodeQualifier[] = {Leaf<&CodeQualifier::code>("Code"),
                                    Leaf<&CodeQualifier::qualifier>("Qualifier")};

constexpr Field kStrength[] = {
    Leaf<&Strength::strength_value>("StrengthValue"),
    Coded<&Strength::strength_form_code>("StrengthForm"),
    Coded<&Strength::strength_unit_of_measure_code>("StrengthUnitOfMeasure")};

constexpr Field kDrugCoded[] = {Sub<&DrugCoded::product_code>("ProductCode", kCodeQualifier),
                                Sub<&DrugCoded::strength>("Strength", kStrength),
                                Sub<&DrugCoded::drug_db_code>("DrugDBCode", kCodeQualifier),
                                Coded<&DrugCoded::dea_schedule_code>("DEASchedule")};

constexpr Field kQuantity[] = {Leaf<&Quantity::value>("Value"),
                               Leaf<&Quantity::code_list_qualifier>("CodeListQualifier"),
                               Coded<&Quantity::unit_of_measure_code>("QuantityUnitOfMeasure")};

// CompoundInformation (CompoundLotNotUsed). An ingredient's Quantity is a CompoundQuantity,
// which has Quantity's members.
constexpr Field kCompoundIngredient[] = {
    Leaf<&CompoundIngredient::item_description>("CompoundIngredientItemDescription"),
    Sub<&CompoundIngredient::item_number>("ItemNumber", kCodeQualifier),
    Sub<&CompoundIngredient::strength>("Strength", kStrength),
    Coded<&CompoundIngredient::dea_schedule_code>("DEASchedule")};
constexpr Field kCompoundIngredientLot[] = {
    Sub<&CompoundIngredientLot::compound_ingredient>("CompoundIngredient", kCompoundIngredient),
    Sub<&CompoundIngredientLot::quantity>("Quantity", kQuantity)};
using Compound = CompoundInformation;
constexpr Field kCompoundInformation[] = {
    Leaf<&Compound::final_compound_pharmaceutical_dosage_form>(
        "FinalCompoundPharmaceuticalDosageForm"),
    Sub<&Compound::ingredients>("CompoundIngredientsLotNotUsed", kCompoundIngredientLot)};

constexpr Field kDiagnosisCode[] = {Leaf<&DiagnosisCode::code>("Code"),
                                    Leaf<&DiagnosisCode::qualifier>("Qualifier"),
                                    Leaf<&DiagnosisCode::description>("Description")};
constexpr Field kDiagnosis[] = {
    Leaf<&Diagnosis::clinical_information_qualifier>("ClinicalInformationQualifier"),
    Sub<&Diagnosis::primary>("Primary", kDiagnosisCode),
    Sub<&Diagnosis::secondary>("Secondary", kDiagnosisCode)};

constexpr Field kOtherDate[] = {
    Sub<&OtherMedicationDate::date>("OtherMedicationDate", kDate),
    Leaf<&OtherMedicationDate::qualifier>("OtherMedicationDateQualifier")};

constexpr Field kSigCode[] = {Leaf<&SigCode::text>("Text"), Leaf<&SigCode::qualifier>("Qualifier"),
                              Leaf<&SigCode::code>("Code")};
constexpr Field kDoseUnit[] = {Leaf<&DoseUnit::text>("Text"),
                               Const("Qualifier", "DoseUnitOfMeasure"),
                               Leaf<&DoseUnit::code>("Code")};

// Dosage is sent with a quantity and its unit (hook: DoseQuantity and DoseUnitOfMeasure
// come twice for a range).
bool HasDosage(const void* owner) {
  const auto& d = *static_cast<const DoseAdministration*>(owner);
  return !d.dose_quantity.empty() && d.dose_unit;
}
constexpr Field kDosage[] = {HookField(Hook::kDosage)};
using DoseAdmin = DoseAdministration;
constexpr Field kDoseAdministration[] = {
    Sub<&DoseAdmin::dose_delivery_method>("DoseDeliveryMethod", kSigCode),
    Group("Dosage", kDosage, &HasDosage), Sub<&DoseAdmin::route>("RouteOfAdministration", kSigCode),
    Sub<&DoseAdmin::site>("SiteOfAdministration", kSigCode)};

constexpr Field kTiming[] = {HookField(Hook::kTimingAndDuration)};

constexpr Field kIndication[] = {Sub<&Indication::precursor>("IndicationPrecursor", kSigCode),
                                 Sub<&Indication::indication>("Indication", kSigCode)};

constexpr Field kMaximumDose[] = {
    Leaf<&MaximumDose::numeric_value>("MaximumDoseRestrictionNumericValue"),
    Sub<&MaximumDose::form>("MaximumDoseRestrictionForm", kDoseUnit),
    Sub<&MaximumDose::units>("MaximumDoseRestrictionUnits", kSigCode),
    Leaf<&MaximumDose::duration_value>("MaximumDoseRestrictionDurationValue"),
    Sub<&MaximumDose::duration_unit>("MaximumDoseRestrictionDurationUnit", kSigCode),
    Leaf<&MaximumDose::clarifying_free_text>("MaximumDoseRestrictionClarifyingFreeText")};

constexpr Field kInstruction[] = {
    Sub<&Instruction::dose_administration>("DoseAdministration", kDoseAdministration),
    Interleaved<&Instruction::timing, &TimingStep::first>("TimingAndDuration",
                                                          "MultipleTimingModifier", kTiming),
    Sub<&Instruction::indication_for_use>("IndicationForUse", kIndication),
    Sub<&Instruction::maximum_dose_restriction>("MaximumDoseRestriction", kMaximumDose)};

// The structured part of a Sig is sent with its instructions only.
bool Structured(const void* owner) { return static_cast<const Sig*>(owner)->structured(); }
constexpr Field kCodeSystem[] = {Leaf<&Sig::snomed_version>("SNOMEDVersion"),
                                 Leaf<&Sig::fmt_version>("FMTVersion")};
constexpr Field kSig[] = {
    Leaf<&Sig::sig_text>("SigText"), Group("CodeSystem", kCodeSystem, &Structured),
    Interleaved<&Sig::instruction, &Instruction::multiple_instruction_modifier>(
        "Instruction", "MultipleInstructionModifier", kInstruction),
    Leaf<&Sig::clarifying_free_text>("ClarifyingFreeText", &Structured)};

// HistorySource: Source (Reference, SourceDescription, SourceQualifier), SourceReference,
// FillNumber, PaymentType. Source is sent when any of its parts is.
bool HasSource(const void* owner) {
  const auto& h = *static_cast<const HistorySource*>(owner);
  return !h.reference.empty() || !h.source_description.empty() || !h.source_qualifier.empty();
}
constexpr Field kSourceQualifier[] = {Sub<&HistorySource::reference>("Reference", kIdentification),
                                      Leaf<&HistorySource::source_description>("SourceDescription"),
                                      Leaf<&HistorySource::source_qualifier>("SourceQualifier")};
constexpr Field kHistorySource[] = {Group("Source", kSourceQualifier, &HasSource),
                                    Leaf<&HistorySource::source_reference>("SourceReference"),
                                    Leaf<&HistorySource::fill_number>("FillNumber"),
                                    Leaf<&HistorySource::payment_type>("PaymentType")};

constexpr Field kLotNumber[] = {Leaf<&LotNumber::lot_number>("LotNumber"),
                                Sub<&LotNumber::lot_expiration>("LotExpiration", kDate)};

using Med = Medication;
constexpr Field kMedication[] = {
    Leaf<&Med::drug_description>("DrugDescription"),
    Sub<&Med::drug_coded>("DrugCoded", kDrugCoded),
    Sub<&Med::quantity>("Quantity", kQuantity),
    Leaf<&Med::days_supply>("DaysSupply"),
    Sub<&Med::written_date>("WrittenDate", kDate),
    Sub<&Med::last_fill_date>("LastFillDate", kDate),
    Leaf<&Med::substitutions>("Substitutions"),
    Leaf<&Med::number_of_refills>("NumberOfRefills"),
    Sub<&Med::diagnosis>("Diagnosis", kDiagnosis),
    Leaf<&Med::prior_authorization>("PriorAuthorization"),
    Leaf<&Med::note>("Note"),
    Leaf<&Med::drug_coverage_status_code>("DrugCoverageStatusCode"),
    Sub<&Med::sig>("Sig", kSig),
    Leaf<&Med::pharmacy_requested_refills>("PharmacyRequestedRefills"),
    Leaf<&Med::do_not_fill>("DoNotFill"),
    Leaf<&Med::order_capture_method>("OrderCaptureMethod"),
    Leaf<&Med::reason_for_substitution_code_used>("ReasonForSubstitutionCodeUsed"),
    Leaf<&Med::rx_fill_indicator>("RxFillIndicator"),
    Leaf<&Med::prescriber_checked_rems>("PrescriberCheckedREMS"),
    Leaf<&Med::rems_patient_risk_category>("REMSPatientRiskCategory"),
    Leaf<&Med::rems_authorization_number>("REMSAuthorizationNumber"),
    Sub<&Med::compound_information>("CompoundInformation", kCompoundInformation),
    Sub<&Med::other_medication_date>("OtherMedicationDate", kOtherDate),
    Leaf<&Med::refills_remaining>("RefillsRemaining"),
    Leaf<&Med::history_prescriber_order_number>("HistoryPrescriberOrderNumber"),
    Sub<&Med::pharmacy>("Pharmacy", kPharmacy),
    Sub<&Med::prescriber>("Prescriber", kPrescriber),
    Sub<&Med::history_source>("HistorySource", kHistorySource),
    Leaf<&Med::rx_reference_number>("RxReferenceNumber"),
    Leaf<&Med::manufacturer_name>("ManufacturerName"),
    Sub<&Med::lot_number>("LotNumber", kLotNumber)};

// ---- Clinical information (NewRx) ----

constexpr Field kSnomedCode[] = {Leaf<&SnomedCode::text>("Text"), Leaf<&SnomedCode::code>("Code")};
constexpr Field kDrugProductCode[] = {Leaf<&DrugProductCode::code>("Code"),
                                      Leaf<&DrugProductCode::qualifier>("Qualifier"),
                                      Leaf<&DrugProductCode::text>("Text")};
constexpr Field kAllergy[] = {
    Leaf<&Allergy::source_of_information>("SourceOfInformation"),
    Sub<&Allergy::effective_date>("EffectiveDate", kDate),
    Sub<&Allergy::expiration_date>("ExpirationDate", kDate),
    Sub<&Allergy::adverse_event>("AdverseEvent", kSnomedCode),
    Sub<&Allergy::drug_product_coded>("DrugProductCoded", kDrugProductCode),
    Sub<&Allergy::reaction_coded>("ReactionCoded", kSnomedCode),
    Sub<&Allergy::severity_coded>("SeverityCoded", kSnomedCode)};
// AllergyRestrictedChoice: the writer sends the first alternative that is set.
using AllergyChoice = AllergyOrAdverseEvent;
constexpr Field kAllergyOrAdverseEvent[] = {
    Leaf<&AllergyChoice::no_known_allergies>("NoKnownAllergies"),
    Sub<&AllergyChoice::allergies>("Allergies", kAllergy)};

constexpr Field kMeasurement[] = {Leaf<&Measurement::vital_sign>("VitalSign"),
                                  Leaf<&Measurement::loinc_version>("LOINCVersion"),
                                  Leaf<&Measurement::value>("Value"),
                                  Leaf<&Measurement::unit_of_measure>("UnitOfMeasure"),
                                  Leaf<&Measurement::ucum_version>("UCUMVersion"),
                                  Sub<&Measurement::observation_date>("ObservationDate", kDate)};
constexpr Field kObservation[] = {Sub<&Observation::measurement>("Measurement", kMeasurement),
                                  Leaf<&Observation::observation_notes>("ObservationNotes")};

// ---- Header ----

constexpr Field kTo[] = {Attribute<&Header::to_qualifier>("Qualifier"), OwnText<&Header::to>()};
constexpr Field kFrom[] = {Attribute<&Header::from_qualifier>("Qualifier"),
                           OwnText<&Header::from>()};
constexpr Field kSenderSoftware[] = {
    Leaf<&Header::sender_software_developer>("SenderSoftwareDeveloper"),
    Leaf<&Header::sender_software_product>("SenderSoftwareProduct"),
    Leaf<&Header::sender_software_version_release>("SenderSoftwareVersionRelease")};
// The indicator first: of the schema's choice, it is what is sent when it is set.
using Signature = DigitalSignature;
constexpr Field kDigitalSignature[] = {Attribute<&Signature::version>("Version"),
                                       Leaf<&Signature::indicator>("DigitalSignatureIndicator"),
                                       Leaf<&Signature::digest_method>("DigestMethod"),
                                       Leaf<&Signature::digest_value>("DigestValue"),
                                       Leaf<&Signature::signature_value>("SignatureValue"),
                                       Leaf<&Signature::x509_data>("X509Data")};
constexpr Field kHeader[] = {
    Group("To", kTo),
    Group("From", kFrom),
    Leaf<&Header::message_id>("MessageID"),
    Leaf<&Header::relates_to_message_id>("RelatesToMessageID"),
    Leaf<&Header::sent_time>("SentTime"),
    Group("SenderSoftware", kSenderSoftware),
    Leaf<&Header::test_message>("TestMessage"),
    Leaf<&Header::rx_reference_number>("RxReferenceNumber"),
    Leaf<&Header::prescriber_order_number>("PrescriberOrderNumber"),
    Sub<&Header::digital_signature>("DigitalSignature", kDigitalSignature)};

// ---- Benefits coordination (NewRx, the medication history and transfer transactions) ----

// One table for BenefitsCoordinationRestricted (NewRx) and RxHistoryBenefitsCoordination:
// the writer leaves out what the element's type does not declare (Consent in a NewRx).
using Benefits = BenefitsCoordination;
bool HasPayerId(const void* owner) {
  const auto& b = *static_cast<const Benefits*>(owner);
  return !b.payer_id.empty() || !b.processor_identification_number.empty() ||
         !b.naic_code.empty() || !b.mutually_defined.empty() ||
         !b.standard_unique_health_plan_identifier.empty() || !b.iin_number.empty();
}
constexpr Field kPayerId[] = {
    Leaf<&Benefits::payer_id>("PayerID"),
    Leaf<&Benefits::processor_identification_number>("ProcessorIdentificationNumber"),
    Leaf<&Benefits::naic_code>("NAICCode"),
    Leaf<&Benefits::mutually_defined>("MutuallyDefined"),
    Leaf<&Benefits::standard_unique_health_plan_identifier>("StandardUniqueHealthPlanIdentifier"),
    Leaf<&Benefits::iin_number>("IINNumber")};
constexpr Field kBenefitsCoordinationFields[] = {
    Group("PayerIdentification", kPayerId, &HasPayerId),
    Leaf<&Benefits::payer_name>("PayerName"),
    Leaf<&Benefits::cardholder_id>("CardholderID"),
    Sub<&Benefits::cardholder_name>("CardHolderName", kName),
    Leaf<&Benefits::group_id>("GroupID"),
    Leaf<&Benefits::payer_responsibility_code>("PayerResponsibilityCode"),
    Leaf<&Benefits::patient_relationship>("PatientRelationship"),
    Leaf<&Benefits::person_code>("PersonCode"),
    Leaf<&Benefits::group_name>("GroupName"),
    Sub<&Benefits::address>("Address", kAddress),
    Sub<&Benefits::communication_numbers>("CommunicationNumbers", kComm),
    Leaf<&Benefits::consent>("Consent"),
    Leaf<&Benefits::pbm_member_id>("PBMMemberID"),
    Sub<&Benefits::responsible_party>("ResponsibleParty", kName),
    Leaf<&Benefits::payer_type>("PayerType")};
constexpr Table kBenefitsCoordination(kBenefitsCoordinationFields, /*only_declared=*/true);

// ---- Transactions ----

constexpr Field kResponseKind[] = {Leaf<&Response::reason_code>("ReasonCode"),
                                   Leaf<&Response::reference_number>("ReferenceNumber"),
                                   Leaf<&Response::note>("Note"),
                                   Leaf<&Response::denial_reason>("DenialReason")};
constexpr Field kResponse[] = {Choice<&Response::kind>(kResponseKind)};

constexpr Field kNewRx[] = {
    Leaf<&NewRx::urgency_indicator_code>("UrgencyIndicatorCode"),
    Sub<&NewRx::allergy_or_adverse_event>("AllergyOrAdverseEvent", kAllergyOrAdverseEvent),
    Sub<&NewRx::benefits_coordination>("BenefitsCoordination", kBenefitsCoordination),
    Sub<&NewRx::facility>("Facility", kFacility),
    Sub<&NewRx::patient>("Patient", kPatient),
    Sub<&NewRx::pharmacy>("Pharmacy", kPharmacy),
    Sub<&NewRx::prescriber>("Prescriber", kPrescriber),
    Sub<&NewRx::observation>("Observation", kObservation),
    Sub<&NewRx::medication_prescribed>("MedicationPrescribed", kMedication),
    Sub<&NewRx::supervisor>("Supervisor", kSupervisor),
    Leaf<&NewRx::prohibit_renewal_request>("ProhibitRenewalRequest")};

constexpr Field kCancelRx[] = {
    Leaf<&CancelRx::change_of_prescription_status_flag>("ChangeOfPrescriptionStatusFlag"),
    Sub<&CancelRx::patient>("Patient", kPatient), Sub<&CancelRx::pharmacy>("Pharmacy", kPharmacy),
    Sub<&CancelRx::prescriber>("Prescriber", kPrescriber),
    Sub<&CancelRx::medication_prescribed>("MedicationPrescribed", kMedication)};

// Status and Error.
template <typename T>
constexpr Field kCoded[] = {Leaf<&T::code>("Code"), Leaf<&T::description_code>("DescriptionCode"),
                            Leaf<&T::description>("Description")};

constexpr Field kVerifyStatus[] = {Leaf<&Verify::code>("Code"),
                                   Leaf<&Verify::description>("Description")};
constexpr Field kVerify[] = {Group("VerifyStatus", kVerifyStatus)};

constexpr Field kCancelRxResponse[] = {Sub<&CancelRxResponse::response>("Response", kResponse)};

using RenewalRequest = RxRenewalRequest;
constexpr Field kRxRenewalRequest[] = {
    Sub<&RenewalRequest::patient>("Patient", kPatient),
    Sub<&RenewalRequest::pharmacy>("Pharmacy", kPharmacy),
    Sub<&RenewalRequest::prescriber>("Prescriber", kPrescriber),
    Sub<&RenewalRequest::medication_dispensed>("MedicationDispensed", kMedication),
    Sub<&RenewalRequest::medication_prescribed>("MedicationPrescribed", kMedication)};

using RenewalResponse = RxRenewalResponse;
constexpr Field kRxRenewalResponse[] = {
    Sub<&RenewalResponse::response>("Response", kResponse),
    Sub<&RenewalResponse::patient>("Patient", kPatient),
    Sub<&RenewalResponse::pharmacy>("Pharmacy", kPharmacy),
    Sub<&RenewalResponse::prescriber>("Prescriber", kPrescriber),
    Sub<&RenewalResponse::medication_response>("MedicationResponse", kMedication)};

using ChangeRequest = RxChangeRequest;
constexpr Field kRxChangeRequest[] = {
    Leaf<&ChangeRequest::message_request_code>("MessageRequestCode"),
    Leaf<&ChangeRequest::message_request_sub_code>("MessageRequestSubCode"),
    Sub<&ChangeRequest::patient>("Patient", kPatient),
    Sub<&ChangeRequest::pharmacy>("Pharmacy", kPharmacy),
    Sub<&ChangeRequest::prescriber>("Prescriber", kPrescriber),
    Sub<&ChangeRequest::medication_prescribed>("MedicationPrescribed", kMedication),
    Sub<&ChangeRequest::medication_requested>("MedicationRequested", kMedication),
    Leaf<&ChangeRequest::change_reason_text>("ChangeReasonText")};

using ChangeResponse = RxChangeResponse;
constexpr Field kRxChangeResponse[] = {
    Leaf<&ChangeResponse::message_request_code>("MessageRequestCode"),
    Leaf<&ChangeResponse::message_request_sub_code>("MessageRequestSubCode"),
    Sub<&ChangeResponse::response>("Response", kResponse),
    Sub<&ChangeResponse::patient>("Patient", kPatient),
    Sub<&ChangeResponse::pharmacy>("Pharmacy", kPharmacy),
    Sub<&ChangeResponse::prescriber>("Prescriber", kPrescriber),
    Sub<&ChangeResponse::medication_prescribed>("MedicationPrescribed", kMedication)};

constexpr Field kFillStatusKind[] = {Leaf<&RxFill::fill_status_reference_number>("ReferenceNumber"),
                                     Leaf<&RxFill::fill_status_note>("Note"),
                                     Leaf<&RxFill::fill_status_reason_code>("ReasonCode")};
constexpr Field kFillStatus[] = {Choice<&RxFill::fill_status>(kFillStatusKind)};
constexpr Field kRxFill[] = {
    Group("FillStatus", kFillStatus),
    Sub<&RxFill::patient>("Patient", kPatient),
    Sub<&RxFill::pharmacy>("Pharmacy", kPharmacy),
    Sub<&RxFill::prescriber>("Prescriber", kPrescriber),
    Sub<&RxFill::medication_dispensed>("MedicationDispensed", kMedication),
    Sub<&RxFill::medication_prescribed>("MedicationPrescribed", kMedication)};

constexpr Field kRxFillIndicatorChange[] = {
    Leaf<&RxFillIndicatorChange::rx_fill_indicator>("RxFillIndicator")};

// ---- Medication history ----

constexpr Field kDateRange[] = {Sub<&DateRange::start_date>("StartDate", kDate),
                                Sub<&DateRange::end_date>("EndDate", kDate)};

using HistoryRequest = RxHistoryRequest;
constexpr Field kPdmpStates[] = {Leaf<&HistoryRequest::pdmp_states_requested>("StateProvince")};
constexpr Field kRxHistoryRequest[] = {
    Sub<&HistoryRequest::benefits_coordination>("BenefitsCoordination", kBenefitsCoordination),
    Sub<&HistoryRequest::patient>("Patient", kPatient),
    Sub<&HistoryRequest::pharmacy>("Pharmacy", kPharmacy),
    Sub<&HistoryRequest::prescriber>("Prescriber", kPrescriber),
    Sub<&HistoryRequest::requested_dates>("RequestedDates", kDateRange),
    Group("PDMPStatesRequested", kPdmpStates, &NotEmpty<&HistoryRequest::pdmp_states_requested>),
    Leaf<&HistoryRequest::requestor_role>("RequestorRole")};

using HistoryResponse = RxHistoryResponse;
constexpr Field kRxHistoryResponse[] = {
    Sub<&HistoryResponse::response>("Response", kResponse),
    Sub<&HistoryResponse::benefits_coordination>("BenefitsCoordination", kBenefitsCoordination),
    Sub<&HistoryResponse::patient>("Patient", kPatient),
    Sub<&HistoryResponse::pharmacy>("Pharmacy", kPharmacy),
    Sub<&HistoryResponse::prescriber>("Prescriber", kPrescriber),
    Sub<&HistoryResponse::medication_dispensed>("MedicationDispensed", kMedication),
    Sub<&HistoryResponse::medication_prescribed>("MedicationPrescribed", kMedication),
    Sub<&HistoryResponse::requested_dates>("RequestedDates", kDateRange)};

// ---- Transfers ----

using TransferRequest = RxTransferRequest;
constexpr Field kRxTransferRequest[] = {
    Sub<&TransferRequest::patient>("Patient", kPatient),
    Sub<&TransferRequest::pharmacy>("Pharmacy", kPharmacyTransfer),
    Sub<&TransferRequest::prescriber>("Prescriber", kPrescriber),
    Sub<&TransferRequest::pharmacist>("Pharmacist", kPharmacist),
    Sub<&TransferRequest::medication_transfer_requested>("MedicationTransferRequested",
                                                         kMedication),
    Leaf<&TransferRequest::transfer_request>("TransferRequest")};

using Transferred = MedicationTransferred;
constexpr Field kMedicationTransferred[] = {
    Sub<&Transferred::medication_dispensed>("MedicationDispensed", kMedication),
    Sub<&Transferred::medication_prescribed>("MedicationPrescribed", kMedication),
    Leaf<&Transferred::prescription_previously_filled>("PrescriptionPreviouslyFilled")};

using TransferResponse = RxTransferResponse;
constexpr Field kRxTransferResponse[] = {
    Sub<&TransferResponse::response>("Response", kResponse),
    Sub<&TransferResponse::benefits_coordination>("BenefitsCoordination", kBenefitsCoordination),
    Sub<&TransferResponse::patient>("Patient", kPatient),
    Sub<&TransferResponse::pharmacy>("Pharmacy", kPharmacyTransfer),
    Sub<&TransferResponse::pharmacist>("Pharmacist", kPharmacist),
    Sub<&TransferResponse::medication_transferred>("MedicationTransferred", kMedicationTransferred),
    Leaf<&TransferResponse::transfer_request>("TransferRequest")};

using TransferConfirm = RxTransferConfirm;
constexpr Field kRxTransferConfirm[] = {
    Sub<&TransferConfirm::patient>("Patient", kPatient),
    Sub<&TransferConfirm::pharmacy>("Pharmacy", kPharmacyTransfer),
    Sub<&TransferConfirm::pharmacist>("Pharmacist", kPharmacist),
    Leaf<&TransferConfirm::rx_fill_confirm_indicator>("RxFillConfirmIndicator"),
    Leaf<&TransferConfirm::transfer_request>("TransferRequest")};

// ---- New prescription requests ----

constexpr Field kNewRxRequest[] = {
    Leaf<&NewRxRequest::urgency_indicator_code>("UrgencyIndicatorCode"),
    Sub<&NewRxRequest::patient>("Patient", kPatient),
    Sub<&NewRxRequest::pharmacy>("Pharmacy", kPharmacy),
    Sub<&NewRxRequest::prescriber>("Prescriber", kPrescriber),
    Sub<&NewRxRequest::medication_requested>("MedicationRequested", kMedication),
    Leaf<&NewRxRequest::note>("Note")};

// NewRxResponseDeniedType: the denial's fields directly, not a choice.
constexpr Field kResponseDenied[] = {Leaf<&Response::reason_code>("ReasonCode"),
                                     Leaf<&Response::reference_number>("ReferenceNumber"),
                                     Leaf<&Response::denial_reason>("DenialReason")};
using Denied = NewRxResponseDenied;
constexpr Field kNewRxResponseDenied[] = {
    Leaf<&Denied::urgency_indicator_code>("UrgencyIndicatorCode"),
    Sub<&Denied::response>("Response", kResponseDenied),
    Sub<&Denied::patient>("Patient", kPatient),
    Sub<&Denied::pharmacy>("Pharmacy", kPharmacy),
    Sub<&Denied::prescriber>("Prescriber", kPrescriber),
    Sub<&Denied::medication_requested>("MedicationRequested", kMedication),
    Leaf<&Denied::note>("Note")};

template <typename T, size_t I = 0>
constexpr size_t IndexInBody() {
  if constexpr (std::is_same_v<std::variant_alternative_t<I, Body>, T>) {
    return I;
  } else {
    return IndexInBody<T, I + 1>();
  }
}

template <typename T>
constexpr Transaction Tx(std::string_view name, Table table) {
  return {name,
          table,
          IndexInBody<T>(),
          [](Body& b) -> void* {
            T* held = std::get_if<T>(&b);
            return held ? held : &b.emplace<T>();
          },
          [](const Body& b) -> const void* { return &std::get<T>(b); },
          []() -> Body { return Body(std::in_place_type<T>); }};
}

// In Body's order.
constexpr Transaction kTransactions[] = {
    Tx<NewRx>("NewRx", kNewRx),
    Tx<Status>("Status", kCoded<Status>),
    Tx<Error>("Error", kCoded<Error>),
    Tx<Verify>("Verify", kVerify),
    Tx<CancelRx>("CancelRx", kCancelRx),
    Tx<CancelRxResponse>("CancelRxResponse", kCancelRxResponse),
    Tx<RxRenewalRequest>("RxRenewalRequest", kRxRenewalRequest),
    Tx<RxRenewalResponse>("RxRenewalResponse", kRxRenewalResponse),
    Tx<RxChangeRequest>("RxChangeRequest", kRxChangeRequest),
    Tx<RxChangeResponse>("RxChangeResponse", kRxChangeResponse),
    Tx<RxFill>("RxFill", kRxFill),
    Tx<RxFillIndicatorChange>("RxFillIndicatorChange", kRxFillIndicatorChange),
    Tx<RxHistoryRequest>("RxHistoryRequest", kRxHistoryRequest),
    Tx<RxHistoryResponse>("RxHistoryResponse", kRxHistoryResponse),
    Tx<RxTransferRequest>("RxTransferRequest", kRxTransferRequest),
    Tx<RxTransferResponse>("RxTransferResponse", kRxTransferResponse),
    Tx<RxTransferConfirm>("RxTransferConfirm", kRxTransferConfirm),
    Tx<NewRxRequest>("NewRxRequest", kNewRxRequest),
    Tx<NewRxResponseDenied>("NewRxResponseDenied", kNewRxResponseDenied)};
constexpr bool InBodyOrder() {
  for (size_t i = 0; i < std::size(kTransactions); ++i) {
    if (kTransactions[i].index != i) return false;
  }
  return std::size(kTransactions) == std::variant_size_v<Body>;
}
static_assert(InBodyOrder(), "kTransactions lists Body's alternatives, in order");

}  // namespace

const Table kHeaderTable = kHeader;
const Table kSigCodeTable = kSigCode;
const Table kDoseUnitTable = kDoseUnit;

const Transaction* FindTransaction(std::string_view name) {
  for (const Transaction& t : kTransactions) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const Transaction& TransactionOf(const Body& body) { return kTransactions[body.index()]; }

}  // namespace rxflow::script::internal

namespace rxflow::script {

bool Identification::empty() const {
  for (const internal::Field& f : internal::kIdentification) {
    if (f.access->count(f.access->cmember(this)) > 0) return false;
  }
  return true;
}

std::string_view TransactionName(const Body& body) { return internal::TransactionOf(body).name; }

}  // namespace rxflow::script
