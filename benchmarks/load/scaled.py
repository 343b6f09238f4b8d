#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The load benchmark on PostgreSQL and the Kafka adapter (docs/performance.md), one process
per role as a deployment runs them: INSTANCES ingestion-api, INSTANCES outbox-relay and
INSTANCES routing-service processes over one PostgreSQL database (the server named by
RXFLOW_TEST_POSTGRES_URL: run inside scripts/with-postgres.sh, see scaled.sh) and
librdkafka's mock cluster (kafka-mock-cluster, its own process), with the pharmacy
simulator as its own process posting each RxFill back through the APIs.

  1. closed loop: one load generator per API (CONNECTIONS in all), SECONDS;
  2. after the backlog has drained, an open loop at RATE/s in all for RATE_SECONDS, then a
     wait until every prescription accepted in it has been dispensed.

For each phase, the CPU seconds each role used (/proc/PID/stat; PostgreSQL is the sum of
its server processes), and for the open loop the CPU microseconds per prescription carried
from POST to Dispensed, per role and in all. Prints one JSON object per result line.

  benchmarks/load/scaled.py BUILD_DIR [INSTANCES] [CONNECTIONS] [SECONDS] [RATE] [RATE_SECONDS]
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from run import all_filled, cpu_seconds, created, loadavg, wait_until  # noqa: E402  (as run.py)


def postgres_pids():
    """The PostgreSQL server's processes (postmaster, backends, background workers)."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "postgres":
                        out.append(int(pid))
            except OSError:
                pass
    return out


def role_cpu(roles):
    """CPU seconds per role: {role: {pid: seconds}} (processes that ended count as 0 more)."""
    out = {}
    for role, pids in roles.items():
        out[role] = {}
        for pid in (pids() if callable(pids) else pids):
            try:
                out[role][pid] = cpu_seconds(pid)
            except OSError:
                pass
    return out


def cpu_delta(before, after):
    used = {}
    for role, now in after.items():
        used[role] = round(sum(s - before.get(role, {}).get(pid, 0.0) for pid, s in now.items()),
                           2)
    return used


def fresh_database(base):
    name = "rxflow_load_" + uuid.uuid4().hex[:8]
    subprocess.run(["psql", base, "-q", "-c", f"CREATE DATABASE {name}"], check=True)
    return base.rsplit("/", 1)[0] + "/" + name


def sql_profile(database, reset=False):
    """With pg_stat_statements loaded (RXFLOW_PG_OPTIONS, see scripts/with-postgres.sh): reset
    it, or the ten statements that took the server's time since. [] without it."""
    def psql(sql):
        r = subprocess.run(["psql", database, "-qAt", "-F", "\t", "-c", sql],
                           capture_output=True, text=True)
        return r.stdout if r.returncode == 0 else None
    if psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements") is None:
        return []
    if reset:
        return psql("SELECT pg_stat_statements_reset()") is not None
    out = psql("SELECT round(total_exec_time)::bigint, calls, rows, "
               "regexp_replace(left(query, 160), '\\s+', ' ', 'g') FROM pg_stat_statements "
               "ORDER BY total_exec_time DESC LIMIT 10") or ""
    rows = []
    for line in out.splitlines():
        ms, calls, nrows, query = line.split("\t", 3)
        rows.append({"sql_ms": int(ms), "calls": int(calls), "rows": int(nrows), "query": query})
    return rows


def run_gens(gen, apis, key, body, connections, extra):
    """One load generator per API at once; their JSON lines, merged."""
    results = [None] * len(apis)

    def one(i):
        argv = [gen, "--url", apis[i], "--key", key, "--body", body, "--connections",
                str(max(1, connections // len(apis))), *extra]
        out = subprocess.run(argv, stdout=subprocess.PIPE, text=True).stdout.strip()
        try:
            results[i] = json.loads(out.splitlines()[-1])
        except (ValueError, IndexError):
            results[i] = {"error": out[-500:]}
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(apis))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = {"ok": sum(r.get("ok", 0) for r in results),
              "errors": sum(r.get("errors", 0) for r in results),
              "tps": sum(r.get("tps", 0) for r in results),
              "p50_ms": max(r.get("p50_ms", 0) for r in results),
              "p99_ms": max(r.get("p99_ms", 0) for r in results),
              "per_api": results}
    return merged


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    instances = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    connections = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    seconds = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    rate = int(sys.argv[5]) if len(sys.argv) > 5 else 500
    rate_seconds = int(sys.argv[6]) if len(sys.argv) > 6 else 20
    base = os.environ.get("RXFLOW_TEST_POSTGRES_URL")
    if not base:
        sys.exit("RXFLOW_TEST_POSTGRES_URL is not set: run inside scripts/with-postgres.sh")
    os.environ["RXFLOW_BIN_DIR"] = os.path.join(build, "examples")
    os.environ["RXFLOW_FIXTURES"] = os.path.join(ROOT, "tests", "fixtures")
    sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
    import harness  # the e2e harness starts the programs the same way (keys, PHI KEK)
    body = harness.LISINOPRIL
    gen = os.path.join(build, "benchmarks", "rxflow_loadgen")
    print(f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {os.cpu_count()} cores, "
          f"load average: {loadavg()}; {instances} of each role", flush=True)
    procs = {"api": [], "relay": [], "routing": [], "simulator": [], "kafka": []}
    database = None
    tmp = tempfile.mkdtemp(prefix="rxflow-scaled-")
    try:
        database = fresh_database(base)
        kafka = harness.KafkaMock()
        procs["kafka"].append(kafka.process)
        env = dict(kafka.env(), DATABASE_URL=database)
        api_ports = [harness.free_port() for _ in range(instances)]
        apis = [f"http://127.0.0.1:{p}" for p in api_ports]
        sim_port = harness.free_port()
        sim = f"http://127.0.0.1:{sim_port}"
        procs["simulator"].append(harness.Process(
            "pharmacy-simulator", ["--simulator-port", str(sim_port)],
            env={"CALLBACK_URL": f"{apis[-1]}/api/v1/pharmacy/inbound"}, cwd=tmp))
        directory = os.path.join(tmp, "pharmacies.json")
        with open(directory, "w") as f:
            json.dump({"pharmacies": [{"ncpdp_id": "*", "url": f"{sim}/ncpdp"}]}, f)
        for port in api_ports:
            procs["api"].append(harness.Process("ingestion-api", ["--port", str(port)],
                                                env=env, cwd=tmp, ready_line="Ctrl-C"))
        for _ in range(instances):
            procs["relay"].append(harness.Process("outbox-relay", env=env, cwd=tmp,
                                                  ready_line="Ctrl-C"))
            procs["routing"].append(harness.Process(
                "routing-service", ["--pharmacies", directory], env=env, cwd=tmp,
                ready_line="Ctrl-C"))
        roles = {r: [p.proc.pid for p in ps] for r, ps in procs.items()}
        roles["postgres"] = postgres_pids

        def stats():
            return json.loads(harness.request("GET", f"{sim}/admin/stats")[1])

        def drained():
            backlog = harness.metric(apis[0], "rxflow_outbox_backlog")
            return backlog == 0

        def created_so_far():
            return sum(created(harness.request("GET", f"{a}/metrics",
                                               key=harness.METRICS_KEY)[1]) for a in apis)

        print(f"# closed loop, {connections} connections over {instances} API(s), "
              f"{seconds}s", flush=True)
        before = role_cpu(roles)
        closed = run_gens(gen, apis, harness.API_KEY, body, connections,
                          ["--duration", str(seconds)])
        closed["cpu_seconds"] = cpu_delta(before, role_cpu(roles))
        closed["phase"] = "closed loop"
        print(json.dumps(closed), flush=True)
        wait_until(lambda: drained() and (time.sleep(1) or drained()), 600, 1)
        # Every prescription created so far (warm-up included) sent and filled: what the
        # open loop counts below is its own.
        so_far = created_so_far()
        wait_until(lambda: all_filled(stats(), so_far), 600, 0.5)
        fills_before = stats()["fills_posted"]
        profiling = sql_profile(database, reset=True)
        print(f"# open loop at {rate}/s for {rate_seconds}s", flush=True)
        before = role_cpu(roles)
        started = time.monotonic()
        opened = run_gens(gen, apis, harness.API_KEY, body, connections,
                          ["--duration", str(rate_seconds), "--rate",
                           str(max(1, rate // instances)), "--warmup", "0"])
        accepted = opened["ok"]
        done = wait_until(lambda: stats()["fills_posted"] >= fills_before + accepted,
                          600, 0.5)
        took = time.monotonic() - started
        cpu = cpu_delta(before, role_cpu(roles))
        dispensed = stats()["fills_posted"] - fills_before
        rxflow_cpu = sum(cpu[r] for r in ("api", "relay", "routing"))
        print(json.dumps({
            "phase": "open loop to Dispensed", "rate": rate, "accepted": accepted,
            "errors": opened["errors"], "api_p50_ms": opened["p50_ms"],
            "api_p99_ms": opened["p99_ms"], "dispensed": dispensed, "all_dispensed": done,
            "seconds_until_all_dispensed": round(took, 1), "cpu_seconds": cpu,
            "cpu_us_per_prescription": {
                r: round(c * 1e6 / dispensed) for r, c in cpu.items()} if dispensed else None,
            "rxflow_cpu_us_per_prescription":
                round(rxflow_cpu * 1e6 / dispensed) if dispensed else None}), flush=True)
        if profiling:
            for row in sql_profile(database):
                print(json.dumps(row), flush=True)
        print(f"# load average after: {loadavg()}", flush=True)
    finally:
        for ps in procs.values():
            for p in reversed(ps):
                p.stop()
        if database:
            subprocess.run(["psql", base, "-q", "-c",
                            f"DROP DATABASE IF EXISTS {database.rsplit('/', 1)[1]}"])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
