# SPDX-License-Identifier: Apache-2.0
"""RxFlow: HL7 FHIR R5 prescriptions <-> NCPDP SCRIPT (2023011, 2017071), and an event-sourced
prescription service.

The calls are compiled (the `_rxflow` extension, pybind11); the shapes of the dicts they return
are TypedDicts in `rxflow.types`. docs/python.md has the whole API.
"""
from ._rxflow import (
    Conflict,
    DataWarning,
    Error,
    FailedPrecondition,
    InvalidInput,
    Issue,
    NotFound,
    PermissionDenied,
    PrescriptionService,
    Submission,
    Unauthenticated,
    Unavailable,
    Unsupported,
    __version__,
    check,
    find_drugs,
    screen_interactions,
    to_fhir,
    to_script,
    totp,
    verify_prescription_signature,
)
from . import types
from .types import Request

__all__ = [
    "Conflict",
    "DataWarning",
    "Error",
    "FailedPrecondition",
    "InvalidInput",
    "Issue",
    "NotFound",
    "PermissionDenied",
    "PrescriptionService",
    "Request",
    "Submission",
    "Unauthenticated",
    "Unavailable",
    "Unsupported",
    "__version__",
    "check",
    "find_drugs",
    "screen_interactions",
    "to_fhir",
    "to_script",
    "totp",
    "types",
    "verify_prescription_signature",
]
