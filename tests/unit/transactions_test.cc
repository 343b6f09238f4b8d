// SPDX-License-Identifier: Apache-2.0
// FHIR → SCRIPT of the Task transactions (mapping::FromFhirBundle, ToScript): which
// transaction a Bundle's Task names, and what a Bundle that cannot be sent is told.
#include <string>

#include <doctest/doctest.h>

#include "rxflow/fhir/json.h"
#include "rxflow/mapping/mapping.h"
#include "rxflow/transform.h"

#include "testing/files.h"
#include "testing/status.h"

using namespace rxflow;

namespace {

// The Bundle SCRIPT → FHIR makes of a fixture.
fhir::Bundle BundleOf(const std::string& fixture) {
  IssueList issues;
  auto json = ToFhirJson(testing::ReadFixture("script/" + fixture + ".xml"), issues);
  RXFLOW_REQUIRE_OK(json);
  auto resource = fhir::ParseResource(*json, issues);
  RXFLOW_REQUIRE_OK(resource);
  REQUIRE(resource->get<fhir::Bundle>() != nullptr);
  return *resource->get<fhir::Bundle>();
}

// The Bundle's (first) Task and its entry index.
fhir::Task* TaskOf(fhir::Bundle& b, size_t* index = nullptr) {
  for (size_t i = 0; i < b.entry.size(); ++i) {
    if (auto* t = b.entry[i].resource ? b.entry[i].resource->get<fhir::Task>() : nullptr) {
      if (index) *index = i;
      return t;
    }
  }
  return nullptr;
}

mapping::NewRxOptions Options() {
  mapping::NewRxOptions o;
  o.message_id = "tx-test-1";
  o.sent_time = "2027-01-08T09:05:12Z";
  o.to = "SYNPBM001";
  o.to_qualifier = "PY";
  o.from = "6719450382001";
  return o;
}

bool HasError(const IssueList& issues, const std::string& path, const std::string& text) {
  for (const Issue& i : issues) {
    if (i.severity == Severity::kError && i.path == path &&
        i.message.find(text) != std::string::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace

TEST_SUITE("FHIR → SCRIPT transactions") {
  TEST_CASE("the Task's code, display, inputs or focus tell which transaction a Bundle is") {
    CHECK(mapping::BundleTransaction(BundleOf("rxfill_indicator_change")) ==
          "RxFillIndicatorChange");
    CHECK(mapping::BundleTransaction(BundleOf("rxhistory_response_dispensed")) ==
          "RxHistoryResponse");
    CHECK(mapping::BundleTransaction(BundleOf("newrx_response_denied")) == "NewRxResponseDenied");
    CHECK(mapping::BundleTransaction(BundleOf("cancelrx_response_approved")).empty());
    CHECK(mapping::BundleTransaction(BundleOf("newrx_2017071_lisinopril")).empty());
    // Without the display ToFhir writes, the Task itself says which answer it is.
    for (const char* name :
         {"rxtransfer_response", "rxhistory_response_prescribed", "newrx_response_denied"}) {
      CAPTURE(name);
      fhir::Bundle b = BundleOf(name);
      const std::string expected = mapping::BundleTransaction(b);
      TaskOf(b)->code->coding[0].display.clear();
      CHECK(mapping::BundleTransaction(b) == expected);
    }
  }

  TEST_CASE("a Bundle without such a Task is refused, naming what was looked for") {
    fhir::Bundle b = BundleOf("rxhistory_request");
    size_t index = 0;
    TaskOf(b, &index);
    b.entry.erase(b.entry.begin() + static_cast<long>(index));
    IssueList issues;
    auto out = mapping::FromFhirBundle(b, issues, Options());
    REQUIRE_FALSE(out.ok());
    CHECK(out.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(HasError(issues, "Bundle.entry", "ncpdp-transaction"));
  }

  TEST_CASE("a Task with a code FHIR → SCRIPT does not build is refused at the code") {
    fhir::Bundle b = BundleOf("rxfill_indicator_change");
    size_t index = 0;
    TaskOf(b, &index)->code->coding[0].code = "RxFrobnicate";
    IssueList issues;
    auto out = mapping::FromFhirBundle(b, issues, Options());
    REQUIRE_FALSE(out.ok());
    CHECK(HasError(issues,
                   "Bundle.entry[" + std::to_string(index) + "].resource.code.coding[0].code",
                   "RxFrobnicate"));

    // An answer RxFlow reads but does not build (CancelRxResponse) is refused by name.
    fhir::Bundle cancel = BundleOf("cancelrx_response_approved");
    IssueList cancel_issues;
    auto refused = mapping::FromFhirBundle(cancel, cancel_issues, Options());
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().message().find("CancelRxResponse") != std::string::npos);
  }

  TEST_CASE("a missing Patient is an error at the Task's for, naming the SCRIPT element") {
    fhir::Bundle b = BundleOf("rxhistory_request");
    size_t index = 0;
    TaskOf(b, &index)->for_.reset();
    IssueList issues;
    auto out = mapping::FromFhirBundle(b, issues, Options());
    REQUIRE_FALSE(out.ok());
    CHECK(HasError(issues, "Bundle.entry[" + std::to_string(index) + "].resource.for",
                   "SCRIPT /Message/Body/RxHistoryRequest/Patient"));
  }

  TEST_CASE("a missing required input names the Task's inputs and the SCRIPT element") {
    fhir::Bundle b = BundleOf("rxtransfer_confirm");
    size_t index = 0;
    fhir::Task* t = TaskOf(b, &index);
    for (size_t i = 0; i < t->input.size(); ++i) {
      if (t->input[i].type.coding[0].code == "RxFillConfirmIndicator") {
        t->input.erase(t->input.begin() + static_cast<long>(i));
        break;
      }
    }
    IssueList issues;
    REQUIRE_FALSE(mapping::FromFhirBundle(b, issues, Options()).ok());
    CHECK(HasError(issues, "Bundle.entry[" + std::to_string(index) + "].resource.input",
                   "SCRIPT /Message/Body/RxTransferConfirm/RxFillConfirmIndicator"));
  }

  TEST_CASE("To and From come from the Bundle's parties, else options, none is an error") {
    // A transfer names both pharmacies: the request goes from the one receiving the
    // prescription to the other.
    mapping::NewRxOptions o = Options();
    o.to.clear();
    o.from.clear();
    IssueList issues;
    auto transfer = mapping::FromFhirBundle(BundleOf("rxtransfer_request"), issues, o);
    RXFLOW_REQUIRE_OK(transfer);
    CHECK(transfer->header.to == "4712345");
    CHECK(transfer->header.to_qualifier == "P");
    CHECK(transfer->header.from == "4798765");
    CHECK(transfer->header.from_qualifier == "P");
    // An RxFillIndicatorChange names neither.
    IssueList change_issues;
    auto change = mapping::FromFhirBundle(BundleOf("rxfill_indicator_change"), change_issues, o);
    REQUIRE_FALSE(change.ok());
    CHECK(HasError(change_issues, "options.to", "Header/To"));
    CHECK(HasError(change_issues, "options.from", "Header/From"));
  }

  TEST_CASE("ToScript writes the transaction a Bundle's Task names") {
    IssueList issues;
    auto json = ToFhirJson(testing::ReadFixture("script/newrx_request.xml"), issues);
    RXFLOW_REQUIRE_OK(json);
    TransformOptions options;
    options.version = script::Version::k2017071;
    auto out = ToScript(*json, issues, options);
    RXFLOW_REQUIRE_OK(out);
    CHECK(out->transaction == "NewRxRequest");
    CHECK(out->xml.find("<NewRxRequest>") != std::string::npos);
    CHECK(std::holds_alternative<script::NewRxRequest>(out->newrx.message.body));
    // The request goes from the pharmacy to the prescriber.
    CHECK(out->newrx.message.header.to == "1738294614");
    CHECK(out->newrx.message.header.from == "4712345");
  }
}

TEST_SUITE("FHIR → SCRIPT transactions") {
  // NewRxRequestMedication has no CompoundInformation (only RxHistoryResponse's medication
  // types do, of these transactions): the compound goes as its description and drug code.
  TEST_CASE("a compound in a NewRxRequest goes as its description, its ingredients are named") {
    fhir::Bundle compound = BundleOf("newrx_compound_rems");
    const fhir::Medication* cm = nullptr;
    for (const fhir::BundleEntry& e : compound.entry) {
      if (e.resource && e.resource->get<fhir::Medication>())
        cm = e.resource->get<fhir::Medication>();
    }
    REQUIRE(cm != nullptr);
    REQUIRE_FALSE(cm->ingredient.empty());
    // The request's MedicationRequest names the compound's Medication, a new entry.
    fhir::Bundle b = BundleOf("newrx_request");
    bool replaced = false;
    for (fhir::BundleEntry& e : b.entry) {
      if (fhir::MedicationRequest* mr =
              e.resource ? e.resource->get<fhir::MedicationRequest>() : nullptr) {
        mr->medication = fhir::CodeableReference{};
        mr->medication.reference = fhir::Reference{"urn:uuid:compound-medication", "", {}, ""};
        replaced = true;
      }
    }
    fhir::BundleEntry entry;
    entry.full_url = "urn:uuid:compound-medication";
    entry.resource = fhir::Resource{*cm};
    b.entry.push_back(std::move(entry));
    REQUIRE(replaced);
    IssueList issues;
    auto message = mapping::FromFhirBundle(b, issues, Options());
    RXFLOW_REQUIRE_OK(message);
    const auto* request = std::get_if<script::NewRxRequest>(&message->body);
    REQUIRE(request != nullptr);
    CHECK_FALSE(request->medication_requested.compound_information.has_value());
    CHECK(request->medication_requested.drug_description ==
          "Ketamine 10% / gabapentin 6% in Lipoderm base (compounded cream)");
    bool named = false;
    for (const Issue& i : issues) {
      if (i.severity == Severity::kWarning && i.path.find(".ingredient") != std::string::npos &&
          i.message.find("has no CompoundInformation") != std::string::npos) {
        named = true;
      }
    }
    CHECK(named);
  }
}

TEST_SUITE("FHIR → SCRIPT transactions") {
  // Header To/From @Qualifier is checked against AddressTypeQualifier by the shared
  // validator, in both directions (it was not checked at all: "Z" passed, and our own
  // history fixtures used it).
  TEST_CASE("a To/From Qualifier outside AddressTypeQualifier is an error at its attribute") {
    TransformOptions o;
    o.version = script::Version::k2017071;
    o.newrx = Options();
    o.newrx.to_qualifier = "QQ";
    IssueList issues;
    auto json = ToFhirJson(testing::ReadFixture("script/rxfill_indicator_change.xml"), issues);
    RXFLOW_REQUIRE_OK(json);
    IssueList out_issues;
    auto out = ToScript(*json, out_issues, o);
    REQUIRE_FALSE(out.ok());
    CHECK(HasError(out_issues, "/Message/Header/To/@Qualifier", "\"QQ\" is not one of P, C, M"));

    std::string xml = testing::ReadFixture("script/status_000.xml");
    const size_t at = xml.find("<From Qualifier=\"");
    REQUIRE(at != std::string::npos);
    const size_t value = at + std::string_view("<From Qualifier=\"").size();
    xml.replace(value, xml.find('"', value) - value, "Z");
    IssueList read_issues;
    CHECK_FALSE(Check(xml, read_issues).ok());
    CHECK(HasError(read_issues, "/Message/Header/From/@Qualifier", "\"Z\" is not one of"));
  }
}
