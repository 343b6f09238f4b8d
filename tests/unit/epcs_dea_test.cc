// SPDX-License-Identifier: Apache-2.0
// DEA registration numbers (rxflow/epcs/dea.h): the examples of
// docs/security-reliability.md §3, each rule broken on its own, and the registrant types.
#include <string>

#include <doctest/doctest.h>

#include "rxflow/epcs/dea.h"

namespace {

using absl::StatusCode;
using rxflow::epcs::CheckDeaNumber;
using rxflow::epcs::IsPrescriberRegistrantType;

std::string Message(const rxflow::Status& s) { return std::string(s.message()); }

bool Mentions(const rxflow::Status& s, std::string_view what) {
  return Message(s).find(what) != std::string::npos;
}

}  // namespace

TEST_SUITE("EPCS DEA numbers") {
  TEST_CASE("the documented valid numbers pass, with and without a last name") {
    for (const char* number : {"AP5836727", "AJ5184279", "F91234563", "BJ1234563", "MS1234563"}) {
      CAPTURE(number);
      CHECK(CheckDeaNumber(number).ok());
    }
    CHECK(CheckDeaNumber("AJ5184279", "Jones").ok());
    CHECK(CheckDeaNumber("BJ1234563", "Jones").ok());
    CHECK(CheckDeaNumber("MS1234563", "Smith").ok());
  }

  TEST_CASE("a wrong check digit is refused naming the check digit") {
    for (const char* number : {"AB4523767", "AB4523763", "AP5836720", "BJ1234564"}) {
      CAPTURE(number);
      rxflow::Status s = CheckDeaNumber(number);
      CHECK(s.code() == StatusCode::kInvalidArgument);
      CHECK(Mentions(s, "check digit"));
    }
  }

  TEST_CASE("the check digit weights the even positions by two, not the odd ones") {
    // 1234563: 1+3+5 + 2*(2+4+6) = 33 -> 3. Doubling the odd positions instead (a variant
    // some calculators publish) gives 2*(1+3+5) + 2+4+6 = 30 -> 0.
    CHECK(CheckDeaNumber("BJ1234563").ok());
    CHECK_FALSE(CheckDeaNumber("BJ1234560").ok());
  }

  TEST_CASE("the second letter must be the last name's initial or 9") {
    rxflow::Status s = CheckDeaNumber("AJ5184279", "Smith");
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(Mentions(s, "second letter 'J'"));
    CHECK(Mentions(s, "'S'"));
    // The business form '9' stands for no name, so any last name goes with it.
    CHECK(CheckDeaNumber("F91234563", "Smith").ok());
    // Without a last name there is nothing to compare.
    CHECK(CheckDeaNumber("AJ5184279").ok());
  }

  TEST_CASE("the last name is compared case-insensitively, the number's letters are not") {
    CHECK(CheckDeaNumber("AJ5184279", "jones").ok());
    CHECK(CheckDeaNumber("AJ5184279", "JONES").ok());
    CHECK(CheckDeaNumber("AJ5184279", "  Jones").ok());
    rxflow::Status lower_second = CheckDeaNumber("Aj5184279");
    CHECK(lower_second.code() == StatusCode::kInvalidArgument);
    CHECK(Mentions(lower_second, "uppercase"));
    rxflow::Status lower_first = CheckDeaNumber("ap5836727");
    CHECK(lower_first.code() == StatusCode::kInvalidArgument);
    CHECK(Mentions(lower_first, "uppercase"));
  }

  TEST_CASE("a last name that does not start with an ASCII letter cannot be compared") {
    rxflow::Status s = CheckDeaNumber("AJ5184279", "\xc3\x89lise");  // "Élise"
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(Mentions(s, "last name"));
    CHECK(CheckDeaNumber("AJ5184279", "   ").code() == StatusCode::kInvalidArgument);
  }

  TEST_CASE("a supervised practitioner's suffix is stripped before the check") {
    CHECK(CheckDeaNumber("F91234563-001AB").ok());
    CHECK(CheckDeaNumber("AJ5184279-7", "Jones").ok());
    // The part before the dash is checked as always.
    CHECK(CheckDeaNumber("F91234564-001AB").code() == StatusCode::kInvalidArgument);
    CHECK(Mentions(CheckDeaNumber("F91234563-"), "suffix"));
    CHECK(Mentions(CheckDeaNumber("F91234563-00 1"), "suffix"));
    CHECK(Mentions(CheckDeaNumber("F91234563-0-1"), "suffix"));
  }

  TEST_CASE("wrong length, non-digits and unknown registrant types are refused") {
    for (const char* number : {"", "AP583672", "AP58367270", "A5836727", "AP5836727 "}) {
      CAPTURE(number);
      rxflow::Status s = CheckDeaNumber(number);
      CHECK(s.code() == StatusCode::kInvalidArgument);
      CHECK(Mentions(s, "2 letters and 7 digits"));
    }
    CHECK(Mentions(CheckDeaNumber("AP58X6727"), "character 5 must be a digit"));
    CHECK(Mentions(CheckDeaNumber("AP583672O"), "character 9 must be a digit"));
    CHECK(Mentions(CheckDeaNumber("1P5836727"), "start with a letter"));
    CHECK(Mentions(CheckDeaNumber("QP5836727"), "'Q' is not a registrant type"));
    CHECK(Mentions(CheckDeaNumber("A15836727"), "second character"));
  }

  TEST_CASE("every registrant type is accepted, X as legacy") {
    // The same digits under each first letter: the check digit does not involve letters.
    for (char type : std::string("ABFGMPRX")) {
      std::string number = std::string(1, type) + "J1234563";
      CAPTURE(number);
      CHECK(CheckDeaNumber(number).ok());
    }
  }

  TEST_CASE("only A B F G M identify a prescriber on their own") {
    for (char type : std::string("ABFGM")) {
      CAPTURE(type);
      CHECK(IsPrescriberRegistrantType(type));
    }
    for (char type : std::string("PRXCDEQZ9ab")) {
      CAPTURE(type);
      CHECK_FALSE(IsPrescriberRegistrantType(type));
    }
  }
}
