// RFC 5034 AUTH before login: the PLAIN or LOGIN exchange with the client,
// from the mechanism (and any initial response) to decoded credentials.
#ifndef POPGATE_SESSION_SASL_EXCHANGE_H_
#define POPGATE_SESSION_SASL_EXCHANGE_H_

#include <string_view>

#include "absl/time/time.h"
#include "pop3/line_reader.h"
#include "pop3/sasl.h"
#include "runtime/stream.h"
#include "runtime/task.h"
#include "session/session_result.h"

namespace popgate {

// The client connection as the session has it before login. The referents
// outlive the exchange (the session's).
struct PreLoginClient {
  Stream& stream;
  LineReader& reader;
  absl::Duration idle_timeout;  // preauth_idle_timeout, per read and write
  absl::Time login_deadline;    // login_timeout, fixed at accept
};

// kEnded: the session ends, `ended` says why.
enum class SaslStatus { kOk, kCancelled, kMalformed, kEnded };

// Runs the exchange (with or without an initial response; "=" is an empty
// one) and yields the credentials. Payloads are never logged and are wiped
// after use.
Task<SaslStatus> SaslExchange(const PreLoginClient& client, SaslMechanism mech,
                              std::string_view initial, SaslCredentials& creds,
                              SessionResult& ended);

}  // namespace popgate

#endif  // POPGATE_SESSION_SASL_EXCHANGE_H_
