#include "forward/forward_copy.h"

#include <errno.h>
#include <sys/socket.h>

#include <memory>

#include "forward/forward_activity.h"
#include "runtime/join.h"
#include "forward/tls_stream.h"

namespace popgate {
namespace {

// Four TLS records' worth of plaintext: fewer, larger reads and sends on
// the plain side; the TLS side still encrypts in full 16 KB records.
constexpr size_t kChunk = 64 * 1024;

enum class CopyEnd { kEof, kSourceError, kSinkError, kIdle };

// Passes a FIN on: close_notify first when the sink is TLS.
Task<void> HalfClose(Stream& to) {
  if (auto* t = dynamic_cast<TlsStream*>(&to)) {
    co_await t->Close(absl::Seconds(5));
  }
  ::shutdown(to.fd(), SHUT_WR);
}

Task<CopyEnd> Copy(Stream& from, Stream& to, uint64_t& bytes,
                   ForwardActivity& activity) {
  while (true) {
    absl::Duration left = activity.Left();
    if (left <= absl::ZeroDuration()) co_return CopyEnd::kIdle;
    // Wait with no buffer held: idle sessions cost no chunk memory.
    int ready = co_await from.WaitReadable(left);
    if (ready == -ECANCELED) continue;  // re-check shared idleness
    if (ready == 0) {
      co_await HalfClose(to);
      co_return CopyEnd::kEof;
    }
    if (ready < 0) co_return CopyEnd::kSourceError;
    std::unique_ptr<char[]> buf(new char[kChunk]);
    int n = co_await from.Read({buf.get(), kChunk}, activity.idle_timeout);
    if (n == 0) {
      co_await HalfClose(to);
      co_return CopyEnd::kEof;
    }
    if (n < 0) co_return CopyEnd::kSourceError;
    activity.Touch();
    if (co_await to.WriteAll({buf.get(), static_cast<size_t>(n)},
                             activity.idle_timeout) < 0) {
      co_return CopyEnd::kSinkError;
    }
    bytes += static_cast<uint64_t>(n);
    activity.Touch();
  }
}

Detached RunCopy(Stream& from, Stream& to, uint64_t& bytes,
                 ForwardActivity& activity, CopyEnd& end, JoinCounter& join,
                 int cut_a, int cut_b) {
  end = co_await Copy(from, to, bytes, activity);
  if (activity.EndedCleanly(end == CopyEnd::kEof, end == CopyEnd::kIdle)) {
    end = CopyEnd::kEof;
  } else {
    ::shutdown(cut_a, SHUT_RDWR);
    ::shutdown(cut_b, SHUT_RDWR);
  }
  join.Done();
}

}  // namespace

Task<ForwardStats> ForwardCopy(Ring& /*ring*/, Stream& client, Stream& backend,
                               absl::Duration idle_timeout) {
  ForwardStats stats;
  ForwardActivity activity(idle_timeout);
  JoinCounter join(2);
  CopyEnd up = CopyEnd::kEof, down = CopyEnd::kEof;
  RunCopy(client, backend, stats.client_to_backend, activity, up, join,
          client.fd(), backend.fd());
  RunCopy(backend, client, stats.backend_to_client, activity, down, join,
          client.fd(), backend.fd());
  co_await join.Wait();
  if (up == CopyEnd::kIdle || down == CopyEnd::kIdle) {
    stats.end = "idle_timeout";
  } else if (up == CopyEnd::kSourceError || down == CopyEnd::kSinkError) {
    stats.end = "client_error";
  } else if (down == CopyEnd::kSourceError || up == CopyEnd::kSinkError) {
    stats.end = "backend_error";
  }
  co_return stats;
}

}  // namespace popgate
