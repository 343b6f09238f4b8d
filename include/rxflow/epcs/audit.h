// SPDX-License-Identifier: Apache-2.0
// File: rxflow/epcs/audit.h
//
// The tamper-evident audit trail of electronic prescriptions for controlled substances
// (21 CFR 1311.150; docs/security-reliability.md T-6.1 to T-6.6). Each auditable event is one
// AuditRecord, stored as one event (type "EpcsAuditRecorded") on the audit stream of the same
// event store that holds the prescriptions, so an audit record is as durable as the facts it
// describes and is retained with them.
//
// The records form a hash chain: a record's hash is the SHA-256 of its predecessor's hash
// followed by its own canonical encoding (CanonicalAuditRecord below; docs/epcs.md, "Audit
// chain", shows how to recompute it with any tool). Changing, deleting, inserting or
// reordering a stored record breaks the chain where it happened, and VerifyAuditTrail names
// that record. A chain alone cannot reveal a rewrite of everything from some record onwards,
// nor the loss of the last records: signed checkpoints (every `checkpoint_every` records, when a
// Signer is given) seal the chain up to them, so a rewrite or truncation before a checkpoint
// needs the private key.
//
// Example:
//   rxflow::epcs::AuditTrail audit(*store, rxflow::SystemClock());
//   auto r = audit.Record({.actor = "prescriber-1842", .action = "epcs.sign",
//                          .object = "rx-01936b2f@4", .outcome = "success",
//                          .source = "rxflow-api@host-2", .detail = "token slot 0"});
#ifndef RXFLOW_EPCS_AUDIT_H_
#define RXFLOW_EPCS_AUDIT_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rxflow/clock.h"
#include "rxflow/epcs/signer.h"
#include "rxflow/status.h"
#include "rxflow/store/event_store.h"

namespace rxflow::epcs {

// The default audit stream and the type of its events.
inline constexpr std::string_view kAuditStream = "epcs-audit";
inline constexpr std::string_view kAuditEventType = "EpcsAuditRecorded";

// The previous_hash of the first record: 64 zeros.
inline constexpr std::string_view kAuditGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// Outcomes.
inline constexpr std::string_view kOutcomeSuccess = "success";
inline constexpr std::string_view kOutcomeFailure = "failure";
inline constexpr std::string_view kOutcomeRefused = "refused";

// Actions the trail writes itself; callers may not record them (a caller's "checkpoint" would
// only look like one).
inline constexpr std::string_view kActionCheckpoint = "epcs.checkpoint";
inline constexpr std::string_view kActionCheckpointFailed = "epcs.checkpoint.failed";
inline constexpr std::string_view kActionTamperDetected = "epcs.audit.tamper_detected";

// What a caller records: one auditable event (T-6.1). The fields are T-6.5's. No field may
// hold PHI: never a patient's name, birth date, address or identifiers, nor a drug linked to
// a patient; the audit trail is read by auditors and operators who need identifiers only.
struct AuditEntry {
  std::string actor;    // who: the user or system id ("prescriber-1842"); required
  std::string action;   // what: "epcs.sign", "epcs.two_factor.failed",
                        // "epcs.permission.granted", ...; required
  std::string object;   // on what: prescription or aggregate id and version ("rx-0193…@4")
  std::string outcome;  // kOutcomeSuccess, kOutcomeFailure or kOutcomeRefused; required
  std::string source;   // from where: program, host, remote address
  std::string detail;   // free text for the auditor; no PHI (see above)
};

// One stored record of the chain. `hash` is AuditRecordHash(*this).
struct AuditRecord {
  int64_t sequence = 0;     // 1, 2, 3, ... (the event's version in the audit stream)
  int64_t time_micros = 0;  // UTC, microseconds since the epoch, from the trail's Clock
                            // (which must be synchronized to NIST time, T-4.9)
  std::string actor;
  std::string action;
  std::string object;
  std::string outcome;
  std::string source;
  std::string detail;         // no PHI (see AuditEntry)
  std::string previous_hash;  // the hash of record sequence-1; kAuditGenesisHash for record 1
  std::string hash;           // 64 lowercase hex digits

  friend bool operator==(const AuditRecord&, const AuditRecord&) = default;
};

// The canonical encoding of `record` without its hashes: netstrings ("<byte length>:<bytes>,",
// the length in decimal) of, in order, the tag "rxflow.epcs.audit/1", the sequence and the time
// (decimal text), actor, action, object, outcome, source and detail (UTF-8 bytes).
std::string CanonicalAuditRecord(const AuditRecord& record);

// lowercase hex SHA-256(previous_hash ‖ CanonicalAuditRecord(record)), previous_hash being its
// 64 ASCII hex digits.
std::string AuditRecordHash(const AuditRecord& record);

// The event payload: a JSON object with exactly the fields of AuditRecord, in declaration
// order, sequence and time_micros as numbers, the others as strings.
std::string EncodeAuditRecord(const AuditRecord& record);
// InvalidArgument naming the problem when `json` is not such an object (a field missing or of
// another type, a field unknown or given twice, not JSON). Does not check the hash.
StatusOr<AuditRecord> DecodeAuditRecord(std::string_view json);

struct AuditTrailOptions {
  std::string stream_id = std::string(kAuditStream);
  // With a signer, every checkpoint_every-th record of the chain (sequence 100, 200, ... by
  // default) is a checkpoint: action kActionCheckpoint, object "<stream id>@<sequence - 1>",
  // detail "signature=<base64 DER ECDSA signature> key-sha256=<hex SHA-256 of the signer's
  // DER public key>", the signature being over the 64 ASCII hex digits of the hash of the
  // record before it (its previous_hash), which the chain ties to every record before. Values
  // below 2 are taken as 2.
  int64_t checkpoint_every = 100;
  // Signs checkpoints (not owned; must outlive the trail). None: no checkpoints.
  Signer* checkpoint_signer = nullptr;
  // With a co-signer too (ML-DSA-65; not owned), each checkpoint's detail goes on with
  // " mldsa65=<base64 ML-DSA-65 signature> mldsa65-key-sha256=<hex SHA-256 of the raw public
  // key>", over the same 64 hex digits, with the context kCoSignAuditCheckpoint. When either
  // signature fails the slot holds a failed checkpoint (kActionCheckpointFailed).
  CoSigner* checkpoint_cosigner = nullptr;
  // Event ids. Default: RandomIds(). Must outlive the trail.
  IdGenerator* ids = nullptr;
  // Actor and source of the records the trail writes itself (checkpoints, tamper reports).
  std::string system_actor = "rxflow";
  // Appends tried when other writers (other processes) keep appending first. Before each
  // retry the trail waits a random time ("full jitter") up to 1 ms, 2 ms, 4 ms, ... capped
  // at conflict_backoff_max, so a writer that keeps losing the race to a busy one is not
  // starved and two that collide spread out. A zero cap retries at once.
  int max_attempts = 20;
  std::chrono::milliseconds conflict_backoff_max{32};
};

// What VerifyAuditTrail found. `records` and `checkpoints` count what was verified before the
// first problem (everything when ok).
struct AuditVerification {
  bool ok = false;
  int64_t records = 0;
  // Checkpoint records found; with a public key given, each one's signature verified.
  int64_t checkpoints = 0;
  // Records after the last checkpoint (all of them when there is none): not an error, but
  // only the chain protects them, which a rewrite of them or a truncation does not break.
  int64_t records_after_last_checkpoint = 0;
  // The first record that was changed, deleted, inserted or reordered, when not ok.
  std::optional<int64_t> first_bad_sequence;
  // What is wrong, when not ok (docs/epcs.md, "Audit chain", explains each message):
  //   "record 17 was changed"                     its content does not give its hash, or its
  //                                               payload cannot be read
  //   "record 16 was changed (record 17 does not chain to it)"
  //                                               a record rewritten with a new hash
  //   "record 17 is missing (deleted)"            the next stored record follows a record
  //                                               that is not there
  //   "a record was inserted after record 16 (...)" a record that is not the chain's record 17
  //   "record 17 is out of order (stored after record 18)"
  //   "checkpoint at record 200 has an invalid signature (...)"
  std::string problem;
};

// Reads `stream_id` in order and checks the chain; with `checkpoint_public_key_der` (a DER
// SubjectPublicKeyInfo), every checkpoint's signature too, and that every checkpoint slot
// (each sequence that is a multiple of `checkpoint_every`, the writer's
// AuditTrailOptions::checkpoint_every) holds one: a slot holding anything else, a failed
// checkpoint included, is reported ("record 200 should be a signed checkpoint ..."). A broken chain
// is a result with ok = false; an error status only means the store could not be read.
// With `checkpoint_mldsa65_public_key` (raw, 1952 bytes; another size is InvalidArgument),
// every checkpoint slot must hold a checkpoint, and every checkpoint a valid ML-DSA-65
// co-signature by that key ("checkpoint at record 200 has an invalid ML-DSA-65 co-signature
// (...)"), whether or not the ECDSA key is given too.
StatusOr<AuditVerification> VerifyAuditTrail(store::EventStore& store,
                                             std::string_view stream_id = kAuditStream,
                                             std::string_view checkpoint_public_key_der = {},
                                             int64_t checkpoint_every = 100,
                                             std::string_view checkpoint_mldsa65_public_key = {});

// Appends audit records to the audit stream. Safe for concurrent use; several trails (in other
// processes) may append to the same stream: a writer that finds the stream moved on re-reads
// its head and retries. `store` and `clock` must outlive the trail.
class AuditTrail {
 public:
  AuditTrail(store::EventStore& store, Clock& clock, AuditTrailOptions options = {});
  AuditTrail(const AuditTrail&) = delete;
  AuditTrail& operator=(const AuditTrail&) = delete;

  // Appends `entry` as the next record (with a checkpoint before or after it when its
  // neighbouring sequence is a checkpoint's: both in one atomic append) and returns the
  // record. InvalidArgument for an empty actor or action, an outcome other than the three,
  // or an action the trail reserves; Aborted after max_attempts version conflicts; the
  // store's status when it fails otherwise. Text that is not valid UTF-8 is stored with
  // U+FFFD for the bad bytes. When the signer fails, the checkpoint slot holds a record of
  // action kActionCheckpointFailed (outcome failure) instead and the entry is still recorded:
  // a device that is down must not stop the audit trail. Nor does a stored head record
  // that cannot be decoded (tampered with): the next record chains to the SHA-256 of its
  // stored payload, and VerifyAuditTrail reports the unreadable record.
  StatusOr<AuditRecord> Record(AuditEntry entry);

  // Whether the trail writes signed checkpoints (AuditTrailOptions::checkpoint_signer).
  bool signs_checkpoints() const { return options_.checkpoint_signer != nullptr; }

  // Verifies the trail (VerifyAuditTrail) and, when it finds tampering, records that (T-6.1
  // event 5, T-6.4): action kActionTamperDetected, outcome failure, object
  // "<stream id>@<first bad sequence>", detail the problem. Returns the verification, or the
  // status of a failed read or of a failed Record.
  StatusOr<AuditVerification> VerifyAndRecord(std::string_view checkpoint_public_key_der = {},
                                              std::string_view checkpoint_mldsa65_public_key = {});

 private:
  // Record() without the checks of the entry (the trail's own records use reserved actions).
  StatusOr<AuditRecord> AppendEntry(AuditEntry entry);
  // Reads the stream's events after the cached head and moves the head to the last one; reads
  // the whole stream when the head is not known yet or the stream has become shorter.
  Status RefreshHeadLocked();
  // Waits before retry `retry` after a version conflict (see conflict_backoff_max).
  void BackOffLocked(int retry) const;
  // The record for a checkpoint slot sealing the record whose hash is `sealed_hash`.
  AuditRecord CheckpointLocked(int64_t sealed_sequence, const std::string& sealed_hash,
                               int64_t now);

  store::EventStore& store_;
  Clock& clock_;
  AuditTrailOptions options_;
  IdGenerator& ids_;
  std::mutex mu_;  // serializes this process's appends (the chain is one sequence anyway)
  int64_t head_version_ = 0;     // guarded by mu_: the last version known to be stored
  std::string head_hash_;        // guarded by mu_: its hash
  bool head_known_ = false;      // guarded by mu_: false until the stream was read once
  std::string key_fingerprint_;  // guarded by mu_: SHA-256 of the signer's public key, hex
};

// Carries what happens to controlled-substance prescriptions after signing into the audit
// chain (T-6.1: transmission, transmission failure, verification failure at the pharmacy):
// it reads the event log from its checkpoint (projection "epcs-audit-transmission") and
// records, for prescriptions with a DEA schedule:
//   PrescriptionSent       epcs.transmit.sent           success
//   PharmacyAcknowledged   epcs.transmit.acknowledged   success (also PharmacyVerified)
//   PharmacyErrorReceived  epcs.transmit.failed         failure, or
//                          epcs.verification.failed     failure when the pharmacy's Error says
//                                                       the digital signature failed
//   CancelRequested        epcs.cancel.requested        success
// Each record's detail names the event id, so a record written again after a crash (between
// the audit append and the checkpoint) is recognisable; delivery is at least once.
// Whether a prescription is controlled comes from its PrescriptionTransformed (its DEA
// schedule). The auditor remembers that for the last `remembered` prescriptions whose
// PrescriptionTransformed it read in the log or in their streams (oldest forgotten first), so a
// catch-up reads a prescription's stream only when its PrescriptionTransformed came before the
// checkpoint and is not remembered (after a restart, or for a prescription acted on long after
// it was written). With `remembered` 0 nothing is kept: a stream is read per audited event.
// Thread-compatible: run one catch-up at a time per auditor, and one auditor per store.
class TransmissionAuditor {
 public:
  static constexpr size_t kDefaultRemembered = 65536;
  // `store` and `audit` (on the same store) must outlive the auditor. It reads no PHI:
  // under phi::NewProtectedStore, `store` may be its target (the log as stored), and then no
  // sealed NewRx is opened.
  TransmissionAuditor(store::Store& store, AuditTrail& audit, std::string source = "rxflow",
                      size_t remembered = kDefaultRemembered);
  // Records what is new since the checkpoint; returns the number of audit records written.
  StatusOr<int64_t> CatchUp();
  // Streams read to learn whether a prescription is controlled, since construction.
  int64_t streams_read() const { return streams_read_; }

 private:
  StatusOr<bool> IsControlled(const std::string& stream_id);
  void Remember(const std::string& stream_id, bool controlled);

  store::Store& store_;
  AuditTrail& audit_;
  std::string source_;
  size_t remembered_;
  std::unordered_map<std::string, bool> controlled_;  // stream id → has a DEA schedule
  std::deque<std::string> controlled_order_;          // controlled_'s keys, oldest first
  int64_t streams_read_ = 0;
};

// The records of `stream_id` with from_micros <= time_micros < to_micros, in sequence order,
// for reports (T-6.2, T-6.6). Does not verify the chain (VerifyAuditTrail does). DataLoss
// naming the record when a payload cannot be decoded.
StatusOr<std::vector<AuditRecord>> ReadAuditTrail(store::EventStore& store,
                                                  std::string_view stream_id, int64_t from_micros,
                                                  int64_t to_micros);

}  // namespace rxflow::epcs

#endif  // RXFLOW_EPCS_AUDIT_H_
