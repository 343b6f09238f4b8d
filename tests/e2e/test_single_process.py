"""End to end: `rxflow serve` (SQLite, simulator) with the in-process broker and, for (a)-(c),
again with the Kafka adapter on librdkafka's mock cluster (in its own process)."""
import json
import os
import subprocess
import tempfile
import threading
import time

import pytest

from harness import (API_KEY, DONE, LISINOPRIL, KafkaMock, Process, all_done,
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
            status, text = request("GET", f"{api}/metrics", key=None)
            assert 'rxflow_pharmacy_responses_total{code="000",outcome="Status"' in text
            # The simulator posts RxFill back through the API's pharmacy inbound route.
            assert wait_for(lambda: get_json(f"{pharmacy}/admin/stats", key=None)
                            ["fills_posted"] == 1000, 120)
            assert wait_for(lambda: set(statuses(api, ids[:50]).values()) == {"Dispensed"}, 30)
        finally:
            assert s.stop() == 0


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
            opened = wait_for(lambda: metric(api, "rxflow_breaker_state") >= 1, 10, 0.05)
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
    with tempfile.TemporaryDirectory() as tmp:
        sim_port, api_port = free_port(), free_port()
        sim = Process("pharmacy-simulator", ["--simulator-port", str(sim_port)],
                      env={"CALLBACK_URL": f"http://127.0.0.1:{api_port}/api/v1/pharmacy/inbound"},
                      cwd=tmp)
        directory = os.path.join(tmp, "pharmacies.json")
        with open(directory, "w") as f:
            json.dump({"pharmacies": [{"ncpdp_id": "*",
                                       "url": f"http://127.0.0.1:{sim_port}/ncpdp"}]}, f)
        args = ["--no-simulator", "--pharmacies", directory]
        env = dict(broker_env)
        api = f"http://127.0.0.1:{api_port}"
        s = Process("rxflow", ["--port", str(api_port), *args], env=env, cwd=tmp,
                    ready_line="Ctrl-C")
        accepted = []
        body = open(LISINOPRIL).read()

        def feed():
            for i in range(3000):
                try:
                    status, text = request("POST", f"{api}/api/v1/prescriptions", body,
                                           headers={"Idempotency-Key": f"c-{i}"})
                except OSError:
                    return
                if status != 201:
                    return
                accepted.append(json.loads(text)["id"])

        feeder = threading.Thread(target=feed)
        feeder.start()
        assert wait_for(lambda: len(accepted) >= 200, 60, 0.01)
        s.kill()  # mid-run: requests in flight, relay and routing busy
        feeder.join()
        s = Process("rxflow", ["--port", str(api_port), *args], env=env, cwd=tmp,
                    ready_line="Ctrl-C")
        try:
            assert len(accepted) >= 200
            assert wait_for(lambda: all_done(api, accepted), 120), \
                {v for v in statuses(api, accepted).values()}
            for pid in accepted:
                check_events_in_order(api, pid)  # exactly one Sent each
            stats = get_json(f"http://127.0.0.1:{sim_port}/admin/stats", key=None)
            # Every acknowledged prescription reached the pharmacy; a resend after the kill
            # repeats its MessageID, which the pharmacy deduplicates.
            assert stats["unique"] >= len(accepted)
        finally:
            assert s.stop() == 0
            sim.stop()


def test_f_bad_requests_get_their_status_and_store_nothing():
    with tempfile.TemporaryDirectory() as tmp:
        s = serve(tmp, "--max-body-bytes", "65536")
        try:
            api = s.url_after("API").rsplit("/api/", 1)[0]
            base = f"{api}/api/v1/prescriptions"
            body = open(LISINOPRIL).read()
            assert request("POST", base, body, key=None)[0] == 401
            assert request("POST", base, body, key="wrong")[0] == 401
            status, text = request("POST", base, '{"resourceType": "Patient"}')
            assert status == 400 and json.loads(text)["resourceType"] == "OperationOutcome"
            assert request("POST", base, " " * 70000)[0] == 413
            assert request("POST", base, body, content_type="text/plain")[0] == 415
            assert request("GET", f"{base}/does-not-exist")[0] == 404
            c2 = json.loads(open(LISINOPRIL.replace("medication_request_lisinopril",
                                                    "schedule2_oxycodone")).read())
            c2["medication_request"]["dispenseRequest"]["numberOfRepeatsAllowed"] = 2
            status, text = request("POST", base, json.dumps(c2))
            assert status == 422, text
            assert metric(api, "rxflow_outbox_backlog") == 0
            assert metric(api, "rxflow_outbox_published") == 0  # nothing was ever stored
            assert request("GET", f"{api}/healthz", key=None)[0] == 200
            assert request("GET", f"{api}/readyz", key=None)[0] == 200
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
            assert metric(api, "rxflow_routing_dead_lettered") == 3
            status, text = request("GET", f"{api}/metrics", key=None)
            assert 'outcome="DeadLetter"' in text
            events = get_json(f"{api}/api/v1/prescriptions/{ids[0]}/events")["events"]
            assert events[-1]["type"] == "PharmacyErrorReceived"
            assert events[-1]["payload"]["code"] == "600"
            assert "after 2 attempt(s)" in events[-1]["payload"]["description"]
        finally:
            assert s.stop() == 0
        # A malformed setting stops the program with a message naming it.
        bad = subprocess.run([os.path.join(os.environ["RXFLOW_BIN_DIR"], "rxflow"), "serve",
                              "--port", "0", "--simulator-outages", "5-1"], cwd=tmp,
                             capture_output=True, text=True, timeout=30)
        assert bad.returncode == 2
        assert "SIMULATOR_OUTAGES" in bad.stderr
        for setting, expected in (("no-equals-sign", "KAFKA_CONFIG"),
                                  ("enable.idempotence=false", "idempotence")):
            bad = subprocess.run([os.path.join(os.environ["RXFLOW_BIN_DIR"], "rxflow"), "serve",
                                  "--port", "0", "--brokers", "127.0.0.1:1",
                                  "--kafka-config", setting], cwd=tmp, capture_output=True,
                                 text=True, timeout=30, env=dict(os.environ, RXFLOW_PATIENT_KEY=
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
