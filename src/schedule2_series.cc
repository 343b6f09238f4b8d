// SPDX-License-Identifier: Apache-2.0
// The Schedule II series rule of 21 CFR 1306.12(b): a practitioner may issue several
// prescriptions of one Schedule II substance for one patient on one day, up to a 90-day supply
// in total, each but one with the earliest date it may be filled. The service checks a new
// Schedule II NewRx against the series it joins, kept in the read model "schedule2_series"
// (PrescriptionService::kSeriesIndex), caught up from the log like the patient index.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "rxflow/idempotency.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

#include "service_impl.h"

namespace rxflow {

using internal::Cat;
using Json = nlohmann::json;

namespace {

constexpr int kMaxSeriesDays = 90;

// One prescription of a series as the index keeps it.
struct SeriesMember {
  std::string key;  // patient ref | prescriber DEA | date written | substance
  int days = -1;    // DaysSupply; -1: not given
  bool earliest_fill_date = false;
};

// The substance: the drug database's active ingredients when it knows the product (so two
// strengths of one substance are one series), else the coded product, else the description.
std::string SubstanceOf(const script::Medication& med, const clinical::DrugProduct* product) {
  if (product != nullptr && !product->ingredients.empty()) {
    std::set<std::string> names;
    for (const clinical::DrugIngredient& i : product->ingredients) names.insert(i.name);
    std::string out = "in:";
    for (const std::string& n : names) internal::Append(out, n, "+");
    return out;
  }
  if (med.drug_coded && med.drug_coded->drug_db_code) {
    return Cat("db:", med.drug_coded->drug_db_code->code);
  }
  if (med.drug_coded && med.drug_coded->product_code) {
    return Cat("pc:", med.drug_coded->product_code->code);
  }
  std::string text = "tx:";
  for (char c : med.drug_description) text += static_cast<char>(std::tolower(uint8_t(c)));
  return text;
}

std::optional<SeriesMember> MemberOf(const script::NewRx& rx, const std::string& patient_ref,
                                     const clinical::DrugProduct* product) {
  const script::Medication& med = rx.medication_prescribed;
  const script::DateValue& written = med.written_date;
  std::string date = (written.date.empty() ? written.date_time : written.date).substr(0, 10);
  const std::string& dea = rx.prescriber.identification.dea_number;
  if (date.size() != 10 || dea.empty()) return std::nullopt;
  SeriesMember m;
  m.key = Cat(patient_ref, "|", dea, "|", date, "|", SubstanceOf(med, product));
  int days = 0;
  const std::string& d = med.days_supply;
  if (!d.empty() && std::from_chars(d.data(), d.data() + d.size(), days).ec == std::errc() &&
      days >= 0) {
    m.days = days;
  }
  // An earliest fill date is one after the written date: an EffectiveDate on or before it
  // (sent as the sender wrote it) says the prescription may be filled at once.
  m.earliest_fill_date =
      std::any_of(med.other_medication_date.begin(), med.other_medication_date.end(),
                  [&date](const script::OtherMedicationDate& o) {
                    const std::string& v = o.date.date.empty() ? o.date.date_time : o.date.date;
                    return o.qualifier == "EffectiveDate" && v.substr(0, 10) > date;
                  });
  return m;
}

bool Inactive(domain::State s) {
  return s == domain::State::kNone || s == domain::State::kRejected ||
         s == domain::State::kFailed || s == domain::State::kCancelled ||
         s == domain::State::kExpired;
}

}  // namespace

Status PrescriptionService::Impl::CheckScheduleIISeries(const ScriptOutput& out,
                                                        const RequestContext& ctx,
                                                        IssueList& issues, PatientHold& hold) {
  const auto* rx = std::get_if<script::NewRx>(&out.newrx.message.body);
  if (rx == nullptr || out.newrx.dea_schedule != "CII") return absl::OkStatus();
  const std::string tenant = ctx.tenant.empty() ? std::string(kDefaultTenant) : ctx.tenant;
  StatusOr<std::string> ref = PatientReference(out.newrx.message, options.patient_key, tenant);
  if (!ref.ok()) return absl::OkStatus();  // no patient to link: a series cannot be seen
  std::optional<SeriesMember> self = MemberOf(*rx, *ref, out.drug_product);
  if (!self) return absl::OkStatus();
  // Held until this prescription is appended: two of one series submitted at once are
  // checked one after the other, in every process sharing the store.
  if (!hold.local.owns_lock()) {
    hold.local = std::unique_lock<std::mutex>(
        patient_locks[std::hash<std::string>{}(*ref) % patient_locks.size()]);
  }
  if (hold.leases == nullptr) RXFLOW_RETURN_IF_ERROR(HoldPatientAcrossProcesses(*ref, hold));
  // Only Schedule II NewRx are read ("CII" is a plain member of the event, never sealed).
  RXFLOW_RETURN_IF_ERROR(CatchUpNewRxIndex(
      kSeriesIndex, series_index_mu, "\"CII\"",
      [](const IndexedNewRx& n, std::string& key, Json& member) {
        if (n.event.dea_schedule != "CII") return false;
        std::optional<SeriesMember> m = MemberOf(n.newrx, n.patient_ref, n.product);
        if (!m) return false;
        key = m->key;
        member = {
            {"id", n.record.stream_id}, {"days", m->days}, {"earliest", m->earliest_fill_date}};
        return true;
      }));
  auto row = store.Get(kSeriesIndex, self->key);
  if (row.status().code() == absl::StatusCode::kNotFound) return absl::OkStatus();
  if (!row.ok()) return row.status();
  Json doc = Json::parse(*row, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_array()) return absl::DataLossError("malformed Schedule II series row");
  int total = self->days < 0 ? 0 : self->days;
  int others = 0, without_earliest = self->earliest_fill_date ? 0 : 1;
  bool unknown_days = self->days < 0;
  for (const Json& j : doc) {
    // Fails closed: a member whose state cannot be read fails the submission.
    auto state = CurrentState(store, j.value("id", ""), RequestContext{});
    if (state.status().code() == absl::StatusCode::kNotFound) continue;
    if (!state.ok()) return state.status();
    if (Inactive(state->state)) continue;
    ++others;
    int days = j.value("days", -1);
    if (days < 0) unknown_days = true;
    total += std::max(days, 0);
    if (!j.value("earliest", false)) ++without_earliest;
  }
  if (others == 0) return absl::OkStatus();
  const std::string& base = out.medication_request_path;
  const std::string series =
      Cat("this Schedule II prescription joins ", others,
          " other active prescription(s) of the same substance for this patient, by this "
          "prescriber, written the same day (a series, 21 CFR 1306.12(b))");
  bool refused = false;
  if (unknown_days) {
    issues.Error(Cat(base, ".dispenseRequest.expectedSupplyDuration"), IssueCode::kBusinessRule,
                 Cat(series,
                     ": each needs its days' supply, so that the total can be checked "
                     "against 90 days"));
    refused = true;
  } else if (total > kMaxSeriesDays) {
    issues.Error(Cat(base, ".dispenseRequest.expectedSupplyDuration"), IssueCode::kBusinessRule,
                 Cat(series, ": together ", total, " days' supply, more than the ", kMaxSeriesDays,
                     " days allowed"));
    refused = true;
  }
  if (without_earliest > 1) {
    issues.Error(Cat(base, ".dispenseRequest.validityPeriod.start"), IssueCode::kBusinessRule,
                 Cat(series,
                     ": every prescription of a series but the first to be filled "
                     "states the earliest date it may be filled (validityPeriod.start "
                     "after authoredOn)"));
    refused = true;
  }
  if (refused) return absl::FailedPreconditionError("Schedule II series");
  return absl::OkStatus();
}

}  // namespace rxflow
