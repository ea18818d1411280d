// send_zc_bench: does IORING_OP_SEND_ZC cost the sender less CPU per byte
// than IORING_OP_SEND for the buffers popgate sends after re-encrypting TLS
// (16 KiB records, up to 64 KiB chunks)?
//
// Why this exists: popgate's TLS path decrypts, re-encrypts in user space and
// sends the records with IORING_OP_SEND. The TLS issue asks for SEND_ZC
// "where it measurably helps". Zero-copy is not free: the kernel pins the
// user pages, takes a reference per skb, and posts a second CQE (the
// notification) once the pages are no longer in use; only then may the
// buffer be written again. Whether that beats a plain copy depends on the
// size and on the device. On loopback the receiving socket would hold
// references to the sender's pages, so the kernel copies them on local
// delivery (skb_orphan_frags_rx) and reports it via
// IORING_NOTIF_USAGE_ZC_COPIED. This program measures it rather than
// assuming it.
//
// What it does, per (address family, mode, buffer size, repetition):
//   - a fresh TCP connection over loopback (127.0.0.1, and ::1 if it works);
//   - a receiver thread drains it with blocking recv() into 256 KiB;
//   - the main thread (the "sender") keeps `window` buffers in flight on its
//     own io_uring, each send being `size` bytes, until `mib` MiB have been
//     queued or `seconds` have passed;
//   - modes: send (IORING_OP_SEND), send_zc (IORING_OP_SEND_ZC on plain
//     memory), send_zc_fixed (SEND_ZC on io_uring-registered buffers, which
//     skips pinning the pages on every send: what a proxy with a fixed buffer
//     pool could do);
//   - it reads the sender thread's CPU time (CLOCK_THREAD_CPUTIME_ID), the
//     receiver's, and the process's (getrusage RUSAGE_SELF, so io-wq worker
//     threads, if any, show up as "other").
// Repetitions are interleaved (repetition 1 of every point, then 2, ...) so
// that a burst of background load does not hit all runs of one point; the
// table shows each figure's median over the repetitions.
//
// The receiver only counts bytes: with several sends in flight on one socket
// io_uring does not promise their order on the wire, which does not matter
// for a cost measurement (a proxy would send one record stream in order).

#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

// liburing 2.3's headers predate these (kernel 6.2 / 6.0 uapi).
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

namespace {

enum class Mode { kSend, kSendZc, kSendZcFixed };

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kSend: return "send";
    case Mode::kSendZc: return "send_zc";
    case Mode::kSendZcFixed: return "send_zc_fixed";
  }
  return "?";
}

struct Options {
  uint64_t mib = 512;     // bytes per run, upper bound
  double seconds = 5.0;   // time per run, upper bound
  unsigned window = 4;    // sends in flight (buffers)
  unsigned reps = 3;
  std::vector<size_t> sizes = {4 << 10, 16 << 10, 64 << 10, 256 << 10};
  std::vector<Mode> modes = {Mode::kSend, Mode::kSendZc, Mode::kSendZcFixed};
  std::vector<int> families = {AF_INET, AF_INET6};
  std::string json_path;
};

[[noreturn]] void Die(const char* what, int err) {
  std::fprintf(stderr, "send_zc_bench: %s: %s\n", what, std::strerror(err));
  std::exit(2);
}

double Now(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double ProcessCpu() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
  };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

// A connected TCP pair over loopback: {sender fd, receiver fd}, or {-1, -1}
// if the family is unavailable (no ::1 in a container, say).
std::pair<int, int> LoopbackPair(int family) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof(*a);
  }
  int lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) return {-1, -1};
  auto* sa = reinterpret_cast<sockaddr*>(&ss);
  if (bind(lfd, sa, len) != 0 || listen(lfd, 1) != 0 ||
      getsockname(lfd, sa, &len) != 0) {
    close(lfd);
    return {-1, -1};
  }
  int cfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (cfd < 0 || connect(cfd, sa, len) != 0) Die("connect", errno);
  int afd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  if (afd < 0) Die("accept", errno);
  close(lfd);
  int one = 1;  // popgate sets TCP_NODELAY on both of its sockets
  setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return {cfd, afd};
}

struct RunResult {
  uint64_t bytes = 0;
  double wall = 0;          // first send to the receiver's last byte
  double sender_cpu = 0;    // the sending thread
  double receiver_cpu = 0;  // the draining thread
  double other_cpu = 0;     // rest of the process (io-wq workers, if any)
  uint64_t notifs = 0;      // SEND_ZC notification CQEs
  uint64_t copied = 0;      // ... of which reported IORING_NOTIF_USAGE_ZC_COPIED
  uint64_t partial = 0;     // short sends that had to be resubmitted
};

// One buffer of the window. It may be refilled only when its send has
// completed in full and, for SEND_ZC, every notification has arrived: until
// then the kernel may still read its pages.
struct Slot {
  char* data = nullptr;
  size_t len = 0;        // bytes of the current chunk
  size_t done = 0;       // ... sent so far
  bool send_pending = false;
  unsigned notifs_pending = 0;
  bool Idle() const { return !send_pending && notifs_pending == 0; }
};

RunResult RunOne(int family, Mode mode, size_t size, const Options& opt) {
  auto [sfd, rfd] = LoopbackPair(family);
  if (sfd < 0) return {};

  // Receiver: drain until EOF; report bytes, its CPU and when it finished.
  std::atomic<uint64_t> rx_bytes{0};
  double rx_cpu = 0, rx_end = 0;
  std::thread receiver([&, rfd = rfd] {
    std::vector<char> buf(256 << 10);
    double c0 = Now(CLOCK_THREAD_CPUTIME_ID);
    uint64_t n = 0;
    for (;;) {
      ssize_t r = recv(rfd, buf.data(), buf.size(), 0);
      if (r > 0) { n += static_cast<uint64_t>(r); continue; }
      if (r < 0 && errno == EINTR) continue;
      break;
    }
    rx_end = Now(CLOCK_MONOTONIC);
    rx_cpu = Now(CLOCK_THREAD_CPUTIME_ID) - c0;
    rx_bytes = n;
  });

  io_uring ring{};
  if (int e = io_uring_queue_init(64, &ring, 0); e < 0) Die("io_uring_queue_init", -e);

  // Page-aligned buffers, written once so that their pages exist (the
  // payload is irrelevant: TLS records are incompressible anyway).
  std::vector<Slot> slots(opt.window);
  std::vector<iovec> iovs(opt.window);
  for (unsigned i = 0; i < opt.window; ++i) {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, size) != 0) Die("posix_memalign", ENOMEM);
    std::memset(p, 'a' + static_cast<int>(i), size);
    slots[i].data = static_cast<char*>(p);
    iovs[i] = {p, size};
  }
  if (mode == Mode::kSendZcFixed) {
    if (int e = io_uring_register_buffers(&ring, iovs.data(), opt.window); e < 0)
      Die("io_uring_register_buffers", -e);
  }

  const uint64_t target = opt.mib << 20;
  uint64_t queued = 0;  // bytes handed to chunks so far
  RunResult res;

  auto submit_part = [&](unsigned i) {
    Slot& s = slots[i];
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (!sqe) {
      io_uring_submit(&ring);
      sqe = io_uring_get_sqe(&ring);
    }
    const char* p = s.data + s.done;
    size_t n = s.len - s.done;
    switch (mode) {
      case Mode::kSend:
        io_uring_prep_send(sqe, sfd, p, n, MSG_NOSIGNAL);
        break;
      case Mode::kSendZc:
        io_uring_prep_send_zc(sqe, sfd, p, n, MSG_NOSIGNAL,
                              IORING_SEND_ZC_REPORT_USAGE);
        break;
      case Mode::kSendZcFixed:
        io_uring_prep_send_zc_fixed(sqe, sfd, p, n, MSG_NOSIGNAL,
                                    IORING_SEND_ZC_REPORT_USAGE, i);
        break;
    }
    io_uring_sqe_set_data64(sqe, i);
    s.send_pending = true;
  };

  const double t0 = Now(CLOCK_MONOTONIC);
  const double deadline = t0 + opt.seconds;
  const double cpu0 = Now(CLOCK_THREAD_CPUTIME_ID);
  const double proc0 = ProcessCpu();
  bool stop = false;

  auto start_chunk = [&](unsigned i) {
    if (stop || queued >= target) return;
    Slot& s = slots[i];
    s.len = static_cast<size_t>(std::min<uint64_t>(size, target - queued));
    s.done = 0;
    queued += s.len;
    submit_part(i);
  };

  for (unsigned i = 0; i < opt.window; ++i) start_chunk(i);
  io_uring_submit(&ring);

  unsigned since_clock = 0;
  for (;;) {
    bool busy = std::any_of(slots.begin(), slots.end(),
                            [](const Slot& s) { return !s.Idle(); });
    if (!busy) break;
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{.tv_sec = 1, .tv_nsec = 0};
    int e = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
    if (e == -ETIME || e == -EINTR) {
      if (Now(CLOCK_MONOTONIC) > deadline + 10) Die("no progress", ETIMEDOUT);
      continue;
    }
    if (e < 0) Die("io_uring_wait_cqe", -e);

    unsigned head = 0, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      auto i = static_cast<unsigned>(io_uring_cqe_get_data64(cqe));
      Slot& s = slots[i];
      if (cqe->flags & IORING_CQE_F_NOTIF) {
        // The kernel no longer references the pages of that send.
        --s.notifs_pending;
        ++res.notifs;
        if (static_cast<uint32_t>(cqe->res) & IORING_NOTIF_USAGE_ZC_COPIED) ++res.copied;
      } else {
        if (cqe->res < 0) Die(ModeName(mode), -cqe->res);
        // F_MORE: a notification for this send will follow.
        if (cqe->flags & IORING_CQE_F_MORE) ++s.notifs_pending;
        s.send_pending = false;
        s.done += static_cast<size_t>(cqe->res);
        res.bytes += static_cast<uint64_t>(cqe->res);
        if (s.done < s.len) {  // short send: the rest from the same buffer
          ++res.partial;
          submit_part(i);
        }
      }
      if (s.Idle()) start_chunk(i);
    }
    io_uring_cq_advance(&ring, seen);
    if (++since_clock >= 16) {  // the clock is cheap, but not free
      since_clock = 0;
      if (Now(CLOCK_MONOTONIC) > deadline) stop = true;
    }
    io_uring_submit(&ring);
  }
  res.sender_cpu = Now(CLOCK_THREAD_CPUTIME_ID) - cpu0;

  shutdown(sfd, SHUT_WR);
  receiver.join();
  const double proc1 = ProcessCpu();
  res.wall = rx_end - t0;
  res.receiver_cpu = rx_cpu;
  res.other_cpu = std::max(0.0, (proc1 - proc0) - res.sender_cpu - res.receiver_cpu);
  if (rx_bytes.load() != res.bytes) {
    std::fprintf(stderr, "send_zc_bench: sent %llu bytes but received %llu\n",
                 static_cast<unsigned long long>(res.bytes),
                 static_cast<unsigned long long>(rx_bytes.load()));
    std::exit(2);
  }

  io_uring_queue_exit(&ring);
  for (Slot& s : slots) std::free(s.data);
  close(sfd);
  close(rfd);
  return res;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::vector<std::string> Split(std::string_view s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t c = s.find(',', pos);
    if (c == std::string_view::npos) c = s.size();
    if (c > pos) out.emplace_back(s.substr(pos, c - pos));
    pos = c + 1;
  }
  return out;
}

void Usage() {
  std::fprintf(stderr,
      "usage: send_zc_bench [--mib N] [--seconds S] [--window W] [--reps R]\n"
      "         [--sizes KiB,KiB,...] [--modes send,send_zc,send_zc_fixed]\n"
      "         [--families 4,6] [--json FILE]\n"
      "defaults: --mib 512 --seconds 5 --window 4 --reps 3 --sizes 4,16,64,256\n");
  std::exit(1);
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (i + 1 >= argc) Usage();
    const char* v = argv[++i];
    if (a == "--mib") o.mib = std::strtoull(v, nullptr, 10);
    else if (a == "--seconds") o.seconds = std::strtod(v, nullptr);
    else if (a == "--window") o.window = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
    else if (a == "--reps") o.reps = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
    else if (a == "--json") o.json_path = v;
    else if (a == "--sizes") {
      o.sizes.clear();
      for (auto& s : Split(v)) o.sizes.push_back(std::strtoull(s.c_str(), nullptr, 10) << 10);
    } else if (a == "--modes") {
      o.modes.clear();
      for (auto& s : Split(v)) {
        if (s == "send") o.modes.push_back(Mode::kSend);
        else if (s == "send_zc") o.modes.push_back(Mode::kSendZc);
        else if (s == "send_zc_fixed") o.modes.push_back(Mode::kSendZcFixed);
        else Usage();
      }
    } else if (a == "--families") {
      o.families.clear();
      for (auto& s : Split(v)) o.families.push_back(s == "6" ? AF_INET6 : AF_INET);
    } else {
      Usage();
    }
  }
  if (o.window == 0 || o.window > 32 || o.reps == 0 || o.sizes.empty() ||
      o.modes.empty() || o.mib == 0)
    Usage();
  return o;
}

struct Point {
  int family;
  Mode mode;
  size_t size;
  std::vector<RunResult> runs;
};

}  // namespace

int main(int argc, char** argv) {
  const Options opt = Parse(argc, argv);

  std::vector<Point> points;
  for (int f : opt.families) {
    auto [a, b] = LoopbackPair(f);
    if (a < 0) {
      std::fprintf(stderr, "send_zc_bench: %s loopback unavailable, skipped\n",
                   f == AF_INET ? "127.0.0.1" : "::1");
      continue;
    }
    close(a);
    close(b);
    for (size_t sz : opt.sizes)
      for (Mode m : opt.modes) points.push_back({f, m, sz, {}});
  }

  // Warm-up (page cache of the binary, socket memory, io_uring set-up).
  if (!points.empty()) {
    Options w = opt;
    w.mib = 64;
    RunOne(points[0].family, Mode::kSend, 16 << 10, w);
    RunOne(points[0].family, Mode::kSendZc, 16 << 10, w);
  }

  for (unsigned r = 0; r < opt.reps; ++r) {
    for (Point& p : points) {
      p.runs.push_back(RunOne(p.family, p.mode, p.size, opt));
      std::fprintf(stderr, ".");
    }
  }
  std::fprintf(stderr, "\n");

  // MB = 1e6 bytes, GB = 1e9 bytes. Each column is its own median.
  struct Row {
    const Point* p;
    double mbps, snd, rcv, other, copied_pct, partial;
  };
  std::vector<Row> rows;
  for (const Point& p : points) {
    std::vector<double> mbps, snd, rcv, oth;
    uint64_t notifs = 0, copied = 0, partial = 0;
    for (const RunResult& r : p.runs) {
      double gb = static_cast<double>(r.bytes) / 1e9;
      mbps.push_back(static_cast<double>(r.bytes) / 1e6 / r.wall);
      snd.push_back(r.sender_cpu / gb);
      rcv.push_back(r.receiver_cpu / gb);
      oth.push_back(r.other_cpu / gb);
      notifs += r.notifs;
      copied += r.copied;
      partial += r.partial;
    }
    rows.push_back({&p, Median(mbps), Median(snd), Median(rcv), Median(oth),
                    notifs ? 100.0 * static_cast<double>(copied) / static_cast<double>(notifs) : -1,
                    static_cast<double>(partial)});
  }

  std::printf("window %u, up to %llu MiB or %.1f s per run, median of %u\n\n",
              opt.window, static_cast<unsigned long long>(opt.mib), opt.seconds,
              opt.reps);
  std::printf("| addr | size | mode | MB/s | sender CPU s/GB | × send | receiver CPU s/GB | other CPU s/GB | ZC notifs copied |\n");
  std::printf("|---|---:|---|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& row : rows) {
    // The same family and size in mode "send", for the ratio.
    double base = 0;
    for (const Row& b : rows)
      if (b.p->family == row.p->family && b.p->size == row.p->size &&
          b.p->mode == Mode::kSend)
        base = b.snd;
    char ratio[32] = "–", copied[32] = "–";
    if (base > 0) std::snprintf(ratio, sizeof(ratio), "%.2f×", row.snd / base);
    if (row.copied_pct >= 0) std::snprintf(copied, sizeof(copied), "%.0f%%", row.copied_pct);
    std::printf("| %s | %zu KiB | %s | %.0f | %.3f | %s | %.3f | %.3f | %s |\n",
                row.p->family == AF_INET ? "127.0.0.1" : "::1", row.p->size >> 10,
                ModeName(row.p->mode), row.mbps, row.snd, ratio, row.rcv,
                row.other, copied);
  }

  if (!opt.json_path.empty()) {
    FILE* f = std::fopen(opt.json_path.c_str(), "w");
    if (!f) Die(opt.json_path.c_str(), errno);
    std::fprintf(f, "{\"window\":%u,\"mib\":%llu,\"seconds\":%g,\"reps\":%u,\"points\":[",
                 opt.window, static_cast<unsigned long long>(opt.mib), opt.seconds,
                 opt.reps);
    for (size_t k = 0; k < rows.size(); ++k) {
      const Row& row = rows[k];
      std::fprintf(f,
          "%s\n{\"addr\":\"%s\",\"size\":%zu,\"mode\":\"%s\",\"mb_per_s\":%.1f,"
          "\"sender_cpu_s_per_gb\":%.4f,\"receiver_cpu_s_per_gb\":%.4f,"
          "\"other_cpu_s_per_gb\":%.4f,\"zc_copied_pct\":%.1f,\"runs\":[",
          k ? "," : "", row.p->family == AF_INET ? "127.0.0.1" : "::1",
          row.p->size, ModeName(row.p->mode), row.mbps, row.snd, row.rcv,
          row.other, row.copied_pct);
      for (size_t j = 0; j < row.p->runs.size(); ++j) {
        const RunResult& r = row.p->runs[j];
        std::fprintf(f,
            "%s{\"bytes\":%llu,\"wall_s\":%.4f,\"sender_cpu_s\":%.4f,"
            "\"receiver_cpu_s\":%.4f,\"other_cpu_s\":%.4f,\"notifs\":%llu,"
            "\"copied\":%llu,\"partial_sends\":%llu}",
            j ? "," : "", static_cast<unsigned long long>(r.bytes), r.wall,
            r.sender_cpu, r.receiver_cpu, r.other_cpu,
            static_cast<unsigned long long>(r.notifs),
            static_cast<unsigned long long>(r.copied),
            static_cast<unsigned long long>(r.partial));
      }
      std::fprintf(f, "]}");
    }
    std::fprintf(f, "\n]}\n");
    std::fclose(f);
  }
  return 0;
}
