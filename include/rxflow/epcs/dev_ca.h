// SPDX-License-Identifier: Apache-2.0
// File: rxflow/epcs/dev_ca.h
//
// A certificate authority for development, demos and test harnesses: `rxflow serve`'s demo
// prescriber gets its certificate from one, and a harness can stand in for the CA that a
// real deployment trusts (a CSP or a CA cross-certified with the Federal Bridge, 21 CFR
// 1311.105). Never for production prescriptions: its key is an ordinary file or in memory.
//
// Certificates it issues name the prescriber's DEA number as the subject serialNumber, which
// is what VerifyPrescriptionSignature matches against the NewRx (rxflow/epcs/signature.h).
#ifndef RXFLOW_EPCS_DEV_CA_H_
#define RXFLOW_EPCS_DEV_CA_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rxflow/status.h"

namespace rxflow::epcs {

class DevCa {
 public:
  // A new CA with a fresh P-256 key, valid for ten years from now.
  static StatusOr<DevCa> Create(const std::string& name);
  // The CA saved by Save(): its certificate and its private key, PEM.
  static StatusOr<DevCa> Load(const std::string& certificate_pem, const std::string& key_pem);

  DevCa(DevCa&&) noexcept;
  DevCa& operator=(DevCa&&) noexcept;
  ~DevCa();

  std::string CertificatePem() const;
  // The private key, PEM (unencrypted: a development CA).
  std::string KeyPem() const;

  // A prescriber certificate (DER) for `spki_der`, subject CN `name` and serialNumber
  // `dea_number`, key usage digitalSignature + nonRepudiation, valid `days` from now.
  StatusOr<std::string> IssuePrescriber(const std::string& spki_der, const std::string& name,
                                        const std::string& dea_number, int days = 365);
  // A CRL (PEM) revoking `serials`, valid from now for `days`.
  StatusOr<std::string> Crl(const std::vector<int64_t>& serials, int days = 7) const;

 private:
  struct Impl;
  explicit DevCa(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rxflow::epcs

#endif  // RXFLOW_EPCS_DEV_CA_H_
