// SPDX-License-Identifier: Apache-2.0
// EPCS test helpers. A public-key infrastructure built at run time for the EPCS tests (nothing
// secret is committed): a root CA, an intermediate CA, prescriber certificates for any public key,
// and CRLs. Keys of the CAs live in memory; a prescriber's key is whatever signer the test uses (in
// memory or on a SoftHSM2 token).
#ifndef RXFLOW_TESTS_UNIT_EPCS_PKI_H_
#define RXFLOW_TESTS_UNIT_EPCS_PKI_H_

#include <cstdint>
#include <ctime>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "rxflow/epcs/factors.h"

namespace rxflow::testing {

struct Pki {
  struct KeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  };
  struct CertFree {
    void operator()(X509* c) const { X509_free(c); }
  };
  using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
  using Cert = std::unique_ptr<X509, CertFree>;

  static constexpr int64_t kDay = 86400;

  Key root_key{EVP_EC_gen("P-256")};
  Key intermediate_key{EVP_EC_gen("P-256")};
  Cert root;
  Cert intermediate;
  long next_serial = 1000;

  Pki() {
    root = Make("RxFlow Test Root CA", "", root_key.get(), nullptr, root_key.get(), true, -kDay,
                3650 * kDay);
    intermediate = Make("RxFlow Test Issuing CA", "", intermediate_key.get(), root.get(),
                        root_key.get(), true, -kDay, 1825 * kDay);
  }

  // A prescriber certificate for the DER SubjectPublicKeyInfo `spki`, naming the DEA number
  // as its subject serialNumber, valid from now+not_before to now+not_after (seconds).
  Cert Prescriber(const std::string& spki, const std::string& name, const std::string& dea,
                  int64_t not_before = -kDay, int64_t not_after = 365 * kDay) {
    const auto* p = reinterpret_cast<const unsigned char*>(spki.data());
    Key pub(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
    if (!pub) throw std::runtime_error("bad SPKI");
    return Make(name, dea, pub.get(), intermediate.get(), intermediate_key.get(), false, not_before,
                not_after);
  }

  // A CRL of `issuer` (the intermediate by default) revoking `serials`, issued at
  // now+this_update and due at now+next_update.
  std::string Crl(const std::vector<long>& serials, int64_t this_update = -3600,
                  int64_t next_update = 7 * kDay, bool of_root = false) const {
    X509* issuer = of_root ? root.get() : intermediate.get();
    EVP_PKEY* key = of_root ? root_key.get() : intermediate_key.get();
    X509_CRL* crl = X509_CRL_new();
    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer));
    ASN1_TIME* t = ASN1_TIME_adj(nullptr, std::time(nullptr), 0, this_update);
    X509_CRL_set1_lastUpdate(crl, t);
    ASN1_TIME_free(t);
    t = ASN1_TIME_adj(nullptr, std::time(nullptr), 0, next_update);
    X509_CRL_set1_nextUpdate(crl, t);
    ASN1_TIME_free(t);
    for (long serial : serials) {
      X509_REVOKED* r = X509_REVOKED_new();
      ASN1_INTEGER* n = ASN1_INTEGER_new();
      ASN1_INTEGER_set(n, serial);
      X509_REVOKED_set_serialNumber(r, n);
      ASN1_INTEGER_free(n);
      ASN1_TIME* when = ASN1_TIME_adj(nullptr, std::time(nullptr), 0, -60);
      X509_REVOKED_set_revocationDate(r, when);
      ASN1_TIME_free(when);
      X509_CRL_add0_revoked(crl, r);
    }
    X509_CRL_sort(crl);
    X509_CRL_sign(crl, key, EVP_sha256());
    std::string out = CrlDer(crl);
    X509_CRL_free(crl);
    return out;
  }

  static std::string Der(X509* cert) {
    int len = i2d_X509(cert, nullptr);
    std::string out(static_cast<size_t>(len), '\0');
    auto* p = reinterpret_cast<unsigned char*>(out.data());
    i2d_X509(cert, &p);
    return out;
  }

  static std::string Pem(X509* cert) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(bio);
    return out;
  }

  static long Serial(X509* cert) { return ASN1_INTEGER_get(X509_get0_serialNumber(cert)); }

 private:
  static std::string CrlDer(X509_CRL* crl) {
    int len = i2d_X509_CRL(crl, nullptr);
    std::string out(static_cast<size_t>(len), '\0');
    auto* p = reinterpret_cast<unsigned char*>(out.data());
    i2d_X509_CRL(crl, &p);
    return out;
  }

  Cert Make(const std::string& cn, const std::string& serial_number, EVP_PKEY* subject_key,
            X509* issuer, EVP_PKEY* issuer_key, bool ca, int64_t not_before, int64_t not_after) {
    Cert cert(X509_new());
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), next_serial++);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("RxFlow Tests"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    if (!serial_number.empty()) {
      X509_NAME_add_entry_by_txt(name, "serialNumber", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(serial_number.c_str()), -1,
                                 -1, 0);
    }
    X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
    X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, not_before, nullptr);
    X509_time_adj_ex(X509_getm_notAfter(cert.get()), 0, not_after, nullptr);
    X509_set_pubkey(cert.get(), subject_key);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
    auto add = [&](int nid, const char* value) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      X509_add_ext(cert.get(), ext, -1);
      X509_EXTENSION_free(ext);
    };
    add(NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add(NID_key_usage,
        ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,nonRepudiation");
    add(NID_subject_key_identifier, "hash");
    if (issuer != nullptr) add(NID_authority_key_identifier, "keyid:always");
    X509_sign(cert.get(), issuer_key, EVP_sha256());
    return cert;
  }
};

// A six-digit TOTP code (SHA-1, 30 s) that is none of the codes of steps T-1, T and T+1 (the
// window a verifier accepts), so a "wrong code" check cannot pass by chance.
inline std::string WrongTotpCode(const std::string& secret, int64_t unix_seconds) {
  std::set<std::string> valid;
  for (int64_t d : {-30, 0, 30}) valid.insert(*epcs::TotpCode(secret, unix_seconds + d));
  for (int n = 0;; ++n) {
    std::string c = std::to_string(100000 + n);
    if (!valid.count(c)) return c;
  }
}

}  // namespace rxflow::testing

#endif  // RXFLOW_TESTS_UNIT_EPCS_PKI_H_
