# SPDX-License-Identifier: Apache-2.0
"""Type-checked, never run: what a user's code may write against rxflow's types (mypy --strict
must accept it; tests/typing_check.sh)."""
import rxflow
from rxflow.types import Event, PrescriptionSummary


def summary_line(service: rxflow.PrescriptionService, prescription_id: str) -> str:
    summary: PrescriptionSummary = service.get(prescription_id)
    events: list[Event] = service.events(prescription_id)
    version: int = summary["version"]
    controlled: bool = summary["is_controlled"]
    last_type: str = events[-1]["type"] if events else ""
    payload_keys = sorted(events[0]["payload"]) if events else []
    return f"{summary['status']} v{version} {controlled} {last_type} {payload_keys}"


def first_product_name(text: str) -> str:
    matches = rxflow.find_drugs(text, limit=1)
    return matches[0]["product"]["name"] if matches else ""


def dropped_paths(request: str) -> list[str]:
    issues: list[rxflow.Issue] = []
    rxflow.to_script(request, issues=issues)
    rxflow.to_fhir("<Message/>", lenient=True, issues=issues)
    return [issue.path for issue in issues if issue.severity == "warning"]


def warned_issue(w: rxflow.DataWarning) -> str:
    return w.issue.path
