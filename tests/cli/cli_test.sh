#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Tests the rxflow tool as a user runs it: files, stdin, exit codes, stderr format.
# Usage: cli_test.sh RXFLOW_BINARY FIXTURES_DIR
set -u
RX="$1"
FX="$2"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0

# check NAME EXPECTED_EXIT GREP_STDOUT GREP_STDERR -- command...
check() {
  local name="$1" want="$2" out_re="$3" err_re="$4"
  shift 5
  "$@" >"$TMP/out" 2>"$TMP/err"
  local got=$?
  local ok=1
  [ "$got" = "$want" ] || ok=0
  if [ -n "$out_re" ] && ! grep -Eq -- "$out_re" "$TMP/out"; then ok=0; fi
  if [ -n "$err_re" ] && ! grep -Eq -- "$err_re" "$TMP/err"; then ok=0; fi
  if [ $ok = 1 ]; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL: $name (exit $got, want $want)"
    head -c 600 "$TMP/out"; echo; head -c 600 "$TMP/err"; echo
  fi
}

L="$FX/fhir/medication_request_lisinopril.json"
check "to-script writes a 2023011 NewRx" 0 'TransportVersion="2023011".*<NewRx>' '' -- "$RX" to-script "$L"
check "to-script --script-version 2017071" 0 'TransportVersion="20170715"' '' -- "$RX" to-script --script-version 2017071 "$L"
check "to-script reads standard input" 0 '<NewRx>' '' -- sh -c "\"$RX\" to-script - < \"$L\""
check "warnings go to stderr as severity: path: message" 0 '' '^warning: medication_request\.category: ' -- "$RX" to-script "$L"
check "check accepts a valid FHIR prescription" 0 '^ok: FHIR prescription is valid' '' -- "$RX" check "$L"
check "check accepts a valid SCRIPT message" 0 '^ok: SCRIPT message is valid' '' -- "$RX" check "$FX/script/status_000.xml"
check "to-fhir writes a Bundle" 0 '"resourceType": "Bundle"' '' -- "$RX" to-fhir "$FX/script/rxfill_dispensed.xml"
sed 's/"numberOfRepeatsAllowed": 0/"numberOfRepeatsAllowed": 2/' "$FX/fhir/schedule2_oxycodone.json" > "$TMP/c2.json"
check "C-II with refills: exit 1 with the path" 1 '' '^error: medication_request\.dispenseRequest\.numberOfRepeatsAllowed: Schedule II' -- "$RX" to-script "$TMP/c2.json"
check "--issues json prints an OperationOutcome" 1 '' '"resourceType": "OperationOutcome"' -- "$RX" to-script --issues json "$TMP/c2.json"
printf '{"medication_request": ' > "$TMP/trunc.json"
check "malformed JSON: exit 1" 1 '' '^fatal: ' -- "$RX" check "$TMP/trunc.json"
check "empty input: exit 1" 1 '' 'neither FHIR JSON' -- sh -c "\"$RX\" check - < /dev/null"
check "binary garbage: exit 1, no crash" 1 '' '' -- sh -c "head -c 4096 /dev/urandom | \"$RX\" check -"
printf '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><Message/>' > "$TMP/xxe.xml"
check "a DTD is refused" 1 '' 'DTD' -- "$RX" to-fhir "$TMP/xxe.xml"
check "missing file: exit 2" 2 '' 'cannot open' -- "$RX" to-script "$TMP/does-not-exist.json"
check "unknown option: exit 2" 2 '' '' -- "$RX" to-script --frobnicate "$L"
check "bad --script-version: exit 2" 2 '' '' -- "$RX" to-script --script-version 10.6 "$L"
check "no subcommand: exit 2" 2 '' '' -- "$RX"
check "--help: exit 0" 0 'to-script' '' -- "$RX" --help
check "--xsd validates against a schema set" 0 '^ok' '' -- "$RX" check --xsd "$FX/xsd" "$FX/script/status_000.xml"
"$RX" to-script --script-version 2017071 --message-id X1 --sent-time 2026-11-26T10:00:00Z "$L" > "$TMP/n.xml" 2>/dev/null
"$RX" to-fhir "$TMP/n.xml" > "$TMP/b.json" 2>/dev/null
check "to-script → to-fhir → to-script is byte-identical" 0 '' '' -- sh -c "\"$RX\" to-script --script-version 2017071 --message-id X1 --sent-time 2026-11-26T10:00:00Z \"$TMP/b.json\" 2>/dev/null | cmp - \"$TMP/n.xml\""
# The Task transactions back to SCRIPT: To and From from the Bundle's parties, or given.
"$RX" to-fhir "$FX/script/rxtransfer_request.xml" > "$TMP/transfer.json" 2>/dev/null
check "to-script turns a transfer request's Bundle into an RxTransferRequest" 0 '<RxTransferRequest>' '' -- "$RX" to-script --script-version 2017071 "$TMP/transfer.json"
"$RX" to-fhir "$FX/script/rxfill_indicator_change.xml" > "$TMP/fill.json" 2>/dev/null
check "an RxFillIndicatorChange names no receiver: exit 1 at options.to" 1 '' '^error: options\.to: ' -- "$RX" to-script "$TMP/fill.json"
check "--to and --from route it" 0 '<RxFillIndicatorChange>' '' -- "$RX" to-script --to 4712345 --from 6719450382001 "$TMP/fill.json"
# What partners send: the version read, forced, lenient output, what is not supported.
N17="$FX/script/newrx_2017071_lisinopril.xml"
check "to-fhir reads a 2017071 message as 2017071" 0 '"resourceType": "Bundle"' '' -- "$RX" to-fhir "$N17"
check "--script-version forces the profile read" 1 '' '^error: /Message/Body/NewRx/Patient/HumanPatient' -- "$RX" to-fhir --script-version 2023011 "$N17"
check "check --script-version forces it too" 1 '' '^error: ' -- "$RX" check --script-version 2023011 "$N17"
sed -E 's/ (DatatypesVersion|TransportVersion|TransactionDomain|TransactionVersion|StructuresVersion|ECLVersion)="[^"]*"//g' "$N17" > "$TMP/nover.xml"
check "no version attributes: 2017071, with a warning" 0 '"resourceType": "Bundle"' '^warning: /Message/@TransportVersion: no SCRIPT version' -- "$RX" to-fhir "$TMP/nover.xml"
sed 's#<MessageID>#<Bogus>1</Bogus><MessageID>#' "$N17" > "$TMP/invalid.xml"
check "to-fhir on an invalid message: exit 1" 1 '' '^error: /Message/Header/Bogus' -- "$RX" to-fhir "$TMP/invalid.xml"
check "to-fhir --lenient: the Bundle with an OperationOutcome, exit 1" 1 '"resourceType": "OperationOutcome"' '^error: /Message/Header/Bogus' -- "$RX" to-fhir --lenient "$TMP/invalid.xml"
sed 's#<Message #<Message version="010" release="006" #' "$N17" > "$TMP/v106.xml"
check "SCRIPT 10.6: one error naming it, exit 1" 1 '' '^error: /Message/@version: SCRIPT 10.6 is not supported by RxFlow' -- "$RX" to-fhir "$TMP/v106.xml"
# A patient whose name SCRIPT cannot carry as written: refused by default, sent
# transliterated to printable ASCII with --transliterate (a warning at the name's path).
sed 's/"Delacroix"/"Muñoz-O’Brien"/' "$L" > "$TMP/munoz.json"
check "a name outside printable ASCII is refused at its path: exit 1" 1 '' '^error: patient\.name\[0\]\.family: family name contains characters SCRIPT cannot carry' -- "$RX" to-script "$TMP/munoz.json"
check "--transliterate sends it as printable ASCII, with a warning" 0 '<LastName>Munoz-O&apos;Brien</LastName>' '^warning: patient\.name\[0\]\.family: family name sent transliterated to printable ASCII' -- "$RX" to-script --transliterate "$TMP/munoz.json"
check "check --transliterate accepts it" 0 '^ok: FHIR prescription is valid' '' -- "$RX" check --transliterate "$TMP/munoz.json"
# A Latin-1 message without a declaration (a comment holds é = 0xE9), as received with
# Content-Type `application/xml; charset=ISO-8859-1`: --charset names the encoding (RFC 7303).
sed -e '1d' -e 's#<Header>#<!-- envoy\xe9 --><Header>#' "$FX/script/rxfill_dispensed.xml" > "$TMP/latin1.xml"
check "a Latin-1 message read as UTF-8 is refused: exit 1" 1 '' 'UTF-8' -- "$RX" to-fhir "$TMP/latin1.xml"
check "to-fhir --charset ISO-8859-1 reads it" 0 '"resourceType": "Bundle"' '' -- "$RX" to-fhir --charset ISO-8859-1 "$TMP/latin1.xml"
check "check --charset reads it too" 0 '^ok: SCRIPT message is valid' '' -- "$RX" check --charset iso-8859-1 "$TMP/latin1.xml"
check "a charset RxFlow does not read is refused by name" 1 '' 'Shift_JIS' -- "$RX" to-fhir --charset Shift_JIS "$TMP/latin1.xml"
check "--profile-structure loads a table" 0 '^ok' '' -- "$RX" check --profile-structure "$FX/../../data/script/2017071.structure" "$FX/script/status_000.xml"

# The event store through the tool: submit (idempotent), show, events, replay.
STORE="sqlite://$TMP/data/rx.db"
check "submit stores a prescription" 0 '"created": true, "status": "Transformed"' '' -- "$RX" submit --store "$STORE" "$L"
ID=$(sed -n 's/.*"id": "\([0-9a-f]*\)".*/\1/p' "$TMP/out")
check "submit again replays it" 0 "\"id\": \"$ID\", \"created\": false" '' -- "$RX" submit --store "$STORE" "$L"
check "show prints the summary" 0 '"status":"Transformed"' '' -- "$RX" show --store "$STORE" "$ID"
check "events prints the history" 0 '"type": "PrescriptionTransformed"' '' -- "$RX" events --store "$STORE" "$ID"
check "replay rebuilds the read model" 0 '^replayed 2 events' '' -- "$RX" replay --store "$STORE"
check "show of an unknown id: exit 1" 1 '' 'no prescription' -- "$RX" show --store "$STORE" nope
check "submit of invalid FHIR is refused: exit 1" 1 '' 'Schedule II' -- "$RX" submit --store "$STORE" --idempotency-key refused-1 "$TMP/c2.json"
check "the refused submit stored no event" 0 '^replayed 2 events' '' -- "$RX" replay --store "$STORE"
check "the refused submit left its idempotency key unused" 0 '"created": true' '' -- "$RX" submit --store "$STORE" --idempotency-key refused-1 "$L"
check "a short RXFLOW_PATIENT_KEY is refused: exit 2" 2 '' '16 bytes' -- env RXFLOW_PATIENT_KEY=short "$RX" show --store "$STORE" "$ID"
check "the patient key file is private" 0 '^-rw-------' '' -- ls -l "$TMP/data/patient.key"

# PHI at rest (docs/security.md): the NewRx is sealed in the database under phi.kek beside it;
# the tool reads it back; a new KEK takes the data keys over; erasure makes it unreadable.
check "the PHI key file is private" 0 '^-rw-------' '' -- ls -l "$TMP/data/phi.kek"
# (The database must be there for its absence of the name to mean anything.)
check "the patient's name is not in the database or its WAL" 0 '' '' -- sh -c "test -s \"$TMP/data/rx.db\" && ! cat \"$TMP/data/rx.db\" \"$TMP/data/rx.db-wal\" 2>/dev/null | grep -qa Delacroix"
check "events show the NewRx, opened" 0 'Delacroix' '' -- "$RX" events --store "$STORE" "$ID"
check "phi status names the KEK" 0 '^key-encryption key: file:[0-9a-f]{16}$' '' -- "$RX" phi status --store "$STORE"
check "a KEK spec RxFlow does not know: exit 2" 2 '' 'RXFLOW_PHI_KEK: expected file:PATH' -- env RXFLOW_PHI_KEK=rot13:x "$RX" show --store "$STORE" "$ID"
NEWKEK="file:$TMP/keys/new.kek"
check "a KEK file gone missing is not made anew over existing keys: exit 2" 2 '' 'does not exist, but the store holds data keys wrapped by file:' -- env RXFLOW_PHI_KEK="$NEWKEK" "$RX" events --store "$STORE" "$ID"
check "nor was a file made" 0 '' '' -- test ! -e "$TMP/keys/new.kek"
check "phi rewrap moves the data keys to the new KEK" 0 '^rewrapped 1 data key version' '' -- env RXFLOW_PHI_KEK="$NEWKEK" RXFLOW_PHI_KEK_RETIRED="file:$TMP/data/phi.kek" "$RX" phi rewrap --store "$STORE"
check "then nothing is left under the old KEK" 0 'under other keys: 0$' '' -- env RXFLOW_PHI_KEK="$NEWKEK" "$RX" phi status --store "$STORE"
check "phi reseal finds nothing stored plain" 0 '^sealed 0 plain value\(s\), resealed 0 under their newest data key; 0 erased, 0 changed meanwhile$' '' -- env RXFLOW_PHI_KEK="$NEWKEK" "$RX" phi reseal --store "$STORE"
check "and the new KEK alone reads the NewRx" 0 'Delacroix' '' -- env RXFLOW_PHI_KEK="$NEWKEK" "$RX" events --store "$STORE" "$ID"
check "the old KEK alone cannot open a store whose keys the new one wraps: exit 2" 2 '' 'which is not configured' -- "$RX" events --store "$STORE" "$ID"
check "phi rotate adds a data key version" 0 'is now at version 2$' '' -- env RXFLOW_PHI_KEK="$NEWKEK" "$RX" phi rotate --store "$STORE" --prescription "$ID"
check "phi erase needs a reason: exit 2" 2 '' 'reason' -- env RXFLOW_PHI_KEK="$NEWKEK" "$RX" phi erase --store "$STORE" --prescription "$ID"
check "phi erase destroys the patient's data key and records it" 0 '^erased data key [0-9a-f]{64} \(2 version\(s\) destroyed\); recorded as event [0-9a-f]{32}$' '' -- env RXFLOW_PHI_KEK="$NEWKEK" "$RX" phi erase --store "$STORE" --prescription "$ID" --reason "retention period ended"
check "after erasure the events stay, without the NewRx" 0 '"newrx_xml":""' '' -- env RXFLOW_PHI_KEK="$NEWKEK" "$RX" events --store "$STORE" "$ID"
check "a new prescription for the erased patient is refused: exit 1" 1 '' 'was erased' -- env RXFLOW_PHI_KEK="$NEWKEK" "$RX" submit --store "$STORE" --idempotency-key after-erasure "$L"
check "phi erase of an unknown prescription: exit 2" 2 '' 'no prescription nope' -- env RXFLOW_PHI_KEK="$NEWKEK" "$RX" phi erase --store "$STORE" --prescription nope --reason x

# The EPCS audit trail through the tool. Nothing the tool does writes audit records (the signing
# ceremony does), so the chain here is empty; a changed record is named by the unit tests
# (epcs_audit_test.cc changes a byte of an SQLite file; epcs_reports_test.cc reports it).
check "audit verify on a store without audit records" 0 '^audit chain OK: 0 records, 0 checkpoints$' '' -- "$RX" audit verify --store "$STORE"
check "audit report of a day without records" 0 '^incidents: none$' '' -- "$RX" audit report --store "$STORE" --day 2026-03-10
check "audit report --day must be a calendar date: exit 2" 2 '' 'day "2026-02-30" is not a calendar date' -- "$RX" audit report --store "$STORE" --day 2026-02-30
check "audit log prints the CSV header" 0 '^prescription_id,signed_at,dea_number,dea_schedule,drug_description,patient_name,written_date$' '' -- "$RX" audit log --store "$STORE" --practitioner dr-1 --from 2026-01-01 --to 2026-01-31 --order patient
check "audit log --from needs --to: exit 2" 2 '' '' -- "$RX" audit log --store "$STORE" --practitioner dr-1 --from 2026-01-01
check "audit without a subcommand: exit 2" 2 '' '' -- "$RX" audit
check "audit verify of a missing store: exit 2" 2 '' '^rxflow: no store at ' -- "$RX" audit verify --store "sqlite://$TMP/nowhere/rx.db"
check "audit verify created no store there" 1 '' '' -- test -e "$TMP/nowhere"
head -c 4096 /dev/zero | tr '\0' x > "$TMP/garbage.db"
check "audit verify of an unreadable store: exit 2" 2 '' '^rxflow: ' -- "$RX" audit verify --store "sqlite://$TMP/garbage.db"
check "audit verify with a key file that is no key: exit 2" 2 '' 'neither a PEM nor a DER public key' -- "$RX" audit verify --store "$STORE" --checkpoint-key "$L"
check "audit verify with a co-signing key that is no ML-DSA-65 key: exit 2" 2 '' 'not a raw ML-DSA-65 public key' -- "$RX" audit verify --store "$STORE" --cosign-key "$L"

# API clients (rxflow clients): the key is printed once and never stored; the file is private;
# list shows key ids and expiry, never a key or its digest.
CL="$TMP/clients/clients.json"
KEY_RE='^rxf_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$'
TIME_RE='20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z'
check "clients add prints the key alone on stdout" 0 "$KEY_RE" 'key [0-9a-f]{12} for ehr-north: shown once, store it now' -- "$RX" clients add ehr-north --role prescriber --tenant north --file "$CL"
cp "$TMP/out" "$TMP/key1"
KEY1=$(cat "$TMP/key1")
ID1=${KEY1:4:12}
check "clients add printed one line" 0 '' '' -- test "$(wc -l < "$TMP/key1")" = 1
check "the clients file is private" 0 '^-rw-------' '' -- ls -l "$CL"
check "so is the directory it created" 0 '^drwx------' '' -- ls -ld "$TMP/clients"
check "the clients file holds no key" 1 '' '' -- grep -qF -- "${KEY1:17}" "$CL"
check "clients list shows the client" 0 "^ehr-north prescriber tenant=north ncpdp_ids=- key=$ID1,expires=never\$" '' -- "$RX" clients list --file "$CL"
cp "$TMP/out" "$TMP/list"
check "clients list shows neither a key nor a digest" 1 '' '' -- grep -Eq -- "${KEY1:17}|[0-9a-f]{64}" "$TMP/list"
check "RXFLOW_CLIENTS names the file" 0 '^ehr-north ' '' -- env RXFLOW_CLIENTS="$CL" "$RX" clients list
check "clients add of a pharmacy with two NCPDP ids, expiring" 0 "$KEY_RE" '' -- "$RX" clients add pharm-1 --role pharmacy --ncpdp-id 4712345 --ncpdp-id 4712346 --expires-days 30 --file "$CL"
check "clients list shows its ids and expiry" 0 "^pharm-1 pharmacy tenant=- ncpdp_ids=4712345,4712346 key=[0-9a-f]{12},expires=$TIME_RE\$" '' -- "$RX" clients list --file "$CL"
check "clients add of an existing id: exit 2" 2 '' 'client "ehr-north" already exists' -- "$RX" clients add ehr-north --role prescriber --tenant north --file "$CL"
check "clients add of a prescriber without a tenant: exit 2" 2 '' 'tenant: required for the prescriber role' -- "$RX" clients add ehr-south --role prescriber --file "$CL"
check "clients add of a bad NCPDP id: exit 2" 2 '' 'must be exactly 7 digits' -- "$RX" clients add pharm-2 --role pharmacy --ncpdp-id 12345 --file "$CL"
check "clients add of an unknown role: exit 2" 2 '' '' -- "$RX" clients add x --role admin --file "$CL"
check "clients rotate prints a new key" 0 "$KEY_RE" 'shown once, store it now' -- "$RX" clients rotate ehr-north --overlap-days 1 --file "$CL"
KEY2=$(cat "$TMP/out")
ID2=${KEY2:4:12}
check "after rotate the old key expires, the new one does not" 0 "^ehr-north .* key=$ID1,expires=$TIME_RE key=$ID2,expires=never\$" '' -- "$RX" clients list --file "$CL"
check "clients rotate of an unknown client: exit 2" 2 '' 'no client "nobody"' -- "$RX" clients rotate nobody --file "$CL"
check "clients revoke of one key" 0 "^revoked key $ID1 of ehr-north\$" '' -- "$RX" clients revoke ehr-north --key-id "$ID1" --file "$CL"
check "the revoked key is gone from the file" 1 '' '' -- grep -q "$ID1" "$CL"
check "clients revoke of a client" 0 '^revoked client ehr-north and its keys$' '' -- "$RX" clients revoke ehr-north --file "$CL"
check "the revoked client is gone from the file" 1 '' '' -- grep -q 'ehr-north' "$CL"
check "clients revoke of an unknown client: exit 2" 2 '' 'no client "ehr-north"' -- "$RX" clients revoke ehr-north --file "$CL"
check "the clients file is still private" 0 '^-rw-------' '' -- ls -l "$CL"
# A TLS client certificate bound to a pharmacy (ISRG Root X1, whose published fingerprint is
# 96:BC:EC:06:...:C6): no key is made; the fingerprint is printed, listed, unbound.
CERT="$FX/auth/isrg-root-x1.pem"
FP=96bcec06264976f37460779acf28c5a7cfe8a3c0aae11a8ffcee05c0bddf08c6
check "clients add --certificate prints the fingerprint, no key" 0 "^$FP\$" 'bound to riverbend' -- "$RX" clients add riverbend --role pharmacy --ncpdp-id 4712345 --certificate "$CERT" --file "$CL"
check "clients list shows the certificate" 0 "^riverbend pharmacy tenant=- ncpdp_ids=4712345 keys=none certificate=$FP\$" '' -- "$RX" clients list --file "$CL"
check "a certificate binds to one client only" 2 '' 'already bound to client "riverbend"' -- "$RX" clients certificate pharm-1 "$CERT" --file "$CL"
check "clients certificate of a file that is no certificate: exit 2" 2 '' 'no PEM certificate' -- "$RX" clients certificate pharm-1 "$CL" --file "$CL"
check "clients revoke --certificate unbinds it" 0 "^unbound certificate $FP from riverbend\$" '' -- "$RX" clients revoke riverbend --certificate "$FP" --file "$CL"
check "a failed bind prints no fingerprint and saves nothing" 0 '' '' -- sh -c "! \"$RX\" clients certificate pharm-1 \"$CERT\" \"$CL\" --file \"$CL\" 2>/dev/null | grep -q . && ! grep -q $FP \"$CL\""
check "clients certificate binds it to another client" 0 "^$FP\$" '' -- "$RX" clients certificate pharm-1 "$CERT" --file "$CL"
check "clients revoke takes a key id or a certificate, not both" 2 '' 'not both' -- "$RX" clients revoke pharm-1 --key-id 0a1b2c3d4e5f --certificate "$FP" --file "$CL"
check "clients list of a missing file: exit 2" 2 '' 'no clients file at' -- "$RX" clients list --file "$TMP/none/clients.json"
check "clients without a subcommand: exit 2" 2 '' '' -- "$RX" clients

# The C++ example program.
CONVERT="$(dirname "$RX")/rxflow_convert"
check "examples/cpp/convert turns FHIR into a NewRx" 0 '<NewRx>' '' -- sh -c "\"$CONVERT\" < \"$L\""

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
