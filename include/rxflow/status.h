// SPDX-License-Identifier: Apache-2.0
// File: rxflow/status.h
//
// RxFlow reports "could not complete" with `absl::Status` / `absl::StatusOr<T>` at every
// public boundary; no exception crosses the API. Problems *in the data* (a missing
// prescriber NPI, an over-long drug description) are not Status failures: they are
// `rxflow::Issue`s (see rxflow/issue.h), and a call that found data errors returns
// `InvalidArgument` only when it cannot produce a result at all.
//
// Canonical codes used throughout RxFlow:
//
//   situation                                            code
//   malformed input, unsupported resource, data errors   InvalidArgument
//   aggregate / prescription / file missing              NotFound
//   inbox duplicate                                      AlreadyExists
//   optimistic-concurrency conflict                      Aborted (re-read and retry)
//   database or broker down or timed out                 Unavailable (retry with backoff)
//   command illegal in the current state                 FailedPrecondition
//   input over a configured limit                        ResourceExhausted
//   stored event cannot be decoded                       DataLoss
//   broken invariant                                     Internal
//   feature not supported by an adapter or build         Unimplemented
//
// Messages are lowercase, have no trailing period, and name the offending id or path.
#ifndef RXFLOW_STATUS_H_
#define RXFLOW_STATUS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rxflow {

using absl::Status;
using absl::StatusOr;

}  // namespace rxflow

#endif  // RXFLOW_STATUS_H_
