// SPDX-License-Identifier: Apache-2.0
// File: rxflow/mapping/codes.h
//
// Code-list translation between FHIR and SCRIPT: units (UCUM and HL7
// orderableDrugForm → NCI), DEA schedules (FHIR extension codes ⇄ NCI), identifier
// systems (NPI, DEA, NCPDP ID, state licence; URL and OID forms), SNOMED time units, an
// allergy's kind, severity and drug code system, and NDC normalisation. Each function is
// pure and thread-safe.
#ifndef RXFLOW_MAPPING_CODES_H_
#define RXFLOW_MAPPING_CODES_H_

#include <optional>
#include <string>
#include <string_view>

namespace rxflow::mapping {

// Code systems.
inline constexpr std::string_view kUcum = "http://unitsofmeasure.org";
inline constexpr std::string_view kNci = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl#";
inline constexpr std::string_view kOrderableDrugForm =
    "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm";
inline constexpr std::string_view kSnomed = "http://snomed.info/sct";
inline constexpr std::string_view kRxNorm = "http://www.nlm.nih.gov/research/umls/rxnorm";
inline constexpr std::string_view kNdc = "http://hl7.org/fhir/sid/ndc";
inline constexpr std::string_view kIcd10Cm = "http://hl7.org/fhir/sid/icd-10-cm";
inline constexpr std::string_view kIcd9Cm = "http://hl7.org/fhir/sid/icd-9-cm";
inline constexpr std::string_view kNpi = "http://hl7.org/fhir/sid/us-npi";
inline constexpr std::string_view kDeaOid = "urn:oid:2.16.840.1.113883.4.814";
inline constexpr std::string_view kNcpdpId =
    "http://terminology.hl7.org/CodeSystem/NCPDPProviderIdentificationNumber";
inline constexpr std::string_view kV2IdentifierType =
    "http://terminology.hl7.org/CodeSystem/v2-0203";
inline constexpr std::string_view kSsn = "http://hl7.org/fhir/sid/us-ssn";
inline constexpr std::string_view kNucc = "http://nucc.org/provider-taxonomy";
inline constexpr std::string_view kGtsAbbreviation =
    "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation";
inline constexpr std::string_view kLoinc = "http://loinc.org";
inline constexpr std::string_view kUnii = "http://fdasis.nlm.nih.gov";
inline constexpr std::string_view kAllergyIntoleranceType =
    "http://hl7.org/fhir/allergy-intolerance-type";
inline constexpr std::string_view kAllergyClinicalStatus =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
inline constexpr std::string_view kAllergyVerificationStatus =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";
inline constexpr std::string_view kParticipantType =
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
inline constexpr std::string_view kObservationCategory =
    "http://terminology.hl7.org/CodeSystem/observation-category";
// HL7's DataAbsentReason codes, as a coding where FHIR requires a concept SCRIPT does not give
// (a compound's lot without CompoundIngredient: code `unknown`).
inline constexpr std::string_view kDataAbsentReason =
    "http://terminology.hl7.org/CodeSystem/data-absent-reason";
// SNOMED CT 716186003 |No known allergy|: the FHIR way to say what SCRIPT's
// NoKnownAllergies says (an AllergyIntolerance with this code, verificationStatus confirmed).
inline constexpr std::string_view kNoKnownAllergy = "716186003";
// RxFlow's extension on MedicationRequest for the prescriber's reason to go ahead despite a
// contraindicated drug–drug interaction (valueString): recorded with the screening, never
// sent in SCRIPT (docs/clinical.md).
inline constexpr std::string_view kInteractionOverrideExtension =
    "https://rxflow.dev/fhir/StructureDefinition/interaction-override";

// RxFlow's extension for a drug's DEA schedule (valueCode CI | CII | CIII | CIV | CV, or a
// valueCoding with an NCI schedule code), on Medication or MedicationRequest.
inline constexpr std::string_view kDeaScheduleExtension =
    "https://rxflow.dev/fhir/StructureDefinition/dea-schedule";
// RxFlow's extension for SCRIPT elements with no FHIR home (or none RxFlow's FHIR model
// holds), on the MedicationRequest, the Patient or a Coverage (and an AllergyIntolerance's
// ExpirationDate and SeverityCoded, an Observation's UCUMVersion); FHIR → SCRIPT reads it back.
inline constexpr std::string_view kScriptElementExtension =
    "https://rxflow.dev/fhir/StructureDefinition/script-element";

// RxFlow's extension for a NewRx Supervisor (the supervising prescriber of a mid-level
// practitioner), on the MedicationRequest: valueReference to the supervising Practitioner
// (or a PractitionerRole naming it). R5 MedicationRequest has no element for it and HL7
// publishes no extension for it.
inline constexpr std::string_view kSupervisorExtension =
    "https://rxflow.dev/fhir/StructureDefinition/supervisor";

// US Core's marker of a Direct address (a ContactPoint with system email, valueBoolean true):
// SCRIPT CommunicationNumbers/DirectAddress.
inline constexpr std::string_view kUsCoreDirectExtension =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-direct";

// Coverage (SCRIPT BenefitsCoordination): HL7's class types (group, rxbin, rxpcn, rxid,
// rxgroup, ...) and subscriber relationships (self, spouse, child, other, ...).
inline constexpr std::string_view kCoverageClass =
    "http://terminology.hl7.org/CodeSystem/coverage-class";
inline constexpr std::string_view kSubscriberRelationship =
    "http://terminology.hl7.org/CodeSystem/subscriber-relationship";
// The payer's identifiers (PayerIdentification) on the insurer Organization: NAIC company
// codes (HL7's NamingSystem NAICCompanyCodes), and RxFlow's systems for the PayerID, the
// MutuallyDefined id and the StandardUniqueHealthPlanIdentifier (no public system fits).
inline constexpr std::string_view kNaicCompanyCode = "urn:oid:2.16.840.1.113883.6.300";
inline constexpr std::string_view kPayerIdSystem = "urn:rxflow:ncpdp:payer-id";
inline constexpr std::string_view kPayerMutuallyDefinedSystem =
    "urn:rxflow:ncpdp:payer-mutually-defined";
inline constexpr std::string_view kHealthPlanIdSystem =
    "urn:rxflow:ncpdp:standard-unique-health-plan-identifier";
// The payer Organization's type: code `pay` (Payer).
inline constexpr std::string_view kOrganizationType =
    "http://terminology.hl7.org/CodeSystem/organization-type";
// RxFlow's code system for SCRIPT's PayerType codes (Coverage.type).
inline constexpr std::string_view kNcpdpPayerTypeSystem =
    "https://rxflow.dev/fhir/CodeSystem/ncpdp-payer-type";

// NewRx Facility ⇄ a FHIR Location. R5 MedicationRequest has no element for where the patient
// resides or receives care: RxFlow's extension (valueReference to the Location) carries it.
inline constexpr std::string_view kFacilityExtension =
    "https://rxflow.dev/fhir/StructureDefinition/facility";
// The Facility's identifiers that have no public FHIR system (NCPDPID, NPI, DEANumber and
// StateLicenseNumber use the pharmacy's: kNcpdpId, kNpi, kDeaOid, v2-0203 type SL).
inline constexpr std::string_view kFacilityMedicareNumberSystem =
    "urn:rxflow:ncpdp:facility-medicare-number";
inline constexpr std::string_view kFacilityMedicaidNumberSystem =
    "urn:rxflow:ncpdp:facility-medicaid-number";
inline constexpr std::string_view kFacilityUpinSystem = "urn:rxflow:ncpdp:facility-upin";
inline constexpr std::string_view kFacilityIdSystem = "urn:rxflow:ncpdp:facility-id";
inline constexpr std::string_view kFacilityHinSystem = "urn:rxflow:ncpdp:facility-hin";
inline constexpr std::string_view kFacilityMutuallyDefinedSystem =
    "urn:rxflow:ncpdp:facility-mutually-defined";
inline constexpr std::string_view kFacilityRemsEnrollmentSystem =
    "urn:rxflow:ncpdp:rems-healthcare-setting-enrollment-id";

// The identifiers and codes of the SCRIPT messages behind a Bundle (SCRIPT → FHIR writes them,
// FHIR → SCRIPT reads them back): a prescription's PrescriberOrderNumber, a message's
// MessageID and a pharmacy's RxReferenceNumber; the transaction a Task asks for
// (RxFillIndicatorChange, RxHistoryRequest, RxTransferRequest, RxTransferConfirm,
// NewRxRequest) or the Response it answers with (Approved, Denied, ...), the Status and Error
// codes, the reason codes (Task.statusReason, MedicationDispense.notPerformedReason), an
// RxChangeRequest's MessageRequestCode, and the SCRIPT element a Task.input carries.
inline constexpr std::string_view kPrescriberOrderNumberSystem =
    "urn:rxflow:ncpdp:prescriber-order-number";
inline constexpr std::string_view kMessageIdSystem = "urn:rxflow:ncpdp:message-id";
inline constexpr std::string_view kRxReferenceSystem = "urn:rxflow:ncpdp:rx-reference-number";
inline constexpr std::string_view kNcpdpTransactionSystem =
    "https://rxflow.dev/fhir/CodeSystem/ncpdp-transaction";
inline constexpr std::string_view kNcpdpResponseSystem =
    "https://rxflow.dev/fhir/CodeSystem/ncpdp-response";
inline constexpr std::string_view kNcpdpStatusSystem =
    "https://rxflow.dev/fhir/CodeSystem/ncpdp-status-code";
inline constexpr std::string_view kNcpdpErrorSystem =
    "https://rxflow.dev/fhir/CodeSystem/ncpdp-error-code";
inline constexpr std::string_view kNcpdpReasonSystem =
    "https://rxflow.dev/fhir/CodeSystem/ncpdp-reason-code";
inline constexpr std::string_view kNcpdpChangeCodeSystem =
    "https://rxflow.dev/fhir/CodeSystem/ncpdp-change-request-code";
inline constexpr std::string_view kScriptElementCodeSystem =
    "https://rxflow.dev/fhir/CodeSystem/script-element";

// REMS (Risk Evaluation and Mitigation Strategy) identifiers with no public FHIR system: a
// patient's REMSPatientID (Patient.identifier) and a prescriber's
// REMSHealthcareProviderEnrollmentID (Practitioner.identifier).
inline constexpr std::string_view kRemsPatientIdSystem = "urn:rxflow:ncpdp:rems-patient-id";
inline constexpr std::string_view kRemsProviderEnrollmentSystem =
    "urn:rxflow:ncpdp:rems-healthcare-provider-enrollment-id";

// RxFlow's marker of a compounded preparation (SCRIPT CompoundInformation), on a Medication,
// valueBoolean true: its ingredients with a strengthQuantity are the compound's ingredients
// and its doseForm the final dose form. R5 Medication has no element saying a preparation is
// compounded, and HL7 publishes no extension for it.
inline constexpr std::string_view kCompoundExtension =
    "https://rxflow.dev/fhir/StructureDefinition/compound";

// A compound ingredient's ItemNumber (SCRIPT ProductCodeExtended) ⇄ a FHIR coding. Its
// qualifier chooses the system: ND → NDC (an 11-digit code only), SCD, SBD, GPK, BPK →
// RxNorm, UN → UNII; any other qualifier, and an ND code that is not 11 digits, → RxFlow's
// `urn:rxflow:ncpdp:product-code:<Qualifier>`, whose codes are kept as written.
inline constexpr std::string_view kProductCodeSystemPrefix = "urn:rxflow:ncpdp:product-code:";
std::string ItemNumberSystem(std::string_view qualifier, std::string_view code);
// The qualifier RxFlow's product-code system `system` names, when it is one of SCRIPT's
// CompoundIngredientProductCodeQualifier codes; else empty.
std::string_view ProductCodeQualifierOf(std::string_view system);

enum class IdentifierKind { kNpi, kDea, kNcpdpId, kStateLicense, kMrn, kSsn, kOther };

// Classifies a FHIR identifier by its system (URL or OID form) or its v2-0203 type code
// (NPI, DEA, SL, MR, SS). See docs/mapping.md for the accepted forms.
IdentifierKind ClassifyIdentifier(std::string_view system, std::string_view type_code);
// The system RxFlow writes for each kind (the first form in the table).
std::string_view IdentifierSystem(IdentifierKind kind);

struct NciUnit {
  std::string_view code;  // e.g. "C48542"
  std::string_view text;  // e.g. "Tablet"
};

// A quantity or dose unit → NCI QuantityUnitOfMeasure / DoseUnitOfMeasure code. Accepts
// NCI codes as they are, UCUM units, and HL7 orderableDrugForm codes. nullopt when
// unknown (the caller sends C38046 "Unspecified").
std::optional<NciUnit> UnitToNci(std::string_view system, std::string_view code,
                                 std::string_view unit_text);
// The text of an NCI unit code RxFlow knows ("Tablet"), or empty.
std::string_view NciUnitText(std::string_view nci_code);
inline constexpr std::string_view kNciUnspecified = "C38046";

// DEA schedule: "CII" ⇄ "C48675" (NCI). Accepts CI..CV, 1..5, I..V, "C-II" forms.
std::optional<std::string_view> DeaScheduleToNci(std::string_view schedule);
std::optional<std::string_view> NciToDeaSchedule(std::string_view nci_code);
// 1..5 for CI..CV, 0 for none/unknown.
int DeaScheduleNumber(std::string_view schedule);

// FHIR Timing unit (s, min, h, d, wk, mo, a) ⇄ SNOMED CT time-unit concept.
struct SnomedConcept {
  std::string_view code;
  std::string_view text;
};
std::optional<SnomedConcept> TimeUnitToSnomed(std::string_view ucum_unit);
std::optional<std::string_view> SnomedToTimeUnit(std::string_view snomed_code);

// An allergy's kind: SCRIPT AdverseEvent (SNOMED CT, the eclSNOMEDAdverseEventCode list) ⇄
// FHIR AllergyIntolerance.type (allergy | intolerance; empty: a propensity, the mechanism
// not said) and category (medication | food; empty: any substance).
struct AdverseEventConcept {
  std::string_view code;  // SNOMED CT
  std::string_view text;  // its term, without the semantic tag
  std::string_view type;
  std::string_view category;
};
// The row of `snomed_code`; nullopt when SCRIPT's list does not have it.
std::optional<AdverseEventConcept> FindAdverseEvent(std::string_view snomed_code);
// The SCRIPT concept for a FHIR type ("allergy", "intolerance", else none) and category
// ("medication", "food", else any substance).
AdverseEventConcept AdverseEventFor(std::string_view type, std::string_view category);

// A reaction's severity: SNOMED CT ⇄ FHIR AllergyIntolerance.reaction.severity. Mild
// 255604002, moderate 6736007, severe 24484000; life threatening 442452003 and fatal
// 399166001 are severe too. SeverityFromSnomed is empty for any other code.
std::string_view SeverityFromSnomed(std::string_view snomed_code);
std::optional<SnomedConcept> SeverityToSnomed(std::string_view severity);

// An allergy's drug product: the FHIR code system of a SCRIPT DrugProductCoded qualifier
// (ND: NDC; SCD, SBD, GPK, BPK: RxNorm; UN: UNII), empty for the others.
std::string_view DrugProductSystem(std::string_view qualifier);
// Whether `qualifier` is an RxNorm term type SCRIPT names (SCD, SBD, GPK, BPK: the RxNorm
// values of the 2017071 DrugDBCodeQualifier list).
bool IsRxNormTermType(std::string_view qualifier);
// The error for a kept term type (a script-element extension) that is none of them, quoting
// at most 10 characters of it.
std::string NotAnRxNormTermType(std::string_view got);

// NDC → the 11-digit 5-4-2 form without hyphens. Accepts 11 digits, or the hyphenated
// 5-4-2, 4-4-2, 5-3-2 and 5-4-1 forms (the 10-digit ones padded with a zero). nullopt when the text
// is not an NDC.
std::optional<std::string> NormalizeNdc(std::string_view ndc);

}  // namespace rxflow::mapping

#endif  // RXFLOW_MAPPING_CODES_H_
