// pop3-synth: a synthetic POP3 backend for popgate's demo, integration
// tests and benchmark. See config.cc (Usage) for the flags.
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <string>
#include <vector>

#include "testbed/synth/config.h"
#include "testbed/synth/dot_stuffing.h"
#include "testbed/synth/maildrop.h"
#include "testbed/synth/message.h"
#include "testbed/synth/pop3_session.h"
#include "testbed/synth/server.h"
#include "testbed/synth/str_util.h"
#include "testbed/synth/wire_cache.h"

namespace popgate::synth {
namespace {

bool WriteAll(std::string_view data) {
  return std::fwrite(data.data(), 1, data.size(), stdout) == data.size() &&
         std::fflush(stdout) == 0;
}

int Dump(const SynthConfig& config) {
  if (config.dump_number > config.messages) {
    std::fprintf(stderr,
                 "pop3-synth: message %d does not exist (--messages %d)\n",
                 config.dump_number, config.messages);
    return 1;
  }
  const uint64_t size = config.SizeOf(config.dump_number);
  std::string message =
      SynthMessage(config.dump_user, config.dump_number, size);
  if (config.dump == SynthConfig::Dump::kWire) {
    message = DotStuff(message);
    message += ".\r\n";
  }
  return WriteAll(message) ? 0 : 1;
}

// Thousands of benchmark connections need more than the usual soft limit
// of 1024 descriptors; the hard limit is ours to take.
void RaiseFileLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
      limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<SynthConfig> config = ParseCommandLine(args);
  if (!config.ok()) {
    std::fprintf(stderr, "pop3-synth: %s\n%s",
                 std::string(config.status().message()).c_str(),
                 Usage().c_str());
    return 2;
  }
  if (config->help) {
    std::fputs(Usage().c_str(), stdout);
    return 0;
  }
  if (config->dump != SynthConfig::Dump::kNone) return Dump(*config);

  // A vanished stdout reader must not kill the server; sockets use
  // MSG_NOSIGNAL.
  signal(SIGPIPE, SIG_IGN);
  RaiseFileLimit();

  MaildropStore store;
  if (absl::Status s = BuildMaildrops(*config, &store); !s.ok()) {
    std::fprintf(stderr, "pop3-synth: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (store.size() == 0) {
    std::fprintf(stderr,
                 "pop3-synth: warning: no users (--user, --users-file, "
                 "--generated-users); every login will fail\n");
  }
  BodyWireCache cache;
  SessionOptions session_options;
  session_options.greeting = config->greeting;
  session_options.verbose = config->verbose;
  ServerOptions server_options;
  server_options.listen = config->listen;
  server_options.idle_timeout_seconds = config->idle_timeout_seconds;
  server_options.verbose = config->verbose;
  server_options.proxy_protocol = config->proxy_protocol;
  Server server(&store, &cache, &session_options, server_options);
  if (absl::Status s = server.Listen(); !s.ok()) {
    std::fprintf(stderr, "pop3-synth: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::string banner;
  for (const std::string& address : server.bound_addresses()) {
    CatTo(&banner, "pop3-synth listening on ", address, "\n");
  }
  WriteAll(banner);
  if (config->verbose) {
    std::fprintf(stderr, "pop3-synth: %zu users, %d messages each\n",
                 store.size(), config->messages);
  }
  if (absl::Status s = server.Run(); !s.ok()) {
    std::fprintf(stderr, "pop3-synth: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace popgate::synth

int main(int argc, char** argv) { return popgate::synth::Main(argc, argv); }
