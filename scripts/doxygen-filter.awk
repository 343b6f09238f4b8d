# SPDX-License-Identifier: Apache-2.0
#
# Doxygen INPUT_FILTER for RxFlow's public headers (see Doxyfile). The headers are commented
# in plain `//`, which Doxygen ignores; this prints a header with
#   * its opening block (SPDX line, "// File: rxflow/...", the overview) as the file's
#     description (`/// \file`), without the SPDX line;
#   * every other whole-line `//` comment as `///`: the documentation of what follows it;
#   * a comment after a member or enumerator (`int x = 0;  // ...`, `kFoo,  // ...`) as
#     `///<`, with the comment lines under it that continue it;
#   * indented lines after a blank comment line or a line ending in ':' (examples, tables,
#     formats) as code blocks, and elsewhere `\`, `@`, `"`, `<tag` and `#name` escaped outside
#     `code spans`, so that Doxygen takes no comment text for a command or an HTML tag.
# Every line stays on its line, so Doxygen's line numbers are the header's. It changes only
# what Doxygen reads, never the header.

function indent(s) { match(s, /^[ \t]*/); return RLENGTH }

# Escapes Doxygen's command and tag characters outside `code spans`: `\`, `@` and `"` (Doxygen
# reads "quoted text" by rules of its own, and loses track of code blocks after "\\"), and `<`
# (a tag) and `#` (a link) before a letter. `in_code` carries an open code span over to the next line.
function escape(s,    out, c, i, n) {
  out = ""
  n = length(s)
  for (i = 1; i <= n; i++) {
    c = substr(s, i, 1)
    if (c == "`") in_code = !in_code
    else if (!in_code) {
      if (c == "\\" || c == "@" || c == "\"") c = "\\" c
      else if ((c == "<" || c == "#") && substr(s, i + 1, 1) ~ /[A-Za-z\/]/) c = "\\" c
    }
    out = out c
  }
  return out
}

function is_comment(s) { return s ~ /^[ \t]*\/\/([^\/!]|$)/ }

# Prints the buffered comment block, lines 1..nb of lead[] (what comes before the text:
# indentation and "///") and text[] (what came after "//").
function flush(    i, j, t, prev, bullet, last) {
  # First pass: find the preformatted runs, lines indented by two or more after a blank line
  # or a ':' line (or at the start of the block) that are not a list item.
  for (i = 1; i <= nb; i++) { opens[i] = 0; closes[i] = 0; pre[i] = 0 }
  bullet = 0
  i = 1
  while (i <= nb) {
    t = text[i]
    prev = (i > 1) ? text[i - 1] : ""
    if (t ~ /^   */ && t !~ /^ *[*-] / && !bullet && (i == 1 || prev ~ /^ *$/ || prev ~ /:[ \t]*$/)) {
      last = i
      while (last < nb && text[last + 1] ~ /^   */) last++
      for (j = i; j <= last; j++) pre[j] = 1
      opens[i] = 1
      closes[last] = 1
      i = last + 1
      continue
    }
    if (t ~ /^ *[*-] /) bullet = 1
    else if (t ~ /^ *$/ || t !~ /^  /) bullet = 0
    i++
  }
  # Second pass: print. A run opens at the end of the line before it, so that its first line
  # keeps its indentation (\verbatim is not used: Doxygen 1.9.4 mistakes a second verbatim
  # block after a blank line for an unexpected \endverbatim).
  in_code = 0
  for (i = 1; i <= nb; i++) {
    t = pre[i] ? text[i] : escape(text[i])
    if (opens[i] && i == 1) t = " \\code{.unparsed}" t
    if (i < nb && opens[i + 1]) t = t " \\code{.unparsed}"
    if (closes[i]) t = t " \\endcode"
    print lead[i] t
  }
  nb = 0
}

BEGIN { head = 1; trailing_col = -1; nb = 0 }

# The opening block, up to the first line that is not a comment.
head {
  if (FNR == 1 && $0 ~ /SPDX-License-Identifier/) { print ""; next }
  if ($0 ~ /^\/\/ File: /) { print "/// \\file"; next }
  if ($0 ~ /^\/\//) { nb++; lead[nb] = "///"; text[nb] = substr($0, 3); next }
  head = 0
  flush()
}

{
  line = $0
  if (is_comment(line)) {
    col = indent(line)
    if (trailing_col >= 0 && col == trailing_col && nb == 0) {
      # Continues the trailing comment of the line above.
      in_code = 0
      print substr(line, 1, col) "///<" escape(substr(line, col + 3))
      next
    }
    trailing_col = -1
    nb++
    lead[nb] = substr(line, 1, col) "///"
    text[nb] = substr(line, col + 3)
    next
  }
  flush()
  trailing_col = -1
  # A trailing comment after a member, an enumerator or a declaration.
  if (match(line, /[;,][ \t]+\/\/([^\/!]|$)/)) {
    at = RSTART
    code = substr(line, 1, at)
    rest = substr(line, at + 1)
    if (gsub(/"/, "\"", code) % 2 == 0) {  # not inside a string literal
      pad = indent(rest)
      trailing_col = at + pad
      in_code = 0
      print code substr(rest, 1, pad) "///<" escape(substr(rest, pad + 3))
      next
    }
  }
  print line
}

END { flush() }
