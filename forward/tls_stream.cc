#include "forward/tls_stream.h"

#include <errno.h>

#include <cstring>

#include "tls/ktls_socket.h"

namespace popgate {

TlsStream::TlsStream(Ring& ring, BufferRing& buffers, int fd,
                     std::unique_ptr<tls::TlsEngine> engine)
    : ring_(ring),
      buffers_(buffers),
      fd_(fd),
      engine_(std::move(engine)),
      send_mu_(ring),
      async_(std::make_shared<AsyncState>()) {
  async_->ring = &ring;
  // The waker runs on a pool thread; it shares ownership of the state so a
  // late call can never touch freed memory.
  engine_->SetAsyncWaker([state = async_] {
    if (state->state.exchange(2) == 1) state->ring->Post(state->waiter);
  });
}

TlsStream::~TlsStream() = default;

Task<void> TlsStream::WaitAsync() {
  struct Awaiter {
    AsyncState& s;
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) {
      s.waiter = h;
      int expected = 0;
      // Already fired (the pool was quicker than us): do not suspend.
      return s.state.compare_exchange_strong(expected, 1);
    }
    void await_resume() const noexcept { s.state.store(0); }
  };
  co_await Awaiter{*async_};
}

void TlsStream::ReleaseIdleBuffers() {
  engine_->ReleaseBuffers();
  // The send buffer keeps its capacity between records of a transfer and
  // is freed only when no flush is using it.
  if (!send_mu_.locked()) std::vector<char>().swap(sending_);
}

Task<int> TlsStream::Flush(absl::Duration timeout) {
  co_await send_mu_.Lock();
  int rc = 0;
  while (true) {
    if (engine_->PendingOutput().empty()) break;
    // Swapped out (not copied) so the engine may keep writing into its own
    // buffer while this one is on the wire.
    engine_->TakeOutput(sending_);
    std::string_view left(sending_.data(), sending_.size());
    // Usually all of it fits now; the timed send is only for the rest.
    int first = co_await SendNow(ring_, fd_, left.data(), left.size());
    if (first > 0) left.remove_prefix(static_cast<size_t>(first));
    if (first < 0 && first != -EAGAIN) {
      rc = first;
      left = {};
    }
    while (!left.empty()) {
      int n = co_await Send(ring_, fd_, left.data(), left.size(), timeout);
      if (n <= 0) {
        rc = n == 0 ? -EPIPE : n;
        break;
      }
      left.remove_prefix(static_cast<size_t>(n));
    }
    sending_.clear();
    if (rc < 0) break;
  }
  send_mu_.Unlock();
  co_return rc;
}

Task<int> TlsStream::Fill(absl::Duration timeout) {
  ProvidedRecv r{-ENOBUFS, -1};
  if (buffers_.ready()) {
    r = co_await RecvProvided(ring_, buffers_, fd_, timeout);
  }
  if (r.result == -ENOBUFS) {
    // Every provided buffer is in use: fall back to a private one.
    std::unique_ptr<char[]> buf(new char[BufferRing::kBufferSize]);
    int n =
        co_await Recv(ring_, fd_, buf.get(), BufferRing::kBufferSize, timeout);
    if (n > 0) engine_->FeedCiphertext({buf.get(), static_cast<size_t>(n)});
    co_return n;
  }
  if (r.result > 0 && r.buffer >= 0) {
    uint16_t id = static_cast<uint16_t>(r.buffer);
    engine_->FeedCiphertext({buffers_.Get(id), static_cast<size_t>(r.result)});
    buffers_.Recycle(id);
  } else if (r.buffer >= 0) {
    buffers_.Recycle(static_cast<uint16_t>(r.buffer));
  }
  co_return r.result;
}

Task<int> TlsStream::Handshake(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    tls::TlsResult r = engine_->Handshake();
    // Whatever happened, the peer needs what the engine produced (including
    // a fatal alert).
    int frc = co_await Flush(timeout);
    switch (r) {
      case tls::TlsResult::kOk:
        co_return frc;
      case tls::TlsResult::kWantAsync:
        co_await WaitAsync();
        continue;
      case tls::TlsResult::kWantRead: {
        if (frc < 0) co_return frc;
        absl::Duration left = deadline - absl::Now();
        if (left <= absl::ZeroDuration()) co_return -ECANCELED;
        int n = co_await Fill(left);
        if (n == 0) co_return -ECONNRESET;
        if (n < 0) co_return n;
        continue;
      }
      case tls::TlsResult::kClosed:
      case tls::TlsResult::kError:
        co_return -EPROTO;
    }
  }
}

Task<int> TlsStream::Read(std::span<char> buf, absl::Duration timeout) {
  while (true) {
    size_t n = 0;
    tls::TlsResult r = engine_->Read(buf, &n);
    if (!engine_->PendingOutput().empty()) {
      int frc = co_await Flush(timeout);
      if (frc < 0) co_return frc;
    }
    switch (r) {
      case tls::TlsResult::kOk:
        if (n > 0) co_return static_cast<int>(n);
        continue;
      case tls::TlsResult::kClosed:
        co_return 0;
      case tls::TlsResult::kError:
        co_return -EPROTO;
      case tls::TlsResult::kWantAsync:
        co_await WaitAsync();
        continue;
      case tls::TlsResult::kWantRead: {
        ReleaseIdleBuffers();  // about to wait: hold nothing
        int got = co_await Fill(timeout);
        if (got <= 0) co_return got;
        continue;
      }
    }
  }
}

Task<int> TlsStream::WaitReadable(absl::Duration timeout) {
  if (engine_->PendingPlaintext() > 0 || engine_->BufferedCiphertext() > 0) {
    co_return 1;
  }
  ReleaseIdleBuffers();  // about to wait: hold nothing
  co_return co_await Fill(timeout);
}

Task<int> TlsStream::WriteAll(std::string_view data, absl::Duration timeout) {
  if (engine_->Write({data.data(), data.size()}) != tls::TlsResult::kOk) {
    co_return -EPROTO;
  }
  co_return co_await Flush(timeout);
}

absl::Status TlsStream::HandOffToKernel() {
  if (engine_ == nullptr) {
    return absl::FailedPreconditionError("already handed to the kernel");
  }
  if (send_mu_.locked() || !sending_.empty()) {
    return absl::FailedPreconditionError("a send is in flight");
  }
  absl::StatusOr<tls::KtlsMaterial> material = engine_->ExportForKernel();
  engine_->ForgetSecrets();  // in `material` now, wiped when it goes
  if (!material.ok()) return material.status();
  absl::Status s = tls::InstallKernelTls(fd_, *material);
  if (s.ok()) {
    version_ = engine_->version();
    // BoringSSL's state is stale from here on: free it (and its memory).
    engine_.reset();
    std::vector<char>().swap(sending_);
  }
  return s;
}

std::string_view TlsStream::TlsVersion() const {
  return engine_ != nullptr ? engine_->version() : version_;
}

void TlsStream::ForgetSecrets() {
  if (engine_ != nullptr) engine_->ForgetSecrets();
}

Task<void> TlsStream::Close(absl::Duration timeout) {
  if (close_sent_) co_return;
  close_sent_ = true;
  if (engine_ == nullptr) {
    tls::SendKernelTlsCloseNotify(fd_);
    co_return;
  }
  engine_->Shutdown();
  co_await Flush(timeout);
}

}  // namespace popgate
