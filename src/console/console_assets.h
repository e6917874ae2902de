#pragma once
// The web console's files (src/console/web/**), embedded in the binary at build time by
// src/console/embed_assets.cmake: the console needs no files next to the binary and no network.

#include <span>
#include <string_view>

namespace keyward {

struct ConsoleAsset {
  std::string_view path;  // relative to web/, e.g. "pages/projects.js"
  std::string_view etag;  // a quoted strong ETag: the content's SHA-256 prefix
  std::string_view body;
};

// Every embedded file, sorted by path. Static storage; never changes at run time.
std::span<const ConsoleAsset> ConsoleAssets();

}  // namespace keyward
