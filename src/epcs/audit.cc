// SPDX-License-Identifier: Apache-2.0
// The EPCS audit chain (rxflow/epcs/audit.h). Payloads are written straight from the record
// (no DOM) and read with nlohmann/json without exceptions: a payload that does not decode is
// a finding of the verifier, never an exception crossing the API.
#include "rxflow/epcs/audit.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "rxflow/crypto/pq.h"
#include "rxflow/internal/crypto.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/runtime/resilience.h"

#include "common/text.h"

namespace rxflow::epcs {

using rxflow::internal::Append;
using rxflow::internal::Cat;

namespace {

using Json = nlohmann::json;

// Names the encoding in every hash, so a future encoding can never produce the same bytes as
// this one for a different record.
constexpr std::string_view kCanonicalTag = "rxflow.epcs.audit/1";

// The payload's fields, in the order they are written.
constexpr std::string_view kFields[] = {"sequence",      "time_micros", "actor",  "action",
                                        "object",        "outcome",     "source", "detail",
                                        "previous_hash", "hash"};

void AppendNetstring(std::string& out, std::string_view s) { Append(out, s.size(), ':', s, ','); }

void AppendNetstring(std::string& out, int64_t v) { AppendNetstring(out, Cat(v)); }

std::string Base64Encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

// Strict base64 (RFC 4648 alphabet, padded, no white space); nullopt when `in` is not.
std::optional<std::string> Base64Decode(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) return std::nullopt;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '+' || c == '/';
    // '=' only as the last one or two characters.
    bool pad = c == '=' && i + 2 >= in.size() && (i + 1 == in.size() || in.back() == '=');
    if (!alpha && !pad) return std::nullopt;
  }
  std::string out(in.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts the padding as zero bytes.
  size_t padding = in.ends_with("==") ? 2 : in.ends_with('=') ? 1 : 0;
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

// The value of `name=` among the space-separated tokens of a checkpoint's detail.
std::optional<std::string_view> DetailToken(std::string_view detail, std::string_view name) {
  size_t at = 0;
  while (at <= detail.size()) {
    size_t end = detail.find(' ', at);
    if (end == std::string_view::npos) end = detail.size();
    std::string_view token = detail.substr(at, end - at);
    if (token.size() > name.size() && token.starts_with(name) && token[name.size()] == '=') {
      return token.substr(name.size() + 1);
    }
    at = end + 1;
  }
  return std::nullopt;
}

// One of a checkpoint's signatures: its detail tokens, what the messages call it, and how it
// is verified.
struct CheckpointSignature {
  std::string_view signature_token;  // "signature", "mldsa65"
  std::string_view key_token;        // "key-sha256", "mldsa65-key-sha256"
  std::string_view signed_as;        // "signed", "co-signed"
  Status (*verify)(std::string_view key, std::string_view data, std::string_view signature);
};

Status VerifyEcdsa(std::string_view key, std::string_view data, std::string_view signature) {
  return VerifyEcdsaSha256(key, data, signature);
}
Status VerifyMlDsa(std::string_view key, std::string_view data, std::string_view signature) {
  return pq::VerifyMlDsa65(key, data, signature, kCoSignAuditCheckpoint);
}
constexpr CheckpointSignature kEcdsaCheckpoint{"signature", "key-sha256", "signed", &VerifyEcdsa};
constexpr CheckpointSignature kMlDsaCheckpoint{"mldsa65", "mldsa65-key-sha256", "co-signed",
                                               &VerifyMlDsa};

// Why the checkpoint `record` has no valid `kind` signature by `key` (whose SHA-256 is
// `fingerprint`), or nullopt when it has one.
std::optional<std::string> CheckpointProblem(const AuditRecord& record,
                                             const CheckpointSignature& kind, std::string_view key,
                                             std::string_view fingerprint) {
  auto signature_b64 = DetailToken(record.detail, kind.signature_token);
  auto signer = DetailToken(record.detail, kind.key_token);
  if (!signature_b64 || !signer) {
    return Cat("its detail has no ", kind.signature_token, "= and ", kind.key_token, "=");
  }
  if (*signer != fingerprint) {
    return Cat(kind.signed_as, " by the key with SHA-256 ", *signer, ", not by the given key");
  }
  auto signature = Base64Decode(*signature_b64);
  if (!signature) return Cat("the ", kind.signature_token, " signature is not base64");
  Status s = kind.verify(key, record.previous_hash, *signature);
  if (!s.ok()) return std::string(s.message());
  return std::nullopt;
}

Status ValidateEntry(const AuditEntry& e) {
  if (e.actor.empty()) return absl::InvalidArgumentError("audit record: actor is empty");
  if (e.action.empty()) return absl::InvalidArgumentError("audit record: action is empty");
  if (e.action == kActionCheckpoint || e.action == kActionCheckpointFailed ||
      e.action == kActionTamperDetected) {
    return absl::InvalidArgumentError(
        Cat("audit record: action ", e.action, " is reserved for the audit trail itself"));
  }
  if (e.outcome != kOutcomeSuccess && e.outcome != kOutcomeFailure &&
      e.outcome != kOutcomeRefused) {
    return absl::InvalidArgumentError(
        Cat("audit record: outcome \"", e.outcome, "\" is not success, failure or refused"));
  }
  return absl::OkStatus();
}

std::string InsertedAfter(int64_t sequence) {
  if (sequence == 0) return "a record was inserted before record 1";
  return Cat("a record was inserted after record ", sequence);
}

std::string Missing(int64_t sequence) { return Cat("record ", sequence, " is missing (deleted)"); }

}  // namespace

std::string CanonicalAuditRecord(const AuditRecord& r) {
  std::string out;
  out.reserve(64 + r.actor.size() + r.action.size() + r.object.size() + r.outcome.size() +
              r.source.size() + r.detail.size());
  AppendNetstring(out, kCanonicalTag);
  AppendNetstring(out, r.sequence);
  AppendNetstring(out, r.time_micros);
  AppendNetstring(out, r.actor);
  AppendNetstring(out, r.action);
  AppendNetstring(out, r.object);
  AppendNetstring(out, r.outcome);
  AppendNetstring(out, r.source);
  AppendNetstring(out, r.detail);
  return out;
}

std::string AuditRecordHash(const AuditRecord& r) {
  return internal::Sha256Hex(Cat(r.previous_hash, CanonicalAuditRecord(r)));
}

std::string EncodeAuditRecord(const AuditRecord& r) {
  std::string out;
  auto str = [&out](std::string_view name, std::string_view value) {
    Append(out, ",\"", name, "\":\"");
    internal::AppendJsonEscaped(out, value);
    out.push_back('"');
  };
  Append(out, "{\"sequence\":", r.sequence, ",\"time_micros\":", r.time_micros);
  str("actor", r.actor);
  str("action", r.action);
  str("object", r.object);
  str("outcome", r.outcome);
  str("source", r.source);
  str("detail", r.detail);
  str("previous_hash", r.previous_hash);
  str("hash", r.hash);
  out.push_back('}');
  return out;
}

StatusOr<AuditRecord> DecodeAuditRecord(std::string_view json) {
  // nlohmann keeps the last of two equal keys; another reader might keep the first, so a
  // payload with a key twice could show an auditor other text than was hashed: refuse it.
  std::set<std::string> keys;
  std::string duplicate;
  Json::parser_callback_t callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::key && parsed.is_string()) {
      if (!keys.insert(parsed.get<std::string>()).second && duplicate.empty()) {
        duplicate = parsed.get<std::string>();
      }
    }
    return true;
  };
  Json j = Json::parse(json.begin(), json.end(), callback, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("audit record: payload is not JSON");
  if (!j.is_object()) {
    return absl::InvalidArgumentError("audit record: payload is not a JSON object");
  }
  if (!duplicate.empty()) {
    return absl::InvalidArgumentError(Cat("audit record: field ", duplicate, " is given twice"));
  }
  for (const auto& [name, value] : j.items()) {
    if (std::find(std::begin(kFields), std::end(kFields), name) == std::end(kFields)) {
      return absl::InvalidArgumentError(Cat("audit record: unknown field ", name));
    }
  }
  AuditRecord r;
  auto integer = [&j](std::string_view name, int64_t& out) -> Status {
    auto it = j.find(std::string(name));
    if (it == j.end()) return absl::InvalidArgumentError(Cat("audit record: no ", name));
    if (it->is_number_unsigned() &&
        it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(Cat("audit record: ", name, " is out of range"));
    }
    if (!it->is_number_integer()) {
      return absl::InvalidArgumentError(Cat("audit record: ", name, " is not an integer"));
    }
    out = it->get<int64_t>();
    return absl::OkStatus();
  };
  auto text = [&j](std::string_view name, std::string& out) -> Status {
    auto it = j.find(std::string(name));
    if (it == j.end()) return absl::InvalidArgumentError(Cat("audit record: no ", name));
    if (!it->is_string()) {
      return absl::InvalidArgumentError(Cat("audit record: ", name, " is not a string"));
    }
    out = it->get<std::string>();
    return absl::OkStatus();
  };
  RXFLOW_RETURN_IF_ERROR(integer("sequence", r.sequence));
  RXFLOW_RETURN_IF_ERROR(integer("time_micros", r.time_micros));
  RXFLOW_RETURN_IF_ERROR(text("actor", r.actor));
  RXFLOW_RETURN_IF_ERROR(text("action", r.action));
  RXFLOW_RETURN_IF_ERROR(text("object", r.object));
  RXFLOW_RETURN_IF_ERROR(text("outcome", r.outcome));
  RXFLOW_RETURN_IF_ERROR(text("source", r.source));
  RXFLOW_RETURN_IF_ERROR(text("detail", r.detail));
  RXFLOW_RETURN_IF_ERROR(text("previous_hash", r.previous_hash));
  RXFLOW_RETURN_IF_ERROR(text("hash", r.hash));
  return r;
}

// ---- AuditTrail ----------------------------------------------------------------------------

AuditTrail::AuditTrail(store::EventStore& store, Clock& clock, AuditTrailOptions options)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      ids_(options_.ids ? *options_.ids : RandomIds()) {
  // Every second record a checkpoint at most: a checkpoint in every slot would leave none
  // for the records it is meant to seal.
  options_.checkpoint_every = std::max<int64_t>(options_.checkpoint_every, 2);
  options_.max_attempts = std::max(options_.max_attempts, 1);
}

Status AuditTrail::RefreshHeadLocked() {
  const int64_t after = head_known_ ? head_version_ : 0;
  auto events = store_.ReadStream(options_.stream_id, after);
  if (!events.ok()) return events.status();
  if (events->empty() && after > 0) {
    // Called after a conflict, yet nothing follows the cached head: the stream is shorter
    // than it was (its last records were removed). Start over from the stream as it is.
    head_known_ = false;
    head_version_ = 0;
    return RefreshHeadLocked();
  }
  head_known_ = true;
  if (events->empty()) {
    head_hash_ = std::string(kAuditGenesisHash);
    return absl::OkStatus();
  }
  const store::EventRecord& last = events->back();
  head_version_ = last.version;
  auto record = DecodeAuditRecord(last.payload);
  // An unreadable head (tampered with) must not stop the trail: that would let anyone who
  // can corrupt one row switch auditing off. The verifier reports the record either way.
  head_hash_ = record.ok() ? record->hash : internal::Sha256Hex(last.payload);
  return absl::OkStatus();
}

AuditRecord AuditTrail::CheckpointLocked(int64_t sealed_sequence, const std::string& sealed_hash,
                                         int64_t now) {
  AuditRecord r;
  r.time_micros = now;
  r.actor = options_.system_actor;
  r.source = options_.system_actor;
  r.object = Cat(options_.stream_id, "@", sealed_sequence);
  Status failed;
  if (key_fingerprint_.empty()) {
    auto key = options_.checkpoint_signer->PublicKeyDer();
    if (key.ok()) {
      key_fingerprint_ = internal::Sha256Hex(*key);
    } else {
      failed = key.status();
    }
  }
  if (failed.ok()) {
    auto signature = options_.checkpoint_signer->Sign(sealed_hash);
    StatusOr<std::string> cosignature = std::string();
    if (signature.ok() && options_.checkpoint_cosigner != nullptr) {
      cosignature = options_.checkpoint_cosigner->Sign(sealed_hash, kCoSignAuditCheckpoint);
    }
    if (signature.ok() && cosignature.ok()) {
      r.action = std::string(kActionCheckpoint);
      r.outcome = std::string(kOutcomeSuccess);
      r.detail = Cat("signature=", Base64Encode(*signature), " key-sha256=", key_fingerprint_);
      if (options_.checkpoint_cosigner != nullptr) {
        r.detail += Cat(" mldsa65=", Base64Encode(*cosignature), " mldsa65-key-sha256=",
                        internal::Sha256Hex(options_.checkpoint_cosigner->PublicKey()));
      }
      return r;
    }
    failed = signature.ok() ? cosignature.status() : signature.status();
  }
  r.action = std::string(kActionCheckpointFailed);
  r.outcome = std::string(kOutcomeFailure);
  r.detail = Cat("the checkpoint could not be signed: ", absl::StatusCodeToString(failed.code()),
                 ": ", std::string(failed.message()));
  internal::MakeValidUtf8(r.detail);
  return r;
}

void AuditTrail::BackOffLocked(int retry) const {
  if (options_.conflict_backoff_max.count() <= 0) return;
  runtime::BackoffOptions backoff;
  backoff.base = std::chrono::milliseconds(1);
  backoff.max = options_.conflict_backoff_max;
  // Under the lock on purpose: this process's other callers would meet the same conflict.
  std::this_thread::sleep_for(runtime::BackoffDelay(backoff, retry));
}

StatusOr<AuditRecord> AuditTrail::Record(AuditEntry entry) {
  RXFLOW_RETURN_IF_ERROR(ValidateEntry(entry));
  return AppendEntry(std::move(entry));
}

StatusOr<AuditRecord> AuditTrail::AppendEntry(AuditEntry entry) {
  for (std::string* s :
       {&entry.actor, &entry.action, &entry.object, &entry.outcome, &entry.source, &entry.detail}) {
    internal::MakeValidUtf8(*s);
  }
  std::lock_guard<std::mutex> lock(mu_);
  Status conflict;
  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    if (attempt > 0) BackOffLocked(attempt);
    if (!head_known_ || attempt > 0) RXFLOW_RETURN_IF_ERROR(RefreshHeadLocked());
    // Stamped under the lock and after the head was read, so this process's records are in
    // time order, and a record follows the other writers' records it chains to in time too.
    const int64_t now = clock_.NowMicros();
    std::vector<AuditRecord> batch;
    int64_t sequence = head_version_;
    std::string previous = head_hash_;
    auto add = [&](AuditRecord r) {
      r.sequence = ++sequence;
      r.previous_hash = previous;
      r.hash = AuditRecordHash(r);
      previous = r.hash;
      batch.push_back(std::move(r));
    };
    auto checkpoint_slot = [&] {
      return options_.checkpoint_signer != nullptr &&
             (sequence + 1) % options_.checkpoint_every == 0;
    };
    if (checkpoint_slot()) add(CheckpointLocked(sequence, previous, now));
    AuditRecord record;
    record.time_micros = now;
    record.actor = entry.actor;
    record.action = entry.action;
    record.object = entry.object;
    record.outcome = entry.outcome;
    record.source = entry.source;
    record.detail = entry.detail;
    add(std::move(record));
    const size_t entry_index = batch.size() - 1;
    if (checkpoint_slot()) add(CheckpointLocked(sequence, previous, now));

    store::AppendRequest request;
    request.stream_id = options_.stream_id;
    request.expected_version = head_version_;
    for (const AuditRecord& r : batch) {
      store::EventRecord e;
      e.event_id = ids_.NewId();
      e.stream_id = options_.stream_id;
      e.type = std::string(kAuditEventType);
      e.occurred_at = r.time_micros;
      e.actor = r.actor;
      e.payload = EncodeAuditRecord(r);
      request.events.push_back(std::move(e));
    }
    auto appended = store_.Append(std::move(request));
    if (appended.ok()) {
      head_version_ = sequence;
      head_hash_ = previous;
      return std::move(batch[entry_index]);
    }
    if (appended.status().code() != absl::StatusCode::kAborted) {
      return Status(appended.status().code(),
                    Cat("audit record ", entry.action, " on stream ", options_.stream_id, ": ",
                        std::string(appended.status().message())));
    }
    conflict = appended.status();  // another writer appended first: re-read the head
  }
  return absl::AbortedError(Cat("audit record ", entry.action, " on stream ", options_.stream_id,
                                ": still conflicting after ", options_.max_attempts,
                                " attempts: ", std::string(conflict.message())));
}

StatusOr<AuditVerification> AuditTrail::VerifyAndRecord(
    std::string_view checkpoint_public_key_der, std::string_view checkpoint_mldsa65_public_key) {
  RXFLOW_ASSIGN_OR_RETURN(AuditVerification v,
                          VerifyAuditTrail(store_, options_.stream_id, checkpoint_public_key_der,
                                           std::max<int64_t>(options_.checkpoint_every, 2),
                                           checkpoint_mldsa65_public_key));
  if (v.ok) return v;
  AuditEntry tamper;
  tamper.actor = options_.system_actor;
  tamper.action = std::string(kActionTamperDetected);
  tamper.object = Cat(options_.stream_id, "@", v.first_bad_sequence.value_or(0));
  tamper.outcome = std::string(kOutcomeFailure);
  tamper.source = options_.system_actor;
  tamper.detail = v.problem;
  // The reserved action, which Record() refuses from callers.
  auto recorded = AppendEntry(std::move(tamper));
  if (!recorded.ok()) {
    return Status(recorded.status().code(),
                  Cat("audit stream ", options_.stream_id, ": ", v.problem,
                      ", and recording that failed: ", std::string(recorded.status().message())));
  }
  return v;
}

// ---- verification ----------------------------------------------------------------------------

StatusOr<AuditVerification> VerifyAuditTrail(store::EventStore& store, std::string_view stream_id,
                                             std::string_view checkpoint_public_key_der,
                                             int64_t checkpoint_every,
                                             std::string_view checkpoint_mldsa65_public_key) {
  if (!checkpoint_mldsa65_public_key.empty() &&
      checkpoint_mldsa65_public_key.size() != pq::kMlDsa65PublicKeyBytes) {
    return absl::InvalidArgumentError(Cat("the checkpoints' ML-DSA-65 public key must be ",
                                          pq::kMlDsa65PublicKeyBytes, " bytes (raw), not ",
                                          checkpoint_mldsa65_public_key.size()));
  }
  RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> events,
                          store.ReadStream(std::string(stream_id)));
  // Everything is decoded first: telling a reordered record from a deleted one needs a look
  // at the records after it.
  struct Item {
    std::optional<AuditRecord> record;
    bool intact = false;  // its content gives its hash
    std::string error;    // why it could not be decoded
  };
  std::vector<Item> items(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].type != kAuditEventType) continue;
    auto r = DecodeAuditRecord(events[i].payload);
    if (!r.ok()) {
      items[i].error = std::string(r.status().message());
      continue;
    }
    items[i].intact = AuditRecordHash(*r) == r->hash;
    items[i].record = std::move(*r);
  }
  const std::string fingerprint = checkpoint_public_key_der.empty()
                                      ? std::string()
                                      : internal::Sha256Hex(checkpoint_public_key_der);
  const std::string mldsa_fingerprint = checkpoint_mldsa65_public_key.empty()
                                            ? std::string()
                                            : internal::Sha256Hex(checkpoint_mldsa65_public_key);

  AuditVerification v;
  int64_t last_sequence = 0;
  std::string last_hash(kAuditGenesisHash);
  int64_t last_checkpoint = 0;
  // The hashes of the records accepted so far (and the genesis), by sequence.
  std::unordered_map<std::string, int64_t> accepted = {{last_hash, 0}};
  auto fail = [&](int64_t sequence, std::string problem) {
    v.ok = false;
    v.first_bad_sequence = sequence;
    v.problem = std::move(problem);
    v.records_after_last_checkpoint = last_sequence - last_checkpoint;
    return v;
  };
  auto stored_sequence = [&](size_t i) {
    return items[i].record ? items[i].record->sequence : events[i].version;
  };
  for (size_t i = 0; i < events.size(); ++i) {
    const int64_t expected = last_sequence + 1;
    const Item& item = items[i];
    if (!item.record) {
      if (events[i].type != kAuditEventType) {
        return fail(expected,
                    Cat(InsertedAfter(last_sequence), " (an event of type ", events[i].type, ")"));
      }
      return fail(expected, Cat("record ", expected,
                                " was changed (its payload cannot be read: ", item.error, ")"));
    }
    const AuditRecord& r = *item.record;
    if (!item.intact) {
      // The record's own sequence is untrustworthy now; it is believed only where the
      // store's version, kept apart from the payload, says the same.
      if (r.sequence > expected && r.sequence == events[i].version) {
        return fail(expected, Missing(expected));
      }
      return fail(expected, Cat("record ", expected, " was changed"));
    }
    if (auto it = accepted.find(r.hash); it != accepted.end()) {
      return fail(expected,
                  Cat(InsertedAfter(last_sequence), " (a copy of record ", it->second, ")"));
    }
    if (r.previous_hash != last_hash) {
      // The record that belongs here, stored further on: the records were reordered.
      for (size_t j = i + 1; j < events.size(); ++j) {
        const Item& later = items[j];
        if (later.intact && later.record->sequence == expected &&
            later.record->previous_hash == last_hash) {
          return fail(expected, Cat("record ", expected, " is out of order (stored after record ",
                                    stored_sequence(j - 1), ")"));
        }
      }
      // It follows an earlier accepted record, as that record's successor does: one of the two
      // was inserted (without a checkpoint nobody can tell which).
      if (auto it = accepted.find(r.previous_hash); it != accepted.end()) {
        return fail(it->second + 1, Cat(InsertedAfter(it->second),
                                        " (two records claim to be record ", it->second + 1, ")"));
      }
      if (r.sequence > expected) return fail(expected, Missing(expected));
      if (r.sequence == expected) {
        if (expected == 1) return fail(1, "record 1 was changed (it does not start the chain)");
        // The record before was rewritten with a hash of its own; this one still names the
        // old one.
        return fail(expected - 1, Cat("record ", expected - 1, " was changed (record ", expected,
                                      " does not chain to it)"));
      }
      return fail(expected,
                  Cat(InsertedAfter(last_sequence), " (it claims to be record ", r.sequence, ")"));
    }
    if (r.sequence != expected) {
      return fail(expected,
                  Cat(InsertedAfter(last_sequence), " (it claims to be record ", r.sequence, ")"));
    }
    // With a key, every checkpoint slot must hold a signed checkpoint: otherwise whoever
    // rewrites the chain from some record on would simply leave the checkpoints out.
    if ((!checkpoint_public_key_der.empty() || !checkpoint_mldsa65_public_key.empty()) &&
        checkpoint_every >= 2 && r.sequence % checkpoint_every == 0 &&
        r.action != kActionCheckpoint) {
      return fail(r.sequence,
                  Cat("record ", r.sequence, " should be a signed checkpoint (one every ",
                      checkpoint_every, " records) but is ", r.action));
    }
    if (r.action == kActionCheckpoint) {
      if (!checkpoint_public_key_der.empty()) {
        if (auto problem =
                CheckpointProblem(r, kEcdsaCheckpoint, checkpoint_public_key_der, fingerprint)) {
          return fail(r.sequence, Cat("checkpoint at record ", r.sequence,
                                      " has an invalid signature (", *problem, ")"));
        }
      }
      if (!checkpoint_mldsa65_public_key.empty()) {
        if (auto problem = CheckpointProblem(r, kMlDsaCheckpoint, checkpoint_mldsa65_public_key,
                                             mldsa_fingerprint)) {
          return fail(r.sequence, Cat("checkpoint at record ", r.sequence,
                                      " has an invalid ML-DSA-65 co-signature (", *problem, ")"));
        }
      }
      ++v.checkpoints;
      last_checkpoint = r.sequence;
    }
    last_sequence = r.sequence;
    last_hash = r.hash;
    accepted.emplace(r.hash, r.sequence);
    ++v.records;
  }
  v.ok = true;
  v.records_after_last_checkpoint = last_sequence - last_checkpoint;
  return v;
}

StatusOr<std::vector<AuditRecord>> ReadAuditTrail(store::EventStore& store,
                                                  std::string_view stream_id, int64_t from_micros,
                                                  int64_t to_micros) {
  RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> events,
                          store.ReadStream(std::string(stream_id)));
  std::vector<AuditRecord> out;
  for (const store::EventRecord& e : events) {
    auto r = DecodeAuditRecord(e.payload);
    if (!r.ok() || e.type != kAuditEventType) {
      return absl::DataLossError(
          Cat("audit record ", e.version, " of stream ", stream_id, " cannot be decoded: ",
              r.ok() ? Cat("its type is ", e.type) : std::string(r.status().message())));
    }
    if (r->time_micros >= from_micros && r->time_micros < to_micros) out.push_back(std::move(*r));
  }
  return out;
}

}  // namespace rxflow::epcs
