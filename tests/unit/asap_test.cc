// SPDX-License-Identifier: Apache-2.0
// ASAP 4.2/4.2A/4.2B: write, read back, the public zero-report sample, and malformed files
// refused with the segment and element.
#include "rxflow/clinical/asap.h"

#include <doctest/doctest.h>

#include "testing/status.h"

namespace rxflow::clinical::asap {
namespace {

Dispensing OneDispensing(std::string rx, std::string ndc, std::string quantity) {
  Dispensing d;
  d.rx_number = std::move(rx);
  d.date_written = "20261120";
  d.refills_authorized = "0";
  d.date_filled = "20261201";
  d.product_id = std::move(ndc);
  d.quantity = std::move(quantity);
  d.days_supply = "5";
  d.transmission_form = "06";
  d.pharmacist_npi = "1245319599";
  d.payment_type = "01";
  d.date_sold = "20261201";
  d.rxnorm_qualifier = "01";
  d.rxnorm_code = "1049621";
  d.erx_reference = "MSG-1";
  d.quantity_prescribed = "20";
  d.sig = "1 TAB PO Q6H PRN PAIN";
  d.patient.id_qualifier = "06";
  d.patient.id_jurisdiction = "IN";
  d.patient.id = "1234-56-7890";
  d.patient.last_name = "DOE";
  d.patient.first_name = "JANE";
  d.patient.address1 = "1 MAIN ST";
  d.patient.city = "INDIANAPOLIS";
  d.patient.state = "IN";
  d.patient.zip = "46201";
  d.patient.birth_date = "19800214";
  d.patient.gender = "F";
  d.prescriber.npi = "1558598797";
  d.prescriber.dea_number = "AJ5184279";
  d.prescriber.last_name = "JONES";
  d.prescriber.first_name = "ALEX";
  return d;
}

Report Sample() {
  Report r;
  r.control_number = "20261201-0001";
  r.creation_date = "20261201";
  r.creation_time = "235900";
  r.source_id = "3175550100";
  r.source_name = "RIVERBEND PHARMACY";
  PharmacyReport a;
  a.pharmacy.npi = "1234567893";
  a.pharmacy.ncpdp_id = "1234567";
  a.pharmacy.dea_number = "FR1234563";
  a.pharmacy.name = "RIVERBEND PHARMACY";
  a.pharmacy.state = "IN";
  a.pharmacy.permit_number = "PH-77";
  a.dispensings.push_back(OneDispensing("RX100", "00406055201", "20"));
  Dispensing compound = OneDispensing("RX101", "99999999999", "120");
  compound.product_qualifier = "06";
  compound.dosage_units = "02";
  compound.compound = {{"1", "01", "00406055201", "10", "03"},
                       {"2", "01", "00009002901", "110", "02"}};
  compound.reporting_status = "01";  // a revision
  a.dispensings.push_back(compound);
  PharmacyReport b;
  b.pharmacy.ncpdp_id = "7654321";
  b.pharmacy.name = "SECOND STORE";
  Dispensing v = OneDispensing("RX7", "00009002901", "30");
  v.reporting_status = "02";  // a void
  b.dispensings.push_back(v);
  r.pharmacies = {a, b};
  return r;
}

TEST_CASE("ASAP: a report writes with the right counts and reads back the same") {
  auto text = Write(Sample());
  REQUIRE_MESSAGE(text.ok(), text.status().ToString());
  // TH declares the terminator; counts: pharmacy A = PHA + 2×(PAT DSP PRE) + 2 CDI + TP = 10,
  // B = PHA PAT DSP PRE TP = 5, the file = TH IS 10 5 TT = 18.
  CHECK(text->rfind("TH*4.2B*20261201-0001*01**20261201*235900*P**~~IS*3175550100*RIVERBEND "
                    "PHARMACY~PHA*1234567893*1234567*FR1234563*RIVERBEND PHARMACY****IN*****PH-77~",
                    0) == 0);
  CHECK(text->find("~TP*10~") != std::string::npos);
  CHECK(text->find("~TP*5~") != std::string::npos);
  CHECK(text->size() > 20);
  CHECK(text->substr(text->size() - 21) == "~TT*20261201-0001*18~");
  CHECK(text->find("CDI*2*01*00009002901*110*02~") != std::string::npos);
  auto back = Read(*text);
  REQUIRE_MESSAGE(back.ok(), back.status().ToString());
  CHECK(back->pharmacies.size() == 2);
  CHECK(back->pharmacies[0].dispensings[1].compound.size() == 2);
  CHECK(back->pharmacies[0].dispensings[1].reporting_status == "01");
  CHECK(back->pharmacies[1].dispensings[0].reporting_status == "02");
  CHECK(back->pharmacies[0].dispensings[0].patient.last_name == "DOE");
  CHECK(back->pharmacies[0].dispensings[0].sig == "1 TAB PO Q6H PRN PAIN");
  auto again = Write(*back);
  RXFLOW_REQUIRE_OK(again);
  CHECK(*again == *text);
  // Other separators and a newline per segment read the same.
  WriteOptions o;
  o.element_separator = '|';
  o.segment_terminator = '\\';
  o.newline = true;
  auto other = Write(Sample(), o);
  RXFLOW_REQUIRE_OK(other);
  CHECK(other->find("TH|4.2B|") == 0);
  auto read_other = Read(*other);
  REQUIRE_MESSAGE(read_other.ok(), read_other.status().ToString());
  CHECK(*Write(*read_other) == *text);
  std::string crlf = *text;  // a CR LF after each terminator (TH's "~~" left whole)
  for (size_t at = crlf.find('~', crlf.find("~~") + 2); at != std::string::npos;
       at = crlf.find('~', at + 3)) {
    crlf.insert(at + 1, "\r\n");
  }
  CHECK(Read(crlf).ok());
}

TEST_CASE("ASAP: the public zero-report sample reads, and a zero report writes that shape") {
  // The anonymised sample of the Asap42ToXml README (../shared/docs/clinical-data.md §3a),
  // with values in place of its placeholders.
  std::string sample =
      "TH*4.2*000123*01**20240101*120000*P**\\\\"
      "IS*3175550100*Example Pharmacy*#20231231#-#20231231#\\"
      "PHA*1234567893*1234567**Example Pharmacy*0000 Main Street**Nowhere*IN*00000*0000000000*"
      "Smith,John*\\"
      "PAT*******Report*Zero***************\\"
      "DSP*****20231231****************\\"
      "PRE**\\"
      "TP*5\\"
      "TT*000123*8\\";
  auto r = Read(sample);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->version == Version::k42);
  CHECK(r->pharmacies.size() == 1);
  CHECK(r->pharmacies[0].dispensings.empty());
  CHECK(r->zero_report_from == "20231231");
  CHECK(r->zero_report_to == "20231231");
  CHECK(r->pharmacies[0].pharmacy.contact_name == "Smith,John");
  WriteOptions o;
  o.segment_terminator = '\\';
  auto written = Write(*r, o);
  RXFLOW_REQUIRE_OK(written);
  CHECK(*written ==
        "TH*4.2*000123*01**20240101*120000*P**\\\\"
        "IS*3175550100*Example Pharmacy*#20231231#-#20231231#\\"
        "PHA*1234567893*1234567**Example Pharmacy*0000 Main Street**Nowhere*IN*00000*0000000000*"
        "Smith,John\\"
        "PAT*******Report*Zero\\"
        "DSP*****20231231\\"
        "PRE\\"
        "TP*5\\"
        "TT*000123*8\\");
}

TEST_CASE("ASAP writer: each problem named by segment and element") {
  auto fails = [](Report r, std::string_view words) {
    auto t = Write(r);
    REQUIRE_FALSE(t.ok());
    CHECK_MESSAGE(std::string(t.status().message()).find(words) != std::string::npos,
                  t.status().message());
  };
  Report r = Sample();
  r.pharmacies[0].dispensings[0].patient.last_name = "DOE*SMITH";
  fails(
      r,
      "pharmacy 1, dispensing 1: PAT07 (patient last name): the value holds the element separator");
  r = Sample();
  r.pharmacies[0].dispensings[0].date_filled = "2026-12-01";
  fails(r, "DSP05 (date filled): \"2026-12-01\" is not a date CCYYMMDD");
  r = Sample();
  r.version = Version::k42;
  fails(r, "PHA13 (pharmacy permit number) is not in ASAP 4.2: write 4.2A or later");
  r.pharmacies[0].pharmacy.permit_number.clear();
  fails(r, "DSP22 (quantity prescribed) is not in ASAP 4.2");
  r = Sample();
  r.version = Version::k42A;
  r.pharmacies[0].dispensings[0].diagnosis_code = "G89.18";
  fails(r, "DSP25 (diagnosis code) is not in ASAP 4.2A: write 4.2B or later");
  r = Sample();
  r.pharmacies[1].pharmacy.ncpdp_id.clear();
  fails(r, "pharmacy 2: PHA01, PHA02 or PHA03");
  r = Sample();
  r.pharmacies[0].dispensings[0].product_id = "0406-0552-01";
  fails(r, "DSP08 (product ID): an NDC is 11 digits");
  r = Sample();
  r.pharmacies[0].dispensings[0].reporting_status = "03";
  fails(r, "DSP01 (reporting status): \"03\" is none of 00|01|02");
  r = Sample();
  r.pharmacies[0].dispensings[0].compound.clear();
  r.pharmacies[0].dispensings[1].compound.clear();
  fails(r, "DSP07 06 (compound) and CDI segments go together");
  r = Sample();
  r.pharmacies[0].dispensings[0].patient.first_name = "Zoë";
  fails(r, "printable ASCII");
  r = Sample();
  for (auto& p : r.pharmacies) p.dispensings.clear();
  fails(r, "a zero report (no dispensing) needs its period");
  r = Sample();
  r.creation_time = "25";
  fails(r, "TH06 (creation time)");
  WriteOptions same;
  same.segment_terminator = '*';
  CHECK_FALSE(Write(Sample(), same).ok());
}

TEST_CASE("ASAP reader: malformed files refused with the segment's position and the element") {
  const std::string good = *Write(Sample());
  auto fails = [](const std::string& text, std::string_view words) {
    auto r = Read(text);
    REQUIRE_FALSE(r.ok());
    CHECK_MESSAGE(std::string(r.status().message()).find(words) != std::string::npos,
                  r.status().message());
  };
  auto replaced = [&](std::string_view from, std::string_view to) {
    std::string t = good;
    size_t at = t.find(from);
    REQUIRE(at != std::string::npos);
    return t.replace(at, from.size(), to);
  };
  fails(replaced("~TP*10~", "~TP*9~"),
        "segment 12 (TP), TP01 (detail segment count) says 9; PHA through TP are 10 segments");
  fails(replaced("TT*20261201-0001*18~", "TT*20261201-0001*17~"),
        "TT02 (segment count) says 17; the file has 18 segments");
  fails(replaced("TT*20261201-0001*", "TT*OTHER*"),
        "TT01 (transaction control number) is not TH02's");
  fails(replaced("DSP*00*RX100*20261120", "DSP*00*RX100*20261340"),
        "segment 5 (DSP), DSP03 (date written)");
  fails(replaced("DSP*00*RX100*", "XYZ*00*RX100*"), "segment 5 (XYZ), not an ASAP segment");
  fails(replaced("~PRE*1558598797", "~AIR*1558598797"), "segment 6 (AIR), PRE is expected here");
  fails(replaced("TH*4.2B", "TH*5.0"), "TH01: version \"5.0\" is none of 4.2, 4.2A, 4.2B");
  fails(replaced("PAT*IN*06*1234-56-7890****DOE", "PAT*IN*06*1234-56-7890*XX***DOE"),
        "PAT04 is not read by RxFlow");
  fails(good.substr(0, good.size() - 1), "not ended by the segment terminator");
  fails(good + "PHA*1~", "nothing may follow TT");
  fails("TH*4.2B*1*01**20261201*120000*P*~", "TH09: the segment terminator is not declared");
  fails("XX", "an ASAP file starts with TH");
  fails(replaced("~TT*", "~PAT*~TT*"), "segment 18 (PAT), TT is expected here");
  // An element past the segment's last.
  fails(replaced("~TP*5~", "~TP*5*6~"), "2 elements, TP has at most 1");
}

}  // namespace
}  // namespace rxflow::clinical::asap
