// SPDX-License-Identifier: Apache-2.0
// A day's controlled-substance dispensings from the event log → an ASAP file that the reader
// parses back; zero reports; what cannot be reported is named. PDMP queries: the FHIR
// $pdmp-history codec against the IG's published examples, the ASAP-fed simulator, and the
// closed loop prescribe → dispense → ASAP report → query through the service.
#include "rxflow/clinical/pmp.h"

#include <doctest/doctest.h>

#include "rxflow/clinical/pdmp.h"
#include "rxflow/clock.h"
#include "rxflow/domain/prescription.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/service.h"
#include "rxflow/transform.h"

#include "testing/files.h"
#include "testing/status.h"

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
// not controlled) dispensed at `filled` (`dispensed` false: only transformed), the pharmacy
// naming `dispensed_ndc` or not.
void Prescribe(store::Store& s, const std::string& id, int64_t filled, bool controlled = true,
               bool dispensed = true, const std::string& dispensed_ndc = "") {
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
  if (dispensed) {
    req.events.push_back(
        Record(id, domain::PrescriptionDispensed{"Dispensed", true, "20", dispensed_ndc}, filled));
  }
  RXFLOW_REQUIRE_OK(s.Append(std::move(req)));
}

constexpr int64_t kDec1Noon = int64_t{1'764'590'400} * 1'000'000;  // 2025-12-01T12:00:00Z

// The report options of these tests: created 2025-12-02 01:00; the fixture's NewRx has an
// RxCUI and no NDC, so the drug database (one product, kept alive by `db`) gives one.
PmpReportOptions Dec1Options(std::unique_ptr<DrugIndex>& db) {
  PmpReportOptions o;
  o.creation_date = "20251202";
  o.creation_time = "010000";
  DrugProduct oxy;
  oxy.rxcui = "1049621";
  oxy.name = "oxycodone hydrochloride 5 MG Oral Tablet";
  oxy.dea_schedule = 2;
  oxy.ndcs = {"00406055201"};
  auto built = DrugIndex::Build({oxy});
  RXFLOW_REQUIRE_OK(built);
  db = std::move(*built);
  o.drugs = db.get();
  return o;
}

TEST_CASE("PMP: a day's controlled dispensings become an ASAP file the reader parses back") {
  FakeClock clock(kDec1Noon);
  auto s = store::NewMemoryStore(clock);
  Prescribe(*s, "rx-1", kDec1Noon);
  Prescribe(*s, "rx-2", kDec1Noon + 3'600'000'000);
  Prescribe(*s, "rx-other-day", kDec1Noon + 86'400'000'000);
  Prescribe(*s, "rx-plain", kDec1Noon, /*controlled=*/false);  // not reported
  std::unique_ptr<DrugIndex> db;
  auto r = BuildPmpReport(*s, "2025-12-01", Dec1Options(db));
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

TEST_CASE("PMP: the NDC the pharmacy dispensed is reported, with its RxCUI only when known") {
  FakeClock clock(kDec1Noon);
  auto s = store::NewMemoryStore(clock);
  Prescribe(*s, "rx-known", kDec1Noon, true, true, "00406055201");        // in the database
  Prescribe(*s, "rx-unknown", kDec1Noon + 1, true, true, "99999000101");  // a substitute
  std::unique_ptr<DrugIndex> db;
  PmpReportOptions o = Dec1Options(db);
  auto r = BuildPmpReport(*s, "2025-12-01", o);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  const auto& ds = r->report.pharmacies[0].dispensings;
  REQUIRE(ds.size() == 2);
  CHECK(ds[0].product_id == "00406055201");
  CHECK(ds[0].rxnorm_code == "1049621");
  CHECK(ds[1].product_id == "99999000101");  // not the prescribed product's NDC
  CHECK(ds[1].rxnorm_code.empty());          // nor its RxCUI
  CHECK(ds[1].rxnorm_qualifier.empty());
  // Without a database, the dispensed NDC alone is enough to report.
  o.drugs = nullptr;
  auto without = BuildPmpReport(*s, "2025-12-01", o);
  RXFLOW_REQUIRE_OK(without);
  CHECK(without->not_reported.empty());
  CHECK(without->report.pharmacies[0].dispensings[0].rxnorm_code.empty());
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
  RXFLOW_REQUIRE_OK(r);
  auto text = asap::Write(r->report);
  RXFLOW_REQUIRE_OK(text);
  CHECK(*text ==
        "TH*4.2B*Z1*01**20251202*0100*P**~~IS*1234567*RIVERBEND*#20251201#-#20251201#~"
        "PHA**1234567**RIVERBEND~PAT*******Report*Zero~DSP*****20251201~PRE~TP*5~TT*Z1*8~");
}

// ---- PDMP queries -----------------------------------------------------------------------

std::string Pdmp(const std::string& name) {
  return testing::ReadFixture("clinical/pdmp/Parameters-pdmp-history-" + name + ".json");
}

TEST_CASE("PDMP: the IG's history example is read: dispensing, drug, fill number, pharmacy") {
  auto r = pdmp::ParseHistoryResponse(Pdmp("output-parameters-1"));
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->outcome == pdmp::Outcome::kFound);
  REQUIRE(r->dispenses.size() == 1);
  const pdmp::Dispense& d = r->dispenses[0];
  CHECK(d.date_filled == "2023-06-05");
  CHECK(d.rx_number == "000022056");  // authorizingPrescription, not the fill's identifier
  CHECK(d.refill_number == "1");      // pdmp-extension-rx-fill-number
  CHECK(d.ndc11 == "00093015001");
  CHECK(d.rxcui == "993781");
  CHECK(d.drug_name == "Acetaminophen 300 mg / Codeine 30 mg oral tablet");
  CHECK(d.quantity == "10");
  CHECK(d.quantity_unit == "each");
  CHECK(d.days_supply == "5");
  CHECK(d.status == "completed");
  CHECK(d.pharmacy_ncpdp_id == "999017");
  CHECK(d.pharmacy_npi == "1669512349");  // from the Organization the performer references
  CHECK(d.pharmacy_name == "Our Pharmacy");
  CHECK(r->patient.family == "Samuels");  // the PDMP's record of the patient
  CHECK(r->patient.birth_date == "1989-03-12");
  CHECK(r->report_url.empty());
}

TEST_CASE("PDMP: the IG's other answers: minimal, not found, a link, a warning, pre-staging") {
  auto r = pdmp::ParseHistoryResponse(Pdmp("output-parameters-2-minimal-history"));
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  REQUIRE(r->dispenses.size() == 1);
  CHECK(r->dispenses[0].rx_number == "065046045550");
  CHECK(r->dispenses[0].pharmacy_npi == "1669512349");
  CHECK(r->dispenses[0].pharmacy_ncpdp_id.empty());
  CHECK(r->dispenses[0].pharmacy_name == "Our Pharmacy");
  CHECK(r->dispenses[0].refill_number.empty());

  auto none = pdmp::ParseHistoryResponse(Pdmp("output-parameters-3-patient-not-found"));
  RXFLOW_REQUIRE_OK(none);
  CHECK(none->outcome == pdmp::Outcome::kNotFound);
  CHECK(none->messages ==
        std::vector<std::string>{"No PDMP history was found for the submitted patient"});

  auto link = pdmp::ParseHistoryResponse(Pdmp("output-parameters-4-link-response"));
  RXFLOW_REQUIRE_OK(link);
  CHECK(link->outcome == pdmp::Outcome::kReport);
  CHECK(link->report_url == "http://pdmp.example.org/response/013050650054450");

  auto warning = pdmp::ParseHistoryResponse(Pdmp("output-parameters-6-non-fatal-warning"));
  RXFLOW_REQUIRE_OK(warning);
  CHECK(warning->outcome == pdmp::Outcome::kReport);  // a warning is not an error
  REQUIRE(warning->messages.size() == 1);
  CHECK(warning->messages[0].rfind("Incomplete results", 0) == 0);

  auto staged = pdmp::ParseHistoryResponse(Pdmp("output-parameters-5-pre-stage-response"));
  CHECK(staged.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(staged.status().message()).find("pre-stage-retrieval-key") !=
        std::string::npos);
}

TEST_CASE("PDMP: the draft's answers (pdmp-history-result, outcome in the Bundle) are read too") {
  auto r = pdmp::ParseHistoryResponse(
      testing::ReadFixture("clinical/pdmp/draft/Parameters-pdmp-history-output-parameters-1.json"));
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  REQUIRE(r->dispenses.size() == 1);
  CHECK(r->dispenses[0].rx_number == "2000353");  // the draft's FILL identifier
  CHECK(r->dispenses[0].refill_number == "1");    // pdmp-extension-rx-refill-number
  auto e = pdmp::ParseHistoryResponse(testing::ReadFixture(
      "clinical/pdmp/draft/"
      "Parameters-pdmp-history-output-parameters-3-error-retrieving-data.json"));
  RXFLOW_REQUIRE_OK(e);
  CHECK(e->outcome == pdmp::Outcome::kError);
  CHECK(e->dispenses.empty());
  CHECK(e->messages == std::vector<std::string>{
                           "The state PDMP system did not respond within the timeout period"});
}

TEST_CASE("PDMP: the IG's requests are read, ours read back the same") {
  auto full = pdmp::ParseHistoryRequest(Pdmp("input-parameters-1"));
  REQUIRE_MESSAGE(full.ok(), full.status().ToString());
  CHECK(full->patient.family == "Samuels");
  CHECK(full->patient.given == "August");
  CHECK(full->patient.birth_date == "1989-03-12");
  CHECK(full->patient.gender == "male");
  CHECK(full->patient.postal_code == "01059");
  CHECK(full->patient.state == "MA");
  CHECK(full->requester.npi == "1928340565");
  CHECK(full->requester.family == "Amster");
  CHECK(full->requester.given == "Adam");
  CHECK(full->requester.organization_name == "Highview Clinic");
  auto minimum = pdmp::ParseHistoryRequest(Pdmp("input-parameters-2-minimum"));
  RXFLOW_REQUIRE_OK(minimum);
  CHECK(minimum->patient.postal_code.empty());
  CHECK(minimum->requester.given.empty());

  pdmp::Query q = *full;
  q.requester.dea_number = "AB1234563";
  auto back = pdmp::ParseHistoryRequest(pdmp::HistoryRequestJson(q));
  REQUIRE_MESSAGE(back.ok(), back.status().ToString());
  CHECK(back->patient.family == q.patient.family);
  CHECK(back->patient.given == q.patient.given);
  CHECK(back->patient.birth_date == q.patient.birth_date);
  CHECK(back->patient.gender == q.patient.gender);
  CHECK(back->patient.postal_code == q.patient.postal_code);
  CHECK(back->patient.state == q.patient.state);
  CHECK(back->requester.npi == q.requester.npi);
  CHECK(back->requester.dea_number == q.requester.dea_number);
  CHECK(back->requester.organization_name == q.requester.organization_name);
  // The request has the parameters the OperationDefinition requires.
  const std::string json = pdmp::HistoryRequestJson(q);
  for (const char* name : {"\"patient\"", "\"authorized-practitioner\"",
                           "\"authorized-practitioner-role\"", "\"pre-stage-only\""}) {
    CHECK_MESSAGE(json.find(name) != std::string::npos, name);
  }
}

TEST_CASE("PDMP: our history answer reads back, R5's medication.concept is read too") {
  pdmp::Result r;
  r.outcome = pdmp::Outcome::kFound;
  for (int i = 0; i < 3; ++i) {
    pdmp::Dispense d;
    d.date_filled = Cat("2026-11-0", i + 1);
    d.rx_number = Cat("RX", i);
    d.refill_number = i == 0 ? "" : Cat(i);
    d.ndc11 = "00406055201";
    d.rxcui = "1049621";
    d.drug_name = "oxycodone hydrochloride 5 MG Oral Tablet";
    d.quantity = i == 2 ? "7.5" : "20";
    d.quantity_unit = i == 2 ? "mL" : "each";
    d.days_supply = "5";
    d.pharmacy_ncpdp_id = i == 1 ? "7654321" : "1234567";
    d.pharmacy_name = i == 1 ? "OTHER" : "RIVERBEND";
    r.dispenses.push_back(d);
  }
  r.patient = {"Brennan", "Thomas", "1979-09-02", "male", "43215", "OH"};
  r.dispenses[2].refill_number = "00";  // ASAP's padding: the original fill
  r.dispenses[1].refill_number = "01";
  r.dispenses[0].days_supply = "030";
  r.dispenses[0].drug_name = "oxycodone \xD1 (Latin-1, not UTF-8)";
  auto back = pdmp::ParseHistoryResponse(pdmp::HistoryResponseJson(r));
  REQUIRE_MESSAGE(back.ok(), back.status().ToString());
  REQUIRE(back->dispenses.size() == 3);
  CHECK(back->dispenses[0].date_filled == "2026-11-03");  // newest first
  CHECK(back->dispenses[0].quantity == "7.5");
  CHECK(back->dispenses[0].quantity_unit == "mL");
  CHECK(back->dispenses[1].pharmacy_ncpdp_id == "7654321");
  CHECK(back->dispenses[1].refill_number == "1");
  CHECK(back->dispenses[2].refill_number.empty());
  CHECK(back->dispenses[2].rx_number == "RX0");
  CHECK(back->dispenses[2].pharmacy_name == "RIVERBEND");
  CHECK(back->dispenses[2].days_supply == "30");
  CHECK(back->dispenses[2].drug_name.find("\xEF\xBF\xBD") != std::string::npos);  // U+FFFD
  CHECK(back->patient.family == "Brennan");
  CHECK(pdmp::ResultJson(r, "x").find("\xEF\xBF\xBD") != std::string::npos);  // no throw
  // Not found and error answers read back as such.
  pdmp::Result none;
  none.outcome = pdmp::Outcome::kNotFound;
  CHECK(pdmp::ParseHistoryResponse(pdmp::HistoryResponseJson(none))->outcome ==
        pdmp::Outcome::kNotFound);
  pdmp::Result error;
  error.outcome = pdmp::Outcome::kError;
  error.messages = {"the state PDMP timed out"};
  auto error_back = pdmp::ParseHistoryResponse(pdmp::HistoryResponseJson(error));
  CHECK(error_back->outcome == pdmp::Outcome::kError);
  CHECK(error_back->messages == error.messages);

  std::string r5 = Pdmp("output-parameters-1");
  const std::string from = "\"medicationCodeableConcept\": {";
  size_t at = r5.find(from);
  REQUIRE(at != std::string::npos);
  r5.replace(at, from.size(), "\"medication\": {\"concept\": {");
  r5.insert(r5.rfind('}', r5.find("\"subject\"")) + 1, "}");
  auto read = pdmp::ParseHistoryResponse(r5);
  REQUIRE_MESSAGE(read.ok(), read.status().ToString());
  CHECK(read->dispenses[0].rxcui == "993781");
}

TEST_CASE("PDMP: what is not a $pdmp-history exchange is refused with the JSON path") {
  auto why = [](StatusOr<pdmp::Result> r) {
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(r.status().message());
  };
  CHECK(why(pdmp::ParseHistoryResponse("{")) == "$: not JSON");
  CHECK(why(pdmp::ParseHistoryResponse(R"({"resourceType":"Bundle"})")) ==
        "$.resourceType: Bundle is not Parameters");
  CHECK(why(pdmp::ParseHistoryResponse(R"({"resourceType":"Parameters","parameter":[]})")) ==
        "$.parameter: none of pdmp-history-data, pdmp-history-link, outcome");
  std::string no_date = Pdmp("output-parameters-1");
  no_date.replace(no_date.find("\"whenPrepared\""), 14, "\"whenHandedOver\"");
  CHECK(why(pdmp::ParseHistoryResponse(no_date)) ==
        "$.parameter[0].resource.entry[0].resource.whenPrepared: required");
  CHECK(why(pdmp::ParseHistoryResponse(
                R"({"resourceType":"Parameters","parameter":[{"name":"pre-stage-retrieval-key",)"
                R"("valueString":"k"}]})"))
            .find("RxFlow does not ask for pre-staging") != std::string::npos);

  auto request_why = [](std::string_view json) {
    auto q = pdmp::ParseHistoryRequest(json);
    CHECK(q.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(q.status().message());
  };
  std::string no_birth = Pdmp("input-parameters-2-minimum");
  no_birth.replace(no_birth.find("\"birthDate\""), 11, "\"deceased\"");
  CHECK(request_why(no_birth) == "$.parameter[0].resource.birthDate: required");
  std::string bad_birth = Pdmp("input-parameters-2-minimum");
  bad_birth.replace(bad_birth.find("1989-03-12"), 10, "03/12/1989");
  CHECK(request_why(bad_birth) == "$.parameter[0].resource.birthDate: not YYYY-MM-DD");
  CHECK(request_why(R"({"resourceType":"Parameters","parameter":[]})") ==
        "$.parameter: no patient parameter");
}

// A day of dispensings reported as ASAP, as BuildPmpReport writes it.
std::string AsapForDec1(store::Store& s) {
  std::unique_ptr<DrugIndex> db;
  auto r = BuildPmpReport(s, "2025-12-01", Dec1Options(db));
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  auto text = asap::Write(r->report);
  REQUIRE_MESSAGE(text.ok(), text.status().ToString());
  return *text;
}

pdmp::Query Brennan() {
  pdmp::Query q;
  q.patient = {"Brennan", "Thomas", "1979-09-02", "male", "43215", "OH"};
  return q;
}

TEST_CASE("PDMP simulator: answers from ASAP files, matching, void and revise, once per file") {
  FakeClock clock(kDec1Noon);
  auto s = store::NewMemoryStore(clock);
  Prescribe(*s, "rx-1", kDec1Noon);
  Prescribe(*s, "rx-2", kDec1Noon + 3'600'000'000);
  const std::string file = AsapForDec1(*s);
  pdmp::Simulator sim;
  RXFLOW_REQUIRE_OK(sim.AddAsapFile(file));
  CHECK(sim.AddAsapFile(file).code() == absl::StatusCode::kAlreadyExists);
  CHECK(sim.AddAsapFile("TH*4.2B*X").code() == absl::StatusCode::kInvalidArgument);
  CHECK(sim.size() == 2);

  auto r = sim.History(Brennan());
  RXFLOW_REQUIRE_OK(r);
  CHECK(r->outcome == pdmp::Outcome::kFound);
  REQUIRE(r->dispenses.size() == 2);
  CHECK(r->dispenses[0].date_filled == "2025-12-01");
  CHECK(r->dispenses[0].ndc11 == "00406055201");
  CHECK(r->dispenses[0].rxcui == "1049621");
  CHECK(r->dispenses[0].quantity == "20");
  CHECK_FALSE(r->dispenses[0].pharmacy_ncpdp_id.empty());
  CHECK(r->patient.birth_date == "1979-09-02");  // the record's, from PAT18
  // Case and spaces do not matter; the birth date and a ZIP both sides have do.
  pdmp::Query q = Brennan();
  q.patient.family = " BRENNAN ";
  q.patient.postal_code = "";
  CHECK(sim.History(q)->dispenses.size() == 2);
  q.patient.postal_code = "43215-1234";
  CHECK(sim.History(q)->dispenses.size() == 2);
  q.patient.postal_code = "10001";
  CHECK(sim.History(q)->outcome == pdmp::Outcome::kNotFound);
  q = Brennan();
  q.patient.birth_date = "1979-09-03";
  auto none = sim.History(q);
  CHECK(none->outcome == pdmp::Outcome::kNotFound);
  CHECK(none->dispenses.empty());
  q.patient.birth_date = "";
  CHECK(sim.History(q)->outcome == pdmp::Outcome::kError);

  // A later file voids one dispensing and revises the other.
  auto report = asap::Read(file);
  RXFLOW_REQUIRE_OK(report);
  report->control_number = "CORRECTION-1";
  auto& ds = report->pharmacies[0].dispensings;
  ds[0].reporting_status = "02";
  ds[1].reporting_status = "01";
  ds[1].quantity = "10";
  auto correction = asap::Write(*report);
  RXFLOW_REQUIRE_OK(correction);
  RXFLOW_REQUIRE_OK(sim.AddAsapFile(*correction));
  auto after = sim.History(Brennan());
  REQUIRE(after->dispenses.size() == 1);
  CHECK(after->dispenses[0].quantity == "10");
}

struct FailingPdmp : pdmp::Client {
  StatusOr<pdmp::Result> History(const pdmp::Query&) override {
    return absl::UnavailableError("fhir pdmp pdmp.example: Connection refused");
  }
  std::string name() const override { return "fhir pdmp pdmp.example"; }
};

TEST_CASE("PDMP through the service: prescribe, dispense, report, query, recorded as an event") {
  FakeClock clock(kDec1Noon);
  auto s = store::NewMemoryStore(clock);
  Prescribe(*s, "rx-1", kDec1Noon);
  Prescribe(*s, "rx-2", kDec1Noon + 3'600'000'000);
  Prescribe(*s, "rx-new", kDec1Noon + 86'400'000'000, true, /*dispensed=*/false);
  pdmp::Simulator sim;
  RXFLOW_REQUIRE_OK(sim.AddAsapFile(AsapForDec1(*s)));
  ServiceOptions so;
  so.patient_key = "pdmp-test-patient-key-0123456789";
  so.clock = &clock;
  auto service = PrescriptionService::Create(*s, so);
  RXFLOW_REQUIRE_OK(service);
  RequestContext ctx;
  ctx.actor = "prescriber:ehr-1";
  auto r = (*service)->QueryPdmp("rx-new", sim, ctx);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->dispenses.size() == 2);  // the patient's two earlier dispensings
  auto history = (*service)->History("rx-new");
  RXFLOW_REQUIRE_OK(history);
  const store::EventRecord& last = history->back();
  CHECK(last.type == "PdmpQueried");
  CHECK(last.actor == "prescriber:ehr-1");
  auto e = domain::DecodeEvent(last.type, last.schema_version, last.payload);
  RXFLOW_REQUIRE_OK(e);
  const auto& q = std::get<domain::PdmpQueried>(*e);
  CHECK(q.pdmp == "pdmp simulator");
  CHECK(q.outcome == "found");
  CHECK(q.dispensings == 2);
  CHECK(q.pharmacies == 1);
  CHECK(q.latest_fill == "2025-12-01");
  CHECK(q.queried_at == FormatRfc3339(kDec1Noon));
  CHECK_FALSE(q.requester_npi.empty());
  // The record holds counts, not the history or the patient.
  CHECK(last.payload.find("Brennan") == std::string::npos);
  CHECK(last.payload.find("00406055201") == std::string::npos);

  // A PDMP that cannot be reached: the attempt is recorded and answered as such.
  FailingPdmp down;
  auto failed = (*service)->QueryPdmp("rx-new", down, ctx);
  RXFLOW_REQUIRE_OK(failed);
  CHECK(failed->outcome == pdmp::Outcome::kUnavailable);
  CHECK(failed->messages[0].find("Connection refused") != std::string::npos);
  history = (*service)->History("rx-new");
  auto e2 = domain::DecodeEvent(history->back().type, 1, history->back().payload);
  RXFLOW_REQUIRE_OK(e2);
  CHECK(std::get<domain::PdmpQueried>(*e2).outcome == "unavailable");
  CHECK(std::get<domain::PdmpQueried>(*e2).error.find("Connection refused") != std::string::npos);
  // The state is unchanged by queries.
  CHECK((*service)->Load("rx-new")->state == domain::State::kTransformed);

  // A completely dispensed prescription is not queried for; another tenant's is not found.
  const size_t before = (*service)->History("rx-1")->size();
  CHECK((*service)->QueryPdmp("rx-1", sim, ctx).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK((*service)->History("rx-1")->size() == before);
  RequestContext other;
  other.tenant = "another-tenant";
  CHECK((*service)->QueryPdmp("rx-new", sim, other).status().code() == absl::StatusCode::kNotFound);
  CHECK((*service)->QueryPdmp("no-such", sim, ctx).status().code() == absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace rxflow::clinical
