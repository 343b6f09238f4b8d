# SPDX-License-Identifier: Apache-2.0
"""Security regressions, API side: who may call what, on whose data (issue 10).

Findings covered here. The numbers are this suite's reading of issue 10, whose text was not
at hand when it was written: each comes with its topic, so that a renumbering is easy.
- Finding 1, one shared key and no authorization (BOLA, function-level access):
  test_probes_need_no_key_everything_else_does, test_roles_reach_only_their_routes,
  test_another_tenants_prescription_is_404_exactly_like_an_unknown_one.
- Finding 2, the pharmacy inbound route trusts any caller about any prescription:
  test_a_pharmacy_speaks_only_for_itself_about_its_own_prescriptions,
  test_an_accepted_pharmacy_message_names_its_client_as_actor,
  test_a_network_hub_speaks_for_every_pharmacy.
- Finding 3, Idempotency-Key shared by every client (a replay leaks another client's
  prescription): test_idempotency_keys_are_scoped_per_client.
- Finding 4, authentication (weak keys accepted, keys compared after decoding, no key
  life cycle): test_x_api_key_and_bearer_carry_the_key_as_sent,
  test_weak_api_keys_stop_the_server_and_are_not_echoed (and its control,
  test_a_strong_api_key_starts_the_server), test_clients_file_changes_apply_without_a_restart.
  Failed-authentication throttling (also finding 4) is in test_limits.py, finding 5
  (resource consumption) there too, finding 6 (files and printed secrets) in test_files.py.
"""
import json
import os
import subprocess
import tempfile
import time

import pytest

from sec_harness import (ACKNOWLEDGED, BIN, HOST, KEY_RE, Process, Server, add_client, call,
                         clean_env, free_port, lisinopril, random_key, rxflow_cli, rxfill,
                         wait_for)

RX = "/api/v1/prescriptions"
INBOUND = "/api/v1/pharmacy/inbound"
DEMO_PRACTITIONER = "dr-lindqvist"
ZERO_SHA = "0" * 64


class Tenants:
    """One server, two prescriber tenants and the other roles, one prescription each tenant.
    --no-auto-route and no simulator: nothing changes a prescription but these tests. The
    EPCS demo is on so that the signing routes are really there (not 501)."""

    def __init__(self, tmp):
        clients = os.path.join(tmp, "clients.json")
        self.key = {
            "north": add_client(clients, "north-ehr", "prescriber", tenant="north"),
            "south": add_client(clients, "south-ehr", "prescriber", tenant="south"),
            "operator": add_client(clients, "north-ops", "operator", tenant="north"),
            "metrics": add_client(clients, "scraper", "metrics"),
            "pharmacy": add_client(clients, "riverbend", "pharmacy", ncpdp=["4712345"]),
        }
        self.server = Server(tmp, "--no-auto-route", "--no-simulator", clients=clients,
                             epcs_demo=True)
        try:
            self.id = {t: self.server.submit(self.key[t], f"tenant-{t}")
                       for t in ("north", "south")}
        except BaseException:
            self.server.stop()
            raise


@pytest.fixture(scope="module")
def tenants():
    with tempfile.TemporaryDirectory(prefix="rxflow-sec-") as tmp:
        t = Tenants(tmp)
        try:
            yield t
        finally:
            assert t.server.stop() == 0


def test_roles_reach_only_their_routes(tenants):
    s, k = tenants.server, tenants.key
    north, south = tenants.id["north"], tenants.id["south"]
    fill = rxfill(s.summary(north, k["north"])["message_id"] or "0" * 32, "4712345")
    before = s.summary(north, k["north"])

    # prescriber: its prescription routes; not the pharmacy's route, not the metrics.
    assert s.call("POST", INBOUND, fill, key=k["north"], content_type="application/xml") \
        .status == 403
    assert s.call("GET", "/metrics", key=k["north"]).status == 403

    # pharmacy: only POST /api/v1/pharmacy/inbound.
    p = k["pharmacy"]
    assert s.call("GET", f"{RX}/{north}", key=p).status == 403
    assert s.call("GET", f"{RX}/{north}/events", key=p).status == 403
    assert s.call("POST", RX, lisinopril(), key=p, headers={"Idempotency-Key": "by-pharmacy"}) \
        .status == 403
    assert s.call("POST", f"{RX}/{north}/cancel", '{"reason": "by the pharmacy"}', key=p,
                  content_type="application/json").status == 403
    assert s.call("POST", f"{RX}/{north}/route", "", key=p,
                  content_type="application/json").status == 403

    # operator of tenant north: reads north's summaries and the metrics, nothing else.
    o = k["operator"]
    assert s.call("GET", f"{RX}/{north}", key=o).status == 200
    assert s.call("GET", f"{RX}/{south}", key=o).status == 404
    assert s.call("GET", "/metrics", key=o).status == 200
    assert s.call("GET", f"{RX}/{north}/events", key=o).status == 403
    assert s.call("POST", RX, lisinopril(), key=o, headers={"Idempotency-Key": "by-operator"}) \
        .status == 403
    assert s.call("POST", f"{RX}/{north}/cancel", '{"reason": "by the operator"}', key=o,
                  content_type="application/json").status == 403
    assert s.call("POST", INBOUND, fill, key=o, content_type="application/xml").status == 403

    # metrics: GET /metrics only.
    m = k["metrics"]
    r = s.call("GET", "/metrics", key=m)
    assert r.status == 200 and "rxflow_" in r.body
    assert s.call("GET", f"{RX}/{north}", key=m).status == 403
    assert s.call("POST", RX, lisinopril(), key=m, headers={"Idempotency-Key": "by-metrics"}) \
        .status == 403
    assert s.call("POST", INBOUND, fill, key=m, content_type="application/xml").status == 403

    # None of the refused commands changed anything.
    after = s.summary(north, k["north"])
    assert (after["status"], after["version"]) == (before["status"], before["version"])


def unknown_like(pid):
    """An id of the same shape as `pid` that names no prescription (its last character
    changed)."""
    last = pid[-1]
    return pid[:-1] + ("0" if last != "0" else "1")


def prescriber_routes(pid):
    """Every prescriber route on prescription `pid`: (method, path, body, content type).
    Bodies are well-formed, so that only the id decides the answer."""
    ready = json.dumps({"practitioner": DEMO_PRACTITIONER, "dea_number": "BL4721052",
                        "bundle_sha256": ZERO_SHA})
    sign = json.dumps({"practitioner": DEMO_PRACTITIONER, "bundle_sha256": ZERO_SHA,
                       "password": "not-the-password", "otp": "000000"})
    base = f"{RX}/{pid}"
    return [
        ("GET", base, None, None),
        ("GET", f"{base}/events", None, None),
        ("POST", f"{base}/route", "", "application/json"),
        ("POST", f"{base}/cancel", '{"reason": "cross-tenant sweep"}', "application/json"),
        ("GET", f"{base}/signing-bundle?practitioner={DEMO_PRACTITIONER}", None, None),
        ("POST", f"{base}/ready", ready, "application/json"),
        ("POST", f"{base}/sign", sign, "application/json"),
    ]


def test_another_tenants_prescription_is_404_exactly_like_an_unknown_one(tenants):
    s = tenants.server
    for me, other in (("north", "south"), ("south", "north")):
        key, theirs = tenants.key[me], tenants.id[other]
        before = s.summary(theirs, tenants.key[other])
        events_before = len(s.events(theirs, tenants.key[other]))
        unknown = unknown_like(theirs)
        assert s.call("GET", f"{RX}/{unknown}", key=tenants.key[other]).status == 404
        for (method, path, body, ctype), (_, upath, _, _) in zip(prescriber_routes(theirs),
                                                               prescriber_routes(unknown)):
            got = s.call(method, path, body, key=key, content_type=ctype)
            ref = s.call(method, upath, body, key=key, content_type=ctype)
            assert got.status == 404, (me, method, path, got)
            assert ref.status == 404, (me, method, upath, ref)
            doc = json.loads(got.body)
            assert doc["resourceType"] == "OperationOutcome", got.body
            # Not an oracle: the answer is the unknown id's, up to the id itself.
            assert json.loads(got.body.replace(theirs, "{id}")) == \
                json.loads(ref.body.replace(unknown, "{id}")), (path, got.body, ref.body)
        after = s.summary(theirs, tenants.key[other])
        assert after["status"] == before["status"], (other, before, after)
        assert after["version"] == before["version"], (other, before, after)
        assert len(s.events(theirs, tenants.key[other])) == events_before


def test_idempotency_keys_are_scoped_per_client(tenants):
    s, north, south = tenants.server, tenants.key["north"], tenants.key["south"]
    body = lisinopril()
    other_body = lisinopril(order="ORD-1002")
    idem = {"Idempotency-Key": "shared-idempotency-key-1"}

    first = s.call("POST", RX, body, key=north, headers=idem)
    assert first.status == 201, first
    first_id = json.loads(first.body)["id"]
    changed = s.call("POST", RX, other_body, key=north, headers=idem)
    assert changed.status == 422, changed
    assert "Idempotency-Key" in changed.body
    replay = s.call("POST", RX, body, key=north, headers=idem)
    assert replay.status == 200, replay
    assert json.loads(replay.body)["id"] == first_id

    # Another client (another tenant) with the same key string: its own, new prescription.
    theirs = s.call("POST", RX, body, key=south, headers=idem)
    assert theirs.status == 201, theirs
    their_id = json.loads(theirs.body)["id"]
    assert their_id != first_id
    assert first_id not in theirs.body
    assert s.call("GET", f"{RX}/{first_id}", key=south).status == 404
    again = s.call("POST", RX, body, key=south, headers=idem)
    assert again.status == 200 and json.loads(again.body)["id"] == their_id


# Failed authentications last on this server: an address that fails too often is throttled
# (test_limits.py), and these few must not get near that before the tests above ran.


def test_probes_need_no_key_everything_else_does(tenants):
    s = tenants.server
    assert s.call("GET", "/healthz").status == 200
    assert s.call("GET", "/readyz").status == 200
    assert s.call("GET", "/metrics").status == 401
    assert s.call("GET", f"{RX}/{tenants.id['north']}").status == 401
    assert s.call("POST", RX, lisinopril(), headers={"Idempotency-Key": "no-key"}).status == 401


def test_x_api_key_and_bearer_carry_the_key_as_sent(tenants):
    s, key, pid = tenants.server, tenants.key["north"], tenants.id["north"]
    assert s.call("GET", f"{RX}/{pid}", key=key).status == 200
    assert s.call("GET", f"{RX}/{pid}", key=key, bearer=True).status == 200
    # The same key with its 5th character percent-encoded is another key: no decoding.
    encoded = key[:4] + "%%%02X" % ord(key[4]) + key[5:]
    assert s.call("GET", f"{RX}/{pid}", key=encoded).status == 401


# --- pharmacy binding ---------------------------------------------------------------------

RIVERBEND = "4712345"  # the lisinopril fixture's pharmacy
ELSEWHERE = "4799991"  # another pharmacy, named in a copy of it


class PharmacyNet:
    """rxflow serve --no-simulator routing every pharmacy (directory "*") to a standalone
    pharmacy-simulator without a callback URL: it answers Status 000 and never fills, so a
    prescription stays acknowledged until a test posts an RxFill."""

    def __init__(self, tmp):
        clients = os.path.join(tmp, "clients.json")
        self.prescriber = add_client(clients, "clinic", "prescriber", tenant="t1")
        self.riverbend = add_client(clients, "riverbend", "pharmacy", ncpdp=[RIVERBEND])
        self.hub = add_client(clients, "hub", "pharmacy", ncpdp=["*"])
        sim_port = free_port()
        self.sim = Process("pharmacy-simulator", ["--host", HOST, "--simulator-port",
                                                  str(sim_port)], cwd=tmp, keys=False)
        self.server = None
        try:
            directory = os.path.join(tmp, "pharmacies.json")
            with open(directory, "w") as f:
                json.dump({"pharmacies": [{"ncpdp_id": "*",
                                           "url": f"http://{HOST}:{sim_port}/ncpdp"}]}, f)
            self.server = Server(tmp, "--no-simulator", "--pharmacies", directory,
                                 clients=clients)
            self._prescriptions()
        except BaseException:
            self.stop()
            raise

    def _prescriptions(self):
        s = self.server
        self.a = s.submit(self.prescriber, "net-a")  # to Riverbend
        self.b = s.submit(self.prescriber, "net-b", lisinopril(ncpdp=ELSEWHERE))
        self.c = s.submit(self.prescriber, "net-c", lisinopril(ncpdp=ELSEWHERE))
        assert wait_for(lambda: all(self.summary(i)["status"] in ACKNOWLEDGED
                                    for i in (self.a, self.b, self.c)), 30), \
            [self.summary(i) for i in (self.a, self.b, self.c)]
        assert self.summary(self.a)["pharmacy_ncpdp_id"] == RIVERBEND
        assert self.summary(self.b)["pharmacy_ncpdp_id"] == ELSEWHERE

    def stop(self):
        """The server's exit code (after stopping the simulator too)."""
        code = self.server.stop() if self.server else 0
        self.sim.stop()
        return code

    def summary(self, pid):
        return self.server.summary(pid, self.prescriber)

    def events(self, pid):
        return self.server.events(pid, self.prescriber)

    def post(self, key, xml):
        return self.server.call("POST", INBOUND, xml, key=key, content_type="application/xml")


@pytest.fixture(scope="module")
def net():
    with tempfile.TemporaryDirectory(prefix="rxflow-sec-") as tmp:
        n = PharmacyNet(tmp)
        try:
            yield n
        finally:
            assert n.stop() == 0


def test_a_pharmacy_speaks_only_for_itself_about_its_own_prescriptions(net):
    before = net.summary(net.b)
    events_before = net.events(net.b)
    message_id = before["message_id"]
    assert message_id
    # From another pharmacy than the caller's: refused, even where that pharmacy is right.
    r = net.post(net.riverbend, rxfill(message_id, ELSEWHERE))
    assert r.status == 403, r
    # From the caller's own pharmacy, about a prescription sent to another one: refused.
    r = net.post(net.riverbend, rxfill(message_id, RIVERBEND))
    assert r.status == 403, r
    # A prescriber key is no pharmacy.
    r = net.post(net.prescriber, rxfill(message_id, ELSEWHERE))
    assert r.status == 403, r
    after = net.summary(net.b)
    assert (after["status"], after["version"]) == (before["status"], before["version"])
    assert after["status"] in ACKNOWLEDGED
    assert net.events(net.b) == events_before


def test_an_accepted_pharmacy_message_names_its_client_as_actor(net):
    seen = len(net.events(net.a))
    r = net.post(net.riverbend, rxfill(net.summary(net.a)["message_id"], RIVERBEND))
    assert r.status == 200, r
    assert json.loads(r.body)["prescription_id"] == net.a
    assert net.summary(net.a)["status"] == "Dispensed"
    new = net.events(net.a)[seen:]
    assert new, "the RxFill recorded nothing"
    # The client and the pharmacy it spoke as (Header/From).
    assert {e["actor"] for e in new} == {f"pharmacy:riverbend/ncpdp:{RIVERBEND}"}, new


def test_a_network_hub_speaks_for_every_pharmacy(net):
    seen = len(net.events(net.c))
    r = net.post(net.hub, rxfill(net.summary(net.c)["message_id"], ELSEWHERE))
    assert r.status == 200, r
    assert net.summary(net.c)["status"] == "Dispensed"
    new = net.events(net.c)[seen:]
    assert new and {e["actor"] for e in new} == {f"pharmacy:hub/ncpdp:{ELSEWHERE}"}, new


# --- keys ---------------------------------------------------------------------------------

WEAK_KEYS = [
    "e2e-api-key-000000000000000000",  # the old e2e key: 30 characters
    "short-key-0123456789",  # under 32 characters
    "Zq4%41Wm8Rt2Yx6Kp0Lv3Nb7Hc5Jd9Fg1Sa",  # 35 characters with a '%'
    "abababababababababababababababababababab",  # 40 characters, 2 distinct
    "0123456780123456780123456780123456780123",  # 40 characters, 9 distinct
]


def serve_argv(tmp, port):
    return [os.path.join(BIN, "rxflow"), "serve", "--host", HOST, "--port", str(port),
            "--database-url", f"sqlite://{tmp}/rxflow.db", "--no-epcs-demo"]


@pytest.mark.parametrize("weak", WEAK_KEYS)
def test_weak_api_keys_stop_the_server_and_are_not_echoed(tmp, weak):
    out = subprocess.run(serve_argv(tmp, free_port()), cwd=tmp, capture_output=True, text=True,
                         timeout=30, env=clean_env(API_KEYS=f"{random_key()},{weak}"))
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert out.stderr.strip(), "no message says why"
    assert weak not in out.stderr and weak not in out.stdout


def test_a_strong_api_key_starts_the_server(tmp):
    """The control of the test above: the same command with a strong key serves."""
    key = random_key()
    port = free_port()
    p = Process("rxflow", serve_argv(tmp, port)[2:], env={"API_KEYS": key}, cwd=tmp,
                ready_line="Ctrl-C", keys=False)
    try:
        assert call(port, "GET", f"{RX}/unknown-id", key=key).status == 404
        assert call(port, "GET", f"{RX}/unknown-id", key=random_key()).status == 401
    finally:
        assert p.stop() == 0


def test_clients_file_changes_apply_without_a_restart(tmp):
    clients = os.path.join(tmp, "clients.json")
    first = add_client(clients, "first", "prescriber", tenant="t1")
    s = Server(tmp, "--no-auto-route", clients=clients)
    try:
        probe = f"{RX}/unknown-id"  # 404 for an authorised prescriber, 401 for a bad key

        def status(key):
            return s.call("GET", probe, key=key).status

        def works_soon(key):
            """Waits for the reread (~2 s) before trying a new key, and tries it twice at
            most: each early try is a failed authentication, which the server throttles."""
            time.sleep(2.5)
            if status(key) == 404:
                return True
            time.sleep(2.0)
            return status(key) == 404

        assert status(first) == 404
        # Added while the server runs: in use within ~2 s.
        second = add_client(clients, "second", "prescriber", tenant="t1")
        assert works_soon(second)

        # Rotated with an overlap: the new key works, the old one still does.
        out = rxflow_cli("clients", "rotate", "second", "--file", clients,
                         "--overlap-days", "1")
        assert out.returncode == 0, out.stderr
        rotated = out.stdout.strip()
        assert KEY_RE.fullmatch(rotated) and rotated != second, out.stdout
        assert works_soon(rotated)
        assert status(second) == 404

        # Revoked: every key of that client is refused within ~2 s; the others are not.
        # (Polling is fine here: until then the key works, which is no failure.)
        out = rxflow_cli("clients", "revoke", "second", "--file", clients)
        assert out.returncode == 0, out.stderr
        assert wait_for(lambda: status(rotated) == 401, 6, 0.25), status(rotated)
        assert status(second) == 401
        assert status(first) == 404
        assert s.alive()
    finally:
        assert s.stop() == 0
