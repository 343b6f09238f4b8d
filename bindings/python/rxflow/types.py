# SPDX-License-Identifier: Apache-2.0
"""The shapes of the dicts RxFlow's calls return, as TypedDicts: a type checker (mypy, pyright)
and an editor know every key and its type, and the values stay plain dicts at run time (JSON
in, JSON out, no conversion). Import them for annotations: `from rxflow.types import
PrescriptionSummary`."""
from typing import Any, TypedDict, Union

# What to_script, check and submit take: FHIR JSON as text or bytes, or the parsed dict.
Request = Union[str, bytes, dict[str, Any]]


class PrescriptionSummary(TypedDict):
    """PrescriptionService.get: the current summary, folded from the prescription's events."""
    id: str
    status: str  # the state: "Received", "Transformed", "ReadyToSign", ..., "Dispensed"
    pharmacy_ncpdp_id: str
    is_controlled: bool
    dea_schedule: str  # "" | "CII" ... "CV"
    message_id: str  # the NewRx's MessageID
    created_at: str  # RFC 3339, UTC
    updated_at: str
    version: int  # the stream version of the last event


class Event(TypedDict):
    """PrescriptionService.events: one stored event, oldest first."""
    event_id: str
    version: int  # 1, 2, ... within the prescription's stream
    global_position: int  # commit order across all streams
    type: str  # "PrescriptionReceived", "PrescriptionTransformed", ...
    schema_version: int
    occurred_at: str  # RFC 3339, UTC
    correlation_id: str
    causation_id: str
    actor: str
    payload: dict[str, Any]  # the event's fields (docs/event-model.md)


class Ingredient(TypedDict):
    name: str
    rxcui: str
    strength: str
    unit: str
    precise: str


class Product(TypedDict):
    rxcui: str
    term_type: str  # SCD | SBD | GPCK | BPCK | ""
    name: str
    brand: str
    dose_form: str
    route: str
    dea_schedule: str  # "" | CI | CII | CIII | CIV | CV
    prescribable: bool
    ingredients: list[Ingredient]
    ndcs: list[str]  # 5-4-2 with hyphens
    source: str


class DrugMatch(TypedDict):
    score: float
    reasons: list[str]
    product: Product


class Interaction(TypedDict):
    rule_id: str  # "onc-04"
    severity: str  # "contraindicated" | "passive" | "unknown"
    summary: str
    citation: str
    ingredient: str
    ingredient_class: str
    other_ingredient: str
    other_class: str
    other_drug: str  # the other drug's name
    other: str  # the other prescription's id (submit) or the other drug as given


class SignatureCheck(TypedDict):
    ok: bool
    # "ok" | "not_newrx" | "unsigned" | "malformed" | "digest_mismatch" | "bad_signature" |
    # "not_prescriber" | "untrusted" | "expired" | "revoked" | "crl_unavailable"
    check: str
    reason: str
    signer: str  # the certificate's subject, RFC 2253


class EpcsDemo(TypedDict):
    prescriber: str          # "dr-lindqvist"
    dea_number: str          # "BL4721052"
    password: str
    totp_secret: str         # base32, for totp() or an authenticator app
    otpauth_uri: str
    directory: str           # <directory>/epcs
    ca_certificate_pem: str  # trust anchor for verify_prescription_signature
    crl_pem: str


class BundleField(TypedDict):
    name: str   # "IssueDate", "PatientName", ... (16, in canonical order)
    value: str


class SigningBundle(TypedDict):
    prescription_id: str
    status: str                    # "ReadyToSign"
    fields: list[BundleField]
    attestation: str
    sha256: str                    # pass to ready() and sign()
    dea_numbers: list[str]         # the practitioner's registrations covering the schedule
    prescription_dea_number: str   # the DEA number the NewRx names
    marked_ready: bool
