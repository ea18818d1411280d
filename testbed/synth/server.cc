#include "testbed/synth/server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <optional>
#include <utility>

#include "testbed/synth/proxy_header.h"
#include "testbed/synth/str_util.h"

namespace popgate::synth {
namespace {

constexpr int kMaxEvents = 256;
constexpr int kMaxAcceptsPerWakeup = 256;
constexpr int kMaxIovecs = 64;
// Bytes written to one connection per wakeup before serving the others:
// on loopback a fast reader never makes sendmsg() block, and a 100 MB RETR
// must not stall every other session.
constexpr size_t kWriteBudget = 4 * 1024 * 1024;
constexpr size_t kReadBufferSize = 64 * 1024;
// After EMFILE and friends, stop accepting for this long instead of
// spinning on a listener that stays readable.
constexpr int64_t kAcceptPauseMs = 100;

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

absl::Status ErrnoError(std::string_view what) {
  return absl::InternalError(Cat(what, ": ", std::strerror(errno)));
}

absl::Status SplitHostPort(const std::string& spec, std::string* host,
                           std::string* port) {
  size_t colon;
  if (!spec.empty() && spec[0] == '[') {
    size_t close = spec.find(']');
    if (close == std::string::npos || close + 1 >= spec.size() ||
        spec[close + 1] != ':') {
      return absl::InvalidArgumentError(
          Cat("bad listen address '", spec, "' ([v6]:PORT)"));
    }
    *host = spec.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = spec.rfind(':');
    if (colon == std::string::npos ||
        spec.find(':') != colon) {  // bare IPv6 needs brackets
      return absl::InvalidArgumentError(
          Cat("bad listen address '", spec, "' (HOST:PORT)"));
    }
    *host = spec.substr(0, colon);
  }
  *port = spec.substr(colon + 1);
  if (port->empty()) {
    return absl::InvalidArgumentError(Cat("missing port in '", spec, "'"));
  }
  if (host->empty() || *host == "*") *host = "0.0.0.0";
  return absl::OkStatus();
}

std::string FormatAddress(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
    return Cat("[", text, "]:", ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
  inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
  return Cat(text, ":", ntohs(a->sin_port));
}

}  // namespace

struct Server::Handler {
  enum class Kind { kListener, kSignal, kConnection };
  explicit Handler(Kind k) : kind(k) {}
  virtual ~Handler() = default;
  Kind kind;
  UniqueFd fd;
};

struct Server::Connection : Handler {
  Connection() : Handler(Kind::kConnection) {}
  // Reset on close, which releases the maildrop lock at once rather than
  // when the object is freed after the epoll batch.
  std::optional<Pop3Session> session;
  // Set while the PROXY header (--proxy-protocol) is still being read.
  std::optional<ProxyHeaderReader> proxy_header;
  uint32_t events = 0;  // currently registered with epoll
  int64_t last_active_ms = 0;
  std::list<std::unique_ptr<Connection>>::iterator node;
  bool peer_eof = false;
  bool peer_gone = false;  // error/HUP: nothing can be sent any more
  bool closed = false;
  std::string peer;  // for --verbose
};

Server::Server(MaildropStore* store, BodyWireCache* cache,
               const SessionOptions* session_options, ServerOptions options)
    : store_(store),
      cache_(cache),
      session_options_(session_options),
      options_(std::move(options)) {}

Server::~Server() = default;

absl::Status Server::Listen() {
  // Block the stop signals before anything is announced, so a test that
  // sends SIGTERM right after reading the "listening" line gets a clean
  // exit instead of the default action.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
    return ErrnoError("sigprocmask");
  }
  signal_fd_.Reset(signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_fd_.valid()) return ErrnoError("signalfd");
  epoll_.Reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) return ErrnoError("epoll_create1");

  signal_handler_ = std::make_unique<Handler>(Handler::Kind::kSignal);
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.ptr = signal_handler_.get();
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, signal_fd_.get(), &ev) != 0) {
    return ErrnoError("epoll_ctl(signalfd)");
  }

  for (const std::string& spec : options_.listen) {
    std::string host, port;
    if (absl::Status s = SplitHostPort(spec, &host, &port); !s.ok()) return s;
    addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
        rc != 0) {
      return absl::InvalidArgumentError(
          Cat("listen ", spec, ": ", gai_strerror(rc)));
    }
    UniqueFd fd;
    std::string error = "no address";
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      UniqueFd s(socket(ai->ai_family,
                        ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol));
      if (!s.valid()) {
        error = std::strerror(errno);
        continue;
      }
      int one = 1;
      setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      // Keep [::] from also taking the IPv4 port, so "0.0.0.0:P" and
      // "[::]:P" can both be given.
      if (ai->ai_family == AF_INET6) {
        setsockopt(s.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
      }
      // The benchmark opens thousands of connections at once; the kernel
      // caps this at net.core.somaxconn.
      if (bind(s.get(), ai->ai_addr, ai->ai_addrlen) != 0 ||
          listen(s.get(), 65535) != 0) {
        error = std::strerror(errno);
        continue;
      }
      fd = std::move(s);
      break;
    }
    freeaddrinfo(res);
    if (!fd.valid()) {
      return absl::UnavailableError(Cat("listen ", spec, ": ", error));
    }
    sockaddr_storage addr = {};
    socklen_t len = sizeof(addr);
    if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return ErrnoError("getsockname");
    }
    bound_.push_back(FormatAddress(addr));

    auto listener = std::make_unique<Handler>(Handler::Kind::kListener);
    listener->fd = std::move(fd);
    ev.events = EPOLLIN;
    ev.data.ptr = listener.get();
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener->fd.get(), &ev) != 0) {
      return ErrnoError("epoll_ctl(listener)");
    }
    listeners_.push_back(std::move(listener));
  }
  return absl::OkStatus();
}

absl::Status Server::Run() {
  epoll_event events[kMaxEvents];
  for (;;) {
    // Wake at least once a second for idle expiry and accept pauses.
    int n = epoll_wait(epoll_.get(), events, kMaxEvents, 1000);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("epoll_wait");
    }
    bool stop = false;
    for (int i = 0; i < n; ++i) {
      auto* h = static_cast<Handler*>(events[i].data.ptr);
      switch (h->kind) {
        case Handler::Kind::kListener:
          Accept(h);
          break;
        case Handler::Kind::kSignal: {
          signalfd_siginfo info;
          while (read(signal_fd_.get(), &info, sizeof(info)) > 0) {
          }
          stop = true;
          break;
        }
        case Handler::Kind::kConnection: {
          auto* c = static_cast<Connection*>(h);
          if (c->closed) break;
          if (c->proxy_header) {
            OnProxyHeaderEvent(c, events[i].events);
          } else {
            OnConnectionEvent(c, events[i].events);
          }
          break;
        }
      }
    }
    graveyard_.clear();
    if (stop) break;
    ExpireIdle();
    if (!listeners_enabled_ && NowMs() >= listeners_paused_until_ms_) {
      SetListenersEnabled(true);
    }
  }
  if (options_.verbose) {
    std::fprintf(stderr, "pop3-synth: stopping, %zu connections open\n",
                 open_connections_);
  }
  // Sessions end without QUIT: their DELE marks are discarded.
  by_activity_.clear();
  return absl::OkStatus();
}

void Server::Accept(Handler* listener) {
  for (int i = 0; i < kMaxAcceptsPerWakeup; ++i) {
    sockaddr_storage addr = {};
    socklen_t len = sizeof(addr);
    int fd = accept4(listener->fd.get(), reinterpret_cast<sockaddr*>(&addr),
                     &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) {
        continue;
      }
      std::fprintf(stderr, "pop3-synth: accept: %s\n", std::strerror(errno));
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        SetListenersEnabled(false);
        listeners_paused_until_ms_ = NowMs() + kAcceptPauseMs;
      }
      return;
    }
    auto owned = std::make_unique<Connection>();
    Connection* c = owned.get();
    c->fd.Reset(fd);
    // Responses are written whole; Nagle would only add delayed-ACK
    // latency to pipelined exchanges.
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->session.emplace(store_, cache_, session_options_);
    c->last_active_ms = NowMs();
    c->events = EPOLLIN;
    epoll_event ev = {};
    ev.events = c->events;
    ev.data.ptr = c;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      std::fprintf(stderr, "pop3-synth: epoll_ctl: %s\n", std::strerror(errno));
      continue;
    }
    by_activity_.push_back(std::move(owned));
    c->node = std::prev(by_activity_.end());
    ++open_connections_;
    if (options_.verbose) {
      c->peer = FormatAddress(addr);
      std::fprintf(stderr, "pop3-synth: connection from %s (%zu open)\n",
                   c->peer.c_str(), open_connections_);
    }
    if (options_.proxy_protocol) {
      // No greeting before the header: the peer speaks first.
      c->proxy_header.emplace();
      continue;
    }
    c->session->Start();
    Pump(c);
  }
}

void Server::OnProxyHeaderEvent(Connection* c, uint32_t events) {
  ProxyHeaderReader& reader = *c->proxy_header;
  // Small reads: a header is at most 4 KiB, and what follows it in the
  // socket is left for the session's own reads.
  char buffer[ProxyHeaderReader::kMaxHeader];
  for (;;) {
    ssize_t r = read(c->fd.get(), buffer, sizeof(buffer));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
        !(events & (EPOLLERR | EPOLLHUP))) {
      return;
    }
    if (r <= 0) {  // EOF, error or hang-up before a whole header
      Close(c);
      return;
    }
    Touch(c);
    switch (reader.Feed(std::string_view(buffer, r))) {
      case ProxyHeaderReader::State::kNeedMore:
        continue;
      case ProxyHeaderReader::State::kError:
        if (options_.verbose) {
          std::fprintf(stderr, "pop3-synth: %s: %s, closing\n", c->peer.c_str(),
                       reader.error().c_str());
        }
        Close(c);
        return;
      case ProxyHeaderReader::State::kDone: {
        if (options_.verbose) {
          std::fprintf(stderr, "pop3-synth: %s: PROXY v%d %s header\n",
                       c->peer.c_str(), reader.version(),
                       reader.command() == ProxyHeaderReader::Command::kLocal
                           ? "LOCAL"
                           : "PROXY");
        }
        const std::string rest(reader.rest());
        c->proxy_header.reset();
        c->session->Start();
        if (!rest.empty()) c->session->Feed(rest);
        Pump(c);
        return;
      }
    }
  }
}

void Server::OnConnectionEvent(Connection* c, uint32_t events) {
  if (events & (EPOLLERR | EPOLLHUP)) {
    // Nothing can be sent any more, but commands already received (say a
    // pipelined "DELE 1 / QUIT") are still carried out, as a server that
    // read them before the reset would have.
    c->peer_gone = true;
  }
  static char buffer[kReadBufferSize];
  while (!c->peer_eof && (c->peer_gone || c->session->WantsInput())) {
    ssize_t r = read(c->fd.get(), buffer, sizeof(buffer));
    if (r > 0) {
      c->session->Feed(std::string_view(buffer, r));
      Touch(c);
      if (c->peer_gone) {
        DrainCommands(c);
        continue;
      }
      if (static_cast<size_t>(r) < sizeof(buffer)) break;
      continue;
    }
    if (r == 0) {
      c->peer_eof = true;
    } else if (errno == EINTR) {
      continue;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
      c->peer_eof = true;
      c->peer_gone = true;
    }
    break;
  }
  Pump(c);
}

void Server::DrainCommands(Connection* c) {
  do {
    c->session->Process();
    c->session->output().Clear();
  } while (c->session->HasPendingCommands());
}

void Server::Pump(Connection* c) {
  Pop3Session& session = *c->session;
  if (c->peer_gone) {
    DrainCommands(c);
    Close(c);
    return;
  }
  size_t budget = kWriteBudget;
  for (;;) {
    session.Process();
    if (session.output().empty()) break;
    if (!Flush(c, &budget)) {
      Close(c);
      return;
    }
    // Still pending: the socket is full or this connection used its share.
    if (!session.output().empty()) break;
  }
  // After EOF, Process() ran until the input was used up (output is empty,
  // so it did not stop for backpressure): nothing more will come.
  if (session.output().empty() && (session.closing() || c->peer_eof)) {
    // Unread input at close() makes the kernel send RST, which can destroy
    // the final response (say, to QUIT) before the client reads it.
    for (int i = 0; i < 16 && !c->peer_eof; ++i) {
      char sink[4096];
      if (read(c->fd.get(), sink, sizeof(sink)) <= 0) break;
    }
    Close(c);
    return;
  }
  UpdateInterest(c);
}

bool Server::Flush(Connection* c, size_t* budget) {
  OutputQueue& out = c->session->output();
  while (!out.empty() && *budget > 0) {
    iovec iov[kMaxIovecs];
    int n = out.Gather(iov, kMaxIovecs);
    msghdr msg = {};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    ssize_t w = sendmsg(c->fd.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w >= 0) {
      out.Consume(w);
      *budget -= std::min(*budget, static_cast<size_t>(w));
      Touch(c);
      continue;
    }
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
  return true;
}

void Server::UpdateInterest(Connection* c) {
  uint32_t want = 0;
  if (!c->peer_eof && c->session->WantsInput()) want |= EPOLLIN;
  if (!c->session->output().empty()) want |= EPOLLOUT;
  if (want == c->events) return;
  epoll_event ev = {};
  ev.events = want;
  ev.data.ptr = c;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c->fd.get(), &ev) != 0) {
    Close(c);
    return;
  }
  c->events = want;
}

void Server::Touch(Connection* c) {
  c->last_active_ms = NowMs();
  by_activity_.splice(by_activity_.end(), by_activity_, c->node);
}

void Server::Close(Connection* c) {
  if (c->closed) return;
  c->closed = true;
  --open_connections_;
  if (options_.verbose) {
    std::fprintf(stderr, "pop3-synth: closed %s (%zu open)\n", c->peer.c_str(),
                 open_connections_);
  }
  // Closing the fd also removes it from the epoll set.
  c->session.reset();
  c->fd.Reset();
  graveyard_.push_back(std::move(*c->node));
  by_activity_.erase(c->node);
}

void Server::ExpireIdle() {
  const int64_t limit =
      NowMs() - static_cast<int64_t>(options_.idle_timeout_seconds) * 1000;
  while (!by_activity_.empty() &&
         by_activity_.front()->last_active_ms <= limit) {
    // RFC 1939 3: an autologout closes without a response and without
    // entering UPDATE.
    Close(by_activity_.front().get());
  }
  graveyard_.clear();
}

void Server::SetListenersEnabled(bool enabled) {
  listeners_enabled_ = enabled;
  for (auto& l : listeners_) {
    epoll_event ev = {};
    ev.events = enabled ? static_cast<uint32_t>(EPOLLIN) : 0;
    ev.data.ptr = l.get();
    epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, l->fd.get(), &ev);
  }
}

}  // namespace popgate::synth
