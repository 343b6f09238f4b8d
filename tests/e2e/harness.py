"""Real processes on loopback for the end-to-end tests: start RxFlow's programs, talk HTTP.

Only the standard library: urllib for HTTP, subprocess for the programs.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

BIN = os.environ.get("RXFLOW_BIN_DIR", "")
FIXTURES = os.environ.get("RXFLOW_FIXTURES", "")
API_KEY = "e2e-api-key-000000000000000000"
PATIENT_KEY = "e2e-patient-key-0123456789abcdef"
LISINOPRIL = os.path.join(FIXTURES, "fhir", "medication_request_lisinopril.json")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def program(name):
    if name == "rxflow":
        return [os.path.join(BIN, "rxflow"), "serve"]
    return [os.path.join(BIN, name)]


class Process:
    """A program running until stop() or kill(); its first stdout lines are kept."""

    def __init__(self, name, args=(), env=None, cwd=None, ready_line=None):
        full_env = dict(os.environ)
        full_env.update({"API_KEYS": API_KEY, "RXFLOW_PATIENT_KEY": PATIENT_KEY,
                         "LOG_LEVEL": "warn"})
        full_env.update(env or {})
        self.proc = subprocess.Popen(program(name) + list(args), env=full_env, cwd=cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.stderr = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{name} exited: {''.join(self.stderr)[-2000:]}")
            self.lines.append(line.rstrip("\n"))
            if ready_line is None or ready_line in line:
                break
        threading.Thread(target=self._drain_stdout, daemon=True).start()

    def _drain_stdout(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def url_after(self, label):
        for line in self.lines:
            if line.strip().startswith(label):
                return line.split()[1]
        raise KeyError(label)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def request(method, url, body=None, headers=None, content_type="application/fhir+json",
            key=API_KEY):
    h = {"X-API-Key": key} if key else {}
    if body is not None:
        h["Content-Type"] = content_type
    h.update(headers or {})
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def get_json(url, key=API_KEY):
    status, body = request("GET", url, key=key)
    assert status == 200, (url, status, body)
    return json.loads(body)


def submit_many(api, n, prefix, workers=16):
    """POSTs the lisinopril fixture n times with distinct Idempotency-Keys; returns ids."""
    body = open(LISINOPRIL).read()

    def one(i):
        # A connection reset before any answer (seen once, in CI, while a compiler ran beside
        # the suite: cpp-httplib listens with a backlog of 5) is retried with the same key, as
        # a client should: the key makes the retry safe, and a retry of a POST that did land
        # is a replay (200, the same id). Exactly-once effects are checked by the tests.
        for attempt in range(3):
            try:
                status, text = request("POST", f"{api}/api/v1/prescriptions", body,
                                       headers={"Idempotency-Key": f"{prefix}-{i}"})
                break
            except (ConnectionResetError, http.client.RemoteDisconnected):
                if attempt == 2:
                    raise
                time.sleep(0.2)
        assert status == 201 or (attempt > 0 and status == 200), (status, text)
        return json.loads(text)["id"]

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(n)))


def wait_for(predicate, timeout=60, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


DONE = {"Acknowledged", "Verified", "Dispensed"}


def statuses(api, ids, workers=16):
    def one(i):
        return get_json(f"{api}/api/v1/prescriptions/{i}")["status"]

    with ThreadPoolExecutor(workers) as pool:
        return dict(zip(ids, pool.map(one, ids)))


def all_done(api, ids):
    return all(s in DONE for s in statuses(api, ids).values())


def check_events_in_order(api, pid, events=None):
    """A delivered prescription's history: versions 1..n, the send path in order, one Sent.
    `events`: the history already fetched (GET .../events), else it is fetched here."""
    if events is None:
        events = get_json(f"{api}/api/v1/prescriptions/{pid}/events")["events"]
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types[:4] == ["PrescriptionReceived", "PrescriptionTransformed",
                         "PrescriptionQueued", "PrescriptionSent"], types
    assert types[4] in ("PharmacyAcknowledged", "PharmacyVerified"), types
    assert types.count("PrescriptionSent") == 1, types
    return types


def metric(api, name, **labels):
    """Sum of every series of `name` in /metrics (only those with these label values)."""
    status, text = request("GET", f"{api}/metrics", key=None)
    assert status == 200
    want = [f'{k}="{v}"' for k, v in labels.items()]
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            series = line.rsplit(" ", 1)[0]
            if all(w in series for w in want):
                total += float(line.rsplit(" ", 1)[1])
    return total


# librdkafka's defaults make a consumer group rebalance wait ~44 s on the mock cluster.
KAFKA_TEST_CONFIG = "session.timeout.ms=3000,heartbeat.interval.ms=500"


class KafkaMock:
    """kafka-mock-cluster in its own process: a Kafka cluster reachable over loopback."""

    def __init__(self):
        self.process = Process("kafka-mock-cluster", ready_line="bootstrap")
        self.bootstrap = self.process.lines[-1].split()[1]

    def env(self):
        return {"REDPANDA_BROKERS": self.bootstrap, "KAFKA_CONFIG": KAFKA_TEST_CONFIG}

    def stop(self):
        self.process.stop()
