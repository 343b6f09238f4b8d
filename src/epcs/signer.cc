// SPDX-License-Identifier: Apache-2.0
// ECDSA P-256 / SHA-256 over OpenSSL 3: the in-memory signer and signature verification.
#include "rxflow/epcs/signer.h"

#include <memory>
#include <optional>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "rxflow/crypto/pq.h"
#include "rxflow/internal/crypto.h"
#include "rxflow/internal/files.h"
#include "rxflow/internal/status_macros.h"
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

Status CheckP256PublicKey(std::string_view spki_der) {
  Pkey key = ParseSpki(spki_der);
  if (!key) return absl::InvalidArgumentError("not a DER SubjectPublicKeyInfo");
  if (!IsP256(key.get())) return absl::InvalidArgumentError("not an EC P-256 public key");
  return absl::OkStatus();
}

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

namespace {

constexpr std::string_view kKeyFileHeader = "RXFLOW ML-DSA-65 KEY v1";

class MlDsa65CoSigner : public CoSigner {
 public:
  explicit MlDsa65CoSigner(pq::KeyPair key) : key_(std::move(key)) {}
  ~MlDsa65CoSigner() override { OPENSSL_cleanse(key_.secret_key.data(), key_.secret_key.size()); }
  StatusOr<std::string> Sign(std::string_view data, std::string_view context) override {
    return pq::SignMlDsa65(key_.secret_key, data, context);
  }
  const std::string& PublicKey() const override { return key_.public_key; }

 private:
  pq::KeyPair key_;
};

}  // namespace

std::unique_ptr<CoSigner> NewInMemoryCoSigner() {
  return std::make_unique<MlDsa65CoSigner>(pq::GenerateMlDsa65());
}

StatusOr<std::unique_ptr<CoSigner>> OpenCoSignerKeyFile(const std::string& path) {
  StatusOr<std::string> text = internal::ReadPrivateFile(path);
  if (absl::IsNotFound(text.status())) {
    pq::KeyPair key = pq::GenerateMlDsa65();
    std::string secret_b64 = internal::Base64Encode(key.secret_key);
    std::string file =
        Cat(kKeyFileHeader, "\n", secret_b64, "\n", internal::Base64Encode(key.public_key), "\n");
    // Never replaces a key: when another process created the file first, that key is the one.
    Status created = internal::CreatePrivateFile(path, file);
    OPENSSL_cleanse(secret_b64.data(), secret_b64.size());
    OPENSSL_cleanse(file.data(), file.size());
    if (created.ok()) {
      return std::unique_ptr<CoSigner>(std::make_unique<MlDsa65CoSigner>(std::move(key)));
    }
    OPENSSL_cleanse(key.secret_key.data(), key.secret_key.size());
    if (!absl::IsAlreadyExists(created)) return created;
    text = internal::ReadPrivateFile(path);
  }
  if (!text.ok()) return text.status();
  auto invalid = [&](std::string_view why) {
    OPENSSL_cleanse(text->data(), text->size());
    return absl::InvalidArgumentError(Cat(path, ": ", why));
  };
  std::string_view rest = *text;
  std::string_view lines[3];
  for (std::string_view& line : lines) {
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) return invalid("not an RxFlow ML-DSA-65 key file");
    line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
  }
  if (lines[0] != kKeyFileHeader || !rest.empty()) {
    return invalid(Cat("the first line must be \"", kKeyFileHeader,
                       "\", then the secret and the public key in base64, a line each"));
  }
  std::optional<std::string> secret = internal::Base64Decode(lines[1]);
  std::optional<std::string> public_key = internal::Base64Decode(lines[2]);
  if (!secret || secret->size() != pq::kMlDsa65SecretKeyBytes || !public_key ||
      public_key->size() != pq::kMlDsa65PublicKeyBytes) {
    if (secret) OPENSSL_cleanse(secret->data(), secret->size());
    return invalid(
        "the secret key (line 2) or the public key (line 3) is not an ML-DSA-65 key in "
        "base64");
  }
  // The two halves belong together: a signature made with the one verifies with the other.
  auto probe = pq::SignMlDsa65(*secret, "key file check", kCoSignAuditCheckpoint);
  if (!probe.ok() ||
      !pq::VerifyMlDsa65(*public_key, "key file check", *probe, kCoSignAuditCheckpoint).ok()) {
    OPENSSL_cleanse(secret->data(), secret->size());
    return invalid("the secret and public keys are not one key pair");
  }
  OPENSSL_cleanse(text->data(), text->size());
  return std::unique_ptr<CoSigner>(
      std::make_unique<MlDsa65CoSigner>(pq::KeyPair{std::move(*public_key), std::move(*secret)}));
}

}  // namespace rxflow::epcs
