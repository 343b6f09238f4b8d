// SPDX-License-Identifier: Apache-2.0
// Civil (proleptic Gregorian) dates and day numbers, any year: H. Hinnant's algorithms
// (days_from_civil, civil_from_days). Internal to RxFlow.
#ifndef RXFLOW_INTERNAL_CIVIL_H_
#define RXFLOW_INTERNAL_CIVIL_H_

#include <cstdint>

namespace rxflow::internal {

struct Civil {
  int64_t year = 1970;
  int month = 1;
  int day = 1;
};

// Days since 1970-01-01 of year `y`, month `m` (1-12), day `d`.
inline int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// The date of day `z` since 1970-01-01.
inline Civil CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  Civil c;
  c.day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  c.month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  c.year = yoe + era * 400 + (c.month <= 2);
  return c;
}

}  // namespace rxflow::internal

#endif  // RXFLOW_INTERNAL_CIVIL_H_
