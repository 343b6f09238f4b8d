// SPDX-License-Identifier: Apache-2.0
// File: rxflow/epcs/reports.h
//
// Reports over the EPCS records (docs/security-reliability.md T-6.2, T-6.6; docs/epcs.md,
// "Reports"):
//
//   * the daily incident report (21 CFR 1311.150(b)): the audit trail of one UTC day analysed,
//     every incident listed, the whole chain verified. DailyIncidentReport makes one;
//     DailyAuditJob makes one for every finished day exactly once, persists it in the store,
//     and audits its own runs, a late one as an incident ("a missed run is itself an
//     incident");
//   * the practitioner's log of signed controlled-substance prescriptions for any period,
//     sortable by date, patient and drug, and the previous calendar month's as CSV (T-6.6).
//
// The incident report holds no PHI: audit records carry ids, actions, outcomes and a detail
// that by AuditEntry's contract holds no PHI either. The practitioner's log DOES hold PHI by
// design (patient names, drugs): it goes to the practitioner, never to an audit or
// operations channel.
//
// Example (a daily scheduler, e.g. every hour):
//   rxflow::epcs::DailyAuditJobOptions o;
//   o.report_dir = "/var/lib/rxflow/reports";
//   rxflow::epcs::DailyAuditJob job(*store, audit, o);
//   auto reports = job.RunDue(rxflow::SystemClock().NowMicros());  // nothing new: empty
#ifndef RXFLOW_EPCS_REPORTS_H_
#define RXFLOW_EPCS_REPORTS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rxflow/epcs/audit.h"
#include "rxflow/status.h"
#include "rxflow/store/event_store.h"

namespace rxflow::epcs {

// ---- UTC days ------------------------------------------------------------------------------

inline constexpr int64_t kMicrosPerDay = 86'400'000'000LL;

// "YYYY-MM-DD": the UTC day holding `micros` (microseconds since the epoch).
std::string UtcDay(int64_t micros);
// 00:00:00Z of the day "YYYY-MM-DD" in microseconds since the epoch. InvalidArgument naming
// the text when it is not exactly such a date, or names a day no calendar has.
StatusOr<int64_t> ParseUtcDay(std::string_view day);

// ---- the daily incident report (T-6.2) ----------------------------------------------------

// What counts as an incident, beyond every record whose outcome is failure or refused.
struct IncidentPolicy {
  // The audit stream, and the checkpoint key its chain is verified with (DER
  // SubjectPublicKeyInfo; empty: checkpoint signatures are not checked).
  std::string stream_id = std::string(kAuditStream);
  std::string checkpoint_public_key_der;
  int64_t checkpoint_every = 100;  // the trail's AuditTrailOptions::checkpoint_every
  // A burst: at least `burst_failures` two-factor failures (epcs.two_factor.failed or
  // .locked_out) of one actor within `burst_window_micros` is a finding. Only failures within
  // the reported day are counted.
  int burst_failures = 3;
  int64_t burst_window_micros = int64_t{10} * 60 * 1'000'000;
  // Action prefixes that are incidents whatever their outcome: changes of EPCS controls
  // (T-6.1 events 4 and 5), lockouts, clock skew, tampering, unsigned checkpoints. Add e.g.
  // "epcs.permission.granted" to list every grant of an EPCS permission too.
  std::vector<std::string> incident_actions = {
      "epcs.control.", "epcs.two_factor.locked_out", "epcs.clock_skew",
      std::string(kActionTamperDetected), std::string(kActionCheckpointFailed)};
};

struct IncidentReport {
  std::string day;      // YYYY-MM-DD, UTC
  int64_t records = 0;  // audit records of that day
  // The incidents of the day, in sequence order.
  std::vector<AuditRecord> incidents;
  // The whole chain as verified when the report was made (not only that day's records):
  // tampering anywhere is in every report until it is dealt with.
  bool chain_ok = false;
  std::string chain_problem;  // VerifyAuditTrail's message when not chain_ok
  // What the analysis found across records: bursts of two-factor failures, lockouts, clock
  // skew, control changes, tampering, a broken chain, records that cannot be read, a late
  // review. One sentence each, ids only.
  std::vector<std::string> findings;
  bool late = false;  // DailyAuditJob made it later than 24 h + grace after the day ended
  // Set by DailyAuditJob (0 otherwise): when the review ran, and, when the report has
  // incidents, findings or a broken chain, the time by which they are to be reported to the
  // practitioner or pharmacy and to DEA (T-6.3, 21 CFR 1311.150(c): within one business day):
  // NotifyBy(the end of the day reviewed), the same on every retry.
  int64_t reviewed_at_micros = 0;
  int64_t notify_by_micros = 0;
  std::string text;  // the report for people (below)
  std::string json;  // the report for programs: {"day", "records", "chain_ok",
                     // "chain_problem", "late", "reviewed_at" and "notify_by" (RFC 3339;
                     // null when not set), "incidents": [{"sequence", "time",
                     // "actor", "action", "object", "outcome", "source", "detail"}],
                     // "findings": [...]}
};

// One business day after `micros` (T-6.3): the end (next 00:00:00Z) of the next UTC day
// that is a Monday to Friday. Public holidays are not known: a deployment that observes them
// reports earlier.
int64_t NotifyBy(int64_t micros);

// The incident report of the UTC day starting at `day_start_micros` (21 CFR 1311.150(b)):
// the day's records of policy.stream_id, the chain verified from its start. A record that
// cannot be decoded is a finding, not an error (it is the tampering the report exists to
// show). InvalidArgument when day_start_micros is not 00:00:00Z; the store's status when it
// cannot be read.
StatusOr<IncidentReport> DailyIncidentReport(store::EventStore& store, int64_t day_start_micros,
                                             const IncidentPolicy& policy = {});

// Where DailyAuditJob keeps its reports: a ProjectionStore projection whose rows are
// (day, report JSON) and whose checkpoint is the number of the day after the last one
// reported (days since 1970-01-01; 0: none yet).
inline constexpr std::string_view kDailyReportProjection = "epcs-daily-report";
// The job's audit records.
inline constexpr std::string_view kActionDailyReport = "epcs.audit.daily_report";
inline constexpr std::string_view kActionDailyReportLate = "epcs.audit.daily_report.late";
inline constexpr std::string_view kActionIncidentNotify = "epcs.audit.incident_notify";

struct DailyAuditJobOptions {
  IncidentPolicy policy;  // policy.stream_id must be the stream of the job's AuditTrail
  // When set, each report is also written to <report_dir>/epcs-incidents-<day>.txt and
  // .json (the directory is created).
  std::string report_dir;
  // A day's review is due within 24 hours after the day ended; later than that plus this
  // grace it is late, and the lateness is itself an incident.
  int64_t grace_micros = int64_t{60} * 60 * 1'000'000;
  // Verify through AuditTrail::VerifyAndRecord, so tampering found is recorded as
  // epcs.audit.tamper_detected (T-6.4); false: only verify.
  bool record_tamper = true;
  // T-6.3 (21 CFR 1311.150(c)): called with each report that has incidents, findings or a
  // broken chain, after its files are written and before it is stored, so the deployment can
  // tell the practitioner or pharmacy and DEA by report.notify_by_micros. Audited
  // (kActionIncidentNotify): success, or failure with the status's message; a failure stops
  // the run before the day is stored, so the next run calls again (at least once, never
  // skipped). Unset: nothing is notified (the reports are only stored and written).
  std::function<Status(const IncidentReport&)> on_incidents;
  // Actor and source of the job's audit records.
  std::string actor = "rxflow";
  std::string source = "rxflow";
};

// Runs the daily review for every finished UTC day not yet reviewed: each day once, resuming
// where the last run (of any job object, in any process) stopped, since its progress is kept
// in the store. Call RunDue from a scheduler at least daily (hourly is fine: a call with
// nothing due reads the audit stream and writes nothing).
//
// For each due day, in order: the report is made, written to report_dir (when set), audited
// (kActionDailyReportLate, outcome failure, when late; then kActionDailyReport, outcome
// success, detail "<n> incidents"), and then stored. A crash between the steps repeats the
// day at the next run (files rewritten, audit records written again): a review is done at
// least once, never skipped.
//
// Thread-compatible: one thread at a time per object. Two jobs running at once on one store
// (in two processes) may both review a day: same report row, duplicate audit records; run one
// job per store (e.g. under a store::Subscriptions lease).
class DailyAuditJob {
 public:
  // `store` and `audit` (a trail on the same store) must outlive the job.
  DailyAuditJob(store::Store& store, AuditTrail& audit, DailyAuditJobOptions options = {});
  DailyAuditJob(const DailyAuditJob&) = delete;
  DailyAuditJob& operator=(const DailyAuditJob&) = delete;

  // Reviews every day from the first audit record's day up to the day before `now_micros`
  // that has no stored report yet; returns the reports it made (none: nothing was due).
  // The status of the store, of writing a report file, or of the audit trail; days reviewed
  // before the failure stay reviewed.
  StatusOr<std::vector<IncidentReport>> RunDue(int64_t now_micros);

 private:
  store::Store& store_;
  AuditTrail& audit_;
  DailyAuditJobOptions options_;
};

// ---- the practitioner's log of controlled-substance prescriptions (T-6.6) -----------------
//
// PHI: the log names patients and their drugs. It is for the practitioner (and whoever they
// authorise), not for audit records, metrics or operations logs.

struct ControlledPrescriptionLogEntry {
  std::string prescription_id;
  std::string signed_at;         // RFC 3339 UTC, when PrescriptionSigned was recorded
  std::string dea_number;        // the registration it was signed under
  std::string dea_schedule;      // "CII" ... "CV"
  std::string drug_description;  // as prescribed
  std::string patient_name;      // "Last, First" from the NewRx
  std::string written_date;      // the NewRx's WrittenDate, as written

  friend bool operator==(const ControlledPrescriptionLogEntry&,
                         const ControlledPrescriptionLogEntry&) = default;
};

// Every prescription `practitioner_id` signed with from_micros <= signed time < to_micros, in
// the order they were signed. Reads the whole event log (for tools and monthly reports, not
// request paths). DataLoss naming the prescription when its events or NewRx cannot be read.
StatusOr<std::vector<ControlledPrescriptionLogEntry>> PractitionerLog(
    store::EventStore& store, const std::string& practitioner_id, int64_t from_micros,
    int64_t to_micros);

enum class LogOrder { kDate, kPatient, kDrug };

// Sorts by signing time, by patient name, or by drug description; ties in signing order.
void SortLog(std::vector<ControlledPrescriptionLogEntry>& log, LogOrder order);

// The log as CSV (RFC 4180 quoting, "\n" line ends), a header line first:
//   prescription_id,signed_at,dea_number,dea_schedule,drug_description,patient_name,written_date
// A value starting with = + - @ or a tab is prefixed with ' so that a spreadsheet shows it
// as text instead of running it as a formula.
std::string LogCsv(const std::vector<ControlledPrescriptionLogEntry>& log);

// [00:00Z of the first day of the previous calendar month, 00:00Z of the first day of the
// month holding `now_micros`): for now 2026-03-15, 2026-02-01 to 2026-03-01; for January,
// the December before.
std::pair<int64_t, int64_t> PreviousCalendarMonth(int64_t now_micros);

// LogCsv of PractitionerLog for PreviousCalendarMonth(now_micros), sorted by `order`.
StatusOr<std::string> MonthlyLogCsv(store::EventStore& store, const std::string& practitioner_id,
                                    int64_t now_micros, LogOrder order = LogOrder::kDate);

// ---- tools ----------------------------------------------------------------------------------

// The DER SubjectPublicKeyInfo of a public key given as PEM ("-----BEGIN PUBLIC KEY-----")
// or DER, for VerifyAuditTrail's checkpoint key. InvalidArgument when it is neither.
StatusOr<std::string> CheckpointPublicKeyDer(std::string_view pem_or_der);

}  // namespace rxflow::epcs

#endif  // RXFLOW_EPCS_REPORTS_H_
