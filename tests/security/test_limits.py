# SPDX-License-Identifier: Apache-2.0
"""Security regressions, abuse limits (issue 10; finding numbers as in test_api_security.py).

Finding 5, unrestricted resource consumption (OWASP API4):
- (a) test_slowloris_connections_do_not_starve_the_server
- (b) test_header_floods_are_refused_with_431
- (c) test_compressed_and_chunked_bodies_stop_at_the_body_limit,
      test_an_unsupported_content_encoding_is_415
- (d) test_only_json_content_types_are_accepted
- (e) test_a_huge_cancel_reason_is_refused_and_cancels_nothing
- (f) test_an_error_lists_at_most_101_issues
- (h) test_unknown_paths_and_pharmacies_add_no_metric_series
- (i) test_the_server_recovers_from_the_connection_cap
Finding 4, online guessing of keys (failed-authentication throttling), each on a server of
its own since an address that is throttled stays so on that server:
- (g) test_failed_authentication_for_one_key_id_is_throttled,
      test_failed_authentication_from_one_address_is_throttled
"""
import http.client
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import zlib

import pytest

from sec_harness import (Server, add_client, call, close_all, count_closed, get_many, key_id,
                         lisinopril, memory, open_idle, random_key, raw_exchange, send_chunked,
                         timed, wait_for)
from harness import BIN, KEY_ENV, free_port  # noqa: E402 (sec_harness puts it on the path)

RX = "/api/v1/prescriptions"
MIB = 1 << 20


def server_with_clients(tmp, *args):
    """A server with one prescriber ("clinic") and one metrics client ("scraper"): (server,
    prescriber key, metrics key)."""
    clients = os.path.join(tmp, "clients.json")
    prescriber = add_client(clients, "clinic", "prescriber", tenant="t1")
    scraper = add_client(clients, "scraper", "metrics")
    return Server(tmp, *args, clients=clients), prescriber, scraper


class Limits:
    """The shared server of the tests that leave it as they found it: defaults (1 MiB body
    limit, the embedded simulator), but nothing routed unless a test asks."""

    def __init__(self, tmp):
        self.server, self.key, self.metrics_key = server_with_clients(tmp, "--no-auto-route")
        self.port = self.server.port

    def post(self, body, idem, content_type="application/fhir+json", headers=None):
        h = {"Idempotency-Key": idem}
        h.update(headers or {})
        return self.server.call("POST", RX, body, key=self.key, headers=h,
                                content_type=content_type)


@pytest.fixture(scope="module")
def limits():
    with tempfile.TemporaryDirectory(prefix="rxflow-sec-") as tmp:
        t = Limits(tmp)
        try:
            yield t
        finally:
            assert t.server.stop() == 0


# --- (a) ---------------------------------------------------------------------------------

def test_slowloris_connections_do_not_starve_the_server(tmp):
    s, key, _ = server_with_clients(tmp, "--no-auto-route")
    idle, slow = [], []
    stop = threading.Event()
    dribbler = None
    try:
        idle = open_idle(s.port, 200, deadline_s=10)
        slow = open_idle(s.port, 32, deadline_s=10)
        for c in slow:
            try:
                c.sendall(b"POST /api/v1/prescriptions HTTP/1.1\r\nHost: x\r\n")
            except OSError:
                pass

        def dribble():
            """One byte of a header on every slow connection each 0.5 s (at most a minute)."""
            header = b"X-Slow: " + b"a" * 120
            for i in range(len(header)):
                if stop.wait(0.5):
                    return
                for c in slow:
                    try:
                        c.send(header[i:i + 1])
                    except OSError:
                        pass  # the server dropped it: fine

        dribbler = threading.Thread(target=dribble, daemon=True)
        dribbler.start()
        time.sleep(1.5)  # a few bytes in: the slow requests are under way

        # A starved server answers only when the slow heads time out (10 s, --head-timeout-ms);
        # 3 s leaves room for a busy machine's fsync and still tells the two apart.
        r, seconds = timed(lambda: s.call("GET", "/healthz", timeout=9))
        assert r.status == 200 and seconds < 3.0, (r.status, seconds, len(idle), len(slow))
        r, seconds = timed(lambda: s.call("POST", RX, lisinopril(), key=key, timeout=9,
                                          headers={"Idempotency-Key": "under-slowloris"}))
        assert r.status == 201 and seconds < 3.0, (r, seconds)
        assert s.alive()
    finally:
        stop.set()
        if dribbler:
            dribbler.join(timeout=5)
        close_all(idle + slow)
        assert s.stop() == 0


# --- (b) ---------------------------------------------------------------------------------

def test_one_source_cannot_hold_every_connection(tmp):
    """--max-connections-per-source 10: from 127.0.0.1, the 11th and later connections are
    closed at once; once the source's connections close, it is served again."""
    s, _, _ = server_with_clients(tmp, "--no-auto-route", "--max-connections-per-source", "10")
    socks = []
    try:
        socks = open_idle(s.port, 15, deadline_s=15)
        time.sleep(0.3)
        closed = count_closed(socks)
        assert closed >= 5, closed
        close_all(socks)
        assert wait_for(lambda: call(s.port, "GET", "/healthz", timeout=2).status == 200, 10)
    finally:
        close_all(socks)
        assert s.stop() == 0


def test_a_dribbled_head_is_cut_off_at_the_head_deadline(tmp):
    """A client sending its head a byte at a time does not keep its connection: the whole
    head has one deadline (--head-timeout-ms), not each read."""
    s, _, _ = server_with_clients(tmp, "--no-auto-route", "--head-timeout-ms", "1000")
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
            sock.sendall(b"POST /api/v1/prescriptions HTTP/1.1\r\nHost: x\r\n")
            start = time.monotonic()
            closed_after = None
            while time.monotonic() - start < 8:
                try:
                    sock.sendall(b"X")
                except OSError:
                    closed_after = time.monotonic() - start
                    break
                sock.settimeout(0.2)
                try:
                    if sock.recv(1) == b"":
                        closed_after = time.monotonic() - start
                        break
                except socket.timeout:
                    pass
                except OSError:
                    closed_after = time.monotonic() - start
                    break
            assert closed_after is not None, "the dribbling connection was never closed"
            assert 0.5 <= closed_after <= 6, closed_after
    finally:
        assert s.stop() == 0


def test_no_body_is_read_before_the_key_is_checked(limits):
    """A POST without a key that asks for 100-continue gets 401 at once, not 100 Continue:
    the server reads (and inflates) bodies only for authenticated clients."""
    head = (b"POST /api/v1/prescriptions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/fhir+json\r\nContent-Length: 900000\r\n"
            b"Expect: 100-continue\r\n\r\n")
    status, _ = raw_exchange(limits.port, head, timeout=5)
    assert status == 401
    # And with a key, the same head is invited to send its body.
    keyed = head.replace(b"Host: x\r\n", b"Host: x\r\nX-API-Key: " + limits.key.encode() +
                         b"\r\n")
    status, _ = raw_exchange(limits.port, keyed, timeout=5)
    assert status == 100
    # No route that needs no key reads a body either: answered from the head alone.
    for path, expected in (("/healthz", 405), ("/no/such/route", 404)):
        status, _ = raw_exchange(limits.port, head.replace(b"/api/v1/prescriptions",
                                                           path.encode()), timeout=5)
        assert status == expected, (path, status)
    status, _ = raw_exchange(limits.port, head.replace(b"POST /api/v1/prescriptions",
                                                       b"GET /healthz"), timeout=5)
    assert status == 400


def test_header_floods_are_refused_with_431(limits):
    many = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
            b"".join(b"X-Flood-%d: v\r\n" % i for i in range(1000)) + b"\r\n")
    status, _ = raw_exchange(limits.port, many)
    assert status == 431, status
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (64 * 1024) + b"\r\n\r\n"
    status, _ = raw_exchange(limits.port, big)
    assert status == 431, status
    assert limits.server.call("GET", "/healthz").status == 200


# --- (c) ---------------------------------------------------------------------------------

def gzip_of_zeros(mib):
    """`mib` MiB of zero bytes, gzip-compressed a MiB at a time (about 1/1000 the size)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    return b"".join([z.compress(zeros) for _ in range(mib)] + [z.flush()])


def test_compressed_and_chunked_bodies_stop_at_the_body_limit(limits):
    rss_before, peak_before = memory(limits.server.pid)

    bomb = gzip_of_zeros(64)
    assert len(bomb) < MIB  # small on the wire: only its expansion is over the limit
    r = limits.post(bomb, "gzip-bomb", headers={"Content-Encoding": "gzip"})
    assert r.status == 413, r

    head = (b"POST /api/v1/prescriptions HTTP/1.1\r\nHost: x\r\n"
            b"X-API-Key: " + limits.key.encode() + b"\r\n"
            b"Content-Type: application/fhir+json\r\nIdempotency-Key: chunked-flood\r\n")
    status, _, sent = send_chunked(limits.port, head, 8 * MIB)
    assert status == 413, (status, sent)

    rss_after, peak_after = memory(limits.server.pid)
    assert rss_after - rss_before < 64 * MIB, (rss_before, rss_after)
    # Also at its peak: a body expanded in full and then dropped would show here.
    assert peak_after - peak_before < 64 * MIB, (peak_before, peak_after)
    assert limits.server.call("GET", "/healthz").status == 200


def test_an_unsupported_content_encoding_is_415(limits):
    r = limits.post(lisinopril(), "brotli", headers={"Content-Encoding": "br"})
    assert r.status == 415, r


# --- (d) ---------------------------------------------------------------------------------

def test_only_json_content_types_are_accepted(limits):
    r = limits.post(lisinopril(), "jsonx", content_type="application/jsonx")
    assert r.status == 415, r
    r = limits.post(lisinopril(), "charset", content_type="application/fhir+json; charset=utf-8")
    assert r.status == 201, r


# --- (e) ---------------------------------------------------------------------------------

def test_a_huge_cancel_reason_is_refused_and_cancels_nothing(limits):
    s = limits.server
    pid = s.submit(limits.key, "huge-reason")
    before = s.summary(pid, limits.key)
    r = s.call("POST", f"{RX}/{pid}/cancel", json.dumps({"reason": "x" * 500_000}),
               key=limits.key, content_type="application/json")
    assert r.status == 400, r
    assert "$.reason" in r.body
    after = s.summary(pid, limits.key)
    assert after["status"] != "Cancelled"
    assert (after["status"], after["version"]) == (before["status"], before["version"])
    # It could have been cancelled: a short reason does it.
    r = s.call("POST", f"{RX}/{pid}/cancel", '{"reason": "prescribed in error"}',
               key=limits.key, content_type="application/json")
    assert r.status == 202, r
    assert wait_for(lambda: s.summary(pid, limits.key)["status"] == "Cancelled", 10)


# --- (f) ---------------------------------------------------------------------------------

def test_an_error_lists_at_most_101_issues(limits):
    def bogus_extensions(doc):
        doc["medication_request"]["extension"] = [{"url": 5, "valueString": "x"}] * 500

    r = limits.post(lisinopril(edit=bogus_extensions), "many-issues")
    assert 400 <= r.status < 500, r
    outcome = json.loads(r.body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert 2 <= len(outcome["issue"]) <= 101, len(outcome["issue"])


# --- (h) ---------------------------------------------------------------------------------

def test_unknown_paths_and_pharmacies_add_no_metric_series(limits):
    s = limits.server
    # Pharmacy traffic first: one prescription routed to the embedded simulator and filled.
    pid = s.submit(limits.key, "routed-for-metrics")
    r = s.call("POST", f"{RX}/{pid}/route", "", key=limits.key, content_type="application/json")
    assert r.status == 202, r
    assert wait_for(lambda: s.summary(pid, limits.key)["status"] == "Dispensed", 30), \
        s.summary(pid, limits.key)

    def scrape():
        r = s.call("GET", "/metrics", key=limits.metrics_key)
        assert r.status == 200, r
        return r.body

    # The series a 404 and a scrape make exist before the baseline.
    assert s.call("GET", "/x/warm-up").status == 404
    scrape()
    before = scrape()
    statuses = get_many(limits.port, [f"/x/Doe-John-1970-01-01-{i}" for i in range(2000)])
    assert statuses == [404] * 2000, sorted(set(statuses))
    after = scrape()
    assert "Doe-John" not in after
    assert len(after.encode()) - len(before.encode()) < 10 * 1024, \
        (len(before), len(after))
    assert 'pharmacy="' not in after
    assert "rxflow_pharmacy_responses_total" in after  # the pharmacy answer was counted


# --- (g) ---------------------------------------------------------------------------------

def retry_after(r):
    value = r.headers.get("retry-after", "")
    assert value.isdigit() and int(value) >= 1, r
    return int(value)


def attempts_until_429(s, keys):
    """GET with each key in turn until one is answered 429: (statuses, the 429 or None)."""
    statuses = []
    for k in keys:
        r = s.call("GET", f"{RX}/unknown-id", key=k)
        statuses.append(r.status)
        if r.status == 429:
            return statuses, r
    return statuses, None


def test_failed_authentication_for_one_key_id_is_throttled(tmp):
    s, key, _ = server_with_clients(tmp, "--no-auto-route")
    try:
        wrong = random_key(key_id(key))  # the real key's id, not its secret
        statuses, throttled = attempts_until_429(s, [wrong] * 7)
        assert statuses[:5] == [401] * 5, statuses
        assert throttled is not None, statuses
        retry_after(throttled)
        # Key ids are not secret: guessing at a client's key id must not lock the client out.
        assert call(s.port, "GET", "/api/v1/prescriptions/x", key=key).status == 404
        assert s.alive()
    finally:
        assert s.stop() == 0


def test_failed_authentication_from_one_address_is_throttled(tmp):
    s, key, _ = server_with_clients(tmp, "--no-auto-route")
    try:
        statuses, throttled = attempts_until_429(s, [random_key() for _ in range(25)])
        assert throttled is not None, statuses
        assert set(statuses[:-1]) <= {401}, statuses
        retry_after(throttled)
        assert s.alive()
    finally:
        assert s.stop() == 0


# --- (i) ---------------------------------------------------------------------------------

def test_the_server_recovers_from_the_connection_cap(tmp):
    s, _, _ = server_with_clients(tmp, "--no-auto-route", "--max-connections", "50")
    socks = []
    try:
        opened_at = time.monotonic()
        socks = open_idle(s.port, 60, deadline_s=15)
        time.sleep(0.5)
        close_all(socks[:20])
        # The idle sockets' head timeout (10 s from their accept) would free the slots anyway:
        # recovery must come well before it, or the test proves nothing.
        budget = 9.0 - (time.monotonic() - opened_at)
        assert budget >= 2.0, f"opening the sockets took {9.0 - budget:.1f} s"

        def healthy_within(seconds):
            deadline = time.monotonic() + seconds
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    if call(s.port, "GET", "/healthz", timeout=max(0.2, remaining)).status == 200:
                        return True
                except (OSError, http.client.HTTPException):
                    pass  # refused or timed out at the cap: try again while time is left
                time.sleep(0.05)

        assert healthy_within(budget), (len(socks), s.alive())
        # The cap held: of the 60, the 10 over it were closed by the server at once.
        refused = count_closed(socks[20:])
        assert refused >= 10, refused
        assert s.alive()
        close_all(socks[20:])
        assert healthy_within(5.0)
    finally:
        close_all(socks)
        assert s.stop() == 0



# --- thread pools ------------------------------------------------------------------------

@pytest.mark.parametrize("option,value", [("--http-threads", "0"), ("--http-threads", "1025"),
                                          ("--submit-threads", "-1"),
                                          ("--submit-threads", "257")])
def test_a_thread_count_out_of_range_stops_the_server_before_it_starts(tmp, option, value):
    """--http-threads 1..1024, --submit-threads 0..256 (docs/operations.md): anything else is
    a usage error naming the option, before a thread or the store is made."""
    r = subprocess.run([os.path.join(BIN, "rxflow"), "serve", "--host", "127.0.0.1", "--port",
                        str(free_port()), "--database-url", f"sqlite://{tmp}/rxflow.db",
                        "--no-epcs-demo", option, value],
                       cwd=tmp, capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if k not in KEY_ENV})
    assert r.returncode != 0
    assert option in r.stderr and "not in range" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(tmp, "rxflow.db"))


def test_submissions_on_the_request_threads_are_answered(tmp):
    """--submit-threads 0: POST /api/v1/prescriptions runs on the --http-threads pool, and is
    answered as on its own pool."""
    s, key, _ = server_with_clients(tmp, "--no-auto-route", "--submit-threads", "0",
                                    "--http-threads", "2")
    try:
        first = s.submit(key, "on-request-threads")
        again = s.call("POST", RX, lisinopril(), key=key,
                       headers={"Idempotency-Key": "on-request-threads"})
        assert again.status == 200 and json.loads(again.body)["id"] == first
    finally:
        assert s.stop() == 0
