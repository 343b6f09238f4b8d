#include "rxflow/clock.h"

#include <chrono>
#include <cstdio>
#include <ctime>

#include <openssl/rand.h>

#include "rxflow/internal/crypto.h"

namespace rxflow {
namespace {

class SystemClockImpl : public Clock {
 public:
  int64_t NowMicros() override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// UUID version 7 (RFC 9562 §5.7): 48 bits of Unix milliseconds, then 74 random bits. Ids
// made close in time sort close together, so the indexes keyed by them (events, streams,
// inbox, read models) take inserts at their right edge instead of on a random page each:
// a store writes far fewer pages per prescription than with random (v4) ids.
class RandomIdsImpl : public IdGenerator {
 public:
  std::string NewId() override {
    std::string hex = internal::RandomHex128();
    uint64_t ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
    for (int i = 11; i >= 0; --i, ms >>= 4)
      hex[static_cast<size_t>(i)] = "0123456789abcdef"[ms & 0xf];
    hex[12] = '7';                          // version 7
    hex[16] = "89ab"[(hex[16] - '0') & 3];  // RFC 9562 variant (10xx)
    return hex;
  }
};

}  // namespace

Clock& SystemClock() {
  static SystemClockImpl* clock = new SystemClockImpl;
  return *clock;
}

int64_t FakeClock::NowMicros() { return now_.load(); }
void FakeClock::Advance(int64_t micros) { now_.fetch_add(micros); }
void FakeClock::Set(int64_t micros) { now_.store(micros); }

std::string FormatRfc3339(int64_t micros) {
  std::time_t secs = static_cast<std::time_t>(micros / 1'000'000);
  int64_t frac = micros % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(frac));
  return buf;
}

IdGenerator& RandomIds() {
  static RandomIdsImpl* ids = new RandomIdsImpl;
  return *ids;
}

std::string SequentialIds::NewId() {
  char buf[32];
  std::snprintf(buf, sizeof buf, "-%06lld", static_cast<long long>(next_.fetch_add(1)));
  return prefix_ + buf;
}

}  // namespace rxflow
