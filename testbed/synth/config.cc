#include "testbed/synth/config.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iterator>
#include <sstream>

#include "testbed/synth/str_util.h"

namespace popgate::synth {
namespace {

absl::StatusOr<Credential> ParseCredential(std::string_view text) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError("expected USER:PASSWORD");
  }
  Credential c;
  c.user = std::string(text.substr(0, colon));
  std::string_view password = text.substr(colon + 1);
  if (password.starts_with("{PLAIN}")) {
    password.remove_prefix(7);
    password = password.substr(0, password.find(':'));
  } else if (password.starts_with("{")) {
    return absl::InvalidArgumentError(
        "only plain-text or {PLAIN} passwords can be served");
  }
  c.password = std::string(password);
  if (c.user.find_first_of("\r\n") != std::string::npos ||
      c.password.find_first_of("\r\n") != std::string::npos) {
    return absl::InvalidArgumentError("CR or LF in user or password");
  }
  return c;
}

absl::StatusOr<int> ParseInt(std::string_view flag, std::string_view text,
                             int min) {
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min) {
    return absl::InvalidArgumentError(
        Cat(flag, ": expected an integer >= ", min, ", got '", text, "'"));
  }
  return v;
}

}  // namespace

absl::StatusOr<uint64_t> ParseSize(std::string_view text) {
  std::string_view digits = text;
  uint64_t multiplier = 1;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 'k':
      case 'K':
        multiplier = 1ULL << 10;
        break;
      case 'm':
      case 'M':
        multiplier = 1ULL << 20;
        break;
      case 'g':
      case 'G':
        multiplier = 1ULL << 30;
        break;
      default:
        break;
    }
    if (multiplier != 1) digits.remove_suffix(1);
  }
  uint64_t v = 0;
  auto [end, ec] =
      std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (digits.empty() || ec != std::errc() ||
      end != digits.data() + digits.size() || v > (1ULL << 40) / multiplier) {
    return absl::InvalidArgumentError(
        Cat("bad size '", text, "' (e.g. 2000, 64k, 100m)"));
  }
  return v * multiplier;
}

absl::StatusOr<std::vector<Credential>> ParseUsersText(std::string_view text) {
  std::vector<Credential> out;
  int line_no = 0;
  while (!text.empty()) {
    size_t lf = text.find('\n');
    std::string_view line = text.substr(0, lf);
    text.remove_prefix(lf == std::string_view::npos ? text.size() : lf + 1);
    ++line_no;
    std::string_view trimmed = StripWhitespace(line);
    if (trimmed.empty() || trimmed.front() == '#') continue;
    absl::StatusOr<Credential> c = ParseCredential(trimmed);
    if (!c.ok()) {
      return absl::InvalidArgumentError(
          Cat("line ", line_no, ": ", c.status().message()));
    }
    out.push_back(*std::move(c));
  }
  return out;
}

absl::StatusOr<SynthConfig> ParseCommandLine(
    const std::vector<std::string>& args) {
  SynthConfig config;
  bool sizes_given = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::string inline_value;
    bool has_inline = false;
    if (size_t eq = flag.find('=');
        flag.starts_with("--") && eq != std::string::npos) {
      inline_value = flag.substr(eq + 1);
      flag.resize(eq);
      has_inline = true;
    }
    // Flags without a value, and --dump's two positional arguments.
    if (flag == "--help" || flag == "-h") {
      config.help = true;
      continue;
    }
    if (flag == "--proxy-protocol") {
      config.proxy_protocol = true;
      continue;
    }
    if (flag == "--verbose" || flag == "-v") {
      config.verbose = true;
      continue;
    }
    if (flag == "--dump" || flag == "--dump-wire") {
      if (has_inline || i + 2 >= args.size()) {
        return absl::InvalidArgumentError(
            Cat(flag, " takes two arguments: USER N"));
      }
      config.dump =
          flag == "--dump" ? SynthConfig::Dump::kRaw : SynthConfig::Dump::kWire;
      config.dump_user = args[++i];
      absl::StatusOr<int> n = ParseInt(flag, args[++i], 1);
      if (!n.ok()) return n.status();
      config.dump_number = *n;
      continue;
    }
    // Every other flag has one value: "--flag=value" or "--flag value".
    static constexpr std::string_view kValueFlags[] = {"--listen",
                                                       "--user",
                                                       "--users-file",
                                                       "--generated-users",
                                                       "--generated-domain",
                                                       "--generated-password",
                                                       "--messages",
                                                       "--size",
                                                       "--sizes",
                                                       "--greeting",
                                                       "--idle-timeout"};
    if (std::find(std::begin(kValueFlags), std::end(kValueFlags), flag) ==
        std::end(kValueFlags)) {
      return absl::InvalidArgumentError(
          Cat("unknown argument '", args[i], "' (see --help)"));
    }
    if (!has_inline && i + 1 >= args.size()) {
      return absl::InvalidArgumentError(Cat(flag, " needs a value"));
    }
    const std::string v = has_inline ? inline_value : args[++i];

    if (flag == "--listen") {
      config.listen.push_back(v);
    } else if (flag == "--user") {
      absl::StatusOr<Credential> c = ParseCredential(v);
      if (!c.ok()) {
        return absl::InvalidArgumentError(
            Cat("--user: ", c.status().message()));
      }
      config.users.push_back(*std::move(c));
    } else if (flag == "--users-file") {
      config.users_files.push_back(v);
    } else if (flag == "--generated-users") {
      absl::StatusOr<int> n = ParseInt(flag, v, 0);
      if (!n.ok()) return n.status();
      config.generated_users = *n;
    } else if (flag == "--generated-domain") {
      config.generated_domain = v;
    } else if (flag == "--generated-password") {
      config.generated_password = v;
    } else if (flag == "--messages") {
      absl::StatusOr<int> n = ParseInt(flag, v, 0);
      if (!n.ok()) return n.status();
      config.messages = *n;
    } else if (flag == "--size" || flag == "--sizes") {
      if (sizes_given) {
        return absl::InvalidArgumentError("give --size or --sizes once");
      }
      sizes_given = true;
      config.sizes.clear();
      for (std::string_view s : SplitSkipEmpty(v, ',')) {
        absl::StatusOr<uint64_t> size = ParseSize(StripWhitespace(s));
        if (!size.ok()) {
          return absl::InvalidArgumentError(
              Cat(flag, ": ", size.status().message()));
        }
        config.sizes.push_back(*size);
      }
      if (config.sizes.empty()) {
        return absl::InvalidArgumentError(Cat(flag, " needs a size"));
      }
      if (flag == "--size" && config.sizes.size() != 1) {
        return absl::InvalidArgumentError("--size takes one size; use --sizes");
      }
    } else if (flag == "--greeting") {
      if (v.find_first_of("\r\n") != std::string::npos) {
        return absl::InvalidArgumentError("--greeting: no CR/LF allowed");
      }
      config.greeting = v;
    } else {  // --idle-timeout
      absl::StatusOr<int> n = ParseInt(flag, v, 1);
      if (!n.ok()) return n.status();
      config.idle_timeout_seconds = *n;
    }
  }
  if (config.listen.empty()) config.listen.emplace_back(kDefaultListen);
  return config;
}

absl::Status BuildMaildrops(const SynthConfig& config, MaildropStore* store) {
  std::vector<StoredMessage> messages;
  for (int n = 1; n <= config.messages; ++n) {
    messages.push_back({n, config.SizeOf(n)});
  }
  for (const Credential& c : config.users) {
    if (!store->Add(c.user, c.password, messages)) {
      return absl::InvalidArgumentError(Cat("user '", c.user, "' given twice"));
    }
  }
  for (const std::string& path : config.users_files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return absl::NotFoundError(Cat("cannot read ", path));
    }
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<std::vector<Credential>> creds = ParseUsersText(text.str());
    if (!creds.ok()) {
      return absl::InvalidArgumentError(
          Cat(path, ": ", creds.status().message()));
    }
    for (const Credential& c : *creds) {
      if (!store->Add(c.user, c.password, messages)) {
        return absl::InvalidArgumentError(
            Cat(path, ": user '", c.user, "' given twice"));
      }
    }
  }
  // Generated users never override explicit ones, so a benchmark can give a
  // few users special passwords.
  for (int i = 0; i < config.generated_users; ++i) {
    store->Add(Cat("user", i, "@", config.generated_domain),
               config.generated_password, messages);
  }
  return absl::OkStatus();
}

std::string Usage() {
  return R"(usage: pop3-synth [flags]
A single-threaded synthetic POP3 server (RFC 1939 + RFC 2449) for tests and
benchmarks. Message content is a deterministic function of (user, n, size).

  --listen HOST:PORT        listen address, repeatable; [v6]:PORT for IPv6,
                            port 0 picks a free port (default 127.0.0.1:1110).
                            Prints "pop3-synth listening on ADDR:PORT" each.
  --user NAME:PASS          add a user, repeatable
  --users-file FILE         "user:password" lines, '#' comments; repeatable
  --generated-users N       add user0@D .. user{N-1}@D
  --generated-domain D      (default example.com)
  --generated-password P    (default password)
  --messages N              messages per maildrop (default 5)
  --size BYTES              message size (default 2000); suffixes k, m, g
  --sizes A,B,C             message n gets sizes[(n-1) % count]
  --greeting TEXT           greeting text after "+OK " (default
                            "pop3-synth ready.")
  --idle-timeout SECONDS    close idle connections (default 600)
  --proxy-protocol          every connection starts with a PROXY protocol
                            header (v2, LOCAL too, or v1), skipped before
                            the greeting; a malformed one or one over 4096
                            bytes closes the connection
  --dump USER N             print message N of USER (raw) and exit
  --dump-wire USER N        print it dot-stuffed with ".\r\n" and exit
  --verbose                 log connections and commands to stderr (never
                            passwords)
)";
}

}  // namespace popgate::synth
