#pragma once
// The one place keyward's version is written down (CLI `version`, metrics `keyward_build_info`).

namespace keyward {

inline constexpr char kKeywardVersion[] = "0.1.0";

}  // namespace keyward
