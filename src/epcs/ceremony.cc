// SPDX-License-Identifier: Apache-2.0
// The EPCS ceremony: practitioner streams (JSON payloads, nlohmann), the two-person rule, two
// factors with their TOTP state kept in the practitioner's stream, the signing bundle, ready
// and sign over the PrescriptionService, and an audit record for every step.
#include "rxflow/epcs/ceremony.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include <absl/strings/ascii.h>
#include <nlohmann/json.hpp>

#include "rxflow/domain/prescription.h"
#include "rxflow/epcs/dea.h"
#include "rxflow/internal/crypto.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/issue.h"
#include "rxflow/script/xml.h"

namespace rxflow::epcs {
namespace {

using internal::Cat;
using Json = nlohmann::json;

constexpr std::string_view kEnrolled = "EpcsPractitionerEnrolled";
constexpr std::string_view kProposed = "EpcsPermissionProposed";
constexpr std::string_view kApproved = "EpcsPermissionApproved";
constexpr std::string_view kTwoFactor = "EpcsTwoFactorAttempt";
// One stream per DEA number, "epcs-dea-<number>", whose first event names the practitioner
// holding it: appended with kNoStream, so a number is held by one practitioner only.
constexpr std::string_view kDeaClaimed = "EpcsDeaNumberClaimed";
// A biometric subsystem enrolled for the practitioner; a challenge issued to theirs (T-2.3).
constexpr std::string_view kBiometricEnrolled = "EpcsBiometricEnrolled";
constexpr std::string_view kBiometricChallenge = "EpcsBiometricChallenge";
constexpr int kMaxConflictRetries = 16;
constexpr double kMaxFalseMatchRate = 0.001;  // §1311.116(b)
constexpr int kMaxLiveChallenges = 4;         // unused biometric challenges per practitioner

std::string StreamOf(const std::string& practitioner_id) {
  return Cat("epcs-practitioner-", practitioner_id);
}

// Parses a stored EPCS event's JSON payload and applies it with `apply`; DataLoss naming the
// event (`kind`: "practitioner", "institution") when it is not an object or lacks a member.
template <typename F>
Status ApplyJsonEvent(std::string_view kind, const store::EventRecord& r, F&& apply) {
  Json j = Json::parse(r.payload, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return absl::DataLossError(Cat(kind, " event ", r.event_id, " is not a JSON object"));
  }
  try {
    return apply(j);
  } catch (const Json::exception& e) {
    return absl::DataLossError(
        Cat(kind, " event ", r.event_id, " (", r.type, "): ", std::string(e.what())));
  }
}

// An institution's stream (T-3.3): registered once, then its list's proposals and approvals.
constexpr std::string_view kInstitutionRegistered = "EpcsInstitutionRegistered";
constexpr std::string_view kListProposed = "EpcsInstitutionListProposed";
constexpr std::string_view kListApproved = "EpcsInstitutionListApproved";

std::string InstitutionStreamOf(const std::string& institution_id) {
  return Cat("epcs-institution-", institution_id);
}

struct ListProposal {
  std::string practitioner;
  bool add = true;
  std::string entered_by;
  bool decided = false;
};

struct InstitutionState {
  int64_t version = 0;
  Institution institution;
  std::set<std::string> listed;
  std::map<std::string, ListProposal> proposals;

  bool Designated(const std::string& person) const {
    const auto& d = institution.designated;
    return std::find(d.begin(), d.end(), person) != d.end();
  }
};

Status ApplyInstitutionEvent(InstitutionState& s, const store::EventRecord& r) {
  RXFLOW_RETURN_IF_ERROR(ApplyJsonEvent("institution", r, [&](const Json& j) -> Status {
    if (r.type == kInstitutionRegistered) {
      Institution& i = s.institution;
      i.id = j.at("id").get<std::string>();
      i.name = j.at("name").get<std::string>();
      i.dea_number = j.at("dea_number").get<std::string>();
      i.designated = j.at("designated").get<std::vector<std::string>>();
      i.identity_proofers = j.at("identity_proofers").get<std::vector<std::string>>();
    } else if (r.type == kListProposed) {
      s.proposals[j.at("proposal_id").get<std::string>()] =
          ListProposal{j.at("practitioner").get<std::string>(), j.at("add").get<bool>(),
                       j.at("entered_by").get<std::string>()};
    } else if (r.type == kListApproved) {
      auto it = s.proposals.find(j.at("proposal_id").get<std::string>());
      if (it == s.proposals.end()) {
        return absl::DataLossError(
            Cat("institution event ", r.event_id, " approves a proposal that was never made"));
      }
      it->second.decided = true;
      if (it->second.add) {
        s.listed.insert(it->second.practitioner);
      } else {
        s.listed.erase(it->second.practitioner);
      }
    } else {
      return absl::DataLossError(Cat("unknown institution event type ", r.type));
    }
    return absl::OkStatus();
  }));
  s.version = r.version;
  return absl::OkStatus();
}

struct Proposal {
  Permission permission = Permission::kSign;
  bool grant = true;
  std::string entered_by;
  bool decided = false;
};

// A practitioner folded from their stream.
struct PractitionerState {
  int64_t version = 0;
  PractitionerView view;
  std::string password_hash;
  std::string totp_secret;
  TotpParams totp;
  std::string certificate_der;
  std::string key_label;
  TotpState totp_state;
  std::map<std::string, Proposal> proposals;
  std::map<std::string, BiometricDevice> biometrics;  // by device id
  std::map<std::string, int64_t> challenges;  // issued and not presented: challenge → Unix s
};

Json RegistrationsJson(const std::vector<DeaRegistration>& regs) {
  Json out = Json::array();
  for (const DeaRegistration& r : regs) {
    out.push_back({{"number", r.number},
                   {"schedules", r.schedules},
                   {"state", r.state},
                   {"expires", r.expires}});
  }
  return out;
}

std::optional<Permission> PermissionFromName(std::string_view name) {
  if (name == "mark_ready") return Permission::kMarkReady;
  if (name == "sign") return Permission::kSign;
  return std::nullopt;
}

// Folds one stored practitioner event; DataLoss naming it when it cannot be read.
Status ApplyEvent(PractitionerState& s, const store::EventRecord& r) {
  RXFLOW_RETURN_IF_ERROR(ApplyJsonEvent("practitioner", r, [&](const Json& j) -> Status {
    if (r.type == kEnrolled) {
      PractitionerView& v = s.view;
      v.id = j.at("id").get<std::string>();
      v.tenant = j.value("tenant", "");  // (enrolments before tenants have none)
      v.institution = j.value("institution", "");
      v.first_name = j.at("first_name").get<std::string>();
      v.last_name = j.at("last_name").get<std::string>();
      for (const Json& reg : j.at("registrations")) {
        v.registrations.push_back({reg.at("number").get<std::string>(),
                                   reg.at("schedules").get<std::vector<std::string>>(),
                                   reg.at("state").get<std::string>(),
                                   reg.at("expires").get<std::string>()});
      }
      v.identity_proofed_by = j.at("identity_proofed_by").get<std::string>();
      v.credential_issuer = j.at("credential_issuer").get<std::string>();
      s.password_hash = j.at("password_hash").get<std::string>();
      auto secret = internal::Base64Decode(j.at("totp_secret").get<std::string>());
      if (!secret) return absl::DataLossError(Cat("practitioner event ", r.event_id, ": secret"));
      s.totp_secret = std::move(*secret);
      s.totp.algorithm = static_cast<TotpAlgorithm>(j.at("totp_algorithm").get<int>());
      s.totp.digits = j.at("totp_digits").get<int>();
      s.totp.period_seconds = j.at("totp_period").get<int>();
      auto cert = internal::Base64Decode(j.at("certificate").get<std::string>());
      s.certificate_der = cert ? std::move(*cert) : std::string();
      s.key_label = j.at("key_label").get<std::string>();
    } else if (r.type == kProposed) {
      auto permission = PermissionFromName(j.at("permission").get<std::string>());
      if (!permission) return absl::DataLossError(Cat("practitioner event ", r.event_id));
      s.proposals[j.at("proposal_id").get<std::string>()] =
          Proposal{*permission, j.at("grant").get<bool>(), j.at("entered_by").get<std::string>()};
    } else if (r.type == kApproved) {
      auto it = s.proposals.find(j.at("proposal_id").get<std::string>());
      if (it == s.proposals.end()) {
        return absl::DataLossError(
            Cat("practitioner event ", r.event_id, " approves a proposal that was never made"));
      }
      Proposal& p = it->second;
      p.decided = true;
      bool& flag = p.permission == Permission::kSign ? s.view.may_sign : s.view.may_mark_ready;
      flag = p.grant;
    } else if (r.type == kTwoFactor) {
      s.totp_state.last_step = j.at("last_step").get<int64_t>();
      s.totp_state.failures = j.at("failures").get<int>();
      s.totp_state.locked_until_unix = j.at("locked_until").get<int64_t>();
      if (j.contains("challenge")) s.challenges.erase(j.at("challenge").get<std::string>());
    } else if (r.type == kBiometricEnrolled) {
      BiometricDevice d;
      d.device_id = j.at("device_id").get<std::string>();
      auto key = internal::Base64Decode(j.at("public_key").get<std::string>());
      if (!key) return absl::DataLossError(Cat("practitioner event ", r.event_id, ": key"));
      d.public_key_der = std::move(*key);
      d.false_match_rate = j.at("false_match_rate").get<double>();
      d.tested_by = j.at("tested_by").get<std::string>();
      d.test_report = j.at("test_report").get<std::string>();
      s.biometrics[d.device_id] = std::move(d);
    } else if (r.type == kBiometricChallenge) {
      const int64_t issued = r.occurred_at / 1'000'000;
      std::erase_if(s.challenges, [&](const auto& c) {
        return c.second < issued - Ceremony::kBiometricChallengeSeconds;
      });
      s.challenges[j.at("challenge").get<std::string>()] = issued;
    } else {
      return absl::DataLossError(Cat("unknown practitioner event type ", r.type));
    }
    return absl::OkStatus();
  }));
  s.version = r.version;
  return absl::OkStatus();
}

// "" when `m` is a match result the practitioner's enrolled subsystem signed over a challenge
// issued to them within its life and not presented before; else why not (for the audit
// record).
// A device id and a challenge as RxFlow makes and enrols them (nothing else is recorded).
bool WellFormedDeviceId(std::string_view id) {
  return !id.empty() && id.size() <= 128 &&
         std::all_of(id.begin(), id.end(), [](char c) { return c > ' ' && c < 0x7f; });
}
bool WellFormed(const BiometricMatch& m) {
  return WellFormedDeviceId(m.device_id) && m.challenge.size() == 64 &&
         std::all_of(m.challenge.begin(), m.challenge.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string BiometricProblem(const std::string& practitioner_id, const PractitionerState& s,
                             const BiometricMatch& m, int64_t now_unix) {
  if (!WellFormed(m)) return "malformed device id or challenge";
  auto device = s.biometrics.find(m.device_id);
  if (device == s.biometrics.end()) return "the device is not enrolled for the practitioner";
  if (!(device->second.false_match_rate <= kMaxFalseMatchRate)) {
    return "the device's false match rate is above 0.001";
  }
  auto challenge = s.challenges.find(m.challenge);
  if (challenge == s.challenges.end()) return "the challenge was not issued, or was used";
  if (now_unix - challenge->second > Ceremony::kBiometricChallengeSeconds) {
    return "the challenge expired";
  }
  if (!VerifyEcdsaSha256(device->second.public_key_der,
                         BiometricMatchText(practitioner_id, m.device_id, m.challenge),
                         m.signature_der)
           .ok()) {
    return "the match result's signature does not verify under the device's key";
  }
  return "";
}

bool CoversSchedule(const DeaRegistration& r, std::string_view schedule) {
  std::vector<std::string_view> wanted;
  if (schedule == "CII") wanted = {"2", "2N"};
  if (schedule == "CIII") wanted = {"3", "3N"};
  if (schedule == "CIV") wanted = {"4"};
  if (schedule == "CV") wanted = {"5"};
  for (const std::string& s : r.schedules) {
    if (std::find(wanted.begin(), wanted.end(), s) != wanted.end()) return true;
  }
  return false;
}

bool SameNameIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string_view PermissionName(Permission p) {
  return p == Permission::kSign ? "sign" : "mark_ready";
}

struct Ceremony::Impl {
  PrescriptionService& service;
  store::Store& store;
  AuditTrail& audit;
  Clock& clock;
  CeremonyOptions options;

  std::string Today() const { return FormatRfc3339(clock.NowMicros()).substr(0, 10); }

  bool Current(const DeaRegistration& r) const { return Today() <= r.expires; }

  bool HasCurrentRegistration(const PractitionerView& v) const {
    return std::any_of(v.registrations.begin(), v.registrations.end(),
                       [&](const DeaRegistration& r) { return Current(r); });
  }

  void Audit(const std::string& actor, std::string_view action, const std::string& object,
             std::string_view outcome, std::string detail) {
    AuditEntry e{actor,          std::string(action), object, std::string(outcome),
                 options.source, std::move(detail)};
    // The operation it describes has been decided (and, on success, committed): it is not
    // undone, but the lost record is counted, never dropped silently (audit_failures()).
    if (!audit.Record(std::move(e)).ok()) audit_failures.fetch_add(1);
  }
  std::atomic<int64_t> audit_failures{0};

  // Audits a refusal and returns it.
  Status Refuse(Status status, const std::string& actor, std::string_view action,
                const std::string& object) {
    Audit(actor, action, object, kOutcomeRefused, std::string(status.message()));
    return status;
  }

  StatusOr<PractitionerState> Load(const std::string& id) {
    RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> records,
                            store.ReadStream(StreamOf(id)));
    if (records.empty()) return absl::NotFoundError(Cat("no practitioner ", id));
    PractitionerState s;
    for (const store::EventRecord& r : records) RXFLOW_RETURN_IF_ERROR(ApplyEvent(s, r));
    s.view.locked_out = s.totp_state.locked_until_unix > clock.NowMicros() / 1'000'000;
    // §1311.125(b)(2): an expired registration takes the permissions with it; the grant stays
    // recorded and counts again when a current registration is enrolled.
    if (!HasCurrentRegistration(s.view)) s.view.may_sign = s.view.may_mark_ready = false;
    // §1311.130: an institutional practitioner acts only while on the institution's list.
    if (!s.view.institution.empty()) {
      RXFLOW_ASSIGN_OR_RETURN(InstitutionState inst, LoadInstitution(s.view.institution));
      if (inst.listed.count(id) == 0) s.view.may_sign = s.view.may_mark_ready = false;
    }
    return s;
  }

  StatusOr<InstitutionState> LoadInstitution(const std::string& id) {
    RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> records,
                            store.ReadStream(InstitutionStreamOf(id)));
    if (records.empty()) return absl::NotFoundError(Cat("no institution ", id));
    InstitutionState s;
    for (const store::EventRecord& r : records) RXFLOW_RETURN_IF_ERROR(ApplyInstitutionEvent(s, r));
    return s;
  }

  // Appends one event to a stream at `expected_version`; returns its id.
  StatusOr<std::string> AppendTo(const std::string& stream, int64_t expected_version,
                                 std::string_view type, const Json& payload,
                                 const std::string& actor) {
    store::EventRecord r;
    r.event_id = internal::IdHex128();
    r.stream_id = stream;
    r.type = std::string(type);
    r.occurred_at = clock.NowMicros();
    r.actor = actor;
    r.payload = payload.dump();
    store::AppendRequest req;
    req.stream_id = stream;
    req.expected_version = expected_version;
    std::string id = r.event_id;
    req.events.push_back(std::move(r));
    RXFLOW_RETURN_IF_ERROR(store.Append(std::move(req)).status());
    return id;
  }

  StatusOr<std::string> Append(const std::string& practitioner_id, int64_t expected_version,
                               std::string_view type, const Json& payload,
                               const std::string& actor) {
    return AppendTo(StreamOf(practitioner_id), expected_version, type, payload, actor);
  }

  // Claims `number` for `practitioner_id` (again: OK; another's: AlreadyExists).
  Status ClaimDea(const std::string& number, const std::string& practitioner_id,
                  const std::string& by) {
    const std::string stream = Cat("epcs-dea-", number);
    StatusOr<std::string> appended =
        AppendTo(stream, store::kNoStream, kDeaClaimed, {{"practitioner", practitioner_id}}, by);
    if (appended.ok()) return absl::OkStatus();
    if (appended.status().code() != absl::StatusCode::kAborted) return appended.status();
    RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> held, store.ReadStream(stream));
    Json j = held.empty() ? Json() : Json::parse(held.front().payload, nullptr, false);
    if (j.is_object() && j.value("practitioner", "") == practitioner_id) return absl::OkStatus();
    return absl::AlreadyExistsError(
        Cat("DEA number ", number, " is enrolled for another practitioner"));
  }

  // Both factors; the attempt and the TOTP state it leaves are appended to the stream.
  // `binding` (members added to the recorded attempt) ties a completion to what it is for:
  // Sign binds it to the prescription and the bundle, which CheckCeremonyCommand requires.
  StatusOr<std::string> TwoFactor(const std::string& id, const TwoFactorProof& proof,
                                  std::string_view purpose, const Json& binding = Json::object()) {
    // The answer never says which factor failed (no password oracle); the audit record does.
    const Status failed = absl::UnauthenticatedError("two-factor authentication failed");
    std::optional<bool> password_ok;  // scrypt once, not once per conflict retry
    for (int attempt = 0; attempt < kMaxConflictRetries; ++attempt) {
      RXFLOW_ASSIGN_OR_RETURN(PractitionerState s, Load(id));
      const int64_t now = clock.NowMicros() / 1'000'000;
      const std::string object = Cat(StreamOf(id), "@", s.version);
      if (s.totp_state.locked_until_unix > now) {
        // Audited, not appended: attempts while locked out do not grow the stream.
        Audit(id, "epcs.two_factor.locked_out", object, kOutcomeFailure,
              Cat("for ", purpose, ": attempt while locked out"));
        return absl::PermissionDeniedError(
            Cat("practitioner ", id, " is locked out after repeated two-factor failures"));
      }
      TotpState state = s.totp_state;
      if (state.locked_until_unix != 0 && state.locked_until_unix <= now) {
        state.failures = 0;  // a lockout that ended starts the count again (as CheckTotp does)
        state.locked_until_unix = 0;
      }
      std::string outcome;  // "accepted", or why not (for the audit record, never the caller)
      std::vector<FactorKind> passed;
      // Each failure counts once toward the lockout (a TOTP failure is counted by CheckTotp).
      auto failed_factor = [&](std::string why) {
        outcome = std::move(why);
        if (++state.failures >= options.totp_policy.max_failures) {
          state.locked_until_unix = now + options.totp_policy.lockout_seconds;
          state.failures = 0;
        }
      };
      if (!proof.password.empty() || !proof.biometric) {
        if (!password_ok) password_ok = VerifyPassword(proof.password, s.password_hash).ok();
        if (*password_ok) {
          passed.push_back(FactorKind::kKnowledge);
        } else {
          failed_factor("wrong password");
        }
      }
      // A code is checked when one is given, and always without a biometric (so that a
      // missing code is "malformed").
      if (outcome.empty() && (!proof.otp.empty() || !proof.biometric)) {
        RXFLOW_ASSIGN_OR_RETURN(TotpCheck check, CheckTotp(s.totp_secret, proof.otp, now, s.totp,
                                                           options.totp_policy, state));
        if (check.outcome == TotpOutcome::kAccepted) {
          passed.push_back(FactorKind::kPossession);
        } else {
          outcome = std::string(TotpOutcomeName(check.outcome));
        }
      }
      if (outcome.empty() && proof.biometric) {
        std::string why = BiometricProblem(id, s, *proof.biometric, now);
        if (why.empty()) {
          passed.push_back(FactorKind::kInherence);
        } else {
          failed_factor(Cat("biometric: ", why));
        }
      }
      if (outcome.empty()) {
        if (CheckTwoFactors(passed).ok()) {
          outcome = "accepted";
          state.failures = 0;  // (CheckTotp resets it too, when a code was one of them)
        } else {
          failed_factor("fewer than two kinds of factor");
        }
      }
      Json payload = {{"purpose", purpose},
                      {"outcome", outcome},
                      {"last_step", state.last_step},
                      {"failures", state.failures},
                      {"locked_until", state.locked_until_unix}};
      if (proof.biometric && WellFormed(*proof.biometric)) {
        // The challenge is spent, accepted or not; the device is recorded (§1311.116).
        payload["challenge"] = proof.biometric->challenge;
        payload["biometric_device"] = proof.biometric->device_id;
      }
      payload.update(binding);
      StatusOr<std::string> event = Append(id, s.version, kTwoFactor, payload, id);
      if (event.status().code() == absl::StatusCode::kAborted) continue;  // a concurrent try
      RXFLOW_RETURN_IF_ERROR(event.status());
      const std::string after = Cat(StreamOf(id), "@", s.version + 1);
      if (outcome == "accepted") {
        std::string factors;
        for (FactorKind k : passed)
          internal::Append(factors, factors.empty() ? "" : "+", FactorKindName(k));
        if (proof.biometric)
          internal::Append(factors, " (device ", proof.biometric->device_id, ")");
        Audit(id, "epcs.two_factor.succeeded", after, kOutcomeSuccess,
              Cat("for ", purpose, ": ", factors));
        return *event;
      }
      bool locked = state.locked_until_unix > now;
      Audit(id, locked ? "epcs.two_factor.locked_out" : "epcs.two_factor.failed", after,
            kOutcomeFailure, Cat("for ", purpose, ": ", outcome));
      return failed;
    }
    return absl::AbortedError(Cat("practitioner ", id, ": too many concurrent updates"));
  }

  StatusOr<SigningBundle> MakeBundle(const std::string& prescription_id,
                                     const std::string& practitioner_id) {
    RXFLOW_ASSIGN_OR_RETURN(domain::PrescriptionState rx, service.Load(prescription_id));
    if (!rx.controlled()) {
      return absl::FailedPreconditionError(
          Cat("prescription ", prescription_id, " is not a controlled substance"));
    }
    if (rx.state != domain::State::kReadyToSign) {
      return absl::FailedPreconditionError(Cat("prescription ", prescription_id, " is ",
                                               domain::StateName(rx.state),
                                               ", not awaiting a signature"));
    }
    RXFLOW_ASSIGN_OR_RETURN(PractitionerState p, Load(practitioner_id));
    RXFLOW_ASSIGN_OR_RETURN(script::Message m, StoredNewRx(prescription_id));
    const auto& newrx = std::get<script::NewRx>(m.body);
    SigningBundle b;
    b.prescription_id = prescription_id;
    b.fields = Part1306Fields(newrx);
    b.attestation = std::string(kAttestation);
    b.sha256 = internal::Sha256Hex(Cat(CanonicalPart1306(b.fields), b.attestation));
    for (const DeaRegistration& r : p.view.registrations) {
      if (Current(r) && CoversSchedule(r, rx.dea_schedule)) b.dea_numbers.push_back(r.number);
    }
    // As the NewRx has it, a supervised practitioner's "-suffix" included: that suffix is
    // what tells practitioners under one institutional registration apart.
    b.prescription_dea_number = newrx.prescriber.identification.dea_number;
    b.prescription_prescriber_last_name = newrx.prescriber.name.last_name;
    b.state = std::string(domain::StateName(rx.state));
    b.marked_ready = rx.ready_by == practitioner_id && rx.ready_bundle_sha256 == b.sha256;
    RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> history,
                            service.History(prescription_id));
    for (auto it = history.rbegin(); it != history.rend(); ++it) {
      if (it->type != domain::PdmpQueried::kType) continue;
      StatusOr<domain::Event> e =
          domain::DecodeEvent(it->type, it->schema_version, it->payload, service.upcasters());
      if (!e.ok()) return e.status();
      b.last_pdmp_query = std::get<domain::PdmpQueried>(*e);
      break;
    }
    return b;
  }

  StatusOr<script::Message> StoredNewRx(const std::string& prescription_id) {
    RXFLOW_ASSIGN_OR_RETURN(std::string xml, service.OutboundXml(prescription_id, "send"));
    IssueList issues;
    StatusOr<script::Message> m = script::ReadXml(xml, issues);
    if (!m.ok() || !std::holds_alternative<script::NewRx>(m->body)) {
      return absl::DataLossError(
          Cat("prescription ", prescription_id, ": stored NewRx unreadable"));
    }
    return m;
  }
};

Ceremony::Ceremony(PrescriptionService& service, store::Store& store, AuditTrail& audit,
                   Clock& clock, CeremonyOptions options)
    : impl_(new Impl{service, store, audit, clock, std::move(options)}) {
  // T-1.2 (21 CFR 1311.100(d)): a required control this configuration leaves off is recorded
  // each time a ceremony starts so; the daily incident report lists epcs.control.* records.
  Impl& im = *impl_;
  if (im.options.time_source == nullptr) {
    im.Audit(im.options.source, "epcs.control.clock_check.disabled", "ceremony", kOutcomeSuccess,
             "no trusted time source: signing does not compare the clock with NIST time "
             "(21 CFR 1311.120(b))");
  }
  if (im.options.sender_trust != nullptr && !im.options.sender_trust->require_crl()) {
    im.Audit(im.options.source, "epcs.control.crl_check.disabled", "ceremony", kOutcomeSuccess,
             "the sender's trust store does not require a current CRL for every certificate");
  }
  if (!im.audit.signs_checkpoints()) {
    im.Audit(im.options.source, "epcs.control.checkpoint_signing.disabled", "ceremony",
             kOutcomeSuccess,
             "the audit trail has no checkpoint signer: the chain is not sealed by signed "
             "checkpoints (21 CFR 1311.150(c))");
  }
}

Ceremony::~Ceremony() = default;

int64_t Ceremony::audit_failures() const { return impl_->audit_failures.load(); }

Status Ceremony::Enroll(const PractitionerEnrollment& p, const std::string& by) {
  Impl& im = *impl_;
  const std::string object = StreamOf(p.id);
  if (by.empty()) return absl::InvalidArgumentError("enrolment needs who enters it");
  if (p.id.empty() || p.last_name.empty()) {
    return im.Refuse(
        absl::InvalidArgumentError("enrolment needs the practitioner's id and last name"), by,
        "epcs.practitioner.enroll", object);
  }
  // §1311.105 (T-2.4): who proofed the identity and who issued the credential are recorded.
  if (absl::StripAsciiWhitespace(p.identity_proofed_by).empty() ||
      absl::StripAsciiWhitespace(p.credential_issuer).empty()) {
    return im.Refuse(absl::InvalidArgumentError(
                         "enrolment needs identity_proofed_by (the CSP or CA that proofed the "
                         "practitioner's identity) and credential_issuer (T-2.4)"),
                     by, "epcs.practitioner.enroll", object);
  }
  if (!p.institution.empty()) {
    StatusOr<InstitutionState> inst = im.LoadInstitution(p.institution);
    if (!inst.ok()) return im.Refuse(inst.status(), by, "epcs.practitioner.enroll", object);
    const auto& proofers = inst->institution.identity_proofers;
    if (std::find(proofers.begin(), proofers.end(), p.identity_proofed_by) == proofers.end()) {
      return im.Refuse(absl::InvalidArgumentError(
                           Cat("identity_proofed_by: ", p.identity_proofed_by,
                               " may not proof identities for institution ", p.institution,
                               " (its identity_proofers do; 21 CFR 1311.130)")),
                       by, "epcs.practitioner.enroll", object);
    }
  }
  for (size_t i = 0; i < p.registrations.size(); ++i) {
    const DeaRegistration& r = p.registrations[i];
    Status dea = CheckDeaNumber(r.number, p.last_name);
    if (!dea.ok()) {
      return im.Refuse(
          absl::InvalidArgumentError(Cat("registrations[", i, "]: ", std::string(dea.message()))),
          by, "epcs.practitioner.enroll", object);
    }
    if (r.expires.size() != 10 || r.schedules.empty()) {
      return im.Refuse(absl::InvalidArgumentError(
                           Cat("registrations[", i, "]: needs schedules and expires (YYYY-MM-DD)")),
                       by, "epcs.practitioner.enroll", object);
    }
  }
  if (p.totp_secret.size() < kMinTotpSecretBytes) {
    return im.Refuse(absl::InvalidArgumentError("the TOTP secret must be at least 128 bits"), by,
                     "epcs.practitioner.enroll", object);
  }
  StatusOr<std::string> hash = HashPassword(p.password, im.options.password_policy);
  if (!hash.ok()) return im.Refuse(hash.status(), by, "epcs.practitioner.enroll", object);
  for (const DeaRegistration& r : p.registrations) {
    Status claimed = im.ClaimDea(r.number, p.id, by);
    if (!claimed.ok()) return im.Refuse(claimed, by, "epcs.practitioner.enroll", object);
  }
  Json payload = {{"id", p.id},
                  {"tenant", p.tenant},
                  {"institution", p.institution},
                  {"first_name", p.first_name},
                  {"last_name", p.last_name},
                  {"registrations", RegistrationsJson(p.registrations)},
                  {"identity_proofed_by", p.identity_proofed_by},
                  {"credential_issuer", p.credential_issuer},
                  {"password_hash", *hash},
                  {"totp_secret", internal::Base64Encode(p.totp_secret)},
                  {"totp_algorithm", static_cast<int>(p.totp.algorithm)},
                  {"totp_digits", p.totp.digits},
                  {"totp_period", p.totp.period_seconds},
                  {"certificate", internal::Base64Encode(p.certificate_der)},
                  {"key_label", p.key_label}};
  StatusOr<std::string> event = im.Append(p.id, store::kNoStream, kEnrolled, payload, by);
  if (event.status().code() == absl::StatusCode::kAborted) {
    return im.Refuse(absl::AlreadyExistsError(Cat("practitioner ", p.id, " is enrolled already")),
                     by, "epcs.practitioner.enroll", object);
  }
  RXFLOW_RETURN_IF_ERROR(event.status());
  im.Audit(by, "epcs.practitioner.enroll", object, kOutcomeSuccess,
           Cat(p.registrations.size(), " DEA registration(s); identity proofed by ",
               p.identity_proofed_by, "; credential from ", p.credential_issuer));
  return absl::OkStatus();
}

StatusOr<PractitionerView> Ceremony::Practitioner(const std::string& id) {
  RXFLOW_ASSIGN_OR_RETURN(PractitionerState s, impl_->Load(id));
  return s.view;
}

StatusOr<std::string> Ceremony::Propose(const std::string& practitioner_id, Permission permission,
                                        bool grant, const std::string& entered_by) {
  Impl& im = *impl_;
  const std::string object = StreamOf(practitioner_id);
  const std::string action = Cat("epcs.permission.", grant ? "grant" : "revoke", ".proposed");
  if (entered_by.empty()) {
    return absl::InvalidArgumentError("a permission change needs who enters it (two-person rule)");
  }
  for (int attempt = 0; attempt < kMaxConflictRetries; ++attempt) {
    RXFLOW_ASSIGN_OR_RETURN(PractitionerState s, im.Load(practitioner_id));
    if (!s.view.institution.empty()) {
      RXFLOW_ASSIGN_OR_RETURN(InstitutionState inst, im.LoadInstitution(s.view.institution));
      if (!inst.Designated(entered_by)) {
        return im.Refuse(absl::PermissionDeniedError(Cat(
                             entered_by, " is not designated by institution ", s.view.institution,
                             " to enter access controls (21 CFR 1311.130)")),
                         entered_by, action, object);
      }
    }
    if (grant && permission == Permission::kSign && s.view.registrations.empty()) {
      return im.Refuse(
          absl::PermissionDeniedError(
              Cat("practitioner ", practitioner_id,
                  " holds no DEA registration: only registrants may sign (21 CFR 1311.125)")),
          entered_by, action, object);
    }
    std::string proposal_id = internal::RandomHex128();
    Json payload = {{"proposal_id", proposal_id},
                    {"permission", PermissionName(permission)},
                    {"grant", grant},
                    {"entered_by", entered_by}};
    StatusOr<std::string> event =
        im.Append(practitioner_id, s.version, kProposed, payload, entered_by);
    if (event.status().code() == absl::StatusCode::kAborted) continue;
    RXFLOW_RETURN_IF_ERROR(event.status());
    im.Audit(entered_by, action, object, kOutcomeSuccess,
             Cat(PermissionName(permission), " proposal ", proposal_id));
    return proposal_id;
  }
  return absl::AbortedError(Cat("practitioner ", practitioner_id, ": too many concurrent updates"));
}

Status Ceremony::Approve(const std::string& practitioner_id, const std::string& proposal_id,
                         const std::string& approver_id, const TwoFactorProof& proof) {
  Impl& im = *impl_;
  const std::string object = StreamOf(practitioner_id);
  constexpr std::string_view kAction = "epcs.permission.approve";
  RXFLOW_ASSIGN_OR_RETURN(PractitionerState s, im.Load(practitioner_id));
  auto it = s.proposals.find(proposal_id);
  if (it == s.proposals.end()) {
    return im.Refuse(
        absl::NotFoundError(Cat("no proposal ", proposal_id, " for ", practitioner_id)),
        approver_id, kAction, object);
  }
  if (it->second.decided) {
    return im.Refuse(absl::FailedPreconditionError(Cat("proposal ", proposal_id, " was decided")),
                     approver_id, kAction, object);
  }
  if (approver_id == it->second.entered_by) {
    return im.Refuse(absl::PermissionDeniedError(
                         "the two-person rule: the person who entered a change cannot approve it"),
                     approver_id, kAction, object);
  }
  StatusOr<PractitionerState> approver = im.Load(approver_id);
  if (!s.view.institution.empty()) {
    // §1311.130: the institution's designated people enter and approve, not registrants; a
    // practitioner is granted signing only while on the institution's list.
    RXFLOW_ASSIGN_OR_RETURN(InstitutionState inst, im.LoadInstitution(s.view.institution));
    if (!approver.ok() || !inst.Designated(approver_id)) {
      return im.Refuse(absl::PermissionDeniedError(Cat("the approver ", approver_id,
                                                       " is not designated by institution ",
                                                       s.view.institution, " (21 CFR 1311.130)")),
                       approver_id, kAction, object);
    }
    if (it->second.grant && inst.listed.count(practitioner_id) == 0) {
      return im.Refuse(absl::PermissionDeniedError(Cat("practitioner ", practitioner_id,
                                                       " is not on institution ",
                                                       s.view.institution, "'s approved list")),
                       approver_id, kAction, object);
    }
  } else if (!approver.ok() || approver->view.registrations.empty()) {
    return im.Refuse(absl::PermissionDeniedError(
                         Cat("the approver ", approver_id,
                             " is not a DEA registrant (21 CFR 1311.125: a registrant approves)")),
                     approver_id, kAction, object);
  } else if (!im.HasCurrentRegistration(approver->view)) {
    return im.Refuse(
        absl::PermissionDeniedError(Cat("the approver's DEA registrations have expired")),
        approver_id, kAction, object);
  }
  // §1311.125(b): before access is granted, the registration must be current. (Signing is
  // checked against it again at each signature: a lapse later stops signing then.)
  if (it->second.grant && it->second.permission == Permission::kSign &&
      !im.HasCurrentRegistration(s.view)) {
    return im.Refuse(absl::PermissionDeniedError(Cat("practitioner ", practitioner_id,
                                                     " holds no current DEA registration")),
                     approver_id, kAction, object);
  }
  StatusOr<std::string> two_factor = im.TwoFactor(approver_id, proof, "approve a permission");
  if (!two_factor.ok()) {
    return im.Refuse(two_factor.status(), approver_id, kAction, object);
  }
  for (int attempt = 0; attempt < kMaxConflictRetries; ++attempt) {
    RXFLOW_ASSIGN_OR_RETURN(PractitionerState now, im.Load(practitioner_id));
    auto current = now.proposals.find(proposal_id);
    if (current == now.proposals.end() || current->second.decided) {
      return im.Refuse(absl::FailedPreconditionError(Cat("proposal ", proposal_id, " was decided")),
                       approver_id, kAction, object);
    }
    Json payload = {{"proposal_id", proposal_id},
                    {"approved_by", approver_id},
                    {"two_factor_event_id", *two_factor}};
    StatusOr<std::string> event =
        im.Append(practitioner_id, now.version, kApproved, payload, approver_id);
    if (event.status().code() == absl::StatusCode::kAborted) continue;
    RXFLOW_RETURN_IF_ERROR(event.status());
    const Proposal& p = it->second;
    im.Audit(approver_id, Cat("epcs.permission.", p.grant ? "granted" : "revoked"), object,
             kOutcomeSuccess,
             Cat(PermissionName(p.permission), " entered by ", p.entered_by,
                 ", approved with "
                 "two factors (event ",
                 *two_factor, ")"));
    return absl::OkStatus();
  }
  return absl::AbortedError(Cat("practitioner ", practitioner_id, ": too many concurrent updates"));
}

Status Ceremony::RegisterInstitution(const Institution& inst, const std::string& by) {
  Impl& im = *impl_;
  const std::string object = InstitutionStreamOf(inst.id);
  constexpr std::string_view kAction = "epcs.institution.register";
  if (by.empty()) return absl::InvalidArgumentError("registration needs who enters it");
  std::set<std::string> designated(inst.designated.begin(), inst.designated.end());
  designated.erase("");
  std::string why;
  if (inst.id.empty() || inst.name.empty()) why = "an institution needs its id and name";
  if (why.empty() && designated.size() < 2) {
    why = "designated: at least two people (one enters, another approves; 21 CFR 1311.130)";
  }
  if (why.empty() && inst.identity_proofers.empty()) {
    why = "identity_proofers: who may proof practitioners' identities is required";
  }
  if (why.empty()) {
    if (Status dea = CheckDeaNumber(inst.dea_number); !dea.ok()) {
      why = Cat("dea_number: ", std::string(dea.message()));
    }
  }
  if (!why.empty()) return im.Refuse(absl::InvalidArgumentError(why), by, kAction, object);
  Json payload = {{"id", inst.id},
                  {"name", inst.name},
                  {"dea_number", inst.dea_number},
                  {"designated", std::vector<std::string>(designated.begin(), designated.end())},
                  {"identity_proofers", inst.identity_proofers}};
  StatusOr<std::string> event =
      im.AppendTo(object, store::kNoStream, kInstitutionRegistered, payload, by);
  if (event.status().code() == absl::StatusCode::kAborted) {
    return im.Refuse(absl::AlreadyExistsError(Cat("institution ", inst.id, " is registered")), by,
                     kAction, object);
  }
  RXFLOW_RETURN_IF_ERROR(event.status());
  im.Audit(by, kAction, object, kOutcomeSuccess,
           Cat(designated.size(), " designated people; ", inst.identity_proofers.size(),
               " identity proofer(s)"));
  return absl::OkStatus();
}

StatusOr<std::string> Ceremony::ProposeListChange(const std::string& institution_id,
                                                  const std::string& practitioner_id, bool add,
                                                  const std::string& entered_by) {
  Impl& im = *impl_;
  const std::string object = InstitutionStreamOf(institution_id);
  const std::string action = Cat("epcs.institution.list.", add ? "add" : "remove", ".proposed");
  for (int attempt = 0; attempt < kMaxConflictRetries; ++attempt) {
    RXFLOW_ASSIGN_OR_RETURN(InstitutionState inst, im.LoadInstitution(institution_id));
    if (!inst.Designated(entered_by)) {
      return im.Refuse(absl::PermissionDeniedError(Cat(entered_by, " is not designated by ",
                                                       "institution ", institution_id)),
                       entered_by, action, object);
    }
    StatusOr<PractitionerState> p = im.Load(practitioner_id);
    if (!p.ok() || p->view.institution != institution_id) {
      return im.Refuse(
          absl::FailedPreconditionError(Cat("practitioner ", practitioner_id,
                                            " is not enrolled with institution ", institution_id)),
          entered_by, action, object);
    }
    std::string proposal_id = internal::RandomHex128();
    StatusOr<std::string> event = im.AppendTo(object, inst.version, kListProposed,
                                              {{"proposal_id", proposal_id},
                                               {"practitioner", practitioner_id},
                                               {"add", add},
                                               {"entered_by", entered_by}},
                                              entered_by);
    if (event.status().code() == absl::StatusCode::kAborted) continue;
    RXFLOW_RETURN_IF_ERROR(event.status());
    im.Audit(entered_by, action, object, kOutcomeSuccess,
             Cat(practitioner_id, " proposal ", proposal_id));
    return proposal_id;
  }
  return absl::AbortedError(Cat("institution ", institution_id, ": too many concurrent updates"));
}

Status Ceremony::ApproveListChange(const std::string& institution_id,
                                   const std::string& proposal_id, const std::string& approver_id,
                                   const TwoFactorProof& proof) {
  Impl& im = *impl_;
  const std::string object = InstitutionStreamOf(institution_id);
  constexpr std::string_view kAction = "epcs.institution.list.approve";
  RXFLOW_ASSIGN_OR_RETURN(InstitutionState inst, im.LoadInstitution(institution_id));
  auto it = inst.proposals.find(proposal_id);
  if (it == inst.proposals.end() || it->second.decided) {
    return im.Refuse(absl::FailedPreconditionError(Cat("no open proposal ", proposal_id)),
                     approver_id, kAction, object);
  }
  if (!inst.Designated(approver_id)) {
    return im.Refuse(absl::PermissionDeniedError(Cat(approver_id, " is not designated by ",
                                                     "institution ", institution_id)),
                     approver_id, kAction, object);
  }
  if (approver_id == it->second.entered_by) {
    return im.Refuse(absl::PermissionDeniedError(
                         "the two-person rule: the person who entered a change cannot approve it"),
                     approver_id, kAction, object);
  }
  StatusOr<std::string> two_factor = im.TwoFactor(approver_id, proof, "approve an EPCS list");
  if (!two_factor.ok()) return im.Refuse(two_factor.status(), approver_id, kAction, object);
  for (int attempt = 0; attempt < kMaxConflictRetries; ++attempt) {
    RXFLOW_ASSIGN_OR_RETURN(InstitutionState now, im.LoadInstitution(institution_id));
    auto current = now.proposals.find(proposal_id);
    if (current == now.proposals.end() || current->second.decided) {
      return im.Refuse(absl::FailedPreconditionError(Cat("proposal ", proposal_id, " was decided")),
                       approver_id, kAction, object);
    }
    StatusOr<std::string> event = im.AppendTo(object, now.version, kListApproved,
                                              {{"proposal_id", proposal_id},
                                               {"approved_by", approver_id},
                                               {"two_factor_event_id", *two_factor}},
                                              approver_id);
    if (event.status().code() == absl::StatusCode::kAborted) continue;
    RXFLOW_RETURN_IF_ERROR(event.status());
    const ListProposal& p = current->second;
    im.Audit(approver_id, Cat("epcs.institution.list.", p.add ? "added" : "removed"), object,
             kOutcomeSuccess,
             Cat(p.practitioner, " entered by ", p.entered_by,
                 ", approved with two factors (event ", *two_factor, ")"));
    return absl::OkStatus();
  }
  return absl::AbortedError(Cat("institution ", institution_id, ": too many concurrent updates"));
}

StatusOr<InstitutionView> Ceremony::InstitutionOf(const std::string& institution_id) {
  RXFLOW_ASSIGN_OR_RETURN(InstitutionState s, impl_->LoadInstitution(institution_id));
  return InstitutionView{s.institution, std::vector<std::string>(s.listed.begin(), s.listed.end())};
}

std::string BiometricMatchText(std::string_view practitioner_id, std::string_view device_id,
                               std::string_view challenge) {
  return Cat("rxflow-biometric-match-v1\npractitioner=", practitioner_id, "\ndevice=", device_id,
             "\nchallenge=", challenge, "\nmatch=1\n");
}

Status Ceremony::EnrollBiometric(const std::string& practitioner_id, const BiometricDevice& device,
                                 const std::string& by) {
  Impl& im = *impl_;
  const std::string object = StreamOf(practitioner_id);
  constexpr std::string_view kAction = "epcs.biometric.enroll";
  if (by.empty()) return absl::InvalidArgumentError("enrolment needs who enters it");
  const std::string& id = device.device_id;
  if (!WellFormedDeviceId(id)) {
    return im.Refuse(absl::InvalidArgumentError("device_id: 1 to 128 printable ASCII characters, "
                                                "no spaces"),
                     by, kAction, object);
  }
  if (Status key = CheckP256PublicKey(device.public_key_der); !key.ok()) {
    return im.Refuse(
        absl::InvalidArgumentError(Cat("public_key_der: ", std::string(key.message()))), by,
        kAction, object);
  }
  if (!(device.false_match_rate > 0 && device.false_match_rate <= kMaxFalseMatchRate)) {
    return im.Refuse(absl::InvalidArgumentError(
                         "false_match_rate: a biometric subsystem must operate at a false match "
                         "rate of 0.001 or lower (21 CFR 1311.116(b))"),
                     by, kAction, object);
  }
  if (absl::StripAsciiWhitespace(device.tested_by).empty()) {
    return im.Refuse(absl::InvalidArgumentError(
                         "tested_by: the laboratory (NIST or DEA-approved) that tested the "
                         "subsystem is required (21 CFR 1311.116(c))"),
                     by, kAction, object);
  }
  for (int attempt = 0; attempt < kMaxConflictRetries; ++attempt) {
    RXFLOW_ASSIGN_OR_RETURN(PractitionerState s, im.Load(practitioner_id));
    if (s.biometrics.count(id) != 0) {
      return im.Refuse(absl::AlreadyExistsError(Cat("device ", id, " is enrolled already")), by,
                       kAction, object);
    }
    Json payload = {{"device_id", id},
                    {"public_key", internal::Base64Encode(device.public_key_der)},
                    {"false_match_rate", device.false_match_rate},
                    {"tested_by", device.tested_by},
                    {"test_report", device.test_report}};
    StatusOr<std::string> event =
        im.Append(practitioner_id, s.version, kBiometricEnrolled, payload, by);
    if (event.status().code() == absl::StatusCode::kAborted) continue;
    RXFLOW_RETURN_IF_ERROR(event.status());
    im.Audit(by, kAction, object, kOutcomeSuccess,
             Cat("device ", id, ", false match rate ", device.false_match_rate, ", tested by ",
                 device.tested_by));
    return absl::OkStatus();
  }
  return absl::AbortedError(Cat("practitioner ", practitioner_id, ": too many concurrent updates"));
}

StatusOr<std::string> Ceremony::BiometricChallenge(const std::string& practitioner_id) {
  Impl& im = *impl_;
  for (int attempt = 0; attempt < kMaxConflictRetries; ++attempt) {
    RXFLOW_ASSIGN_OR_RETURN(PractitionerState s, im.Load(practitioner_id));
    if (s.biometrics.empty()) {
      return absl::FailedPreconditionError(
          Cat("practitioner ", practitioner_id, " has no biometric subsystem enrolled"));
    }
    // No challenges while locked out, and a few outstanding at most: the stream is not a
    // sink for anyone who can call this.
    if (s.view.locked_out) {
      return absl::PermissionDeniedError(
          Cat("practitioner ", practitioner_id, " is locked out after repeated failures"));
    }
    const int64_t now = im.clock.NowMicros() / 1'000'000;
    const auto live = std::count_if(s.challenges.begin(), s.challenges.end(), [&](const auto& c) {
      return now - c.second <= kBiometricChallengeSeconds;
    });
    if (live >= kMaxLiveChallenges) {
      return absl::ResourceExhaustedError(Cat("practitioner ", practitioner_id, " has ",
                                              kMaxLiveChallenges,
                                              " unused biometric challenges: use or let them "
                                              "expire (120 s)"));
    }
    std::string challenge = Cat(internal::RandomHex128(), internal::RandomHex128());
    StatusOr<std::string> event = im.Append(practitioner_id, s.version, kBiometricChallenge,
                                            {{"challenge", challenge}}, practitioner_id);
    if (event.status().code() == absl::StatusCode::kAborted) continue;
    RXFLOW_RETURN_IF_ERROR(event.status());
    return challenge;
  }
  return absl::AbortedError(Cat("practitioner ", practitioner_id, ": too many concurrent updates"));
}

StatusOr<std::string> Ceremony::CompleteTwoFactor(const std::string& practitioner_id,
                                                  const TwoFactorProof& proof,
                                                  std::string_view purpose) {
  return impl_->TwoFactor(practitioner_id, proof, purpose);
}

StatusOr<SigningBundle> Ceremony::Bundle(const std::string& prescription_id,
                                         const std::string& practitioner_id) {
  return impl_->MakeBundle(prescription_id, practitioner_id);
}

StatusOr<std::vector<SigningBundle>> Ceremony::Bundles(
    const std::vector<std::string>& prescription_ids, const std::string& practitioner_id) {
  std::vector<SigningBundle> out;
  std::string patient;
  for (const std::string& id : prescription_ids) {
    RXFLOW_ASSIGN_OR_RETURN(SigningBundle b, impl_->MakeBundle(id, practitioner_id));
    // §1311.140(a)(1): one patient's prescriptions at a time.
    const std::string& name = b.fields[1].value;  // PatientName
    const std::string& address = b.fields[2].value;
    std::string who = Cat(name, "\n", address);
    if (!patient.empty() && who != patient) {
      return absl::InvalidArgumentError(
          Cat("prescription ", id, " is for another patient: a signing list holds one patient's"));
    }
    patient = who;
    out.push_back(std::move(b));
  }
  return out;
}

Status Ceremony::MarkReady(const std::string& prescription_id, const std::string& practitioner_id,
                           const std::string& dea_number, const std::string& bundle_sha256,
                           const RequestContext& ctx) {
  Impl& im = *impl_;
  constexpr std::string_view kAction = "epcs.ready";
  RXFLOW_ASSIGN_OR_RETURN(PractitionerState p, im.Load(practitioner_id));
  if (!p.view.may_mark_ready && !p.view.may_sign) {
    return im.Refuse(absl::PermissionDeniedError(Cat("practitioner ", practitioner_id,
                                                     " may not mark controlled-substance "
                                                     "prescriptions ready")),
                     practitioner_id, kAction, prescription_id);
  }
  StatusOr<SigningBundle> bundle = im.MakeBundle(prescription_id, practitioner_id);
  if (!bundle.ok()) return im.Refuse(bundle.status(), practitioner_id, kAction, prescription_id);
  if (bundle->sha256 != bundle_sha256) {
    return im.Refuse(
        absl::FailedPreconditionError(
            "the signing bundle is not the one reviewed: fetch it and review it again"),
        practitioner_id, kAction, prescription_id);
  }
  if (std::find(bundle->dea_numbers.begin(), bundle->dea_numbers.end(), dea_number) ==
      bundle->dea_numbers.end()) {
    return im.Refuse(absl::PermissionDeniedError(Cat("DEA number ", dea_number,
                                                     " is not a current registration of ",
                                                     practitioner_id, " covering this schedule")),
                     practitioner_id, kAction, prescription_id);
  }
  // §1311.135(a): only the prescriber the prescription names signs it.
  if (!SameNameIgnoringCase(p.view.last_name, bundle->prescription_prescriber_last_name)) {
    return im.Refuse(absl::PermissionDeniedError(
                         Cat("the NewRx names another prescriber: only the prescriber it names (",
                             "by DEA number and name) may mark it ready and sign it")),
                     practitioner_id, kAction, prescription_id);
  }
  if (dea_number != bundle->prescription_dea_number) {
    return im.Refuse(absl::FailedPreconditionError(Cat(
                         "the NewRx names DEA number ", bundle->prescription_dea_number, ", not ",
                         dea_number, ": select it, or submit the prescription again")),
                     practitioner_id, kAction, prescription_id);
  }
  RequestContext c = ctx;
  if (c.actor.empty()) c.actor = practitioner_id;
  Status st = im.service.Execute(prescription_id,
                                 domain::MarkReady{practitioner_id, dea_number, bundle_sha256}, c);
  if (!st.ok()) return im.Refuse(st, practitioner_id, kAction, prescription_id);
  im.Audit(practitioner_id, kAction, prescription_id, kOutcomeSuccess,
           Cat("bundle ", bundle_sha256, " under ", dea_number));
  return absl::OkStatus();
}

Status Ceremony::Sign(const std::string& prescription_id, const std::string& practitioner_id,
                      const std::string& bundle_sha256, const TwoFactorProof& proof,
                      const RequestContext& ctx) {
  Impl& im = *impl_;
  constexpr std::string_view kAction = "epcs.sign";
  // §1311.120(b): the clock within 5 minutes of the trusted time, or no signature.
  if (im.options.time_source != nullptr) {
    int64_t skew = im.options.time_source->NowMicros() - im.clock.NowMicros();
    if (skew > im.options.max_clock_skew_micros || -skew > im.options.max_clock_skew_micros) {
      im.Audit(practitioner_id, "epcs.clock_skew", prescription_id, kOutcomeRefused,
               Cat("clock off by ", skew / 1'000'000, " s"));
      return absl::PermissionDeniedError(Cat("the clock is off by ", skew / 1'000'000,
                                             " s from the trusted time (limit 300 s): signing "
                                             "is blocked"));
    }
  }
  RXFLOW_ASSIGN_OR_RETURN(PractitionerState p, im.Load(practitioner_id));
  if (!p.view.may_sign) {
    return im.Refuse(absl::PermissionDeniedError(Cat("practitioner ", practitioner_id,
                                                     " may not sign controlled-substance "
                                                     "prescriptions")),
                     practitioner_id, kAction, prescription_id);
  }
  RXFLOW_ASSIGN_OR_RETURN(domain::PrescriptionState rx, im.service.Load(prescription_id));
  if (rx.ready_by != practitioner_id || rx.ready_bundle_sha256 != bundle_sha256) {
    return im.Refuse(absl::FailedPreconditionError(
                         "not marked ready by this practitioner for this bundle: review it and "
                         "mark it ready first"),
                     practitioner_id, kAction, prescription_id);
  }
  auto reg =
      std::find_if(p.view.registrations.begin(), p.view.registrations.end(),
                   [&](const DeaRegistration& r) { return r.number == rx.ready_dea_number; });
  if (reg == p.view.registrations.end() || !im.Current(*reg)) {
    return im.Refuse(absl::PermissionDeniedError(Cat("DEA registration ", rx.ready_dea_number,
                                                     " is expired or not the practitioner's")),
                     practitioner_id, kAction, prescription_id);
  }
  // The bundle is recomputed: a change since "ready" needs a fresh review.
  StatusOr<SigningBundle> bundle = im.MakeBundle(prescription_id, practitioner_id);
  if (!bundle.ok()) return im.Refuse(bundle.status(), practitioner_id, kAction, prescription_id);
  if (bundle->sha256 != bundle_sha256) {
    return im.Refuse(absl::FailedPreconditionError("the signing bundle changed since it was marked "
                                                   "ready: review it and mark it ready again"),
                     practitioner_id, kAction, prescription_id);
  }
  // What MarkReady checked, again: the ready mark may not be the ceremony's (T-1.2).
  if (std::find(bundle->dea_numbers.begin(), bundle->dea_numbers.end(), rx.ready_dea_number) ==
          bundle->dea_numbers.end() ||
      rx.ready_dea_number != bundle->prescription_dea_number ||
      !SameNameIgnoringCase(p.view.last_name, bundle->prescription_prescriber_last_name)) {
    return im.Refuse(
        absl::PermissionDeniedError(
            Cat("DEA number ", rx.ready_dea_number, " is not a current registration of ",
                practitioner_id, " covering this schedule, or the NewRx names another prescriber")),
        practitioner_id, kAction, prescription_id);
  }
  if (!im.options.signer_for) {
    return im.Refuse(absl::FailedPreconditionError("no signing key is configured"), practitioner_id,
                     kAction, prescription_id);
  }
  // What is signed is what was shown: this NewRx's bundle, hashed again.
  StatusOr<script::Message> stored = im.StoredNewRx(prescription_id);
  if (!stored.ok()) return im.Refuse(stored.status(), practitioner_id, kAction, prescription_id);
  script::Message message = std::move(*stored);
  if (internal::Sha256Hex(
          Cat(CanonicalPart1306(Part1306Fields(std::get<script::NewRx>(message.body))),
              kAttestation)) != bundle_sha256) {
    return im.Refuse(absl::FailedPreconditionError("the NewRx is not the one the bundle showed"),
                     practitioner_id, kAction, prescription_id);
  }
  StatusOr<script::Version> version = script::ParseVersion(rx.script_version);
  if (!version.ok()) return im.Refuse(version.status(), practitioner_id, kAction, prescription_id);
  // The certificate the pharmacy will check, before the factors are spent on a signature it
  // would refuse: the selected registration's, a signing (not CA) certificate, valid now.
  Status certificate = CheckSigningCertificate(p.certificate_der, rx.ready_dea_number,
                                               im.clock.NowMicros() / 1'000'000);
  if (!certificate.ok()) {
    return im.Refuse(certificate, practitioner_id, kAction, prescription_id);
  }
  // Completing the two factors is the signature.
  StatusOr<std::string> two_factor =
      im.TwoFactor(practitioner_id, proof, "sign",
                   {{"prescription", prescription_id}, {"bundle_sha256", bundle_sha256}});
  if (!two_factor.ok())
    return im.Refuse(two_factor.status(), practitioner_id, kAction, prescription_id);
  StatusOr<std::shared_ptr<Signer>> signer = im.options.signer_for(p.view, p.key_label);
  if (!signer.ok()) return im.Refuse(signer.status(), practitioner_id, kAction, prescription_id);
  Status signed_status = SignNewRx(message, **signer, p.certificate_der);
  if (!signed_status.ok()) {
    return im.Refuse(signed_status, practitioner_id, kAction, prescription_id);
  }
  IssueList issues;
  script::WriteOptions wo;
  wo.profile = &script::BuiltinProfile(*version);
  StatusOr<std::string> xml = script::WriteXml(message, issues, wo);
  if (!xml.ok()) return im.Refuse(xml.status(), practitioner_id, kAction, prescription_id);
  if (im.options.sender_trust != nullptr) {
    // T-5.4: not transmitted unless the certificate is valid, as the pharmacy will check it.
    SignatureVerification check = VerifyPrescriptionSignature(message, *im.options.sender_trust);
    if (!check.ok()) {
      return im.Refuse(
          absl::FailedPreconditionError(Cat("the signing certificate does not verify (",
                                            SignatureCheckName(check.result), ": ", check.reason,
                                            "): the prescription is not signed or sent")),
          practitioner_id, kAction, prescription_id);
    }
  }
  RequestContext c = ctx;
  if (c.actor.empty()) c.actor = practitioner_id;
  domain::PrescriptionSigned record{practitioner_id,
                                    message.header.digital_signature->signature_value,
                                    bundle_sha256,
                                    rx.ready_dea_number,
                                    *two_factor,
                                    std::move(*xml),
                                    "",
                                    ""};
  if (im.options.record_cosigner != nullptr) {
    Status cosigned = CoSignSignatureRecord(prescription_id, record, *im.options.record_cosigner);
    if (!cosigned.ok()) return im.Refuse(cosigned, practitioner_id, kAction, prescription_id);
  }
  domain::Sign command{record.signer,
                       record.signature,
                       record.signed_content_sha256,
                       record.dea_number,
                       record.two_factor_event_id,
                       std::move(record.signed_newrx_xml),
                       record.record_cosignature,
                       record.record_cosigner_key_sha256};
  Status st = im.service.Execute(prescription_id, command, c);
  if (!st.ok()) return im.Refuse(st, practitioner_id, kAction, prescription_id);
  im.Audit(practitioner_id, kAction, prescription_id, kOutcomeSuccess,
           Cat("signed under ", rx.ready_dea_number, " with two-factor event ", *two_factor,
               "; digest ", message.header.digital_signature->digest_value));
  // §1311.170(a): transmitted as soon as possible after signing.
  Status routed = im.service.Route(prescription_id, c);
  im.Audit(practitioner_id, "epcs.transmit.queued", prescription_id,
           routed.ok() ? kOutcomeSuccess : kOutcomeFailure,
           routed.ok() ? "" : std::string(routed.message()));
  return absl::OkStatus();
}

namespace {

Status NotFromCeremony(std::string_view what) {
  return absl::PermissionDeniedError(
      Cat(what,
          ": only the EPCS signing ceremony marks controlled substances ready and signs "
          "them (21 CFR 1311.100(d), 1311.140(a))"));
}

}  // namespace

Status CheckCeremonyCommand(store::EventStore& store, const std::string& prescription_id,
                            std::string_view tenant, const domain::Command& command) {
  const auto* ready = std::get_if<domain::MarkReady>(&command);
  const auto* sign = std::get_if<domain::Sign>(&command);
  if (ready == nullptr && sign == nullptr) return absl::OkStatus();
  const std::string& who = ready != nullptr ? ready->practitioner : sign->signer;
  RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> records, store.ReadStream(StreamOf(who)));
  if (records.empty()) return NotFromCeremony(Cat("no EPCS practitioner ", who, " is enrolled"));
  PractitionerState p;
  for (const store::EventRecord& r : records) RXFLOW_RETURN_IF_ERROR(ApplyEvent(p, r));
  auto named = [](std::string_view t) { return t.empty() ? kDefaultTenant : t; };
  if (named(p.view.tenant) != named(tenant)) {
    return NotFromCeremony(Cat("practitioner ", who, " is enrolled in another tenant"));
  }
  const std::string& dea = ready != nullptr ? ready->dea_number : sign->dea_number;
  if (std::none_of(p.view.registrations.begin(), p.view.registrations.end(),
                   [&](const DeaRegistration& r) { return r.number == dea; })) {
    return NotFromCeremony(Cat("DEA number ", dea, " is not a registration of ", who));
  }
  if (ready != nullptr) {
    if (!p.view.may_mark_ready && !p.view.may_sign) {
      return NotFromCeremony(Cat("practitioner ", who, " may not mark prescriptions ready"));
    }
    return absl::OkStatus();
  }
  if (!p.view.may_sign) return NotFromCeremony(Cat("practitioner ", who, " may not sign"));
  // The signature is a two-factor completion the ceremony recorded for this prescription and
  // this bundle (so it signs nothing else, and a prescription signs once).
  auto event = std::find_if(records.rbegin(), records.rend(), [&](const store::EventRecord& r) {
    return r.event_id == sign->two_factor_event_id;
  });
  Json attempt = event == records.rend() || event->type != kTwoFactor
                     ? Json()
                     : Json::parse(event->payload, nullptr, /*allow_exceptions=*/false);
  if (!attempt.is_object() || attempt.value("outcome", "") != "accepted" ||
      attempt.value("purpose", "") != "sign" ||
      attempt.value("prescription", "") != prescription_id ||
      attempt.value("bundle_sha256", "") != sign->signed_content_sha256) {
    return NotFromCeremony(Cat("two-factor event ", sign->two_factor_event_id, " is not ", who,
                               "'s completed two-factor authentication for signing this "
                               "prescription's bundle"));
  }
  // What is recorded as signed is signed, by the key of the certificate enrolled for them,
  // over the bundle that was marked ready.
  IssueList issues;
  StatusOr<script::Message> signed_newrx = script::ReadXml(sign->signed_newrx_xml, issues);
  if (!signed_newrx.ok() || !std::holds_alternative<script::NewRx>(signed_newrx->body)) {
    return NotFromCeremony("the signed NewRx cannot be read");
  }
  SignatureVerification verified =
      VerifySignedByEnrolledCertificate(*signed_newrx, p.certificate_der);
  if (!verified.ok()) {
    return NotFromCeremony(Cat("the signed NewRx does not verify (",
                               SignatureCheckName(verified.result), ": ", verified.reason, ")"));
  }
  const script::NewRx& rx = std::get<script::NewRx>(signed_newrx->body);
  if (signed_newrx->header.digital_signature->signature_value != sign->signature ||
      internal::Sha256Hex(Cat(CanonicalPart1306(Part1306Fields(rx)), kAttestation)) !=
          sign->signed_content_sha256) {
    return NotFromCeremony("the signed NewRx is not the bundle that was marked ready");
  }
  return absl::OkStatus();
}

}  // namespace rxflow::epcs
