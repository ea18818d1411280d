// What one backend's CAPA answer said at the latest login through this
// process, so that the next login can send PASS without waiting for the
// USER reply (RFC 2449 PIPELINING): one round trip to the backend less per
// login. Every worker reads and writes it (one relaxed atomic byte); a
// stale word costs nothing worse than the login it describes (see
// LoginToBackend in backend_login.h for what is sent on each word).
#ifndef POPGATE_BACKEND_CAPA_MEMO_H_
#define POPGATE_BACKEND_CAPA_MEMO_H_

#include <atomic>
#include <cstdint>

namespace popgate {

enum class BackendPipelining : uint8_t {
  kUnknown,  // no CAPA answer seen yet: wait for USER's reply
  kYes,      // CAPA listed PIPELINING and named no popgate
  kNo,       // anything else (no PIPELINING, no CAPA, another popgate)
};

class CapaMemo {
 public:
  BackendPipelining pipelining() const {
    return static_cast<BackendPipelining>(
        word_.load(std::memory_order_relaxed));
  }
  void set_pipelining(BackendPipelining p) {
    word_.store(static_cast<uint8_t>(p), std::memory_order_relaxed);
  }

 private:
  std::atomic<uint8_t> word_{static_cast<uint8_t>(BackendPipelining::kUnknown)};
};

}  // namespace popgate

#endif  // POPGATE_BACKEND_CAPA_MEMO_H_
