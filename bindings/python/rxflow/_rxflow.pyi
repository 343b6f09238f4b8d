# SPDX-License-Identifier: Apache-2.0
"""The compiled part of the rxflow package (pybind11): import `rxflow`, not this module."""
import os
from typing import Any, Optional

from .types import (
    BundleField,
    DrugMatch,
    EpcsDemo,
    Event,
    Interaction,
    PrescriptionSummary,
    Product,
    Request,
    SignatureCheck,
    SigningBundle,
)

__version__: str

class Error(Exception):
    issues: list[Issue]
    code: str
class InvalidInput(Error): ...
class Unsupported(InvalidInput): ...
class NotFound(Error): ...
class Conflict(Error): ...
class Unavailable(Error): ...
class FailedPrecondition(Error): ...
# EPCS (21 CFR 1311). Both are also builtin PermissionErrors.
class Unauthenticated(Error, PermissionError):
    """The two factors failed: a wrong password or code, or a code used before (UNAUTHENTICATED)."""
class PermissionDenied(Error, PermissionError):
    """Not permitted: no EPCS permission, no current DEA registration for this, locked out after
    repeated failures, or the clock off by more than 5 minutes (PERMISSION_DENIED)."""

class DataWarning(UserWarning):
    """What a transform did not carry, issued when the call was given no `issues` list."""
    issue: Issue

class Issue:
    @property
    def severity(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def code(self) -> str: ...


def to_script(
    request: Request,
    script_version: str = "2023011",
    *,
    to: str | None = None,
    to_qualifier: str = "",
    from_: str | None = None,
    from_qualifier: str = "",
    relates_to: str = "",
    transliterate: bool = False,
    issues: list[Issue] | None = None,
) -> str: ...
def to_fhir(xml: str | bytes, script_version: str | None = None, lenient: bool = False, *,
            charset: str = "", issues: list[Issue] | None = None) -> dict[str, Any]: ...
def check(text: Request, script_version: str | None = None, *,
          transliterate: bool = False, charset: str = "") -> list[Issue]: ...

# Clinical data.

def find_drugs(text: str, limit: int = 10) -> list[DrugMatch]:
    """Starter-formulary products for an NDC, an RxCUI or words, best first."""

def screen_interactions(drugs: list[str]) -> list[Interaction]:
    """The drugs (NDCs, RxCUIs or words) screened against each other (ONC High-Priority list):
    each pair once, "other" the later drug as given."""

# EPCS helpers.
def totp(secret_base32: str, time: float | None = None, digits: int = 6) -> str:
    """RFC 6238 code (HMAC-SHA-1, 30-second steps) of a base32 secret at `time` (Unix seconds,
    default now); digits 6, 7 or 8. Raises InvalidInput for a bad secret, time or digits."""

def verify_prescription_signature(
    script_xml: str | bytes,
    trust_anchors_pem: str | bytes,
    crl: str | bytes | None = None,
) -> SignatureCheck:
    """The pharmacy's check of a signed controlled-substance NewRx. Without `crl` it fails closed
    (check "crl_unavailable"). Raises InvalidInput only for unreadable anchors or CRL."""

class Submission:
    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def created(self) -> bool: ...
    @property
    def idempotency_key(self) -> str: ...
    @property
    def is_controlled(self) -> bool: ...
    @property
    def created_at(self) -> str: ...
    @property
    def interactions(self) -> list[Interaction]: ...

class PrescriptionService:
    @staticmethod
    def open(url: str, patient_key: Optional[str] = None,
             script_version: str = "2023011", *,
             interactions: str = "warn",
             phi_kek: Optional[str] = None,
             transliterate: bool = False) -> PrescriptionService: ...
    def submit(self, request: Request, idempotency_key: Optional[str] = None, *,
               issues: list[Issue] | None = None) -> Submission: ...
    def get(self, id: str) -> PrescriptionSummary: ...
    def events(self, id: str) -> list[Event]: ...
    def route(self, id: str) -> None: ...
    def cancel(self, id: str, reason: str = "") -> None: ...
    # PDMP ($pdmp-history): the answer as the HTTP API's pdmp-query route gives it; recorded
    # on the prescription as PdmpQueried. A PDMP that cannot be reached: outcome "unavailable".
    def query_pdmp(self, id: str, pdmp_url: str, token: str | None = None,
                   ca_file: str | None = None, timeout: float = 15.0) -> dict[str, Any]: ...
    # EPCS. Without setup_epcs_demo() first, signing_bundle/ready/sign raise RuntimeError.
    def setup_epcs_demo(self, directory: str | os.PathLike[str] | None = None) -> EpcsDemo:
        """Demo prescriber on a SoftHSM2 token (not for production). RuntimeError in a build
        without PKCS#11 support; FailedPrecondition when SoftHSM2 is not installed."""
    def signing_bundle(self, id: str, practitioner: str) -> SigningBundle: ...
    def ready(self, id: str, practitioner: str, dea_number: str,
              bundle_sha256: str) -> dict[str, Any]:
        """Raises PermissionDenied, FailedPrecondition (bundle not current), InvalidInput."""
    def sign(self, id: str, practitioner: str, bundle_sha256: str, password: str,
             otp: str) -> dict[str, Any]:
        """Raises Unauthenticated (failed factors), PermissionDenied, FailedPrecondition."""
    def close(self) -> None: ...
    def __enter__(self) -> PrescriptionService: ...
    def __exit__(self, *args: Any) -> None: ...
