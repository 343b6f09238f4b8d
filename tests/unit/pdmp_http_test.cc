// SPDX-License-Identifier: Apache-2.0
// PDMP queries over HTTP on loopback: the FHIR $pdmp-history client against the ASAP-fed
// simulator server, and against servers that fail the ways real ones do.
#ifdef RXFLOW_TEST_HAVE_HTTP
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <doctest/doctest.h>
#include <httplib.h>

#include "rxflow/clinical/asap.h"
#include "rxflow/http/pdmp.h"
#include "rxflow/internal/strcat.h"

#include "testing/status.h"

namespace rxflow::http {
namespace {

using internal::Cat;
namespace pdmp = clinical::pdmp;
namespace asap = clinical::asap;

// One pharmacy's dispensing of oxycodone to the patient, as an ASAP 4.2B file.
std::string AsapFile(const std::string& control, const std::string& rx_number,
                     const std::string& filled) {
  asap::Report r;
  r.control_number = control;
  r.creation_date = filled;
  r.creation_time = "2300";
  r.source_id = "1234567";
  r.source_name = "RIVERBEND PHARMACY";
  asap::PharmacyReport pr;
  pr.pharmacy.ncpdp_id = "1234567";
  pr.pharmacy.npi = "1234567893";
  pr.pharmacy.name = "RIVERBEND PHARMACY";
  asap::Dispensing d;
  d.rx_number = rx_number;
  d.date_written = filled;
  d.refills_authorized = "0";
  d.date_filled = filled;
  d.product_id = "00406055201";
  d.quantity = "20";
  d.days_supply = "5";
  d.transmission_form = "06";
  d.payment_type = "01";
  d.rxnorm_qualifier = "01";
  d.rxnorm_code = "1049621";
  d.patient.last_name = "BRENNAN";
  d.patient.first_name = "THOMAS";
  d.patient.birth_date = "19790902";
  d.patient.gender = "M";
  d.patient.zip = "43215";
  d.prescriber.npi = "1922334455";
  d.prescriber.dea_number = "AB1234563";
  d.prescriber.last_name = "OKAFOR";
  d.prescriber.first_name = "ADAEZE";
  pr.dispensings.push_back(d);
  r.pharmacies.push_back(pr);
  auto text = asap::Write(r);
  REQUIRE_MESSAGE(text.ok(), text.status().ToString());
  return *text;
}

void WriteFile(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

pdmp::Query Brennan() {
  pdmp::Query q;
  q.patient = {"Brennan", "Thomas", "1979-09-02", "male", "43215", "OH"};
  q.requester.npi = "1922334455";
  q.requester.family = "Okafor";
  return q;
}

TEST_CASE("PDMP over HTTP: the FHIR client asks the simulator, which reads its drop folder") {
  auto dir = std::filesystem::temp_directory_path() / Cat("rxflow-pdmp-", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  WriteFile(dir / "20251201.asap", AsapFile("C-20251201", "RX100", "20251201"));
  WriteFile(dir / "broken.asap", "TH*4.2B*nothing else");
  std::mutex mu;
  std::vector<std::string> log;
  PdmpSimulatorOptions so;
  so.asap_dir = dir.string();
  so.log = [&](const std::string& line) {
    std::lock_guard lock(mu);
    log.push_back(line);
  };
  PdmpSimulatorServer server(so);
  RXFLOW_REQUIRE_OK(server.Start());
  {
    std::lock_guard lock(mu);
    CHECK(std::count_if(log.begin(), log.end(), [](const std::string& l) {
            return l.find("refused ASAP file broken.asap") != std::string::npos;
          }) == 1);
  }
  FhirPdmpOptions co;
  co.base_url = server.base_url() + "/fhir/";
  auto client = NewFhirPdmpClient(co);
  RXFLOW_REQUIRE_OK(client);
  CHECK((*client)->name() == Cat("fhir pdmp 127.0.0.1:", server.port()));
  auto r = (*client)->History(Brennan());
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->outcome == pdmp::Outcome::kFound);
  REQUIRE(r->dispenses.size() == 1);
  CHECK(r->dispenses[0].rx_number == "RX100");
  CHECK(r->dispenses[0].date_filled == "2025-12-01");
  CHECK(r->dispenses[0].pharmacy_ncpdp_id == "1234567");
  CHECK(r->dispenses[0].pharmacy_npi == "1234567893");
  CHECK(r->dispenses[0].ndc11 == "00406055201");

  auto refusals = [&] {
    std::lock_guard lock(mu);
    return std::count_if(log.begin(), log.end(), [](const std::string& l) {
      return l.find("refused ASAP file broken.asap") != std::string::npos;
    });
  };
  // A file dropped later is read before the next query; the broken one is not read again
  // until it changes; a symbolic link is not followed.
  WriteFile(dir / "20251202.asap", AsapFile("C-20251202", "RX200", "20251202"));
  std::filesystem::create_symlink(dir / "20251201.asap", dir / "link.asap");
  r = (*client)->History(Brennan());
  RXFLOW_REQUIRE_OK(r);
  REQUIRE(r->dispenses.size() == 2);
  CHECK(r->dispenses[0].rx_number == "RX200");  // newest first
  CHECK(server.simulator().size() == 2);
  CHECK(refusals() == 1);
  WriteFile(dir / "broken.asap", AsapFile("C-FIXED", "RX300", "20251203"));
  r = (*client)->History(Brennan());
  RXFLOW_REQUIRE_OK(r);
  CHECK(r->dispenses.size() == 3);  // the corrected file, applied
  CHECK(refusals() == 1);
  {
    std::lock_guard lock(mu);
    for (const std::string& line : log) {
      CHECK_MESSAGE(line.find("1979") == std::string::npos, line);  // no PHI in the log
      CHECK_MESSAGE(line.find("link.asap") == std::string::npos, line);
    }
  }

  // Another patient: not found. A query without a birth date: the PDMP's error.
  pdmp::Query other = Brennan();
  other.patient.given = "Tom";
  CHECK((*client)->History(other)->outcome == pdmp::Outcome::kNotFound);
  other = Brennan();
  other.patient.birth_date.clear();
  auto refused = (*client)->History(other);
  RXFLOW_REQUIRE_OK(refused);
  CHECK(refused->outcome == pdmp::Outcome::kError);
  REQUIRE_FALSE(refused->messages.empty());
  CHECK(refused->messages.back().find("$.parameter[0].resource.birthDate: required") !=
        std::string::npos);

  // Not FHIR JSON: 415 with an OperationOutcome.
  httplib::Client raw("127.0.0.1", server.port());
  auto res = raw.Post("/$pdmp-history", "x", "text/plain");
  REQUIRE(res);
  CHECK(res->status == 415);
  CHECK(res->body.find("OperationOutcome") != std::string::npos);
  server.Stop();
  std::filesystem::remove_all(dir);
}

TEST_CASE("PDMP over HTTP: refusals, 4xx and 5xx answers, oversized answers, timeouts") {
  FhirPdmpOptions bad;
  bad.base_url = "http://pdmp.example.org/fhir";  // PHI over plain http off loopback
  CHECK(NewFhirPdmpClient(bad).status().code() == absl::StatusCode::kInvalidArgument);
  bad.base_url = "http://127.0.0.1.example.org/fhir";  // a name, not the loopback
  CHECK(NewFhirPdmpClient(bad).status().code() == absl::StatusCode::kInvalidArgument);
  bad.base_url = "http://localhost:1/fhir";
  CHECK(NewFhirPdmpClient(bad).ok());
  bad.base_url = "ftp://127.0.0.1/";
  CHECK(NewFhirPdmpClient(bad).status().code() == absl::StatusCode::kInvalidArgument);
  // What would fail every query later is refused now, saying what.
  auto refusal = [](FhirPdmpOptions o) {
    auto c = NewFhirPdmpClient(std::move(o));
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(c.status().message());
  };
  bad.base_url = "https:///fhir";
  CHECK(refusal(bad) == "PDMP: the base URL names no host");
  bad.base_url = "https://pdmp.example.org/fhir";
  bad.ca_file = "/nonexistent/pdmp-ca.pem";
  CHECK(refusal(bad) == "PDMP: the CA file /nonexistent/pdmp-ca.pem cannot be read");
  bad.ca_file.clear();
  bad.timeout = std::chrono::milliseconds(0);
  CHECK(refusal(bad).find("must be positive") != std::string::npos);
  bad.timeout = std::chrono::milliseconds(1000);
  bad.max_in_flight = 0;
  CHECK(refusal(bad).find("must be positive") != std::string::npos);
  bad.max_in_flight = 16;
  CHECK(NewFhirPdmpClient(bad).ok());
  PdmpSimulatorOptions anywhere;
  anywhere.host = "0.0.0.0";
  CHECK(PdmpSimulatorServer(anywhere).Start().code() == absl::StatusCode::kFailedPrecondition);

  httplib::Server fake;
  fake.Post(R"(/unavailable/\$pdmp-history)", [](const auto&, auto& r) { r.status = 503; });
  fake.Post(R"(/refused/\$pdmp-history)", [](const auto&, auto& r) {
    r.status = 403;
    r.set_content(
        R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"forbidden",)"
        R"("diagnostics":"requester is not registered with this PDMP"}]})",
        "application/fhir+json");
  });
  fake.Post(R"(/huge/\$pdmp-history)", [](const auto&, auto& r) {
    r.set_content(std::string(size_t{64} << 10, ' '), "application/fhir+json");
  });
  fake.Post(R"(/garbage/\$pdmp-history)",
            [](const auto&, auto& r) { r.set_content("<html/>", "text/html"); });
  fake.Post(R"(/slow/\$pdmp-history)", [](const auto&, auto& r) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    r.status = 200;
  });
  // As /slow, for the in-flight check alone: it counts the queries that reached it.
  std::atomic<int> held_entered{0};
  fake.Post(R"(/held/\$pdmp-history)", [&held_entered](const auto&, auto& r) {
    ++held_entered;
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    r.status = 200;
  });
  // A byte every 100 ms: no read times out, the whole answer does.
  fake.Post(R"(/trickle/\$pdmp-history)", [](const auto&, auto& r) {
    r.set_chunked_content_provider("application/fhir+json",
                                   [](size_t offset, httplib::DataSink& sink) {
                                     if (offset > 40) return false;
                                     std::this_thread::sleep_for(std::chrono::milliseconds(100));
                                     sink.write(" ", 1);
                                     return true;
                                   });
  });
  fake.Post(R"(/Patient/\$pdmp-history)", [](const auto&, auto& r) {
    r.set_content(R"({"resourceType":"Parameters","parameter":[{"name":"pdmp-history-link",)"
                  R"("valueUrl":"https://pdmp.example.org/report/1"}]})",
                  "application/fhir+json");
  });
  int port = fake.bind_to_any_port("127.0.0.1");
  REQUIRE(port > 0);
  std::thread t([&] { fake.listen_after_bind(); });
  while (!fake.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // The 500 ms limit only where it is the point (/slow, /trickle): an answer that should
  // arrive gets 10 s, however busy the machine.
  auto ask = [&](const std::string& path, size_t max = size_t{8} << 20,
                 const std::string& operation = "$pdmp-history",
                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    FhirPdmpOptions o;
    o.base_url = Cat("http://127.0.0.1:", port, path);
    o.operation = operation;
    o.max_response_bytes = max;
    o.timeout = timeout;
    auto c = NewFhirPdmpClient(o);
    RXFLOW_REQUIRE_OK(c);
    return (*c)->History(Brennan());
  };
  auto unavailable = ask("/unavailable");
  CHECK(unavailable.status().code() == absl::StatusCode::kUnavailable);
  CHECK(std::string(unavailable.status().message()).find("HTTP 503") != std::string::npos);
  auto refused = ask("/refused");
  RXFLOW_REQUIRE_OK(refused);
  CHECK(refused->outcome == pdmp::Outcome::kError);
  CHECK(refused->messages ==
        std::vector<std::string>{"HTTP 403", "requester is not registered with this PDMP"});
  auto huge = ask("/huge", 1024);
  CHECK(huge.status().code() == absl::StatusCode::kUnavailable);
  CHECK(std::string(huge.status().message()).find("larger than 1024 bytes") != std::string::npos);
  auto garbage = ask("/garbage");
  CHECK(garbage.status().code() == absl::StatusCode::kUnavailable);
  CHECK(std::string(garbage.status().message()).find("not a $pdmp-history result: $: not JSON") !=
        std::string::npos);
  const auto kShort = std::chrono::milliseconds(500);
  CHECK(ask("/slow", size_t{8} << 20, "$pdmp-history", kShort).status().code() ==
        absl::StatusCode::kUnavailable);
  auto trickle = ask("/trickle", size_t{8} << 20, "$pdmp-history", kShort);
  CHECK(trickle.status().code() == absl::StatusCode::kUnavailable);
  CHECK(std::string(trickle.status().message()).find("took longer than 500 ms") !=
        std::string::npos);
  // The narrative's type-level path, when configured; the answer is a report link.
  auto link = ask("", size_t{8} << 20, "Patient/$pdmp-history");
  REQUIRE_MESSAGE(link.ok(), link.status().ToString());
  CHECK(link->outcome == pdmp::Outcome::kReport);
  CHECK(link->report_url == "https://pdmp.example.org/report/1");
  // At most max_in_flight queries wait at once; more are refused at once.
  {
    FhirPdmpOptions o;
    o.base_url = Cat("http://127.0.0.1:", port, "/held");
    o.timeout = std::chrono::milliseconds(30000);
    o.max_in_flight = 1;
    auto c = NewFhirPdmpClient(o);
    RXFLOW_REQUIRE_OK(c);
    std::thread first([&] { (void)(*c)->History(Brennan()); });
    // The first query is at the server (so in flight), however late its thread started.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (held_entered.load() == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(held_entered.load() == 1);  // (not REQUIRE: the thread must be joined)
    auto second = (*c)->History(Brennan());
    first.join();
    CHECK(second.status().code() == absl::StatusCode::kUnavailable);
    CHECK(std::string(second.status().message()).find("1 queries already waiting") !=
          std::string::npos);
  }
  fake.stop();
  t.join();
}

}  // namespace
}  // namespace rxflow::http
#endif
