// SPDX-License-Identifier: Apache-2.0
// Private text helpers shared by the codecs: format checks for FHIR and XML Schema
// primitives, escaping, and small string utilities.
#ifndef RXFLOW_SRC_COMMON_TEXT_H_
#define RXFLOW_SRC_COMMON_TEXT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rxflow/internal/json.h"

namespace rxflow::internal {

// FHIR date: YYYY, YYYY-MM or YYYY-MM-DD, with a real calendar day.
bool IsFhirDate(std::string_view s);
// FHIR dateTime: a date, or YYYY-MM-DDThh:mm:ss(.sss)(Z|+hh:mm) — a time requires a zone.
bool IsFhirDateTime(std::string_view s);
// FHIR instant: a full dateTime with seconds and zone.
bool IsFhirInstant(std::string_view s);
// FHIR time: hh:mm:ss(.sss).
bool IsFhirTime(std::string_view s);
// A full date YYYY-MM-DD (xsd:date without zone).
bool IsFullDate(std::string_view s);
// JSON/FHIR decimal: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool IsFhirDecimal(std::string_view s);
// A SCRIPT number (`n`: digits, an optional fraction, leading zeros allowed) as a FHIR
// decimal: surrounding white space and leading zeros dropped ("030" → "30", "00.50" →
// "0.50"). Empty when the text is no number (possible only after a lenient read, whose
// errors already name the element).
std::string FhirDecimalFromScript(std::string_view s);
// FHIR code: no leading/trailing whitespace, no double spaces, not empty.
bool IsFhirCode(std::string_view s);
// FHIR id: [A-Za-z0-9\-\.]{1,64}
bool IsFhirId(std::string_view s);
// FHIR uri: non-empty, no whitespace.
bool IsFhirUri(std::string_view s);
// No control characters other than tab, CR, LF.
bool HasNoControlChars(std::string_view s);
// The offset of the first C0 control character other than tab, LF and CR, or npos.
size_t FirstControlChar(std::string_view s);
// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
// On false, `bad_offset` (when given) is the offset of the first byte that is not.
bool IsValidUtf8(std::string_view s, size_t* bad_offset = nullptr);
// Appends code point `cp` (at most U+10FFFF, not a surrogate) to `out` as UTF-8.
void AppendUtf8(std::string& out, uint32_t cp);
// Makes `s` valid UTF-8: each byte of an invalid sequence becomes U+FFFD; valid text is left
// as it is.
void MakeValidUtf8(std::string& s);
// Printable ASCII 0x20..0x7E only (SCRIPT's `an` character set).
bool IsPrintableAscii(std::string_view s);
// SCRIPT numeric `n`: [0-9]+(\.[0-9]+)?
bool IsScriptNumeric(std::string_view s);
bool IsAllDigits(std::string_view s);
// xsd:dateTime as SCRIPT's UtcDateType wants it (a zone is required).
bool IsXsdDateTime(std::string_view s);

// Keeps only the digits of `s` ("(555) 555-0100" -> "5555550100").
std::string DigitsOnly(std::string_view s);
std::string_view Trim(std::string_view s);
// "a,b,,c" split on ',' → {"a", "b", "", "c"}; "" → {""}. Views into `s`.
std::vector<std::string_view> SplitView(std::string_view s, char sep);

// AppendJsonEscaped: rxflow/internal/json.h (the adapters use it too).
// Appends `s` to `out` escaped for XML text and attribute values.
void AppendXmlEscaped(std::string& out, std::string_view s);

// Parses a non-negative decimal text ("30", "2.5") to double; nullopt when not a decimal.
std::optional<double> ParseDecimal(std::string_view s);
// Formats a double as the shortest decimal text without exponent ("2.5", "30").
std::string FormatDecimal(double v);

}  // namespace rxflow::internal

#endif  // RXFLOW_SRC_COMMON_TEXT_H_
