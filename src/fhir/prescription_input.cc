// SPDX-License-Identifier: Apache-2.0
// Resolves a prescription's resources from the request envelope or a Bundle.
#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <absl/strings/match.h>
#include <simdjson.h>

#include "rxflow/fhir/json.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/mapping/codes.h"

#include "fhir/json_reader.h"
#include "fhir/resolver.h"

namespace rxflow::fhir {
namespace {

constexpr std::string_view kEnvelopeKeys[] = {"medication_request", "patient",     "practitioner",
                                              "practitioner_role",  "pharmacy",    "medication",
                                              "allergies",          "observations"};
// The envelope members that are arrays of resources.
bool IsListKey(std::string_view key) { return key == "allergies" || key == "observations"; }

}  // namespace

std::string_view ExpectedType(std::string_view key) {
  if (key == "medication_request") return "MedicationRequest";
  if (key == "patient") return "Patient";
  if (key == "practitioner") return "Practitioner";
  if (key == "practitioner_role") return "PractitionerRole";
  if (key == "pharmacy") return "Organization";
  if (key == "medication") return "Medication";
  if (key == "allergies") return "AllergyIntolerance";
  if (key == "observations") return "Observation";
  return "";
}

namespace {

// Moves a resolved resource out of the parsed document the first time it is used, and
// copies that first value when it is used again (one Organization as both pharmacy and
// practice: moving it out twice left the second empty).
using Taken = std::vector<std::pair<const Resource*, const void*>>;  // resource → first use
template <typename T>
void Take(const Resource* r, T& out, Taken& taken) {
  for (const auto& [resource, first] : taken) {
    if (resource == r) {
      out = *static_cast<const T*>(first);  // a second use: copy the first one's value
      return;
    }
  }
  out = std::move(*const_cast<Resource*>(r)->get<T>());
  taken.emplace_back(r, &out);
}

// The recorder, when it names a Practitioner, or a PractitionerRole naming one. Copies (the
// same Practitioner may be the prescriber, taken later), and reports nothing: a recorder
// that does not resolve is reported by the mapper as not sent.
void ResolveRecorder(const Resolver& resolver, PrescriptionInput& in) {
  const MedicationRequest& mr = in.medication_request;
  if (!mr.recorder) return;
  Located l = resolver.Find(mr.recorder->reference);
  if (l.resource) {
    if (const auto* role = l.resource->get<PractitionerRole>()) {
      l = role->practitioner ? resolver.Find(role->practitioner->reference) : Located{};
    }
  }
  if (!l.resource || !l.resource->get<Practitioner>()) return;
  in.recorder = *l.resource->get<Practitioner>();
  in.recorder_path = l.path;
}

// The `reference` of an extension's valueReference (kept as raw JSON), or "".
std::string ExtensionReference(const Extension& e) {
  if (e.value_type != "Reference" || e.value_json.empty()) return {};
  simdjson::ondemand::parser parser;
  simdjson::padded_string json(e.value_json);
  simdjson::ondemand::document doc;
  if (parser.iterate(json).get(doc)) return {};
  std::string_view r;
  if (doc.find_field_unordered("reference").get_string().get(r)) return {};
  return std::string(r);
}

// The supervisor (SCRIPT NewRx Supervisor): the first supervisor extension of the
// MedicationRequest, resolved to a Practitioner, or a PractitionerRole naming one (and its
// organization). Copies, like ResolveRecorder, and reports nothing: the mapper names a
// supervisor it does not send.
void ResolveSupervisor(const Resolver& resolver, PrescriptionInput& in) {
  const MedicationRequest& mr = in.medication_request;
  for (size_t i = 0; i < mr.extension.size(); ++i) {
    const Extension& e = mr.extension[i];
    if (e.url != mapping::kSupervisorExtension) continue;
    in.supervisor_reference_path =
        internal::Cat(in.medication_request_path, ".extension[", i, "].valueReference");
    Located l = resolver.Find(ExtensionReference(e));
    if (l.resource) {
      if (const auto* role = l.resource->get<PractitionerRole>()) {
        in.supervisor_role = *role;
        in.supervisor_role_path = l.path;
        if (role->organization) {
          Located org = resolver.Find(role->organization->reference);
          if (org.resource && org.resource->get<Organization>()) {
            in.supervisor_practice = *org.resource->get<Organization>();
            in.supervisor_practice_path = org.path;
          }
        }
        l = role->practitioner ? resolver.Find(role->practitioner->reference) : Located{};
      }
    }
    if (l.resource && l.resource->get<Practitioner>()) {
      in.supervisor = *l.resource->get<Practitioner>();
      in.supervisor_path = l.path;
    } else {
      in.supervisor_role.reset();
      in.supervisor_practice.reset();
      in.supervisor_role_path.clear();
      in.supervisor_practice_path.clear();
    }
    return;
  }
}

// SCRIPT's NewRx carries BenefitsCoordination 0..4.
constexpr size_t kMaxCoverages = 4;

// Collects PrescriptionInput::coverages: the Coverages `MedicationRequest.insurance` names,
// then the Bundle's other Coverages of the prescription's Patient. Reports what it leaves
// out, at the Coverage's (or the insurance reference's) path. Copies (an insurer may also be
// the pharmacy or the practice, which ResolveFromReferences moves out of the Bundle later).
class CoverageCollector {
 public:
  // In the envelope (`in.patient` already read), the patient is known by its id only.
  CoverageCollector(const Resolver& resolver, PrescriptionInput& in, IssueList& issues)
      : resolver_(resolver), in_(in), issues_(issues) {
    const MedicationRequest& mr = in.medication_request;
    if (mr.subject) patient_ = resolver.Find(mr.subject->reference).resource;
    if (!in.patient.id.empty()) patient_key_ = internal::Cat("Patient/", in.patient.id);
  }

  // MedicationRequest.insurance, in its order. `envelope`: only a contained Coverage (#id)
  // resolves there.
  void Named(bool envelope) {
    const MedicationRequest& mr = in_.medication_request;
    for (size_t i = 0; i < mr.insurance.size(); ++i) {
      const Reference& ref = mr.insurance[i];
      const std::string path = internal::Cat(in_.medication_request_path, ".insurance[", i, "]");
      if (ref.type == "ClaimResponse" || absl::StrContains(ref.reference, "ClaimResponse/")) {
        issues_.Warning(path, IssueCode::kNotSupported,
                        "a ClaimResponse has no SCRIPT element (BenefitsCoordination is sent from "
                        "a Coverage): not sent");
        continue;
      }
      const bool contained = !ref.reference.empty() && ref.reference[0] == '#';
      Located l = envelope && !contained ? Located{} : resolver_.Find(ref.reference);
      if (!l.resource || !l.resource->get<Coverage>()) {
        issues_.Warning(path, IssueCode::kNotFound,
                        envelope && !contained
                            ? "in the request envelope only a contained Coverage (#id) can be "
                              "sent as BenefitsCoordination: not sent"
                            : "does not resolve to a Coverage of the Bundle (or a contained one): "
                              "not sent as BenefitsCoordination");
        continue;
      }
      if (Seen(l.resource)) {
        issues_.Warning(path, IssueCode::kNotSupported, "names a Coverage named before: sent once");
        continue;
      }
      Add(l, /*named=*/true);
    }
  }

  // The Bundle's Coverages `insurance` does not name, in entry order.
  void Unnamed(const Bundle& b) {
    for (size_t i = 0; i < b.entry.size(); ++i) {
      const std::optional<Resource>& r = b.entry[i].resource;
      if (!r || !r->get<Coverage>() || Seen(&*r)) continue;
      Add(Located{&*r, internal::Cat("Bundle.entry[", i, "].resource")}, /*named=*/false);
    }
  }

 private:
  bool Seen(const Resource* r) const {
    return std::find(seen_.begin(), seen_.end(), r) != seen_.end();
  }
  bool IsPatient(const std::optional<Reference>& ref) const {
    if (!ref) return false;
    if (patient_) return resolver_.Find(ref->reference).resource == patient_;
    const std::string& r = ref->reference;
    return !patient_key_.empty() &&
           (r == patient_key_ || (r.size() > patient_key_.size() && r.ends_with(patient_key_) &&
                                  r[r.size() - patient_key_.size() - 1] == '/'));
  }

  // Whether the Coverage at `path` can be sent: an active (or status-less) one that is not
  // self-pay, for the prescription's Patient (an unnamed one must say so; a named one must
  // not name another beneficiary). Warns when not.
  bool Sendable(const Coverage& c, const std::string& path, bool named) {
    if (!c.status.empty() && c.status != "active") {
      issues_.Warning(path + ".status", IssueCode::kNotSupported,
                      internal::Cat("a Coverage with status \"", c.status.substr(0, 40),
                                    "\" is not sent as BenefitsCoordination"));
      return false;
    }
    if (c.kind == "self-pay") {
      issues_.Warning(path + ".kind", IssueCode::kNotSupported,
                      "a self-pay Coverage names no payer: not sent as BenefitsCoordination");
      return false;
    }
    const Resource* beneficiary =
        c.beneficiary ? resolver_.Find(c.beneficiary->reference).resource : nullptr;
    if (named && (!beneficiary || !patient_ || beneficiary == patient_)) return true;
    if (!named && patient_ && beneficiary == patient_) return true;
    issues_.Warning(path + ".beneficiary", IssueCode::kNotSupported,
                    named ? "the beneficiary is not the prescription's Patient: not sent as "
                            "BenefitsCoordination"
                          : "a Coverage MedicationRequest.insurance does not name, whose "
                            "beneficiary is not the prescription's Patient: not sent as "
                            "BenefitsCoordination");
    return false;
  }

  void Add(const Located& l, bool named) {
    seen_.push_back(l.resource);
    const Coverage& c = *l.resource->get<Coverage>();
    if (!Sendable(c, l.path, named)) return;
    if (in_.coverages.size() == kMaxCoverages) {
      issues_.Warning(
          l.path, IssueCode::kNotSupported,
          "SCRIPT carries at most four BenefitsCoordination: this Coverage is not sent");
      return;
    }
    CoverageInput& out = in_.coverages.emplace_back();
    out.coverage = c;
    out.path = l.path;
    out.subscriber_is_patient = IsPatient(c.subscriber);
    if (!c.insurer) return;
    Located o = resolver_.Find(c.insurer->reference);
    if (o.resource && o.resource->get<Organization>()) {
      out.insurer = *o.resource->get<Organization>();
      out.insurer_path = o.path;
    }
  }

  const Resolver& resolver_;
  PrescriptionInput& in_;
  IssueList& issues_;
  const Resource* patient_ = nullptr;  // what MedicationRequest.subject names (Bundle only)
  std::string patient_key_;            // "Patient/<id>" (envelope only)
  std::vector<const Resource*> seen_;
};

// The MedicationRequest's RxFlow facility extension → PrescriptionInput::facility (a copy of
// the Location it names). `envelope`: only a contained Location (#id) resolves there. Reports
// what it cannot send as warnings (the prescription still goes, without a Facility).
void ResolveFacility(const Resolver& resolver, PrescriptionInput& in, IssueList& issues,
                     bool envelope) {
  const MedicationRequest& mr = in.medication_request;
  for (size_t i = 0; i < mr.extension.size(); ++i) {
    const Extension& e = mr.extension[i];
    if (e.url != mapping::kFacilityExtension) continue;
    const std::string path = internal::Cat(in.medication_request_path, ".extension[", i, "]");
    if (in.facility) {
      issues.Warning(path, IssueCode::kNotSupported,
                     "SCRIPT carries one Facility: this facility extension is not sent");
      continue;
    }
    if (e.value_type != "Reference") {
      issues.Warning(path, IssueCode::kValue,
                     "the facility extension needs a valueReference to a Location: no Facility "
                     "sent");
      continue;
    }
    const std::string ref_path = path + ".valueReference";
    // One reading of an extension's reference for every RxFlow extension (as the supervisor's).
    const std::optional<std::string> ref = ExtensionReference(e);
    const bool contained = ref && !ref->empty() && (*ref)[0] == '#';
    Located l = ref && (!envelope || contained) ? resolver.Find(*ref) : Located{};
    if (!l.resource || !l.resource->get<Location>()) {
      std::string why;
      if (!ref || ref->empty()) {
        why = "the facility reference has no literal reference (reference) to resolve";
      } else if (l.resource) {
        why = internal::Cat("the facility reference \"", ref->substr(0, 128), "\" resolves to ",
                            l.resource->resource_type(), ", not a Location");
      } else if (envelope && !contained) {
        why = internal::Cat(
            "in the request envelope only a contained Location (#id) can be the "
            "facility; \"",
            ref->substr(0, 128), "\" is not");
      } else {
        why = internal::Cat("cannot resolve the facility reference \"", ref->substr(0, 128),
                            "\" to a Location of the Bundle (or a contained one)");
      }
      issues.Warning(ref && !ref->empty() ? ref_path + ".reference" : ref_path,
                     IssueCode::kNotFound, why + ": no Facility sent");
      continue;
    }
    in.facility = WithPath<Location>{*l.resource->get<Location>(), l.path};
  }
}

// Fills `in` from the MedicationRequest's references.
void ResolveFromReferences(Resolver& resolver, PrescriptionInput& in, IssueList& issues) {
  Taken taken;
  const MedicationRequest& mr = in.medication_request;
  const std::string& p = in.medication_request_path;
  if (mr.subject) {
    Located l = resolver.Resolve(*mr.subject, p + ".subject", {"Patient"});
    if (l.resource) {
      Take(l.resource, in.patient, taken);
      in.patient_path = l.path;
    }
  } else {
    issues.Error(p + ".subject", IssueCode::kRequired, "MedicationRequest.subject is required");
  }
  if (mr.requester) {
    Located l =
        resolver.Resolve(*mr.requester, p + ".requester", {"Practitioner", "PractitionerRole"});
    if (l.resource && l.resource->get<Practitioner>()) {
      Take(l.resource, in.practitioner.emplace(), taken);
      in.practitioner_path = l.path;
    } else if (const auto* role = l.resource ? l.resource->get<PractitionerRole>() : nullptr) {
      in.practitioner_role = *role;
      in.practitioner_role_path = l.path;
      if (role->practitioner) {
        Located pl =
            resolver.Resolve(*role->practitioner, l.path + ".practitioner", {"Practitioner"});
        if (pl.resource) {
          Take(pl.resource, in.practitioner.emplace(), taken);
          in.practitioner_path = pl.path;
        }
      } else {
        issues.Error(l.path + ".practitioner", IssueCode::kRequired,
                     "the requester PractitionerRole must name its practitioner");
      }
      if (role->organization) {
        Located ol =
            resolver.Resolve(*role->organization, l.path + ".organization", {"Organization"});
        if (ol.resource) {
          Take(ol.resource, in.practice.emplace(), taken);
          in.practice_path = ol.path;
        }
      }
    }
  } else {
    issues.Error(p + ".requester", IssueCode::kRequired,
                 "MedicationRequest.requester is required for a prescription");
  }
  if (mr.dispense_request && mr.dispense_request->dispenser) {
    Located l = resolver.Resolve(*mr.dispense_request->dispenser, p + ".dispenseRequest.dispenser",
                                 {"Organization"});
    if (l.resource) {
      Take(l.resource, in.pharmacy.emplace(), taken);
      in.pharmacy_path = l.path;
    }
  }
  if (mr.medication.reference) {
    Located l =
        resolver.Resolve(*mr.medication.reference, p + ".medication.reference", {"Medication"});
    if (l.resource) {
      Take(l.resource, in.medication.emplace(), taken);
      in.medication_path = l.path;
    }
  }
}

// In the envelope, each reference that is given must agree with the resource supplied.
void CheckEnvelopeReference(const std::optional<Reference>& ref, std::string_view ref_path,
                            std::string_view type, const std::string& id, IssueList& issues) {
  if (!ref || ref->reference.empty() || id.empty()) return;
  const std::string& r = ref->reference;
  if (r[0] == '#') return;
  std::string expected = internal::Cat(type, "/", id);
  bool matches = r == expected ||
                 (r.size() > expected.size() && r.compare(r.size() - expected.size() - 1,
                                                          std::string::npos, "/" + expected) == 0);
  if (!matches) {
    issues.Error(internal::Cat(ref_path, ".reference"), IssueCode::kInvalid,
                 internal::Cat("refers to \"", r.substr(0, 128), "\" but the request's ",
                               internal::AsciiLower(type), " is ", expected));
  }
}

// A participant's Reference gets the `type` of the resource it resolves to, when it does not
// say: the mapper tells a patient informant from a clinician by it.
void TypeFromTarget(const Resolver& resolver, std::optional<Reference>& ref) {
  if (!ref || !ref->type.empty()) return;
  Located l = resolver.Find(ref->reference);
  if (l.resource) ref->type = std::string(l.resource->resource_type());
}

// Whether `ref` resolves to the prescription's patient.
bool AboutPatient(const Resolver& resolver, const std::optional<Reference>& ref,
                  const PrescriptionInput& in) {
  return ref && !in.patient_path.empty() && resolver.Find(ref->reference).path == in.patient_path;
}

// The Bundle's AllergyIntolerance and Observation entries about the prescription's patient
// are moved into `in`; one about anyone else (or whose patient does not resolve) is named in
// a warning: SCRIPT sends the allergies and measurements of the prescription's patient only.
// Other entries that nothing references stay ignored.
void CollectClinical(Bundle& bundle, const Resolver& resolver, PrescriptionInput& in,
                     IssueList& issues) {
  if (in.patient_path.empty()) return;  // the subject did not resolve: already an error
  for (size_t i = 0; i < bundle.entry.size(); ++i) {
    if (!bundle.entry[i].resource) continue;
    Resource& r = *bundle.entry[i].resource;
    std::string path = internal::Cat("Bundle.entry[", i, "].resource");
    if (auto* ai = r.get<AllergyIntolerance>()) {
      if (!AboutPatient(resolver, ai->patient, in)) {
        issues.Warning(path + ".patient", IssueCode::kNotSupported,
                       "an AllergyIntolerance that is not about the MedicationRequest's subject "
                       "is not sent");
        continue;
      }
      for (AllergyIntoleranceParticipant& p : ai->participant) TypeFromTarget(resolver, p.actor);
      in.allergies.push_back({std::move(*ai), std::move(path)});
    } else if (auto* o = r.get<Observation>()) {
      if (!AboutPatient(resolver, o->subject, in)) {
        issues.Warning(path + ".subject", IssueCode::kNotSupported,
                       "an Observation that is not about the MedicationRequest's subject is not "
                       "sent");
        continue;
      }
      in.observations.push_back({std::move(*o), std::move(path)});
    }
  }
}

// The envelope's "allergies" and "observations": each must be about the request's patient
// when it names one (as medication_request.subject must).
void TakeClinicalMembers(std::map<std::string, std::vector<Resource>, std::less<>>& lists,
                         PrescriptionInput& in, IssueList& issues) {
  if (auto it = lists.find("allergies"); it != lists.end()) {
    for (size_t i = 0; i < it->second.size(); ++i) {
      auto* ai = it->second[i].get<AllergyIntolerance>();
      if (!ai) continue;  // not reached: the reader refuses another type
      std::string path = internal::Cat("allergies[", i, "]");
      CheckEnvelopeReference(ai->patient, path + ".patient", "Patient", in.patient.id, issues);
      in.allergies.push_back({std::move(*ai), std::move(path)});
    }
  }
  if (auto it = lists.find("observations"); it != lists.end()) {
    for (size_t i = 0; i < it->second.size(); ++i) {
      auto* o = it->second[i].get<Observation>();
      if (!o) continue;
      std::string path = internal::Cat("observations[", i, "]");
      CheckEnvelopeReference(o->subject, path + ".subject", "Patient", in.patient.id, issues);
      in.observations.push_back({std::move(*o), std::move(path)});
    }
  }
}

// ParsePrescription into `in`, which the caller returns where it is (~10 KB not moved).
Status ParsePrescriptionInto(std::string_view json, IssueList& issues, const ParseOptions& options,
                             PrescriptionInput& in) {
  struct Handler : internal_json::RootHandler {
    std::optional<Resource> root;
    std::map<std::string, Resource, std::less<>> members;
    std::map<std::string, std::vector<Resource>, std::less<>> lists;  // allergies, observations
    Resource& RootSlot() override { return root.emplace(); }
    void DroppedRoot() override { root.reset(); }
    bool AcceptsEnvelope() const override { return true; }
    bool IsEnvelopeKey(std::string_view key) const override {
      for (std::string_view k : kEnvelopeKeys) {
        if (k == key) return true;
      }
      return false;
    }
    bool IsEnvelopeList(std::string_view key) const override { return IsListKey(key); }
    std::string_view ExpectedType(std::string_view key) const override {
      return fhir::ExpectedType(key);
    }
    Resource* EnvelopeSlot(std::string_view key) override {
      if (IsListKey(key)) return &ListOf(key).emplace_back();
      // A key comes once: the reader refuses a repeated one before it asks for a slot.
      return &members.try_emplace(std::string(key)).first->second;
    }
    void DroppedEnvelopeSlot(std::string_view key) override {
      if (IsListKey(key)) {
        ListOf(key).pop_back();
      } else if (auto it = members.find(key); it != members.end()) {
        members.erase(it);
      }
    }
    std::vector<Resource>& ListOf(std::string_view key) {
      auto it = lists.find(key);
      if (it == lists.end()) it = lists.try_emplace(std::string(key)).first;
      return it->second;
    }
  } handler;
  Status s = internal_json::ParseRoot(json, issues, options, handler);
  if (!s.ok()) return s;

  size_t errors_before = issues.error_count();
  Resolver resolver(issues);
  if (handler.root) {
    auto* bundle = handler.root->get<Bundle>();
    if (!bundle) {
      issues.Error("resourceType", IssueCode::kNotSupported,
                   internal::Cat("expected a Bundle or the request envelope, got ",
                                 handler.root->resource_type()));
      return absl::InvalidArgumentError(ToString(issues[issues.size() - 1]));
    }
    if (bundle->type != "collection" && bundle->type != "transaction" &&
        bundle->type != "message" && bundle->type != "batch") {
      issues.Error("Bundle.type", IssueCode::kNotSupported,
                   internal::Cat("bundle type \"", bundle->type,
                                 "\" is not supported (collection, transaction, batch, message)"));
    }
    resolver.IndexBundle(*bundle);
    int found = 0;
    for (size_t i = 0; i < bundle->entry.size(); ++i) {
      if (!bundle->entry[i].resource) continue;
      if (bundle->entry[i].resource->get<MedicationRequest>()) {
        if (++found == 1) {
          in.medication_request = std::move(*bundle->entry[i].resource->get<MedicationRequest>());
          in.medication_request_path = internal::Cat("Bundle.entry[", i, "].resource");
        }
      }
    }
    if (found == 0) {
      issues.Error("Bundle.entry", IssueCode::kRequired, "the bundle holds no MedicationRequest");
      return absl::InvalidArgumentError(ToString(issues[issues.size() - 1]));
    }
    if (found > 1) {
      issues.Error("Bundle.entry", IssueCode::kNotSupported,
                   internal::Cat("the bundle holds ", found,
                                 " MedicationRequests; RxFlow maps one prescription per call"));
    }
    resolver.IndexContained(in.medication_request, in.medication_request_path);
    ResolveRecorder(resolver, in);
    ResolveSupervisor(resolver, in);
    CoverageCollector coverages(resolver, in, issues);  // before the moves of ResolveFromReferences
    coverages.Named(/*envelope=*/false);
    coverages.Unnamed(*bundle);
    ResolveFacility(resolver, in, issues, /*envelope=*/false);
    ResolveFromReferences(resolver, in, issues);
    CollectClinical(*bundle, resolver, in, issues);
  } else {
    auto take = [&](std::string_view key) -> Resource* {
      auto it = handler.members.find(key);
      if (it == handler.members.end()) return nullptr;
      if (it->second.resource_type() != ExpectedType(key)) {
        issues.Error(
            internal::Cat(key, ".resourceType"), IssueCode::kInvalid,
            internal::Cat("expected ", ExpectedType(key), ", got ", it->second.resource_type()));
        return nullptr;
      }
      return &it->second;
    };
    Resource* mr = take("medication_request");
    if (!mr) {
      if (!handler.members.count("medication_request")) {
        issues.Error("medication_request", IssueCode::kRequired,
                     "the request must contain medication_request (or be a FHIR Bundle)");
      }
      return absl::InvalidArgumentError(ToString(issues[issues.size() - 1]));
    }
    in.medication_request = std::move(*mr->get<MedicationRequest>());
    in.medication_request_path = "medication_request";
    resolver.IndexContained(in.medication_request, in.medication_request_path);
    ResolveRecorder(resolver, in);    // envelope: a contained recorder only
    ResolveSupervisor(resolver, in);  // and a contained supervisor
    if (Resource* r = take("patient")) {
      in.patient = std::move(*r->get<Patient>());
      in.patient_path = "patient";
      CheckEnvelopeReference(in.medication_request.subject, "medication_request.subject", "Patient",
                             in.patient.id, issues);
    } else if (!handler.members.count("patient")) {
      issues.Error("patient", IssueCode::kRequired, "the request must contain patient");
    }
    CoverageCollector(resolver, in, issues).Named(/*envelope=*/true);
    ResolveFacility(resolver, in, issues, /*envelope=*/true);
    if (Resource* r = take("practitioner_role")) {
      in.practitioner_role = std::move(*r->get<PractitionerRole>());
      in.practitioner_role_path = "practitioner_role";
    }
    if (Resource* r = take("practitioner")) {
      in.practitioner = std::move(*r->get<Practitioner>());
      in.practitioner_path = "practitioner";
      if (!in.practitioner_role) {
        CheckEnvelopeReference(in.medication_request.requester, "medication_request.requester",
                               "Practitioner", in.practitioner->id, issues);
      }
    } else if (!handler.members.count("practitioner")) {
      issues.Error("practitioner", IssueCode::kRequired, "the request must contain practitioner");
    }
    if (Resource* r = take("pharmacy")) {
      in.pharmacy = std::move(*r->get<Organization>());
      in.pharmacy_path = "pharmacy";
      if (in.medication_request.dispense_request) {
        CheckEnvelopeReference(in.medication_request.dispense_request->dispenser,
                               "medication_request.dispenseRequest.dispenser", "Organization",
                               in.pharmacy->id, issues);
      }
    }
    if (Resource* r = take("medication")) {
      in.medication = std::move(*r->get<Medication>());
      in.medication_path = "medication";
    } else if (in.medication_request.medication.reference) {
      const Reference& ref = *in.medication_request.medication.reference;
      if (!ref.reference.empty() && ref.reference[0] == '#') {
        Located l =
            resolver.Resolve(ref, "medication_request.medication.reference", {"Medication"});
        if (l.resource) {
          in.medication = *l.resource->get<Medication>();
          in.medication_path = l.path;
        }
      } else {
        issues.Error("medication_request.medication.reference.reference", IssueCode::kNotFound,
                     internal::Cat("cannot resolve reference \"", ref.reference.substr(0, 128),
                                   R"(": add the Medication as "medication" or contain it)"));
      }
    }
    TakeClinicalMembers(handler.lists, in, issues);
  }
  if (issues.error_count() > errors_before) {
    for (const Issue& i : issues) {
      if (i.severity == Severity::kError || i.severity == Severity::kFatal) {
        return absl::InvalidArgumentError(internal::Cat("invalid prescription: ", ToString(i)));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

StatusOr<PrescriptionInput> ParsePrescription(std::string_view json, IssueList& issues,
                                              const ParseOptions& options) {
  StatusOr<PrescriptionInput> result(absl::in_place);
  if (Status s = ParsePrescriptionInto(json, issues, options, *result); !s.ok()) {
    result = std::move(s);
  }
  return result;
}

}  // namespace rxflow::fhir
