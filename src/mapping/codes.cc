// SPDX-License-Identifier: Apache-2.0
#include "rxflow/mapping/codes.h"

#include <array>

#include "common/text.h"

namespace rxflow::mapping {
namespace {

struct UnitRow {
  std::string_view system;
  std::string_view code;
  NciUnit nci;
};

// NCI codes from the NCPDP QuantityUnitOfMeasure subset (see docs/mapping.md, §Units).
constexpr UnitRow kUnits[] = {
    {kUcum, "mL", {"C28254", "Milliliter"}},
    {kUcum, "ml", {"C28254", "Milliliter"}},
    {kUcum, "g", {"C48155", "Gram"}},
    {kUcum, "mg", {"C28253", "Milligram"}},
    {kUcum, "{tbl}", {"C48542", "Tablet"}},
    {kUcum, "{tablet}", {"C48542", "Tablet"}},
    {kUcum, "{capsule}", {"C48480", "Capsule"}},
    {kUcum, "{patch}", {"C48524", "Patch"}},
    {kUcum, "{each}", {"C64933", "Each"}},
    {kUcum, "1", {"C64933", "Each"}},
    {kOrderableDrugForm, "TAB", {"C48542", "Tablet"}},
    {kOrderableDrugForm, "CAP", {"C48480", "Capsule"}},
    {kOrderableDrugForm, "PATCH", {"C48524", "Patch"}},
    {kOrderableDrugForm, "SUPP", {"C48539", "Suppository"}},
    {kOrderableDrugForm, "LOZ", {"C48506", "Lozenge"}},
    {kOrderableDrugForm, "TROCHE", {"C48548", "Troche"}},
    {kOrderableDrugForm, "WAFER", {"C48552", "Wafer"}},
    {kOrderableDrugForm, "KIT", {"C48504", "Kit"}},
};

constexpr NciUnit kNciKnown[] = {
    {"C48542", "Tablet"},      {"C48480", "Capsule"},   {"C28254", "Milliliter"},
    {"C48155", "Gram"},        {"C64933", "Each"},      {"C48524", "Patch"},
    {"C62412", "Applicator"},  {"C54564", "Blister"},   {"C64696", "Caplet"},
    {"C53499", "Film"},        {"C69124", "Gum"},       {"C48499", "Implant"},
    {"C62276", "Insert"},      {"C48504", "Kit"},       {"C120263", "Lancet"},
    {"C48506", "Lozenge"},     {"C48521", "Packet"},    {"C65032", "Pad"},
    {"C120216", "Pen Needle"}, {"C62609", "Ring"},      {"C53502", "Sponge"},
    {"C53503", "Stick"},       {"C48538", "Strip"},     {"C48539", "Suppository"},
    {"C53504", "Swab"},        {"C48548", "Troche"},    {"C48552", "Wafer"},
    {"C62413", "Canister"},    {"C28253", "Milligram"}, {"C38046", "Unspecified"},
};

struct Schedule {
  std::string_view name;
  std::string_view nci;
  int number;
};
constexpr Schedule kSchedules[] = {{"CI", "C48672", 1},
                                   {"CII", "C48675", 2},
                                   {"CIII", "C48676", 3},
                                   {"CIV", "C48677", 4},
                                   {"CV", "C48679", 5}};

struct TimeUnit {
  std::string_view ucum;
  SnomedConcept snomed;
};
// SNOMED CT time-unit qualifier values (258xxx00x). s and a are rarely used in a Sig.
constexpr TimeUnit kTimeUnits[] = {{"s", {"258700001", "second"}}, {"min", {"258701004", "minute"}},
                                   {"h", {"258702006", "hour"}},   {"d", {"258703001", "day"}},
                                   {"wk", {"258705008", "week"}},  {"mo", {"258706009", "month"}},
                                   {"a", {"258707000", "year"}}};

// SCRIPT's eclSNOMEDAdverseEventCode list (2017071 SNOMEDAdverseEventCode), with the FHIR
// type and category each one implies.
constexpr AdverseEventConcept kAdverseEvents[] = {
    {"420134006", "Propensity to adverse reaction", "", ""},
    {"418038007", "Propensity to adverse reactions to substance", "", ""},
    {"419511003", "Propensity to adverse reactions to drug", "", "medication"},
    {"418471000", "Propensity to adverse reactions to food", "", "food"},
    {"419199007", "Allergy to substance", "allergy", ""},
    {"416098002", "Allergy to drug", "allergy", "medication"},
    {"414285001", "Allergy to food", "allergy", "food"},
    {"59037007", "Intolerance to drug", "intolerance", "medication"},
    {"235719002", "Intolerance to food", "intolerance", "food"},
};

struct SeverityRow {
  std::string_view snomed;
  std::string_view text;
  std::string_view severity;  // FHIR reaction.severity
};
// The first row of each severity is what FHIR → SCRIPT sends for it.
constexpr SeverityRow kSeverities[] = {
    {"255604002", "Mild", "mild"},    {"6736007", "Moderate", "moderate"},
    {"24484000", "Severe", "severe"}, {"442452003", "Life threatening severity", "severe"},
    {"399166001", "Fatal", "severe"},
};

// SCRIPT 2017071 CompoundIngredientProductCodeQualifier (a compound ingredient's ItemNumber).
constexpr std::string_view kItemNumberQualifiers[] = {
    "ND", "UP", "RT", "NH", "UN", "SCD", "SBD", "GPK", "BPK", "GMP", "GPI", "GSP", "DI"};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 32);
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 32);
    if (x != y) return false;
  }
  return true;
}

}  // namespace

IdentifierKind ClassifyIdentifier(std::string_view system, std::string_view type_code) {
  if (system == kNpi || system == "urn:oid:2.16.840.1.113883.4.6") return IdentifierKind::kNpi;
  if (system == kDeaOid || system == "http://hl7.org/fhir/sid/us-dea" ||
      system == "urn:oid:2.16.840.1.113883.4.814.1") {
    return IdentifierKind::kDea;
  }
  if (system == kNcpdpId ||
      system == "http://terminology.hl7.org/NamingSystem/NCPDPProviderIdentificationNumber" ||
      system == "urn:oid:2.16.840.1.113883.6.300") {
    return IdentifierKind::kNcpdpId;
  }
  if (system == kSsn || system == "urn:oid:2.16.840.1.113883.4.1") return IdentifierKind::kSsn;
  if (type_code == "NPI") return IdentifierKind::kNpi;
  if (type_code == "DEA") return IdentifierKind::kDea;
  if (type_code == "SL") return IdentifierKind::kStateLicense;
  if (type_code == "MR") return IdentifierKind::kMrn;
  if (type_code == "SS") return IdentifierKind::kSsn;
  return IdentifierKind::kOther;
}

std::string_view IdentifierSystem(IdentifierKind kind) {
  switch (kind) {
    case IdentifierKind::kNpi:
      return kNpi;
    case IdentifierKind::kDea:
      return kDeaOid;
    case IdentifierKind::kNcpdpId:
      return kNcpdpId;
    case IdentifierKind::kSsn:
      return kSsn;
    default:
      return {};
  }
}

std::optional<NciUnit> UnitToNci(std::string_view system, std::string_view code,
                                 std::string_view unit_text) {
  if (system == kNci) {
    for (const NciUnit& u : kNciKnown) {
      if (u.code == code) return u;
    }
    if (!code.empty() && code[0] == 'C' && internal::IsAllDigits(code.substr(1))) {
      return NciUnit{code, unit_text};
    }
    return std::nullopt;
  }
  for (const UnitRow& r : kUnits) {
    if (r.system == system && r.code == code) return r.nci;
  }
  // A unit given only as text ("tablet", "mL").
  if (system.empty() && code.empty() && !unit_text.empty()) {
    for (const NciUnit& u : kNciKnown) {
      if (EqualsIgnoreCase(u.text, unit_text) && u.code != kNciUnspecified) return u;
    }
    if (EqualsIgnoreCase(unit_text, "tablets")) return NciUnit{"C48542", "Tablet"};
    if (EqualsIgnoreCase(unit_text, "capsules")) return NciUnit{"C48480", "Capsule"};
    if (EqualsIgnoreCase(unit_text, "mL")) return NciUnit{"C28254", "Milliliter"};
  }
  return std::nullopt;
}

std::string_view NciUnitText(std::string_view nci_code) {
  for (const NciUnit& u : kNciKnown) {
    if (u.code == nci_code) return u.text;
  }
  return {};
}

std::optional<std::string_view> DeaScheduleToNci(std::string_view s) {
  int n = DeaScheduleNumber(s);
  if (n == 0) {
    for (const Schedule& x : kSchedules) {
      if (x.nci == s) return x.nci;
    }
    return std::nullopt;
  }
  return kSchedules[n - 1].nci;
}

std::optional<std::string_view> NciToDeaSchedule(std::string_view nci_code) {
  for (const Schedule& x : kSchedules) {
    if (x.nci == nci_code) return x.name;
  }
  return std::nullopt;
}

int DeaScheduleNumber(std::string_view s) {
  if (s.size() > 2 && (s.substr(0, 2) == "C-" || s.substr(0, 2) == "c-")) s.remove_prefix(2);
  for (const Schedule& x : kSchedules) {
    if (x.nci == s) return x.number;  // an NCI code, e.g. C48675
  }
  if (s.size() > 1 && (s[0] == 'C' || s[0] == 'c')) s.remove_prefix(1);
  static constexpr std::string_view kRoman[] = {"I", "II", "III", "IV", "V"};
  for (int i = 0; i < 5; ++i) {
    if (EqualsIgnoreCase(s, kRoman[i])) return i + 1;
    if (s.size() == 1 && s[0] == '1' + i) return i + 1;
  }
  for (const Schedule& x : kSchedules) {
    if (x.nci == s) return x.number;
  }
  return 0;
}

std::optional<SnomedConcept> TimeUnitToSnomed(std::string_view ucum_unit) {
  for (const TimeUnit& t : kTimeUnits) {
    if (t.ucum == ucum_unit) return t.snomed;
  }
  return std::nullopt;
}

std::optional<std::string_view> SnomedToTimeUnit(std::string_view snomed_code) {
  for (const TimeUnit& t : kTimeUnits) {
    if (t.snomed.code == snomed_code) return t.ucum;
  }
  return std::nullopt;
}

std::optional<AdverseEventConcept> FindAdverseEvent(std::string_view snomed_code) {
  for (const AdverseEventConcept& a : kAdverseEvents) {
    if (a.code == snomed_code) return a;
  }
  return std::nullopt;
}

AdverseEventConcept AdverseEventFor(std::string_view type, std::string_view category) {
  if (type != "allergy" && type != "intolerance") type = {};
  if (category != "medication" && category != "food") category = {};
  // SCRIPT has no intolerance to any substance: a propensity to reactions to it.
  if (type == "intolerance" && category.empty()) type = {};
  for (const AdverseEventConcept& a : kAdverseEvents) {
    if (a.type == type && a.category == category && a.code != "420134006") return a;
  }
  return kAdverseEvents[1];  // not reached: every (type, category) left has a row
}

std::string_view SeverityFromSnomed(std::string_view snomed_code) {
  for (const SeverityRow& r : kSeverities) {
    if (r.snomed == snomed_code) return r.severity;
  }
  return {};
}

std::optional<SnomedConcept> SeverityToSnomed(std::string_view severity) {
  for (const SeverityRow& r : kSeverities) {
    if (r.severity == severity) return SnomedConcept{r.snomed, r.text};
  }
  return std::nullopt;
}

bool IsRxNormTermType(std::string_view qualifier) {
  return qualifier == "SCD" || qualifier == "SBD" || qualifier == "GPK" || qualifier == "BPK";
}

std::string NotAnRxNormTermType(std::string_view got) {
  return internal::Cat("an RxNorm term type is SCD, SBD, GPK or BPK, got \"", got.substr(0, 10),
                       "\"");
}

std::string_view DrugProductSystem(std::string_view qualifier) {
  if (qualifier == "ND") return kNdc;
  if (IsRxNormTermType(qualifier)) return kRxNorm;
  if (qualifier == "UN") return kUnii;
  return {};
}

std::string ItemNumberSystem(std::string_view qualifier, std::string_view code) {
  const bool ndc = code.size() == 11 && internal::IsAllDigits(code);
  std::string_view system = DrugProductSystem(qualifier);
  if (!system.empty() && (qualifier != "ND" || ndc)) return std::string(system);
  return std::string(kProductCodeSystemPrefix) + std::string(qualifier);
}

std::string_view ProductCodeQualifierOf(std::string_view system) {
  if (!system.starts_with(kProductCodeSystemPrefix)) return {};
  system.remove_prefix(kProductCodeSystemPrefix.size());
  for (std::string_view q : kItemNumberQualifiers) {
    if (q == system) return q;
  }
  return {};
}

std::optional<std::string> NormalizeNdc(std::string_view ndc) {
  if (ndc.size() == 11 && internal::IsAllDigits(ndc)) return std::string(ndc);
  size_t d1 = ndc.find('-');
  size_t d2 = d1 == std::string_view::npos ? d1 : ndc.find('-', d1 + 1);
  if (d2 == std::string_view::npos || ndc.find('-', d2 + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view a = ndc.substr(0, d1), b = ndc.substr(d1 + 1, d2 - d1 - 1),
                   c = ndc.substr(d2 + 1);
  if (!internal::IsAllDigits(a) || !internal::IsAllDigits(b) || !internal::IsAllDigits(c)) {
    return std::nullopt;
  }
  // Pad each segment to 5-4-2 (4-4-2 → 0+labeler, 5-3-2 → 0+product, 5-4-1 → 0+package).
  size_t total = a.size() + b.size() + c.size();
  bool eleven = a.size() == 5 && b.size() == 4 && c.size() == 2;  // already 5-4-2
  if ((total != 10 && !eleven) || a.size() > 5 || b.size() > 4 || c.size() > 2) {
    return std::nullopt;
  }
  std::string out;
  out.append(5 - a.size(), '0').append(a);
  out.append(4 - b.size(), '0').append(b);
  out.append(2 - c.size(), '0').append(c);
  return out;
}

}  // namespace rxflow::mapping
