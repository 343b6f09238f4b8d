// SPDX-License-Identifier: Apache-2.0
// File: rxflow/clinical/pmp.h
//
// A day's controlled-substance dispensings from RxFlow's event log, as an ASAP report for a
// state PMP (rxflow/clinical/asap.h): each PrescriptionDispensed event of a prescription
// whose DEA schedule is set, with the patient, prescriber, pharmacy and drug of the NewRx it
// answered. `rxflow pmp report --date` writes it.
#ifndef RXFLOW_CLINICAL_PMP_H_
#define RXFLOW_CLINICAL_PMP_H_

#include <string>
#include <vector>

#include "rxflow/clinical/asap.h"
#include "rxflow/clinical/drugs.h"
#include "rxflow/status.h"
#include "rxflow/store/event_store.h"

namespace rxflow::clinical {

struct PmpReportOptions {
  asap::Version version = asap::Version::k42B;
  // TH02/TT01; default "<CCYYMMDD>-<first 8 hex digits of a hash of the dispensings>".
  std::string control_number;
  // TH05/TH06; default now, UTC.
  std::string creation_date, creation_time;
  std::string file_type = "P";
  // IS01/IS02: who sends the file; default the first pharmacy's NCPDP ID and name.
  std::string source_id, source_name;
  // With no dispensing that day, a zero report for this pharmacy (NCPDP ID, name); without
  // it, NotFound.
  asap::Pharmacy zero_report_pharmacy;
  // For a prescription whose NewRx has no NDC: the first NDC of the product its RxCUI names
  // here. nullptr: such a dispensing cannot be reported (listed in `not_reported`).
  const DrugDatabase* drugs = nullptr;
};

struct PmpReport {
  asap::Report report;
  // Dispensings that day that could not go into the file: "prescription <id>: <why>".
  std::vector<std::string> not_reported;
};

// The dispensings of the UTC day `day` (YYYY-MM-DD). InvalidArgument for a malformed day;
// NotFound when there is nothing to report and no zero-report pharmacy.
StatusOr<PmpReport> BuildPmpReport(store::EventStore& store, std::string_view day,
                                   const PmpReportOptions& options = {});

}  // namespace rxflow::clinical

#endif  // RXFLOW_CLINICAL_PMP_H_
