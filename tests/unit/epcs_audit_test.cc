// SPDX-License-Identifier: Apache-2.0
// The EPCS audit chain (rxflow/epcs/audit.h; T-6.4): records chain and verify; a record changed,
// deleted, inserted or moved is named at its sequence, whether the tampering is simulated by a
// store decorator (memory), done to the SQLite file's bytes on disk, or by an SQL statement on
// PostgreSQL; signed checkpoints catch a rewrite of the whole chain.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "rxflow/clock.h"
#include "rxflow/crypto/pq.h"
#include "rxflow/epcs/audit.h"
#include "rxflow/epcs/signer.h"
#include "rxflow/internal/crypto.h"
#include "rxflow/store/event_store.h"

#include "testing/concurrency.h"
#include "testing/files.h"
#include "testing/status.h"
#include "testing/tampered_store.h"
#include <sys/stat.h>
#include <unistd.h>

#ifdef RXFLOW_TEST_HAVE_SQLITE
#include <sqlite3.h>

#include "rxflow/sqlite/sqlite_store.h"
#endif
#ifdef RXFLOW_TEST_HAVE_POSTGRES
#include <pqxx/pqxx>

#include "rxflow/postgres/postgres_store.h"
#endif

using namespace rxflow;
using epcs::AuditEntry;
using epcs::AuditRecord;
using epcs::AuditTrail;
using epcs::AuditTrailOptions;
using epcs::AuditVerification;
using epcs::VerifyAuditTrail;

namespace {

// A marker no other record's detail contains ("AUDITMARK0023"), to find a record's bytes.
std::string Marker(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "AUDITMARK%04d", i);
  return buf;
}

AuditEntry Entry(int i) {
  AuditEntry e;
  e.actor = "prescriber-" + std::to_string(i % 3);
  e.action = "epcs.sign";
  e.object = "rx-" + std::to_string(i) + "@4";
  e.outcome = "success";
  e.source = "rxflow-test@localhost";
  e.detail = Marker(i);
  return e;
}

struct Fixture {
  FakeClock clock;
  SequentialIds ids{"audit"};
  std::unique_ptr<store::Store> store = store::NewMemoryStore(clock);

  AuditTrailOptions Options() {
    AuditTrailOptions o;
    o.ids = &ids;
    return o;
  }
  // Records entries 1..n through a trail of its own; record i is sequence i (no checkpoints).
  void Write(int n) {
    AuditTrail trail(*store, clock, Options());
    for (int i = 1; i <= n; ++i) {
      clock.Advance(1'000'000);
      auto r = trail.Record(Entry(i));
      REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    }
  }
};

using testing::Tampered;

std::vector<store::EventRecord>::iterator At(std::vector<store::EventRecord>& events,
                                             int64_t version) {
  return std::find_if(events.begin(), events.end(),
                      [&](const store::EventRecord& e) { return e.version == version; });
}

AuditRecord Decoded(const store::EventRecord& e) {
  auto r = epcs::DecodeAuditRecord(e.payload);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return *r;
}

AuditVerification Verify(store::EventStore& st, std::string_view key = {}, int64_t every = 5) {
  auto v = VerifyAuditTrail(st, epcs::kAuditStream, key, every);
  REQUIRE_MESSAGE(v.ok(), v.status().ToString());
  return *v;
}

// What a forger does who also turns the checkpoints into ordinary records: record 2 changed,
// every checkpoint made an ordinary record, the chain rehashed.
void Unseal(std::vector<store::EventRecord>& all) {
  std::string previous(epcs::kAuditGenesisHash);
  for (store::EventRecord& e : all) {
    AuditRecord r = Decoded(e);
    if (r.sequence == 2) r.detail = "nothing happened";
    if (r.action == epcs::kActionCheckpoint) {
      r.action = "epcs.sign";
      r.detail = "an ordinary record";
    }
    r.previous_hash = previous;
    r.hash = epcs::AuditRecordHash(r);
    previous = r.hash;
    e.payload = epcs::EncodeAuditRecord(r);
  }
}

void CheckNamed(const AuditVerification& v, int64_t sequence, const std::string& problem) {
  CHECK_FALSE(v.ok);
  REQUIRE(v.first_bad_sequence.has_value());
  CHECK(*v.first_bad_sequence == sequence);
  CHECK_MESSAGE(v.problem.starts_with(problem), v.problem);
}

// A signer whose device is down.
class DownSigner : public epcs::Signer {
 public:
  StatusOr<std::string> Sign(std::string_view) override {
    return absl::UnavailableError("token not present");
  }
  StatusOr<std::string> PublicKeyDer() override {
    return absl::UnavailableError("token not present");
  }
};

}  // namespace

TEST_SUITE("EPCS audit chain") {
  TEST_CASE("the hash is SHA-256 of the previous hash and the netstrings of the record") {
    // The vector docs/epcs.md's Python recomputes.
    AuditRecord r;
    r.sequence = 1;
    r.time_micros = 1'764'151'200'000'000;
    r.actor = "prescriber-1842";
    r.action = "epcs.sign";
    r.object = "rx-1@4";
    r.outcome = "success";
    r.source = "rxflow-api@host-2";
    r.detail = "token slot 0, caf\xc3\xa9";
    r.previous_hash = std::string(epcs::kAuditGenesisHash);
    CHECK(epcs::CanonicalAuditRecord(r) ==
          "19:rxflow.epcs.audit/1,1:1,16:1764151200000000,15:prescriber-1842,9:epcs.sign,"
          "6:rx-1@4,7:success,17:rxflow-api@host-2,19:token slot 0, caf\xc3\xa9,");
    CHECK(epcs::AuditRecordHash(r) ==
          "3699202f5e03c4c50b3833bf422e43fc0c33ae714353af370b67ef77126eea54");
    r.hash = epcs::AuditRecordHash(r);
    auto back = epcs::DecodeAuditRecord(epcs::EncodeAuditRecord(r));
    RXFLOW_REQUIRE_OK(back);
    CHECK(*back == r);
    // A field shifted into its neighbour changes the bytes (lengths are part of them).
    AuditRecord shifted = r;
    shifted.actor = "prescriber-1842e";
    shifted.action = "psc.sign";
    CHECK(epcs::AuditRecordHash(shifted) != r.hash);
  }

  TEST_CASE("a payload with a field unknown, missing, of another type or given twice is refused") {
    AuditRecord r;
    r.previous_hash = std::string(epcs::kAuditGenesisHash);
    r.hash = epcs::AuditRecordHash(r);
    std::string json = epcs::EncodeAuditRecord(r);
    CHECK(epcs::DecodeAuditRecord(json).ok());
    std::string twice = json;
    twice.insert(1, "\"detail\":\"other\",");
    CHECK(epcs::DecodeAuditRecord(twice).status().message() ==
          "audit record: field detail is given twice");
    std::string unknown = json;
    unknown.insert(1, "\"patient\":\"x\",");
    CHECK(epcs::DecodeAuditRecord(unknown).status().message() ==
          "audit record: unknown field patient");
    CHECK(epcs::DecodeAuditRecord("{\"sequence\":\"1\"}").status().message() ==
          "audit record: sequence is not an integer");
    CHECK(epcs::DecodeAuditRecord("{\"sequence\":1}").status().message() ==
          "audit record: no time_micros");
    CHECK(!epcs::DecodeAuditRecord("{").ok());
    CHECK(!epcs::DecodeAuditRecord("[]").ok());
  }

  TEST_CASE("records chain from 64 zeros, one event each, and verify") {
    Fixture f;
    CHECK(Verify(*f.store).ok);  // an empty trail
    AuditTrail trail(*f.store, f.clock, f.Options());
    std::vector<AuditRecord> returned;
    for (int i = 1; i <= 10; ++i) {
      f.clock.Advance(1'000'000);
      auto r = trail.Record(Entry(i));
      RXFLOW_REQUIRE_OK(r);
      returned.push_back(*r);
    }
    auto events = f.store->ReadStream(std::string(epcs::kAuditStream));
    RXFLOW_REQUIRE_OK(events);
    REQUIRE(events->size() == 10);
    std::string previous(epcs::kAuditGenesisHash);
    for (size_t i = 0; i < events->size(); ++i) {
      const store::EventRecord& e = (*events)[i];
      CHECK(e.type == epcs::kAuditEventType);
      AuditRecord r = Decoded(e);
      CHECK(r == returned[i]);
      CHECK(r.sequence == e.version);
      CHECK(e.occurred_at == r.time_micros);
      CHECK(r.previous_hash == previous);
      CHECK(r.hash == epcs::AuditRecordHash(r));
      CHECK(r.detail == Marker(static_cast<int>(i) + 1));
      previous = r.hash;
    }
    AuditVerification v = Verify(*f.store);
    CHECK(v.ok);
    CHECK(v.records == 10);
    CHECK(v.checkpoints == 0);
    CHECK(v.records_after_last_checkpoint == 10);
    CHECK_FALSE(v.first_bad_sequence.has_value());
    CHECK(v.problem.empty());
    // A second trail (another process) continues the chain from the stored head.
    AuditTrail other(*f.store, f.clock, f.Options());
    auto r = other.Record(Entry(11));
    RXFLOW_REQUIRE_OK(r);
    CHECK(r->sequence == 11);
    CHECK(r->previous_hash == previous);
    CHECK(Verify(*f.store).records == 11);
  }

  TEST_CASE("Record refuses an entry without actor or action, another outcome, a reserved action") {
    Fixture f;
    AuditTrail trail(*f.store, f.clock, f.Options());
    AuditEntry e = Entry(1);
    e.actor.clear();
    CHECK(trail.Record(e).status().message() == "audit record: actor is empty");
    e = Entry(1);
    e.outcome = "ok";
    CHECK(trail.Record(e).status().code() == absl::StatusCode::kInvalidArgument);
    e = Entry(1);
    e.action = std::string(epcs::kActionCheckpoint);
    CHECK(trail.Record(e).status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(f.store->ReadStream(std::string(epcs::kAuditStream))->empty());
    // Bytes that are not UTF-8 are kept as U+FFFD, so the JSON and the hash agree.
    e = Entry(1);
    e.detail = "bad \xff byte";
    auto r = trail.Record(e);
    RXFLOW_REQUIRE_OK(r);
    CHECK(r->detail == "bad \xef\xbf\xbd byte");
    CHECK(Verify(*f.store).ok);
  }

  TEST_CASE("a changed record is named at its sequence") {
    for (int k : {1, 7, 10}) {
      CAPTURE(k);
      Fixture f;
      f.Write(10);
      Tampered t(*f.store, [k](std::vector<store::EventRecord>& events) {
        auto it = At(events, k);
        if (it == events.end()) return;
        size_t at = it->payload.find(Marker(k));
        REQUIRE(at != std::string::npos);
        it->payload[at + 8] = 'X';  // AUDITMARK → AUDITMARX
      });
      AuditVerification v = Verify(t);
      CheckNamed(v, k, "record " + std::to_string(k) + " was changed");
      CHECK(v.problem == "record " + std::to_string(k) + " was changed");
      CHECK(v.records == k - 1);
    }
  }

  TEST_CASE("a payload that cannot be read counts as a changed record") {
    Fixture f;
    f.Write(6);
    Tampered t(*f.store, [](std::vector<store::EventRecord>& events) {
      if (auto it = At(events, 4); it != events.end()) it->payload = "{\"sequence\":4";
    });
    CheckNamed(Verify(t), 4, "record 4 was changed (its payload cannot be read");
  }

  TEST_CASE("a deleted record is named") {
    for (int k : {1, 5}) {
      CAPTURE(k);
      Fixture f;
      f.Write(8);
      Tampered t(*f.store, [k](std::vector<store::EventRecord>& events) {
        if (auto it = At(events, k); it != events.end()) events.erase(it);
      });
      AuditVerification v = Verify(t);
      CheckNamed(v, k, "record " + std::to_string(k) + " is missing (deleted)");
      CHECK(v.problem == "record " + std::to_string(k) + " is missing (deleted)");
    }
  }

  TEST_CASE("an inserted record is named: a forged one, a copy, an event of another type") {
    Fixture f;
    f.Write(8);
    SUBCASE("a forged record chained to record 5, before record 6") {
      Tampered t(*f.store, [](std::vector<store::EventRecord>& events) {
        auto it = At(events, 6);
        if (it == events.end()) return;
        AuditRecord forged = Decoded(*At(events, 5));
        forged.sequence = 6;
        forged.actor = "intruder";
        forged.previous_hash = forged.hash;
        forged.hash = epcs::AuditRecordHash(forged);
        store::EventRecord e = *it;
        e.event_id = "forged";
        e.payload = epcs::EncodeAuditRecord(forged);
        events.insert(it, e);
      });
      CheckNamed(Verify(t), 6, "a record was inserted after record 5");
    }
    SUBCASE("a copy of record 3 after record 6") {
      Tampered t(*f.store, [](std::vector<store::EventRecord>& events) {
        auto it = At(events, 7);
        if (it == events.end()) return;
        store::EventRecord copy = *At(events, 3);
        events.insert(it, copy);
      });
      AuditVerification v = Verify(t);
      CheckNamed(v, 7, "a record was inserted after record 6 (a copy of record 3)");
    }
    SUBCASE("an event of another type after record 2") {
      Tampered t(*f.store, [](std::vector<store::EventRecord>& events) {
        auto it = At(events, 3);
        if (it == events.end()) return;
        store::EventRecord other = *it;
        other.type = "PrescriptionReceived";
        other.payload = "{}";
        events.insert(it, other);
      });
      CheckNamed(Verify(t), 3,
                 "a record was inserted after record 2 (an event of type PrescriptionReceived)");
    }
  }

  TEST_CASE("swapped records are named") {
    Fixture f;
    f.Write(8);
    Tampered t(*f.store, [](std::vector<store::EventRecord>& events) {
      auto a = At(events, 4);
      auto b = At(events, 5);
      if (a != events.end() && b != events.end()) std::iter_swap(a, b);
    });
    AuditVerification v = Verify(t);
    CheckNamed(v, 4, "record 4 is out of order (stored after record 5)");
    CHECK(v.problem == "record 4 is out of order (stored after record 5)");
  }

  TEST_CASE("a record rewritten with a hash of its own is named through the next link") {
    Fixture f;
    f.Write(8);
    Tampered t(*f.store, [](std::vector<store::EventRecord>& events) {
      auto it = At(events, 6);
      if (it == events.end()) return;
      AuditRecord r = Decoded(*it);
      r.outcome = "refused";
      r.hash = epcs::AuditRecordHash(r);
      it->payload = epcs::EncodeAuditRecord(r);
    });
    CheckNamed(Verify(t), 6, "record 6 was changed (record 7 does not chain to it)");
  }

  TEST_CASE("signed checkpoints verify, another key and a rewritten chain do not") {
    Fixture f;
    auto signer = epcs::NewInMemorySigner();
    auto key = signer->PublicKeyDer();
    RXFLOW_REQUIRE_OK(key);
    AuditTrailOptions o = f.Options();
    o.checkpoint_signer = signer.get();
    o.checkpoint_every = 5;
    AuditTrail trail(*f.store, f.clock, o);
    for (int i = 1; i <= 12; ++i) {
      auto r = trail.Record(Entry(i));
      RXFLOW_REQUIRE_OK(r);
      CHECK(r->action == "epcs.sign");
    }
    auto events = f.store->ReadStream(std::string(epcs::kAuditStream));
    RXFLOW_REQUIRE_OK(events);
    // 12 entries and checkpoints at 5, 10 and 15: the twelfth entry (record 14) is followed
    // by the checkpoint that takes the next multiple of 5, in the same append.
    REQUIRE(events->size() == 15);
    for (int c : {5, 10, 15}) {
      AuditRecord cp = Decoded((*events)[c - 1]);
      AuditRecord sealed = Decoded((*events)[c - 2]);
      CHECK(cp.action == epcs::kActionCheckpoint);
      CHECK(cp.outcome == epcs::kOutcomeSuccess);
      CHECK(cp.object == "epcs-audit@" + std::to_string(c - 1));
      CHECK(cp.previous_hash == sealed.hash);
      REQUIRE(cp.detail.starts_with("signature="));
      size_t space = cp.detail.find(" key-sha256=");
      REQUIRE(space != std::string::npos);
      CHECK(cp.detail.size() - space - 12 == 64);
    }
    AuditVerification plain = Verify(*f.store);
    CHECK(plain.ok);
    CHECK(plain.records == 15);
    CHECK(plain.checkpoints == 3);
    CHECK(plain.records_after_last_checkpoint == 0);
    AuditVerification signed_ok = Verify(*f.store, *key);
    CHECK_MESSAGE(signed_ok.ok, signed_ok.problem);
    CHECK(signed_ok.checkpoints == 3);

    auto stranger = epcs::NewInMemorySigner();
    CheckNamed(Verify(*f.store, *stranger->PublicKeyDer()), 5,
               "checkpoint at record 5 has an invalid signature");

    // Whoever rewrites record 2 and every hash after it satisfies the chain, not the
    // checkpoint signed over the old hash of record 4.
    Tampered rewritten(*f.store, [](std::vector<store::EventRecord>& all) {
      std::string previous(epcs::kAuditGenesisHash);
      for (store::EventRecord& e : all) {
        AuditRecord r = Decoded(e);
        if (r.sequence == 2) r.detail = "nothing happened";
        r.previous_hash = previous;
        r.hash = epcs::AuditRecordHash(r);
        previous = r.hash;
        e.payload = epcs::EncodeAuditRecord(r);
      }
    });
    CHECK(Verify(rewritten).ok);
    CheckNamed(Verify(rewritten, *key), 5, "checkpoint at record 5 has an invalid signature");

    // Nor does one who also turns the checkpoints into ordinary records: with the key, every
    // checkpoint slot must hold a signed checkpoint.
    Tampered unsealed(*f.store, Unseal);
    CHECK(Verify(unsealed).ok);
    auto v = VerifyAuditTrail(unsealed, epcs::kAuditStream, *key, /*checkpoint_every=*/5);
    RXFLOW_REQUIRE_OK(v);
    CheckNamed(*v, 5,
               "record 5 should be a signed checkpoint (one every 5 records) but is epcs.sign");
  }

  TEST_CASE(
      "checkpoints co-signed with ML-DSA-65 verify under both keys, a forged ECDSA "
      "signature alone does not pass") {
    Fixture f;
    auto signer = epcs::NewInMemorySigner();
    auto cosigner = epcs::NewInMemoryCoSigner();
    auto key = signer->PublicKeyDer();
    RXFLOW_REQUIRE_OK(key);
    AuditTrailOptions o = f.Options();
    o.checkpoint_signer = signer.get();
    o.checkpoint_cosigner = cosigner.get();
    o.checkpoint_every = 5;
    AuditTrail trail(*f.store, f.clock, o);
    for (int i = 1; i <= 8; ++i) RXFLOW_REQUIRE_OK(trail.Record(Entry(i)));
    auto events = f.store->ReadStream(std::string(epcs::kAuditStream));
    REQUIRE(events->size() == 10);
    AuditRecord cp = Decoded((*events)[4]);
    CHECK(cp.action == epcs::kActionCheckpoint);
    CHECK(cp.detail.find(" mldsa65=") != std::string::npos);
    CHECK(cp.detail.find(" mldsa65-key-sha256=") != std::string::npos);

    auto both = VerifyAuditTrail(*f.store, epcs::kAuditStream, *key, 5, cosigner->PublicKey());
    RXFLOW_REQUIRE_OK(both);
    CHECK_MESSAGE(both->ok, both->problem);
    CHECK(both->checkpoints == 2);
    // Another ML-DSA key: named at the first checkpoint.
    auto stranger = epcs::NewInMemoryCoSigner();
    auto other = VerifyAuditTrail(*f.store, epcs::kAuditStream, *key, 5, stranger->PublicKey());
    RXFLOW_REQUIRE_OK(other);
    CheckNamed(*other, 5, "checkpoint at record 5 has an invalid ML-DSA-65 co-signature");

    // Whoever can forge ECDSA rewrites record 2, every hash after it and the checkpoints'
    // ECDSA signatures (here: signed with the real key, as a forger would) but cannot make
    // the ML-DSA-65 co-signatures over the new hashes.
    Tampered rewritten(*f.store, [&](std::vector<store::EventRecord>& all) {
      std::string previous(epcs::kAuditGenesisHash);
      for (store::EventRecord& e : all) {
        AuditRecord r = Decoded(e);
        if (r.sequence == 2) r.detail = "nothing happened";
        r.previous_hash = previous;
        if (r.action == epcs::kActionCheckpoint) {
          auto forged = signer->Sign(previous);
          RXFLOW_REQUIRE_OK(forged);
          size_t pq = r.detail.find(" mldsa65=");
          r.detail = "signature=" + rxflow::internal::Base64Encode(*forged) +
                     " key-sha256=" + rxflow::internal::Sha256Hex(*key) + r.detail.substr(pq);
        }
        r.hash = epcs::AuditRecordHash(r);
        previous = r.hash;
        e.payload = epcs::EncodeAuditRecord(r);
      }
    });
    CHECK(Verify(rewritten, *key).ok);  // ECDSA alone is satisfied by the forgery
    auto caught = VerifyAuditTrail(rewritten, epcs::kAuditStream, *key, 5, cosigner->PublicKey());
    RXFLOW_REQUIRE_OK(caught);
    CheckNamed(*caught, 5, "checkpoint at record 5 has an invalid ML-DSA-65 co-signature");
    // With the ML-DSA key alone, too.
    auto pq_only = VerifyAuditTrail(rewritten, epcs::kAuditStream, {}, 5, cosigner->PublicKey());
    RXFLOW_REQUIRE_OK(pq_only);
    CheckNamed(*pq_only, 5, "checkpoint at record 5 has an invalid ML-DSA-65 co-signature");

    // Nor can the forger drop the checkpoints: with the ML-DSA key alone, every slot must
    // still hold one.
    Tampered unsealed(*f.store, Unseal);
    auto dropped = VerifyAuditTrail(unsealed, epcs::kAuditStream, {}, 5, cosigner->PublicKey());
    RXFLOW_REQUIRE_OK(dropped);
    CheckNamed(*dropped, 5,
               "record 5 should be a signed checkpoint (one every 5 records) but is epcs.sign");
    // A key of another size is a caller's error, not a broken chain.
    CHECK(absl::IsInvalidArgument(
        VerifyAuditTrail(*f.store, epcs::kAuditStream, {}, 5, "short").status()));

    // A trail written without a co-signer, checked with the ML-DSA key: named too.
    Fixture plain;
    AuditTrailOptions po = plain.Options();
    po.checkpoint_signer = signer.get();
    po.checkpoint_every = 5;
    AuditTrail unsigned_trail(*plain.store, plain.clock, po);
    for (int i = 1; i <= 5; ++i) RXFLOW_REQUIRE_OK(unsigned_trail.Record(Entry(i)));
    auto missing =
        VerifyAuditTrail(*plain.store, epcs::kAuditStream, *key, 5, cosigner->PublicKey());
    RXFLOW_REQUIRE_OK(missing);
    CheckNamed(*missing, 5, "checkpoint at record 5 has an invalid ML-DSA-65 co-signature");
  }

  TEST_CASE(
      "the ML-DSA-65 key file: created 0600, reopened as the same key, refused when "
      "readable by others or broken") {
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("rxflow-mldsa-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    const std::string path = (dir / "keys" / "mldsa65.key").string();
    auto created = epcs::OpenCoSignerKeyFile(path);
    REQUIRE_MESSAGE(created.ok(), created.status().ToString());
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(::stat((dir / "keys").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    auto reopened = epcs::OpenCoSignerKeyFile(path);
    RXFLOW_REQUIRE_OK(reopened);
    CHECK((*reopened)->PublicKey() == (*created)->PublicKey());
    auto sig = (*reopened)->Sign("x", epcs::kCoSignAuditCheckpoint);
    RXFLOW_REQUIRE_OK(sig);
    CHECK(
        rxflow::pq::VerifyMlDsa65((*created)->PublicKey(), "x", *sig, epcs::kCoSignAuditCheckpoint)
            .ok());

    ::chmod(path.c_str(), 0640);
    auto exposed = epcs::OpenCoSignerKeyFile(path);
    CHECK(absl::IsPermissionDenied(exposed.status()));
    CHECK(std::string(exposed.status().message()).find("0600") != std::string::npos);
    ::chmod(path.c_str(), 0600);

    // A file whose halves are two different keys, and one that is not a key file.
    std::string text = testing::ReadFile(path);
    auto other = rxflow::pq::GenerateMlDsa65();
    std::string swapped = text.substr(0, text.rfind('\n', text.size() - 2) + 1) +
                          rxflow::internal::Base64Encode(other.public_key) + "\n";
    testing::WriteFile(path, swapped);
    ::chmod(path.c_str(), 0600);
    auto mismatched = epcs::OpenCoSignerKeyFile(path);
    CHECK(absl::IsInvalidArgument(mismatched.status()));
    CHECK(std::string(mismatched.status().message()).find("not one key pair") != std::string::npos);
    testing::WriteFile(path, "-----BEGIN PRIVATE KEY-----\n");
    ::chmod(path.c_str(), 0600);
    CHECK(absl::IsInvalidArgument(epcs::OpenCoSignerKeyFile(path).status()));
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("a signer that is down leaves a failed checkpoint and the entry recorded") {
    Fixture f;
    DownSigner down;
    AuditTrailOptions o = f.Options();
    o.checkpoint_signer = &down;
    o.checkpoint_every = 3;
    AuditTrail trail(*f.store, f.clock, o);
    for (int i = 1; i <= 4; ++i) RXFLOW_REQUIRE_OK(trail.Record(Entry(i)));
    auto events = f.store->ReadStream(std::string(epcs::kAuditStream));
    REQUIRE(events->size() == 6);  // 3 and 6 are the checkpoint slots
    for (int c : {3, 6}) {
      AuditRecord r = Decoded((*events)[c - 1]);
      CHECK(r.action == epcs::kActionCheckpointFailed);
      CHECK(r.outcome == epcs::kOutcomeFailure);
      CHECK(r.detail.find("token not present") != std::string::npos);
    }
    CHECK(Verify(*f.store).ok);  // the chain itself is whole
    // With the key, the unsigned slots leave the chain unsealed: reported, fail closed.
    AuditVerification v = Verify(*f.store, *epcs::NewInMemorySigner()->PublicKeyDer(), 3);
    CheckNamed(v, 3,
               "record 3 should be a signed checkpoint (one every 3 records) but is "
               "epcs.checkpoint.failed");
    CHECK(v.checkpoints == 0);
  }

  // Another process's trail that always appends first for a while: a writer that retried at
  // once would spend its 20 attempts in microseconds and give up; backing off outlasts it.
  class BusyRivalStore final : public store::StoreWrapper {
   public:
    BusyRivalStore(store::Store& target, std::chrono::milliseconds busy_for,
                   std::function<void()> rival)
        : StoreWrapper(target),
          busy_until_(std::chrono::steady_clock::now() + busy_for),
          rival_(std::move(rival)) {}
    int rival_appends = 0;

    StatusOr<store::AppendResult> Append(store::AppendRequest request) override {
      // Two losses at least, however late the trail gets going; then as long as it is busy.
      if (rival_appends < 2 || std::chrono::steady_clock::now() < busy_until_) {
        rival_();
        ++rival_appends;
      }
      return StoreWrapper::Append(std::move(request));
    }

   private:
    std::chrono::steady_clock::time_point busy_until_;
    std::function<void()> rival_;
  };

  TEST_CASE("a trail that keeps losing the race to a busy writer backs off and records") {
    Fixture f;
    AuditTrail rival(*f.store, f.clock, f.Options());
    int rival_entry = 1000;
    BusyRivalStore busy(*f.store, std::chrono::milliseconds(40), [&] {
      auto r = rival.Record(Entry(++rival_entry));
      RXFLOW_REQUIRE_OK(r);
    });
    RXFLOW_REQUIRE_OK(rival.Record(Entry(1)));  // the trail below starts behind
    AuditTrail trail(busy, f.clock, f.Options());
    auto recorded = trail.Record(Entry(2));
    RXFLOW_REQUIRE_OK(recorded);
    CHECK(busy.rival_appends >= 2);  // it did lose, more than once
    CHECK(recorded->sequence == busy.rival_appends + 2);
    AuditVerification v = Verify(*f.store);
    CHECK_MESSAGE(v.ok, v.problem);
    CHECK(v.records == busy.rival_appends + 2);

    SUBCASE("without backing off it gives up, naming the conflict") {
      AuditTrailOptions o = f.Options();
      o.conflict_backoff_max = std::chrono::milliseconds(0);
      BusyRivalStore busier(*f.store, std::chrono::seconds(60),
                            [&] { RXFLOW_REQUIRE_OK(rival.Record(Entry(++rival_entry))); });
      AuditTrail impatient(busier, f.clock, o);
      auto gave_up = impatient.Record(Entry(3));
      REQUIRE_FALSE(gave_up.ok());
      CHECK(gave_up.status().code() == absl::StatusCode::kAborted);
      CHECK(std::string(gave_up.status().message()).find("still conflicting after 20 attempts") !=
            std::string::npos);
      CHECK(busier.rival_appends == 20);
      CHECK(Verify(*f.store).ok);
    }
  }

  TEST_CASE("concurrent Record calls give a gapless verified chain") {
    Fixture f;
    auto signer = epcs::NewInMemorySigner();
    SUBCASE("4 threads on one trail, with checkpoints") {
      AuditTrailOptions o = f.Options();
      o.checkpoint_signer = signer.get();
      o.checkpoint_every = 10;
      AuditTrail trail(*f.store, f.clock, o);
      testing::Failures failures;
      testing::RunTogether(4, [&](int t) {
        for (int i = 0; i < 25; ++i) {
          auto r = trail.Record(Entry(t * 25 + i + 1));
          if (!r.ok()) failures.Add(r.status().ToString());
        }
      });
      CHECK_MESSAGE(failures.empty(), failures.Text());
      AuditVerification v = Verify(*f.store, *signer->PublicKeyDer(), 10);
      CHECK_MESSAGE(v.ok, v.problem);
      CHECK(v.records == 111);  // 100 entries and the checkpoints at 10, 20, ..., 110
      CHECK(v.checkpoints == 11);
    }
    SUBCASE("4 threads on two trails (two processes): conflicts are retried") {
      AuditTrail a(*f.store, f.clock, f.Options());
      AuditTrail b(*f.store, f.clock, f.Options());
      testing::Failures failures;
      testing::RunTogether(4, [&](int t) {
        AuditTrail& trail = t % 2 ? a : b;
        for (int i = 0; i < 25; ++i) {
          auto r = trail.Record(Entry(t * 25 + i + 1));
          if (!r.ok()) failures.Add(r.status().ToString());
        }
      });
      CHECK_MESSAGE(failures.empty(), failures.Text());
      AuditVerification v = Verify(*f.store);
      CHECK_MESSAGE(v.ok, v.problem);
      CHECK(v.records == 100);
    }
    // Every entry once.
    auto records = epcs::ReadAuditTrail(*f.store, epcs::kAuditStream, 0, INT64_MAX);
    RXFLOW_REQUIRE_OK(records);
    std::set<std::string> details;
    for (const AuditRecord& r : *records) {
      if (r.action == "epcs.sign") CHECK(details.insert(r.detail).second);
    }
    CHECK(details.size() == 100);
  }

  TEST_CASE("VerifyAndRecord records the tampering it finds") {
    Fixture f;
    f.Write(6);
    Tampered t(*f.store, [](std::vector<store::EventRecord>& events) {
      if (auto it = At(events, 3); it != events.end())
        it->payload[it->payload.find("AUDITMARK")] = 'B';
    });
    AuditTrail trail(t, f.clock, f.Options());
    auto v = trail.VerifyAndRecord();
    RXFLOW_REQUIRE_OK(v);
    CheckNamed(*v, 3, "record 3 was changed");
    // The store itself was never changed: its chain holds, now with the report at its end.
    AuditVerification real = Verify(*f.store);
    CHECK(real.ok);
    CHECK(real.records == 7);
    auto events = f.store->ReadStream(std::string(epcs::kAuditStream));
    AuditRecord report = Decoded(events->back());
    CHECK(report.action == epcs::kActionTamperDetected);
    CHECK(report.outcome == epcs::kOutcomeFailure);
    CHECK(report.object == "epcs-audit@3");
    CHECK(report.detail == "record 3 was changed");
  }

  TEST_CASE("ReadAuditTrail returns the records of a time window") {
    Fixture f;
    const int64_t start = f.clock.NowMicros();
    f.Write(8);  // record i at start + i seconds
    auto records =
        epcs::ReadAuditTrail(*f.store, epcs::kAuditStream, start + 3'000'000, start + 6'000'000);
    RXFLOW_REQUIRE_OK(records);
    REQUIRE(records->size() == 3);
    CHECK((*records)[0].sequence == 3);
    CHECK((*records)[2].sequence == 5);
    Tampered t(*f.store, [](std::vector<store::EventRecord>& events) {
      if (auto it = At(events, 2); it != events.end()) it->payload = "garbage";
    });
    auto broken = epcs::ReadAuditTrail(t, epcs::kAuditStream, 0, INT64_MAX);
    CHECK(broken.status().code() == absl::StatusCode::kDataLoss);
    CHECK(
        std::string(broken.status().message()).starts_with("audit record 2 of stream epcs-audit"));
  }

#ifdef RXFLOW_TEST_HAVE_SQLITE
  TEST_CASE("one byte changed in the SQLite database file is named as the changed record") {
    const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                      ("rxflow-epcs-audit-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    const std::filesystem::path db = dir / "store.db";
    FakeClock clock;
    SequentialIds ids{"audit"};
    store::SqliteOptions o;
    o.path = db.string();
    o.clock = &clock;
    {
      auto st = store::OpenSqliteStore(o);
      REQUIRE_MESSAGE(st.ok(), st.status().ToString());
      AuditTrailOptions ao;
      ao.ids = &ids;
      AuditTrail trail(**st, clock, ao);
      for (int i = 1; i <= 50; ++i) {
        clock.Advance(1'000'000);
        RXFLOW_REQUIRE_OK(trail.Record(Entry(i)));
      }
      CHECK(Verify(**st).records == 50);
    }
    // Closing the store's last connection copies the WAL into the database file. Leaving WAL
    // mode does so for certain, whatever the adapter does at close, and removes the WAL: the
    // bytes changed below are then the only copy SQLite reads.
    {
      sqlite3* raw = nullptr;
      REQUIRE(sqlite3_open(db.c_str(), &raw) == SQLITE_OK);
      CHECK(sqlite3_exec(raw, "PRAGMA journal_mode=DELETE", nullptr, nullptr, nullptr) ==
            SQLITE_OK);
      sqlite3_close(raw);
    }
    REQUIRE_FALSE(std::filesystem::exists(db.string() + "-wal"));
    std::string bytes;
    {
      std::ifstream in(db, std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    // The marker of record 23; SQLite may also have left an old copy in free space, so each
    // occurrence gets the same one-character change.
    const std::string marker = Marker(23);
    int changed = 0;
    for (auto it = std::search(bytes.begin(), bytes.end(), marker.begin(), marker.end());
         it != bytes.end(); it = std::search(it + 1, bytes.end(), marker.begin(), marker.end())) {
      it[8] = 'X';  // AUDITMARK0023 → AUDITMARX0023
      ++changed;
    }
    REQUIRE(changed >= 1);
    {
      std::ofstream out(db, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      REQUIRE(out.good());
    }
    {
      auto st = store::OpenSqliteStore(o);
      REQUIRE_MESSAGE(st.ok(), st.status().ToString());
      AuditVerification v = Verify(**st);
      CheckNamed(v, 23, "record 23 was changed");
      CHECK(v.problem == "record 23 was changed");
      CHECK(v.records == 22);
      auto records = epcs::ReadAuditTrail(**st, epcs::kAuditStream, 0, INT64_MAX);
      RXFLOW_REQUIRE_OK(records);
      REQUIRE(records->size() == 50);
      CHECK((*records)[22].detail == "AUDITMARX0023");
    }
    std::filesystem::remove_all(dir);
  }
#endif

#ifdef RXFLOW_TEST_HAVE_POSTGRES
  // A fresh schema in the server named by RXFLOW_TEST_POSTGRES_URL (scripts/with-postgres.sh);
  // without it this test fails, never skips.
  TEST_CASE("SQL that deletes or changes an audit row on the PostgresAdapter is named") {
    const char* url = std::getenv("RXFLOW_TEST_POSTGRES_URL");
    REQUIRE_MESSAGE(url,
                    "RXFLOW_TEST_POSTGRES_URL is not set (run through scripts/with-postgres.sh)");
    const std::string schema = "epcs_audit_" + std::to_string(::getpid());
    {
      pqxx::connection c(url);
      pqxx::nontransaction n(c);
      n.exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
    }
    FakeClock clock;
    SequentialIds ids{"audit"};
    store::PostgresOptions o;
    o.url = url;
    o.schema = schema;
    o.clock = &clock;
    o.connections = 2;
    {
      auto st = store::OpenPostgresStore(o);
      REQUIRE_MESSAGE(st.ok(), st.status().ToString());
      AuditTrailOptions ao;
      ao.ids = &ids;
      AuditTrail trail(**st, clock, ao);
      for (int i = 1; i <= 30; ++i) {
        clock.Advance(1'000'000);
        RXFLOW_REQUIRE_OK(trail.Record(Entry(i)));
      }
      CHECK(Verify(**st).ok);
      auto exec = [&](const std::string& sql) {
        pqxx::connection c(url);
        pqxx::work w(c);
        pqxx::result r = w.exec(sql);
        w.commit();
        return r.affected_rows();
      };
      const std::string events = schema + ".events";
      CHECK(exec("DELETE FROM " + events + " WHERE stream_id = 'epcs-audit' AND version = 25") ==
            1);
      AuditVerification deleted = Verify(**st);
      CheckNamed(deleted, 25, "record 25 is missing (deleted)");
      CHECK(exec("UPDATE " + events + " SET payload = replace(payload, '" + Marker(17) +
                 "', 'AUDITMARX0017') WHERE stream_id = 'epcs-audit' AND payload LIKE '%" +
                 Marker(17) + "%'") == 1);
      AuditVerification changed = Verify(**st);
      CheckNamed(changed, 17, "record 17 was changed");
      CHECK(changed.problem == "record 17 was changed");
    }
    pqxx::connection c(url);
    pqxx::nontransaction n(c);
    n.exec("DROP SCHEMA " + schema + " CASCADE");
  }
#endif
}
