// Headers parsed once per build instead of once per unity batch (CMake's precompiled header).
// Parsing RocksDB, Abseil, nlohmann::json, cpp-httplib and GoogleTest took about half of every
// batch's compile time on CI's two cores. Listing a header here never replaces including it
// where it is used: KEYWARD_PCH=OFF builds without this file.
#ifndef KEYWARD_PRECOMPILED_H_
#define KEYWARD_PRECOMPILED_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

// GoogleTest's CMake target defines GTEST_HAS_PTHREAD=1 on the command line; gtest-port.h
// defines it differently when it is not set, which clang reports as a redefinition in every
// test that uses this header. The same definition here keeps the two identical.
#ifndef GTEST_HAS_PTHREAD
#define GTEST_HAS_PTHREAD 1
#endif
#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "rocksdb/cache.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/env_encryption.h"
#include "rocksdb/listener.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/object_registry.h"
#include "rocksdb/write_buffer_manager.h"

#endif  // KEYWARD_PRECOMPILED_H_
