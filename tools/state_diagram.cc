// SPDX-License-Identifier: Apache-2.0
// Prints the prescription state machine as a Graphviz DOT graph, found by running the domain's
// own Decide and Apply (rxflow/domain/prescription.h) rather than written by hand, so the
// picture in the documentation cannot drift from the code: starting from no events, every
// command of a representative set is decided in every state reached and its events applied;
// each accepted decision becomes an edge, labelled with its command, from the state it started
// in to the state its events leave (a loop when that is the same state). A completely filled
// prescription is drawn apart from a partly filled one ("Dispensed (complete)", terminal).
//
//   rxflow_state_diagram > states.dot && dot -Tsvg states.dot > states.svg
//
// The set: Submit (plain, controlled, rejected by the transform), MarkReady, Sign, Route,
// MarkSent, RecordStatus, RecordVerify, RecordError (retryable, permanent), RecordFill
// (partial, complete), RequestCancel, RecordCancelResponse (approved, denied), Expire.
// RecordPdmpQuery (no state change, any live state) and AmendClinicalContent (always refused)
// are left out. Retries are explored up to RecordError's max_attempts.
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

// The node a state is drawn as: a completely filled prescription is its own node (terminal),
// apart from a partly filled one (which takes more fills, a cancel or expiry).
std::string Node(const PrescriptionState& s) {
  std::string name(d::StateName(s.state));
  if (s.state == State::kDispensed && s.fill_complete) name += " (complete)";
  return name;
}

}  // namespace

int main() {
  const std::vector<LabelledCommand> commands = Commands();
  // Edges by (from, to), with the commands that take them.
  std::map<std::pair<std::string, std::string>, std::set<std::string>> edges;
  std::set<std::string> nodes, terminal;
  std::set<decltype(Key(PrescriptionState{}))> seen;
  std::vector<PrescriptionState> queue{PrescriptionState{}};
  seen.insert(Key(queue.front()));
  nodes.insert(Node(queue.front()));
  while (!queue.empty()) {
    PrescriptionState from = queue.back();
    queue.pop_back();
    for (const LabelledCommand& c : commands) {
      auto events = d::Decide(from, c.command);
      if (!events.ok() || events->empty()) continue;
      // A retryable error after the last attempt fails permanently: label it as such.
      std::string label = c.label;
      for (const Event& e : *events) {
        if (auto* err = std::get_if<d::PharmacyErrorReceived>(&e); err && !err->retryable) {
          label = "Error (permanent or retries spent)";
        }
      }
      // One decision is one edge, from where the prescription rested to where it rests after
      // all the decision's events (Submit passes through Received in the same append); the
      // same node again is a loop (MarkReady, a retryable error while Queued, a partial fill).
      PrescriptionState to = from;
      for (const Event& e : *events) to = d::Apply(to, e);
      edges[{Node(from), Node(to)}].insert(label);
      nodes.insert(Node(to));
      if (d::IsTerminal(to.state, to.fill_complete)) terminal.insert(Node(to));
      if (seen.insert(Key(to)).second) queue.push_back(to);
    }
  }
  std::cout << "// Generated by rxflow_state_diagram (tools/state_diagram.cc) from the domain's\n"
               "// Decide and Apply: do not edit.\n"
               "digraph prescription_states {\n"
               "  rankdir=TB;\n"
               "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef3fb\", "
               "fontname=\"sans-serif\", fontsize=11];\n"
               "  edge [fontname=\"sans-serif\", fontsize=9, color=\"#555555\"];\n";
  const std::string none = Node(PrescriptionState{});
  for (const std::string& n : nodes) {
    if (n == none) {
      std::cout << "  " << Quote(n)
                << " [label=\"(no events)\", shape=circle, fillcolor=\"#ffffff\"];\n";
    } else if (terminal.count(n)) {
      std::cout << "  " << Quote(n) << " [peripheries=2, fillcolor=\"#f6efe4\"];\n";
    } else {
      std::cout << "  " << Quote(n) << ";\n";
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
