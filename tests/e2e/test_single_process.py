# SPDX-License-Identifier: Apache-2.0
"""End to end: `rxflow serve` (SQLite, simulator) with the in-process broker and, for (a)-(c),
again with the Kafka adapter on librdkafka's mock cluster (in its own process)."""
import http.client
import json
import os
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import (API_KEY, METRICS_KEY, DONE, LISINOPRIL, PHI_KEK, KafkaMock, Process, all_done,
                     check_events_in_order, free_port, get_json, metric, request, statuses,
                     submit_many, wait_for)


@pytest.fixture(params=["in-process", "kafka"])
def broker_env(request):
    """The environment selecting the broker: none (in-process) or a fresh mock cluster."""
    if request.param == "in-process":
        yield {}
        return
    kafka = KafkaMock()
    try:
        yield kafka.env()
    finally:
        kafka.stop()


def serve(tmp, *args, env=None):
    return Process("rxflow", ["--port", "0", *args], env=env, cwd=tmp, ready_line="Ctrl-C")


def test_a_thousand_prescriptions_reach_the_pharmacy_exactly_once(broker_env):
    with tempfile.TemporaryDirectory() as tmp:
        s = serve(tmp, env=broker_env)
        try:
            api = s.url_after("API").rsplit("/api/", 1)[0]
            pharmacy = s.url_after("pharmacy").rsplit("/ncpdp", 1)[0]
            ids = submit_many(api, 1000, "a")
            assert len(set(ids)) == 1000
            assert wait_for(lambda: metric(api, "rxflow_pharmacy_responses_total") >= 1000, 120)
            st = statuses(api, ids)
            assert all(v in DONE for v in st.values()), {v for v in st.values()}
            for pid in ids[::50]:
                check_events_in_order(api, pid)
            stats = get_json(f"{pharmacy}/admin/stats", key=None)
            assert stats["unique"] == 1000
            assert stats["duplicates"] == 0
            assert stats["invalid"] == 0
            status, text = request("GET", f"{api}/metrics", key=METRICS_KEY)
            assert 'rxflow_pharmacy_responses_total{code="000",outcome="Status"' in text
            # The simulator posts RxFill back through the API's pharmacy inbound route.
            assert wait_for(lambda: get_json(f"{pharmacy}/admin/stats", key=None)
                            ["fills_posted"] == 1000, 120)
            assert wait_for(lambda: set(statuses(api, ids[:50]).values()) == {"Dispensed"}, 30)
        finally:
            assert s.stop() == 0
        # PHI at rest (issue 10 §5): the patient of those thousand NewRx is in neither the
        # SQLite database nor its WAL nor the server's output; the NewRx are there, sealed.
        data = os.path.join(tmp, "rxflow-data")
        stored = b"".join(open(os.path.join(data, f), "rb").read()
                          for f in ("rxflow.db", "rxflow.db-wal") if os.path.exists(os.path.join(data, f)))
        assert b"Delacroix" not in stored
        assert stored.count(b"rxenc1.") >= 1000
        assert "Delacroix" not in s.output()


def test_b_pharmacy_outage_opens_the_breaker_and_everything_is_delivered_after(broker_env):
    with tempfile.TemporaryDirectory() as tmp:
        s = serve(tmp, env=broker_env)
        try:
            api = s.url_after("API").rsplit("/api/", 1)[0]
            pharmacy = s.url_after("pharmacy").rsplit("/ncpdp", 1)[0]
            # Routing is flowing (a Kafka consumer group has joined) before the outage.
            first = submit_many(api, 1, "b-first")
            assert wait_for(lambda: all_done(api, first), 30)
            status, _ = request("POST", f"{pharmacy}/admin/outage?ms=3000", "", key=None,
                                content_type="text/plain")
            assert status == 200
            ids = submit_many(api, 200, "b")
            # A counter, not the state gauge: the breaker may already have closed again
            # when the 200 submissions return on a slow (sanitizer) build.
            opened = wait_for(lambda: metric(api, "rxflow_breaker_openings") >= 1, 10, 0.05)
            assert opened, "the breaker never opened during the outage"
            assert wait_for(lambda: all_done(api, ids), 60)
            stats = get_json(f"{pharmacy}/admin/stats", key=None)
            assert stats["refused"] > 0
            assert stats["unique"] == 201
            assert stats["duplicates"] == 0
            assert metric(api, "rxflow_routing_dead_lettered") == 0
            for pid in ids[::20]:
                check_events_in_order(api, pid)
        finally:
            assert s.stop() == 0


def test_c_sigkill_mid_run_then_restart_loses_nothing_and_duplicates_no_effect(broker_env):
    """Four concurrent clients; SIGKILL three times at different moments (mid-burst, during the
    redelivery right after a restart, later in steady flow), restarting on the same data each
    time. Work is pending at every kill. After the last restart every accepted prescription
    reaches its end state with one PrescriptionSent, and the pharmacy (its own process, it
    outlives the kills) took each prescription's MessageID once."""
    with tempfile.TemporaryDirectory() as tmp:
        sim_port, api_port = free_port(), free_port()
        # Delivery is slower than four clients, so a backlog builds up for the kills to
        # interrupt: in-process thanks to a 50 ms pharmacy and four routing workers (at most
        # 80/s, also when a sanitizer slows the clients' side); on Kafka a restarted consumer
        # waits seconds for its group to rebalance anyway.
        slow = [] if broker_env else ["--simulator-latency-ms", "50"]
        sim = Process("pharmacy-simulator", ["--simulator-port", str(sim_port), *slow],
                      env={"CALLBACK_URL": f"http://127.0.0.1:{api_port}/api/v1/pharmacy/inbound"},
                      cwd=tmp)
        directory = os.path.join(tmp, "pharmacies.json")
        with open(directory, "w") as f:
            json.dump({"pharmacies": [{"ncpdp_id": "*",
                                       "url": f"http://127.0.0.1:{sim_port}/ncpdp"}]}, f)
        args = ["--no-simulator", "--pharmacies", directory]
        if not broker_env:
            args += ["--routing-workers", "4"]
        env = dict(broker_env)
        api = f"http://127.0.0.1:{api_port}"
        body = open(LISINOPRIL).read()
        lock = threading.Lock()
        ids = {}  # Idempotency-Key -> prescription id, for every POST answered 200/201
        unanswered = []  # keys whose POST got no answer: the process died under it
        errors = []  # any other answer

        def start():
            return Process("rxflow", ["--port", str(api_port), *args], env=env, cwd=tmp,
                           ready_line="Ctrl-C")

        def pharmacy():
            return get_json(f"http://127.0.0.1:{sim_port}/admin/stats", key=None)

        def accepted():
            with lock:
                return set(ids.values())

        def pending():
            """Accepted prescriptions whose NewRx the pharmacy has not taken (yet)."""
            return len(accepted()) - pharmacy()["unique"]

        def clients(retries, fresh):
            """Four threads POST the keys (retries first, answered 200 or 201; fresh keys 201)
            until all are answered or the process dies."""
            todo = [(k, (200, 201)) for k in retries] + [(k, (201,)) for k in fresh]
            todo.reverse()

            def client():
                while True:
                    with lock:
                        if not todo:
                            return
                        key, allowed = todo.pop()
                    try:
                        status, text = request("POST", f"{api}/api/v1/prescriptions", body,
                                               headers={"Idempotency-Key": key})
                    except (OSError, http.client.HTTPException):
                        with lock:
                            unanswered.append(key)
                        return
                    with lock:
                        if status in allowed:
                            ids[key] = json.loads(text)["id"]
                        else:
                            errors.append((key, status, text[:300]))

            threads = [threading.Thread(target=client) for _ in range(4)]
            for t in threads:
                t.start()
            return threads

        def pharmacy_settled():
            """The pharmacy's NewRx counts once unchanged for 0.3 s (requests the killed
            process left behind are answered by then)."""
            last = {"counts": None, "since": 0.0}

            def steady():
                s = pharmacy()
                counts = (s["received"], s["unique"], s["duplicates"])
                if counts != last["counts"]:
                    last.update(counts=counts, since=time.time())
                return time.time() - last["since"] >= 0.3

            assert wait_for(steady, 15, 0.05)
            return dict(zip(("received", "unique", "duplicates"), last["counts"]))

        # The moments of the three kills: predicates on (prescriptions accepted in this round,
        # NewRx the pharmacy received since the last kill).
        kill_when = [
            ("mid-burst", lambda accepted, delivered: accepted >= 80 and pending() >= 10),
            ("redelivering after a restart",
             lambda accepted, delivered: delivered > 0 and pending() >= 10),
            ("later, in steady flow",
             lambda accepted, delivered: accepted >= 150 and delivered >= 30 and pending() >= 10),
        ]
        kills = []
        received = 0
        s = start()
        try:
            for round_no, (moment, ready) in enumerate(kill_when):
                with lock:
                    retries, unanswered[:] = list(unanswered), []
                before = len(accepted())
                threads = clients(retries, [f"c{round_no}-{i}" for i in range(200)])
                assert wait_for(lambda: ready(len(accepted()) - before,
                                              pharmacy()["received"] - received), 60, 0.01), \
                    (moment, len(accepted()), pharmacy())
                s.kill()
                s = None
                for t in threads:
                    t.join()
                at_kill = pharmacy_settled()
                kills.append(dict(at_kill, moment=moment, accepted=len(accepted()),
                                  unanswered=len(unanswered)))
                # Proof that the kill interrupted work: prescriptions accepted (201 or 200)
                # before it that the pharmacy had not taken when the process died.
                assert len(accepted()) > at_kill["unique"], ("the kill interrupted nothing", kills)
                received = at_kill["received"]
                s = start()
            # The last restart: the clients retry what got no answer, as a client would.
            with lock:
                retries, unanswered[:] = list(unanswered), []
            for t in clients(retries, []):
                t.join()
            assert not errors, errors[:5]
            assert not unanswered, unanswered
            final = sorted(accepted())
            assert len(final) == len(ids)  # one prescription per Idempotency-Key
            assert wait_for(lambda: all_done(api, final), 120, 0.5), \
                ({v for v in statuses(api, final).values()}, kills)
            with ThreadPoolExecutor(8) as pool:
                histories = list(pool.map(
                    lambda pid: get_json(f"{api}/api/v1/prescriptions/{pid}/events")["events"],
                    final))
            message_ids = set()
            for pid, events in zip(final, histories):
                check_events_in_order(api, pid, events)  # exactly one PrescriptionSent each
                sent = next(e for e in events if e["type"] == "PrescriptionSent")
                assert sent["payload"]["message_id"] == events[1]["payload"]["message_id"]
                assert events[4]["payload"]["relates_to_message_id"] == \
                    sent["payload"]["message_id"]
                message_ids.add(sent["payload"]["message_id"])
            assert len(message_ids) == len(final)
            # The pharmacy took as many MessageIDs as there are prescriptions: every one once
            # (a resend after a kill repeated its MessageID and counted as a duplicate).
            stats = pharmacy()
            assert stats["unique"] == len(final), (stats, len(final), kills)
            assert stats["invalid"] == 0 and stats["refused"] == 0, stats
            # Each NewRx taken queued one RxFill; once all are posted (or given up while the
            # process was down), each posted one has made its prescription Dispensed.
            def fills():
                st = pharmacy()
                return st["fills_posted"] + st["fill_errors"]

            assert wait_for(lambda: fills() == len(final), 60, 0.5), \
                (pharmacy(), len(final))
            stats = pharmacy()
            st = statuses(api, final)
            assert all(v in DONE for v in st.values())
            not_dispensed = sum(v != "Dispensed" for v in st.values())
            assert not_dispensed <= stats["fill_errors"], (not_dispensed, stats)
        finally:
            code = s.stop() if s else 0
            sim.stop()
            assert code == 0


def test_f_bad_requests_get_their_status_and_store_nothing():
    with tempfile.TemporaryDirectory() as tmp:
        # --no-auto-route: the valid prescriptions at the end need not go to the pharmacy.
        s = serve(tmp, "--max-body-bytes", "65536", "--no-auto-route")
        try:
            api = s.url_after("API").rsplit("/api/", 1)[0]
            base = f"{api}/api/v1/prescriptions"
            body = open(LISINOPRIL).read()
            assert request("POST", base, body, key=None)[0] == 401
            assert request("POST", base, body, key="wrong")[0] == 401

            def key(code):
                return {"Idempotency-Key": f"f-{code}"}

            status, text = request("POST", base, '{"resourceType": "Patient"}', headers=key(400))
            assert status == 400 and json.loads(text)["resourceType"] == "OperationOutcome"
            assert request("POST", base, " " * 70000, headers=key(413))[0] == 413
            assert request("POST", base, body, content_type="text/plain", headers=key(415))[0] \
                == 415
            assert request("GET", f"{base}/does-not-exist")[0] == 404
            c2 = json.loads(open(LISINOPRIL.replace("medication_request_lisinopril",
                                                    "schedule2_oxycodone")).read())
            c2["medication_request"]["dispenseRequest"]["numberOfRepeatsAllowed"] = 2
            status, text = request("POST", base, json.dumps(c2), headers=key(422))
            assert status == 422, text
            assert metric(api, "rxflow_outbox_backlog") == 0
            assert metric(api, "rxflow_outbox_published") == 0  # nothing was ever stored
            assert request("GET", f"{api}/healthz", key=None)[0] == 200
            assert request("GET", f"{api}/readyz", key=None)[0] == 200
            # The counters above can both read 0 in the instant a relay has marked a row
            # published but not yet counted it. The proof: no refused request left anything
            # under its Idempotency-Key, so a valid prescription there is new.
            for code in (400, 413, 415, 422):
                status, text = request("POST", base, body, headers=key(code))
                assert status == 201, (code, status, text)
        finally:
            assert s.stop() == 0


def test_traces_are_exported_as_otlp_json_and_reach_the_pharmacy():
    import http.server

    received = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        s = serve(tmp, env={"OTEL_ENDPOINT": f"http://127.0.0.1:{server.server_port}"})
        try:
            api = s.url_after("API").rsplit("/api/", 1)[0]
            pharmacy = s.url_after("pharmacy").rsplit("/ncpdp", 1)[0]
            trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
            status, text = request(
                "POST", f"{api}/api/v1/prescriptions", open(LISINOPRIL).read(),
                headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
            assert status == 201
            pid = json.loads(text)["id"]
            assert wait_for(lambda: get_json(f"{api}/api/v1/prescriptions/{pid}")["status"]
                            in DONE, 30)

            def spans():
                out = []
                for path, ctype, doc in received:
                    assert path == "/v1/traces" and ctype.startswith("application/json")
                    for rs in doc["resourceSpans"]:
                        for ss in rs["scopeSpans"]:
                            out.extend(ss["spans"])
                return out

            assert wait_for(lambda: {"POST /api/v1/prescriptions", "POST pharmacy send"}
                            <= {sp["name"] for sp in spans()}, 15)
            ours = [sp for sp in spans() if sp["traceId"] == trace_id]
            names = {sp["name"] for sp in ours}
            assert "POST /api/v1/prescriptions" in names and "POST pharmacy send" in names
            server_span = next(sp for sp in ours if sp["name"] == "POST /api/v1/prescriptions")
            assert server_span["parentSpanId"] == "00f067aa0ba902b7"
            assert get_json(f"{pharmacy}/admin/stats", key=None)["traced"] >= 1
            events = get_json(f"{api}/api/v1/prescriptions/{pid}/events")["events"]
            assert all(e["traceparent"].startswith(f"00-{trace_id}-") for e in events)
        finally:
            assert s.stop() == 0
            server.shutdown()


def test_dead_letter_after_the_last_attempt_and_configuration_errors():
    with tempfile.TemporaryDirectory() as tmp:
        s = serve(tmp, "--simulator-outages", "0-600000", "--max-attempts", "2",
                  "--breaker-failures", "100")
        try:
            api = s.url_after("API").rsplit("/api/", 1)[0]
            ids = submit_many(api, 3, "dl")
            assert wait_for(lambda: set(statuses(api, ids).values()) == {"Failed"}, 30)
            # Counters move around the status change, not with it: wait for them too.
            assert wait_for(lambda: metric(api, "rxflow_routing_dead_lettered") == 3, 15), \
                metric(api, "rxflow_routing_dead_lettered")
            assert wait_for(lambda: metric(api, "rxflow_pharmacy_responses_total",
                                           outcome="DeadLetter") == 3, 15), \
                request("GET", f"{api}/metrics", key=None)[1]
            events = get_json(f"{api}/api/v1/prescriptions/{ids[0]}/events")["events"]
            assert events[-1]["type"] == "PharmacyErrorReceived"
            assert events[-1]["payload"]["code"] == "600"
            assert "after 2 attempt(s)" in events[-1]["payload"]["description"]
        finally:
            assert s.stop() == 0
        # A malformed setting stops the program with a message naming it. (The store the
        # server above left is opened with its KEK, as an operator would.)
        same_kek = dict(os.environ, RXFLOW_PHI_KEK=PHI_KEK)
        bad = subprocess.run([os.path.join(os.environ["RXFLOW_BIN_DIR"], "rxflow"), "serve",
                              "--port", "0", "--simulator-outages", "5-1"], cwd=tmp,
                             capture_output=True, text=True, timeout=30, env=same_kek)
        assert bad.returncode == 2
        assert "SIMULATOR_OUTAGES" in bad.stderr
        for setting, expected in (("no-equals-sign", "KAFKA_CONFIG"),
                                  ("enable.idempotence=false", "idempotence")):
            bad = subprocess.run([os.path.join(os.environ["RXFLOW_BIN_DIR"], "rxflow"), "serve",
                                  "--port", "0", "--brokers", "127.0.0.1:1",
                                  "--kafka-config", setting], cwd=tmp, capture_output=True,
                                 text=True, timeout=30, env=dict(same_kek, RXFLOW_PATIENT_KEY=
                                                                 "e2e-patient-key-0123456789abcdef"))
            assert bad.returncode == 2, bad.stderr
            assert expected in bad.stderr, bad.stderr


def test_cancel_after_acknowledgement_goes_to_the_pharmacy_and_is_approved():
    with tempfile.TemporaryDirectory() as tmp:
        s = serve(tmp, "--simulator-fill-after-ms", "60000")  # no RxFill before the cancel
        try:
            api = s.url_after("API").rsplit("/api/", 1)[0]
            pid = submit_many(api, 1, "cancel")[0]
            assert wait_for(lambda: all_done(api, [pid]), 30)
            status, text = request("POST", f"{api}/api/v1/prescriptions/{pid}/cancel",
                                   '{"reason": "prescribed in error"}',
                                   content_type="application/json")
            assert status == 202, text
            assert wait_for(lambda: get_json(f"{api}/api/v1/prescriptions/{pid}")["status"]
                            == "Cancelled", 30)
            types = [e["type"] for e in
                     get_json(f"{api}/api/v1/prescriptions/{pid}/events")["events"]]
            assert types[-2:] == ["CancelRequested", "PrescriptionCancelled"], types
            # Cancelled is terminal: a second cancel is a conflict, and says why.
            status, text = request("POST", f"{api}/api/v1/prescriptions/{pid}/cancel", "",
                                   content_type="application/json")
            assert status == 409 and "Cancelled" in text
        finally:
            assert s.stop() == 0


def test_the_server_runs_on_the_allocator_it_was_built_with():
    """docs/operations.md, "Memory allocator": the servers are linked with jemalloc (libc's
    malloc in a sanitizer build, RXFLOW_SERVER_ALLOCATOR); the banner names the allocator
    jemalloc itself reports, the process has it loaded, and prescriptions go through on it."""
    expected = os.environ.get("RXFLOW_SERVER_ALLOCATOR", "jemalloc")
    with tempfile.TemporaryDirectory() as tmp:
        s = serve(tmp, "--no-auto-route")
        try:
            banner = next(line for line in s.lines if ", broker " in line)
            assert f", allocator {expected}" in banner, banner
            maps = open(f"/proc/{s.proc.pid}/maps").read()
            assert ("/libjemalloc.so" in maps) == (expected == "jemalloc"), banner
            api = s.url_after("API").rsplit("/api/", 1)[0]
            status, text = request("POST", f"{api}/api/v1/prescriptions", open(LISINOPRIL).read())
            assert status == 201, text
        finally:
            assert s.stop() == 0
