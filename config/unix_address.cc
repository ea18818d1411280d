// "unix:PATH" addresses ([admin] listen, [limits] redis_address): one check
// for both, so they take and refuse the same paths.
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "config/sections.h"
#include "config/toml_fields.h"

namespace popgate::config_internal {
namespace {

constexpr std::string_view kUnixPrefix = "unix:";

}  // namespace

bool IsUnixAddress(std::string_view address) {
  return address.starts_with(kUnixPrefix);
}

absl::Status CheckUnixAddress(const Fields& f, Line line, std::string_view key,
                              std::string_view address) {
  const std::string_view path = address.substr(kUnixPrefix.size());
  if (path.empty() || path[0] != '/' || path.size() > kMaxUnixPath ||
      path.find('\0') != std::string_view::npos) {
    return f.Error(line, absl::StrCat(Quote(key),
                                      " = \"unix:PATH\" needs an absolute "
                                      "PATH of at most ",
                                      kMaxUnixPath, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace popgate::config_internal
