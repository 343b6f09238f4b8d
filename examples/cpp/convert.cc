// SPDX-License-Identifier: Apache-2.0
// A small RxFlow program: FHIR JSON (the request envelope or a Bundle) on stdin → NCPDP
// SCRIPT NewRx on stdout; issues on stderr. Built in-tree, and by tests/cmake against the
// installed package (find_package) and as a subproject (add_subdirectory).
#include <iostream>
#include <iterator>
#include <string>

#include "rxflow/transform.h"

int main() {
  std::string json(std::istreambuf_iterator<char>(std::cin), {});
  rxflow::IssueList issues;
  auto out = rxflow::ToScript(json, issues);
  for (const rxflow::Issue& i : issues) std::cerr << i << "\n";
  if (!out.ok()) return 1;
  std::cout << out->xml << "\n";
}
