// SPDX-License-Identifier: Apache-2.0
// ingestion-api: the ingestion API (REST over the library). Configuration from the environment or
// flags (--help); see docs/operations.md.
#include <CLI/CLI.hpp>

#include "../server/app.h"

int main(int argc, char** argv) {
  CLI::App app{"ingestion-api: the ingestion API (REST over the library)"};
  rxflow::app::Config config;
  rxflow::app::AddOptions(app, config, rxflow::app::kApi);
  CLI11_PARSE(app, argc, argv);
  return rxflow::app::Run(config, rxflow::app::kApi, "ingestion-api");
}
