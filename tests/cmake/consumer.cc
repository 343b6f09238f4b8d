// A ten-line consumer: FHIR JSON on stdin → SCRIPT NewRx on stdout.
#include <iostream>
#include <iterator>
#include <string>

#include "rxflow/transform.h"

int main() {
  std::string json(std::istreambuf_iterator<char>(std::cin), {});
  rxflow::IssueList issues;
  auto out = rxflow::ToScript(json, issues);
  if (!out.ok()) return (std::cerr << out.status().message() << "\n"), 1;
  std::cout << out->xml << "\n";
}
