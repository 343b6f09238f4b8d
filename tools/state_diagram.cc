// SPDX-License-Identifier: Apache-2.0
// Prints the prescription state machine as a Graphviz DOT graph, found by running the domain's
// own Decide and Apply (rxflow/domain/prescription.h) rather than written by hand, so the
// picture in the documentation cannot drift from the code: starting from no events, every
// command of a representative set is decided in every state reached, and each event it
// produces is applied; each change of state becomes an edge labelled with its command.
//
//   rxflow_state_diagram > states.dot && dot -Tsvg states.dot > states.svg
//
// The set: Submit (plain, controlled, rejected by the transform), MarkReady, Sign, Route,
// MarkSent, RecordStatus, RecordVerify, RecordError (retryable, permanent), RecordFill
// (partial, complete), RequestCancel, RecordCancelResponse (approved, denied), Expire.
// Commands that never change the state (RecordPdmpQuery, AmendClinicalContent, which is
// always refused) draw nothing. Retries are explored up to RecordError's max_attempts.
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "rxflow/domain/prescription.h"

namespace {

using rxflow::domain::Command;
using rxflow::domain::Event;
using rxflow::domain::PrescriptionState;
using rxflow::domain::State;
namespace d = rxflow::domain;

struct LabelledCommand {
  std::string label;
  Command command;
};

std::vector<LabelledCommand> Commands() {
  d::PrescriptionTransformed plain;
  plain.pharmacy_ncpdp_id = "0000000";
  plain.message_id = "m";
  d::PrescriptionTransformed controlled = plain;
  controlled.dea_schedule = "CII";
  d::Submit submit{"k", "h", "fhir", {}, plain};
  d::Submit submit_controlled{"k", "h", "fhir", {}, controlled};
  d::Submit submit_rejected{"k", "h", "fhir", {"the transform failed"}, plain};
  d::Sign sign;
  sign.signer = "practitioner";
  sign.signature = "signature";
  sign.signed_content_sha256 = "bundle";
  sign.dea_number = "DEA";
  sign.two_factor_event_id = "2fa";
  d::RecordError retryable{"600", {}, "", true};
  d::RecordError permanent{"900", {}, "", false};
  return {
      {"Submit", submit},
      {"Submit (controlled)", submit_controlled},
      {"Submit (transform failed)", submit_rejected},
      {"MarkReady", d::MarkReady{"practitioner", "DEA", "bundle"}},
      {"Sign", sign},
      {"Route", d::Route{}},
      {"MarkSent", d::MarkSent{}},
      {"Status", d::RecordStatus{"000", "m"}},
      {"Verify", d::RecordVerify{"m"}},
      {"Error (retryable)", retryable},
      {"Error (permanent or retries spent)", permanent},
      {"RxFill (partial)", d::RecordFill{"PartiallyFilled", false, "", ""}},
      {"RxFill (complete)", d::RecordFill{"Filled", true, "", ""}},
      {"RequestCancel", d::RequestCancel{"", ""}},
      {"CancelRxResponse (approved)", d::RecordCancelResponse{true, ""}},
      {"CancelRxResponse (denied)", d::RecordCancelResponse{false, ""}},
      {"Expire", d::Expire{}},
  };
}

// What distinguishes one explored state from another (the fields Decide reads).
auto Key(const PrescriptionState& s) {
  return std::make_tuple(s.state, s.controlled(), s.signed_, s.fill_complete, s.send_attempts,
                         s.before_cancel, s.ready_by.empty());
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

}  // namespace

int main() {
  const std::vector<LabelledCommand> commands = Commands();
  // Edges by (from, to), with the commands that take them.
  std::map<std::pair<std::string, std::string>, std::set<std::string>> edges;
  std::set<std::string> states, terminal;
  std::set<decltype(Key(PrescriptionState{}))> seen;
  std::vector<PrescriptionState> queue{PrescriptionState{}};
  seen.insert(Key(queue.front()));
  while (!queue.empty()) {
    PrescriptionState from = queue.back();
    queue.pop_back();
    for (const LabelledCommand& c : commands) {
      auto events = d::Decide(from, c.command);
      if (!events.ok()) continue;
      // A retryable error after the last attempt fails permanently: label it as such.
      std::string label = c.label;
      if (c.label == "Error (retryable)") {
        for (const Event& e : *events) {
          if (auto* err = std::get_if<d::PharmacyErrorReceived>(&e); err && !err->retryable) {
            label = "Error (permanent or retries spent)";
          }
        }
      }
      PrescriptionState s = from;
      for (const Event& e : *events) {
        PrescriptionState next = d::Apply(s, e);
        if (next.state != s.state) {
          std::string a(d::StateName(s.state)), b(d::StateName(next.state));
          edges[{a, b}].insert(label);
          states.insert(a);
          states.insert(b);
        }
        s = std::move(next);
      }
      // Same state, but something Decide reads changed (MarkReady, a partial fill): a loop.
      if (!events->empty() && s.state == from.state && Key(s) != Key(from)) {
        edges[{std::string(d::StateName(s.state)), std::string(d::StateName(s.state))}].insert(
            label);
      }
      if (d::IsTerminal(s.state, s.fill_complete))
        terminal.insert(std::string(d::StateName(s.state)));
      if (seen.insert(Key(s)).second) queue.push_back(s);
    }
  }
  std::cout << "// Generated by rxflow_state_diagram (tools/state_diagram.cc) from the domain's\n"
               "// Decide and Apply: do not edit.\n"
               "digraph prescription_states {\n"
               "  rankdir=TB;\n"
               "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef3fb\", "
               "fontname=\"sans-serif\", fontsize=11];\n"
               "  edge [fontname=\"sans-serif\", fontsize=9, color=\"#555555\"];\n";
  const std::string none(d::StateName(State::kNone));
  for (const std::string& s : states) {
    if (s == none) {
      std::cout << "  " << Quote(s)
                << " [label=\"(no events)\", shape=circle, fillcolor=\"#ffffff\"];\n";
    } else if (terminal.count(s)) {
      std::cout << "  " << Quote(s) << " [peripheries=2, fillcolor=\"#f6efe4\"];\n";
    } else {
      std::cout << "  " << Quote(s) << ";\n";
    }
  }
  for (const auto& [edge, labels] : edges) {
    std::string label;
    for (const std::string& l : labels) label += (label.empty() ? "" : "\\n") + l;
    std::cout << "  " << Quote(edge.first) << " -> " << Quote(edge.second)
              << " [label=" << Quote(label) << "];\n";
  }
  std::cout << "}\n";
  return 0;
}
