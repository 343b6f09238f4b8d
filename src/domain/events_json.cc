// SPDX-License-Identifier: Apache-2.0
// JSON codec of the Prescription events and state snapshots. Encoding is written straight
// from the field table (VisitFields), with no DOM; decoding parses with simdjson's DOM (one
// parser per thread, reused) through the same table, with error codes, never exceptions.
// The upcasters of old schema versions edit payloads with nlohmann/json (cold paths).
#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "rxflow/domain/prescription.h"
#include "rxflow/internal/strcat.h"

#include "common/text.h"

namespace rxflow::domain {

using rxflow::internal::Cat;

namespace {

using Json = nlohmann::json;

// For static_assert in a discarded `if constexpr` branch ([[maybe_unused]]: clang counts a use
// only in an instantiated branch).
template <typename>
[[maybe_unused]] inline constexpr bool kAlwaysFalse = false;

// Calls f(name, field) for each payload field of an event (snake_case names, as stored).
template <typename E, typename F>
void VisitFields(E& e, F&& f) {
  using T = std::remove_const_t<E>;
  if constexpr (std::is_same_v<T, PrescriptionReceived>) {
    f("idempotency_key", e.idempotency_key);
    f("request_sha256", e.request_sha256);
    f("source", e.source);
  } else if constexpr (std::is_same_v<T, PrescriptionRejected>) {
    f("reasons", e.reasons);
  } else if constexpr (std::is_same_v<T, PrescriptionTransformed>) {
    f("script_version", e.script_version);
    f("message_id", e.message_id);
    f("newrx_xml", e.newrx_xml);
    f("pharmacy_ncpdp_id", e.pharmacy_ncpdp_id);
    f("prescriber_npi", e.prescriber_npi);
    f("drug_description", e.drug_description);
    f("dea_schedule", e.dea_schedule);
    f("phi_key", e.phi_key);
  } else if constexpr (std::is_same_v<T, InteractionsScreened>) {
    f("knowledge_base", e.knowledge_base);
    f("drug_description", e.drug_description);
    f("patient_ref", e.patient_ref);
    f("ingredients", e.ingredients);
    f("ingredients_from_text", e.ingredients_from_text);
    f("screened_against", e.screened_against);
    f("findings", e.findings);
    f("override_reason", e.override_reason);
  } else if constexpr (std::is_same_v<T, PdmpQueried>) {
    f("pdmp", e.pdmp);
    f("queried_at", e.queried_at);
    f("requester_npi", e.requester_npi);
    f("outcome", e.outcome);
    f("dispensings", e.dispensings);
    f("pharmacies", e.pharmacies);
    f("latest_fill", e.latest_fill);
    f("error", e.error);
  } else if constexpr (std::is_same_v<T, ScreenedIngredientRecord>) {
    f("name", e.name);
    f("rxcui", e.rxcui);
  } else if constexpr (std::is_same_v<T, InteractionRecord>) {
    f("rule_id", e.rule_id);
    f("severity", e.severity);
    f("summary", e.summary);
    f("citation", e.citation);
    f("ingredient", e.ingredient);
    f("ingredient_class", e.ingredient_class);
    f("other_ingredient", e.other_ingredient);
    f("other_class", e.other_class);
    f("other_drug", e.other_drug);
    f("other_prescription_id", e.other_prescription_id);
  } else if constexpr (std::is_same_v<T, PrescriptionReadyToSign> ||
                       std::is_same_v<T, PrescriptionExpired>) {
    // no fields
  } else if constexpr (std::is_same_v<T, PrescriptionMarkedReady>) {
    f("practitioner", e.practitioner);
    f("dea_number", e.dea_number);
    f("bundle_sha256", e.bundle_sha256);
  } else if constexpr (std::is_same_v<T, PrescriptionSigned>) {
    f("signer", e.signer);
    f("signature", e.signature);
    f("signed_content_sha256", e.signed_content_sha256);
    f("dea_number", e.dea_number);
    f("two_factor_event_id", e.two_factor_event_id);
    f("signed_newrx_xml", e.signed_newrx_xml);
    f("record_cosignature", e.record_cosignature);
    f("record_cosigner_key_sha256", e.record_cosigner_key_sha256);
  } else if constexpr (std::is_same_v<T, PrescriptionQueued>) {
    f("pharmacy_ncpdp_id", e.pharmacy_ncpdp_id);
    f("attempt", e.attempt);
  } else if constexpr (std::is_same_v<T, PrescriptionSent>) {
    f("message_id", e.message_id);
    f("attempt", e.attempt);
  } else if constexpr (std::is_same_v<T, PharmacyAcknowledged>) {
    f("status_code", e.status_code);
    f("relates_to_message_id", e.relates_to_message_id);
  } else if constexpr (std::is_same_v<T, PharmacyVerified>) {
    f("relates_to_message_id", e.relates_to_message_id);
  } else if constexpr (std::is_same_v<T, PharmacyErrorReceived>) {
    f("code", e.code);
    f("description_codes", e.description_codes);
    f("description", e.description);
    f("retryable", e.retryable);
  } else if constexpr (std::is_same_v<T, PrescriptionDispensed>) {
    f("fill_status", e.fill_status);
    f("complete", e.complete);
    f("quantity", e.quantity);
    f("dispensed_ndc", e.dispensed_ndc);
  } else if constexpr (std::is_same_v<T, CancelRequested>) {
    f("reason", e.reason);
    f("cancel_message_id", e.cancel_message_id);
  } else if constexpr (std::is_same_v<T, PrescriptionCancelled> ||
                       std::is_same_v<T, CancelDenied>) {
    f("reason", e.reason);
  } else if constexpr (std::is_same_v<T, PrescriptionState>) {
    f("state", e.state);
    f("version", e.version);
    f("idempotency_key", e.idempotency_key);
    f("message_id", e.message_id);
    f("script_version", e.script_version);
    f("pharmacy_ncpdp_id", e.pharmacy_ncpdp_id);
    f("prescriber_npi", e.prescriber_npi);
    f("drug_description", e.drug_description);
    f("dea_schedule", e.dea_schedule);
    f("signed", e.signed_);
    f("fill_complete", e.fill_complete);
    f("send_attempts", e.send_attempts);
    f("last_error_code", e.last_error_code);
    f("before_cancel", e.before_cancel);
    f("ready_by", e.ready_by);
    f("ready_dea_number", e.ready_dea_number);
    f("ready_bundle_sha256", e.ready_bundle_sha256);
  } else {
    static_assert(kAlwaysFalse<T>, "VisitFields: add the fields of this type");
  }
}

// A JSON string. Invalid UTF-8 cannot be stored in JSON: each bad byte becomes U+FFFD
// rather than an error.
void AppendString(std::string& out, std::string_view s) {
  out.push_back('"');
  if (internal::IsValidUtf8(s)) {
    internal::AppendJsonEscaped(out, s);
  } else {
    std::string valid(s);
    internal::MakeValidUtf8(valid);
    internal::AppendJsonEscaped(out, valid);
  }
  out.push_back('"');
}

// A vector of records (structs VisitFields knows), written as an array of objects.
template <typename F>
struct IsRecordVector : std::false_type {};
template <>
struct IsRecordVector<std::vector<ScreenedIngredientRecord>> : std::true_type {};
template <>
struct IsRecordVector<std::vector<InteractionRecord>> : std::true_type {};

// The JSON object of `value`'s fields, written straight from VisitFields in its order (no
// DOM: the NewRx XML inside PrescriptionTransformed is escaped once, as it is copied).
template <typename T>
std::string Encode(const T& value, std::string_view extra_key = {}, int extra_value = 0) {
  std::string out;
  out.push_back('{');
  auto key = [&](std::string_view name) {
    if (out.size() > 1) out.push_back(',');
    out.push_back('"');
    out.append(name);
    out.append("\":");
  };
  VisitFields(value, [&](const char* name, const auto& field) {
    using F = std::decay_t<decltype(field)>;
    key(name);
    if constexpr (std::is_same_v<F, State>) {
      AppendString(out, StateName(field));
    } else if constexpr (std::is_same_v<F, std::string>) {
      AppendString(out, field);
    } else if constexpr (std::is_same_v<F, bool>) {
      out.append(field ? "true" : "false");
    } else if constexpr (std::is_integral_v<F>) {
      out.append(std::to_string(field));
    } else if constexpr (std::is_same_v<F, std::vector<std::string>>) {
      out.push_back('[');
      for (size_t i = 0; i < field.size(); ++i) {
        if (i) out.push_back(',');
        AppendString(out, field[i]);
      }
      out.push_back(']');
    } else if constexpr (IsRecordVector<F>::value) {
      out.push_back('[');
      for (size_t i = 0; i < field.size(); ++i) {
        if (i) out.push_back(',');
        out.append(Encode(field[i]));
      }
      out.push_back(']');
    } else {
      static_assert(kAlwaysFalse<F>, "Encode: add this field type");
    }
  });
  if (!extra_key.empty()) {
    key(extra_key);
    out.append(std::to_string(extra_value));
  }
  out.push_back('}');
  return out;
}

// Readers over simdjson's DOM (the payloads are small, and every field is read): "" when
// `out` was read, else why not ("is not a string").
using Element = simdjson::dom::element;

std::string Read(Element v, std::string& out) {
  std::string_view s;
  if (v.get_string().get(s)) return "is not a string";
  out.assign(s);
  return {};
}

std::string Read(Element v, bool& out) {
  if (v.get_bool().get(out)) return "is not a boolean";
  return {};
}

std::string ReadInteger(Element v, int64_t lo, int64_t hi, int64_t& out) {
  switch (v.type()) {
    case simdjson::dom::element_type::INT64:
      out = v.get_int64().value_unsafe();
      if (out < lo || out > hi) return "is out of range";
      return {};
    case simdjson::dom::element_type::UINT64:  // above INT64_MAX, so above any bound here
      return "is out of range";
    default:
      return "is not an integer";
  }
}

std::string Read(Element v, int64_t& out) {
  return ReadInteger(v, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(),
                     out);
}

std::string Read(Element v, int& out) {
  int64_t wide = 0;
  std::string why =
      ReadInteger(v, std::numeric_limits<int>::min(), std::numeric_limits<int>::max(), wide);
  if (why.empty()) out = static_cast<int>(wide);
  return why;
}

std::string Read(Element v, std::vector<std::string>& out) {
  simdjson::dom::array items;
  if (v.get_array().get(items)) return "is not an array";
  out.clear();
  for (Element item : items) {
    std::string_view s;
    if (item.get_string().get(s)) return "has an item that is not a string";
    out.emplace_back(s);
  }
  return {};
}

std::string Read(Element v, State& out) {
  std::string_view name;
  if (v.get_string().get(name)) return "is not a string";
  std::optional<State> state = StateFromName(name);
  if (!state) return Cat("names no known state (", name, ")");
  out = *state;
  return {};
}

template <typename T>
std::string FromJson(Element j, T& out);

template <typename R>
requires IsRecordVector<std::vector<R>>::value std::string Read(Element v, std::vector<R>& out) {
  simdjson::dom::array items;
  if (v.get_array().get(items)) return "is not an array";
  out.clear();
  size_t i = 0;
  for (Element item : items) {
    R r;
    std::string why = FromJson(item, r);
    if (!why.empty()) return Cat("item ", i, " ", why);
    out.push_back(std::move(r));
    ++i;
  }
  return {};
}

// Reads every field of `out` from the object `j`; "" or "field <name> <why>". Every field
// is required: the encoder writes them all, and a new field means a new schema version.
template <typename T>
std::string FromJson(Element j, T& out) {
  simdjson::dom::object object;
  if (j.get_object().get(object)) return "is not a JSON object";
  std::string error;
  VisitFields(out, [&](const char* name, auto& field) {
    if (!error.empty()) return;
    Element value;
    if (object.at_key(name).get(value)) {
      error = Cat("has no field ", name);
      return;
    }
    std::string why = Read(value, field);
    if (!why.empty()) error = Cat("field ", name, " ", why);
  });
  return error;
}

simdjson::dom::parser& ThreadParser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

// The root of `json` parsed by this thread's parser (valid until its next parse, or the end
// of the decode's TrimThreadParserAtEnd), or why not.
simdjson::simdjson_result<Element> ParseRoot(std::string_view json) {
  return ThreadParser().parse(json.data(), json.size(), /*realloc_if_needed=*/true);
}

// For the length of a decode: at its end, a parser grown for a payload far above an event's
// usual size (it keeps ~15 bytes per input byte) gives its buffers back, so no thread keeps
// megabytes.
struct TrimThreadParserAtEnd {
  TrimThreadParserAtEnd() = default;
  TrimThreadParserAtEnd(const TrimThreadParserAtEnd&) = delete;
  TrimThreadParserAtEnd& operator=(const TrimThreadParserAtEnd&) = delete;
  ~TrimThreadParserAtEnd() {
    constexpr size_t kKeep = size_t{256} << 10;
    if (ThreadParser().capacity() > kKeep) ThreadParser() = simdjson::dom::parser{};
  }
};

template <typename T>
StatusOr<Event> DecodeAs(Element j) {
  T event;
  std::string error = FromJson(j, event);
  if (!error.empty()) return absl::DataLossError(Cat("payload of event ", T::kType, " ", error));
  return Event(std::move(event));
}

struct EventCodec {
  std::string_view type;
  int schema_version;
  StatusOr<Event> (*decode)(Element);
};

template <size_t... I>
constexpr std::array<EventCodec, sizeof...(I)> MakeCodecs(std::index_sequence<I...>) {
  return {{{std::variant_alternative_t<I, Event>::kType,
            std::variant_alternative_t<I, Event>::kSchemaVersion,
            &DecodeAs<std::variant_alternative_t<I, Event>>}...}};
}

constexpr auto kCodecs = MakeCodecs(std::make_index_sequence<std::variant_size_v<Event>>());

constexpr int kStateSnapshotVersion = 1;

}  // namespace

namespace {

// PrescriptionSigned 1 → 2: EPCS signing added the DEA number, the two-factor event and the
// signed NewRx; a version 1 signature had none of them.
std::string UpcastSignedV1ToV2(std::string_view payload) {
  Json j = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::string(payload);  // the decoder names the problem
  for (const char* field : {"dea_number", "two_factor_event_id", "signed_newrx_xml"}) {
    if (!j.contains(field)) j[field] = "";
  }
  return j.dump();
}

// PrescriptionSigned 2 → 3: the post-quantum co-signature of the record; a version 2
// signature was not co-signed.
std::string UpcastSignedV2ToV3(std::string_view payload) {
  Json j = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::string(payload);  // the decoder names the problem
  for (const char* field : {"record_cosignature", "record_cosigner_key_sha256"}) {
    if (!j.contains(field)) j[field] = "";
  }
  return j.dump();
}

// PrescriptionTransformed 1 → 2: the patient's data key id (PHI at rest); a version 1 event
// had none (its NewRx is read as stored, or sealed under its stream's own key).
std::string UpcastTransformedV1ToV2(std::string_view payload) {
  Json j = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::string(payload);  // the decoder names the problem
  if (!j.contains("phi_key")) j["phi_key"] = "";
  return j.dump();
}

// PrescriptionDispensed 1 → 2: the dispensed NDC; a version 1 fill did not keep it.
std::string UpcastDispensedV1ToV2(std::string_view payload) {
  Json j = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::string(payload);  // the decoder names the problem
  if (!j.contains("dispensed_ndc")) j["dispensed_ndc"] = "";
  return j.dump();
}

}  // namespace

UpcasterRegistry UpcasterRegistry::Builtin() {
  // A schema change registers its upcaster here (docs/event-model.md, "Schema evolution").
  UpcasterRegistry r;
  r.Register(PrescriptionSigned::kType, 1, &UpcastSignedV1ToV2);
  r.Register(PrescriptionSigned::kType, 2, &UpcastSignedV2ToV3);
  r.Register(PrescriptionDispensed::kType, 1, &UpcastDispensedV1ToV2);
  r.Register(PrescriptionTransformed::kType, 1, &UpcastTransformedV1ToV2);
  return r;
}

UpcasterRegistry& UpcasterRegistry::Register(std::string_view type, int from_version,
                                             Upcaster upcaster) {
  std::pair<std::string, int> key(std::string(type), from_version);
  if (upcaster == nullptr) {
    upcasters_.erase(key);
  } else {
    upcasters_[std::move(key)] = upcaster;
  }
  return *this;
}

Upcaster UpcasterRegistry::Find(std::string_view type, int from_version) const {
  auto it = upcasters_.find(std::pair<std::string, int>(std::string(type), from_version));
  return it == upcasters_.end() ? nullptr : it->second;
}

bool IsPrescriptionEventType(std::string_view type) {
  for (const EventCodec& c : kCodecs) {
    if (c.type == type) return true;
  }
  return false;
}

const UpcasterRegistry& BuiltinUpcasters() {
  // Immutable once built; never destroyed (no exit-time destructor).
  static const UpcasterRegistry* const kBuiltin = new UpcasterRegistry(UpcasterRegistry::Builtin());
  return *kBuiltin;
}

std::string EncodePayload(const Event& e) {
  return std::visit([](const auto& event) { return Encode(event); }, e);
}

StatusOr<Event> DecodeEvent(std::string_view type, int schema_version, std::string_view payload,
                            const UpcasterRegistry& upcasters) {
  const EventCodec* codec = nullptr;
  for (const EventCodec& c : kCodecs) {
    if (c.type == type) codec = &c;
  }
  if (codec == nullptr) return absl::DataLossError(Cat("unknown event type ", type));
  if (schema_version > codec->schema_version) {
    return absl::DataLossError(Cat("event ", type, " has schema version ", schema_version,
                                   ", newer than this build knows (", codec->schema_version, ")"));
  }
  // Upcast one version at a time up to the version this build decodes.
  std::string upcast;
  std::string_view current = payload;
  for (int v = schema_version; v < codec->schema_version; ++v) {
    Upcaster upcaster = upcasters.Find(type, v);
    if (upcaster == nullptr) {
      return absl::DataLossError(
          Cat("event ", type, " has schema version ", v, " and no upcaster to version ", v + 1));
    }
    try {
      upcast = upcaster(current);
    } catch (const Json::exception& e) {  // the built-in upcasters edit with nlohmann/json
      return absl::DataLossError(Cat("payload of event ", type, " cannot be decoded: ", e.what()));
    }
    current = upcast;
  }
  TrimThreadParserAtEnd trim;
  Element root;
  if (ParseRoot(current).get(root)) {
    return absl::DataLossError(Cat("payload of event ", type, " is not valid JSON"));
  }
  return codec->decode(root);
}

std::string EncodeState(const PrescriptionState& state) {
  return Encode(state, "schema_version", kStateSnapshotVersion);
}

StatusOr<PrescriptionState> DecodeState(std::string_view json) {
  TrimThreadParserAtEnd trim;
  Element root;
  if (ParseRoot(json).get(root)) {
    return absl::DataLossError("prescription state snapshot is not valid JSON");
  }
  simdjson::dom::object object;
  if (root.get_object().get(object)) {
    return absl::DataLossError("prescription state snapshot is not a JSON object");
  }
  Element field;
  int version = 0;
  if (object.at_key("schema_version").get(field) || !Read(field, version).empty()) {
    return absl::DataLossError("prescription state snapshot has no integer schema_version");
  }
  if (version != kStateSnapshotVersion) {
    return absl::DataLossError(Cat("prescription state snapshot has schema version ", version,
                                   ", this build reads ", kStateSnapshotVersion));
  }
  PrescriptionState state;
  std::string error = FromJson(root, state);
  if (!error.empty()) return absl::DataLossError(Cat("prescription state snapshot ", error));
  return state;
}

}  // namespace rxflow::domain
