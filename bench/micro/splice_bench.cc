// splice_bench: the kernel path under popgate's plain forwarding, without
// io_uring. Two loopback TCP connections: client -> (A)=(B) proxy (C)=(D)
// -> backend. Each iteration the "client" sends N bytes into A, the "proxy"
// moves them from B to C, and the "backend" reads all N at D:
//  - splice: B -> pipe -> C with splice(2), as popgate's forwarder does for
//    bursts (one 256 KiB pipe, like the worker's PipePool);
//  - copy: recv(B) into a user buffer, send(C), as it does for short lines.
// Time per iteration is the whole round trip (client send + proxy + backend
// recv, all in this thread; on loopback each send also runs the receive
// side's TCP processing). The proxy_ns counter times only the proxy's step,
// which is where the two methods differ.
//
// Run: splice_bench [--benchmark_min_time=0.1]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"

namespace {

constexpr int kPipeSize = 256 * 1024;

// Owns a file descriptor; closes it on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) close(fd_);
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// A connected loopback TCP pair: `near` connected, `far` accepted.
struct TcpPair {
  Fd near;
  Fd far;
};

bool MakeTcpPair(TcpPair& pair) {
  Fd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (listener.get() < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      listen(listener.get(), 1) != 0 ||
      getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) !=
          0) {
    return false;
  }
  pair.near = Fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (pair.near.get() < 0 ||
      connect(pair.near.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    return false;
  }
  pair.far = Fd(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (pair.far.get() < 0) return false;
  // popgate's sockets have TCP_NODELAY; without it a short line could wait
  // for the previous one's ACK.
  const int one = 1;
  for (int fd : {pair.near.get(), pair.far.get()}) {
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  return true;
}

bool SendAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool RecvAll(int fd, char* data, size_t n) {
  while (n > 0) {
    ssize_t r = recv(fd, data, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    data += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Moves exactly `n` bytes from socket `from` to socket `to` through `pipe`:
// fill the pipe with what has arrived, drain it to `to`, repeat.
bool SpliceBytes(int from, int pipe_r, int pipe_w, int to, size_t n) {
  while (n > 0) {
    ssize_t in = splice(from, nullptr, pipe_w, nullptr, n, SPLICE_F_MOVE);
    if (in < 0 && errno == EINTR) continue;
    if (in <= 0) return false;
    size_t left = static_cast<size_t>(in);
    while (left > 0) {
      ssize_t out = splice(pipe_r, nullptr, to, nullptr, left, SPLICE_F_MOVE);
      if (out < 0 && errno == EINTR) continue;
      if (out <= 0) return false;
      left -= static_cast<size_t>(out);
    }
    n -= static_cast<size_t>(in);
  }
  return true;
}

// Moves exactly `n` bytes through `buf` (at least as large as any recv).
bool CopyBytes(int from, int to, std::vector<char>& buf, size_t n) {
  while (n > 0) {
    ssize_t r = recv(from, buf.data(), std::min(n, buf.size()), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    if (!SendAll(to, buf.data(), static_cast<size_t>(r))) return false;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// range(0): bytes per round trip.
template <bool kSplice>
void BM_RoundTrip(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  TcpPair client_side;   // near = client (A), far = proxy's client end (B)
  TcpPair backend_side;  // near = proxy's backend end (C), far = backend (D)
  int pipe_fds[2] = {-1, -1};
  if (!MakeTcpPair(client_side) || !MakeTcpPair(backend_side) ||
      pipe2(pipe_fds, O_CLOEXEC) != 0) {
    state.SkipWithError("socket setup failed");
    return;
  }
  Fd pipe_r(pipe_fds[0]);
  Fd pipe_w(pipe_fds[1]);
  fcntl(pipe_w.get(), F_SETPIPE_SZ, kPipeSize);  // best effort, as popgate

  std::vector<char> payload(n, 'm');
  std::vector<char> sink(n);
  // The copy path's buffer: 64 KiB, so one recv can take a whole burst.
  std::vector<char> buf(64 * 1024);
  double proxy_ns = 0;
  for (auto _ : state) {
    if (!SendAll(client_side.near.get(), payload.data(), n)) {
      state.SkipWithError("client send failed");
      break;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const bool ok =
        kSplice
            ? SpliceBytes(client_side.far.get(), pipe_r.get(), pipe_w.get(),
                          backend_side.near.get(), n)
            : CopyBytes(client_side.far.get(), backend_side.near.get(), buf, n);
    const auto t1 = std::chrono::steady_clock::now();
    proxy_ns += std::chrono::duration<double, std::nano>(t1 - t0).count();
    if (!ok || !RecvAll(backend_side.far.get(), sink.data(), n)) {
      state.SkipWithError("forwarding failed");
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
  state.counters["proxy_ns"] =
      benchmark::Counter(proxy_ns, benchmark::Counter::kAvgIterations);
}

constexpr int64_t kSizes[] = {64, 4096, 16384, 65536};

void Sizes(benchmark::internal::Benchmark* b) {
  for (int64_t s : kSizes) b->Arg(s);
}

BENCHMARK(BM_RoundTrip<true>)->Name("BM_Splice")->Apply(Sizes);
BENCHMARK(BM_RoundTrip<false>)->Name("BM_Copy")->Apply(Sizes);

}  // namespace

BENCHMARK_MAIN();
