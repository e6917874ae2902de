#pragma once
// How far an acknowledged write has gone when a cluster answers it (--durability, per cluster).
//   always:   the WAL is synced before the reply (the default: OK means on disk).
//   everysec: the WAL is synced at least once a second; a power loss can take the last second.
//   none:     the OS decides when the WAL reaches the disk; a process crash loses nothing, a
//             power loss can lose whatever the kernel had not written back.

#include <optional>
#include <string>
#include <string_view>

namespace keyward {

enum class Durability { kAlways, kEverySec, kNone };

inline std::string_view DurabilityName(Durability d) {
  switch (d) {
    case Durability::kAlways:
      return "always";
    case Durability::kEverySec:
      return "everysec";
    case Durability::kNone:
      return "none";
  }
  return "always";
}

inline std::optional<Durability> ParseDurability(std::string_view name) {
  if (name == "always") return Durability::kAlways;
  if (name == "everysec") return Durability::kEverySec;
  if (name == "none") return Durability::kNone;
  return std::nullopt;
}

}  // namespace keyward
