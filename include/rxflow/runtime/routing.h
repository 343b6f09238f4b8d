// SPDX-License-Identifier: Apache-2.0
// File: rxflow/runtime/routing.h
//
// Routing: the consumer of `routing.requests` that sends each prescription's SCRIPT XML to
// its pharmacy, and the inbox for what pharmacies send back.
//
//   * RoutingService polls the consumer group, hands each message to a worker pool
//     (one bounded queue per worker; a partition always goes to the same worker, so one
//     prescription's requests run in order), POSTs the NewRx (or CancelRx) through the
//     PharmacyTransport behind a circuit breaker per pharmacy, retries transport failures
//     with exponential backoff and jitter, and records the outcome: Sent plus the
//     synchronous answer (Status → Acknowledged, Verify → Verified, Error → retry or
//     Failed) in ONE store transaction with the inbox record of the routing message, then
//     commits the broker offset — only then: a store or broker failure is retried in place
//     (committing a later message of the partition would skip it). After the last
//     transport attempt the request goes to `dead.letter` and the prescription fails
//     (PharmacyErrorReceived code 600, not retryable); for a CancelRx the cancel is
//     recorded as denied ("not delivered"). A cancel of a prescription whose NewRx never
//     went out completes without calling the pharmacy.
//   * PharmacyInbox turns a message a pharmacy posts later (RxFill, CancelRxResponse,
//     Status, Verify, Error) into events, once per SCRIPT MessageID.
//
// Exactly-once at the pharmacy: a crash after the POST and before the inbox commit sends
// the same NewRx (same MessageID) again; pharmacies deduplicate on MessageID (the
// simulator does). Everything RxFlow records happens once.
#ifndef RXFLOW_RUNTIME_ROUTING_H_
#define RXFLOW_RUNTIME_ROUTING_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rxflow/issue.h"
#include "rxflow/messaging/broker.h"
#include "rxflow/obs/trace.h"
#include "rxflow/runtime/resilience.h"
#include "rxflow/service.h"
#include "rxflow/status.h"

namespace rxflow::runtime {

// NCPDP ID → endpoint URL. A "*" entry, when present, serves every other pharmacy.
// How RxFlow connects to a pharmacy over mutual TLS (an https URL): the client certificate
// it presents on that link, its key, and the CAs the pharmacy's certificate must chain to
// (PEM files; an empty ca: the system's).
struct TlsLink {
  std::string certificate_file;
  std::string key_file;
  std::string ca_file;
};

class PharmacyDirectory {
 public:
  // JSON: {"pharmacies": [{"ncpdp_id": "1234567", "url": "https://host:port/ncpdp",
  //   "tls": {"certificate": "routing.pem", "key": "routing.key", "ca": "network-ca.pem"}},
  //   ...]} ("tls" optional, only with an https URL; "certificate" and "key" together). A
  // plain http:// URL must name this machine (127.x, localhost, ::1) unless the entry says
  // "insecure_http": true.
  // InvalidArgument naming the JSON path of what is wrong.
  static StatusOr<PharmacyDirectory> Parse(std::string_view json);
  static StatusOr<PharmacyDirectory> Load(const std::string& path);
  void Add(std::string ncpdp_id, std::string url);
  // The endpoint for `ncpdp_id`, or "" when there is none.
  std::string Find(std::string_view ncpdp_id) const;
  size_t size() const { return entries_.size(); }
  // The TLS links by their URL, for the transport.
  const std::map<std::string, TlsLink>& tls_links() const { return tls_; }

 private:
  std::map<std::string, std::string, std::less<>> entries_;
  std::map<std::string, TlsLink> tls_;
};

// The port to pharmacies: one synchronous request/response exchange.
class PharmacyTransport {
 public:
  virtual ~PharmacyTransport() = default;
  // POSTs `xml` to `url` and returns the response body (SCRIPT XML) on a 2xx. Unavailable
  // for what may succeed later (connection refused, timeout, 5xx, 429); InvalidArgument or
  // FailedPrecondition for a refusal (other 4xx), which is not retried.
  virtual StatusOr<std::string> Post(const std::string& url, std::string_view xml,
                                     std::string_view traceparent) = 0;
};

struct RoutingOptions {
  std::string consumer_group = "routing";
  std::string consumer_name = "routing";  // the inbox consumer name
  int workers = 4;
  size_t queue_capacity = 256;  // per worker
  size_t poll_batch = 256;
  int max_attempts = 8;  // transport attempts before dead.letter
  BackoffOptions backoff{std::chrono::milliseconds(100), std::chrono::milliseconds(2000), 2.0};
  CircuitBreakerOptions breaker;
  std::chrono::milliseconds drain_timeout{10000};  // Stop(): time to finish queued work
  // Spans for pharmacy calls (kind client), children of the request's traceparent; the
  // child's traceparent goes to the pharmacy. Null: no spans (the parent's context is
  // still propagated). Must outlive the service.
  obs::Tracer* tracer = nullptr;
};

// Counters for metrics and tests.
struct RoutingStats {
  std::atomic<int64_t> handled{0};     // messages whose effect was recorded
  std::atomic<int64_t> duplicates{0};  // already processed or already past that state
  std::atomic<int64_t> sent{0};        // successful POSTs
  std::atomic<int64_t> transport_errors{0};
  std::atomic<int64_t> dead_lettered{0};
  std::atomic<int64_t> commit_errors{0};
  std::atomic<int64_t> handle_errors{0};  // store/broker failures, retried in place
  std::atomic<int64_t> stale{0};          // answers that no longer fit the prescription's state
};

class RoutingService {
 public:
  // Called after each recorded outcome: pharmacy NCPDP id, outcome (the answer's
  // transaction: "Status", "Verify", "Error"; or "DeadLetter", "NoAnswer"), its SCRIPT code
  // ("000", "010", "602", ...; "" when none), seconds since the prescription was accepted.
  using Observer = std::function<void(std::string_view pharmacy, std::string_view outcome,
                                      std::string_view code, double seconds_since_accepted)>;

  // Everything passed must outlive the service.
  RoutingService(PrescriptionService& service, messaging::Broker& broker,
                 PharmacyDirectory directory, PharmacyTransport& transport,
                 RoutingOptions options = {}, Clock* clock = nullptr);
  ~RoutingService();  // Stop()

  Status Start();
  // Stops polling, lets the workers finish what is queued (up to drain_timeout), abandons
  // retries still waiting (those messages stay uncommitted and are delivered again), and
  // leaves the consumer group.
  void Stop();

  // Handles one routing request synchronously (what a worker does). Cancelled when
  // stopping interrupted it (the caller must not commit it).
  Status Handle(const messaging::Message& message);

  // Set before Start (not synchronized with the workers).
  void set_observer(Observer o);
  const RoutingStats& stats() const;
  size_t queued() const;
  // Every pharmacy's breaker state, by NCPDP id.
  std::vector<std::pair<std::string, CircuitBreaker::State>> BreakerStates() const;
  // How many times any pharmacy's breaker has opened since Start (a counter: an opening
  // shorter than a scrape interval still shows).
  int64_t BreakerOpenings() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Start-up recovery for a broker that keeps nothing across restarts (the in-process one):
// republishes the routing request of every prescription still waiting for routing
// (Queued, CancelRequested) with its original message id, so a request lost with the
// broker is delivered, and one already handled is a duplicate the inbox ignores. Returns
// how many were republished.
StatusOr<size_t> RedriveRouting(PrescriptionService& service, messaging::Producer& producer);

// How a message came to PharmacyInbox::Receive: who posted it, for whom they may speak, in
// what charset.
struct ReceiveOptions {
  // Who posted the message; the events record context.actor followed by
  // "/ncpdp:<Header/From>".
  RequestContext context;
  // The NCPDP ids the authenticated sender may speak for ("*": a network hub that speaks for
  // any), not owned; null: the message is checked against the routing only.
  const std::vector<std::string>* speaks_for = nullptr;
  // The charset parameter of the Content-Type the message came with, unquoted (empty: none);
  // see script::ReadOptions::charset.
  std::string_view charset;
};

// What a pharmacy posts back, turned into events once per SCRIPT MessageID.
class PharmacyInbox {
 public:
  struct Result {
    std::string prescription_id;
    std::string transaction;  // "RxFill", ...
    bool duplicate = false;   // this MessageID was recorded before (nothing new happened)
  };
  // `service` (and `profile`, when set) must outlive the inbox.
  explicit PharmacyInbox(PrescriptionService& service, const script::Profile* profile = nullptr)
      : service_(service), profile_(profile) {}
  // InvalidArgument (issues name XML paths) for XML that is not a valid pharmacy message or
  // lacks Header/RelatesToMessageID; Unimplemented for SCRIPT 10.6 or a transaction RxFlow
  // does not handle; NotFound when no prescription has that message id;
  // FailedPrecondition when the message does not fit the prescription's state.
  // Messages are read leniently (see script::ReadOptions::lenient) so that the issues cover
  // the whole message, but a message with any error changes nothing.
  //
  // Pharmacies are bound to their messages: PermissionDenied, and nothing changes, when the
  // message's Header/From is not the pharmacy the prescription was routed to, or (with
  // options.speaks_for) not one the sender may speak for. The events record who spoke.
  StatusOr<Result> Receive(std::string_view xml, IssueList& issues,
                           const ReceiveOptions& options = {});

  // The SCRIPT Error that answers an inbound message Receive refused with `status`:
  // addressed back to its sender (To = its From, RelatesToMessageID = its MessageID), Code
  // 900 (602 when RxFlow could not process it now: retry), DescriptionCode 4040 for a
  // transaction RxFlow does not support, 500/3000 for invalid XML or content, 1000 for an
  // unknown prescription; Description names the first problem and its XML path (printable
  // ASCII, at most 255 characters). Empty when the message's header cannot be read.
  // `charset` as ReceiveOptions::charset.
  std::string ErrorReply(std::string_view xml, const Status& status, const IssueList& issues,
                         std::string_view charset = {}) const;

  static constexpr const char* kConsumer = "pharmacy-inbound";

 private:
  PrescriptionService& service_;
  const script::Profile* profile_;
};

}  // namespace rxflow::runtime

#endif  // RXFLOW_RUNTIME_ROUTING_H_
