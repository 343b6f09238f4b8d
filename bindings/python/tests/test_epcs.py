# SPDX-License-Identifier: Apache-2.0
"""EPCS from Python: the demo prescriber, the signing bundle, ready, sign with two factors, and the
pharmacy's verification of the signed NewRx.

SoftHSM2 reads SOFTHSM2_CONF once per process, and setup_epcs_demo sets it (to the demo's own
configuration) only when unset: every service here uses ONE demo directory, made once per pytest
process. Each test opens its own store, so each has its own practitioners, TOTP state and lockout
counters; within a store a TOTP code signs once (a second use is refused as replayed)."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

import rxflow
from shapes import assert_shape

FIXTURES = pathlib.Path(os.environ.get("RXFLOW_FIXTURES", pathlib.Path(__file__).parents[3] / "tests" / "fixtures"))
PRESCRIBER = "dr-lindqvist"
DEA = "BL4721052"
BUNDLE_KEYS = ["prescription_id", "status", "fields", "attestation", "sha256", "dea_numbers",
               "prescription_dea_number", "marked_ready"]  # the HTTP API's, in its order


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.fixture(scope="session")
def epcs_dir(tmp_path_factory):
    # The demo's own SoftHSM2 configuration, not one the environment may name.
    os.environ.pop("SOFTHSM2_CONF", None)
    return tmp_path_factory.mktemp("epcs-demo")


@pytest.fixture
def epcs(tmp_path, epcs_dir):
    """A service on a fresh store with the demo prescriber set up: (service, demo)."""
    service = rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'rx.db'}", patient_key="k" * 20)
    # No skip: scripts/install-deps.sh installs SoftHSM2 and the PKCS#11 header, so a build
    # without PKCS#11 support fails here rather than passing quietly.
    try:
        demo = service.setup_epcs_demo(epcs_dir)
        assert_shape(demo, rxflow.types.EpcsDemo)
    except Exception:
        service.close()
        raise
    yield service, demo
    service.close()


def ready_oxycodone(service, idempotency_key=None, next_of_series=False):
    """Submits the Schedule II fixture, reviews its bundle and marks it ready: (id, bundle).
    next_of_series: the order again, with its earliest fill date (21 CFR 1306.12(b))."""
    order = fixture("fhir/schedule2_oxycodone.json")
    if next_of_series:
        order = order.replace('"dispenseRequest": {',
                              '"dispenseRequest": {"validityPeriod": {"start": "2026-11-26"},', 1)
    s = service.submit(order, idempotency_key=idempotency_key)
    assert s.is_controlled and s.status == "ReadyToSign"
    bundle = service.signing_bundle(s.id, PRESCRIBER)
    assert_shape(bundle, rxflow.types.SigningBundle)
    summary = service.ready(s.id, PRESCRIBER, DEA, bundle["sha256"])
    assert summary["id"] == s.id and summary["status"] == "ReadyToSign"
    return s.id, bundle


def signed_newrx(service, id):
    payloads = [e["payload"] for e in service.events(id) if e["type"] == "PrescriptionSigned"]
    assert len(payloads) == 1
    return payloads[0]["signed_newrx_xml"]


def test_totp_matches_rfc_6238():
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of "12345678901234567890"
    assert rxflow.totp(secret, time=59, digits=8) == "94287082"
    assert rxflow.totp(secret, time=1111111109, digits=8) == "07081804"
    assert rxflow.totp(secret, time=59) == "287082"
    assert rxflow.totp(secret.lower(), 59.9) == "287082"  # the step is floor(time / 30)
    assert re.fullmatch(r"\d{6}", rxflow.totp(secret))  # now
    with pytest.raises(rxflow.InvalidInput):
        rxflow.totp("not base32!")
    with pytest.raises(rxflow.InvalidInput):
        rxflow.totp("GEZDGNBV")  # 5 bytes: under 16
    with pytest.raises(rxflow.InvalidInput):
        rxflow.totp(secret, time=-1)
    with pytest.raises(rxflow.InvalidInput):
        rxflow.totp(secret, digits=9)


def test_the_epcs_exceptions_are_permission_errors():
    for cls in (rxflow.Unauthenticated, rxflow.PermissionDenied):
        assert issubclass(cls, rxflow.Error) and issubclass(cls, PermissionError)


def test_signing_needs_setup_first(tmp_path):
    with rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'db'}", patient_key="k" * 20) as service:
        s = service.submit(fixture("fhir/schedule2_oxycodone.json"))
        with pytest.raises(RuntimeError, match="EPCS is not set up"):
            service.signing_bundle(s.id, PRESCRIBER)
        with pytest.raises(RuntimeError, match="EPCS is not set up"):
            service.sign(s.id, PRESCRIBER, "0" * 64, "pw", "000000")


def test_setup_returns_the_demo_prescriber(epcs, epcs_dir):
    _, demo = epcs
    assert demo["prescriber"] == PRESCRIBER and demo["dea_number"] == DEA
    assert demo["directory"] == str(epcs_dir / "epcs")
    assert demo["password"] and re.fullmatch(r"[A-Z2-7]+", demo["totp_secret"])
    assert demo["otpauth_uri"].startswith("otpauth://totp/")
    assert "secret=" + demo["totp_secret"] in demo["otpauth_uri"]
    assert "-----BEGIN CERTIFICATE-----" in demo["ca_certificate_pem"]
    assert "-----BEGIN X509 CRL-----" in demo["crl_pem"]


def test_review_ready_sign_and_the_pharmacy_verifies(epcs):
    service, demo = epcs
    s = service.submit(fixture("fhir/schedule2_oxycodone.json"))
    bundle = service.signing_bundle(s.id, PRESCRIBER)
    assert list(bundle) == BUNDLE_KEYS
    assert bundle["prescription_id"] == s.id and bundle["status"] == "ReadyToSign"
    assert len(bundle["fields"]) == 16 and bundle["fields"][0]["name"] == "IssueDate"
    assert [f["name"] for f in bundle["fields"]][-2:] == ["PrescriberDEA", "PrescriberNPI"]
    assert all(set(f) == {"name", "value"} for f in bundle["fields"])
    assert "two-factor authentication" in bundle["attestation"]
    assert re.fullmatch(r"[0-9a-f]{64}", bundle["sha256"])
    assert bundle["dea_numbers"] == [DEA] and bundle["prescription_dea_number"] == DEA
    assert bundle["marked_ready"] is False

    assert service.ready(s.id, PRESCRIBER, DEA, bundle["sha256"])["status"] == "ReadyToSign"
    assert service.signing_bundle(s.id, PRESCRIBER)["marked_ready"] is True

    code = rxflow.totp(demo["totp_secret"])
    summary = service.sign(s.id, PRESCRIBER, bundle["sha256"], demo["password"], code)
    assert summary["id"] == s.id and summary["status"] == "Queued"
    assert service.get(s.id)["status"] == "Queued"
    signed = [e for e in service.events(s.id) if e["type"] == "PrescriptionSigned"]
    assert signed[0]["actor"] == f"practitioner:{PRESCRIBER}"

    # The pharmacy's check: the signed NewRx verifies under the demo CA and its CRL.
    xml = signed_newrx(service, s.id)
    v = rxflow.verify_prescription_signature(xml, demo["ca_certificate_pem"], demo["crl_pem"])
    assert set(v) == {"ok", "check", "reason", "signer"}
    assert_shape(v, rxflow.types.SignatureCheck)
    assert v["ok"] is True and v["check"] == "ok", v["reason"]
    assert "Lindqvist" in v["signer"] and DEA in v["signer"]
    assert rxflow.verify_prescription_signature(xml.encode(), demo["ca_certificate_pem"].encode(),
                                                demo["crl_pem"].encode())["ok"]
    # Tampered: another quantity than the one signed.
    tampered, n = re.subn(r"(<Quantity>\s*<Value>)[^<]*(</Value>)", r"\g<1>200\g<2>", xml, count=1)
    assert n == 1 and tampered != xml
    v = rxflow.verify_prescription_signature(tampered, demo["ca_certificate_pem"], demo["crl_pem"])
    assert v["ok"] is False and v["check"] == "digest_mismatch" and v["reason"]
    # Without the CRL the check fails closed.
    v = rxflow.verify_prescription_signature(xml, demo["ca_certificate_pem"])
    assert v["ok"] is False and v["check"] == "crl_unavailable"
    # The NewRx as transformed, before signing.
    unsigned = [e for e in service.events(s.id) if e["type"] == "PrescriptionTransformed"][0]["payload"]["newrx_xml"]
    assert rxflow.verify_prescription_signature(unsigned, demo["ca_certificate_pem"],
                                                demo["crl_pem"])["check"] == "unsigned"
    with pytest.raises(rxflow.InvalidInput):
        rxflow.verify_prescription_signature(xml, "not a certificate")

    # The same code again, on another prescription: refused (a code signs once).
    other, other_bundle = ready_oxycodone(service, idempotency_key="second-prescription",
                                          next_of_series=True)
    assert other != s.id
    with pytest.raises(rxflow.Unauthenticated, match="two-factor authentication failed") as e:
        service.sign(other, PRESCRIBER, other_bundle["sha256"], demo["password"], code)
    assert isinstance(e.value, PermissionError) and e.value.code == "UNAUTHENTICATED"
    assert e.value.issues == []
    assert service.get(other)["status"] == "ReadyToSign"


def test_a_wrong_password_leaves_it_unsigned(epcs):
    service, demo = epcs
    id, bundle = ready_oxycodone(service)
    with pytest.raises(rxflow.Unauthenticated) as e:
        service.sign(id, PRESCRIBER, bundle["sha256"], demo["password"] + "x", rxflow.totp(demo["totp_secret"]))
    assert isinstance(e.value, PermissionError) and e.value.code == "UNAUTHENTICATED"
    assert service.get(id)["status"] == "ReadyToSign"
    assert not any(e["type"] == "PrescriptionSigned" for e in service.events(id))


def test_a_bundle_that_is_not_current_is_refused(epcs):
    service, demo = epcs
    s = service.submit(fixture("fhir/schedule2_oxycodone.json"))
    bundle = service.signing_bundle(s.id, PRESCRIBER)
    with pytest.raises(rxflow.FailedPrecondition, match="not the one reviewed"):
        service.ready(s.id, PRESCRIBER, DEA, "0" * 64)
    # Not marked ready: signing is refused before any factor is looked at.
    with pytest.raises(rxflow.FailedPrecondition):
        service.sign(s.id, PRESCRIBER, bundle["sha256"], demo["password"], "000000")
    service.ready(s.id, PRESCRIBER, DEA, bundle["sha256"])
    with pytest.raises(rxflow.FailedPrecondition, match="mark it ready"):
        service.sign(s.id, PRESCRIBER, "0" * 64, demo["password"], "000000")
    assert service.get(s.id)["status"] == "ReadyToSign"


def test_who_may_not_is_permission_denied(epcs):
    service, _ = epcs
    s = service.submit(fixture("fhir/schedule2_oxycodone.json"))
    bundle = service.signing_bundle(s.id, PRESCRIBER)
    # The approver, a registrant, has no EPCS permission of their own.
    with pytest.raises(rxflow.PermissionDenied) as e:
        service.ready(s.id, "dr-patel", "AP5836727", bundle["sha256"])
    assert isinstance(e.value, PermissionError) and e.value.code == "PERMISSION_DENIED"
    with pytest.raises(rxflow.NotFound):
        service.signing_bundle("no-such-prescription", PRESCRIBER)
    # Not a controlled substance awaiting a signature.
    plain = service.submit(fixture("fhir/medication_request_lisinopril.json"))
    with pytest.raises(rxflow.FailedPrecondition):
        service.signing_bundle(plain.id, PRESCRIBER)


def test_the_example_script_signs(tmp_path):
    example = pathlib.Path(__file__).parents[3] / "examples" / "python" / "sign_controlled_substance.py"
    # Another process: it may set up its own demo directory.
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    env["RXFLOW_PATIENT_KEY"] = "0123456789abcdef0123"
    out = subprocess.run([sys.executable, str(example), str(FIXTURES / "fhir/schedule2_oxycodone.json"),
                          f"sqlite://{tmp_path / 'ex.db'}"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "Queued" in out.stdout
    assert "signature: ok" in out.stdout
