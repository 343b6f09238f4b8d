// SPDX-License-Identifier: Apache-2.0
// File: rxflow/idempotency.h
//
// The idempotency key of a prescription: SHA-256 over a canonical form of its content
// (the mapped NewRx, so spelling differences in the FHIR input — a hyphenated NDC, phone
// punctuation, key order — do not change it). The patient enters only as
// HMAC-SHA-256(patient_key, canonical patient identity): a plain salted hash of a name and
// birth date could be brute-forced, a keyed MAC cannot without the key.
//
// What is in the content: prescriber (NPI, DEA), pharmacy (NCPDP ID), prescriber order
// number, drug (description, codes, strength, schedule; a compound's form and ingredients
// with their amounts), quantity and unit, days supply,
// date written, substitutions, refills, diagnoses, note, SigText and structured Sig, and
// do-not-fill-before/expiry dates. What is not: message id, sent time, sender software.
#ifndef RXFLOW_IDEMPOTENCY_H_
#define RXFLOW_IDEMPOTENCY_H_

#include <string>
#include <string_view>

#include "rxflow/script/model.h"
#include "rxflow/status.h"

namespace rxflow {

// Minimum length of the patient HMAC key, in bytes.
inline constexpr size_t kMinPatientKeyBytes = 16;

// Returns the 64-hex-digit key of a NewRx or CancelRx message. InvalidArgument when
// `patient_key` is shorter than kMinPatientKeyBytes or the message is another transaction.
StatusOr<std::string> IdempotencyKey(const script::Message& message, std::string_view patient_key);

// A patient's pseudonymous reference (64 hex digits): a keyed HMAC of the patient's identity
// in the message (name, birth date, gender, MRN) and `tenant`, under `patient_key`. The
// same patient written the same way in the same tenant gets the same reference; nothing
// of the identity can be read from it without the key. It links a patient's prescriptions
// for interaction screening. InvalidArgument as IdempotencyKey.
StatusOr<std::string> PatientReference(const script::Message& message, std::string_view patient_key,
                                       std::string_view tenant);

// The canonical content the key hashes (exposed for tests and audits). The patient part
// is already the HMAC, so this text holds no patient identity.
StatusOr<std::string> CanonicalPrescription(const script::Message& message,
                                            std::string_view patient_key);

}  // namespace rxflow

#endif  // RXFLOW_IDEMPOTENCY_H_
