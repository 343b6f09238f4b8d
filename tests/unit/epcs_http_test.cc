// SPDX-License-Identifier: Apache-2.0
// EPCS over real HTTP on loopback: the API's signing routes and their status codes (400, 401,
// 403, 404, 409, 415, 501), and the pharmacy simulator refusing a controlled-substance NewRx
// whose signature fails (unsigned, tampered, revoked), naming the check in its SCRIPT Error.
#ifdef RXFLOW_TEST_HAVE_HTTP
#include <set>

#include <doctest/doctest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "rxflow/auth/clients.h"
#include "rxflow/epcs/ceremony.h"
#include "rxflow/http/servers.h"
#include "rxflow/script/xml.h"

#include "epcs_pki.h"
#include "testing/files.h"
#include "testing/status.h"

using namespace rxflow;  // NOLINT
using nlohmann::json;
using testing::Pki;

namespace {

constexpr const char* kApiKey = "rxflow-test-api-key-7Qm2xV9pL4sT8wZ1cR6n";
const std::string kSecret = "12345678901234567890";
const std::string kApproverSecret = "abcdefghijklmnopqrstuvwx";
const std::string kPassword = "correct horse battery staple";

std::string Code(const std::string& secret) {
  auto c = epcs::TotpCode(secret, SystemClock().NowMicros() / 1'000'000);
  RXFLOW_REQUIRE_OK(c);
  return *c;
}

struct EpcsApi {
  std::unique_ptr<store::Store> store = store::NewMemoryStore(SystemClock());
  std::unique_ptr<PrescriptionService> service;
  std::unique_ptr<epcs::AuditTrail> audit;
  Pki pki;
  std::shared_ptr<epcs::Signer> key{epcs::NewInMemorySigner()};
  std::unique_ptr<epcs::Ceremony> ceremony;
  std::unique_ptr<http::ApiServer> server;
  std::unique_ptr<httplib::Client> client;

  explicit EpcsApi(bool with_ceremony = true) {
    ServiceOptions o;
    o.patient_key = "test-patient-key-0123456789abcdef";
    service = std::move(*PrescriptionService::Create(*store, o));
    audit = std::make_unique<epcs::AuditTrail>(*store, SystemClock());
    epcs::CeremonyOptions co;
    co.signer_for = [this](const epcs::PractitionerView&,
                           const std::string&) -> StatusOr<std::shared_ptr<epcs::Signer>> {
      return key;
    };
    ceremony = std::make_unique<epcs::Ceremony>(*service, *store, *audit, SystemClock(), co);
    auto cert = pki.Prescriber(*key->PublicKeyDer(), "Rebecca Lindqvist", "BL4721052");
    for (auto [id, last, dea, secret] :
         {std::tuple{"dr-lindqvist", "Lindqvist", "BL4721052", kSecret},
          std::tuple{"dr-patel", "Patel", "AP5836727", kApproverSecret}}) {
      epcs::PractitionerEnrollment p;
      p.id = id;
      p.last_name = last;
      p.registrations.push_back({dea, {"2"}, "OH", "2099-12-31"});
      p.identity_proofed_by = "Example CSP";
      p.credential_issuer = "Example CA";
      p.password = kPassword;
      p.totp_secret = secret;
      if (std::string(id) == "dr-lindqvist") {
        p.certificate_der = Pki::Der(cert.get());
        p.key_label = "k";
      }
      RXFLOW_REQUIRE_OK(ceremony->Enroll(p, "admin"));
    }
    auto proposal = ceremony->Propose("dr-lindqvist", epcs::Permission::kSign, true, "admin");
    RXFLOW_REQUIRE_OK(proposal);
    REQUIRE(
        ceremony->Approve("dr-lindqvist", *proposal, "dr-patel", {kPassword, Code(kApproverSecret)})
            .ok());
    http::ApiOptions ao;
    ao.port = 0;
    ao.api_keys = {kApiKey};
    // A prescriber of another tenant: the practitioners above are the default tenant's.
    auto others = std::make_shared<auth::ClientRegistry>();
    auth::Client other;
    other.id = "other-ehr";
    other.tenant = "other";
    RXFLOW_REQUIRE_OK(others->Add(other));
    other_key = others->AddKey("other-ehr", SystemClock().NowMicros())->key;
    ao.clients = others;
    ao.threads = 2;
    if (with_ceremony) ao.ceremony = ceremony.get();
    server = std::make_unique<http::ApiServer>(*service, nullptr, nullptr, nullptr, ao);
    RXFLOW_REQUIRE_OK(server->Start());
    client = std::make_unique<httplib::Client>("127.0.0.1", server->port());
    client->set_read_timeout(10, 0);
  }
  httplib::Headers Auth() const { return {{"X-API-Key", kApiKey}}; }
  httplib::Result Post(const std::string& path, const std::string& body,
                       const std::string& type = "application/json") {
    return client->Post(path, Auth(), body, type);
  }
  std::string other_key;  // a prescriber of the tenant "other"
  httplib::Result Get(const std::string& path) { return client->Get(path, Auth()); }
  std::string Submit(const std::string& fixture) {
    auto r = Post("/api/v1/prescriptions", rxflow::testing::ReadFixture(fixture),
                  "application/fhir+json");
    REQUIRE(r);
    REQUIRE(r->status == 201);
    return json::parse(r->body)["id"];
  }
};

}  // namespace

TEST_SUITE("EPCS HTTP") {
  TEST_CASE("the signing routes: bundle, ready and sign, and each refusal's status") {
    EpcsApi api;
    std::string id = api.Submit("fhir/schedule2_oxycodone.json");
    std::string base = "/api/v1/prescriptions/" + id;

    CHECK(api.Get(base + "/signing-bundle")->status == 400);  // no practitioner
    CHECK(api.Get("/api/v1/prescriptions/nope/signing-bundle?practitioner=dr-lindqvist")->status ==
          404);
    std::string plain = api.Submit("fhir/medication_request_lisinopril.json");
    CHECK(api.Get("/api/v1/prescriptions/" + plain + "/signing-bundle?practitioner=dr-lindqvist")
              ->status == 409);
    auto bundle = api.Get(base + "/signing-bundle?practitioner=dr-lindqvist");
    REQUIRE(bundle->status == 200);
    json b = json::parse(bundle->body);
    CHECK(b["fields"].size() == 16);
    CHECK(b["fields"][0]["name"] == "IssueDate");
    CHECK(b["dea_numbers"] == json::array({"BL4721052"}));
    CHECK(b["pdmp"].is_null());  // no PDMP query recorded yet
    std::string sha = b["sha256"];
    clinical::pdmp::Simulator pdmp;
    RXFLOW_REQUIRE_OK(api.service->QueryPdmp(id, pdmp));
    json with_query =
        json::parse(api.Get(base + "/signing-bundle?practitioner=dr-lindqvist")->body);
    CHECK(with_query["pdmp"]["pdmp"] == "pdmp simulator");
    CHECK(with_query["pdmp"]["outcome"] == "not-found");
    CHECK(with_query["pdmp"]["dispensings"] == 0);
    CHECK(with_query["sha256"] == sha);

    // Refused input: 415, 400 naming the member, 409 for a stale bundle, 403 without right.
    CHECK(api.Post(base + "/ready", "{}", "text/plain")->status == 415);
    auto missing = api.Post(base + "/ready", R"({"practitioner":"dr-lindqvist"})");
    CHECK(missing->status == 400);
    CHECK(missing->body.find("$.dea_number") != std::string::npos);
    CHECK(api.Post(base + "/ready", json{{"practitioner", "dr-lindqvist"},
                                         {"dea_number", "BL4721052"},
                                         {"bundle_sha256", "00"}}
                                        .dump())
              ->status == 409);
    CHECK(api.Post(base + "/ready", json{{"practitioner", "dr-patel"},
                                         {"dea_number", "AP5836727"},
                                         {"bundle_sha256", sha}}
                                        .dump())
              ->status == 403);
    auto ready = api.Post(
        base + "/ready",
        json{{"practitioner", "dr-lindqvist"}, {"dea_number", "BL4721052"}, {"bundle_sha256", sha}}
            .dump());
    REQUIRE(ready->status == 200);

    json sign = {{"practitioner", "dr-lindqvist"},
                 {"bundle_sha256", sha},
                 {"password", kPassword},
                 {"otp", testing::WrongTotpCode(kSecret, SystemClock().NowMicros() / 1'000'000)}};
    auto wrong = api.Post(base + "/sign", sign.dump());
    CHECK(wrong->status == 401);
    CHECK(wrong->body.find("correct horse") == std::string::npos);  // never echoed
    sign["otp"] = Code(kSecret);
    auto signed_response = api.Post(base + "/sign", sign.dump());
    REQUIRE(signed_response->status == 200);
    CHECK(json::parse(signed_response->body)["status"] == "Queued");
    // Signed once: a second sign is a conflict, not a server error.
    CHECK(api.Post(base + "/sign", sign.dump())->status == 409);
  }

  TEST_CASE("the EPCS streams are not prescriptions: never readable or commandable over HTTP") {
    EpcsApi api;
    for (std::string id : {"epcs-practitioner-dr-lindqvist", "epcs-audit", "epcs-dea-BL4721052"}) {
      CAPTURE(id);
      auto events = api.Get("/api/v1/prescriptions/" + id + "/events");
      CHECK(events->status == 404);
      CHECK(events->body.find("totp") == std::string::npos);
      CHECK(api.Get("/api/v1/prescriptions/" + id)->status == 404);
      CHECK(api.Post("/api/v1/prescriptions/" + id + "/route", "")->status == 404);
      CHECK(api.Post("/api/v1/prescriptions/" + id + "/cancel", "")->status == 404);
    }
  }

  TEST_CASE("another tenant can neither see nor act as a practitioner of this one") {
    EpcsApi api;
    httplib::Headers other{{"X-API-Key", api.other_key}};
    auto mine = api.client->Post("/api/v1/prescriptions", other,
                                 rxflow::testing::ReadFixture("fhir/schedule2_oxycodone.json"),
                                 "application/fhir+json");
    REQUIRE(mine->status == 201);
    std::string base = "/api/v1/prescriptions/" + json::parse(mine->body)["id"].get<std::string>();
    // dr-lindqvist is the default tenant's: unknown to "other", as a made-up id is.
    auto probe = api.client->Get(base + "/signing-bundle?practitioner=dr-lindqvist", other);
    CHECK(probe->status == 404);
    CHECK(probe->body.find("BL4721052") == std::string::npos);
    CHECK(api.client->Get(base + "/signing-bundle?practitioner=nobody", other)->status == 404);
    for (const char* action : {"/ready", "/sign"}) {
      auto r = api.client->Post(base + action, other,
                                json{{"practitioner", "dr-lindqvist"},
                                     {"dea_number", "BL4721052"},
                                     {"bundle_sha256", std::string(64, 'a')},
                                     {"password", "wrong"},
                                     {"otp", "000000"}}
                                    .dump(),
                                "application/json");
      CHECK(r->status == 404);
    }
    // No failed factor was counted against the practitioner.
    CHECK_FALSE(api.ceremony->Practitioner("dr-lindqvist")->locked_out);
    // And another tenant's prescription is unknown to this tenant's EPCS routes.
    CHECK(api.Get(base + "/signing-bundle?practitioner=dr-lindqvist")->status == 404);
  }

  TEST_CASE("without a ceremony the signing routes answer 501") {
    EpcsApi api(/*with_ceremony=*/false);
    std::string id = api.Submit("fhir/schedule2_oxycodone.json");
    CHECK(api.Get("/api/v1/prescriptions/" + id + "/signing-bundle?practitioner=x")->status == 501);
    CHECK(api.Post("/api/v1/prescriptions/" + id + "/sign", "{}")->status == 501);
  }

  TEST_CASE("the simulator verifies controlled-substance NewRx and names a failed check") {
    Pki pki;
    auto signer = epcs::NewInMemorySigner();
    auto cert = pki.Prescriber(*signer->PublicKeyDer(), "Rebecca Lindqvist", "BL4721052");
    auto revoked = pki.Prescriber(*signer->PublicKeyDer(), "Rebecca Lindqvist", "BL4721052");
    auto trust = std::make_shared<epcs::TrustStore>();
    RXFLOW_REQUIRE_OK(trust->AddAnchor(Pki::Pem(pki.root.get())));
    RXFLOW_REQUIRE_OK(trust->AddIntermediate(Pki::Der(pki.intermediate.get())));
    RXFLOW_REQUIRE_OK(trust->AddCrl(pki.Crl({Pki::Serial(revoked.get())})));
    RXFLOW_REQUIRE_OK(trust->AddCrl(pki.Crl({}, -3600, 7 * Pki::kDay, true)));
    http::SimulatorOptions so;
    so.epcs_trust = trust;
    http::PharmacySimulator sim(so);
    RXFLOW_REQUIRE_OK(sim.Start());
    httplib::Client client("127.0.0.1", sim.port());

    auto newrx = [&](X509* with, int n) {
      IssueList issues;
      auto m = script::ReadXml(
          rxflow::testing::ReadFixture("golden/schedule2_oxycodone.2017071.xml"), issues);
      RXFLOW_REQUIRE_OK(m);
      m->header.message_id = "epcs-sim-" + std::to_string(n);
      if (with != nullptr) RXFLOW_REQUIRE_OK(epcs::SignNewRx(*m, *signer, Pki::Der(with)));
      script::WriteOptions wo;
      wo.profile = &script::BuiltinProfile(script::Version::k2017071);
      auto xml = script::WriteXml(*m, issues, wo);
      RXFLOW_REQUIRE_OK(xml);
      return *xml;
    };
    auto answer = [&](const std::string& xml) {
      auto r = client.Post("/ncpdp", xml, "application/xml");
      REQUIRE(r);
      IssueList issues;
      auto m = script::ReadXml(r->body, issues);
      RXFLOW_REQUIRE_OK(m);
      return *m;
    };

    script::Message ok = answer(newrx(cert.get(), 1));
    CHECK(std::holds_alternative<script::Status>(ok.body));

    std::string tampered = newrx(cert.get(), 2);
    size_t at = tampered.find("<Value>20</Value>");
    REQUIRE(at != std::string::npos);
    tampered.replace(at, 17, "<Value>90</Value>");
    // An intermediary that removes DEASchedule does not remove the check: a signature
    // present is verified.
    std::string unscheduled = newrx(cert.get(), 5);
    size_t from = unscheduled.find("<DEASchedule>");
    size_t to = unscheduled.find("</DEASchedule>");
    REQUIRE(from != std::string::npos);
    unscheduled.erase(from, to + 14 - from);
    for (auto [xml, check] :
         {std::pair{unscheduled, "digest_mismatch"}, std::pair{tampered, "digest_mismatch"},
          std::pair{newrx(nullptr, 3), "unsigned"},
          std::pair{newrx(revoked.get(), 4), "revoked"}}) {
      CAPTURE(check);
      script::Message m = answer(xml);
      REQUIRE(std::holds_alternative<script::Error>(m.body));
      const auto& e = std::get<script::Error>(m.body);
      CHECK(e.code == "900");
      CHECK(e.description.rfind(std::string("digital signature ") + check, 0) == 0);
    }
    http::SimulatorStats stats = sim.stats();
    CHECK(stats.signatures_verified == 1);
    CHECK(stats.signatures_refused == 4);
    CHECK(stats.unique == 1);  // refused ones are not accepted
    sim.Stop();
  }
}
#endif
