#include "backend/backend_login.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/wipe.h"
#include "forward/read_line.h"
#include "forward/tls_stream.h"
#include "pop3/line_reader.h"
#include "pop3/line_safety.h"
#include "runtime/stream.h"
#include "tls/tls_engine.h"

namespace popgate {
namespace {

using Outcome = BackendLoginResult::Outcome;

// A backend's CAPA answer longer than this is not one.
constexpr size_t kMaxCapaLines = 64;

bool IsLowerHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

}  // namespace

const std::string& ProcessLoopToken() {
  // A function-local static: one token per process, drawn once, shared by
  // every worker thread (C++ guarantees thread-safe initialisation).
  static const std::string token = [] {
    unsigned char bytes[kLoopTokenLength / 2] = {};
    size_t got = 0;
    while (got < sizeof(bytes)) {
      ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
      if (n > 0) got += static_cast<size_t>(n);
      // EINTR: try again. getrandom does not fail otherwise once the pool
      // is initialised, which it is long before a mail proxy starts.
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string t;
    for (unsigned char b : bytes) {
      t += kHex[b >> 4];
      t += kHex[b & 0xf];
    }
    return t;
  }();
  return token;
}

bool IsLoopToken(std::string_view token) {
  return token.size() == kLoopTokenLength &&
         std::all_of(token.begin(), token.end(), IsLowerHex);
}

std::optional<std::string_view> FindLoopToken(std::string_view line) {
  size_t at = line.find(kLoopTokenTag);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view token =
      line.substr(at + kLoopTokenTag.size(), kLoopTokenLength);
  if (!IsLoopToken(token)) return std::nullopt;
  return token;
}

Task<BackendLoginResult> LoginToBackend(Ring& ring,
                                        const BackendLoginParams& p) {
  BackendLoginResult r;
  const std::string_view user = p.creds.user;
  const std::string_view password = p.creds.password;
  const absl::Duration connect_timeout = p.connect_timeout;
  const absl::Duration auth_timeout = p.auth_timeout;
  const LoopGuard& loop = p.loop;
  // Client bytes go into our USER and PASS lines: a CR or LF would let the
  // client append commands of its own. Refuse before connecting.
  for (absl::Status st :
       {CheckLineArgument("USER", user), CheckLineArgument("PASS", password)}) {
    if (!st.ok()) {
      r.outcome = Outcome::kRefused;
      r.reply = "-ERR [AUTH] Authentication failed.";
      r.error = std::string(st.message());
      co_return r;
    }
  }
  BackendConnectParams cp;
  cp.addr = p.addr;
  cp.timeout = connect_timeout;
  cp.tls = p.tls;
  cp.fd_slot = p.fd_slot;
  BackendConnection conn = co_await ConnectBackend(ring, cp);
  r.fd = std::move(conn.fd);
  if (!conn.ok) {
    r.health_failure = conn.health_failure;
    r.error = std::move(conn.error);
    co_return r;
  }
  std::unique_ptr<Stream> stream = std::move(conn.stream);
  std::unique_ptr<LineReader> reader = std::move(conn.reader);
  std::string_view line;
  LineStatus st;

  // CAPA first, pipelined with USER: its IMPLEMENTATION line tells whether
  // the backend is a popgate, and which (see LoopGuard). A backend without
  // CAPA answers one -ERR line, which is fine.
  std::string command =
      std::string("CAPA\r\nUSER ").append(user).append("\r\n");
  if (co_await stream->WriteAll(command, connect_timeout) < 0) {
    r.error = "USER: write failed";
    co_return r;
  }
  // A copy: `line` points into the reader, which the next read reuses.
  std::string token;
  st = co_await ReadLine(*stream, *reader, line, connect_timeout);
  if (st == LineStatus::kLine && line.starts_with("+OK")) {
    for (size_t n = 0;; ++n) {
      st = co_await ReadLine(*stream, *reader, line, connect_timeout);
      if (st != LineStatus::kLine || line == "." || n == kMaxCapaLines) break;
      if (token.empty()) token = std::string(FindLoopToken(line).value_or(""));
    }
  }
  if (st != LineStatus::kLine || (line != "." && !line.starts_with("-"))) {
    r.error = absl::StrCat("CAPA: ", st == LineStatus::kLine
                                         ? "malformed or overlong answer"
                                         : DescribeLineStatus(st));
    co_return r;
  }
  st = co_await ReadLine(*stream, *reader, line, connect_timeout);
  if (st != LineStatus::kLine) {
    r.error = absl::StrCat("USER: ", DescribeLineStatus(st));
    co_return r;
  }
  if (!line.starts_with("+OK")) {
    r.outcome = Outcome::kRefused;
    r.reply = std::string(line);
    co_return r;
  }
  // Is the backend a popgate, and one we came through? (See LoopGuard.)
  const bool backend_is_popgate = !token.empty();
  if (backend_is_popgate &&
      (token == loop.own ||
       std::find(loop.upstream.begin(), loop.upstream.end(), token) !=
           loop.upstream.end() ||
       loop.upstream.size() + 1 >= kMaxPopgateHops)) {
    r.outcome = Outcome::kLoop;
    r.error = absl::StrCat("the backend is popgate ", token,
                           ", which this session came through");
    co_return r;
  }

  command.clear();
  if (backend_is_popgate) {
    // Pipelined before PASS (popgate announces PIPELINING): no extra round
    // trip. Its answer is read and ignored: an older popgate says -ERR.
    absl::StrAppend(&command, std::string(kLoopCommand), " ",
                    std::string(loop.own));
    for (const std::string& t : loop.upstream)
      absl::StrAppend(&command, " ", t);
    command += "\r\n";
  }
  command.append("PASS ").append(password).append("\r\n");
  r.credentials_sent = true;
  int wrc = co_await stream->WriteAll(command, auth_timeout);
  Wipe(command);
  if (wrc < 0) {
    r.error = "PASS: write failed";
    co_return r;
  }
  if (backend_is_popgate) {
    st = co_await ReadLine(*stream, *reader, line, connect_timeout);
    if (st != LineStatus::kLine) {
      r.error =
          absl::StrCat(std::string(kLoopCommand), ": ", DescribeLineStatus(st));
      co_return r;
    }
  }
  st = co_await ReadLine(*stream, *reader, line, auth_timeout);
  if (st != LineStatus::kLine) {
    r.error = absl::StrCat("PASS: ", DescribeLineStatus(st));
    co_return r;
  }
  r.reply = std::string(line);
  r.outcome = line.starts_with("+OK") ? Outcome::kOk : Outcome::kRefused;
  if (backend_is_popgate && line == kLoopReply) {
    // The popgate behind us found the loop (it leads back to us).
    r.outcome = Outcome::kLoop;
    r.error = absl::StrCat("popgate ", token, " behind us found a loop");
  }
  r.leftover = std::string(reader->Pending());
  r.stream = std::move(stream);
  co_return r;
}

}  // namespace popgate
