#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Submits a controlled-substance prescription, signs it as the EPCS demo prescriber, and checks
the signed NewRx as the pharmacy would.

    sign_controlled_substance.py PRESCRIPTION.json [STORE_URL]

STORE_URL defaults to sqlite:///tmp/rxflow-example/rxflow.db. The demo prescriber (dr-lindqvist,
DEA BL4721052, on a SoftHSM2 token with a development CA: not for production) is set up in the
database's directory, under epcs/. PRESCRIPTION.json must name that prescriber, as
tests/fixtures/fhir/schedule2_oxycodone.json and examples/data/medication_request_oxycodone.json do.
"""
import sys

import rxflow


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    url = sys.argv[2] if len(sys.argv) > 2 else "sqlite:///tmp/rxflow-example/rxflow.db"
    with open(sys.argv[1]) as f:
        request = f.read()
    try:
        with rxflow.PrescriptionService.open(url) as service:
            demo = service.setup_epcs_demo()
            who = demo["prescriber"]
            submission = service.submit(request)
            print(f"{submission.id} {'created' if submission.created else 'replayed'} ({submission.status})")
            if submission.status != "ReadyToSign":
                print("nothing to sign: not a controlled substance awaiting a signature")
                return 0

            # What the prescriber reviews (21 CFR 1311.140(a)): the Part 1306 fields, the attestation.
            bundle = service.signing_bundle(submission.id, who)
            for field in bundle["fields"]:
                print(f"  {field['name']}: {field['value']}")
            print(f"  {bundle['attestation']}")

            service.ready(submission.id, who, demo["dea_number"], bundle["sha256"])
            # Two factors: the password and the code the authenticator app would show.
            summary = service.sign(submission.id, who, bundle["sha256"], demo["password"],
                                   rxflow.totp(demo["totp_secret"]))
            print(f"{submission.id} signed by {who} ({summary['status']})")

            # The pharmacy's check of what was sent.
            signed = [e for e in service.events(submission.id) if e["type"] == "PrescriptionSigned"]
            xml = signed[-1]["payload"]["signed_newrx_xml"]
            check = rxflow.verify_prescription_signature(xml, demo["ca_certificate_pem"], demo["crl_pem"])
            print(f"signature: {check['check']} ({check['signer'] or check['reason']})")
            return 0 if check["ok"] else 1
    except rxflow.Error as e:
        print(f"rxflow: {type(e).__name__}: {e}", file=sys.stderr)
        for issue in e.issues:
            print(f"  {issue}", file=sys.stderr)
        return 1
    except RuntimeError as e:  # a build without PKCS#11 support
        print(f"rxflow: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
