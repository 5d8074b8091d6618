// Status propagation helpers (this Abseil has no public equivalents).
#ifndef WEIGHTD_CORE_UTIL_STATUS_MACROS_H_
#define WEIGHTD_CORE_UTIL_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define WEIGHTD_CONCAT_INNER_(a, b) a##b
#define WEIGHTD_CONCAT_(a, b) WEIGHTD_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define WEIGHTD_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::absl::Status weightd_status_ = (expr);           \
    if (!weightd_status_.ok()) return weightd_status_; \
  } while (0)

// `lhs` = value of `rexpr` (an absl::StatusOr<T>), or returns its status.
#define WEIGHTD_ASSIGN_OR_RETURN(lhs, rexpr) \
  WEIGHTD_ASSIGN_OR_RETURN_IMPL_(WEIGHTD_CONCAT_(weightd_statusor_, __LINE__), lhs, rexpr)

#define WEIGHTD_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                   \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = std::move(statusor).value()

#endif  // WEIGHTD_CORE_UTIL_STATUS_MACROS_H_
