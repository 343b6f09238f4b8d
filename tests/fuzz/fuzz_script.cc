// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the SCRIPT read paths, strict and lenient, each version
// (tests/fuzz/targets.h: the first byte picks the options). Built by `make fuzz` (clang).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rxflow::fuzz::ReadScript(data, size);
  return 0;
}
