// Reading typed fields out of toml++ nodes, with "file:line: reason"
// errors: the layer every section parser (sections.cc) builds on. Internal
// to config/ (toml++ is a private dependency).
#ifndef POPGATE_CONFIG_TOML_FIELDS_H_
#define POPGATE_CONFIG_TOML_FIELDS_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

// Debian's libtomlplusplus3 is the compiled build with exceptions on (only
// the toml::v3::ex ABI is exported), so TOML_EXCEPTIONS must stay at its
// default here or the link fails; parse errors are caught in load.cc.
#include <toml++/toml.h>

namespace popgate::config_internal {

using Line = uint32_t;

// Debian's abseil is built with its own absl::string_view (not an alias of
// std::string_view), so views cross between the two explicitly.
inline absl::string_view A(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view S(absl::string_view s) { return {s.data(), s.size()}; }

inline constexpr absl::Duration kMaxDuration = absl::Hours(24);

Line LineOf(const toml::source_region& region);
Line LineOf(const toml::node& node);
std::string_view TypeName(const toml::node& node);

// Keys and values can hold any string in TOML; escape them before they
// reach a terminal or a log line.
std::string Quote(std::string_view s);

// toml++'s description of a syntax error, minus the character it saw when
// that is a letter or digit: the file may be a key or passwd-file given by
// mistake, and its bytes must not reach the terminal.
std::string ParseErrorReason(std::string_view description);

// Field readers for one file: errors say "name:line: reason"; paths are
// resolved against base_dir.
class Fields {
 public:
  Fields(std::string_view name, std::string_view base_dir)
      : name_(name), base_dir_(base_dir) {}

  const std::string& name() const { return name_; }

  absl::Status Error(Line line, std::string_view reason) const;
  absl::Status WrongType(const toml::node& node, std::string_view key,
                         std::string_view expected) const;
  absl::Status CheckKeys(const toml::table& table,
                         std::initializer_list<std::string_view> allowed,
                         std::string_view where) const;

  absl::StatusOr<const toml::table*> GetTable(const toml::node& node,
                                              std::string_view key) const;
  // `key` must be an array of tables ([[key]] or [ {..}, {..} ]).
  absl::StatusOr<std::vector<const toml::table*>> GetTableArray(
      const toml::node& node, std::string_view key) const;
  absl::StatusOr<std::string> GetString(const toml::node& node,
                                        std::string_view key) const;
  absl::StatusOr<int64_t> GetInt(const toml::node& node, std::string_view key,
                                 int64_t lo, int64_t hi) const;
  absl::StatusOr<bool> GetBool(const toml::node& node,
                               std::string_view key) const;
  // "500ms", "10s", "5m", "1h" (any absl::ParseDuration form, e.g. "1m30s"),
  // or an integer number of seconds; at most kMaxDuration.
  absl::StatusOr<absl::Duration> GetDuration(const toml::node& node,
                                             std::string_view key,
                                             bool allow_zero) const;
  // A non-empty string without NUL, resolved against the config's dir.
  absl::StatusOr<std::string> GetPath(const toml::node& node,
                                      std::string_view key) const;

 private:
  std::string name_;
  std::string base_dir_;
};

}  // namespace popgate::config_internal

#endif  // POPGATE_CONFIG_TOML_FIELDS_H_
