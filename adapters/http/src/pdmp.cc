// SPDX-License-Identifier: Apache-2.0
// PDMP queries over HTTP: the FHIR $pdmp-history client (cpp-httplib, one client per call:
// a query is a human-paced action, not a hot path) and the loopback simulator server.
#include "rxflow/http/pdmp.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <absl/strings/match.h>
#include <httplib.h>

#include "rxflow/internal/status_macros.h"
#include "rxflow/internal/strcat.h"

#include "listen.h"
#include "url.h"

namespace rxflow::http {
namespace {

using rxflow::internal::Cat;
namespace pdmp = clinical::pdmp;

constexpr const char* kFhirJson = "application/fhir+json";

class FhirPdmpClient final : public pdmp::Client {
 public:
  explicit FhirPdmpClient(FhirPdmpOptions o) : o_(std::move(o)) {
    while (!o_.base_url.empty() && o_.base_url.back() == '/') o_.base_url.pop_back();
    auto [origin, path] = internal::SplitUrl(o_.base_url);
    origin_ = origin;
    path_ = Cat(path == "/" ? std::string() : path, "/", o_.operation);
    name_ = Cat("fhir pdmp ", internal::UrlAuthority(o_.base_url));
  }

  StatusOr<pdmp::Result> History(const pdmp::Query& query) override {
    if (in_flight_.fetch_add(1) >= o_.max_in_flight) {
      in_flight_.fetch_sub(1);
      return absl::UnavailableError(
          Cat(name_, ": ", o_.max_in_flight, " queries already waiting for it"));
    }
    struct Leave {
      std::atomic<int>& n;
      ~Leave() { n.fetch_sub(1); }
    } leave{in_flight_};
    httplib::Client client(origin_);
    if (!o_.ca_file.empty()) client.set_ca_cert_path(o_.ca_file.c_str());
    if (origin_.starts_with("https://")) client.enable_server_certificate_verification(true);
    auto ct = o_.connect_timeout.count(), rt = o_.timeout.count();
    client.set_connection_timeout(ct / 1000, (ct % 1000) * 1000);
    client.set_read_timeout(rt / 1000, (rt % 1000) * 1000);
    client.set_write_timeout(rt / 1000, (rt % 1000) * 1000);
    httplib::Headers headers{{"Accept", kFhirJson}};
    if (!o_.bearer_token.empty()) headers.emplace("Authorization", "Bearer " + o_.bearer_token);
    const std::string body = pdmp::HistoryRequestJson(query);
    std::string answer;
    bool too_big = false, too_slow = false;
    const auto deadline = std::chrono::steady_clock::now() + o_.timeout;
    httplib::Request req;
    req.method = "POST";
    req.path = path_;
    req.headers = headers;
    req.body = body;
    req.set_header("Content-Type", kFhirJson);
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      if (answer.size() + n > o_.max_response_bytes) {
        too_big = true;
        return false;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        too_slow = true;
        return false;
      }
      answer.append(data, n);
      return true;
    };
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    if (!client.send(req, res, error)) {
      if (too_big) {
        return absl::UnavailableError(
            Cat(name_, ": the answer is larger than ", o_.max_response_bytes, " bytes"));
      }
      if (too_slow) {
        return absl::UnavailableError(
            Cat(name_, ": the answer took longer than ", o_.timeout.count(), " ms"));
      }
      return absl::UnavailableError(Cat(name_, ": ", httplib::to_string(error)));
    }
    if (res.status >= 200 && res.status < 300) {
      StatusOr<pdmp::Result> r = pdmp::ParseHistoryResponse(answer);
      if (!r.ok()) {
        return absl::UnavailableError(
            Cat(name_, ": not a $pdmp-history result: ", std::string(r.status().message())));
      }
      return r;
    }
    if (res.status >= 400 && res.status < 500) {
      // FHIR answers a refused operation with an OperationOutcome.
      pdmp::Result r;
      r.outcome = pdmp::Outcome::kError;
      r.messages.push_back(Cat("HTTP ", res.status));
      if (auto outcome = OperationOutcomeText(answer); !outcome.empty()) {
        r.messages.push_back(std::move(outcome));
      }
      return r;
    }
    return absl::UnavailableError(Cat(name_, ": HTTP ", res.status));
  }

  std::string name() const override { return name_; }

 private:
  // The diagnostics of an OperationOutcome body, or "" (read through the response parser's
  // OperationOutcome handling, wrapped as a result).
  static std::string OperationOutcomeText(const std::string& body) {
    std::string wrapped =
        Cat(R"({"resourceType":"Parameters","parameter":[{"name":"pdmp-history-result",)",
            R"("resource":{"resourceType":"Bundle","type":"collection","entry":[{"resource":)",
            body, "}]}}]}");
    auto r = pdmp::ParseHistoryResponse(wrapped);
    if (!r.ok() || r->messages.empty()) return {};
    std::string out;
    for (const std::string& m : r->messages) out += (out.empty() ? "" : "; ") + m;
    return out.substr(0, 1000);
  }

  FhirPdmpOptions o_;
  std::string origin_, path_, name_;
  std::atomic<int> in_flight_{0};
};

}  // namespace

StatusOr<std::unique_ptr<pdmp::Client>> NewFhirPdmpClient(FhirPdmpOptions options) {
  const std::string& url = options.base_url;
  const bool https = url.starts_with("https://");
  if (!https && !url.starts_with("http://")) {
    return absl::InvalidArgumentError("PDMP: the base URL must start with https:// or http://");
  }
  if (internal::UrlHost(url).empty()) {
    return absl::InvalidArgumentError("PDMP: the base URL names no host");
  }
  if (!https && !internal::IsLoopback(internal::UrlHost(url))) {
    return absl::InvalidArgumentError(
        "PDMP: plain http is for a loopback simulator only; use https:// (PHI goes over it)");
  }
  // Settings that could only fail later, on every query, are refused now.
  if (!options.ca_file.empty() && !std::ifstream(options.ca_file).good()) {
    return absl::InvalidArgumentError(
        Cat("PDMP: the CA file ", options.ca_file, " cannot be read"));
  }
  if (options.connect_timeout.count() <= 0 || options.timeout.count() <= 0 ||
      options.max_in_flight <= 0 || options.max_response_bytes == 0) {
    return absl::InvalidArgumentError(
        "PDMP: connect_timeout, timeout, max_in_flight and max_response_bytes must be positive");
  }
  return std::unique_ptr<pdmp::Client>(std::make_unique<FhirPdmpClient>(std::move(options)));
}

// ---- the simulator server -----------------------------------------------------------------

struct PdmpSimulatorServer::Impl {
  explicit Impl(PdmpSimulatorOptions o) : options(std::move(o)) {}
  PdmpSimulatorOptions options;
  pdmp::Simulator simulator;
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::mutex scan_mu;
  // Files applied, and files refused as they were (name → size and time): a refused file
  // is read again once it changes.
  std::set<std::string> applied;
  std::map<std::string, std::pair<uintmax_t, std::filesystem::file_time_type>> refused;
  static constexpr uintmax_t kMaxFileBytes = uintmax_t{64} << 20;

  void Log(const std::string& line) {
    if (options.log) options.log(line);
  }

  // asap::Read's message up to the element it names: the value it quotes may be PHI.
  static std::string WhereOnly(std::string_view message) {
    size_t colon = message.find(": ");
    return std::string(message.substr(0, colon));
  }

  size_t Rescan() {
    if (options.asap_dir.empty()) return 0;
    std::lock_guard lock(scan_mu);
    std::error_code ec;
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(options.asap_dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.empty() || name[0] == '.' || applied.count(name)) continue;
      if (!std::filesystem::is_regular_file(e.symlink_status(ec))) continue;  // no links
      files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());  // in name order: dated names apply in date order
    size_t count = 0;
    for (const auto& path : files) {
      const std::string name = path.filename().string();
      const uintmax_t size = std::filesystem::file_size(path, ec);
      if (ec) continue;
      const auto mtime = std::filesystem::last_write_time(path, ec);
      if (ec) continue;
      auto seen = refused.find(name);
      if (seen != refused.end() && seen->second == std::make_pair(size, mtime)) continue;
      Status s;
      if (size > kMaxFileBytes) {
        s = absl::InvalidArgumentError(Cat("larger than ", kMaxFileBytes, " bytes"));
      } else {
        std::ifstream in(path, std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        s = in.bad() ? absl::UnavailableError("unreadable") : simulator.AddAsapFile(text.str());
      }
      if (s.ok() || s.code() == absl::StatusCode::kAlreadyExists) {
        applied.insert(name);
        refused.erase(name);
        if (s.ok()) ++count;
        Log(Cat("pdmp simulator: ", s.ok() ? "applied" : "already had", " ASAP file ", name));
      } else {
        refused[name] = {size, mtime};
        Log(Cat("pdmp simulator: refused ASAP file ", name, ": ",
                WhereOnly(std::string(s.message()))));
      }
    }
    return count;
  }

  void Handle(const httplib::Request& q, httplib::Response& r) {
    auto outcome = [&](int status, const std::string& code, const std::string& text) {
      r.status = status;
      WriteOutcome(r, code, text);
    };
    const std::string type = q.get_header_value("Content-Type");
    if (!type.starts_with(kFhirJson) && !type.starts_with("application/json")) {
      return outcome(415, "not-supported", "Content-Type must be application/fhir+json");
    }
    StatusOr<pdmp::Query> query = pdmp::ParseHistoryRequest(q.body);
    if (!query.ok()) return outcome(400, "invalid", std::string(query.status().message()));
    Rescan();
    StatusOr<pdmp::Result> result = simulator.History(*query);
    if (!result.ok()) return outcome(500, "exception", std::string(result.status().message()));
    Log(Cat("pdmp simulator: query answered, ", result->dispenses.size(), " dispensing(s)"));
    r.status = 200;
    r.set_content(pdmp::HistoryResponseJson(*result), kFhirJson);
  }

  // An OperationOutcome body with RxFlow's own message (control characters dropped).
  static void WriteOutcome(httplib::Response& r, const std::string& code, const std::string& text) {
    std::string escaped;
    for (char c : text) {
      if (c == '"' || c == '\\') escaped.push_back('\\');
      if (static_cast<unsigned char>(c) < 0x20) continue;
      escaped.push_back(c);
    }
    r.set_content(Cat(R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":")",
                      code, R"(","diagnostics":")", escaped, "\"}]}"),
                  kFhirJson);
  }
};

PdmpSimulatorServer::PdmpSimulatorServer(PdmpSimulatorOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& im = *impl_;
  im.server.set_payload_max_length(size_t{1} << 20);
  im.server.new_task_queue = [] { return new httplib::ThreadPool(4); };
  // The operation is system-level (the IG's OperationDefinition: system true, type false):
  // [base]/$pdmp-history, whatever the base's path; the IG's narrative's
  // [base]/Patient/$pdmp-history matches too.
  im.server.Post(R"(.*/\$pdmp-history)",
                 [&im](const httplib::Request& q, httplib::Response& r) { im.Handle(q, r); });
  im.server.Get("/healthz", [](const auto&, auto& r) {
    r.set_content(R"({"status":"ok"})", "application/json");
  });
}

PdmpSimulatorServer::~PdmpSimulatorServer() { Stop(); }

Status PdmpSimulatorServer::Start() {
  Impl& im = *impl_;
  if (!internal::IsLoopback(im.options.host)) {
    return absl::FailedPreconditionError(
        Cat("the PDMP simulator binds to loopback only, not ", im.options.host));
  }
  im.Rescan();
  return internal::Listen(im.server, im.options.host, im.options.port, im.port, im.thread);
}

void PdmpSimulatorServer::Stop() { internal::StopListening(impl_->server, impl_->thread); }

int PdmpSimulatorServer::port() const { return impl_->port; }

std::string PdmpSimulatorServer::base_url() const {
  const std::string& host = impl_->options.host;
  const bool v6 = absl::StrContains(host, ':') && host.front() != '[';
  return Cat("http://", v6 ? "[" + host + "]" : host, ":", impl_->port);
}

pdmp::Simulator& PdmpSimulatorServer::simulator() { return impl_->simulator; }

size_t PdmpSimulatorServer::Rescan() { return impl_->Rescan(); }

}  // namespace rxflow::http
