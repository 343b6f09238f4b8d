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
  // Where the root is read when it is a resource (it has resourceType); DroppedRoot() when it
  // could not be read. Resources are read in place: they are large to move.
  virtual Resource& RootSlot() = 0;
  virtual void DroppedRoot() = 0;
  // Whether a root object without resourceType is read as the request envelope.
  virtual bool AcceptsEnvelope() const { return false; }
  virtual bool IsEnvelopeKey(std::string_view key) const { return false; }
  // Whether the envelope member `key` is an array of resources (each read into its own
  // EnvelopeSlot in turn) rather than one resource.
  virtual bool IsEnvelopeList(std::string_view key) const { return false; }
  // The resource type an envelope member must have ("" for any).
  virtual std::string_view ExpectedType(std::string_view key) const { return {}; }
  // Where the next resource of envelope member `key` is read (asked only for an envelope key
  // of a handler that accepts the envelope, which overrides this; nullptr: not read);
  // DroppedEnvelopeSlot(key) removes it again when it could not be read.
  virtual Resource* EnvelopeSlot(std::string_view key) { return nullptr; }
  virtual void DroppedEnvelopeSlot(std::string_view key) {}
};

// Parses `json` and calls `handler`; InvalidArgument (or ResourceExhausted for limits)
// when errors were reported.
Status ParseRoot(std::string_view json, IssueList& issues, const ParseOptions& options,
                 RootHandler& handler);

}  // namespace rxflow::fhir::internal_json

#endif  // RXFLOW_SRC_FHIR_JSON_READER_H_
