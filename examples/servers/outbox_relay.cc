// SPDX-License-Identifier: Apache-2.0
// outbox-relay: the outbox relay (store → broker). Configuration from the environment or flags
// (--help); see docs/operations.md.
#include <CLI/CLI.hpp>

#include "../server/app.h"

int main(int argc, char** argv) {
  CLI::App app{"outbox-relay: the outbox relay (store → broker)"};
  rxflow::app::Config config;
  rxflow::app::AddOptions(app, config, rxflow::app::kRelay);
  CLI11_PARSE(app, argc, argv);
  return rxflow::app::Run(config, rxflow::app::kRelay, "outbox-relay");
}
