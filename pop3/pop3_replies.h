// The replies popgate itself sends before login. Kept in one place so the
// wording (and the RFC 2449/3206 response codes) is consistent.
#ifndef POPGATE_POP3_POP3_REPLIES_H_
#define POPGATE_POP3_POP3_REPLIES_H_

#include <string_view>

namespace popgate::replies {

// CAPA is assembled from these: USER only where plaintext logins are
// allowed, STLS only on a STARTTLS listener before TLS is up; then the
// tenant's `capabilities` and popgate's IMPLEMENTATION line.
inline constexpr std::string_view kCapaHead = "+OK Capability list follows\r\n";
inline constexpr std::string_view kCapaUser = "USER\r\n";
inline constexpr std::string_view kCapaStls = "STLS\r\n";
inline constexpr std::string_view kStlsGo = "+OK Begin TLS negotiation\r\n";
inline constexpr std::string_view kStlsAgain = "-ERR TLS is already active\r\n";
inline constexpr std::string_view kPlaintextRefused =
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure "
    "connections; use STLS first.\r\n";
inline constexpr std::string_view kUserOk = "+OK Send PASS\r\n";
inline constexpr std::string_view kUserMissing = "-ERR Missing username\r\n";
inline constexpr std::string_view kPassWithoutUser =
    "-ERR No username given, send USER first\r\n";
inline constexpr std::string_view kAuthFailed =
    "-ERR [AUTH] Authentication failed.\r\n";
inline constexpr std::string_view kTooManyFailures =
    "-ERR [AUTH] Authentication failed, too many failures; closing.\r\n";
inline constexpr std::string_view kBackendUnavailable =
    "-ERR [SYS/TEMP] Mail server temporarily unavailable, try again later.\r\n";
// The user's maildrop is open through another backend of ours (RFC 3206).
inline constexpr std::string_view kMaildropInUse =
    "-ERR [IN-USE] Your mailbox is in use by another session, try again "
    "later.\r\n";
inline constexpr std::string_view kBye = "+OK Logging out\r\n";
inline constexpr std::string_view kUnknownCommand =
    "-ERR Unknown command or not allowed before login\r\n";
inline constexpr std::string_view kLineTooLong = "-ERR Line too long\r\n";
inline constexpr std::string_view kBadBytes =
    "-ERR Command contains forbidden characters\r\n";
inline constexpr std::string_view kTooManyErrors =
    "-ERR Too many invalid commands; closing.\r\n";
inline constexpr std::string_view kIdleTimeout =
    "-ERR Disconnected for inactivity.\r\n";
inline constexpr std::string_view kShuttingDown =
    "-ERR [SYS/TEMP] Server shutting down.\r\n";
inline constexpr std::string_view kStlsUnavailable =
    "-ERR STLS not available on this listener\r\n";
inline constexpr std::string_view kAuthUnsupported =
    "-ERR Unsupported authentication mechanism\r\n";
inline constexpr std::string_view kSaslContinue = "+ \r\n";
inline constexpr std::string_view kSaslUsername = "+ VXNlcm5hbWU6\r\n";
inline constexpr std::string_view kSaslPassword = "+ UGFzc3dvcmQ6\r\n";
inline constexpr std::string_view kSaslCancelled =
    "-ERR Authentication cancelled\r\n";
inline constexpr std::string_view kSaslMalformed =
    "-ERR [AUTH] Malformed SASL response\r\n";
inline constexpr std::string_view kUnusableCredentials =
    "-ERR [AUTH] Username or password contains characters that cannot be "
    "used.\r\n";
// Replies after which the session closes.
inline constexpr std::string_view kLoginTimeout =
    "-ERR Login took too long; closing.\r\n";
inline constexpr std::string_view kTooManyCommands =
    "-ERR Too many commands before login; closing.\r\n";
inline constexpr std::string_view kEndlessLine =
    "-ERR Line too long; closing.\r\n";
// The hash pool's queue is full.
inline constexpr std::string_view kOverloaded =
    "-ERR [SYS/TEMP] Server busy, try again later.\r\n";
// Brute-force defence: the address or the user is blocked for failed
// logins (no password is checked), or the shared store cannot say
// (redis_down = "fail_closed").
inline constexpr std::string_view kLoginBlocked =
    "-ERR [SYS/TEMP] Too many failed logins; try again later\r\n";
inline constexpr std::string_view kLoginServiceUnavailable =
    "-ERR [SYS/TEMP] Login service temporarily unavailable\r\n";
// Connection and session limits ([limits], a tenant's max_sessions): the
// connection is closed after the reply. Each says what to do about it.
inline constexpr std::string_view kTooManyConnections =
    "-ERR [SYS/TEMP] Too many connections to this server, try again "
    "later.\r\n";
inline constexpr std::string_view kTooManyFromAddress =
    "-ERR [SYS/TEMP] Too many connections from your address, close some "
    "and try again later.\r\n";
inline constexpr std::string_view kTooManyPreloginFromAddress =
    "-ERR [SYS/TEMP] Too many connections from your address waiting to log "
    "in, log in or close them and try again.\r\n";
inline constexpr std::string_view kConnectingTooFast =
    "-ERR [SYS/TEMP] Connecting too fast from your address, wait a few "
    "seconds and try again.\r\n";
inline constexpr std::string_view kTenantFull =
    "-ERR [SYS/TEMP] Too many sessions for this mail domain, try again "
    "later.\r\n";
inline constexpr std::string_view kUserSessionsFull =
    "-ERR [IN-USE] Too many sessions open for this user, close one and try "
    "again.\r\n";

}  // namespace popgate::replies

#endif  // POPGATE_POP3_POP3_REPLIES_H_
