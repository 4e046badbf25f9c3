// mama/version.hpp — the library's version, for feature checks and diagnostics.
#pragma once

#define MAMA_VERSION_MAJOR 0
#define MAMA_VERSION_MINOR 1
#define MAMA_VERSION_PATCH 0
#define MAMA_VERSION_STRING "0.1.0"

namespace mama {
/// The library version as "MAJOR.MINOR.PATCH".
inline constexpr const char* version = MAMA_VERSION_STRING;
}  // namespace mama
