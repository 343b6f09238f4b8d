#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The load benchmark (docs/performance.md), as a user would run RxFlow.

Three processes on this machine's cores: `rxflow serve --no-simulator` (API, relay, routing on
embedded defaults: SQLite, in-process broker), `pharmacy-simulator` (a separate process that
answers each NewRx and posts the RxFill back to the API), and the load generator.

  1. closed loop: the empty-handler ceiling of the same HTTP stack, then POST
     /api/v1/prescriptions (CONNECTIONS connections, SECONDS each), side by side;
  2. after routing has drained that, an open loop at RATE/s for RATE_SECONDS, then a wait
     until every prescription accepted in it has been dispensed (the simulator's RxFill
     accepted by the API).

For each phase: CPU seconds used by each process (from /proc and the load generator's
rusage), and for the open loop the service's CPU microseconds per prescription carried from
POST to Dispensed and the bytes it wrote to storage per prescription (/proc/PID/io
write_bytes: the WAL, checkpoints into the database file). Prints one JSON object per result
line.

  benchmarks/load/run.py BUILD_DIR [CONNECTIONS] [SECONDS] [RATE] [RATE_SECONDS]
"""
import json
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime of a running process (and its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def write_bytes(pid):
    """Bytes the process caused to be written to storage (/proc/PID/io)."""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def get(url, key=None):
    req = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def metric(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def created(text):
    """Prescriptions the API created (POST /api/v1/prescriptions answered 201), from /metrics."""
    total = 0.0
    for line in text.splitlines():
        if (line.startswith("rxflow_http_requests_total{") and 'method="POST"' in line
                and 'route="/api/v1/prescriptions"' in line and 'code="201"' in line):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def all_filled(stats, prescriptions):
    """The simulator has received every prescription and answered each with an RxFill (or
    given up posting it): nothing of an earlier phase is still on its way."""
    return (stats["unique"] >= prescriptions
            and stats["fills_posted"] + stats["fill_errors"] >= stats["unique"])


def wait_until(cond, seconds, step=0.2):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    rate = int(sys.argv[4]) if len(sys.argv) > 4 else 5000
    rate_seconds = int(sys.argv[5]) if len(sys.argv) > 5 else 60
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    body = os.path.join(root, "tests/fixtures/fhir/medication_request_lisinopril.json")
    key = "load-" + secrets.token_hex(20)
    network_key = "load-net-" + secrets.token_hex(20)  # the simulator's pharmacy client
    metrics_key = "load-met-" + secrets.token_hex(20)  # GET /metrics needs a key (METRICS_KEYS)
    api_port, sim_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    sim = f"http://127.0.0.1:{sim_port}"
    tmp = tempfile.mkdtemp(prefix="rxflow-load-")
    with open(os.path.join(tmp, "pharmacies.json"), "w") as f:
        json.dump({"pharmacies": [{"ncpdp_id": "*", "url": f"{sim}/ncpdp"}]}, f)
    env = dict(os.environ, API_KEYS=key, PHARMACY_KEYS=f"*:{network_key}", METRICS_KEYS=metrics_key,
               CALLBACK_API_KEY=network_key, LOG_LEVEL="warn",
               RXFLOW_PATIENT_KEY="load-patient-key-0123456789")
    print(f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {os.cpu_count()} cores, "
          f"load average: {loadavg()}", flush=True)
    simulator = subprocess.Popen(
        [f"{build}/examples/pharmacy-simulator", "--simulator-port", str(sim_port),
         "--callback-url", f"{api}/api/v1/pharmacy/inbound"],
        cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/sim.err", "w"))
    # RXFLOW_SERVICE_BIN: another `rxflow` binary (an earlier release, side by side).
    service = subprocess.Popen(
        [os.environ.get("RXFLOW_SERVICE_BIN", f"{build}/examples/rxflow"), "serve", "--port", str(api_port), "--no-simulator",
         "--pharmacies", f"{tmp}/pharmacies.json"],
        cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/serve.err", "w"))
    try:
        if not wait_until(lambda: _healthy(api) and _healthy(sim, "/admin/stats"), 30):
            sys.exit("service or simulator did not start (see " + tmp + ")")
        gen = f"{build}/benchmarks/rxflow_loadgen"
        common = ["--body", body, "--connections", str(connections)]
        print(f"# closed loop, {connections} connections, {seconds}s each, side by side",
              flush=True)
        run_gen([gen, "--ceiling", *common, "--duration", str(seconds)], {})
        procs = {"service": service.pid, "simulator": simulator.pid}
        run_gen([gen, "--url", api, "--key", key, *common, "--duration", str(seconds)], procs)

        def drained():
            m = get(f"{api}/metrics", metrics_key)
            return (metric(m, "rxflow_outbox_backlog") + metric(m, "rxflow_routing_queue_depth")
                    == 0)
        wait_until(lambda: drained() and (time.sleep(1) or drained()), 600, 1)
        # Every prescription created so far (warm-up included) sent and filled: what the open
        # loop counts below is its own.
        so_far = created(get(f"{api}/metrics", metrics_key))
        wait_until(lambda: all_filled(json.loads(get(f"{sim}/admin/stats")), so_far), 600, 0.5)
        stats = json.loads(get(f"{sim}/admin/stats"))
        fills_before = stats["fills_posted"]
        unique_before = stats["unique"]
        print(f"# open loop at {rate}/s for {rate_seconds}s", flush=True)
        cpu_before = {n: cpu_seconds(p) for n, p in procs.items()}
        written_before = write_bytes(service.pid)
        before = get(f"{api}/metrics", metrics_key)
        started = time.monotonic()
        result = run_gen([gen, "--url", api, "--key", key, *common, "--duration",
                          str(rate_seconds), "--rate", str(rate), "--warmup", "0"], {})
        accepted = result.get("ok", 0)
        # Until every prescription accepted in this phase is dispensed (or 10 minutes).
        wait_until(lambda: json.loads(get(f"{sim}/admin/stats"))["fills_posted"]
                   >= fills_before + accepted, 600, 0.5)
        took = time.monotonic() - started
        cpu_after = {n: cpu_seconds(p) for n, p in procs.items()}
        written = write_bytes(service.pid) - written_before
        after = get(f"{api}/metrics", metrics_key)
        stats = json.loads(get(f"{sim}/admin/stats"))
        dispensed = stats["fills_posted"] - fills_before
        cpu = {n: round(cpu_after[n] - cpu_before[n], 2) for n in procs}
        cpu["loadgen"] = result.get("cpu_seconds")
        print(json.dumps({
            "phase": "open loop to Dispensed", "accepted": accepted,
            "errors": result.get("errors"),
            "sent_to_pharmacy": stats["unique"] - unique_before, "dispensed": dispensed,
            "seconds_until_all_dispensed": round(took, 1), "cpu_seconds": cpu,
            "service_cpu_us_per_prescription":
                round(cpu["service"] * 1e6 / dispensed) if dispensed else None,
            "service_bytes_written_per_prescription":
                round(written / dispensed) if dispensed else None,
            "accept_to_ack": accept_to_ack(before, after)}), flush=True)
        print(f"# load average after: {loadavg()}", flush=True)
    finally:
        for p in (service, simulator):
            p.terminate()
        for p in (service, simulator):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def _healthy(base, path="/healthz"):
    try:
        get(base + path)
        return True
    except OSError:
        return False


def run_gen(argv, procs):
    """Runs the load generator; prints its JSON line with the CPU seconds each process used."""
    before = {n: cpu_seconds(p) for n, p in procs.items()}
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(argv, stdout=subprocess.PIPE, text=True).stdout.strip()
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        result = json.loads(out.splitlines()[-1])
    except (ValueError, IndexError):
        print(out, flush=True)
        return {}
    result["cpu_seconds"] = round(used.ru_utime + used.ru_stime - usage.ru_utime
                                  - usage.ru_stime, 2)
    if procs:
        result["cpu_seconds"] = {"loadgen": result["cpu_seconds"],
                                 **{n: round(cpu_seconds(p) - before[n], 2)
                                    for n, p in procs.items()}}
    print(json.dumps(result), flush=True)
    return result if not procs else {**result, "cpu_seconds": result["cpu_seconds"]["loadgen"]}


def accept_to_ack(before, after):
    def buckets(text):
        out = {}
        for line in text.splitlines():
            if line.startswith("rxflow_accept_to_ack_seconds_bucket"):
                le = line.split('le="')[1].split('"')[0]
                out[le] = float(line.rsplit(" ", 1)[1])
        return out
    b, a = buckets(before), buckets(after)
    if "+Inf" not in a:
        return None
    les = sorted(a, key=lambda x: float("inf") if x == "+Inf" else float(x))
    total = a["+Inf"] - b.get("+Inf", 0)

    def q(p):
        for le in les:
            if a[le] - b.get(le, 0) >= p * total:
                return le
    return {"count": int(total), "p50_le_s": q(0.5), "p99_le_s": q(0.99)}


if __name__ == "__main__":
    main()
