// SPDX-License-Identifier: Apache-2.0
// EPCS reports (rxflow/epcs/reports.h): the daily incident report and its job, and the
// practitioner's log of controlled-substance prescriptions. Report JSON is written with
// nlohmann (ordered, invalid UTF-8 replaced: a tampered record must not make the report
// throw); keys are parsed with OpenSSL.
#include "rxflow/epcs/reports.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "rxflow/clock.h"
#include "rxflow/domain/prescription.h"
#include "rxflow/internal/civil.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/issue.h"
#include "rxflow/script/xml.h"

namespace rxflow::epcs {

using internal::Cat;

namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kTwoFactorFailed = "epcs.two_factor.failed";
constexpr std::string_view kTwoFactorLockedOut = "epcs.two_factor.locked_out";
constexpr std::string_view kClockSkew = "epcs.clock_skew";
constexpr std::string_view kControlPrefix = "epcs.control.";

// ---- civil dates (rxflow/internal/civil.h) -------------------------------------------------

using internal::Civil;
using internal::CivilFromDays;
using internal::DaysFromCivil;

// Days since 1970-01-01 of the UTC day holding `micros` (floored: before 1970 too).
int64_t DayNumber(int64_t micros) {
  return micros / kMicrosPerDay - (micros % kMicrosPerDay < 0 ? 1 : 0);
}

std::string DayName(int64_t day_number) {
  Civil c = CivilFromDays(day_number);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04lld-%02d-%02d", static_cast<long long>(c.year), c.month,
                c.day);
  return buf;
}

// "2 hours", "10 minutes", "90 seconds": a window as people say it.
std::string Duration(int64_t micros) {
  const int64_t seconds = micros / 1'000'000;
  if (seconds > 0 && seconds % 3600 == 0) {
    return Cat(seconds / 3600, seconds == 3600 ? " hour" : " hours");
  }
  if (seconds > 0 && seconds % 60 == 0) {
    return Cat(seconds / 60, seconds == 60 ? " minute" : " minutes");
  }
  return Cat(seconds, seconds == 1 ? " second" : " seconds");
}

// ---- reading the audit stream ----------------------------------------------------------------

// One stored event of the audit stream, decoded when it can be.
struct StoredItem {
  int64_t version = 0;
  int64_t occurred_at = 0;  // the store's record of the time, kept apart from the payload
  std::optional<AuditRecord> record;
  std::string error;  // why it could not be decoded
};

// The whole stream, tolerant of records that cannot be decoded: ReadAuditTrail fails on the
// first of them, and a report that cannot be made when the trail was tampered with would
// hide exactly what it exists to show.
StatusOr<std::vector<StoredItem>> ReadItems(store::EventStore& store,
                                            const std::string& stream_id) {
  RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> events, store.ReadStream(stream_id));
  std::vector<StoredItem> items;
  items.reserve(events.size());
  for (const store::EventRecord& e : events) {
    StoredItem item;
    item.version = e.version;
    item.occurred_at = e.occurred_at;
    if (e.type != kAuditEventType) {
      item.error = Cat("its type is ", e.type);
    } else if (auto r = DecodeAuditRecord(e.payload); r.ok()) {
      item.record = std::move(*r);
    } else {
      item.error = std::string(r.status().message());
    }
    items.push_back(std::move(item));
  }
  return items;
}

// The time a report files an item under: the record's own, or the store's when the payload
// cannot be read.
int64_t ItemTime(const StoredItem& item) {
  return item.record ? item.record->time_micros : item.occurred_at;
}

bool IsIncident(const AuditRecord& r, const IncidentPolicy& policy) {
  if (r.outcome != kOutcomeSuccess) return true;
  return std::any_of(
      policy.incident_actions.begin(), policy.incident_actions.end(),
      [&](const std::string& prefix) { return !prefix.empty() && r.action.starts_with(prefix); });
}

// The findings of single records: (sequence, sentence), or nothing.
std::optional<std::string> RecordFinding(const AuditRecord& r) {
  const std::string where = Cat("record ", r.sequence);
  if (r.action == kTwoFactorLockedOut) {
    return Cat(r.actor, " was locked out after repeated two-factor failures (", where, ")");
  }
  if (r.action == kClockSkew) {
    return Cat("clock skew blocked signing by ", r.actor, ": ", r.detail, " (", where, ")");
  }
  if (r.action.starts_with(kControlPrefix)) {
    return Cat("an EPCS control was changed or disabled: ", r.action, " by ", r.actor, ", ",
               r.outcome, " (", where, ")");
  }
  if (r.action == kActionTamperDetected) {
    return Cat("tampering with the audit trail was detected: ", r.detail, " (", where, ")");
  }
  if (r.action == kActionCheckpointFailed) {
    return Cat("an audit checkpoint could not be signed (", where, ")");
  }
  return std::nullopt;
}

// Bursts of two-factor failures: per actor, greedy windows from the earliest failure, so
// that one burst is one finding however many failures it holds.
void BurstFindings(const std::vector<const AuditRecord*>& day, const IncidentPolicy& policy,
                   std::vector<std::pair<int64_t, std::string>>& findings) {
  if (policy.burst_failures < 1) return;
  std::map<std::string, std::vector<const AuditRecord*>> by_actor;
  for (const AuditRecord* r : day) {
    if ((r->action == kTwoFactorFailed || r->action == kTwoFactorLockedOut) &&
        r->outcome == kOutcomeFailure) {
      by_actor[r->actor].push_back(r);
    }
  }
  for (auto& [actor, failures] : by_actor) {
    std::stable_sort(
        failures.begin(), failures.end(),
        [](const AuditRecord* a, const AuditRecord* b) { return a->time_micros < b->time_micros; });
    size_t i = 0;
    while (i < failures.size()) {
      size_t j = i;
      while (j + 1 < failures.size() && failures[j + 1]->time_micros - failures[i]->time_micros <=
                                            policy.burst_window_micros) {
        ++j;
      }
      const size_t n = j - i + 1;
      if (n < static_cast<size_t>(policy.burst_failures)) {
        ++i;
        continue;
      }
      findings.emplace_back(
          failures[i]->sequence,
          Cat("two-factor failure burst: ", actor, " failed ", n, " times within ",
              Duration(policy.burst_window_micros), " (records ", failures[i]->sequence, " to ",
              failures[j]->sequence, ", from ", FormatRfc3339(failures[i]->time_micros), ")"));
      i = j + 1;
    }
  }
}

// The report of one day, without text and JSON (Render adds them). `day` holds the items of
// that day.
IncidentReport Analyse(int64_t day_number, const std::vector<const StoredItem*>& day,
                       const AuditVerification& v, const IncidentPolicy& policy) {
  IncidentReport report;
  report.day = DayName(day_number);
  report.records = static_cast<int64_t>(day.size());
  report.chain_ok = v.ok;
  report.chain_problem = v.problem;
  if (!v.ok) {
    report.findings.push_back(Cat("the audit chain is broken at record ",
                                  v.first_bad_sequence.value_or(0), ": ", v.problem));
  }
  std::vector<std::pair<int64_t, std::string>> findings;
  std::vector<const AuditRecord*> records;
  for (const StoredItem* item : day) {
    if (!item->record) {
      findings.emplace_back(item->version,
                            Cat("record ", item->version, " cannot be read (", item->error, ")"));
      continue;
    }
    const AuditRecord& r = *item->record;
    records.push_back(&r);
    if (IsIncident(r, policy)) report.incidents.push_back(r);
    if (auto f = RecordFinding(r)) findings.emplace_back(r.sequence, std::move(*f));
  }
  BurstFindings(records, policy, findings);
  std::stable_sort(findings.begin(), findings.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [sequence, text] : findings) report.findings.push_back(std::move(text));
  std::stable_sort(
      report.incidents.begin(), report.incidents.end(),
      [](const AuditRecord& a, const AuditRecord& b) { return a.sequence < b.sequence; });
  return report;
}

// Fills report.text and report.json.
void Render(IncidentReport& report, const AuditVerification& v, const IncidentPolicy& policy) {
  std::string& t = report.text;
  t.clear();
  internal::Append(t, "EPCS incident report for ", report.day, " (UTC)\n");
  internal::Append(t, "audit records that day: ", report.records, "\n");
  if (report.chain_ok) {
    internal::Append(t, "audit chain: intact (", v.records, " records, ", v.checkpoints,
                     " checkpoints",
                     policy.checkpoint_public_key_der.empty() && v.checkpoints > 0
                         ? ", checkpoint signatures not checked"
                         : "",
                     ")\n");
  } else {
    internal::Append(t, "audit chain: BROKEN: ", report.chain_problem, "\n");
  }
  if (report.incidents.empty()) {
    t += "incidents: none\n";
  } else {
    internal::Append(t, "incidents: ", report.incidents.size(), "\n");
    for (const AuditRecord& r : report.incidents) {
      internal::Append(t, "  #", r.sequence, " ", FormatRfc3339(r.time_micros), " ", r.action, " ",
                       r.outcome, " actor=", r.actor);
      if (!r.object.empty()) internal::Append(t, " object=", r.object);
      if (!r.source.empty()) internal::Append(t, " source=", r.source);
      if (!r.detail.empty()) internal::Append(t, " detail=", r.detail);
      t += "\n";
    }
  }
  if (report.findings.empty()) {
    t += "findings: none\n";
  } else {
    internal::Append(t, "findings: ", report.findings.size(), "\n");
    for (const std::string& f : report.findings) internal::Append(t, "  - ", f, "\n");
  }
  if (report.notify_by_micros != 0) {
    internal::Append(t, "reviewed ", FormatRfc3339(report.reviewed_at_micros),
                     "; report to the practitioner or pharmacy and to DEA by ",
                     FormatRfc3339(report.notify_by_micros), " (21 CFR 1311.150(c))\n");
  }

  Json j;
  j["day"] = report.day;
  j["records"] = report.records;
  j["chain_ok"] = report.chain_ok;
  j["chain_problem"] = report.chain_problem;
  j["late"] = report.late;
  j["reviewed_at"] =
      report.reviewed_at_micros != 0 ? Json(FormatRfc3339(report.reviewed_at_micros)) : Json();
  j["notify_by"] =
      report.notify_by_micros != 0 ? Json(FormatRfc3339(report.notify_by_micros)) : Json();
  Json incidents = Json::array();
  for (const AuditRecord& r : report.incidents) {
    incidents.push_back({{"sequence", r.sequence},
                         {"time", FormatRfc3339(r.time_micros)},
                         {"actor", r.actor},
                         {"action", r.action},
                         {"object", r.object},
                         {"outcome", r.outcome},
                         {"source", r.source},
                         {"detail", r.detail}});
  }
  j["incidents"] = std::move(incidents);
  j["findings"] = report.findings;
  report.json = j.dump(2, ' ', false, Json::error_handler_t::replace);
}

// The items by day number.
std::map<int64_t, std::vector<const StoredItem*>> ByDay(const std::vector<StoredItem>& items) {
  std::map<int64_t, std::vector<const StoredItem*>> out;
  for (const StoredItem& item : items) out[DayNumber(ItemTime(item))].push_back(&item);
  return out;
}

// Writes `text` to `path` through a temporary file and a rename, so a reader never sees half
// a report.
Status WriteFileAtomically(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) return absl::UnavailableError(Cat("cannot write the incident report ", tmp.string()));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    return absl::UnavailableError(
        Cat("cannot write the incident report ", path.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

// ---- the practitioner's log ------------------------------------------------------------------

// The log entry of the PrescriptionSigned event `e`: drug and schedule from the prescription's
// PrescriptionTransformed event, patient and written date from its NewRx.
StatusOr<ControlledPrescriptionLogEntry> Describe(store::EventStore& store,
                                                  const store::EventRecord& e,
                                                  const domain::PrescriptionSigned& s) {
  ControlledPrescriptionLogEntry entry;
  entry.prescription_id = e.stream_id;
  entry.signed_at = FormatRfc3339(e.occurred_at);
  entry.dea_number = s.dea_number;
  RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> history, store.ReadStream(e.stream_id));
  std::optional<domain::PrescriptionTransformed> transformed;
  for (const store::EventRecord& r : history) {
    if (r.version >= e.version) break;
    if (r.type != domain::PrescriptionTransformed::kType) continue;
    auto event = domain::DecodeEvent(r.type, r.schema_version, r.payload);
    if (!event.ok()) {
      return absl::DataLossError(Cat("prescription ", e.stream_id,
                                     ": its PrescriptionTransformed event cannot be read: ",
                                     std::string(event.status().message())));
    }
    transformed = std::get<domain::PrescriptionTransformed>(std::move(*event));
  }
  if (!transformed) {
    return absl::DataLossError(
        Cat("prescription ", e.stream_id, " was signed but has no PrescriptionTransformed event"));
  }
  entry.dea_schedule = transformed->dea_schedule;
  entry.drug_description = transformed->drug_description;
  if (transformed->newrx_xml.empty()) {
    // Its patient's data was crypto-erased (docs/security.md, "PHI at rest"): the record of
    // the signature stays, the patient and the written date are gone.
    entry.patient_name = "(erased)";
    return entry;
  }
  IssueList issues;
  script::ReadOptions options;
  // Only the patient and the written date are wanted: a stored NewRx that a later profile
  // finds fault with still names them.
  options.lenient = true;
  StatusOr<script::Message> message = script::ReadXml(transformed->newrx_xml, issues, options);
  if (!message.ok() || !std::holds_alternative<script::NewRx>(message->body)) {
    return absl::DataLossError(
        Cat("prescription ", e.stream_id, ": its stored NewRx cannot be read",
            message.ok() ? "" : Cat(": ", std::string(message.status().message()))));
  }
  const script::NewRx& newrx = std::get<script::NewRx>(message->body);
  const script::Name& name = newrx.patient.name;
  entry.patient_name =
      name.first_name.empty() ? name.last_name : Cat(name.last_name, ", ", name.first_name);
  const script::DateValue& written = newrx.medication_prescribed.written_date;
  entry.written_date = written.date.empty() ? written.date_time : written.date;
  return entry;
}

void AppendCsvField(std::string& out, std::string_view value) {
  std::string v;
  // OWASP's advice against CSV injection: a spreadsheet must show such a value, not run it.
  if (!value.empty() && (value[0] == '=' || value[0] == '+' || value[0] == '-' || value[0] == '@' ||
                         value[0] == '\t' || value[0] == '\r')) {
    v.push_back('\'');
  }
  v.append(value);
  if (v.find_first_of(",\"\r\n") == std::string::npos) {
    out += v;
    return;
  }
  out.push_back('"');
  for (char c : v) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

}  // namespace

// ---- UTC days --------------------------------------------------------------------------------

std::string UtcDay(int64_t micros) { return DayName(DayNumber(micros)); }

StatusOr<int64_t> ParseUtcDay(std::string_view day) {
  auto invalid = [&] {
    return absl::InvalidArgumentError(Cat("day \"", day, "\" is not a calendar date YYYY-MM-DD"));
  };
  if (day.size() != 10 || day[4] != '-' || day[7] != '-') return invalid();
  auto number = [&](size_t at, size_t n) -> std::optional<int> {
    int v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (day[i] < '0' || day[i] > '9') return std::nullopt;
      v = v * 10 + (day[i] - '0');
    }
    return v;
  };
  auto y = number(0, 4);
  auto m = number(5, 2);
  auto d = number(8, 2);
  if (!y || !m || !d || *m < 1 || *m > 12 || *d < 1 || *d > 31) return invalid();
  const int64_t days = DaysFromCivil(*y, *m, *d);
  // 2026-02-30 would silently be 2026-03-02: only a date that comes back the same is a day.
  Civil back = CivilFromDays(days);
  if (back.year != *y || back.month != *m || back.day != *d) return invalid();
  return days * kMicrosPerDay;
}

// ---- the daily incident report ---------------------------------------------------------------

StatusOr<IncidentReport> DailyIncidentReport(store::EventStore& store, int64_t day_start_micros,
                                             const IncidentPolicy& policy) {
  if (day_start_micros % kMicrosPerDay != 0) {
    return absl::InvalidArgumentError(
        Cat("day_start_micros ", day_start_micros, " is not the start of a UTC day"));
  }
  RXFLOW_ASSIGN_OR_RETURN(AuditVerification v, VerifyAuditTrail(store, policy.stream_id,
                                                                policy.checkpoint_public_key_der,
                                                                policy.checkpoint_every));
  RXFLOW_ASSIGN_OR_RETURN(std::vector<StoredItem> items, ReadItems(store, policy.stream_id));
  const int64_t day_number = DayNumber(day_start_micros);
  std::vector<const StoredItem*> day;
  for (const StoredItem& item : items) {
    if (DayNumber(ItemTime(item)) == day_number) day.push_back(&item);
  }
  IncidentReport report = Analyse(day_number, day, v, policy);
  Render(report, v, policy);
  return report;
}

DailyAuditJob::DailyAuditJob(store::Store& store, AuditTrail& audit, DailyAuditJobOptions options)
    : store_(store), audit_(audit), options_(std::move(options)) {}

int64_t NotifyBy(int64_t micros) {
  int64_t day = micros / kMicrosPerDay + (micros % kMicrosPerDay < 0 ? -1 : 0);
  auto weekday = [](int64_t d) { return ((d + 4) % 7 + 7) % 7; };  // 1970-01-01: Thursday (4)
  do {
    ++day;
  } while (weekday(day) == 0 || weekday(day) == 6);  // Sunday, Saturday
  return (day + 1) * kMicrosPerDay;
}

StatusOr<std::vector<IncidentReport>> DailyAuditJob::RunDue(int64_t now_micros) {
  const std::string projection(kDailyReportProjection);
  const IncidentPolicy& policy = options_.policy;
  std::vector<IncidentReport> out;
  const int64_t last_day = DayNumber(now_micros) - 1;  // yesterday: the last finished day
  RXFLOW_ASSIGN_OR_RETURN(int64_t next_day, store_.Checkpoint(projection));
  // Nothing due: return before reading the stream, so calling often costs little.
  if (next_day > last_day) return out;
  RXFLOW_ASSIGN_OR_RETURN(std::vector<StoredItem> items, ReadItems(store_, policy.stream_id));
  if (items.empty()) return out;
  const int64_t first_day = std::max(DayNumber(ItemTime(items.front())), next_day);
  if (first_day > last_day) return out;
  const auto by_day = ByDay(items);
  const std::vector<const StoredItem*> no_items;

  std::optional<AuditVerification> verification;
  for (int64_t d = first_day; d <= last_day; ++d) {
    const std::string day = DayName(d);
    StatusOr<std::string> existing = store_.Get(projection, day);
    if (existing.ok()) continue;  // reviewed already (a checkpoint behind its rows)
    if (existing.status().code() != absl::StatusCode::kNotFound) return existing.status();
    // Verified once per run: the chain is the same for every day reviewed now.
    if (!verification) {
      if (options_.record_tamper) {
        RXFLOW_ASSIGN_OR_RETURN(verification,
                                audit_.VerifyAndRecord(policy.checkpoint_public_key_der));
      } else {
        RXFLOW_ASSIGN_OR_RETURN(verification, VerifyAuditTrail(store_, policy.stream_id,
                                                               policy.checkpoint_public_key_der,
                                                               policy.checkpoint_every));
      }
    }
    auto it = by_day.find(d);
    IncidentReport report =
        Analyse(d, it == by_day.end() ? no_items : it->second, *verification, policy);
    // Due by the end of the next day (T-6.2: at least once per calendar day).
    const int64_t after_end = now_micros - (d + 1) * kMicrosPerDay;
    report.late = after_end > kMicrosPerDay + options_.grace_micros;
    std::string late_detail;
    if (report.late) {
      late_detail = Cat("the daily review of ", day, " ran late: ", after_end / 3'600'000'000LL,
                        " h after the day ended (due within 24 h, grace ",
                        Duration(options_.grace_micros), ")");
      report.findings.push_back(late_detail);
    }
    report.reviewed_at_micros = now_micros;
    const bool to_notify =
        !report.incidents.empty() || !report.findings.empty() || !report.chain_ok;
    // One business day after the day ended, when its review was due: the same deadline
    // however often a failed notification is retried.
    if (to_notify) report.notify_by_micros = NotifyBy((d + 1) * kMicrosPerDay);
    Render(report, *verification, policy);

    if (!options_.report_dir.empty()) {
      const std::filesystem::path dir(options_.report_dir);
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      if (ec) {
        return absl::UnavailableError(
            Cat("cannot create the report directory ", dir.string(), ": ", ec.message()));
      }
      const std::string base = Cat("epcs-incidents-", day);
      RXFLOW_RETURN_IF_ERROR(WriteFileAtomically(dir / (base + ".txt"), report.text));
      RXFLOW_RETURN_IF_ERROR(WriteFileAtomically(dir / (base + ".json"), report.json));
    }

    const std::string object = Cat(kDailyReportProjection, "/", day);
    if (to_notify && options_.on_incidents) {
      Status notified = options_.on_incidents(report);
      RXFLOW_RETURN_IF_ERROR(
          audit_
              .Record({options_.actor, std::string(kActionIncidentNotify), object,
                       std::string(notified.ok() ? kOutcomeSuccess : kOutcomeFailure),
                       options_.source,
                       notified.ok()
                           ? Cat(report.incidents.size(), " incidents; ", report.findings.size(),
                                 " findings; due by ", FormatRfc3339(report.notify_by_micros))
                           : std::string(notified.message())})
              .status());
      if (!notified.ok()) return notified;
    }
    if (report.late) {
      RXFLOW_RETURN_IF_ERROR(
          audit_
              .Record({options_.actor, std::string(kActionDailyReportLate), object,
                       std::string(kOutcomeFailure), options_.source, late_detail})
              .status());
    }
    RXFLOW_RETURN_IF_ERROR(
        audit_
            .Record({options_.actor, std::string(kActionDailyReport), object,
                     std::string(kOutcomeSuccess), options_.source,
                     Cat(report.incidents.size(), " incidents; ", report.findings.size(),
                         " findings; chain ", report.chain_ok ? "intact" : "broken")})
            .status());
    // Stored last: a crash before this line reviews the day again rather than never.
    const std::pair<std::string, std::string> row{day, report.json};
    RXFLOW_RETURN_IF_ERROR(store_.Apply(projection, d + 1, std::span(&row, 1)));
    out.push_back(std::move(report));
  }
  return out;
}

// ---- the practitioner's log ------------------------------------------------------------------

StatusOr<std::vector<ControlledPrescriptionLogEntry>> PractitionerLog(
    store::EventStore& store, const std::string& practitioner_id, int64_t from_micros,
    int64_t to_micros) {
  constexpr size_t kPage = 1000;
  std::vector<ControlledPrescriptionLogEntry> out;
  int64_t after = 0;
  while (true) {
    RXFLOW_ASSIGN_OR_RETURN(std::vector<store::EventRecord> page, store.ReadAll(after, kPage));
    if (page.empty()) break;
    for (const store::EventRecord& e : page) {
      after = e.global_position;
      // Only signatures are decoded: the log is a scan of the whole event log.
      if (e.type != domain::PrescriptionSigned::kType) continue;
      if (e.occurred_at < from_micros || e.occurred_at >= to_micros) continue;
      auto event = domain::DecodeEvent(e.type, e.schema_version, e.payload);
      if (!event.ok()) {
        return absl::DataLossError(Cat("prescription ", e.stream_id,
                                       ": its PrescriptionSigned event cannot be read: ",
                                       std::string(event.status().message())));
      }
      const auto& signed_event = std::get<domain::PrescriptionSigned>(*event);
      if (signed_event.signer != practitioner_id) continue;
      RXFLOW_ASSIGN_OR_RETURN(ControlledPrescriptionLogEntry entry,
                              Describe(store, e, signed_event));
      out.push_back(std::move(entry));
    }
  }
  return out;
}

void SortLog(std::vector<ControlledPrescriptionLogEntry>& log, LogOrder order) {
  using Entry = ControlledPrescriptionLogEntry;
  switch (order) {
    case LogOrder::kDate:
      // RFC 3339 UTC texts of one format sort as their times do.
      std::stable_sort(log.begin(), log.end(),
                       [](const Entry& a, const Entry& b) { return a.signed_at < b.signed_at; });
      return;
    case LogOrder::kPatient:
      std::stable_sort(log.begin(), log.end(), [](const Entry& a, const Entry& b) {
        return internal::AsciiLower(a.patient_name) < internal::AsciiLower(b.patient_name);
      });
      return;
    case LogOrder::kDrug:
      std::stable_sort(log.begin(), log.end(), [](const Entry& a, const Entry& b) {
        return internal::AsciiLower(a.drug_description) < internal::AsciiLower(b.drug_description);
      });
      return;
  }
}

std::string LogCsv(const std::vector<ControlledPrescriptionLogEntry>& log) {
  std::string out =
      "prescription_id,signed_at,dea_number,dea_schedule,drug_description,patient_name,"
      "written_date\n";
  for (const ControlledPrescriptionLogEntry& e : log) {
    const std::string_view fields[] = {e.prescription_id, e.signed_at,        e.dea_number,
                                       e.dea_schedule,    e.drug_description, e.patient_name,
                                       e.written_date};
    for (size_t i = 0; i < std::size(fields); ++i) {
      if (i > 0) out.push_back(',');
      AppendCsvField(out, fields[i]);
    }
    out.push_back('\n');
  }
  return out;
}

std::pair<int64_t, int64_t> PreviousCalendarMonth(int64_t now_micros) {
  const Civil now = CivilFromDays(DayNumber(now_micros));
  const int64_t this_month = DaysFromCivil(now.year, now.month, 1);
  const int64_t previous = now.month == 1 ? DaysFromCivil(now.year - 1, 12, 1)
                                          : DaysFromCivil(now.year, now.month - 1, 1);
  return {previous * kMicrosPerDay, this_month * kMicrosPerDay};
}

StatusOr<std::string> MonthlyLogCsv(store::EventStore& store, const std::string& practitioner_id,
                                    int64_t now_micros, LogOrder order) {
  const auto [from, to] = PreviousCalendarMonth(now_micros);
  RXFLOW_ASSIGN_OR_RETURN(std::vector<ControlledPrescriptionLogEntry> log,
                          PractitionerLog(store, practitioner_id, from, to));
  SortLog(log, order);
  return LogCsv(log);
}

// ---- tools -----------------------------------------------------------------------------------

StatusOr<std::string> CheckpointPublicKeyDer(std::string_view pem_or_der) {
  EVP_PKEY* key = nullptr;
  if (pem_or_der.find("-----BEGIN") != std::string_view::npos) {
    BIO* bio = BIO_new_mem_buf(pem_or_der.data(), static_cast<int>(pem_or_der.size()));
    if (bio != nullptr) {
      key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
      BIO_free(bio);
    }
  } else {
    const auto* p = reinterpret_cast<const unsigned char*>(pem_or_der.data());
    const auto* end = p + pem_or_der.size();
    key = d2i_PUBKEY(nullptr, &p, static_cast<long>(pem_or_der.size()));
    // Bytes after the key would be ignored by OpenSSL: not a DER key, then.
    if (key != nullptr && p != end) {
      EVP_PKEY_free(key);
      key = nullptr;
    }
  }
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "checkpoint key: neither a PEM nor a DER public key (SubjectPublicKeyInfo)");
  }
  std::string der;
  const int n = i2d_PUBKEY(key, nullptr);
  if (n > 0) {
    der.resize(static_cast<size_t>(n));
    auto* q = reinterpret_cast<unsigned char*>(der.data());
    if (i2d_PUBKEY(key, &q) != n) der.clear();
  }
  EVP_PKEY_free(key);
  if (der.empty()) {
    ERR_clear_error();
    return absl::InternalError("checkpoint key: cannot encode the public key as DER");
  }
  return der;
}

}  // namespace rxflow::epcs
