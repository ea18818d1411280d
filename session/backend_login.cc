#include "session/backend_login.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/wipe.h"
#include "forward/tls_stream.h"
#include "pop3/line_reader.h"
#include "pop3/line_safety.h"
#include "runtime/stream.h"
#include "session/read_line.h"
#include "tls/tls_engine.h"

namespace popgate {
namespace {

using Outcome = BackendLoginResult::Outcome;

// RFC 2449: responses are at most 512 octets including CRLF.
constexpr size_t kMaxResponse = 512;
// A backend's CAPA answer longer than this is not one.
constexpr size_t kMaxCapaLines = 64;

const char* Describe(LineStatus s) {
  switch (s) {
    case LineStatus::kLine:
      return "line";
    case LineStatus::kTooLong:
    case LineStatus::kEndless:
      return "overlong response";
    case LineStatus::kEof:
      return "connection closed";
    case LineStatus::kTimeout:
      return "timeout";
    case LineStatus::kError:
      return "read error";
  }
  return "?";
}

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

Task<BackendLoginResult> LoginToBackend(Ring& ring, const SocketAddress& addr,
                                        std::string_view user,
                                        std::string_view password,
                                        absl::Duration connect_timeout,
                                        absl::Duration auth_timeout,
                                        const BackendTlsParams& tls,
                                        const LoopGuard& loop, int* fd_slot) {
  BackendLoginResult r;
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
  r.fd.Reset(::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!r.fd.valid()) {
    r.error = absl::StrCat("socket: ", strerror(errno));
    co_return r;
  }
  *fd_slot = r.fd.get();
  int one = 1;
  setsockopt(r.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  absl::Time deadline = absl::Now() + connect_timeout;
  int rc =
      co_await Connect(ring, r.fd.get(), addr.get(), addr.len, connect_timeout);
  if (rc < 0) {
    r.error = rc == -ECANCELED ? std::string("connect timeout")
                               : absl::StrCat("connect: ", strerror(-rc));
    co_return r;
  }

  auto remaining = [&deadline] {
    return std::max(deadline - absl::Now(), absl::Milliseconds(1));
  };
  // Starts TLS on the connection; the error names the cause (for instance
  // a certificate that fails verification) and never falls back to plain.
  auto start_tls = [&]() -> Task<std::unique_ptr<Stream>> {
    absl::StatusOr<std::unique_ptr<tls::TlsEngine>> engine =
        tls::TlsEngine::NewClient(tls.ctx, tls.name);
    if (!engine.ok()) {
      r.error = std::string("tls: ") + std::string(engine.status().message());
      co_return nullptr;
    }
    auto s = std::make_unique<TlsStream>(ring, *tls.buffers, r.fd.get(),
                                         *std::move(engine));
    int hrc =
        co_await s->Handshake(std::min(remaining(), tls.handshake_timeout));
    if (hrc < 0) {
      r.error = hrc == -EPROTO ? "tls: " + s->engine().error()
                : hrc == -ECANCELED
                    ? std::string("tls handshake timeout")
                    : std::string("tls handshake: ") + strerror(-hrc);
      co_return nullptr;
    }
    co_return std::unique_ptr<Stream>(std::move(s));
  };

  std::unique_ptr<Stream> stream;
  if (tls.mode == BackendTls::kImplicit) {
    stream = co_await start_tls();
    if (!stream) co_return r;
  } else {
    stream = std::make_unique<PlainStream>(ring, r.fd.get());
  }
  auto reader = std::make_unique<LineReader>(1024, kMaxResponse);
  std::string_view line;
  LineStatus st = co_await ReadLine(*stream, *reader, line, remaining());
  if (st != LineStatus::kLine) {
    r.error = absl::StrCat("greeting: ", Describe(st));
    co_return r;
  }
  if (!line.starts_with("+OK")) {
    r.error = "greeting: not +OK";
    co_return r;
  }
  if (tls.mode == BackendTls::kStartTls) {
    if (co_await stream->WriteAll("STLS\r\n", remaining()) < 0) {
      r.error = "STLS: write failed";
      co_return r;
    }
    st = co_await ReadLine(*stream, *reader, line, remaining());
    if (st != LineStatus::kLine) {
      r.error = std::string("STLS: ") + Describe(st);
      co_return r;
    }
    if (!line.starts_with("+OK")) {
      r.error = "STLS refused by backend";
      co_return r;
    }
    // Nothing the backend sent in plaintext after +OK may count.
    reader = std::make_unique<LineReader>(1024, kMaxResponse);
    stream = co_await start_tls();
    if (!stream) co_return r;
  }

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
                                         : Describe(st));
    co_return r;
  }
  st = co_await ReadLine(*stream, *reader, line, connect_timeout);
  if (st != LineStatus::kLine) {
    r.error = absl::StrCat("USER: ", Describe(st));
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
  int wrc = co_await stream->WriteAll(command, auth_timeout);
  Wipe(command);
  if (wrc < 0) {
    r.error = "PASS: write failed";
    co_return r;
  }
  if (backend_is_popgate) {
    st = co_await ReadLine(*stream, *reader, line, connect_timeout);
    if (st != LineStatus::kLine) {
      r.error = absl::StrCat(std::string(kLoopCommand), ": ", Describe(st));
      co_return r;
    }
  }
  st = co_await ReadLine(*stream, *reader, line, auth_timeout);
  if (st != LineStatus::kLine) {
    r.error = absl::StrCat("PASS: ", Describe(st));
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
