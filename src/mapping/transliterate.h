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

namespace rxflow::mapping {

// `text` (UTF-8) as printable ASCII: each run of line breaks and tabs becomes one space,
// Latin letters lose their marks and ligatures and special letters are spelt out (é → e,
// Ł → L, ß → ss, Æ → AE, ﬁ → fi), typographic punctuation and spaces get their ASCII forms
// (’ → ', “ ” → ", — → -, … → ..., a no-break space → a space), and spaces at either end
// are dropped. nullopt when a character no rule makes ASCII remains (another script, µ, ²,
// an emoji, a control character other than a line break or tab) or when nothing but spaces
// would remain: such a value is refused as before. Thread-safe.
std::optional<std::string> TransliterateToAscii(std::string_view text);

}  // namespace rxflow::mapping

#endif  // RXFLOW_SRC_MAPPING_TRANSLITERATE_H_
