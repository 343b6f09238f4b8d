// SPDX-License-Identifier: Apache-2.0
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "rxflow/domain/prescription.h"

#include "testing/status.h"

using namespace rxflow;
using namespace rxflow::domain;

namespace {

std::string Message(const Status& s) { return std::string(s.message()); }

bool Mentions(const Status& s, std::string_view text) {
  return Message(s).find(text) != std::string::npos;
}

PrescriptionTransformed TransformedEvent(std::string schedule = "") {
  PrescriptionTransformed t;
  t.script_version = "2023011";
  t.message_id = "MSG-1";
  t.newrx_xml = "<Message><Body><NewRx/></Body></Message>";
  t.pharmacy_ncpdp_id = "1234567";
  t.prescriber_npi = "1234567893";
  t.drug_description = schedule.empty() ? "Lisinopril 10 MG Oral Tablet"
                                        : "Oxycodone Hydrochloride 5 MG Oral Tablet";
  t.dea_schedule = std::move(schedule);
  return t;
}

Submit SubmitCommand(std::string schedule = "") {
  Submit s;
  s.idempotency_key = "idem-1";
  s.request_sha256 = "abc123";
  s.source = "fhir-bundle";
  s.transformed = TransformedEvent(std::move(schedule));
  return s;
}

// The registrant's review (MarkReady) and signature with its two-factor event.
MarkReady MarkReadyCommand() { return MarkReady{"registrant-7", "BL4721052", "d1g3st"}; }
Sign SignCommand() {
  return Sign{"registrant-7", "c2lnbmF0dXJl", "d1g3st", "BL4721052", "2fa-1", "<Message/>", "", ""};
}

// One command of each kind, each well-formed.
std::vector<Command> AllCommands() {
  return {SubmitCommand(),
          SignCommand(),
          Route{},
          MarkSent{},
          RecordStatus{"000", "MSG-1"},
          RecordVerify{"MSG-1"},
          RecordError{"900", {"008"}, "timeout", true},
          RecordFill{"Dispensed", true, "30", ""},
          RequestCancel{"wrong drug", "CXL-1"},
          RecordCancelResponse{true, "ok"},
          Expire{},
          AmendClinicalContent{"dosage"},
          MarkReady{"dr-1", "BL4721052", "b1"},
          RecordPdmpQuery{PdmpQueried{"pdmp simulator", "2026-12-01T09:00:00Z", "1922334455",
                                      "found", 2, 1, "2026-11-30", ""}}};
}

// A prescription stream driven command by command (REQUIREs each command succeeds).
struct Stream {
  PrescriptionState state;
  std::vector<Event> history;

  std::vector<Event> Do(const Command& c) {
    auto events = Decide(state, c);
    REQUIRE_MESSAGE(events.ok(), CommandName(c) << ": " << events.status().ToString());
    for (const Event& e : *events) {
      state = Apply(state, e);
      history.push_back(e);
    }
    return *events;
  }

  Status Refuse(const Command& c) const {
    auto events = Decide(state, c);
    REQUIRE_MESSAGE(!events.ok(), CommandName(c)
                                      << " was allowed in state " << StateName(state.state));
    return events.status();
  }
};

std::vector<std::string_view> Types(const std::vector<Event>& events) {
  std::vector<std::string_view> out;
  for (const Event& e : events) out.push_back(EventType(e));
  return out;
}

// Named starting points: the stream after the commands that lead to each state.
Stream At(std::string_view where) {
  Stream s;
  if (where == "None") return s;
  if (where == "Received") {  // only transient in Decide; reached by applying the event
    s.state = Apply(s.state, PrescriptionReceived{"idem-1", "abc123", "fhir-bundle"});
    return s;
  }
  if (where == "Transformed(controlled)") {  // likewise transient
    s.state = Apply(s.state, PrescriptionReceived{"idem-1", "abc123", "fhir-bundle"});
    s.state = Apply(s.state, TransformedEvent("CII"));
    return s;
  }
  if (where == "Rejected") {
    Submit submit = SubmitCommand();
    submit.rejection_reasons = {"error: MedicationRequest.subject: missing"};
    s.Do(submit);
    return s;
  }
  bool controlled = where == "ReadyToSign" || where == "Signed";
  s.Do(SubmitCommand(controlled ? "CII" : ""));
  if (controlled) s.Do(MarkReadyCommand());  // reviewed: Sign is the next step
  if (where == "Transformed" || where == "ReadyToSign") return s;
  if (where == "Expired") {
    s.Do(Expire{});
    return s;
  }
  if (controlled) {
    s.Do(SignCommand());
    return s;
  }
  s.Do(Route{});
  if (where == "Queued") return s;
  s.Do(MarkSent{});
  if (where == "Sent") return s;
  if (where == "Failed") {
    s.Do(RecordError{"602", {}, "unknown pharmacy", false});
    return s;
  }
  if (where == "CancelRequested" || where == "Cancelled") {
    s.Do(RequestCancel{"wrong drug", "CXL-1"});
    if (where == "Cancelled") s.Do(RecordCancelResponse{true, "approved"});
    return s;
  }
  s.Do(RecordStatus{"000", "MSG-1"});
  if (where == "Acknowledged") return s;
  s.Do(RecordVerify{"MSG-1"});
  if (where == "Verified") return s;
  s.Do(RecordFill{"PartiallyDispensed", false, "10", ""});
  if (where == "Dispensed(partial)") return s;
  s.Do(RecordFill{"Dispensed", true, "20", ""});
  REQUIRE(where == "Dispensed(complete)");
  return s;
}

// One event of each type, every field set to something other than its default.
std::vector<Event> OneOfEach() {
  return {
      PrescriptionReceived{"idem-1", "abc123", "fhir-envelope"},
      PrescriptionRejected{{"error: a: b", "fatal: c: \"quoted\" \\ d"}},
      TransformedEvent("CIV"),
      PrescriptionReadyToSign{},
      PrescriptionSigned{"registrant-7", "c2ln", "d1g", "BL4721052", "2fa-1", "<Message/>", "", ""},
      PrescriptionQueued{"7654321", 3},
      PrescriptionSent{"MSG-9", 4},
      PharmacyAcknowledged{"010", "MSG-9"},
      PharmacyVerified{"MSG-9"},
      PharmacyErrorReceived{"601", {"008", "1001"}, "receiver unable to process", true},
      PrescriptionDispensed{"PartiallyDispensed", false, "15", "00406055201"},
      CancelRequested{"patient request", "CXL-2"},
      PrescriptionCancelled{"approved"},
      CancelDenied{"already dispensed"},
      PrescriptionExpired{},
      PrescriptionMarkedReady{"registrant-7", "BL4721052", "b1"},
      InteractionsScreened{
          "ONC",
          "phenelzine 15 MG Oral Tablet",
          std::string(64, 'a'),
          {{"phenelzine", ""}, {"x \"quoted\"", "123"}},
          false,
          2,
          {{"onc-04", "contraindicated", "Risk.", "Phansalkar 2012", "phenelzine", "mao-inhibitors",
            "sertraline", "ssris-serotonergic", "sertraline 50 MG Oral Tablet", "rx-1"}},
          "supervised cross-taper"},
      PdmpQueried{"fhir pdmp pdmp.example", "2026-12-01T09:00:00.123456Z", "1922334455",
                  "unavailable", 0, 0, "", "Connection refused \"x\""},
  };
}

// A fake version 0 of PrescriptionSent that called the message id "msg_id".
std::string UpcastSentV0(std::string_view payload) {
  std::string out(payload);
  size_t at = out.find("\"msg_id\"");
  if (at != std::string::npos) out.replace(at, 8, "\"message_id\"");
  return out;
}

std::string BrokenUpcaster(std::string_view) { return "{not json"; }

}  // namespace

TEST_SUITE("Domain") {
  TEST_CASE("state, event and command names") {
    CHECK(StateName(State::kNone) == "None");
    CHECK(StateName(State::kReadyToSign) == "ReadyToSign");
    CHECK(StateName(State::kCancelRequested) == "CancelRequested");
    CHECK(StateName(State::kExpired) == "Expired");
    std::set<std::string_view> names;
    for (int i = 0; i <= static_cast<int>(State::kExpired); ++i) {
      names.insert(StateName(static_cast<State>(i)));
    }
    CHECK(names.size() == 16);
    CHECK(CommandName(AmendClinicalContent{}) == "AmendClinicalContent");
    CHECK(CommandName(RecordCancelResponse{}) == "RecordCancelResponse");
    std::set<std::string_view> commands;
    for (const Command& c : AllCommands()) commands.insert(CommandName(c));
    CHECK(commands.size() == std::variant_size_v<Command>);
    CHECK(EventType(PharmacyErrorReceived{}) == "PharmacyErrorReceived");
    CHECK(EventSchemaVersion(PrescriptionSent{}) == 1);
  }

  TEST_CASE("terminal states") {
    for (State s : {State::kRejected, State::kFailed, State::kCancelled, State::kExpired}) {
      CHECK(IsTerminal(s, false));
    }
    CHECK(IsTerminal(State::kDispensed, true));
    CHECK_FALSE(IsTerminal(State::kDispensed, false));
    for (State s : {State::kNone, State::kReceived, State::kTransformed, State::kReadyToSign,
                    State::kSigned, State::kQueued, State::kSent, State::kAcknowledged,
                    State::kVerified, State::kCancelRequested, State::kCancelDenied}) {
      CHECK_FALSE(IsTerminal(s, false));
    }
  }

  TEST_CASE("non-controlled happy path: Submit, Route, MarkSent, RecordStatus, RecordFill") {
    Stream s;
    CHECK(Types(s.Do(SubmitCommand())) ==
          std::vector<std::string_view>{"PrescriptionReceived", "PrescriptionTransformed"});
    CHECK(s.state.state == State::kTransformed);
    CHECK(s.state.idempotency_key == "idem-1");
    CHECK(s.state.message_id == "MSG-1");
    CHECK(s.state.script_version == "2023011");
    CHECK(s.state.prescriber_npi == "1234567893");
    CHECK(s.state.drug_description == "Lisinopril 10 MG Oral Tablet");
    CHECK_FALSE(s.state.controlled());
    CHECK(s.state.version == 2);

    auto queued = s.Do(Route{});
    REQUIRE(queued.size() == 1);
    const auto& q = std::get<PrescriptionQueued>(queued[0]);
    CHECK(q.pharmacy_ncpdp_id == "1234567");  // the one the prescription names
    CHECK(q.attempt == 1);
    CHECK(s.state.state == State::kQueued);
    CHECK(s.state.send_attempts == 0);

    auto sent = s.Do(MarkSent{});
    const auto& m = std::get<PrescriptionSent>(sent.at(0));
    CHECK(m.message_id == "MSG-1");  // the state's
    CHECK(m.attempt == 1);
    CHECK(s.state.state == State::kSent);
    CHECK(s.state.send_attempts == 1);

    auto ack = s.Do(RecordStatus{"000", "MSG-1"});
    CHECK(std::get<PharmacyAcknowledged>(ack.at(0)).status_code == "000");
    CHECK(s.state.state == State::kAcknowledged);

    auto fill = s.Do(RecordFill{"Dispensed", true, "30", ""});
    CHECK(std::get<PrescriptionDispensed>(fill.at(0)).quantity == "30");
    CHECK(s.state.state == State::kDispensed);
    CHECK(s.state.fill_complete);
    CHECK(IsTerminal(s.state.state, s.state.fill_complete));
    CHECK(s.state.version == 6);
  }

  TEST_CASE("Verify after Sent or Acknowledged, then a fill") {
    Stream a = At("Sent");
    a.Do(RecordVerify{"MSG-1"});
    CHECK(a.state.state == State::kVerified);
    a.Do(RecordFill{"Dispensed", true, "30", ""});
    CHECK(a.state.state == State::kDispensed);

    Stream b = At("Acknowledged");
    auto v = b.Do(RecordVerify{"MSG-1"});
    CHECK(std::get<PharmacyVerified>(v.at(0)).relates_to_message_id == "MSG-1");
    CHECK(b.state.state == State::kVerified);

    Stream c = At("Queued");  // a Status that overtook our own MarkSent
    c.Do(RecordStatus{"010", "MSG-1"});
    CHECK(c.state.state == State::kAcknowledged);
  }

  TEST_CASE("MarkSent takes the command's message id and Route the command's pharmacy") {
    Stream s = At("Transformed");
    auto queued = s.Do(Route{"7654321"});  // another pharmacy, before the first send
    CHECK(std::get<PrescriptionQueued>(queued.at(0)).pharmacy_ncpdp_id == "7654321");
    CHECK(s.state.pharmacy_ncpdp_id == "7654321");
    auto sent = s.Do(MarkSent{"MSG-OUT-1"});
    CHECK(std::get<PrescriptionSent>(sent.at(0)).message_id == "MSG-OUT-1");
    CHECK(s.state.message_id == "MSG-OUT-1");
  }

  TEST_CASE("Route to a different pharmacy after a send is refused") {
    PrescriptionState st = At("Signed").state;
    st.send_attempts = 1;  // not reachable by commands today: the guard is defensive
    auto r = Decide(st, Route{"7654321"});
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(Mentions(r.status(), "Route is not allowed in state Signed"));
    CHECK(Mentions(r.status(), "7654321"));
    // The same pharmacy is fine, and counts the attempt.
    auto same = Decide(st, Route{"1234567"});
    RXFLOW_REQUIRE_OK(same);
    CHECK(std::get<PrescriptionQueued>(same->at(0)).attempt == 2);
  }

  TEST_CASE("malformed Route, MarkSent and Sign commands are InvalidArgument") {
    PrescriptionState st = At("Transformed").state;
    st.pharmacy_ncpdp_id.clear();
    auto route = Decide(st, Route{});
    REQUIRE_FALSE(route.ok());
    CHECK(route.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(Mentions(route.status(), "pharmacy"));

    PrescriptionState queued = At("Queued").state;
    queued.message_id.clear();
    auto sent = Decide(queued, MarkSent{});
    REQUIRE_FALSE(sent.ok());
    CHECK(sent.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(Mentions(sent.status(), "message id"));

    Stream s = At("ReadyToSign");
    Status no_signer = s.Refuse(Sign{"", "c2ln", "d1g", "", "", "", "", ""});
    CHECK(no_signer.code() == absl::StatusCode::kInvalidArgument);
    CHECK(Mentions(no_signer, "signer"));
    Status no_signature = s.Refuse(Sign{"registrant-7", "", "d1g", "", "", "", "", ""});
    CHECK(no_signature.code() == absl::StatusCode::kInvalidArgument);
    CHECK(Mentions(no_signature, "signature"));
    CHECK(s.state.state == State::kReadyToSign);
  }

  TEST_CASE("a rejected submission ends in Rejected") {
    Stream s;
    Submit submit = SubmitCommand();
    submit.rejection_reasons = {"error: MedicationRequest.subject: missing"};
    auto events = s.Do(submit);
    CHECK(Types(events) ==
          std::vector<std::string_view>{"PrescriptionReceived", "PrescriptionRejected"});
    CHECK(std::get<PrescriptionRejected>(events[1]).reasons == submit.rejection_reasons);
    CHECK(s.state.state == State::kRejected);
    CHECK(IsTerminal(s.state.state, s.state.fill_complete));
  }

  TEST_CASE("controlled path: Submit, Sign, Route, MarkSent") {
    Stream s;
    auto events = s.Do(SubmitCommand("CII"));
    CHECK(Types(events) == std::vector<std::string_view>{"PrescriptionReceived",
                                                         "PrescriptionTransformed",
                                                         "PrescriptionReadyToSign"});
    CHECK(s.state.state == State::kReadyToSign);
    CHECK(s.state.controlled());
    CHECK(s.state.dea_schedule == "CII");
    CHECK_FALSE(s.state.signed_);

    CHECK(Mentions(s.Refuse(SignCommand()), "it was not marked ready"));
    s.Do(MarkReadyCommand());
    auto signed_events = s.Do(SignCommand());
    const auto& sig = std::get<PrescriptionSigned>(signed_events.at(0));
    CHECK(sig.signer == "registrant-7");
    CHECK(sig.signature == "c2lnbmF0dXJl");
    CHECK(sig.signed_content_sha256 == "d1g3st");
    CHECK(s.state.state == State::kSigned);
    CHECK(s.state.signed_);

    s.Do(Route{});
    CHECK(s.state.state == State::kQueued);
    s.Do(MarkSent{});
    CHECK(s.state.state == State::kSent);
    s.Do(RecordVerify{"MSG-1"});
    s.Do(RecordFill{"Dispensed", true, "20", ""});
    CHECK(IsTerminal(s.state.state, s.state.fill_complete));
  }

  TEST_CASE("a controlled substance cannot route before it is signed") {
    for (const char* where : {"ReadyToSign", "Transformed(controlled)"}) {
      CAPTURE(where);
      Stream s = At(where);
      for (const Route& r : {Route{}, Route{"7654321"}}) {
        Status st = s.Refuse(r);
        CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
        CHECK(Mentions(st, "Route is not allowed in state "));
        CHECK(Mentions(st, StateName(s.state.state)));
        CHECK(Mentions(st, "a controlled substance (Schedule CII) must be signed before routing"));
      }
    }
    Stream s = At("ReadyToSign");
    CHECK(Message(s.Refuse(MarkSent{})) == "MarkSent is not allowed in state ReadyToSign");
  }

  TEST_CASE("once marked ready, only its practitioner signs what was shown, with two factors") {
    Stream s = At("ReadyToSign");
    CHECK(Mentions(s.Refuse(MarkReady{"dr-1", "", "b1"}), "needs the practitioner, DEA number"));
    CHECK(Mentions(At("Sent").Refuse(MarkReady{"dr-1", "BL4721052", "b1"}),
                   "MarkReady is not allowed in state Sent"));
    s.Do(MarkReady{"dr-1", "BL4721052", "bundle-1"});
    CHECK(s.state.state == State::kReadyToSign);
    CHECK(s.state.ready_by == "dr-1");
    auto sign = [](std::string signer, std::string bundle, std::string dea, std::string two_fa) {
      return Sign{std::move(signer),
                  "c2ln",
                  std::move(bundle),
                  std::move(dea),
                  std::move(two_fa),
                  "<Message/>",
                  "",
                  ""};
    };
    CHECK(Mentions(s.Refuse(sign("dr-2", "bundle-1", "BL4721052", "2fa-1")),
                   "only the practitioner who marked it ready may sign it"));
    CHECK(Mentions(s.Refuse(sign("dr-1", "bundle-2", "BL4721052", "2fa-1")),
                   "the signing bundle changed since it was marked ready"));
    CHECK(
        Mentions(s.Refuse(sign("dr-1", "bundle-1", "FB1234563", "2fa-1")), "not the one selected"));
    CHECK(Mentions(s.Refuse(sign("dr-1", "bundle-1", "BL4721052", "")),
                   "no completed two-factor authentication"));
    // A fresh ready (after a new review) replaces the old bundle.
    s.Do(MarkReady{"dr-1", "BL4721052", "bundle-2"});
    CHECK(Mentions(s.Refuse(sign("dr-1", "bundle-1", "BL4721052", "2fa-1")),
                   "the signing bundle changed"));
    auto events = s.Do(sign("dr-1", "bundle-2", "BL4721052", "2fa-1"));
    REQUIRE(events.size() == 1);
    const auto& signed_event = std::get<PrescriptionSigned>(events[0]);
    CHECK(signed_event.two_factor_event_id == "2fa-1");
    CHECK(signed_event.signed_newrx_xml == "<Message/>");
    CHECK(s.state.state == State::kSigned);
  }

  TEST_CASE("a version 1 PrescriptionSigned is upcast with the EPCS fields empty") {
    auto d = DecodeEvent("PrescriptionSigned", 1,
                         R"({"signer":"dr-1","signature":"c2ln","signed_content_sha256":"d1g"})");
    REQUIRE_MESSAGE(d.ok(), d.status().ToString());
    const auto& e = std::get<PrescriptionSigned>(*d);
    CHECK(e.signer == "dr-1");
    CHECK(e.dea_number.empty());
    CHECK(e.signed_newrx_xml.empty());
    CHECK(e.record_cosignature.empty());  // and on through version 2 to 3
    auto v2 = DecodeEvent("PrescriptionSigned", 2,
                          R"({"signer":"dr-1","signature":"c2ln","signed_content_sha256":"d1g",)"
                          R"("dea_number":"BL4721052","two_factor_event_id":"2fa",)"
                          R"("signed_newrx_xml":"<Message/>"})");
    REQUIRE_MESSAGE(v2.ok(), v2.status().ToString());
    CHECK(std::get<PrescriptionSigned>(*v2).dea_number == "BL4721052");
    CHECK(std::get<PrescriptionSigned>(*v2).record_cosigner_key_sha256.empty());
    CHECK(DecodeEvent("PrescriptionSigned", 1, R"({"signer":"dr-1"})", UpcasterRegistry())
              .status()
              .code() == absl::StatusCode::kDataLoss);
    CHECK(IsPrescriptionEventType("PrescriptionMarkedReady"));
    CHECK_FALSE(IsPrescriptionEventType("EpcsAuditRecorded"));
  }

  TEST_CASE("a version 1 PrescriptionDispensed is upcast without a dispensed NDC") {
    auto d = DecodeEvent("PrescriptionDispensed", 1,
                         R"({"fill_status":"Dispensed","complete":true,"quantity":"20"})");
    REQUIRE_MESSAGE(d.ok(), d.status().ToString());
    CHECK(std::get<PrescriptionDispensed>(*d).quantity == "20");
    CHECK(std::get<PrescriptionDispensed>(*d).dispensed_ndc.empty());
    CHECK(EventSchemaVersion(PrescriptionDispensed{}) == 2);
    CHECK(DecodeEvent("PrescriptionDispensed", 1, R"({"fill_status":"Dispensed"})",
                      UpcasterRegistry())
              .status()
              .code() == absl::StatusCode::kDataLoss);
  }

  TEST_CASE("clinical content cannot be amended, before or after signing") {
    for (const char* where : {"Received", "Transformed", "ReadyToSign", "Queued", "Sent"}) {
      CAPTURE(where);
      Status st = At(where).Refuse(AmendClinicalContent{"dosage"});
      CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
      CHECK(Mentions(st, "AmendClinicalContent"));
      CHECK(Mentions(st, "dosage"));
      CHECK(Mentions(st, std::string("in state ") + std::string(StateName(At(where).state.state))));
      CHECK(Mentions(st, "cancel and submit a new prescription"));
      CHECK_FALSE(Mentions(st, "signed"));
    }
    Stream s = At("Signed");
    for (int step = 0; step < 3; ++step) {
      CAPTURE(StateName(s.state.state));
      Status st = s.Refuse(AmendClinicalContent{"quantity"});
      CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
      CHECK(Mentions(st, std::string("in state ") + std::string(StateName(s.state.state))));
      CHECK(Mentions(st, "clinical content cannot change after it is signed"));
      CHECK(Mentions(st, "cancel and submit a new prescription"));
      if (step == 0) s.Do(Route{});
      if (step == 1) s.Do(MarkSent{});
    }
    Status none = At("None").Refuse(AmendClinicalContent{});
    CHECK(none.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(Mentions(none, "AmendClinicalContent is not allowed in state None"));
  }

  TEST_CASE("a retryable error returns to Queued and counts attempts until max_attempts") {
    Stream s = At("Queued");
    for (int attempt = 1; attempt <= 5; ++attempt) {
      CAPTURE(attempt);
      auto sent = s.Do(MarkSent{});
      CHECK(std::get<PrescriptionSent>(sent.at(0)).attempt == attempt);
      CHECK(s.state.send_attempts == attempt);
      auto error = s.Do(RecordError{"900", {"008"}, "timeout", true});
      const auto& e = std::get<PharmacyErrorReceived>(error.at(0));
      CHECK(e.code == "900");
      CHECK(e.description_codes == std::vector<std::string>{"008"});
      CHECK(s.state.last_error_code == "900");
      if (attempt < 5) {
        CHECK(e.retryable);
        CHECK(s.state.state == State::kQueued);
      } else {  // the 5th send's error exhausts the default max_attempts
        CHECK_FALSE(e.retryable);
        CHECK(s.state.state == State::kFailed);
      }
    }
    CHECK(IsTerminal(s.state.state, s.state.fill_complete));
    CHECK(Message(s.Refuse(MarkSent{})).find("MarkSent is not allowed in state Failed") == 0);

    Stream t = At("Queued");
    t.Do(MarkSent{});
    t.Do(RecordError{"900", {}, "timeout", true, /*max_attempts=*/2});
    CHECK(t.state.state == State::kQueued);
    t.Do(MarkSent{});
    t.Do(RecordError{"900", {}, "timeout", true, /*max_attempts=*/2});
    CHECK(t.state.state == State::kFailed);
  }

  TEST_CASE("an error while Queued or Acknowledged, and a permanent error, ends in Failed") {
    Stream q = At("Queued");  // a transport error before the first send is retryable
    auto e = q.Do(RecordError{"600", {}, "connection refused", true});
    CHECK(std::get<PharmacyErrorReceived>(e.at(0)).retryable);
    CHECK(q.state.state == State::kQueued);

    Stream a = At("Acknowledged");
    a.Do(RecordError{"602", {}, "unknown patient", false});
    CHECK(a.state.state == State::kFailed);

    Stream s = At("Sent");
    auto perm = s.Do(RecordError{"602", {"1001"}, "unknown pharmacy", false});
    CHECK_FALSE(std::get<PharmacyErrorReceived>(perm.at(0)).retryable);
    CHECK(s.state.state == State::kFailed);
    CHECK(s.state.last_error_code == "602");
    CHECK(IsTerminal(s.state.state, s.state.fill_complete));
  }

  TEST_CASE("every command is refused in every terminal state") {
    for (const char* where :
         {"Rejected", "Failed", "Cancelled", "Expired", "Dispensed(complete)"}) {
      Stream s = At(where);
      REQUIRE(IsTerminal(s.state.state, s.state.fill_complete));
      for (const Command& c : AllCommands()) {
        CAPTURE(where);
        CAPTURE(CommandName(c));
        Status st = s.Refuse(c);
        CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
        CHECK(Mentions(st, CommandName(c)));
        CHECK(Mentions(
            st, std::string(" is not allowed in state ") + std::string(StateName(s.state.state))));
      }
    }
  }

  TEST_CASE("every command is allowed exactly where the lifecycle allows it") {
    // Commands allowed in each non-terminal state; every other one is refused. A PDMP query is
    // recorded in any of them.
    const std::map<std::string, std::set<std::string_view>> allowed = {
        {"None", {"Submit"}},
        {"Received", {"RecordPdmpQuery", "RequestCancel", "Expire"}},
        {"Transformed", {"RecordPdmpQuery", "Route", "RequestCancel", "Expire"}},
        {"Transformed(controlled)", {"RecordPdmpQuery", "RequestCancel", "Expire"}},
        {"ReadyToSign", {"RecordPdmpQuery", "MarkReady", "Sign", "RequestCancel", "Expire"}},
        {"Signed", {"RecordPdmpQuery", "Route", "RequestCancel", "Expire"}},
        {"Queued",
         {"RecordPdmpQuery", "MarkSent", "RecordStatus", "RecordError", "RequestCancel", "Expire"}},
        {"Sent",
         {"RecordPdmpQuery", "RecordStatus", "RecordVerify", "RecordError", "RecordFill",
          "RequestCancel", "Expire"}},
        {"Acknowledged",
         {"RecordPdmpQuery", "RecordVerify", "RecordError", "RecordFill", "RequestCancel",
          "Expire"}},
        {"Verified", {"RecordPdmpQuery", "RecordFill", "RequestCancel", "Expire"}},
        {"Dispensed(partial)", {"RecordPdmpQuery", "RecordFill", "RequestCancel", "Expire"}},
        {"CancelRequested", {"RecordPdmpQuery", "RecordCancelResponse"}},
    };
    for (const auto& [where, commands] : allowed) {
      Stream s = At(where);
      for (const Command& c : AllCommands()) {
        CAPTURE(where);
        CAPTURE(CommandName(c));
        auto r = Decide(s.state, c);
        if (commands.count(CommandName(c))) {
          CHECK_MESSAGE(r.ok(), r.status().ToString());
        } else {
          REQUIRE_FALSE(r.ok());
          CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
          CHECK(Mentions(r.status(), CommandName(c)));
          CHECK(Mentions(r.status(), std::string(" is not allowed in state ") +
                                         std::string(StateName(s.state.state))));
        }
      }
    }
  }

  TEST_CASE("refusals name the command and the state") {
    CHECK(Message(At("Queued").Refuse(RecordFill{})) ==
          "RecordFill is not allowed in state Queued");
    CHECK(Message(At("Sent").Refuse(Sign{})) == "Sign is not allowed in state Sent");
    CHECK(Mentions(At("Sent").Refuse(SubmitCommand()), "Submit is not allowed in state Sent"));
    CHECK(Message(At("Cancelled").Refuse(Expire{})) ==
          "Expire is not allowed in state Cancelled: the prescription is in a terminal state");
  }

  TEST_CASE("a cancel before sending completes at once") {
    for (const char* where : {"Received", "Transformed", "ReadyToSign", "Signed"}) {
      CAPTURE(where);
      Stream s = At(where);
      auto events = s.Do(RequestCancel{"duplicate order", "CXL-1"});
      CHECK(Types(events) ==
            std::vector<std::string_view>{"CancelRequested", "PrescriptionCancelled"});
      CHECK(std::get<CancelRequested>(events[0]).cancel_message_id == "CXL-1");
      CHECK(std::get<PrescriptionCancelled>(events[1]).reason == "duplicate order");
      CHECK(s.state.state == State::kCancelled);
      CHECK(IsTerminal(s.state.state, s.state.fill_complete));
    }
    Status none = At("None").Refuse(RequestCancel{});
    CHECK(none.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(Message(none) == "RequestCancel is not allowed in state None");
  }

  TEST_CASE("a cancel after sending waits for the pharmacy: approved or denied") {
    for (const char* where : {"Queued", "Sent", "Acknowledged", "Verified", "Dispensed(partial)"}) {
      CAPTURE(where);
      Stream approved = At(where);
      State before = approved.state.state;
      auto events = approved.Do(RequestCancel{"wrong drug", "CXL-1"});
      CHECK(Types(events) == std::vector<std::string_view>{"CancelRequested"});
      CHECK(approved.state.state == State::kCancelRequested);
      CHECK(approved.state.before_cancel == before);
      CHECK(Mentions(approved.Refuse(RequestCancel{}),
                     "RequestCancel is not allowed in state CancelRequested"));
      CHECK(Mentions(approved.Refuse(RecordFill{}),
                     "RecordFill is not allowed in state CancelRequested"));
      Stream denied = approved;

      auto ok = approved.Do(RecordCancelResponse{true, "approved"});
      CHECK(std::get<PrescriptionCancelled>(ok.at(0)).reason == "approved");
      CHECK(approved.state.state == State::kCancelled);

      auto no = denied.Do(RecordCancelResponse{false, "already picked up"});
      CHECK(std::get<CancelDenied>(no.at(0)).reason == "already picked up");
      CHECK(denied.state.state == before);
      CHECK(denied.state.before_cancel == State::kNone);
      CHECK_FALSE(IsTerminal(denied.state.state, denied.state.fill_complete));
    }
    // After a denial the prescription carries on: the pharmacy fills it.
    Stream s = At("Sent");
    s.Do(RequestCancel{"wrong drug", "CXL-1"});
    s.Do(RecordCancelResponse{false, "denied"});
    s.Do(RecordFill{"Dispensed", true, "30", ""});
    CHECK(s.state.state == State::kDispensed);

    Status st = At("Sent").Refuse(RecordCancelResponse{});
    CHECK(Message(st) == "RecordCancelResponse is not allowed in state Sent");
  }

  TEST_CASE("expire: any non-terminal state but CancelRequested") {
    for (const char* where :
         {"Received", "Transformed", "Transformed(controlled)", "ReadyToSign", "Signed", "Queued",
          "Sent", "Acknowledged", "Verified", "Dispensed(partial)"}) {
      CAPTURE(where);
      Stream s = At(where);
      auto events = s.Do(Expire{});
      CHECK(Types(events) == std::vector<std::string_view>{"PrescriptionExpired"});
      CHECK(s.state.state == State::kExpired);
      CHECK(IsTerminal(s.state.state, s.state.fill_complete));
    }
    Status pending = At("CancelRequested").Refuse(Expire{});
    CHECK(pending.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(Mentions(pending, "Expire is not allowed in state CancelRequested"));
    CHECK(Mentions(At("None").Refuse(Expire{}), "Expire is not allowed in state None"));
    CHECK(Mentions(At("Dispensed(complete)").Refuse(Expire{}),
                   "Expire is not allowed in state Dispensed"));
  }

  TEST_CASE("partial fills, then a complete fill, then nothing more") {
    Stream s = At("Sent");
    s.Do(RecordFill{"PartiallyDispensed", false, "10", ""});
    CHECK(s.state.state == State::kDispensed);
    CHECK_FALSE(s.state.fill_complete);
    CHECK_FALSE(IsTerminal(s.state.state, s.state.fill_complete));
    s.Do(RecordFill{"PartiallyDispensed", false, "10", ""});
    CHECK_FALSE(s.state.fill_complete);
    s.Do(RecordFill{"Dispensed", true, "10", ""});
    CHECK(s.state.fill_complete);
    CHECK(IsTerminal(s.state.state, s.state.fill_complete));
    Status st = s.Refuse(RecordFill{"Dispensed", true, "10", ""});
    CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(Mentions(st, "RecordFill is not allowed in state Dispensed"));
    CHECK(Mentions(s.Refuse(RequestCancel{}), "RequestCancel is not allowed in state Dispensed"));
  }

  TEST_CASE("Replay of the history equals the state built step by step") {
    Stream s;
    s.Do(SubmitCommand("CII"));
    s.Do(MarkReadyCommand());
    s.Do(SignCommand());
    s.Do(Route{"7654321"});
    s.Do(MarkSent{});
    s.Do(RecordError{"900", {}, "timeout", true});
    s.Do(MarkSent{"MSG-2"});
    s.Do(RecordStatus{"000", "MSG-2"});
    s.Do(RequestCancel{"wrong drug", "CXL-1"});
    s.Do(RecordCancelResponse{false, "denied"});
    s.Do(RecordFill{"PartiallyDispensed", false, "10", ""});
    s.Do(RequestCancel{"patient request", "CXL-2"});

    PrescriptionState replayed = Replay(s.history);
    CHECK(EncodeState(replayed) == EncodeState(s.state));
    CHECK(replayed.version == static_cast<int64_t>(s.history.size()));
    CHECK(replayed.state == State::kCancelRequested);
    CHECK(replayed.before_cancel == State::kDispensed);
    CHECK(replayed.send_attempts == 2);
    CHECK(replayed.message_id == "MSG-2");
    CHECK(replayed.pharmacy_ncpdp_id == "7654321");
    CHECK(replayed.last_error_code == "900");
    CHECK(replayed.signed_);
    CHECK_FALSE(replayed.fill_complete);

    // Replay through the stored form too: encode and decode every event first.
    std::vector<Event> decoded;
    for (const Event& e : s.history) {
      auto d = DecodeEvent(EventType(e), EventSchemaVersion(e), EncodePayload(e));
      REQUIRE_MESSAGE(d.ok(), d.status().ToString());
      decoded.push_back(*d);
    }
    CHECK(EncodeState(Replay(decoded)) == EncodeState(s.state));
    CHECK(Replay({}).state == State::kNone);
    CHECK(Replay({}).version == 0);
  }

  TEST_CASE("every event type round-trips through EncodePayload and DecodeEvent") {
    std::vector<Event> events = OneOfEach();
    std::set<size_t> kinds;
    for (const Event& e : events) kinds.insert(e.index());
    REQUIRE(kinds.size() == std::variant_size_v<Event>);
    for (const Event& e : events) {
      CAPTURE(EventType(e));
      std::string payload = EncodePayload(e);
      CHECK(payload.front() == '{');
      CHECK(payload.find("\"type\"") == std::string::npos);
      auto d = DecodeEvent(EventType(e), EventSchemaVersion(e), payload);
      REQUIRE_MESSAGE(d.ok(), d.status().ToString());
      CHECK(d->index() == e.index());
      CHECK(EncodePayload(*d) == payload);
    }
    auto t = DecodeEvent("PrescriptionTransformed", 1, EncodePayload(TransformedEvent("CIV")));
    RXFLOW_REQUIRE_OK(t);
    const auto& tr = std::get<PrescriptionTransformed>(*t);
    CHECK(tr.newrx_xml == "<Message><Body><NewRx/></Body></Message>");
    CHECK(tr.dea_schedule == "CIV");
    CHECK(tr.pharmacy_ncpdp_id == "1234567");

    Event err = PharmacyErrorReceived{"601", {"008", "1001"}, "unable", true};
    std::string payload = EncodePayload(err);
    CHECK(payload.find("\"description_codes\":[\"008\",\"1001\"]") != std::string::npos);
    CHECK(payload.find("\"retryable\":true") != std::string::npos);
    auto e = DecodeEvent("PharmacyErrorReceived", 1, payload);
    RXFLOW_REQUIRE_OK(e);
    CHECK(std::get<PharmacyErrorReceived>(*e).description_codes ==
          std::vector<std::string>{"008", "1001"});
    CHECK(std::get<PharmacyErrorReceived>(*e).retryable);

    auto q = DecodeEvent("PrescriptionQueued", 1, EncodePayload(PrescriptionQueued{"765", 3}));
    RXFLOW_REQUIRE_OK(q);
    CHECK(std::get<PrescriptionQueued>(*q).attempt == 3);
    CHECK(EncodePayload(PrescriptionExpired{}) == "{}");
  }

  TEST_CASE("encoding does not throw on invalid UTF-8") {
    std::string payload;
    CHECK_NOTHROW(payload = EncodePayload(PrescriptionCancelled{"bad \xff byte"}));
    auto d = DecodeEvent("PrescriptionCancelled", 1, payload);
    RXFLOW_REQUIRE_OK(d);
    // The bad byte is U+FFFD; the rest is kept.
    CHECK(std::get<PrescriptionCancelled>(*d).reason == "bad \xEF\xBF\xBD byte");
  }

  // Payloads are written without a JSON DOM: what must be escaped is, and what a reader of
  // the stored JSON sees is the field table's order.
  TEST_CASE("payload JSON: escapes, field order, lists and numbers") {
    PharmacyErrorReceived e;
    e.code = "602";
    e.description_codes = {"008", "1000"};
    e.description = "quote \" backslash \\ newline \n tab \t bell \x07 caf\xC3\xA9 </x>";
    e.retryable = true;
    CHECK(EncodePayload(e) ==
          "{\"code\":\"602\",\"description_codes\":[\"008\",\"1000\"],"
          "\"description\":\"quote \\\" backslash \\\\ newline \\n tab \\t bell \\u0007 "
          "caf\xC3\xA9 </x>\",\"retryable\":true}");
    auto d = DecodeEvent("PharmacyErrorReceived", 1, EncodePayload(e));
    RXFLOW_REQUIRE_OK(d);
    CHECK(std::get<PharmacyErrorReceived>(*d).description == e.description);
    CHECK(EncodePayload(PrescriptionQueued{"1234567", 3}) ==
          R"({"pharmacy_ncpdp_id":"1234567","attempt":3})");
  }

  TEST_CASE("undecodable events are DataLoss naming the type") {
    auto unknown = DecodeEvent("PrescriptionTeleported", 1, "{}");
    CHECK(unknown.status().code() == absl::StatusCode::kDataLoss);
    CHECK(Mentions(unknown.status(), "PrescriptionTeleported"));

    auto newer = DecodeEvent("PrescriptionSent", 2, R"({"message_id":"M","attempt":1})");
    CHECK(newer.status().code() == absl::StatusCode::kDataLoss);
    CHECK(Mentions(newer.status(), "PrescriptionSent"));
    CHECK(Mentions(newer.status(), "newer"));

    auto older = DecodeEvent("PrescriptionSent", 0, R"({"message_id":"M","attempt":1})");
    CHECK(older.status().code() == absl::StatusCode::kDataLoss);
    CHECK(Mentions(older.status(), "no upcaster"));

    for (const char* bad :
         {"{", "", "nope", R"({"message_id":"M","attempt":1)", "[]", "42", R"({"message_id":"M"})",
          R"({"attempt":1})", R"({"message_id":7,"attempt":1})",
          R"({"message_id":"M","attempt":"1"})", R"({"message_id":"M","attempt":1.5})",
          R"({"message_id":"M","attempt":99999999999})",
          R"({"message_id":"M","attempt":9223372036854775808})",
          R"({"message_id":"M","attempt":18446744073709551616})",
          R"({"message_id":"M","attempt":-1e400})", R"({"message_id":"M\ud800","attempt":1})"}) {
      CAPTURE(bad);
      auto d = DecodeEvent("PrescriptionSent", 1, bad);
      CHECK(d.status().code() == absl::StatusCode::kDataLoss);
      CHECK(Mentions(d.status(), "PrescriptionSent"));
    }
    auto missing = DecodeEvent("PrescriptionSent", 1, R"({"message_id":"M"})");
    CHECK(Mentions(missing.status(), "attempt"));
    auto wrong = DecodeEvent("PharmacyErrorReceived", 1,
                             R"({"code":"600","description_codes":[1],"description":"",)"
                             R"("retryable":false})");
    CHECK(wrong.status().code() == absl::StatusCode::kDataLoss);
    CHECK(Mentions(wrong.status(), "description_codes"));
    auto not_bool = DecodeEvent("PrescriptionDispensed", 1,
                                R"({"fill_status":"Dispensed","complete":1,"quantity":"1"})");
    CHECK(not_bool.status().code() == absl::StatusCode::kDataLoss);
    CHECK(Mentions(not_bool.status(), "complete"));
    // Unknown extra fields are ignored.
    CHECK(DecodeEvent("PrescriptionSent", 1, R"({"message_id":"M","attempt":1,"x":[]})").ok());
  }

  TEST_CASE("a registered upcaster turns an old payload into the current one") {
    UpcasterRegistry upcasters;
    upcasters.Register("PrescriptionSent", 0, &UpcastSentV0);
    // The built-in registry does not know it: without the value, version 0 is DataLoss.
    CHECK(DecodeEvent("PrescriptionSent", 0, R"({"msg_id":"M","attempt":2})").status().code() ==
          absl::StatusCode::kDataLoss);
    auto d = DecodeEvent("PrescriptionSent", 0, R"({"msg_id":"MSG-OLD","attempt":2})", upcasters);
    REQUIRE_MESSAGE(d.ok(), d.status().ToString());
    CHECK(std::get<PrescriptionSent>(*d).message_id == "MSG-OLD");
    CHECK(std::get<PrescriptionSent>(*d).attempt == 2);
    // Version 1 payloads are not upcast.
    auto v1 = DecodeEvent("PrescriptionSent", 1, R"({"msg_id":"MSG-OLD","attempt":2})", upcasters);
    CHECK(v1.status().code() == absl::StatusCode::kDataLoss);
    // A chain with a gap (no -1 -> 0) is DataLoss.
    CHECK(DecodeEvent("PrescriptionSent", -1, R"({"msg_id":"M","attempt":2})", upcasters)
              .status()
              .code() == absl::StatusCode::kDataLoss);

    upcasters.Register("PrescriptionSent", 0, &BrokenUpcaster);
    auto broken = DecodeEvent("PrescriptionSent", 0, R"({"msg_id":"M","attempt":2})", upcasters);
    CHECK(broken.status().code() == absl::StatusCode::kDataLoss);
    CHECK(Mentions(broken.status(), "PrescriptionSent"));

    upcasters.Register("PrescriptionSent", 0, nullptr);  // unregister
    CHECK(DecodeEvent("PrescriptionSent", 0, R"({"msg_id":"M","attempt":2})", upcasters)
              .status()
              .code() == absl::StatusCode::kDataLoss);
  }

  TEST_CASE("the state names the version of the last event that carried the NewRx") {
    Stream s;
    CHECK(s.state.newrx_version == 0);
    s.Do(SubmitCommand("CIII"));  // Received (1), Transformed (2), …
    CHECK(s.state.newrx_version == 2);
    s.Do(MarkReadyCommand());
    CHECK(s.state.newrx_version == 2);
    s.Do(SignCommand());  // the signed copy replaces it
    CHECK(s.state.newrx_version == s.state.version);
    const int64_t signed_at = s.state.version;
    s.Do(Route{});
    s.Do(MarkSent{});
    CHECK(s.state.newrx_version == signed_at);
    // Not in snapshots: a state read from one matches no NewRx kept elsewhere.
    auto d = DecodeState(EncodeState(s.state));
    RXFLOW_REQUIRE_OK(d);
    CHECK(d->newrx_version == 0);
  }

  TEST_CASE("state snapshots round-trip through EncodeState and DecodeState") {
    Stream s;
    s.Do(SubmitCommand("CIII"));
    s.Do(MarkReadyCommand());
    s.Do(SignCommand());
    s.Do(Route{});
    s.Do(MarkSent{});
    s.Do(RecordError{"900", {}, "timeout", true});
    s.Do(MarkSent{});
    s.Do(RecordFill{"PartiallyDispensed", false, "5", ""});
    s.Do(RequestCancel{"r", "CXL"});
    std::string json = EncodeState(s.state);
    auto d = DecodeState(json);
    REQUIRE_MESSAGE(d.ok(), d.status().ToString());
    CHECK(EncodeState(*d) == json);
    CHECK(d->state == State::kCancelRequested);
    CHECK(d->before_cancel == State::kDispensed);
    CHECK(d->version == s.state.version);
    CHECK(d->idempotency_key == "idem-1");
    CHECK(d->message_id == "MSG-1");
    CHECK(d->script_version == "2023011");
    CHECK(d->pharmacy_ncpdp_id == "1234567");
    CHECK(d->prescriber_npi == "1234567893");
    CHECK(d->drug_description == s.state.drug_description);
    CHECK(d->dea_schedule == "CIII");
    CHECK(d->signed_);
    CHECK_FALSE(d->fill_complete);
    CHECK(d->send_attempts == 2);
    CHECK(d->last_error_code == "900");
    // Decide works the same on the decoded state.
    auto denied = Decide(*d, RecordCancelResponse{false, "no"});
    RXFLOW_REQUIRE_OK(denied);
    CHECK(Apply(*d, denied->at(0)).state == State::kDispensed);

    auto fresh = DecodeState(EncodeState(PrescriptionState{}));
    RXFLOW_REQUIRE_OK(fresh);
    CHECK(fresh->state == State::kNone);
  }

  TEST_CASE("malformed snapshots are DataLoss") {
    std::string good = EncodeState(At("Sent").state);
    auto edit = [&](std::string_view from, std::string_view to) {
      std::string j = good;
      size_t at = j.find(from);
      REQUIRE_MESSAGE(at != std::string::npos, from);
      j.replace(at, from.size(), to);
      return j;
    };
    for (const std::string& bad :
         {std::string("{"), std::string("[]"), std::string(""), std::string("{}"),
          edit("\"state\":\"Sent\"", "\"state\":\"Teleported\""),
          edit("\"state\":\"Sent\"", "\"state\":7"),
          edit("\"schema_version\":1", "\"schema_version\":2"),
          edit("\"schema_version\":1", "\"schema_version\":\"1\""),
          edit("\"send_attempts\":1", "\"send_attempts\":true"),
          edit("\"signed\":false", "\"signed\":\"no\""), edit("\"version\":", "\"version_\":")}) {
      CAPTURE(bad);
      auto d = DecodeState(bad);
      CHECK(d.status().code() == absl::StatusCode::kDataLoss);
      CHECK(Mentions(d.status(), "snapshot"));
    }
    CHECK(Mentions(DecodeState(edit("\"state\":\"Sent\"", "\"state\":\"Teleported\"")).status(),
                   "Teleported"));
  }
}
