#include "runtime/stream.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

namespace popgate {

void Stream::ShutdownWrite() { ::shutdown(fd(), SHUT_WR); }

Task<void> PlainStream::Close(absl::Duration /*timeout*/) { co_return; }

Task<int> PlainStream::Read(std::span<char> buf, absl::Duration timeout) {
  co_return co_await Recv(ring_, fd_, buf.data(), buf.size(), timeout);
}

Task<int> PlainStream::WaitReadable(absl::Duration timeout) {
  co_return co_await PollFd(ring_, fd_, POLLIN | POLLRDHUP, timeout);
}

Task<int> PlainStream::WriteAll(std::string_view data, absl::Duration timeout) {
  if (data.empty()) co_return 0;
  // Usually all of it fits now; the timed send is only for the rest.
  int first = co_await SendNow(ring_, fd_, data.data(), data.size());
  if (first > 0) data.remove_prefix(static_cast<size_t>(first));
  if (first < 0 && first != -EAGAIN) co_return first;
  while (!data.empty()) {
    int n = co_await Send(ring_, fd_, data.data(), data.size(), timeout);
    if (n < 0) co_return n;
    if (n == 0) co_return -EPIPE;
    data.remove_prefix(static_cast<size_t>(n));
  }
  co_return 0;
}

}  // namespace popgate
