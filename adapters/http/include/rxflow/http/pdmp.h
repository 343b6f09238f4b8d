// SPDX-License-Identifier: Apache-2.0
// File: rxflow/http/pdmp.h
//
// PDMP queries over HTTP (rxflow/clinical/pdmp.h):
//   * NewFhirPdmpClient: a pdmp::Client speaking the HL7 FHIR PDMP IG's $pdmp-history
//     operation (`POST [base]/$pdmp-history`, application/fhir+json) to a PDMP or hub.
//   * PdmpSimulatorServer: a loopback PDMP answering $pdmp-history from the ASAP files
//     dropped into a directory (a state PMP's upload folder): rxflow pmp simulator.
// docs/clinical.md, "PDMP queries".
#ifndef RXFLOW_HTTP_PDMP_H_
#define RXFLOW_HTTP_PDMP_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "rxflow/clinical/pdmp.h"
#include "rxflow/status.h"

namespace rxflow::http {

struct FhirPdmpOptions {
  // The FHIR base ("https://pdmp.example.org/fhir"). http is accepted on loopback only.
  std::string base_url;
  // Posted to base + "/" + operation. The IG's OperationDefinition makes pdmp-history a
  // system-level operation ("$pdmp-history"); its narrative says "Patient/$pdmp-history":
  // set that for a PDMP that follows the narrative.
  std::string operation = "$pdmp-history";
  // Sent as "Authorization: Bearer <token>" when set (never logged).
  std::string bearer_token;
  std::string ca_file;  // PEM CAs an https PDMP must chain to (default: the system's)
  std::chrono::milliseconds connect_timeout{3000};
  // Each read, and the whole answer's body: a PDMP trickling bytes is cut off.
  std::chrono::milliseconds timeout{15000};
  size_t max_response_bytes = size_t{8} << 20;  // larger answers are Unavailable
  // Queries in flight at once through this client; more are Unavailable at once (each holds
  // a request thread of the API while it waits).
  int max_in_flight = 16;
};

// InvalidArgument for a base URL that is not http(s), or plain http to a host other than
// loopback (an address, or "localhost"). The client's History: Unavailable (naming the PDMP
// and what happened) when the PDMP cannot be reached, times out, answers 5xx, or with
// something that is not a $pdmp-history result, or when max_in_flight queries are waiting;
// a 4xx answer is Outcome::kError with its OperationOutcome's diagnostics. name() is
// "fhir pdmp <host:port>".
StatusOr<std::unique_ptr<clinical::pdmp::Client>> NewFhirPdmpClient(FhirPdmpOptions options);

struct PdmpSimulatorOptions {
  std::string host = "127.0.0.1";  // loopback only: Start refuses any other address
  int port = 0;                    // 0: any free port
  // Files here (regular files, not symbolic links, names not starting with '.', at most
  // 64 MiB) are read as ASAP files before each query; each is applied once. A file that does
  // not parse is logged and skipped until it changes (size or time): write a file under a
  // '.' name and rename it when complete. Empty: none.
  std::string asap_dir;
  // One line per event (a file applied or refused with the segment and element, a query
  // answered: no PHI). Null: none.
  std::function<void(const std::string&)> log;
};

class PdmpSimulatorServer {
 public:
  explicit PdmpSimulatorServer(PdmpSimulatorOptions options);
  ~PdmpSimulatorServer();
  // FailedPrecondition for a host that is not loopback; Unavailable when it cannot bind.
  Status Start();
  void Stop();
  int port() const;
  std::string base_url() const;  // "http://127.0.0.1:<port>"
  // The simulator behind it (to add files directly).
  clinical::pdmp::Simulator& simulator();
  // Reads files in asap_dir not read before. Returns how many were applied.
  size_t Rescan();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rxflow::http

#endif  // RXFLOW_HTTP_PDMP_H_
