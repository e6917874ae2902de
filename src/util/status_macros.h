#pragma once
// Keeps call sites flat when propagating absl::Status / absl::StatusOr (Abseil Tip #181 style).

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define KW_CONCAT_INNER(a, b) a##b
#define KW_CONCAT(a, b) KW_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                \
  do {                                       \
    ::absl::Status kw_status_ = (expr);      \
    if (!kw_status_.ok()) return kw_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(KW_CONCAT(kw_statusor_, __LINE__), lhs, expr)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
