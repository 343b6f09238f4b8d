// SPDX-License-Identifier: Apache-2.0
// File: rxflow/epcs/ceremony.h
//
// The EPCS signing ceremony of 21 CFR 1311 Subpart C over a PrescriptionService: practitioners
// and their DEA registrations, EPCS permissions under the two-person rule (§1311.125), two
// factors (§1311.115), the signing bundle shown to the practitioner, "mark ready" and "sign"
// (§1311.135, .140), with every step written to the tamper-evident audit chain (§1311.150).
// docs/epcs.md "The ceremony" has the flow and maps each T-x statement to its test.
//
// Everything is event-sourced on the service's store: a practitioner is the stream
// "epcs-practitioner-<id>" (enrolment, permission proposals and approvals, each two-factor
// attempt with the TOTP state it leaves), a prescription's ready mark and signature are events
// of its own stream, and the audit chain is the stream "epcs-audit".
//
// Completing two factors is the signature (§1311.140(a)(4)): Sign checks both factors,
// records the two-factor event, has the practitioner's key sign the Part 1306 content
// (rxflow/epcs/signature.h), records PrescriptionSigned carrying the two-factor event id and
// the signed NewRx, and queues it for transmission (§1311.170(a)). The two-factor event and
// the signature are two appends on two streams: after a crash between them a two-factor
// success without a signature can exist, never a signature without its two-factor event.
//
// Thread-safety: safe for concurrent use (appends are optimistic and retried).
#ifndef RXFLOW_EPCS_CEREMONY_H_
#define RXFLOW_EPCS_CEREMONY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rxflow/clock.h"
#include "rxflow/epcs/audit.h"
#include "rxflow/epcs/factors.h"
#include "rxflow/epcs/signature.h"
#include "rxflow/epcs/signer.h"
#include "rxflow/service.h"
#include "rxflow/status.h"
#include "rxflow/store/event_store.h"

namespace rxflow::epcs {

struct DeaRegistration {
  std::string number;                  // checked with CheckDeaNumber against the last name
  std::vector<std::string> schedules;  // "2", "2N", "3", "3N", "4", "5"
  std::string state;                   // the state of the registration ("OH")
  std::string expires;                 // YYYY-MM-DD, the last day it is valid
};

struct PractitionerEnrollment {
  std::string id;  // the practitioner's user id
  // The tenant whose clients may act for this practitioner over the API (docs/security.md);
  // empty: the tenant "default".
  std::string tenant;
  std::string first_name;
  std::string last_name;
  std::vector<DeaRegistration> registrations;  // none: not a registrant (an agent, an admin)
  std::string identity_proofed_by;             // who proofed the identity (T-2.4): required
  std::string credential_issuer;               // the CSP or CA that issued the credential:
                                               // required
  std::string password;                        // hashed (scrypt) before it is stored
  std::string totp_secret;                     // raw bytes, at least 16
  TotpParams totp;
  std::string certificate_der;  // the practitioner's X.509 certificate (signers only)
  std::string key_label;        // the signing key's label on the token (signers only)
  // An institutional practitioner's institution (RegisterInstitution); empty: an individual
  // practitioner. Then identity_proofed_by must be one of the institution's
  // identity_proofers, and its list and designated people govern the permissions (T-3.3).
  std::string institution;
};

// ---- Institutional practitioners (21 CFR 1311.130, T-3.3) ----------------------------------

// An institutional practitioner (a hospital, a clinic) as registered with the ceremony.
struct Institution {
  std::string id;
  std::string name;
  std::string dea_number;  // the institution's own registration
  // The people who approve the institution's list of practitioners allowed to sign and who
  // enter their access controls: at least two (one enters, another approves). Each needs
  // an enrolment of their own (for their two factors); none needs a DEA registration.
  std::vector<std::string> designated;
  // Who may proof the identity of the institution's practitioners (its credentialing
  // office): at least one; an institutional enrolment names one of them.
  std::vector<std::string> identity_proofers;
};

struct InstitutionView {
  Institution institution;
  std::vector<std::string> listed;  // the approved list, sorted
};

// ---- The biometric factor (21 CFR 1311.116, T-2.3) ------------------------------------------
//
// RxFlow does not capture or match biometrics: a biometric subsystem does, one tested by NIST
// or a DEA-approved laboratory at a false match rate of 0.001 or lower (§1311.116(b)-(c), (h)).
// What RxFlow does is §1311.116(g) for a match made away from it: it accepts a match result
// only when it is source-authenticated (an ECDSA P-256 signature by the key of a subsystem
// enrolled for the practitioner), bound to a fresh challenge the ceremony issued (one use, a
// short life: no replay), and from a subsystem whose recorded certification states a false
// match rate of 0.001 or lower. The device's id is recorded with each use.

// A biometric subsystem as enrolled for a practitioner.
struct BiometricDevice {
  std::string device_id;        // the subsystem's id (at most 128 printable ASCII characters)
  std::string public_key_der;   // its signing key: DER SubjectPublicKeyInfo, EC P-256
  double false_match_rate = 1;  // the rate it was tested to operate at; at most 0.001
  std::string tested_by;        // the laboratory (NIST or DEA-approved) that tested it
  std::string test_report;      // the report's reference
};

// The text a biometric subsystem signs (ECDSA P-256, SHA-256) when it matched the
// practitioner: the line "rxflow-biometric-match-v1", then "practitioner=", "device=" and
// "challenge=" lines with the values, then "match=1", each line ending in "\n". A subsystem
// that did not match signs nothing.
std::string BiometricMatchText(std::string_view practitioner_id, std::string_view device_id,
                               std::string_view challenge);

// A match result as the subsystem returns it.
struct BiometricMatch {
  std::string device_id;
  std::string challenge;      // as Ceremony::BiometricChallenge issued it
  std::string signature_der;  // over BiometricMatchText(practitioner, device, challenge)
};

// The factors as the practitioner gives them: any two of different kinds (CheckTwoFactors).
struct TwoFactorProof {
  std::string password;  // knowledge
  std::string otp;       // possession: the code of the separate TOTP device
  std::optional<BiometricMatch> biometric = std::nullopt;  // inherence (with a password or a code)
};

enum class Permission { kMarkReady, kSign };
std::string_view PermissionName(Permission p);  // "mark_ready" | "sign"

// A practitioner as the ceremony knows it (no secrets).
struct PractitionerView {
  std::string id;
  std::string tenant;       // as enrolled (empty: the tenant "default")
  std::string institution;  // as enrolled (empty: an individual practitioner)
  std::string first_name;
  std::string last_name;
  std::vector<DeaRegistration> registrations;
  std::string identity_proofed_by;
  std::string credential_issuer;
  // Granted under the two-person rule and not revoked, and the practitioner holds a current
  // DEA registration (an expired one takes the permissions with it).
  bool may_mark_ready = false;
  bool may_sign = false;
  bool locked_out = false;
};

// What the practitioner sees before marking ready and signing (T-4.5).
struct SigningBundle {
  std::string prescription_id;
  std::vector<Part1306Field> fields;     // the Part 1306 content, in canonical order
  std::string attestation;               // kAttestation
  std::string sha256;                    // hex SHA-256 of canonical text + attestation
  std::vector<std::string> dea_numbers;  // the practitioner's current registrations
                                         // covering the prescription's schedule
  std::string prescription_dea_number;   // the DEA number the NewRx names (with any suffix)
  std::string prescription_prescriber_last_name;  // the prescriber's last name in the NewRx
  std::string state;                              // the prescription's state ("ReadyToSign")
  bool marked_ready = false;                      // marked ready for exactly this bundle
  // The newest PDMP query for the patient recorded on the prescription
  // (PrescriptionService::QueryPdmp), so the prescriber sees whether and when the history
  // was checked. Not part of `sha256`: a query after marking ready does not void the mark.
  std::optional<domain::PdmpQueried> last_pdmp_query;
};

struct CeremonyOptions {
  // The trusted time (an NTP-disciplined clock; 21 CFR 1311.120(b): within 5 minutes of NIST
  // time). Signing is refused, and audited, when it and the service's clock differ by more
  // than max_clock_skew_micros. Default: the service's clock (no skew by construction).
  Clock* time_source = nullptr;
  int64_t max_clock_skew_micros = int64_t{5} * 60 * 1'000'000;
  TotpPolicy totp_policy;
  PasswordPolicy password_policy;
  // The practitioner's signing key (on a PKCS#11 token, rxflow::pkcs11::OpenSigner). Required
  // for Sign.
  std::function<StatusOr<std::shared_ptr<Signer>>(const PractitionerView&,
                                                  const std::string& key_label)>
      signer_for;
  // RxFlow's ML-DSA-65 co-signer (not owned; must outlive the ceremony): when set, the stored
  // record of each signature (the PrescriptionSigned event) carries its co-signature
  // (SignatureRecordText, VerifySignatureRecord), and a signature that cannot be co-signed is
  // refused. Null: records are not co-signed.
  CoSigner* record_cosigner = nullptr;
  // T-5.4 (21 CFR 1311.145(e)-(f)): the CA chain and CRLs the sender checks its own signature
  // against before it records and transmits it. When set, the signed NewRx is verified as a
  // pharmacy would (VerifyPrescriptionSignature: the chain to these anchors, every CRL
  // current and not revoking the certificate); a failure refuses the signature (audited,
  // naming the step) and nothing is sent. Null: not checked here (the pharmacy still does).
  // `rxflow serve`'s demo sets its development CA and CRL.
  std::shared_ptr<const TrustStore> sender_trust;
  // Where the program runs ("rxflow serve@host"), for audit records.
  std::string source = "rxflow";
};

// What PrescriptionService checks in the store before it records a MarkReady or a Sign
// (T-1.2: a program that makes these commands up cannot pass for the ceremony), other commands
// pass. The practitioner must be enrolled in `tenant` (the prescription's; "" is the default
// tenant). MarkReady: holds `mark_ready` or `sign`, and the DEA number is one of their
// registrations (Ceremony::Sign checks again that it is current, covers the schedule and is
// the NewRx's, and that the NewRx names them). Sign: moreover holds `sign`; the two-factor event is
// theirs, accepted, and was completed by Ceremony::Sign for this prescription and this bundle;
// the signed NewRx verifies under the certificate enrolled for them
// (VerifySignedByEnrolledCertificate), carries the command's signature, and its Part 1306
// content is the bundle. PermissionDenied naming what failed; a store error as it is. The
// ceremony checks the rest (expiry, bundle review, clock, certificate chain) before it makes
// the commands.
Status CheckCeremonyCommand(store::EventStore& store, const std::string& prescription_id,
                            std::string_view tenant, const domain::Command& command);

class Ceremony {
 public:
  // `service`, `store` (the service's), `audit` and `clock` must outlive the ceremony.
  Ceremony(PrescriptionService& service, store::Store& store, AuditTrail& audit, Clock& clock,
           CeremonyOptions options);
  ~Ceremony();

  // Audit records this ceremony could not write (the store failed) since it was made. The
  // step they describe stands (it was decided, or committed, first); each lost record is an
  // incident (21 CFR 1311.150(a)(5)) that the operator must see: `rxflow serve` logs it as
  // an error.
  int64_t audit_failures() const;

  // Enrols a practitioner (AlreadyExists when the id is taken). InvalidArgument for a bad
  // DEA number, a short password or TOTP secret, or no identity_proofed_by or
  // credential_issuer; every registration is checked. Audited (actor: `by`).
  Status Enroll(const PractitionerEnrollment& p, const std::string& by);
  StatusOr<PractitionerView> Practitioner(const std::string& id);

  // The two-person rule (§1311.125): `entered_by` proposes granting or revoking a permission
  // and gets the proposal id; a second person who is a DEA registrant approves it with both
  // factors. Refused (PermissionDenied, audited): the same person approving, an approver who
  // is not a registrant or whose registrations expired, failed two factors. Signing
  // permission is only for registrants (§1311.125(a)); granting it to anyone else is refused.
  StatusOr<std::string> Propose(const std::string& practitioner_id, Permission permission,
                                bool grant, const std::string& entered_by);
  Status Approve(const std::string& practitioner_id, const std::string& proposal_id,
                 const std::string& approver_id, const TwoFactorProof& proof);

  // T-3.3 (§1311.130). Registers an institution (audited, actor `by`). InvalidArgument
  // (audited) without an id, with fewer than two designated people or no identity proofer,
  // or with an invalid DEA number; AlreadyExists for an id registered before.
  Status RegisterInstitution(const Institution& institution, const std::string& by);
  // Its list of practitioners allowed to use EPCS changes under the two-person rule: one of
  // the designated people enters a change (add or remove a practitioner enrolled with the
  // institution), another of them approves it with two factors. Refused (PermissionDenied,
  // audited): anyone not designated, the person who entered it approving, failed factors. An
  // institutional practitioner's permissions are likewise proposed and approved only by
  // designated people (no DEA registration is asked of them), `sign` is granted only to a
  // listed practitioner, and a practitioner taken off the list loses both permissions (the
  // grants stay recorded and count again if they are listed again).
  StatusOr<std::string> ProposeListChange(const std::string& institution_id,
                                          const std::string& practitioner_id, bool add,
                                          const std::string& entered_by);
  Status ApproveListChange(const std::string& institution_id, const std::string& proposal_id,
                           const std::string& approver_id, const TwoFactorProof& proof);
  StatusOr<InstitutionView> InstitutionOf(const std::string& institution_id);

  // Enrols a biometric subsystem for the practitioner (T-2.3). InvalidArgument (audited)
  // for an empty or over-long device id, a key that is not EC P-256, a false match rate
  // above 0.001 (§1311.116(b)), or no laboratory; AlreadyExists for a device id enrolled
  // for them before. Audited (actor: `by`), naming the device, rate and laboratory.
  Status EnrollBiometric(const std::string& practitioner_id, const BiometricDevice& device,
                         const std::string& by);
  // A fresh challenge for the practitioner's biometric subsystem to bind its next match
  // result to: 32 random bytes, hex; recorded, valid for kBiometricChallengeSeconds and
  // used at most once (the attempt that presents it consumes it, accepted or not).
  StatusOr<std::string> BiometricChallenge(const std::string& practitioner_id);
  static constexpr int64_t kBiometricChallengeSeconds = 120;

  // Checks the factors of `practitioner_id` and records the attempt; returns the id of the
  // two-factor event. The proof holds a password and a TOTP code, or a biometric match with
  // either: the factors presented are checked in that order, the first failure ends the
  // attempt (a wrong password does not spend a code), and those that pass must be of two
  // kinds. Unauthenticated for a wrong password, code or match, or fewer than two kinds (the
  // failure is recorded, naming which, and counts toward the lockout), PermissionDenied
  // while locked out.
  StatusOr<std::string> CompleteTwoFactor(const std::string& practitioner_id,
                                          const TwoFactorProof& proof, std::string_view purpose);

  // The signing bundle of a controlled-substance prescription for `practitioner_id`.
  // FailedPrecondition when it is not a controlled substance awaiting signature.
  StatusOr<SigningBundle> Bundle(const std::string& prescription_id,
                                 const std::string& practitioner_id);
  // The bundles of every prescription awaiting `practitioner_id`'s signature for one patient
  // (§1311.140(a)(1)): `prescription_ids` as the caller lists them (one patient's).
  StatusOr<std::vector<SigningBundle>> Bundles(const std::vector<std::string>& prescription_ids,
                                               const std::string& practitioner_id);

  // Marks the prescription ready for the bundle the practitioner reviewed, under the DEA
  // registration selected (§1311.135(b): required when there are several; it must be the
  // one the NewRx names). PermissionDenied without the mark_ready permission;
  // FailedPrecondition when the bundle changed (review it again).
  Status MarkReady(const std::string& prescription_id, const std::string& practitioner_id,
                   const std::string& dea_number, const std::string& bundle_sha256,
                   const RequestContext& ctx = {});

  // The signature (§1311.140): PermissionDenied without the sign permission or with an
  // expired registration, or when the clock is off by more than 5 minutes;
  // Unauthenticated for failed factors; FailedPrecondition when not marked ready for this
  // bundle. On success the prescription is Signed and queued for its pharmacy.
  Status Sign(const std::string& prescription_id, const std::string& practitioner_id,
              const std::string& bundle_sha256, const TwoFactorProof& proof,
              const RequestContext& ctx = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rxflow::epcs

#endif  // RXFLOW_EPCS_CEREMONY_H_
