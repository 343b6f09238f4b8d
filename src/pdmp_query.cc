// SPDX-License-Identifier: Apache-2.0
// PrescriptionService::QueryPdmp: a PDMP query for a prescription's patient, built from its
// stored NewRx and recorded as a PdmpQueried event.
#include <set>

#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"
#include "rxflow/script/xml.h"

#include "service_impl.h"

namespace rxflow {

using internal::Cat;

namespace {

std::string FhirGender(std::string_view ncpdp) {
  if (ncpdp == "M") return "male";
  if (ncpdp == "F") return "female";
  if (ncpdp == "U") return "unknown";
  return {};
}

// YYYY-MM-DD from a SCRIPT date or date-time.
std::string IsoDay(const script::DateValue& d) {
  const std::string& v = d.date.empty() ? d.date_time : d.date;
  return v.substr(0, 10);
}

}  // namespace

StatusOr<clinical::pdmp::Query> PdmpQueryFor(const script::NewRx& newrx) {
  clinical::pdmp::Query q;
  const script::Patient& p = newrx.patient;
  q.patient.family = p.name.last_name;
  q.patient.given = p.name.first_name;
  q.patient.birth_date = IsoDay(p.date_of_birth);
  q.patient.gender = FhirGender(p.gender);
  if (p.address) {
    q.patient.postal_code = p.address->postal_code;
    q.patient.state = p.address->state_province;
  }
  const script::Prescriber& pr = newrx.prescriber;
  q.requester.npi = pr.identification.npi;
  q.requester.dea_number = pr.identification.dea_number;
  q.requester.family = pr.name.last_name;
  q.requester.given = pr.name.first_name;
  if (pr.address) q.requester.state = pr.address->state_province;
  if (pr.practice_location) q.requester.organization_name = pr.practice_location->business_name;
  if (q.patient.family.empty() || q.patient.given.empty() || q.patient.birth_date.size() != 10) {
    return absl::FailedPreconditionError(
        "the NewRx has no patient last name, first name or birth date to query a PDMP with");
  }
  return q;
}

StatusOr<clinical::pdmp::Result> PrescriptionService::QueryPdmp(const std::string& id,
                                                                clinical::pdmp::Client& pdmp,
                                                                const RequestContext& ctx) {
  RXFLOW_ASSIGN_OR_RETURN(domain::PrescriptionState state, Load(id, ctx));  // tenant-checked
  if (domain::IsTerminal(state.state, state.fill_complete)) {
    return absl::FailedPreconditionError(Cat("prescription ", id, " is ",
                                             domain::StateName(state.state),
                                             ": a PDMP query is for a prescription in progress"));
  }
  RXFLOW_ASSIGN_OR_RETURN(std::string xml, OutboundXml(id, "send"));
  IssueList issues;
  StatusOr<script::Message> m = script::ReadXml(xml, issues);
  if (!m.ok() || !std::holds_alternative<script::NewRx>(m->body)) {
    return absl::DataLossError(Cat("prescription ", id, ": stored NewRx unreadable"));
  }
  const auto& newrx = std::get<script::NewRx>(m->body);
  RXFLOW_ASSIGN_OR_RETURN(clinical::pdmp::Query query, PdmpQueryFor(newrx));

  StatusOr<clinical::pdmp::Result> result = pdmp.History(query);
  domain::PdmpQueried ev;
  ev.pdmp = pdmp.name();
  ev.queried_at = FormatRfc3339(impl_->clock.NowMicros());
  ev.requester_npi = query.requester.npi;
  if (result.ok()) {
    ev.outcome = std::string(clinical::pdmp::OutcomeName(result->outcome));
    ev.dispensings = static_cast<int64_t>(result->dispenses.size());
    std::set<std::string> pharmacies;
    for (const auto& d : result->dispenses) {
      pharmacies.insert(Cat(d.pharmacy_ncpdp_id, "|", d.pharmacy_npi, "|", d.pharmacy_name));
      if (d.date_filled > ev.latest_fill) ev.latest_fill = d.date_filled;
    }
    ev.pharmacies = static_cast<int64_t>(pharmacies.size());
  } else {
    ev.outcome = std::string(clinical::pdmp::OutcomeName(clinical::pdmp::Outcome::kUnavailable));
    ev.error = std::string(result.status().message()).substr(0, 300);
  }
  // The query happened: it is recorded whether or not the PDMP answered.
  RXFLOW_RETURN_IF_ERROR(Execute(id, domain::RecordPdmpQuery{ev}, ctx));
  if (!result.ok()) {
    clinical::pdmp::Result unavailable;
    unavailable.outcome = clinical::pdmp::Outcome::kUnavailable;
    unavailable.messages.push_back(ev.error);
    return unavailable;
  }
  return result;
}

}  // namespace rxflow
