// SPDX-License-Identifier: Apache-2.0
// The EPCS ceremony end to end on the memory store: enrolment, the two-person rule, two
// factors with replay and lockout, the signing bundle, ready, sign (a NewRx the pharmacy
// verifies), clock skew, expired registrations, and the audit chain recording each step.
#include <set>

#include <doctest/doctest.h>

#include "rxflow/domain/prescription.h"
#include "rxflow/epcs/ceremony.h"
#include "rxflow/epcs/reports.h"

#include "epcs_pki.h"
#include "testing/files.h"
#include "testing/status.h"

namespace {

using namespace rxflow;  // NOLINT
using epcs::Permission;
using testing::Pki;

constexpr const char* kKey = "test-patient-key-0123456789abcdef";
const std::string kSecret = "12345678901234567890";  // RFC 6238's SHA-1 seed
const std::string kSecret2 = "abcdefghijklmnopqrstuvwx";

struct Fixture {
  // Now: the run-time PKI issues its certificates for the real time.
  FakeClock clock{SystemClock().NowMicros()};
  FakeClock trusted{clock.NowMicros()};  // the NTP-disciplined time source
  SequentialIds ids{"rx"};
  std::unique_ptr<store::Store> store = store::NewMemoryStore(clock);
  std::unique_ptr<PrescriptionService> service;
  epcs::AuditTrail audit{*store, clock};
  Pki pki;
  std::shared_ptr<epcs::Signer> key{epcs::NewInMemorySigner()};
  std::unique_ptr<epcs::CoSigner> cosigner{epcs::NewInMemoryCoSigner()};  // ML-DSA-65
  std::unique_ptr<epcs::Ceremony> ceremony;
  epcs::CeremonyOptions options;  // what `ceremony` was made with
  epcs::TrustStore trust;
  long prescriber_serial = 0;

  Fixture() {
    ServiceOptions o;
    o.patient_key = kKey;
    o.clock = &clock;
    o.ids = &ids;
    service = std::move(*PrescriptionService::Create(*store, o));
    epcs::CeremonyOptions c;
    c.time_source = &trusted;
    c.record_cosigner = cosigner.get();
    c.signer_for = [this](const epcs::PractitionerView&,
                          const std::string& label) -> StatusOr<std::shared_ptr<epcs::Signer>> {
      if (label != "key-lindqvist") return absl::NotFoundError("no such key");
      return key;
    };
    options = c;
    ceremony = std::make_unique<epcs::Ceremony>(*service, *store, audit, clock, c);
    RXFLOW_REQUIRE_OK(trust.AddAnchor(Pki::Pem(pki.root.get())));
    RXFLOW_REQUIRE_OK(trust.AddIntermediate(Pki::Der(pki.intermediate.get())));
    RXFLOW_REQUIRE_OK(trust.AddCrl(pki.Crl({})));
    RXFLOW_REQUIRE_OK(trust.AddCrl(pki.Crl({}, -3600, 7 * Pki::kDay, true)));

    auto spki = key->PublicKeyDer();
    RXFLOW_REQUIRE_OK(spki);
    auto cert = pki.Prescriber(*spki, "Rebecca Lindqvist", "BL4721052");
    prescriber_serial = ASN1_INTEGER_get(X509_get_serialNumber(cert.get()));
    REQUIRE(ceremony
                ->Enroll(Prescriber("dr-lindqvist", "Lindqvist", "BL4721052", "2027-12-31",
                                    Pki::Der(cert.get())),
                         "admin-1")
                .ok());
    REQUIRE(
        ceremony->Enroll(Prescriber("dr-patel", "Patel", "AP5836727", "2027-12-31", ""), "admin-1")
            .ok());
    epcs::PractitionerEnrollment agent = Prescriber("agent-1", "Jones", "", "", "");
    agent.registrations.clear();
    RXFLOW_REQUIRE_OK(ceremony->Enroll(agent, "admin-1"));
  }

  static epcs::PractitionerEnrollment Prescriber(std::string id, std::string last, std::string dea,
                                                 std::string expires, std::string cert) {
    epcs::PractitionerEnrollment p;
    p.id = std::move(id);
    p.first_name = "Test";
    p.last_name = std::move(last);
    if (!dea.empty())
      p.registrations.push_back(
          {std::move(dea), {"2", "2N", "3", "4", "5"}, "OH", std::move(expires)});
    p.identity_proofed_by = "Example CSP (NIST SP 800-63-1 IAL3)";
    p.credential_issuer = "Example CA";
    p.password = "correct horse battery staple";
    p.totp_secret = p.id == "dr-patel" ? kSecret2 : kSecret;
    p.certificate_der = std::move(cert);
    p.key_label = cert.empty() ? "" : "key-lindqvist";
    if (p.id == "dr-lindqvist") {
      p.key_label = "key-lindqvist";
      // Several registrations: a second one for Schedule II, and a supervised one ("-suffix")
      // for Schedule IV only.
      p.registrations.push_back({"FL1234563", {"2"}, "KY", "2027-12-31"});
      p.registrations.push_back({"BL4721052-001AB", {"4"}, "OH", "2027-12-31"});
    }
    return p;
  }

  std::string Otp(const std::string& secret) {
    auto code = epcs::TotpCode(secret, clock.NowMicros() / 1'000'000);
    RXFLOW_REQUIRE_OK(code);
    return *code;
  }
  // The next 30-second step, so a code is not the one used just before.
  void NextStep() {
    clock.Advance(30'000'000);
    trusted.Advance(30'000'000);
  }

  epcs::TwoFactorProof Proof(const std::string& secret) {
    return {"correct horse battery staple", Otp(secret)};
  }

  void GrantSign(const std::string& who) {
    for (Permission p : {Permission::kMarkReady, Permission::kSign}) {
      auto proposal = ceremony->Propose(who, p, true, "admin-1");
      RXFLOW_REQUIRE_OK(proposal);
      NextStep();
      RXFLOW_REQUIRE_OK(ceremony->Approve(who, *proposal, "dr-patel", Proof(kSecret2)));
    }
  }

  std::string SubmitOxycodone(domain::State expected = domain::State::kReadyToSign) {
    IssueList issues;
    auto s = service->Submit(testing::ReadFixture("fhir/schedule2_oxycodone.json"), issues);
    REQUIRE_MESSAGE(s.ok(), s.status().ToString());
    REQUIRE(s->state == expected);
    return s->id;
  }

  // dr-lindqvist may sign; an oxycodone prescription reviewed and marked ready by them.
  // Returns (id, bundle hash).
  std::pair<std::string, std::string> ReadyOxycodone() {
    GrantSign("dr-lindqvist");
    std::string id = SubmitOxycodone();
    auto bundle = ceremony->Bundle(id, "dr-lindqvist");
    RXFLOW_REQUIRE_OK(bundle);
    RXFLOW_REQUIRE_OK(ceremony->MarkReady(id, "dr-lindqvist", "BL4721052", bundle->sha256));
    return {id, bundle->sha256};
  }
  // ... and signed with both factors (in the next TOTP step). Returns its id.
  std::string SignedOxycodone() {
    auto [id, sha] = ReadyOxycodone();
    NextStep();
    RXFLOW_REQUIRE_OK(ceremony->Sign(id, "dr-lindqvist", sha, Proof(kSecret)));
    return id;
  }

  // The oxycodone order again, as the next of a Schedule II series (21 CFR 1306.12(b)): with
  // the earliest date it may be filled.
  static std::string NextOfSeries() {
    std::string body = testing::ReadFixture("fhir/schedule2_oxycodone.json");
    const std::string at = "\"dispenseRequest\": {";
    size_t i = body.find(at);
    REQUIRE(i != std::string::npos);
    body.insert(i + at.size(), "\"validityPeriod\": {\"start\": \"2026-11-26\"},");
    return body;
  }

  std::set<std::string> AuditActions() {
    auto records = epcs::ReadAuditTrail(*store, epcs::kAuditStream, 0, INT64_MAX);
    RXFLOW_REQUIRE_OK(records);
    std::set<std::string> out;
    for (const auto& r : *records) out.insert(r.action + ":" + r.outcome);
    return out;
  }
};

}  // namespace

TEST_SUITE("EPCS ceremony") {
  TEST_CASE("the two-person rule: another person, a registrant, with two factors") {
    Fixture f;
    auto proposal = f.ceremony->Propose("dr-lindqvist", Permission::kSign, true, "dr-patel");
    RXFLOW_REQUIRE_OK(proposal);
    // (a) the person who entered it cannot approve it
    CHECK(f.ceremony->Approve("dr-lindqvist", *proposal, "dr-patel", f.Proof(kSecret2)).code() ==
          absl::StatusCode::kPermissionDenied);
    // (b) an approver who is not a registrant
    CHECK(f.ceremony->Approve("dr-lindqvist", *proposal, "agent-1", f.Proof(kSecret)).code() ==
          absl::StatusCode::kPermissionDenied);
    // (c) no completed two factors
    auto grant = f.ceremony->Propose("dr-lindqvist", Permission::kSign, true, "admin-1");
    RXFLOW_REQUIRE_OK(grant);
    CHECK(f.ceremony
              ->Approve("dr-lindqvist", *grant, "dr-patel",
                        {"correct horse battery staple",
                         testing::WrongTotpCode(kSecret2, f.clock.NowMicros() / 1'000'000)})
              .code() == absl::StatusCode::kUnauthenticated);
    CHECK(f.ceremony
              ->Approve("dr-lindqvist", *grant, "dr-patel", {"wrong password!!", f.Otp(kSecret2)})
              .code() == absl::StatusCode::kUnauthenticated);
    CHECK_FALSE(f.ceremony->Practitioner("dr-lindqvist")->may_sign);
    f.NextStep();
    RXFLOW_REQUIRE_OK(f.ceremony->Approve("dr-lindqvist", *grant, "dr-patel", f.Proof(kSecret2)));
    CHECK(f.ceremony->Practitioner("dr-lindqvist")->may_sign);
    // A decided proposal is not approved twice; signing is only for registrants.
    CHECK(f.ceremony->Approve("dr-lindqvist", *grant, "dr-patel", f.Proof(kSecret2)).code() ==
          absl::StatusCode::kFailedPrecondition);
    CHECK(f.ceremony->Propose("agent-1", Permission::kSign, true, "admin-1").status().code() ==
          absl::StatusCode::kPermissionDenied);
    // (d) every grant and refusal is audited
    auto actions = f.AuditActions();
    CHECK(actions.count("epcs.permission.granted:success"));
    CHECK(actions.count("epcs.permission.approve:refused"));
    CHECK(actions.count("epcs.two_factor.failed:failure"));
    // A revocation goes the same way.
    auto revoke = f.ceremony->Propose("dr-lindqvist", Permission::kSign, false, "admin-1");
    RXFLOW_REQUIRE_OK(revoke);
    f.NextStep();
    RXFLOW_REQUIRE_OK(f.ceremony->Approve("dr-lindqvist", *revoke, "dr-patel", f.Proof(kSecret2)));
    CHECK_FALSE(f.ceremony->Practitioner("dr-lindqvist")->may_sign);
    CHECK(f.AuditActions().count("epcs.permission.revoked:success"));
  }

  TEST_CASE(
      "a Schedule II prescription is reviewed, marked ready, signed with two factors and "
      "queued, the pharmacy verifies the signed NewRx") {
    Fixture f;
    f.GrantSign("dr-lindqvist");
    std::string id = f.SubmitOxycodone();

    auto bundle = f.ceremony->Bundle(id, "dr-lindqvist");
    REQUIRE_MESSAGE(bundle.ok(), bundle.status().ToString());
    CHECK(bundle->fields.size() == 16);
    CHECK(bundle->fields[1].name == "PatientName");
    CHECK(bundle->attestation == epcs::kAttestation);
    CHECK(bundle->dea_numbers == std::vector<std::string>{"BL4721052", "FL1234563"});
    CHECK(bundle->prescription_dea_number == "BL4721052");
    CHECK_FALSE(bundle->marked_ready);

    // Not ready yet; then a bundle that is not the one shown.
    f.NextStep();
    CHECK(f.ceremony->Sign(id, "dr-lindqvist", bundle->sha256, f.Proof(kSecret)).code() ==
          absl::StatusCode::kFailedPrecondition);
    CHECK(f.ceremony->MarkReady(id, "dr-lindqvist", "BL4721052", "0000").code() ==
          absl::StatusCode::kFailedPrecondition);
    CHECK(f.ceremony->MarkReady(id, "dr-patel", "AP5836727", bundle->sha256).code() ==
          absl::StatusCode::kPermissionDenied);  // no permission (and not the prescriber)
    RXFLOW_REQUIRE_OK(f.ceremony->MarkReady(id, "dr-lindqvist", "BL4721052", bundle->sha256));
    CHECK(f.ceremony->Bundle(id, "dr-lindqvist")->marked_ready);

    // Failed factors leave it unsigned.
    f.NextStep();
    CHECK(f.ceremony
              ->Sign(id, "dr-lindqvist", bundle->sha256,
                     {"correct horse battery staple",
                      testing::WrongTotpCode(kSecret, f.clock.NowMicros() / 1'000'000)})
              .code() == absl::StatusCode::kUnauthenticated);
    CHECK(f.service->Load(id)->state == domain::State::kReadyToSign);

    epcs::TwoFactorProof proof = f.Proof(kSecret);
    Status signed_status = f.ceremony->Sign(id, "dr-lindqvist", bundle->sha256, proof);
    REQUIRE_MESSAGE(signed_status.ok(), signed_status.ToString());
    CHECK(f.service->Load(id)->state == domain::State::kQueued);

    // Submitted again, it is the same prescription, already signed and queued.
    CHECK(f.SubmitOxycodone(domain::State::kQueued) == id);

    // The event carries the two-factor event and the signed NewRx, which verifies.
    auto history = f.service->History(id);
    RXFLOW_REQUIRE_OK(history);
    std::optional<domain::PrescriptionSigned> signed_event;
    for (const auto& r : *history) {
      if (r.type != "PrescriptionSigned") continue;
      auto e = domain::DecodeEvent(r.type, r.schema_version, r.payload);
      RXFLOW_REQUIRE_OK(e);
      signed_event = std::get<domain::PrescriptionSigned>(*e);
    }
    REQUIRE(signed_event);
    CHECK_FALSE(signed_event->two_factor_event_id.empty());
    CHECK(signed_event->dea_number == "BL4721052");
    auto sent = f.service->OutboundXml(id, "send");
    RXFLOW_REQUIRE_OK(sent);
    CHECK(*sent == signed_event->signed_newrx_xml);
    epcs::SignatureVerification v = epcs::VerifyPrescriptionSignature(*sent, f.trust);
    CHECK_MESSAGE(v.ok(), v.reason);

    // The stored record is co-signed with ML-DSA-65: it verifies under RxFlow's key, and not
    // once any part of it changes, nor under another key.
    CHECK(signed_event->record_cosigner_key_sha256.size() == 64);
    Status record = epcs::VerifySignatureRecord(id, *signed_event, f.cosigner->PublicKey());
    CHECK_MESSAGE(record.ok(), record.ToString());
    CHECK(absl::IsUnauthenticated(
        epcs::VerifySignatureRecord("rx-other", *signed_event, f.cosigner->PublicKey())));
    for (std::string domain::PrescriptionSigned::*field :
         {&domain::PrescriptionSigned::signer, &domain::PrescriptionSigned::dea_number,
          &domain::PrescriptionSigned::signature, &domain::PrescriptionSigned::signed_newrx_xml,
          &domain::PrescriptionSigned::two_factor_event_id}) {
      domain::PrescriptionSigned changed = *signed_event;
      changed.*field += "x";
      CHECK(absl::IsUnauthenticated(
          epcs::VerifySignatureRecord(id, changed, f.cosigner->PublicKey())));
    }
    auto other = epcs::NewInMemoryCoSigner();
    Status wrong_key = epcs::VerifySignatureRecord(id, *signed_event, other->PublicKey());
    CHECK(absl::IsUnauthenticated(wrong_key));
    CHECK(std::string(wrong_key.message()).find("not by the given key") != std::string::npos);

    auto actions = f.AuditActions();
    for (const char* a : {"epcs.ready:success", "epcs.sign:success", "epcs.sign:refused",
                          "epcs.two_factor.succeeded:success", "epcs.transmit.queued:success"}) {
      CHECK_MESSAGE(actions.count(a), a);
    }
    auto verified = epcs::VerifyAuditTrail(*f.store);
    RXFLOW_REQUIRE_OK(verified);
    CHECK(verified->ok);
  }

  TEST_CASE("a code used once is refused again, and repeated failures lock the practitioner") {
    Fixture f;
    f.NextStep();
    epcs::TwoFactorProof proof = f.Proof(kSecret);
    RXFLOW_REQUIRE_OK(f.ceremony->CompleteTwoFactor("dr-lindqvist", proof, "test"));
    CHECK(f.ceremony->CompleteTwoFactor("dr-lindqvist", proof, "test").status().code() ==
          absl::StatusCode::kUnauthenticated);
    for (int i = 0; i < 5; ++i) {
      (void)f.ceremony->CompleteTwoFactor(
          "dr-lindqvist",
          {"wrong password!!", testing::WrongTotpCode(kSecret, f.clock.NowMicros() / 1'000'000)},
          "test");
    }
    CHECK(f.ceremony->Practitioner("dr-lindqvist")->locked_out);
    f.NextStep();
    CHECK(f.ceremony->CompleteTwoFactor("dr-lindqvist", f.Proof(kSecret), "test").status().code() ==
          absl::StatusCode::kPermissionDenied);
    CHECK(f.AuditActions().count("epcs.two_factor.locked_out:failure"));
    f.clock.Advance(901'000'000);
    CHECK(f.ceremony->CompleteTwoFactor("dr-lindqvist", f.Proof(kSecret), "test").ok());
  }

  TEST_CASE("the signing bundle shows the newest PDMP query, which does not void the ready mark") {
    Fixture f;
    f.GrantSign("dr-lindqvist");
    std::string id = f.SubmitOxycodone();
    auto before = f.ceremony->Bundle(id, "dr-lindqvist");
    RXFLOW_REQUIRE_OK(before);
    CHECK_FALSE(before->last_pdmp_query.has_value());
    RXFLOW_REQUIRE_OK(f.ceremony->MarkReady(id, "dr-lindqvist", "BL4721052", before->sha256));
    clinical::pdmp::Simulator pdmp;  // holds no dispensing: the patient is not found
    auto r = f.service->QueryPdmp(id, pdmp);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    auto after = f.ceremony->Bundle(id, "dr-lindqvist");
    RXFLOW_REQUIRE_OK(after);
    REQUIRE(after->last_pdmp_query.has_value());
    CHECK(after->last_pdmp_query->pdmp == "pdmp simulator");
    CHECK(after->last_pdmp_query->outcome == "not-found");
    CHECK(after->last_pdmp_query->dispensings == 0);
    CHECK(after->sha256 == before->sha256);
    CHECK(after->marked_ready);
  }

  TEST_CASE("T-5.4: a certificate its CA revoked is not signed with, and nothing is sent") {
    Fixture f;
    auto [id, sha] = f.ReadyOxycodone();
    // The sender checks its own signature as the pharmacy will, with a CRL that revokes the
    // prescriber's certificate.
    auto revoking = std::make_shared<epcs::TrustStore>();
    RXFLOW_REQUIRE_OK(revoking->AddAnchor(Pki::Pem(f.pki.root.get())));
    RXFLOW_REQUIRE_OK(revoking->AddIntermediate(Pki::Der(f.pki.intermediate.get())));
    RXFLOW_REQUIRE_OK(revoking->AddCrl(f.pki.Crl({f.prescriber_serial})));
    RXFLOW_REQUIRE_OK(revoking->AddCrl(f.pki.Crl({}, -3600, 7 * Pki::kDay, true)));
    epcs::CeremonyOptions c = f.options;
    c.sender_trust = revoking;
    epcs::Ceremony checked(*f.service, *f.store, f.audit, f.clock, c);
    f.NextStep();
    Status refused = checked.Sign(id, "dr-lindqvist", sha, f.Proof(kSecret));
    CHECK(refused.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(std::string(refused.message()).find("revoked") != std::string::npos);
    CHECK(f.service->Load(id)->state == domain::State::kReadyToSign);  // not signed, not queued
    CHECK(f.AuditActions().count("epcs.sign:refused"));
    // The same check with the CA's current CRL (nothing revoked): signed and queued.
    c.sender_trust = std::make_shared<epcs::TrustStore>(std::move(f.trust));
    epcs::Ceremony valid(*f.service, *f.store, f.audit, f.clock, c);
    f.NextStep();
    RXFLOW_REQUIRE_OK(valid.Sign(id, "dr-lindqvist", sha, f.Proof(kSecret)));
    CHECK(f.service->Load(id)->state == domain::State::kQueued);
  }

  TEST_CASE("T-1.2: a ceremony started with a control left off records it, each time") {
    Fixture f;
    CHECK_FALSE(f.AuditActions().count("epcs.control.clock_check.disabled:success"));  // has one
    epcs::CeremonyOptions c = f.options;
    c.time_source = nullptr;
    auto lax = std::make_shared<epcs::TrustStore>();
    lax->set_require_crl(false);
    c.sender_trust = lax;
    epcs::Ceremony started(*f.service, *f.store, f.audit, f.clock, c);
    CHECK(f.AuditActions().count("epcs.control.clock_check.disabled:success"));
    CHECK(f.AuditActions().count("epcs.control.crl_check.disabled:success"));
    // The fixture's trail has no checkpoint signer: its ceremony recorded that when it started.
    CHECK(f.AuditActions().count("epcs.control.checkpoint_signing.disabled:success"));
    // The day's incident report lists them.
    auto report = epcs::DailyIncidentReport(
        *f.store, f.clock.NowMicros() / 86'400'000'000LL * 86'400'000'000LL, {});
    RXFLOW_REQUIRE_OK(report);
    CHECK(report->text.find("epcs.control.clock_check") != std::string::npos);
    CHECK(report->text.find("epcs.control.crl_check") != std::string::npos);
    CHECK(report->text.find("epcs.control.checkpoint_signing") != std::string::npos);
  }

  TEST_CASE("T-1.2: a ready mark or a signature the ceremony did not make is not recorded") {
    Fixture f;
    const std::string signed_id = f.SignedOxycodone();
    IssueList issues;
    auto second = f.service->Submit(Fixture::NextOfSeries(), issues, {}, "second-order");
    RXFLOW_REQUIRE_OK(second);
    const std::string id = second->id;
    auto bundle = f.ceremony->Bundle(id, "dr-lindqvist");
    RXFLOW_REQUIRE_OK(bundle);
    const std::string sha = bundle->sha256;
    RXFLOW_REQUIRE_OK(f.ceremony->MarkReady(id, "dr-lindqvist", "BL4721052", sha));
    auto denied = [](const Status& st, std::string_view says) {
      CHECK_MESSAGE(st.code() == absl::StatusCode::kPermissionDenied, st.ToString());
      CHECK_MESSAGE(std::string(st.message()).find(says) != std::string::npos, st.ToString());
    };
    // A ready mark by someone not enrolled, without the permission, or under another's number.
    denied(f.service->Execute(id, domain::MarkReady{"dr-nobody", "BL4721052", sha}),
           "no EPCS practitioner dr-nobody");
    denied(f.service->Execute(id, domain::MarkReady{"agent-1", "BL4721052", sha}),
           "is not a registration of agent-1");
    denied(f.service->Execute(id, domain::MarkReady{"dr-lindqvist", "AP5836727", sha}),
           "is not a registration of dr-lindqvist");
    // A signature with a made-up two-factor event.
    denied(f.service->Execute(id, domain::Sign{"dr-lindqvist", "c2ln", sha, "BL4721052", "made-up",
                                               "<Message/>", "", ""}),
           "two-factor event made-up is not");
    // A real completion, but not the ceremony's signature of this prescription.
    f.NextStep();
    auto own = f.ceremony->CompleteTwoFactor("dr-lindqvist", f.Proof(kSecret), "sign");
    RXFLOW_REQUIRE_OK(own);
    denied(f.service->Execute(id, domain::Sign{"dr-lindqvist", "c2ln", sha, "BL4721052", *own,
                                               "<Message/>", "", ""}),
           "is not dr-lindqvist's completed two-factor authentication");
    // The ceremony's signature of another prescription, replayed onto this one.
    auto history = f.service->History(signed_id);
    RXFLOW_REQUIRE_OK(history);
    std::optional<domain::PrescriptionSigned> record;
    for (const store::EventRecord& r : *history) {
      if (r.type != domain::PrescriptionSigned::kType) continue;
      auto e = domain::DecodeEvent(r.type, r.schema_version, r.payload);
      RXFLOW_REQUIRE_OK(e);
      record = std::get<domain::PrescriptionSigned>(*e);
    }
    REQUIRE(record);
    auto replay = [&](const std::string& target, std::string xml) {
      return f.service->Execute(
          target, domain::Sign{record->signer, record->signature, record->signed_content_sha256,
                               record->dea_number, record->two_factor_event_id, std::move(xml),
                               record->record_cosignature, record->record_cosigner_key_sha256});
    };
    denied(replay(id, record->signed_newrx_xml), "two-factor event");
    // On its own prescription the record passes this check (and the state refuses a second
    // signature); with its NewRx changed it does not.
    CHECK(replay(signed_id, record->signed_newrx_xml).code() ==
          absl::StatusCode::kFailedPrecondition);
    std::string changed = record->signed_newrx_xml;
    size_t at = changed.find("<LastName>");  // the patient's, in the Part 1306 content
    REQUIRE(at != std::string::npos);
    changed.insert(at + 10, "X");
    denied(replay(signed_id, changed), "does not verify (digest_mismatch");
    // None of it reached the prescription.
    CHECK(f.service->Get(id)->state == domain::State::kReadyToSign);
    // A ready mark made up under the practitioner's registration that does not cover
    // Schedule II passes the service, but the ceremony does not sign under it.
    RXFLOW_REQUIRE_OK(
        f.service->Execute(id, domain::MarkReady{"dr-lindqvist", "BL4721052-001AB", sha}));
    f.NextStep();
    denied(f.ceremony->Sign(id, "dr-lindqvist", sha, f.Proof(kSecret)), "covering this schedule");
    RXFLOW_REQUIRE_OK(f.ceremony->MarkReady(id, "dr-lindqvist", "BL4721052", sha));
    f.NextStep();
    CHECK(f.ceremony->Sign(id, "dr-lindqvist", sha, f.Proof(kSecret)).ok());
  }

  TEST_CASE("T-2.3: a biometric match signed by an enrolled subsystem over a fresh challenge") {
    Fixture f;
    std::unique_ptr<epcs::Signer> device = epcs::NewInMemorySigner();
    std::unique_ptr<epcs::Signer> other_device = epcs::NewInMemorySigner();
    epcs::BiometricDevice d{"palm-7", *device->PublicKeyDer(), 0.0001, "iBeta (DEA-approved)",
                            "BTR-2018-04"};
    auto enroll = [&](epcs::BiometricDevice x) {
      return f.ceremony->EnrollBiometric("dr-lindqvist", x, "admin-1");
    };
    // §1311.116(b)-(c): at most 0.001, and who tested it; a P-256 key.
    epcs::BiometricDevice loose = d;
    loose.false_match_rate = 0.01;
    CHECK(enroll(loose).code() == absl::StatusCode::kInvalidArgument);
    epcs::BiometricDevice untested = d;
    untested.tested_by = " ";
    CHECK(enroll(untested).code() == absl::StatusCode::kInvalidArgument);
    epcs::BiometricDevice keyless = d;
    keyless.public_key_der = "not a key";
    CHECK(enroll(keyless).code() == absl::StatusCode::kInvalidArgument);
    RXFLOW_REQUIRE_OK(enroll(d));
    CHECK(enroll(d).code() == absl::StatusCode::kAlreadyExists);
    CHECK(f.ceremony->BiometricChallenge("dr-patel").status().code() ==
          absl::StatusCode::kFailedPrecondition);  // no subsystem of theirs

    auto match = [&](epcs::Signer& key, const std::string& who, const std::string& challenge) {
      auto sig = key.Sign(epcs::BiometricMatchText(who, "palm-7", challenge));
      RXFLOW_REQUIRE_OK(sig);
      return epcs::BiometricMatch{"palm-7", challenge, *sig};
    };
    auto attempt = [&](std::string password, std::string otp,
                       std::optional<epcs::BiometricMatch> m) {
      return f.ceremony->CompleteTwoFactor(
          "dr-lindqvist", {std::move(password), std::move(otp), std::move(m)}, "test");
    };
    const std::string password = "correct horse battery staple";
    auto c1 = f.ceremony->BiometricChallenge("dr-lindqvist");
    RXFLOW_REQUIRE_OK(c1);
    CHECK(c1->size() == 64);
    // Knowledge + inherence.
    CHECK(attempt(password, "", match(*device, "dr-lindqvist", *c1)).ok());
    // The same challenge again: a replay.
    CHECK(attempt(password, "", match(*device, "dr-lindqvist", *c1)).status().code() ==
          absl::StatusCode::kUnauthenticated);
    // A match signed for another practitioner.
    auto c2 = f.ceremony->BiometricChallenge("dr-lindqvist");
    CHECK(attempt(password, "", match(*device, "dr-patel", *c2)).status().code() ==
          absl::StatusCode::kUnauthenticated);
    // Possession + inherence.
    f.NextStep();
    auto c3 = f.ceremony->BiometricChallenge("dr-lindqvist");
    CHECK(attempt("", f.Otp(kSecret), match(*device, "dr-lindqvist", *c3)).ok());
    // Another key; an expired challenge; a biometric alone (one kind).
    auto c4 = f.ceremony->BiometricChallenge("dr-lindqvist");
    CHECK(attempt(password, "", match(*other_device, "dr-lindqvist", *c4)).status().code() ==
          absl::StatusCode::kUnauthenticated);
    auto c5 = f.ceremony->BiometricChallenge("dr-lindqvist");
    f.clock.Advance(121'000'000);
    f.trusted.Advance(121'000'000);
    CHECK(attempt(password, "", match(*device, "dr-lindqvist", *c5)).status().code() ==
          absl::StatusCode::kUnauthenticated);
    auto c6 = f.ceremony->BiometricChallenge("dr-lindqvist");
    CHECK(attempt("", "", match(*device, "dr-lindqvist", *c6)).status().code() ==
          absl::StatusCode::kUnauthenticated);
    // The audit trail says which factors passed and why the others failed.
    auto records = epcs::ReadAuditTrail(*f.store, epcs::kAuditStream, 0, INT64_MAX);
    RXFLOW_REQUIRE_OK(records);
    std::set<std::string> details;
    for (const auto& r : *records) details.insert(r.action + " " + r.detail);
    for (const char* want :
         {"epcs.biometric.enroll device palm-7, false match rate 0.0001, tested by iBeta "
          "(DEA-approved)",
          "epcs.two_factor.succeeded for test: knowledge+inherence (device palm-7)",
          "epcs.two_factor.succeeded for test: possession+inherence (device palm-7)",
          "epcs.two_factor.failed for test: biometric: the challenge was not issued, or was used",
          "epcs.two_factor.failed for test: biometric: the match result's signature does not "
          "verify under the device's key",
          "epcs.two_factor.failed for test: biometric: the challenge expired",
          "epcs.two_factor.failed for test: fewer than two kinds of factor"}) {
      CHECK_MESSAGE(details.count(want), std::string(want));
    }
    // And it signs: password and biometric complete the ceremony.
    auto [id, sha] = f.ReadyOxycodone();
    auto c7 = f.ceremony->BiometricChallenge("dr-lindqvist");
    REQUIRE(f.ceremony
                ->Sign(id, "dr-lindqvist", sha, {password, "", match(*device, "dr-lindqvist", *c7)})
                .ok());
    CHECK(f.service->Get(id)->state != domain::State::kReadyToSign);
    // A few unused challenges at most; a malformed one is refused without being recorded.
    for (int i = 0; i < 4; ++i) RXFLOW_REQUIRE_OK(f.ceremony->BiometricChallenge("dr-lindqvist"));
    CHECK(f.ceremony->BiometricChallenge("dr-lindqvist").status().code() ==
          absl::StatusCode::kResourceExhausted);
    CHECK(attempt(password, "", epcs::BiometricMatch{"palm-7", std::string(5000, 'x'), "sig"})
              .status()
              .code() == absl::StatusCode::kUnauthenticated);
  }

  TEST_CASE("T-3.3: an institution's list, approved by two designated people, gates signing") {
    Fixture f;
    for (const char* person : {"cred-1", "cred-2"}) {  // the credentialing office
      epcs::PractitionerEnrollment e = Fixture::Prescriber(person, "Office", "", "", "");
      e.registrations.clear();
      RXFLOW_REQUIRE_OK(f.ceremony->Enroll(e, "admin-1"));
    }
    epcs::Institution h{"st-example",
                        "St. Example Hospital",
                        "BS1234563",
                        {"cred-1", "cred-2"},
                        {"St. Example credentialing office"}};
    epcs::Institution one = h;
    one.designated = {"cred-1", "cred-1"};
    CHECK(f.ceremony->RegisterInstitution(one, "admin-1").code() ==
          absl::StatusCode::kInvalidArgument);  // two people, not one named twice
    epcs::Institution no_proofer = h;
    no_proofer.identity_proofers.clear();
    CHECK(f.ceremony->RegisterInstitution(no_proofer, "admin-1").code() ==
          absl::StatusCode::kInvalidArgument);
    RXFLOW_REQUIRE_OK(f.ceremony->RegisterInstitution(h, "admin-1"));
    CHECK(f.ceremony->RegisterInstitution(h, "admin-1").code() == absl::StatusCode::kAlreadyExists);

    // Its practitioners are proofed by whom it names.
    epcs::PractitionerEnrollment house =
        Fixture::Prescriber("dr-house", "House", "FH1234563", "2027-12-31", "");
    house.institution = "st-example";
    CHECK(f.ceremony->Enroll(house, "admin-1").code() == absl::StatusCode::kInvalidArgument);
    house.identity_proofed_by = "St. Example credentialing office";
    RXFLOW_REQUIRE_OK(f.ceremony->Enroll(house, "admin-1"));
    CHECK(f.ceremony->Practitioner("dr-house")->institution == "st-example");

    // Permissions: entered and approved by designated people only; not while unlisted.
    CHECK(f.ceremony->Propose("dr-house", Permission::kSign, true, "admin-1").status().code() ==
          absl::StatusCode::kPermissionDenied);
    auto sign = f.ceremony->Propose("dr-house", Permission::kSign, true, "cred-1");
    RXFLOW_REQUIRE_OK(sign);
    f.NextStep();
    CHECK(f.ceremony->Approve("dr-house", *sign, "dr-patel", f.Proof(kSecret2)).code() ==
          absl::StatusCode::kPermissionDenied);  // a registrant, but not designated
    CHECK(f.ceremony->Approve("dr-house", *sign, "cred-2", f.Proof(kSecret)).code() ==
          absl::StatusCode::kPermissionDenied);  // not on the list yet

    // The list: one designated person enters, another approves with two factors.
    CHECK(
        f.ceremony->ProposeListChange("st-example", "dr-house", true, "dr-patel").status().code() ==
        absl::StatusCode::kPermissionDenied);
    CHECK(f.ceremony->ProposeListChange("st-example", "dr-lindqvist", true, "cred-1")
              .status()
              .code() == absl::StatusCode::kFailedPrecondition);  // not its practitioner
    auto add = f.ceremony->ProposeListChange("st-example", "dr-house", true, "cred-1");
    RXFLOW_REQUIRE_OK(add);
    f.NextStep();
    CHECK(f.ceremony->ApproveListChange("st-example", *add, "cred-1", f.Proof(kSecret)).code() ==
          absl::StatusCode::kPermissionDenied);  // the same person
    CHECK(f.ceremony->ApproveListChange("st-example", *add, "cred-2", {"wrong password!!", ""})
              .code() == absl::StatusCode::kUnauthenticated);
    RXFLOW_REQUIRE_OK(
        f.ceremony->ApproveListChange("st-example", *add, "cred-2", f.Proof(kSecret)));
    CHECK(f.ceremony->InstitutionOf("st-example")->listed == std::vector<std::string>{"dr-house"});
    f.NextStep();
    RXFLOW_REQUIRE_OK(f.ceremony->Approve("dr-house", *sign, "cred-2", f.Proof(kSecret)));
    CHECK(f.ceremony->Practitioner("dr-house")->may_sign);

    // Off the list: no permission (the grant stays recorded).
    auto remove = f.ceremony->ProposeListChange("st-example", "dr-house", false, "cred-2");
    RXFLOW_REQUIRE_OK(remove);
    f.NextStep();
    RXFLOW_REQUIRE_OK(
        f.ceremony->ApproveListChange("st-example", *remove, "cred-1", f.Proof(kSecret)));
    CHECK_FALSE(f.ceremony->Practitioner("dr-house")->may_sign);
    CHECK(f.ceremony->InstitutionOf("st-example")->listed.empty());
    auto actions = f.AuditActions();
    for (const char* a :
         {"epcs.institution.register:success", "epcs.institution.register:refused",
          "epcs.institution.list.added:success", "epcs.institution.list.removed:success",
          "epcs.institution.list.approve:refused", "epcs.permission.approve:refused"}) {
      CHECK_MESSAGE(actions.count(a), std::string(a));
    }
  }

  TEST_CASE("a clock more than 5 minutes off blocks signing, and is audited") {
    Fixture f;
    auto [id, sha] = f.ReadyOxycodone();
    f.NextStep();
    f.trusted.Advance(5 * 60 * 1'000'000 + 1'000'000);
    CHECK(f.ceremony->Sign(id, "dr-lindqvist", sha, f.Proof(kSecret)).code() ==
          absl::StatusCode::kPermissionDenied);
    CHECK(f.AuditActions().count("epcs.clock_skew:refused"));
    CHECK(f.service->Load(id)->state == domain::State::kReadyToSign);
  }

  TEST_CASE("an expired registration neither signs nor approves") {
    Fixture f;
    auto [id, sha] = f.ReadyOxycodone();
    CHECK(f.ceremony->Practitioner("dr-lindqvist")->may_sign);
    f.clock.Set(f.clock.NowMicros() + int64_t{3 * 365} * 86400 * 1'000'000);  // past 2027-12-31
    f.trusted.Set(f.clock.NowMicros());
    CHECK_FALSE(f.ceremony->Practitioner("dr-lindqvist")->may_sign);  // lapsed: revoked
    CHECK(f.ceremony->Sign(id, "dr-lindqvist", sha, f.Proof(kSecret)).code() ==
          absl::StatusCode::kPermissionDenied);
    auto proposal = f.ceremony->Propose("agent-1", Permission::kMarkReady, true, "admin-1");
    RXFLOW_REQUIRE_OK(proposal);
    CHECK(f.ceremony->Approve("agent-1", *proposal, "dr-patel", f.Proof(kSecret2)).code() ==
          absl::StatusCode::kPermissionDenied);
  }

  TEST_CASE("enrolment checks DEA numbers, passwords and secrets, and each id once") {
    Fixture f;
    auto p = Fixture::Prescriber("dr-x", "Lindqvist", "BL4721053", "2027-12-31", "");
    CHECK(f.ceremony->Enroll(p, "admin-1").code() == absl::StatusCode::kInvalidArgument);
    p = Fixture::Prescriber("dr-x", "Smith", "BL4721052", "2027-12-31", "");
    CHECK(f.ceremony->Enroll(p, "admin-1").code() == absl::StatusCode::kInvalidArgument);
    p = Fixture::Prescriber("dr-x", "Lindqvist", "BL4721052", "2027-12-31", "");
    p.password = "short";
    CHECK(f.ceremony->Enroll(p, "admin-1").code() == absl::StatusCode::kInvalidArgument);
    p.password = "long enough password";
    p.totp_secret = "too short";
    CHECK(f.ceremony->Enroll(p, "admin-1").code() == absl::StatusCode::kInvalidArgument);
    CHECK(f.ceremony
              ->Enroll(Fixture::Prescriber("dr-patel", "Patel", "AP5836727", "2027-12-31", ""),
                       "admin-1")
              .code() == absl::StatusCode::kAlreadyExists);
    CHECK(f.AuditActions().count("epcs.practitioner.enroll:refused"));
  }

  TEST_CASE("enrolment records who proofed the identity and who issued the credential (T-2.4)") {
    Fixture f;
    auto view = f.ceremony->Practitioner("dr-lindqvist");
    RXFLOW_REQUIRE_OK(view);
    CHECK(view->identity_proofed_by == "Example CSP (NIST SP 800-63-1 IAL3)");
    CHECK(view->credential_issuer == "Example CA");
    // The audit record of the enrolment names both, beside who enrolled whom.
    auto records = epcs::ReadAuditTrail(*f.store, epcs::kAuditStream, 0, INT64_MAX);
    RXFLOW_REQUIRE_OK(records);
    auto enrolled = std::find_if(records->begin(), records->end(), [](const auto& r) {
      return r.action == "epcs.practitioner.enroll" && r.object == "epcs-practitioner-dr-lindqvist";
    });
    REQUIRE(enrolled != records->end());
    CHECK(enrolled->actor == "admin-1");
    CHECK(enrolled->outcome == "success");
    CHECK(enrolled->detail ==
          "3 DEA registration(s); identity proofed by Example CSP (NIST SP 800-63-1 IAL3); "
          "credential from Example CA");
    // An enrolment that does not say who proofed the practitioner, or who issued the
    // credential (empty or blank), is refused, naming both.
    for (auto blank : {&epcs::PractitionerEnrollment::identity_proofed_by,
                       &epcs::PractitionerEnrollment::credential_issuer}) {
      for (const char* value : {"", " \t "}) {
        auto p = Fixture::Prescriber("dr-y", "Young", "", "", "");
        p.*blank = value;
        Status st = f.ceremony->Enroll(p, "admin-1");
        CHECK(st.code() == absl::StatusCode::kInvalidArgument);
        CHECK(std::string(st.message()).find("identity_proofed_by") != std::string::npos);
        CHECK(std::string(st.message()).find("credential_issuer") != std::string::npos);
      }
    }
    CHECK(f.AuditActions().count("epcs.practitioner.enroll:refused"));
    CHECK_FALSE(f.ceremony->Practitioner("dr-y").ok());
  }

  TEST_CASE("transmissions and pharmacy errors of controlled prescriptions reach the audit chain") {
    Fixture f;
    IssueList issues;
    auto plain =
        f.service->Submit(testing::ReadFixture("fhir/medication_request_lisinopril.json"), issues);
    RXFLOW_REQUIRE_OK(plain);
    RXFLOW_REQUIRE_OK(f.service->Route(plain->id));
    RXFLOW_REQUIRE_OK(f.service->Execute(plain->id, domain::MarkSent{}));
    std::string id = f.SignedOxycodone();
    RXFLOW_REQUIRE_OK(f.service->Execute(id, domain::MarkSent{}));
    REQUIRE(
        f.service
            ->Execute(id, domain::RecordError{"900", {}, "digital signature revoked: chain", false})
            .ok());
    epcs::TransmissionAuditor auditor(*f.store, f.audit, "test");
    auto written = auditor.CatchUp();
    RXFLOW_REQUIRE_OK(written);
    CHECK(*written == 2);  // the controlled one's Sent and Error; nothing of the lisinopril
    CHECK(*auditor.CatchUp() == 0);
    auto records = epcs::ReadAuditTrail(*f.store, epcs::kAuditStream, 0, INT64_MAX);
    RXFLOW_REQUIRE_OK(records);
    const epcs::AuditRecord& last = records->back();
    CHECK(last.action == "epcs.verification.failed");
    CHECK(last.outcome == "failure");
    CHECK(last.object == id + "@8");
    CHECK(last.detail.find("SCRIPT Error 900 (revoked)") != std::string::npos);
    CHECK(f.AuditActions().count("epcs.transmit.sent:success"));
  }

  TEST_CASE(
      "the transmission audit learns a schedule from the log, and reads a stream only for a "
      "prescription it has forgotten") {
    Fixture f;
    std::string id = f.SignedOxycodone();
    RXFLOW_REQUIRE_OK(f.service->Execute(id, domain::MarkSent{}));
    epcs::TransmissionAuditor auditor(*f.store, f.audit, "test");
    CHECK(*auditor.CatchUp() == 1);
    CHECK(auditor.streams_read() == 0);  // its PrescriptionTransformed came first in the log
    // A restarted auditor starts after the checkpoint: it reads the stream once, then knows.
    epcs::TransmissionAuditor restarted(*f.store, f.audit, "test");
    RXFLOW_REQUIRE_OK(f.service->Execute(id, domain::RecordError{"900", {}, "busy", true}));
    CHECK(*restarted.CatchUp() == 1);
    CHECK(restarted.streams_read() == 1);
    RXFLOW_REQUIRE_OK(f.service->Execute(id, domain::MarkSent{}));
    CHECK(*restarted.CatchUp() == 1);
    CHECK(restarted.streams_read() == 1);
    // It remembers the last `remembered` prescriptions: the oldest is forgotten first.
    epcs::TransmissionAuditor small(*f.store, f.audit, "test", /*remembered=*/2);
    std::vector<std::string> plain;
    for (int i = 0; i < 3; ++i) {
      IssueList issues;
      auto body = testing::ReadFixture("fhir/medication_request_lisinopril.json");
      auto s = f.service->Submit(body, issues, {}, "lisinopril-" + std::to_string(i));
      RXFLOW_REQUIRE_OK(s);
      RXFLOW_REQUIRE_OK(f.service->Route(s->id));
      plain.push_back(s->id);
    }
    CHECK(*small.CatchUp() == 0);
    CHECK(small.streams_read() == 0);
    RXFLOW_REQUIRE_OK(f.service->Execute(plain[1], domain::MarkSent{}));
    RXFLOW_REQUIRE_OK(f.service->Execute(plain[2], domain::MarkSent{}));
    CHECK(*small.CatchUp() == 0);      // neither is controlled
    CHECK(small.streams_read() == 0);  // the last two are remembered
    RXFLOW_REQUIRE_OK(f.service->Execute(plain[0], domain::MarkSent{}));
    CHECK(*small.CatchUp() == 0);
    CHECK(small.streams_read() == 1);  // the first was forgotten
    RXFLOW_REQUIRE_OK(f.service->Execute(id, domain::RecordError{"900", {}, "busy", true}));
    CHECK(*small.CatchUp() == 1);  // the controlled one, read again and audited
    CHECK(small.streams_read() == 2);
    // remembered = 0: nothing is kept, a stream is read for each audited event.
    epcs::TransmissionAuditor none(*f.store, f.audit, "test", /*remembered=*/0);
    RXFLOW_REQUIRE_OK(f.service->Execute(id, domain::MarkSent{}));
    RXFLOW_REQUIRE_OK(f.service->Execute(id, domain::RecordError{"900", {}, "busy", true}));
    CHECK(*none.CatchUp() == 2);
    CHECK(none.streams_read() == 2);
  }

  TEST_CASE("a prescriber with several DEA registrations selects the one the NewRx names") {
    Fixture f;
    f.GrantSign("dr-lindqvist");
    std::string id = f.SubmitOxycodone();
    auto bundle = f.ceremony->Bundle(id, "dr-lindqvist");
    RXFLOW_REQUIRE_OK(bundle);
    // Both Schedule II registrations are offered; the Schedule IV one is not.
    CHECK(bundle->dea_numbers == std::vector<std::string>{"BL4721052", "FL1234563"});
    Status other = f.ceremony->MarkReady(id, "dr-lindqvist", "FL1234563", bundle->sha256);
    CHECK(other.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(std::string(other.message()).find("the NewRx names DEA number BL4721052") !=
          std::string::npos);
    CHECK(f.ceremony->MarkReady(id, "dr-lindqvist", "BL4721052-001AB", bundle->sha256).code() ==
          absl::StatusCode::kPermissionDenied);
    RXFLOW_REQUIRE_OK(f.ceremony->MarkReady(id, "dr-lindqvist", "BL4721052", bundle->sha256));
    f.NextStep();
    RXFLOW_REQUIRE_OK(f.ceremony->Sign(id, "dr-lindqvist", bundle->sha256, f.Proof(kSecret)));
    auto sent = f.service->OutboundXml(id, "send");
    RXFLOW_REQUIRE_OK(sent);
    CHECK(epcs::VerifyPrescriptionSignature(*sent, f.trust).ok());
  }

  TEST_CASE("only the prescriber the NewRx names marks it ready, a DEA number has one holder") {
    Fixture f;
    f.GrantSign("dr-patel");
    std::string id = f.SubmitOxycodone();
    auto bundle = f.ceremony->Bundle(id, "dr-patel");
    RXFLOW_REQUIRE_OK(bundle);
    Status st = f.ceremony->MarkReady(id, "dr-patel", "AP5836727", bundle->sha256);
    CHECK(st.code() == absl::StatusCode::kPermissionDenied);
    CHECK(std::string(st.message()).find("the NewRx names another prescriber") !=
          std::string::npos);
    // Enrolling someone else under the prescriber's DEA number is refused, and audited.
    Status impostor = f.ceremony->Enroll(
        Fixture::Prescriber("dr-impostor", "Lindqvist", "BL4721052", "2027-12-31", ""), "admin-1");
    CHECK(impostor.code() == absl::StatusCode::kAlreadyExists);
    CHECK(std::string(impostor.message()).find("enrolled for another practitioner") !=
          std::string::npos);
    CHECK(f.ceremony
              ->Enroll(Fixture::Prescriber("dr-x", "Lindqvist", "BL4721052", "2027-12-31", ""),
                       "")
              .code() == absl::StatusCode::kInvalidArgument);  // nobody entered it
    CHECK(f.ceremony->Propose("dr-lindqvist", Permission::kSign, true, "").status().code() ==
          absl::StatusCode::kInvalidArgument);
  }

  TEST_CASE("a pharmacy's Error text cannot break the transmission audit") {
    Fixture f;
    std::string id = f.SignedOxycodone();
    RXFLOW_REQUIRE_OK(f.service->Execute(id, domain::MarkSent{}));
    RXFLOW_REQUIRE_OK(
        f.service->Execute(id, domain::RecordError{"900", {}, "digital signature", true}));
    RXFLOW_REQUIRE_OK(f.service->Execute(id, domain::MarkSent{}));
    REQUIRE(f.service
                ->Execute(
                    id, domain::RecordError{"900", {}, "digital signature Smith: 1 Elm St", false})
                .ok());
    epcs::TransmissionAuditor auditor(*f.store, f.audit, "test");
    auto written = auditor.CatchUp();
    REQUIRE_MESSAGE(written.ok(), written.status().ToString());
    auto records = epcs::ReadAuditTrail(*f.store, epcs::kAuditStream, 0, INT64_MAX);
    RXFLOW_REQUIRE_OK(records);
    int failures = 0;
    for (const auto& r : *records) {
      if (r.action != "epcs.transmit.failed") continue;
      ++failures;
      CHECK(r.detail.find("Smith") == std::string::npos);  // the free text is not kept
      CHECK(r.detail.find("SCRIPT Error 900") != std::string::npos);
    }
    CHECK(failures == 2);
  }

  TEST_CASE("signing is not granted to a practitioner whose registrations have lapsed") {
    Fixture f;
    REQUIRE(f.ceremony
                ->Enroll(Fixture::Prescriber("dr-old", "Lindqvist", "BL1234563", "2020-01-31", ""),
                         "admin-1")
                .ok());
    auto proposal = f.ceremony->Propose("dr-old", Permission::kSign, true, "admin-1");
    RXFLOW_REQUIRE_OK(proposal);
    f.NextStep();
    Status st = f.ceremony->Approve("dr-old", *proposal, "dr-patel", f.Proof(kSecret2));
    CHECK(st.code() == absl::StatusCode::kPermissionDenied);
    CHECK(std::string(st.message()).find("no current DEA registration") != std::string::npos);
    CHECK_FALSE(f.ceremony->Practitioner("dr-old")->may_sign);
  }

  TEST_CASE("a signing list holds one patient's prescriptions") {
    Fixture f;
    f.GrantSign("dr-lindqvist");
    std::string first = f.SubmitOxycodone();
    IssueList issues;
    std::string body = testing::ReadFixture("fhir/schedule2_oxycodone.json");
    auto same_patient = f.service->Submit(Fixture::NextOfSeries(), issues, {}, "second-order");
    RXFLOW_REQUIRE_OK(same_patient);
    auto list = f.ceremony->Bundles({first, same_patient->id}, "dr-lindqvist");
    RXFLOW_REQUIRE_OK(list);
    CHECK(list->size() == 2);
    // Another patient: the list is refused.
    size_t at = body.find("Brennan");
    REQUIRE(at != std::string::npos);
    body.replace(at, 7, "Okafor!");
    auto other = f.service->Submit(body, issues, {}, "other-patient");
    REQUIRE_MESSAGE(other.ok(), other.status().ToString());
    auto mixed = f.ceremony->Bundles({first, other->id}, "dr-lindqvist");
    CHECK(mixed.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(mixed.status().message()).find("another patient") != std::string::npos);
  }

  TEST_CASE("an audit record the store cannot take is counted, not dropped silently") {
    Fixture f;
    // The audit trail over a store that refuses appends to the audit stream.
    struct NoAudit : store::StoreWrapper {
      using StoreWrapper::StoreWrapper;
      StatusOr<store::AppendResult> Append(store::AppendRequest r) override {
        if (r.stream_id == epcs::kAuditStream) return absl::UnavailableError("disk full");
        return StoreWrapper::Append(std::move(r));
      }
    } broken(*f.store);
    epcs::AuditTrailOptions to;
    to.checkpoint_signer = f.key.get();
    epcs::AuditTrail trail(broken, f.clock, to);
    epcs::CeremonyOptions co;
    // (Without a time source or a checkpoint signer, starting would record that: a failure.)
    co.time_source = &f.trusted;
    epcs::Ceremony ceremony(*f.service, *f.store, trail, f.clock, co);
    CHECK(ceremony.audit_failures() == 0);
    REQUIRE(
        ceremony
            .Enroll(Fixture::Prescriber("dr-q", "Quinn", "BQ1234563", "2027-12-31", ""), "admin-1")
            .ok());
    CHECK(ceremony.audit_failures() == 1);
  }
}
