#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The documentation's state diagram, generated from the domain's Decide and Apply
# (tools/state_diagram.cc), shows what the domain enforces: the edges a reader relies on are
# there, the forbidden ones are not, and nothing leaves a terminal state.
# Usage: tests/state_diagram_test.sh RXFLOW_STATE_DIAGRAM
set -euo pipefail
dot_text=$("$1")
fail=0
edge() { grep -qF "  \"$1\" -> \"$2\" [label=\"" <<<"$dot_text"; }
labelled() { grep -F "  \"$1\" -> \"$2\" [label=\"" <<<"$dot_text" | grep -qF "$3"; }
expect() { if ! labelled "$@"; then echo "FAIL: no edge $1 -> $2 labelled $3"; fail=1; fi; }
forbid() { if edge "$1" "$2"; then echo "FAIL: edge $1 -> $2 ($3)"; fail=1; fi; }
expect None Transformed "Submit"
expect None ReadyToSign "Submit (controlled)"
expect None Rejected "Submit (transform failed)"
expect Transformed Queued "Route"
expect Transformed Cancelled "RequestCancel"
expect ReadyToSign ReadyToSign "MarkReady"
expect ReadyToSign Signed "Sign"
expect Signed Queued "Route"
expect Queued Sent "MarkSent"
expect Queued Queued "Error (retryable)"
expect Sent Queued "Error (retryable)"
expect Sent Failed "Error (permanent or retries spent)"
expect Sent Dispensed "RxFill (partial)"
expect Dispensed Dispensed "RxFill (partial)"
expect Dispensed "Dispensed (complete)" "RxFill (complete)"
expect Dispensed CancelRequested "RequestCancel"
expect CancelRequested Cancelled "CancelRxResponse (approved)"
expect CancelRequested Sent "CancelRxResponse (denied)"
forbid ReadyToSign Queued "a controlled substance never routes unsigned (21 CFR 1311)"
forbid Transformed Signed "only ReadyToSign is signed"
forbid Signed Transformed "nothing goes back before the signature"
forbid None Queued "nothing is routed in the decision that submits it"
for terminal in Rejected Failed Cancelled Expired "Dispensed (complete)"; do
  if grep -qF "  \"$terminal\" ->" <<<"$dot_text"; then
    echo "FAIL: an edge leaves the terminal state $terminal"; fail=1
  fi
  if ! grep -qF "  \"$terminal\" [peripheries=2" <<<"$dot_text"; then
    echo "FAIL: $terminal is not drawn as terminal"; fail=1
  fi
done
# A partly filled prescription is not terminal: more fills, a cancel or expiry follow.
if grep -qF '  "Dispensed" [peripheries=2' <<<"$dot_text"; then
  echo "FAIL: a partly filled prescription is drawn as terminal"; fail=1
fi
# Graphviz reads it without a warning.
if command -v dot >/dev/null; then
  if ! dot -Tsvg -o /dev/null 2>&1 <<<"$dot_text" | { ! grep .; }; then
    echo "FAIL: dot warned"; fail=1
  fi
fi
[ "$fail" = 0 ] && echo "state diagram: ok"
exit "$fail"
