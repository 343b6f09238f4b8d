# SPDX-License-Identifier: Apache-2.0
"""End to end, EPCS: `rxflow serve` on embedded defaults sets up its demo prescriber (a
SoftHSM2 token, a development CA); a Schedule II prescription goes over HTTP from FHIR through
the signing bundle, ready and a two-factor signature to a signed NewRx that the simulator
verifies, and is dispensed. The TOTP codes are computed here with Python's hmac (RFC 6238),
not by RxFlow."""
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import struct
import subprocess
import tempfile
import time

from harness import BIN, FIXTURES, Process, get_json, request, wait_for

OXYCODONE = os.path.join(FIXTURES, "fhir", "schedule2_oxycodone.json")



def next_of_series(order: str) -> str:
    """The order as the next of a Schedule II series: with its earliest fill date."""
    return order.replace('"dispenseRequest": {',
                         '"dispenseRequest": {"validityPeriod": {"start": "2026-11-26"},', 1)

def totp(secret_base32, at=None, step=30, digits=6):
    """RFC 6238 with SHA-1, from the standard library."""
    key = base64.b32decode(secret_base32 + "=" * (-len(secret_base32) % 8))
    counter = int((time.time() if at is None else at) // step)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** digits).zfill(digits)


def demo_credentials(lines):
    password = secret = None
    for line in lines:
        words = line.split()
        if line.startswith("  password"):
            password = words[1]
        if line.startswith("  TOTP") and "secret=" in line:
            secret = line.split("secret=")[1].split("&")[0]
    assert password and secret, lines
    return password, secret


def post_json(url, body):
    return request("POST", url, json.dumps(body), content_type="application/json")


def test_rfc6238_vector_of_this_file_s_totp():
    # The reference this test checks RxFlow against is itself checked (RFC 6238, App. B).
    assert totp(base64.b32encode(b"12345678901234567890").decode(), at=59, digits=8) == "94287082"


def test_a_schedule_ii_prescription_is_signed_verified_and_dispensed_over_http():
    with tempfile.TemporaryDirectory() as tmp:
        s = Process("rxflow", ["--port", "0"], cwd=tmp, ready_line="Ctrl-C",
                    env={"SOFTHSM2_CONF": ""})
        try:
            assert any("EPCS demo prescriber dr-lindqvist" in l for l in s.lines), s.lines
            password, secret = demo_credentials(s.lines)
            api = s.url_after("API").rsplit("/api/", 1)[0]
            pharmacy = s.url_after("pharmacy").rsplit("/ncpdp", 1)[0]
            base = f"{api}/api/v1/prescriptions"

            status, body = request("POST", base, open(OXYCODONE).read())
            assert status == 201, body
            rx = json.loads(body)
            assert rx["status"] == "ReadyToSign" and rx["is_controlled"]
            pid = rx["id"]
            # Not routable before it is signed (21 CFR 1311.140(c)).
            status, _ = request("POST", f"{base}/{pid}/route", "", content_type="application/json")
            assert status == 409

            bundle = get_json(f"{base}/{pid}/signing-bundle?practitioner=dr-lindqvist")
            names = [f["name"] for f in bundle["fields"]]
            assert names[:3] == ["IssueDate", "PatientName", "PatientAddress"]
            assert "legally signing" in bundle["attestation"]
            sha = bundle["sha256"]
            status, body = post_json(f"{base}/{pid}/ready", {
                "practitioner": "dr-lindqvist", "dea_number": "BL4721052",
                "bundle_sha256": sha})
            assert status == 200, body

            wrong = {"practitioner": "dr-lindqvist", "bundle_sha256": sha,
                     "password": password + "x", "otp": totp(secret)}
            status, body = post_json(f"{base}/{pid}/sign", wrong)
            assert status == 401, body
            assert password not in body

            # The wrong password above used this step's code only as far as the password: the
            # code is checked after it, so it is still unused.
            sign = dict(wrong, password=password)
            status, body = post_json(f"{base}/{pid}/sign", sign)
            assert status == 200, body
            assert wait_for(lambda: get_json(f"{base}/{pid}")["status"] == "Dispensed", 30)
            stats = get_json(f"{pharmacy}/admin/stats", key=None)
            assert stats["signatures_verified"] == 1
            assert stats["signatures_refused"] == 0

            events = get_json(f"{base}/{pid}/events")["events"]
            types = [e["type"] for e in events]
            assert types[:6] == ["PrescriptionReceived", "PrescriptionTransformed",
                                 "PrescriptionReadyToSign", "PrescriptionMarkedReady",
                                 "PrescriptionSigned", "PrescriptionQueued"]
            signed = events[4]["payload"]
            assert signed["two_factor_event_id"]
            assert "<DigitalSignature Version=\"1.1\">" in signed["signed_newrx_xml"]
            # The stored record is co-signed by RxFlow's ML-DSA-65 key (a 3309-byte signature).
            pub = open(os.path.join(tmp, "rxflow-data", "epcs", "mldsa65.pub"), "rb").read()
            assert len(pub) == 1952
            assert signed["record_cosigner_key_sha256"] == hashlib.sha256(pub).hexdigest()
            assert len(base64.b64decode(signed["record_cosignature"])) == 3309
            # The same order again, written the same day, to be filled at once too: refused,
            # a Schedule II series states the earliest fill date of each but the first
            # (21 CFR 1306.12(b)).
            status, body = request("POST", base, open(OXYCODONE).read(),
                                   headers={"Idempotency-Key": "second-oxycodone"})
            assert status == 422, body
            issue = json.loads(body)["issue"][-1]
            assert issue["code"] == "business-rule" and "1306.12(b)" in issue["diagnostics"]
            assert issue["expression"] == ["medication_request.dispenseRequest.validityPeriod.start"]
            # The same code a second time is refused (RFC 6238 §5.2): a second prescription,
            # the next of the series.
            status, body = request("POST", base, next_of_series(open(OXYCODONE).read()),
                                   headers={"Idempotency-Key": "second-oxycodone-dated"})
            assert status == 201, body
            second = json.loads(body)["id"]
            sha2 = get_json(f"{base}/{second}/signing-bundle?practitioner=dr-lindqvist")["sha256"]
            assert post_json(f"{base}/{second}/ready", {
                "practitioner": "dr-lindqvist", "dea_number": "BL4721052",
                "bundle_sha256": sha2})[0] == 200
            status, body = post_json(f"{base}/{second}/sign", dict(sign, bundle_sha256=sha2))
            # (Also in the next step: a code of a step not after the last accepted one is a
            # replay.)
            assert status == 401, body
            # The answer does not say which factor failed; the audit chain does (below).
            assert "two-factor authentication failed" in body
        finally:
            assert s.stop() == 0

        # The audit chain of all that verifies; a record changed in the database is named.
        db = os.path.join(tmp, "rxflow-data", "rxflow.db")
        verify = [os.path.join(BIN, "rxflow"), "audit", "verify", "--store", f"sqlite://{db}"]
        out = subprocess.run(verify, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("audit chain OK: ")
        epcs_dir = os.path.join(tmp, "rxflow-data", "epcs")
        both = verify + ["--checkpoint-key", os.path.join(epcs_dir, "audit-checkpoint.pub.der"),
                         "--cosign-key", os.path.join(epcs_dir, "mldsa65.pub")]
        out = subprocess.run(both, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "(co-signatures checked)" in out.stdout
        with sqlite3.connect(db) as c:
            records = [json.loads(p) for (p,) in c.execute(
                "SELECT payload FROM events WHERE stream_id = 'epcs-audit'")]
            actions = {r["action"] for r in records}
            assert any(r["detail"] == "for sign: replayed" for r in records)
            assert any(r["detail"] == "for sign: wrong password" for r in records)
            for a in ("epcs.permission.granted", "epcs.ready", "epcs.sign",
                      "epcs.two_factor.failed", "epcs.transmit.sent",
                      "epcs.transmit.acknowledged"):
                assert a in actions, (a, actions)
            version, payload = c.execute(
                "SELECT version, payload FROM events WHERE stream_id = 'epcs-audit' "
                "AND payload LIKE '%\"action\":\"epcs.sign\"%' ORDER BY version").fetchone()
            c.execute("UPDATE events SET payload = ? WHERE stream_id = 'epcs-audit' AND version = ?",
                      (payload.replace('"epcs.sign"', '"epcs.sigN"'), version))
        out = subprocess.run(verify, capture_output=True, text=True)
        assert out.returncode == 3, (out.stdout, out.stderr)
        assert f"record {version} was changed" in out.stdout + out.stderr
