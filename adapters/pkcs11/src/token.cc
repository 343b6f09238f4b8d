// SPDX-License-Identifier: Apache-2.0
// PKCS#11 through the module's own function list (dlopen + C_GetFunctionList), with p11-kit's
// header in its GNU naming (CRYPTOKI_GNU) so that none of its compatibility macros (`value`,
// `count`, `params` ...) leak into this file.
#include "rxflow/pkcs11/token.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <dlfcn.h>
#include <unistd.h>

#define CRYPTOKI_GNU 1
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

#include <p11-kit/pkcs11.h>

namespace rxflow::pkcs11 {
namespace {

using internal::Cat;

constexpr unsigned char kTrue = 1;
constexpr unsigned char kFalse = 0;
// DER of the OID prime256v1 (1.2.840.10045.3.1.7), the CKA_EC_PARAMS of a P-256 key.
constexpr unsigned char kP256Params[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                         0xce, 0x3d, 0x03, 0x01, 0x07};

std::string RvName(ck_rv_t rv) {
  switch (rv) {
    case CKR_PIN_INCORRECT:
      return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED:
      return "CKR_PIN_LOCKED";
    case CKR_PIN_LEN_RANGE:
      return "CKR_PIN_LEN_RANGE";
    case CKR_TOKEN_NOT_PRESENT:
      return "CKR_TOKEN_NOT_PRESENT";
    case CKR_DEVICE_ERROR:
      return "CKR_DEVICE_ERROR";
    case CKR_DEVICE_REMOVED:
      return "CKR_DEVICE_REMOVED";
    case CKR_USER_NOT_LOGGED_IN:
      return "CKR_USER_NOT_LOGGED_IN";
    case CKR_KEY_HANDLE_INVALID:
      return "CKR_KEY_HANDLE_INVALID";
    case CKR_SESSION_HANDLE_INVALID:
      return "CKR_SESSION_HANDLE_INVALID";
    case CKR_ARGUMENTS_BAD:
      return "CKR_ARGUMENTS_BAD";
    case CKR_MECHANISM_INVALID:
      return "CKR_MECHANISM_INVALID";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "CKR 0x%lx", rv);
      return buf;
    }
  }
}

Status FromRv(ck_rv_t rv, std::string_view what) {
  std::string message = Cat("pkcs11: ", what, ": ", RvName(rv));
  switch (rv) {
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
    case CKR_PIN_LOCKED:
    case CKR_PIN_EXPIRED:
      return absl::PermissionDeniedError(message);
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_REMOVED:
    case CKR_DEVICE_MEMORY:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

// A loaded and initialised module. PKCS#11 makes C_Initialize process-wide, so modules are
// kept in a process-wide table by path and never unloaded while the process runs.
struct Module {
  void* handle = nullptr;
  ck_function_list* f = nullptr;
};

std::mutex& ModulesMutex() {
  static auto* m = new std::mutex;
  return *m;
}

std::map<std::string, Module>& Modules() {
  static auto* modules = new std::map<std::string, Module>;
  return *modules;
}

void FinalizeModules() {
  std::lock_guard lock(ModulesMutex());
  for (auto& [path, m] : Modules()) m.f->C_Finalize(nullptr);
  Modules().clear();
}

StatusOr<Module> LoadModule(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("pkcs11: no module path given");
  std::lock_guard lock(ModulesMutex());
  auto it = Modules().find(path);
  if (it != Modules().end()) return it->second;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return absl::NotFoundError(Cat("pkcs11: cannot load module ", path, ": ", dlerror()));
  }
  auto get = reinterpret_cast<ck_rv_t (*)(ck_function_list**)>(dlsym(handle, "C_GetFunctionList"));
  Module m;
  m.handle = handle;
  if (get == nullptr || get(&m.f) != CKR_OK || m.f == nullptr) {
    dlclose(handle);
    return absl::InvalidArgumentError(Cat("pkcs11: ", path, " is not a PKCS#11 module"));
  }
  ck_c_initialize_args args{};
  args.flags = CKF_OS_LOCKING_OK;
  ck_rv_t rv = m.f->C_Initialize(&args);
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    dlclose(handle);
    return FromRv(rv, Cat("C_Initialize of ", path));
  }
  if (Modules().empty()) std::atexit(FinalizeModules);
  Modules().emplace(path, m);
  return m;
}

std::string PaddedLabel(std::string_view label) {
  std::string out(label.substr(0, 32));
  out.resize(32, ' ');
  return out;
}

std::string Trimmed(const unsigned char* field, size_t n) {
  std::string s(reinterpret_cast<const char*>(field), n);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

// The module's slots (with a token present only, when `token_present`).
StatusOr<std::vector<ck_slot_id_t>> Slots(const Module& m, bool token_present) {
  unsigned long n = 0;
  ck_rv_t rv = m.f->C_GetSlotList(token_present ? kTrue : kFalse, nullptr, &n);
  if (rv != CKR_OK) return FromRv(rv, "C_GetSlotList");
  std::vector<ck_slot_id_t> slots(n);
  rv = m.f->C_GetSlotList(token_present ? kTrue : kFalse, slots.data(), &n);
  if (rv != CKR_OK) return FromRv(rv, "C_GetSlotList");
  slots.resize(n);
  return slots;
}

// The slot holding the initialised token labelled `label`.
StatusOr<ck_slot_id_t> FindToken(const Module& m, std::string_view label) {
  RXFLOW_ASSIGN_OR_RETURN(std::vector<ck_slot_id_t> slots, Slots(m, /*token_present=*/true));
  for (ck_slot_id_t slot : slots) {
    ck_token_info info{};
    if (m.f->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    if ((info.flags & CKF_TOKEN_INITIALIZED) && Trimmed(info.label, sizeof info.label) == label) {
      return slot;
    }
  }
  return absl::NotFoundError(Cat("pkcs11: no token labelled \"", label, "\""));
}

// An open session, closed on destruction.
class Session {
 public:
  Session(const Module& m, ck_session_handle_t h) : m_(m), h_(h) {}
  Session(Session&& o) noexcept : m_(o.m_), h_(std::exchange(o.h_, 0)) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    if (h_ != 0) m_.f->C_CloseSession(h_);
  }
  ck_session_handle_t get() const { return h_; }

 private:
  Module m_;
  ck_session_handle_t h_;
};

StatusOr<Session> OpenSession(const Module& m, ck_slot_id_t slot) {
  ck_session_handle_t h = 0;
  ck_rv_t rv = m.f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &h);
  if (rv != CKR_OK) return FromRv(rv, "C_OpenSession");
  return Session(m, h);
}

// The SHA-256 of the user PIN each token (module path + token label) was logged in with by
// this process. PKCS#11 logs in the application, not the session: once one session is logged
// in, C_Login answers CKR_USER_ALREADY_LOGGED_IN without looking at the PIN, so RxFlow
// compares the PIN itself. Guarded by ModulesMutex(), never destroyed.
std::map<std::string, std::string>& LoggedInPins() {
  static auto* pins = new std::map<std::string, std::string>;
  return *pins;
}

std::string PinDigest(const std::string& pin) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(pin.data(), pin.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(md), len);
}

Status Login(const Module& m, const Session& s, ck_user_type_t user, const std::string& pin) {
  ck_rv_t rv = m.f->C_Login(
      s.get(), user, reinterpret_cast<unsigned char*>(const_cast<char*>(pin.data())), pin.size());
  if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) return absl::OkStatus();
  return FromRv(rv, user == CKU_SO ? "C_Login as security officer" : "C_Login");
}

// How many LoginHolds each token (module path + token label) has. Guarded by ModulesMutex(),
// never destroyed.
std::map<std::string, int>& LoginHolds() {
  static auto* holds = new std::map<std::string, int>;
  return *holds;
}

// This process's hold on a token's user login, one per open signer, key-encryption key or
// operation. The last one released logs the token out and overwrites and forgets the digest
// of its PIN (T-5.2: when the module is deactivated, nothing of the PIN is left): the next
// open logs in anew and the token checks the PIN again.
class LoginHold {
 public:
  LoginHold() = default;
  LoginHold(LoginHold&& o) noexcept : m_(o.m_), h_(o.h_), key_(std::exchange(o.key_, {})) {}
  LoginHold& operator=(LoginHold&&) = delete;
  ~LoginHold() {
    if (key_.empty()) return;
    std::lock_guard lock(ModulesMutex());
    auto held = LoginHolds().find(key_);
    if (held == LoginHolds().end() || --held->second > 0) return;
    LoginHolds().erase(held);
    ck_rv_t rv = m_.f->C_Logout(h_);
    // Still logged in (the logout failed): the digest stays, so a later open is still
    // compared with the PIN the token was opened with.
    if (rv != CKR_OK && rv != CKR_USER_NOT_LOGGED_IN) return;
    auto pin = LoggedInPins().find(key_);
    if (pin != LoggedInPins().end()) {
      OPENSSL_cleanse(pin->second.data(), pin->second.size());
      LoggedInPins().erase(pin);
    }
  }

  // Logs `s` in as the token's user with `pin`, and holds the login. Under ModulesMutex(),
  // so that no last hold logs the token out between this login and this hold.
  static StatusOr<LoginHold> Take(const Module& m, const Session& s, const std::string& pin,
                                  std::string token_key) {
    std::lock_guard lock(ModulesMutex());
    auto login = [&] {
      return m.f->C_Login(s.get(), CKU_USER,
                          reinterpret_cast<unsigned char*>(const_cast<char*>(pin.data())),
                          pin.size());
    };
    ck_rv_t rv = login();
    if (rv == CKR_USER_ALREADY_LOGGED_IN && LoggedInPins().count(token_key) == 0) {
      // Logged in by other code of this process, with a PIN RxFlow never saw: log out, so
      // that the token checks this one.
      m.f->C_Logout(s.get());
      rv = login();
    }
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) return FromRv(rv, "C_Login");
    auto [it, inserted] = LoggedInPins().emplace(token_key, PinDigest(pin));
    if (rv == CKR_OK) {
      it->second = PinDigest(pin);
    } else if (!inserted && CRYPTO_memcmp(it->second.data(), PinDigest(pin).data(), 32) != 0) {
      return absl::PermissionDeniedError(
          "pkcs11: C_Login: CKR_PIN_INCORRECT (the token is open with another PIN)");
    }
    ++LoginHolds()[token_key];
    LoginHold hold;
    hold.m_ = m;
    hold.h_ = s.get();
    hold.key_ = std::move(token_key);
    return hold;
  }

 private:
  Module m_;
  ck_session_handle_t h_ = 0;
  std::string key_;  // empty: holds nothing
};

// A token, logged in as its user, with a session open. (The hold is destroyed first: the
// token is logged out while the session is still open.)
struct Opened {
  Module module;
  Session session;
  LoginHold login;
};

StatusOr<Opened> Open(const TokenRef& ref) {
  RXFLOW_ASSIGN_OR_RETURN(Module m, LoadModule(ref.module_path));
  RXFLOW_ASSIGN_OR_RETURN(ck_slot_id_t slot, FindToken(m, ref.token_label));
  RXFLOW_ASSIGN_OR_RETURN(Session s, OpenSession(m, slot));
  RXFLOW_ASSIGN_OR_RETURN(
      LoginHold hold,
      LoginHold::Take(m, s, ref.pin, internal::Cat(ref.module_path, "\n", ref.token_label)));
  return Opened{m, std::move(s), std::move(hold)};
}

StatusOr<ck_object_handle_t> FindObject(const Module& m, const Session& s, ck_object_class_t cls,
                                        const std::string& label) {
  ck_attribute tmpl[] = {
      {CKA_CLASS, &cls, sizeof cls},
      {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
  };
  ck_rv_t rv = m.f->C_FindObjectsInit(s.get(), tmpl, 2);
  if (rv != CKR_OK) return FromRv(rv, "C_FindObjectsInit");
  ck_object_handle_t found = 0;
  unsigned long n = 0;
  rv = m.f->C_FindObjects(s.get(), &found, 1, &n);
  m.f->C_FindObjectsFinal(s.get());
  if (rv != CKR_OK) return FromRv(rv, "C_FindObjects");
  if (n == 0) {
    return absl::NotFoundError(Cat("pkcs11: no ",
                                   cls == CKO_PRIVATE_KEY  ? "private"
                                   : cls == CKO_SECRET_KEY ? "secret"
                                                           : "public",
                                   " key labelled \"", label, "\""));
  }
  return found;
}

StatusOr<std::string> GetAttribute(const Module& m, const Session& s, ck_object_handle_t obj,
                                   ck_attribute_type_t type) {
  ck_attribute a{type, nullptr, 0};
  ck_rv_t rv = m.f->C_GetAttributeValue(s.get(), obj, &a, 1);
  if (rv != CKR_OK) return FromRv(rv, "C_GetAttributeValue");
  std::string out(a.value_len, '\0');
  a.value = out.data();
  rv = m.f->C_GetAttributeValue(s.get(), obj, &a, 1);
  if (rv != CKR_OK) return FromRv(rv, "C_GetAttributeValue");
  out.resize(a.value_len);
  return out;
}

// CKA_EC_POINT is a DER OCTET STRING around the uncompressed point (some modules give the
// bare point): the DER SubjectPublicKeyInfo of that P-256 point.
StatusOr<std::string> SpkiFromEcPoint(std::string point) {
  if (point.size() == 67 && point[0] == 0x04 && static_cast<unsigned char>(point[1]) == 65) {
    point.erase(0, 2);
  }
  if (point.size() != 65 || point[0] != 0x04) {
    return absl::InternalError("pkcs11: the token's EC point is not an uncompressed P-256 point");
  }
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* key = nullptr;
  char group[] = "prime256v1";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
      OSSL_PARAM_construct_end()};
  bool ok = ctx != nullptr && EVP_PKEY_fromdata_init(ctx) == 1 &&
            EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) return absl::InternalError("pkcs11: the token's EC point is not on P-256");
  int len = i2d_PUBKEY(key, nullptr);
  std::string out(len > 0 ? static_cast<size_t>(len) : 0, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  if (len <= 0 || i2d_PUBKEY(key, &p) != len) out.clear();
  EVP_PKEY_free(key);
  if (out.empty()) return absl::InternalError("pkcs11: cannot encode the public key");
  return out;
}

// PKCS#11 returns an ECDSA signature as r ‖ s; X.509 and `openssl dgst -verify` want DER.
StatusOr<std::string> DerFromRawEcdsa(const unsigned char* raw, size_t n) {
  if (n == 0 || n % 2 != 0) return absl::InternalError("pkcs11: odd-length ECDSA signature");
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(raw, static_cast<int>(n / 2), nullptr);
  BIGNUM* s = BN_bin2bn(raw + n / 2, static_cast<int>(n / 2), nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return absl::InternalError("pkcs11: cannot encode the ECDSA signature");
  }
  int len = i2d_ECDSA_SIG(sig, nullptr);
  std::string out(len > 0 ? static_cast<size_t>(len) : 0, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  if (len > 0) i2d_ECDSA_SIG(sig, &p);
  ECDSA_SIG_free(sig);
  return out;
}

class TokenSigner : public epcs::Signer {
 public:
  TokenSigner(Opened opened, ck_object_handle_t key, std::string spki)
      : opened_(std::move(opened)), key_(key), spki_(std::move(spki)) {}

  StatusOr<std::string> Sign(std::string_view data) override {
    unsigned char digest[32];
    unsigned int digest_len = 0;
    if (EVP_Digest(data.data(), data.size(), digest, &digest_len, EVP_sha256(), nullptr) != 1) {
      return absl::InternalError("pkcs11: SHA-256 failed");
    }
    const Module& m = opened_.module;
    std::lock_guard lock(mu_);
    ck_mechanism mech{CKM_ECDSA, nullptr, 0};
    ck_rv_t rv = m.f->C_SignInit(opened_.session.get(), &mech, key_);
    if (rv != CKR_OK) return FromRv(rv, "C_SignInit");
    unsigned char raw[132];  // r ‖ s of up to P-521
    unsigned long raw_len = sizeof raw;
    rv = m.f->C_Sign(opened_.session.get(), digest, digest_len, raw, &raw_len);
    if (rv != CKR_OK) return FromRv(rv, "C_Sign");
    return DerFromRawEcdsa(raw, raw_len);
  }

  StatusOr<std::string> PublicKeyDer() override { return spki_; }

 private:
  std::mutex mu_;  // one operation at a time on the session
  Opened opened_;
  ck_object_handle_t key_;
  std::string spki_;
};

// An AES-256 key on the token as a key-encryption key: CKM_AES_GCM, a 96-bit nonce from
// OpenSSL's CSPRNG per wrap, the caller's associated data behind a fixed label. Wrapped:
// nonce || ciphertext || tag.
class TokenKek : public phi::KeyEncryptionKey {
 public:
  TokenKek(Opened opened, ck_object_handle_t key, std::string id)
      : opened_(std::move(opened)), key_(key), id_(std::move(id)) {}

  const std::string& id() const override { return id_; }

  StatusOr<std::string> Wrap(std::string_view key, std::string_view aad) override {
    unsigned char nonce[12];
    if (RAND_bytes(nonce, sizeof nonce) != 1) return absl::InternalError("pkcs11: no nonce");
    std::string out(reinterpret_cast<const char*>(nonce), sizeof nonce);
    RXFLOW_ASSIGN_OR_RETURN(std::string sealed, Run(true, nonce, key, aad));
    return out + sealed;
  }

  StatusOr<std::string> Unwrap(std::string_view wrapped, std::string_view aad) override {
    if (wrapped.size() < 12 + 16)
      return absl::UnauthenticatedError("pkcs11: wrapped key too short");
    unsigned char nonce[12];
    std::memcpy(nonce, wrapped.data(), sizeof nonce);
    return Run(false, nonce, wrapped.substr(12), aad);
  }

 private:
  StatusOr<std::string> Run(bool encrypt, unsigned char* nonce, std::string_view in,
                            std::string_view aad_in) {
    std::string aad = Cat("rxflow-kek-wrap-v1", std::string(1, '\0'), aad_in);
    ck_gcm_params params{};
    params.iv_ptr = nonce;
    params.iv_len = 12;
    params.iv_bits = 96;
    params.aad_ptr = reinterpret_cast<unsigned char*>(aad.data());
    params.aad_len = aad.size();
    params.tag_bits = 128;
    ck_mechanism mech{CKM_AES_GCM, &params, sizeof params};
    const Module& m = opened_.module;
    std::lock_guard lock(mu_);
    ck_session_handle_t s = opened_.session.get();
    ck_rv_t rv = encrypt ? m.f->C_EncryptInit(s, &mech, key_) : m.f->C_DecryptInit(s, &mech, key_);
    if (rv != CKR_OK) return FromRv(rv, encrypt ? "C_EncryptInit (AES-GCM)" : "C_DecryptInit");
    std::string out(in.size() + 16, '\0');
    unsigned long len = out.size();
    auto* data = reinterpret_cast<unsigned char*>(const_cast<char*>(in.data()));
    rv = encrypt ? m.f->C_Encrypt(s, data, in.size(), reinterpret_cast<unsigned char*>(out.data()),
                                  &len)
                 : m.f->C_Decrypt(s, data, in.size(), reinterpret_cast<unsigned char*>(out.data()),
                                  &len);
    // A tag that does not verify: CKR_ENCRYPTED_DATA_INVALID by the standard; SoftHSM2 2.6
    // answers CKR_GENERAL_ERROR (Botan's exception), some modules CKR_FUNCTION_FAILED.
    if (!encrypt && (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
                     rv == CKR_GENERAL_ERROR || rv == CKR_FUNCTION_FAILED)) {
      return absl::UnauthenticatedError(
          Cat("pkcs11: the wrapped key does not authenticate (", RvName(rv), ")"));
    }
    if (rv != CKR_OK) return FromRv(rv, encrypt ? "C_Encrypt" : "C_Decrypt");
    out.resize(len);
    return out;
  }

  std::mutex mu_;  // one operation at a time on the session
  Opened opened_;
  ck_object_handle_t key_;
  std::string id_;
};

}  // namespace

std::string SoftHsmModulePath() {
  for (const char* path :
       {"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"}) {
    if (access(path, R_OK) == 0) return path;
  }
  return "";
}

Status InitToken(const TokenRef& ref, const std::string& so_pin) {
  RXFLOW_ASSIGN_OR_RETURN(Module m, LoadModule(ref.module_path));
  if (FindToken(m, ref.token_label).ok()) {
    return absl::AlreadyExistsError(
        Cat("pkcs11: a token labelled \"", ref.token_label, "\" exists already"));
  }
  RXFLOW_ASSIGN_OR_RETURN(std::vector<ck_slot_id_t> slots, Slots(m, /*token_present=*/false));
  std::optional<ck_slot_id_t> free_slot;
  for (ck_slot_id_t slot : slots) {
    ck_token_info info{};
    if (m.f->C_GetTokenInfo(slot, &info) == CKR_OK && !(info.flags & CKF_TOKEN_INITIALIZED)) {
      free_slot = slot;
      break;
    }
  }
  if (!free_slot) return absl::ResourceExhaustedError("pkcs11: the module has no free slot");
  std::string label = PaddedLabel(ref.token_label);
  ck_rv_t rv = m.f->C_InitToken(*free_slot,
                                reinterpret_cast<unsigned char*>(const_cast<char*>(so_pin.data())),
                                so_pin.size(), reinterpret_cast<unsigned char*>(label.data()));
  if (rv != CKR_OK) return FromRv(rv, "C_InitToken");
  // SoftHSM2 moves an initialised token to a new slot id: look it up again by its label.
  RXFLOW_ASSIGN_OR_RETURN(ck_slot_id_t slot, FindToken(m, ref.token_label));
  RXFLOW_ASSIGN_OR_RETURN(Session s, OpenSession(m, slot));
  RXFLOW_RETURN_IF_ERROR(Login(m, s, CKU_SO, so_pin));
  rv = m.f->C_InitPIN(s.get(), reinterpret_cast<unsigned char*>(const_cast<char*>(ref.pin.data())),
                      ref.pin.size());
  m.f->C_Logout(s.get());
  if (rv != CKR_OK) return FromRv(rv, "C_InitPIN");
  return absl::OkStatus();
}

TokenRef::~TokenRef() { OPENSSL_cleanse(pin.data(), pin.size()); }

StatusOr<bool> LoggedIn(const std::string& module_path, const std::string& token_label) {
  RXFLOW_ASSIGN_OR_RETURN(Module m, LoadModule(module_path));
  RXFLOW_ASSIGN_OR_RETURN(ck_slot_id_t slot, FindToken(m, token_label));
  RXFLOW_ASSIGN_OR_RETURN(Session s, OpenSession(m, slot));
  ck_session_info info{};
  ck_rv_t rv = m.f->C_GetSessionInfo(s.get(), &info);
  if (rv != CKR_OK) return FromRv(rv, "C_GetSessionInfo");
  return info.state == CKS_RW_USER_FUNCTIONS || info.state == CKS_RO_USER_FUNCTIONS;
}

StatusOr<bool> HasKey(const TokenRef& ref, const std::string& key_label) {
  RXFLOW_ASSIGN_OR_RETURN(Opened o, Open(ref));
  StatusOr<ck_object_handle_t> key = FindObject(o.module, o.session, CKO_PRIVATE_KEY, key_label);
  if (key.ok()) return true;
  if (key.status().code() == absl::StatusCode::kNotFound) return false;
  return key.status();
}

StatusOr<std::string> GenerateSigningKey(const TokenRef& ref, const std::string& key_label) {
  RXFLOW_ASSIGN_OR_RETURN(Opened o, Open(ref));
  const Module& m = o.module;
  if (FindObject(m, o.session, CKO_PRIVATE_KEY, key_label).ok()) {
    return absl::AlreadyExistsError(
        Cat("pkcs11: a key labelled \"", key_label, "\" exists already"));
  }
  unsigned char id[16];
  if (RAND_bytes(id, sizeof id) != 1) return absl::InternalError("pkcs11: no random key id");
  unsigned char yes = kTrue, no = kFalse;
  std::string label = key_label;
  ck_attribute pub[] = {
      {CKA_TOKEN, &yes, 1},
      {CKA_VERIFY, &yes, 1},
      {CKA_EC_PARAMS, const_cast<unsigned char*>(kP256Params), sizeof kP256Params},
      {CKA_LABEL, label.data(), label.size()},
      {CKA_ID, id, sizeof id},
  };
  ck_attribute priv[] = {
      {CKA_TOKEN, &yes, 1},      {CKA_PRIVATE, &yes, 1}, {CKA_SENSITIVE, &yes, 1},
      {CKA_EXTRACTABLE, &no, 1}, {CKA_SIGN, &yes, 1},    {CKA_LABEL, label.data(), label.size()},
      {CKA_ID, id, sizeof id},
  };
  ck_mechanism mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  ck_object_handle_t pub_key = 0, priv_key = 0;
  ck_rv_t rv = m.f->C_GenerateKeyPair(o.session.get(), &mech, pub, std::size(pub), priv,
                                      std::size(priv), &pub_key, &priv_key);
  if (rv != CKR_OK) return FromRv(rv, "C_GenerateKeyPair (EC P-256)");
  RXFLOW_ASSIGN_OR_RETURN(std::string point, GetAttribute(m, o.session, pub_key, CKA_EC_POINT));
  return SpkiFromEcPoint(std::move(point));
}

Status GenerateWrappingKey(const TokenRef& ref, const std::string& key_label) {
  RXFLOW_ASSIGN_OR_RETURN(Opened o, Open(ref));
  const Module& m = o.module;
  if (FindObject(m, o.session, CKO_SECRET_KEY, key_label).ok()) {
    return absl::AlreadyExistsError(
        Cat("pkcs11: a key labelled \"", key_label, "\" exists already"));
  }
  unsigned char yes = kTrue, no = kFalse;
  unsigned long length = 32;
  ck_object_class_t cls = CKO_SECRET_KEY;
  ck_key_type_t type = CKK_AES;
  std::string label = key_label;
  ck_attribute tmpl[] = {
      {CKA_CLASS, &cls, sizeof cls},
      {CKA_KEY_TYPE, &type, sizeof type},
      {CKA_TOKEN, &yes, 1},
      {CKA_PRIVATE, &yes, 1},
      {CKA_SENSITIVE, &yes, 1},
      {CKA_EXTRACTABLE, &no, 1},
      {CKA_ENCRYPT, &yes, 1},
      {CKA_DECRYPT, &yes, 1},
      {CKA_VALUE_LEN, &length, sizeof length},
      {CKA_LABEL, label.data(), label.size()},
  };
  ck_mechanism mech{CKM_AES_KEY_GEN, nullptr, 0};
  ck_object_handle_t key = 0;
  ck_rv_t rv = m.f->C_GenerateKey(o.session.get(), &mech, tmpl, std::size(tmpl), &key);
  if (rv != CKR_OK) return FromRv(rv, "C_GenerateKey (AES-256)");
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<phi::KeyEncryptionKey>> OpenKeyEncryptionKey(
    const TokenRef& ref, const std::string& key_label) {
  RXFLOW_ASSIGN_OR_RETURN(Opened o, Open(ref));
  RXFLOW_ASSIGN_OR_RETURN(ck_object_handle_t key,
                          FindObject(o.module, o.session, CKO_SECRET_KEY, key_label));
  // Two processes that made the key at once leave two keys under one label: data keys
  // wrapped by the one could not be unwrapped by the other. Refuse rather than pick one.
  {
    ck_object_class_t cls = CKO_SECRET_KEY;
    std::string label = key_label;
    ck_attribute tmpl[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, label.data(), label.size()}};
    const Module& m = o.module;
    ck_object_handle_t found[2] = {0, 0};
    unsigned long n = 0;
    ck_rv_t rv = m.f->C_FindObjectsInit(o.session.get(), tmpl, 2);
    if (rv == CKR_OK) rv = m.f->C_FindObjects(o.session.get(), found, 2, &n);
    m.f->C_FindObjectsFinal(o.session.get());
    if (rv != CKR_OK) return FromRv(rv, "C_FindObjects");
    if (n > 1) {
      return absl::FailedPreconditionError(
          Cat("pkcs11: the token holds more than one secret key labelled \"", key_label,
              "\" (made by two processes at once?): keep the one `rxflow phi status` accepts "
              "and delete the other"));
    }
  }
  return std::unique_ptr<phi::KeyEncryptionKey>(
      new TokenKek(std::move(o), key, Cat("pkcs11:", key_label)));
}

StatusOr<std::unique_ptr<epcs::Signer>> OpenSigner(const TokenRef& ref,
                                                   const std::string& key_label) {
  RXFLOW_ASSIGN_OR_RETURN(Opened o, Open(ref));
  RXFLOW_ASSIGN_OR_RETURN(ck_object_handle_t priv,
                          FindObject(o.module, o.session, CKO_PRIVATE_KEY, key_label));
  RXFLOW_ASSIGN_OR_RETURN(ck_object_handle_t pub,
                          FindObject(o.module, o.session, CKO_PUBLIC_KEY, key_label));
  RXFLOW_ASSIGN_OR_RETURN(std::string point, GetAttribute(o.module, o.session, pub, CKA_EC_POINT));
  RXFLOW_ASSIGN_OR_RETURN(std::string spki, SpkiFromEcPoint(std::move(point)));
  return std::unique_ptr<epcs::Signer>(new TokenSigner(std::move(o), priv, std::move(spki)));
}

}  // namespace rxflow::pkcs11
