// A day's controlled-substance dispensings from the event log → an ASAP file that the reader
// parses back; zero reports; what cannot be reported is named.
#include "rxflow/clinical/pmp.h"

#include <doctest/doctest.h>

#include "rxflow/clock.h"
#include "rxflow/domain/prescription.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/transform.h"

#include "testing/files.h"

namespace rxflow::clinical {
namespace {

using internal::Cat;

store::EventRecord Record(const std::string& id, const domain::Event& e, int64_t at) {
  store::EventRecord r;
  r.event_id = Cat(id, "-", domain::EventType(e));
  r.type = std::string(domain::EventType(e));
  r.schema_version = domain::EventSchemaVersion(e);
  r.occurred_at = at;
  r.payload = domain::EncodePayload(e);
  return r;
}

// Appends a prescription (the fixture's Schedule II NewRx; `controlled` false: recorded as
// not controlled) dispensed at `filled`.
void Prescribe(store::Store& s, const std::string& id, int64_t filled, bool controlled = true) {
  std::string json = testing::ReadFixture("fhir/schedule2_oxycodone.json");
  IssueList issues;
  TransformOptions o;
  o.newrx.message_id = "MSG-" + id;
  o.newrx.sent_time = "2026-11-30T10:00:00Z";
  auto out = ToScript(json, issues, o);
  REQUIRE_MESSAGE(out.ok(), out.status().ToString());
  domain::PrescriptionTransformed t;
  t.script_version = "2023011";
  t.message_id = o.newrx.message_id;
  t.newrx_xml = out->xml;
  t.pharmacy_ncpdp_id = out->newrx.message.header.to;
  t.dea_schedule = controlled ? out->newrx.dea_schedule : "";
  store::AppendRequest req;
  req.stream_id = id;
  req.events.push_back(
      Record(id, domain::PrescriptionReceived{"k-" + id, "sha", "fhir"}, filled - 10));
  req.events.push_back(Record(id, t, filled - 9));
  req.events.push_back(Record(id, domain::PrescriptionDispensed{"Dispensed", true, "20"}, filled));
  REQUIRE(s.Append(std::move(req)).ok());
}

constexpr int64_t kDec1Noon = int64_t{1'764'590'400} * 1'000'000;  // 2025-12-01T12:00:00Z

TEST_CASE("PMP: a day's controlled dispensings become an ASAP file the reader parses back") {
  FakeClock clock(kDec1Noon);
  auto s = store::NewMemoryStore(clock);
  Prescribe(*s, "rx-1", kDec1Noon);
  Prescribe(*s, "rx-2", kDec1Noon + 3'600'000'000);
  Prescribe(*s, "rx-other-day", kDec1Noon + 86'400'000'000);
  Prescribe(*s, "rx-plain", kDec1Noon, /*controlled=*/false);  // not reported
  PmpReportOptions o;
  o.creation_date = "20251202";
  o.creation_time = "010000";
  // The fixture's NewRx has an RxCUI and no NDC: the drug database gives one.
  DrugProduct oxy;
  oxy.rxcui = "1049621";
  oxy.name = "oxycodone hydrochloride 5 MG Oral Tablet";
  oxy.dea_schedule = 2;
  oxy.ndcs = {"00406055201"};
  auto db = DrugIndex::Build({oxy});
  REQUIRE(db.ok());
  o.drugs = db->get();
  auto r = BuildPmpReport(*s, "2025-12-01", o);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->not_reported.empty());
  REQUIRE(r->report.pharmacies.size() == 1);
  const auto& ds = r->report.pharmacies[0].dispensings;
  REQUIRE(ds.size() == 2);
  CHECK(ds[0].date_filled == "20251201");
  CHECK(ds[0].rxnorm_code == "1049621");
  CHECK(ds[0].rxnorm_qualifier == "01");
  CHECK(ds[0].product_id == "00406055201");
  CHECK(ds[0].quantity == "20");
  CHECK(ds[0].refill_number == "0");
  CHECK(ds[0].partial_fill == "00");
  CHECK(ds[0].erx_reference == "MSG-rx-1");
  CHECK_FALSE(ds[0].patient.last_name.empty());
  CHECK_FALSE(ds[0].prescriber.dea_number.empty());
  CHECK(r->report.control_number.rfind("20251201-", 0) == 0);
  auto text = asap::Write(r->report);
  REQUIRE_MESSAGE(text.ok(), text.status().ToString());
  auto back = asap::Read(*text);
  REQUIRE_MESSAGE(back.ok(), back.status().ToString());
  CHECK(back->pharmacies[0].dispensings.size() == 2);
  CHECK(*asap::Write(*back) == *text);
}

TEST_CASE("PMP: without an NDC and no drug database the dispensing is named, not dropped") {
  FakeClock clock(kDec1Noon);
  auto s = store::NewMemoryStore(clock);
  Prescribe(*s, "rx-1", kDec1Noon);
  PmpReportOptions o;
  o.zero_report_pharmacy.ncpdp_id = "1234567";  // not a zero report: there was a dispensing
  auto r = BuildPmpReport(*s, "2025-12-01", o);
  CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(r.status().message()).find("prescription rx-1: no NDC (DSP08) in the NewRx") !=
        std::string::npos);
}

TEST_CASE("PMP: a day without dispensings is a zero report, or NotFound without a pharmacy") {
  FakeClock clock(kDec1Noon);
  auto s = store::NewMemoryStore(clock);
  CHECK(BuildPmpReport(*s, "2025-12-01").status().code() == absl::StatusCode::kNotFound);
  CHECK(BuildPmpReport(*s, "2025-13-01").status().code() == absl::StatusCode::kInvalidArgument);
  PmpReportOptions o;
  o.zero_report_pharmacy.ncpdp_id = "1234567";
  o.zero_report_pharmacy.name = "RIVERBEND";
  o.creation_date = "20251202";
  o.creation_time = "0100";
  o.control_number = "Z1";
  auto r = BuildPmpReport(*s, "2025-12-01", o);
  REQUIRE(r.ok());
  auto text = asap::Write(r->report);
  REQUIRE(text.ok());
  CHECK(*text ==
        "TH*4.2B*Z1*01**20251202*0100*P**~~IS*1234567*RIVERBEND*#20251201#-#20251201#~"
        "PHA**1234567**RIVERBEND~PAT*******Report*Zero~DSP*****20251201~PRE~TP*5~TT*Z1*8~");
}

}  // namespace
}  // namespace rxflow::clinical
