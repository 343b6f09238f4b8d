// SPDX-License-Identifier: Apache-2.0
#include "rxflow/idempotency.h"

#include "rxflow/internal/crypto.h"
#include "rxflow/internal/strcat.h"

namespace rxflow {
namespace {

// Length-prefixed fields: "name=<len>:<value>\n" cannot be confused across boundaries.
class Canon {
 public:
  void Field(std::string_view name, std::string_view value) {
    if (value.empty()) return;
    internal::Append(out_, name, "=", value.size(), ":", value, "\n");
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

void Medication(Canon& c, const script::Medication& m) {
  c.Field("drug", m.drug_description);
  if (m.drug_coded) {
    const auto& d = *m.drug_coded;
    if (d.product_code)
      c.Field("product", internal::Cat(d.product_code->qualifier, "|", d.product_code->code));
    if (d.drug_db_code)
      c.Field("drugdb", internal::Cat(d.drug_db_code->qualifier, "|", d.drug_db_code->code));
    if (d.strength) {
      c.Field("strength", internal::Cat(d.strength->strength_value, "|",
                                        d.strength->strength_unit_of_measure_code, "|",
                                        d.strength->strength_form_code));
    }
    c.Field("schedule", d.dea_schedule_code);
  }
  if (m.quantity)
    c.Field("quantity", internal::Cat(m.quantity->value, "|", m.quantity->unit_of_measure_code));
  c.Field("days", m.days_supply);
  c.Field("written", m.written_date.date.empty() ? m.written_date.date_time : m.written_date.date);
  c.Field("substitutions", m.substitutions);
  c.Field("refills", m.number_of_refills);
  for (const auto& d : m.diagnosis) {
    c.Field("dx", internal::Cat(d.primary.qualifier, "|", d.primary.code));
    if (d.secondary) c.Field("dx2", internal::Cat(d.secondary->qualifier, "|", d.secondary->code));
  }
  c.Field("note", m.note);
  if (m.sig) {
    const script::Sig& sig = *m.sig;
    c.Field("sig", sig.sig_text);
    c.Field("sig.note", sig.clarifying_free_text);
    auto code = [](const std::optional<script::SigCode>& x) { return x ? x->code : std::string(); };
    for (const auto& in : sig.instruction) {
      const auto& a = in.dose_administration;
      c.Field(
          "instr",
          internal::Cat(in.multiple_instruction_modifier, "|", a.dose_quantity, "|",
                        a.dose_unit ? a.dose_unit->code : "", "|", a.dose_range_modifier, "|",
                        a.dose_quantity_high, "|", a.dose_unit_high ? a.dose_unit_high->code : "",
                        "|", a.route.code, "|", code(a.dose_delivery_method), "|", code(a.site)));
      for (const auto& [mod, t] : in.timing) {
        c.Field("timing", internal::Cat(mod, "|", static_cast<int>(t.kind), "|", t.numeric_value,
                                        "|", t.variable_modifier, "|", t.numeric_value_high, "|",
                                        t.units.code, "|", t.administration_timing_event.code));
      }
      for (const auto& ind : in.indication_for_use) {
        c.Field("indication", internal::Cat(code(ind.precursor), "|", code(ind.indication)));
      }
      for (const auto& mx : in.maximum_dose_restriction) {
        c.Field("maxdose",
                internal::Cat(mx.numeric_value, "|", mx.form ? mx.form->code : "", "|",
                              code(mx.units), "|", mx.duration_value, "|", mx.duration_unit.code));
      }
    }
  }
  for (const auto& o : m.other_medication_date) {
    c.Field("date", internal::Cat(o.qualifier, "|", o.date.date, o.date.date_time));
  }
  // A compound: its form and each ingredient with its amount (two compounds of one
  // description may differ only there). Absent for any other drug: their keys are unchanged.
  if (m.compound_information) {
    const script::CompoundInformation& compound = *m.compound_information;
    c.Field("compound", compound.final_compound_pharmaceutical_dosage_form);
    for (const script::CompoundIngredientLot& lot : compound.ingredients) {
      std::string item;
      if (lot.compound_ingredient) {
        const script::CompoundIngredient& i = *lot.compound_ingredient;
        const script::Strength s = i.strength.value_or(script::Strength{});
        item = internal::Cat(i.item_description, "|", i.item_number ? i.item_number->qualifier : "",
                             "|", i.item_number ? i.item_number->code : "", "|", s.strength_value,
                             "|", s.strength_unit_of_measure_code, "|", s.strength_form_code, "|",
                             i.dea_schedule_code);
      }
      c.Field("ingredient",
              internal::Cat(item, "|", lot.quantity.value, "|", lot.quantity.code_list_qualifier,
                            "|", lot.quantity.unit_of_measure_code));
    }
  }
}

// The identity fields of a patient, canonical: what the idempotency key's patient part and
// the patient reference are keyed HMACs of.
std::string PatientIdentity(const script::Patient& patient) {
  Canon identity;
  identity.Field("last", patient.name.last_name);
  identity.Field("first", patient.name.first_name);
  identity.Field("middle", patient.name.middle_name);
  identity.Field("birth", patient.date_of_birth.date.empty() ? patient.date_of_birth.date_time
                                                             : patient.date_of_birth.date);
  identity.Field("gender", patient.gender);
  identity.Field("mrn", patient.identification.medical_record_identification_number_ehr);
  return identity.Take();
}

}  // namespace

StatusOr<std::string> PatientReference(const script::Message& message, std::string_view patient_key,
                                       std::string_view tenant) {
  if (patient_key.size() < kMinPatientKeyBytes) {
    return absl::InvalidArgumentError(
        internal::Cat("the patient HMAC key must be at least ", kMinPatientKeyBytes, " bytes"));
  }
  const script::Patient* patient = nullptr;
  if (const auto* n = std::get_if<script::NewRx>(&message.body)) patient = &n->patient;
  if (const auto* c = std::get_if<script::CancelRx>(&message.body)) patient = &c->patient;
  if (!patient) return absl::InvalidArgumentError("a patient reference needs a NewRx or CancelRx");
  // Domain-separated from the idempotency key's patient part: the two never compare equal.
  Canon c;
  c.Field("v", "rxflow-patient-ref-1");
  c.Field("tenant", tenant);
  return internal::HmacSha256Hex(patient_key, c.Take() + PatientIdentity(*patient));
}

StatusOr<std::string> CanonicalPrescription(const script::Message& message,
                                            std::string_view patient_key) {
  if (patient_key.size() < kMinPatientKeyBytes) {
    return absl::InvalidArgumentError(
        internal::Cat("the patient HMAC key must be at least ", kMinPatientKeyBytes, " bytes"));
  }
  const script::Patient* patient = nullptr;
  const script::Prescriber* prescriber = nullptr;
  const std::optional<script::Pharmacy>* pharmacy = nullptr;
  const script::Medication* med = nullptr;
  std::string_view kind;
  if (const auto* n = std::get_if<script::NewRx>(&message.body)) {
    patient = &n->patient;
    prescriber = &n->prescriber;
    pharmacy = &n->pharmacy;
    med = &n->medication_prescribed;
    kind = "NewRx";
  } else if (const auto* c = std::get_if<script::CancelRx>(&message.body)) {
    patient = &c->patient;
    prescriber = &c->prescriber;
    pharmacy = &c->pharmacy;
    med = &c->medication_prescribed;
    kind = "CancelRx";
  } else {
    return absl::InvalidArgumentError("an idempotency key is computed for NewRx or CancelRx only");
  }
  Canon c;
  c.Field("v", "rxflow-idempotency-1");
  c.Field("kind", kind);
  c.Field("patient", internal::HmacSha256Hex(patient_key, PatientIdentity(*patient)));
  c.Field("prescriber.npi", prescriber->identification.npi);
  c.Field("prescriber.dea", prescriber->identification.dea_number);
  if (*pharmacy) c.Field("pharmacy", (*pharmacy)->identification.ncpdp_id);
  c.Field("order", message.header.prescriber_order_number);
  Medication(c, *med);
  return c.Take();
}

StatusOr<std::string> IdempotencyKey(const script::Message& message, std::string_view patient_key) {
  auto canon = CanonicalPrescription(message, patient_key);
  if (!canon.ok()) return canon.status();
  return internal::Sha256Hex(*canon);
}

}  // namespace rxflow
