// pop3-synth's command line, parsed into a plain struct (so that parsing is
// unit-testable), and the maildrops it describes.
#ifndef POPGATE_TESTBED_SYNTH_CONFIG_H_
#define POPGATE_TESTBED_SYNTH_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "testbed/synth/maildrop.h"

namespace popgate::synth {

struct Credential {
  std::string user;
  std::string password;
};

struct SynthConfig {
  std::vector<std::string> listen;  // HOST:PORT or [V6]:PORT
  std::vector<Credential> users;    // --user, in order
  std::vector<std::string> users_files;
  int generated_users = 0;
  std::string generated_domain = "example.com";
  std::string generated_password = "password";
  int messages = 5;
  std::vector<uint64_t> sizes = {2000};  // message n gets sizes[(n-1) % len]
  std::string greeting = "pop3-synth ready.";
  int idle_timeout_seconds = 600;
  bool verbose = false;
  bool proxy_protocol = false;  // --proxy-protocol
  bool help = false;
  enum class Dump { kNone, kRaw, kWire } dump = Dump::kNone;
  std::string dump_user;
  int dump_number = 0;

  uint64_t SizeOf(int n) const { return sizes[(n - 1) % sizes.size()]; }
};

inline constexpr std::string_view kDefaultListen = "127.0.0.1:1110";

// Parses argv[1..]. Accepts "--flag value" and "--flag=value".
absl::StatusOr<SynthConfig> ParseCommandLine(
    const std::vector<std::string>& args);
std::string Usage();

// "2000", "64k", "100m", "1g" (k/m/g are powers of 1024, either case).
absl::StatusOr<uint64_t> ParseSize(std::string_view text);

// "user:password" lines; blank lines and lines starting with '#' are
// skipped. A Dovecot-style "{PLAIN}" prefix on the password is accepted
// (then the password ends at the next ':'), so the demo's passwd-files for
// popgate can be reused.
absl::StatusOr<std::vector<Credential>> ParseUsersText(std::string_view text);

// Fills `store` from --user, --users-file and --generated-users. Every user
// gets config.messages messages sized by config.sizes.
absl::Status BuildMaildrops(const SynthConfig& config, MaildropStore* store);

}  // namespace popgate::synth

#endif  // POPGATE_TESTBED_SYNTH_CONFIG_H_
