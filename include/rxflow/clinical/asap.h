// SPDX-License-Identifier: Apache-2.0
// File: rxflow/clinical/asap.h
//
// ASAP 4.2 / 4.2A / 4.2B dispensation reports, the files a dispenser sends to a state
// prescription monitoring program (PMP): a writer and a reader that parses what the writer
// writes (and files like it), refusing a malformed one with the segment and element.
//
// The layout — TH > IS > (PHA > (PAT > DSP > PRE > [CDI…] > [AIR]) repeated > TP) repeated
// > TT, `*` between elements, the segment terminator that TH09 declares — is rebuilt from
// public state dispenser guides and the HL7 FHIR PDMP IG's ASAP mapping: the ASAP standard
// itself is sold by ASAP. docs/clinical.md has the field table and marks the positions that
// must be checked against a state's current guide before certifying with it.
//
// Example:
//   rxflow::clinical::asap::Report r;
//   r.control_number = "20261201-1"; ...
//   auto text = rxflow::clinical::asap::Write(r);
//   auto back = rxflow::clinical::asap::Read(*text);
#ifndef RXFLOW_CLINICAL_ASAP_H_
#define RXFLOW_CLINICAL_ASAP_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rxflow/status.h"

namespace rxflow::clinical::asap {

enum class Version { k42, k42A, k42B };
std::string_view VersionName(Version v);  // "4.2", "4.2A", "4.2B"

// PHA: the dispensing pharmacy (one of NPI, NCPDP ID, DEA number is required).
struct Pharmacy {
  std::string npi;            // PHA01
  std::string ncpdp_id;       // PHA02
  std::string dea_number;     // PHA03
  std::string name;           // PHA04
  std::string address1;       // PHA05
  std::string address2;       // PHA06
  std::string city;           // PHA07
  std::string state;          // PHA08
  std::string zip;            // PHA09
  std::string phone;          // PHA10
  std::string contact_name;   // PHA11
  std::string chain_site_id;  // PHA12
  std::string permit_number;  // PHA13 (4.2A and later)
};

// PAT: the patient. A zero report's PAT has last name "Report", first name "Zero".
struct Patient {
  std::string id_jurisdiction;  // PAT01
  std::string id_qualifier;     // PAT02: 01 military … 06 driver's licence, 07 SSN, 99 other
  std::string id;               // PAT03
  std::string last_name;        // PAT07 (required)
  std::string first_name;       // PAT08 (required)
  std::string middle_name;      // PAT09
  std::string address1;         // PAT12
  std::string address2;         // PAT13
  std::string city;             // PAT14
  std::string state;            // PAT15
  std::string zip;              // PAT16
  std::string phone;            // PAT17
  std::string birth_date;       // PAT18, CCYYMMDD
  std::string gender;           // PAT19: F, M, U
  std::string species = "01";   // PAT20: 01 human, 02 veterinary
};

// PRE: the prescriber.
struct Prescriber {
  std::string npi;            // PRE01
  std::string dea_number;     // PRE02
  std::string dea_suffix;     // PRE03
  std::string state_license;  // PRE04
  std::string last_name;      // PRE05
  std::string first_name;     // PRE06
  std::string middle_name;    // PRE07
  std::string phone;          // PRE08
};

// CDI: one ingredient of a compound (DSP07 06).
struct CompoundIngredient {
  std::string sequence;          // CDI01
  std::string qualifier = "01";  // CDI02: 01 NDC
  std::string product_id;        // CDI03
  std::string quantity;          // CDI04
  std::string dosage_units;      // CDI05: 01 each, 02 mL, 03 g
};

// DSP: one dispensing, with its patient, prescriber and compound ingredients.
struct Dispensing {
  std::string reporting_status = "00";   // DSP01: 00 new, 01 revise, 02 void
  std::string rx_number;                 // DSP02
  std::string date_written;              // DSP03, CCYYMMDD
  std::string refills_authorized;        // DSP04
  std::string date_filled;               // DSP05, CCYYMMDD (required)
  std::string refill_number = "0";       // DSP06: 0 the original fill
  std::string product_qualifier = "01";  // DSP07: 01 NDC, 06 compound
  std::string product_id;                // DSP08: NDC-11 without hyphens
  std::string quantity;                  // DSP09
  std::string days_supply;               // DSP10
  std::string dosage_units = "01";       // DSP11: 01 each, 02 mL, 03 g
  std::string transmission_form;         // DSP12: 01 written … 05 transfer, 06 e-Rx
  std::string partial_fill = "00";       // DSP13: 00 no, 01… partial fill number
  std::string pharmacist_npi;            // DSP14
  std::string pharmacist_license;        // DSP15
  std::string payment_type;              // DSP16: 01 cash … 99 other
  std::string date_sold;                 // DSP17, CCYYMMDD
  std::string rxnorm_qualifier;          // DSP18: 01 SCD, 02 SBD, 03 GPCK, 04 BPCK
  std::string rxnorm_code;               // DSP19
  std::string erx_reference;             // DSP20
  std::string erx_order_number;          // DSP21
  std::string quantity_prescribed;       // DSP22 (4.2A and later)
  std::string sig;                       // DSP23 (4.2A and later)
  std::string treatment_type;            // DSP24 (4.2B)
  std::string diagnosis_code;            // DSP25 (4.2B)
  Patient patient;
  Prescriber prescriber;
  std::vector<CompoundIngredient> compound;
};

struct PharmacyReport {
  Pharmacy pharmacy;
  // Empty: a zero report for this pharmacy (no controlled substance dispensed in the period).
  std::vector<Dispensing> dispensings;
};

struct Report {
  Version version = Version::k42B;
  std::string control_number;   // TH02, echoed in TT01 (required, unique per file)
  std::string creation_date;    // TH05, CCYYMMDD (required)
  std::string creation_time;    // TH06, HHMMSS or HHMM (required)
  std::string file_type = "P";  // TH07: P production, T test
  std::string source_id;        // IS01 (required)
  std::string source_name;      // IS02 (required)
  std::string message;          // IS03; a zero report: "#CCYYMMDD#-#CCYYMMDD#"
  // A zero report's period (its IS03 and DSP05), when `pharmacies` have no dispensing.
  std::string zero_report_from, zero_report_to;
  std::vector<PharmacyReport> pharmacies;
};

struct WriteOptions {
  char element_separator = '*';
  char segment_terminator = '~';
  // A newline after each terminator (easier to read; readers accept either).
  bool newline = false;
};

// The report as an ASAP file: segment counts (TP01, TT02) and the trailer's control number
// computed. Trailing empty elements are left out. InvalidArgument naming the segment,
// element and what is wrong: a required element empty, a value holding the separator or the
// terminator, a date that is not CCYYMMDD, an element the version does not have (DSP22+ in
// 4.2, DSP24/25 in 4.2A), a code outside its list, a pharmacy with no NPI, NCPDP or DEA.
StatusOr<std::string> Write(const Report& report, const WriteOptions& options = {});

// An ASAP file → the report. The separator is the character after "TH", the terminator the
// one TH09 declares; a CR or LF after a terminator is ignored. InvalidArgument naming the
// segment's position and id and the element ("segment 7 (DSP), DSP05: ...") for a segment
// out of place, an unknown segment, too many elements, a missing required element, a count
// or control number in TP or TT that does not match.
StatusOr<Report> Read(std::string_view text);

}  // namespace rxflow::clinical::asap

#endif  // RXFLOW_CLINICAL_ASAP_H_
