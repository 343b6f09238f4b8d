// SPDX-License-Identifier: Apache-2.0
// EPCS reports (rxflow/epcs/reports.h; T-6.2, T-6.6): the daily incident report finds bursts of
// two-factor failures, lockouts, skew, control changes and a tampered chain; the daily job
// reviews each finished day once, resumes from the store, writes its files and flags a late
// review; the practitioner's log lists a prescription signed through the full ceremony.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "rxflow/clock.h"
#include "rxflow/crypto/phi.h"
#include "rxflow/epcs/audit.h"
#include "rxflow/epcs/ceremony.h"
#include "rxflow/epcs/reports.h"
#include "rxflow/service.h"
#include "rxflow/store/event_store.h"

#include "epcs_pki.h"
#include "testing/files.h"
#include "testing/status.h"
#include "testing/tampered_store.h"
#include <unistd.h>

#ifdef RXFLOW_TEST_HAVE_SQLITE
#include "rxflow/sqlite/sqlite_store.h"
#endif

using namespace rxflow;  // NOLINT
using epcs::AuditEntry;
using epcs::ControlledPrescriptionLogEntry;
using epcs::IncidentReport;
using epcs::LogOrder;

namespace {

constexpr int64_t kMinute = 60 * 1'000'000LL;
constexpr int64_t kHour = 60 * kMinute;

int64_t Day(const std::string& day) {
  auto start = epcs::ParseUtcDay(day);
  REQUIRE_MESSAGE(start.ok(), start.status().ToString());
  return *start;
}

bool Has(const std::vector<std::string>& findings, const std::string& part) {
  return std::any_of(findings.begin(), findings.end(),
                     [&](const std::string& f) { return f.find(part) != std::string::npos; });
}

// A memory store with an audit trail whose records are stamped at times the test chooses.
struct AuditFixture {
  FakeClock clock;
  SequentialIds ids{"audit"};
  std::unique_ptr<store::Store> store = store::NewMemoryStore(clock);
  std::unique_ptr<epcs::AuditTrail> trail = MakeTrail(*store);

  std::unique_ptr<epcs::AuditTrail> MakeTrail(store::Store& st) {
    epcs::AuditTrailOptions o;
    o.ids = &ids;
    return std::make_unique<epcs::AuditTrail>(st, clock, o);
  }

  epcs::AuditRecord Record(int64_t at, const std::string& actor, const std::string& action,
                           const std::string& outcome, const std::string& detail = "") {
    clock.Set(at);
    auto r = trail->Record({actor, action, "obj-1@1", outcome, "rxflow-test", detail});
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    return *r;
  }

  IncidentReport Report(store::EventStore& st, const std::string& day) {
    auto report = epcs::DailyIncidentReport(st, Day(day));
    REQUIRE_MESSAGE(report.ok(), report.status().ToString());
    return *report;
  }
};

using testing::Tampered;

std::vector<std::string> ListDir(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

int CountActions(store::EventStore& st, const std::string& action, const std::string& outcome) {
  auto records = epcs::ReadAuditTrail(st, epcs::kAuditStream, 0, INT64_MAX);
  RXFLOW_REQUIRE_OK(records);
  return static_cast<int>(std::count_if(records->begin(), records->end(), [&](const auto& r) {
    return r.action == action && r.outcome == outcome;
  }));
}

}  // namespace

TEST_SUITE("EPCS daily incident report") {
  TEST_CASE("UTC days are parsed and named exactly") {
    CHECK(Day("1970-01-01") == 0);
    CHECK(Day("2026-03-15") == 1'773'532'800'000'000LL);
    CHECK(epcs::UtcDay(Day("2026-03-15") + 23 * kHour) == "2026-03-15");
    CHECK(epcs::UtcDay(Day("2024-02-29")) == "2024-02-29");
    CHECK(epcs::UtcDay(-1) == "1969-12-31");
    for (const char* bad : {"2026-02-30", "2025-02-29", "2026-13-01", "2026-3-15", "2026/03/15", "",
                            "2026-03-15T00:00:00Z", "20a6-03-15"}) {
      CAPTURE(bad);
      auto r = epcs::ParseUtcDay(bad);
      CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
      CHECK(std::string(r.status().message()).starts_with("day \""));
    }
  }

  TEST_CASE("three two-factor failures of one actor in five minutes are a burst") {
    AuditFixture f;
    const int64_t day = Day("2026-03-10");
    f.Record(day + 9 * kHour, "dr-a", "epcs.two_factor.failed", "failure", "for sign: wrong code");
    f.Record(day + 9 * kHour + 2 * kMinute, "dr-a", "epcs.two_factor.failed", "failure");
    f.Record(day + 9 * kHour + 5 * kMinute, "dr-a", "epcs.two_factor.failed", "failure");
    f.Record(day + 9 * kHour + 6 * kMinute, "dr-a", "epcs.two_factor.succeeded", "success");
    // Two failures, and three spread over an hour: no burst.
    f.Record(day + 10 * kHour, "dr-b", "epcs.two_factor.failed", "failure");
    f.Record(day + 10 * kHour + kMinute, "dr-b", "epcs.two_factor.failed", "failure");
    for (int i = 0; i < 3; ++i) {
      f.Record(day + 11 * kHour + i * 30 * kMinute, "dr-c", "epcs.two_factor.failed", "failure");
    }
    // The next day's failures are not this day's.
    f.Record(day + 24 * kHour + kMinute, "dr-b", "epcs.two_factor.failed", "failure");

    IncidentReport r = f.Report(*f.store, "2026-03-10");
    CHECK(r.day == "2026-03-10");
    CHECK(r.records == 9);
    CHECK(r.chain_ok);
    CHECK(r.incidents.size() == 8);
    CHECK(r.incidents.front().sequence == 1);
    REQUIRE(r.findings.size() == 1);
    CHECK(r.findings[0].starts_with(
        "two-factor failure burst: dr-a failed 3 times within 10 minutes (records 1 to 3, from "
        "2026-03-10T09:00:00"));
    CHECK(r.text.find("EPCS incident report for 2026-03-10 (UTC)") != std::string::npos);
    CHECK(r.text.find("incidents: 8") != std::string::npos);
    CHECK(r.text.find("epcs.two_factor.failed failure actor=dr-a") != std::string::npos);
    CHECK(r.json.find("\"day\": \"2026-03-10\"") != std::string::npos);
    CHECK(r.json.find("\"chain_ok\": true") != std::string::npos);

    // A stricter policy finds dr-b's pair too, and dr-c's with a wider window.
    epcs::IncidentPolicy strict;
    strict.burst_failures = 2;
    strict.burst_window_micros = 60 * kMinute;
    auto r2 = epcs::DailyIncidentReport(*f.store, day, strict);
    RXFLOW_REQUIRE_OK(r2);
    CHECK(r2->findings.size() == 3);
    CHECK(Has(r2->findings, "dr-b failed 2 times within 1 hour"));
    CHECK(Has(r2->findings, "dr-c failed 3 times within 1 hour"));
  }

  TEST_CASE("a day with only successes has no incidents") {
    AuditFixture f;
    const int64_t day = Day("2026-03-11");
    f.Record(day - kMinute, "dr-a", "epcs.sign", "refused");  // the day before
    f.Record(day + 8 * kHour, "dr-a", "epcs.two_factor.succeeded", "success");
    f.Record(day + 8 * kHour + kMinute, "dr-a", "epcs.sign", "success");
    f.Record(day + 8 * kHour + 2 * kMinute, "dr-a", "epcs.transmit.queued", "success");
    f.Record(day + 24 * kHour, "dr-a", "epcs.sign", "refused");  // the day after
    IncidentReport r = f.Report(*f.store, "2026-03-11");
    CHECK(r.records == 3);
    CHECK(r.incidents.empty());
    CHECK(r.findings.empty());
    CHECK(r.chain_ok);
    CHECK(r.chain_problem.empty());
    CHECK(r.text.find("incidents: none") != std::string::npos);
    CHECK(r.text.find("audit chain: intact (5 records, 0 checkpoints)") != std::string::npos);
    CHECK(r.json.find("\"incidents\": []") != std::string::npos);

    IncidentReport empty = f.Report(*f.store, "2026-01-01");
    CHECK(empty.records == 0);
    CHECK(empty.incidents.empty());
  }

  TEST_CASE("lockouts, clock skew, control changes, refusals and tampering are incidents") {
    AuditFixture f;
    const int64_t day = Day("2026-03-12");
    f.Record(day + kHour, "dr-a", "epcs.two_factor.locked_out", "failure", "for sign");
    f.Record(day + 2 * kHour, "dr-a", "epcs.clock_skew", "refused", "clock off by 400 s");
    f.Record(day + 3 * kHour, "admin-1", "epcs.control.totp_policy.changed", "success");
    f.Record(day + 4 * kHour, "dr-b", "epcs.sign", "refused", "not marked ready");
    f.Record(day + 5 * kHour, "dr-b", "epcs.signature.verify", "failure");
    f.Record(day + 6 * kHour, "dr-b", "epcs.permission.granted", "success");
    IncidentReport r = f.Report(*f.store, "2026-03-12");
    CHECK(r.incidents.size() == 5);
    CHECK(std::none_of(r.incidents.begin(), r.incidents.end(),
                       [](const auto& i) { return i.action == "epcs.permission.granted"; }));
    CHECK(Has(r.findings, "dr-a was locked out after repeated two-factor failures (record 1)"));
    CHECK(Has(r.findings, "clock skew blocked signing by dr-a: clock off by 400 s (record 2)"));
    CHECK(Has(r.findings,
              "an EPCS control was changed or disabled: "
              "epcs.control.totp_policy.changed by admin-1, success (record 3)"));

    // A deployment that lists permission grants too.
    epcs::IncidentPolicy policy;
    policy.incident_actions.push_back("epcs.permission.granted");
    auto wider = epcs::DailyIncidentReport(*f.store, day, policy);
    RXFLOW_REQUIRE_OK(wider);
    CHECK(wider->incidents.size() == 6);

    auto bad = epcs::DailyIncidentReport(*f.store, day + 1);
    CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  }

  TEST_CASE("a changed record breaks the chain, and every report names it") {
    AuditFixture f;
    const int64_t day = Day("2026-03-13");
    for (int i = 0; i < 5; ++i) {
      f.Record(day + (i + 1) * kHour, "dr-a", "epcs.sign", "success",
               "AUDITMARK" + std::to_string(i));
    }
    SUBCASE("a field edited") {
      Tampered t(*f.store, [](std::vector<store::EventRecord>& events) {
        for (auto& e : events) {
          if (e.version != 3) continue;
          size_t at = e.payload.find("AUDITMARK2");
          REQUIRE(at != std::string::npos);
          e.payload[at + 8] = 'X';
        }
      });
      IncidentReport r = f.Report(t, "2026-03-13");
      CHECK_FALSE(r.chain_ok);
      CHECK(r.chain_problem == "record 3 was changed");
      REQUIRE_FALSE(r.findings.empty());
      CHECK(r.findings[0] == "the audit chain is broken at record 3: record 3 was changed");
      CHECK(r.text.find("audit chain: BROKEN: record 3 was changed") != std::string::npos);
      CHECK(r.json.find("\"chain_ok\": false") != std::string::npos);
      // Another day's report says so too.
      IncidentReport other = f.Report(t, "2026-03-01");
      CHECK_FALSE(other.chain_ok);
      CHECK(Has(other.findings, "record 3 was changed"));
    }
    SUBCASE("a payload that cannot be read is a finding, not an error") {
      Tampered t(*f.store, [](std::vector<store::EventRecord>& events) {
        for (auto& e : events) {
          if (e.version == 2) e.payload = "{\"sequence\":2";
        }
      });
      IncidentReport r = f.Report(t, "2026-03-13");
      CHECK_FALSE(r.chain_ok);
      CHECK(r.records == 5);
      CHECK(Has(r.findings, "record 2 cannot be read ("));
      CHECK(Has(r.findings, "the audit chain is broken at record 2: record 2 was changed"));
    }
  }
}

TEST_SUITE("EPCS daily audit job") {
  TEST_CASE("each finished day is reviewed once, resumes, writes files and flags a late run") {
    AuditFixture f;
    const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                      ("rxflow-epcs-reports-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    epcs::DailyAuditJobOptions o;
    o.report_dir = (dir / "reports").string();

    const int64_t d10 = Day("2026-03-10");
    f.Record(d10 + 9 * kHour, "dr-a", "epcs.two_factor.failed", "failure");
    f.Record(d10 + 10 * kHour, "dr-a", "epcs.sign", "success");

    // Nothing has finished yet.
    {
      epcs::DailyAuditJob job(*f.store, *f.trail, o);
      auto none = job.RunDue(d10 + 23 * kHour);
      RXFLOW_REQUIRE_OK(none);
      CHECK(none->empty());
    }

    // 2026-03-11 01:00: the 10th is due, on time.
    epcs::DailyAuditJob job(*f.store, *f.trail, o);
    f.clock.Set(Day("2026-03-11") + kHour);
    auto first = job.RunDue(f.clock.NowMicros());
    REQUIRE_MESSAGE(first.ok(), first.status().ToString());
    REQUIRE(first->size() == 1);
    CHECK((*first)[0].day == "2026-03-10");
    CHECK((*first)[0].records == 2);
    CHECK((*first)[0].incidents.size() == 1);
    CHECK_FALSE((*first)[0].late);
    auto stored = f.store->Get(std::string(epcs::kDailyReportProjection), "2026-03-10");
    RXFLOW_REQUIRE_OK(stored);
    CHECK(*stored == (*first)[0].json);
    CHECK(CountActions(*f.store, "epcs.audit.daily_report", "success") == 1);

    // Called again: nothing new.
    auto again = job.RunDue(f.clock.NowMicros() + kHour);
    RXFLOW_REQUIRE_OK(again);
    CHECK(again->empty());

    f.Record(Day("2026-03-12") + 9 * kHour, "dr-b", "epcs.clock_skew", "refused");

    // A new job object (a restart) on 2026-03-13 at 02:00 reviews the 11th, late (26 h after it
    // ended), and the 12th, on time.
    f.clock.Set(Day("2026-03-13") + 2 * kHour);
    epcs::DailyAuditJob restarted(*f.store, *f.trail, o);
    auto second = restarted.RunDue(f.clock.NowMicros());
    REQUIRE_MESSAGE(second.ok(), second.status().ToString());
    REQUIRE(second->size() == 2);
    const IncidentReport& d11 = (*second)[0];
    const IncidentReport& d12 = (*second)[1];
    CHECK(d11.day == "2026-03-11");
    CHECK(d11.late);
    CHECK(Has(d11.findings, "the daily review of 2026-03-11 ran late"));
    CHECK(d11.json.find("\"late\": true") != std::string::npos);
    CHECK(d12.day == "2026-03-12");
    CHECK_FALSE(d12.late);
    CHECK(d12.incidents.size() == 1);
    CHECK(CountActions(*f.store, "epcs.audit.daily_report.late", "failure") == 1);
    CHECK(CountActions(*f.store, "epcs.audit.daily_report", "success") == 3);

    // Every day once, in the store and as files.
    auto rows = f.store->All(std::string(epcs::kDailyReportProjection));
    RXFLOW_REQUIRE_OK(rows);
    CHECK(rows->size() == 3);
    CHECK(ListDir(dir / "reports") ==
          std::vector<std::string>{
              "epcs-incidents-2026-03-10.json", "epcs-incidents-2026-03-10.txt",
              "epcs-incidents-2026-03-11.json", "epcs-incidents-2026-03-11.txt",
              "epcs-incidents-2026-03-12.json", "epcs-incidents-2026-03-12.txt"});
    CHECK(testing::ReadFile(dir / "reports" / "epcs-incidents-2026-03-12.txt") == d12.text);
    CHECK(testing::ReadFile(dir / "reports" / "epcs-incidents-2026-03-11.json") == d11.json);
    auto third = epcs::DailyAuditJob(*f.store, *f.trail, o).RunDue(f.clock.NowMicros());
    RXFLOW_REQUIRE_OK(third);
    CHECK(third->empty());

    // The missed review is itself an incident of the day it was recorded.
    f.clock.Set(Day("2026-03-14") + kHour);
    auto fourth = restarted.RunDue(f.clock.NowMicros());
    RXFLOW_REQUIRE_OK(fourth);
    REQUIRE(fourth->size() == 1);
    CHECK((*fourth)[0].day == "2026-03-13");
    REQUIRE((*fourth)[0].incidents.size() == 1);
    CHECK((*fourth)[0].incidents[0].action == "epcs.audit.daily_report.late");
    CHECK(epcs::VerifyAuditTrail(*f.store)->ok);
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("T-6.3: incidents go to the hook with the business day they are due by") {
    // Reviews on Thursday 2026-03-12 are due by the end of Friday; on Friday, by the end of
    // Monday; on Saturday too.
    CHECK(FormatRfc3339(epcs::NotifyBy(Day("2026-03-12") + kHour)) ==
          "2026-03-14T00:00:00.000000Z");
    CHECK(FormatRfc3339(epcs::NotifyBy(Day("2026-03-13") + 23 * kHour)) ==
          "2026-03-17T00:00:00.000000Z");
    CHECK(FormatRfc3339(epcs::NotifyBy(Day("2026-03-14") + kHour)) ==
          "2026-03-17T00:00:00.000000Z");

    AuditFixture f;
    f.Record(Day("2026-03-11") + 9 * kHour, "dr-a", "epcs.sign", "success");  // no incident
    std::vector<IncidentReport> told;
    bool reachable = false;
    epcs::DailyAuditJobOptions o;
    o.on_incidents = [&](const IncidentReport& r) -> Status {
      if (!reachable) return absl::UnavailableError("mail relay down");
      told.push_back(r);
      return absl::OkStatus();
    };
    // Thursday 01:00: the 11th is clean: not notified (the hook would fail), stored.
    epcs::DailyAuditJob job(*f.store, *f.trail, o);
    f.clock.Set(Day("2026-03-12") + kHour);
    auto clean = job.RunDue(f.clock.NowMicros());
    REQUIRE_MESSAGE(clean.ok(), clean.status().ToString());
    CHECK(clean->size() == 1);
    CHECK(clean->front().notify_by_micros == 0);
    CHECK(clean->front().json.find("\"notify_by\": null") != std::string::npos);
    // Friday 02:00: notifying the 12th's incident fails, so the day is not stored, and the
    // failure is audited.
    f.Record(Day("2026-03-12") + 9 * kHour, "dr-b", "epcs.clock_skew", "refused");
    f.clock.Set(Day("2026-03-13") + 2 * kHour);
    auto failed = job.RunDue(f.clock.NowMicros());
    CHECK(failed.status().code() == absl::StatusCode::kUnavailable);
    CHECK(f.store->Get(std::string(epcs::kDailyReportProjection), "2026-03-12").status().code() ==
          absl::StatusCode::kNotFound);
    CHECK(CountActions(*f.store, "epcs.audit.incident_notify", "failure") == 1);
    CHECK(told.empty());
    // The next run tells it, once.
    reachable = true;
    f.clock.Set(Day("2026-03-13") + 3 * kHour);
    auto ran = job.RunDue(f.clock.NowMicros());
    REQUIRE_MESSAGE(ran.ok(), ran.status().ToString());
    REQUIRE(told.size() == 1);
    CHECK(told[0].day == "2026-03-12");
    CHECK(told[0].incidents.size() == 1);
    CHECK(told[0].reviewed_at_micros == f.clock.NowMicros());
    CHECK(FormatRfc3339(told[0].notify_by_micros) == "2026-03-17T00:00:00.000000Z");
    CHECK(told[0].json.find("\"notify_by\": \"2026-03-17T00:00:00.000000Z\"") != std::string::npos);
    CHECK(told[0].text.find("to DEA by 2026-03-17T00:00:00.000000Z") != std::string::npos);
    CHECK(CountActions(*f.store, "epcs.audit.incident_notify", "success") == 1);
    CHECK(job.RunDue(f.clock.NowMicros() + kHour)->empty());
    CHECK(told.size() == 1);
  }

  TEST_CASE("a tampered chain found by the job is recorded as tamper detected") {
    AuditFixture f;
    const int64_t day = Day("2026-03-10");
    f.Record(day + kHour, "dr-a", "epcs.sign", "success", "AUDITMARK");
    f.Record(day + 2 * kHour, "dr-a", "epcs.sign", "success");
    Tampered t(*f.store, [](std::vector<store::EventRecord>& events) {
      for (auto& e : events) {
        if (e.version != 1) continue;
        size_t at = e.payload.find("AUDITMARK");
        if (at != std::string::npos) e.payload[at + 8] = 'X';
      }
    });
    auto trail = f.MakeTrail(t);
    f.clock.Set(day + 25 * kHour);
    epcs::DailyAuditJob job(t, *trail, {});
    auto reports = job.RunDue(f.clock.NowMicros());
    REQUIRE_MESSAGE(reports.ok(), reports.status().ToString());
    REQUIRE(reports->size() == 1);
    CHECK_FALSE((*reports)[0].chain_ok);
    CHECK(CountActions(*f.store, std::string(epcs::kActionTamperDetected), "failure") == 1);
  }

  TEST_CASE("no audit records: nothing is due") {
    AuditFixture f;
    epcs::DailyAuditJob job(*f.store, *f.trail, {});
    auto reports = job.RunDue(Day("2026-03-10"));
    RXFLOW_REQUIRE_OK(reports);
    CHECK(reports->empty());
  }

#ifdef RXFLOW_TEST_HAVE_SQLITE
  TEST_CASE("on SQLite the job resumes after the store is reopened, and the chain verifies") {
    const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                      ("rxflow-epcs-reports-sqlite-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    FakeClock clock(Day("2026-03-10") + 9 * kHour);  // the reviews below are on time
    SequentialIds ids{"audit"};
    store::SqliteOptions o;
    o.path = (dir / "store.db").string();
    o.clock = &clock;
    epcs::AuditTrailOptions ao;
    ao.ids = &ids;
    {
      auto st = store::OpenSqliteStore(o);
      REQUIRE_MESSAGE(st.ok(), st.status().ToString());
      epcs::AuditTrail trail(**st, clock, ao);
      RXFLOW_REQUIRE_OK(
          trail.Record({"dr-a", "epcs.two_factor.failed", "p@1", "failure", "t", ""}));
      clock.Advance(24 * kHour);
      RXFLOW_REQUIRE_OK(trail.Record({"dr-a", "epcs.sign", "rx-1", "success", "t", ""}));
      clock.Set(Day("2026-03-12") + 30 * kMinute);
      epcs::DailyAuditJob job(**st, trail);
      auto reports = job.RunDue(clock.NowMicros());
      REQUIRE_MESSAGE(reports.ok(), reports.status().ToString());
      CHECK(reports->size() == 2);
    }
    {
      auto st = store::OpenSqliteStore(o);
      REQUIRE_MESSAGE(st.ok(), st.status().ToString());
      epcs::AuditTrail trail(**st, clock, ao);
      epcs::DailyAuditJob job(**st, trail);
      auto reports = job.RunDue(clock.NowMicros());
      RXFLOW_REQUIRE_OK(reports);
      CHECK(reports->empty());
      auto row = (*st)->Get(std::string(epcs::kDailyReportProjection), "2026-03-10");
      RXFLOW_REQUIRE_OK(row);
      CHECK(row->find("\"epcs.two_factor.failed\"") != std::string::npos);
      auto v = epcs::VerifyAuditTrail(**st);
      RXFLOW_REQUIRE_OK(v);
      CHECK(v->ok);
      CHECK(v->records == 4);  // two records and the two reviews
    }
    std::filesystem::remove_all(dir);
  }
#endif
}

namespace {

constexpr const char* kPatientKey = "test-patient-key-0123456789abcdef";
const std::string kSecret = "12345678901234567890";  // RFC 6238's SHA-1 seed
const std::string kSecret2 = "abcdefghijklmnopqrstuvwx";
const std::string kPassword = "correct horse battery staple";

// The ceremony of epcs_ceremony_test.cc, reduced to what signing one Schedule II prescription
// needs: a signer (dr-lindqvist) and an approver (dr-patel).
struct CeremonyFixture {
  // Now: the run-time PKI issues its certificates for the real time.
  FakeClock clock{SystemClock().NowMicros()};
  SequentialIds ids{"rx"};
  std::unique_ptr<store::Store> store = store::NewMemoryStore(clock);
  std::unique_ptr<PrescriptionService> service;
  epcs::AuditTrail audit{*store, clock};
  testing::Pki pki;
  std::shared_ptr<epcs::Signer> key{epcs::NewInMemorySigner()};
  std::unique_ptr<epcs::Ceremony> ceremony;

  CeremonyFixture() {
    ServiceOptions o;
    o.patient_key = kPatientKey;
    o.clock = &clock;
    o.ids = &ids;
    service = std::move(*PrescriptionService::Create(*store, o));
    epcs::CeremonyOptions c;
    c.signer_for = [this](const epcs::PractitionerView&,
                          const std::string&) -> StatusOr<std::shared_ptr<epcs::Signer>> {
      return key;
    };
    ceremony = std::make_unique<epcs::Ceremony>(*service, *store, audit, clock, c);
    auto spki = key->PublicKeyDer();
    RXFLOW_REQUIRE_OK(spki);
    auto cert = pki.Prescriber(*spki, "Rebecca Lindqvist", "BL4721052");
    REQUIRE(ceremony
                ->Enroll(Prescriber("dr-lindqvist", "Lindqvist", "BL4721052", kSecret,
                                    testing::Pki::Der(cert.get())),
                         "admin-1")
                .ok());
    REQUIRE(ceremony->Enroll(Prescriber("dr-patel", "Patel", "AP5836727", kSecret2, ""), "admin-1")
                .ok());
  }

  static epcs::PractitionerEnrollment Prescriber(std::string id, std::string last, std::string dea,
                                                 std::string secret, std::string cert) {
    epcs::PractitionerEnrollment p;
    p.id = std::move(id);
    p.first_name = "Test";
    p.last_name = std::move(last);
    p.registrations.push_back({std::move(dea), {"2", "2N", "3", "4", "5"}, "OH", "2027-12-31"});
    p.identity_proofed_by = "Example CSP";
    p.credential_issuer = "Example CA";
    p.password = kPassword;
    p.totp_secret = std::move(secret);
    p.certificate_der = std::move(cert);
    p.key_label = "key-1";
    return p;
  }

  epcs::TwoFactorProof Proof(const std::string& secret) {
    auto code = epcs::TotpCode(secret, clock.NowMicros() / 1'000'000);
    RXFLOW_REQUIRE_OK(code);
    return {kPassword, *code};
  }

  // A new 30-second step, so no code is used twice.
  void NextStep() { clock.Advance(30'000'000); }

  // Grants dr-lindqvist both permissions, submits the oxycodone prescription, marks it ready
  // and signs it; returns its id.
  std::string SignOxycodone() {
    for (epcs::Permission p : {epcs::Permission::kMarkReady, epcs::Permission::kSign}) {
      auto proposal = ceremony->Propose("dr-lindqvist", p, true, "admin-1");
      RXFLOW_REQUIRE_OK(proposal);
      NextStep();
      RXFLOW_REQUIRE_OK(ceremony->Approve("dr-lindqvist", *proposal, "dr-patel", Proof(kSecret2)));
    }
    IssueList issues;
    auto s = service->Submit(testing::ReadFixture("fhir/schedule2_oxycodone.json"), issues);
    REQUIRE_MESSAGE(s.ok(), s.status().ToString());
    auto bundle = ceremony->Bundle(s->id, "dr-lindqvist");
    REQUIRE_MESSAGE(bundle.ok(), bundle.status().ToString());
    RXFLOW_REQUIRE_OK(ceremony->MarkReady(s->id, "dr-lindqvist", "BL4721052", bundle->sha256));
    NextStep();
    Status st = ceremony->Sign(s->id, "dr-lindqvist", bundle->sha256, Proof(kSecret));
    REQUIRE_MESSAGE(st.ok(), st.ToString());
    return s->id;
  }
};

ControlledPrescriptionLogEntry Entry(std::string id, std::string at, std::string patient,
                                     std::string drug) {
  ControlledPrescriptionLogEntry e;
  e.prescription_id = std::move(id);
  e.signed_at = std::move(at);
  e.patient_name = std::move(patient);
  e.drug_description = std::move(drug);
  return e;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The PEM of a DER SubjectPublicKeyInfo, as `openssl pkey -pubout` writes it.
std::string PublicKeyPem(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  testing::Pki::Key key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  REQUIRE(key);
  BIO* bio = BIO_new(BIO_s_mem());
  REQUIRE(PEM_write_bio_PUBKEY(bio, key.get()) == 1);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  return pem;
}

std::vector<std::string> Ids(const std::vector<ControlledPrescriptionLogEntry>& log) {
  std::vector<std::string> out;
  for (const auto& e : log) out.push_back(e.prescription_id);
  return out;
}

}  // namespace

TEST_SUITE("EPCS practitioner log") {
  TEST_CASE("a prescription signed through the ceremony is in its practitioner's log") {
    CeremonyFixture f;
    const int64_t before = f.clock.NowMicros();
    std::string id = f.SignOxycodone();
    const int64_t after = f.clock.NowMicros() + 1;

    auto log = epcs::PractitionerLog(*f.store, "dr-lindqvist", before, after);
    REQUIRE_MESSAGE(log.ok(), log.status().ToString());
    REQUIRE(log->size() == 1);
    const ControlledPrescriptionLogEntry& e = (*log)[0];
    CHECK(e.prescription_id == id);
    CHECK(e.dea_number == "BL4721052");
    CHECK(e.dea_schedule == "CII");
    CHECK(e.patient_name == "Brennan, Thomas");
    CHECK(e.written_date == "2026-11-21");
    CHECK(Lower(e.drug_description).find("oxycodone") != std::string::npos);
    CHECK(e.signed_at >= FormatRfc3339(before));  // RFC 3339 strings of one form sort as times
    CHECK(e.signed_at <= FormatRfc3339(after));
    CHECK(e.signed_at.ends_with("Z"));

    // Another practitioner, another period: nothing.
    CHECK(epcs::PractitionerLog(*f.store, "dr-patel", before, after)->empty());
    CHECK(epcs::PractitionerLog(*f.store, "dr-lindqvist", after, after + kHour)->empty());
    CHECK(epcs::PractitionerLog(*f.store, "dr-lindqvist", 0, before)->empty());

    std::string csv = epcs::LogCsv(*log);
    CHECK(csv.starts_with(
        "prescription_id,signed_at,dea_number,dea_schedule,drug_description,patient_name,"
        "written_date\n"));
    CHECK(csv.find(id + "," + e.signed_at + ",BL4721052,CII," + e.drug_description +
                   ",\"Brennan, Thomas\",2026-11-21\n") != std::string::npos);

    // The monthly log: the signing month is the previous month from the next month on, not
    // during the signing month itself.
    int64_t next_month = before;
    while (FormatRfc3339(next_month).substr(0, 7) == FormatRfc3339(before).substr(0, 7)) {
      next_month += 86'400'000'000LL;
    }
    auto month_after = epcs::MonthlyLogCsv(*f.store, "dr-lindqvist", next_month);
    RXFLOW_REQUIRE_OK(month_after);
    CHECK(*month_after == csv);
    auto same_month = epcs::MonthlyLogCsv(*f.store, "dr-lindqvist", after);
    RXFLOW_REQUIRE_OK(same_month);
    CHECK(*same_month == epcs::LogCsv({}));
  }

  TEST_CASE("after crypto-erasure the log keeps the signature and names no patient") {
    CeremonyFixture f;
    const int64_t before = f.clock.NowMicros();
    std::string id = f.SignOxycodone();
    const int64_t after = f.clock.NowMicros() + 1;
    // The store as a protected one sees it after `rxflow phi reseal` and `rxflow phi erase`.
    phi::VaultOptions vo;
    vo.current = std::shared_ptr<phi::KeyEncryptionKey>(phi::NewInMemoryKek("kek"));
    vo.clock = &f.clock;
    auto vault = phi::Vault::Create(*f.store, std::move(vo));
    RXFLOW_REQUIRE_OK(vault);
    auto sealed = phi::ResealAll(*f.store, **vault, kPatientKey);
    RXFLOW_REQUIRE_OK(sealed);
    CHECK(sealed->sealed == 2);  // the NewRx as transformed and as signed
    auto erased = phi::ErasePatientOf(*f.store, **vault, id, "operator:test", "retention ended");
    RXFLOW_REQUIRE_OK(erased);
    auto protected_store = phi::NewProtectedStore(*f.store, **vault);
    auto log = epcs::PractitionerLog(*protected_store, "dr-lindqvist", before, after);
    REQUIRE_MESSAGE(log.ok(), log.status().ToString());
    REQUIRE(log->size() == 1);
    CHECK((*log)[0].prescription_id == id);
    CHECK((*log)[0].dea_number == "BL4721052");
    CHECK((*log)[0].patient_name == "(erased)");
    CHECK((*log)[0].written_date.empty());
  }

  TEST_CASE("the log sorts by date, patient and drug") {
    std::vector<ControlledPrescriptionLogEntry> log = {
        Entry("rx-1", "2026-02-03T09:00:00.000000Z", "Okafor, Ada", "morphine 15 MG"),
        Entry("rx-2", "2026-02-01T09:00:00.000000Z", "brennan, Thomas", "Oxycodone 5 MG"),
        Entry("rx-3", "2026-02-02T09:00:00.000000Z", "Adams, Lee", "hydrocodone 10 MG"),
        Entry("rx-4", "2026-02-01T08:00:00.000000Z", "Okafor, Ada", "Hydrocodone 10 MG"),
    };
    epcs::SortLog(log, LogOrder::kDate);
    CHECK(Ids(log) == std::vector<std::string>{"rx-4", "rx-2", "rx-3", "rx-1"});
    epcs::SortLog(log, LogOrder::kPatient);  // case does not matter; ties keep date order
    CHECK(Ids(log) == std::vector<std::string>{"rx-3", "rx-2", "rx-4", "rx-1"});
    epcs::SortLog(log, LogOrder::kDate);
    epcs::SortLog(log, LogOrder::kDrug);
    CHECK(Ids(log) == std::vector<std::string>{"rx-4", "rx-3", "rx-1", "rx-2"});
  }

  TEST_CASE("CSV fields are quoted, and formulas are kept from running") {
    std::vector<ControlledPrescriptionLogEntry> log = {
        Entry("rx-1", "2026-02-01T00:00:00.000000Z", "O\"Neil, Pat", "=HYPERLINK(\"x\")")};
    std::string csv = epcs::LogCsv(log);
    CHECK(csv.ends_with(
        "rx-1,2026-02-01T00:00:00.000000Z,,,\"'=HYPERLINK(\"\"x\"\")\",\"O\"\"Neil, Pat\",\n"));
  }

  TEST_CASE("the previous calendar month") {
    auto [from, to] = epcs::PreviousCalendarMonth(Day("2026-03-15") + 12 * kHour);
    CHECK(epcs::UtcDay(from) == "2026-02-01");
    CHECK(from == Day("2026-02-01"));
    CHECK(to == Day("2026-03-01"));
    auto [jan_from, jan_to] = epcs::PreviousCalendarMonth(Day("2026-01-10"));
    CHECK(jan_from == Day("2025-12-01"));
    CHECK(jan_to == Day("2026-01-01"));
    // The first instant of a month belongs to it; the last of the month before does not.
    CHECK(epcs::PreviousCalendarMonth(Day("2026-03-01")).first == Day("2026-02-01"));
    CHECK(epcs::PreviousCalendarMonth(Day("2026-03-01") - 1).first == Day("2026-01-01"));
    // Leap February.
    CHECK(epcs::PreviousCalendarMonth(Day("2024-03-01")).second -
              epcs::PreviousCalendarMonth(Day("2024-03-01")).first ==
          29 * 24 * kHour);
  }

  TEST_CASE("a checkpoint key is read from PEM or DER") {
    std::shared_ptr<epcs::Signer> key{epcs::NewInMemorySigner()};
    auto der = key->PublicKeyDer();
    RXFLOW_REQUIRE_OK(der);
    CHECK(*epcs::CheckpointPublicKeyDer(*der) == *der);
    auto from_pem = epcs::CheckpointPublicKeyDer(PublicKeyPem(*der));
    REQUIRE_MESSAGE(from_pem.ok(), from_pem.status().ToString());
    CHECK(*from_pem == *der);
    CHECK(epcs::CheckpointPublicKeyDer("not a key").status().code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(epcs::CheckpointPublicKeyDer(*der + "x").status().code() ==
          absl::StatusCode::kInvalidArgument);
  }
}
