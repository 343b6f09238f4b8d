// SPDX-License-Identifier: Apache-2.0
// File: rxflow/clock.h
//
// Time and identifiers are injected (leveldb's Env idea): the domain never reads the wall
// clock or a random source itself, so tests can replay any history exactly.
#ifndef RXFLOW_CLOCK_H_
#define RXFLOW_CLOCK_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "rxflow/status.h"

namespace rxflow {

// A source of the current time. Implementations are safe for concurrent use.
class Clock {
 public:
  virtual ~Clock() = default;
  // Microseconds since the Unix epoch, UTC.
  virtual int64_t NowMicros() = 0;
};

// The system clock. Never null; lives for the program.
Clock& SystemClock();

// A clock that moves only when told. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_micros = 1'764'151'200'000'000)  // 2025-11-26T10:00:00Z
      : now_(start_micros) {}
  int64_t NowMicros() override;
  void Advance(int64_t micros);
  void Set(int64_t micros);

 private:
  std::atomic<int64_t> now_;
};

// RFC 3339 UTC with microseconds: "2026-11-26T10:00:00.000000Z".
std::string FormatRfc3339(int64_t micros);

// The Unix microseconds of an RFC 3339 timestamp (section 5.6, "date-time"): what
// FormatRfc3339 writes, and also "2026-11-30T12:00:00Z" (no fraction),
// "2026-11-30T07:00:00-05:00" (an offset), a fraction of 1 to 9 digits (truncated to
// microseconds) and a lowercase 't' or 'z'. InvalidArgument quoting the text otherwise: a
// date that does not exist ("2026-02-30") and a leap second ("...T23:59:60Z") included.
StatusOr<int64_t> ParseRfc3339(std::string_view text);

// A source of unique ids. Implementations are safe for concurrent use.
class IdGenerator {
 public:
  virtual ~IdGenerator() = default;
  // A new id: 32 lowercase hex digits (by default a UUID version 7 without dashes: Unix
  // milliseconds, then random bits, so ids sort by creation time to the millisecond).
  virtual std::string NewId() = 0;
};

// Time-ordered ids (UUID v7, RFC 9562) with 74 random bits from OpenSSL's CSPRNG. Never
// null; lives for the program.
IdGenerator& RandomIds();

// Ids "<prefix>-000001", "<prefix>-000002", ... for tests. Thread-safe.
class SequentialIds : public IdGenerator {
 public:
  explicit SequentialIds(std::string prefix = "id") : prefix_(std::move(prefix)) {}
  std::string NewId() override;

 private:
  std::string prefix_;
  std::atomic<int64_t> next_{1};
};

}  // namespace rxflow

#endif  // RXFLOW_CLOCK_H_
