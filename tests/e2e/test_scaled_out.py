# SPDX-License-Identifier: Apache-2.0
"""(e) Scaled out: two ingestion-api and two routing-service processes, two outbox relays,
one PostgreSQL (RXFLOW_TEST_POSTGRES_URL, from scripts/with-postgres.sh) and the Kafka
adapter on librdkafka's mock cluster, with the pharmacy simulator as its own process."""
import json
import os
import subprocess
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor

from harness import (DONE, LISINOPRIL, KafkaMock, Process, check_events_in_order, free_port,
                     get_json, request, statuses, wait_for)


def fresh_database():
    """A database of its own on the test server (other tests use rxflow_test at once)."""
    base = os.environ.get("RXFLOW_TEST_POSTGRES_URL")
    assert base, "RXFLOW_TEST_POSTGRES_URL is not set: run inside scripts/with-postgres.sh"
    name = "rxflow_e2e_" + uuid.uuid4().hex[:8]
    subprocess.run(["psql", base, "-q", "-c", f"CREATE DATABASE {name}"], check=True)
    return base.rsplit("/", 1)[0] + "/" + name


def test_e_two_apis_two_routers_two_relays_over_postgresql_and_kafka():
    database = fresh_database()
    kafka = KafkaMock()
    procs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(kafka.env(), DATABASE_URL=database)
            api_ports = [free_port(), free_port()]
            sim_port = free_port()
            procs.append(Process("pharmacy-simulator", ["--simulator-port", str(sim_port)],
                                 env={"CALLBACK_URL": f"http://127.0.0.1:{api_ports[1]}"
                                                      "/api/v1/pharmacy/inbound"}, cwd=tmp))
            directory = os.path.join(tmp, "pharmacies.json")
            with open(directory, "w") as f:
                json.dump({"pharmacies": [{"ncpdp_id": "4712345",
                                           "url": f"http://127.0.0.1:{sim_port}/ncpdp"}]}, f)
            for port in api_ports:
                procs.append(Process("ingestion-api", ["--port", str(port)], env=env, cwd=tmp,
                                     ready_line="Ctrl-C"))
            for _ in range(2):
                procs.append(Process("outbox-relay", env=env, cwd=tmp, ready_line="Ctrl-C"))
                procs.append(Process("routing-service", ["--pharmacies", directory], env=env,
                                     cwd=tmp, ready_line="Ctrl-C"))
            apis = [f"http://127.0.0.1:{p}" for p in api_ports]
            body = open(LISINOPRIL).read()

            def submit(i):
                status, text = request("POST", f"{apis[i % 2]}/api/v1/prescriptions", body,
                                       headers={"Idempotency-Key": f"e-{i}"})
                assert status == 201, text
                return json.loads(text)["id"]

            with ThreadPoolExecutor(16) as pool:
                ids = list(pool.map(submit, range(300)))
            # The same request at the other instance is an idempotent replay.
            status, text = request("POST", f"{apis[1]}/api/v1/prescriptions", body,
                                   headers={"Idempotency-Key": "e-0"})
            assert status == 200 and json.loads(text)["id"] == ids[0]

            assert wait_for(lambda: all(v in DONE for v in statuses(apis[0], ids).values()),
                            120), {v for v in statuses(apis[0], ids).values()}
            for pid in ids[::10]:
                check_events_in_order(apis[1], pid)
            stats = get_json(f"http://127.0.0.1:{sim_port}/admin/stats", key=None)
            assert stats["unique"] == 300
            assert stats["duplicates"] == 0
            # RxFill comes back through the second API instance to the shared store.
            assert wait_for(lambda: set(statuses(apis[0], ids[:30]).values()) == {"Dispensed"},
                            60)
            # PHI at rest (issue 10 §5): the patient's name is in the request and in every
            # NewRx sent, yet neither the database (pg_dump: tables, functions, everything)
            # nor RxFlow's programs' output holds it; the NewRx is there, sealed.
            dump = subprocess.run(["pg_dump", database], capture_output=True, text=True,
                                  check=True).stdout
            assert "Delacroix" in body
            assert "Delacroix" not in dump
            assert dump.count("rxenc1.") >= 300
            for p in procs[1:]:  # (procs[0] is the pharmacy: the NewRx is its to read)
                assert "Delacroix" not in p.output(), p
    finally:
        for p in reversed(procs):
            p.stop()
        kafka.stop()
