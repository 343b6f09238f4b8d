# SPDX-License-Identifier: Apache-2.0
"""Tests of the rxflow Python module, used as a Python program would use it."""
import json
import os
import re
import pathlib
import subprocess
import sys
import threading
import warnings

import pytest

import rxflow
from shapes import assert_shape

FIXTURES = pathlib.Path(os.environ.get("RXFLOW_FIXTURES", pathlib.Path(__file__).parents[3] / "tests" / "fixtures"))


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_the_module_under_test_is_the_one_asked_for():
    # RXFLOW_MODULE_DIR (tests/cmake/run.sh: the install prefix's dist-packages), else the first
    # PYTHONPATH entry (ctest: the build tree), is where `import rxflow` must have found it.
    expected = os.environ.get("RXFLOW_MODULE_DIR") or os.environ.get("PYTHONPATH", "").split(os.pathsep)[0]
    if not expected:
        pytest.skip("neither RXFLOW_MODULE_DIR nor PYTHONPATH names the module's directory")
    # The package is a folder: <dir>/rxflow/__init__.py beside the compiled rxflow/_rxflow.
    package = pathlib.Path(rxflow.__file__).resolve().parent
    assert package.parent == pathlib.Path(expected).resolve(), (rxflow.__file__, expected)


def test_the_package_has_its_parts_and_the_projects_version():
    package = pathlib.Path(rxflow.__file__).resolve().parent
    assert package.name == "rxflow" and pathlib.Path(rxflow.__file__).name == "__init__.py"
    assert pathlib.Path(rxflow._rxflow.__file__).resolve().parent == package
    for part in ("py.typed", "_rxflow.pyi", "types.py"):
        assert (package / part).is_file(), part
    # One source of truth: project(rxflow VERSION x.y.z) in CMakeLists.txt.
    cmake = (pathlib.Path(__file__).parents[3] / "CMakeLists.txt").read_text()
    assert rxflow.__version__ == re.search(r"project\(rxflow VERSION ([0-9.]+)", cmake).group(1)
    # The compiled classes present themselves as the package's.
    assert rxflow.Issue.__module__ == rxflow.Submission.__module__ == "rxflow"
    assert rxflow.InvalidInput.__module__ == "rxflow"
    assert set(rxflow.__all__) <= set(dir(rxflow))


def test_get_and_events_return_the_keys_their_typeddicts_declare(tmp_path):
    # rxflow.types is what a type checker sees: the dicts carry exactly those keys, each of the
    # declared type, so the annotations cannot drift from the C++ that builds them.
    # (The EPCS shapes are checked in test_epcs.py, the clinical ones below.)
    with rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'db'}",
                                         patient_key="0123456789abcdef0123") as service:
        s = service.submit(fixture("fhir/medication_request_lisinopril.json"))
        assert_shape(service.get(s.id), rxflow.types.PrescriptionSummary)
        events = service.events(s.id)
    assert events
    assert_shape(events, list[rxflow.types.Event])


def test_the_shape_check_can_fail():
    with pytest.raises(AssertionError):
        assert_shape({"id": "x"}, rxflow.types.PrescriptionSummary)
    with pytest.raises(AssertionError):
        assert_shape([{"name": 1, "rxcui": "", "strength": "", "unit": "", "precise": ""}],
                     list[rxflow.types.Ingredient])


def test_to_script_accepts_str_bytes_and_dict():
    text = fixture("fhir/medication_request_lisinopril.json")
    for request in (text, text.encode(), json.loads(text)):
        xml = rxflow.to_script(request)
        assert 'TransportVersion="2023011"' in xml
        assert "<NewRx>" in xml
    assert 'TransportVersion="20170715"' in rxflow.to_script(text, script_version="2017071")


def test_to_script_transliterates_only_when_asked():
    request = json.loads(fixture("fhir/medication_request_lisinopril.json"))
    request["patient"]["name"][0]["family"] = "Muñoz-O’Brien"
    with pytest.raises(rxflow.InvalidInput) as e:
        rxflow.to_script(request)
    assert any(i.path == "patient.name[0].family" and i.severity == "error" for i in e.value.issues)
    xml = rxflow.to_script(request, transliterate=True)
    assert "<LastName>Munoz-O&apos;Brien</LastName>" in xml
    request["patient"]["name"][0]["family"] = "Иванов"  # no rule makes Cyrillic ASCII
    with pytest.raises(rxflow.InvalidInput) as e:
        rxflow.to_script(request, transliterate=True)
    assert any("not transliterable" in i.message for i in e.value.issues)


def test_what_a_transform_does_not_carry_is_never_silent():
    # The CLI prints each warning to stderr and the API returns them; from Python a successful
    # call reports them too: as rxflow.DataWarning through Python's warnings, or into a list.
    text = fixture("fhir/medication_request_lisinopril.json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rxflow.to_script(text)
    assert caught and all(w.category is rxflow.DataWarning for w in caught)
    assert issubclass(rxflow.DataWarning, UserWarning)
    assert all(w.filename == __file__ for w in caught)  # shown at the caller's line
    issue = caught[-1].message.issue
    assert isinstance(issue, rxflow.Issue) and issue.severity == "warning"
    assert str(caught[-1].message) == f"{issue.path}: {issue.message}"
    warned = [w.message.issue.path for w in caught]
    assert "medication_request.category" in warned
    # Given a list, the call fills it (every severity) and warns of nothing.
    issues: list = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rxflow.to_script(text, issues=issues)
    assert caught == []
    assert [i.path for i in issues if i.severity == "warning"] == warned
    # A filter can make any loss an error.
    with warnings.catch_warnings():
        warnings.simplefilter("error", rxflow.DataWarning)
        with pytest.raises(rxflow.DataWarning):
            rxflow.to_script(text)
    with pytest.raises(TypeError, match="issues must be a list"):
        rxflow.to_script(text, issues=())
    # A refused call gives the list what the exception carries.
    issues = []
    with pytest.raises(rxflow.InvalidInput) as e:
        rxflow.to_script('{"medication_request": {"resourceType": "MedicationRequest", "status": 7}}',
                         issues=issues)
    assert [str(i) for i in issues] == [str(i) for i in e.value.issues] and issues


def test_check_and_the_service_transliterate_as_to_script_does(tmp_path):
    request = json.loads(fixture("fhir/medication_request_lisinopril.json"))
    request["patient"]["name"][0]["family"] = "Muñoz"
    errors = [i for i in rxflow.check(request) if i.severity == "error"]
    assert [i.path for i in errors] == ["patient.name[0].family"]
    found = rxflow.check(request, transliterate=True)
    assert not [i for i in found if i.severity in ("error", "fatal")]
    assert any(i.path == "patient.name[0].family" and i.severity == "warning" for i in found)
    url = f"sqlite://{tmp_path / 'db'}"
    key = "0123456789abcdef0123"
    with rxflow.PrescriptionService.open(url, patient_key=key) as service:
        with pytest.raises(rxflow.InvalidInput):
            service.submit(request, issues=[])
    with rxflow.PrescriptionService.open(url, patient_key=key, transliterate=True) as service:
        issues: list = []
        s = service.submit(request, issues=issues)
        assert s.created and s.status == "Transformed"
        assert any(i.path == "patient.name[0].family" for i in issues)


def test_a_transliterated_name_is_warned_by_field_never_by_value():
    request = json.loads(fixture("fhir/medication_request_lisinopril.json"))
    request["patient"]["name"][0]["family"] = "Muñoz"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        xml = rxflow.to_script(request, transliterate=True)
    assert "<LastName>Munoz</LastName>" in xml
    [w] = [w for w in caught if w.message.issue.path == "patient.name[0].family"]
    assert "transliterat" in str(w.message)
    assert not any("Mu" in str(w.message) for w in caught)


def test_to_fhir_and_submit_report_what_they_drop(tmp_path):
    xml = fixture("script/rxfill_dispensed.xml")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rxflow.to_fhir(xml)
    assert [w.message.issue.path for w in caught] == ["/Message/Body/RxFill/Pharmacy/Pharmacist"]
    issues: list = []
    rxflow.to_fhir(xml, issues=issues)
    assert [i.path for i in issues] == ["/Message/Body/RxFill/Pharmacy/Pharmacist"]
    # Lenient and invalid: the Bundle's OperationOutcome carries the issues; nothing is warned.
    invalid = xml.replace("<Pharmacy>", "<Pharmacy><Nonsense/>", 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bundle = rxflow.to_fhir(invalid, lenient=True)
    assert caught == []
    assert bundle["entry"][-1]["resource"]["resourceType"] == "OperationOutcome"
    with rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'db'}",
                                         patient_key="0123456789abcdef0123") as service:
        text = fixture("fhir/medication_request_lisinopril.json")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            service.submit(text)
        assert "medication_request.category" in [w.message.issue.path for w in caught]
        issues = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            replay = service.submit(text, issues=issues)
        assert caught == [] and not replay.created
        assert "medication_request.category" in [i.path for i in issues]


def test_to_script_sends_a_task_transaction_with_to_and_from():
    # A Bundle as to_fhir writes an RxFillIndicatorChange names neither side: to/from_ give them.
    bundle = rxflow.to_fhir(fixture("script/rxfill_indicator_change.xml"))
    with pytest.raises(rxflow.InvalidInput) as e:
        rxflow.to_script(bundle, script_version="2017071")
    assert any(i.path == "options.to" for i in e.value.issues)
    xml = rxflow.to_script(bundle, script_version="2017071", to="1234567", from_="9876543210",
                           from_qualifier="D")
    assert "<RxFillIndicatorChange>" in xml
    assert '<To Qualifier="P">1234567</To>' in xml
    assert '<From Qualifier="D">9876543210</From>' in xml


def test_to_script_cancel_names_the_newrx_it_cancels():
    xml = rxflow.to_script(fixture("fhir/schedule3_testosterone_cancelled.json"), relates_to="NEWRX-0001")
    assert "<CancelRx>" in xml
    assert "<RelatesToMessageID>NEWRX-0001</RelatesToMessageID>" in xml


def test_invalid_input_carries_issues_with_paths():
    with pytest.raises(rxflow.InvalidInput) as e:
        rxflow.to_script('{"medication_request": {"resourceType": "MedicationRequest", "status": 7}}')
    assert isinstance(e.value, rxflow.Error)
    paths = [i.path for i in e.value.issues]
    assert "medication_request.status" in paths
    issue = e.value.issues[0]
    assert issue.severity in ("error", "fatal")
    assert issue.message


def test_prescribing_rule_is_failed_precondition():
    bad = json.loads(fixture("fhir/schedule2_oxycodone.json"))
    bad["medication_request"]["dispenseRequest"]["numberOfRepeatsAllowed"] = 2
    with pytest.raises(rxflow.FailedPrecondition) as e:
        rxflow.to_script(bad)
    assert any(i.path == "medication_request.dispenseRequest.numberOfRepeatsAllowed" for i in e.value.issues)


def test_to_fhir_returns_a_bundle_dict():
    bundle = rxflow.to_fhir(fixture("script/rxfill_dispensed.xml"))
    assert bundle["resourceType"] == "Bundle"
    types = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert "MedicationDispense" in types


def test_to_fhir_reads_what_partners_send():
    newrx = fixture("script/newrx_2017071_lisinopril.xml")
    # Forced: a 2017071 message read as 2023011 is wrong for that profile.
    with pytest.raises(rxflow.InvalidInput):
        rxflow.to_fhir(newrx, script_version="2023011")
    assert rxflow.to_fhir(newrx, script_version="2017071")["resourceType"] == "Bundle"
    assert any(i.severity == "error" for i in rxflow.check(newrx, script_version="2023011"))
    # Lenient: an invalid message still gives a Bundle, its issues in an OperationOutcome.
    invalid = newrx.replace("<MessageID>", "<Bogus>1</Bogus><MessageID>", 1)
    with pytest.raises(rxflow.InvalidInput):
        rxflow.to_fhir(invalid)
    bundle = rxflow.to_fhir(invalid, lenient=True)
    outcome = bundle["entry"][-1]["resource"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert any("/Message/Header/Bogus" in i["expression"] for i in outcome["issue"])
    assert any(e["resource"]["resourceType"] == "MedicationRequest" for e in bundle["entry"])
    # SCRIPT 10.6: Unsupported (an InvalidInput), one issue naming it.
    old = newrx.replace("<Message ", '<Message version="010" release="006" ', 1)
    with pytest.raises(rxflow.Unsupported) as e:
        rxflow.to_fhir(old)
    assert isinstance(e.value, rxflow.InvalidInput)
    assert [i.message for i in e.value.issues] == [
        "SCRIPT 10.6 is not supported by RxFlow: it reads SCRIPT 2017071 and 2023011"]
    with pytest.raises(rxflow.InvalidInput):
        rxflow.to_fhir(newrx, script_version="10.6")


def test_to_fhir_and_check_take_the_charset_a_transport_named():
    # A Latin-1 RxFill without a declaration, as an HTTP body with Content-Type
    # `application/xml; charset=ISO-8859-1`: read by that charset (RFC 7303), not as UTF-8.
    text = fixture("script/rxfill_dispensed.xml").replace('<?xml version="1.0" encoding="UTF-8"?>', "", 1)
    # (A comment: SCRIPT's values themselves are printable ASCII.)
    latin1 = text.replace("<Header>", "<!-- envoyé --><Header>", 1).encode("latin-1")
    with pytest.raises(rxflow.InvalidInput) as e:
        rxflow.to_fhir(latin1)
    assert any("UTF-8" in i.message for i in e.value.issues)
    assert rxflow.to_fhir(latin1, charset="ISO-8859-1") == rxflow.to_fhir(text)
    assert any("UTF-8" in i.message for i in rxflow.check(latin1))
    assert not [i for i in rxflow.check(latin1, charset="iso-8859-1") if i.severity in ("error", "fatal")]
    with pytest.raises(rxflow.InvalidInput) as e:
        rxflow.to_fhir(latin1, charset="Shift_JIS")
    assert any("Shift_JIS" in i.message for i in e.value.issues)


def test_to_fhir_reads_a_utf16_message_given_as_bytes():
    newrx = fixture("script/newrx_2017071_lisinopril.xml")
    utf16 = newrx.replace('encoding="UTF-8"', 'encoding="UTF-16"', 1).encode("utf-16")
    assert utf16[:2] in (b"\xff\xfe", b"\xfe\xff")  # Python writes a byte-order mark
    assert rxflow.to_fhir(utf16) == rxflow.to_fhir(newrx)
    # Declared Shift_JIS: refused by name.
    with pytest.raises(rxflow.InvalidInput) as e:
        rxflow.to_fhir(newrx.replace('encoding="UTF-8"', 'encoding="Shift_JIS"', 1))
    assert 'encoding "Shift_JIS"' in e.value.issues[0].message


def test_check_lists_issues_and_never_raises():
    assert [i for i in rxflow.check(fixture("script/status_000.xml")) if i.severity == "error"] == []
    issues = rxflow.check("<Message><Header/></Message>")
    assert any(i.severity in ("error", "fatal") for i in issues)
    assert rxflow.check("neither") and rxflow.check("neither")[0].severity == "fatal"


def test_bad_argument_types_are_type_errors():
    with pytest.raises(TypeError):
        rxflow.to_script(42)
    with pytest.raises(rxflow.InvalidInput):
        rxflow.to_script(fixture("fhir/medication_request_lisinopril.json"), script_version="10.6")


def test_service_submit_get_events_route_cancel(tmp_path):
    url = f"sqlite://{tmp_path / 'store.db'}"
    with rxflow.PrescriptionService.open(url, patient_key="0123456789abcdef0123") as service:
        s = service.submit(fixture("fhir/medication_request_lisinopril.json"))
        assert s.created and s.status == "Transformed"
        again = service.submit(fixture("fhir/medication_request_lisinopril.json"))
        assert not again.created and again.id == s.id
        assert service.get(s.id)["status"] == "Transformed"
        service.route(s.id)
        assert service.get(s.id)["status"] == "Queued"
        events = service.events(s.id)
        assert [e["type"] for e in events] == ["PrescriptionReceived", "PrescriptionTransformed", "PrescriptionQueued"]
        assert events[1]["payload"]["newrx_xml"].startswith("<?xml")
        service.cancel(s.id, "patient request")
        assert service.get(s.id)["status"] == "CancelRequested"
        with pytest.raises(rxflow.NotFound):
            service.get("nope")
        with pytest.raises(rxflow.FailedPrecondition):
            service.route(s.id)


def _store_bytes(directory: pathlib.Path) -> bytes:
    return b"".join((directory / name).read_bytes() for name in ("rx.db", "rx.db-wal")
                    if (directory / name).exists())


@pytest.mark.parametrize("kek", [None, "hybrid"])
def test_the_newrx_is_stored_encrypted_and_read_back_whole(tmp_path, kek):
    # A distinctive patient name: through the service it is there, in the files it is not.
    request = fixture("fhir/medication_request_lisinopril.json").replace("Delacroix", "Quixtwaddle")
    spec = None if kek is None else f"hybrid:{tmp_path / 'keys' / 'phi-hybrid.kek'}"
    with rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'rx.db'}", patient_key="k" * 20,
                                         phi_kek=spec) as service:
        s = service.submit(request)
        assert "Quixtwaddle" in service.events(s.id)[1]["payload"]["newrx_xml"]
    assert b"Quixtwaddle" not in _store_bytes(tmp_path)
    key_file = tmp_path / ("keys/phi-hybrid.kek" if kek else "phi.kek")
    assert key_file.stat().st_mode & 0o777 == 0o600
    # Opened again (a new process would be the same), under the same key file.
    with rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'rx.db'}", patient_key="k" * 20,
                                         phi_kek=spec) as service:
        assert "Quixtwaddle" in service.events(s.id)[1]["payload"]["newrx_xml"]


def test_the_stored_form_opens_with_an_independent_aes_gcm(tmp_path):
    # The documented format (docs/security.md, "PHI at rest"), opened by another implementation
    # of AES-256-GCM (python3-cryptography) from the key file and the database alone: the data
    # key unwrapped with the KEK, then the NewRx with the data key, each under its AAD.
    import base64
    import sqlite3
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    request = fixture("fhir/medication_request_lisinopril.json").replace("Delacroix", "Quixtwaddle")
    with rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'rx.db'}", patient_key="k" * 20) as service:
        s = service.submit(request)
        expected = service.events(s.id)[1]["payload"]["newrx_xml"]
    header, key_b64 = (tmp_path / "phi.kek").read_text().splitlines()
    assert header == "RXFLOW PHI KEK v1"
    kek = base64.b64decode(key_b64)
    import zstandard
    db = sqlite3.connect(tmp_path / "rx.db")
    stream, tenant, payload = db.execute(
        "SELECT stream_id, tenant, payload FROM events WHERE type = 'PrescriptionTransformed'").fetchone()
    sealed = json.loads(payload)["newrx_xml"]
    prefix, rest = sealed.split(".", 1)
    key_id, version, body = rest.rsplit(".", 2)
    assert prefix == "rxenc1" and key_id == json.loads(payload)["phi_key"]
    # A NewRx is compressed before it is sealed: its version carries the mark "z", which the
    # associated data binds.
    assert version.endswith("z")
    version = version[:-1]
    (wrapped,) = db.execute("SELECT wrapped FROM data_keys WHERE key_id = ? AND version = ?",
                            (key_id, int(version))).fetchone()
    wrapped = base64.b64decode(wrapped)
    dek_aad = b"rxflow-kek-wrap-v1\0" + b"rxflow-dek-v1\0" + key_id.encode() + b"\0" + version.encode()
    dek = AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], dek_aad)
    sealed_bytes = base64.b64decode(body)
    value_aad = b"\0".join([b"rxflow-phi-v1", tenant.encode(), stream.encode(), b"newrx_xml",
                            key_id.encode(), version.encode(), b"zstd"])
    frame = AESGCM(dek).decrypt(sealed_bytes[:12], sealed_bytes[12:], value_aad)
    # The frame is made with the sealed-value dictionary (data/zstd/sealed-1.zdict), which it
    # names by its id; without the dictionary it does not expand.
    dictionary = zstandard.ZstdCompressionDict(
        (FIXTURES.parent.parent / "data" / "zstd" / "sealed-1.zdict").read_bytes())
    assert dictionary.dict_id() == 0x52784601
    assert zstandard.get_frame_parameters(frame).dict_id == 0x52784601
    with pytest.raises(zstandard.ZstdError):
        zstandard.ZstdDecompressor().decompress(frame)
    escaped = zstandard.ZstdDecompressor(dict_data=dictionary).decompress(frame).decode()
    assert json.loads('"' + escaped + '"') == expected
    assert "Quixtwaddle" in expected
    # One changed byte of the associated data (another prescription) and it does not open.
    import cryptography.exceptions
    with pytest.raises(cryptography.exceptions.InvalidTag):
        AESGCM(dek).decrypt(sealed_bytes[:12], sealed_bytes[12:], value_aad.replace(stream.encode(), b"x" * len(stream)))


def test_phi_kek_off_stores_plain_text_and_a_bad_spec_is_refused(tmp_path):
    request = fixture("fhir/medication_request_lisinopril.json").replace("Delacroix", "Quixtwaddle")
    with rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'rx.db'}", patient_key="k" * 20,
                                         phi_kek="off") as service:
        service.submit(request)
    assert b"Quixtwaddle" in _store_bytes(tmp_path)  # what the other test shows is absent
    with pytest.raises(rxflow.InvalidInput, match="RXFLOW_PHI_KEK"):
        rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'other.db'}", patient_key="k" * 20,
                                        phi_kek="rot13:please")


def test_controlled_substance_needs_signing_before_routing(tmp_path):
    with rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'db'}", patient_key="k" * 20) as service:
        s = service.submit(fixture("fhir/schedule2_oxycodone.json"))
        assert s.is_controlled and s.status == "ReadyToSign"
        with pytest.raises(rxflow.FailedPrecondition, match="signed"):
            service.route(s.id)


def test_closed_service_refuses_calls(tmp_path):
    service = rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'db'}", patient_key="k" * 20)
    service.close()
    with pytest.raises(ValueError):
        service.get("x")


def test_patient_key_from_the_environment_must_be_long_enough(tmp_path, monkeypatch):
    monkeypatch.setenv("RXFLOW_PATIENT_KEY", "short")
    with pytest.raises(rxflow.InvalidInput, match="16 bytes"):
        rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'db'}")


def test_generated_patient_key_is_kept_owner_only_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("RXFLOW_PATIENT_KEY", raising=False)
    url = f"sqlite://{tmp_path / 'db'}"
    with rxflow.PrescriptionService.open(url) as service:
        first = service.submit(fixture("fhir/medication_request_lisinopril.json"))
    key_file = tmp_path / "patient.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    with rxflow.PrescriptionService.open(url) as service:
        again = service.submit(fixture("fhir/medication_request_lisinopril.json"))
    assert not again.created and again.id == first.id


def test_concurrent_transforms_from_four_threads_are_correct():
    text = fixture("fhir/medication_request_lisinopril.json")
    results = []

    def work():
        for _ in range(25):
            results.append("<NewRx>" in rxflow.to_script(text))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 100


def progress_of_another_thread_during(call):
    """How far a spinning Python thread counts while this thread runs call().

    The switch interval is set far longer than the call (0.5 s): a thread that holds the GIL
    through the call is not asked to hand it over before the call ends, so the count cannot move
    between the two reads around the call. It moves only if call() releases the GIL."""
    count = [0]
    stop = [False]

    def spin():
        while not stop[0]:
            count[0] += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    spinner = threading.Thread(target=spin)
    try:
        spinner.start()
        before = count[0]
        call()
        return count[0] - before
    finally:
        stop[0] = True
        spinner.join()
        sys.setswitchinterval(interval)


def test_the_gil_is_released_during_transforms():
    # A request big enough that one transform takes tens of milliseconds.
    request = json.loads(fixture("fhir/medication_request_lisinopril.json"))
    request["medication_request"]["identifier"] += [
        {"system": "urn:example:padding", "value": str(i)} for i in range(50000)]
    text = json.dumps(request)
    results = []

    def transform():
        results.append(rxflow.to_script(text))

    # The probe works here: across a call of similar length that keeps the GIL (json.loads),
    # the other thread does not move. (Retried: only a stall of the whole machine longer than
    # the switch interval could make it move.)
    assert any(progress_of_another_thread_during(lambda: json.loads(text)) == 0 for _ in range(3))
    # Across one to_script call it does; retried in case the other thread was not scheduled.
    assert any(progress_of_another_thread_during(transform) > 0 for _ in range(3))
    assert results and all("<NewRx>" in xml for xml in results)


def test_the_example_script_runs(tmp_path):
    example = pathlib.Path(__file__).parents[3] / "examples" / "python" / "submit_and_print_events.py"
    env = dict(os.environ, RXFLOW_PATIENT_KEY="0123456789abcdef0123")
    out = subprocess.run([sys.executable, str(example), str(FIXTURES / "fhir/medication_request_lisinopril.json"),
                          f"sqlite://{tmp_path / 'ex.db'}"], capture_output=True, text=True, env=env, check=True)
    assert "PrescriptionTransformed" in out.stdout


def test_find_drugs_ranks_products_with_reasons():
    matches = rxflow.find_drugs("oxycodone/apap 5-325 tab", limit=3)
    assert_shape(matches, list[rxflow.types.DrugMatch])
    assert matches[0]["product"]["dea_schedule"] == "CII"
    assert "acetaminophen" in [i["name"] for i in matches[0]["product"]["ingredients"]]
    assert '"apap" read as "acetaminophen"' in matches[0]["reasons"]
    assert rxflow.find_drugs("xyzzy") == []


def test_screen_interactions_and_the_service_finds_a_pair(tmp_path):
    [f] = rxflow.screen_interactions(["sertraline 50 mg", "phenelzine"])
    assert_shape(f, rxflow.types.Interaction)
    assert f["rule_id"] == "onc-04" and f["severity"] == "contraindicated"
    assert rxflow.screen_interactions(["gemfibrozil", "atorvastatin"]) == []

    def drug(code, display):
        d = json.loads(fixture("fhir/medication_request_lisinopril.json"))
        d["medication_request"]["medication"] = {"concept": {"coding": [
            {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code,
             "display": display}], "text": display}}
        return d

    with rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'rx.db'}") as service:
        first = service.submit(drug("312941", "sertraline 50 MG Oral Tablet"))
        assert first.interactions == []
        second = service.submit(drug("312347", "phenelzine 15 MG Oral Tablet"))
        assert [i["rule_id"] for i in second.interactions] == ["onc-04"]
        assert_shape(second.interactions, list[rxflow.types.Interaction])
        assert second.interactions[0]["other"] == first.id
        types = [e["type"] for e in service.events(second.id)]
        assert "InteractionsScreened" in types
    with rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'block.db'}",
                                         interactions="block") as service:
        service.submit(drug("312941", "sertraline 50 MG Oral Tablet"))
        with pytest.raises(rxflow.FailedPrecondition) as e:
            service.submit(drug("312347", "phenelzine 15 MG Oral Tablet"))
        assert any("onc-04" in i.message for i in e.value.issues)
    with pytest.raises(ValueError):
        rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'x.db'}", interactions="maybe")


def test_query_pdmp_asks_the_pdmp_and_records_the_query(tmp_path):
    """PrescriptionService.query_pdmp against `rxflow pmp simulator` (a real HTTP PDMP
    answering $pdmp-history from ASAP files; none here, so the patient has no history)."""
    assert "RXFLOW_BIN_DIR" in os.environ, "RXFLOW_BIN_DIR: the directory of the rxflow tool"
    rxflow_bin = pathlib.Path(os.environ["RXFLOW_BIN_DIR"]) / "rxflow"
    (tmp_path / "asap").mkdir()
    pdmp = subprocess.Popen([str(rxflow_bin), "pmp", "simulator", "--asap-dir", str(tmp_path / "asap")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first = pdmp.stdout.readline()
        assert first.startswith("PDMP http://127.0.0.1:"), first
        url = first.split()[1]
        with rxflow.PrescriptionService.open(f"sqlite://{tmp_path / 'store.db'}",
                                             patient_key="0123456789abcdef0123") as service:
            s = service.submit(fixture("fhir/medication_request_lisinopril.json"))
            answer = service.query_pdmp(s.id, url)
            assert answer["outcome"] == "not-found", answer
            assert answer["pdmp"] == "fhir pdmp " + url.split("://", 1)[1]
            assert answer["dispensings"] == []
            with pytest.raises(rxflow.NotFound):
                service.query_pdmp("nope", url)
            # Plain HTTP to another machine would carry the patient's name in clear text.
            with pytest.raises(rxflow.InvalidInput):
                service.query_pdmp(s.id, "http://pdmp.example.org/fhir")
            with pytest.raises(rxflow.InvalidInput):
                service.query_pdmp(s.id, url, timeout=0)
            pdmp.terminate()
            pdmp.wait(timeout=30)
            down = service.query_pdmp(s.id, url, timeout=2)
            assert down["outcome"] == "unavailable", down
            queried = [e for e in service.events(s.id) if e["type"] == "PdmpQueried"]
            assert [e["payload"]["outcome"] for e in queried] == ["not-found", "unavailable"]
            assert {e["actor"] for e in queried} == {"python"}
            assert "DELACROIX" not in json.dumps(queried).upper()  # the outcome, not the history
    finally:
        if pdmp.poll() is None:
            pdmp.kill()
        pdmp.wait(timeout=30)
