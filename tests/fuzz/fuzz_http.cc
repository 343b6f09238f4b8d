// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: any bytes as one client's connection to the ingestion API
// (tests/fuzz/http_target.h). Built by `make fuzz` (clang); seeds from tests/fuzz/http_seeds.py.
#include "http_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rxflow::fuzz::ServeHttp(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
