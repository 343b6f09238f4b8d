// libFuzzer target: any bytes through rxflow::Check (FHIR JSON or SCRIPT XML, picked by the
// first byte) and, for SCRIPT, through the FHIR mapping too. Built by `make fuzz` (clang).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "rxflow/transform.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  rxflow::IssueList issues;
  rxflow::TransformOptions options;
  options.newrx.message_id = "fuzz";
  options.newrx.sent_time = "2026-11-26T10:00:00Z";
  (void)rxflow::Check(text, issues, options);
  if (rxflow::DetectInput(text) == rxflow::InputKind::kScriptXml) {
    rxflow::IssueList more;
    (void)rxflow::ToFhirJson(text, more, options);
  }
  return 0;
}
