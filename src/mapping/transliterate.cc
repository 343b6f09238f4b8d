// SPDX-License-Identifier: Apache-2.0
#include "mapping/transliterate.h"

#include <memory>

#include <unicode/translit.h>
#include <unicode/unistr.h>

#include "rxflow/internal/strcat.h"

#include "common/text.h"

namespace rxflow::mapping {
namespace {

// ICU's Latin-ASCII, built once (parsing its rules takes milliseconds) and cloned for each
// thread that needs it: a transliterator is used by one thread at a time. Null when ICU's
// data lacks the transform; every value is then refused, as without the option.
const icu::Transliterator* Prototype() {
  static const icu::Transliterator* const prototype = [] {
    UErrorCode status = U_ZERO_ERROR;
    icu::Transliterator* t =
        icu::Transliterator::createInstance("Latin-ASCII", UTRANS_FORWARD, status);
    if (U_FAILURE(status)) {
      delete t;
      return static_cast<icu::Transliterator*>(nullptr);
    }
    return t;
  }();
  return prototype;
}

const icu::Transliterator* ForThisThread() {
  thread_local std::unique_ptr<icu::Transliterator> mine;
  if (!mine) {
    if (const icu::Transliterator* p = Prototype()) mine.reset(p->clone());
  }
  return mine.get();
}

bool IsLineBreakOrTab(char c) { return c == '\n' || c == '\r' || c == '\t'; }

}  // namespace

std::optional<std::string> TransliterateToAscii(std::string_view text) {
  std::string folded;
  folded.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (IsLineBreakOrTab(text[i])) {
      folded.push_back(' ');
      while (i < text.size() && IsLineBreakOrTab(text[i])) ++i;
    } else {
      folded.push_back(text[i++]);
    }
  }
  std::string out;
  if (internal::IsPrintableAscii(folded)) {
    out = std::move(folded);
  } else {
    const icu::Transliterator* t = ForThisThread();
    if (!t) return std::nullopt;
    icu::UnicodeString s = icu::UnicodeString::fromUTF8(folded);
    t->transliterate(s);
    s.toUTF8String(out);
  }
  std::string_view trimmed = internal::Trim(out);
  if (trimmed.empty() || !internal::IsPrintableAscii(trimmed)) return std::nullopt;
  return std::string(trimmed);
}

std::optional<std::string> TransliteratedIfAsked(std::string_view text,
                                                 const NewRxOptions& options) {
  if (!options.transliterate || internal::IsPrintableAscii(text)) return std::nullopt;
  return TransliterateToAscii(text);
}

std::string TransliteratedWarning(std::string_view what) {
  return internal::Cat(what,
                       " sent transliterated to printable ASCII (SCRIPT carries nothing else): "
                       "its spelling differs from the FHIR");
}

std::string_view NotTransliterable(const NewRxOptions& options) {
  return options.transliterate ? ", and not transliterable to it" : "";
}

}  // namespace rxflow::mapping
