// SPDX-License-Identifier: Apache-2.0
// The development CA over OpenSSL's X509 and X509_CRL builders.
#include "rxflow/epcs/dev_ca.h"

#include <ctime>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace rxflow::epcs {
namespace {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;
using Bio = std::unique_ptr<BIO, BioFree>;

constexpr int64_t kDay = 86400;

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, n > 0 ? static_cast<size_t>(n) : 0);
}

void AddName(X509_NAME* name, const char* field, const std::string& value) {
  X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0);
}

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext != nullptr) X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

void RandomSerial(X509* cert) {
  unsigned char b[8];
  RAND_bytes(b, sizeof b);
  b[0] &= 0x7f;  // positive
  int64_t serial = 0;
  for (unsigned char c : b) serial = (serial << 8) | c;
  ASN1_INTEGER_set_int64(X509_get_serialNumber(cert), serial);
}

}  // namespace

struct DevCa::Impl {
  Key key;
  Cert cert;
};

DevCa::DevCa(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DevCa::DevCa(DevCa&&) noexcept = default;
DevCa& DevCa::operator=(DevCa&&) noexcept = default;
DevCa::~DevCa() = default;

StatusOr<DevCa> DevCa::Create(const std::string& name) {
  auto impl = std::make_unique<Impl>();
  impl->key.reset(EVP_EC_gen("P-256"));
  impl->cert.reset(X509_new());
  X509* c = impl->cert.get();
  if (!impl->key || c == nullptr) return absl::InternalError("dev CA: cannot make a key");
  X509_set_version(c, 2);
  RandomSerial(c);
  X509_NAME* subject = X509_get_subject_name(c);
  AddName(subject, "O", "RxFlow development CA (not for production)");
  AddName(subject, "CN", name);
  X509_set_issuer_name(c, subject);
  X509_time_adj_ex(X509_getm_notBefore(c), 0, -kDay, nullptr);
  X509_time_adj_ex(X509_getm_notAfter(c), 3650, 0, nullptr);
  X509_set_pubkey(c, impl->key.get());
  AddExtension(c, c, NID_basic_constraints, "critical,CA:TRUE");
  AddExtension(c, c, NID_key_usage, "critical,keyCertSign,cRLSign");
  AddExtension(c, c, NID_subject_key_identifier, "hash");
  if (X509_sign(c, impl->key.get(), EVP_sha256()) <= 0) {
    return absl::InternalError("dev CA: cannot sign its certificate");
  }
  return DevCa(std::move(impl));
}

StatusOr<DevCa> DevCa::Load(const std::string& certificate_pem, const std::string& key_pem) {
  auto impl = std::make_unique<Impl>();
  Bio cert_bio(BIO_new_mem_buf(certificate_pem.data(), static_cast<int>(certificate_pem.size())));
  Bio key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  impl->cert.reset(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  impl->key.reset(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!impl->cert || !impl->key) return absl::InvalidArgumentError("dev CA: not a PEM cert/key");
  if (X509_check_private_key(impl->cert.get(), impl->key.get()) != 1) {
    return absl::InvalidArgumentError("dev CA: the key is not the certificate's");
  }
  return DevCa(std::move(impl));
}

std::string DevCa::CertificatePem() const {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), impl_->cert.get());
  return BioText(bio.get());
}

std::string DevCa::KeyPem() const {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), impl_->key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return BioText(bio.get());
}

StatusOr<std::string> DevCa::IssuePrescriber(const std::string& spki_der, const std::string& name,
                                             const std::string& dea_number, int days) {
  const auto* p = reinterpret_cast<const unsigned char*>(spki_der.data());
  Key subject_key(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki_der.size())));
  if (!subject_key) return absl::InvalidArgumentError("dev CA: the public key is not DER SPKI");
  Cert cert(X509_new());
  X509* c = cert.get();
  X509_set_version(c, 2);
  RandomSerial(c);
  X509_NAME* subject = X509_get_subject_name(c);
  AddName(subject, "O", "RxFlow development CA (not for production)");
  AddName(subject, "CN", name);
  AddName(subject, "serialNumber", dea_number);
  X509_set_issuer_name(c, X509_get_subject_name(impl_->cert.get()));
  X509_time_adj_ex(X509_getm_notBefore(c), 0, -3600, nullptr);
  X509_time_adj_ex(X509_getm_notAfter(c), days, 0, nullptr);
  X509_set_pubkey(c, subject_key.get());
  AddExtension(c, impl_->cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  AddExtension(c, impl_->cert.get(), NID_key_usage, "critical,digitalSignature,nonRepudiation");
  AddExtension(c, impl_->cert.get(), NID_subject_key_identifier, "hash");
  AddExtension(c, impl_->cert.get(), NID_authority_key_identifier, "keyid:always");
  if (X509_sign(c, impl_->key.get(), EVP_sha256()) <= 0) {
    return absl::InternalError("dev CA: cannot sign the certificate");
  }
  int len = i2d_X509(c, nullptr);
  std::string out(len > 0 ? static_cast<size_t>(len) : 0, '\0');
  auto* q = reinterpret_cast<unsigned char*>(out.data());
  i2d_X509(c, &q);
  return out;
}

StatusOr<std::string> DevCa::Crl(const std::vector<int64_t>& serials, int days) const {
  X509_CRL* crl = X509_CRL_new();
  X509_CRL_set_version(crl, 1);
  X509_CRL_set_issuer_name(crl, X509_get_subject_name(impl_->cert.get()));
  std::time_t now = std::time(nullptr);
  ASN1_TIME* t = ASN1_TIME_adj(nullptr, now, 0, -60);
  X509_CRL_set1_lastUpdate(crl, t);
  ASN1_TIME_free(t);
  t = ASN1_TIME_adj(nullptr, now, days, 0);
  X509_CRL_set1_nextUpdate(crl, t);
  ASN1_TIME_free(t);
  for (int64_t serial : serials) {
    X509_REVOKED* r = X509_REVOKED_new();
    ASN1_INTEGER* n = ASN1_INTEGER_new();
    ASN1_INTEGER_set_int64(n, serial);
    X509_REVOKED_set_serialNumber(r, n);
    ASN1_INTEGER_free(n);
    ASN1_TIME* when = ASN1_TIME_adj(nullptr, now, 0, -60);
    X509_REVOKED_set_revocationDate(r, when);
    ASN1_TIME_free(when);
    X509_CRL_add0_revoked(crl, r);
  }
  X509_CRL_sort(crl);
  bool ok = X509_CRL_sign(crl, impl_->key.get(), EVP_sha256()) > 0;
  Bio bio(BIO_new(BIO_s_mem()));
  if (ok) PEM_write_bio_X509_CRL(bio.get(), crl);
  X509_CRL_free(crl);
  if (!ok) return absl::InternalError("dev CA: cannot sign the CRL");
  return BioText(bio.get());
}

}  // namespace rxflow::epcs
