// SPDX-License-Identifier: Apache-2.0
// FHIR R5 Bundle → the SCRIPT transactions SCRIPT → FHIR writes around a Task
// (docs/mapping.md §2.13): RxFillIndicatorChange, RxHistoryRequest, RxHistoryResponse,
// RxTransferRequest, RxTransferResponse, RxTransferConfirm, NewRxRequest and
// NewRxResponseDenied. The Task says which one and names the rest; each party, medication and
// Coverage is mapped as ToNewRx maps it (parties.h).
#include <algorithm>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "rxflow/internal/strcat.h"
#include "rxflow/mapping/codes.h"
#include "rxflow/mapping/mapping.h"

#include "common/text.h"
#include "fhir/resolver.h"
#include "mapping/parties.h"

namespace rxflow::mapping {
namespace {

using rxflow::internal::Cat;

// The transactions FromFhirBundle builds.
constexpr std::string_view kBuilt[] = {
    "RxFillIndicatorChange", "RxHistoryRequest",  "RxHistoryResponse", "RxTransferRequest",
    "RxTransferResponse",    "RxTransferConfirm", "NewRxRequest",      "NewRxResponseDenied"};
bool Built(std::string_view name) {
  return std::find(std::begin(kBuilt), std::end(kBuilt), name) != std::end(kBuilt);
}

// The display SCRIPT → FHIR gives the Task of each answer coded in ncpdp-response.
constexpr std::pair<std::string_view, std::string_view> kResponseDisplays[] = {
    {"medication history response", "RxHistoryResponse"},
    {"prescription transfer response", "RxTransferResponse"},
    {"new prescription request denied", "NewRxResponseDenied"},
    {"cancel approved", "CancelRxResponse"},
    {"cancel denied", "CancelRxResponse"},
    {"renewal response", "RxRenewalResponse"},
    {"change response", "RxChangeResponse"}};

// The coding of `t.code` in the transaction or the response system, or nullptr.
const fhir::Coding* TransactionCoding(const fhir::Task& t) {
  if (!t.code) return nullptr;
  for (const fhir::Coding& c : t.code->coding) {
    if (c.system == kNcpdpTransactionSystem || c.system == kNcpdpResponseSystem) return &c;
  }
  return nullptr;
}

// Whether `in` is typed with the SCRIPT element `element`.
bool Typed(const fhir::TaskInput& in, std::string_view element) {
  for (const fhir::Coding& c : in.type.coding) {
    if (c.system == kScriptElementCodeSystem && c.code == element) return true;
  }
  return false;
}
bool HasInput(const fhir::Task& t, std::string_view element) {
  return std::any_of(t.input.begin(), t.input.end(),
                     [&](const fhir::TaskInput& in) { return Typed(in, element); });
}

// The transaction the Task coded `coding` stands for: in ncpdp-transaction, the code; in
// ncpdp-response, the answer its display names, else the one its inputs or focus show (a
// transfer's TransferRequest, a history's RequestedDates, a proposed MedicationRequest's
// denial); "" when none.
std::string TransactionOf(const fhir::Task& t, const fhir::Coding& coding,
                          const fhir::Resolver& resolver) {
  if (coding.system == kNcpdpTransactionSystem) return coding.code;
  for (const auto& [display, name] : kResponseDisplays) {
    if (coding.display == display) return std::string(name);
  }
  if (HasInput(t, "TransferRequest") || HasInput(t, "MedicationTransferred")) {
    return "RxTransferResponse";
  }
  if (HasInput(t, "RequestedDates")) return "RxHistoryResponse";
  if (t.focus) {
    const fhir::Located l = resolver.Find(t.focus->reference);
    const auto* mr = l.resource ? l.resource->get<fhir::MedicationRequest>() : nullptr;
    if (mr && mr->intent == "proposal") return "NewRxResponseDenied";
  }
  return {};
}

// The texts of a Medication that script-element extensions fill (SCRIPT → FHIR keeps them so
// for the elements a MedicationRequest, MedicationDispense or MedicationStatement has no home
// for), by the extension's element.
constexpr std::pair<std::string_view, std::string script::Medication::*> kMedicationTexts[] = {
    {"DoNotFill", &script::Medication::do_not_fill},
    {"OrderCaptureMethod", &script::Medication::order_capture_method},
    {"PriorAuthorization", &script::Medication::prior_authorization},
    {"RxFillIndicator", &script::Medication::rx_fill_indicator},
    {"PharmacyRequestedRefills", &script::Medication::pharmacy_requested_refills},
    {"RefillsRemaining", &script::Medication::refills_remaining},
    {"DaysSupply", &script::Medication::days_supply},
    {"Substitutions", &script::Medication::substitutions},
    {"NumberOfRefills", &script::Medication::number_of_refills},
    {"ReasonForSubstitutionCodeUsed", &script::Medication::reason_for_substitution_code_used},
    {"HistoryPrescriberOrderNumber", &script::Medication::history_prescriber_order_number},
    {"ManufacturerName", &script::Medication::manufacturer_name},
    // TransferResponseMedication's REMS elements (RxTransferResponse).
    {"PrescriberCheckedREMS", &script::Medication::prescriber_checked_rems},
    {"REMSPatientRiskCategory", &script::Medication::rems_patient_risk_category},
    {"REMSAuthorizationNumber", &script::Medication::rems_authorization_number}};
constexpr std::pair<std::string_view, std::string script::HistorySource::*> kSourceTexts[] = {
    {"HistorySource/Source/SourceDescription", &script::HistorySource::source_description},
    {"HistorySource/Source/SourceQualifier", &script::HistorySource::source_qualifier},
    {"HistorySource/SourceReference", &script::HistorySource::source_reference},
    {"HistorySource/FillNumber", &script::HistorySource::fill_number},
    {"HistorySource/PaymentType", &script::HistorySource::payment_type}};
constexpr std::pair<std::string_view, std::string script::Identification::*> kSourceIds[] = {
    {"HistorySource/Source/Reference/NCPDPID", &script::Identification::ncpdp_id},
    {"HistorySource/Source/Reference/NPI", &script::Identification::npi}};

// The SCRIPT field a medication's script-element extension `element` fills, or nullptr.
std::string* MedicationText(std::string_view element, script::Medication& m) {
  for (const auto& [name, field] : kMedicationTexts) {
    if (name == element) return &(m.*field);
  }
  auto source = [&]() -> script::HistorySource& {
    if (!m.history_source) m.history_source.emplace();
    return *m.history_source;
  };
  for (const auto& [name, field] : kSourceTexts) {
    if (name == element) return &(source().*field);
  }
  for (const auto& [name, field] : kSourceIds) {
    if (name == element) return &(source().reference.*field);
  }
  return nullptr;
}

// A path prefix of ToNewRx's MedicationRequest and the element of the resource a medication
// was really read from (a MedicationDispense's quantity, a MedicationStatement's dosage, ...).
using Rename = std::pair<std::string, std::string>;

// Who sends a message and who receives it, as the Bundle names them.
struct Routing {
  std::string to, to_qualifier, from, from_qualifier;
};

class BundleMapper {
 public:
  BundleMapper(const fhir::Bundle& bundle, IssueList& issues, const NewRxOptions& options,
               std::string_view relates_to)
      : bundle_(bundle),
        issues_(issues),
        options_(options),
        relates_to_(relates_to),
        resolver_(issues) {
    resolver_.IndexBundle(bundle);
  }

  StatusOr<script::Message> Build() {
    const size_t errors_before = issues_.error_count();
    if (!FindTask()) {
      issues_.Error("Bundle.entry", IssueCode::kRequired,
                    Cat("no Task whose code has a coding in ", kNcpdpTransactionSystem, " or ",
                        kNcpdpResponseSystem,
                        ": the SCRIPT transaction to build (RxFillIndicatorChange, "
                        "RxHistoryRequest, RxHistoryResponse, RxTransferRequest, "
                        "RxTransferResponse, RxTransferConfirm, NewRxRequest, "
                        "NewRxResponseDenied)"));
      return absl::InvalidArgumentError(ToString(issues_.last_added()));
    }
    if (!Built(tx_)) {
      issues_.Error(coding_path_, IssueCode::kNotSupported,
                    tx_.empty() ? Cat("the Task's code \"", coding_->code.substr(0, 40),
                                      "\" names no SCRIPT transaction FHIR → SCRIPT builds")
                                : Cat("FHIR → SCRIPT does not build a ", tx_.substr(0, 40),
                                      " (it builds RxFillIndicatorChange, RxHistoryRequest, "
                                      "RxHistoryResponse, RxTransferRequest, RxTransferResponse, "
                                      "RxTransferConfirm, NewRxRequest and NewRxResponseDenied)"));
      return absl::InvalidArgumentError(ToString(issues_.last_added()));
    }
    script::Message m;
    if (tx_ == "RxFillIndicatorChange") {
      m.body = FillIndicatorChange();
    } else if (tx_ == "RxHistoryRequest") {
      m.body = HistoryRequest();
    } else if (tx_ == "RxHistoryResponse") {
      m.body = HistoryResponse();
    } else if (tx_ == "RxTransferRequest") {
      m.body = TransferRequest();
    } else if (tx_ == "RxTransferResponse") {
      m.body = TransferResponse();
    } else if (tx_ == "RxTransferConfirm") {
      m.body = TransferConfirm();
    } else if (tx_ == "NewRxRequest") {
      m.body = NewRxAsked<script::NewRxRequest>(/*denied=*/false);
    } else {
      m.body = NewRxAsked<script::NewRxResponseDenied>(/*denied=*/true);
    }
    BuildHeader(m.header);
    ReportUnused();
    if (issues_.error_count() > errors_before) {
      for (const Issue& i : issues_) {
        if (i.severity == Severity::kError || i.severity == Severity::kFatal) {
          return absl::InvalidArgumentError(Cat("cannot map to ", tx_, ": ", ToString(i)));
        }
      }
    }
    return m;
  }

 private:
  // ---- The Task ----

  // The Task coded in the transaction or response system (one: a second is an error).
  bool FindTask() {
    for (size_t i = 0; i < bundle_.entry.size(); ++i) {
      const std::optional<fhir::Resource>& r = bundle_.entry[i].resource;
      const fhir::Task* t = r ? r->get<fhir::Task>() : nullptr;
      const fhir::Coding* c = t ? TransactionCoding(*t) : nullptr;
      if (!c) continue;
      const std::string path = Cat("Bundle.entry[", i, "].resource");
      if (task_) {
        issues_.Error(path + ".code", IssueCode::kNotSupported,
                      Cat("a second Task naming a SCRIPT transaction (the first is ", task_path_,
                          "): one message is built per call"));
        continue;
      }
      task_ = t;
      coding_ = c;
      task_path_ = path;
      used_.insert(path);
      coding_path_ = Cat(path, ".code.coding[", c - t->code->coding.data(), "].code");
      tx_ = TransactionOf(*t, *c, resolver_);
      used_inputs_.assign(t->input.size(), false);
    }
    return task_ != nullptr;
  }

  std::string TaskPath(std::string_view element) const { return Cat(task_path_, ".", element); }
  // The SCRIPT element `element` of this transaction, for issues.
  std::string Script(std::string_view element) const {
    if (element.empty()) return Cat("SCRIPT ", tx_);
    if (element.starts_with("Header/")) return Cat("SCRIPT /Message/", element);
    return Cat("SCRIPT /Message/Body/", tx_, "/", element);
  }

  void Dropped(std::string path, std::string_view why) {
    issues_.Warning(std::move(path), IssueCode::kNotSupported, std::string(why));
  }
  void Missing(std::string path, std::string_view what, std::string_view element) {
    issues_.Error(std::move(path), IssueCode::kRequired,
                  Cat(what, " is required: it fills ", Script(element)));
  }

  // The Task's inputs typed `element` (marked used), with their paths.
  std::vector<std::pair<const fhir::TaskInput*, std::string>> Inputs(std::string_view element) {
    std::vector<std::pair<const fhir::TaskInput*, std::string>> out;
    for (size_t i = 0; i < task_->input.size(); ++i) {
      if (!Typed(task_->input[i], element)) continue;
      used_inputs_[i] = true;
      out.emplace_back(&task_->input[i], Cat(task_path_, ".input[", i, "]"));
    }
    return out;
  }

  // The one input typed `element` (a second one is named as not sent), or nullptr; when
  // `required`, an error names the SCRIPT element it fills.
  const fhir::TaskInput* OneInput(std::string_view element, bool required,
                                  std::string* path = nullptr) {
    auto ins = Inputs(element);
    for (size_t k = 1; k < ins.size(); ++k) {
      Dropped(ins[k].second, Cat(Script(element), " is sent once: not sent"));
    }
    if (ins.empty()) {
      if (required) {
        Missing(TaskPath("input"),
                Cat("an input typed ", element, " (", kScriptElementCodeSystem, ")"), element);
      }
      return nullptr;
    }
    if (path) *path = ins[0].second;
    return ins[0].first;
  }

  std::string InputString(std::string_view element, bool required) {
    std::string path;
    const fhir::TaskInput* in = OneInput(element, required, &path);
    if (!in) return {};
    if (in->value_string.empty()) {
      Missing(path + ".valueString", "a valueString", element);
    }
    return in->value_string;
  }

  // Each input typed `element` → its valueString, in order.
  std::vector<std::string> InputStrings(std::string_view element) {
    std::vector<std::string> out;
    for (const auto& [in, path] : Inputs(element)) {
      if (in->value_string.empty()) {
        Missing(path + ".valueString", "a valueString", element);
      } else {
        out.push_back(in->value_string);
      }
    }
    return out;
  }

  // ---- References ----

  // The resource `ref` (at `ref_path`) names, of one of `types`, marked used; an error naming
  // the SCRIPT `element` it would fill when it does not resolve to one.
  fhir::Located Find(const fhir::Reference& ref, const std::string& ref_path,
                     std::string_view element, std::initializer_list<std::string_view> types) {
    fhir::Located l = resolver_.Find(ref.reference);
    if (ref.reference.empty()) {
      Missing(ref_path + ".reference", "a literal reference (to a Bundle entry)", element);
      return {};
    }
    if (!l.resource) {
      issues_.Error(ref_path + ".reference", IssueCode::kNotFound,
                    Cat("cannot resolve \"", ref.reference.substr(0, 128),
                        "\" in the Bundle: it would fill ", Script(element)));
      return {};
    }
    if (std::find(types.begin(), types.end(), l.resource->resource_type()) == types.end()) {
      issues_.Error(ref_path + ".reference", IssueCode::kInvalid,
                    Cat("resolves to a ", l.resource->resource_type(), ", expected a ",
                        *types.begin(), ": it would fill ", Script(element)));
      return {};
    }
    used_.insert(l.path);
    return l;
  }

  // Whether there is a reference at `ref_path`; an error when `required` and there is none.
  bool Present(const std::optional<fhir::Reference>& ref, const std::string& ref_path,
               std::string_view what, std::string_view element, bool required) {
    if (ref) return true;
    if (required) Missing(ref_path, what, element);
    return false;
  }

  // The path of the resource `ref` names, "" when none (reports nothing).
  std::string PathOf(const std::optional<fhir::Reference>& ref) const {
    return ref ? resolver_.Find(ref->reference).path : std::string();
  }

  // ---- Parties ----

  // Adds `scratch`'s issues, each path renamed by `renames`, but the errors that a part at one
  // of `optional` (a path before renaming) is missing: SCRIPT does not require it here.
  void Forward(const IssueList& scratch, const std::vector<std::string>& optional,
               const std::vector<Rename>& renames = {}) {
    for (const Issue& i : scratch) {
      if (i.code == IssueCode::kRequired &&
          std::find(optional.begin(), optional.end(), i.path) != optional.end()) {
        continue;
      }
      Issue out = i;
      for (const auto& [from, to] : renames) {
        if (out.path.starts_with(from)) {
          out.path = to + out.path.substr(from.size());
          break;
        }
      }
      issues_.Add(std::move(out));
    }
  }

  // The script-element extensions of `list` (at `base`): each one `take(element, value, path)`
  // accepts fills its SCRIPT element; every other extension (but RxFlow's DEA schedule, when
  // `dea_schedule_read`) is named as not sent.
  template <typename Take>
  void ScriptElements(const std::vector<fhir::Extension>& list, const std::string& base,
                      Take&& take, bool dea_schedule_read = false) {
    for (size_t i = 0; i < list.size(); ++i) {
      const fhir::Extension& e = list[i];
      const std::string ep = Cat(base, ".extension[", i, "]");
      if (dea_schedule_read && e.url == kDeaScheduleExtension) continue;
      const auto se = parties::ScriptElementOf(e);
      if (se && se->value && !se->value->empty() && take(se->element, *se->value, ep)) continue;
      Dropped(ep, Cat(parties::ExtensionSubject(e), ": not mapped to SCRIPT ", tx_, ": not sent"));
    }
  }

  // `value` into `field`, unless it holds one already (then named as not sent).
  void Once(std::string& field, const std::string& value, const std::string& path,
            std::string_view element) {
    if (field.empty()) {
      field = value;
    } else {
      Dropped(path, Cat("SCRIPT ", element, " is sent once: not sent"));
    }
  }

  // A FHIR date or dateTime → a SCRIPT DateType (Date, else DateTime).
  script::DateValue Date(const std::string& value, const std::string& path,
                         std::string_view element) {
    script::DateValue d;
    if (value.empty()) return d;
    if (internal::IsFullDate(value)) {
      d.date = value;
    } else if (internal::IsXsdDateTime(value)) {
      d.date_time = value;
    } else {
      issues_.Error(path, IssueCode::kValue,
                    Cat("a full date (YYYY-MM-DD) or a UTC dateTime is required for ",
                        Script(element), ", got \"", value.substr(0, 40), "\""));
    }
    return d;
  }

  std::optional<script::Patient> PatientOf(const std::optional<fhir::Reference>& ref,
                                           const std::string& ref_path) {
    if (!Present(ref, ref_path, "the patient (a Patient)", "Patient", true)) return std::nullopt;
    const fhir::Located l = Find(*ref, ref_path, "Patient", {"Patient"});
    if (!l.resource) return std::nullopt;
    fhir::PrescriptionInput in;
    in.patient = *l.resource->get<fhir::Patient>();
    in.patient_path = l.path;
    patient_path_ = l.path;
    script::Patient out = parties::Patient(in, issues_, options_);
    ScriptElements(in.patient.extension, l.path,
                   [&](std::string_view element, const std::string& v, const std::string& ep) {
                     if (element != "LanguageNameCode") return false;
                     Once(out.language_name_code, v, ep, element);
                     return true;
                   });
    return out;
  }

  // A Practitioner, or a PractitionerRole naming one (and its organization, the practice),
  // into `in`.
  bool PractitionerInput(const std::optional<fhir::Reference>& ref, const std::string& ref_path,
                         std::string_view element, bool required, fhir::PrescriptionInput& in) {
    if (!Present(ref, ref_path, "a Practitioner (or a PractitionerRole)", element, required)) {
      return false;
    }
    fhir::Located l = Find(*ref, ref_path, element, {"Practitioner", "PractitionerRole"});
    if (!l.resource) return false;
    if (const auto* role = l.resource->get<fhir::PractitionerRole>()) {
      in.practitioner_role = *role;
      in.practitioner_role_path = l.path;
      if (role->organization) {
        const fhir::Located o = Find(*role->organization, l.path + ".organization",
                                     Cat(element, "/PracticeLocation"), {"Organization"});
        if (o.resource) in.practice = *o.resource->get<fhir::Organization>();
      }
      if (!Present(role->practitioner, l.path + ".practitioner", "the role's practitioner", element,
                   true)) {
        return false;
      }
      l = Find(*role->practitioner, l.path + ".practitioner", element, {"Practitioner"});
      if (!l.resource) return false;
    }
    in.practitioner = *l.resource->get<fhir::Practitioner>();
    in.practitioner_path = l.path;
    return true;
  }

  void ReportPractitionerExtensions(const fhir::PrescriptionInput& in) {
    parties::ReportExtensions(*in.practitioner, in.practitioner_path, issues_);
    if (in.practitioner_role) {
      parties::ReportExtensions(*in.practitioner_role, in.practitioner_role_path, issues_);
    }
  }

  // The prescriber `ref` names (and `recorder`, a Practitioner, as its PrescriberAgent).
  std::optional<script::Prescriber> PrescriberOf(
      const std::optional<fhir::Reference>& ref, const std::string& ref_path,
      std::string_view element, bool required,
      const std::optional<fhir::Reference>& recorder = std::nullopt,
      const std::string& recorder_path = {}) {
    fhir::PrescriptionInput in;
    if (!PractitionerInput(ref, ref_path, element, required, in)) return std::nullopt;
    if (recorder) {
      const fhir::Located r =
          Find(*recorder, recorder_path, Cat(element, "/PrescriberAgent"), {"Practitioner"});
      if (r.resource) {
        in.recorder = *r.resource->get<fhir::Practitioner>();
        in.recorder_path = r.path;
      }
    }
    script::Prescriber out = parties::Prescriber(in, issues_, options_);
    ReportPractitionerExtensions(in);
    return out;
  }

  // A Practitioner → Pharmacist: identification, name, and the address and phones, which
  // a Pharmacist (unlike a Prescriber) may go without.
  std::optional<script::Pharmacist> PharmacistOf(const std::optional<fhir::Reference>& ref,
                                                 const std::string& ref_path, bool required) {
    fhir::PrescriptionInput in;
    if (!PractitionerInput(ref, ref_path, "Pharmacist", required, in)) return std::nullopt;
    IssueList scratch(issues_.max_issues());
    const script::Prescriber p = parties::Prescriber(in, scratch, options_);
    std::vector<std::string> optional = {in.practitioner_path + ".address",
                                         in.practitioner_path + ".telecom"};
    if (!p.identification.empty()) optional.push_back(in.practitioner_path + ".identifier");
    Forward(scratch, optional);
    if (!in.practitioner->telecom.empty() && !p.communication_numbers) {
      Dropped(in.practitioner_path + ".telecom",
              "SCRIPT Pharmacist/CommunicationNumbers needs a phone number first: not sent");
    }
    if (!p.specialty.empty() || p.practice_location) {
      Dropped(in.practitioner_role_path,
              "a Pharmacist has no Specialty or PracticeLocation: the role is not sent");
    }
    ReportPractitionerExtensions(in);
    script::Pharmacist out;
    out.identification = p.identification;
    out.name = p.name;
    out.address = p.address;
    out.communication_numbers = p.communication_numbers;
    return out;
  }

  // The pharmacy `ref` names; `path` gets where it is in the Bundle.
  std::optional<script::Pharmacy> PharmacyOf(const std::optional<fhir::Reference>& ref,
                                             const std::string& ref_path, std::string_view element,
                                             bool required, std::string* path = nullptr) {
    if (!Present(ref, ref_path, "the pharmacy (an Organization)", element, required)) {
      return std::nullopt;
    }
    const fhir::Located l = Find(*ref, ref_path, element, {"Organization"});
    if (!l.resource) return std::nullopt;
    fhir::PrescriptionInput in;
    in.pharmacy = *l.resource->get<fhir::Organization>();
    in.pharmacy_path = l.path;
    if (path) *path = l.path;
    script::Pharmacy out = parties::Pharmacy(in, issues_, options_);
    parties::ReportExtensions(*in.pharmacy, l.path, issues_);
    return out;
  }

  // ---- Medications ----

  // A MedicationRequest (at `path`) → the medication `element`, as ToNewRx maps a prescribed
  // medication (parties::Medication) but with Quantity, WrittenDate and Sig optional, and
  // Substitutions and NumberOfRefills sent only when the request has them; its script-element
  // extensions fill the elements with no FHIR home. `renames`: what the request was made from.
  script::Medication MedicationOf(const fhir::MedicationRequest& mr, const std::string& path,
                                  std::string_view element, const std::vector<Rename>& renames = {},
                                  const std::string& extensions_path = {}) {
    fhir::PrescriptionInput in;
    in.medication_request = mr;
    in.medication_request_path = path;
    if (mr.medication.reference) {
      const fhir::Located l = Find(*mr.medication.reference, path + ".medication.reference",
                                   Cat(element, "/DrugCoded"), {"Medication"});
      if (l.resource) {
        in.medication = *l.resource->get<fhir::Medication>();
        in.medication_path = l.path;
      }
    }
    IssueList scratch(issues_.max_issues());
    std::string schedule;
    script::Medication m = parties::Medication(in, scratch, options_, schedule);
    Forward(scratch,
            {path + ".dispenseRequest.quantity", path + ".authoredOn", path + ".dosageInstruction"},
            renames);
    // Of these transactions' medication types only RxHistoryResponse's
    // (HistoryDispensedMedication, HistoryPrescribedMedication) have CompoundInformation:
    // elsewhere a compound goes as its description and drug code, and is named here.
    if (m.compound_information && element != "MedicationDispensed" &&
        element != "MedicationPrescribed") {
      m.compound_information.reset();
      Dropped(
          in.medication_path.empty() ? path + ".medication" : in.medication_path + ".ingredient",
          Cat(Script(element),
              " has no CompoundInformation: the compound's ingredients are not sent"));
    }
    if (!mr.substitution) m.substitutions.clear();
    if (!mr.dispense_request || !mr.dispense_request->number_of_repeats_allowed) {
      m.number_of_refills.clear();
    }
    if (in.medication) parties::ReportExtensions(*in.medication, in.medication_path, issues_, true);
    MedicationElements(mr.extension, extensions_path.empty() ? path : extensions_path, element, m);
    return m;
  }

  // A medication's script-element extensions (kMedicationTexts, the HistorySource parts,
  // DrugCoverageStatusCode, the dates and a MedicationStatement's Quantity).
  void MedicationElements(const std::vector<fhir::Extension>& list, const std::string& base,
                          std::string_view element, script::Medication& m,
                          std::string* previously_filled = nullptr) {
    bool snomed_version_seen = false, fmt_version_seen = false, term_type_seen = false;
    ScriptElements(
        list, base,
        [&](std::string_view el, const std::string& v, const std::string& ep) {
          if (std::string* field = MedicationText(el, m)) {
            Once(*field, v, ep, Cat(element, "/", el));
          } else if (el == "DrugCoded/DrugDBCode/Qualifier") {
            // The RxNorm code's term type, sent instead of the options' (once).
            if (!m.drug_coded || !m.drug_coded->drug_db_code) {
              Dropped(ep, Cat("SCRIPT ", element, "/", el,
                              " is sent only with an RxNorm coding: not sent"));
            } else if (term_type_seen) {
              Dropped(ep, Cat("SCRIPT ", element, "/", el, " is sent once: not sent"));
            } else if (!IsRxNormTermType(v)) {
              issues_.Error(ep, IssueCode::kValue, NotAnRxNormTermType(v));
            } else {
              term_type_seen = true;
              m.drug_coded->drug_db_code->qualifier = v;
            }
          } else if (el == "Sig/CodeSystem/SNOMEDVersion" || el == "Sig/CodeSystem/FMTVersion") {
            // Sent instead of the options' versions (each once), with a structured Sig only.
            const bool snomed = el == "Sig/CodeSystem/SNOMEDVersion";
            bool& seen = snomed ? snomed_version_seen : fmt_version_seen;
            if (!m.sig || !m.sig->structured()) {
              Dropped(ep, Cat("SCRIPT ", element, "/", el,
                              " is sent only with a structured Sig: not sent"));
            } else if (seen) {
              Dropped(ep, Cat("SCRIPT ", element, "/", el, " is sent once: not sent"));
            } else {
              seen = true;
              (snomed ? m.sig->snomed_version : m.sig->fmt_version) = v;
            }
          } else if (el == "DrugCoverageStatusCode") {
            m.drug_coverage_status_code.push_back(v);
          } else if (el == "LastFillDate" || el == "WrittenDate") {
            script::DateValue& d = el == "LastFillDate" ? m.last_fill_date : m.written_date;
            if (!d.empty()) {
              Dropped(ep, Cat("SCRIPT ", element, "/", el, " is sent once: not sent"));
            } else {
              d = Date(v, ep, Cat(element, "/", el));
            }
          } else if (el == "Quantity/Value" || el == "Quantity/QuantityUnitOfMeasure/Code") {
            if (!m.quantity) m.quantity.emplace();
            Once(el == "Quantity/Value" ? m.quantity->value : m.quantity->unit_of_measure_code, v,
                 ep, Cat(element, "/", el));
          } else if (el == "LotNumber/LotNumber") {
            m.lot_number.emplace_back().lot_number = v;
          } else if (el == "LotNumber/LotExpiration") {
            // Paired with the LotNumber extension before it (SCRIPT → FHIR writes them so).
            if (m.lot_number.empty() || !m.lot_number.back().lot_expiration.empty()) {
              Dropped(ep, Cat("SCRIPT ", element,
                              "/LotNumber/LotExpiration comes after its LotNumber/LotNumber "
                              "extension: not sent"));
            } else {
              m.lot_number.back().lot_expiration = Date(v, ep, Cat(element, "/", el));
            }
          } else if (el == "PrescriptionPreviouslyFilled" && previously_filled) {
            Once(*previously_filled, v, ep, "MedicationTransferred/PrescriptionPreviouslyFilled");
          } else {
            return false;
          }
          return true;
        },
        /*dea_schedule_read=*/true);
  }

  // The elements of a resource a medication is read from that SCRIPT has no element for.
  void Unmapped(std::initializer_list<std::pair<bool, std::string_view>> elements,
                const std::string& path, std::string_view element) {
    for (const auto& [present, name] : elements) {
      if (present) {
        Dropped(Cat(path, ".", name), Cat(Script(element), " has no element for it: not sent"));
      }
    }
  }

  // A MedicationDispense (a dispensed entry of a history or a transfer) → Medication: what a
  // MedicationRequest would hold is read as ToNewRx reads it; whenHandedOver → LastFillDate;
  // the performer → its Pharmacy (unless it is `from`, a transfer's sending pharmacy); an
  // authorizingPrescription by PrescriberOrderNumber → HistoryPrescriberOrderNumber.
  script::Medication DispensedOf(const fhir::MedicationDispense& d, const std::string& path,
                                 std::string_view element, const std::string& from = {}) {
    fhir::MedicationRequest mr;
    mr.medication = d.medication;
    if (d.quantity || d.days_supply) {
      fhir::DispenseRequest& dr = mr.dispense_request.emplace();
      dr.quantity = d.quantity;
      dr.expected_supply_duration = d.days_supply;
    }
    mr.note = d.note;
    mr.dosage_instruction = d.dosage_instruction;
    script::Medication m =
        MedicationOf(mr, path, element,
                     {{path + ".dispenseRequest.quantity", path + ".quantity"},
                      {path + ".dispenseRequest.expectedSupplyDuration", path + ".daysSupply"}});
    m.last_fill_date =
        Date(d.when_handed_over, path + ".whenHandedOver", Cat(element, "/LastFillDate"));
    MedicationElements(d.extension, path, element, m);
    for (size_t i = 0; i < d.performer.size(); ++i) {
      const std::string pp = Cat(path, ".performer[", i, "]");
      if (i > 0) {
        Dropped(pp, Cat(Script(element), " has one Pharmacy: not sent"));
      } else if (from.empty() || PathOf(d.performer[0]) != from) {
        m.pharmacy = PharmacyOf(d.performer[0], pp, Cat(element, "/Pharmacy"), false);
      } else {
        used_.insert(from);
      }
    }
    for (size_t i = 0; i < d.authorizing_prescription.size(); ++i) {
      const fhir::Reference& r = d.authorizing_prescription[i];
      if (r.identifier && r.identifier->system == kPrescriberOrderNumberSystem) {
        Once(m.history_prescriber_order_number, r.identifier->value,
             Cat(path, ".authorizingPrescription[", i, "]"),
             Cat(element, "/HistoryPrescriberOrderNumber"));
      } else if (r.reference.empty()) {
        Dropped(Cat(path, ".authorizingPrescription[", i, "]"),
                Cat("only a prescription named by its prescriber order number (",
                    kPrescriberOrderNumberSystem, ") is sent: not sent"));
      }
    }
    Unmapped({{!d.identifier.empty(), "identifier"},
              {d.not_performed_reason.has_value(), "notPerformedReason"},
              {d.location.has_value(), "location"},
              {d.type.has_value(), "type"},
              {!d.when_prepared.empty(), "whenPrepared"}},
             path, element);
    return m;
  }

  // A MedicationStatement (a prescribed entry of a history) → Medication: what a
  // MedicationRequest would hold is read as ToNewRx reads it (effectiveDateTime →
  // WrittenDate, dosage → Sig); informationSource → its Prescriber and Pharmacy.
  script::Medication StatementOf(const fhir::MedicationStatement& s, const std::string& path,
                                 std::string_view element) {
    fhir::MedicationRequest mr;
    mr.medication = s.medication;
    mr.reason = s.reason;
    mr.note = s.note;
    mr.dosage_instruction = s.dosage;
    mr.authored_on = s.effective_date_time;
    script::Medication m = MedicationOf(mr, path, element,
                                        {{path + ".dosageInstruction", path + ".dosage"},
                                         {path + ".authoredOn", path + ".effectiveDateTime"}});
    MedicationElements(s.extension, path, element, m);
    for (size_t i = 0; i < s.information_source.size(); ++i) {
      const std::string sp = Cat(path, ".informationSource[", i, "]");
      const fhir::Located l = resolver_.Find(s.information_source[i].reference);
      const bool organization = l.resource && l.resource->get<fhir::Organization>();
      if (organization && !m.pharmacy) {
        m.pharmacy = PharmacyOf(s.information_source[i], sp, Cat(element, "/Pharmacy"), false);
      } else if (!organization && !m.prescriber) {
        m.prescriber =
            PrescriberOf(s.information_source[i], sp, Cat(element, "/Prescriber"), false);
      } else {
        Dropped(sp, Cat(Script(element), " has one Prescriber and one Pharmacy: not sent"));
      }
    }
    Unmapped({{!s.identifier.empty(), "identifier"}}, path, element);
    return m;
  }

  // A MedicationRequest's identifiers: a prescriber order number and an Rx reference number
  // go to `order_number` and `rx_reference`; an earlier message's id is not resent.
  void RequestIdentifiers(const fhir::MedicationRequest& mr, const std::string& path,
                          std::string& order_number, std::string& rx_reference,
                          std::string_view where) {
    for (size_t i = 0; i < mr.identifier.size(); ++i) {
      const fhir::Identifier& id = mr.identifier[i];
      const std::string ip = Cat(path, ".identifier[", i, "]");
      if (id.system == kPrescriberOrderNumberSystem) {
        Once(order_number, id.value, ip, Cat(where, "PrescriberOrderNumber"));
      } else if (id.system == kRxReferenceSystem) {
        Once(rx_reference, id.value, ip, Cat(where, "RxReferenceNumber"));
      } else if (id.system == kMessageIdSystem) {
        Dropped(ip,
                "an earlier SCRIPT message's id is not resent (each message gets its own): "
                "not sent");
      } else {
        Dropped(ip, Cat("only a prescriber order number (", kPrescriberOrderNumberSystem,
                        ") or an Rx reference number is sent: not sent"));
      }
    }
  }

  // The elements of a MedicationRequest SCRIPT has no element for here.
  void UnmappedRequest(const fhir::MedicationRequest& mr, const std::string& path,
                       std::string_view element) {
    Unmapped({{!mr.category.empty(), "category"},
              {mr.encounter.has_value(), "encounter"},
              {mr.course_of_therapy_type.has_value(), "courseOfTherapyType"},
              {!mr.based_on.empty(), "basedOn"},
              {mr.prior_prescription.has_value(), "priorPrescription"},
              {mr.group_identifier.has_value(), "groupIdentifier"},
              {mr.status_reason.has_value(), "statusReason"},
              {!mr.insurance.empty(), "insurance"},
              {!mr.rendered_dosage_instruction.empty(), "renderedDosageInstruction"}},
             path, element);
  }

  // The MedicationRequest `ref` names (at `ref_path`), with its path.
  const fhir::MedicationRequest* RequestOf(const std::optional<fhir::Reference>& ref,
                                           const std::string& ref_path, std::string_view element,
                                           bool required, std::string& path) {
    if (!Present(ref, ref_path, "a MedicationRequest", element, required)) return nullptr;
    const fhir::Located l = Find(*ref, ref_path, element, {"MedicationRequest"});
    if (!l.resource) return nullptr;
    path = l.path;
    return l.resource->get<fhir::MedicationRequest>();
  }

  // ---- Coverages, Response, header ----

  // Task.insurance → BenefitsCoordination as ToNewRx maps a Coverage, each with the
  // BenefitsCoordination/Consent input of its position (a Consent beyond the Coverages: a
  // BenefitsCoordination of its own).
  std::vector<script::BenefitsCoordination> Benefits() {
    std::vector<script::BenefitsCoordination> out;
    for (size_t i = 0; i < task_->insurance.size(); ++i) {
      const std::string rp = Cat(task_path_, ".insurance[", i, "]");
      const fhir::Located l = Find(task_->insurance[i], rp, "BenefitsCoordination", {"Coverage"});
      if (!l.resource) continue;
      fhir::CoverageInput in;
      in.coverage = *l.resource->get<fhir::Coverage>();
      in.path = l.path;
      if (in.coverage.insurer) {
        const fhir::Located o = Find(*in.coverage.insurer, l.path + ".insurer",
                                     "BenefitsCoordination/PayerName", {"Organization"});
        if (o.resource) {
          in.insurer = *o.resource->get<fhir::Organization>();
          in.insurer_path = o.path;
        }
      }
      in.subscriber_is_patient =
          !patient_path_.empty() && PathOf(in.coverage.subscriber) == patient_path_;
      out.push_back(parties::Benefits(in, issues_, options_));
    }
    const std::vector<std::string> consents = InputStrings("BenefitsCoordination/Consent");
    for (size_t i = 0; i < consents.size(); ++i) {
      if (i == out.size()) out.emplace_back();
      out[i].consent = consents[i];
    }
    return out;
  }

  // The Response: the Task's code (Approved, Denied, ...; `choice`: a Response choice), its
  // statusReason codes, its description (Approved: Note; else DenialReason) and the
  // Response/ReferenceNumber input.
  script::Response ResponseOf(bool choice) {
    script::Response r;
    if (choice) r.kind = coding_->code;
    if (task_->status_reason) {
      for (size_t i = 0; i < task_->status_reason->coding.size(); ++i) {
        const fhir::Coding& c = task_->status_reason->coding[i];
        if (c.system == kNcpdpReasonSystem) {
          r.reason_code.push_back(c.code);
        } else {
          Dropped(Cat(TaskPath("statusReason.coding["), i, "]"),
                  Cat("only a reason coded in ", kNcpdpReasonSystem, " is sent: not sent"));
        }
      }
    }
    (r.kind == "Approved" ? r.note : r.denial_reason) = task_->description;
    description_used_ = true;
    r.reference_number = InputString("Response/ReferenceNumber", false);
    return r;
  }

  // The Task's focus when it names an earlier message (a Task, or a prescription, by
  // identifier): RelatesToMessageID, PrescriberOrderNumber, RxReferenceNumber.
  void LogicalFocus() {
    if (!task_->focus || !task_->focus->reference.empty()) return;
    const std::optional<fhir::Identifier>& id = task_->focus->identifier;
    if (!id) return;
    const std::string path = TaskPath("focus.identifier");
    if (id->system == kMessageIdSystem) {
      Once(relates_to_message_id_, id->value, path, "Header/RelatesToMessageID");
    } else if (id->system == kPrescriberOrderNumberSystem) {
      Once(prescriber_order_number_, id->value, path, "Header/PrescriberOrderNumber");
    } else if (id->system == kRxReferenceSystem) {
      Once(rx_reference_number_, id->value, path, "Header/RxReferenceNumber");
    } else {
      Dropped(path,
              "only a message id, a prescriber order number or an Rx reference number "
              "is sent from a focus given by identifier: not sent");
    }
    focus_used_ = true;
  }

  static std::string Id(const std::optional<script::Pharmacy>& p) {
    return p ? p->identification.ncpdp_id : std::string();
  }
  static std::string Id(const std::optional<script::Prescriber>& p) {
    return p ? p->identification.npi : std::string();
  }

  void BuildHeader(script::Header& h) {
    h.to = options_.to.empty() ? routing_.to : options_.to;
    h.to_qualifier = options_.to.empty() ? routing_.to_qualifier
                                         : (options_.to_qualifier.empty() ? std::string("P")
                                                                          : options_.to_qualifier);
    h.from = options_.from.empty() ? routing_.from : options_.from;
    h.from_qualifier = options_.from.empty() ? routing_.from_qualifier : options_.from_qualifier;
    if (h.to.empty()) {
      issues_.Error("options.to", IssueCode::kRequired,
                    Cat("SCRIPT Header/To (the receiver's routing id) is required: the Bundle "
                        "names no receiver of an ",
                        tx_, " to take it from"));
    }
    if (h.from.empty()) {
      issues_.Error("options.from", IssueCode::kRequired,
                    Cat("SCRIPT Header/From (the sender's routing id) is required: the Bundle "
                        "names no sender of an ",
                        tx_, " to take it from"));
    }
    h.message_id = options_.message_id;
    if (options_.message_id.empty())
      Missing("options.message_id", "a message id", "Header/MessageID");
    h.sent_time = options_.sent_time;
    if (options_.sent_time.empty())
      Missing("options.sent_time", "the sent time", "Header/SentTime");
    h.sender_software_developer = options_.sender_software_developer;
    h.sender_software_product = options_.sender_software_product;
    h.sender_software_version_release = options_.sender_software_version;
    if (options_.test_message) h.test_message = "1";
    h.relates_to_message_id =
        relates_to_.empty() ? relates_to_message_id_ : std::string(relates_to_);
    h.prescriber_order_number = prescriber_order_number_;
    h.rx_reference_number = rx_reference_number_;
  }

  // What of the Bundle no SCRIPT element received: the Task's other inputs and elements, and
  // the entries nothing used.
  void ReportUnused() {
    for (size_t i = 0; i < used_inputs_.size(); ++i) {
      if (used_inputs_[i]) continue;
      Dropped(Cat(task_path_, ".input[", i, "]"),
              Cat(Script(""), " has no element for an input of this type: not sent"));
    }
    Unmapped({{!task_->description.empty() && !description_used_, "description"},
              {!task_->note.empty() && !note_used_, "note"},
              {task_->focus.has_value() && !focus_used_, "focus"},
              {task_->for_.has_value() && !for_used_, "for"},
              {task_->requester.has_value() && !parties_used_, "requester"},
              {task_->owner.has_value() && !parties_used_, "owner"},
              {!task_->insurance.empty() && !insurance_used_, "insurance"}},
             task_path_, "");
    for (size_t i = 0; i < bundle_.entry.size(); ++i) {
      const std::string path = Cat("Bundle.entry[", i, "].resource");
      if (!bundle_.entry[i].resource || used_.count(path)) continue;
      Dropped(path, Cat("nothing the ", tx_, " is built from names this ",
                        bundle_.entry[i].resource->resource_type(), ": not sent"));
    }
  }

  // ---- The transactions ----

  script::RxFillIndicatorChange FillIndicatorChange() {
    LogicalFocus();
    script::RxFillIndicatorChange out;
    out.rx_fill_indicator = InputString("RxFillIndicator", true);
    return out;
  }

  script::RxHistoryRequest HistoryRequest() {
    script::RxHistoryRequest out;
    LogicalFocus();
    out.patient = PatientOf(task_->for_, TaskPath("for")).value_or(script::Patient{});
    out.prescriber = PrescriberOf(task_->requester, TaskPath("requester"), "Prescriber", false);
    std::string path;
    if (const fhir::TaskInput* in = OneInput("Pharmacy", false, &path)) {
      out.pharmacy = PharmacyOf(in->value_reference, path + ".valueReference", "Pharmacy", true);
    }
    out.requested_dates = RequestedDates();
    out.pdmp_states_requested = InputStrings("PDMPStatesRequested/StateProvince");
    out.requestor_role = InputString("RequestorRole", false);
    out.benefits_coordination = Benefits();
    for_used_ = parties_used_ = insurance_used_ = true;
    routing_.from = Id(out.prescriber);
    routing_.from_qualifier = "D";
    return out;
  }

  script::DateRange RequestedDates() {
    script::DateRange d;
    std::string path;
    const fhir::TaskInput* in = OneInput("RequestedDates", true, &path);
    if (!in) return d;
    if (!in->value_period) {
      Missing(path + ".valuePeriod", "a valuePeriod", "RequestedDates");
      return d;
    }
    d.start_date =
        Date(in->value_period->start, path + ".valuePeriod.start", "RequestedDates/StartDate");
    d.end_date = Date(in->value_period->end, path + ".valuePeriod.end", "RequestedDates/EndDate");
    return d;
  }

  script::RxHistoryResponse HistoryResponse() {
    script::RxHistoryResponse out;
    LogicalFocus();
    out.response = ResponseOf(/*choice=*/true);
    out.patient = PatientOf(task_->for_, TaskPath("for")).value_or(script::Patient{});
    for (size_t i = 0; i < bundle_.entry.size(); ++i) {
      const std::optional<fhir::Resource>& r = bundle_.entry[i].resource;
      const std::string path = Cat("Bundle.entry[", i, "].resource");
      if (!r) continue;
      if (const auto* d = r->get<fhir::MedicationDispense>()) {
        if (!AboutPatient(d->subject, path)) continue;
        out.medication_dispensed.push_back(DispensedOf(*d, path, "MedicationDispensed"));
      } else if (const auto* s = r->get<fhir::MedicationStatement>()) {
        if (!AboutPatient(s->subject, path)) continue;
        out.medication_prescribed.push_back(StatementOf(*s, path, "MedicationPrescribed"));
      }
    }
    out.requested_dates = RequestedDates();
    out.benefits_coordination = Benefits();
    for_used_ = insurance_used_ = true;
    return out;
  }

  // Whether an entry's subject (at `path`) is the patient: else it is named as not sent.
  bool AboutPatient(const std::optional<fhir::Reference>& subject, const std::string& path) {
    used_.insert(path);
    if (!patient_path_.empty() && PathOf(subject) == patient_path_) return true;
    Dropped(path + ".subject", Cat("not about the Task's patient: not sent in the ", tx_));
    return false;
  }

  // A transfer's two pharmacies: Task.requester (the one receiving the prescription: TRANSFER
  // TO PHARMACY) and Task.owner (TRANSFER FROM PHARMACY), in their Bundle order; and the
  // Pharmacist input. Routing: from the sender `to_sends` says, to the other.
  std::vector<script::Pharmacy> TransferPharmacies(std::optional<script::Pharmacist>& pharmacist,
                                                   bool pharmacist_required, bool to_sends) {
    std::string to_path, from_path;
    auto to = PharmacyOf(task_->requester, TaskPath("requester"), "Pharmacy", true, &to_path);
    auto from = PharmacyOf(task_->owner, TaskPath("owner"), "Pharmacy", true, &from_path);
    from_path_ = from_path;
    parties_used_ = true;
    std::vector<script::Pharmacy> out;
    if (to) to->transfer_type = "TRANSFER TO PHARMACY";
    if (from) from->transfer_type = "TRANSFER FROM PHARMACY";
    std::vector<std::optional<script::Pharmacy>*> order = {&to, &from};
    if (to && from && EntryIndex(from_path) < EntryIndex(to_path)) std::swap(order[0], order[1]);
    for (const std::optional<script::Pharmacy>* p : order) {
      if (*p) out.push_back(**p);
    }
    std::string path;
    const fhir::TaskInput* in = OneInput("Pharmacist", pharmacist_required, &path);
    if (in) pharmacist = PharmacistOf(in->value_reference, path + ".valueReference", true);
    routing_.to = to_sends ? Id(from) : Id(to);
    routing_.from = to_sends ? Id(to) : Id(from);
    routing_.to_qualifier = routing_.from_qualifier = "P";
    return out;
  }

  static size_t EntryIndex(const std::string& path) {
    const size_t open = path.find('[');
    return open == std::string::npos ? 0 : std::stoul(path.substr(open + 1));
  }

  script::RxTransferRequest TransferRequest() {
    script::RxTransferRequest out;
    out.patient = PatientOf(task_->for_, TaskPath("for")).value_or(script::Patient{});
    for_used_ = true;
    out.pharmacy = TransferPharmacies(out.pharmacist, false, /*to_sends=*/true);
    if (task_->focus && task_->focus->reference.empty()) {
      LogicalFocus();
    } else if (task_->focus) {
      std::string path;
      const fhir::MedicationRequest* mr =
          RequestOf(task_->focus, TaskPath("focus"), "MedicationTransferRequested", false, path);
      focus_used_ = true;
      if (mr) {
        out.medication_transfer_requested = MedicationOf(*mr, path, "MedicationTransferRequested");
        out.prescriber = PrescriberOf(mr->requester, path + ".requester", "Prescriber", false,
                                      mr->recorder, path + ".recorder");
        std::string order_number, rx_reference;
        RequestIdentifiers(*mr, path, order_number, rx_reference, "Header/");
        prescriber_order_number_ = order_number;
        rx_reference_number_ = rx_reference;
        UnmappedRequest(*mr, path, "MedicationTransferRequested");
        if (mr->dispense_request && mr->dispense_request->dispenser) {
          UsedIfSame(mr->dispense_request->dispenser, from_path_,
                     path + ".dispenseRequest.dispenser");
        }
      }
    }
    std::string path;
    if (const fhir::TaskInput* in = OneInput("Prescriber", false, &path)) {
      if (out.prescriber) {
        Dropped(path,
                "SCRIPT RxTransferRequest has one Prescriber (the transferred "
                "prescription's requester): not sent");
      } else {
        out.prescriber =
            PrescriberOf(in->value_reference, path + ".valueReference", "Prescriber", true);
      }
    }
    out.transfer_request = InputString("TransferRequest", true);
    return out;
  }

  // A reference that should name the Bundle entry at `expected` (the dispenser of a
  // transferred prescription is a transfer's pharmacy): named when it names another.
  void UsedIfSame(const std::optional<fhir::Reference>& ref, const std::string& expected,
                  const std::string& ref_path) {
    if (PathOf(ref) != expected) {
      Dropped(ref_path, Cat("not one of the transfer's pharmacies (Task.requester, Task.owner): "
                            "not sent"));
    }
  }

  script::RxTransferResponse TransferResponse() {
    script::RxTransferResponse out;
    LogicalFocus();
    out.response = ResponseOf(/*choice=*/true);
    out.patient = PatientOf(task_->for_, TaskPath("for")).value_or(script::Patient{});
    for_used_ = insurance_used_ = true;
    out.pharmacy = TransferPharmacies(out.pharmacist, false, /*to_sends=*/false);
    for (const auto& [in, path] : Inputs("MedicationTransferred")) {
      std::string mr_path;
      const fhir::MedicationRequest* mr = RequestOf(in->value_reference, path + ".valueReference",
                                                    "MedicationTransferred", true, mr_path);
      if (mr) out.medication_transferred.push_back(Transferred(*mr, mr_path));
    }
    out.transfer_request = InputString("TransferRequest", true);
    out.benefits_coordination = Benefits();
    return out;
  }

  // One transferred prescription (a MedicationRequest, its requester the prescriber) and the
  // MedicationDispenses whose authorizingPrescription names it, in Bundle order.
  script::MedicationTransferred Transferred(const fhir::MedicationRequest& mr,
                                            const std::string& path) {
    script::MedicationTransferred x;
    const std::string element = "MedicationTransferred/MedicationPrescribed";
    fhir::MedicationRequest plain = mr;
    plain.extension.clear();  // read below, with PrescriptionPreviouslyFilled
    x.medication_prescribed = MedicationOf(plain, path, element);
    MedicationElements(mr.extension, path, element, x.medication_prescribed,
                       &x.prescription_previously_filled);
    x.medication_prescribed.prescriber =
        PrescriberOf(mr.requester, path + ".requester", Cat(element, "/Prescriber"), false,
                     mr.recorder, path + ".recorder");
    std::string order_number;
    RequestIdentifiers(mr, path, order_number, x.medication_prescribed.rx_reference_number,
                       Cat(element, "/"));
    if (!order_number.empty())
      x.medication_prescribed.history_prescriber_order_number = order_number;
    UnmappedRequest(mr, path, element);
    for (size_t i = 0; i < bundle_.entry.size(); ++i) {
      const std::optional<fhir::Resource>& r = bundle_.entry[i].resource;
      const auto* d = r ? r->get<fhir::MedicationDispense>() : nullptr;
      if (!d) continue;
      const bool fills = std::any_of(
          d->authorizing_prescription.begin(), d->authorizing_prescription.end(),
          [&](const fhir::Reference& ref) { return resolver_.Find(ref.reference).path == path; });
      if (!fills) continue;
      const std::string dp = Cat("Bundle.entry[", i, "].resource");
      used_.insert(dp);
      x.medication_dispensed.push_back(
          DispensedOf(*d, dp, "MedicationTransferred/MedicationDispensed", from_path_));
    }
    return x;
  }

  script::RxTransferConfirm TransferConfirm() {
    script::RxTransferConfirm out;
    LogicalFocus();
    out.patient = PatientOf(task_->for_, TaskPath("for")).value_or(script::Patient{});
    for_used_ = true;
    std::optional<script::Pharmacist> pharmacist;
    out.pharmacy = TransferPharmacies(pharmacist, true, /*to_sends=*/true);
    out.pharmacist = pharmacist.value_or(script::Pharmacist{});
    out.rx_fill_confirm_indicator = InputString("RxFillConfirmIndicator", true);
    out.transfer_request = InputString("TransferRequest", true);
    return out;
  }

  // NewRxRequest and NewRxResponseDenied: the proposed MedicationRequest (the Task's focus),
  // its subject, requester (the prescriber, its recorder the PrescriberAgent) and dispenser
  // (the pharmacy), its priority (UrgencyIndicatorCode) and identifiers; the Task's note.
  template <typename Tx>
  Tx NewRxAsked(bool denied) {
    Tx out;
    if constexpr (std::is_same_v<Tx, script::NewRxResponseDenied>) {
      out.response = ResponseOf(/*choice=*/false);
    }
    std::string path;
    const fhir::MedicationRequest* mr =
        RequestOf(task_->focus, TaskPath("focus"), "MedicationRequested", true, path);
    focus_used_ = for_used_ = parties_used_ = true;
    if (!mr) return out;
    out.patient = PatientOf(mr->subject, path + ".subject").value_or(script::Patient{});
    auto prescriber = PrescriberOf(mr->requester, path + ".requester", "Prescriber", true,
                                   mr->recorder, path + ".recorder");
    if (prescriber) out.prescriber = std::move(*prescriber);
    const std::optional<fhir::Reference> dispenser =
        mr->dispense_request ? mr->dispense_request->dispenser : std::nullopt;
    auto pharmacy = PharmacyOf(dispenser, path + ".dispenseRequest.dispenser", "Pharmacy", true);
    if (pharmacy) out.pharmacy = std::move(*pharmacy);
    out.medication_requested = MedicationOf(*mr, path, "MedicationRequested");
    RequestIdentifiers(*mr, path, prescriber_order_number_, rx_reference_number_, "Header/");
    UnmappedRequest(*mr, path, "MedicationRequested");
    if (mr->priority == "routine") {
      out.urgency_indicator_code = "S";
    } else if (mr->priority == "urgent" || mr->priority == "stat" || mr->priority == "asap") {
      out.urgency_indicator_code = "X";
    }
    std::string note;
    for (const fhir::Annotation& a : task_->note) {
      if (!note.empty()) note += " ";
      note += a.text;
    }
    out.note = note;
    note_used_ = true;
    const std::string& npi = out.prescriber.identification.npi;
    const std::string& ncpdp = out.pharmacy.identification.ncpdp_id;
    routing_ = denied ? Routing{ncpdp, "P", npi, "D"} : Routing{npi, "D", ncpdp, "P"};
    return out;
  }

  const fhir::Bundle& bundle_;
  IssueList& issues_;
  const NewRxOptions& options_;
  std::string_view relates_to_;
  fhir::Resolver resolver_;

  const fhir::Task* task_ = nullptr;
  const fhir::Coding* coding_ = nullptr;
  std::string task_path_, coding_path_, tx_;
  std::string patient_path_, from_path_;
  std::vector<bool> used_inputs_;
  std::set<std::string> used_;  // the paths of the entries a SCRIPT element received
  bool description_used_ = false, note_used_ = false, focus_used_ = false, for_used_ = false,
       parties_used_ = false, insurance_used_ = false;
  std::string relates_to_message_id_, prescriber_order_number_, rx_reference_number_;
  Routing routing_;
};

}  // namespace

std::string BundleTransaction(const fhir::Bundle& bundle) {
  IssueList scratch;
  fhir::Resolver resolver(scratch);
  resolver.IndexBundle(bundle);
  for (const fhir::BundleEntry& e : bundle.entry) {
    const fhir::Task* t = e.resource ? e.resource->get<fhir::Task>() : nullptr;
    const fhir::Coding* c = t ? TransactionCoding(*t) : nullptr;
    if (!c) continue;
    std::string name = TransactionOf(*t, *c, resolver);
    if (c->system == kNcpdpTransactionSystem || Built(name)) return name;
  }
  return {};
}

StatusOr<script::Message> FromFhirBundle(const fhir::Bundle& bundle, IssueList& issues,
                                         const NewRxOptions& options,
                                         std::string_view relates_to_message_id) {
  return BundleMapper(bundle, issues, options, relates_to_message_id).Build();
}

}  // namespace rxflow::mapping
