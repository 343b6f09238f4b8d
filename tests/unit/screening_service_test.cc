// SPDX-License-Identifier: Apache-2.0
// Interaction screening in PrescriptionService: prescriptions stored before screening was on
// count; a replay reports the findings again; two prescriptions for one patient submitted at
// once are screened one after the other (block mode lets exactly one through), also by two
// services over one store (two processes: SQLite file, PostgreSQL).
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <doctest/doctest.h>

#include "rxflow/clinical/interactions.h"
#include "rxflow/service.h"
#include "rxflow/store/event_store.h"

#include <unistd.h>

#ifdef RXFLOW_TEST_HAVE_SQLITE
#include "rxflow/sqlite/sqlite_store.h"
#endif
#ifdef RXFLOW_TEST_HAVE_POSTGRES
#include <pqxx/pqxx>

#include "rxflow/postgres/postgres_store.h"
#endif

#include "testing/files.h"
#include "testing/status.h"

namespace rxflow {
namespace {

std::string Drug(const std::string& code, const std::string& display,
                 const std::string& family = "Delacroix") {
  std::string json = testing::ReadFixture("fhir/medication_request_lisinopril.json");
  auto replace = [&](const std::string& from, const std::string& to) {
    size_t at = json.find(from);
    REQUIRE_MESSAGE(at != std::string::npos, from);
    json.replace(at, from.size(), to);
  };
  replace("\"code\": \"314076\"", "\"code\": \"" + code + "\"");
  // Both the coding's display and the concept's text.
  for (int i = 0; i < 2; ++i) replace("lisinopril 10 MG Oral Tablet", display);
  if (family != "Delacroix") {
    replace("\"family\": \"Delacroix\"", "\"family\": \"" + family + "\"");
  }
  return json;
}

const std::string kSertraline = "312941", kSertralineName = "sertraline 50 MG Oral Tablet";
const std::string kPhenelzine = "312347", kPhenelzineName = "phenelzine 15 MG Oral Tablet";

ServiceOptions Options(bool screen, bool block) {
  ServiceOptions o;
  o.patient_key = "screening-test-patient-key-0123";
  o.transform.checks.drugs = &clinical::StarterDrugIndex();
  if (screen) o.interactions = &clinical::OncHighPriority();
  o.block_contraindicated = block;
  return o;
}

TEST_CASE("Screening: prescriptions stored with screening off are screened against later") {
  auto store = store::NewMemoryStore(SystemClock());
  {
    auto off = PrescriptionService::Create(*store, Options(false, false));
    RXFLOW_REQUIRE_OK(off);
    IssueList issues;
    RXFLOW_REQUIRE_OK((*off)->Submit(Drug(kSertraline, kSertralineName), issues));
  }
  auto on = PrescriptionService::Create(*store, Options(true, false));
  RXFLOW_REQUIRE_OK(on);
  IssueList issues;
  auto s = (*on)->Submit(Drug(kPhenelzine, kPhenelzineName), issues);
  REQUIRE_MESSAGE(s.ok(), s.status().ToString());
  REQUIRE(s->interactions.size() == 1);
  CHECK(s->interactions[0].rule_id == "onc-04");
  // The same content again is a replay: the findings come back with it.
  IssueList again;
  auto r = (*on)->Submit(Drug(kPhenelzine, kPhenelzineName), again);
  RXFLOW_REQUIRE_OK(r);
  CHECK_FALSE(r->created);
  REQUIRE(r->interactions.size() == 1);
  CHECK(r->interactions[0].other_reference == s->interactions[0].other_reference);
  CHECK(r->interactions[0].ingredient_class == "mao-inhibitors");
  CHECK(r->interactions[0].other_class == "ssris-serotonergic");
  CHECK(r->interactions[0].severity == clinical::InteractionSeverity::kContraindicated);
  // That replay came from the service's memory; another service on the store finds it in the
  // store, with the same findings.
  auto fresh = PrescriptionService::Create(*store, Options(true, false));
  RXFLOW_REQUIRE_OK(fresh);
  IssueList stored;
  auto f = (*fresh)->Submit(Drug(kPhenelzine, kPhenelzineName), stored);
  RXFLOW_REQUIRE_OK(f);
  CHECK_FALSE(f->created);
  CHECK(f->id == s->id);
  REQUIRE(f->interactions.size() == 1);
  CHECK(f->interactions[0].rule_id == r->interactions[0].rule_id);
  CHECK(f->interactions[0].other_reference == r->interactions[0].other_reference);
  CHECK(f->interactions[0].severity == r->interactions[0].severity);
  // Another patient: no finding.
  IssueList other;
  auto o = (*on)->Submit(Drug(kPhenelzine, kPhenelzineName, "Otherfamily"), other);
  RXFLOW_REQUIRE_OK(o);
  CHECK(o->interactions.empty());
}

// Submits an interacting pair for one patient at once, `rounds` times (a new patient each
// round), the first of each pair through `a`, the second through `b`: block mode must store
// exactly one of each pair and refuse the other.
void RaceInteractingPairs(PrescriptionService& a, PrescriptionService& b, int rounds,
                          const std::string& prefix) {
  for (int round = 0; round < rounds; ++round) {
    const std::string family = prefix + std::string(1, static_cast<char>('a' + round));
    std::atomic<int> stored{0}, blocked{0};
    const std::string sertraline = Drug(kSertraline, kSertralineName, family);
    const std::string phenelzine = Drug(kPhenelzine, kPhenelzineName, family);
    auto submit = [&](PrescriptionService* service, const std::string* body) {
      IssueList issues;
      auto s = service->Submit(*body, issues);
      if (s.ok()) {
        ++stored;
      } else if (s.status().code() == absl::StatusCode::kFailedPrecondition) {
        ++blocked;
      }
    };
    std::thread ta(submit, &a, &sertraline);
    std::thread tb(submit, &b, &phenelzine);
    ta.join();
    tb.join();
    CAPTURE(round);
    CHECK(stored == 1);
    CHECK(blocked == 1);
  }
}

TEST_CASE("Screening: two prescriptions for one patient at once — block mode lets one through") {
  auto store = store::NewMemoryStore(SystemClock());
  auto service = PrescriptionService::Create(*store, Options(true, true));
  RXFLOW_REQUIRE_OK(service);
  RaceInteractingPairs(**service, **service, 8, "Patient");
}

TEST_CASE("Screening: block mode holds across services sharing a store (the memory store)") {
  // Two services are two processes to each other: neither sees the other's in-process lock.
  auto store = store::NewMemoryStore(SystemClock());
  auto a = PrescriptionService::Create(*store, Options(true, true));
  auto b = PrescriptionService::Create(*store, Options(true, true));
  RXFLOW_REQUIRE_OK(a);
  RXFLOW_REQUIRE_OK(b);
  RaceInteractingPairs(**a, **b, 8, "Shared");
}

#ifdef RXFLOW_TEST_HAVE_SQLITE
TEST_CASE("Screening: block mode holds across two handles on one SQLite file") {
  auto dir =
      std::filesystem::temp_directory_path() / ("rxflow-screen-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  store::SqliteOptions so;
  so.path = (dir / "rxflow.db").string();
  auto s1 = store::OpenSqliteStore(so);
  auto s2 = store::OpenSqliteStore(so);
  RXFLOW_REQUIRE_OK(s1);
  RXFLOW_REQUIRE_OK(s2);
  auto a = PrescriptionService::Create(**s1, Options(true, true));
  auto b = PrescriptionService::Create(**s2, Options(true, true));
  RXFLOW_REQUIRE_OK(a);
  RXFLOW_REQUIRE_OK(b);
  RaceInteractingPairs(**a, **b, 6, "Sqlite");
  a->reset();
  b->reset();
  s1->reset();
  s2->reset();
  std::filesystem::remove_all(dir);
}
#endif

#ifdef RXFLOW_TEST_HAVE_POSTGRES
// A fresh schema in the server named by RXFLOW_TEST_POSTGRES_URL (scripts/with-postgres.sh);
// without it this test fails, never skips.
TEST_CASE("Screening: block mode holds across two stores on one PostgresAdapter schema") {
  const char* url = std::getenv("RXFLOW_TEST_POSTGRES_URL");
  REQUIRE_MESSAGE(url,
                  "RXFLOW_TEST_POSTGRES_URL is not set (run through scripts/with-postgres.sh)");
  const std::string schema = "screening_" + std::to_string(::getpid());
  {
    pqxx::connection c(url);
    pqxx::nontransaction n(c);
    n.exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
  }
  store::PostgresOptions po;
  po.url = url;
  po.schema = schema;
  po.connections = 2;
  auto s1 = store::OpenPostgresStore(po);
  REQUIRE_MESSAGE(s1.ok(), s1.status().ToString());
  auto s2 = store::OpenPostgresStore(po);
  RXFLOW_REQUIRE_OK(s2);
  {
    auto a = PrescriptionService::Create(**s1, Options(true, true));
    auto b = PrescriptionService::Create(**s2, Options(true, true));
    RXFLOW_REQUIRE_OK(a);
    RXFLOW_REQUIRE_OK(b);
    RaceInteractingPairs(**a, **b, 6, "Postgres");
  }
  s1->reset();
  s2->reset();
  pqxx::connection c(url);
  pqxx::nontransaction n(c);
  n.exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
}
#endif

}  // namespace
}  // namespace rxflow
