# SPDX-License-Identifier: Apache-2.0
"""Security regressions, secrets on disk and in output (issue 10; finding numbers as in
test_api_security.py).

Finding 6, secrets and PHI files readable by others, keys printed where logs keep them:
- test_defaults_keep_their_files_private_and_print_the_generated_key_once: `rxflow serve`
  on defaults makes ./rxflow-data 0700, every file in it without group/other bits (checked
  while it runs, with the SQLite -wal/-shm there, and after), generates the "demo-ehr"
  client, prints its key on the run that generated it only, and the key works.
- test_a_configured_key_never_appears_in_the_output: an API_KEYS key is in neither stdout
  nor stderr, at debug level, with the EPCS demo's printed walkthrough, after requests with
  it and with near misses of it.
"""
import json
import os
import secrets
import stat

from sec_harness import HOST, KEY_RE, Process, call, free_port, lisinopril

RX = "/api/v1/prescriptions"


def serve_on_defaults(tmp, env=None):
    """`rxflow serve` with nothing but a loopback port: data in tmp/rxflow-data."""
    port = free_port()
    env = dict(env or {}, SOFTHSM2_CONF="")
    p = Process("rxflow", ["--host", HOST, "--port", str(port)], env=env, cwd=tmp,
                ready_line="Ctrl-C", keys=False)
    return p, port


def exposed(data):
    """Files under `data` that group or others may use, with their modes; and every file's
    name (relative)."""
    bad, names = [], []
    for root, _, files in os.walk(data):
        for f in files:
            path = os.path.join(root, f)
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue  # a transient file (a journal) gone in between
            names.append(os.path.relpath(path, data))
            if stat.S_ISREG(mode) and mode & 0o077:
                bad.append((path, oct(stat.S_IMODE(mode))))
    return bad, names


def check_private(data):
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700, oct(os.stat(data).st_mode)
    bad, names = exposed(data)
    assert not bad, bad
    for expected in ("rxflow.db", "clients.json", "demo-ehr.key"):
        assert expected in names, names
    return names


def test_defaults_keep_their_files_private_and_print_the_generated_key_once(tmp):
    data = os.path.join(tmp, "rxflow-data")
    key_file = os.path.join(data, "demo-ehr.key")

    first, port = serve_on_defaults(tmp)
    try:
        with open(key_file) as f:
            key = f.read().strip()
        assert KEY_RE.fullmatch(key), key
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        r = call(port, "POST", RX, lisinopril(), key=key, headers={"Idempotency-Key": "demo-1"})
        assert r.status == 201, r  # the demo client is a prescriber
        check_private(data)  # while running: the database's -wal and -shm are there too
    finally:
        assert first.stop() == 0
    check_private(data)
    printed = set(KEY_RE.findall("\n".join(first.lines)))
    assert printed == {key}, printed
    assert key not in "".join(first.stderr)
    with open(os.path.join(data, "clients.json")) as f:
        clients = f.read()
    json.loads(clients)
    assert "demo-ehr" in clients

    second, port = serve_on_defaults(tmp)
    try:
        r = call(port, "GET", f"{RX}/unknown-id", key=key)
        assert r.status == 404, r  # the same key, kept: authorised, nothing there
    finally:
        assert second.stop() == 0
    assert not KEY_RE.findall(second.output()), second.lines
    assert key not in second.output()
    assert any("demo-ehr.key" in line for line in second.lines), second.lines
    with open(key_file) as f:
        assert f.read().strip() == key
    check_private(data)


def test_a_configured_key_never_appears_in_the_output(tmp):
    key = secrets.token_urlsafe(32)
    port = free_port()
    p = Process("rxflow", ["--host", HOST, "--port", str(port),
                           "--database-url", f"sqlite://{tmp}/rxflow.db"],
                env={"API_KEYS": key, "LOG_LEVEL": "debug", "SOFTHSM2_CONF": ""}, cwd=tmp,
                ready_line="Ctrl-C", keys=False)
    try:
        r = call(port, "POST", RX, lisinopril(), key=key, headers={"Idempotency-Key": "cfg-1"})
        assert r.status == 201, r
        pid = json.loads(r.body)["id"]
        assert call(port, "GET", f"{RX}/{pid}/events", key=key, bearer=True).status == 200
        # Near misses, which a log of refused keys would print in full.
        assert call(port, "GET", f"{RX}/{pid}", key=key + "x").status == 401
        assert call(port, "GET", f"{RX}/{pid}", key=key[:-1]).status == 401
    finally:
        assert p.stop() == 0
    out = p.output()
    assert p.lines, "nothing on stdout: the check below would be empty"
    assert key not in out
    assert key[:-1] not in out
