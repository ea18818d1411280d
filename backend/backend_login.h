// Logging in to the chosen backend: connect (backend_connect.h), CAPA,
// the client's identity (PROXY v2 / XCLIENT), USER and PASS or a master
// login.
#ifndef POPGATE_BACKEND_BACKEND_LOGIN_H_
#define POPGATE_BACKEND_BACKEND_LOGIN_H_

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "backend/backend_connect.h"
#include "backend/capa_memo.h"
#include "base/unique_fd.h"
#include "config/config.h"
#include "net/socket_address.h"
#include "runtime/buffer_ring.h"
#include "runtime/ring.h"
#include "runtime/stream.h"
#include "runtime/task.h"
#include "tls/tls_context.h"

namespace popgate {

// Run-time loop detection (a backend address that leads back to us, maybe
// through other popgate instances).
//
// Every popgate process draws a random token at start (ProcessLoopToken;
// the same for all its workers) and names it in its CAPA answer:
// "IMPLEMENTATION popgate popgate-id=<16 hex>" (RFC 2449's free-form
// implementation line). Not in the greeting or the USER answer: clients
// and tests compare those texts. popgate sends CAPA to every backend,
// pipelined with USER (no extra round trip), and when the answer names a
// token:
//  - our own, or one of the popgates our client came through (`upstream`):
//    a loop. We close without PASS (kLoop) and the client gets -ERR
//    [SYS/TEMP].
//  - another: the backend is another popgate. Before PASS we tell it who we
//    are and who came before us, "XPOPGATE-LOOP <ours> <upstream...>", so
//    that it recognises us should its own backend lead back here.
// A -> B -> A: A's session tells B "XPOPGATE-LOOP A"; B's session logs in to
// A, whose CAPA names A, which B's session has in its upstream list: a
// loop, seen by B, which answers A's PASS with kLoopReply; A, seeing that
// exact reply from a popgate, reports the loop too. A -> A is caught by A
// at once. A chain of more than kMaxPopgateHops popgates counts as a loop
// (no sane setup chains that many proxies, and it bounds the command).
// Backends that are not popgate never see XPOPGATE-LOOP.
inline constexpr std::string_view kLoopTokenTag = "popgate-id=";
inline constexpr size_t kLoopTokenLength = 16;  // hex digits
inline constexpr std::string_view kLoopCommand = "XPOPGATE-LOOP";
inline constexpr std::string_view kLoopReply =
    "-ERR [SYS/TEMP] Proxy loop detected.";
inline constexpr size_t kMaxPopgateHops = 8;

// This process's token: 16 lowercase hex digits from the kernel's RNG.
const std::string& ProcessLoopToken();
// True for 16 lowercase hex digits.
bool IsLoopToken(std::string_view token);
// The token a backend's line names after kLoopTokenTag, if any.
std::optional<std::string_view> FindLoopToken(std::string_view line);

struct LoopGuard {
  std::string_view own;                   // ProcessLoopToken()
  std::span<const std::string> upstream;  // from the client's XPOPGATE-LOOP
};

// How the backend learns who the client is (config: client_identity).
struct BackendIdentity {
  ClientIdentity mode = ClientIdentity::kNone;
  // The client's address and the address it connected to (ours): from the
  // socket today, from the front balancer's PROXY header later.
  SocketAddress client;
  SocketAddress local;
  std::string session_id;  // ours; XCLIENT SESSION
  // Client-side TLS, for PROXY v2's TLVs (empty version: plain).
  std::string tls_version;  // "TLSv1.3"
  std::string tls_cipher;
  std::string sni;
  // Proxies the client came through before the backend (XPOPGATE-LOOP
  // chain + us): XCLIENT TTL counts down from kMaxPopgateHops with it.
  int hops = 1;
};

// Whose credentials go to the backend (config: backend_login).
struct BackendCredentials {
  BackendLoginMode mode = BackendLoginMode::kClient;
  std::string_view user;      // the user's backend name (username_mode)
  std::string_view password;  // the client's; kMaster: the master password
  MasterLoginMethod method = MasterLoginMethod::kSeparator;
  std::string_view master_user;
  std::string_view separator = "*";
};

struct BackendLoginParams {
  const SocketAddress* addr = nullptr;
  BackendCredentials creds;
  // Bounds connect, greeting, STLS, CAPA, XCLIENT and the USER reply.
  absl::Duration connect_timeout = absl::Seconds(10);
  // The PASS (or AUTH) reply: backends delay failed logins on purpose.
  absl::Duration auth_timeout = absl::Seconds(30);
  const BackendTlsParams* tls = nullptr;
  LoopGuard loop;
  BackendIdentity identity;
  int* fd_slot = nullptr;  // see BackendConnectParams
  // This backend's memo (BackendHealth::capa_memo): every CAPA answer
  // updates it, and kYes puts PASS in the first flight. Null: never
  // (`[server] backend_pipelining = false`).
  CapaMemo* capa_memo = nullptr;
};

struct BackendLoginResult {
  enum class Outcome {
    kOk,           // logged in; `reply` is the backend's +OK line
    kRefused,      // the backend answered -ERR to USER or PASS; `reply` has
                   // it. Also for credentials that cannot go into a line
                   // (CR, LF, NUL, too long): then nothing was sent
    kUnavailable,  // connect/greeting failed or timed out; `error` says why
    kLoop,         // the backend is us, or leads back to us
  };
  Outcome outcome = Outcome::kUnavailable;
  // kUnavailable because the backend is not serving (BackendConnection's
  // health_failure): passive health marking counts it.
  bool health_failure = false;
  // The password (or AUTH) line went out: from then on the backend may
  // have opened the maildrop, so the login must not be retried elsewhere.
  bool credentials_sent = false;
  // The client's identity reached the backend: the PROXY v2 header went out
  // (with the client's address, not LOCAL), or the backend answered +OK to
  // XCLIENT. False in mode none.
  bool identity_sent = false;
  // Why not, when the mode asked for it (XCLIENT not offered, refused, or
  // not formattable): for the log. The login goes on without it.
  std::string identity_error;
  UniqueFd fd;
  // The byte stream to the backend (plain or TLS), set when kOk.
  std::unique_ptr<Stream> stream;
  std::string reply;     // without CRLF
  std::string error;     // for the log; never contains the password
  std::string leftover;  // bytes the backend sent after its reply
};

// What goes to the backend, in order (one flight per line of this list):
//  - proxy-v2: the PROXY v2 header right after connect (LOCAL when the
//    client's address is unknown), then as in mode none.
//  - none / proxy-v2: CAPA + USER pipelined; then [XPOPGATE-LOOP] + PASS.
//    When the memo (CapaMemo) says the backend's CAPA listed PIPELINING
//    and named no popgate at the latest login: CAPA + USER + PASS in one
//    flight (RFC 2449 PIPELINING), one round trip less. Its CAPA answer is
//    still read: a loop to us or a popgate we came through is still kLoop
//    (then PASS went out, to a popgate: itself or one that finds the loop
//    at its own login); any other popgate gets no XPOPGATE-LOOP on this
//    login, and the memo (now kNo) makes the next one wait again. The same
//    for XCLIENT offered in the greeting and for the master separator
//    login (CAPA + XCLIENT + USER + PASS).
//  - xclient: Dovecot offers XCLIENT in its greeting ("+OK [XCLIENT] ...",
//    to peers in its login_trusted_networks; 2.3 does not list it in CAPA):
//    then CAPA + XCLIENT + USER pipelined. Otherwise CAPA alone, and
//    XCLIENT + USER if a CAPA line offers XCLIENT (other servers), else
//    USER. A -ERR to XCLIENT never fails the login (identity_error says so).
//  - master, method separator: USER <user><separator><master_user>, PASS
//    <master password>; a user that already contains the separator is
//    refused before connecting (a client must not choose the master login).
//  - master, method sasl-plain: CAPA alone (the loop check needs its answer
//    before credentials go out), then [XPOPGATE-LOOP] + "AUTH PLAIN
//    <base64(user NUL master_user NUL password)>" (RFC 4616, RFC 5034's
//    initial response), or "AUTH PLAIN", "+ ", the base64 line when the
//    initial response would make the line longer than 255 octets.
// Every line with client bytes goes through CheckLineArgument / SafeForLine
// before anything is sent (pop3/line_safety.h); a refusal is kRefused with
// an [AUTH] reply and nothing sent (not even a connection).
Task<BackendLoginResult> LoginToBackend(Ring& ring,
                                        const BackendLoginParams& p);

}  // namespace popgate

#endif  // POPGATE_BACKEND_BACKEND_LOGIN_H_
