// SPDX-License-Identifier: Apache-2.0
// Private: the root-level entry of the JSON reader, shared by ParseResource and the
// prescription-input resolver.
#ifndef RXFLOW_SRC_FHIR_JSON_READER_H_
#define RXFLOW_SRC_FHIR_JSON_READER_H_

#include <string_view>

#include "rxflow/fhir/json.h"

namespace rxflow::fhir::internal_json {

class RootHandler {
 public:
  virtual ~RootHandler() = default;
  // The root was a resource (it has resourceType).
  virtual void OnResource(Resource r) = 0;
  // Whether a root object without resourceType is read as the request envelope.
  virtual bool AcceptsEnvelope() const { return false; }
  virtual bool IsEnvelopeKey(std::string_view key) const { return false; }
  // Whether the envelope member `key` is an array of resources (each given to
  // OnEnvelopeMember in turn) rather than one resource.
  virtual bool IsEnvelopeList(std::string_view key) const { return false; }
  // The resource type an envelope member must have ("" for any).
  virtual std::string_view ExpectedType(std::string_view key) const { return {}; }
  // `r` by value: overrides keep it (the base ignores it).
  // NOLINTNEXTLINE(performance-unnecessary-value-param)
  virtual void OnEnvelopeMember(std::string_view key, Resource r) {}
};

// Parses `json` and calls `handler`; InvalidArgument (or ResourceExhausted for limits)
// when errors were reported.
Status ParseRoot(std::string_view json, IssueList& issues, const ParseOptions& options,
                 RootHandler& handler);

}  // namespace rxflow::fhir::internal_json

#endif  // RXFLOW_SRC_FHIR_JSON_READER_H_
