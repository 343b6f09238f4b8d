// SPDX-License-Identifier: Apache-2.0
// PrescriptionService: submit and commands (decide, append with optimistic concurrency) and
// the outbound SCRIPT. The read models (summaries, the message index) are in projections.cc.
#include "rxflow/service.h"

#include <optional>
#include <utility>

#include "rxflow/epcs/ceremony.h"
#include "rxflow/idempotency.h"
#include "rxflow/internal/crypto.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/mapping/mapping.h"
#include "rxflow/script/xml.h"

#include "service_impl.h"

namespace rxflow {

using internal::Cat;

namespace {

constexpr int kMaxConflictRetries = 8;

domain::PrescriptionState Fold(const std::vector<domain::Event>& events) {
  return domain::Replay(events);
}

}  // namespace

// ---- Impl --------------------------------------------------------------------------------

PrescriptionService::Impl::Impl(store::Store& s, ServiceOptions o)
    : store(s),
      options(std::move(o)),
      clock(options.clock ? *options.clock : SystemClock()),
      ids(options.ids ? *options.ids : RandomIds()) {}

PrescriptionService::Impl::CachedState PrescriptionService::Impl::Cached(const std::string& id) {
  std::lock_guard<std::mutex> lock(states_mu);
  auto it = states.find(id);
  return it == states.end() ? CachedState{} : it->second;
}

void PrescriptionService::Impl::Remember(const std::string& id, const domain::PrescriptionState& s,
                                         const std::string& tenant) {
  std::lock_guard<std::mutex> lock(states_mu);
  if (states.size() >= kStates) states.clear();
  auto& slot = states[id];
  if (slot.state.version < s.version) slot = CachedState{s, tenant};
}

const std::string* PrescriptionService::Impl::MessageIdOf(const domain::Event& e) {
  const std::string* message_id = nullptr;
  if (const auto* t = std::get_if<domain::PrescriptionTransformed>(&e)) {
    message_id = &t->message_id;
  } else if (const auto* c = std::get_if<domain::CancelRequested>(&e)) {
    message_id = &c->cancel_message_id;
  }
  return message_id != nullptr && !message_id->empty() ? message_id : nullptr;
}

void PrescriptionService::Impl::RememberMessages(const std::string& id,
                                                 std::span<const domain::Event> events) {
  for (const domain::Event& e : events) {
    const std::string* message_id = MessageIdOf(e);
    if (message_id == nullptr) continue;
    std::lock_guard<std::mutex> lock(messages_mu);
    if (messages.size() >= kMessages) messages.clear();
    messages.insert_or_assign(*message_id, id);
  }
}

std::optional<std::string> PrescriptionService::Impl::FindMessage(const std::string& message_id) {
  std::lock_guard<std::mutex> lock(messages_mu);
  auto it = messages.find(message_id);
  if (it == messages.end()) return std::nullopt;
  return it->second;
}

void PrescriptionService::Impl::KeepOutbound(const std::string& id, Outbound entry) {
  std::lock_guard<std::mutex> lock(outbound_mu);
  // What waited past its time goes (routed by another process, or routing is far behind): one
  // sweep a second at most, so that a long backlog does not make every submission walk the map.
  if (entry.kept_at - outbound_swept_at >= kOutboundSweepMicros) {
    outbound_swept_at = entry.kept_at;
    std::erase_if(outbound, [&](const auto& kv) {
      if (entry.kept_at - kv.second.kept_at < kOutboundTtlMicros) return false;
      outbound_bytes -= kv.second.xml.size();
      return true;
    });
  }
  if (outbound_bytes + entry.xml.size() > kOutboundBytes) return;  // routing reads the stream
  outbound_bytes += entry.xml.size();
  auto [it, inserted] = outbound.try_emplace(id, std::move(entry));
  if (!inserted) {  // (ids are new for each submission: not expected)
    outbound_bytes -= it->second.xml.size();
    it->second = std::move(entry);
  }
}

std::optional<PrescriptionService::Impl::Outbound> PrescriptionService::Impl::TakeOutbound(
    const std::string& id) {
  std::lock_guard<std::mutex> lock(outbound_mu);
  auto node = outbound.extract(id);
  if (node.empty()) return std::nullopt;
  outbound_bytes -= node.mapped().xml.size();
  if (clock.NowMicros() - node.mapped().kept_at >= kOutboundTtlMicros) return std::nullopt;
  return std::move(node.mapped());
}

std::optional<PrescriptionService::Impl::RecentSubmission> PrescriptionService::Impl::ClaimKey(
    const std::string& key, KeyClaim& claim) {
  std::unique_lock<std::mutex> lock(recent_mu);
  for (;;) {
    if (auto it = recent.find(key); it != recent.end()) return it->second;
    auto [it, inserted] = claimed.try_emplace(key);
    if (inserted) {
      it->second = std::make_shared<Claimed>();
      claim.impl_ = this;
      claim.key_ = key;
      claim.claimed_ = it->second;
      return std::nullopt;
    }
    // The same key is on its way to the store: its answer is this one's. Only the waiters of
    // this key wake when it is released.
    std::shared_ptr<Claimed> other = it->second;
    other->released_cv.wait(lock, [&] { return other->released; });
  }
}

void PrescriptionService::Impl::KeyClaim::Release(std::optional<RecentSubmission> stored) {
  if (impl_ == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(impl_->recent_mu);
    impl_->claimed.erase(key_);
    claimed_->released = true;
    if (stored) {
      if (impl_->recent.size() >= kRecentSubmissions) impl_->recent.clear();
      impl_->recent.insert_or_assign(key_, std::move(*stored));
    }
  }
  claimed_->released_cv.notify_all();
  claimed_.reset();
  impl_ = nullptr;
}

namespace {

// A caller with a tenant sees only its tenant's prescriptions; one without (a system
// component, a single-tenant embedding) sees all.
bool Visible(const RequestContext& ctx, const std::string& stream_tenant) {
  return ctx.tenant.empty() || ctx.tenant == stream_tenant ||
         (stream_tenant.empty() && ctx.tenant == kDefaultTenant);
}

}  // namespace

StatusOr<domain::PrescriptionState> PrescriptionService::Impl::CurrentState(
    store::EventStore& es, const std::string& id, const RequestContext& ctx, std::string* tenant) {
  CachedState cached = Cached(id);
  domain::PrescriptionState state = std::move(cached.state);
  RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> records,
                          es.ReadStream(id, state.version));
  if (state.version == 0) {
    if (records.empty() || !domain::IsPrescriptionEventType(records.front().type)) {
      // The log also holds EPCS streams (practitioners, the audit chain): not prescriptions,
      // and never readable or commandable through this service.
      return absl::NotFoundError(Cat("no prescription ", id));
    }
    cached.tenant = records.front().tenant;
  }
  if (!Visible(ctx, cached.tenant)) return absl::NotFoundError(Cat("no prescription ", id));
  for (const store::EventRecord& r : records) {
    RXFLOW_ASSIGN_OR_RETURN(domain::Event e, DecodeOne(r));
    state = domain::Apply(std::move(state), e);
  }
  if (tenant != nullptr) *tenant = cached.tenant;
  return state;
}

void PrescriptionService::Impl::Records(const std::string& id, int64_t version,
                                        const std::vector<domain::Event>& events,
                                        const RequestContext& ctx, store::AppendRequest& req) {
  std::string correlation = ctx.correlation_id.empty() ? ids.NewId() : ctx.correlation_id;
  int64_t now = clock.NowMicros();
  std::string causation;
  req.events.reserve(req.events.size() + events.size());
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

StatusOr<std::vector<store::EventRecord>> PrescriptionService::Impl::Stream(
    const std::string& id, const RequestContext& ctx) {
  RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> records, store.ReadStream(id));
  if (records.empty() || !domain::IsPrescriptionEventType(records.front().type) ||
      !Visible(ctx, records.front().tenant)) {
    return absl::NotFoundError(Cat("no prescription ", id));  // (or an EPCS stream)
  }
  return records;
}

StatusOr<domain::Event> PrescriptionService::Impl::DecodeOne(const store::EventRecord& r) const {
  return domain::DecodeEvent(r.type, r.schema_version, r.payload, options.upcasters);
}

StatusOr<std::vector<domain::Event>> PrescriptionService::Impl::Decode(
    const std::vector<store::EventRecord>& records) const {
  std::vector<domain::Event> out;
  out.reserve(records.size());
  for (const store::EventRecord& r : records) {
    RXFLOW_ASSIGN_OR_RETURN(domain::Event e, DecodeOne(r));
    out.push_back(std::move(e));
  }
  return out;
}

Submission PrescriptionService::Impl::Make(const std::string& id, bool created,
                                           const domain::PrescriptionState& s,
                                           const std::string& key, int64_t created_at) {
  Submission out;
  out.id = id;
  out.created = created;
  out.state = s.state;
  out.idempotency_key = key;
  out.is_controlled = s.controlled();
  out.created_at = FormatRfc3339(created_at);
  return out;
}

namespace {

// A caller's Idempotency-Key (`request_sha256` non-empty) names one request body: the
// submission it names was created from `stored_sha256`.
bool KeyReusedForAnotherBody(const std::string& stored_sha256, const std::string& request_sha256) {
  return !request_sha256.empty() && !stored_sha256.empty() && stored_sha256 != request_sha256;
}

Status KeyReusedError() {
  return absl::FailedPreconditionError(
      "Idempotency-Key: this key was used before with a different request body (a "
      "different prescription needs a key of its own)");
}

}  // namespace

StatusOr<Submission> PrescriptionService::Impl::Replayed(const std::string& id,
                                                         const std::string& key,
                                                         const RequestContext& ctx,
                                                         const std::string& request_sha256,
                                                         RecentSubmission* found) {
  RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> records, Stream(id, ctx));
  RXFLOW_ASSIGN_OR_RETURN(std::vector<domain::Event> events, Decode(records));
  const auto* received = std::get_if<domain::PrescriptionReceived>(&events.front());
  const std::string stored_sha256 = received != nullptr ? received->request_sha256 : "";
  if (KeyReusedForAnotherBody(stored_sha256, request_sha256)) return KeyReusedError();
  Submission out = Make(id, false, Fold(events), key, records.front().occurred_at);
  // A replay (a retry whose first answer was lost) reports the interactions found when the
  // prescription was created, as that answer did.
  out.interactions = InteractionsOf(events);
  if (found != nullptr) {
    *found = RecentSubmission{id, stored_sha256, records.front().occurred_at, out.interactions};
  }
  return out;
}

StatusOr<Submission> PrescriptionService::Impl::Replayed(const RecentSubmission& recent,
                                                         const std::string& key,
                                                         const RequestContext& ctx,
                                                         const std::string& request_sha256) {
  if (KeyReusedForAnotherBody(recent.request_sha256, request_sha256)) return KeyReusedError();
  std::string tenant;
  RXFLOW_ASSIGN_OR_RETURN(domain::PrescriptionState state,
                          CurrentState(store, recent.id, ctx, &tenant));
  Remember(recent.id, state, tenant);
  Submission out = Make(recent.id, false, state, key, recent.created_at);
  out.interactions = recent.interactions;
  return out;
}

std::vector<clinical::InteractionFinding> PrescriptionService::Impl::InteractionsOf(
    const std::vector<domain::Event>& events) {
  std::vector<clinical::InteractionFinding> out;
  for (const domain::Event& e : events) {
    if (const auto* screened = std::get_if<domain::InteractionsScreened>(&e)) {
      for (const domain::InteractionRecord& f : screened->findings) out.push_back(FindingOf(f));
    }
  }
  return out;
}

PrescriptionSummary PrescriptionService::Impl::SummaryOf(const std::string& id,
                                                         const domain::PrescriptionState& s) {
  PrescriptionSummary out;
  out.id = id;
  out.state = s.state;
  out.pharmacy_ncpdp_id = s.pharmacy_ncpdp_id;
  out.is_controlled = s.controlled();
  out.dea_schedule = s.dea_schedule;
  out.message_id = s.message_id;
  out.version = s.version;
  return out;
}

// ---- PrescriptionService -----------------------------------------------------------------

PrescriptionService::PrescriptionService(store::Store& store, ServiceOptions options)
    : impl_(std::make_unique<Impl>(store, std::move(options))) {}
PrescriptionService::~PrescriptionService() {
  // SubmitAsync's answers still to come run on the store's thread and use the service.
  std::unique_lock lock(impl_->async_mu);
  impl_->async_cv.wait(lock, [&] { return impl_->async_pending == 0; });
}

StatusOr<std::unique_ptr<PrescriptionService>> PrescriptionService::Create(store::Store& store,
                                                                           ServiceOptions options) {
  if (options.patient_key.size() < kMinPatientKeyBytes) {
    return absl::InvalidArgumentError(
        Cat("the patient HMAC key must be at least ", kMinPatientKeyBytes, " bytes"));
  }
  return std::unique_ptr<PrescriptionService>(new PrescriptionService(store, std::move(options)));
}

const domain::UpcasterRegistry& PrescriptionService::upcasters() const {
  return impl_->options.upcasters;
}

StatusOr<Submission> PrescriptionService::Submit(std::string_view fhir_json, IssueList& issues,
                                                 const RequestContext& ctx,
                                                 std::string_view idempotency_key) {
  Impl& im = *impl_;
  Impl::PendingSubmit pending;
  pending.ctx = ctx;
  store::AppendRequest req;
  if (auto answer = im.PrepareSubmit(fhir_json, issues, idempotency_key, pending, req)) {
    return std::move(*answer);
  }
  return im.FinishSubmit(pending, im.store.Append(std::move(req)));
}

void PrescriptionService::SubmitAsync(std::string_view fhir_json, const RequestContext& ctx,
                                      std::string_view idempotency_key, SubmitDone done) {
  Impl& im = *impl_;
  auto pending = std::make_unique<Impl::PendingSubmit>();
  pending->ctx = ctx;
  IssueList issues;
  store::AppendRequest req;
  if (auto answer = im.PrepareSubmit(fhir_json, issues, idempotency_key, *pending, req)) {
    pending.reset();  // the key's claim released before the answer, as Submit does
    return done(std::move(*answer), std::move(issues));
  }
  if (pending->holds_patient()) {
    // A std::mutex is unlocked by the thread that locked it: this append is waited for here.
    StatusOr<Submission> made = im.FinishSubmit(*pending, im.store.Append(std::move(req)));
    pending.reset();
    return done(std::move(made), std::move(issues));
  }
  {
    std::lock_guard lock(im.async_mu);
    ++im.async_pending;
  }
  im.store.AppendAsync(std::move(req), [&im, pending = std::move(pending),
                                        issues = std::move(issues), done = std::move(done)](
                                           const StatusOr<store::AppendResult>& appended) mutable {
    StatusOr<Submission> made = im.FinishSubmit(*pending, appended);
    pending.reset();
    done(std::move(made), std::move(issues));
    std::lock_guard lock(im.async_mu);
    if (--im.async_pending == 0) im.async_cv.notify_all();
  });
}

std::optional<StatusOr<Submission>> PrescriptionService::Impl::PrepareSubmit(
    std::string_view fhir_json, IssueList& issues, std::string_view idempotency_key,
    PendingSubmit& pending, store::AppendRequest& req) {
  Impl& im = *this;
  const RequestContext& ctx = pending.ctx;
  StatusOr<ScriptOutput> transformed = ToScript(fhir_json, issues, im.options.transform);
  if (!transformed.ok()) return transformed.status();
  ScriptOutput& out = *transformed;  // used where it is (the NewRx model is ~17 KB)
  if (!std::holds_alternative<script::NewRx>(out.newrx.message.body) &&
      !std::holds_alternative<script::CancelRx>(out.newrx.message.body)) {
    return absl::InvalidArgumentError(
        Cat("a Bundle for an ", out.transaction,
            " is not a prescription: Submit takes a FHIR prescription (a NewRx)"));
  }
  // Keys are scoped by tenant: the same prescription content or caller key in two tenants
  // names two prescriptions, and never tells one tenant about the other's.
  std::string& key = pending.key;
  pending.request_sha256 = internal::Sha256Hex(fhir_json);
  const std::string& request_sha256 = pending.request_sha256;
  std::string& compare_sha256 = pending.compare_sha256;  // a caller's key: the same body
  if (idempotency_key.empty()) {
    RXFLOW_ASSIGN_OR_RETURN(key, IdempotencyKey(out.newrx.message, im.options.patient_key));
  } else {
    key = Cat("client:", idempotency_key);
    compare_sha256 = request_sha256;
  }
  if (!ctx.tenant.empty() && ctx.tenant != kDefaultTenant) {
    key = Cat("tenant:", ctx.tenant, "/", key);  // (the default tenant's keys are as before)
  }
  // A replay (the same prescription, or the same Idempotency-Key, again) of a submission
  // this process stored is answered from memory (Impl::recent); any other from the store. A
  // new prescription is not looked up in the store first: the append refuses a key the store
  // holds (AlreadyExists, below), and most submissions are new, so that saves a read each.
  // Only when screening will read the patient's prescriptions is the key looked up now: the
  // original is among them, and a replay must not be screened against its own first copy.
  if (std::optional<Impl::RecentSubmission> recent = im.ClaimKey(key, pending.claim)) {
    return im.Replayed(*recent, key, ctx, compare_sha256);
  }
  if (im.Screens(out)) {
    if (auto existing = im.store.FindByIdempotencyKey(key); existing.ok()) {
      return im.Replayed(*existing, key, ctx, compare_sha256);
    } else if (existing.status().code() != absl::StatusCode::kNotFound) {
      return existing.status();
    }
  }

  domain::Submit cmd;
  cmd.idempotency_key = key;
  cmd.request_sha256 = request_sha256;
  cmd.source = "fhir";
  domain::PrescriptionTransformed& t = cmd.transformed;
  // The profile the message was written under: a loaded profile names itself.
  t.script_version = im.options.transform.profile != nullptr
                         ? im.options.transform.profile->name()
                         : std::string(script::VersionName(im.options.transform.version));
  t.message_id = out.newrx.message.header.message_id;
  t.newrx_xml = std::move(out.xml);  // not read again
  t.pharmacy_ncpdp_id = out.newrx.message.header.to;
  t.prescriber_npi = out.newrx.message.header.from;
  if (const auto* n = std::get_if<script::NewRx>(&out.newrx.message.body)) {
    t.drug_description = n->medication_prescribed.drug_description;
  }
  t.dea_schedule = out.newrx.dea_schedule;
  // The patient's data key seals the NewRx at rest when the store is protected (rxflow/crypto/
  // phi.h); a message without a patient falls back to the prescription's own key.
  if (auto ref = PatientReference(out.newrx.message, im.options.patient_key,
                                  ctx.tenant.empty() ? kDefaultTenant : ctx.tenant);
      ref.ok()) {
    t.phi_key = std::move(*ref);
  }
  if (std::holds_alternative<script::CancelRx>(out.newrx.message.body)) {
    return absl::InvalidArgumentError(
        "a cancelled MedicationRequest cancels an existing prescription: use Cancel(id)");
  }
  std::optional<domain::InteractionsScreened> screened;
  // Held from the screening's read of the patient's prescriptions until this one is
  // appended: two prescriptions for one patient submitted at once are screened one after
  // the other (in this process; in block mode across processes too: docs/clinical.md).
  if (im.options.interactions) {
    RXFLOW_ASSIGN_OR_RETURN(
        screened, im.ScreenInteractions(out, ctx, issues, pending.findings, pending.patient_lock));
  }
  IssueList series_issues;
  if (Status series = im.CheckScheduleIISeries(out, ctx, series_issues, pending.patient_lock);
      !series.ok()) {
    // The same order sent twice at once: the other copy, stored while this one waited for
    // the patient's hold, is in the series now. This is its replay, not a second member.
    if (auto existing = im.store.FindByIdempotencyKey(key); existing.ok()) {
      return im.Replayed(*existing, key, ctx, compare_sha256);
    }
    issues.Append(series_issues);
    return series;
  }
  std::vector<domain::Event>& events = pending.events;
  RXFLOW_ASSIGN_OR_RETURN(events, domain::Decide(domain::PrescriptionState{}, cmd));
  if (screened) events.emplace_back(std::move(*screened));
  if (im.options.route_on_submit) {
    domain::PrescriptionState state = Fold(events);
    if (state.state == domain::State::kTransformed && !state.controlled()) {
      RXFLOW_ASSIGN_OR_RETURN(std::vector<domain::Event> queued,
                              domain::Decide(state, domain::Route{}));
      events.insert(events.end(), queued.begin(), queued.end());
    }
  }

  pending.id = im.ids.NewId();
  req.stream_id = pending.id;
  req.expected_version = store::kNoStream;
  req.idempotency_key = key;
  im.Records(pending.id, 0, events, ctx, req);
  pending.created = req.events.front().occurred_at;
  return std::nullopt;
}

StatusOr<Submission> PrescriptionService::Impl::FinishSubmit(
    PendingSubmit& pending, const StatusOr<store::AppendResult>& appended) {
  Impl& im = *this;
  const std::string& id = pending.id;
  const std::string& key = pending.key;
  if (appended.status().code() == absl::StatusCode::kAlreadyExists) {
    // The same prescription was stored before (a replay), or a concurrent submission of it
    // in another process won: return that one, and to whoever waits for this key here.
    RXFLOW_ASSIGN_OR_RETURN(std::string existing, im.store.FindByIdempotencyKey(key));
    Impl::RecentSubmission found;
    StatusOr<Submission> replay =
        im.Replayed(existing, key, pending.ctx, pending.compare_sha256, &found);
    if (replay.ok()) pending.claim.Complete(std::move(found));
    return replay;
  }
  if (!appended.ok()) return appended.status();
  std::vector<domain::Event>& events = pending.events;
  domain::PrescriptionState state = Fold(events);
  im.Remember(id, state, pending.ctx.tenant);
  im.RememberMessages(id, events);
  if (state.state == domain::State::kQueued && im.keep_outbound.load()) {
    // For its transmission (ForTransmission). The events were encoded into the append, so
    // the XML is moved out of them.
    if (auto* t =
            std::get_if<domain::PrescriptionTransformed>(&events.at(state.newrx_version - 1))) {
      im.KeepOutbound(id, {state.newrx_version, std::move(t->newrx_xml), pending.created,
                           im.clock.NowMicros()});
    }
  }
  pending.claim.Complete(
      {id, pending.request_sha256, pending.created, Impl::InteractionsOf(events)});
  Submission made = Impl::Make(id, true, state, key, pending.created);
  made.interactions = std::move(pending.findings);
  return made;
}

StatusOr<domain::PrescriptionState> PrescriptionService::Load(const std::string& id,
                                                              const RequestContext& ctx) {
  Impl& im = *impl_;
  std::string tenant;
  RXFLOW_ASSIGN_OR_RETURN(domain::PrescriptionState state,
                          im.CurrentState(im.store, id, ctx, &tenant));
  im.Remember(id, state, tenant);
  return state;
}

StatusOr<PrescriptionService::PendingTransmission> PrescriptionService::ForTransmission(
    const std::string& id) {
  Impl& im = *impl_;
  // Submitted by this process a moment ago: the current state (the cached one plus the events
  // after it, as a rule none) and the NewRx kept at submission, if it is still the one to send.
  if (std::optional<Impl::Outbound> kept = im.TakeOutbound(id)) {
    std::string tenant;
    RXFLOW_ASSIGN_OR_RETURN(domain::PrescriptionState state,
                            im.CurrentState(im.store, id, RequestContext{}, &tenant));
    if (state.newrx_version == kept->version) {
      im.Remember(id, state, tenant);
      PendingTransmission out;
      out.state = std::move(state);
      out.newrx_xml = std::move(kept->xml);
      out.accepted_at_micros = kept->accepted_at;
      return out;
    }
  }
  RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> records, im.Stream(id));
  PendingTransmission out;
  out.accepted_at_micros = records.front().occurred_at;
  domain::PrescriptionState state = im.Cached(id).state;
  // Another thread may have remembered a newer state since the read: replay from scratch.
  if (state.version > static_cast<int64_t>(records.size())) state = {};
  for (const store::EventRecord& r : records) {
    const bool carries_newrx = r.type == domain::PrescriptionTransformed::kType ||
                               r.type == domain::PrescriptionSigned::kType;
    const bool unapplied = r.version > state.version;
    if (!carries_newrx && !unapplied) continue;
    RXFLOW_ASSIGN_OR_RETURN(domain::Event e, im.DecodeOne(r));
    if (unapplied) state = domain::Apply(std::move(state), e);
    if (auto* t = std::get_if<domain::PrescriptionTransformed>(&e)) {
      out.newrx_xml = std::move(t->newrx_xml);
    } else if (auto* sg = std::get_if<domain::PrescriptionSigned>(&e);
               sg != nullptr && !sg->signed_newrx_xml.empty()) {
      out.newrx_xml = std::move(sg->signed_newrx_xml);  // EPCS: with Header/DigitalSignature
    }
  }
  im.Remember(id, state, records.front().tenant);
  out.state = std::move(state);
  return out;
}

void PrescriptionService::KeepNewRxForTransmission() { impl_->keep_outbound.store(true); }

StatusOr<PrescriptionSummary> PrescriptionService::Get(const std::string& id,
                                                       const RequestContext& ctx) {
  RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> records, impl_->Stream(id, ctx));
  RXFLOW_ASSIGN_OR_RETURN(std::vector<domain::Event> events, impl_->Decode(records));
  PrescriptionSummary s = Impl::SummaryOf(id, Fold(events));
  s.created_at = FormatRfc3339(records.front().occurred_at);
  s.updated_at = FormatRfc3339(records.back().occurred_at);
  return s;
}

StatusOr<std::vector<store::EventRecord>> PrescriptionService::History(const std::string& id,
                                                                       const RequestContext& ctx) {
  return impl_->Stream(id, ctx);
}

Status PrescriptionService::Execute(const std::string& id, const domain::Command& command,
                                    const RequestContext& ctx) {
  Impl& im = *impl_;
  for (int attempt = 0; attempt < kMaxConflictRetries; ++attempt) {
    std::string tenant;
    RXFLOW_ASSIGN_OR_RETURN(domain::PrescriptionState state,
                            im.CurrentState(im.store, id, ctx, &tenant));
    // A ready mark or a signature only as the EPCS ceremony makes them (T-1.2); after the
    // tenant check above, so that it tells nothing about prescriptions the caller cannot see.
    if (attempt == 0) {
      RXFLOW_RETURN_IF_ERROR(epcs::CheckCeremonyCommand(im.store, id, tenant, command));
    }
    RXFLOW_ASSIGN_OR_RETURN(std::vector<domain::Event> events, domain::Decide(state, command));
    if (events.empty()) return absl::OkStatus();
    store::AppendRequest req;
    req.stream_id = id;
    req.expected_version = state.version;
    RequestContext as = ctx;
    as.tenant = tenant;  // a stream's events all carry its tenant, whoever appends
    im.Records(id, state.version, events, as, req);
    auto appended = im.store.Append(std::move(req));
    if (appended.ok()) {
      for (const domain::Event& e : events) state = domain::Apply(std::move(state), e);
      im.Remember(id, state, tenant);
      im.RememberMessages(id, events);
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
  // A SCRIPT MessageID (at most 35 characters): a UUID v7 in hex, time-ordered like the
  // NewRx's (the message-id index takes it at its right edge).
  cmd.cancel_message_id = RandomIds().NewId();
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
    if (f->medication_dispensed && f->medication_dispensed->drug_coded &&
        f->medication_dispensed->drug_coded->product_code &&
        f->medication_dispensed->drug_coded->product_code->qualifier == "ND") {
      // NDC-11 as SCRIPT carries it; a code of another shape is not kept (the prescribed
      // product then stands for it, as for a fill that named none).
      const std::string& code = f->medication_dispensed->drug_coded->product_code->code;
      if (code.size() == 11 && code.find_first_not_of("0123456789") == std::string::npos) {
        cmd.dispensed_ndc = code;
      }
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
  RXFLOW_ASSIGN_OR_RETURN(domain::Command command, PharmacyResponseCommand(message));
  return Execute(id, command, ctx);
}

Status PrescriptionService::ExecuteOnce(const std::string& consumer, const std::string& message_id,
                                        const std::string& id,
                                        std::span<const domain::Command> commands,
                                        const RequestContext& ctx) {
  return ExecuteOnce(consumer, message_id, id, commands, ctx,
                     [](const domain::PrescriptionState&) { return absl::OkStatus(); });
}

Status PrescriptionService::ExecuteOnce(
    const std::string& consumer, const std::string& message_id, const std::string& id,
    std::span<const domain::Command> commands, const RequestContext& ctx,
    absl::FunctionRef<Status(const domain::PrescriptionState&)> precondition) {
  Impl& im = *impl_;
  for (int attempt = 0; attempt < kMaxConflictRetries; ++attempt) {
    domain::PrescriptionState after;
    std::string tenant;
    std::vector<domain::Event> all;
    Status st = im.store.Process(consumer, message_id, [&](store::EventStore& tx) -> Status {
      all.clear();
      RXFLOW_ASSIGN_OR_RETURN(domain::PrescriptionState state,
                              im.CurrentState(tx, id, ctx, &tenant));
      RXFLOW_RETURN_IF_ERROR(precondition(state));
      const int64_t version = state.version;
      for (const domain::Command& command : commands) {
        RXFLOW_RETURN_IF_ERROR(epcs::CheckCeremonyCommand(tx, id, tenant, command));
        RXFLOW_ASSIGN_OR_RETURN(std::vector<domain::Event> events, domain::Decide(state, command));
        for (domain::Event& e : events) {
          state = domain::Apply(std::move(state), e);
          all.push_back(std::move(e));
        }
      }
      after = state;
      if (all.empty()) return absl::OkStatus();
      store::AppendRequest req;
      req.stream_id = id;
      req.expected_version = version;
      RequestContext as = ctx;
      as.tenant = tenant;  // a stream's events all carry its tenant, whoever appends
      im.Records(id, version, all, as, req);
      return tx.Append(std::move(req)).status();
    });
    if (st.ok()) {  // committed
      im.Remember(id, after, tenant);
      im.RememberMessages(id, all);
    }
    if (st.code() != absl::StatusCode::kAborted) return st;
  }
  return absl::AbortedError(Cat("prescription ", id, ": too many concurrent updates"));
}

StatusOr<std::string> PrescriptionService::OutboundXml(const std::string& id,
                                                       const std::string& action,
                                                       const std::string& cancel_message_id) {
  Impl& im = *impl_;
  RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> records, im.Stream(id));
  std::string newrx;
  for (const store::EventRecord& r : records) {
    if (r.type != domain::PrescriptionTransformed::kType &&
        r.type != domain::PrescriptionSigned::kType) {
      continue;
    }
    RXFLOW_ASSIGN_OR_RETURN(domain::Event e, im.DecodeOne(r));
    if (const auto* t = std::get_if<domain::PrescriptionTransformed>(&e)) {
      newrx = t->newrx_xml;
    } else if (const auto& sg = std::get<domain::PrescriptionSigned>(e);
               !sg.signed_newrx_xml.empty()) {
      newrx = sg.signed_newrx_xml;  // EPCS: as signed, with Header/DigitalSignature
    }
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
  ro.profile = im.options.transform.profile;
  RXFLOW_ASSIGN_OR_RETURN(script::Message stored, script::ReadXml(newrx, issues, ro));
  mapping::CancelRxOptions cancel;
  cancel.message_id = cancel_message_id;
  cancel.sent_time = FormatRfc3339(im.clock.NowMicros());
  auto message = mapping::CancelRxFromNewRx(std::move(stored), cancel);
  if (!message.ok()) {
    return absl::DataLossError(Cat("prescription ", id, ": stored NewRx is not one"));
  }
  script::WriteOptions wo;
  wo.profile = im.options.transform.profile != nullptr
                   ? im.options.transform.profile
                   : &script::BuiltinProfile(im.options.transform.version);
  return script::WriteXml(*message, issues, wo);
}

}  // namespace rxflow
