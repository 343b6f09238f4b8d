// SPDX-License-Identifier: Apache-2.0
// pharmacy-simulator: a pharmacy speaking NCPDP SCRIPT over HTTP. Configuration from the
// environment or flags (--help); see docs/operations.md.
#include <CLI/CLI.hpp>

#include "../server/app.h"

int main(int argc, char** argv) {
  CLI::App app{"pharmacy-simulator: a pharmacy speaking NCPDP SCRIPT over HTTP"};
  rxflow::app::Config config;
  rxflow::app::AddOptions(app, config, rxflow::app::kSimulator);
  CLI11_PARSE(app, argc, argv);
  return rxflow::app::Run(config, rxflow::app::kSimulator, "pharmacy-simulator");
}
