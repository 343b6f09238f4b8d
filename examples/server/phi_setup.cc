// SPDX-License-Identifier: Apache-2.0
#include "phi_setup.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/pkcs11/token.h"

namespace rxflow::app {

using internal::Cat;

namespace {

// Owns the raw store, the vault and the protecting wrapper, and forwards to the wrapper.
class OwningProtectedStore : public store::StoreWrapper {
 public:
  struct Parts {
    std::unique_ptr<store::Store> raw;
    std::unique_ptr<phi::Vault> vault;
    std::unique_ptr<store::Store> protected_store;
  };
  explicit OwningProtectedStore(std::unique_ptr<Parts> parts)
      : StoreWrapper(*parts->protected_store), parts_(std::move(parts)) {}
  PhiParts parts() { return {parts_->vault.get(), parts_->raw.get()}; }
  // The protecting wrapper's own asynchronous append (sealing, then the raw store's).
  void AppendAsync(store::AppendRequest r, AppendDone done) override {
    target_.AppendAsync(std::move(r), std::move(done));
  }

 private:
  std::unique_ptr<Parts> parts_;
};

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

PhiConfig PhiConfigFromEnv() { return {Env("RXFLOW_PHI_KEK"), Env("RXFLOW_PHI_KEK_RETIRED")}; }

StatusOr<std::shared_ptr<phi::KeyEncryptionKey>> OpenKek(const std::string& spec) {
  auto shared = [](auto opened) -> StatusOr<std::shared_ptr<phi::KeyEncryptionKey>> {
    if (!opened.ok()) return opened.status();
    return std::shared_ptr<phi::KeyEncryptionKey>(std::move(*opened));
  };
  if (spec.starts_with("file:") && spec.size() > 5) return shared(phi::OpenKekFile(spec.substr(5)));
  if (spec.starts_with("hybrid:") && spec.size() > 7) {
    return shared(phi::OpenHybridKekFile(spec.substr(7)));
  }
  if (spec.starts_with("pkcs11:") && spec.size() > 7) {
    pkcs11::TokenRef ref;
    ref.module_path = Env("RXFLOW_PKCS11_MODULE");
    if (ref.module_path.empty()) ref.module_path = pkcs11::SoftHsmModulePath();
    ref.token_label = Env("RXFLOW_PKCS11_TOKEN");
    ref.pin = Env("RXFLOW_PKCS11_PIN");
    if (ref.token_label.empty() || ref.pin.empty()) {
      return absl::InvalidArgumentError(
          "RXFLOW_PHI_KEK=pkcs11:LABEL needs RXFLOW_PKCS11_TOKEN and RXFLOW_PKCS11_PIN");
    }
    const std::string label = spec.substr(7);
    auto kek = pkcs11::OpenKeyEncryptionKey(ref, label);
    if (absl::IsNotFound(kek.status())) {
      Status made = pkcs11::GenerateWrappingKey(ref, label);
      if (!made.ok() && !absl::IsAlreadyExists(made)) return made;
      kek = pkcs11::OpenKeyEncryptionKey(ref, label);
    }
    return shared(std::move(kek));
  }
  return absl::InvalidArgumentError(
      "RXFLOW_PHI_KEK: expected file:PATH, hybrid:PATH, pkcs11:LABEL or off (the value is not "
      "shown)");
}

StatusOr<std::unique_ptr<store::Store>> ProtectStore(std::unique_ptr<store::Store> raw,
                                                     const std::string& sqlite_path,
                                                     const PhiConfig& config, PhiParts* parts_out) {
  if (parts_out) *parts_out = {};
  if (config.kek == "off") return raw;
  std::string spec = config.kek;
  if (spec.empty()) {
    if (sqlite_path.empty()) {
      return absl::InvalidArgumentError(
          "set RXFLOW_PHI_KEK (file:PATH, hybrid:PATH or pkcs11:LABEL; or off) to use a "
          "PostgreSQL store: the key that encrypts PHI at rest must not sit beside the database");
    }
    auto dir = std::filesystem::path(sqlite_path).parent_path();
    spec = "file:" + ((dir.empty() ? std::filesystem::path(".") : dir) / "phi.kek").string();
  }
  // A key file that is not there is made, unless the store already holds data keys and no
  // retired KEK is given (a rotation makes its new key this way): they are wrapped by a KEK
  // that is then missing, whose file should be restored instead.
  for (std::string_view kind : {"file:", "hybrid:"}) {
    if (!config.retired.empty()) break;
    if (!spec.starts_with(kind) || std::filesystem::exists(spec.substr(kind.size()))) continue;
    auto any = raw->DataKeysNotWrappedBy("", "", 0, 1);
    if (!any.ok()) return any.status();
    if (!any->empty()) {
      return absl::FailedPreconditionError(
          Cat("the key-encryption key file ", spec.substr(kind.size()),
              " does not exist, but the store holds data keys wrapped by ", any->front().kek_id,
              ": restore that key's file (or name it in RXFLOW_PHI_KEK) rather than make a new "
              "one"));
    }
  }
  phi::VaultOptions options;
  RXFLOW_ASSIGN_OR_RETURN(options.current, OpenKek(spec));
  std::string_view rest = config.retired;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string one(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (one.empty()) continue;
    auto kek = OpenKek(one);
    if (!kek.ok()) {
      return Status(kek.status().code(),
                    Cat("RXFLOW_PHI_KEK_RETIRED: ", std::string(kek.status().message())));
    }
    options.retired.push_back(std::move(*kek));
  }
  // A store whose data keys are wrapped by a KEK that is neither current nor retired: a
  // key file that went missing (and was made anew), a mis-mounted volume, a wrong token. Refuse
  // to start rather than write new patients' keys beside keys nobody can unwrap.
  {
    std::vector<std::string> known{options.current->id()};
    for (const auto& k : options.retired) known.push_back(k->id());
    std::string after;
    int after_version = 0;
    for (;;) {
      auto page = raw->DataKeysNotWrappedBy(options.current->id(), after, after_version, 256);
      if (!page.ok()) return page.status();
      if (page->empty()) break;
      for (const store::WrappedDataKey& k : *page) {
        if (std::find(known.begin(), known.end(), k.kek_id) == known.end()) {
          return absl::FailedPreconditionError(
              Cat("the store holds data keys wrapped by key-encryption key ", k.kek_id,
                  ", which is not configured (RXFLOW_PHI_KEK is ", options.current->id(),
                  "): give it as RXFLOW_PHI_KEK or RXFLOW_PHI_KEK_RETIRED"));
        }
      }
      after = page->back().key_id;
      after_version = page->back().version;
    }
  }
  auto parts = std::make_unique<OwningProtectedStore::Parts>();
  parts->raw = std::move(raw);
  RXFLOW_ASSIGN_OR_RETURN(parts->vault, phi::Vault::Create(*parts->raw, std::move(options)));
  parts->protected_store = phi::NewProtectedStore(*parts->raw, *parts->vault);
  auto owning = std::make_unique<OwningProtectedStore>(std::move(parts));
  if (parts_out) *parts_out = owning->parts();
  return std::unique_ptr<store::Store>(std::move(owning));
}

}  // namespace rxflow::app
