#include "admin/http_server.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <coroutine>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/json_escape.h"
#include "base/log_line.h"
#include "base/unique_fd.h"
#include "net/socket_address.h"
#include "runtime/ring.h"
#include "runtime/service_thread.h"
#include "runtime/task.h"

namespace popgate::admin {
namespace {

constexpr std::string_view kUnixPrefix = "unix:";
// After the request deadline, how long writing the answer may take.
constexpr absl::Duration kWriteBound = absl::Seconds(2);
// An accept wakes this often to see whether the server stops.
constexpr absl::Duration kAcceptPoll = absl::Milliseconds(250);

// One request's answer, delivered from any thread.
struct Pending {
  std::mutex mu;
  std::optional<HttpResponse> response;
  std::coroutine_handle<> waiter;  // set while the connection waits
  Ring* ring = nullptr;
  absl::Time deadline;
};

void Deliver(const std::shared_ptr<Pending>& p, HttpResponse r) {
  std::lock_guard<std::mutex> lock(p->mu);
  if (p->response.has_value()) return;
  p->response = std::move(r);
  if (p->waiter) {
    p->ring->Post(std::exchange(p->waiter, {}));
  }
}

struct AwaitResponse {
  std::shared_ptr<Pending> p;
  Ring* ring;
  bool await_ready() {
    std::lock_guard<std::mutex> lock(p->mu);
    return p->response.has_value();
  }
  bool await_suspend(std::coroutine_handle<> h) {
    std::lock_guard<std::mutex> lock(p->mu);
    if (p->response.has_value()) return false;
    p->waiter = h;
    p->ring = ring;
    return true;
  }
  HttpResponse await_resume() {
    std::lock_guard<std::mutex> lock(p->mu);
    return std::move(*p->response);
  }
};

absl::StatusOr<UniqueFd> OpenTcp(std::string_view listen) {
  absl::StatusOr<SocketAddress> addr = ResolveHostPort(listen);
  if (!addr.ok()) return addr.status();
  UniqueFd fd(::socket(addr->family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  }
  // SO_REUSEADDR only: no SO_REUSEPORT, so a second process on the same
  // admin address is an error, not a silent share.
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), addr->get(), addr->len) != 0 ||
      ::listen(fd.get(), 64) != 0) {
    return absl::UnavailableError(absl::StrCat("admin listen ",
                                               JsonEscape(std::string(listen)),
                                               ": ", strerror(errno)));
  }
  return fd;
}

absl::StatusOr<UniqueFd> OpenUnix(const std::string& path) {
  sockaddr_un sun{};
  if (path.empty() || path.size() >= sizeof(sun.sun_path)) {
    return absl::InvalidArgumentError(
        "admin listen: a unix socket path of 1..107 bytes");
  }
  // A socket left by a previous run is replaced; anything else there is
  // not ours to remove.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "admin listen ", JsonEscape(path), ": exists and is not a socket"));
    }
    ::unlink(path.c_str());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  }
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path.data(), path.size());
  // Created 0660 from the start (no window with wider permissions).
  const mode_t old = ::umask(0117);
  const int rc =
      ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun));
  ::umask(old);
  if (rc != 0 || ::chmod(path.c_str(), 0660) != 0 ||
      ::listen(fd.get(), 64) != 0) {
    return absl::UnavailableError(
        absl::StrCat("admin listen ", JsonEscape(path), ": ", strerror(errno)));
  }
  return fd;
}

std::vector<std::string_view> Segments(std::string_view s) {
  std::vector<std::string_view> out;
  while (true) {
    const size_t slash = s.find('/');
    out.push_back(s.substr(0, slash));
    if (slash == std::string_view::npos) return out;
    s.remove_prefix(slash + 1);
  }
}

bool MatchPattern(std::string_view pattern, std::string_view path,
                  std::vector<std::string>* params) {
  const std::vector<std::string_view> want = Segments(pattern);
  const std::vector<std::string_view> have = Segments(path);
  if (want.size() != have.size()) return false;
  std::vector<std::string> captured;
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] == "{}") {
      if (have[i].empty()) return false;
      captured.emplace_back(have[i]);
    } else if (want[i] != have[i]) {
      return false;
    }
  }
  *params = std::move(captured);
  return true;
}

}  // namespace

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0;
    const unsigned char y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  // Keep the compiler from turning the loop into an early exit.
  volatile unsigned char result = diff;
  return result == 0;
}

std::string FormatResponse(const HttpResponse& r) {
  const std::string_view reason = ReasonPhrase(r.status);
  std::string out = absl::StrCat("HTTP/1.1 ", r.status, " ");
  out.append(reason.data(), reason.size());
  absl::StrAppend(&out, "\r\nContent-Type: ", r.content_type,
                  "\r\nContent-Length: ", r.body.size(), "\r\n");
  if (r.status == 401) out += "WWW-Authenticate: Bearer realm=\"popgate\"\r\n";
  out += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  out += r.body;
  return out;
}

struct HttpServer::Impl {
  struct RouteEntry {
    std::string method;
    std::string pattern;
    Handler handler;
    bool open;
  };

  explicit Impl(HttpServerOptions o) : options(std::move(o)) {}

  absl::Status Setup();  // on the server's thread: its ring
  void Run();
  Detached AcceptLoop();
  Detached Serve(UniqueFd fd);
  Task<HttpResponse> Dispatch(HttpRequest req, absl::Time deadline);
  void Log(const HttpRequest* req, int status, std::string_view why);

  const HttpServerOptions options;
  std::vector<RouteEntry> routes;
  UniqueFd listen_fd;
  std::string unix_path;
  // The socket file we created: a newer popgate that took over (a
  // hand-over during an upgrade) replaces it with its own, which Stop must
  // leave alone.
  ino_t unix_inode = 0;
  std::string bound;
  Ring ring;
  std::thread thread;
  std::atomic<bool> stop{false};
  std::mutex mu;
  bool ring_ready = false;

  // The ring's thread only.
  bool accepting = false;
  // Open connections -> whether they are past reading (being answered:
  // Stop lets those finish, bounded by kWriteBound).
  absl::flat_hash_map<int, bool> conns;
  absl::flat_hash_set<std::shared_ptr<Pending>> pending;
};

void HttpServer::Impl::Log(const HttpRequest* req, int status,
                           std::string_view why) {
  if (!options.log) return;
  std::string line =
      LogFrame(status >= 400 ? LogLevel::kWarning : LogLevel::kInfo,
               "admin_request", absl::Now());
  if (req != nullptr) {
    absl::StrAppend(&line, ",\"method\":\"", JsonEscape(req->method),
                    "\",\"path\":\"", JsonEscape(req->path), "\"");
  }
  absl::StrAppend(&line, ",\"status\":", status);
  if (!why.empty()) {
    absl::StrAppend(&line, ",\"detail\":\"", JsonEscape(std::string(why)),
                    "\"");
  }
  line += "}\n";
  options.log(std::move(line));
}

Task<HttpResponse> HttpServer::Impl::Dispatch(HttpRequest req,
                                              absl::Time deadline) {
  const RouteEntry* route = nullptr;
  bool path_known = false;
  for (const RouteEntry& r : routes) {
    std::vector<std::string> params;
    if (!MatchPattern(r.pattern, req.path, &params)) continue;
    path_known = true;
    if (r.method != req.method) continue;
    route = &r;
    req.params = std::move(params);
    break;
  }
  if (route == nullptr) {
    co_return path_known ? HttpResponse::Text(405, "method not allowed")
                         : HttpResponse::Text(404, "not found");
  }
  if (!route->open && !options.token.empty()) {
    std::optional<std::string_view> auth = req.Header("authorization");
    constexpr std::string_view kBearer = "Bearer ";
    const bool ok =
        auth.has_value() && auth->size() > kBearer.size() &&
        absl::EqualsIgnoreCase(
            absl::string_view(auth->data(), kBearer.size()),
            absl::string_view(kBearer.data(), kBearer.size())) &&
        ConstantTimeEquals(auth->substr(kBearer.size()), options.token);
    if (!ok) {
      Log(&req, 401, auth.has_value() ? "wrong token" : "no token");
      co_return HttpResponse::Text(401, "a bearer token is required");
    }
  }
  auto p = std::make_shared<Pending>();
  p->deadline = deadline;
  pending.insert(p);
  route->handler(req, [p](HttpResponse r) { Deliver(p, std::move(r)); });
  // A named awaiter: GCC 12 destroys a co_await operand's temporary twice,
  // which here dropped one reference of `p` too many (ASan: use after free).
  AwaitResponse awaiter{p, &ring};
  HttpResponse resp = co_await awaiter;
  pending.erase(p);
  if (req.method != "GET") Log(&req, resp.status, "");
  co_return resp;
}

Detached HttpServer::Impl::Serve(UniqueFd fd) {
  conns[fd.get()] = false;
  const absl::Time deadline = absl::Now() + options.request_timeout;
  std::string buf;
  char chunk[4096];
  std::optional<HttpResponse> resp;
  while (!stop.load(std::memory_order_acquire)) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      resp = HttpResponse::Text(408, "request timeout");
      break;
    }
    const int n = co_await Recv(ring, fd.get(), chunk, sizeof(chunk), left);
    if (n == -ECANCELED) {
      resp = HttpResponse::Text(408, "request timeout");
      break;
    }
    if (n <= 0) break;  // closed or failed: nobody to answer
    buf.append(chunk, static_cast<size_t>(n));
    ParseResult r = ParseHttpRequest(buf);
    if (r.status == ParseStatus::kIncomplete) continue;
    conns[fd.get()] = true;
    if (r.status == ParseStatus::kError) {
      Log(nullptr, r.error_status, r.error);
      resp = HttpResponse::Text(r.error_status, r.error);
      break;
    }
    resp = co_await Dispatch(std::move(r.request), deadline);
    break;
  }
  if (resp.has_value()) {
    const std::string out = FormatResponse(*resp);
    const absl::Time write_deadline = absl::Now() + kWriteBound;
    size_t sent = 0;
    while (sent < out.size()) {
      const absl::Duration left = write_deadline - absl::Now();
      if (left <= absl::ZeroDuration()) break;
      const int n = co_await Send(ring, fd.get(), out.data() + sent,
                                  out.size() - sent, left);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    // FIN after the answer: the client reads to EOF.
    ::shutdown(fd.get(), SHUT_WR);
  }
  conns.erase(fd.get());
}

Detached HttpServer::Impl::AcceptLoop() {
  accepting = true;
  const int lfd = listen_fd.get();
  while (!stop.load(std::memory_order_acquire)) {
    const int fd = co_await MakeOp(
        ring,
        [lfd](io_uring_sqe* s) {
          io_uring_prep_accept(s, lfd, nullptr, nullptr, SOCK_CLOEXEC);
        },
        kAcceptPoll);
    if (fd == -ECANCELED) continue;  // the poll interval
    if (fd < 0) {
      // EMFILE and the like: back off instead of spinning.
      co_await Sleep(ring, absl::Milliseconds(100));
      continue;
    }
    UniqueFd conn(fd);
    if (stop.load(std::memory_order_acquire)) break;
    if (static_cast<int>(conns.size()) >= options.max_connections) {
      // Over the bound: a short answer that never waits, then close.
      static const std::string busy =
          FormatResponse(HttpResponse::Text(503, "too many admin connections"));
      co_await SendNow(ring, conn.get(), busy.data(), busy.size());
      continue;
    }
    Serve(std::move(conn));
  }
  accepting = false;
}

absl::Status HttpServer::Impl::Setup() {
  if (absl::Status s = ring.Init(128); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu);
  ring_ready = true;
  return absl::OkStatus();
}

void HttpServer::Impl::Run() {
  AcceptLoop();
  while (true) {
    const bool stopping = stop.load(std::memory_order_acquire);
    if (stopping) {
      // Pending answers first (their connections then write and close),
      // then cut whatever still reads.
      for (const auto& p : pending) {
        Deliver(p, HttpResponse::Text(503, "shutting down"));
      }
      // Those being answered finish (bounded by kWriteBound); reads end.
      for (const auto& [fd, answering] : conns) {
        if (!answering) ::shutdown(fd, SHUT_RDWR);
      }
      if (!accepting && conns.empty()) break;
    } else {
      const absl::Time now = absl::Now();
      for (const auto& p : pending) {
        if (now >= p->deadline) {
          Deliver(p, HttpResponse::Text(504, "no answer in time"));
        }
      }
    }
    ring.RunOnce(stopping ? absl::Milliseconds(20) : absl::Milliseconds(500));
  }
}

HttpServer::HttpServer(HttpServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Route(std::string method, std::string pattern, Handler handler,
                       bool open) {
  impl_->routes.push_back(
      {std::move(method), std::move(pattern), std::move(handler), open});
}

absl::Status HttpServer::Start() {
  if (impl_->thread.joinable()) {
    return absl::FailedPreconditionError("admin server already started");
  }
  const std::string& listen = impl_->options.listen;
  absl::StatusOr<UniqueFd> fd;
  if (std::string_view(listen).starts_with(kUnixPrefix)) {
    impl_->unix_path = listen.substr(kUnixPrefix.size());
    fd = OpenUnix(impl_->unix_path);
    if (fd.ok()) {
      impl_->bound = impl_->unix_path;
      struct stat st {};
      if (::stat(impl_->unix_path.c_str(), &st) == 0) {
        impl_->unix_inode = st.st_ino;
      }
    }
  } else {
    fd = OpenTcp(listen);
    if (fd.ok()) {
      sockaddr_storage ss{};
      socklen_t len = sizeof(ss);
      ::getsockname(fd->get(), reinterpret_cast<sockaddr*>(&ss), &len);
      impl_->bound =
          SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len)
              .ToString();
    }
  }
  if (!fd.ok()) {
    impl_->unix_path.clear();
    return fd.status();
  }
  impl_->listen_fd = *std::move(fd);
  Impl* impl = impl_.get();
  absl::StatusOr<std::thread> thread = StartServiceThread(
      "popgate-admin", [impl] { return impl->Setup(); },
      [impl] { impl->Run(); });
  if (!thread.ok()) return thread.status();
  impl_->thread = *std::move(thread);
  return absl::OkStatus();
}

std::string HttpServer::bound() const { return impl_->bound; }

void HttpServer::Stop() {
  impl_->stop.store(true, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->ring_ready) impl_->ring.Wake();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->listen_fd.Reset();
  if (!impl_->unix_path.empty()) {
    struct stat st {};
    if (::stat(impl_->unix_path.c_str(), &st) == 0 &&
        st.st_ino == impl_->unix_inode) {
      ::unlink(impl_->unix_path.c_str());
    }
    impl_->unix_path.clear();
  }
}

}  // namespace popgate::admin
