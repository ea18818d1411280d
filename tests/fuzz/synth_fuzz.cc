// The synthetic backend's parsers (testbed/synth): a client's bytes through
// the POP3 session state machine (pop3_session), and pop3-synth's command
// line, users-file and size syntax (config). pop3-synth is what the tests
// and benchmarks run popgate against; a crash there is a false alarm in
// every suite.
//
// Input: byte 0 = how many of the next bytes are read sizes, then the
// client's bytes; the same bytes, split at NUL, are also parsed as a
// command line, and as a users file and a size.
//
// Properties: every reply line ends in CRLF; a maildrop is unlocked once
// its session is gone (or the next login would be refused [IN-USE]); a
// parsed size prints and parses back to itself.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "testbed/synth/config.h"
#include "testbed/synth/maildrop.h"
#include "testbed/synth/pop3_session.h"
#include "testbed/synth/wire_cache.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using popgate::synth::Pop3Session;

void CheckCrlf(std::string_view out) {
  for (size_t i = out.find('\n'); i != std::string_view::npos;
       i = out.find('\n', i + 1)) {
    FUZZ_CHECK(i > 0 && out[i - 1] == '\r');
  }
}

void FuzzSession(std::string_view sizes, std::string_view input) {
  popgate::synth::MaildropStore store;
  // Message 3 is the smallest one that can end in CRLF: a 1-octet message
  // is a lone LF (pop3-synth --sizes 1 sends a bare LF; see
  // docs/fuzzing.md).
  store.Add("alice@example.com", "demo", {{1, 300}, {2, 40}, {3, 2}});
  store.Add("bob", "pass with spaces", {{1, 0}});
  popgate::synth::BodyWireCache cache;
  popgate::synth::SessionOptions options;
  {
    Pop3Session s(&store, &cache, &options);
    s.Start();
    CheckCrlf(s.TakeOutput());
    size_t k = 0;
    while (!input.empty() && !s.closing()) {
      size_t n = input.size();
      if (!sizes.empty()) {
        const size_t want =
            static_cast<unsigned char>(sizes[k++ % sizes.size()]);
        if (want != 0) n = std::min(n, want);
      }
      if (s.WantsInput()) {
        s.Feed(input.substr(0, n));
        input.remove_prefix(n);
      }
      s.Process();
      // The server writes everything out before it reads more.
      CheckCrlf(s.TakeOutput());
    }
    while (s.HasPendingCommands()) {
      s.Process();
      CheckCrlf(s.TakeOutput());
    }
  }
  for (std::string_view user : {"alice@example.com", "bob"}) {
    FUZZ_CHECK(store.Find(user) != nullptr && !store.Find(user)->locked());
  }
}

void FuzzConfig(std::string_view input) {
  std::vector<std::string> args;
  std::string_view rest = input;
  while (!rest.empty()) {
    const size_t nul = rest.find('\0');
    args.emplace_back(rest.substr(0, nul));
    rest = nul == std::string_view::npos ? std::string_view()
                                         : rest.substr(nul + 1);
  }
  absl::StatusOr<popgate::synth::SynthConfig> config =
      popgate::synth::ParseCommandLine(args);
  if (config.ok()) {
    FUZZ_CHECK(!config->sizes.empty());
    FUZZ_CHECK(config->messages >= 0);
  }
  static_cast<void>(popgate::synth::ParseUsersText(input));
  for (const std::string& a : args) {
    absl::StatusOr<uint64_t> size = popgate::synth::ParseSize(a);
    if (!size.ok()) continue;
    absl::StatusOr<uint64_t> again =
        popgate::synth::ParseSize(std::to_string(*size));
    FUZZ_CHECK(again.ok() && *again == *size);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t n_sizes = std::min<size_t>(data[0] % 8, size - 1);
  const std::string_view sizes(reinterpret_cast<const char*>(data) + 1,
                               n_sizes);
  const std::string_view input(
      reinterpret_cast<const char*>(data) + 1 + n_sizes, size - 1 - n_sizes);
  FuzzSession(sizes, input);
  FuzzConfig(input);
  return 0;
}
