// For the tests of one config section: the section's lines, then the
// smallest listener and tenant a config needs, parsed as "t.toml" in
// /etc/popgate (so the section's first line is line 1).
#ifndef POPGATE_TESTS_CONFIG_SECTION_TEST_UTIL_H_
#define POPGATE_TESTS_CONFIG_SECTION_TEST_UTIL_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "gtest/gtest.h"

namespace popgate::testing {

inline const std::string kMinimalRest =
    "[[listener]]\n"
    "address = \"127.0.0.1:1110\"\n"
    "[[tenant]]\n"
    "name = \"t\"\n"
    "domains = [\"example.com\"]\n"
    "auth = \"backend\"\n"
    "backends = [ { address = \"127.0.0.1:11001\" } ]\n";

inline absl::StatusOr<Config> ParseSection(std::string_view section) {
  return ParseConfig(std::string(section) + kMinimalRest, "t.toml",
                     "/etc/popgate");
}

// Refused with "t.toml:LINE: ..." that contains `what`.
inline ::testing::AssertionResult SectionFailsAt(std::string_view section,
                                                 int line,
                                                 std::string_view what) {
  absl::StatusOr<Config> config = ParseSection(section);
  if (config.ok()) return ::testing::AssertionFailure() << "was accepted";
  const std::string message(config.status().message());
  const std::string prefix = "t.toml:" + std::to_string(line) + ": ";
  if (!message.starts_with(prefix) || message.find(what) == std::string::npos) {
    return ::testing::AssertionFailure() << message;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace popgate::testing

#endif  // POPGATE_TESTS_CONFIG_SECTION_TEST_UTIL_H_
