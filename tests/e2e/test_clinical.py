# SPDX-License-Identifier: Apache-2.0
"""End to end: the drug database, interaction screening and PDMP queries through `rxflow
serve`'s API and the `rxflow` tool (drugs import/find, ddi, to-script --drugs, pmp simulator and
query), as a user would."""
import json
import os
import subprocess
import tempfile

from harness import BIN, FIXTURES, LISINOPRIL, Process, get_json, request

RXFLOW = os.path.join(BIN, "rxflow")
CLINICAL = os.path.join(FIXTURES, "clinical")
OVERRIDE = "https://rxflow.dev/fhir/StructureDefinition/interaction-override"


def serve(tmp, *args):
    return Process("rxflow", ["--port", "0", "--no-epcs-demo", *args], cwd=tmp,
                   ready_line="Ctrl-C")


def prescription(code, display, family=None, override=None, schedule=None):
    """The lisinopril fixture with another RxNorm drug (and patient, override, schedule)."""
    d = json.load(open(LISINOPRIL))
    d["medication_request"]["medication"] = {"concept": {"coding": [
        {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code,
         "display": display}], "text": display}}
    if family:
        d["patient"]["name"][0]["family"] = family
    ext = []
    if override:
        ext.append({"url": OVERRIDE, "valueString": override})
    if schedule:
        ext.append({"url": "https://rxflow.dev/fhir/StructureDefinition/dea-schedule",
                    "valueCode": schedule})
    if ext:
        d["medication_request"].setdefault("extension", []).extend(ext)
    return json.dumps(d)


SERTRALINE = ("312941", "sertraline 50 MG Oral Tablet")
PHENELZINE = ("312347", "phenelzine 15 MG Oral Tablet")


def post(api, body):
    status, text = request("POST", f"{api}/api/v1/prescriptions", body)
    return status, json.loads(text)


def events(api, pid):
    return get_json(f"{api}/api/v1/prescriptions/{pid}/events")["events"]


def test_an_interacting_pair_is_found_through_the_api_and_recorded():
    with tempfile.TemporaryDirectory() as tmp:
        s = serve(tmp)
        try:
            api = s.url_after("API").rsplit("/api/", 1)[0]
            status, first = post(api, prescription(*SERTRALINE))
            assert status == 201, first
            assert "interactions" not in first
            status, second = post(api, prescription(*PHENELZINE))
            assert status == 201, second  # warn (the default): stored, with the finding
            [finding] = second["interactions"]
            assert finding["rule_id"] == "onc-04"
            assert finding["severity"] == "contraindicated"
            assert finding["other"] == first["id"]
            assert finding["other_drug"] == "sertraline 50 MG Oral Tablet"
            assert {finding["ingredient"], finding["other_ingredient"]} == {"phenelzine",
                                                                           "sertraline"}
            assert any("drug interaction" in w["message"] for w in second["warnings"])
            recorded = [e for e in events(api, second["id"]) if e["type"] == "InteractionsScreened"]
            assert len(recorded) == 1
            payload = recorded[0]["payload"]
            assert payload["screened_against"] == 1
            assert payload["findings"][0]["rule_id"] == "onc-04"
            assert len(payload["patient_ref"]) == 64  # a keyed hash, not the name
            assert "Smith" not in json.dumps(payload)
            # Another patient: nothing to screen against.
            status, other = post(api, prescription(*PHENELZINE, family="Otherperson"))
            assert status == 201 and "interactions" not in other, other
        finally:
            s.stop()


def test_block_mode_refuses_a_contraindicated_pair_unless_overridden():
    with tempfile.TemporaryDirectory() as tmp:
        s = serve(tmp, "--interactions", "block")
        try:
            api = s.url_after("API").rsplit("/api/", 1)[0]
            status, first = post(api, prescription(*SERTRALINE))
            assert status == 201, first
            status, refused = post(api, prescription(*PHENELZINE))
            assert status == 422, refused
            text = json.dumps(refused)
            assert "onc-04" in text and first["id"] in text and OVERRIDE in text
            status, empty = post(api, prescription(*PHENELZINE, override="   "))
            assert status == 422, empty  # an empty reason overrides nothing, and says so
            assert "overrides nothing" in json.dumps(empty)
            reason = "Cross-taper supervised; sertraline stops tomorrow"
            status, overridden = post(api, prescription(*PHENELZINE, override=reason))
            assert status == 201, overridden
            assert overridden["interactions"][0]["rule_id"] == "onc-04"
            [e] = [e for e in events(api, overridden["id"]) if e["type"] == "InteractionsScreened"]
            assert e["payload"]["override_reason"] == reason
            # The override extension is read by RxFlow, never reported as not sent.
            assert not any(OVERRIDE in w["message"] or "extension" in w["path"]
                           for w in overridden.get("warnings", []))
        finally:
            s.stop()


def test_a_cancelled_prescription_no_longer_interacts():
    with tempfile.TemporaryDirectory() as tmp:
        s = serve(tmp, "--no-auto-route")
        try:
            api = s.url_after("API").rsplit("/api/", 1)[0]
            status, first = post(api, prescription(*SERTRALINE))
            assert status == 201, first
            status, text = request("POST", f"{api}/api/v1/prescriptions/{first['id']}/cancel",
                                   json.dumps({"reason": "changed therapy"}),
                                   content_type="application/json")
            assert status in (200, 202), text
            status, second = post(api, prescription(*PHENELZINE))
            assert status == 201 and "interactions" not in second, second
        finally:
            s.stop()


def without_schedule(node):
    """The fixture with RxFlow's DEA schedule extensions removed, wherever they are."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "extension":
                v = [e for e in v if not e.get("url", "").endswith("/dea-schedule")]
                if not v:
                    continue
            out[k] = without_schedule(v)
        return out
    if isinstance(node, list):
        return [without_schedule(x) for x in node]
    return node


def test_a_schedule_only_in_the_drug_database_takes_the_controlled_path():
    fixture = json.load(open(os.path.join(FIXTURES, "fhir", "schedule2_oxycodone.json")))
    unscheduled = without_schedule(fixture)
    assert "dea-schedule" not in json.dumps(unscheduled)
    with tempfile.TemporaryDirectory() as tmp:
        s = serve(tmp)
        try:
            api = s.url_after("API").rsplit("/api/", 1)[0]
            status, body = post(api, json.dumps(unscheduled))
            assert status == 201, body
            assert body["is_controlled"] is True
            assert body["status"] == "ReadyToSign"  # waits for an EPCS signature
            # The Schedule II rules apply although the request named no schedule.
            refills = json.loads(json.dumps(unscheduled))
            refills["medication_request"]["dispenseRequest"]["numberOfRepeatsAllowed"] = 2
            status, body = post(api, json.dumps(refills))
            assert status == 422 and "Schedule II prescriptions cannot be refilled" in \
                json.dumps(body), body
            # A schedule that disagrees with the database's is a prescribing-rule error.
            status, body = post(api, json.dumps(fixture).replace('"valueCode": "CII"',
                                                                 '"valueCode": "CIV"'))
            assert status == 422, body
            assert "the request says Schedule CIV but the starter formulary has Schedule CII" in \
                json.dumps(body)
        finally:
            s.stop()


def run(*args, cwd=None):
    return subprocess.run([RXFLOW, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_rxflow_drugs_import_find_and_to_script_with_the_store():
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "drugs.db")
        r = run("drugs", "import", "fda-ndc", os.path.join(CLINICAL, "fda-ndc", "product.txt"),
                os.path.join(CLINICAL, "fda-ndc", "package.txt"), "--db", db)
        assert r.returncode == 0, r.stderr
        assert "product.txt: read 15, kept 11, skipped 1, refused 3" in r.stdout
        assert "product.txt:14: PRODUCTNDC" in r.stdout
        assert oct(os.stat(db).st_mode & 0o777) == "0o600"
        r = run("drugs", "import", "rxnorm", os.path.join(CLINICAL, "rxnorm"), "--db", db, "-q")
        assert r.returncode == 0, r.stderr
        assert "National Library of Medicine" in r.stdout  # NLM's attribution
        r = run("drugs", "sources", "--db", db)
        assert r.stdout.split() == ["fda-ndc", "11", "rxnorm", "8"]
        r = run("drugs", "find", "--db", db, "--json", "0406-0512-01")
        [m] = json.loads(r.stdout)
        assert m["product"]["rxcui"] == "1049221" and m["product"]["dea_schedule"] == "CII"
        r = run("drugs", "find", "--db", db, "--json", "percocet", "5/325")
        assert json.loads(r.stdout)[0]["product"]["brand"] == "Percocet"
        r = run("drugs", "find", "xyzzy")
        assert r.returncode == 1
        r = run("drugs", "find", "--db", os.path.join(tmp, "none.db"), "x")
        assert r.returncode == 2 and "no drug store" in r.stderr
        # The transform with the imported store: an NDC it does not know is a warning.
        r = run("to-script", "--drugs", db, LISINOPRIL)
        assert r.returncode == 0, r.stderr
        assert "RxCUI 314076 is not in the drug store drugs.db" in r.stderr


def test_rxflow_ddi_screens_drugs_given_as_words_or_codes():
    r = run("ddi", "--json", "sertraline 50 mg", "312347")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert [f["rule_id"] for f in out["interactions"]] == ["onc-04"]
    assert out["drugs"][1]["rxcui"] == "312347"
    r = run("ddi", "gemfibrozil", "atorvastatin")  # a pair the ONC panel rejected
    assert r.returncode == 0 and "no interaction" in r.stdout


def asap_file(control, rx_number, filled):
    """One dispensing of oxycodone to the lisinopril fixture's patient (Marisol Delacroix,
    1968-04-17, ZIP 23220), as a pharmacy's software sends it to a state PMP: ASAP 4.2B,
    '*' between elements, '~' after each segment, counts in TP and TT."""
    segments = [
        f"TH*4.2B*{control}*01**{filled}*2300*P**~",
        "IS*7654321*ELM STREET PHARMACY",
        "PHA*1234567893*7654321**ELM STREET PHARMACY",
        "PAT*******DELACROIX*MARISOL********23220**19680417*F*01",
        f"DSP*00*{rx_number}*{filled}*0*{filled}*0*01*00406055201*20*5*01*06*00*****"
        "01*1049621",
        "PRE*1922334455*AB1234563**VA*OKAFOR*ADAEZE",
    ]
    segments.append("TP*" + str(len(segments) - 1))  # PHA through TP
    segments.append(f"TT*{control}*{len(segments) + 1}")  # TH through TT
    return "~".join(segments) + "~"


def test_a_pdmp_query_through_the_api_sees_what_pharmacies_reported():
    with tempfile.TemporaryDirectory() as tmp:
        drop = os.path.join(tmp, "asap")
        os.mkdir(drop)
        with open(os.path.join(drop, "20261130.asap"), "w") as f:
            f.write(asap_file("ELM-20261130", "RX-9001", "20261130"))
        pdmp = Process("rxflow pmp simulator", ["--asap-dir", drop], cwd=tmp,
                       ready_line="Ctrl-C")
        s = None
        try:
            url = pdmp.url_after("PDMP")
            # The tool asks it directly.
            r = run("pmp", "query", "--pdmp", url, "--family", "Delacroix", "--given", "Marisol",
                    "--birth-date", "1968-04-17", "--zip", "23220", "--json")
            assert r.returncode == 0, r.stderr
            history = json.loads(r.stdout)
            assert history["outcome"] == "found"
            [d] = history["dispensings"]
            assert d["ndc"] == "00406055201" and d["rx_number"] == "RX-9001"
            assert d["pharmacy"]["ncpdp_id"] == "7654321"
            r = run("pmp", "query", "--pdmp", url, "--family", "Delacroix", "--given", "Maria",
                    "--birth-date", "1968-04-17")
            assert r.returncode == 1 and r.stdout.startswith("not-found"), r.stdout

            # Through the API, for a prescription's patient, recorded on the prescription.
            # Not routed on submit: the simulator pharmacy would dispense it (a terminal
            # state, not queried for) while this test runs.
            s = serve(tmp, "--pdmp", url, "--no-auto-route")
            api = s.url_after("API").rsplit("/api/", 1)[0]
            status, body = post(api, open(LISINOPRIL).read())
            assert status == 201, body
            pid = body["id"]
            status, text = request("POST", f"{api}/api/v1/prescriptions/{pid}/pdmp-query")
            assert status == 200, text
            answer = json.loads(text)
            assert answer["outcome"] == "found"
            assert answer["pdmp"] == "fhir pdmp " + url.split("://", 1)[1]
            assert [x["rx_number"] for x in answer["dispensings"]] == ["RX-9001"]
            # A file dropped later is in the next answer.
            with open(os.path.join(drop, "20261201.asap"), "w") as f:
                f.write(asap_file("ELM-20261201", "RX-9002", "20261201"))
            status, text = request("POST", f"{api}/api/v1/prescriptions/{pid}/pdmp-query")
            answer = json.loads(text)
            assert [x["rx_number"] for x in answer["dispensings"]] == ["RX-9002", "RX-9001"]
            queried = [e for e in events(api, pid) if e["type"] == "PdmpQueried"]
            assert len(queried) == 2
            last = queried[-1]["payload"] if "payload" in queried[-1] else queried[-1]
            assert last["dispensings"] == 2 and last["outcome"] == "found", last
            assert "DELACROIX" not in json.dumps(queried).upper()  # counts, not the history
            # Unknown prescription: 404. The PDMP down: 502, and the attempt is recorded.
            status, _ = request("POST", f"{api}/api/v1/prescriptions/nope/pdmp-query")
            assert status == 404
            pdmp.stop()
            status, text = request("POST", f"{api}/api/v1/prescriptions/{pid}/pdmp-query")
            assert status == 502, text
            assert json.loads(text)["outcome"] == "unavailable"
            queried = [e for e in events(api, pid) if e["type"] == "PdmpQueried"]
            last = queried[-1]["payload"] if "payload" in queried[-1] else queried[-1]
            assert len(queried) == 3 and last["outcome"] == "unavailable"
        finally:
            pdmp.stop()
            if s:
                s.stop()
        # Without a PDMP configured the route says so.
        s = serve(tmp)
        try:
            api = s.url_after("API").rsplit("/api/", 1)[0]
            status, body = post(api, open(LISINOPRIL).read())
            status, text = request("POST", f"{api}/api/v1/prescriptions/{body['id']}/pdmp-query")
            assert status == 501 and "no PDMP is configured" in text
        finally:
            s.stop()
