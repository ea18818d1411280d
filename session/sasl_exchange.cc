#include "session/sasl_exchange.h"

#include <optional>
#include <string>
#include <string_view>

#include "absl/time/clock.h"
#include "base/wipe.h"
#include "forward/read_line.h"
#include "pop3/pop3_replies.h"
#include "session/login_timing.h"

namespace popgate {
namespace {

// Reads one SASL client response line (base64, or "*" to cancel).
Task<SaslStatus> ReadSaslLine(const PreLoginClient& c, std::string& out,
                              SessionResult& ended) {
  std::string_view line;
  LineStatus st = co_await ReadLine(c.stream, c.reader, line, c.idle_timeout,
                                    c.login_deadline);
  if (st == LineStatus::kTooLong) co_return SaslStatus::kMalformed;
  if (st == LineStatus::kTimeout) {
    ended = absl::Now() >= c.login_deadline ? SessionResult::kLoginTimeout
                                            : SessionResult::kIdleTimeout;
    co_return SaslStatus::kEnded;
  }
  if (st == LineStatus::kEndless) {
    ended = SessionResult::kLineTooLong;
    co_return SaslStatus::kEnded;
  }
  if (st != LineStatus::kLine) {
    ended = SessionResult::kClientClosed;
    co_return SaslStatus::kEnded;
  }
  if (line == "*") co_return SaslStatus::kCancelled;
  out = std::string(line);
  co_return SaslStatus::kOk;
}

}  // namespace

Task<SaslStatus> SaslExchange(const PreLoginClient& c, SaslMechanism mech,
                              std::string_view initial, SaslCredentials& creds,
                              SessionResult& ended) {
  // Each write is bounded afresh, as the session's own are.
  auto timeout = [&c] {
    return PreLoginTimeout(c.idle_timeout, c.login_deadline);
  };
  std::string response(initial == "=" ? std::string_view() : initial);
  if (mech == SaslMechanism::kPlain) {
    if (initial.empty()) {
      if (co_await c.stream.WriteAll(replies::kSaslContinue, timeout()) < 0) {
        ended = SessionResult::kClientClosed;
        co_return SaslStatus::kEnded;
      }
      SaslStatus st = co_await ReadSaslLine(c, response, ended);
      if (st != SaslStatus::kOk) co_return st;
    }
    std::optional<SaslCredentials> decoded = DecodeSaslPlain(response);
    Wipe(response);
    if (!decoded) co_return SaslStatus::kMalformed;
    creds = *std::move(decoded);
    co_return SaslStatus::kOk;
  }
  // LOGIN: the initial response, if any, is the username.
  if (initial.empty()) {
    if (co_await c.stream.WriteAll(replies::kSaslUsername, timeout()) < 0) {
      ended = SessionResult::kClientClosed;
      co_return SaslStatus::kEnded;
    }
    SaslStatus st = co_await ReadSaslLine(c, response, ended);
    if (st != SaslStatus::kOk) co_return st;
  }
  std::optional<std::string> user = DecodeBase64(response);
  if (!user || user->empty()) co_return SaslStatus::kMalformed;
  if (co_await c.stream.WriteAll(replies::kSaslPassword, timeout()) < 0) {
    ended = SessionResult::kClientClosed;
    co_return SaslStatus::kEnded;
  }
  SaslStatus st = co_await ReadSaslLine(c, response, ended);
  if (st != SaslStatus::kOk) co_return st;
  std::optional<std::string> password = DecodeBase64(response);
  Wipe(response);
  if (!password || password->empty()) co_return SaslStatus::kMalformed;
  creds.user = *std::move(user);
  creds.password = *std::move(password);
  co_return SaslStatus::kOk;
}

}  // namespace popgate
