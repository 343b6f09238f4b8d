// SPDX-License-Identifier: Apache-2.0
// Internal (core and adapters; not installed): Status propagation macros, and
// UnsharedCopy for handing one error to callers on several threads.
//
//   RXFLOW_RETURN_IF_ERROR(expr);
//     `expr` is an absl::Status. When it is not OK, the enclosing function (returning Status
//     or StatusOr<T>) returns it; otherwise execution continues.
//
//   RXFLOW_ASSIGN_OR_RETURN(lhs, expr);
//     `expr` is an absl::StatusOr<T>. When it is not OK, the enclosing function returns its
//     status; otherwise its value is moved into `lhs`: a declaration (`auto x`,
//     `std::vector<Event> events`) or an existing lvalue (`x`, `out.field`, `*ptr`).
//
// Use them where an error is passed up unchanged; where it is transformed (wrapped, mapped to
// another code) or handled (retried, counted, dead-lettered), write the `if` out.
//
// RXFLOW_ASSIGN_OR_RETURN expands to several statements: use it where a statement sequence
// may stand (in braces, not as the unbraced body of an `if`), at most once per source line
// (its temporary is named after the line), and with a type that has no top-level comma
// (alias `std::pair<A, B>` first).
//
// Example:
//   RXFLOW_ASSIGN_OR_RETURN(auto records, store.ReadStream(id));
//   RXFLOW_RETURN_IF_ERROR(store.Apply(kProjection, position, rows));
#ifndef RXFLOW_INTERNAL_STATUS_MACROS_H_
#define RXFLOW_INTERNAL_STATUS_MACROS_H_

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"

#define RXFLOW_RETURN_IF_ERROR(expr)                                   \
  do {                                                                 \
    ::absl::Status rxflow_internal_status_ = (expr);                   \
    if (!rxflow_internal_status_.ok()) return rxflow_internal_status_; \
  } while (false)

#define RXFLOW_ASSIGN_OR_RETURN(lhs, expr)                                                        \
  RXFLOW_INTERNAL_ASSIGN_OR_RETURN_(RXFLOW_INTERNAL_CONCAT_(rxflow_internal_statusor_, __LINE__), \
                                    lhs, expr)

// Implementation details of the macros above. `statusor` and `lhs` name what is declared, so
// they cannot be parenthesised (hence the NOLINT).
#define RXFLOW_INTERNAL_CONCAT_INNER_(a, b) a##b
#define RXFLOW_INTERNAL_CONCAT_(a, b) RXFLOW_INTERNAL_CONCAT_INNER_(a, b)
// NOLINTBEGIN(bugprone-macro-parentheses)
#define RXFLOW_INTERNAL_ASSIGN_OR_RETURN_(statusor, lhs, expr) \
  auto statusor = (expr);                                      \
  if (!statusor.ok()) return ::std::move(statusor).status();   \
  lhs = *::std::move(statusor)
// NOLINTEND(bugprone-macro-parentheses)

namespace rxflow::internal {

// A copy of `status` that shares nothing with it. A copied error absl::Status shares one
// reference-counted payload; when one failure is answered to callers on several threads (a
// group commit's failed batch), each gets its own, so no thread frees what another reads
// without an ordering ThreadSanitizer can see (Debian's abseil is not built for it).
inline absl::Status UnsharedCopy(const absl::Status& status) {
  if (status.ok()) return absl::OkStatus();
  absl::Status copy(status.code(), std::string(status.message()));
  status.ForEachPayload([&copy](absl::string_view url, const absl::Cord& payload) {
    copy.SetPayload(url, absl::Cord(std::string(payload)));
  });
  return copy;
}

}  // namespace rxflow::internal

#endif  // RXFLOW_INTERNAL_STATUS_MACROS_H_
