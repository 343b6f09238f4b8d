// Drug–drug interaction screening in the service: the patient index (a patient's
// prescriptions, from the InteractionsScreened events of the log) and the screening of a new
// prescription against the patient's active ones.
#include <algorithm>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "rxflow/idempotency.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/mapping/codes.h"

#include "service_impl.h"

namespace rxflow {

using internal::Cat;
using Json = nlohmann::json;

namespace {

constexpr size_t kIndexBatch = 512;
// The most prescriptions of one patient a new one is screened against.
constexpr size_t kMaxScreened = 500;

// Prescriptions that no longer count as the patient's medication.
bool Inactive(domain::State s) {
  switch (s) {
    case domain::State::kNone:
    case domain::State::kRejected:
    case domain::State::kFailed:
    case domain::State::kCancelled:
    case domain::State::kExpired:
      return true;
    default:
      return false;
  }
}

}  // namespace

StatusOr<std::vector<PrescriptionService::Impl::PatientMedication>>
PrescriptionService::Impl::PatientMedications(const std::string& patient_ref) {
  const char* index = PrescriptionService::kPatientIndex;
  {
    // Catch the index up from the log (every process sees every API instance's submissions).
    std::lock_guard<std::mutex> lock(patient_index_mu);
    RXFLOW_ASSIGN_OR_RETURN(int64_t position, store.Checkpoint(index));
    for (;;) {
      RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> batch,
                              store.ReadAll(position, kIndexBatch));
      if (batch.empty()) break;
      std::map<std::string, Json> rows;
      for (const store::EventRecord& r : batch) {
        position = r.global_position;
        if (r.type != domain::InteractionsScreened::kType) continue;
        RXFLOW_ASSIGN_OR_RETURN(domain::Event e, DecodeOne(r));
        const auto& s = std::get<domain::InteractionsScreened>(e);
        if (s.patient_ref.empty()) continue;
        auto it = rows.find(s.patient_ref);
        if (it == rows.end()) {
          Json doc = Json::array();
          if (auto row = store.Get(index, s.patient_ref); row.ok()) {
            doc = Json::parse(*row, nullptr, /*allow_exceptions=*/false);
            if (!doc.is_array()) return absl::DataLossError("malformed patient index row");
          } else if (row.status().code() != absl::StatusCode::kNotFound) {
            return row.status();
          }
          it = rows.emplace(s.patient_ref, std::move(doc)).first;
        }
        Json ingredients = Json::array();
        for (const auto& i : s.ingredients)
          ingredients.push_back({{"name", i.name}, {"rxcui", i.rxcui}});
        it->second.push_back(
            {{"id", r.stream_id}, {"drug", s.drug_description}, {"ingredients", ingredients}});
      }
      std::vector<std::pair<std::string, std::string>> out;
      for (auto& [ref, doc] : rows) out.emplace_back(ref, doc.dump());
      RXFLOW_RETURN_IF_ERROR(store.Apply(index, position, out));
    }
  }
  std::vector<PatientMedication> meds;
  auto row = store.Get(index, patient_ref);
  if (row.status().code() == absl::StatusCode::kNotFound) return meds;
  if (!row.ok()) return row.status();
  Json doc = Json::parse(*row, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_array()) return absl::DataLossError("malformed patient index row");
  for (const Json& m : doc) {
    PatientMedication pm;
    pm.id = m.value("id", "");
    pm.drug = m.value("drug", "");
    for (const Json& i : m.value("ingredients", Json::array())) {
      pm.ingredients.push_back({i.value("name", ""), i.value("rxcui", "")});
    }
    meds.push_back(std::move(pm));
  }
  return meds;
}

StatusOr<std::optional<domain::InteractionsScreened>> PrescriptionService::Impl::ScreenInteractions(
    const ScriptOutput& out, const RequestContext& ctx, IssueList& issues,
    std::vector<clinical::InteractionFinding>& findings) {
  const clinical::InteractionKnowledgeBase& kb = *options.interactions;
  domain::InteractionsScreened ev;
  ev.knowledge_base = kb.name();
  const auto& newrx = std::get<script::NewRx>(out.newrx.message.body);
  ev.drug_description = newrx.medication_prescribed.drug_description;
  const std::string path = out.medication_request_path + ".medication";
  clinical::ScreenedDrug drug;
  drug.label = ev.drug_description;
  drug.ingredients = clinical::IngredientsFor(out.drug_product, ev.drug_description, kb,
                                              &ev.ingredients_from_text);
  for (const auto& i : drug.ingredients) ev.ingredients.push_back({i.name, i.rxcui});
  const std::string tenant = ctx.tenant.empty() ? std::string(kDefaultTenant) : ctx.tenant;
  RXFLOW_ASSIGN_OR_RETURN(ev.patient_ref,
                          PatientReference(out.newrx.message, options.patient_key, tenant));
  auto known = [&](const std::vector<clinical::ScreenedIngredient>& list) {
    return std::any_of(list.begin(), list.end(),
                       [&](const clinical::ScreenedIngredient& i) { return kb.Knows(i); });
  };
  // No rule concerns the drug (or none of its ingredients is known): nothing to screen, and
  // nothing recorded.
  if (!known(drug.ingredients)) return std::nullopt;
  RXFLOW_ASSIGN_OR_RETURN(std::vector<PatientMedication> meds, PatientMedications(ev.patient_ref));
  // Bounded cost: the most recent kMaxScreened prescriptions the knowledge base has a rule
  // for, each checked to be still active.
  std::vector<clinical::ScreenedDrug> others;
  for (auto it = meds.rbegin(); it != meds.rend() && others.size() < kMaxScreened; ++it) {
    if (!known(it->ingredients)) continue;
    auto state = CurrentState(store, it->id, RequestContext{});
    if (!state.ok() || Inactive(state->state)) continue;
    others.push_back({it->drug, it->ingredients, it->id});
  }
  ev.screened_against = static_cast<int64_t>(others.size());
  findings = kb.Screen(drug, others);
  bool contraindicated = false;
  for (const auto& f : findings) {
    contraindicated |= f.severity == clinical::InteractionSeverity::kContraindicated;
    ev.findings.push_back({f.rule_id, std::string(clinical::SeverityName(f.severity)), f.summary,
                           f.citation, f.ingredient, f.other_ingredient, f.other_label,
                           f.other_reference});
  }
  const bool block = contraindicated && options.block_contraindicated;
  if (block && out.interaction_override.empty()) {
    for (const auto& f : findings) {
      if (f.severity != clinical::InteractionSeverity::kContraindicated) continue;
      issues.Error(path, IssueCode::kBusinessRule,
                   Cat("drug interaction with prescription ", f.other_reference, ": ", f.Describe(),
                       " [", f.citation,
                       "]. To prescribe anyway, give the reason in the "
                       "MedicationRequest extension ",
                       mapping::kInteractionOverrideExtension));
    }
    return absl::FailedPreconditionError("drug interaction");
  }
  for (const auto& f : findings) {
    issues.Warning(path, IssueCode::kBusinessRule,
                   Cat("drug interaction with prescription ", f.other_reference, ": ", f.Describe(),
                       " [", f.citation, "]"));
  }
  if (contraindicated && !out.interaction_override.empty()) {
    ev.override_reason = out.interaction_override;
    issues.Add(Severity::kInformation, IssueCode::kInformational, path,
               "contraindicated interaction overridden; the reason is recorded");
  }
  return ev;
}

}  // namespace rxflow
