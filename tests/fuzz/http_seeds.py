#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Seeds for the HTTP fuzz target (tests/fuzz/http_target.h), written into DIR.

Each seed is what one client sends on one connection: requests on every route with the keys
the target knows, bodies from the fixtures (FHIR for submissions, SCRIPT for the pharmacy
inbound route), sent with Content-Length, chunked, gzip and Expect: 100-continue, pipelined
pairs, and the refusals (431, 413, 415, wrong keys, another tenant). Also writes DIR.dict,
a libFuzzer dictionary of the tokens a mutation is unlikely to find by itself.

Usage: http_seeds.py FIXTURES_DIR OUT_DIR
"""
import gzip
import pathlib
import sys

PRESCRIBER = "rxflow-fuzz-prescriber-Qw8Er4Ty6Ui2Op0As3Df"
OTHER_TENANT = "rxflow-fuzz-other-tenant-Zx7Cv1Bn5Mq9Wk2Lp4"
PHARMACY = "rxflow-fuzz-pharmacy-Hj3Kl6Gf9Ds1Ap8Qm5Vz"
METRICS = "rxflow-fuzz-metrics-Rt2Yu7Io4Pa9Sd1Fg6Hc"
LIMIT = 60 * 1024  # the target's body limit is 64 KiB


def request(method, target, key=None, body=b"", media=None, extra=(), mode="length"):
    head = [f"{method} {target} HTTP/1.1", "Host: rxflow.test"]
    if key:
        head.append(f"X-API-Key: {key}")
    if media:
        head.append(f"Content-Type: {media}")
    head.extend(extra)
    if mode == "gzip":
        body = gzip.compress(body, mtime=0)
        head.append("Content-Encoding: gzip")
    if mode == "chunked":
        head.append("Transfer-Encoding: chunked")
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 700]), body[i:i + 700])
                          for i in range(0, len(body), 700))
        payload = chunks + b"0\r\n\r\n"
    else:
        if body or method == "POST":
            head.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


def main():
    fixtures = pathlib.Path(sys.argv[1])
    out = pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    seeds = {}
    fhir = sorted((fixtures / "fhir").glob("*.json"))
    script = sorted((fixtures / "script").glob("*.xml")) + \
        sorted((fixtures / "script" / "partners").glob("*.xml"))
    for path in fhir:
        body = path.read_bytes()
        if len(body) > LIMIT:
            continue
        for mode in ("length", "chunked", "gzip"):
            seeds[f"submit-{mode}-{path.stem}"] = request(
                "POST", "/api/v1/prescriptions", PRESCRIBER, body, "application/fhir+json",
                ("Idempotency-Key: fuzz-1",), mode)
    for path in script:
        body = path.read_bytes()
        if len(body) > LIMIT:
            continue
        seeds[f"inbound-{path.stem}"] = request(
            "POST", "/api/v1/pharmacy/inbound", PHARMACY, body, "application/xml")
    lisinopril = (fixtures / "fhir" / "medication_request_lisinopril.json").read_bytes()
    rx = "/api/v1/prescriptions/rx-0123456789abcdef"
    seeds["pipelined-submit-get"] = (
        request("POST", "/api/v1/prescriptions", PRESCRIBER, lisinopril, "application/fhir+json")
        + request("GET", "/api/v1/prescriptions?idempotency_key=fuzz-1", PRESCRIBER)
        + request("GET", rx + "/events", PRESCRIBER))
    seeds["continue"] = request("POST", "/api/v1/prescriptions", PRESCRIBER, lisinopril,
                                "application/fhir+json", ("Expect: 100-continue",))
    seeds["other-tenant"] = request("GET", rx, OTHER_TENANT)
    seeds["route"] = request("POST", rx + "/route", PRESCRIBER, b'{"pharmacy":"4712345"}',
                             "application/json")
    seeds["cancel"] = request("POST", rx + "/cancel", PRESCRIBER, b'{"reason":"duplicate"}',
                              "application/json")
    seeds["sign"] = request("POST", rx + "/sign", PRESCRIBER,
                            b'{"otp":"123456","signature":"AAAA"}', "application/json")
    seeds["ready"] = request("POST", rx + "/ready", PRESCRIBER, b"{}", "application/json")
    seeds["bundle"] = request("GET", rx + "/signing-bundle", PRESCRIBER)
    seeds["health"] = request("GET", "/healthz") + request("GET", "/readyz")
    seeds["metrics"] = request("GET", "/metrics", extra=(f"Authorization: Bearer {METRICS}",))
    seeds["wrong-key"] = request("GET", rx, "rxf_0123456789ab_" + "A" * 43)
    seeds["no-route"] = request("DELETE", "/api/v1/prescriptions", PRESCRIBER)
    seeds["header-flood"] = request("GET", "/healthz", extra=[f"X-F{i}: v" for i in range(120)])
    seeds["trailer"] = (b"POST /api/v1/prescriptions HTTP/1.1\r\nHost: x\r\nX-API-Key: "
                        + PRESCRIBER.encode() + b"\r\nContent-Type: application/fhir+json\r\n"
                        b"Transfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\n{}\r\n0\r\n"
                        b"X-T: 1\r\n\r\n")
    seeds["gzip-bomb"] = request("POST", "/api/v1/prescriptions", PRESCRIBER,
                                 b"{" + b" " * 200000 + b"}", "application/fhir+json",
                                 mode="gzip")
    seeds["identity"] = request("POST", "/api/v1/prescriptions", PRESCRIBER, lisinopril,
                                "application/fhir+json", ("Content-Encoding: br",))
    for name, data in seeds.items():
        (out / name).write_bytes(data)

    tokens = [
        "HTTP/1.1", "HTTP/1.0", "\r\n", "\r\n\r\n", "GET ", "POST ", "HEAD ", "OPTIONS ",
        "Content-Length: ", "Transfer-Encoding: chunked", "Content-Encoding: gzip",
        "Content-Encoding: identity", "Expect: 100-continue", "Connection: close",
        "Connection: keep-alive", "Content-Type: application/fhir+json",
        "Content-Type: application/xml", "Content-Type: application/json",
        "Idempotency-Key: ", "Authorization: Bearer ", "X-API-Key: ", "traceparent: ",
        "/api/v1/prescriptions", "/api/v1/pharmacy/inbound", "/events", "/route", "/cancel",
        "/sign", "/ready", "/signing-bundle", "/healthz", "/readyz", "/metrics",
        PRESCRIBER, OTHER_TENANT, PHARMACY, METRICS, "0\r\n\r\n", "\x1f\x8b\x08\x00",
        "<From Qualifier=\"P\">4712345</From>", "<RelatesToMessageID>", "<MessageID>",
    ]
    with open(str(out) + ".dict", "w", encoding="utf-8") as d:
        for t in tokens:
            escaped = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else f"\\x{ord(c):02x}"
                              for c in t)
            d.write(f'"{escaped}"\n')


if __name__ == "__main__":
    main()
