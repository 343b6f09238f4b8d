// SPDX-License-Identifier: Apache-2.0
// File: rxflow/epcs/dea.h
//
// DEA registration numbers: the shape and check digit every EPCS prescriber identity is
// checked against before it is stored or signed (docs/epcs.md, "Factors";
// docs/security-reliability.md §3 has the sources).
//
// A number is 2 letters and 7 digits, e.g. "AP5836727":
//   - letter 1, the registrant type: A B F G (practitioners, hospitals, clinics, pharmacies;
//     A is the pre-1985 series), M (mid-level practitioner), P R (manufacturers, distributors,
//     researchers, narcotic treatment programs), X (the DATA-waiver buprenorphine number,
//     accepted as legacy: the waiver ended in 2023);
//   - letter 2, the initial of the registrant's last name, or '9' for a registration under a
//     business name;
//   - digit 7, the check digit: (d1 + d3 + d5 + 2 * (d2 + d4 + d6)) mod 10.
// A supervised practitioner may carry a "-suffix" after the supervisor's number
// ("F91234563-001AB"); it is not part of the check.
//
// The number is not PHI, so messages may quote its parts.
#ifndef RXFLOW_EPCS_DEA_H_
#define RXFLOW_EPCS_DEA_H_

#include <string_view>

#include "rxflow/status.h"

namespace rxflow::epcs {

// OK when `number` is a well-formed DEA registration number with a correct check digit.
// Letters must be uppercase: the number is copied as it is into signed prescriptions, so a
// lowercase spelling is refused rather than silently accepted. When `last_name` is not
// empty, the second letter must be its initial (compared case-insensitively) or '9'; a last
// name whose first character is not an ASCII letter cannot be compared and is refused (pass
// no last name to skip the comparison). InvalidArgument naming what is wrong otherwise.
Status CheckDeaNumber(std::string_view number, std::string_view last_name = {});

// True for the registrant types that identify a prescriber on their own: A, B, F, G and M.
// False for P and R (not practitioners), for X (a legacy waiver number that was always
// issued in addition to the practitioner's own registration) and for anything else,
// lowercase letters included.
bool IsPrescriberRegistrantType(char type);

}  // namespace rxflow::epcs

#endif  // RXFLOW_EPCS_DEA_H_
