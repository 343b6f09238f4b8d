# SPDX-License-Identifier: Apache-2.0
"""What the security suite adds to tests/e2e/harness.py (imported from there, not copied):
clients made with `rxflow clients add`, `rxflow serve` on a loopback port with a clients file,
HTTP with full control of the headers, raw sockets, and SCRIPT RxFill built from the fixtures.

Everything talks to 127.0.0.1 only, and every socket has a timeout.
"""
import http.client
import json
import os
import re
import secrets
import select
import socket
import subprocess
import sys
import time
import uuid
from collections import namedtuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

from harness import (BIN, FIXTURES, KEY_ENV, LISINOPRIL, Process,  # noqa: E402
                     free_port, wait_for)

HOST = "127.0.0.1"
# rxf_<key id: 12 hex>_<secret: 43 base64url>, as `rxflow clients add` prints it.
KEY_RE = re.compile(r"rxf_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")
RXFILL = os.path.join(FIXTURES, "script", "rxfill_dispensed.xml")
ACKNOWLEDGED = {"Acknowledged", "Verified"}

Response = namedtuple("Response", "status headers body")


def random_key(key_id=None):
    """A well-formed key nobody was given (with `key_id`, the id part of a real one)."""
    return f"rxf_{key_id or secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def key_id(key):
    return key.split("_")[1]


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in KEY_ENV}
    env.update(extra)
    return env


def rxflow_cli(*args, cwd=None, timeout=30):
    return subprocess.run([os.path.join(BIN, "rxflow"), *args], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=timeout)


def add_client(file, client_id, role, tenant=None, ncpdp=()):
    """`rxflow clients add`: the key it prints (its only line on stdout)."""
    args = ["clients", "add", client_id, "--role", role, "--file", file]
    if tenant is not None:
        args += ["--tenant", tenant]
    for n in ncpdp:
        args += ["--ncpdp-id", n]
    out = rxflow_cli(*args)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and KEY_RE.fullmatch(lines[0]), out.stdout
    return lines[0]


def call(port, method, path, body=None, key=None, bearer=False, headers=None,
         content_type="application/fhir+json", timeout=10):
    """One request on a fresh connection to 127.0.0.1:port: Response(status, headers with
    lower-case names, body text). `key` goes in X-API-Key, or with bearer=True in
    Authorization: Bearer."""
    h = {}
    if key is not None:
        h["Authorization" if bearer else "X-API-Key"] = f"Bearer {key}" if bearer else key
    data = body.encode() if isinstance(body, str) else body
    if data is not None and content_type is not None:
        h["Content-Type"] = content_type
    h.update(headers or {})
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        text = r.read().decode(errors="replace")
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, text)
    finally:
        conn.close()


def get_many(port, paths, deadline_s=120):
    """GETs every path in turn on one keep-alive connection (reopened when the server closes
    it); their statuses."""
    statuses = []
    deadline = time.monotonic() + deadline_s
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        for path in paths:
            assert time.monotonic() < deadline, f"{len(statuses)} of {len(paths)} in time"
            for attempt in range(2):
                try:
                    conn.request("GET", path)
                    r = conn.getresponse()
                    r.read()
                    statuses.append(r.status)
                    break
                except (http.client.HTTPException, ConnectionError):
                    conn.close()  # the next request opens a new connection
                    if attempt == 1:
                        raise
    finally:
        conn.close()
    return statuses


def timed(fn):
    """(fn()'s result, seconds it took), on the monotonic clock."""
    t0 = time.monotonic()
    result = fn()
    return result, time.monotonic() - t0


def read_head(sock, deadline, limit=1 << 20):
    """Reads an HTTP response's status line and headers: (status, {lower name: value}), or
    (None, {}) when the connection ends, fails or the deadline passes first."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionError, OSError):
            break
        if not chunk:
            break
        data += chunk
    if not data.startswith(b"HTTP/"):
        return None, {}
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(head[0].split()[1]), headers


def raw_exchange(port, data, timeout=10):
    """Sends `data` on a fresh connection (the server may stop reading and answer early) and
    reads the answer's head: (status or None, headers)."""
    deadline = time.monotonic() + timeout
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass  # the server answered (or gave up) before reading it all
        return read_head(s, deadline)


def send_chunked(port, head, total, chunk=64 * 1024, timeout=10):
    """POSTs a chunked body of up to `total` bytes after `head` (request line and headers,
    without the blank line), a chunk at a time, stopping as soon as the server answers or
    closes; then reads the answer's head: (status or None, headers, bytes sent)."""
    deadline = time.monotonic() + 60
    sent = 0
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        piece = b"%x\r\n" % chunk + b"a" * chunk + b"\r\n"
        try:
            s.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
            while sent < total and time.monotonic() < deadline:
                if select.select([s], [], [], 0)[0]:
                    break  # an answer (or the close) is there
                s.sendall(piece)
                sent += chunk
            else:
                s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        status, headers = read_head(s, time.monotonic() + timeout)
        return status, headers, sent


def open_idle(port, n, deadline_s=30):
    """Up to n connected sockets that send nothing (fewer if connecting stops succeeding
    before the deadline: a server may leave connections beyond its limit unaccepted)."""
    socks = []
    deadline = time.monotonic() + deadline_s
    while len(socks) < n and time.monotonic() < deadline:
        try:
            socks.append(socket.create_connection((HOST, port), timeout=2))
        except OSError:
            time.sleep(0.05)
    return socks


def count_closed(socks, wait=0.2):
    """How many of `socks` the server has closed (reading returns EOF or fails)."""
    closed = 0
    for sock in socks:
        sock.settimeout(wait)
        try:
            closed += sock.recv(1) == b""
        except socket.timeout:
            pass
        except OSError:
            closed += 1
    return closed


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def memory(pid):
    """(VmRSS, VmHWM) of process `pid` in bytes: resident now, and its peak so far."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


def lisinopril(ncpdp=None, order=None, edit=None):
    """The lisinopril fixture as JSON text; ncpdp: its pharmacy's NCPDP id instead of
    4712345; order: its order number instead of ORD-1001; edit(doc): any other change."""
    doc = json.load(open(LISINOPRIL))
    if ncpdp is not None:
        ids = doc["pharmacy"]["identifier"]
        ncpdp_ids = [i for i in ids if i["system"].endswith("NCPDPProviderIdentificationNumber")]
        assert len(ncpdp_ids) == 1
        ncpdp_ids[0]["value"] = ncpdp
    if order is not None:
        doc["medication_request"]["identifier"][0]["value"] = order
    if edit is not None:
        edit(doc)
    return json.dumps(doc)


def _replace_one(xml, pattern, value):
    out, n = re.subn(pattern, lambda m: m.group(1) + value + m.group(2), xml)
    assert n == 1, (pattern, n)
    return out


def rxfill(relates_to, from_ncpdp):
    """tests/fixtures/script/rxfill_dispensed.xml from pharmacy `from_ncpdp` (Header/From and
    Pharmacy/Identification/NCPDPID), answering the NewRx `relates_to` (the summary's
    message_id), with a fresh MessageID."""
    xml = open(RXFILL).read()
    xml = _replace_one(xml, r'(<From Qualifier="P">)[^<]*(</From>)', from_ncpdp)
    xml = _replace_one(xml, r"(<MessageID>)[^<]*(</MessageID>)", uuid.uuid4().hex)
    xml = _replace_one(xml, r"(<RelatesToMessageID>)[^<]*(</RelatesToMessageID>)", relates_to)
    return _replace_one(xml, r"(<NCPDPID>)[^<]*(</NCPDPID>)", from_ncpdp)


class Server:
    """`rxflow serve` on a free loopback port, its data in `tmp`; clients from `clients`
    (a file) and whatever `env` gives, none of the e2e harness's keys. EPCS demo off unless
    epcs_demo=True."""

    def __init__(self, tmp, *args, clients=None, env=None, epcs_demo=False):
        self.tmp = tmp
        self.port = free_port()
        argv = ["--host", HOST, "--port", str(self.port),
                "--database-url", f"sqlite://{tmp}/rxflow.db"]
        if not epcs_demo:
            argv.append("--no-epcs-demo")
        if clients:
            argv += ["--clients", clients]
        full_env = {"SOFTHSM2_CONF": ""} if epcs_demo else {}
        full_env.update(env or {})
        self.process = Process("rxflow", argv + list(args), env=full_env, cwd=tmp,
                               ready_line="Ctrl-C", keys=False)
        self.pid = self.process.proc.pid

    def call(self, method, path, body=None, key=None, **kw):
        return call(self.port, method, path, body, key, **kw)

    def get_json(self, path, key):
        r = self.call("GET", path, key=key)
        assert r.status == 200, (path, r)
        return json.loads(r.body)

    def submit(self, key, idempotency_key, body=None):
        r = self.call("POST", "/api/v1/prescriptions", body or lisinopril(), key=key,
                      headers={"Idempotency-Key": idempotency_key})
        assert r.status == 201, r
        return json.loads(r.body)["id"]

    def summary(self, pid, key):
        return self.get_json(f"/api/v1/prescriptions/{pid}", key)

    def events(self, pid, key):
        return self.get_json(f"/api/v1/prescriptions/{pid}/events", key)["events"]

    def alive(self):
        return self.process.proc.poll() is None

    def stop(self):
        return self.process.stop()


# Re-exported from the e2e harness with this module's own helpers.
__all__ = ["ACKNOWLEDGED", "BIN", "FIXTURES", "HOST", "KEY_RE", "LISINOPRIL", "Process",
           "Response", "Server", "add_client", "call", "clean_env", "close_all", "count_closed", "free_port",
           "get_many", "key_id", "lisinopril", "memory", "open_idle", "raw_exchange",
           "random_key", "read_head", "rxfill", "rxflow_cli", "send_chunked", "timed",
           "wait_for"]
