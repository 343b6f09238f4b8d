#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""ctest load-smoke / scaled-smoke: the load benchmarks run as a user runs them, at a tiny
load, and must end with every prescription accepted in the open loop dispensed, no errors.

  benchmarks/load/smoke.py run|scaled BUILD_DIR
"""
import json
import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    which, build = sys.argv[1], sys.argv[2]
    if which == "run":  # make load's script: rxflow serve, the simulator, the load generator
        argv = [sys.executable, os.path.join(HERE, "run.py"), build, "4", "1", "40", "3"]
    else:  # PostgreSQL (RXFLOW_TEST_POSTGRES_URL) + the Kafka mock cluster, one of each role
        argv = [sys.executable, os.path.join(HERE, "scaled.py"), build, "1", "4", "1", "40", "3"]
    # Its own process group: on a timeout the script and the servers it started are stopped
    # (SIGTERM lets it stop them and drop its database), before ctest's own timeout.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        print(out[-4000:])
        raise AssertionError(f"{which}: did not finish in 420 s")
    print(out[-4000:])
    assert proc.returncode == 0, f"{which}: exit status {proc.returncode}"
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    opened = [l for l in lines if l.get("phase") == "open loop to Dispensed"]
    assert opened, f"{which}: no open-loop result"
    result = opened[0]
    assert result["accepted"] >= 100, result  # 40/s for 3 s
    assert result["dispensed"] == result["accepted"], result
    assert result["errors"] == 0, result
    cpu = result.get("service_cpu_us_per_prescription") or result.get(
        "rxflow_cpu_us_per_prescription")
    assert cpu and cpu > 0, result
    print(f"{which}: ok, {result['accepted']} dispensed")


if __name__ == "__main__":
    main()
