// SPDX-License-Identifier: Apache-2.0
#include "mapping/sig.h"

#include <algorithm>

#include "rxflow/internal/strcat.h"
#include "rxflow/mapping/codes.h"

#include "common/text.h"
#include "mapping/transliterate.h"

namespace rxflow::mapping {
namespace {

using rxflow::internal::Cat;

// Why the structured Sig was abandoned: the first element that has no SCRIPT form.
struct NotStructured {
  std::string path;
  std::string reason;
};

const fhir::Coding* FindCoding(const std::optional<fhir::CodeableConcept>& cc,
                               std::string_view system) {
  if (!cc) return nullptr;
  for (const fhir::Coding& c : cc->coding) {
    if (c.system == system) return &c;
  }
  return nullptr;
}

script::SigCode Snomed(const fhir::Coding& c, const fhir::CodeableConcept& cc) {
  return script::SigCode{!c.display.empty() ? c.display : cc.text, "SNOMED", c.code};
}

struct GtsRow {
  std::string_view code;
  bool interval;  // false: N per unit (Frequency); true: every N units (Interval)
  std::string_view value;
  std::string_view unit;
};
// FHIR's TimingAbbreviation codes that are a frequency or an interval. AM and PM name a
// time of day, which RxFlow does not map; BED is handled as the bedtime event.
constexpr GtsRow kGts[] = {
    {"QD", false, "1", "d"},  {"BID", false, "2", "d"}, {"TID", false, "3", "d"},
    {"QID", false, "4", "d"}, {"QOD", true, "2", "d"},  {"Q1H", true, "1", "h"},
    {"Q2H", true, "2", "h"},  {"Q3H", true, "3", "h"},  {"Q4H", true, "4", "h"},
    {"Q6H", true, "6", "h"},  {"Q8H", true, "8", "h"},  {"Q12H", true, "12", "h"},
    {"WK", false, "1", "wk"}, {"MO", false, "1", "mo"}};

class InstructionBuilder {
 public:
  InstructionBuilder(const fhir::Dosage& d, const std::string& path,
                     std::vector<SigElementProvenance>& prov, std::string prefix)
      : d_(d), path_(path), prov_(prov), prefix_(std::move(prefix)) {}

  // Abandons the structure. Only the first failure is kept (what stopped the build); the
  // steps return at a failure, and what they built is discarded with the instruction.
  void Fail(std::string where, std::string why) {
    if (!failure_) failure_ = NotStructured{std::move(where), std::move(why)};
  }
  bool failed() const { return failure_.has_value(); }
  // Why Build's instruction cannot be sent structured, if it cannot.
  std::optional<NotStructured>& failure() { return failure_; }
  void Note(std::string_view element, Provenance p, std::string source) {
    prov_.push_back({Cat(prefix_, element), p, std::move(source)});
  }

  script::SigCode UnitCode(std::string_view ucum, const std::string& where) {
    auto s = TimeUnitToSnomed(ucum);
    if (!s) {
      Fail(where, Cat("time unit \"", ucum, "\" has no SNOMED CT mapping"));
      return {};
    }
    return script::SigCode{std::string(s->text), "SNOMED", std::string(s->code)};
  }

  script::DoseUnit DoseUnitOf(const fhir::Quantity& q, const std::string& where,
                              std::string_view element) {
    auto u = UnitToNci(q.system, q.code, q.unit);
    script::DoseUnit out;
    if (u) {
      out.code = std::string(u->code);
      out.text = !q.unit.empty() ? q.unit : std::string(u->text);
      Note(std::string(element), q.system == kNci ? Provenance::kCoded : Provenance::kDerived,
           where);
    } else {
      if (q.unit.empty() && q.code.empty()) {
        Fail(where, "dose has no unit");
        return out;
      }
      out.code = std::string(kNciUnspecified);
      out.text = !q.unit.empty() ? q.unit : q.code;
      Note(std::string(element), Provenance::kDerived,
           Cat(where, " (unit has no NCI code: C38046 Unspecified)"));
    }
    if (!internal::IsPrintableAscii(out.text) || out.text.size() > 255)
      Fail(where, "unit text not printable ASCII");
    return out;
  }

  std::string Number(const std::string& v, const std::string& where) {
    if (!internal::IsScriptNumeric(v)) {
      Fail(where, Cat("\"", v, "\" is not a plain positive number"));
      return {};
    }
    return v;
  }
  // A quantity with a comparator (<, >=, ...) is not an amount SCRIPT can carry.
  void NoComparator(const fhir::Quantity& q, const std::string& where) {
    if (!q.comparator.empty()) Fail(where + ".comparator", "a quantity with a comparator");
  }

  script::Instruction Build() {
    script::Instruction in;
    MapAdministration(in.dose_administration);
    if (failed()) return in;
    MapDose(in.dose_administration);
    if (failed()) return in;
    std::vector<script::TimingAndDuration> timings = MapTiming();
    if (failed()) return in;
    if (timings.empty()) {
      Fail(path_ + ".timing", "no timing (SCRIPT needs one for a structured Sig)");
      return in;
    }
    for (size_t i = 0; i < timings.size(); ++i)
      in.timing.emplace_back(i == 0 ? "" : "AND", timings[i]);
    MapAsNeeded(in);
    if (failed()) return in;
    MapMaximumDose(in);
    if (failed()) return in;
    if (d_.max_dose_per_administration) {
      Fail(path_ + ".maxDosePerAdministration", "not mapped");
    } else if (d_.max_dose_per_lifetime) {
      Fail(path_ + ".maxDosePerLifetime", "not mapped");
    } else if (!d_.additional_instruction.empty()) {
      Fail(path_ + ".additionalInstruction", "not mapped");
    } else if (!d_.extension.empty()) {
      Fail(path_ + ".extension", "dosage extensions are not mapped");
    }
    return in;
  }

 private:
  // Route (required by SCRIPT once the structure is sent), method and site, in SNOMED CT.
  void MapAdministration(script::DoseAdministration& a) {
    const fhir::Coding* route = FindCoding(d_.route, kSnomed);
    if (!route) return Fail(path_ + ".route", "no SNOMED CT route");
    a.route = Snomed(*route, *d_.route);
    Note("DoseAdministration/RouteOfAdministration", Provenance::kCoded, path_ + ".route");
    if (d_.method) {
      const fhir::Coding* m = FindCoding(d_.method, kSnomed);
      if (!m) return Fail(path_ + ".method", "method not coded in SNOMED CT");
      a.dose_delivery_method = Snomed(*m, *d_.method);
      Note("DoseAdministration/DoseDeliveryMethod", Provenance::kCoded, path_ + ".method");
    }
    if (d_.site) {
      const fhir::Coding* s = FindCoding(d_.site, kSnomed);
      if (!s) return Fail(path_ + ".site", "site not coded in SNOMED CT");
      a.site = Snomed(*s, *d_.site);
      Note("DoseAdministration/SiteOfAdministration", Provenance::kCoded, path_ + ".site");
    }
  }

  // The dose: one doseQuantity, or a closed doseRange ("1 TO 2").
  void MapDose(script::DoseAdministration& a) {
    if (d_.dose_and_rate.size() > 1) return Fail(path_ + ".doseAndRate", "more than one dose");
    if (!d_.dose_and_rate.empty()) {
      const fhir::DoseAndRate& dr = d_.dose_and_rate[0];
      std::string dp = path_ + ".doseAndRate[0]";
      if (dr.rate_quantity || dr.rate_range || dr.rate_ratio) {
        return Fail(dp, "rates are not mapped");
      }
      if (dr.dose_quantity) {
        NoComparator(*dr.dose_quantity, dp + ".doseQuantity");
        a.dose_quantity = Number(dr.dose_quantity->value, dp + ".doseQuantity.value");
        a.dose_unit =
            DoseUnitOf(*dr.dose_quantity, dp + ".doseQuantity", "DoseAdministration/Dosage");
      } else if (dr.dose_range) {
        if (!dr.dose_range->low || !dr.dose_range->high) {
          return Fail(dp + ".doseRange", "open dose range");
        }
        NoComparator(*dr.dose_range->low, dp + ".doseRange.low");
        NoComparator(*dr.dose_range->high, dp + ".doseRange.high");
        a.dose_quantity = Number(dr.dose_range->low->value, dp + ".doseRange.low.value");
        a.dose_unit =
            DoseUnitOf(*dr.dose_range->low, dp + ".doseRange.low", "DoseAdministration/Dosage");
        a.dose_range_modifier = "TO";
        a.dose_quantity_high = Number(dr.dose_range->high->value, dp + ".doseRange.high.value");
        a.dose_unit_high = DoseUnitOf(*dr.dose_range->high, dp + ".doseRange.high",
                                      "DoseAdministration/Dosage[high]");
      }
    } else {
      Note("DoseAdministration/Dosage", Provenance::kAbsent, path_ + ".doseAndRate");
    }
  }

  // TimingAndDuration: timing.code (a GTS abbreviation, BED) and timing.repeat (frequency or
  // interval, HS, boundsDuration), which must agree when both are given.
  std::vector<script::TimingAndDuration> MapTiming() {
    std::vector<script::TimingAndDuration> timings;
    if (!d_.timing) return timings;
    const fhir::Timing& t = *d_.timing;
    std::string tp = path_ + ".timing";
    if (!t.event.empty()) {
      Fail(tp + ".event", "timing events are not mapped");
      return timings;
    }
    bool have_frequency = MapTimingCode(t, tp, timings);
    if (t.repeat && !failed()) MapTimingRepeat(*t.repeat, tp + ".repeat", have_frequency, timings);
    return timings;
  }

  // timing.code: BED, or a GTS abbreviation (BID, TID, Q6H, ...); true when it gave a
  // frequency or an interval.
  bool MapTimingCode(const fhir::Timing& t, const std::string& tp,
                     std::vector<script::TimingAndDuration>& timings) {
    bool have_frequency = false;
    const fhir::Coding* bed = t.code ? FindCoding(t.code, kGtsAbbreviation) : nullptr;
    if (bed && bed->code == "BED") {
      script::TimingAndDuration td;
      td.kind = script::TimingAndDuration::Kind::kAdministrationTiming;
      td.administration_timing_event =
          script::SigCode{"at bedtime", "SNOMED", std::string(kSnomedAtBedtime)};
      timings.push_back(td);
      Note("TimingAndDuration/AdministrationTiming", Provenance::kDerived, tp + ".code");
    } else if (t.code) {
      const fhir::Coding* c = FindCoding(t.code, kGtsAbbreviation);
      const GtsRow* row = nullptr;
      for (const GtsRow& r : kGts) {
        if (c && c->code == r.code) row = &r;
      }
      if (!row) {
        Fail(tp + ".code", "timing code is not a known GTS abbreviation (BID, TID, Q6H, ...)");
        return false;
      }
      script::TimingAndDuration td;
      td.kind = row->interval ? script::TimingAndDuration::Kind::kInterval
                              : script::TimingAndDuration::Kind::kFrequency;
      td.numeric_value = std::string(row->value);
      td.units = UnitCode(row->unit, tp + ".code");
      timings.push_back(td);
      have_frequency = true;
      Note(row->interval ? "TimingAndDuration/Interval" : "TimingAndDuration/Frequency",
           Provenance::kDerived, tp + ".code");
    }
    return have_frequency;
  }

  // timing.repeat: what SCRIPT can carry of it, the rest refused by path.
  void MapTimingRepeat(const fhir::TimingRepeat& r, const std::string& rp, bool have_frequency,
                       std::vector<script::TimingAndDuration>& timings) {
    if (!r.day_of_week.empty()) return Fail(rp + ".dayOfWeek", "days of the week are not mapped");
    if (!r.time_of_day.empty()) return Fail(rp + ".timeOfDay", "times of day are not mapped");
    if (r.count || r.count_max) return Fail(rp + ".count", "a count of doses is not mapped");
    if (!r.duration.empty()) {
      return Fail(rp + ".duration", "administration duration is not mapped");
    }
    if (r.offset) return Fail(rp + ".offset", "offsets are not mapped");
    if (r.bounds_range || r.bounds_period) {
      return Fail(rp, "bounds other than boundsDuration are not mapped");
    }
    if (r.frequency || !r.period.empty()) {
      if (have_frequency) {
        // timing.code and repeat both given: they must agree; repeat is used.
        const script::TimingAndDuration& coded = timings.back();
        bool agree =
            coded.kind == script::TimingAndDuration::Kind::kFrequency
                ? r.period == "1" && std::to_string(r.frequency.value_or(1)) == coded.numeric_value
                : r.frequency.value_or(1) == 1 && r.period == coded.numeric_value;
        auto unit = TimeUnitToSnomed(r.period_unit);
        if (!agree || !unit || unit->code != coded.units.code) {
          return Fail(rp, "timing.code and timing.repeat disagree");
        }
        timings.pop_back();
        prov_.pop_back();
      }
      int64_t n = r.frequency.value_or(1);
      if (r.period.empty() || r.period_unit.empty()) {
        return Fail(rp + ".period", "frequency without a period");
      }
      script::TimingAndDuration td;
      td.units = UnitCode(r.period_unit, rp + ".periodUnit");
      if (failed()) return;
      if (r.period == "1") {
        td.kind = script::TimingAndDuration::Kind::kFrequency;
        td.numeric_value = std::to_string(n);
        if (r.frequency_max) {
          td.variable_modifier = "TO";
          td.numeric_value_high = std::to_string(*r.frequency_max);
        }
        if (!r.period_max.empty()) {
          return Fail(rp + ".periodMax", "periodMax with a frequency per unit");
        }
        Note("TimingAndDuration/Frequency", Provenance::kCoded, rp);
      } else if (n == 1 && !r.frequency_max) {
        td.kind = script::TimingAndDuration::Kind::kInterval;
        td.numeric_value = Number(r.period, rp + ".period");
        if (!r.period_max.empty()) {
          td.variable_modifier = "TO";
          td.numeric_value_high = Number(r.period_max, rp + ".periodMax");
        }
        Note("TimingAndDuration/Interval", Provenance::kCoded, rp);
      } else {
        return Fail(rp, "N times every M units (N, M > 1) has no SCRIPT form");
      }
      if (failed()) return;
      timings.push_back(td);
    }
    for (size_t i = 0; i < r.when.size(); ++i) {
      if (r.when[i] != "HS") {
        return Fail(Cat(rp, ".when[", i, "]"),
                    Cat("event \"", r.when[i], "\" is not mapped (HS is)"));
      }
      script::TimingAndDuration td;
      td.kind = script::TimingAndDuration::Kind::kAdministrationTiming;
      td.administration_timing_event =
          script::SigCode{"at bedtime", "SNOMED", std::string(kSnomedAtBedtime)};
      timings.push_back(td);
      Note("TimingAndDuration/AdministrationTiming", Provenance::kDerived,
           Cat(rp, ".when[", i, "]"));
    }
    if (r.bounds_duration) {
      const fhir::Quantity& b = *r.bounds_duration;
      NoComparator(b, rp + ".boundsDuration");
      script::TimingAndDuration td;
      td.kind = script::TimingAndDuration::Kind::kDuration;
      td.numeric_value = Number(b.value, rp + ".boundsDuration.value");
      td.units = UnitCode(b.code.empty() ? b.unit : b.code, rp + ".boundsDuration");
      timings.push_back(td);
      Note("TimingAndDuration/Duration", Provenance::kCoded, rp + ".boundsDuration");
    }
  }

  // As needed, with its reason (IndicationForUse).
  void MapAsNeeded(script::Instruction& in) {
    if (!d_.as_needed_for.empty() || (d_.as_needed && *d_.as_needed)) {
      if (d_.as_needed_for.size() > 1) {
        return Fail(path_ + ".asNeededFor", "more than one as-needed reason");
      }
      script::Indication ind;
      ind.precursor = script::SigCode{"as needed", "SNOMED", std::string(kSnomedAsNeeded)};
      Note("IndicationForUse/IndicationPrecursor", Provenance::kDerived, path_ + ".asNeeded");
      if (!d_.as_needed_for.empty()) {
        const fhir::CodeableConcept& cc = d_.as_needed_for[0];
        const fhir::Coding* c = nullptr;
        for (const auto& x : cc.coding) {
          if (x.system == kSnomed) c = &x;
        }
        if (!c) return Fail(path_ + ".asNeededFor[0]", "as-needed reason not coded in SNOMED CT");
        ind.indication = Snomed(*c, cc);
        Note("IndicationForUse/Indication", Provenance::kCoded, path_ + ".asNeededFor[0]");
      }
      in.indication_for_use.push_back(std::move(ind));
    }
  }

  // Maximum dose per period (MaximumDoseRestriction).
  void MapMaximumDose(script::Instruction& in) {
    if (d_.max_dose_per_period.size() > 1) {
      return Fail(path_ + ".maxDosePerPeriod", "more than one maximum dose");
    }
    if (!d_.max_dose_per_period.empty()) {
      const fhir::Ratio& r = d_.max_dose_per_period[0];
      std::string mp = path_ + ".maxDosePerPeriod[0]";
      if (!r.numerator || !r.denominator) return Fail(mp, "incomplete ratio");
      NoComparator(*r.numerator, mp + ".numerator");
      NoComparator(*r.denominator, mp + ".denominator");
      if (failed()) return;
      script::MaximumDose m;
      m.numeric_value = Number(r.numerator->value, mp + ".numerator.value");
      m.form = DoseUnitOf(*r.numerator, mp + ".numerator", "MaximumDoseRestriction");
      m.duration_value = Number(r.denominator->value, mp + ".denominator.value");
      m.duration_unit =
          UnitCode(r.denominator->code.empty() ? r.denominator->unit : r.denominator->code,
                   mp + ".denominator");
      in.maximum_dose_restriction.push_back(std::move(m));
    }
  }

  const fhir::Dosage& d_;
  const std::string& path_;
  std::vector<SigElementProvenance>& prov_;
  std::string prefix_;
  std::optional<NotStructured> failure_;
};

// Whether dosage i (> 0) is taken together with the one before it (the same sequence
// number): " and " / AND between them, else " then " / THEN.
bool SameStep(const std::vector<fhir::Dosage>& dosages, size_t i) {
  return dosages[i].sequence && dosages[i - 1].sequence &&
         *dosages[i].sequence == *dosages[i - 1].sequence;
}

// The structured instructions of `dosages` and the patient instruction, into `sig` (and their
// provenance into `prov`); or why they cannot be sent structured (then `sig` and `prov` hold
// part of them, to be discarded).
std::optional<NotStructured> BuildInstructions(const std::vector<fhir::Dosage>& dosages,
                                               const std::string& path, const NewRxOptions& options,
                                               IssueList& issues, script::Sig& sig,
                                               std::vector<SigElementProvenance>& prov) {
  std::string patient_instruction;
  std::string transliterated_at;
  for (size_t i = 0; i < dosages.size(); ++i) {
    std::string dp = Cat(path, "[", i, "]");
    InstructionBuilder b(dosages[i], dp, prov,
                         dosages.size() > 1 ? Cat("Instruction[", i + 1, "]/") : "Instruction/");
    script::Instruction ins = b.Build();
    if (b.failed()) return std::move(b.failure());
    if (i > 0) ins.multiple_instruction_modifier = SameStep(dosages, i) ? "AND" : "THEN";
    sig.instruction.push_back(std::move(ins));
    if (dosages[i].patient_instruction.empty()) continue;
    if (!patient_instruction.empty()) {
      return NotStructured{dp + ".patientInstruction", "more than one patient instruction"};
    }
    patient_instruction = dosages[i].patient_instruction;
    if (auto ascii = TransliteratedIfAsked(patient_instruction, options)) {
      patient_instruction = std::move(*ascii);
      transliterated_at = dp + ".patientInstruction";  // said once the Sig is built
    }
    if (!internal::IsPrintableAscii(patient_instruction) || patient_instruction.size() > 255) {
      return NotStructured{dp + ".patientInstruction",
                           "longer than 255 characters or not printable ASCII"};
    }
  }
  sig.clarifying_free_text = std::move(patient_instruction);
  if (!transliterated_at.empty()) {
    issues.Warning(std::move(transliterated_at), IssueCode::kValue,
                   TransliteratedWarning("patient instruction"));
  }
  return std::nullopt;
}

}  // namespace

bool HasStructure(const fhir::Dosage& d) {
  return !d.extension.empty() || !d.additional_instruction.empty() || d.timing.has_value() ||
         d.as_needed.has_value() || !d.as_needed_for.empty() || d.site.has_value() ||
         d.route.has_value() || d.method.has_value() || !d.dose_and_rate.empty() ||
         !d.max_dose_per_period.empty() || d.max_dose_per_administration.has_value() ||
         d.max_dose_per_lifetime.has_value();
}

std::optional<script::Sig> SigMapper::Map(const std::vector<fhir::Dosage>& dosages,
                                          const std::string& path,
                                          std::vector<SigElementProvenance>& provenance) {
  if (dosages.empty()) {
    issues_.Error(path, IssueCode::kRequired,
                  "at least one dosageInstruction (with text) is required");
    return std::nullopt;
  }
  script::Sig sig;
  std::string text;
  for (size_t i = 0; i < dosages.size(); ++i) {
    const fhir::Dosage& d = dosages[i];
    if (d.text.empty()) continue;
    if (!text.empty()) text += SameStep(dosages, i) ? " and " : " then ";
    text += d.text;
  }
  if (text.empty()) {
    issues_.Error(path + "[0].text", IssueCode::kRequired,
                  "dosage text is required: SigText is the authoritative instruction");
    return std::nullopt;
  }
  if (std::optional<std::string> ascii = TransliteratedIfAsked(text, options_)) {
    text = std::move(*ascii);
    issues_.Warning(path, IssueCode::kValue, TransliteratedWarning("dosage text"));
  }
  if (!internal::IsPrintableAscii(text)) {
    issues_.Error(path, IssueCode::kValue,
                  Cat("dosage text contains characters SCRIPT cannot carry (printable ASCII only)",
                      NotTransliterable(options_)));
    return std::nullopt;
  }
  if (text.size() > 1000) {
    issues_.Error(path, IssueCode::kTooLong,
                  Cat("dosage text is ", text.size(),
                      " characters; SigText allows 1000 (RxFlow never truncates)"));
    return std::nullopt;
  }
  sig.sig_text = std::move(text);
  if (!options_.structured_sig) {
    WarnPatientInstructionsDropped(dosages, path);
    return sig;
  }

  std::vector<SigElementProvenance> prov;
  std::optional<NotStructured> failure =
      BuildInstructions(dosages, path, options_, issues_, sig, prov);
  if (!failure) {
    sig.snomed_version = options_.snomed_version;
    sig.fmt_version = options_.fmt_version;
    provenance.insert(provenance.end(), std::make_move_iterator(prov.begin()),
                      std::make_move_iterator(prov.end()));
    // Sent structured: what of the dosages has no SCRIPT element is named one by one.
    for (size_t i = 0; i < dosages.size(); ++i) {
      for (size_t k = 0; k < dosages[i].dose_and_rate.size(); ++k) {
        if (dosages[i].dose_and_rate[k].type) {
          issues_.Warning(Cat(path, "[", i, "].doseAndRate[", k, "].type"),
                          IssueCode::kNotSupported,
                          "SCRIPT Dosage has no dose type (ordered, calculated): not sent");
        }
      }
    }
    return sig;
  }
  sig.instruction.clear();
  sig.clarifying_free_text.clear();
  WarnPatientInstructionsDropped(dosages, path);
  if (std::any_of(dosages.begin(), dosages.end(), HasStructure)) {
    // Every structured element of every dosage is lost, not only the one that failed:
    // the warning names them all, by the dosages' path.
    issues_.Warning(path, IssueCode::kNotSupported,
                    Cat("structured Sig not sent (", failure->path, ": ", failure->reason,
                        "); SigText carries the instructions: the dosages' structured "
                        "elements are dropped"));
  } else {
    // Text alone: nothing is lost.
    issues_.Add(
        Severity::kInformation, IssueCode::kInformational, failure->path,
        Cat("structured Sig not sent (", failure->reason, "); SigText carries the instructions"));
  }
  provenance.push_back(
      {"Sig (structured)", Provenance::kAbsent, Cat(failure->path, ": ", failure->reason)});
  return sig;
}

void SigMapper::WarnPatientInstructionsDropped(const std::vector<fhir::Dosage>& dosages,
                                               const std::string& path) {
  for (size_t i = 0; i < dosages.size(); ++i) {
    if (!dosages[i].patient_instruction.empty()) {
      issues_.Warning(Cat(path, "[", i, "].patientInstruction"), IssueCode::kNotSupported,
                      "SCRIPT Sig/ClarifyingFreeText is sent only with a structured Sig: not sent");
    }
  }
}

// --- SCRIPT → FHIR ----------------------------------------------------------------------

namespace {

fhir::CodeableConcept SnomedConcept(const script::SigCode& c) {
  fhir::CodeableConcept cc;
  cc.coding.push_back(fhir::Coding{std::string(kSnomed), "", c.code, c.text, std::nullopt});
  return cc;
}

struct NotReversible {
  std::string reason;
};

// A SCRIPT number as a FHIR decimal ("030" → "30"); a Sig whose number is none is not
// reversed (only after a lenient read).
std::string Decimal(const std::string& value) {
  std::string out = internal::FhirDecimalFromScript(value);
  if (out.empty()) throw NotReversible{Cat("\"", value, "\" is not a number")};
  return out;
}

fhir::Quantity NciQuantity(const std::string& value, const script::DoseUnit& u) {
  fhir::Quantity q;
  q.value = Decimal(value);
  q.unit = u.text;
  q.system = std::string(kNci);
  q.code = u.code;
  return q;
}

int64_t WholeNumber(const std::string& v, std::string_view what) {
  if (!internal::IsAllDigits(v) || v.size() > 9)
    throw NotReversible{Cat(what, " \"", v, "\" is not a whole number")};
  return std::stoll(v);
}

std::string TimeUnitOf(const script::SigCode& c) {
  auto u = SnomedToTimeUnit(c.code);
  if (!u) throw NotReversible{Cat("time unit SNOMED ", c.code, " has no FHIR unit")};
  return std::string(*u);
}

fhir::Dosage InstructionToDosage(const script::Instruction& in) {
  fhir::Dosage d;
  const script::DoseAdministration& a = in.dose_administration;
  if (a.route.qualifier != "SNOMED") throw NotReversible{"route not SNOMED"};
  d.route = SnomedConcept(a.route);
  if (a.dose_delivery_method) d.method = SnomedConcept(*a.dose_delivery_method);
  if (a.site) d.site = SnomedConcept(*a.site);
  if (!a.dose_quantity.empty() && a.dose_unit) {
    fhir::DoseAndRate dr;
    if (!a.dose_range_modifier.empty()) {
      if (a.dose_range_modifier != "TO" || !a.dose_unit_high)
        throw NotReversible{"dose range modifier OR"};
      dr.dose_range = fhir::Range{NciQuantity(a.dose_quantity, *a.dose_unit),
                                  NciQuantity(a.dose_quantity_high, *a.dose_unit_high)};
    } else {
      dr.dose_quantity = NciQuantity(a.dose_quantity, *a.dose_unit);
    }
    d.dose_and_rate.push_back(std::move(dr));
  }
  fhir::TimingRepeat r;
  bool any_repeat = false;
  for (size_t i = 0; i < in.timing.size(); ++i) {
    const auto& [mod, t] = in.timing[i];
    if (i > 0 && mod != "AND") throw NotReversible{Cat("timing modifier ", mod)};
    using K = script::TimingAndDuration::Kind;
    switch (t.kind) {
      case K::kFrequency:
        if (r.frequency || !r.period.empty()) throw NotReversible{"two frequencies"};
        r.frequency = WholeNumber(t.numeric_value, "frequency");
        r.period = "1";
        r.period_unit = TimeUnitOf(t.units);
        if (!t.variable_modifier.empty()) {
          if (t.variable_modifier != "TO") throw NotReversible{"frequency modifier"};
          r.frequency_max = WholeNumber(t.numeric_value_high, "frequency");
        }
        break;
      case K::kInterval:
        if (r.frequency || !r.period.empty()) throw NotReversible{"two frequencies"};
        r.frequency = 1;
        r.period = t.numeric_value;
        r.period_unit = TimeUnitOf(t.units);
        if (!t.variable_modifier.empty()) {
          if (t.variable_modifier != "TO") throw NotReversible{"interval modifier"};
          r.period_max = t.numeric_value_high;
        }
        break;
      case K::kAdministrationTiming:
        if (t.administration_timing_event.code != kSnomedAtBedtime)
          throw NotReversible{"timing event"};
        r.when.emplace_back("HS");
        break;
      case K::kDuration: {
        fhir::Quantity q;
        q.value = Decimal(t.numeric_value);
        auto u = SnomedToTimeUnit(t.units.code);
        if (!u) throw NotReversible{"duration unit"};
        q.unit = t.units.text;
        q.system = std::string(kUcum);
        q.code = std::string(*u);
        r.bounds_duration = q;
        break;
      }
      case K::kStopIndicator:
        throw NotReversible{"stop indicator"};
    }
    if (!t.clarifying_free_text.empty()) throw NotReversible{"timing clarifying text"};
    any_repeat = true;
  }
  if (any_repeat) {
    d.timing.emplace();
    d.timing->repeat = r;
  }
  for (const script::Indication& ind : in.indication_for_use) {
    if (!ind.precursor || ind.precursor->code != kSnomedAsNeeded)
      throw NotReversible{"indication precursor"};
    if (ind.indication) {
      d.as_needed_for.push_back(SnomedConcept(*ind.indication));
    } else {
      d.as_needed = true;
    }
  }
  for (const script::MaximumDose& m : in.maximum_dose_restriction) {
    if (!m.form || !m.clarifying_free_text.empty()) throw NotReversible{"maximum dose form"};
    fhir::Ratio ratio;
    ratio.numerator = NciQuantity(m.numeric_value, *m.form);
    fhir::Quantity den;
    den.value = Decimal(m.duration_value);
    den.unit = m.duration_unit.text;
    den.system = std::string(kUcum);
    den.code = TimeUnitOf(m.duration_unit);
    ratio.denominator = den;
    d.max_dose_per_period.push_back(ratio);
  }
  return d;
}

}  // namespace

std::vector<fhir::Dosage> SigToDosage(const script::Sig& sig, const std::string& path,
                                      IssueList& issues) {
  std::vector<fhir::Dosage> out;
  if (sig.structured()) {
    try {
      int64_t seq = 1;
      for (size_t i = 0; i < sig.instruction.size(); ++i) {
        const script::Instruction& in = sig.instruction[i];
        if (i > 0) {
          if (in.multiple_instruction_modifier == "THEN") {
            ++seq;
          } else if (in.multiple_instruction_modifier != "AND") {
            // OR / NOT: Dosage.sequence only orders (THEN) or joins (AND) instructions.
            issues.Warning(
                Cat(path, "/MultipleInstructionModifier",
                    sig.instruction.size() > 2 ? Cat("[", i, "]") : std::string()),
                IssueCode::kNotSupported,
                Cat("instruction modifier ", in.multiple_instruction_modifier,
                    " has no FHIR Dosage form: the structured Sig is not mapped to FHIR (SigText "
                    "is): dropped"));
            throw NotReversible{Cat("instruction modifier ", in.multiple_instruction_modifier)};
          }
        }
        fhir::Dosage d = InstructionToDosage(in);
        if (sig.instruction.size() > 1) d.sequence = seq;
        out.push_back(std::move(d));
      }
    } catch (const NotReversible& nr) {
      out.clear();
      // Every element of the structure is lost, not only the one that failed: named by the
      // paths of the Instruction elements and the modifiers between them.
      issues.Warning(Cat(path, "/Instruction"), IssueCode::kNotSupported,
                     Cat("the structured Sig is not mapped to FHIR (", nr.reason,
                         "): dosageInstruction[0].text carries SigText; the Instruction "
                         "elements are dropped"));
      const bool modifiers = std::any_of(sig.instruction.begin() + 1, sig.instruction.end(),
                                         [](const script::Instruction& in) {
                                           return in.multiple_instruction_modifier == "AND" ||
                                                  in.multiple_instruction_modifier == "THEN";
                                         });
      if (modifiers) {
        issues.Warning(Cat(path, "/MultipleInstructionModifier"), IssueCode::kNotSupported,
                       "dropped with the structured Sig (see the Instruction warning)");
      }
      if (!sig.snomed_version.empty() || !sig.fmt_version.empty()) {
        issues.Warning(Cat(path, "/CodeSystem"), IssueCode::kNotSupported,
                       "the code system versions are dropped with the structured Sig (see the "
                       "Instruction warning)");
      }
    }
  }
  if (out.empty()) out.emplace_back();
  out[0].text = sig.sig_text;
  // ClarifyingFreeText → patientInstruction, with or without the structure.
  out[0].patient_instruction = sig.clarifying_free_text;
  return out;
}

}  // namespace rxflow::mapping
