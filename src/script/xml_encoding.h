// SPDX-License-Identifier: Apache-2.0
// The character encoding of a SCRIPT document, found as XML 1.0 (Appendix F) finds it, and
// the document decoded to the UTF-8 the reader works in.
#pragma once

#include <string>
#include <string_view>

namespace rxflow::script::internal {

struct XmlEncoding {
  enum class Outcome {
    kUtf8,     // read as it is (UTF-8, or US-ASCII)
    kDecoded,  // decoded into `utf8`
    kRefused,  // `message` says why
  };
  Outcome outcome = Outcome::kUtf8;
  std::string utf8;     // kDecoded: the document in UTF-8 (its declaration left as it was)
  std::string name;     // the encoding read: "UTF-16LE", "ISO-8859-1", …; empty: UTF-8
  std::string message;  // kRefused: the error; otherwise, if not empty, a warning
  // kRefused: true when the bytes are malformed in the encoding found (the error is about the
  // byte at `offset` of the input); false when the encoding itself is not supported.
  bool malformed = false;
  size_t offset = 0;
};

// The byte-order mark, the first bytes and the encoding declaration decide, in XML 1.0's
// order: UTF-16 (either byte order, with or without a byte-order mark) and, declared,
// ISO-8859-1 (and its aliases), windows-1252 and US-ASCII are decoded; UTF-32, EBCDIC and
// any other declared encoding are refused by name. A document whose declaration says UTF-16
// but whose bytes are 8-bit (as .NET writers often send it) is read as UTF-8, with a warning.
// `charset`, when not empty, is the charset parameter of the Content-Type the document came
// with: as RFC 7303 (section 3) orders them, a byte-order mark (or UTF-16's first bytes)
// decides over it, and it decides over the declaration; each disagreement is a warning.
// Cost: linear in the input.
XmlEncoding DecodeXmlEncoding(std::string_view xml, std::string_view charset = {});

}  // namespace rxflow::script::internal
