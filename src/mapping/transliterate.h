// SPDX-License-Identifier: Apache-2.0
// Private: printable ASCII for SCRIPT from text that is not (NewRxOptions::transliterate).
//
// SCRIPT's `an` values are printable ASCII (0x20–0x7E): a patient called Muñoz or O’Brien, a
// note with line breaks, a Sig typed with an em dash are not. By default the mapping refuses
// such a value at its FHIR path; with NewRxOptions::transliterate it sends this function's
// result instead and says so in a warning. The Latin letters and punctuation are ICU's
// Latin-ASCII transform (CLDR's rules), the only translation unit that includes ICU.
#ifndef RXFLOW_SRC_MAPPING_TRANSLITERATE_H_
#define RXFLOW_SRC_MAPPING_TRANSLITERATE_H_

#include <optional>
#include <string>
#include <string_view>

#include "rxflow/mapping/mapping.h"

namespace rxflow::mapping {

// `text` (UTF-8) as printable ASCII: each run of line breaks and tabs becomes one space,
// Latin letters lose their marks and ligatures and special letters are spelt out (é → e,
// Ł → L, ß → ss, Æ → AE, ﬁ → fi), typographic punctuation and spaces get their ASCII forms
// (’ → ', “ ” → ", — → -, … → ..., a no-break space → a space), and spaces at either end
// are dropped. nullopt when a character no rule makes ASCII remains (another script, µ, ²,
// an emoji, a control character other than a line break or tab) or when nothing but spaces
// would remain: such a value is refused as before. Thread-safe.
std::optional<std::string> TransliterateToAscii(std::string_view text);

// What every text check of the mapping does with the option, in one place:
// `text` as TransliterateToAscii gives it when `options.transliterate` is set and `text` is
// not printable ASCII; nullopt otherwise (the option off, the text already ASCII, or no ASCII
// form: the caller's refusal stands).
std::optional<std::string> TransliteratedIfAsked(std::string_view text,
                                                 const NewRxOptions& options);
// The warning at the FHIR path of a value sent transliterated; `what` names the field
// ("family name"), never its value.
std::string TransliteratedWarning(std::string_view what);
// Appended to the refusal of a value outside printable ASCII: ", and not transliterable to it"
// with the option on, nothing without it.
std::string_view NotTransliterable(const NewRxOptions& options);

}  // namespace rxflow::mapping

#endif  // RXFLOW_SRC_MAPPING_TRANSLITERATE_H_
