# SPDX-License-Identifier: Apache-2.0
"""TLS on the API (issue 10, Deliver §3), with certificates made at run time by the openssl
command line (a CA, a server certificate for 127.0.0.1, a client certificate):

- test_https_serves_tls_1_2_and_1_3_and_never_plain_http: the API answers over TLS 1.3 and
  over TLS 1.2 (a client capped at 1.2), a plain-HTTP request on the TLS port gets no HTTP
  answer, and a client that trusts another CA fails the handshake.
- test_mutual_tls_refuses_a_client_without_a_certificate: with --tls-client-ca, a client
  without a certificate, or with one from another CA, cannot complete a request; one with a
  certificate from that CA can.
- test_sighup_reloads_the_certificate: new connections get the replacement certificate
  after SIGHUP; a broken replacement leaves the old one serving.
- test_prescriptions_reach_a_pharmacy_over_mutual_tls: routing POSTs the NewRx to a
  pharmacy-simulator serving HTTPS that requires client certificates, over the directory's
  TLS link (a client certificate per link); the link without a certificate gets nothing
  through (the simulator sees only the first prescription).
- test_a_client_certificate_speaks_for_its_pharmacy (Deliver §2, a pharmacy's mTLS
  certificate mapped to its NCPDP id): `rxflow clients add --certificate` binds a pharmacy's
  certificate (the fingerprint it prints is openssl's); behind --tls-client-ca that
  certificate alone, with no key, is the pharmacy: its RxFill from its own NCPDP id is
  accepted (over a resumed TLS session) and recorded with it as actor, one from another
  pharmacy is 403; a certificate of
  the same CA that is bound to nobody is 401; a key of another client beside it is 401; once
  unbound (`clients revoke --certificate`) it is 401 again.
- test_plain_http_off_loopback_is_refused_unless_insecure_http: `--host 0.0.0.0` without a
  certificate exits 2 naming --insecure-http; with --insecure-http it serves (checked on
  127.0.0.1, the only address a test may use).
"""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

from sec_harness import (ACKNOWLEDGED, HOST, Process, Server, add_client, clean_env, free_port,
                         lisinopril, rxfill, rxflow_cli, wait_for)

RX = "/api/v1/prescriptions"


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (args, r.stderr)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj",
            f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return os.path.join(d, f"{name}.pem")


def issue(d, ca, name, cn, server=True):
    """A certificate for `cn` signed by CA `ca`: (certificate file, key file)."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    ext = os.path.join(d, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" if server else
                "extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext, cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


def https(port, ca_file, method="GET", path="/healthz", body=None, key=None, cert=None,
          max_version=None, content_type="application/fhir+json"):
    ctx = ssl.create_default_context(cafile=ca_file)
    if max_version:
        ctx.maximum_version = max_version
    if cert:
        ctx.load_cert_chain(*cert)
    conn = http.client.HTTPSConnection(HOST, port, context=ctx, timeout=10)
    try:
        headers = {"X-API-Key": key} if key else {}
        if body is not None:
            headers["Content-Type"] = content_type
        conn.request(method, path, body=body, headers=headers)
        # (Before the answer: one with "Connection: close" takes the socket from `conn`.)
        version, peer = conn.sock.version(), conn.sock.getpeercert()
        r = conn.getresponse()
        return r.status, r.read().decode(), version, peer
    finally:
        conn.close()


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def over_resumed_session(port, ca_file, cert, first, second):
    """Raw HTTP request `first` on a fresh TLS 1.2 connection presenting client certificate
    `cert`, then `second` on a connection resuming that session (asserted): both answers, as
    read until the server closes."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(*cert)
    session, answers = None, []
    for request in (first, second):
        with socket.create_connection((HOST, port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=HOST, session=session) as tls:
                if session is not None:
                    assert tls.session_reused, "the second connection did not resume"
                tls.sendall(request)
                answer = b""
                while chunk := tls.recv(65536):
                    answer += chunk
                answers.append(answer)
                session = tls.session
    return answers


def tls_server(tmp, *args):
    clients = os.path.join(tmp, "clients.json")
    key = add_client(clients, "ehr", "prescriber", tenant="t")
    server = Server(tmp, *args, clients=clients, env={"LOG_LEVEL": "info"})
    return server, key


def test_https_serves_tls_1_2_and_1_3_and_never_plain_http(tmp_path):
    d = str(tmp_path)
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    cert, key_file = issue(d, "ca", "server", "127.0.0.1")
    server, key = tls_server(d, "--tls-cert", cert, "--tls-key", key_file, "--no-simulator")
    try:
        assert any("https://" in line for line in server.process.lines), server.process.lines
        ca = os.path.join(d, "ca.pem")
        status, body, version, _ = https(server.port, ca, "POST", RX, lisinopril(), key=key)
        assert status == 201, body
        assert version == "TLSv1.3"
        status, _, version, _ = https(server.port, ca, max_version=ssl.TLSVersion.TLSv1_2)
        assert (status, version) == (200, "TLSv1.2")
        # Plain HTTP on the TLS port: no HTTP answer comes back.
        with socket.create_connection((HOST, server.port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                answer = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                answer = b""
        assert b"HTTP/" not in answer, answer
        # Nothing older than TLS 1.2, and no CBC suite on 1.2.
        for old in (["-tls1_1"], ["-tls1_2", "-cipher", "AES128-SHA"]):
            r = subprocess.run(["openssl", "s_client", "-connect", f"{HOST}:{server.port}",
                                "-CAfile", ca, *old], input="", capture_output=True,
                               text=True, timeout=30)
            assert r.returncode != 0 and "BEGIN CERTIFICATE" not in r.stdout, (old, r.stdout)
        # A client that trusts another CA does not get through.
        try:
            https(server.port, os.path.join(d, "other-ca.pem"))
            raise AssertionError("the handshake succeeded against an untrusted CA")
        except ssl.SSLCertVerificationError:
            pass
    finally:
        assert server.stop() == 0


def test_mutual_tls_refuses_a_client_without_a_certificate(tmp_path):
    d = str(tmp_path)
    make_ca(d, "ca")
    make_ca(d, "clients-ca")
    make_ca(d, "rogue-ca")
    cert, key_file = issue(d, "ca", "server", "127.0.0.1")
    good = issue(d, "clients-ca", "pharmacy", "pharmacy 4712345", server=False)
    rogue = issue(d, "rogue-ca", "rogue", "pharmacy 4712345", server=False)
    server, _ = tls_server(d, "--tls-cert", cert, "--tls-key", key_file, "--tls-client-ca",
                           os.path.join(d, "clients-ca.pem"), "--no-simulator")
    ca = os.path.join(d, "ca.pem")
    try:
        for bad in (None, rogue):
            try:
                status = https(server.port, ca, cert=bad)[0]
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError,
                    http.client.RemoteDisconnected):
                status = None
            assert status is None, f"a request got {status} with client certificate {bad}"
        assert https(server.port, ca, cert=good)[0] == 200
        # A client resuming its TLS 1.2 session (curl, Go, Java do) gets through again.
        answers = over_resumed_session(server.port, ca, good, HEALTHZ, HEALTHZ)
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers), answers
    finally:
        assert server.stop() == 0


def test_sighup_reloads_the_certificate(tmp_path):
    d = str(tmp_path)
    make_ca(d, "ca")
    first = issue(d, "ca", "first", "127.0.0.1")
    second = issue(d, "ca", "second", "127.0.0.1")
    live_cert, live_key = os.path.join(d, "live.pem"), os.path.join(d, "live.key")
    shutil.copy(first[0], live_cert)
    shutil.copy(first[1], live_key)
    server, _ = tls_server(d, "--tls-cert", live_cert, "--tls-key", live_key, "--no-simulator")
    ca = os.path.join(d, "ca.pem")

    def serial():
        return https(server.port, ca)[3]["serialNumber"]

    try:
        before = serial()
        shutil.copy(second[0], live_cert)
        shutil.copy(second[1], live_key)
        server.process.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: serial() != before, 10), "SIGHUP did not load the new certificate"
        after = serial()
        # A broken replacement: the server keeps serving the certificate it has.
        with open(live_key, "w") as f:
            f.write("not a key\n")
        server.process.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: any("TLS certificate not reloaded" in line
                                    for line in server.process.stderr), 10)
        assert serial() == after
    finally:
        assert server.stop() == 0


def test_prescriptions_reach_a_pharmacy_over_mutual_tls(tmp_path):
    d = str(tmp_path)
    make_ca(d, "network-ca")  # signs the pharmacy's server certificate
    make_ca(d, "links-ca")    # signs the certificates RxFlow presents on its links
    sim_cert, sim_key = issue(d, "network-ca", "pharmacy", "127.0.0.1")
    link_cert, link_key = issue(d, "links-ca", "link", "rxflow routing", server=False)
    sim_port = free_port()
    sim = Process("pharmacy-simulator",
                  ["--host", HOST, "--simulator-port", str(sim_port), "--tls-cert", sim_cert,
                   "--tls-key", sim_key, "--tls-client-ca", os.path.join(d, "links-ca.pem")],
                  cwd=d, keys=False)
    server = None
    try:
        url = f"https://{HOST}:{sim_port}/ncpdp"
        ca = os.path.join(d, "network-ca.pem")
        directory = os.path.join(d, "pharmacies.json")
        with open(directory, "w") as f:
            json.dump({"pharmacies": [
                {"ncpdp_id": "4712345", "url": url,
                 "tls": {"certificate": link_cert, "key": link_key, "ca": ca}},
                # The same pharmacy endpoint on a link without a client certificate.
                {"ncpdp_id": "4799991", "url": url + "?link=no-certificate",
                 "tls": {"ca": ca}}]}, f)
        clients = os.path.join(d, "clients.json")
        key = add_client(clients, "ehr", "prescriber", tenant="t")
        server = Server(d, "--no-simulator", "--pharmacies", directory, "--max-attempts", "2",
                        clients=clients)
        sent = server.submit(key, "mtls-1")
        assert wait_for(lambda: server.summary(sent, key)["status"] in ("Acknowledged",
                                                                         "Verified"), 30), \
            server.summary(sent, key)
        refused = server.submit(key, "mtls-2", lisinopril(ncpdp="4799991"))
        assert wait_for(lambda: server.summary(refused, key)["status"] == "Failed", 30), \
            server.summary(refused, key)
        stats = json.loads(https(sim_port, ca, path="/admin/stats",
                                 cert=(link_cert, link_key))[1])
        assert stats["unique"] == 1, stats
        # (The refusal was the handshake's: without a certificate nothing gets an answer.)
        try:
            status = https(sim_port, ca, path="/healthz")[0]
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError,
                http.client.RemoteDisconnected):
            status = None
        assert status is None
    finally:
        if server:
            assert server.stop() == 0
        sim.stop()


def fingerprint(cert_file):
    """openssl's SHA-256 fingerprint of the certificate, as the clients file writes it."""
    r = subprocess.run(["openssl", "x509", "-in", cert_file, "-noout", "-fingerprint", "-sha256"],
                       capture_output=True, text=True, timeout=30, check=True)
    return r.stdout.strip().split("=", 1)[1].replace(":", "").lower()


def test_a_client_certificate_speaks_for_its_pharmacy(tmp_path):
    riverbend_id, elsewhere_id = "4712345", "4799991"  # the fixture's pharmacy, another one
    d = str(tmp_path)
    make_ca(d, "ca")
    make_ca(d, "clients-ca")
    cert, key_file = issue(d, "ca", "server", "127.0.0.1")
    riverbend = issue(d, "clients-ca", "riverbend", f"pharmacy {riverbend_id}", server=False)
    stranger = issue(d, "clients-ca", "stranger", "clinic workstation", server=False)
    clients = os.path.join(d, "clients.json")
    prescriber = add_client(clients, "clinic", "prescriber", tenant="t1")
    out = rxflow_cli("clients", "add", "riverbend", "--role", "pharmacy", "--ncpdp-id",
                     riverbend_id, "--certificate", riverbend[0], "--file", clients)
    assert out.returncode == 0, out.stderr
    bound = fingerprint(riverbend[0])
    assert out.stdout == bound + "\n", out.stdout  # the fingerprint only: no key was made
    listed = rxflow_cli("clients", "list", "--file", clients).stdout
    assert f"riverbend pharmacy tenant=- ncpdp_ids={riverbend_id} keys=none " \
           f"certificate={bound}" in listed, listed
    # The same certificate cannot speak for a second client.
    again = rxflow_cli("clients", "certificate", "clinic", riverbend[0], "--file", clients)
    assert again.returncode == 2 and "already bound to client \"riverbend\"" in again.stderr, \
        again.stderr

    sim_port = free_port()
    sim = Process("pharmacy-simulator", ["--host", HOST, "--simulator-port", str(sim_port)],
                  cwd=d, keys=False)
    server = None
    try:
        directory = os.path.join(d, "pharmacies.json")
        with open(directory, "w") as f:
            json.dump({"pharmacies": [{"ncpdp_id": "*",
                                       "url": f"http://{HOST}:{sim_port}/ncpdp"}]}, f)
        server = Server(d, "--tls-cert", cert, "--tls-key", key_file, "--tls-client-ca",
                        os.path.join(d, "clients-ca.pem"), "--no-simulator", "--pharmacies",
                        directory, clients=clients)
        ca = os.path.join(d, "ca.pem")

        def api(method, path, body=None, key=None, cert=stranger, content_type=None):
            kw = {"content_type": content_type} if content_type else {}
            status, text, _, _ = https(server.port, ca, method, path, body, key=key, cert=cert,
                                       **kw)
            return status, text

        # The prescriber's workstation certificate is bound to nobody: its key decides.
        status, text = api("POST", RX, lisinopril(), key=prescriber)
        assert status == 201, text
        pid = json.loads(text)["id"]

        def summary():
            status, text = api("GET", f"{RX}/{pid}", key=prescriber)
            assert status == 200, text
            return json.loads(text)

        assert wait_for(lambda: summary()["status"] in ACKNOWLEDGED, 30), summary()
        message_id = summary()["message_id"]

        def inbound(from_ncpdp, cert, key=None):
            return api("POST", "/api/v1/pharmacy/inbound", rxfill(message_id, from_ncpdp),
                       key=key, cert=cert, content_type="application/xml")

        status, text = inbound(elsewhere_id, riverbend)
        assert status == 403, text  # the certificate is Riverbend's, not another pharmacy's
        status, text = inbound(riverbend_id, stranger)
        assert status == 401 and "not bound to a client" in text, text
        status, text = inbound(riverbend_id, riverbend, key=prescriber)
        assert status == 401 and "belong to different clients" in text, text
        assert summary()["status"] in ACKNOWLEDGED

        # Accepted, and over a resumed TLS session too (curl, Go and Java resume): the session
        # keeps the certificate its full handshake verified.
        body = rxfill(message_id, riverbend_id).encode()
        post = (b"POST /api/v1/pharmacy/inbound HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/xml\r\nConnection: close\r\nContent-Length: " +
                str(len(body)).encode() + b"\r\n\r\n" + body)
        answers = over_resumed_session(server.port, ca, riverbend, HEALTHZ, post)
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers), [a[:300] for a in answers]
        assert summary()["status"] == "Dispensed"
        status, text = api("GET", f"{RX}/{pid}/events", key=prescriber)
        actors = {e["actor"] for e in json.loads(text)["events"]
                  if e["actor"].startswith("pharmacy:")}
        assert actors == {f"pharmacy:riverbend/ncpdp:{riverbend_id}"}, actors

        # Unbound, the certificate is nobody again (the server rereads the clients file).
        out = rxflow_cli("clients", "revoke", "riverbend", "--certificate", bound, "--file",
                         clients)
        assert out.returncode == 0, out.stderr
        assert wait_for(lambda: inbound(riverbend_id, riverbend)[0] == 401, 15)
    finally:
        if server:
            assert server.stop() == 0
        sim.stop()


def test_plain_http_off_loopback_is_refused_unless_insecure_http(tmp_path):
    d = str(tmp_path)
    env = clean_env(RXFLOW_PATIENT_KEY="tls-test-patient-key-0123456789")
    argv = [os.path.join(os.environ["RXFLOW_BIN_DIR"], "ingestion-api"), "--host", "0.0.0.0",
            "--port", str(free_port()), "--database-url", f"sqlite://{d}/rxflow.db"]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "--insecure-http" in r.stderr and "plain HTTP" in r.stderr, r.stderr
    # Told so, it serves plain HTTP (reached here through 127.0.0.1 only).
    port = free_port()
    p = Process("ingestion-api", ["--host", "0.0.0.0", "--port", str(port), "--insecure-http",
                                  "--database-url", f"sqlite://{d}/rxflow.db"],
                env={"RXFLOW_PATIENT_KEY": "tls-test-patient-key-0123456789"}, cwd=d,
                keys=False)
    try:
        deadline = time.time() + 10
        status = None
        while time.time() < deadline and status != 200:
            try:
                conn = http.client.HTTPConnection(HOST, port, timeout=2)
                conn.request("GET", "/healthz")
                status = conn.getresponse().status
                conn.close()
            except OSError:
                time.sleep(0.1)
        assert status == 200
    finally:
        p.stop()
    assert json  # (imported for symmetry with the other suites' helpers)
