# SPDX-License-Identifier: Apache-2.0
"""The scaled-out topology as a Compose file (deploy/compose/, issue 14 §6), checked without a
container engine: Debian's docker-compose renders and validates it, and the image's runtime
package list is derived here, on the same Debian, from the very programs the tests run.

- test_compose_refuses_to_render_without_its_secrets: no secret has a default; each missing
  one is named.
- test_compose_renders_the_scaled_out_topology: two APIs, two relays, two routing services,
  the simulator, PostgreSQL, a Kafka-compatible broker and the topic set-up; every program
  from the one image built by the Dockerfile, in start order (store and topics first); APIs
  published on loopback only; the secrets only from the environment (a database password
  with '/' reaches libpq whole, as PGPASSWORD).
- test_the_image_is_debian_bookworm_built_by_the_projects_script: the Dockerfile's stages;
  .env files kept out of the image and of git.
- test_runtime_packages_cover_every_library_the_programs_load: deploy/runtime-packages.sh on
  the built programs names installed Debian packages, the store, broker and TLS libraries
  among them, and refuses a program with a library it cannot find.
"""
import json
import os
import re
import secrets
import shutil
import subprocess

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COMPOSE_DIR = os.path.join(ROOT, "deploy", "compose")
COMPOSE = os.path.join(COMPOSE_DIR, "docker-compose.yml")
BIN = os.environ["RXFLOW_BIN_DIR"]
PROGRAMS = ["ingestion-api", "outbox-relay", "routing-service", "pharmacy-simulator", "rxflow"]
SECRETS = ["POSTGRES_PASSWORD", "RXFLOW_PATIENT_KEY", "RXFLOW_API_KEY", "RXFLOW_SIMULATOR_KEY"]


def docker_compose():
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: scripts/install-deps.sh installs Debian's package"
    return exe


def mount_of(volume):
    """(source, target) of a rendered volume: a dict, or "source:target[:mode]" (Compose v1)."""
    if isinstance(volume, dict):
        return volume["source"], volume["target"]
    parts = volume.split(":")
    return parts[0], parts[1]


def render(env_extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and k != "REDPANDA_IMAGE"}
    env.update(env_extra)
    # An empty env file: a user's .env beside the Compose file must not fill in what the test
    # leaves out.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    return subprocess.run([docker_compose(), "-f", COMPOSE, "--env-file", str(empty), "config"],
                          env=env, capture_output=True, text=True, timeout=60)


def secret_values():
    """A value per secret, each with the characters base64 puts in a password (/ + =)."""
    return {name: secrets.token_urlsafe(24) + "/+=" for name in SECRETS}


def test_compose_refuses_to_render_without_its_secrets(tmp_path):
    values = secret_values()
    for missing in SECRETS:
        r = render({k: v for k, v in values.items() if k != missing}, tmp_path)
        assert r.returncode != 0, f"rendered without {missing}"
        assert f"set {missing}" in r.stderr, (missing, r.stderr)


def test_compose_renders_the_scaled_out_topology(tmp_path):
    values = secret_values()
    r = render(values, tmp_path)
    assert r.returncode == 0, r.stderr
    config = yaml.safe_load(r.stdout)
    services = config["services"]
    programs = {
        "ingestion-api-1": "ingestion-api", "ingestion-api-2": "ingestion-api",
        "outbox-relay-1": "outbox-relay", "outbox-relay-2": "outbox-relay",
        "routing-service-1": "routing-service", "routing-service-2": "routing-service",
        "pharmacy-simulator": "pharmacy-simulator",
    }
    assert set(services) == set(programs) | {"postgres", "redpanda", "topics"}
    for name, program in programs.items():
        s = services[name]
        assert s["image"] == "rxflow:local", name
        assert s["build"]["context"] == ROOT, name
        assert s["build"]["dockerfile"] == "deploy/compose/Dockerfile", name
        assert s["command"][0] == program, name
        assert s["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                   "topics": {"condition": "service_completed_successfully"}}
        env = s["environment"]
        if program != "pharmacy-simulator":
            # The password reaches libpq as PGPASSWORD: a '/' in it cannot break the URL.
            assert env["DATABASE_URL"] == "postgresql://rxflow@postgres:5432/rxflow"
            assert env["PGPASSWORD"] == values["POSTGRES_PASSWORD"]
            assert env["REDPANDA_BROKERS"] == "redpanda:9092"
            assert env["RXFLOW_PATIENT_KEY"] == values["RXFLOW_PATIENT_KEY"]
    for api, port in (("ingestion-api-1", 8081), ("ingestion-api-2", 8082)):
        env = services[api]["environment"]
        assert env["API_KEYS"] == values["RXFLOW_API_KEY"]
        assert env["PHARMACY_KEYS"] == "*:" + values["RXFLOW_SIMULATOR_KEY"]
        ports = services[api]["ports"]
        assert len(ports) == 1 and ports[0].startswith(f"127.0.0.1:{port}:8080"), ports
    sim = services["pharmacy-simulator"]["environment"]
    assert sim["CALLBACK_API_KEY"] == values["RXFLOW_SIMULATOR_KEY"]
    assert sim["CALLBACK_URL"] == "http://ingestion-api-1:8080/api/v1/pharmacy/inbound"
    # Only the APIs are published, and nothing on every address.
    published = [n for n, s in services.items() if s.get("ports")]
    assert sorted(published) == ["ingestion-api-1", "ingestion-api-2"]
    assert services["topics"]["depends_on"] == {"redpanda": {"condition": "service_healthy"}}
    topics = " ".join(services["topics"]["command"])
    assert "-p 2" in topics
    # It succeeds only when every topic the programs use exists.
    for topic in ("prescription.events", "audit.trail", "routing.requests", "dead.letter"):
        assert topics.count(topic) == 2, topic
    assert "|| exit 1" in topics
    assert services["postgres"]["healthcheck"]["test"][:3] == ["CMD", "pg_isready", "-h"]
    assert services["postgres"]["image"].startswith("postgres:15-bookworm")
    # The routing services read the directory mounted from here; it routes to the simulator.
    for name in ("routing-service-1", "routing-service-2"):
        s = services[name]
        assert s["environment"]["PHARMACY_DIRECTORY"] == "/etc/rxflow/pharmacies.json"
        (mount, keys) = s["volumes"]
        assert os.path.realpath(mount_of(mount)[0]) == os.path.join(COMPOSE_DIR, "pharmacies.json")
        assert mount_of(keys) == ("phi-keys", "/var/lib/rxflow-keys")
    # PHI at rest: the programs that read or write it share the key-encryption key on the
    # phi-keys volume; the relays need none, and no default holds a key.
    for name in ("ingestion-api-1", "ingestion-api-2", "routing-service-1", "routing-service-2"):
        s = services[name]
        assert s["environment"]["RXFLOW_PHI_KEK"] == "file:/var/lib/rxflow-keys/phi.kek", name
        assert ("phi-keys", "/var/lib/rxflow-keys") in [mount_of(v) for v in s["volumes"]], name
    assert "phi-keys" in config["volumes"]
    with open(os.path.join(COMPOSE_DIR, "pharmacies.json")) as f:
        directory = json.load(f)
    assert directory == {"pharmacies": [{"ncpdp_id": "*",
                                         "url": "http://pharmacy-simulator:9090/ncpdp",
                                         "insecure_http": True}]}
    # The file itself holds no secret: every value of a key, password or secret is a
    # required ${...} reference.
    with open(COMPOSE) as f:
        text = f.read()
    for value in values.values():
        assert value not in text
    for line in text.splitlines():
        m = re.match(r"\s*(\w*(?:KEY|KEYS|PASSWORD)\w*):\s*(.+)$", line)
        if m:
            assert re.fullmatch(r'"?[^$"]*\$\{[A-Z_]+:\?[^}]+\}"?', m.group(2)), line


def test_the_image_is_debian_bookworm_built_by_the_projects_script():
    with open(os.path.join(COMPOSE_DIR, "Dockerfile")) as f:
        lines = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
    froms = [l for l in lines if l.startswith("FROM ")]
    assert froms == ["FROM debian:bookworm AS build", "FROM debian:bookworm-slim"]
    text = "\n".join(lines)
    assert "bash scripts/install-deps.sh" in text
    assert "deploy/runtime-packages.sh /opt/rxflow/bin/*" in text
    for program in PROGRAMS:
        assert f"/build/examples/{program}" in text, program
    assert "USER rxflow" in text
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        ignored = f.read().split()
    for must in ("build*/", "rxflow-data/", "third_party/", ".git", ".env", "**/.env"):
        assert must in ignored, must
    # A secrets file beside the Compose file is never tracked by git either (asked of git in
    # a checkout; read from .gitignore in a source tree without one).
    if os.path.exists(os.path.join(ROOT, ".git")):
        r = subprocess.run(["git", "-C", ROOT, "check-ignore", "-q", "deploy/compose/.env"],
                           timeout=30)
        assert r.returncode == 0, "deploy/compose/.env is not ignored by git"
    else:
        with open(os.path.join(ROOT, ".gitignore")) as f:
            assert "**/.env" in f.read().split()


def test_runtime_packages_cover_every_library_the_programs_load(tmp_path):
    script = os.path.join(ROOT, "deploy", "runtime-packages.sh")
    r = subprocess.run([script] + [os.path.join(BIN, p) for p in PROGRAMS],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    packages = r.stdout.split()
    assert packages == sorted(set(packages))
    for needed in ("libssl3", "libpqxx-6.4", "libpq5", "librdkafka1", "libsqlite3-0",
                   "libstdc++6", "libc6"):
        assert needed in packages, (needed, packages)
    for p in packages:
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p],
                                capture_output=True, text=True, timeout=30).stdout
        assert status == "install ok installed", (p, status)
    # A program whose library cannot be found is refused, naming it: a copy of the API
    # whose DT_NEEDED entry for librdkafka is renamed.
    lib = subprocess.run(["ldd", os.path.join(BIN, "ingestion-api")], capture_output=True,
                         text=True, timeout=60).stdout
    name = re.search(r"(librdkafka\S*) =>", lib).group(1).encode()
    with open(os.path.join(BIN, "ingestion-api"), "rb") as f:
        data = f.read()
    assert data.count(name + b"\0") == 1
    patched = tmp_path / "patched"
    patched.write_bytes(data.replace(name + b"\0", b"x" * len(name) + b"\0"))
    patched.chmod(0o755)
    r = subprocess.run([script, str(patched)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, r.stdout
    assert "not found" in r.stderr and "x" * len(name) in r.stderr, r.stderr
