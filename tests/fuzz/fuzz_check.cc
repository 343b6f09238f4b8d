// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: any bytes through rxflow::Check and, for SCRIPT, ToFhirJson
// (tests/fuzz/targets.h). Built by `make fuzz` (clang).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rxflow::fuzz::CheckAnything(data, size);
  return 0;
}
