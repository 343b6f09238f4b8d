// SPDX-License-Identifier: Apache-2.0
// PrescriptionService's read models, caught up from the event log in commit order: the
// prescription summaries ("prescription_summary": apply, rebuild, list, get) and the index
// from SCRIPT message ids to prescriptions ("message_index").
#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include <nlohmann/json.hpp>

#include "rxflow/internal/json.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/service.h"

#include "service_impl.h"

namespace rxflow {

using internal::Cat;
using nlohmann::json;

namespace {

constexpr size_t kReadBatch = 512;

}  // namespace

// Written member by member (no DOM): the projection writes one per event.
std::string EncodeSummary(const PrescriptionSummary& s) {
  internal::JsonObject j;
  j.String("id", s.id)
      .String("status", domain::StateName(s.state))
      .String("pharmacy_ncpdp_id", s.pharmacy_ncpdp_id)
      .Bool("is_controlled", s.is_controlled)
      .String("dea_schedule", s.dea_schedule)
      .String("message_id", s.message_id)
      .String("created_at", s.created_at)
      .String("updated_at", s.updated_at)
      .Int("version", s.version);
  return j.Finish();
}

StatusOr<PrescriptionSummary> DecodeSummary(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return absl::DataLossError("malformed prescription summary");
  try {
    PrescriptionSummary s;
    s.id = j.value("id", "");
    const std::string status = j.value("status", std::string(domain::StateName(s.state)));
    std::optional<domain::State> state = domain::StateFromName(status);
    if (!state) {
      return absl::DataLossError(Cat("malformed prescription summary: unknown status ", status));
    }
    s.state = *state;
    s.pharmacy_ncpdp_id = j.value("pharmacy_ncpdp_id", "");
    s.is_controlled = j.value("is_controlled", false);
    s.dea_schedule = j.value("dea_schedule", "");
    s.message_id = j.value("message_id", "");
    s.created_at = j.value("created_at", "");
    s.updated_at = j.value("updated_at", "");
    s.version = j.value("version", int64_t{0});
    return s;
  } catch (const json::exception&) {
    return absl::DataLossError("malformed prescription summary");
  }
}

StatusOr<std::string> PrescriptionService::FindByMessageId(const std::string& message_id) {
  Impl& im = *impl_;
  if (std::optional<std::string> id = im.FindMessage(message_id)) return std::move(*id);
  if (auto row = im.store.Get(kMessageIndex, message_id); row.ok()) {
    return row;
  } else if (row.status().code() != absl::StatusCode::kNotFound) {
    return row.status();
  }
  // Catch the index up from the log: only transformed and cancel events name message ids.
  {
    std::lock_guard<std::mutex> lock(im.index_mu);
    RXFLOW_ASSIGN_OR_RETURN(int64_t position, im.store.Checkpoint(kMessageIndex));
    // Message ids are not PHI: the log as stored, when the service has it, opens nothing.
    store::EventStore& log =
        im.options.log_as_stored != nullptr ? *im.options.log_as_stored : im.store;
    for (;;) {
      RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> batch,
                              log.ReadAll(position, kReadBatch));
      if (batch.empty()) break;
      std::vector<std::pair<std::string, std::string>> rows;
      for (const store::EventRecord& r : batch) {
        position = r.global_position;
        if (r.type != domain::PrescriptionTransformed::kType &&
            r.type != domain::CancelRequested::kType) {
          continue;
        }
        RXFLOW_ASSIGN_OR_RETURN(domain::Event e, im.DecodeOne(r));
        if (const std::string* id = Impl::MessageIdOf(e)) rows.emplace_back(*id, r.stream_id);
      }
      RXFLOW_RETURN_IF_ERROR(im.store.Apply(kMessageIndex, position, rows));
    }
  }
  auto row = im.store.Get(kMessageIndex, message_id);
  if (row.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(Cat("no prescription has SCRIPT message id ", message_id));
  }
  return row;
}

StatusOr<int64_t> PrescriptionService::Project() {
  Impl& im = *impl_;
  std::lock_guard<std::mutex> lock(im.projector_mu);
  RXFLOW_ASSIGN_OR_RETURN(int64_t position, im.store.Checkpoint(kProjection));
  int64_t applied = 0;
  for (;;) {
    RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> batch,
                            im.store.ReadAll(position, kReadBatch));
    if (batch.empty()) return applied;
    // Fold the batch per prescription onto the rows as they stand.
    std::map<std::string, std::pair<domain::PrescriptionState, PrescriptionSummary>> touched;
    for (const store::EventRecord& r : batch) {
      if (!domain::IsPrescriptionEventType(r.type)) {
        // The same log carries EPCS streams (the audit chain, practitioners): not ours.
        position = r.global_position;
        continue;
      }
      auto it = touched.find(r.stream_id);
      if (it == touched.end()) {
        // Rebuild the state from the stream up to the previous version (rows keep summaries).
        RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> prior,
                                im.store.ReadStream(r.stream_id));
        std::vector<store::EventRecord> before;
        for (auto& p : prior) {
          if (p.version < r.version) before.push_back(p);
        }
        RXFLOW_ASSIGN_OR_RETURN(std::vector<domain::Event> decoded, im.Decode(before));
        PrescriptionSummary summary;
        summary.created_at = before.empty() ? FormatRfc3339(r.occurred_at)
                                            : FormatRfc3339(before.front().occurred_at);
        it = touched.emplace(r.stream_id, std::make_pair(domain::Replay(decoded), summary)).first;
      }
      RXFLOW_ASSIGN_OR_RETURN(domain::Event e, im.DecodeOne(r));
      auto& [state, summary] = it->second;
      state = domain::Apply(std::move(state), e);
      std::string created = summary.created_at;
      summary = Impl::SummaryOf(r.stream_id, state);
      summary.created_at = created;
      summary.updated_at = FormatRfc3339(r.occurred_at);
      position = r.global_position;
      ++applied;
    }
    std::vector<std::pair<std::string, std::string>> rows;
    rows.reserve(touched.size());
    for (auto& [id, st] : touched) rows.emplace_back(id, EncodeSummary(st.second));
    RXFLOW_RETURN_IF_ERROR(im.store.Apply(kProjection, position, rows));
  }
}

StatusOr<int64_t> PrescriptionService::RebuildProjection() {
  {
    std::lock_guard<std::mutex> lock(impl_->projector_mu);
    RXFLOW_RETURN_IF_ERROR(impl_->store.Reset(kProjection));
  }
  return Project();
}

StatusOr<std::vector<PrescriptionSummary>> PrescriptionService::ListProjected(
    std::span<const domain::State> states) {
  RXFLOW_RETURN_IF_ERROR(Project().status());
  RXFLOW_ASSIGN_OR_RETURN(auto rows, impl_->store.All(kProjection));
  std::vector<PrescriptionSummary> out;
  for (const auto& [id, row] : rows) {
    RXFLOW_ASSIGN_OR_RETURN(PrescriptionSummary s, DecodeSummary(row));
    if (std::find(states.begin(), states.end(), s.state) != states.end()) {
      out.push_back(std::move(s));
    }
  }
  return out;
}

StatusOr<PrescriptionSummary> PrescriptionService::GetProjected(const std::string& id) {
  RXFLOW_ASSIGN_OR_RETURN(std::string row, impl_->store.Get(kProjection, id));
  return DecodeSummary(row);
}

}  // namespace rxflow
