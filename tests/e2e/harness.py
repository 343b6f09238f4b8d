# SPDX-License-Identifier: Apache-2.0
"""Real processes on loopback for the end-to-end tests: start RxFlow's programs, talk HTTP.

Only the standard library: urllib for HTTP, subprocess for the programs.
"""
import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

BIN = os.environ.get("RXFLOW_BIN_DIR", "")
FIXTURES = os.environ.get("RXFLOW_FIXTURES", "")
# Keys of at least 128 bits (a weaker one stops the server): the prescriber key every process
# gets in API_KEYS, and the pharmacy network key (PHARMACY_KEYS "*:...") a standalone
# pharmacy-simulator posts its RxFill with (CALLBACK_API_KEY).
API_KEY = "e2eKey_7Qm2xV9pL4sT8wZ1cR6nB3dF5hJ0kY2uA9e"
CALLBACK_KEY = "e2eHub_3Rv8Kc1Nw6Tz9Lp2Gx5Bq7Dm0Hs4Fy8Ju1a"
METRICS_KEY = "e2eMet_5Tg2Wb8Yn1Qc6Vx9Zr3Kp7Lm0Jd4Hs2Fe8u"  # METRICS_KEYS: GET /metrics
PATIENT_KEY = "e2e-patient-key-0123456789abcdef"
# What a process inherits of these is replaced (keys=True) or removed (keys=False).
KEY_ENV = ("API_KEYS", "CALLBACK_API_KEY", "PHARMACY_KEYS", "METRICS_KEYS", "RXFLOW_CLIENTS",
           "RXFLOW_PATIENT_KEY", "RXFLOW_PHI_KEK", "RXFLOW_PHI_KEK_RETIRED")
# The key-encryption key of PHI at rest that every process of a run shares (created 0600 by
# the first one to start).
PHI_KEK_DIR = tempfile.mkdtemp(prefix="rxflow-e2e-kek-")
PHI_KEK = "file:" + os.path.join(PHI_KEK_DIR, "phi.kek")
atexit.register(shutil.rmtree, PHI_KEK_DIR, ignore_errors=True)
LISINOPRIL = os.path.join(FIXTURES, "fhir", "medication_request_lisinopril.json")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def program(name):
    """"rxflow" is `rxflow serve`; "rxflow pmp simulator" a subcommand; else a program."""
    if name == "rxflow":
        return [os.path.join(BIN, "rxflow"), "serve"]
    if name.startswith("rxflow "):
        return [os.path.join(BIN, "rxflow")] + name.split()[1:]
    return [os.path.join(BIN, name)]


class Process:
    """A program running until stop() or kill(); its stdout lines and stderr are kept.
    keys=False: none of this harness's keys (KEY_ENV), inherited or set: the program's own
    configuration (flags, `env`, files) decides."""

    def __init__(self, name, args=(), env=None, cwd=None, ready_line=None, keys=True):
        full_env = {k: v for k, v in os.environ.items() if k not in KEY_ENV}
        if keys:
            full_env.update({"API_KEYS": API_KEY, "CALLBACK_API_KEY": CALLBACK_KEY,
                             "PHARMACY_KEYS": f"*:{CALLBACK_KEY}", "METRICS_KEYS": METRICS_KEY,
                             "RXFLOW_PATIENT_KEY": PATIENT_KEY, "RXFLOW_PHI_KEK": PHI_KEK})
        full_env["LOG_LEVEL"] = "warn"
        full_env.update(env or {})
        self.proc = subprocess.Popen(program(name) + list(args), env=full_env, cwd=cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.stderr = []
        self._ready_line = ready_line
        self._ready = threading.Event()  # set at the ready line or at the end of stdout
        self._is_ready = False
        self._drains = [threading.Thread(target=self._drain_stderr, daemon=True),
                        threading.Thread(target=self._drain_stdout, daemon=True)]
        for t in self._drains:
            t.start()
        # Bounded also when the program prints nothing and does not exit.
        if not self._ready.wait(30):
            self.kill()
            raise RuntimeError(f"{name} not ready in 30 s: {self.lines[-20:]}")
        if not self._is_ready:  # stdout ended first: the program exited (or is exiting)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._join_drains()
            raise RuntimeError(f"{name} exited: {''.join(self.stderr)[-2000:]}")

    def _drain_stdout(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if not self._is_ready and (self._ready_line is None or self._ready_line in line):
                self._is_ready = True
                self._ready.set()
        self._ready.set()

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
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        code = self.proc.wait()
        self._join_drains()
        return code

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._join_drains()

    def _join_drains(self):
        for t in self._drains:
            t.join(timeout=10)

    def output(self):
        """Everything the program wrote so far: stdout lines, then stderr."""
        return "\n".join(self.lines) + "\n" + "".join(self.stderr)


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
    status, text = request("GET", f"{api}/metrics", key=METRICS_KEY)
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
