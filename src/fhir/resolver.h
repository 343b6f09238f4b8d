// SPDX-License-Identifier: Apache-2.0
// Resolves the references of a Bundle or a MedicationRequest: by the entries' fullUrl, by
// Type/id (also the tail of an absolute URL), and to contained resources by #id. Used by
// ParsePrescription (prescription_input.cc) and by FHIR → SCRIPT of the other transactions
// (mapping/bundle_to_script.cc).
#ifndef RXFLOW_SRC_FHIR_RESOLVER_H_
#define RXFLOW_SRC_FHIR_RESOLVER_H_

#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>

#include "rxflow/fhir/r5.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/issue.h"

namespace rxflow::fhir {

// A resource of the input and its path there ("Bundle.entry[2].resource").
struct Located {
  const Resource* resource = nullptr;
  std::string path;
};

// The index of a Bundle's entries (and a MedicationRequest's contained resources), and
// reference resolution over it. Holds pointers into the indexed values: they must outlive it.
class Resolver {
 public:
  Resolver(IssueList& issues) : issues_(issues) {}

  // Index of the Bundle's entries by fullUrl and by Type/id.
  void IndexBundle(const Bundle& b) {
    for (size_t i = 0; i < b.entry.size(); ++i) {
      const BundleEntry& e = b.entry[i];
      if (!e.resource) continue;
      std::string path = internal::Cat("Bundle.entry[", i, "].resource");
      Located loc{&*e.resource, path};
      if (!e.full_url.empty()) by_url_[e.full_url] = loc;
      if (!e.resource->id().empty()) {
        by_type_id_[internal::Cat(e.resource->resource_type(), "/", e.resource->id())] = loc;
      }
    }
  }

  void IndexContained(const MedicationRequest& mr, std::string_view mr_path) {
    for (size_t i = 0; i < mr.contained.size(); ++i) {
      const Resource& r = mr.contained[i];
      if (!r.id().empty()) {
        contained_[r.id()] = Located{&r, internal::Cat(mr_path, ".contained[", i, "]")};
      }
    }
  }

  // Resolves `ref` (at `ref_path`) to a resource of one of `types`. Reports an error and
  // returns an empty Located when it cannot.
  Located Resolve(const Reference& ref, std::string_view ref_path,
                  std::initializer_list<std::string_view> types) {
    const std::string& r = ref.reference;
    std::string path = internal::Cat(ref_path, ".reference");
    if (r.empty()) {
      issues_.Error(std::string(ref_path), IssueCode::kRequired,
                    "reference has no literal reference (reference.reference) to resolve");
      return {};
    }
    Located found = Find(r);
    if (!found.resource) {
      issues_.Error(path, IssueCode::kNotFound,
                    internal::Cat("cannot resolve reference \"", r.substr(0, 128), "\""));
      return {};
    }
    for (std::string_view t : types) {
      if (found.resource->resource_type() == t) return found;
    }
    issues_.Error(path, IssueCode::kInvalid,
                  internal::Cat("reference \"", r.substr(0, 128), "\" resolves to ",
                                found.resource->resource_type(), ", expected ", *types.begin()));
    return {};
  }

  // The resource `r` names, or an empty Located; reports nothing.
  Located Find(const std::string& r) const {
    Located found;
    if (r.empty()) return found;
    if (r[0] == '#') {
      auto it = contained_.find(r.substr(1));
      if (it != contained_.end()) found = it->second;
    } else if (auto it = by_url_.find(r); it != by_url_.end()) {
      found = it->second;
    } else {
      // "Patient/p1", or an absolute URL ending in Type/id.
      std::string_view key = r;
      size_t slash = key.rfind('/');
      if (slash != std::string_view::npos && slash > 0) {
        size_t prev = key.rfind('/', slash - 1);
        std::string_view tail = prev == std::string_view::npos ? key : key.substr(prev + 1);
        if (auto t = by_type_id_.find(std::string(tail)); t != by_type_id_.end()) found = t->second;
      }
    }
    return found;
  }

  bool Empty() const { return by_url_.empty() && by_type_id_.empty() && contained_.empty(); }

 private:
  IssueList& issues_;
  std::map<std::string, Located, std::less<>> by_url_;
  std::map<std::string, Located, std::less<>> by_type_id_;
  std::map<std::string, Located, std::less<>> contained_;
};

}  // namespace rxflow::fhir

#endif  // RXFLOW_SRC_FHIR_RESOLVER_H_
