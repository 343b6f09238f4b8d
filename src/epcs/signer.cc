// ECDSA P-256 / SHA-256 over OpenSSL 3: the in-memory signer and signature verification.
#include "rxflow/epcs/signer.h"

#include <memory>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "rxflow/internal/strcat.h"

namespace rxflow::epcs {
namespace {

using internal::Cat;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

Pkey ParseSpki(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  return Pkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
}

bool IsP256(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return false;
  char group[64] = {};
  size_t len = 0;
  return EVP_PKEY_get_group_name(key, group, sizeof group, &len) == 1 &&
         std::string_view(group, len) == "prime256v1";
}

class InMemorySigner : public Signer {
 public:
  explicit InMemorySigner(Pkey key) : key_(std::move(key)) {}

  StatusOr<std::string> Sign(std::string_view data) override {
    MdCtx ctx(EVP_MD_CTX_new());
    size_t len = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len,
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
      return absl::InternalError("in-memory signer: cannot start an ECDSA signature");
    }
    std::string out(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
      return absl::InternalError("in-memory signer: ECDSA signature failed");
    }
    out.resize(len);
    return out;
  }

  StatusOr<std::string> PublicKeyDer() override {
    int len = i2d_PUBKEY(key_.get(), nullptr);
    if (len <= 0) return absl::InternalError("in-memory signer: cannot encode the public key");
    std::string out(static_cast<size_t>(len), '\0');
    auto* p = reinterpret_cast<unsigned char*>(out.data());
    i2d_PUBKEY(key_.get(), &p);
    return out;
  }

 private:
  Pkey key_;
};

}  // namespace

Status VerifyEcdsaSha256(std::string_view spki_der, std::string_view data,
                         std::string_view signature_der) {
  Pkey key = ParseSpki(spki_der);
  if (!key) return absl::UnauthenticatedError("the public key is not DER SubjectPublicKeyInfo");
  if (!IsP256(key.get())) return absl::UnauthenticatedError("the public key is not ECDSA P-256");
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1) {
    return absl::InternalError("cannot start an ECDSA verification");
  }
  int rc = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature_der.data()),
                            signature_der.size(),
                            reinterpret_cast<const unsigned char*>(data.data()), data.size());
  if (rc == 1) return absl::OkStatus();
  if (rc == 0) return absl::UnauthenticatedError("the signature does not match the data and key");
  return absl::UnauthenticatedError("the signature is not a DER ECDSA signature");
}

std::unique_ptr<Signer> NewInMemorySigner() {
  Pkey key(EVP_EC_gen("P-256"));
  if (!key) return nullptr;
  return std::make_unique<InMemorySigner>(std::move(key));
}

}  // namespace rxflow::epcs
