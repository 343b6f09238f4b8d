// SPDX-License-Identifier: Apache-2.0
#include <mutex>

#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/script/xml.h"

#include "script/schema.h"

namespace rxflow::internal::embedded {
extern const std::string_view k2017071_structure;
extern const std::string_view k2023011_profile;
}  // namespace rxflow::internal::embedded

namespace rxflow::script {

Profile::Profile(std::unique_ptr<const Impl> impl) : impl_(std::move(impl)) {}
Profile::~Profile() = default;
const std::string& Profile::name() const { return impl_->name; }
bool Profile::provisional() const { return impl_->provisional; }

std::string_view VersionName(Version v) { return v == Version::k2017071 ? "2017071" : "2023011"; }

StatusOr<Version> ParseVersion(std::string_view name) {
  if (name == "2017071") return Version::k2017071;
  if (name == "2023011") return Version::k2023011;
  return absl::InvalidArgumentError(
      rxflow::internal::Cat("unknown SCRIPT version \"", name, "\" (expected 2017071 or 2023011)"));
}

namespace {

constexpr std::string_view k2017071Attributes[][2] = {
    {"DatatypesVersion", "20170715"},  {"TransportVersion", "20170715"},
    {"TransactionDomain", "SCRIPT"},   {"TransactionVersion", "20170715"},
    {"StructuresVersion", "20170715"}, {"ECLVersion", "20170715"}};

std::unique_ptr<Profile> Build(std::string_view structure, std::string_view rules, bool v2023) {
  auto schema = internal::ParseStructure(structure);
  if (!schema.ok()) return nullptr;
  auto impl = std::make_unique<Profile::Impl>();
  impl->schema = std::move(*schema);
  if (v2023) {
    impl->provisional = true;
    if (!internal::ApplyRules(rules, *impl).ok()) return nullptr;
  } else {
    impl->name = "2017071";
    for (const auto& a : k2017071Attributes) impl->attributes.emplace_back(a[0], a[1]);
    impl->detect = {"20170715", "2017071", "20170714"};
  }
  return std::make_unique<Profile>(std::move(impl));
}

}  // namespace

const Profile& BuiltinProfile(Version v) {
  // Built once, on first use; the embedded tables are tested, so failure is a build bug.
  static const Profile* const k2017071 =
      Build(rxflow::internal::embedded::k2017071_structure, {}, false).release();
  static const Profile* const k2023011 = Build(rxflow::internal::embedded::k2017071_structure,
                                               rxflow::internal::embedded::k2023011_profile, true)
                                             .release();
  const Profile* p = v == Version::k2017071 ? k2017071 : k2023011;
  if (!p) std::abort();
  return *p;
}

std::string_view BuiltinStructureTable() { return rxflow::internal::embedded::k2017071_structure; }

StatusOr<std::shared_ptr<const Profile>> LoadProfile(std::string_view structure_table,
                                                     std::string_view rules) {
  auto schema = internal::ParseStructure(structure_table);
  if (!schema.ok()) return schema.status();
  auto impl = std::make_unique<Profile::Impl>();
  impl->schema = std::move(*schema);
  impl->name = "custom";
  if (!rules.empty()) {
    impl->provisional = true;
    RXFLOW_RETURN_IF_ERROR(internal::ApplyRules(rules, *impl));
  }
  if (impl->attributes.empty()) {
    for (const auto& a : k2017071Attributes) impl->attributes.emplace_back(a[0], a[1]);
  }
  return std::shared_ptr<const Profile>(std::make_shared<Profile>(std::move(impl)));
}

}  // namespace rxflow::script
