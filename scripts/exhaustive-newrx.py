#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes an exhaustive SCRIPT 2017071 NewRx from the structure table.

Every element the structure table allows in a NewRx appears once (a repeatable element or
group once, an optional one too); of each choice, the alternative `--choice` picks (first
or last), so that the two fixtures together hold every alternative the table has at the
top of a choice (but the Veterinarian prescriber: see below). Values follow each element's value type: the first code of a code list,
text of a length the type allows, digits, dates, booleans; and, for the elements a
prescription is checked on (NPI, DEA number, quantity, telephone, ...), values that pass
those checks, so that the message also survives the trip to FHIR and back.

    scripts/exhaustive-newrx.py --choice first > tests/fixtures/script/exhaustive/newrx_first.xml

The output is checked by `rxflow check --script-version 2017071` in the tests.
"""
import argparse
import re
import sys
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
STRUCTURE = ROOT / "data" / "script" / "2017071.structure"


class Node:
    """A structure-table line: an element (name, type or value spec, in-place children)
    or a group ("one of" / "seq")."""

    def __init__(self, kind, name=None, lo=1, hi=1, type_name=None, spec=None):
        self.kind = kind  # "element", "choice", "seq"
        self.name = name
        self.lo = lo
        self.hi = hi
        self.type_name = type_name
        self.spec = spec
        self.children = []


LINE = re.compile(
    r"^(?P<indent> *)- (?:\((?P<group>one of|seq) (?P<glo>\d+)\.\.(?P<ghi>\d+|n)\)"
    r"|(?P<name>\w+) (?P<lo>\d+)\.\.(?P<hi>\d+|n)"
    r"(?: : (?P<type>\w+)| \[(?P<spec>.*)\])?)\s*$")


def parse(text):
    types = {}
    current = None
    stack = []
    for raw in text.splitlines():
        if raw.startswith("### "):
            name = raw[4:].split()[0]
            current = types[name] = []
            stack = []
            continue
        m = LINE.match(raw)
        if not m or current is None:
            continue
        depth = len(m.group("indent")) // 2
        if m.group("group"):
            node = Node("choice" if m.group("group") == "one of" else "seq",
                        lo=int(m.group("glo")), hi=m.group("ghi"))
        else:
            node = Node("element", m.group("name"), int(m.group("lo")), m.group("hi"),
                        m.group("type"), m.group("spec"))
        del stack[depth:]
        (stack[-1].children if stack else current).append(node)
        stack.append(node)
    return types


# Values an element must have for the prescription to be accepted on its way back
# (prescribing rules and identifier checks), by element name.
FIXED = {
    "NPI": "1234567893",  # Luhn check digit with the 80840 prefix
    "NCPDPID": "7701234",
    "DEANumber": "AL1234563",  # DEA check digit; L as in the last name
    "PostalCode": "23226",
    "StateProvince": "VA",
    "CountryCode": "US",
    "Value": "30",
    "DaysSupply": "30",
    "NumberOfRefills": "1",
    "Substitutions": "1",  # not allowed: a ReasonForSubstitutionCodeUsed goes with it
    "ProductCode": "00071015523",
    "DrugDBCode": "314076",
    "Strength": "10",
    "StrengthValue": "10",
    "EmailAddress": "clinic@example.org",
    "MessageID": "exhaustive-0001",
    "RelatesToMessageID": "exhaustive-0000",
    "SentTime": "2026-11-20T10:00:00Z",
    "To": "7701234",
    "From": "1234567893",
    "SNOMEDVersion": "20250301",
    "Specialty": "3336C0003X",  # NUCC: community/retail pharmacy
    "FMTVersion": "25.02",
    "ClinicalInformationQualifier": "1",
    "TestMessage": "1",
    "DoseQuantity": "1",
    "NumericValue": "1",
}

# Code lists whose first code does not make a prescription that goes back (by list name).
FIRST_CODE_OVERRIDES = {
    "QuantityCodeListQualifier": "38",
    "Gender": "F",
    "DigestMethod": "SHA-256",
}


# Codes whose value depends on the element they are in (by parent/element).
BY_PARENT = {
    "QuantityUnitOfMeasure/Code": "C48542",  # NCI: tablet
    "StrengthUnitOfMeasure/Code": "C28253",  # NCI: milligram
    "StrengthForm/Code": "C42998",  # NCI: tablet (dosage form)
    "DoseUnitOfMeasure/Code": "C48542",
}


def text_value(name, lo, hi):
    value = FIXED.get(name) or name
    if len(value) < lo:
        value += "X" * (lo - len(value))
    return value[:hi]


NUMBERED = {"Number": 8045550100, "Extension": 11}  # distinct in each place they appear


def value_for(name, spec):
    if name in NUMBERED:
        NUMBERED[name] += 1
        return str(NUMBERED[name])
    if name in FIXED and not (spec or "").startswith(("inline:", "[")):
        fixed = FIXED[name]
    else:
        fixed = None
    if spec is None:
        return fixed or text_value(name, 1, 35)
    m = re.match(r"(\w+): (.*)", spec)
    if m:  # a code list
        codes = [c.strip() for c in m.group(2).split(",")]
        if fixed in codes:
            return fixed
        override = FIRST_CODE_OVERRIDES.get(m.group(1))
        return override if override in codes else codes[0]
    m = re.match(r"an(\d+)\.\.(\d+)$", spec)
    if m:
        return text_value(name, int(m.group(1)), int(m.group(2)))
    m = re.match(r"n(\d+)\.\.(\d+)$", spec)
    if m:
        if fixed and fixed.isdigit():
            return fixed
        return "1".rjust(int(m.group(1)), "0")
    if spec in ("an", "Code", "string", "PasswordType", "MailAddressType", "GeneralAddressType",
                "QualifiedAddress", "base64Binary"):
        return fixed or text_value(name, 1, 35)
    if spec == "n":
        return fixed if fixed and fixed.replace(".", "").isdigit() else "1"
    if spec == "n2":
        return "01"
    if spec in ("SimpleDateType", "date"):
        return "2026-11-20"
    if spec in ("UtcDateType", "dateTime"):
        return fixed or "2026-11-20T10:00:00Z"
    if spec == "boolean":
        return "true"
    if spec in ("ANDORTHENNOT", "ANDORTO", "ANDOR"):
        return "AND"
    if spec == "TOOR":
        return "TO"
    if spec == "BodyMetricQualifier":
        return "1"
    if spec.startswith("inline pattern "):
        return {"[\\+\\-]?[0-9][0-9]?[0-9]?[0-9]?": "-5"}.get(spec[15:], "1")
    if spec == "[0-9]":
        return "1"
    sys.exit(f"no value for {name} [{spec}]")


class Writer:
    def __init__(self, types, choice):
        self.types = types
        self.choice = choice
        self.out = []
        self.elements = 0

    def element(self, node, depth, path):
        if depth > 40:
            sys.exit(f"too deep at {path}")
        if node.type_name is not None and node.type_name not in self.types:
            sys.exit(f"unknown type {node.type_name} at {path}")
        self.elements += 1
        indent = "  " * depth
        tag = node.name
        if node.type_name:
            children = self.types[node.type_name]
        else:
            children = node.children
        if children:
            self.out.append(f"{indent}<{tag}>")
            self.content(children, depth + 1, path + "/" + tag)
            self.out.append(f"{indent}</{tag}>")
        else:
            parent = path.rsplit("/", 1)[-1]
            value = BY_PARENT.get(f"{parent}/{tag}") or value_for(tag, node.spec)
            self.out.append(f"{indent}<{tag}>{escape(value)}</{tag}>")

    def content(self, nodes, depth, path):
        for node in nodes:
            if node.kind == "element":
                self.element(node, depth, path)
            elif node.kind == "seq":
                self.content(node.children, depth, path)
            else:
                pick = node.children[0] if self.choice == "first" else node.children[-1]
                # RxFlow sends a NewRx only with the prescriber's NPI, which SCRIPT does not
                # give a veterinarian: the last fixture keeps the human prescriber.
                if pick.name == "Veterinarian":
                    pick = node.children[0]
                self.content([pick], depth, path)

    def message(self):
        self.out.append('<?xml version="1.0" encoding="UTF-8"?>')
        self.out.append('<Message DatatypesVersion="2017071" TransportVersion="2017071" '
                        'TransactionDomain="SCRIPT" TransactionVersion="2017071" '
                        'StructuresVersion="2017071" ECLVersion="2017071">')
        self.content(self.types["HeaderType"] and [Node("element", "Header", type_name="HeaderType")],
                     1, "/Message")
        self.out.append("  <Body>")
        self.content([Node("element", "NewRx", type_name="NewRx")], 2, "/Message/Body")
        self.out.append("  </Body>")
        self.out.append("</Message>")
        return "\n".join(self.out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--choice", choices=("first", "last"), default="first")
    args = ap.parse_args()
    types = parse(STRUCTURE.read_text())
    w = Writer(types, args.choice)
    sys.stdout.write(w.message())
    print(f"{w.elements} elements", file=sys.stderr)


if __name__ == "__main__":
    main()
