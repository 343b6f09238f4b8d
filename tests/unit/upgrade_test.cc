// SPDX-License-Identifier: Apache-2.0
// Upgrade in place: stores written by release 0.1.0 (tests/fixtures/legacy/0.1.0, made by its
// make.sh: 2 prescriptions carried to Dispensed with every outbox row published, then 3 queued
// by an ingestion-api alone, their 21 outbox rows pending) open under this release. The old
// outbox table is gone, the relay's subscription starts where the pending rows began, and
// relaying publishes exactly the pending messages, each once, with their old message ids.
#include <filesystem>
#include <map>
#include <set>
#include <string>

#include <doctest/doctest.h>

#include "rxflow/messaging/broker.h"
#include "rxflow/runtime/outbox_relay.h"
#include "rxflow/service.h"
#include "rxflow/store/event_store.h"

#include "testing/files.h"
#include "testing/status.h"

#ifdef RXFLOW_TEST_HAVE_SQLITE
#include <sqlite3.h>

#include "rxflow/sqlite/sqlite_store.h"
#endif
#ifdef RXFLOW_TEST_HAVE_POSTGRES
#include <pqxx/pqxx>

#include "rxflow/postgres/postgres_store.h"
#endif

#include <unistd.h>

using namespace rxflow;

namespace {

// The fixture's first 2 prescriptions made 12 events, all published: the relay starts after.
constexpr int64_t kPublishedEvents = 12;
constexpr size_t kPendingMessages = 21;  // 3 prescriptions × 3 events × 2, + 3 routing

// Relays everything after the upgrade and checks the outcome against the old pending rows.
void CheckUpgraded(store::Store& st, const std::set<std::string>& pending) {
  REQUIRE(pending.size() == kPendingMessages);
  CHECK(*st.SubscriptionCheckpoint(store::kRelaySubscription) == kPublishedEvents);
  CHECK(*st.HeadPosition() == kPublishedEvents + 9);
  auto broker = messaging::NewInProcessBroker();
  auto consumer =
      *broker->NewConsumer("upgrade", {std::string(messaging::topics::kAuditTrail),
                                       std::string(messaging::topics::kPrescriptionEvents),
                                       std::string(messaging::topics::kRoutingRequests)});
  auto producer = *broker->NewProducer();
  runtime::OutboxRelay relay(st, *producer);
  while (true) {
    auto n = relay.RunOnce();
    RXFLOW_REQUIRE_OK(n);
    if (*n == 0) break;
  }
  CHECK(*runtime::RelayBacklog(st) == 0);
  auto got = consumer->Poll(1000, std::chrono::milliseconds(100));
  RXFLOW_REQUIRE_OK(got);
  std::map<std::string, int> published;
  for (const auto& m : *got) ++published[std::string(m.Header(messaging::kMessageIdHeader))];
  std::set<std::string> ids;
  for (const auto& [id, times] : published) {
    CAPTURE(id);
    CHECK(times == 1);
    ids.insert(id);
  }
  CHECK(ids == pending);
  // The prescriptions read back as they were.
  ServiceOptions o;
  o.patient_key = "legacy-patient-key-0123456789abcdef";
  auto service = PrescriptionService::Create(st, o);
  RXFLOW_REQUIRE_OK(service);
  std::map<std::string, int> statuses;
  auto all = st.ReadAll(0, 1000);
  RXFLOW_REQUIRE_OK(all);
  std::set<std::string> streams;
  for (const auto& e : *all) streams.insert(e.stream_id);
  for (const auto& id : streams)
    ++statuses[std::string(domain::StateName((*service)->Get(id)->state))];
  CHECK(statuses == std::map<std::string, int>{{"Dispensed", 2}, {"Queued", 3}});
}

}  // namespace

#ifdef RXFLOW_TEST_HAVE_SQLITE
TEST_SUITE("Upgrade") {
  TEST_CASE("a SQLite store written by release 0.1.0 opens, and its pending messages go once") {
    auto dir =
        std::filesystem::temp_directory_path() / ("rxflow-upgrade-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string db = (dir / "rxflow.db").string();
    std::filesystem::copy_file(testing::Fixture("legacy/0.1.0/rxflow.db"), db);
    // What release 0.1.0 had left to publish.
    std::set<std::string> pending;
    {
      sqlite3* raw = nullptr;
      REQUIRE(sqlite3_open(db.c_str(), &raw) == SQLITE_OK);
      sqlite3_stmt* q = nullptr;
      REQUIRE(sqlite3_prepare_v2(raw, "SELECT message_id FROM outbox WHERE published = 0", -1, &q,
                                 nullptr) == SQLITE_OK);
      while (sqlite3_step(q) == SQLITE_ROW) {
        pending.insert(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)));
      }
      sqlite3_finalize(q);
      sqlite3_close(raw);
    }
    store::SqliteOptions so;
    so.path = db;
    {
      auto st = store::OpenSqliteStore(so);
      REQUIRE_MESSAGE(st.ok(), st.status().ToString());
      CheckUpgraded(**st, pending);
    }
    {  // Opening again changes nothing: the subscription keeps its place.
      auto st = store::OpenSqliteStore(so);
      RXFLOW_REQUIRE_OK(st);
      CHECK(*runtime::RelayBacklog(**st) == 0);
    }
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(db.c_str(), &raw) == SQLITE_OK);
    sqlite3_stmt* q = nullptr;
    REQUIRE(sqlite3_prepare_v2(raw, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'outbox'", -1,
                               &q, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(q) == SQLITE_ROW);
    CHECK(sqlite3_column_int(q, 0) == 0);  // the old outbox table is gone
    sqlite3_finalize(q);
    sqlite3_close(raw);
    std::filesystem::remove_all(dir);
  }
}
#endif

#ifdef RXFLOW_TEST_HAVE_POSTGRES
TEST_SUITE("Upgrade") {
  // The fixture is `pg_dump --inserts` of schema public; it is loaded into a fresh schema.
  TEST_CASE("a database written by release 0.1.0 opens on the PostgresAdapter, pending go once") {
    const char* url = std::getenv("RXFLOW_TEST_POSTGRES_URL");
    REQUIRE_MESSAGE(url,
                    "RXFLOW_TEST_POSTGRES_URL is not set (run through scripts/with-postgres.sh)");
    const std::string schema = "upgrade_" + std::to_string(::getpid());
    std::string dump = testing::ReadFixture("legacy/0.1.0/pg.sql");
    auto replace_all = [&](const std::string& from, const std::string& to) {
      for (size_t at = 0; (at = dump.find(from, at)) != std::string::npos; at += to.size()) {
        dump.replace(at, from.size(), to);
      }
    };
    replace_all("COMMENT ON SCHEMA public IS 'standard public schema';", "");
    replace_all("CREATE SCHEMA public;", "CREATE SCHEMA " + schema + ";");
    replace_all("public.", schema + ".");
    std::set<std::string> pending;
    {
      pqxx::connection c(url);
      pqxx::nontransaction n(c);
      n.exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
      n.exec(dump);
      for (const auto& row :
           n.exec("SELECT message_id FROM " + schema + ".outbox WHERE NOT published")) {
        pending.insert(row[0].as<std::string>());
      }
    }
    store::PostgresOptions o;
    o.url = url;
    o.schema = schema;
    o.connections = 2;
    {
      auto st = store::OpenPostgresStore(o);
      REQUIRE_MESSAGE(st.ok(), st.status().ToString());
      CheckUpgraded(**st, pending);
    }
    {
      auto st = store::OpenPostgresStore(o);
      RXFLOW_REQUIRE_OK(st);
      CHECK(*runtime::RelayBacklog(**st) == 0);
    }
    pqxx::connection c(url);
    pqxx::nontransaction n(c);
    CHECK(n.exec("SELECT 1 FROM information_schema.tables WHERE table_schema = " + n.quote(schema) +
                 " AND table_name = 'outbox'")
              .empty());
    n.exec("DROP SCHEMA " + schema + " CASCADE");
  }
}
#endif
