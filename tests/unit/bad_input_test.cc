// SPDX-License-Identifier: Apache-2.0
// Bad-input corpus: every case is data — an input (a valid fixture with one targeted
// mutation, or inline text), the API it goes to, and what must come back: the status code,
// and an error (or fatal) issue with an exact path and a message substring.
//
// Defects the corpus found are kept as test cases at the end of this file, named after the
// behaviour they check; the comment in each says what used to happen.
//
// RXFLOW_BAD_INPUT_DUMP=1 prints every issue of every case.
#include <cstddef>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "rxflow/fhir/json.h"
#include "rxflow/script/xml.h"
#include "rxflow/transform.h"

#include "fuzz/targets.h"
#include "testing/files.h"
#include "testing/status.h"

namespace {

using namespace rxflow;
using absl::StatusCode;

enum class Api { kParsePrescription, kParseResource, kReadXml };

struct Case {
  std::string name;
  Api api;
  std::string input;
  StatusCode status;
  std::string path;     // exact
  std::string message;  // substring
  fhir::ParseOptions fhir_options = {};
  script::ReadOptions xml_options = {};
};

// --- building inputs ----------------------------------------------------------------------

size_t Count(std::string_view text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Replaces the one occurrence of `from` (it must occur exactly once: a mutation that
// silently does nothing would make a case pass for the wrong reason).
std::string Replace(std::string text, std::string_view from, std::string_view to) {
  size_t n = Count(text, from);
  REQUIRE_MESSAGE(n == 1, "mutation anchor occurs ", n, " times: ", std::string(from));
  size_t at = text.find(from);
  text.replace(at, from.size(), to);
  return text;
}

std::string InsertAfter(std::string text, std::string_view anchor, std::string_view what) {
  return Replace(std::move(text), anchor, std::string(anchor) + std::string(what));
}

// The text from `begin` up to and including `end` (both must occur once).
std::string Block(const std::string& text, std::string_view begin, std::string_view end) {
  REQUIRE(Count(text, begin) == 1);
  size_t b = text.find(begin);
  size_t e = text.find(end, b);
  REQUIRE(e != std::string::npos);
  return text.substr(b, e + end.size() - b);
}

std::string Remove(std::string text, std::string_view begin, std::string_view end) {
  return Replace(std::move(text), Block(text, begin, end), "");
}

// Swaps two non-overlapping blocks, `a` before `b`.
std::string Swap(std::string text, const std::string& a, const std::string& b) {
  REQUIRE(Count(text, a) == 1);
  REQUIRE(Count(text, b) == 1);
  size_t ia = text.find(a), ib = text.find(b);
  REQUIRE(ia + a.size() <= ib);
  return text.substr(0, ia) + b + text.substr(ia + a.size(), ib - ia - a.size()) + a +
         text.substr(ib + b.size());
}

std::string Repeat(std::string_view s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out.append(s);
  return out;
}

size_t LineOf(std::string_view text, std::string_view what) {
  size_t at = text.find(what);
  REQUIRE(at != std::string_view::npos);
  return Count(text.substr(0, at), "\n") + 1;
}

std::string Envelope() { return testing::ReadFixture("fhir/medication_request_lisinopril.json"); }
std::string TxnBundle() {
  return testing::ReadFixture("fhir/bundle_transaction_practitionerrole.json");
}
std::string ContainedBundle() {
  return testing::ReadFixture("fhir/bundle_contained_medication.json");
}
std::string NewRx() { return testing::ReadFixture("script/newrx_2017071_lisinopril.xml"); }

// --- running a case -----------------------------------------------------------------------

std::string Dump(const IssueList& issues) {
  std::string out;
  for (const Issue& i : issues) {
    std::string line = ToString(i);
    if (line.size() > 300) line = line.substr(0, 300) + "...";
    out += "  " + line + "\n";
  }
  return out;
}

void Expect(const Case& c) {
  CAPTURE(c.name);
  IssueList issues;
  absl::Status status;
  switch (c.api) {
    case Api::kParsePrescription:
      status = fhir::ParsePrescription(c.input, issues, c.fhir_options).status();
      break;
    case Api::kParseResource:
      status = fhir::ParseResource(c.input, issues, c.fhir_options).status();
      break;
    case Api::kReadXml:
      status = script::ReadXml(c.input, issues, c.xml_options).status();
      break;
  }
  const Issue* hit = nullptr;
  for (const Issue& i : issues) {
    bool is_error = i.severity == Severity::kError || i.severity == Severity::kFatal;
    if (is_error && i.path == c.path && i.message.find(c.message) != std::string::npos) {
      hit = &i;
      break;
    }
  }
  std::string want = "error at \"" + c.path + "\" containing \"" + c.message + "\"";
  std::string got = Dump(issues);
  INFO("want: ", want);
  INFO("issues:\n", got);
  if (std::getenv("RXFLOW_BAD_INPUT_DUMP")) MESSAGE(c.name, " -> ", status.code(), "\n", got);
  CHECK(absl::StatusCodeToString(status.code()) == absl::StatusCodeToString(c.status));
  CHECK_MESSAGE(hit != nullptr, "no ", want);
}

void ExpectAll(const std::vector<Case>& cases) {
  for (const Case& c : cases) Expect(c);
}

constexpr auto kPrescription = Api::kParsePrescription;
constexpr auto kResource = Api::kParseResource;
constexpr auto kXml = Api::kReadXml;
constexpr auto kInvalid = StatusCode::kInvalidArgument;
constexpr auto kExhausted = StatusCode::kResourceExhausted;

fhir::ParseOptions Strict() {
  fhir::ParseOptions o;
  o.mode = fhir::ParseMode::kStrict;
  return o;
}

// `depth` levels of {"url": ..., "extension": [ ... ]}.
std::string DeepExtensions(size_t depth) {
  return Repeat(R"({"url": "http://example.org/x", "extension": [)", depth) +
         R"({"url": "http://example.org/x", "valueString": "leaf"})" + Repeat("]}", depth);
}

}  // namespace

TEST_SUITE("Bad input") {
  TEST_CASE("Bad input: malformed and refused FHIR JSON") {
    const std::string env = Envelope();
    fhir::ParseOptions small;
    small.max_input_bytes = 1024;
    ExpectAll({
        {"truncated in the middle", kPrescription, env.substr(0, env.size() / 2), kInvalid, "",
         "malformed JSON: JSON document ended early"},
        {"truncated: final brace missing", kPrescription, env.substr(0, env.rfind('}')), kInvalid,
         "", "malformed JSON"},
        {"trailing comma in an object", kPrescription,
         Replace(env, "\"allowedBoolean\": true\n    }", "\"allowedBoolean\": true,\n    }"),
         kInvalid, "medication_request.substitution", "malformed JSON"},
        {"trailing comma in an array", kPrescription,
         Replace(env, "\"Anne\"\n        ]", "\"Anne\",\n        ]"), kInvalid,
         "patient.name[0].given[2]", "malformed JSON"},
        {"a second JSON value after the root", kPrescription, env + "{}", kInvalid, "",
         "unexpected content after the JSON value"},
        {"root is an array", kPrescription, R"([{"resourceType": "Patient"}])", kInvalid, "",
         "expected a JSON object at the root"},
        {"root is a string", kResource, R"("MedicationRequest")", kInvalid, "",
         "expected a JSON object at the root"},
        // FHIR's XML form (as hl7.org's examples are also published) where FHIR JSON is read.
        {"FHIR XML", kPrescription,
         "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<MedicationRequest "
         "xmlns=\"http://hl7.org/fhir\">\n  <status value=\"active\"/>\n</MedicationRequest>",
         kInvalid, "", "input is XML, not JSON: RxFlow reads FHIR as JSON only"},
        {"empty input", kPrescription, "", kInvalid, "", "input is empty"},
        {"invalid UTF-8 (bad continuation byte) in a string", kPrescription,
         Replace(env, "\"family\": \"Delacroix\"", "\"family\": \"Delacr\xC3\x28oix\""), kInvalid,
         "", "input is not valid UTF-8"},
        {"invalid UTF-8 (overlong encoding) in a string", kPrescription,
         Replace(env, "\"family\": \"Delacroix\"",
                 "\"family\": \"Dela\xC0\xAF"
                 "croix\""),
         kInvalid, "", "input is not valid UTF-8"},
        {"input over max_input_bytes", kPrescription, env, kExhausted, "",
         "bytes exceeds the limit of 1024", small},
        {"ParseResource without resourceType (the envelope)", kResource, env, kInvalid, "",
         "resourceType is required"},
    });
  }

  TEST_CASE("Bad input: oversized and deeply nested FHIR JSON") {
    const std::string env = Envelope();
    const std::string big(size_t{50} << 20, 'a');
    const std::string with_big_string =
        Replace(env, "\"family\": \"Delacroix\"", "\"family\": \"" + big + "\"");
    fhir::ParseOptions roomy;
    roomy.max_input_bytes = size_t{64} << 20;
    Expect({"a 50 MB string (over max_input_bytes)", kPrescription, with_big_string, kExhausted, "",
            "exceeds the limit of 8388608"});
    Expect({"a 50 MB string (under max_input_bytes, over max_string_bytes)", kPrescription,
            with_big_string, kExhausted, "patient.name[0].family",
            "string of 52428800 bytes exceeds the limit of 1048576", roomy});

    // 10,000 levels of extension-in-extension: the reader stops at max_depth (64).
    std::string deep_ext_path = "medication_request.extension";
    for (int i = 0; i < 31; ++i) deep_ext_path += "[0].extension";
    Expect({"extensions nested 10,000 deep", kPrescription,
            InsertAfter(env, "\"intent\": \"order\",",
                        "\"extension\": [" + DeepExtensions(10000) + "],"),
            kExhausted, deep_ext_path, "nesting deeper than 64 levels"});
    Expect({"arrays nested 10,000 deep under an unknown key", kPrescription,
            InsertAfter(env, "\"intent\": \"order\",",
                        "\"foo\": " + Repeat("[", 10000) + Repeat("]", 10000) + ","),
            kExhausted, "medication_request.foo", "nesting deeper than 64 levels"});
    Expect({"objects nested 10,000 deep under an unknown key", kPrescription,
            InsertAfter(env, "\"intent\": \"order\",",
                        "\"foo\": " + Repeat("{\"a\": ", 10000) + "1" + Repeat("}", 10000) + ","),
            kExhausted, "medication_request.foo", "nesting deeper than 64 levels"});
    Expect({"arrays nested 10,000 deep under an unknown envelope key", kPrescription,
            Replace(env, "\"patient\": {",
                    "\"foo\": " + Repeat("[", 10000) + Repeat("]", 10000) + ", \"patient\": {"),
            kExhausted, "foo", "nesting deeper than 64 levels"});
    Expect({"root nested 10,000 deep", kPrescription, Repeat("[", 10000) + Repeat("]", 10000),
            kInvalid, "", "expected a JSON object at the root"});
  }

  TEST_CASE("Bad input: FHIR JSON types, values and primitive formats") {
    const std::string env = Envelope();
    ExpectAll({
        {"string for a decimal", kPrescription,
         Replace(env, "\"value\": 30,\n        \"unit\": \"tablet\"",
                 "\"value\": \"30\",\n        \"unit\": \"tablet\""),
         kInvalid, "medication_request.dispenseRequest.quantity.value",
         "expected a decimal, got a string"},
        {"number for a string", kPrescription,
         Replace(env, "\"family\": \"Delacroix\"", "\"family\": 42"), kInvalid,
         "patient.name[0].family", "expected a string, got a number"},
        {"object where an array is expected", kPrescription,
         Replace(env,
                 "\"note\": [\n      {\n        \"text\": \"Recheck blood pressure and BMP in 4 "
                 "weeks.\"\n      }\n    ]",
                 "\"note\": {\"text\": \"Recheck blood pressure and BMP in 4 weeks.\"}"),
         kInvalid, "medication_request.note", "expected an array, got an object"},
        {"array where an object is expected", kPrescription,
         Replace(env, "\"substitution\": {\n      \"allowedBoolean\": true\n    }",
                 "\"substitution\": [{\"allowedBoolean\": true}]"),
         kInvalid, "medication_request.substitution", "expected an object, got an array"},
        {"string for a boolean", kPrescription,
         Replace(env, "\"allowedBoolean\": true", "\"allowedBoolean\": \"true\""), kInvalid,
         "medication_request.substitution.allowedBoolean", "expected a boolean, got a string"},
        {"array for a resource in an envelope slot", kPrescription,
         Replace(env, "\"patient\": {", "\"patient\": [{}], \"patient_unused\": {"), kInvalid,
         "patient", "expected a resource (an object), got an array"},
        {"decimal for an unsignedInt", kPrescription,
         Replace(env, "\"numberOfRepeatsAllowed\": 2", "\"numberOfRepeatsAllowed\": 2.5"), kInvalid,
         "medication_request.dispenseRequest.numberOfRepeatsAllowed",
         "expected an unsignedInt, got 2.5"},
        {"negative numberOfRepeatsAllowed", kPrescription,
         Replace(env, "\"numberOfRepeatsAllowed\": 2", "\"numberOfRepeatsAllowed\": -1"), kInvalid,
         "medication_request.dispenseRequest.numberOfRepeatsAllowed",
         "expected an unsignedInt, got -1"},
        {"numberOfRepeatsAllowed beyond 32 bits", kPrescription,
         Replace(env, "\"numberOfRepeatsAllowed\": 2", "\"numberOfRepeatsAllowed\": 4294967296"),
         kInvalid, "medication_request.dispenseRequest.numberOfRepeatsAllowed",
         "expected an unsignedInt, got 4294967296"},
        {"positiveInt 0 for Timing.repeat.frequency", kPrescription,
         Replace(env, "\"frequency\": 1,", "\"frequency\": 0,"), kInvalid,
         "medication_request.dosageInstruction[0].timing.repeat.frequency",
         "expected a positiveInt, got 0"},
        {"decimal out of range", kPrescription,
         Replace(env, "\"value\": 30,\n        \"unit\": \"tablet\"",
                 "\"value\": 1e999,\n        \"unit\": \"tablet\""),
         kInvalid, "medication_request.dispenseRequest.quantity.value", "decimal out of range"},
        {"null for an element", kPrescription,
         Replace(env, "\"status\": \"active\"", "\"status\": null"), kInvalid,
         "medication_request.status", "null is not allowed in FHIR JSON"},
        {"null inside an array", kPrescription,
         Replace(env, "\"Anne\"\n        ]", "null\n        ]"), kInvalid,
         "patient.name[0].given[1]", "null is not allowed in FHIR JSON"},
        {"empty array", kPrescription,
         Replace(env, "\"given\": [\n          \"Marisol\",\n          \"Anne\"\n        ]",
                 "\"given\": []"),
         kInvalid, "patient.name[0].given", "an array must not be empty"},
        {"empty string", kPrescription,
         Replace(env, "\"family\": \"Delacroix\"", "\"family\": \"\""), kInvalid,
         "patient.name[0].family", "empty string is not allowed"},
        {"empty code", kPrescription, Replace(env, "\"status\": \"active\"", "\"status\": \"\""),
         kInvalid, "medication_request.status", "expected a code, got \"\""},
        {"control character in a string", kPrescription,
         Replace(env, "\"family\": \"Delacroix\"", "\"family\": \"Dela\\u0001croix\""), kInvalid,
         "patient.name[0].family", "control characters"},
        {"duplicate key", kPrescription,
         Replace(env, "\"status\": \"active\"", "\"status\": \"active\", \"status\": \"stopped\""),
         kInvalid, "medication_request.status", "duplicate property"},
        {"duplicate envelope key", kPrescription,
         Replace(env, "\"patient\": {",
                 "\"patient\": {\"resourceType\": \"Patient\", \"id\": \"pat-other\"}, "
                 "\"patient\": {"),
         kInvalid, "patient", "duplicate property"},
        {"impossible date 2026-02-30", kPrescription,
         Replace(env, "\"birthDate\": \"1968-04-17\"", "\"birthDate\": \"2026-02-30\""), kInvalid,
         "patient.birthDate", "expected a date, got \"2026-02-30\""},
        {"impossible month 2026-13-01", kPrescription,
         Replace(env, "\"birthDate\": \"1968-04-17\"", "\"birthDate\": \"2026-13-01\""), kInvalid,
         "patient.birthDate", "expected a date, got \"2026-13-01\""},
        {"dateTime with a time but no zone", kPrescription,
         Replace(env, "\"authoredOn\": \"2026-11-20\"", "\"authoredOn\": \"2026-01-01T10:00:00\""),
         kInvalid, "medication_request.authoredOn",
         "expected a dateTime, got \"2026-01-01T10:00:00\""},
        {"code with a double space", kPrescription,
         Replace(env, "\"status\": \"active\"", "\"status\": \"on  hold\""), kInvalid,
         "medication_request.status", "expected a code, got \"on  hold\""},
        {"code with a leading space", kPrescription,
         Replace(env, "\"gender\": \"female\"", "\"gender\": \" female\""), kInvalid,
         "patient.gender", "expected a code, got \" female\""},
        {"id with an underscore", kPrescription,
         Replace(env, "\"id\": \"pat-delacroix\"", "\"id\": \"pat_delacroix\""), kInvalid,
         "patient.id", "expected an id, got \"pat_delacroix\""},
        {"id of 65 characters", kPrescription,
         Replace(env, "\"id\": \"pat-delacroix\"", "\"id\": \"" + std::string(65, 'p') + "\""),
         kInvalid, "patient.id", "expected an id"},
        {"uri with a space", kPrescription,
         Replace(env, "\"system\": \"urn:oid:2.16.840.1.113883.3.1234.1\"",
                 "\"system\": \"urn:oid:2.16.840 .1.113883.3.1234.1\""),
         kInvalid, "medication_request.identifier[0].system", "expected a uri"},
        {"extension without url", kPrescription,
         InsertAfter(env, "\"intent\": \"order\",", R"("extension": [{"valueString": "x"}],)"),
         kInvalid, "medication_request.extension[0]", "extension.url is required"},
        {"extension value that is an array", kPrescription,
         InsertAfter(env, "\"intent\": \"order\",",
                     R"("extension": [{"url": "http://example.org/x", "valueString": ["x"]}],)"),
         kInvalid, "medication_request.extension[0].valueString",
         "expected a string, got an array"},
        {"note without text", kPrescription,
         Replace(env, "\"text\": \"Recheck blood pressure and BMP in 4 weeks.\"",
                 "\"authorString\": \"Dr. Castellano\""),
         kInvalid, "medication_request.note[0]", "Annotation.text is required"},
    });
  }

  TEST_CASE("Bad input: FHIR resources, envelope and R4 elements") {
    const std::string env = Envelope();
    ExpectAll({
        {"unknown resourceType (ParseResource)", kResource,
         R"({"resourceType": "Encounter", "id": "x"})", kInvalid, "Encounter.resourceType",
         "unsupported resourceType \"Encounter\""},
        {"unknown resourceType in an envelope slot", kPrescription,
         Replace(env, "\"resourceType\": \"Patient\"", "\"resourceType\": \"Encounter\""), kInvalid,
         "patient.resourceType", "expected Patient, got Encounter"},
        {"resourceType not a string (ParseResource)", kResource,
         R"({"resourceType": 7, "id": "x"})", kInvalid, "Resource.resourceType",
         "resourceType must be a string"},
        {"resourceType not a string in an envelope slot", kPrescription,
         Replace(env, "\"resourceType\": \"Patient\"", "\"resourceType\": [\"Patient\"]"), kInvalid,
         "patient.resourceType", "resourceType must be a string"},
        {"resourceType missing in an envelope slot", kPrescription,
         Replace(env, "\"resourceType\": \"Patient\",", ""), kInvalid, "patient",
         "resourceType is required"},
        {"a resource type RxFlow does not read", kResource,
         R"({"resourceType": "DiagnosticReport", "id": "x"})", kInvalid,
         "DiagnosticReport.resourceType", "unsupported resourceType \"DiagnosticReport\""},
        {"a Bundle as a contained resource", kPrescription,
         InsertAfter(env, "\"intent\": \"order\",",
                     R"("contained": [{"resourceType": "Bundle", "id": "b1"}],)"),
         kInvalid, "medication_request.contained[0].resourceType",
         "unsupported resourceType \"Bundle\""},
        {"wrong resource in an envelope slot (patient given as Organization)", kPrescription,
         Replace(env, Block(env, "\"patient\": {", "\n  },\n"),
                 "\"patient\": {\"resourceType\": \"Organization\", \"id\": \"pat-delacroix\", "
                 "\"name\": \"Acme\"},\n"),
         kInvalid, "patient.resourceType", "expected Patient, got Organization"},
        {"missing medication_request", kPrescription,
         Replace(env, "\"medication_request\": {", "\"medication_requests\": {"), kInvalid,
         "medication_request", "must contain medication_request"},
        {"missing patient", kPrescription, Replace(env, "\"patient\": {", "\"patients\": {"),
         kInvalid, "patient", "must contain patient"},
        {"envelope subject does not match the patient id", kPrescription,
         Replace(env, "\"reference\": \"Patient/pat-delacroix\"",
                 "\"reference\": \"Patient/pat-other\""),
         kInvalid, "medication_request.subject.reference",
         "refers to \"Patient/pat-other\" but the request's patient is Patient/pat-delacroix"},
        {"envelope requester does not match the practitioner id", kPrescription,
         Replace(env, "\"reference\": \"Practitioner/prac-castellano\"",
                 "\"reference\": \"Practitioner/prac-other\""),
         kInvalid, "medication_request.requester.reference",
         "but the request's practitioner is Practitioner/prac-castellano"},
        {"envelope dispenser does not match the pharmacy id", kPrescription,
         Replace(env, "\"reference\": \"Organization/pharm-riverbend\"",
                 "\"reference\": \"Organization/pharm-other\""),
         kInvalid, "medication_request.dispenseRequest.dispenser.reference",
         "but the request's organization is Organization/pharm-riverbend"},
        {"envelope contained reference #nope", kPrescription,
         Replace(env, "\"medication\": {\n      \"concept\": {",
                 "\"medication\": {\n      \"reference\": {\"reference\": \"#nope\"},\n      "
                 "\"concept\": {"),
         kInvalid, "medication_request.medication.reference.reference",
         "cannot resolve reference \"#nope\""},
        {"R4 medicationCodeableConcept", kPrescription,
         InsertAfter(env, "\"intent\": \"order\",",
                     R"("medicationCodeableConcept": {"text": "lisinopril"},)"),
         kInvalid, "medication_request.medicationCodeableConcept", "R4 element"},
        {"R4 reasonCode", kPrescription,
         InsertAfter(env, "\"intent\": \"order\",", R"("reasonCode": [{"text": "hypertension"}],)"),
         kInvalid, "medication_request.reasonCode", "R4 element"},
        {"R4 Organization.telecom", kPrescription,
         InsertAfter(env, "\"name\": \"Riverbend Community Pharmacy\",",
                     R"("telecom": [{"system": "phone", "value": "8045550110"}],)"),
         kInvalid, "pharmacy.telecom",
         "R4 element: FHIR R5 moved Organization address and telecom"},
        {"R4 Organization.address", kPrescription,
         InsertAfter(env, "\"name\": \"Riverbend Community Pharmacy\",",
                     R"("address": [{"city": "Richmond"}],)"),
         kInvalid, "pharmacy.address", "R4 element"},
        {"R4 Dosage.asNeededBoolean", kPrescription,
         InsertAfter(env, "\"sequence\": 1,", R"("asNeededBoolean": true,)"), kInvalid,
         "medication_request.dosageInstruction[0].asNeededBoolean",
         "R4 element: FHIR R5 uses asNeeded (boolean) and asNeededFor"},
        {"modifierExtension on MedicationRequest", kPrescription,
         InsertAfter(
             env, "\"intent\": \"order\",",
             R"("modifierExtension": [{"url": "http://example.org/x", "valueBoolean": true}],)"),
         kInvalid, "medication_request.modifierExtension", "modifierExtension is not understood"},
        {"modifierExtension on Patient", kPrescription,
         InsertAfter(
             env, "\"gender\": \"female\",",
             R"("modifierExtension": [{"url": "http://example.org/x", "valueBoolean": true}],)"),
         kInvalid, "patient.modifierExtension", "modifierExtension is not understood"},
        {"modifierExtension on Dosage", kPrescription,
         InsertAfter(
             env, "\"sequence\": 1,",
             R"("modifierExtension": [{"url": "http://example.org/x", "valueBoolean": true}],)"),
         kInvalid, "medication_request.dosageInstruction[0].modifierExtension",
         "modifierExtension on Dosage is not understood"},
        {"strict mode: unknown element in a resource", kPrescription,
         InsertAfter(env, "\"intent\": \"order\",", R"("foo": 1,)"), kInvalid,
         "medication_request.foo", "unknown element", Strict()},
        {"strict mode: unknown element in a datatype", kPrescription,
         Replace(env, "\"value\": 30,\n        \"unit\": \"tablet\"",
                 "\"value\": 30,\n        \"foo\": true,\n        \"unit\": \"tablet\""),
         kInvalid, "medication_request.dispenseRequest.quantity.foo", "unknown element", Strict()},
        {"strict mode: unknown envelope key", kPrescription,
         Replace(env, "\"patient\": {", "\"comment\": \"hi\", \"patient\": {"), kInvalid, "comment",
         "unknown element", Strict()},
        {"ParsePrescription on a bare MedicationRequest", kPrescription,
         R"({"resourceType": "MedicationRequest", "id": "x", "status": "active", "intent": "order"})",
         kInvalid, "resourceType",
         "expected a Bundle or the request envelope, got MedicationRequest"},
    });
  }

  TEST_CASE("Bad input: FHIR Bundles and references") {
    const std::string txn = TxnBundle();
    const std::string contained = ContainedBundle();
    const std::string mr_entry =
        Block(txn, "    {\n      \"fullUrl\": \"http://example.org/fhir/MedicationRequest/mr1\"",
              "    {\n      \"fullUrl\": \"http://example.org/fhir/Patient/p1\"");
    const std::string mr_entry_only = mr_entry.substr(0, mr_entry.rfind("    {\n"));
    std::string second_mr = mr_entry_only;
    for (size_t at; (at = second_mr.find("mr1")) != std::string::npos;)
      second_mr.replace(at, 3, "mr2");
    ExpectAll({
        {"subject to a missing Patient", kPrescription,
         Replace(txn, "\"reference\": \"Patient/p1\"", "\"reference\": \"Patient/p9\""), kInvalid,
         "Bundle.entry[0].resource.subject.reference", "cannot resolve reference \"Patient/p9\""},
        {"requester to a missing Practitioner", kPrescription,
         Replace(contained, "\"reference\": \"urn:uuid:7e0c0a5d-bb15-5907-a51c-31f5c139b958\"",
                 "\"reference\": \"urn:uuid:00000000-0000-0000-0000-000000000000\""),
         kInvalid, "Bundle.entry[0].resource.requester.reference",
         "cannot resolve reference \"urn:uuid:00000000-0000-0000-0000-000000000000\""},
        {"PractitionerRole.practitioner to a missing Practitioner", kPrescription,
         Replace(txn, "\"reference\": \"Practitioner/dr1\"", "\"reference\": \"Practitioner/dr9\""),
         kInvalid, "Bundle.entry[2].resource.practitioner.reference",
         "cannot resolve reference \"Practitioner/dr9\""},
        {"contained reference #nope", kPrescription,
         Replace(contained, "\"reference\": \"#med1\"", "\"reference\": \"#nope\""), kInvalid,
         "Bundle.entry[0].resource.medication.reference.reference",
         "cannot resolve reference \"#nope\""},
        {"subject resolves to an Organization", kPrescription,
         Replace(txn, "\"reference\": \"Patient/p1\"", "\"reference\": \"Organization/pharm1\""),
         kInvalid, "Bundle.entry[0].resource.subject.reference", "expected Patient"},
        {"requester resolves to a Patient", kPrescription,
         Replace(txn, "\"reference\": \"PractitionerRole/pr1\"", "\"reference\": \"Patient/p1\""),
         kInvalid, "Bundle.entry[0].resource.requester.reference", "expected Practitioner"},
        {"subject without a literal reference", kPrescription,
         Replace(txn, "\"reference\": \"Patient/p1\"", "\"display\": \"Amara Okafor\""), kInvalid,
         "Bundle.entry[0].resource.subject", "no literal reference"},
        {"requester missing", kPrescription,
         Replace(txn,
                 "\"requester\": {\n          \"reference\": \"PractitionerRole/pr1\"\n        },",
                 ""),
         kInvalid, "Bundle.entry[0].resource.requester", "requester is required"},
        {"PractitionerRole without practitioner", kPrescription,
         Remove(txn, "\"practitioner\": {", "},"), kInvalid,
         "Bundle.entry[2].resource.practitioner", "must name its practitioner"},
        {"missing resourceType in a Bundle entry", kPrescription,
         Replace(txn, "\"resourceType\": \"Patient\",", ""), kInvalid, "Bundle.entry[1].resource",
         "resourceType is required"},
        {"two MedicationRequests", kPrescription,
         Replace(txn, mr_entry_only, mr_entry_only + second_mr), kInvalid, "Bundle.entry",
         "the bundle holds 2 MedicationRequests"},
        {"no MedicationRequest", kPrescription, Replace(txn, mr_entry_only, ""), kInvalid,
         "Bundle.entry", "the bundle holds no MedicationRequest"},
        {"unsupported bundle type searchset", kPrescription,
         Replace(txn, "\"type\": \"transaction\"", "\"type\": \"searchset\""), kInvalid,
         "Bundle.type", "bundle type \"searchset\" is not supported"},
        {"Bundle.timestamp that is not an instant", kPrescription,
         InsertAfter(txn, "\"id\": \"txn-okafor-1201\",", R"("timestamp": "2026-11-26",)"),
         kInvalid, "Bundle.timestamp", "expected an instant, got \"2026-11-26\""},
    });
  }

  TEST_CASE("Bad input: malformed and refused SCRIPT XML") {
    const std::string x = NewRx();
    const std::string decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    script::ReadOptions small;
    small.max_input_bytes = 1000;
    const std::string bad_close = Replace(x, "Delacroix</LastName>", "Delacroix</Lastname>");
    const std::string laughs =
        decl +
        "<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n"
        "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
        "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
        "<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n]>\n" +
        Replace(x.substr(decl.size()), "Delacroix</LastName>", "&lol4;</LastName>");
    ExpectAll({
        {"truncated", kXml, x.substr(0, x.size() / 2), kInvalid, "/", "malformed XML at line"},
        {"mismatched end tag", kXml, bad_close, kInvalid, "/",
         "malformed XML at line " + std::to_string(LineOf(bad_close, "</Lastname>"))},
        {"empty input", kXml, "", kInvalid, "/", "malformed XML"},
        {"not XML at all", kXml, "{\"resourceType\": \"Bundle\"}", kInvalid, "/", "malformed XML"},
        {"DOCTYPE with an external DTD", kXml,
         Replace(x, decl, decl + "<!DOCTYPE Message SYSTEM \"http://example.org/script.dtd\">\n"),
         kInvalid, "/", "document type (DTD) and entity declarations are refused"},
        {"lowercase doctype", kXml, Replace(x, decl, decl + "<!doctype Message>\n"), kInvalid, "/",
         "document type (DTD) and entity declarations are refused"},
        {"billion laughs", kXml, laughs, kInvalid, "/",
         "document type (DTD) and entity declarations are refused"},
        {"external entity (XXE)", kXml,
         Replace(Replace(x, decl,
                         decl + "<!DOCTYPE m [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n"),
                 "Delacroix</LastName>", "&xxe;</LastName>"),
         kInvalid, "/", "document type (DTD) and entity declarations are refused"},
        {"root is not Message", kXml, decl + "<NewRx><Patient/></NewRx>", kInvalid, "/",
         "the root element must be Message"},
        {"FHIR XML (a prefixed root)", kXml,
         decl + "<f:MedicationRequest xmlns:f=\"http://hl7.org/fhir\"><f:status "
                "value=\"active\"/></f:MedicationRequest>",
         kInvalid, "/",
         "the document is FHIR XML (namespace http://hl7.org/fhir): RxFlow reads FHIR as JSON "
         "and SCRIPT as XML"},
        {"FHIR XML (the default namespace)", kXml,
         decl + "<MedicationRequest xmlns=\"http://hl7.org/fhir\"/>", kInvalid, "/",
         "the document is FHIR XML"},
        {"input over max_input_bytes",
         kXml,
         x,
         kExhausted,
         "/",
         "exceeds the limit of 1000",
         {},
         small},
    });
  }

  TEST_CASE("Bad input: SCRIPT XML structure and values") {
    const std::string x = NewRx();
    const std::string patient = Block(x, "      <Patient>\n", "      </Patient>\n");
    const std::string prescriber = Block(x, "      <Prescriber>\n", "      </Prescriber>\n");
    const std::string pname = "/Message/Body/NewRx/Patient/HumanPatient/Name";
    const std::string med = "/Message/Body/NewRx/MedicationPrescribed";
    ExpectAll({
        {"Prescriber and Patient swapped", kXml, Swap(x, patient, prescriber), kInvalid,
         "/Message/Body/NewRx/Prescriber",
         "element out of order: expected Patient before Prescriber"},
        {"LastName and FirstName swapped", kXml,
         Replace(x, "<LastName>Delacroix</LastName>\n            <FirstName>Marisol</FirstName>",
                 "<FirstName>Marisol</FirstName>\n            <LastName>Delacroix</LastName>"),
         kInvalid, pname + "/FirstName",
         "element out of order: expected LastName before FirstName"},
        {"unknown element", kXml,
         InsertAfter(x, "<FirstName>Marisol</FirstName>", "<Nickname>Mari</Nickname>"), kInvalid,
         pname + "/Nickname", "unknown element Nickname in Name"},
        {"unknown transaction", kXml,
         Replace(Replace(x, "<NewRx>", "<FooRx>"), "</NewRx>", "</FooRx>"), kInvalid,
         "/Message/Body/FooRx", "unknown element FooRx in Body"},
        {"Name with no children: LastName missing", kXml,
         Replace(x, Block(x, "<Name>\n            <LastName>Delacroix", "</Name>"),
                 "<Name></Name>"),
         kInvalid, pname + "/LastName", "missing required element LastName"},
        {"Quantity without CodeListQualifier and QuantityUnitOfMeasure", kXml,
         Remove(x, "<CodeListQualifier>38</CodeListQualifier>", "</QuantityUnitOfMeasure>"),
         kInvalid, med + "/Quantity/CodeListQualifier",
         "missing required element CodeListQualifier"},
        {"element inside a value element", kXml,
         Replace(x, "<LastName>Delacroix</LastName>", "<LastName>Dela<b>croix</b></LastName>"),
         kInvalid, pname + "/LastName/b", "element not allowed inside a value element"},
        {"text inside a complex element", kXml,
         Replace(x, "<Name>\n            <LastName>Delacroix",
                 "<Name>Marisol Delacroix\n            <LastName>Delacroix"),
         kInvalid, pname, "text is not allowed here"},
        {"too many MiddleName", kXml,
         InsertAfter(x, "<MiddleName>Anne</MiddleName>", "<MiddleName>Anne</MiddleName>"), kInvalid,
         pname + "/MiddleName[2]", "too many MiddleName elements (2)"},
        // An issue inside the second of two repeats names it with its XPath index.
        {"a bad value in the second Fax", kXml,
         InsertAfter(x, "<ElectronicMail>marisol.delacroix@example.com</ElectronicMail>",
                     "<Fax><Number>8045550143</Number></Fax><Fax><Number>8045550144</Number>"
                     "<SupportsSMS>Q</SupportsSMS></Fax>"),
         kInvalid,
         "/Message/Body/NewRx/Patient/HumanPatient/CommunicationNumbers/Fax[2]/SupportsSMS",
         "\"Q\" is not in code list BooleanCode (Y, N)"},
        // ... also past the first 16 children, where the validator counts them by name.
        {"a bad value in the twentieth Fax", kXml,
         InsertAfter(x, "<ElectronicMail>marisol.delacroix@example.com</ElectronicMail>",
                     Repeat("<Fax><Number>8045550143</Number></Fax>", 19) +
                         "<Fax><Number>8045550144</Number><SupportsSMS>Q</SupportsSMS></Fax>"),
         kInvalid,
         "/Message/Body/NewRx/Patient/HumanPatient/CommunicationNumbers/Fax[20]/SupportsSMS",
         "\"Q\" is not in code list BooleanCode (Y, N)"},
        {"two transactions in Body", kXml,
         InsertAfter(x, "</NewRx>", Block(x, "<NewRx>", "</NewRx>")), kInvalid,
         "/Message/Body/NewRx[2]", "too many NewRx elements (2)"},
        {"DrugDescription of 106 characters", kXml,
         Replace(x, "<DrugDescription>lisinopril 10 MG Oral Tablet</DrugDescription>",
                 "<DrugDescription>" + std::string(106, 'x') + "</DrugDescription>"),
         kInvalid, med + "/DrugDescription", "value of 106 characters exceeds the maximum of 105"},
        {"LastName of 36 characters", kXml,
         Replace(x, "<LastName>Delacroix</LastName>",
                 "<LastName>" + std::string(36, 'D') + "</LastName>"),
         kInvalid, pname + "/LastName", "value of 36 characters exceeds the maximum of 35"},
        {"empty LastName", kXml,
         Replace(x, "<LastName>Delacroix</LastName>", "<LastName></LastName>"), kInvalid,
         pname + "/LastName", "empty value"},
        {"whitespace-only LastName", kXml,
         Replace(x, "<LastName>Delacroix</LastName>", "<LastName>   </LastName>"), kInvalid,
         pname + "/LastName", "empty value"},
        {"non-ASCII letter in LastName", kXml,
         Replace(x, "<LastName>Delacroix</LastName>", "<LastName>D\xC3\xA9lacroix</LastName>"),
         kInvalid, pname + "/LastName", "outside printable ASCII"},
        {"control character (&#1;) in LastName", kXml,
         Replace(x, "<LastName>Delacroix</LastName>", "<LastName>Dela&#1;croix</LastName>"),
         kInvalid, "/", "character reference &#1; is not allowed in XML 1.0"},
        {"invalid UTF-8 in LastName", kXml,
         Replace(x, "<LastName>Delacroix</LastName>", "<LastName>Delacr\xC3\x28oix</LastName>"),
         kInvalid, "/", "invalid UTF-8"},
        {"phone number with hyphens", kXml,
         Replace(x, "<Number>8045550142</Number>", "<Number>804-555-0142</Number>"), kInvalid,
         "/Message/Body/NewRx/Patient/HumanPatient/CommunicationNumbers/PrimaryTelephone/Number",
         "expected a number (digits, optional decimals), got \"804-555-0142\""},
        {"phone number of 11 digits", kXml,
         Replace(x, "<Number>8045550142</Number>", "<Number>18045550142</Number>"), kInvalid,
         "/Message/Body/NewRx/Patient/HumanPatient/CommunicationNumbers/PrimaryTelephone/Number",
         "number of 11 characters is outside 1..10"},
        {"quantity that is not a number", kXml,
         Replace(x, "<Value>30</Value>", "<Value>thirty</Value>"), kInvalid,
         med + "/Quantity/Value", "expected a number"},
        {"Gender X", kXml, Replace(x, "<Gender>F</Gender>", "<Gender>X</Gender>"), kInvalid,
         "/Message/Body/NewRx/Patient/HumanPatient/Gender",
         "\"X\" is not in code list Gender (M, F, U)"},
        {"Substitutions 2", kXml,
         Replace(x, "<Substitutions>0</Substitutions>", "<Substitutions>2</Substitutions>"),
         kInvalid, med + "/Substitutions", "\"2\" is not in code list SubstitutionCode"},
        {"DateOfBirth 2020-02-30", kXml,
         Replace(x, "<Date>1968-04-17</Date>", "<Date>2020-02-30</Date>"), kInvalid,
         "/Message/Body/NewRx/Patient/HumanPatient/DateOfBirth/Date",
         "expected a date YYYY-MM-DD, got \"2020-02-30\""},
        // (A SentTime without a zone is valid xsd:dateTime: accepted with a warning, see the
        // controls below.)
        {"SentTime in month 13", kXml,
         Replace(x, "<SentTime>2026-11-20T14:32:07Z</SentTime>",
                 "<SentTime>2026-13-20T14:32:07Z</SentTime>"),
         kInvalid, "/Message/Header/SentTime", "expected a dateTime"},
        // The depth limit itself is reported at a wrong path: see the KNOWN GAP below.
        {"elements nested 100 deep", kXml,
         InsertAfter(x, "<FirstName>Marisol</FirstName>",
                     Repeat("<Foo>", 100) + "x" + Repeat("</Foo>", 100)),
         kExhausted, pname + "/Foo", "unknown element Foo in Name"},
        {"elements nested 100,000 deep", kXml,
         InsertAfter(x, "<FirstName>Marisol</FirstName>",
                     Repeat("<Foo>", 100000) + "x" + Repeat("</Foo>", 100000)),
         kExhausted, pname + "/Foo", "unknown element Foo in Name"},
    });
  }

  // The unmutated inputs are accepted, and values at the limits pass: every failure above
  // comes from its mutation.
  TEST_CASE("Bad input: controls (unmutated fixtures and values at the limits are accepted)") {
    const std::string env = Envelope();
    for (const std::string& json : {env, TxnBundle(), ContainedBundle()}) {
      IssueList issues;
      auto in = fhir::ParsePrescription(json, issues);
      INFO(Dump(issues));
      CHECK(in.ok());
    }
    fhir::ParseOptions exact;
    exact.max_input_bytes = env.size();
    IssueList json_issues;
    CHECK(fhir::ParsePrescription(env, json_issues, exact).ok());

    const std::string x = NewRx();
    script::ReadOptions exact_xml;
    exact_xml.max_input_bytes = x.size();
    IssueList xml_issues;
    CHECK(script::ReadXml(x, xml_issues, exact_xml).ok());
    for (const std::string& xml :
         {x,
          Replace(x, "<DrugDescription>lisinopril 10 MG Oral Tablet</DrugDescription>",
                  "<DrugDescription>" + std::string(105, 'x') + "</DrugDescription>"),
          Replace(x, "<LastName>Delacroix</LastName>",
                  "<LastName>" + std::string(35, 'D') + "</LastName>"),
          // xsd:dateTime without a zone: valid (a warning, "read as UTC").
          Replace(x, "<SentTime>2026-11-20T14:32:07Z</SentTime>",
                  "<SentTime>2026-11-20T14:32:07</SentTime>")}) {
      IssueList issues;
      auto m = script::ReadXml(xml, issues);
      INFO(Dump(issues));
      CHECK(m.ok());
      CHECK_FALSE(issues.has_errors());
    }
  }

  // --- Regressions -----------------------------------------------------------------------
  // Each case below checks a behaviour the corpus once found broken (and that is fixed);
  // the comment in each says what used to happen.

  TEST_CASE("a wrong resource type in an envelope slot is named, not masked by field errors") {
    // Was: the Patient's fields are read as Organization fields and reported as R4
    // Organization.telecom/address and "patient.name: expected a string"; the type check
    // in ParsePrescription never runs because ParseRoot already failed.
    const std::string env = Envelope();
    Expect({"patient given as Organization (full Patient body)", kPrescription,
            Replace(env, "\"resourceType\": \"Patient\"", "\"resourceType\": \"Organization\""),
            kInvalid, "patient.resourceType", "expected Patient, got Organization"});
  }

  TEST_CASE("a modifierExtension on a backbone element is refused") {
    // Was: "unknown element: ignored" (warning) and the prescription is accepted, although
    // a modifierExtension changes the meaning of its element (it is refused on resources and
    // on Dosage already).
    const std::string env = Envelope();
    const std::string mod =
        R"("modifierExtension": [{"url": "http://example.org/x", "valueBoolean": true}])";
    ExpectAll({
        {"modifierExtension on substitution", kPrescription,
         Replace(env, "\"allowedBoolean\": true", "\"allowedBoolean\": true, " + mod), kInvalid,
         "medication_request.substitution.modifierExtension", "modifierExtension"},
        {"modifierExtension on dispenseRequest", kPrescription,
         Replace(env, "\"numberOfRepeatsAllowed\": 2", "\"numberOfRepeatsAllowed\": 2, " + mod),
         kInvalid, "medication_request.dispenseRequest.modifierExtension", "modifierExtension"},
    });
  }

  TEST_CASE("a duplicate key is refused also after 48 distinct keys") {
    // Was: accepted, and the second "status" silently overrides the first (the seen-keys
    // array in Reader::Fields holds 48 names).
    std::string many;
    for (int i = 0; i < 48; ++i) many += "\"x" + std::to_string(i) + "\": 1, ";
    Expect({"duplicate status after 48 unknown keys", kPrescription,
            Replace(Envelope(), "\"status\": \"active\"",
                    many + "\"status\": \"active\", \"status\": \"stopped\""),
            kInvalid, "medication_request.status", "duplicate property"});
  }

  TEST_CASE("an empty JSON object is refused (ele-1)") {
    // Was: accepted. FHIR JSON forbids empty objects as it forbids empty arrays and strings
    // (ele-1: an element has a value or children); empty arrays and strings are refused.
    Expect({"empty substitution", kPrescription,
            Replace(Envelope(), "\"substitution\": {\n      \"allowedBoolean\": true\n    }",
                    "\"substitution\": {}"),
            kInvalid, "medication_request.substitution", "must not be empty"});
  }

  TEST_CASE("an extension's value[x] is type-checked, and only one is allowed") {
    // Was: both accepted. Extensions carry data RxFlow maps (e.g. the DEA schedule).
    const std::string env = Envelope();
    ExpectAll({
        {"valueBoolean that is a string", kPrescription,
         InsertAfter(env, "\"intent\": \"order\",",
                     R"("extension": [{"url": "http://example.org/x", "valueBoolean": "yes"}],)"),
         kInvalid, "medication_request.extension[0].valueBoolean",
         "expected a boolean, got a string"},
        {"two value[x] in one extension", kPrescription,
         InsertAfter(
             env, "\"intent\": \"order\",",
             R"("extension": [{"url": "http://example.org/x", "valueString": "a", "valueInteger": 2}],)"),
         kInvalid, "medication_request.extension[0].valueInteger", "value[x]"},
    });
  }

  TEST_CASE("an unpaired surrogate escape is named as such") {
    const std::string in =
        Replace(Envelope(), "\"family\": \"Delacroix\"", "\"family\": \"Dela\\ud800croix\"");
    Expect({"unpaired \\ud800", kPrescription, in, kInvalid, "patient.name[0].family", "escape"});
    IssueList issues;
    (void)fhir::ParsePrescription(in, issues);
    for (const Issue& i : issues)
      CHECK(i.message.find("expected a string, got a string") == std::string::npos);
  }

  TEST_CASE("trailing content after the JSON root is reported as trailing content") {
    // Was: "malformed JSON: JSON document ended early in the middle of an object or array"
    // (simdjson's INCOMPLETE_ARRAY_OR_OBJECT), which says the opposite of what is wrong.
    // A second value ("{}") is reported correctly.
    const std::string env = Envelope();
    ExpectAll({
        {"trailing word", kPrescription, env + "garbage", kInvalid, "",
         "unexpected content after the JSON value"},
        {"trailing ]", kPrescription, env + "]", kInvalid, "",
         "unexpected content after the JSON value"},
        {"trailing number", kPrescription, env + " 1", kInvalid, "",
         "unexpected content after the JSON value"},
    });
  }

  TEST_CASE("a refused root resource gives one fatal, no spurious trailing-content fatal") {
    // Was: ParseResource on an unsupported or non-string resourceType, or on an object
    // without resourceType, also reports "fatal: $: unexpected content after the JSON
    // value": the root object was not consumed, so the trailing-content check misfires.
    for (const char* json : {R"({"resourceType": "Encounter", "id": "x"})",
                             R"({"resourceType": 7, "id": "x"})", R"({"id": "x"})"}) {
      CAPTURE(json);
      IssueList issues;
      (void)fhir::ParseResource(json, issues);
      INFO(Dump(issues));
      for (const Issue& i : issues) {
        CHECK(i.message.find("unexpected content after the JSON value") == std::string::npos);
      }
    }
  }

  TEST_CASE("a UTF-8 byte order mark is accepted or named") {
    // RFC 8259 lets parsers ignore a BOM, and ReadXml accepts one. Either accept it or name it.
    IssueList issues;
    auto in = fhir::ParsePrescription("\xEF\xBB\xBF" + Envelope(), issues);
    INFO(Dump(issues));
    bool named = false;
    for (const Issue& i : issues) named |= i.message.find("byte order mark") != std::string::npos;
    CHECK((in.ok() || named));
  }

  TEST_CASE("an unresolvable envelope medication reference is reported at .reference") {
    // Was: "medication_request.medication.reference"; every other unresolvable reference
    // is reported at the Reference.reference string ("...medication.reference.reference",
    // as for "#nope" in the same slot).
    Expect({"envelope Medication/m1 without a medication member", kPrescription,
            Replace(Envelope(), "\"medication\": {\n      \"concept\": {",
                    "\"medication\": {\n      \"reference\": {\"reference\": \"Medication/m1\"},\n"
                    "      \"concept\": {"),
            kInvalid, "medication_request.medication.reference.reference",
            "cannot resolve reference \"Medication/m1\""});
  }

  TEST_CASE("a missing required SCRIPT element is reported as missing") {
    // Was: "<next sibling path>: element out of order: expected X before <next sibling>";
    // only a missing element at the end of its parent is reported as missing.
    const std::string x = NewRx();
    const std::string med = "/Message/Body/NewRx/MedicationPrescribed";
    ExpectAll({
        {"MedicationPrescribed/Quantity removed", kXml, Remove(x, "<Quantity>", "</Quantity>"),
         kInvalid, med + "/Quantity", "missing required element Quantity"},
        {"Header/MessageID removed", kXml,
         Replace(x, "<MessageID>5e0a7c1d92b34f6e8a1c3b5d7f9e2a40</MessageID>", ""), kInvalid,
         "/Message/Header/MessageID", "missing required element MessageID"},
        {"Prescriber removed", kXml,
         Replace(x, Block(x, "      <Prescriber>\n", "      </Prescriber>\n"), ""), kInvalid,
         "/Message/Body/NewRx/Prescriber", "missing required element Prescriber"},
        {"LastName removed", kXml, Replace(x, "<LastName>Delacroix</LastName>", ""), kInvalid,
         "/Message/Body/NewRx/Patient/HumanPatient/Name/LastName",
         "missing required element LastName"},
    });
  }

  TEST_CASE("too many of an element is reported as too many, not as out of order") {
    // Was: "Gender[2]: element out of order: expected DateOfBirth before Gender".
    const std::string x = NewRx();
    ExpectAll({
        {"two Gender", kXml,
         Replace(x, "<Gender>F</Gender>", "<Gender>F</Gender><Gender>F</Gender>"), kInvalid,
         "/Message/Body/NewRx/Patient/HumanPatient/Gender[2]", "too many Gender elements (2)"},
        {"two MessageID", kXml,
         InsertAfter(x, "<MessageID>5e0a7c1d92b34f6e8a1c3b5d7f9e2a40</MessageID>",
                     "<MessageID>5e0a7c1d92b34f6e8a1c3b5d7f9e2a41</MessageID>"),
         kInvalid, "/Message/Header/MessageID[2]", "too many MessageID elements (2)"},
    });
  }

  TEST_CASE("an empty choice is reported as needing one of its alternatives") {
    // Was: "/Message/Body/NewRx: missing required element NewRx" — Body needs one
    // transaction, any of them; the path names an element that need not exist.
    const std::string x = NewRx();
    Expect({"empty Body", kXml, Replace(x, Block(x, "<Body>", "</Body>"), "<Body></Body>"),
            kInvalid, "/Message/Body", "one of"});
  }

  TEST_CASE("an unknown SCRIPT element gets exactly one error") {
    // Was: "/Message/Body/FooRx: unknown element FooRx in Body" and also
    // "/Message/Body/FooRx: unexpected element: expected NewRx before FooRx" (for an unknown
    // element in Name: "element out of order or not allowed here").
    const std::string x = NewRx();
    for (const std::string& in :
         {Replace(Replace(x, "<NewRx>", "<FooRx>"), "</NewRx>", "</FooRx>"),
          InsertAfter(x, "<FirstName>Marisol</FirstName>", "<Nickname>Mari</Nickname>")}) {
      IssueList issues;
      (void)script::ReadXml(in, issues);
      INFO(Dump(issues));
      CHECK(issues.error_count() == 1);
    }
  }

  TEST_CASE("the SCRIPT depth error is reported where the nesting is") {
    // Was: "/Message: elements nested deeper than 64 levels" wherever the nesting is.
    const std::string x = NewRx();
    const std::string pname = "/Message/Body/NewRx/Patient/HumanPatient/Name";
    Expect({"elements nested 100 deep in Name", kXml,
            InsertAfter(x, "<FirstName>Marisol</FirstName>",
                        Repeat("<Foo>", 100) + "x" + Repeat("</Foo>", 100)),
            kExhausted, pname + Repeat("/Foo", 60), "nested deeper than 64 levels"});
  }

  TEST_CASE("content after the SCRIPT root element is refused") {
    // Was: both accepted without an issue (pugixml keeps them; only the first element is
    // walked). JSON refuses the equivalent ("unexpected content after the JSON value").
    const std::string x = NewRx();
    ExpectAll({
        {"a second root element", kXml, x + "<Message/>", kInvalid, "/", "after the root element"},
        {"text after the root element", kXml, x + "garbage", kInvalid, "/",
         "after the root element"},
    });
  }

  TEST_CASE("a reference to U+0000 in SCRIPT is refused, never truncated") {
    // Was: accepted, and LastName reads back as "Dela" (pugixml strings end at NUL): a
    // silent truncation. A reference to U+0000 is not well-formed XML 1.0.
    const std::string x = NewRx();
    ExpectAll({
        {"&#0; in LastName", kXml,
         Replace(x, "<LastName>Delacroix</LastName>", "<LastName>Dela&#0;croix</LastName>"),
         kInvalid, "/", "malformed XML"},
        {"&#x0; in LastName", kXml,
         Replace(x, "<LastName>Delacroix</LastName>", "<LastName>Dela&#x0;croix</LastName>"),
         kInvalid, "/", "malformed XML"},
    });
  }

  // --- hostile input: bounded cost and bounded output (issue 15 §5) ----------------------
  // Only sizes and contents are checked here; benchmarks/transform_benchmark.cc
  // (BM_Hostile*) shows the cost is linear.

  // Issue texts quote input cut to a few dozen bytes; a cut inside a UTF-8 sequence once put
  // invalid UTF-8 into the OperationOutcome JSON (found by the script fuzzer).
  TEST_CASE("issue messages and paths are valid UTF-8, whatever was cut") {
    IssueList issues;
    issues.Error("/Message/\xC6", IssueCode::kValue, "got \"2026-09-23T00BB\xC6\"");
    issues.Warning("/ok", IssueCode::kValue, "caf\xC3\xA9 \xF0\x9F\x92");
    REQUIRE(issues.size() == 2);
    CHECK(issues[0].path == "/Message/\xEF\xBF\xBD");
    CHECK(issues[0].message == "got \"2026-09-23T00BB\xEF\xBF\xBD\"");
    CHECK(issues[1].message == "caf\xC3\xA9 \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");

    // The input the fuzzer found: a dateTime cut at 40 bytes inside a two-byte character.
    std::string xml =
        testing::ReadFixture("fuzz/script/crash-eefc755e9936dd893dbb9ef71a1fdba96a5ed878");
    TransformOptions o;
    o.lenient = true;
    o.read_version = script::Version::k2023011;
    IssueList read;
    auto out = ToFhirJson(std::string_view(xml).substr(1), read, o);
    RXFLOW_REQUIRE_OK(out);
    CHECK(nlohmann::json::accept(*out));
  }

  TEST_CASE("an issue list keeps 100 issues and counts the rest in one summary issue") {
    const std::string ellipsis = "\xE2\x80\xA6";
    IssueList issues;
    for (int i = 0; i < 10000; ++i) {
      issues.Error("p" + std::to_string(i), IssueCode::kStructure, "e");
    }
    CHECK(issues.has_errors());
    CHECK(issues.error_count() == 10000);
    CHECK(issues.total_count() == 10000);
    CHECK(issues.dropped_count() == 9900);
    CHECK(issues.size() == 101);
    REQUIRE(issues.summary() != nullptr);
    CHECK(issues.summary() == &issues[100]);
    CHECK(issues[100].severity == Severity::kError);
    CHECK(issues[100].code == IssueCode::kStructure);
    CHECK(issues[100].path == "p100");  // the first issue dropped
    CHECK(issues[100].message == ellipsis + " and 9900 more issues (9900 errors, 0 warnings)");
    CHECK(issues.Find("p99") == &issues[99]);
    CHECK(issues.Find("p100") == nullptr);  // dropped; the summary is never found
    CHECK(issues.last_added().path == "p9999");

    // Fatal issues are never dropped: one takes the place of the last error kept.
    issues.Fatal("/", IssueCode::kSecurity, "refused");
    CHECK(issues.size() == 101);
    CHECK(issues[issues.size() - 1].message == "refused");  // the issue just added is last
    CHECK(issues.error_count() == 10001);
    CHECK(issues.Find("p99") == nullptr);
    CHECK(issues.summary()->message ==
          ellipsis + " and 9901 more issues (9901 errors, 0 warnings)");

    // Warnings never crowd out errors: an error after 150 warnings takes a warning's place.
    IssueList mixed;
    for (int i = 0; i < 150; ++i) mixed.Warning("w", IssueCode::kStructure, "w");
    mixed.Error("status", IssueCode::kStructure, "duplicate property");
    CHECK(mixed.size() == 101);
    CHECK(mixed.warning_count() == 150);
    CHECK(mixed.error_count() == 1);
    CHECK(mixed[mixed.size() - 1].path == "status");
    REQUIRE(mixed.summary() != nullptr);
    CHECK(mixed.summary() == &mixed[99]);
    CHECK(mixed.summary()->severity == Severity::kWarning);
    CHECK(mixed.summary()->message == ellipsis + " and 51 more issues (0 errors, 51 warnings)");
    mixed.Warning("w", IssueCode::kStructure, "w");  // dropped: the summary is last again
    CHECK(mixed.summary() == &mixed[100]);
    CHECK(mixed.last_added().path == "w");

    // Append keeps the counts of what the other list dropped, under this list's cap.
    IssueList small(10);
    small.Append(issues, "x.");
    CHECK(small.error_count() == issues.error_count());
    CHECK(small.size() == 11);  // 9 errors, the summary, the fatal issue
    REQUIRE(small.summary() != nullptr);
    CHECK(small.summary()->path == "x.p10");
    CHECK(small[small.size() - 1].message == "refused");
    issues.clear();
    CHECK(issues.empty());
    CHECK_FALSE(issues.has_errors());
  }

  TEST_CASE("250,000 unknown SCRIPT siblings give at most 101 issues and a small outcome") {
    // Was: 106 s of CPU and a 31.6 MB OperationOutcome (each issue path counted its
    // siblings; every issue was kept).
    constexpr size_t kSiblings = 250000;
    const std::string x = InsertAfter(testing::ReadFixture("script/rxfill_dispensed.xml"),
                                      "<RxFill>", Repeat("<Unknown/>", kSiblings));
    REQUIRE(x.size() < script::ReadOptions{}.max_input_bytes);
    IssueList issues;
    auto out = ToFhirJson(x, issues);
    CHECK(out.status().code() == StatusCode::kInvalidArgument);
    CHECK(issues.has_errors());
    CHECK(issues.error_count() >= kSiblings);
    CHECK(issues.size() <= 101);
    // Paths still carry the index among same-named siblings.
    const std::string rxfill = "/Message/Body/RxFill/";
    REQUIRE(issues.Find(rxfill + "Unknown") != nullptr);
    CHECK(issues.Find(rxfill + "Unknown")->message == "unknown element Unknown in RxFill");
    CHECK(issues.Find(rxfill + "Unknown[2]") != nullptr);
    CHECK(issues.Find(rxfill + "Unknown[50]") != nullptr);
    const Issue* summary = issues.summary();
    REQUIRE(summary != nullptr);
    INFO(ToString(*summary));
    CHECK(issues.dropped_count() >= kSiblings - 100);
    CHECK(summary->severity == Severity::kError);
    CHECK(summary->message.find(" and " + std::to_string(issues.dropped_count()) +
                                " more issues (") != std::string::npos);
    CHECK(summary->path.rfind(rxfill + "Unknown[", 0) == 0);
    std::string oo = fhir::WriteJson(fhir::Resource{fhir::ToOperationOutcome(issues)});
    CHECK(oo.size() < 64 * 1024);
  }

  TEST_CASE("a FHIR request with 250,000 keys gives at most 101 issues") {
    std::string keys;
    for (int i = 0; i < 250000; ++i) keys += "\"x" + std::to_string(i) + "\": 1, ";
    const std::string json = InsertAfter(Envelope(), "\"intent\": \"order\",", keys);
    REQUIRE(json.size() < fhir::ParseOptions{}.max_input_bytes);
    IssueList issues;
    TransformOptions o;
    o.newrx.message_id = "hostile-keys-0001";
    o.newrx.sent_time = "2026-11-26T10:00:00Z";
    auto out = ToScript(json, issues, o);
    INFO(Dump(issues));
    CHECK(out.ok());
    CHECK_FALSE(issues.has_errors());
    CHECK(issues.warning_count() >= 250000);
    CHECK(issues.size() <= 101);
    REQUIRE(issues.Find("medication_request.x0") != nullptr);
    CHECK(issues.Find("medication_request.x0")->message == "unknown element: ignored");
    REQUIRE(issues.summary() != nullptr);
    CHECK(issues.summary()->message.find(" and " + std::to_string(issues.dropped_count()) +
                                         " more issues (0 errors, ") != std::string::npos);
    std::string oo = fhir::WriteJson(fhir::Resource{fhir::ToOperationOutcome(issues)});
    CHECK(oo.size() < 64 * 1024);
  }

  TEST_CASE("a duplicate key among 100,000 keys is named") {
    std::string keys;
    for (int i = 0; i < 100000; ++i) keys += "\"x" + std::to_string(i) + "\": 1, ";
    const std::string json = Replace(Envelope(), "\"status\": \"active\"",
                                     keys + "\"status\": \"active\", \"status\": \"stopped\"");
    IssueList issues;
    auto in = fhir::ParsePrescription(json, issues);
    CHECK(in.status().code() == StatusCode::kInvalidArgument);
    const std::string status_message(in.status().message());
    CHECK(status_message.find("medication_request.status: duplicate property") !=
          std::string::npos);
    CHECK(issues.error_count() == 1);
    CHECK(issues.size() <= 101);  // the error took the place of a warning
    const Issue* dup = issues.Find("medication_request.status");
    REQUIRE(dup != nullptr);
    CHECK(dup->severity == Severity::kError);
    CHECK(dup->message == "duplicate property");
    // A repeat of a key seen long before is found too (not only of the last 48).
    IssueList again;
    const std::string repeat_x7 =
        InsertAfter(Envelope(), "\"intent\": \"order\",", keys + "\"x7\": 2,");
    (void)fhir::ParsePrescription(repeat_x7, again);
    CHECK(again.error_count() == 1);
    bool named = false;
    for (const Issue& i : again) {
      named |= i.severity == Severity::kError && i.path == "medication_request.x7" &&
               i.message == "duplicate property";
    }
    CHECK(named);
  }
}

TEST_SUITE("Fuzz regressions") {
  // The minimised corpus of `make fuzz` (tests/fixtures/fuzz/<target>/), replayed through the
  // targets' own bodies: they trap on a broken promise (tests/fuzz/targets.h), and in the
  // ASan build every sanitizer check runs on them too.
  TEST_CASE("the fuzz corpus replays: every refusal explained, issue lists bounded") {
    size_t replayed = 0;
    for (const char* target : {"check", "script"}) {
      for (const auto& path : testing::FixtureFiles(std::string("fuzz/") + target, "")) {
        CAPTURE(path.string());
        std::string data = testing::ReadFile(path);
        const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
        if (std::string_view(target) == "check") {
          fuzz::CheckAnything(bytes, data.size());
        } else {
          fuzz::ReadScript(bytes, data.size());
        }
        ++replayed;
      }
    }
    CHECK(replayed >= 50);
  }

  // Every input the fuzzer has crashed RxFlow with: each must now be refused cleanly.
  TEST_CASE("fuzzer crash inputs are refused without crashing") {
    for (const auto& path : testing::FixtureFiles("crashes", ".json")) {
      CAPTURE(path.filename().string());
      IssueList issues;
      Status s = Check(testing::ReadFile(path), issues);
      CHECK_FALSE(s.ok());
      CHECK(issues.has_errors());
    }
  }
}
