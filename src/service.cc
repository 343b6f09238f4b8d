#include "rxflow/service.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "rxflow/idempotency.h"
#include "rxflow/script/xml.h"

#include "common/crypto.h"
#include "common/strcat.h"

namespace rxflow {

using internal::Cat;
using nlohmann::json;

namespace {

constexpr int kMaxConflictRetries = 8;

domain::PrescriptionState Fold(const std::vector<domain::Event>& events) {
  return domain::Replay(events);
}

StatusOr<std::vector<domain::Event>> Decode(const std::vector<store::EventRecord>& records) {
  std::vector<domain::Event> out;
  out.reserve(records.size());
  for (const store::EventRecord& r : records) {
    auto e = domain::DecodeEvent(r.type, r.schema_version, r.payload);
    if (!e.ok()) return e.status();
    out.push_back(std::move(*e));
  }
  return out;
}

PrescriptionSummary SummaryOf(const std::string& id, const domain::PrescriptionState& s) {
  PrescriptionSummary out;
  out.id = id;
  out.status = std::string(domain::StateName(s.state));
  out.pharmacy_ncpdp_id = s.pharmacy_ncpdp_id;
  out.is_controlled = s.controlled();
  out.dea_schedule = s.dea_schedule;
  out.message_id = s.message_id;
  out.version = s.version;
  return out;
}

}  // namespace

std::string EncodeSummary(const PrescriptionSummary& s) {
  json j = {{"id", s.id},
            {"status", s.status},
            {"pharmacy_ncpdp_id", s.pharmacy_ncpdp_id},
            {"is_controlled", s.is_controlled},
            {"dea_schedule", s.dea_schedule},
            {"message_id", s.message_id},
            {"created_at", s.created_at},
            {"updated_at", s.updated_at},
            {"version", s.version}};
  return j.dump();
}

StatusOr<PrescriptionSummary> DecodeSummary(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return absl::DataLossError("malformed prescription summary");
  try {
    PrescriptionSummary s;
    s.id = j.value("id", "");
    s.status = j.value("status", "");
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

struct PrescriptionService::Impl {
  store::Store& store;
  ServiceOptions options;
  Clock& clock;
  IdGenerator& ids;
  std::mutex projector_mu;
  std::mutex index_mu;

  // The last committed state of recently touched prescriptions. Events are immutable and
  // versions gapless, so a cached state at version v plus the stream's events after v is
  // the current state, whoever appended them: the cache saves decoding (the NewRx payload
  // above all) and is never authoritative. Bounded: cleared when it grows past kStates.
  static constexpr size_t kStates = 65536;
  std::mutex states_mu;
  std::unordered_map<std::string, domain::PrescriptionState> states;

  domain::PrescriptionState Cached(const std::string& id) {
    std::lock_guard<std::mutex> lock(states_mu);
    auto it = states.find(id);
    return it == states.end() ? domain::PrescriptionState{} : it->second;
  }
  void Remember(const std::string& id, const domain::PrescriptionState& s) {
    std::lock_guard<std::mutex> lock(states_mu);
    if (states.size() >= kStates) states.clear();
    auto& slot = states[id];
    if (slot.version < s.version) slot = s;
  }
  // The current state of `id` read through `es` (the store, or an inbox transaction).
  StatusOr<domain::PrescriptionState> CurrentState(store::EventStore& es, const std::string& id) {
    domain::PrescriptionState state = Cached(id);
    auto records = es.ReadStream(id, state.version);
    if (!records.ok()) return records.status();
    if (state.version == 0 && records->empty()) {
      return absl::NotFoundError(Cat("no prescription ", id));
    }
    for (const store::EventRecord& r : *records) {
      auto e = domain::DecodeEvent(r.type, r.schema_version, r.payload);
      if (!e.ok()) return e.status();
      state = domain::Apply(std::move(state), *e);
    }
    return state;
  }

  Impl(store::Store& s, ServiceOptions o)
      : store(s),
        options(std::move(o)),
        clock(options.clock ? *options.clock : SystemClock()),
        ids(options.ids ? *options.ids : RandomIds()) {}

  // Event records for new events of stream `id` after `version` (what they mean for other
  // systems is derived from them by the relay: runtime/messages.h).
  void Records(const std::string& id, int64_t version, const std::vector<domain::Event>& events,
               const RequestContext& ctx, store::AppendRequest& req) {
    std::string correlation = ctx.correlation_id.empty() ? ids.NewId() : ctx.correlation_id;
    int64_t now = clock.NowMicros();
    std::string causation;
    for (const domain::Event& e : events) {
      store::EventRecord r;
      r.event_id = ids.NewId();
      r.stream_id = id;
      r.version = ++version;
      r.type = std::string(domain::EventType(e));
      r.schema_version = domain::EventSchemaVersion(e);
      r.occurred_at = now;
      r.correlation_id = correlation;
      r.causation_id = causation;
      r.actor = ctx.actor;
      r.tenant = ctx.tenant;
      r.traceparent = ctx.traceparent;
      r.payload = domain::EncodePayload(e);
      causation = r.event_id;
      req.events.push_back(std::move(r));
    }
  }

  StatusOr<std::vector<store::EventRecord>> Stream(const std::string& id) {
    auto records = store.ReadStream(id);
    if (!records.ok()) return records.status();
    if (records->empty()) return absl::NotFoundError(Cat("no prescription ", id));
    return records;
  }

  static Submission Make(const std::string& id, bool created, const domain::PrescriptionState& s,
                         const std::string& key, int64_t created_at) {
    Submission out;
    out.id = id;
    out.created = created;
    out.status = std::string(domain::StateName(s.state));
    out.idempotency_key = key;
    out.is_controlled = s.controlled();
    out.created_at = FormatRfc3339(created_at);
    return out;
  }

  StatusOr<Submission> Replayed(const std::string& id, const std::string& key) {
    auto records = Stream(id);
    if (!records.ok()) return records.status();
    auto events = Decode(*records);
    if (!events.ok()) return events.status();
    return Make(id, false, Fold(*events), key, records->front().occurred_at);
  }
};

PrescriptionService::PrescriptionService(store::Store& store, ServiceOptions options)
    : impl_(std::make_unique<Impl>(store, std::move(options))) {}
PrescriptionService::~PrescriptionService() = default;

StatusOr<std::unique_ptr<PrescriptionService>> PrescriptionService::Create(store::Store& store,
                                                                           ServiceOptions options) {
  if (options.patient_key.size() < kMinPatientKeyBytes) {
    return absl::InvalidArgumentError(
        Cat("the patient HMAC key must be at least ", kMinPatientKeyBytes, " bytes"));
  }
  return std::unique_ptr<PrescriptionService>(new PrescriptionService(store, std::move(options)));
}

StatusOr<Submission> PrescriptionService::Submit(std::string_view fhir_json, IssueList& issues,
                                                 const RequestContext& ctx,
                                                 std::string idempotency_key) {
  Impl& im = *impl_;
  auto out = ToScript(fhir_json, issues, im.options.transform);
  if (!out.ok()) return out.status();
  std::string key;
  if (idempotency_key.empty()) {
    auto k = IdempotencyKey(out->newrx.message, im.options.patient_key);
    if (!k.ok()) return k.status();
    key = *k;
  } else {
    key = "client:" + idempotency_key;
  }
  if (auto existing = im.store.FindByIdempotencyKey(key); existing.ok()) {
    return im.Replayed(*existing, key);
  } else if (existing.status().code() != absl::StatusCode::kNotFound) {
    return existing.status();
  }

  domain::Submit cmd;
  cmd.idempotency_key = key;
  cmd.request_sha256 = internal::Sha256Hex(fhir_json);
  cmd.source = "fhir";
  domain::PrescriptionTransformed& t = cmd.transformed;
  // The profile the message was written under: a loaded profile names itself.
  t.script_version = im.options.transform.profile != nullptr
                         ? im.options.transform.profile->name()
                         : std::string(script::VersionName(im.options.transform.version));
  t.message_id = out->newrx.message.header.message_id;
  t.newrx_xml = out->xml;
  t.pharmacy_ncpdp_id = out->newrx.message.header.to;
  t.prescriber_npi = out->newrx.message.header.from;
  if (const auto* n = std::get_if<script::NewRx>(&out->newrx.message.body)) {
    t.drug_description = n->medication_prescribed.drug_description;
  }
  t.dea_schedule = out->newrx.dea_schedule;
  if (std::holds_alternative<script::CancelRx>(out->newrx.message.body)) {
    return absl::InvalidArgumentError(
        "a cancelled MedicationRequest cancels an existing prescription: use Cancel(id)");
  }
  auto events = domain::Decide(domain::PrescriptionState{}, cmd);
  if (!events.ok()) return events.status();
  if (im.options.route_on_submit) {
    domain::PrescriptionState state = Fold(*events);
    if (state.state == domain::State::kTransformed && !state.controlled()) {
      auto queued = domain::Decide(state, domain::Route{});
      if (!queued.ok()) return queued.status();
      events->insert(events->end(), queued->begin(), queued->end());
    }
  }

  std::string id = im.ids.NewId();
  store::AppendRequest req;
  req.stream_id = id;
  req.expected_version = store::kNoStream;
  req.idempotency_key = key;
  im.Records(id, 0, *events, ctx, req);
  int64_t created = req.events.front().occurred_at;
  auto appended = im.store.Append(std::move(req));
  if (appended.status().code() == absl::StatusCode::kAlreadyExists) {
    // A concurrent submission of the same prescription won: return it.
    auto existing = im.store.FindByIdempotencyKey(key);
    if (!existing.ok()) return existing.status();
    return im.Replayed(*existing, key);
  }
  if (!appended.ok()) return appended.status();
  domain::PrescriptionState state = Fold(*events);
  im.Remember(id, state);
  return Impl::Make(id, true, state, key, created);
}

StatusOr<domain::PrescriptionState> PrescriptionService::Load(const std::string& id) {
  auto records = impl_->Stream(id);
  if (!records.ok()) return records.status();
  auto events = Decode(*records);
  if (!events.ok()) return events.status();
  return Fold(*events);
}

StatusOr<PrescriptionSummary> PrescriptionService::Get(const std::string& id) {
  auto records = impl_->Stream(id);
  if (!records.ok()) return records.status();
  auto events = Decode(*records);
  if (!events.ok()) return events.status();
  PrescriptionSummary s = SummaryOf(id, Fold(*events));
  s.created_at = FormatRfc3339(records->front().occurred_at);
  s.updated_at = FormatRfc3339(records->back().occurred_at);
  return s;
}

StatusOr<std::vector<store::EventRecord>> PrescriptionService::History(const std::string& id) {
  return impl_->Stream(id);
}

Status PrescriptionService::Execute(const std::string& id, const domain::Command& command,
                                    const RequestContext& ctx) {
  Impl& im = *impl_;
  for (int attempt = 0; attempt < kMaxConflictRetries; ++attempt) {
    auto current = im.CurrentState(im.store, id);
    if (!current.ok()) return current.status();
    domain::PrescriptionState state = std::move(*current);
    auto events = domain::Decide(state, command);
    if (!events.ok()) return events.status();
    if (events->empty()) return absl::OkStatus();
    store::AppendRequest req;
    req.stream_id = id;
    req.expected_version = state.version;
    im.Records(id, state.version, *events, ctx, req);
    auto appended = im.store.Append(std::move(req));
    if (appended.ok()) {
      for (const domain::Event& e : *events) state = domain::Apply(std::move(state), e);
      im.Remember(id, state);
      return absl::OkStatus();
    }
    if (appended.status().code() != absl::StatusCode::kAborted) return appended.status();
    // Someone else appended first: re-read and decide again.
  }
  return absl::AbortedError(Cat("prescription ", id, ": too many concurrent updates"));
}

Status PrescriptionService::Route(const std::string& id, const RequestContext& ctx) {
  return Execute(id, domain::Route{}, ctx);
}

Status PrescriptionService::Cancel(const std::string& id, const std::string& reason,
                                   const RequestContext& ctx) {
  domain::RequestCancel cmd;
  cmd.reason = reason;
  // A SCRIPT MessageID (at most 35 characters): 128 random bits in hex.
  cmd.cancel_message_id = internal::RandomHex128();
  return Execute(id, cmd, ctx);
}

StatusOr<domain::Command> PharmacyResponseCommand(const script::Message& message) {
  const script::Header& h = message.header;
  if (const auto* s = std::get_if<script::Status>(&message.body)) {
    return domain::Command{domain::RecordStatus{s->code, h.relates_to_message_id}};
  }
  if (std::holds_alternative<script::Verify>(message.body)) {
    return domain::Command{domain::RecordVerify{h.relates_to_message_id}};
  }
  if (const auto* e = std::get_if<script::Error>(&message.body)) {
    domain::RecordError cmd;
    cmd.code = e->code;
    cmd.description_codes = e->description_code;
    cmd.description = e->description;
    cmd.retryable = e->retryable();
    return domain::Command{std::move(cmd)};
  }
  if (const auto* f = std::get_if<script::RxFill>(&message.body)) {
    domain::RecordFill cmd;
    cmd.fill_status = f->fill_status;
    cmd.complete = f->fill_status != "PartiallyDispensed";
    if (f->medication_dispensed && f->medication_dispensed->quantity) {
      cmd.quantity = f->medication_dispensed->quantity->value;
    }
    return domain::Command{std::move(cmd)};
  }
  if (const auto* c = std::get_if<script::CancelRxResponse>(&message.body)) {
    domain::RecordCancelResponse cmd;
    cmd.approved = c->response.kind == "Approved";
    cmd.reason = !c->response.denial_reason.empty() ? c->response.denial_reason : c->response.note;
    return domain::Command{std::move(cmd)};
  }
  return absl::InvalidArgumentError(Cat("a ", script::TransactionName(message.body),
                                        " is not a pharmacy response RxFlow records"));
}

Status PrescriptionService::RecordPharmacyResponse(const std::string& id,
                                                   const script::Message& message,
                                                   const RequestContext& ctx) {
  auto command = PharmacyResponseCommand(message);
  if (!command.ok()) return command.status();
  return Execute(id, *command, ctx);
}

Status PrescriptionService::ExecuteOnce(const std::string& consumer, const std::string& message_id,
                                        const std::string& id,
                                        std::span<const domain::Command> commands,
                                        const RequestContext& ctx) {
  Impl& im = *impl_;
  for (int attempt = 0; attempt < kMaxConflictRetries; ++attempt) {
    domain::PrescriptionState after;
    Status st = im.store.Process(consumer, message_id, [&](store::EventStore& tx) -> Status {
      auto current = im.CurrentState(tx, id);
      if (!current.ok()) return current.status();
      domain::PrescriptionState state = std::move(*current);
      const int64_t version = state.version;
      std::vector<domain::Event> all;
      for (const domain::Command& command : commands) {
        auto events = domain::Decide(state, command);
        if (!events.ok()) return events.status();
        for (domain::Event& e : *events) {
          state = domain::Apply(std::move(state), e);
          all.push_back(std::move(e));
        }
      }
      after = state;
      if (all.empty()) return absl::OkStatus();
      store::AppendRequest req;
      req.stream_id = id;
      req.expected_version = version;
      im.Records(id, version, all, ctx, req);
      return tx.Append(std::move(req)).status();
    });
    if (st.ok()) im.Remember(id, after);  // committed
    if (st.code() != absl::StatusCode::kAborted) return st;
  }
  return absl::AbortedError(Cat("prescription ", id, ": too many concurrent updates"));
}

StatusOr<std::string> PrescriptionService::FindByMessageId(const std::string& message_id) {
  Impl& im = *impl_;
  if (auto row = im.store.Get(kMessageIndex, message_id); row.ok()) {
    return row;
  } else if (row.status().code() != absl::StatusCode::kNotFound) {
    return row.status();
  }
  // Catch the index up from the log: only transformed and cancel events name message ids.
  {
    std::lock_guard<std::mutex> lock(im.index_mu);
    auto cp = im.store.Checkpoint(kMessageIndex);
    if (!cp.ok()) return cp.status();
    int64_t position = *cp;
    for (;;) {
      auto batch = im.store.ReadAll(position, 512);
      if (!batch.ok()) return batch.status();
      if (batch->empty()) break;
      std::vector<std::pair<std::string, std::string>> rows;
      for (const store::EventRecord& r : *batch) {
        position = r.global_position;
        if (r.type != domain::PrescriptionTransformed::kType &&
            r.type != domain::CancelRequested::kType) {
          continue;
        }
        auto e = domain::DecodeEvent(r.type, r.schema_version, r.payload);
        if (!e.ok()) return e.status();
        if (const auto* t = std::get_if<domain::PrescriptionTransformed>(&*e)) {
          rows.emplace_back(t->message_id, r.stream_id);
        } else if (const auto* c = std::get_if<domain::CancelRequested>(&*e);
                   c && !c->cancel_message_id.empty()) {
          rows.emplace_back(c->cancel_message_id, r.stream_id);
        }
      }
      if (Status s = im.store.Apply(kMessageIndex, position, rows); !s.ok()) return s;
    }
  }
  auto row = im.store.Get(kMessageIndex, message_id);
  if (row.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(Cat("no prescription has SCRIPT message id ", message_id));
  }
  return row;
}

StatusOr<std::string> PrescriptionService::OutboundXml(const std::string& id,
                                                       const std::string& action,
                                                       const std::string& cancel_message_id) {
  auto records = impl_->Stream(id);
  if (!records.ok()) return records.status();
  std::string newrx;
  for (const store::EventRecord& r : *records) {
    if (r.type != domain::PrescriptionTransformed::kType) continue;
    auto e = domain::DecodeEvent(r.type, r.schema_version, r.payload);
    if (!e.ok()) return e.status();
    newrx = std::get<domain::PrescriptionTransformed>(*e).newrx_xml;
  }
  if (newrx.empty()) {
    return absl::FailedPreconditionError(Cat("prescription ", id, " has no NewRx"));
  }
  if (action == "send") return newrx;
  if (action != "cancel") return absl::InvalidArgumentError(Cat("unknown action ", action));
  if (cancel_message_id.empty()) {
    return absl::InvalidArgumentError("a CancelRx needs its message id");
  }
  IssueList issues;
  script::ReadOptions ro;
  ro.profile = impl_->options.transform.profile;
  auto message = script::ReadXml(newrx, issues, ro);
  if (!message.ok()) return message.status();
  auto* n = std::get_if<script::NewRx>(&message->body);
  if (n == nullptr)
    return absl::DataLossError(Cat("prescription ", id, ": stored NewRx is not one"));
  script::CancelRx cancel;
  cancel.patient = std::move(n->patient);
  cancel.pharmacy = std::move(n->pharmacy);
  cancel.prescriber = std::move(n->prescriber);
  cancel.medication_prescribed = std::move(n->medication_prescribed);
  script::Message out;
  out.header = std::move(message->header);
  out.header.relates_to_message_id = out.header.message_id;
  out.header.message_id = cancel_message_id;
  out.header.sent_time = FormatRfc3339(impl_->clock.NowMicros());
  out.body = std::move(cancel);
  script::WriteOptions wo;
  wo.profile = impl_->options.transform.profile != nullptr
                   ? impl_->options.transform.profile
                   : &script::BuiltinProfile(impl_->options.transform.version);
  return script::WriteXml(out, issues, wo);
}

StatusOr<int64_t> PrescriptionService::Project() {
  Impl& im = *impl_;
  std::lock_guard<std::mutex> lock(im.projector_mu);
  auto cp = im.store.Checkpoint(kProjection);
  if (!cp.ok()) return cp.status();
  int64_t position = *cp, applied = 0;
  for (;;) {
    auto batch = im.store.ReadAll(position, 512);
    if (!batch.ok()) return batch.status();
    if (batch->empty()) return applied;
    // Fold the batch per prescription onto the rows as they stand.
    std::map<std::string, std::pair<domain::PrescriptionState, PrescriptionSummary>> touched;
    for (const store::EventRecord& r : *batch) {
      auto it = touched.find(r.stream_id);
      if (it == touched.end()) {
        // Rebuild the state from the stream up to the previous version (rows keep summaries).
        auto prior = im.store.ReadStream(r.stream_id);
        if (!prior.ok()) return prior.status();
        std::vector<store::EventRecord> before;
        for (auto& p : *prior) {
          if (p.version < r.version) before.push_back(p);
        }
        auto decoded = Decode(before);
        if (!decoded.ok()) return decoded.status();
        PrescriptionSummary summary;
        summary.created_at = before.empty() ? FormatRfc3339(r.occurred_at)
                                            : FormatRfc3339(before.front().occurred_at);
        it = touched.emplace(r.stream_id, std::make_pair(Fold(*decoded), summary)).first;
      }
      auto e = domain::DecodeEvent(r.type, r.schema_version, r.payload);
      if (!e.ok()) return e.status();
      auto& [state, summary] = it->second;
      state = domain::Apply(std::move(state), *e);
      std::string created = summary.created_at;
      summary = SummaryOf(r.stream_id, state);
      summary.created_at = created;
      summary.updated_at = FormatRfc3339(r.occurred_at);
      position = r.global_position;
      ++applied;
    }
    std::vector<std::pair<std::string, std::string>> rows;
    for (auto& [id, st] : touched) rows.emplace_back(id, EncodeSummary(st.second));
    if (Status s = im.store.Apply(kProjection, position, rows); !s.ok()) return s;
  }
}

StatusOr<int64_t> PrescriptionService::RebuildProjection() {
  {
    std::lock_guard<std::mutex> lock(impl_->projector_mu);
    if (Status s = impl_->store.Reset(kProjection); !s.ok()) return s;
  }
  return Project();
}

StatusOr<std::vector<PrescriptionSummary>> PrescriptionService::ListProjected(
    std::span<const std::string_view> statuses) {
  if (auto n = Project(); !n.ok()) return n.status();
  auto rows = impl_->store.All(kProjection);
  if (!rows.ok()) return rows.status();
  std::vector<PrescriptionSummary> out;
  for (const auto& [id, row] : *rows) {
    auto s = DecodeSummary(row);
    if (!s.ok()) return s.status();
    if (std::find(statuses.begin(), statuses.end(), s->status) != statuses.end()) {
      out.push_back(std::move(*s));
    }
  }
  return out;
}

StatusOr<PrescriptionSummary> PrescriptionService::GetProjected(const std::string& id) {
  auto row = impl_->store.Get(kProjection, id);
  if (!row.ok()) return row.status();
  return DecodeSummary(*row);
}

}  // namespace rxflow
