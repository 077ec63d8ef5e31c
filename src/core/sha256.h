// SHA-256 (FIPS 180-4), for content-addressed cache keys.
#pragma once

#include <string>

namespace rlaif {

std::string sha256_hex(const std::string& data);

}  // namespace rlaif
