// SPDX-License-Identifier: Apache-2.0
// routing-service: the routing service (broker → pharmacies). Configuration from the environment or
// flags (--help); see docs/operations.md.
#include <CLI/CLI.hpp>

#include "../server/app.h"

int main(int argc, char** argv) {
  CLI::App app{"routing-service: the routing service (broker → pharmacies)"};
  rxflow::app::Config config;
  rxflow::app::AddOptions(app, config, rxflow::app::kRouting);
  CLI11_PARSE(app, argc, argv);
  return rxflow::app::Run(config, rxflow::app::kRouting, "routing-service");
}
