// SPDX-License-Identifier: Apache-2.0
// The ingestion API over real HTTP on loopback: every status code the API promises, and
// that a refused request stores nothing.
#ifdef RXFLOW_TEST_HAVE_HTTP
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include <doctest/doctest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "rxflow/http/servers.h"
#include "rxflow/obs/metrics.h"
#include "rxflow/script/xml.h"
#include "rxflow/service.h"

#include "testing/concurrency.h"
#include "testing/files.h"
#include "testing/status.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace rxflow;
using nlohmann::json;

namespace {

constexpr const char* kApiKey = "rxflow-test-api-key-7Qm2xV9pL4sT8wZ1cR6n";
constexpr const char* kPharmacyKey = "rxflow-test-pharmacy-Hs5Kd9Lq2Wm7Xz3Cv8Bn";  // 4712345
constexpr const char* kMetricsKey = "rxflow-test-metrics-Pq7Rt3Yu9Io1As5Df2Gh";

// Holds the next asynchronous append until the test lets it go (then appends it as the store
// would): a submission whose commit answers after its client has gone.
struct HeldAppend : store::StoreWrapper {
  using StoreWrapper::StoreWrapper;
  std::mutex mu;
  bool hold_next = true;
  std::optional<std::pair<store::AppendRequest, AppendDone>> held;
  void AppendAsync(store::AppendRequest r, AppendDone done) override {
    std::unique_lock lock(mu);
    if (!std::exchange(hold_next, false)) {
      lock.unlock();
      return StoreWrapper::AppendAsync(std::move(r), std::move(done));
    }
    held.emplace(std::move(r), std::move(done));
  }
  bool Holding() {
    std::lock_guard lock(mu);
    return held.has_value();
  }
  void Release() {
    std::optional<std::pair<store::AppendRequest, AppendDone>> go;
    {
      std::lock_guard lock(mu);
      go.swap(held);
    }
    if (go) target_.AppendAsync(std::move(go->first), std::move(go->second));
  }
};

struct Api {
  // Declared first, destroyed last: the server's access log writes here until it stops.
  std::vector<std::string> log;
  std::mutex log_mu;
  std::unique_ptr<store::Store> store = store::NewMemoryStore(SystemClock());
  std::unique_ptr<HeldAppend> held;  // with hold_first_append: what the service appends to
  std::unique_ptr<PrescriptionService> service;
  std::unique_ptr<runtime::PharmacyInbox> inbox;
  obs::Registry metrics;
  std::unique_ptr<http::ApiServer> server;
  std::unique_ptr<httplib::Client> client;

  explicit Api(bool hold_first_append = false, bool transliterate = false) {
    ServiceOptions o;
    o.patient_key = "test-patient-key-0123456789abcdef";
    o.transform.newrx.transliterate = transliterate;
    if (hold_first_append) held = std::make_unique<HeldAppend>(*store);
    service = std::move(*PrescriptionService::Create(held ? *held : *store, o));
    inbox = std::make_unique<runtime::PharmacyInbox>(*service);
    http::ApiOptions ao;
    ao.port = 0;
    ao.api_keys = {kApiKey, "second-test-key-Zp4Wq8Rt2Yx6Vb0Nm3Kc"};
    ao.pharmacy_keys = {{"4712345", kPharmacyKey}};  // the lisinopril fixture's pharmacy
    ao.metrics_keys = {kMetricsKey};
    ao.max_body_bytes = 64 * 1024;
    ao.threads = 4;
    ao.access_log = [this](const std::string& line) {
      std::lock_guard lock(log_mu);
      log.push_back(line);
    };
    server = std::make_unique<http::ApiServer>(*service, inbox.get(), &metrics, nullptr, ao);
    RXFLOW_REQUIRE_OK(server->Start());
    client = std::make_unique<httplib::Client>("127.0.0.1", server->port());
    client->set_read_timeout(10, 0);
  }
  httplib::Headers Auth() const { return {{"X-API-Key", kApiKey}}; }
  httplib::Headers PharmacyAuth() const { return {{"X-API-Key", kPharmacyKey}}; }
  httplib::Result Inbound(const std::string& body, const std::string& type = "application/xml") {
    return client->Post("/api/v1/pharmacy/inbound", PharmacyAuth(), body, type);
  }
  httplib::Result Post(const std::string& path, const std::string& body,
                       const std::string& type = "application/fhir+json") {
    return client->Post(path, Auth(), body, type);
  }
  size_t Events() { return store->ReadAll(0, 100000)->size(); }
  // The lisinopril prescription submitted, routed, sent and acknowledged (Status 000), as it is
  // when its pharmacy answers later; its id.
  std::string SubmittedAndSent();
};

std::string Lisinopril() { return testing::ReadFixture("fhir/medication_request_lisinopril.json"); }

std::string Api::SubmittedAndSent() {
  auto posted = Post("/api/v1/prescriptions", Lisinopril());
  REQUIRE(posted);
  REQUIRE(posted->status == 201);
  std::string id = json::parse(posted->body)["id"];
  std::vector<domain::Command> sent{domain::Route{}, domain::MarkSent{},
                                    domain::RecordStatus{"000", ""}};
  RXFLOW_REQUIRE_OK(service->ExecuteOnce("routing", "m1", id, sent));
  return id;
}

}  // namespace

TEST_SUITE("API") {
  TEST_CASE("a name SCRIPT cannot carry: 400 at its path, or sent transliterated when so set") {
    json request = json::parse(Lisinopril());
    request["patient"]["name"][0]["family"] = "Muñoz-O’Brien";
    {
      Api api;
      auto r = api.Post("/api/v1/prescriptions", request.dump());
      REQUIRE(r);
      CHECK(r->status == 400);
      CHECK(r->body.find("patient.name[0].family") != std::string::npos);
      CHECK(api.Events() == 0);
    }
    Api api(/*hold_first_append=*/false, /*transliterate=*/true);
    auto r = api.Post("/api/v1/prescriptions", request.dump());
    REQUIRE(r);
    REQUIRE(r->status == 201);
    json body = json::parse(r->body);
    bool warned = false;
    for (const json& w : body["warnings"]) {
      warned |= w["path"] == "patient.name[0].family" &&
                w["message"].get<std::string>().find("transliterated") != std::string::npos;
    }
    CHECK(warned);
    auto sent = api.service->OutboundXml(body["id"].get<std::string>(), "send");
    RXFLOW_REQUIRE_OK(sent.status());
    CHECK(sent->find("<LastName>Munoz-O&apos;Brien</LastName>") != std::string::npos);
  }
  TEST_CASE("a warning carries the sender's text escaped: the answer stays JSON, the text intact") {
    Api api;
    json request = json::parse(Lisinopril());
    // A valid URI the sender chose, with the characters a JSON writer must escape or keep.
    const std::string url = R"(http://evil.example/x?a=<b>&c='d'\"},{)";
    request["medication_request"]["extension"] = {{{"url", url}, {"valueString", "x"}}};
    auto r = api.Post("/api/v1/prescriptions", request.dump());
    REQUIRE(r);
    REQUIRE(r->status == 201);
    json body = json::parse(r->body);  // throws (fails) if the answer is not JSON
    bool named = false;
    for (const json& w : body["warnings"]) {
      named |= w["path"] == "medication_request.extension[0]" &&
               w["message"].get<std::string>().find(url) != std::string::npos;
    }
    CHECK(named);
  }

  TEST_CASE("POST creates (201), a replay is 200 with the same id, GET and events read it back") {
    Api api;
    auto r = api.Post("/api/v1/prescriptions", Lisinopril());
    REQUIRE(r);
    CHECK(r->status == 201);
    json body = json::parse(r->body);
    for (const char* k : {"id", "status", "idempotency_key", "is_controlled", "created_at"}) {
      CHECK(body.contains(k));
    }
    // What FHIR -> SCRIPT does not send is named, each warning an object of a path and a
    // message (written in place into the answer: the answer must still be this JSON).
    REQUIRE(body["warnings"].is_array());
    CHECK(body["warnings"].size() >= 3);
    for (const json& w : body["warnings"]) {
      CHECK(w.size() == 2);
      CHECK(!w.value("path", std::string()).empty());
      CHECK(!w.value("message", std::string()).empty());
    }
    CHECK(r->get_header_value("Location") ==
          "/api/v1/prescriptions/" + body["id"].get<std::string>());
    auto again = api.Post("/api/v1/prescriptions", Lisinopril());
    CHECK(again->status == 200);
    CHECK(json::parse(again->body)["id"] == body["id"]);
    std::string id = body["id"];
    auto got = api.client->Get(("/api/v1/prescriptions/" + id).c_str(), api.Auth());
    CHECK(got->status == 200);
    CHECK(json::parse(got->body)["status"] == "Transformed");
    auto events = api.client->Get(("/api/v1/prescriptions/" + id + "/events").c_str(), api.Auth());
    CHECK(events->status == 200);
    auto list = json::parse(events->body)["events"];
    REQUIRE(list.size() == 2);
    CHECK(list[0]["type"] == "PrescriptionReceived");
    // An Idempotency-Key header makes the caller's key the identity.
    httplib::Headers h = api.Auth();
    h.emplace("Idempotency-Key", "order-42");
    auto keyed = api.client->Post("/api/v1/prescriptions", h, Lisinopril(), "application/json");
    CHECK(keyed->status == 201);
    // (The key is the client's own: scoped by its client id.)
    std::string scoped = json::parse(keyed->body)["idempotency_key"];
    CHECK(scoped.starts_with("client:env-"));
    CHECK(scoped.ends_with("/order-42"));
  }

  TEST_CASE(
      "route and cancel: 202 with the new state, 409 when the state forbids it, 404 unknown") {
    Api api;
    std::string id = json::parse(api.Post("/api/v1/prescriptions", Lisinopril())->body)["id"];
    auto routed = api.Post("/api/v1/prescriptions/" + id + "/route", "", "application/json");
    CHECK(routed->status == 202);
    CHECK(json::parse(routed->body)["status"] == "Queued");
    CHECK(api.Post("/api/v1/prescriptions/" + id + "/route", "", "application/json")->status ==
          409);
    auto cancelled = api.Post("/api/v1/prescriptions/" + id + "/cancel",
                              R"({"reason": "patient request"})", "application/json");
    CHECK(cancelled->status == 202);
    CHECK(json::parse(cancelled->body)["status"] == "CancelRequested");
    CHECK(
        api.Post("/api/v1/prescriptions/" + id + "/cancel", R"({"reason": 5})", "application/json")
            ->status == 400);
    CHECK(api.Post("/api/v1/prescriptions/nope/route", "", "application/json")->status == 404);
  }

  TEST_CASE("every bad-request class gets its status and stores nothing") {
    Api api;
    size_t before = api.Events();
    // 401: no key, a wrong key, on every /api route.
    for (const char* path :
         {"/api/v1/prescriptions", "/api/v1/prescriptions/x", "/api/v1/prescriptions/x/events"}) {
      CHECK(api.client->Get(path)->status == 401);
      CHECK(api.client->Get(path, httplib::Headers{{"X-API-Key", "wrong"}})->status == 401);
    }
    auto noauth = api.client->Post("/api/v1/prescriptions", Lisinopril(), "application/fhir+json");
    CHECK(noauth->status == 401);
    CHECK(json::parse(noauth->body)["resourceType"] == "OperationOutcome");
    // 400: invalid FHIR, with the JSON path of each issue.
    std::string bad = Lisinopril();
    auto pos = bad.find("\"birthDate\"");
    REQUIRE(pos != std::string::npos);
    bad.replace(bad.find('"', pos + 11), 12, "\"1970-13-45\"");
    auto r400 = api.Post("/api/v1/prescriptions", bad);
    CHECK(r400->status == 400);
    json oo = json::parse(r400->body);
    CHECK(oo["resourceType"] == "OperationOutcome");
    CHECK(r400->body.find("birthDate") != std::string::npos);
    CHECK(api.Post("/api/v1/prescriptions", "{not json")->status == 400);
    // 422: valid FHIR breaking a prescribing rule (C-II with refills).
    std::string c2 = testing::ReadFixture("fhir/schedule2_oxycodone.json");
    auto rp = c2.find("\"numberOfRepeatsAllowed\"");
    if (rp == std::string::npos) {
      auto disp = c2.find("\"dispenseRequest\": {");
      REQUIRE(disp != std::string::npos);
      c2.insert(disp + 20, "\"numberOfRepeatsAllowed\": 2, ");
    } else {
      c2.replace(c2.find(':', rp) + 1, 2, " 3");
    }
    auto r422 = api.Post("/api/v1/prescriptions", c2);
    CHECK(r422->status == 422);
    CHECK(json::parse(r422->body)["resourceType"] == "OperationOutcome");
    // 413: over the body limit.
    CHECK(api.Post("/api/v1/prescriptions", std::string(70 * 1024, ' '))->status == 413);
    // 415: wrong content type.
    CHECK(api.Post("/api/v1/prescriptions", Lisinopril(), "text/plain")->status == 415);
    // 404: unknown id and unknown route.
    CHECK(api.client->Get("/api/v1/prescriptions/unknown", api.Auth())->status == 404);
    CHECK(api.client->Get("/api/v1/nothing", api.Auth())->status == 404);
    CHECK(api.Events() == before);
  }

  TEST_CASE("pharmacy inbound: 200 once, a duplicate says so, 415, 400 with XML paths, 404") {
    Api api;
    const std::string id = api.SubmittedAndSent();
    const std::string message_id = api.service->Get(id)->message_id;
    std::string fill = testing::RxFillFrom("4712345", message_id);
    const std::string path = "/api/v1/pharmacy/inbound";
    // Pharmacies are bound to their messages: the prescriber's key, another pharmacy's From.
    size_t before = api.Events();
    CHECK(api.Post(path, fill, "application/xml")->status == 403);
    CHECK(api.Inbound(testing::RxFillFrom("9999999", message_id))->status == 403);
    CHECK(api.Events() == before);
    auto r = api.Inbound(fill);
    REQUIRE(r->status == 200);
    CHECK(json::parse(r->body)["prescription_id"] == id);
    CHECK(json::parse(r->body)["duplicate"] == false);
    CHECK(json::parse(api.Inbound(fill)->body)["duplicate"] == true);
    CHECK(api.service->Get(id)->state ==
          domain::State::kDispensed);  // a partial fill, state Dispensed
    CHECK(api.service->History(id)->back().actor.starts_with("pharmacy:env-"));
    before = api.Events();
    CHECK(api.Inbound(fill, "text/plain")->status == 415);
    auto bad = api.Inbound("<Message><Header/></Message>");
    CHECK(bad->status == 400);
    CHECK(json::parse(bad->body)["resourceType"] == "OperationOutcome");
    CHECK(bad->body.find("/Message") != std::string::npos);  // an XML path
    CHECK(api.Inbound(testing::RxFillFrom("4712345", std::string(32, 'e')))->status == 404);
    CHECK(api.client->Post(path.c_str(), fill, "application/xml")->status == 401);  // no key
    CHECK(api.Events() == before);
  }

  TEST_CASE("pharmacy inbound reads an RxFill a Windows sender wrote in UTF-16") {
    Api api;
    const std::string id = api.SubmittedAndSent();
    std::string fill = testing::RxFillFrom("4712345", api.service->Get(id)->message_id);
    fill.replace(fill.find("encoding=\"UTF-8\""), 16, "encoding=\"utf-16\"");
    // Cut short, it is malformed: 400, named, nothing stored.
    const std::string utf16 = testing::Utf16(fill, false, true);
    size_t before = api.Events();
    auto cut = api.Inbound(utf16.substr(0, utf16.size() - 1));
    CHECK(cut->status == 400);
    CHECK(cut->body.find("invalid UTF-16LE: an odd number of bytes") != std::string::npos);
    CHECK(api.Events() == before);
    auto r = api.Inbound(utf16);
    INFO(r->body);
    REQUIRE(r->status == 200);
    CHECK(json::parse(r->body)["prescription_id"] == id);
    CHECK(api.service->Get(id)->state == domain::State::kDispensed);
  }

  TEST_CASE("pharmacy inbound reads a Latin-1 RxFill by its Content-Type charset (RFC 7303)") {
    Api api;
    const std::string id = api.SubmittedAndSent();
    std::string fill = testing::RxFillFrom("4712345", api.service->Get(id)->message_id);
    // No declared encoding, and a comment in Latin-1 (é = 0xE9): without the charset the
    // body is not UTF-8.
    fill = fill.substr(fill.find("?>") + 2);
    fill.insert(fill.find("<Header>"), "<!-- envoy\xE9 -->");
    size_t before = api.Events();
    auto plain = api.Inbound(fill);
    CHECK(plain->status == 400);
    CHECK(api.Events() == before);
    // An attacker's charset: 5,000 characters in a quote never closed. Refused by name, the
    // name shown bounded, nothing stored.
    auto hostile = api.Inbound(fill, "application/xml; charset=\"" + std::string(5000, 'A'));
    CHECK(hostile->status == 400);
    CHECK(hostile->body.find("is not supported") != std::string::npos);
    CHECK(hostile->body.find(std::string(41, 'A')) == std::string::npos);
    CHECK(api.Events() == before);
    // The charset parameter, as HTTP writes it: another parameter first, the value quoted.
    auto r = api.Inbound(fill, R"(application/xml; q=1; CharSet="ISO-8859-1")");
    INFO(r->body);
    REQUIRE(r->status == 200);
    CHECK(json::parse(r->body)["prescription_id"] == id);
    CHECK(api.service->Get(id)->state == domain::State::kDispensed);
  }

  TEST_CASE("pharmacy inbound answers a SCRIPT sender in SCRIPT: an Error it can act on") {
    Api api;
    const std::string id = api.SubmittedAndSent();
    const std::string path = "/api/v1/pharmacy/inbound";
    httplib::Headers xml_client = api.PharmacyAuth();
    xml_client.emplace("Accept", "application/xml");
    auto post = [&](const std::string& body) {
      return api.client->Post(path.c_str(), xml_client, body, "application/xml");
    };
    std::string fill = testing::RxFillFrom("4712345", api.service->Get(id)->message_id);
    size_t before = api.Events();

    // A SCRIPT transaction RxFlow does not handle: 422 and Error 900/4040, addressed back.
    std::string other = fill;
    size_t open = other.find("<RxFill>");
    size_t close = other.find("</RxFill>");
    REQUIRE(open != std::string::npos);
    REQUIRE(close != std::string::npos);
    other.replace(open, close + 9 - open, "<GetMessage/>");
    auto r = post(other);
    REQUIRE(r);
    CHECK(r->status == 422);
    CHECK(r->get_header_value("Content-Type") == "application/xml");
    IssueList issues;
    auto answer = script::ReadXml(r->body, issues);
    RXFLOW_REQUIRE_OK(answer);
    const auto* error = std::get_if<script::Error>(&answer->body);
    REQUIRE(error != nullptr);
    CHECK(error->code == "900");
    CHECK(error->description_code == std::vector<std::string>{"4040"});
    CHECK(error->description.find("transaction GetMessage is not supported by RxFlow") !=
          std::string::npos);
    auto inbound = script::ReadXml(fill, issues);
    RXFLOW_REQUIRE_OK(inbound);
    CHECK(answer->header.to == inbound->header.from);
    CHECK(answer->header.from == inbound->header.to);
    CHECK(answer->header.relates_to_message_id == inbound->header.message_id);

    // Invalid content: 400 and Error 900/3000 naming the XML path; nothing recorded.
    std::string invalid = fill;
    size_t ft = invalid.find("<FillStatus>");
    REQUIRE(ft != std::string::npos);
    invalid.insert(ft, "<Bogus>1</Bogus>");
    r = post(invalid);
    CHECK(r->status == 400);
    answer = script::ReadXml(r->body, issues);
    RXFLOW_REQUIRE_OK(answer);
    error = std::get_if<script::Error>(&answer->body);
    REQUIRE(error != nullptr);
    CHECK(error->description_code == std::vector<std::string>{"3000"});
    CHECK(error->description.find("/Message/Body/RxFill/Bogus") != std::string::npos);

    // Without Accept: application/xml the answer stays a FHIR OperationOutcome.
    auto plain = api.Inbound(other);
    CHECK(plain->status == 422);
    CHECK(json::parse(plain->body)["resourceType"] == "OperationOutcome");
    CHECK(api.Events() == before);
  }

  // The server counts a request and writes its access-log line after the response has gone
  // out, so the test waits (with a deadline) for the counter and the line instead of reading
  // them right after the response.
  TEST_CASE("health and readiness need no key, metrics a metrics key, the log holds no PHI") {
    Api api;
    CHECK(api.client->Get("/healthz")->status == 200);
    CHECK(api.client->Get("/readyz")->status == 200);
    CHECK(api.client->Get("/metrics")->status == 401);
    CHECK(api.client->Get("/metrics", api.Auth())->status == 403);  // a prescriber
    httplib::Headers bearer{{"Authorization", std::string("Bearer ") + kMetricsKey}};
    bool ready = false;
    api.server->set_readiness([&] { return ready; });
    CHECK(api.client->Get("/readyz")->status == 503);
    REQUIRE(api.Post("/api/v1/prescriptions", Lisinopril())->status == 201);
    std::string metrics;
    CHECK(testing::WaitFor([&] {
      auto m = api.client->Get("/metrics", bearer);  // as Prometheus sends it
      if (!m || m->status != 200) return false;
      metrics = m->body;
      return metrics.find(
                 "rxflow_http_requests_total{code=\"201\",method=\"POST\",route=\"/"
                 "api/v1/prescriptions\"} 1") != std::string::npos;
    }));
    CHECK(metrics.find("rxflow_submit_durable_seconds_count 1") != std::string::npos);
    auto logged_post = [&] {
      std::lock_guard lock(api.log_mu);
      for (const std::string& line : api.log)
        if (line.find("\"POST\"") != std::string::npos) return true;
      return false;
    };
    CHECK(testing::WaitFor(logged_post));
    std::lock_guard lock(api.log_mu);
    REQUIRE_FALSE(api.log.empty());
    for (const std::string& line : api.log) {
      json j = json::parse(line);
      CHECK(j.contains("route"));
      CHECK(line.find("Delacroix") == std::string::npos);  // no patient data
      CHECK(line.find("1968-04-17") == std::string::npos);
    }
  }

  // StoreReadiness: /readyz follows whether the store answers a read.
  TEST_CASE("/readyz is 503 while the store does not answer and 200 once it does again") {
    struct FlakyStore : store::StoreWrapper {
      using StoreWrapper::StoreWrapper;
      std::atomic<bool> down{false};
      StatusOr<std::string> FindByIdempotencyKey(const std::string& k) override {
        if (down) return absl::UnavailableError("store down");
        return StoreWrapper::FindByIdempotencyKey(k);
      }
    };
    Api api;
    FlakyStore flaky(*api.store);
    api.server->set_readiness(http::StoreReadiness(flaky));
    CHECK(api.client->Get("/readyz")->status == 200);  // an unknown key is an answer
    flaky.down = true;
    CHECK(api.client->Get("/readyz")->status == 503);
    flaky.down = false;
    CHECK(api.client->Get("/readyz")->status == 200);
  }

  // A client that hangs up (a reset) while its submission commits: the prescription is
  // stored once, the answer to the closed connection is dropped there (the server goes on;
  // the ASan build checks nothing of the connection is used after it is gone), and the
  // client's retry with the same Idempotency-Key is answered from what was stored.
  TEST_CASE(
      "a submission whose client hung up before its answer is stored, and its retry replays it") {
    Api api(/*hold_first_append=*/true);
    const std::string body = Lisinopril();
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(api.server->port()));
    REQUIRE(::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr) == 1);
    REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    const std::string request = std::string("POST /api/v1/prescriptions HTTP/1.1\r\nHost: x\r\n") +
                                "X-API-Key: " + kApiKey +
                                "\r\nIdempotency-Key: hung-up-1\r\n"
                                "Content-Type: application/fhir+json\r\nContent-Length: " +
                                std::to_string(body.size()) + "\r\n\r\n" + body;
    for (size_t sent = 0; sent < request.size();) {
      const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      REQUIRE(n > 0);
      sent += static_cast<size_t>(n);
    }
    CHECK(testing::WaitFor([&] { return api.held->Holding(); }));
    CHECK(api.Events() == 0);  // nothing committed while the client is there
    linger reset{1, 0};
    // CHECK, not REQUIRE, from here until Release: a held append never let go would keep the
    // server's Stop waiting for its answer.
    CHECK(::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset) == 0);
    ::close(fd);  // gone, with a reset, before its answer
    api.held->Release();
    REQUIRE(api.Events() == 2);  // PrescriptionReceived, PrescriptionTransformed
    const std::string stored = api.store->ReadAll(0, 10)->front().stream_id;
    CHECK(api.client->Get("/healthz")->status == 200);
    httplib::Headers h = api.Auth();
    h.emplace("Idempotency-Key", "hung-up-1");
    auto retry = api.client->Post("/api/v1/prescriptions", h, body, "application/fhir+json");
    REQUIRE(retry);
    CHECK(retry->status == 200);
    CHECK(json::parse(retry->body)["id"] == stored);
    CHECK(api.Events() == 2);  // answered from what was stored, not stored again
  }

  TEST_CASE("W3C traceparent is carried onto the events") {
    Api api;
    httplib::Headers h = api.Auth();
    h.emplace("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    auto r = api.client->Post("/api/v1/prescriptions", h, Lisinopril(), "application/fhir+json");
    REQUIRE(r->status == 201);
    std::string id = json::parse(r->body)["id"];
    auto events = *api.service->History(id);
    for (const auto& e : events) {
      CHECK(e.traceparent.rfind("00-4bf92f3577b34da6a3ce929d0e0e4736-", 0) == 0);
      CHECK(e.traceparent.find("00f067aa0ba902b7") == std::string::npos);  // a child span
    }
  }
}
#endif
