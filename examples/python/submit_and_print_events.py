#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Submits a FHIR prescription to an RxFlow store and prints its events.

    submit_and_print_events.py PRESCRIPTION.json [STORE_URL]

STORE_URL defaults to sqlite:///tmp/rxflow-example/rxflow.db. The patient key comes from
RXFLOW_PATIENT_KEY (or, for SQLite, a key file beside the database). What the NewRx does not
carry is printed to stderr, one line per issue, as the rxflow tool prints it.
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
            issues: list[rxflow.Issue] = []  # given a list, submit reports into it
            submission = service.submit(request, issues=issues)
            for issue in issues:
                print(issue, file=sys.stderr)
            print(f"{submission.id} {'created' if submission.created else 'replayed'} ({submission.status})")
            for event in service.events(submission.id):
                print(f"  v{event['version']} {event['type']} at {event['occurred_at']}")
    except rxflow.Error as e:
        print(f"rxflow: {e}", file=sys.stderr)
        for issue in e.issues:
            print(f"  {issue}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
