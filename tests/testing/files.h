// SPDX-License-Identifier: Apache-2.0
// Test helpers: fixture files.
#ifndef RXFLOW_TESTS_TESTING_FILES_H_
#define RXFLOW_TESTS_TESTING_FILES_H_

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <unistd.h>

namespace rxflow::testing {

// A fresh directory under the temporary directory (`prefix`, this process's id and this
// object's address), removed with everything in it at the end.
struct TempDir {
  explicit TempDir(const std::string& prefix)
      : path(std::filesystem::temp_directory_path() /
             (prefix + "-" + std::to_string(::getpid()) + "-" +
              std::to_string(reinterpret_cast<uintptr_t>(this)))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path path;
};

inline std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::filesystem::path Fixture(const std::string& rel) {
  return std::filesystem::path(RXFLOW_FIXTURES_DIR) / rel;
}

inline std::string ReadFixture(const std::string& rel) { return ReadFile(Fixture(rel)); }

// The fixture RxFill (script/rxfill_partial.xml) as the pharmacy `from` sends it about the
// NewRx `relates_to` (Header/From and Header/RelatesToMessageID replaced).
inline std::string RxFillFrom(const std::string& from, const std::string& relates_to) {
  std::string fill = ReadFixture("script/rxfill_partial.xml");
  auto replace = [&fill](const std::string& tag, const std::string& value) {
    size_t open = fill.find("<" + tag);
    size_t start = fill.find('>', open) + 1;
    fill.replace(start, fill.find("</" + tag + ">", start) - start, value);
  };
  replace("From", from);
  replace("RelatesToMessageID", relates_to);
  return fill;
}

// `utf8` as UTF-16 in either byte order, with a byte-order mark or not, as Windows and .NET
// senders write XML (test data: `utf8` is taken to be well-formed).
inline std::string Utf16(std::string_view utf8, bool big_endian, bool mark) {
  std::string out;
  auto unit = [&](uint32_t u) {
    char hi = static_cast<char>(u >> 8), lo = static_cast<char>(u & 0xFF);
    out += big_endian ? std::string{hi, lo} : std::string{lo, hi};
  };
  if (mark) unit(0xFEFF);
  for (size_t i = 0; i < utf8.size();) {
    auto b = static_cast<unsigned char>(utf8[i]);
    int n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    uint32_t cp = n == 1 ? b : n == 2 ? b & 0x1F : n == 3 ? b & 0x0F : b & 0x07;
    for (int k = 1; k < n; ++k) cp = cp << 6 | (static_cast<unsigned char>(utf8[i + k]) & 0x3F);
    i += static_cast<size_t>(n);
    if (cp >= 0x10000) {
      unit(0xD800 + ((cp - 0x10000) >> 10));
      unit(0xDC00 + ((cp - 0x10000) & 0x3FF));
    } else {
      unit(cp);
    }
  }
  return out;
}

// The lisinopril NewRx (golden/medication_request_lisinopril.2023011.xml) as the service seals
// it: compact (the golden's indentation between tags dropped) and JSON-escaped (a sealed value
// is the contents of a JSON string). The prescription is held out of the sealed-value
// dictionary's training (scripts/train-zstd-dictionary.sh).
inline std::string SealedLisinoprilNewRx() {
  std::string out;
  bool between_tags = false;
  for (char c : ReadFixture("golden/medication_request_lisinopril.2023011.xml")) {
    if (c == '>') between_tags = true;
    if (between_tags && (c == '\n' || c == ' ')) continue;
    if (c == '<') between_tags = false;
    if (c == '"') out += '\\';
    out += c;
  }
  return out;
}

// Sorted list of the files in fixtures/<dir> with the given extension.
inline std::vector<std::filesystem::path> FixtureFiles(const std::string& dir,
                                                       const std::string& ext) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(Fixture(dir))) {
    if (e.path().extension() == ext) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

inline void WriteFile(const std::filesystem::path& p, const std::string& content) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << content;
}

}  // namespace rxflow::testing

#endif  // RXFLOW_TESTS_TESTING_FILES_H_
