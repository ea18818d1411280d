#include "testbed/synth/pop3_session.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "testbed/synth/dot_stuffing.h"
#include "testbed/synth/message.h"
#include "testbed/synth/str_util.h"

namespace popgate::synth {
namespace {

// Stop answering commands while this much is queued; resume when the
// client has read it. Shared body bytes count although they cost no memory:
// the point is to stop producing for a client that is not consuming.
constexpr size_t kOutputHighWater = 256 * 1024;
constexpr size_t kMaxOutputChunks = 64;
// Unprocessed input beyond this stops reads from the socket.
constexpr size_t kInputHighWater = 64 * 1024;

constexpr std::string_view kCapabilities =
    "+OK Capability list follows\r\n"
    "TOP\r\n"
    "UIDL\r\n"
    "USER\r\n"
    "PIPELINING\r\n"
    "RESP-CODES\r\n"
    "AUTH-RESP-CODE\r\n"
    "IMPLEMENTATION pop3-synth\r\n"
    ".\r\n";

std::vector<std::string_view> SplitArgs(std::string_view args) {
  return SplitSkipEmpty(args, ' ');
}

// Strict decimal: digits only, no sign, no spaces; small enough for int.
bool ParseNumber(std::string_view s, long* out) {
  if (s.empty() || s.size() > 9) return false;
  long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

Pop3Session::Pop3Session(MaildropStore* store, BodyWireCache* cache,
                         const SessionOptions* options)
    : store_(store), cache_(cache), options_(options) {}

Pop3Session::~Pop3Session() {
  if (maildrop_ != nullptr) maildrop_->Unlock();
}

void Pop3Session::Start() { Reply(Cat("+OK ", options_->greeting)); }

void Pop3Session::Feed(std::string_view bytes) { input_.append(bytes); }

bool Pop3Session::OutputFull() const {
  return output_.pending_bytes() >= kOutputHighWater ||
         output_.chunk_count() >= kMaxOutputChunks;
}

bool Pop3Session::WantsInput() const {
  return !closing_ && input_.size() - input_pos_ < kInputHighWater;
}

bool Pop3Session::HasPendingCommands() const {
  if (closing_) return false;
  return std::memchr(input_.data() + input_pos_, '\n',
                     input_.size() - input_pos_) != nullptr;
}

void Pop3Session::Process() {
  while (!closing_ && !OutputFull() && input_pos_ < input_.size()) {
    std::string_view rest(input_);
    rest.remove_prefix(input_pos_);
    size_t lf = rest.find('\n');
    bool overlong = false;
    std::string_view line;
    if (discarding_) {
      if (lf == std::string_view::npos) {
        input_pos_ = input_.size();
        break;
      }
      input_pos_ += lf + 1;
      discarding_ = false;
      overlong = true;
    } else if (lf == std::string_view::npos) {
      // No need to buffer an overlong line: drop it now, answer at its LF.
      if (rest.size() > kMaxCommandLine) {
        discarding_ = true;
        input_pos_ = input_.size();
      }
      break;
    } else {
      line = rest.substr(0, lf + 1);
      input_pos_ += lf + 1;
      overlong = line.size() > kMaxCommandLine;
    }
    if (overlong) {
      if (++overlong_lines_ >= kMaxOverlongLines) {
        Reply("-ERR line too long, closing connection");
        closing_ = true;
      } else {
        Reply("-ERR line too long");
      }
      continue;
    }
    line.remove_suffix(1);  // LF; a bare LF is accepted as line end
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    HandleLine(line);
  }
  if (input_pos_ == input_.size()) {
    input_.clear();
    input_pos_ = 0;
  } else if (input_pos_ > 4096 && input_pos_ * 2 > input_.size()) {
    input_.erase(0, input_pos_);
    input_pos_ = 0;
  }
}

void Pop3Session::HandleLine(std::string_view line) {
  size_t space = line.find(' ');
  std::string cmd = AsciiUpper(line.substr(0, space));
  // USER and PASS take the rest of the line verbatim: RFC 1939 allows
  // spaces in the password.
  std::string_view args =
      space == std::string_view::npos ? "" : line.substr(space + 1);
  if (options_->verbose) {
    std::fprintf(stderr, "pop3-synth: C: %.*s%s\n",
                 static_cast<int>(cmd == "PASS" ? cmd.size() : line.size()),
                 line.data(), cmd == "PASS" ? " ****" : "");
  }
  if (cmd.empty()) {
    Reply("-ERR empty command");
  } else if (cmd == "CAPA") {
    output_.Append(kCapabilities);
  } else if (cmd == "QUIT") {
    Quit();
  } else if (state_ == State::kAuthorization) {
    HandleAuthorization(cmd, args);
  } else {
    HandleTransaction(cmd, args);
  }
}

void Pop3Session::HandleAuthorization(std::string_view cmd,
                                      std::string_view args) {
  if (cmd == "USER") {
    if (args.empty()) {
      Reply("-ERR USER needs a name");
      return;
    }
    // Always +OK: answering -ERR for unknown users would reveal which
    // users exist.
    pending_user_ = std::string(args);
    Reply("+OK send PASS");
  } else if (cmd == "PASS") {
    Pass(args);
  } else if (cmd == "APOP" || cmd == "AUTH" || cmd == "STLS") {
    Reply(Cat("-ERR ", cmd, " not supported"));
  } else if (cmd == "STAT" || cmd == "LIST" || cmd == "UIDL" || cmd == "TOP" ||
             cmd == "RETR" || cmd == "DELE" || cmd == "RSET" || cmd == "NOOP") {
    Reply("-ERR command not valid before login");
  } else {
    Reply("-ERR unknown command");
  }
}

void Pop3Session::HandleTransaction(std::string_view cmd,
                                    std::string_view args) {
  if (cmd == "STAT") {
    if (!args.empty()) {
      Reply("-ERR STAT takes no arguments");
      return;
    }
    Stat();
  } else if (cmd == "LIST") {
    List(args, /*uidl=*/false);
  } else if (cmd == "UIDL") {
    List(args, /*uidl=*/true);
  } else if (cmd == "TOP") {
    Top(args);
  } else if (cmd == "RETR") {
    Retr(args);
  } else if (cmd == "DELE") {
    Dele(args);
  } else if (cmd == "RSET") {
    Rset();
  } else if (cmd == "NOOP") {
    Reply("+OK");
  } else if (cmd == "USER" || cmd == "PASS" || cmd == "APOP" || cmd == "AUTH" ||
             cmd == "STLS") {
    Reply("-ERR already logged in");
  } else {
    Reply("-ERR unknown command");
  }
}

void Pop3Session::Pass(std::string_view password) {
  if (pending_user_.empty()) {
    Reply("-ERR send USER first");
    return;
  }
  std::string user = std::exchange(pending_user_, std::string());
  Maildrop* drop = store_->Find(user);
  // Unknown user and wrong password get the same answer on purpose.
  if (drop == nullptr || !drop->CheckPassword(password)) {
    Reply("-ERR [AUTH] Authentication failed.");
    return;
  }
  if (!drop->TryLock()) {
    Reply("-ERR [IN-USE] Mailbox locked.");
    return;
  }
  maildrop_ = drop;
  deleted_.assign(drop->messages().size(), false);
  state_ = State::kTransaction;
  uint64_t octets = 0;
  for (const StoredMessage& m : drop->messages()) octets += m.size;
  Reply(Cat("+OK ", user, " has ", drop->messages().size(), " messages (",
            octets, " octets)"));
}

void Pop3Session::Quit() {
  if (state_ == State::kTransaction) {
    // UPDATE state (RFC 1939 6): only a QUIT in TRANSACTION deletes.
    maildrop_->Remove(deleted_);
    size_t left = maildrop_->messages().size();
    maildrop_->Unlock();
    maildrop_ = nullptr;
    Reply(Cat("+OK pop3-synth signing off (", left, " messages left)"));
  } else {
    Reply("+OK pop3-synth signing off");
  }
  state_ = State::kClosed;
  closing_ = true;
}

void Pop3Session::Stat() {
  size_t count = 0;
  uint64_t octets = 0;
  const auto& messages = maildrop_->messages();
  for (size_t i = 0; i < messages.size(); ++i) {
    if (deleted_[i]) continue;
    ++count;
    octets += messages[i].size;
  }
  Reply(Cat("+OK ", count, " ", octets));
}

void Pop3Session::List(std::string_view args, bool uidl) {
  const auto& messages = maildrop_->messages();
  auto entry = [&](size_t i) {
    const StoredMessage& m = messages[i];
    return uidl
               ? Cat(i + 1, " ", SynthUidl(maildrop_->user(), m.number, m.size))
               : Cat(i + 1, " ", m.size);
  };
  std::vector<std::string_view> parts = SplitArgs(args);
  if (parts.size() > 1) {
    Reply("-ERR too many arguments");
    return;
  }
  if (parts.size() == 1) {
    int index = MessageIndex(parts[0]);
    if (index < 0) return;
    Reply(Cat("+OK ", entry(index)));
    return;
  }
  std::string out;
  if (uidl) {
    out = "+OK unique-id listing follows\r\n";
  } else {
    size_t count = 0;
    uint64_t octets = 0;
    for (size_t i = 0; i < messages.size(); ++i) {
      if (deleted_[i]) continue;
      ++count;
      octets += messages[i].size;
    }
    out = Cat("+OK ", count, " messages (", octets, " octets)\r\n");
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    if (deleted_[i]) continue;
    CatTo(&out, entry(i), "\r\n");
  }
  out += ".\r\n";
  output_.Append(out);
}

void Pop3Session::Top(std::string_view args) {
  std::vector<std::string_view> parts = SplitArgs(args);
  if (parts.size() != 2) {
    Reply("-ERR usage: TOP msg lines");
    return;
  }
  long lines = 0;
  if (!ParseNumber(parts[1], &lines)) {
    Reply("-ERR invalid line count");
    return;
  }
  int index = MessageIndex(parts[0]);
  if (index < 0) return;
  Reply("+OK top of message follows");
  QueueMessage(index, lines);
}

void Pop3Session::Retr(std::string_view args) {
  std::vector<std::string_view> parts = SplitArgs(args);
  if (parts.size() != 1) {
    Reply("-ERR usage: RETR msg");
    return;
  }
  int index = MessageIndex(parts[0]);
  if (index < 0) return;
  Reply(Cat("+OK ", maildrop_->messages()[index].size, " octets"));
  QueueMessage(index, -1);
}

void Pop3Session::Dele(std::string_view args) {
  std::vector<std::string_view> parts = SplitArgs(args);
  if (parts.size() != 1) {
    Reply("-ERR usage: DELE msg");
    return;
  }
  int index = MessageIndex(parts[0]);
  if (index < 0) return;
  deleted_[index] = true;
  Reply(Cat("+OK message ", index + 1, " deleted"));
}

void Pop3Session::Rset() {
  deleted_.assign(deleted_.size(), false);
  uint64_t octets = 0;
  for (const StoredMessage& m : maildrop_->messages()) octets += m.size;
  Reply(Cat("+OK maildrop has ", deleted_.size(), " messages (", octets,
            " octets)"));
}

int Pop3Session::MessageIndex(std::string_view arg) {
  long n = 0;
  if (!ParseNumber(arg, &n)) {
    Reply("-ERR invalid message number");
    return -1;
  }
  if (n < 1 || static_cast<size_t>(n) > maildrop_->messages().size()) {
    Reply("-ERR no such message");
    return -1;
  }
  if (deleted_[n - 1]) {
    Reply(Cat("-ERR message ", n, " already deleted"));
    return -1;
  }
  return static_cast<int>(n - 1);
}

void Pop3Session::QueueMessage(size_t index, long body_lines) {
  const StoredMessage& m = maildrop_->messages()[index];
  MessageLayout layout = SynthLayout(maildrop_->user(), m.number, m.size);
  output_.Append(DotStuff(layout.header_section));
  std::shared_ptr<const std::string> body = cache_->Get(layout.body_size);
  size_t length = body->size();
  if (body_lines >= 0) {
    // Stuffing is line-local, so the first k lines of the stuffed body are
    // the stuffed first k lines of the body.
    size_t pos = 0;
    for (long i = 0; i < body_lines && pos < body->size(); ++i) {
      const void* lf =
          std::memchr(body->data() + pos, '\n', body->size() - pos);
      pos = lf ? static_cast<const char*>(lf) - body->data() + 1 : body->size();
    }
    length = pos;
  }
  output_.AppendShared(std::move(body), 0, length);
  output_.Append(".\r\n");
}

void Pop3Session::Reply(std::string_view line) {
  output_.Append(line);
  output_.Append("\r\n");
}

}  // namespace popgate::synth
