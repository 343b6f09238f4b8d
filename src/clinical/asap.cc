// SPDX-License-Identifier: Apache-2.0
// ASAP 4.2/4.2A/4.2B: one field table per segment drives the writer and the reader.
#include "rxflow/clinical/asap.h"

#include <algorithm>
#include <array>

#include "rxflow/internal/strcat.h"

#include "common/text.h"

namespace rxflow::clinical::asap {

using internal::Cat;

std::string_view VersionName(Version v) {
  switch (v) {
    case Version::k42:
      return "4.2";
    case Version::k42A:
      return "4.2A";
    case Version::k42B:
      return "4.2B";
  }
  return "4.2B";
}

namespace {

enum class Kind { kText, kDate, kDigits, kCode };

template <typename T>
struct Field {
  int pos;            // element number: 1 for XXX01
  const char* label;  // what it is, for messages
  std::string T::*member;
  bool required = false;
  Kind kind = Kind::kText;
  const char* codes = nullptr;  // kCode: "00|01|02"
  Version since = Version::k42;
};

using PhaF = Field<Pharmacy>;
using PatF = Field<Patient>;
using DspF = Field<Dispensing>;
using PreF = Field<Prescriber>;
using CdiF = Field<CompoundIngredient>;

const std::vector<PhaF>& PharmacyFields() {
  static const std::vector<PhaF> f = {
      {1, "pharmacy NPI", &Pharmacy::npi, false, Kind::kDigits},
      {2, "pharmacy NCPDP ID", &Pharmacy::ncpdp_id, false, Kind::kDigits},
      {3, "pharmacy DEA number", &Pharmacy::dea_number},
      {4, "pharmacy name", &Pharmacy::name},
      {5, "pharmacy address", &Pharmacy::address1},
      {6, "pharmacy address line 2", &Pharmacy::address2},
      {7, "pharmacy city", &Pharmacy::city},
      {8, "pharmacy state", &Pharmacy::state},
      {9, "pharmacy ZIP code", &Pharmacy::zip},
      {10, "pharmacy phone", &Pharmacy::phone, false, Kind::kDigits},
      {11, "pharmacy contact name", &Pharmacy::contact_name},
      {12, "chain site ID", &Pharmacy::chain_site_id},
      {13, "pharmacy permit number", &Pharmacy::permit_number, false, Kind::kText, nullptr,
       Version::k42A},
  };
  return f;
}

const std::vector<PatF>& PatientFields() {
  static const std::vector<PatF> f = {
      {1, "patient ID jurisdiction", &Patient::id_jurisdiction},
      {2, "patient ID qualifier", &Patient::id_qualifier, false, Kind::kCode,
       "01|02|03|04|05|06|07|08|99"},
      {3, "patient ID", &Patient::id},
      {7, "patient last name", &Patient::last_name, true},
      {8, "patient first name", &Patient::first_name, true},
      {9, "patient middle name", &Patient::middle_name},
      {12, "patient address", &Patient::address1},
      {13, "patient address line 2", &Patient::address2},
      {14, "patient city", &Patient::city},
      {15, "patient state", &Patient::state},
      {16, "patient ZIP code", &Patient::zip},
      {17, "patient phone", &Patient::phone, false, Kind::kDigits},
      {18, "patient birth date", &Patient::birth_date, false, Kind::kDate},
      {19, "patient gender", &Patient::gender, false, Kind::kCode, "F|M|U"},
      {20, "species", &Patient::species, false, Kind::kCode, "01|02"},
  };
  return f;
}

const std::vector<DspF>& DispensingFields() {
  static const std::vector<DspF> f = {
      {1, "reporting status", &Dispensing::reporting_status, true, Kind::kCode, "00|01|02"},
      {2, "prescription number", &Dispensing::rx_number, true},
      {3, "date written", &Dispensing::date_written, true, Kind::kDate},
      {4, "refills authorized", &Dispensing::refills_authorized, false, Kind::kDigits},
      {5, "date filled", &Dispensing::date_filled, true, Kind::kDate},
      {6, "refill number", &Dispensing::refill_number, true, Kind::kDigits},
      {7, "product ID qualifier", &Dispensing::product_qualifier, true, Kind::kCode, "01|06"},
      {8, "product ID", &Dispensing::product_id, true},
      {9, "quantity dispensed", &Dispensing::quantity, true},
      {10, "days supply", &Dispensing::days_supply, false, Kind::kDigits},
      {11, "drug dosage units", &Dispensing::dosage_units, false, Kind::kCode, "01|02|03"},
      {12, "transmission form of Rx origin", &Dispensing::transmission_form, false, Kind::kCode,
       "01|02|03|04|05|06|99"},
      {13, "partial fill indicator", &Dispensing::partial_fill, false, Kind::kDigits},
      {14, "pharmacist NPI", &Dispensing::pharmacist_npi, false, Kind::kDigits},
      {15, "pharmacist state license", &Dispensing::pharmacist_license},
      {16, "classification code for payment type", &Dispensing::payment_type, false, Kind::kCode,
       "01|02|03|04|05|06|07|99"},
      {17, "date sold", &Dispensing::date_sold, false, Kind::kDate},
      {18, "RxNorm product qualifier", &Dispensing::rxnorm_qualifier, false, Kind::kCode,
       "01|02|03|04"},
      {19, "RxNorm code", &Dispensing::rxnorm_code, false, Kind::kDigits},
      {20, "electronic prescription reference number", &Dispensing::erx_reference},
      {21, "electronic prescription order number", &Dispensing::erx_order_number},
      {22, "quantity prescribed", &Dispensing::quantity_prescribed, false, Kind::kText, nullptr,
       Version::k42A},
      {23, "Rx SIG", &Dispensing::sig, false, Kind::kText, nullptr, Version::k42A},
      {24, "treatment type", &Dispensing::treatment_type, false, Kind::kText, nullptr,
       Version::k42B},
      {25, "diagnosis code", &Dispensing::diagnosis_code, false, Kind::kText, nullptr,
       Version::k42B},
  };
  return f;
}

const std::vector<PreF>& PrescriberFields() {
  static const std::vector<PreF> f = {
      {1, "prescriber NPI", &Prescriber::npi, false, Kind::kDigits},
      {2, "prescriber DEA number", &Prescriber::dea_number},
      {3, "prescriber DEA number suffix", &Prescriber::dea_suffix},
      {4, "prescriber state license", &Prescriber::state_license},
      {5, "prescriber last name", &Prescriber::last_name},
      {6, "prescriber first name", &Prescriber::first_name},
      {7, "prescriber middle name", &Prescriber::middle_name},
      {8, "prescriber phone", &Prescriber::phone, false, Kind::kDigits},
  };
  return f;
}

const std::vector<CdiF>& CompoundFields() {
  static const std::vector<CdiF> f = {
      {1, "compound ingredient sequence number", &CompoundIngredient::sequence, true,
       Kind::kDigits},
      {2, "product ID qualifier", &CompoundIngredient::qualifier, true, Kind::kCode, "01"},
      {3, "product ID", &CompoundIngredient::product_id, true},
      {4, "compound ingredient quantity", &CompoundIngredient::quantity, true},
      {5, "compound drug dosage units", &CompoundIngredient::dosage_units, false, Kind::kCode,
       "01|02|03"},
  };
  return f;
}

size_t MaxElements(std::string_view id) {
  if (id == "TH") return 9;
  if (id == "IS") return 3;
  if (id == "PHA") return 13;
  if (id == "PAT") return 23;
  if (id == "DSP") return 25;
  if (id == "PRE") return 9;
  if (id == "CDI") return 5;
  if (id == "AIR") return 11;
  if (id == "TP") return 1;
  if (id == "TT") return 2;
  return 0;
}

bool IsDate(std::string_view s) {
  if (s.size() != 8 || !internal::IsAllDigits(s)) return false;
  int m = (s[4] - '0') * 10 + (s[5] - '0'), d = (s[6] - '0') * 10 + (s[7] - '0');
  return m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

bool InCodes(std::string_view v, const char* codes) {
  std::string_view list = codes;
  while (!list.empty()) {
    size_t bar = list.find('|');
    if (list.substr(0, bar) == v) return true;
    if (bar == std::string_view::npos) break;
    list.remove_prefix(bar + 1);
  }
  return false;
}

// "" when `v` is a good value for the field, else why not.
std::string CheckValue(std::string_view v, Kind kind, const char* codes) {
  if (v.empty()) return {};
  switch (kind) {
    case Kind::kDate:
      if (!IsDate(v)) return Cat("\"", v.substr(0, 20), "\" is not a date CCYYMMDD");
      break;
    case Kind::kDigits:
      if (!internal::IsAllDigits(v)) return Cat("\"", v.substr(0, 20), "\" is not digits");
      break;
    case Kind::kCode:
      if (!InCodes(v, codes)) {
        return Cat("\"", v.substr(0, 10), "\" is none of ", codes);
      }
      break;
    case Kind::kText:
      break;
  }
  return {};
}

std::string ElementName(std::string_view seg, int pos) {
  return Cat(seg, pos < 10 ? "0" : "", pos);
}

// ---------------------------------------------------------------------------------------
// Writing.

class Writer {
 public:
  Writer(const WriteOptions& o) : o_(o) {}

  // Starts a segment; elements are added by position.
  void Begin(std::string_view id) {
    id_ = std::string(id);
    elements_.assign(MaxElements(id) + 1, std::string());
  }
  Status Set(int pos, std::string_view value, std::string_view label) {
    for (char c : value) {
      if (c == o_.element_separator || c == o_.segment_terminator) {
        return absl::InvalidArgumentError(Cat(
            ElementName(id_, pos), " (", label, "): the value holds the ",
            c == o_.element_separator ? "element separator" : "segment terminator", " '", c, "'"));
      }
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7E) {
        return absl::InvalidArgumentError(
            Cat(ElementName(id_, pos), " (", label,
                "): ASAP files are printable ASCII; the value holds another character"));
      }
    }
    elements_[static_cast<size_t>(pos)] = std::string(value);
    return absl::OkStatus();
  }
  void End() {
    size_t last = elements_.size() - 1;
    while (last > 0 && elements_[last].empty()) --last;  // trailing empty elements left out
    out_.append(id_);
    for (size_t i = 1; i <= last; ++i) {
      out_.push_back(o_.element_separator);
      out_.append(elements_[i]);
    }
    out_.push_back(o_.segment_terminator);
    if (o_.newline) out_.push_back('\n');
    ++count_;
  }
  template <typename T>
  Status Fields(std::string_view id, const T& value, const std::vector<Field<T>>& fields,
                Version version, bool relaxed = false) {
    Begin(id);
    for (const Field<T>& f : fields) {
      const std::string& v = value.*(f.member);
      if (v.empty()) {
        if (f.required && !relaxed) {
          return absl::InvalidArgumentError(
              Cat(ElementName(id, f.pos), " (", f.label, ") is required"));
        }
        continue;
      }
      if (version < f.since) {
        return absl::InvalidArgumentError(Cat(ElementName(id, f.pos), " (", f.label,
                                              ") is not in ASAP ", VersionName(version), ": write ",
                                              VersionName(f.since), " or later"));
      }
      std::string why = CheckValue(v, f.kind, f.codes);
      if (!why.empty()) {
        return absl::InvalidArgumentError(Cat(ElementName(id, f.pos), " (", f.label, "): ", why));
      }
      if (auto s = Set(f.pos, v, f.label); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  size_t count() const { return count_; }
  std::string Take() { return std::move(out_); }

 private:
  const WriteOptions& o_;
  std::string id_;
  std::vector<std::string> elements_;
  std::string out_;
  size_t count_ = 0;
};

#define RXFLOW_ASAP_TRY(expr)           \
  do {                                  \
    if (Status s_ = (expr); !s_.ok()) { \
      return s_;                        \
    }                                   \
  } while (false)

}  // namespace

StatusOr<std::string> Write(const Report& r, const WriteOptions& o) {
  if (o.element_separator == o.segment_terminator || o.element_separator == '\n' ||
      o.segment_terminator == '\n' || o.element_separator == '\r' || o.segment_terminator == '\r') {
    return absl::InvalidArgumentError(
        "the element separator and the segment terminator must "
        "differ, and neither may be a line break");
  }
  if (r.pharmacies.empty()) {
    return absl::InvalidArgumentError("a report has at least one pharmacy (PHA)");
  }
  Writer w(o);
  const Version v = r.version;
  w.Begin("TH");
  if (r.control_number.empty())
    return absl::InvalidArgumentError("TH02 (control number) is required");
  if (!IsDate(r.creation_date)) {
    return absl::InvalidArgumentError(Cat("TH05 (creation date): \"", r.creation_date.substr(0, 20),
                                          "\" is not a date CCYYMMDD"));
  }
  if (!internal::IsAllDigits(r.creation_time) ||
      (r.creation_time.size() != 6 && r.creation_time.size() != 4)) {
    return absl::InvalidArgumentError(
        Cat("TH06 (creation time): \"", r.creation_time.substr(0, 20), "\" is not HHMMSS or HHMM"));
  }
  if (r.file_type != "P" && r.file_type != "T") {
    return absl::InvalidArgumentError("TH07 (file type) must be P or T");
  }
  RXFLOW_ASAP_TRY(w.Set(1, VersionName(v), "version"));
  RXFLOW_ASAP_TRY(w.Set(2, r.control_number, "control number"));
  RXFLOW_ASAP_TRY(w.Set(3, "01", "transaction type"));
  RXFLOW_ASAP_TRY(w.Set(5, r.creation_date, "creation date"));
  RXFLOW_ASAP_TRY(w.Set(6, r.creation_time, "creation time"));
  RXFLOW_ASAP_TRY(w.Set(7, r.file_type, "file type"));
  w.End();
  // TH09 holds the terminator itself, which Set refuses in a value: append it by hand. The
  // TH written above ended "...*P~"; rewrite its end as "...*P**~~".
  std::string text = w.Take();
  text.pop_back();
  if (o.newline) text.pop_back();
  // TH08 (routing number) is empty; TH09 is the terminator.
  text.push_back(o.element_separator);
  text.push_back(o.element_separator);
  text.push_back(o.segment_terminator);
  text.push_back(o.segment_terminator);
  if (o.newline) text.push_back('\n');
  Writer body(o);
  if (r.source_id.empty())
    return absl::InvalidArgumentError("IS01 (information source ID) is required");
  if (r.source_name.empty()) {
    return absl::InvalidArgumentError("IS02 (information source entity name) is required");
  }
  std::string message = r.message;
  bool zero = std::all_of(r.pharmacies.begin(), r.pharmacies.end(),
                          [](const PharmacyReport& p) { return p.dispensings.empty(); });
  if (zero) {
    if (!IsDate(r.zero_report_from) || !IsDate(r.zero_report_to)) {
      return absl::InvalidArgumentError(
          "a zero report (no dispensing) needs its period: zero_report_from and zero_report_to, "
          "CCYYMMDD");
    }
    message = Cat("#", r.zero_report_from, "#-#", r.zero_report_to, "#");
  }
  body.Begin("IS");
  RXFLOW_ASAP_TRY(body.Set(1, r.source_id, "information source ID"));
  RXFLOW_ASAP_TRY(body.Set(2, r.source_name, "information source entity name"));
  RXFLOW_ASAP_TRY(body.Set(3, message, "message"));
  body.End();
  for (size_t pi = 0; pi < r.pharmacies.size(); ++pi) {
    const PharmacyReport& pr = r.pharmacies[pi];
    const Pharmacy& ph = pr.pharmacy;
    if (ph.npi.empty() && ph.ncpdp_id.empty() && ph.dea_number.empty()) {
      return absl::InvalidArgumentError(
          Cat("pharmacy ", pi + 1,
              ": PHA01, PHA02 or PHA03 (NPI, NCPDP ID or DEA number) is required"));
    }
    size_t before = body.count();
    auto in_pharmacy = [&](Status s) -> Status {
      if (s.ok()) return s;
      return absl::InvalidArgumentError(Cat("pharmacy ", pi + 1, ": ", std::string(s.message())));
    };
    RXFLOW_ASAP_TRY(in_pharmacy(body.Fields("PHA", ph, PharmacyFields(), v)));
    body.End();
    if (pr.dispensings.empty()) {
      // The zero report: PAT07 "Report", PAT08 "Zero", DSP05 the end of the period, PRE empty.
      Patient zp;
      zp.last_name = "Report";
      zp.first_name = "Zero";
      zp.species.clear();
      RXFLOW_ASAP_TRY(body.Fields("PAT", zp, PatientFields(), v));
      body.End();
      body.Begin("DSP");
      RXFLOW_ASAP_TRY(body.Set(5, r.zero_report_to, "date filled"));
      body.End();
      body.Begin("PRE");
      body.End();
    }
    for (size_t di = 0; di < pr.dispensings.size(); ++di) {
      const Dispensing& d = pr.dispensings[di];
      auto in_dispensing = [&](Status s) -> Status {
        if (s.ok()) return s;
        return absl::InvalidArgumentError(
            Cat("pharmacy ", pi + 1, ", dispensing ", di + 1, ": ", std::string(s.message())));
      };
      RXFLOW_ASAP_TRY(in_dispensing(body.Fields("PAT", d.patient, PatientFields(), v)));
      body.End();
      RXFLOW_ASAP_TRY(in_dispensing(body.Fields("DSP", d, DispensingFields(), v)));
      if (d.product_qualifier == "01" &&
          (d.product_id.size() != 11 || !internal::IsAllDigits(d.product_id))) {
        return in_dispensing(absl::InvalidArgumentError(
            Cat("DSP08 (product ID): an NDC is 11 digits without hyphens, got \"",
                d.product_id.substr(0, 20), "\"")));
      }
      if ((d.product_qualifier == "06") != !d.compound.empty()) {
        return in_dispensing(absl::InvalidArgumentError(
            "DSP07 06 (compound) and CDI segments go together: a compound has its ingredients, "
            "anything else none"));
      }
      body.End();
      RXFLOW_ASAP_TRY(in_dispensing(body.Fields("PRE", d.prescriber, PrescriberFields(), v)));
      body.End();
      for (const CompoundIngredient& c : d.compound) {
        RXFLOW_ASAP_TRY(in_dispensing(body.Fields("CDI", c, CompoundFields(), v)));
        body.End();
      }
    }
    body.Begin("TP");
    RXFLOW_ASAP_TRY(body.Set(1, std::to_string(body.count() - before + 1), "detail segment count"));
    body.End();
  }
  const size_t total = 1 + body.count() + 1;  // TH, the body, TT
  body.Begin("TT");
  RXFLOW_ASAP_TRY(body.Set(1, r.control_number, "transaction control number"));
  RXFLOW_ASAP_TRY(body.Set(2, std::to_string(total), "segment count"));
  body.End();
  return text + body.Take();
}

// ---------------------------------------------------------------------------------------
// Reading.

namespace {

struct Segment {
  size_t position;  // 1-based, in the file
  std::string id;
  std::vector<std::string_view> elements;  // [0] is the id
  std::string_view Get(int pos) const {
    return static_cast<size_t>(pos) < elements.size() ? elements[static_cast<size_t>(pos)]
                                                      : std::string_view();
  }
};

Status Bad(const Segment& s, std::string_view what) {
  return absl::InvalidArgumentError(Cat("segment ", s.position, " (", s.id, "), ", what));
}

template <typename T>
Status ReadFields(const Segment& s, T& out, const std::vector<Field<T>>& fields, Version v,
                  bool relaxed = false) {
  for (const Field<T>& f : fields) {
    std::string_view value = s.Get(f.pos);
    std::string name = ElementName(s.id, f.pos);
    if (value.empty()) {
      if (f.required && !relaxed) return Bad(s, Cat(name, " (", f.label, ") is required"));
      continue;
    }
    if (v < f.since) {
      return Bad(s, Cat(name, " (", f.label, ") is not in ASAP ", VersionName(v)));
    }
    std::string why = CheckValue(value, f.kind, f.codes);
    if (!why.empty()) return Bad(s, Cat(name, " (", f.label, "): ", why));
    out.*(f.member) = std::string(value);
  }
  // Elements the table does not read must be empty: nothing is dropped unseen.
  for (size_t i = 1; i < s.elements.size(); ++i) {
    if (s.elements[i].empty()) continue;
    bool known = std::any_of(fields.begin(), fields.end(),
                             [&](const Field<T>& f) { return static_cast<size_t>(f.pos) == i; });
    if (!known) {
      return Bad(s, Cat(ElementName(s.id, static_cast<int>(i)),
                        " is not read by RxFlow (PAT04-06, PAT10-11, PAT21-23, PRE09); "
                        "refused rather than dropped"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

StatusOr<Report> Read(std::string_view text) {
  // Bounded cost: a PMP file of a busy pharmacy's day is far smaller.
  if (text.size() > (size_t{256} << 20)) {
    return absl::InvalidArgumentError("an ASAP file over 256 MiB is refused");
  }
  if (text.size() < 4 || text.substr(0, 2) != "TH") {
    return absl::InvalidArgumentError("segment 1: an ASAP file starts with TH");
  }
  const char sep = text[2];
  // TH09 is the terminator: the character after the 9th separator, followed by itself.
  size_t pos = 2, seps = 0;
  while (pos < text.size() && seps < 9) {
    if (text[pos] == sep) ++seps;
    ++pos;
  }
  if (seps < 9 || pos + 1 >= text.size() || text[pos] != text[pos + 1]) {
    return absl::InvalidArgumentError(
        "segment 1 (TH), TH09: the segment terminator is not declared (TH09 must hold it, and "
        "the TH segment end with it)");
  }
  const char term = text[pos];
  if (term == sep || term == '\r' || term == '\n') {
    return absl::InvalidArgumentError("segment 1 (TH), TH09: not a usable segment terminator");
  }
  // Segments: TH is up to pos + 1 (its own TH09 then its terminator).
  std::vector<Segment> segs;
  auto add = [&](std::string_view body) {
    Segment s;
    s.position = segs.size() + 1;
    size_t start = 0;
    while (true) {
      size_t at = body.find(sep, start);
      s.elements.push_back(body.substr(start, at == std::string_view::npos ? at : at - start));
      if (at == std::string_view::npos) break;
      start = at + 1;
    }
    s.id = std::string(s.elements[0]);
    segs.push_back(std::move(s));
  };
  add(text.substr(0, pos + 1));
  size_t at = pos + 2;
  while (at < text.size()) {
    while (at < text.size() && (text[at] == '\r' || text[at] == '\n')) ++at;
    if (at >= text.size()) break;
    size_t end = text.find(term, at);
    if (end == std::string_view::npos) {
      return absl::InvalidArgumentError(
          Cat("segment ", segs.size() + 1, ": not ended by the segment terminator '", term, "'"));
    }
    add(text.substr(at, end - at));
    at = end + 1;
  }
  for (const Segment& s : segs) {
    size_t max = MaxElements(s.id);
    if (max == 0) return Bad(s, "not an ASAP segment");
    if (s.elements.size() - 1 > max) {
      return Bad(s, Cat(s.elements.size() - 1, " elements, ", s.id, " has at most ", max));
    }
  }

  Report r;
  const Segment& th = segs[0];
  std::string_view version = th.Get(1);
  if (version == "4.2") {
    r.version = Version::k42;
  } else if (version == "4.2A") {
    r.version = Version::k42A;
  } else if (version == "4.2B") {
    r.version = Version::k42B;
  } else {
    return Bad(th, Cat("TH01: version \"", version.substr(0, 10), "\" is none of 4.2, 4.2A, 4.2B"));
  }
  const Version v = r.version;
  r.control_number = std::string(th.Get(2));
  if (r.control_number.empty()) return Bad(th, "TH02 (control number) is required");
  if (th.Get(3) != "01") return Bad(th, "TH03: only 01 (a report sent) is read");
  r.creation_date = std::string(th.Get(5));
  if (!IsDate(r.creation_date)) return Bad(th, "TH05 (creation date) is not a date CCYYMMDD");
  r.creation_time = std::string(th.Get(6));
  if (!internal::IsAllDigits(r.creation_time) ||
      (r.creation_time.size() != 6 && r.creation_time.size() != 4)) {
    return Bad(th, "TH06 (creation time) is not HHMMSS or HHMM");
  }
  r.file_type = std::string(th.Get(7));
  if (r.file_type != "P" && r.file_type != "T") return Bad(th, "TH07 (file type) must be P or T");

  size_t i = 1;
  auto expect = [&](std::string_view id) -> Status {
    if (i >= segs.size()) {
      return absl::InvalidArgumentError(
          Cat("segment ", segs.size() + 1, ": the file ends where ", id, " is expected"));
    }
    if (segs[i].id != id) return Bad(segs[i], Cat(id, " is expected here"));
    return absl::OkStatus();
  };
  RXFLOW_ASAP_TRY(expect("IS"));
  r.source_id = std::string(segs[i].Get(1));
  r.source_name = std::string(segs[i].Get(2));
  r.message = std::string(segs[i].Get(3));
  if (r.source_id.empty()) return Bad(segs[i], "IS01 (information source ID) is required");
  if (r.source_name.empty())
    return Bad(segs[i], "IS02 (information source entity name) is required");
  ++i;
  while (i < segs.size() && segs[i].id == "PHA") {
    const size_t first = i;
    PharmacyReport pr;
    RXFLOW_ASAP_TRY(ReadFields(segs[i], pr.pharmacy, PharmacyFields(), v));
    if (pr.pharmacy.npi.empty() && pr.pharmacy.ncpdp_id.empty() && pr.pharmacy.dea_number.empty()) {
      return Bad(segs[i], "PHA01, PHA02 or PHA03 (NPI, NCPDP ID or DEA number) is required");
    }
    ++i;
    bool zero = false;
    while (i < segs.size() && segs[i].id == "PAT") {
      const Segment& pat = segs[i];
      if (pat.Get(7) == "Report" && pat.Get(8) == "Zero") {
        // The zero report: DSP05 the date, PRE empty; no dispensing.
        if (zero || !pr.dispensings.empty()) return Bad(pat, "a zero report among dispensings");
        zero = true;
        ++i;
        RXFLOW_ASAP_TRY(expect("DSP"));
        if (!IsDate(segs[i].Get(5)))
          return Bad(segs[i], "DSP05 (date filled) is not a date CCYYMMDD");
        r.zero_report_to = std::string(segs[i].Get(5));
        ++i;
        RXFLOW_ASAP_TRY(expect("PRE"));
        ++i;
        continue;
      }
      if (zero) return Bad(pat, "a dispensing after a zero report");
      Dispensing d;
      d.patient.species.clear();
      RXFLOW_ASAP_TRY(ReadFields(pat, d.patient, PatientFields(), v));
      ++i;
      RXFLOW_ASAP_TRY(expect("DSP"));
      // The defaults the struct starts with are not what the file says: clear, then read.
      d.reporting_status.clear();
      d.refill_number.clear();
      d.product_qualifier.clear();
      d.dosage_units.clear();
      d.partial_fill.clear();
      RXFLOW_ASAP_TRY(ReadFields(segs[i], d, DispensingFields(), v));
      if (d.product_qualifier == "01" &&
          (d.product_id.size() != 11 || !internal::IsAllDigits(d.product_id))) {
        return Bad(segs[i], "DSP08 (product ID): an NDC is 11 digits without hyphens");
      }
      ++i;
      RXFLOW_ASAP_TRY(expect("PRE"));
      RXFLOW_ASAP_TRY(ReadFields(segs[i], d.prescriber, PrescriberFields(), v));
      ++i;
      while (i < segs.size() && segs[i].id == "CDI") {
        CompoundIngredient c;
        c.qualifier.clear();
        RXFLOW_ASAP_TRY(ReadFields(segs[i], c, CompoundFields(), v));
        d.compound.push_back(std::move(c));
        ++i;
      }
      if ((d.product_qualifier == "06") != !d.compound.empty()) {
        return Bad(segs[i - 1], "DSP07 06 (compound) and CDI segments go together");
      }
      if (i < segs.size() && segs[i].id == "AIR") {
        return Bad(segs[i],
                   "AIR (additional information) is not read by RxFlow; refused rather "
                   "than dropped");
      }
      pr.dispensings.push_back(std::move(d));
    }
    if (!zero && pr.dispensings.empty()) {
      return i < segs.size() ? Bad(segs[i], "PAT is expected here")
                             : absl::InvalidArgumentError("the file ends where PAT is expected");
    }
    RXFLOW_ASAP_TRY(expect("TP"));
    const size_t count = i - first + 1;
    if (segs[i].Get(1) != std::to_string(count)) {
      return Bad(segs[i], Cat("TP01 (detail segment count) says ", segs[i].Get(1).substr(0, 10),
                              "; PHA through TP are ", count, " segments"));
    }
    ++i;
    r.pharmacies.push_back(std::move(pr));
  }
  if (r.pharmacies.empty()) {
    return i < segs.size() ? Bad(segs[i], "PHA is expected here")
                           : absl::InvalidArgumentError("the file ends where PHA is expected");
  }
  RXFLOW_ASAP_TRY(expect("TT"));
  if (i + 1 != segs.size()) return Bad(segs[i + 1], "nothing may follow TT");
  if (segs[i].Get(1) != r.control_number) {
    return Bad(segs[i], "TT01 (transaction control number) is not TH02's");
  }
  if (segs[i].Get(2) != std::to_string(segs.size())) {
    return Bad(segs[i], Cat("TT02 (segment count) says ", segs[i].Get(2).substr(0, 10),
                            "; the file has ", segs.size(), " segments"));
  }
  // A zero report's period, from IS03 "#CCYYMMDD#-#CCYYMMDD#".
  bool all_zero = std::all_of(r.pharmacies.begin(), r.pharmacies.end(),
                              [](const PharmacyReport& p) { return p.dispensings.empty(); });
  if (all_zero && r.message.size() == 21 && r.message[0] == '#' && r.message[9] == '#' &&
      r.message.substr(10, 2) == "-#" && r.message[20] == '#') {
    r.zero_report_from = r.message.substr(1, 8);
    r.zero_report_to = r.message.substr(12, 8);
    r.message.clear();
  }
  return r;
}

}  // namespace rxflow::clinical::asap
