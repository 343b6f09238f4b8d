// SPDX-License-Identifier: Apache-2.0
// EPCS for `rxflow serve` on embedded defaults: a SoftHSM2 token, a development CA, a demo
// prescriber who may sign (granted under the two-person rule by a second demo registrant),
// the audit chain, and the ceremony the API serves. Everything is made at first start in
// <data dir>/epcs/ (secrets in 0600 files there, never in the repository) and reused after.
#ifndef RXFLOW_EXAMPLES_SERVER_EPCS_DEMO_H_
#define RXFLOW_EXAMPLES_SERVER_EPCS_DEMO_H_

#include <memory>
#include <string>

#include "rxflow/epcs/audit.h"
#include "rxflow/epcs/ceremony.h"
#include "rxflow/epcs/signature.h"
#include "rxflow/service.h"
#include "rxflow/status.h"
#include "rxflow/store/event_store.h"

namespace rxflow::app {

// The demo prescriber: the prescriber of examples/data/medication_request_oxycodone.json.
inline constexpr const char* kDemoPrescriber = "dr-lindqvist";
inline constexpr const char* kDemoDea = "BL4721052";

struct EpcsDemo {
  std::unique_ptr<epcs::Signer> audit_signer;  // checkpoints of the audit chain
  std::unique_ptr<epcs::CoSigner> cosigner;    // ML-DSA-65: checkpoints and signature records
  std::unique_ptr<epcs::AuditTrail> audit;
  std::unique_ptr<epcs::Ceremony> ceremony;
  std::shared_ptr<epcs::TrustStore> trust;  // the simulator's: the dev CA and its CRL
  std::string password;                     // the demo prescriber's
  std::string totp_base32;                  // their TOTP secret, for an authenticator app
  std::string otpauth_uri;
  std::string dir;
  std::string ca_pem;   // the dev CA's certificate (PEM): what a pharmacy trusts
  std::string crl_pem;  // its CRL (PEM), made fresh at each setup
};

// Sets it all up under `data_dir`/epcs. FailedPrecondition when SoftHSM2 is not installed.
// `source` names the program in audit records ("rxflow serve", "rxflow sign").
StatusOr<std::unique_ptr<EpcsDemo>> SetUpEpcsDemo(const std::string& data_dir, store::Store& store,
                                                  PrescriptionService& service,
                                                  const std::string& source = "rxflow serve");

}  // namespace rxflow::app

#endif  // RXFLOW_EXAMPLES_SERVER_EPCS_DEMO_H_
