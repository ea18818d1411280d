// ParseConfig (TOML text -> Config: sections, then cross-checks) and
// LoadConfig (the file).
#include "config/load.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "config/config.h"
#include "config/sections.h"
#include "config/toml_fields.h"
#include "config/validate.h"

namespace popgate {
namespace config_internal {

std::string ResolvePath(std::string_view base_dir, const std::string& file) {
  std::filesystem::path p(file);
  if (p.is_relative() && !base_dir.empty()) {
    p = std::filesystem::path(base_dir) / p;
  }
  return p.lexically_normal().string();
}

}  // namespace config_internal

namespace {

using config_internal::A;

// A config file is small; anything this large is a mistake (or /dev/zero).
constexpr off_t kMaxConfigBytes = 16 << 20;

}  // namespace

absl::StatusOr<Config> ParseConfig(std::string_view toml_text,
                                   std::string_view name,
                                   std::string_view base_dir) {
  const config_internal::Fields fields(name, base_dir);
  toml::table root;
  try {
    root = toml::parse(toml_text, name);
  } catch (const toml::parse_error& e) {
    return fields.Error(config_internal::LineOf(e.source()),
                        config_internal::ParseErrorReason(e.description()));
  }
  Config config;
  config.path = std::string(name);
  if (absl::Status s = config_internal::ParseSections(fields, root, config);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = config_internal::CrossCheck(fields, config); !s.ok()) {
    return s;
  }
  return config;
}

absl::StatusOr<Config> LoadConfig(const std::string& path) {
  auto fail = [&path](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot read config file: ", A(why)));
  };
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(std::strerror(errno));
  std::string text;
  struct stat st;
  absl::Status status;
  if (fstat(fd, &st) != 0) {
    status = fail(std::strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    status = fail("not a regular file");
  } else if (st.st_size > kMaxConfigBytes) {
    status = fail("file too large");
  } else {
    text.resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = read(fd, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = fail(std::strerror(errno));
        break;
      }
      if (n == 0) {  // truncated while we read it
        text.resize(done);
        break;
      }
      done += static_cast<size_t>(n);
    }
  }
  close(fd);
  if (!status.ok()) return status;

  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  if (ec) return fail(ec.message());
  return ParseConfig(text, path, absolute.parent_path().string());
}

}  // namespace popgate
