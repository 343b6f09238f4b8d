// Interaction screening in PrescriptionService: prescriptions stored before screening was on
// count; a replay reports the findings again; two prescriptions for one patient submitted at
// once are screened one after the other (block mode lets exactly one through).
#include <atomic>
#include <thread>

#include <doctest/doctest.h>

#include "rxflow/clinical/interactions.h"
#include "rxflow/service.h"
#include "rxflow/store/event_store.h"

#include "testing/files.h"

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
    REQUIRE(off.ok());
    IssueList issues;
    REQUIRE((*off)->Submit(Drug(kSertraline, kSertralineName), issues).ok());
  }
  auto on = PrescriptionService::Create(*store, Options(true, false));
  REQUIRE(on.ok());
  IssueList issues;
  auto s = (*on)->Submit(Drug(kPhenelzine, kPhenelzineName), issues);
  REQUIRE_MESSAGE(s.ok(), s.status().ToString());
  REQUIRE(s->interactions.size() == 1);
  CHECK(s->interactions[0].rule_id == "onc-04");
  // The same content again is a replay: the findings come back with it.
  IssueList again;
  auto r = (*on)->Submit(Drug(kPhenelzine, kPhenelzineName), again);
  REQUIRE(r.ok());
  CHECK_FALSE(r->created);
  REQUIRE(r->interactions.size() == 1);
  CHECK(r->interactions[0].other_reference == s->interactions[0].other_reference);
  CHECK(r->interactions[0].ingredient_class == "mao-inhibitors");
  CHECK(r->interactions[0].other_class == "ssris-serotonergic");
  CHECK(r->interactions[0].severity == clinical::InteractionSeverity::kContraindicated);
  // Another patient: no finding.
  IssueList other;
  auto o = (*on)->Submit(Drug(kPhenelzine, kPhenelzineName, "Otherfamily"), other);
  REQUIRE(o.ok());
  CHECK(o->interactions.empty());
}

TEST_CASE("Screening: two prescriptions for one patient at once — block mode lets one through") {
  auto store = store::NewMemoryStore(SystemClock());
  auto service = PrescriptionService::Create(*store, Options(true, true));
  REQUIRE(service.ok());
  for (int round = 0; round < 8; ++round) {
    const std::string family = "Patient" + std::string(1, static_cast<char>('a' + round));
    std::atomic<int> stored{0}, blocked{0};
    const std::string sertraline = Drug(kSertraline, kSertralineName, family);
    const std::string phenelzine = Drug(kPhenelzine, kPhenelzineName, family);
    auto submit = [&](const std::string* body) {
      IssueList issues;
      auto s = (*service)->Submit(*body, issues);
      if (s.ok()) {
        ++stored;
      } else if (s.status().code() == absl::StatusCode::kFailedPrecondition) {
        ++blocked;
      }
    };
    std::thread a(submit, &sertraline);
    std::thread b(submit, &phenelzine);
    a.join();
    b.join();
    CAPTURE(round);
    CHECK(stored == 1);
    CHECK(blocked == 1);
  }
}

}  // namespace
}  // namespace rxflow
