// SPDX-License-Identifier: Apache-2.0
// Field-level encryption of PHI at rest (rxflow/crypto/phi.h): the vault's keys, the
// protecting store, and a canary over a real SQLite database and its WAL.
#include "rxflow/crypto/phi.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <doctest/doctest.h>

#include "rxflow/domain/prescription.h"
#include "rxflow/internal/crypto.h"
#include "rxflow/runtime/messages.h"
#include "rxflow/runtime/outbox_relay.h"
#include "rxflow/service.h"
#include "rxflow/sqlite/sqlite_store.h"

#include "testing/concurrency.h"
#include "testing/files.h"
#include "testing/status.h"
#ifdef RXFLOW_TEST_HAVE_KAFKA
#include "testing/broker_adapters.h"
#endif
#include <sys/stat.h>
#include <unistd.h>

using namespace rxflow;

namespace {

constexpr const char* kPatientKey = "test-patient-key-0123456789abcdef";

std::shared_ptr<phi::KeyEncryptionKey> Kek(const std::string& id) {
  return std::shared_ptr<phi::KeyEncryptionKey>(phi::NewInMemoryKek(id));
}

std::unique_ptr<phi::Vault> VaultOver(
    store::DataKeys& keys, std::shared_ptr<phi::KeyEncryptionKey> current,
    std::vector<std::shared_ptr<phi::KeyEncryptionKey>> retired = {}, Clock* clock = nullptr) {
  phi::VaultOptions o;
  o.current = std::move(current);
  o.retired = std::move(retired);
  o.clock = clock;
  auto v = phi::Vault::Create(keys, std::move(o));
  RXFLOW_REQUIRE_OK(v);
  return std::move(*v);
}

const phi::Binding kWhere{"tenant-a", "rx-1", "newrx_xml"};

std::filesystem::path TempDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("rxflow-phi-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string FileBytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Two writers of one store: a vault each over it, under one KEK.
struct TwoVaults {
  FakeClock clock;
  std::unique_ptr<store::Store> raw = store::NewMemoryStore(clock);
  std::shared_ptr<phi::KeyEncryptionKey> kek = Kek("kek-1");
  std::unique_ptr<phi::Vault> a = VaultOver(*raw, kek);
  std::unique_ptr<phi::Vault> b = VaultOver(*raw, kek);
};

// An append of one PrescriptionTransformed whose NewRx is "<NewRx>id</NewRx>", sealed under
// `patient`'s data key.
store::AppendRequest TransformedFor(const std::string& id, const std::string& patient) {
  domain::PrescriptionTransformed t;
  t.newrx_xml = "<NewRx>" + id + "</NewRx>";
  t.phi_key = patient;
  store::EventRecord e;
  e.event_id = "ev-" + id;
  e.type = std::string(t.kType);
  e.payload = domain::EncodePayload(t);
  store::AppendRequest r;
  r.stream_id = id;
  r.events = {e};
  return r;
}

}  // namespace

TEST_SUITE("PHI at rest") {
  TEST_CASE("a sealed value opens only where it was sealed") {
    FakeClock clock;
    auto store = store::NewMemoryStore(clock);
    auto vault = VaultOver(*store, Kek("kek-1"));
    const std::string xml = "<Patient><LastName>Quixtwaddle</LastName></Patient>";
    auto sealed = vault->Seal("patient-1", kWhere, xml);
    RXFLOW_REQUIRE_OK(sealed);
    CHECK(phi::IsSealed(*sealed));
    CHECK(sealed->starts_with("rxenc1.patient-1.1."));
    CHECK(sealed->find("Quixtwaddle") == std::string::npos);
    CHECK(*vault->Open(*sealed, kWhere) == xml);
    // Two seals of one value differ (a fresh nonce each).
    CHECK(*vault->Seal("patient-1", kWhere, xml) != *sealed);
    // The first seal made version 1, stored wrapped (not the key itself).
    auto versions = store->DataKeyVersions("patient-1");
    REQUIRE(versions->size() == 1);
    CHECK((*versions)[0].kek_id == "kek-1");
    CHECK((*versions)[0].wrapped.size() == 12 + 32 + 16);

    // Moved to another tenant, prescription or field, or tampered with: DataLoss.
    for (const phi::Binding& other : {phi::Binding{"tenant-b", "rx-1", "newrx_xml"},
                                      phi::Binding{"tenant-a", "rx-2", "newrx_xml"},
                                      phi::Binding{"tenant-a", "rx-1", "signed_newrx_xml"}}) {
      CHECK(vault->Open(*sealed, other).status().code() == absl::StatusCode::kDataLoss);
    }
    std::string tampered = *sealed;
    tampered[tampered.size() - 6] = tampered[tampered.size() - 6] == 'A' ? 'B' : 'A';
    CHECK(vault->Open(tampered, kWhere).status().code() == absl::StatusCode::kDataLoss);
    std::string other_version = *sealed;
    other_version.replace(other_version.find(".1."), 3, ".7.");
    CHECK(vault->Open(other_version, kWhere).status().code() == absl::StatusCode::kDataLoss);
    CHECK(vault->Open("rxenc1.garbage", kWhere).status().code() == absl::StatusCode::kDataLoss);
    CHECK(vault->Seal("a.b", kWhere, "x").status().code() == absl::StatusCode::kInvalidArgument);
  }

  TEST_CASE("a large value is compressed before it is sealed, and the mark is authenticated") {
    FakeClock clock;
    auto store = store::NewMemoryStore(clock);
    auto vault = VaultOver(*store, Kek("kek-1"));
    const std::string xml =
        testing::ReadFixture("golden/medication_request_lisinopril.2023011.xml");
    auto sealed = vault->Seal("patient-1", kWhere, xml);
    RXFLOW_REQUIRE_OK(sealed);
    CHECK(sealed->starts_with("rxenc1.patient-1.1z."));
    // With the sealed dictionary: base64 of a frame of 1.2 KB (without it, 1.8 KB; a NewRx
    // as the service seals it, compact and JSON-escaped as the dictionary's samples, 0.4 KB).
    CAPTURE(sealed->size());
    CHECK(sealed->size() * 3 < xml.size());
    CHECK(*vault->Open(*sealed, kWhere) == xml);
    // The mark removed, or added to a value sealed without it: neither authenticates.
    std::string unmarked = *sealed;
    unmarked.replace(unmarked.find(".1z."), 4, ".1.");
    auto opened = vault->Open(unmarked, kWhere);
    CHECK(opened.status().code() == absl::StatusCode::kDataLoss);
    CHECK(opened.status().message().find("does not authenticate") != absl::string_view::npos);
    auto small = vault->Seal("patient-1", kWhere, "<LastName>Quixtwaddle</LastName>");
    RXFLOW_REQUIRE_OK(small);
    CHECK(small->starts_with("rxenc1.patient-1.1."));  // short: sealed as it is
    std::string marked = *small;
    marked.replace(marked.find(".1."), 3, ".1z.");
    opened = vault->Open(marked, kWhere);
    CHECK(opened.status().code() == absl::StatusCode::kDataLoss);
    // Refused by the tag, not by the frame check that would follow it.
    CHECK(opened.status().message().find("does not authenticate") != absl::string_view::npos);
    // Moved elsewhere it fails as any sealed value does.
    CHECK(vault->Open(*sealed, phi::Binding{"tenant-a", "rx-2", "newrx_xml"}).status().code() ==
          absl::StatusCode::kDataLoss);
  }

  TEST_CASE("a value larger than opening may expand is sealed uncompressed, and opens") {
    FakeClock clock;
    auto store = store::NewMemoryStore(clock);
    auto vault = VaultOver(*store, Kek("kek-1"));
    // 64 MiB + 1 of one byte: zstd would make it a few kilobytes that Open (which expands
    // at most 64 MiB) could never read back.
    const std::string huge((size_t{64} << 20) + 1, 'a');
    auto sealed = vault->Seal("patient-1", kWhere, huge);
    RXFLOW_REQUIRE_OK(sealed);
    CHECK(sealed->starts_with("rxenc1.patient-1.1."));
    auto opened = vault->Open(*sealed, kWhere);
    RXFLOW_REQUIRE_OK(opened);
    CHECK(*opened == huge);
  }

  TEST_CASE("two processes sharing a store create one key per patient and read each other") {
    FakeClock clock;
    auto store = store::NewMemoryStore(clock);
    auto kek = Kek("kek-1");
    auto a = VaultOver(*store, kek);
    auto b = VaultOver(*store, kek);
    std::vector<std::string> sealed(8);
    testing::RunTogether(8, [&](int i) {
      auto s = (i % 2 ? *a : *b).Seal("new-patient", kWhere, "value " + std::to_string(i));
      if (s.ok()) sealed[i] = *s;
    });
    CHECK(store->DataKeyVersions("new-patient")->size() == 1);
    for (int i = 0; i < 8; ++i) {
      REQUIRE_FALSE(sealed[i].empty());
      CHECK(*(i % 2 ? *b : *a).Open(sealed[i], kWhere) == "value " + std::to_string(i));
    }
  }

  TEST_CASE("a data key rotates: new values under the new version, old ones still open") {
    FakeClock clock;
    auto store = store::NewMemoryStore(clock);
    auto vault = VaultOver(*store, Kek("kek-1"));
    auto old_value = *vault->Seal("p", kWhere, "before");
    CHECK(*vault->RotateDataKey("p") == 2);
    auto new_value = *vault->Seal("p", kWhere, "after");
    CHECK(new_value.starts_with("rxenc1.p.2."));
    CHECK(*vault->Open(old_value, kWhere) == "before");
    CHECK(*vault->Open(new_value, kWhere) == "after");
    // Another process with the old version cached reloads when it meets the new one.
    CHECK(*vault->RotateDataKey("fresh") == 1);
  }

  TEST_CASE("a new KEK wraps new keys, the rewrap job moves the old ones, then the old KEK goes") {
    FakeClock clock;
    auto store = store::NewMemoryStore(clock);
    auto kek1 = Kek("kek-1");
    auto kek2 = Kek("kek-2");
    auto before = VaultOver(*store, kek1);
    std::vector<std::string> values;
    for (int i = 0; i < 300; ++i) {  // more than one page of the job
      values.push_back(*before->Seal("p" + std::to_string(i), kWhere, "v" + std::to_string(i)));
    }
    // Without the old KEK the keys it wrapped cannot be read, and the job says which KEK.
    auto lost = VaultOver(*store, kek2);
    auto refused = lost->Open(values[0], kWhere);
    CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(std::string(refused.status().message()).find("kek-1") != std::string::npos);
    CHECK_FALSE(phi::IsErased(refused.status()));  // not configured is not erased

    CHECK(lost->RewrapAll().status().code() == absl::StatusCode::kFailedPrecondition);

    auto rotating = VaultOver(*store, kek2, {kek1});
    CHECK(*rotating->Open(values[5], kWhere) == "v5");
    auto fresh = *rotating->Seal("new-patient", kWhere, "n");
    CHECK(store->DataKeyVersions("new-patient")->front().kek_id == "kek-2");
    auto report = rotating->RewrapAll();
    RXFLOW_REQUIRE_OK(report);
    CHECK(report->rewrapped == 300);
    CHECK(rotating->RewrapAll()->rewrapped == 0);  // nothing left
    CHECK(store->DataKeysNotWrappedBy("kek-2", "", 0, 10)->empty());

    auto after = VaultOver(*store, kek2);  // kek-1 retired for good
    for (int i = 0; i < 300; i += 37) {
      CHECK(*after->Open(values[i], kWhere) == "v" + std::to_string(i));
    }
    CHECK(*after->Open(fresh, kWhere) == "n");
  }

  TEST_CASE("crypto-erasure: the key is destroyed, its values are unreadable, and stay so") {
    FakeClock clock;
    auto store = store::NewMemoryStore(clock);
    auto kek = Kek("kek-1");
    auto vault = VaultOver(*store, kek, {}, &clock);
    auto other = VaultOver(*store, kek, {}, &clock);  // another process, key cached
    auto value = *vault->Seal("p", kWhere, "secret");
    CHECK(*other->Open(value, kWhere) == "secret");
    CHECK(*vault->Erase("p") == 1);
    auto erased = vault->Open(value, kWhere);
    CHECK(erased.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(std::string(erased.status().message()).find("erased") != std::string::npos);
    CHECK(phi::IsErased(erased.status()));
    CHECK(vault->Seal("p", kWhere, "again").status().code() ==
          absl::StatusCode::kFailedPrecondition);
    CHECK(vault->RotateDataKey("p").status().code() == absl::StatusCode::kFailedPrecondition);
    // The other process's cached key holds until its cache entry expires (60 s by default).
    CHECK(other->Open(value, kWhere).ok());
    clock.Advance(61'000'000);
    CHECK(other->Open(value, kWhere).status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(*vault->Erase("p") == 0);
  }

  TEST_CASE("key files: created owner-only, reopened as the same key, refused when exposed") {
    auto dir = TempDir("kek");
    const std::string path = (dir / "keys" / "phi.kek").string();
    auto first = phi::OpenKekFile(path);
    RXFLOW_REQUIRE_OK(first);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK((*first)->id().starts_with("file:"));
    auto again = phi::OpenKekFile(path);
    RXFLOW_REQUIRE_OK(again);
    CHECK((*again)->id() == (*first)->id());
    auto wrapped = (*first)->Wrap(std::string(32, 'k'), "aad");
    RXFLOW_REQUIRE_OK(wrapped);
    CHECK(*(*again)->Unwrap(*wrapped, "aad") == std::string(32, 'k'));
    CHECK((*again)->Unwrap(*wrapped, "other").status().code() ==
          absl::StatusCode::kUnauthenticated);

    ::chmod(path.c_str(), 0644);
    CHECK(phi::OpenKekFile(path).status().code() == absl::StatusCode::kPermissionDenied);
    const std::string bad = (dir / "bad.kek").string();
    testing::WriteFile(bad, "RXFLOW PHI KEK v1\nbm90IDMyIGJ5dGVz\n");
    ::chmod(bad.c_str(), 0600);
    auto refused = phi::OpenKekFile(bad);
    CHECK(refused.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(refused.status().message()).find("line 2") != std::string::npos);

    const std::string hybrid_path = (dir / "phi-hybrid.kek").string();
    auto hybrid = phi::OpenHybridKekFile(hybrid_path);
    RXFLOW_REQUIRE_OK(hybrid);
    CHECK((*hybrid)->id().starts_with("hybrid:"));
    auto hybrid_again = phi::OpenHybridKekFile(hybrid_path);
    RXFLOW_REQUIRE_OK(hybrid_again);
    auto sealed = (*hybrid)->Wrap(std::string(32, 'h'), "aad");
    RXFLOW_REQUIRE_OK(sealed);
    CHECK(*(*hybrid_again)->Unwrap(*sealed, "aad") == std::string(32, 'h'));
    CHECK(phi::OpenKekFile(hybrid_path).status().code() == absl::StatusCode::kInvalidArgument);
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("the protected store seals on the way in and opens on the way out") {
    FakeClock clock;
    auto raw = store::NewMemoryStore(clock);
    auto vault = VaultOver(*raw, Kek("kek-1"));
    auto store = phi::NewProtectedStore(*raw, *vault);

    domain::PrescriptionTransformed t;
    t.script_version = "2017071";
    t.message_id = "m1";
    t.newrx_xml = "<NewRx><Patient>\"Quixtwaddle\"\n</Patient></NewRx>";
    t.phi_key = "patient-ref-1";
    store::EventRecord e;
    e.event_id = "e1";
    e.type = std::string(t.kType);
    e.tenant = "t1";
    e.payload = domain::EncodePayload(t);
    const std::string original = e.payload;
    store::AppendRequest r;
    r.stream_id = "rx-1";
    r.events = {e};
    RXFLOW_REQUIRE_OK(store->Append(r));

    auto stored = raw->ReadStream("rx-1");
    REQUIRE(stored->size() == 1);
    CHECK((*stored)[0].payload.find("Quixtwaddle") == std::string::npos);
    CHECK((*stored)[0].payload.find("\"newrx_xml\":\"rxenc1.patient-ref-1.1.") !=
          std::string::npos);
    auto read = store->ReadStream("rx-1");
    RXFLOW_REQUIRE_OK(read);
    CHECK((*read)[0].payload == original);
    auto all = store->ReadAll(0, 10);
    CHECK((*all)[0].payload == original);
    auto decoded = domain::DecodeEvent((*read)[0].type, 2, (*read)[0].payload);
    RXFLOW_REQUIRE_OK(decoded);
    CHECK(std::get<domain::PrescriptionTransformed>(*decoded).newrx_xml == t.newrx_xml);

    // A later signed NewRx in the stream takes the stream's patient key. Inside an inbox
    // effect such an event is refused (and nothing of it written), and reads give the PHI
    // members as stored.
    domain::PrescriptionSigned sg;
    sg.signer = "dr";
    sg.signed_newrx_xml = "<NewRx>Quixtwaddle signed</NewRx>";
    store::EventRecord s = e;
    s.event_id = "e2";
    s.type = std::string(sg.kType);
    s.payload = domain::EncodePayload(sg);
    store::AppendRequest r2;
    r2.stream_id = "rx-1";
    r2.expected_version = 1;
    r2.events = {s};
    Status in_effect = store->Process("consumer", "msg-1", [&](store::EventStore& tx) {
      auto inside = tx.ReadStream("rx-1");
      RXFLOW_REQUIRE_OK(inside);
      CHECK(inside->at(0).payload.find("rxenc1.") != std::string::npos);
      return tx.Append(r2).status();
    });
    CHECK(in_effect.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(raw->ReadStream("rx-1")->size() == 1);
    RXFLOW_REQUIRE_OK(store->Append(r2));
    stored = raw->ReadStream("rx-1");
    REQUIRE(stored->size() == 2);
    CHECK((*stored)[1].payload.find("Quixtwaddle") == std::string::npos);
    CHECK((*stored)[1].payload.find("rxenc1.patient-ref-1.1.") != std::string::npos);
    CHECK(store->ReadStream("rx-1")->at(1).payload == s.payload);

    // A stream without a patient reference gets its own key.
    domain::PrescriptionTransformed anon = t;
    anon.phi_key.clear();
    e.payload = domain::EncodePayload(anon);
    e.event_id = "e3";
    r.stream_id = "rx-2";
    r.events = {e};
    RXFLOW_REQUIRE_OK(store->Append(r));
    CHECK(raw->ReadStream("rx-2")->at(0).payload.find("rxenc1.stream:rx-2.1.") !=
          std::string::npos);

    // Events stored before encryption was turned on read as they are.
    e.event_id = "e4";
    r.stream_id = "rx-legacy";
    r.events = {e};
    RXFLOW_REQUIRE_OK(raw->Append(r));
    CHECK(store->ReadStream("rx-legacy")->at(0).payload == e.payload);

    // Erased: the PHI member reads empty, the rest of the event is intact.
    REQUIRE(*vault->Erase("patient-ref-1") == 1);
    auto after = store->ReadStream("rx-1");
    RXFLOW_REQUIRE_OK(after);
    auto gone = domain::DecodeEvent((*after)[0].type, 2, (*after)[0].payload);
    RXFLOW_REQUIRE_OK(gone);
    CHECK(std::get<domain::PrescriptionTransformed>(*gone).newrx_xml.empty());
    CHECK(std::get<domain::PrescriptionTransformed>(*gone).message_id == "m1");
    CHECK(store->ReadStream("rx-2").ok());  // another patient's prescription is untouched
    // A reader without the KEK fails (it does not read the NewRx as erased).
    auto stranger = VaultOver(*raw, Kek("kek-other"));
    auto stranger_store = phi::NewProtectedStore(*raw, *stranger);
    CHECK(stranger_store->ReadStream("rx-2").status().code() ==
          absl::StatusCode::kFailedPrecondition);
  }

  TEST_CASE("a NewRx whose text has backslashes beside its quotes is sealed whole") {
    // The sealed member ends at its first quote after an even number of backslashes: an
    // escaped quote after escaped backslashes (`\\\"`), escaped backslashes before the
    // closing quote (`\\"`), and a run of them, each sealed with the rest.
    FakeClock clock;
    auto raw = store::NewMemoryStore(clock);
    auto vault = VaultOver(*raw, Kek("kek-1"));
    auto store = phi::NewProtectedStore(*raw, *vault);
    const std::vector<std::string> texts = {
        "<NewRx>a\\\"Quixtwaddle\"</NewRx>",     // a\"Quixtwaddle"
        "<NewRx>\\\\\"Quixtwaddle</NewRx>\\\\",  // \\"Quixtwaddle...\\ at the end
        "\"<NewRx>Quixtwaddle</NewRx>\\",        // a quote first, a backslash last
    };
    for (size_t i = 0; i < texts.size(); ++i) {
      CAPTURE(i);
      domain::PrescriptionTransformed t;
      t.script_version = "2017071";
      t.message_id = "m1";
      t.newrx_xml = texts[i];
      t.pharmacy_ncpdp_id = "1234567";  // the member after newrx_xml: stays as it is
      t.phi_key = "patient-ref-1";
      store::EventRecord e;
      e.event_id = "e" + std::to_string(i);
      e.type = std::string(t.kType);
      e.payload = domain::EncodePayload(t);
      store::AppendRequest r;
      r.stream_id = "rx-" + std::to_string(i);
      r.events = {e};
      RXFLOW_REQUIRE_OK(store->Append(r));
      const std::string stored = raw->ReadStream(r.stream_id)->at(0).payload;
      CHECK(stored.find("Quixtwaddle") == std::string::npos);
      CHECK(stored.find("NewRx>") == std::string::npos);
      CHECK(stored.find("\"message_id\":\"m1\",\"newrx_xml\":\"rxenc1.") != std::string::npos);
      CHECK(stored.find("\",\"pharmacy_ncpdp_id\":\"1234567\",") != std::string::npos);
      auto read = store->ReadStream(r.stream_id);
      RXFLOW_REQUIRE_OK(read);
      CHECK(read->at(0).payload == e.payload);
    }
  }

  TEST_CASE("a new patient's key is stored with the first events it seals, once across writers") {
    TwoVaults w;
    auto& raw = w.raw;
    auto a = phi::NewProtectedStore(*raw, *w.a);
    auto b = phi::NewProtectedStore(*raw, *w.b);
    auto transformed = TransformedFor;
    // A refused append (here a version conflict) leaves no key behind.
    auto conflict = transformed("rx-0", "patient-x");
    conflict.expected_version = 3;
    CHECK(a->Append(conflict).status().code() == absl::StatusCode::kAborted);
    CHECK(raw->DataKeyVersions("patient-x")->empty());
    // Sixteen appends for one new patient through two writers at once: every one lands, under
    // one key, and each reads back through the other writer.
    std::atomic<int> failed{0};
    testing::RunTogether(16, [&](int i) {
      auto r = (i % 2 ? *a : *b).Append(transformed("rx-" + std::to_string(i + 1), "patient-x"));
      if (!r.ok()) ++failed;
    });
    CHECK(failed == 0);
    CHECK(raw->DataKeyVersions("patient-x")->size() == 1);
    for (int i = 1; i <= 16; ++i) {
      auto events = (i % 2 ? *b : *a).ReadStream("rx-" + std::to_string(i));
      RXFLOW_REQUIRE_OK(events);
      REQUIRE(events->size() == 1);
      CHECK((*events)[0].payload.find("<NewRx>rx-" + std::to_string(i) + "</NewRx>") !=
            std::string::npos);
    }
  }

  TEST_CASE("an append that loses its new key to another writer is sealed again from plaintext") {
    TwoVaults w;
    auto& raw = w.raw;
    auto b = phi::NewProtectedStore(*raw, *w.b);
    // Between a's sealing (which made patient-z's key) and its append, b stores patient-z's
    // key first: a's append is refused, and a seals the request again, under b's key.
    struct Racing : store::StoreWrapper {
      Racing(store::Store& target, store::Store& other) : StoreWrapper(target), other(other) {}
      StatusOr<store::AppendResult> Append(store::AppendRequest r) override {
        if (++appends == 1) RXFLOW_REQUIRE_OK(other.Append(TransformedFor("rx-b", "patient-z")));
        return target_.Append(std::move(r));
      }
      store::Store& other;
      int appends = 0;
    } racing(*raw, *b);
    auto a = phi::NewProtectedStore(racing, *w.a);
    RXFLOW_REQUIRE_OK(a->Append(TransformedFor("rx-a", "patient-z")));
    CHECK(racing.appends == 2);  // the first attempt lost the race, the second landed
    CHECK(raw->DataKeyVersions("patient-z")->size() == 1);
    // Sealed once, from the plaintext (not the first attempt's envelope sealed again), and
    // readable through either writer.
    auto stored = raw->ReadStream("rx-a");
    RXFLOW_REQUIRE_OK(stored);
    REQUIRE(stored->size() == 1);
    CHECK((*stored)[0].payload.find("<NewRx>") == std::string::npos);
    for (store::Store* reader : {static_cast<store::Store*>(a.get()), b.get()}) {
      auto events = reader->ReadStream("rx-a");
      RXFLOW_REQUIRE_OK(events);
      REQUIRE(events->size() == 1);
      auto decoded = domain::DecodeEvent((*events)[0].type, 2, (*events)[0].payload);
      RXFLOW_REQUIRE_OK(decoded);
      CHECK(std::get<domain::PrescriptionTransformed>(*decoded).newrx_xml == "<NewRx>rx-a</NewRx>");
    }
  }

  TEST_CASE("the re-encryption job seals what was stored plain, and old key versions anew") {
    FakeClock clock;
    SequentialIds ids{"rx"};
    auto raw = store::NewMemoryStore(clock);
    ServiceOptions o;
    o.patient_key = kPatientKey;
    o.clock = &clock;
    o.ids = &ids;
    std::string fhir = testing::ReadFixture("fhir/medication_request_lisinopril.json");
    for (size_t at; (at = fhir.find("Delacroix")) != std::string::npos;)
      fhir.replace(at, 9, "Quixtwaddle");
    // Written before encryption was turned on: the service straight on the raw store.
    auto plain = PrescriptionService::Create(*raw, o);
    RXFLOW_REQUIRE_OK(plain);
    IssueList issues;
    auto first = (*plain)->Submit(fhir, issues, {}, "first");
    RXFLOW_REQUIRE_OK(first);
    // ... and one as a release before `phi_key` wrote it (schema version 1, no phi_key).
    auto stream = raw->ReadStream(first->id);
    RXFLOW_REQUIRE_OK(stream);
    store::EventRecord legacy = stream->at(1);
    REQUIRE(legacy.type == domain::PrescriptionTransformed::kType);
    auto decoded = domain::DecodeEvent(legacy.type, legacy.schema_version, legacy.payload);
    RXFLOW_REQUIRE_OK(decoded);
    auto old_event = std::get<domain::PrescriptionTransformed>(*decoded);
    const std::string patient_ref = old_event.phi_key;
    REQUIRE(patient_ref.size() == 64);
    old_event.phi_key.clear();
    legacy.event_id = "legacy-transformed";
    legacy.schema_version = 1;
    legacy.payload = domain::EncodePayload(old_event);
    legacy.payload.replace(legacy.payload.find(",\"phi_key\":\"\""), 13, "");
    store::AppendRequest r;
    r.stream_id = "rx-legacy";
    r.events = {legacy};
    RXFLOW_REQUIRE_OK(raw->Append(r));
    auto all_bytes = [&] {
      std::string out;
      auto log = raw->ReadAll(0, 1000);
      RXFLOW_REQUIRE_OK(log);
      for (const auto& e : *log) out += e.payload;
      return out;
    };
    REQUIRE(all_bytes().find("Quixtwaddle") != std::string::npos);

    auto vault = VaultOver(*raw, Kek("kek-1"), {}, &clock);
    auto report = phi::ResealAll(*raw, *vault, kPatientKey);
    REQUIRE_MESSAGE(report.ok(), report.status().message());
    CHECK(report->sealed == 2);
    CHECK(report->resealed == 0);
    CHECK(all_bytes().find("Quixtwaddle") == std::string::npos);
    // Both under the patient's own key (the legacy one by reading its NewRx), so erasure and
    // rotation reach them as they reach new prescriptions.
    CHECK(*phi::DataKeyIdOf(*raw, first->id) == patient_ref);
    CHECK(*phi::DataKeyIdOf(*raw, "rx-legacy") == patient_ref);
    auto st = phi::NewProtectedStore(*raw, *vault);
    CHECK(st->ReadStream("rx-legacy")->at(0).payload.find("Quixtwaddle") != std::string::npos);

    // A rotated data key: the job seals the old values again under the newest version.
    CHECK(*vault->RotateDataKey(patient_ref) == 2);
    report = phi::ResealAll(*raw, *vault, kPatientKey);
    RXFLOW_REQUIRE_OK(report);
    CHECK(report->sealed == 0);
    CHECK(report->resealed == 2);
    // (A NewRx is compressed before it is sealed: its version carries the mark "z".)
    CHECK(all_bytes().find("rxenc1." + patient_ref + ".2z.") != std::string::npos);
    for (const char* old_version : {".1.", ".1z."}) {
      CHECK(all_bytes().find("rxenc1." + patient_ref + old_version) == std::string::npos);
    }
    CHECK(st->ReadStream("rx-legacy")->at(0).payload.find("Quixtwaddle") != std::string::npos);
    report = phi::ResealAll(*raw, *vault, kPatientKey);  // again: nothing to do
    CHECK((report->sealed == 0 && report->resealed == 0));

    // Erased: the job leaves the values as they are.
    RXFLOW_REQUIRE_OK(vault->Erase(patient_ref));
    report = phi::ResealAll(*raw, *vault, kPatientKey);
    RXFLOW_REQUIRE_OK(report);
    CHECK(report->erased == 2);
  }

  TEST_CASE("the message-id index reads the log as stored: it opens no sealed NewRx") {
    FakeClock clock;
    SequentialIds ids{"rx"};
    auto raw = store::NewMemoryStore(clock);
    auto vault = VaultOver(*raw, Kek("kek-1"), {}, &clock);
    auto sealing = phi::NewProtectedStore(*raw, *vault);
    ServiceOptions o;
    o.patient_key = kPatientKey;
    o.clock = &clock;
    o.ids = &ids;
    auto service = PrescriptionService::Create(*sealing, o);
    RXFLOW_REQUIRE_OK(service);
    IssueList issues;
    auto submitted = (*service)->Submit(
        testing::ReadFixture("fhir/medication_request_lisinopril.json"), issues, {}, "k1");
    RXFLOW_REQUIRE_OK(submitted);
    auto stored = raw->ReadStream(submitted->id);
    RXFLOW_REQUIRE_OK(stored);
    REQUIRE(stored->at(1).type == domain::PrescriptionTransformed::kType);
    auto transformed = domain::DecodeEvent(stored->at(1).type, stored->at(1).schema_version,
                                           stored->at(1).payload);
    RXFLOW_REQUIRE_OK(transformed);
    const std::string message_id =
        std::get<domain::PrescriptionTransformed>(*transformed).message_id;
    REQUIRE(!message_id.empty());

    // A service whose vault cannot open these NewRx (another KEK): reading the log through
    // its store fails on the first sealed value ...
    auto stranger = VaultOver(*raw, Kek("kek-other"), {}, &clock);
    auto blind_store = phi::NewProtectedStore(*raw, *stranger);
    auto blind = PrescriptionService::Create(*blind_store, o);
    RXFLOW_REQUIRE_OK(blind);
    CHECK((*blind)->FindByMessageId(message_id).status().code() ==
          absl::StatusCode::kFailedPrecondition);
    // ... while with the log as stored the index is built without opening any.
    o.log_as_stored = raw.get();
    auto indexing = PrescriptionService::Create(*blind_store, o);
    RXFLOW_REQUIRE_OK(indexing);
    auto found = (*indexing)->FindByMessageId(message_id);
    RXFLOW_REQUIRE_OK(found);
    CHECK(*found == submitted->id);
    CHECK(absl::IsNotFound((*indexing)->FindByMessageId("no-such-message").status()));
  }

  TEST_CASE("canary: a patient's name reaches neither the SQLite database nor its WAL") {
    auto run = [](bool protect) {
      auto dir = TempDir(protect ? "canary-on" : "canary-off");
      store::SqliteOptions so;
      so.path = (dir / "rxflow.db").string();
      auto raw = store::OpenSqliteStore(so);
      RXFLOW_REQUIRE_OK(raw);
      std::unique_ptr<phi::Vault> vault;
      std::unique_ptr<store::Store> protected_store;
      store::Store* st = raw->get();
      if (protect) {
        auto kek = phi::OpenKekFile((dir / "phi.kek").string());
        RXFLOW_REQUIRE_OK(kek);
        vault = VaultOver(**raw, std::shared_ptr<phi::KeyEncryptionKey>(std::move(*kek)));
        protected_store = phi::NewProtectedStore(**raw, *vault);
        st = protected_store.get();
      }
      ServiceOptions o;
      o.patient_key = kPatientKey;
      o.route_on_submit = true;
      auto service = PrescriptionService::Create(*st, o);
      RXFLOW_REQUIRE_OK(service);
      std::string fhir = testing::ReadFixture("fhir/medication_request_lisinopril.json");
      for (size_t at; (at = fhir.find("Delacroix")) != std::string::npos;) {
        fhir.replace(at, 9, "Quixtwaddle");
      }
      IssueList issues;
      auto sub = (*service)->Submit(fhir, issues);
      REQUIRE_MESSAGE(sub.ok(), sub.status().message());
      // Readers through the service still see the NewRx.
      auto history = (*service)->History(sub->id);
      RXFLOW_REQUIRE_OK(history);
      bool seen = false;
      for (const auto& ev : *history) seen |= ev.payload.find("Quixtwaddle") != std::string::npos;
      CHECK(seen);
      service->reset();
      protected_store.reset();
      raw->reset();
      std::string bytes = FileBytes(dir / "rxflow.db") + FileBytes(dir / "rxflow.db-wal");
      bool leaked = bytes.find("Quixtwaddle") != std::string::npos;
      std::filesystem::remove_all(dir);
      return leaked;
    };
    CHECK(run(false));  // the canary is found where nothing protects it
    CHECK_FALSE(run(true));
  }

#ifdef RXFLOW_TEST_HAVE_KAFKA
  // The broker side of the canary: the relay publishes the log of a protected store to the
  // Kafka adapter on librdkafka's mock cluster (topics renamed per test), and what a consumer
  // reads back carries the prescription's ids and no trace of the patient.
  TEST_CASE("canary: the messages published to Kafka carry no trace of the patient") {
    struct Renaming : messaging::Producer {
      messaging::Producer& target;
      std::map<std::string, std::string>& names;
      Renaming(messaging::Producer& t, std::map<std::string, std::string>& n)
          : target(t), names(n) {}
      Status Publish(std::span<const messaging::Message> batch) override {
        std::vector<messaging::Message> copy(batch.begin(), batch.end());
        for (auto& m : copy) m.topic = names.at(m.topic);
        return target.Publish(copy);
      }
    };
    testing::KafkaBrokerAdapter a;
    std::map<std::string, std::string> topics;
    for (std::string_view t :
         {messaging::topics::kAuditTrail, messaging::topics::kPrescriptionEvents,
          messaging::topics::kRoutingRequests, messaging::topics::kDeadLetter}) {
      topics[std::string(t)] = a.Name(std::string(t));
    }
    std::vector<std::string> subscribed;
    for (const auto& [from, to] : topics) subscribed.push_back(to);
    auto consumer = a.broker().NewConsumer(a.Name("canary"), subscribed);
    RXFLOW_REQUIRE_OK(consumer);
    auto producer = a.broker().NewProducer();
    RXFLOW_REQUIRE_OK(producer);
    Renaming renaming(**producer, topics);

    FakeClock clock;
    auto raw = store::NewMemoryStore(clock);
    auto vault = VaultOver(*raw, Kek("kek-1"));
    auto st = phi::NewProtectedStore(*raw, *vault);
    ServiceOptions o;
    o.patient_key = kPatientKey;
    o.route_on_submit = true;
    auto service = PrescriptionService::Create(*st, o);
    RXFLOW_REQUIRE_OK(service);
    std::string fhir = testing::ReadFixture("fhir/medication_request_lisinopril.json");
    for (size_t at; (at = fhir.find("Delacroix")) != std::string::npos;)
      fhir.replace(at, 9, "Quixtwaddle");
    IssueList issues;
    auto sub = (*service)->Submit(fhir, issues);
    RXFLOW_REQUIRE_OK(sub);

    size_t expected = 0;
    auto log = raw->ReadAll(0, 1000);
    RXFLOW_REQUIRE_OK(log);
    for (const auto& e : *log) expected += runtime::DeriveMessages(e)->size();
    REQUIRE(expected >= 5);
    runtime::OutboxRelay relay(*raw, renaming);
    for (int i = 0; i < 10 && *relay.RunOnce() > 0; ++i) {
    }
    std::vector<messaging::Message> got;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (got.size() < expected && std::chrono::steady_clock::now() < end) {
      auto batch = (*consumer)->Poll(expected - got.size(), std::chrono::milliseconds(200));
      RXFLOW_REQUIRE_OK(batch);
      for (auto& m : *batch) got.push_back(std::move(m));
    }
    REQUIRE(got.size() == expected);
    for (const auto& m : got) {
      CHECK(m.key == sub->id);
      std::string all = m.key + m.payload;
      for (const auto& [name, value] : m.headers) all += name + value;
      CHECK(all.find("Quixtwaddle") == std::string::npos);
    }
  }
#endif
}
