// One client connection's state, shared by the files that make up a session
// (session.cc and the steps it calls: the front PROXY header, connection
// admission, login throttling). Internal to session/: nothing outside it
// includes this.
#ifndef POPGATE_SESSION_SESSION_STATE_H_
#define POPGATE_SESSION_SESSION_STATE_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "backend/backend_health.h"
#include "backend/maildrop_guard.h"
#include "base/block_pool.h"
#include "base/unique_fd.h"
#include "net/socket_address.h"
#include "pop3/line_reader.h"
#include "runtime/ring.h"
#include "runtime/stream.h"
#include "session/admission.h"
#include "session/login_timing.h"
#include "session/session_env.h"
#include "session/session_log.h"
#include "session/session_result.h"

namespace popgate {

// A client sending garbage is closed after this many invalid commands, or
// after this many overlong lines (RFC 2449: "if it keeps coming").
inline constexpr int kMaxInvalidCommands = 20;
inline constexpr int kMaxOverlongLines = 3;
// An overlong client line that goes on this long without a newline is not
// a mistake but a client holding the connection: close it.
inline constexpr size_t kMaxEndlessLine = 1024;

struct Verification {
  bool ok = false;
  absl::Duration took;
};

// A session slot on its backend (max_connections) and the user's maildrop
// claim (failover = "next"), held from the choice of backend until the
// session ends.
struct BackendHold {
  std::shared_ptr<BackendHealth> health;
  std::string guard_user;  // non-empty: claimed in MaildropGuard
  std::string guard_backend;

  BackendHold() = default;
  BackendHold(const BackendHold&) = delete;
  BackendHold& operator=(const BackendHold&) = delete;
  ~BackendHold() { Release(); }
  void Release() {
    if (health != nullptr) {
      health->Release();
      health.reset();
    }
    if (!guard_user.empty()) {
      MaildropGuard::Process().Release(guard_user, guard_backend);
      guard_user.clear();
    }
  }
};

// From the worker's pool (base/block_pool.h): one per connection, and
// larger than malloc's per-thread cache takes.
struct SessionState : PoolAllocated {
  SessionState(SessionEnv& w, int fd, int listener)
      : worker(w),
        ring(w.ring()),
        snap(w.snapshot()),
        listener_index(listener),
        client_fd(fd),
        client(std::make_unique<PlainStream>(w.ring(), fd)),
        reader(NewClientReader()),
        login_deadline(absl::Now() + snap->config.server.login_timeout) {}

  static std::unique_ptr<LineReader> NewClientReader() {
    return std::make_unique<LineReader>(1024, LineReader::kMaxLine,
                                        kMaxEndlessLine);
  }

  const ListenerConfig& listener() const {
    return snap->config.listeners[listener_index];
  }
  // RFC 2595: no plaintext password on an unprotected connection unless
  // the operator allows it (for trusted networks by default).
  bool PlaintextLoginAllowed() const {
    if (tls_active) return true;
    switch (listener().plaintext_auth) {
      case PlaintextAuth::kAlways:
        return true;
      case PlaintextAuth::kNever:
        return false;
      case PlaintextAuth::kTrusted:
        return trusted_client;
    }
    return false;
  }

  SessionEnv& worker;
  Ring& ring;
  std::shared_ptr<const Snapshot> snap;
  int listener_index;
  int client_fd;
  std::unique_ptr<Stream> client;
  bool tls_active = false;
  bool trusted_client = false;
  std::string sni_tenant;              // tenant chosen by the TLS SNI name
  std::unique_ptr<LineReader> reader;  // freed once forwarding starts
  SessionRecord rec;
  LiveSession live;
  UniqueFd backend;
  std::unique_ptr<Stream> backend_stream;
  std::string backend_reply;     // the backend's +OK to PASS
  std::string backend_leftover;  // anything it sent after that
  // Fixed at accept: login must succeed before it (login_timeout), however
  // the client spreads its bytes.
  absl::Time login_deadline;
  // The popgates the client came through (its XPOPGATE-LOOP), for loop
  // detection; empty for ordinary clients.
  std::vector<std::string> loop_upstream;
  // The last refusal the client may retry after ([IN-USE], [SYS/TEMP]
  // from the backend or the maildrop guard): the result if it leaves.
  std::optional<SessionResult> temp_refusal;
  // The client's address (the socket's peer) and TLS cipher, for the
  // backend's view of the client (client_identity).
  SocketAddress peer;
  // BoringSSL's static cipher table: no copy per session.
  std::string_view tls_cipher;
  // The backend slot and maildrop claim of this session (released when it
  // ends).
  BackendHold hold;
  // Issue 10. The front balancer's PROXY header: its destination (what
  // the client connected to, for client_identity), and whether it was a
  // LOCAL command (the balancer's own check: not a client). Behind a
  // pointer: most listeners take no PROXY header, and every session would
  // carry the address's 136 bytes.
  std::unique_ptr<SocketAddress> front_dst;
  bool front_local = false;
  // The client's address group (limits and throttling) and whether no
  // limit applies to it (exempt_networks, a LOCAL check).
  std::string address_group;
  bool limits_exempt = false;
  // Connection, tenant and user session slots (released when it ends).
  AdmissionHold admission;

  // For each client read and write before login: the idle timeout, cut
  // short by the login deadline.
  absl::Duration ClientTimeout() const {
    return PreLoginTimeout(snap->config.server.preauth_idle_timeout,
                           login_deadline);
  }
  bool PastLoginDeadline() const { return absl::Now() >= login_deadline; }
};

}  // namespace popgate

#endif  // POPGATE_SESSION_SESSION_STATE_H_
