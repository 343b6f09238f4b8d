# SPDX-License-Identifier: Apache-2.0
"""Type-checked, never run: each line marked `# error:` must be refused by mypy --strict (the
results are typed, not Any; tests/typing_check.sh counts the errors)."""
import rxflow


def misuses(service: rxflow.PrescriptionService) -> None:
    status: int = service.get("id")["status"]  # error: a str
    service.get("id")["no_such_key"]  # error: not a key of PrescriptionSummary
    position: str = service.events("id")[0]["global_position"]  # error: an int
    service.submit(b"{}").replayed  # error: removed in 0.3.0
    rxflow.to_script("{}", issues=())  # error: a list, which the call appends to
    print(status, position)
