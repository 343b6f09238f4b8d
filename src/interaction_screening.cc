// SPDX-License-Identifier: Apache-2.0
// Drug–drug interaction screening in the service: the patient index (a patient's
// prescriptions, from the InteractionsScreened events of the log) and the screening of a new
// prescription against the patient's active ones.
#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "rxflow/idempotency.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/mapping/codes.h"
#include "rxflow/script/xml.h"

#include "service_impl.h"

namespace rxflow {

using internal::Cat;
using Json = nlohmann::json;

namespace {

constexpr size_t kIndexBatch = 512;
// The most of one patient's prescriptions a new one is checked against (active or not).
constexpr size_t kMaxScreened = 500;
// Block mode, across processes: how long a screening lease lasts if its holder dies, and how
// long a submission waits for another one's before answering Unavailable.
constexpr int64_t kScreeningLeaseTtl = 10'000'000;  // µs
constexpr auto kScreeningLeaseWait = std::chrono::seconds(5);

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

domain::InteractionRecord PrescriptionService::Impl::RecordOf(
    const clinical::InteractionFinding& f) {
  return {f.rule_id,          std::string(clinical::SeverityName(f.severity)),
          f.summary,          f.citation,
          f.ingredient,       f.ingredient_class,
          f.other_ingredient, f.other_class,
          f.other_label,      f.other_reference};
}

clinical::InteractionFinding PrescriptionService::Impl::FindingOf(
    const domain::InteractionRecord& r) {
  clinical::InteractionFinding f;
  f.rule_id = r.rule_id;
  f.severity =
      clinical::ParseSeverity(r.severity).value_or(clinical::InteractionSeverity::kUnknown);
  f.summary = r.summary;
  f.citation = r.citation;
  f.ingredient = r.ingredient;
  f.ingredient_class = r.ingredient_class;
  f.other_ingredient = r.other_ingredient;
  f.other_class = r.other_class;
  f.other_label = r.other_drug;
  f.other_reference = r.other_prescription_id;
  return f;
}

Status PrescriptionService::Impl::CatchUpNewRxIndex(
    const char* index, std::mutex& mu, std::string_view payload_filter,
    const std::function<bool(const IndexedNewRx&, std::string& key, Json& member)>& member) {
  // Every NewRx stored, by any process, whatever the settings when it was stored (a store
  // from before the index is indexed on first use); each is read once, here.
  std::lock_guard<std::mutex> lock(mu);
  RXFLOW_ASSIGN_OR_RETURN(int64_t position, store.Checkpoint(index));
  for (;;) {
    RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> batch,
                            store.ReadAll(position, kIndexBatch));
    if (batch.empty()) return absl::OkStatus();
    std::map<std::string, Json> rows;
    for (const store::EventRecord& r : batch) {
      position = r.global_position;
      if (r.type != domain::PrescriptionTransformed::kType) continue;
      if (r.payload.find(payload_filter) == std::string::npos) continue;
      RXFLOW_ASSIGN_OR_RETURN(domain::Event e, DecodeOne(r));
      const auto& t = std::get<domain::PrescriptionTransformed>(e);
      IssueList ignored;
      script::ReadOptions ro;
      if (auto v = script::ParseVersion(t.script_version); v.ok()) ro.version = *v;
      auto message = script::ReadXml(t.newrx_xml, ignored, ro);
      if (!message.ok() || !std::holds_alternative<script::NewRx>(message->body)) continue;
      const std::string tenant = r.tenant.empty() ? std::string(kDefaultTenant) : r.tenant;
      auto ref = PatientReference(*message, options.patient_key, tenant);
      if (!ref.ok()) continue;
      const auto& newrx = std::get<script::NewRx>(message->body);
      const auto& med = newrx.medication_prescribed;
      const clinical::DrugProduct* product = nullptr;
      if (const clinical::DrugDatabase* db = options.transform.checks.drugs; db && med.drug_coded) {
        if (med.drug_coded->drug_db_code) {
          product = db->FindByRxcui(med.drug_coded->drug_db_code->code);
        }
        if (!product && med.drug_coded->product_code) {
          product = db->FindByNdc(med.drug_coded->product_code->code);
        }
      }
      std::string key;
      Json m;
      if (!member(IndexedNewRx{r, t, newrx, *ref, product}, key, m)) continue;
      auto it = rows.find(key);
      if (it == rows.end()) {
        Json doc = Json::array();
        if (auto row = store.Get(index, key); row.ok()) {
          doc = Json::parse(*row, nullptr, /*allow_exceptions=*/false);
          if (!doc.is_array()) return absl::DataLossError(Cat("malformed ", index, " row"));
        } else if (row.status().code() != absl::StatusCode::kNotFound) {
          return row.status();
        }
        it = rows.emplace(key, std::move(doc)).first;
      }
      // Once per prescription, whoever else caught the index up over the same events.
      bool present = std::any_of(it->second.begin(), it->second.end(),
                                 [&](const Json& j) { return j.value("id", "") == r.stream_id; });
      if (!present) it->second.push_back(std::move(m));
    }
    std::vector<std::pair<std::string, std::string>> out;
    out.reserve(rows.size());
    for (auto& [key, doc] : rows) out.emplace_back(key, doc.dump());
    RXFLOW_RETURN_IF_ERROR(store.Apply(index, position, out));
  }
}

StatusOr<std::vector<PrescriptionService::Impl::PatientMedication>>
PrescriptionService::Impl::PatientMedications(const std::string& patient_ref) {
  const char* index = PrescriptionService::kPatientIndex;
  const clinical::InteractionKnowledgeBase& kb = *options.interactions;
  // Each NewRx's patient reference and the ingredients a rule could match.
  RXFLOW_RETURN_IF_ERROR(CatchUpNewRxIndex(
      index, patient_index_mu, "", [&](const IndexedNewRx& n, std::string& key, Json& member) {
        const auto& med = n.newrx.medication_prescribed;
        auto ingredients = clinical::IngredientsFor(n.product, med.drug_description, kb);
        if (ingredients.empty()) return false;  // nothing any rule could match
        Json list = Json::array();
        for (const auto& i : ingredients) list.push_back({{"name", i.name}, {"rxcui", i.rxcui}});
        key = n.patient_ref;
        member = {
            {"id", n.record.stream_id}, {"drug", med.drug_description}, {"ingredients", list}};
        return true;
      }));
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

Status PrescriptionService::Impl::HoldPatientAcrossProcesses(const std::string& patient_ref,
                                                             PatientHold& hold) {
  // A lease outlives a holder that died between screening and appending by kScreeningLeaseTtl
  // at most; a holder appends within milliseconds.
  const std::string lease = Cat("screening:", patient_ref);
  const std::string owner = ids.NewId();
  const auto give_up = std::chrono::steady_clock::now() + kScreeningLeaseWait;
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    RXFLOW_ASSIGN_OR_RETURN(bool held, store.AcquireLease(lease, owner, kScreeningLeaseTtl));
    if (held) break;
    if (std::chrono::steady_clock::now() >= give_up) {
      return absl::UnavailableError(
          "another submission for this patient is being screened for interactions: retry");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
  hold.leases = &store;
  hold.lease = lease;
  hold.owner = owner;
  return absl::OkStatus();
}

bool PrescriptionService::Impl::Screens(const ScriptOutput& out) const {
  if (options.interactions == nullptr) return false;
  const auto* newrx = std::get_if<script::NewRx>(&out.newrx.message.body);
  if (newrx == nullptr) return false;
  const clinical::InteractionKnowledgeBase& kb = *options.interactions;
  const auto ingredients =
      clinical::IngredientsFor(out.drug_product, newrx->medication_prescribed.drug_description, kb);
  return std::any_of(ingredients.begin(), ingredients.end(),
                     [&](const clinical::ScreenedIngredient& i) { return kb.Knows(i); });
}

StatusOr<std::optional<domain::InteractionsScreened>> PrescriptionService::Impl::ScreenInteractions(
    const ScriptOutput& out, const RequestContext& ctx, IssueList& issues,
    std::vector<clinical::InteractionFinding>& findings, PatientHold& hold) {
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
  hold.local = std::unique_lock<std::mutex>(
      patient_locks[std::hash<std::string>{}(ev.patient_ref) % patient_locks.size()]);
  if (options.block_contraindicated) {
    RXFLOW_RETURN_IF_ERROR(HoldPatientAcrossProcesses(ev.patient_ref, hold));
  }
  RXFLOW_ASSIGN_OR_RETURN(std::vector<PatientMedication> meds, PatientMedications(ev.patient_ref));
  // Bounded cost: the kMaxScreened most recent of the patient's prescriptions that a rule
  // concerns, each checked to be still active. Screening fails closed: a prescription whose
  // state cannot be read fails the submission rather than being left out.
  std::vector<clinical::ScreenedDrug> others;
  size_t examined = 0;
  for (auto it = meds.rbegin(); it != meds.rend() && examined < kMaxScreened; ++it) {
    if (!known(it->ingredients)) continue;
    ++examined;
    auto state = CurrentState(store, it->id, RequestContext{});
    if (state.status().code() == absl::StatusCode::kNotFound) continue;
    if (!state.ok()) return state.status();
    if (Inactive(state->state)) continue;
    others.push_back({it->drug, it->ingredients, it->id});
  }
  ev.screened_against = static_cast<int64_t>(others.size());
  findings = kb.Screen(drug, others);
  bool contraindicated = false;
  for (const auto& f : findings) {
    contraindicated |= f.severity == clinical::InteractionSeverity::kContraindicated;
    ev.findings.push_back(RecordOf(f));
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
