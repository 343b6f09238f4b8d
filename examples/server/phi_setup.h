// SPDX-License-Identifier: Apache-2.0
// File: phi_setup.h (examples/server: shared by `rxflow serve`, the rxflow CLI and Python)
//
// PHI at rest as the programs configure it (docs/security.md, "PHI at rest"): a store opened
// by a program is wrapped by phi::NewProtectedStore under a key-encryption key named by
//   RXFLOW_PHI_KEK          file:PATH | hybrid:PATH | pkcs11:LABEL | off
//   RXFLOW_PHI_KEK_RETIRED  earlier KEKs, comma-separated (they unwrap until `rxflow phi rewrap`)
// Default: for SQLite, file:phi.kek beside the database (created 0600 on first start); for
// PostgreSQL, none: RXFLOW_PHI_KEK must be set (a KEK beside a database server's data is no
// protection). pkcs11:LABEL uses the AES-256 key LABEL (generated on first use) on the token
// RXFLOW_PKCS11_TOKEN (PIN RXFLOW_PKCS11_PIN; module RXFLOW_PKCS11_MODULE, default SoftHSM2).
#ifndef RXFLOW_EXAMPLES_SERVER_PHI_SETUP_H_
#define RXFLOW_EXAMPLES_SERVER_PHI_SETUP_H_

#include <memory>
#include <string>

#include "rxflow/crypto/phi.h"
#include "rxflow/status.h"
#include "rxflow/store/event_store.h"

namespace rxflow::app {

struct PhiConfig {
  std::string kek;      // RXFLOW_PHI_KEK ("" = the default above)
  std::string retired;  // RXFLOW_PHI_KEK_RETIRED
};
PhiConfig PhiConfigFromEnv();

// The KEK a spec names (file:, hybrid:, pkcs11:); InvalidArgument for any other.
StatusOr<std::shared_ptr<phi::KeyEncryptionKey>> OpenKek(const std::string& spec);

// What ProtectStore made, owned by the store it returns (null with RXFLOW_PHI_KEK=off).
struct PhiParts {
  phi::Vault* vault = nullptr;  // for the `rxflow phi` commands
  store::Store* raw = nullptr;  // the store as stored: for readers that need no PHI (the relay)
};

// A store that owns `raw`, its vault and the protecting wrapper: what programs use in place
// of `raw`. With RXFLOW_PHI_KEK=off, `raw` itself is returned.
StatusOr<std::unique_ptr<store::Store>> ProtectStore(std::unique_ptr<store::Store> raw,
                                                     const std::string& sqlite_path,
                                                     const PhiConfig& config,
                                                     PhiParts* parts = nullptr);

}  // namespace rxflow::app

#endif  // RXFLOW_EXAMPLES_SERVER_PHI_SETUP_H_
