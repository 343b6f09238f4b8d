// SPDX-License-Identifier: Apache-2.0
// A day's controlled-substance dispensings from the event log → an ASAP report.
#include <algorithm>
#include <map>

#include "rxflow/clinical/pmp.h"
#include "rxflow/clock.h"
#include "rxflow/domain/prescription.h"
#include "rxflow/internal/crypto.h"
#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/script/xml.h"

#include "common/text.h"

namespace rxflow::clinical {

using internal::Cat;

namespace {

constexpr size_t kBatch = 1024;

// "2026-12-01" or "2026-12-01T…" → "20261201"; "" when it is no date.
std::string AsapDate(std::string_view d) {
  if (d.size() < 10 || d[4] != '-' || d[7] != '-') return {};
  std::string out = Cat(d.substr(0, 4), d.substr(5, 2), d.substr(8, 2));
  return internal::IsAllDigits(out) ? out : std::string();
}

std::string Digits(std::string_view s) { return internal::DigitsOnly(s); }

// ASAP elements are printable ASCII without the separators: free text (the SIG) is made so.
std::string CleanText(std::string_view s) {
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u > 0x7E || c == '*' || c == '~' || c == '|' || c == '\\' ? ' ' : c);
  }
  return out;
}

std::string DosageUnits(const std::optional<script::Quantity>& q) {
  if (!q) return "01";
  const std::string& unit = q->unit_of_measure_code;
  if (unit == "C28254") return "02";  // milliliter
  if (unit == "C48155") return "03";  // gram
  return "01";                        // each
}

std::string RxNormQualifier(std::string_view q) {
  if (q == "SCD") return "01";
  if (q == "SBD") return "02";
  if (q == "GPK" || q == "GPCK") return "03";
  if (q == "BPK" || q == "BPCK") return "04";
  return {};
}

// A SCRIPT address into an ASAP patient's or pharmacy's address elements.
template <typename T>
void CopyAddress(const std::optional<script::Address>& a, T& out) {
  if (!a) return;
  out.address1 = a->address_line1;
  out.address2 = a->address_line2;
  out.city = a->city;
  out.state = a->state_province;
  out.zip = Digits(a->postal_code);
}

struct Fill {
  std::string stream_id;
  int64_t occurred_at;
  domain::PrescriptionDispensed event;
};

}  // namespace

StatusOr<PmpReport> BuildPmpReport(store::EventStore& store, std::string_view day,
                                   const PmpReportOptions& options) {
  auto start = ParseRfc3339(Cat(day, "T00:00:00Z"));
  if (day.size() != 10 || !start.ok()) {
    return absl::InvalidArgumentError(Cat("day \"", day.substr(0, 20), "\" is not YYYY-MM-DD"));
  }
  const int64_t from = *start, to = *start + int64_t{86'400'000'000};
  // The day's fills, in log order.
  std::vector<Fill> fills;
  for (int64_t position = 0;;) {
    RXFLOW_ASSIGN_OR_RETURN(auto batch, store.ReadAll(position, kBatch));
    if (batch.empty()) break;
    for (const store::EventRecord& r : batch) {
      position = r.global_position;
      if (r.type != domain::PrescriptionDispensed::kType || r.occurred_at < from ||
          r.occurred_at >= to) {
        continue;
      }
      RXFLOW_ASSIGN_OR_RETURN(domain::Event e,
                              domain::DecodeEvent(r.type, r.schema_version, r.payload));
      fills.push_back({r.stream_id, r.occurred_at, std::get<domain::PrescriptionDispensed>(e)});
    }
  }
  PmpReport out;
  asap::Report& rep = out.report;
  std::map<std::string, size_t> pharmacy_at;  // NCPDP ID → index in rep.pharmacies
  std::string digest_input;
  const std::string date_filled = AsapDate(day);
  for (const Fill& fill : fills) {
    RXFLOW_ASSIGN_OR_RETURN(auto records, store.ReadStream(fill.stream_id));
    const domain::PrescriptionTransformed* t = nullptr;
    std::vector<domain::Event> decoded;
    decoded.reserve(records.size());
    int complete_before = 0, partial_before = 0;
    for (const store::EventRecord& r : records) {
      RXFLOW_ASSIGN_OR_RETURN(domain::Event e,
                              domain::DecodeEvent(r.type, r.schema_version, r.payload));
      decoded.push_back(std::move(e));
      if (const auto* d = std::get_if<domain::PrescriptionDispensed>(&decoded.back());
          d && r.occurred_at < fill.occurred_at) {
        (d->complete ? complete_before : partial_before)++;
      }
    }
    for (const auto& e : decoded) {
      if (const auto* x = std::get_if<domain::PrescriptionTransformed>(&e)) t = x;
    }
    if (!t || t->dea_schedule.empty()) continue;  // not a controlled substance: not reported
    if (fill.event.fill_status == "NotDispensed" || fill.event.fill_status == "Transferred") {
      continue;
    }
    IssueList issues;
    script::ReadOptions ro;
    auto version = script::ParseVersion(t->script_version);
    if (version.ok()) ro.version = *version;
    auto message = script::ReadXml(t->newrx_xml, issues, ro);
    const script::NewRx* newrx =
        message.ok() ? std::get_if<script::NewRx>(&message->body) : nullptr;
    if (!newrx) {
      out.not_reported.push_back(
          Cat("prescription ", fill.stream_id, ": its NewRx cannot be read (",
              message.ok() ? std::string("not a NewRx") : std::string(message.status().message()),
              ")"));
      continue;
    }
    const script::Medication& m = newrx->medication_prescribed;
    asap::Dispensing d;
    d.rx_number = message->header.prescriber_order_number.empty()
                      ? fill.stream_id.substr(0, 25)
                      : message->header.prescriber_order_number.substr(0, 25);
    d.date_written =
        AsapDate(m.written_date.date.empty() ? m.written_date.date_time : m.written_date.date);
    d.refills_authorized = Digits(m.number_of_refills).empty() ? "0" : Digits(m.number_of_refills);
    d.date_filled = date_filled;
    d.refill_number = std::to_string(complete_before);
    d.partial_fill = fill.event.complete && partial_before == 0
                         ? "00"
                         : Cat(partial_before + 1 < 10 ? "0" : "", partial_before + 1);
    // What was dispensed when the pharmacy said, else what was prescribed.
    std::string ndc = fill.event.dispensed_ndc;
    if (ndc.empty() && m.drug_coded && m.drug_coded->product_code &&
        m.drug_coded->product_code->qualifier == "ND") {
      ndc = m.drug_coded->product_code->code;
    }
    std::string rxcui, rxq;
    if (m.drug_coded && m.drug_coded->drug_db_code) {
      rxq = RxNormQualifier(m.drug_coded->drug_db_code->qualifier);
      if (!rxq.empty()) rxcui = m.drug_coded->drug_db_code->code;
    }
    if (!fill.event.dispensed_ndc.empty()) {
      // DSP19 names the dispensed product too: the database's RxCUI for the dispensed NDC,
      // or none when it does not know it (a substitute is not the prescribed RxCUI).
      const DrugProduct* p =
          options.drugs ? options.drugs->FindByNdc(fill.event.dispensed_ndc) : nullptr;
      if (p && !p->rxcui.empty()) {
        rxcui = p->rxcui;
        rxq = RxNormQualifier(p->term_type);
      } else {
        rxcui.clear();
        rxq.clear();
      }
    }
    if (ndc.empty() && options.drugs && !rxcui.empty()) {
      if (const DrugProduct* p = options.drugs->FindByRxcui(rxcui); p && !p->ndcs.empty()) {
        ndc = p->ndcs.front();
      }
    }
    if (ndc.empty()) {
      out.not_reported.push_back(
          Cat("prescription ", fill.stream_id, ": no NDC (DSP08) in the NewRx",
              options.drugs ? " nor for its RxCUI in the drug database" : ""));
      continue;
    }
    d.product_id = ndc;
    d.quantity = !fill.event.quantity.empty() ? fill.event.quantity
                 : m.quantity                 ? m.quantity->value
                                              : std::string();
    d.days_supply = Digits(m.days_supply);
    d.dosage_units = DosageUnits(m.quantity);
    d.rxnorm_qualifier = rxq;
    d.rxnorm_code = rxcui;
    d.erx_reference = message->header.message_id.substr(0, 35);
    d.erx_order_number = message->header.prescriber_order_number.substr(0, 35);
    if (options.version != asap::Version::k42) {
      d.quantity_prescribed = m.quantity ? m.quantity->value : std::string();
      d.sig = m.sig ? CleanText(m.sig->sig_text).substr(0, 200) : std::string();
    }
    const script::Patient& p = newrx->patient;
    d.patient.last_name = p.name.last_name;
    d.patient.first_name = p.name.first_name;
    d.patient.middle_name = p.name.middle_name;
    CopyAddress(p.address, d.patient);
    if (p.communication_numbers && p.communication_numbers->primary_telephone) {
      d.patient.phone = Digits(p.communication_numbers->primary_telephone->number);
    }
    d.patient.birth_date =
        AsapDate(p.date_of_birth.date.empty() ? p.date_of_birth.date_time : p.date_of_birth.date);
    d.patient.gender = p.gender == "M" || p.gender == "F" ? p.gender : "U";
    const script::Prescriber& pr = newrx->prescriber;
    d.prescriber.npi = pr.identification.npi;
    d.prescriber.dea_number = pr.identification.dea_number.substr(0, 9);
    d.prescriber.state_license = pr.identification.state_license_number;
    d.prescriber.last_name = pr.name.last_name;
    d.prescriber.first_name = pr.name.first_name;
    d.prescriber.middle_name = pr.name.middle_name;
    if (pr.communication_numbers && pr.communication_numbers->primary_telephone) {
      d.prescriber.phone = Digits(pr.communication_numbers->primary_telephone->number);
    }
    std::string ncpdp =
        newrx->pharmacy ? newrx->pharmacy->identification.ncpdp_id : t->pharmacy_ncpdp_id;
    auto [it, inserted] = pharmacy_at.try_emplace(ncpdp, rep.pharmacies.size());
    if (inserted) {
      asap::PharmacyReport group;
      group.pharmacy.ncpdp_id = ncpdp;
      if (newrx->pharmacy) {
        const script::Pharmacy& ph = *newrx->pharmacy;
        group.pharmacy.npi = ph.identification.npi;
        group.pharmacy.dea_number = ph.identification.dea_number;
        group.pharmacy.name = ph.business_name;
        CopyAddress(ph.address, group.pharmacy);
      }
      rep.pharmacies.push_back(std::move(group));
    }
    internal::Append(digest_input, fill.stream_id, "|", fill.occurred_at, "\n");
    rep.pharmacies[it->second].dispensings.push_back(std::move(d));
  }
  rep.version = options.version;
  rep.file_type = options.file_type;
  std::string now = FormatRfc3339(SystemClock().NowMicros());
  rep.creation_date = options.creation_date.empty() ? AsapDate(now) : options.creation_date;
  rep.creation_time = options.creation_time.empty()
                          ? Cat(now.substr(11, 2), now.substr(14, 2), now.substr(17, 2))
                          : options.creation_time;
  if (rep.pharmacies.empty() && !out.not_reported.empty()) {
    std::string why;
    for (const auto& n : out.not_reported) internal::Append(why, why.empty() ? "" : "; ", n);
    return absl::FailedPreconditionError(
        Cat("no dispensing on ", day, " could be reported: ", why));
  }
  if (rep.pharmacies.empty()) {
    const asap::Pharmacy& z = options.zero_report_pharmacy;
    if (z.ncpdp_id.empty() && z.npi.empty() && z.dea_number.empty()) {
      return absl::NotFoundError(Cat("no controlled-substance dispensing on ", day,
                                     ": name a pharmacy for a zero report"));
    }
    rep.pharmacies.push_back({z, {}});
    rep.zero_report_from = rep.zero_report_to = date_filled;
  }
  rep.control_number = options.control_number.empty()
                           ? Cat(date_filled, "-", internal::Sha256Hex(digest_input).substr(0, 8))
                           : options.control_number;
  const asap::Pharmacy& first = rep.pharmacies.front().pharmacy;
  rep.source_id = !options.source_id.empty() ? options.source_id
                  : !first.ncpdp_id.empty()  ? first.ncpdp_id
                                             : first.npi;
  rep.source_name = !options.source_name.empty() ? options.source_name
                    : !first.name.empty()        ? first.name
                                                 : rep.source_id;
  return out;
}

}  // namespace rxflow::clinical
