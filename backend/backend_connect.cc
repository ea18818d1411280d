#include "backend/backend_connect.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "forward/tls_stream.h"
#include "tls/tls_engine.h"

namespace popgate {

const char* DescribeLineStatus(LineStatus s) {
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

Task<BackendConnection> ConnectBackend(Ring& ring,
                                       const BackendConnectParams& p) {
  BackendConnection c;
  const SocketAddress& addr = *p.addr;
  static const BackendTlsParams kPlain;
  const BackendTlsParams& tls = p.tls != nullptr ? *p.tls : kPlain;
  c.fd.Reset(::socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!c.fd.valid()) {
    // Our side (fd limit): says nothing about the backend's health.
    c.error = absl::StrCat("socket: ", strerror(errno));
    co_return c;
  }
  if (p.fd_slot != nullptr) *p.fd_slot = c.fd.get();
  int one = 1;
  setsockopt(c.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  const absl::Time deadline = absl::Now() + p.timeout;
  auto remaining = [&deadline] {
    return std::max(deadline - absl::Now(), absl::Milliseconds(1));
  };
  int rc =
      co_await Connect(ring, c.fd.get(), addr.get(), addr.len, remaining());
  if (rc < 0) {
    c.health_failure = true;
    c.error = rc == -ECANCELED ? std::string("connect timeout")
                               : absl::StrCat("connect: ", strerror(-rc));
    co_return c;
  }
  std::unique_ptr<Stream> stream =
      std::make_unique<PlainStream>(ring, c.fd.get());
  if (!p.preamble.empty()) {
    // A PROXY header goes before any TLS: the backend's listener reads it
    // off the raw connection.
    if (co_await stream->WriteAll(p.preamble, remaining()) < 0) {
      c.health_failure = true;
      c.error = "PROXY header: write failed";
      co_return c;
    }
  }

  // Starts TLS on the connection; the error names the cause (for instance
  // a certificate that fails verification) and never falls back to plain.
  auto start_tls = [&]() -> Task<std::unique_ptr<Stream>> {
    absl::StatusOr<std::unique_ptr<tls::TlsEngine>> engine =
        tls::TlsEngine::NewClient(tls.ctx, tls.name);
    if (!engine.ok()) {
      c.error = std::string("tls: ") + std::string(engine.status().message());
      co_return nullptr;
    }
    auto s = std::make_unique<TlsStream>(ring, *tls.buffers, c.fd.get(),
                                         *std::move(engine));
    int hrc =
        co_await s->Handshake(std::min(remaining(), tls.handshake_timeout));
    if (hrc < 0) {
      // A timeout or a reset is ill health; a refused certificate is not.
      c.health_failure = hrc != -EPROTO;
      c.error = hrc == -EPROTO ? "tls: " + s->engine().error()
                : hrc == -ECANCELED
                    ? std::string("tls handshake timeout")
                    : std::string("tls handshake: ") + strerror(-hrc);
      co_return nullptr;
    }
    co_return std::unique_ptr<Stream>(std::move(s));
  };

  if (tls.mode == BackendTls::kImplicit) {
    stream = co_await start_tls();
    if (!stream) co_return c;
  }
  auto reader = std::make_unique<LineReader>(1024, kMaxBackendResponse);
  std::string_view line;
  LineStatus st = co_await ReadLine(*stream, *reader, line, remaining());
  if (st != LineStatus::kLine) {
    c.health_failure = true;
    c.error = absl::StrCat("greeting: ", DescribeLineStatus(st));
    co_return c;
  }
  if (!line.starts_with("+OK")) {
    c.health_failure = true;
    c.error = "greeting: not +OK";
    co_return c;
  }
  c.greeting = std::string(line);
  if (tls.mode == BackendTls::kStartTls) {
    if (co_await stream->WriteAll("STLS\r\n", remaining()) < 0) {
      c.health_failure = true;
      c.error = "STLS: write failed";
      co_return c;
    }
    st = co_await ReadLine(*stream, *reader, line, remaining());
    if (st != LineStatus::kLine) {
      c.health_failure = true;
      c.error = std::string("STLS: ") + DescribeLineStatus(st);
      co_return c;
    }
    if (!line.starts_with("+OK")) {
      c.error = "STLS refused by backend";
      co_return c;
    }
    // Nothing the backend sent in plaintext after +OK may count.
    reader = std::make_unique<LineReader>(1024, kMaxBackendResponse);
    stream = co_await start_tls();
    if (!stream) co_return c;
  }
  c.ok = true;
  c.stream = std::move(stream);
  c.reader = std::move(reader);
  co_return c;
}

}  // namespace popgate
