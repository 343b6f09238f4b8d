// SPDX-License-Identifier: Apache-2.0
#include "rxflow/epcs/dea.h"

#include <string>

#include "rxflow/internal/strcat.h"

namespace rxflow::epcs {
namespace {

using internal::Cat;

bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return IsUpper(c) || IsLower(c) || IsDigit(c); }
char ToUpper(char c) { return IsLower(c) ? static_cast<char>(c - 'a' + 'A') : c; }

bool IsRegistrantType(char c) {
  switch (c) {
    case 'A':
    case 'B':
    case 'F':
    case 'G':
    case 'M':
    case 'P':
    case 'R':
    case 'X':
      return true;
    default:
      return false;
  }
}

}  // namespace

bool IsPrescriberRegistrantType(char type) {
  switch (type) {
    case 'A':
    case 'B':
    case 'F':
    case 'G':
    case 'M':
      return true;
    default:
      return false;
  }
}

Status CheckDeaNumber(std::string_view number, std::string_view last_name) {
  std::string_view base = number;
  if (size_t dash = number.find('-'); dash != std::string_view::npos) {
    base = number.substr(0, dash);
    std::string_view suffix = number.substr(dash + 1);
    if (suffix.empty()) return absl::InvalidArgumentError("dea number: empty suffix after '-'");
    for (char c : suffix) {
      if (!IsAlnum(c)) {
        return absl::InvalidArgumentError(
            "dea number: suffix after '-' must be ASCII letters and digits");
      }
    }
  }
  if (base.size() != 9) {
    return absl::InvalidArgumentError(
        Cat("dea number: expected 2 letters and 7 digits, got ", base.size(), " characters"));
  }
  for (int i = 0; i < 2; ++i) {
    if (IsLower(base[i])) {
      return absl::InvalidArgumentError(Cat("dea number: letter ", i + 1, " must be uppercase"));
    }
  }
  if (!IsUpper(base[0])) {
    return absl::InvalidArgumentError("dea number: must start with a letter");
  }
  if (!IsRegistrantType(base[0])) {
    return absl::InvalidArgumentError(
        Cat("dea number: first letter '", base[0], "' is not a registrant type (A B F G M P R X)"));
  }
  if (!IsUpper(base[1]) && base[1] != '9') {
    return absl::InvalidArgumentError(
        "dea number: second character must be a letter (last-name initial) or '9'");
  }
  int d[7];
  for (int i = 0; i < 7; ++i) {
    char c = base[2 + i];
    if (!IsDigit(c)) {
      return absl::InvalidArgumentError(Cat("dea number: character ", 3 + i, " must be a digit"));
    }
    d[i] = c - '0';
  }
  int check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10;
  if (check != d[6]) {
    return absl::InvalidArgumentError(
        Cat("dea number: check digit ", d[6], " does not match the other digits"));
  }
  if (!last_name.empty() && base[1] != '9') {
    // Leading spaces come from padded fixed-width sources; they are not part of the name.
    size_t first = last_name.find_first_not_of(' ');
    char initial = first == std::string_view::npos ? '\0' : last_name[first];
    if (!IsUpper(initial) && !IsLower(initial)) {
      return absl::InvalidArgumentError(
          "last name: does not start with an ASCII letter, cannot check the dea number's "
          "second letter");
    }
    if (ToUpper(initial) != base[1]) {
      return absl::InvalidArgumentError(Cat("dea number: second letter '", base[1],
                                            "' is not the last name's initial '", ToUpper(initial),
                                            "' (nor '9')"));
    }
  }
  return absl::OkStatus();
}

}  // namespace rxflow::epcs
