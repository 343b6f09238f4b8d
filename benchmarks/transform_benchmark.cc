// SPDX-License-Identifier: Apache-2.0
// Transform benchmarks over the FHIR and SCRIPT fixtures, each stage and end to end, and
// in the same binary the floor: simdjson parsing the same JSON plus pugixml emitting the
// same NewRx documents (no mapping, no validation). Run with --benchmark_min_time and
// compare medians from one run: `make bench` (see docs/performance.md).
#include <charconv>
#include <cstdio>
#include <sstream>
#include <string>

#include <benchmark/benchmark.h>
#include <pugixml.hpp>
#include <simdjson.h>

#include "rxflow/fhir/json.h"
#include "rxflow/mapping/mapping.h"
#include "rxflow/script/xml.h"
#include "rxflow/transform.h"

#include "testing/files.h"

using namespace rxflow;

namespace {

struct Corpus {
  std::vector<std::string> json;   // FHIR inputs
  std::vector<std::string> xml;    // our NewRx for each (2023011)
  std::vector<std::string> xml17;  // 2017071
  std::vector<fhir::PrescriptionInput> parsed;
  std::vector<script::Message> mapped;
  size_t json_bytes = 0;
};

TransformOptions Options(script::Version v = script::Version::k2023011) {
  TransformOptions o;
  o.version = v;
  o.newrx.message_id = "bench-message-0001";
  o.newrx.sent_time = "2026-11-26T10:00:00Z";
  return o;
}

const Corpus& GetCorpus() {
  static const Corpus* corpus = [] {
    auto* c = new Corpus;
    for (const auto& path : testing::FixtureFiles("fhir", ".json")) {
      std::string json = testing::ReadFile(path);
      IssueList issues;
      auto out = ToScript(json, issues, Options());
      if (!out.ok()) continue;  // e.g. the cancelled fixture needs a relates-to id
      auto out17 = ToScript(json, issues, Options(script::Version::k2017071));
      auto parsed = fhir::ParsePrescription(json, issues);
      c->json_bytes += json.size();
      c->json.push_back(json);
      c->xml.push_back(out->xml);
      c->xml17.push_back(out17->xml);
      c->parsed.push_back(*parsed);
      c->mapped.push_back(out->newrx.message);
    }
    return c;
  }();
  return *corpus;
}

void Counters(benchmark::State& state, size_t docs) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * docs));
}

void BM_ParseFhir(benchmark::State& state) {
  const Corpus& c = GetCorpus();
  for (auto _ : state) {
    for (const auto& j : c.json) {
      IssueList issues;
      auto in = fhir::ParsePrescription(j, issues);
      benchmark::DoNotOptimize(in);
    }
  }
  Counters(state, c.json.size());
}
BENCHMARK(BM_ParseFhir);

void BM_MapToNewRx(benchmark::State& state) {
  const Corpus& c = GetCorpus();
  mapping::NewRxOptions o = Options().newrx;
  for (auto _ : state) {
    for (const auto& in : c.parsed) {
      IssueList issues;
      auto m = mapping::ToNewRx(in, issues, o);
      benchmark::DoNotOptimize(m);
    }
  }
  Counters(state, c.parsed.size());
}
BENCHMARK(BM_MapToNewRx);

void BM_EmitXmlValidated(benchmark::State& state) {
  const Corpus& c = GetCorpus();
  for (auto _ : state) {
    for (const auto& m : c.mapped) {
      IssueList issues;
      auto x = script::WriteXml(m, issues);
      benchmark::DoNotOptimize(x);
    }
  }
  Counters(state, c.mapped.size());
}
BENCHMARK(BM_EmitXmlValidated);

void BM_ToScriptFull(benchmark::State& state) {
  const Corpus& c = GetCorpus();
  TransformOptions o = Options();
  for (auto _ : state) {
    for (const auto& j : c.json) {
      IssueList issues;
      auto out = ToScript(j, issues, o);
      benchmark::DoNotOptimize(out);
    }
  }
  Counters(state, c.json.size());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * c.json_bytes));
}
BENCHMARK(BM_ToScriptFull);

// The original design's example request alone (medication_request_lisinopril.json).
void BM_ToScriptLisinopril(benchmark::State& state) {
  std::string json = testing::ReadFixture("fhir/medication_request_lisinopril.json");
  TransformOptions o = Options();
  for (auto _ : state) {
    IssueList issues;
    auto out = ToScript(json, issues, o);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * json.size()));
}
BENCHMARK(BM_ToScriptLisinopril);

// script::ReadXml of each document, validated (the default).
void ReadEach(benchmark::State& state, const std::vector<std::string>& docs) {
  for (auto _ : state) {
    for (const auto& x : docs) {
      IssueList issues;
      auto m = script::ReadXml(x, issues);
      benchmark::DoNotOptimize(m);
    }
  }
  Counters(state, docs.size());
}

void BM_ReadXmlValidated(benchmark::State& state) { ReadEach(state, GetCorpus().xml17); }
BENCHMARK(BM_ReadXmlValidated);

// The same NewRx documents in 2023011 (the default version, and what the pharmacy inbox
// reads): the profile's renames and wraps undone as well.
void BM_ReadXml2023Validated(benchmark::State& state) { ReadEach(state, GetCorpus().xml); }
BENCHMARK(BM_ReadXml2023Validated);

// The first stages of ReadXml alone: pugixml's parse and the structural validation.
void BM_ValidateXml(benchmark::State& state) {
  const Corpus& c = GetCorpus();
  for (auto _ : state) {
    for (const auto& x : c.xml17) {
      IssueList issues;
      benchmark::DoNotOptimize(script::ValidateXml(x, issues));
    }
  }
  Counters(state, c.xml17.size());
}
BENCHMARK(BM_ValidateXml);

void BM_ToFhirFull(benchmark::State& state) {
  const Corpus& c = GetCorpus();
  TransformOptions o = Options();
  for (auto _ : state) {
    for (const auto& x : c.xml17) {
      IssueList issues;
      auto out = ToFhirJson(x, issues, o);
      benchmark::DoNotOptimize(out);
    }
  }
  Counters(state, c.xml17.size());
}
BENCHMARK(BM_ToFhirFull);

// --- hostile input ------------------------------------------------------------------------
// Cost must be linear in the input (issue 15 §5): the time per item (items_per_second)
// stays flat from /10000 to /1000000. Each input is refused, with a bounded issue list.

// An RxFill whose RxFill element starts with `n` unknown <X/> siblings: n errors, each at
// its own path (/Message/Body/RxFill/X[i]).
std::string HostileXml(size_t n) {
  std::string x = testing::ReadFixture("script/rxfill_dispensed.xml");
  std::string run;
  run.reserve(4 * n);
  for (size_t i = 0; i < n; ++i) run += "<X/>";
  x.insert(x.find("<RxFill>") + 8, run);
  return x;
}

void BM_HostileXmlSiblings(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::string xml = HostileXml(n);
  script::ReadOptions ro;
  ro.max_input_bytes = xml.size();
  size_t issues_kept = 0;
  for (auto _ : state) {
    IssueList issues;
    auto m = script::ReadXml(xml, issues, ro);
    benchmark::DoNotOptimize(m);
    issues_kept = issues.size();
  }
  state.counters["issues_kept"] = static_cast<double>(issues_kept);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * xml.size()));
}
BENCHMARK(BM_HostileXmlSiblings)
    ->Arg(10000)
    ->Arg(100000)
    ->Arg(1000000)
    ->Unit(benchmark::kMillisecond);

// The request envelope with `n` more keys in medication_request: distinct unknown keys
// ("x0", "x1", ...: n warnings), or each of n/2 keys twice (n/2 duplicate-key errors).
std::string HostileJson(size_t n, bool duplicates) {
  std::string json = testing::ReadFixture("fhir/medication_request_lisinopril.json");
  std::string keys;
  keys.reserve(16 * n);
  for (size_t i = 0; i < n; ++i) {
    keys += "\"x";
    keys += std::to_string(duplicates ? i / 2 : i);
    keys += "\": 1, ";
  }
  const std::string anchor = "\"intent\": \"order\",";
  json.insert(json.find(anchor) + anchor.size(), keys);
  return json;
}

void HostileJsonKeys(benchmark::State& state, bool duplicates) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::string json = HostileJson(n, duplicates);
  fhir::ParseOptions po;
  po.max_input_bytes = json.size();
  size_t issues_kept = 0;
  for (auto _ : state) {
    IssueList issues;
    auto in = fhir::ParsePrescription(json, issues, po);
    benchmark::DoNotOptimize(in);
    issues_kept = issues.size();
  }
  state.counters["issues_kept"] = static_cast<double>(issues_kept);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * json.size()));
}

void BM_HostileJsonKeys(benchmark::State& state) { HostileJsonKeys(state, false); }
BENCHMARK(BM_HostileJsonKeys)->Arg(10000)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond);

void BM_HostileJsonDuplicateKeys(benchmark::State& state) { HostileJsonKeys(state, true); }
BENCHMARK(BM_HostileJsonDuplicateKeys)
    ->Arg(10000)
    ->Arg(100000)
    ->Arg(1000000)
    ->Unit(benchmark::kMillisecond);

// --- the floor ----------------------------------------------------------------------------

// Touches every value of a JSON document with simdjson On-Demand.
size_t Walk(simdjson::ondemand::value v) {
  size_t n = 0;
  switch (v.type()) {
    case simdjson::ondemand::json_type::object:
      for (auto field : v.get_object()) {
        n += field.unescaped_key().value().size();
        n += Walk(field.value());
      }
      break;
    case simdjson::ondemand::json_type::array:
      for (auto item : v.get_array()) n += Walk(item.value());
      break;
    case simdjson::ondemand::json_type::string:
      n += v.get_string().value().size();
      break;
    case simdjson::ondemand::json_type::number:
      n += v.raw_json_token().size();
      break;
    default:
      n += 1;
  }
  return n;
}

void Copy(pugi::xml_node from, pugi::xml_node to) {
  for (pugi::xml_attribute a : from.attributes()) to.append_attribute(a.name()) = a.value();
  for (pugi::xml_node c : from.children()) {
    if (c.type() == pugi::node_element) {
      Copy(c, to.append_child(c.name()));
    } else if (c.type() == pugi::node_pcdata) {
      to.append_child(pugi::node_pcdata).set_value(c.value());
    }
  }
}

struct StringWriter : pugi::xml_writer {
  std::string out;
  void write(const void* data, size_t size) override {
    out.append(static_cast<const char*>(data), size);
  }
};

void BM_FloorSimdjsonPlusPugixml(benchmark::State& state) {
  const Corpus& c = GetCorpus();
  std::vector<simdjson::padded_string> padded;
  for (const auto& j : c.json) padded.emplace_back(j);
  std::vector<pugi::xml_document> templates(c.xml.size());
  for (size_t i = 0; i < c.xml.size(); ++i) templates[i].load_string(c.xml[i].c_str());
  simdjson::ondemand::parser parser;
  for (auto _ : state) {
    for (size_t i = 0; i < padded.size(); ++i) {
      // Parse the input: padding is part of the cost our API pays too.
      simdjson::padded_string p(c.json[i]);
      auto doc = parser.iterate(p);
      benchmark::DoNotOptimize(Walk(doc.get_value()));
      // Emit the same NewRx document with pugixml.
      pugi::xml_document out;
      Copy(templates[i], out);
      StringWriter w;
      w.out.reserve(4096);
      out.save(w, "", pugi::format_raw);
      benchmark::DoNotOptimize(w.out);
    }
  }
  Counters(state, c.json.size());
}
BENCHMARK(BM_FloorSimdjsonPlusPugixml);

// The floor of SCRIPT → FHIR: pugixml parsing the same SCRIPT messages (every node
// touched) plus printing the same FHIR Bundles RxFlow writes, byte for byte — indented as
// RxFlow indents them — from simdjson's DOM of the output (no mapping, no validation, no
// model). BM_FloorPugixmlPlusJsonCompact prints them without indentation (simdjson's own
// minifying printer), for comparison with the figures before 2026-12-02.
size_t Touch(pugi::xml_node n) {
  size_t total = std::string_view(n.name()).size() + std::string_view(n.value()).size();
  for (pugi::xml_attribute a : n.attributes()) total += std::string_view(a.value()).size();
  for (pugi::xml_node c : n.children()) total += Touch(c);
  return total;
}

void Indent(std::string& out, size_t depth) {
  out.push_back('\n');
  out.append(depth * 2, ' ');
}

// A JSON string: quoted, with what JSON must escape escaped (runs without any appended at
// once).
void AppendQuoted(std::string& out, std::string_view v) {
  out.push_back('"');
  size_t run = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    auto c = static_cast<unsigned char>(v[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(v.data() + run, i - run);
    run = i + 1;
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", c);
      out += esc;
    }
  }
  out.append(v.data() + run, v.size() - run);
  out.push_back('"');
}

// Two-space indentation, "key": value, one member or item per line (RxFlow's kPretty).
void PrintPretty(simdjson::dom::element e, std::string& out, size_t depth) {
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT: {
      out.push_back('{');
      bool first = true;
      for (auto [key, value] : simdjson::dom::object(e)) {
        if (!first) out.push_back(',');
        first = false;
        Indent(out, depth + 1);
        out.push_back('"');
        out.append(key);  // FHIR's keys need no escaping
        out += "\": ";
        PrintPretty(value, out, depth + 1);
      }
      if (!first) Indent(out, depth);
      out.push_back('}');
      break;
    }
    case simdjson::dom::element_type::ARRAY: {
      out.push_back('[');
      bool first = true;
      for (simdjson::dom::element item : simdjson::dom::array(e)) {
        if (!first) out.push_back(',');
        first = false;
        Indent(out, depth + 1);
        PrintPretty(item, out, depth + 1);
      }
      if (!first) Indent(out, depth);
      out.push_back(']');
      break;
    }
    case simdjson::dom::element_type::STRING:
      AppendQuoted(out, e.get_string().value());
      break;
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE:
    case simdjson::dom::element_type::BOOL:
    case simdjson::dom::element_type::NULL_VALUE: {
      char buf[32];
      std::to_chars_result r{};
      if (e.is_int64()) {
        r = std::to_chars(buf, buf + sizeof buf, e.get_int64().value());
      } else if (e.is_uint64()) {
        r = std::to_chars(buf, buf + sizeof buf, e.get_uint64().value());
      } else if (e.is_double()) {
        r = std::to_chars(buf, buf + sizeof buf, e.get_double().value());
      } else {
        out += e.is_bool() ? (e.get_bool().value() ? "true" : "false") : "null";
        break;
      }
      out.append(buf, r.ptr);
      break;
    }
  }
}

struct FloorCorpus {
  std::vector<simdjson::dom::parser> parsers;
  std::vector<simdjson::dom::element> bundles;
};

const FloorCorpus& GetFloorCorpus() {
  static const FloorCorpus* floor = [] {
    const Corpus& c = GetCorpus();
    auto* f = new FloorCorpus;
    f->parsers.resize(c.xml17.size());
    size_t same = 0;
    for (size_t i = 0; i < c.xml17.size(); ++i) {
      IssueList issues;
      auto out = ToFhirJson(c.xml17[i], issues, Options());
      std::string json = out.ok() ? *out : std::string("{}");
      f->bundles.push_back(f->parsers[i].parse(json).value());
      std::string printed;
      PrintPretty(f->bundles.back(), printed, 0);
      printed.push_back('\n');
      same += printed == json;
    }
    if (same != c.xml17.size()) {
      fprintf(stderr, "floor: %zu of %zu Bundles printed byte for byte as RxFlow writes them\n",
              same, c.xml17.size());
    }
    return f;
  }();
  return *floor;
}

void FloorPugixmlPlusJson(benchmark::State& state, bool pretty) {
  const Corpus& c = GetCorpus();
  const FloorCorpus& f = GetFloorCorpus();
  for (auto _ : state) {
    for (size_t i = 0; i < c.xml17.size(); ++i) {
      pugi::xml_document doc;
      doc.load_buffer(c.xml17[i].data(), c.xml17[i].size(), pugi::parse_default,
                      pugi::encoding_utf8);
      benchmark::DoNotOptimize(Touch(doc));
      std::string printed;
      if (pretty) {
        printed.reserve(16384);
        PrintPretty(f.bundles[i], printed, 0);
        printed.push_back('\n');
      } else {
        printed = simdjson::to_string(f.bundles[i]);
      }
      benchmark::DoNotOptimize(printed);
    }
  }
  Counters(state, c.xml17.size());
}

void BM_FloorPugixmlPlusJson(benchmark::State& state) { FloorPugixmlPlusJson(state, true); }
BENCHMARK(BM_FloorPugixmlPlusJson);

void BM_FloorPugixmlPlusJsonCompact(benchmark::State& state) { FloorPugixmlPlusJson(state, false); }
BENCHMARK(BM_FloorPugixmlPlusJsonCompact);

}  // namespace

BENCHMARK_MAIN();
