// SPDX-License-Identifier: Apache-2.0
// Internal (core and adapters; not installed): small JSON written without a DOM.
#ifndef RXFLOW_INTERNAL_JSON_H_
#define RXFLOW_INTERNAL_JSON_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "rxflow/internal/strcat.h"

namespace rxflow::internal {

// Appends `s` to `out` as the body of a JSON string (quotes not included): ", \ and control
// characters escaped, everything else (UTF-8 included) as is. Defined in the core.
void AppendJsonEscaped(std::string& out, std::string_view s);

// Whether `s` can be written in a JSON string as it is (nothing to escape).
bool JsonEscapeFree(std::string_view s);

// A flat JSON object written member by member, in call order, into one string:
//   JsonObject o; o.String("id", id).Bool("is_controlled", c).Int("version", v);
//   std::string text = o.Finish();   // {"id":"…","is_controlled":true,"version":3}
// Keys are the caller's constants (written as given); values are escaped.
class JsonObject {
 public:
  JsonObject& String(std::string_view key, std::string_view value) {
    Key(key);
    out_.push_back('"');
    AppendJsonEscaped(out_, value);
    out_.push_back('"');
    return *this;
  }
  // Nothing when `value` is empty (an optional member).
  JsonObject& StringIfSet(std::string_view key, std::string_view value) {
    return value.empty() ? *this : String(key, value);
  }
  JsonObject& Int(std::string_view key, int64_t value) {
    Key(key);
    AppendPiece(out_, value);
    return *this;
  }
  JsonObject& Bool(std::string_view key, bool value) {
    Key(key);
    out_.append(value ? "true" : "false");
    return *this;
  }
  // `json` is already a JSON value (an object, an array), written as it is.
  JsonObject& Raw(std::string_view key, std::string_view json) {
    Key(key);
    out_.append(json);
    return *this;
  }
  // The object's text; the JsonObject is spent.
  std::string Finish() {
    out_.push_back('}');
    return std::move(out_);
  }

 private:
  void Key(std::string_view key) {
    if (out_.size() > 1) out_.push_back(',');
    out_.push_back('"');
    out_.append(key);
    out_.append("\":");
  }
  std::string out_ = "{";
};

}  // namespace rxflow::internal

#endif  // RXFLOW_INTERNAL_JSON_H_
