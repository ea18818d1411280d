#include "session/session_log.h"

#include <set>
#include <string>

#include "gtest/gtest.h"
#include "session/session_metrics.h"
#include "session/session_result.h"

namespace popgate {
namespace {

TEST(SessionLogTest, EscapesQuotesControlAndHighBytes) {
  EXPECT_EQ(JsonEscape("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(JsonEscape("x\ny\r\t"), "x\\ny\\r\\t");
  EXPECT_EQ(JsonEscape(std::string_view("\0\x1f", 2)), "\\u0000\\u001f");
  EXPECT_EQ(JsonEscape("\xc3\xa4"), "\\u00c3\\u00a4");
}

TEST(SessionLogTest, OneLineWithAllFields) {
  SessionRecord r;
  r.start = absl::FromUnixSeconds(1000);
  r.client = "127.0.0.1:5000";
  r.tenant = "example-com";
  r.user = "alice@example.com";
  r.backend = "127.0.0.1:11001";
  r.bytes_in = 12;
  r.bytes_out = 3456;
  r.forwarding = "splice";
  r.listener = "0.0.0.0:995";
  r.mechanism = "USER";
  r.result = SessionResult::kOk;
  std::string line = FormatSessionLog(r, absl::FromUnixSeconds(1002));
  // The frame comes first, in this order (base/log_line.h).
  EXPECT_TRUE(
      line.starts_with("{\"time\":\"1970-01-01T00:16:42.000Z\","
                       "\"level\":\"info\",\"event\":\"session\","))
      << line;
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  for (const char* want :
       {"\"client\":\"127.0.0.1:5000\"", "\"tenant\":\"example-com\"",
        "\"user\":\"alice@example.com\"", "\"backend\":\"127.0.0.1:11001\"",
        "\"bytes_in\":12", "\"bytes_out\":3456", "\"duration_ms\":2000",
        "\"result\":\"ok\"", "\"ended_by\":\"client\"",
        "\"forwarding\":\"splice\"", "\"time\":\"1970-01-01T00:16:42.000Z\"",
        "\"start\":\"1970-01-01T00:16:40.000Z\"", "\"reason\":\"none\"",
        "\"mechanism\":\"USER\"", "\"listener\":\"0.0.0.0:995\""}) {
    EXPECT_NE(line.find(want), std::string::npos) << want << " in " << line;
  }
}

// Every field, byte for byte: the line is formatted in place, piece by
// piece (AppendSessionLog), and must say exactly what the format in
// docs/logging.md says; the start line too.
TEST(SessionLogTest, WholeLineByteForByte) {
  SessionRecord r;
  r.start = absl::FromUnixMillis(1764850000123);
  r.listener = "0.0.0.0:995";
  r.mechanism = "PLAIN";
  r.session_id = "a1b2c3d4-1-ff";
  r.client = "[2001:db8::1]:5000";
  r.front = "10.0.0.1:443";
  r.tenant = "example-com";
  r.user = "al\"ice\\\x01\xc3\xa4@example.com";
  r.backend = "127.0.0.1:11001";
  r.bytes_in = 12;
  r.bytes_out = 3456789012345ull;
  r.auth_failures = 2;
  r.forwarding = "ktls-splice";
  r.ktls_fallback = "x\ty";
  r.tls = "TLSv1.3";
  r.tls_resumed = true;
  r.sni = "pop.example.com";
  r.backend_tls = "TLSv1.2";
  r.failovers = 3;
  r.identity = "proxy-v2";
  r.auth_cache_hit = true;
  r.throttled = true;
  r.result = SessionResult::kBackendRefused;
  r.login_failure = LoginFailure::kBackendRejected;
  r.detail = "-ERR [AUTH] no\r\n";
  const absl::Time end = absl::FromUnixMillis(1764850002456);
  EXPECT_EQ(FormatSessionLog(r, end),
            "{\"time\":\"2025-12-04T12:06:42.456Z\",\"level\":\"warning\""
            ",\"event\":\"session\",\"session\":\"a1b2c3d4-1-ff\""
            ",\"start\":\"2025-12-04T12:06:40.123Z\""
            ",\"listener\":\"0.0.0.0:995\",\"client\":\"[2001:db8::1]:5000\""
            ",\"front\":\"10.0.0.1:443\",\"tenant\":\"example-com\""
            ",\"user\":\"al\\\"ice\\\\\\u0001\\u00c3\\u00a4@example.com\""
            ",\"mechanism\":\"PLAIN\",\"backend\":\"127.0.0.1:11001\""
            ",\"bytes_in\":12,\"bytes_out\":3456789012345,\"auth_failures\":2"
            ",\"forwarding\":\"ktls-splice\",\"ktls\":true"
            ",\"ktls_fallback\":\"x\\ty\",\"tls\":\"TLSv1.3\""
            ",\"tls_resumed\":true,\"sni\":\"pop.example.com\""
            ",\"backend_tls\":\"TLSv1.2\",\"failovers\":3"
            ",\"identity\":\"proxy-v2\",\"auth_cache\":\"hit\""
            ",\"throttled\":true,\"duration_ms\":2333"
            ",\"result\":\"backend_refused\",\"ended_by\":\"backend\""
            ",\"reason\":\"backend_refused\""
            ",\"detail\":\"-ERR [AUTH] no\\r\\n\"}\n");
  EXPECT_EQ(FormatSessionStartLog(r, end),
            "{\"time\":\"2025-12-04T12:06:42.456Z\",\"level\":\"info\""
            ",\"event\":\"session_start\",\"session\":\"a1b2c3d4-1-ff\""
            ",\"listener\":\"0.0.0.0:995\",\"client\":\"[2001:db8::1]:5000\""
            ",\"front\":\"10.0.0.1:443\"}\n");
  // Appended after what the queue holds, which stays as it was.
  std::string queue = "earlier line\n";
  AppendSessionLog(&queue, r, end);
  EXPECT_EQ(queue, "earlier line\n" + FormatSessionLog(r, end));
}

TEST(SessionLogTest, SaysWhetherKernelTlsCarriedTheSession) {
  SessionRecord r;
  r.forwarding = "ktls-splice";
  std::string line = FormatSessionLog(r, absl::FromUnixSeconds(1));
  EXPECT_NE(line.find("\"ktls\":true"), std::string::npos) << line;
  EXPECT_EQ(line.find("ktls_fallback"), std::string::npos) << line;

  r.forwarding = "copy";
  r.ktls_fallback = "bytes buffered in user space";
  line = FormatSessionLog(r, absl::FromUnixSeconds(1));
  EXPECT_NE(line.find("\"ktls\":false"), std::string::npos) << line;
  EXPECT_NE(line.find("\"ktls_fallback\":\"bytes buffered in user space\""),
            std::string::npos)
      << line;
}

TEST(SessionLogTest, DetailOnlyWhenThereIsOneAndEscaped) {
  SessionRecord r;
  r.result = SessionResult::kBackendUnavailable;
  std::string line = FormatSessionLog(r, absl::FromUnixSeconds(1));
  EXPECT_EQ(line.find("\"detail\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"result\":\"backend_unavailable\""), std::string::npos)
      << line;
  EXPECT_NE(line.find("\"ended_by\":\"backend\""), std::string::npos) << line;

  r.detail = "tls: \"bad\"\r\ncert";
  line = FormatSessionLog(r, absl::FromUnixSeconds(1));
  EXPECT_NE(line.find("\"detail\":\"tls: \\\"bad\\\"\\r\\ncert\""),
            std::string::npos)
      << line;
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

constexpr SessionResult kAllResults[] = {
    SessionResult::kOk,
    SessionResult::kQuit,
    SessionResult::kClientClosed,
    SessionResult::kClientReset,
    SessionResult::kAuthFailed,
    SessionResult::kTooManyAuthFailures,
    SessionResult::kProtocolError,
    SessionResult::kTooManyCommands,
    SessionResult::kLineTooLong,
    SessionResult::kIdleTimeout,
    SessionResult::kLoginTimeout,
    SessionResult::kTlsError,
    SessionResult::kTlsHandshakeFailed,
    SessionResult::kTlsHandshakeTimeout,
    SessionResult::kOverloaded,
    SessionResult::kLoop,
    SessionResult::kBackendUnavailable,
    SessionResult::kBackendRefused,
    SessionResult::kBackendError,
    SessionResult::kBackendClosed,
    SessionResult::kBackendReset,
    SessionResult::kKtlsError,
    SessionResult::kProxyError,
    SessionResult::kNoBackend,
    SessionResult::kBackendFull,
    SessionResult::kInUse,
    SessionResult::kBackendCut,
    SessionResult::kProxyHeaderError,
    SessionResult::kProxyUntrusted,
    SessionResult::kLimited,
    SessionResult::kBlocked,
    SessionResult::kStoreUnavailable,
    SessionResult::kTenantFull,
    SessionResult::kUserSessionsFull,
};

TEST(SessionResultTest, NamesAreDistinctAndPlain) {
  std::set<std::string_view> names;
  for (SessionResult r : kAllResults) {
    std::string_view n = SessionResultName(r);
    EXPECT_TRUE(names.insert(n).second) << "duplicate name " << n;
    ASSERT_FALSE(n.empty());
    for (char c : n) {
      EXPECT_TRUE((c >= 'a' && c <= 'z') || c == '_') << n;
    }
  }
}

TEST(SessionResultTest, NamesExistingTestsAndOperatorsUse) {
  // These appear in integration tests and operators' log queries: stable.
  EXPECT_EQ(SessionResultName(SessionResult::kOk), "ok");
  EXPECT_EQ(SessionResultName(SessionResult::kQuit), "quit");
  EXPECT_EQ(SessionResultName(SessionResult::kIdleTimeout), "idle_timeout");
  EXPECT_EQ(SessionResultName(SessionResult::kTlsHandshakeTimeout),
            "tls_handshake_timeout");
  EXPECT_EQ(SessionResultName(SessionResult::kTlsHandshakeFailed),
            "tls_handshake_failed");
  EXPECT_EQ(SessionResultName(SessionResult::kAuthFailed), "auth_failed");
  EXPECT_EQ(SessionResultName(SessionResult::kBackendUnavailable),
            "backend_unavailable");
  EXPECT_EQ(SessionResultName(SessionResult::kClientClosed), "client_closed");
  EXPECT_EQ(SessionResultName(SessionResult::kLoop), "loop");
  EXPECT_EQ(SessionResultName(SessionResult::kOverloaded), "overloaded");
}

TEST(SessionResultTest, SideThatEnded) {
  EXPECT_EQ(SessionResultEndedBy(SessionResult::kOk), EndedBy::kClient);
  EXPECT_EQ(SessionResultEndedBy(SessionResult::kClientReset),
            EndedBy::kClient);
  EXPECT_EQ(SessionResultEndedBy(SessionResult::kBackendClosed),
            EndedBy::kBackend);
  EXPECT_EQ(SessionResultEndedBy(SessionResult::kBackendRefused),
            EndedBy::kBackend);
  EXPECT_EQ(SessionResultEndedBy(SessionResult::kIdleTimeout), EndedBy::kProxy);
  EXPECT_EQ(SessionResultEndedBy(SessionResult::kLoop), EndedBy::kProxy);
  EXPECT_EQ(EndedByName(EndedBy::kClient), "client");
  EXPECT_EQ(EndedByName(EndedBy::kBackend), "backend");
  EXPECT_EQ(EndedByName(EndedBy::kProxy), "proxy");
}

TEST(SessionResultTest, ForwardEndsMapToTheirOwnResults) {
  EXPECT_EQ(ResultOfForwardEnd(ForwardEnd::kQuit), SessionResult::kOk);
  std::set<SessionResult> seen;
  for (ForwardEnd e :
       {ForwardEnd::kQuit, ForwardEnd::kClientClosed, ForwardEnd::kClientReset,
        ForwardEnd::kBackendClosed, ForwardEnd::kBackendReset,
        ForwardEnd::kIdleTimeout, ForwardEnd::kProxyError}) {
    EXPECT_TRUE(seen.insert(ResultOfForwardEnd(e)).second)
        << ForwardEndName(e) << " shares a result with another end";
  }
  // A backend that dies mid-response is not "ok" (issue 8, 14).
  EXPECT_EQ(ResultOfForwardEnd(ForwardEnd::kBackendClosed),
            SessionResult::kBackendClosed);
}

// The reason vocabulary docs/logging.md lists: every result maps into it.
constexpr std::string_view kReasons[] = {
    "none",
    "bad_password",
    "unknown_user",
    "bad_credentials",
    "backend_rejected",
    "blocked",
    "limited",
    "overloaded",
    "in_use",
    "no_backend",
    "backend_unavailable",
    "backend_refused",
    "backend_closed",
    "backend_down",
    "tls_error",
    "timeout",
    "protocol_error",
    "proxy_header",
    "client_closed",
    "loop",
    "proxy_error",
    "store_unavailable",
};

TEST(SessionReasonTest, EveryResultHasAReasonFromTheVocabulary) {
  std::set<std::string_view> vocabulary(std::begin(kReasons),
                                        std::end(kReasons));
  std::set<std::string_view> used;
  for (SessionResult res : kAllResults) {
    for (bool forwarded : {false, true}) {
      for (LoginFailure f :
           {LoginFailure::kNone, LoginFailure::kBadPassword,
            LoginFailure::kUnknownUser, LoginFailure::kBadCredentials,
            LoginFailure::kBackendRejected}) {
        SessionRecord r;
        r.result = res;
        r.forwarding = forwarded ? "splice" : "";
        r.login_failure = f;
        r.auth_failures = f == LoginFailure::kNone ? 0 : 1;
        const std::string_view reason = SessionReason(r);
        EXPECT_TRUE(vocabulary.contains(reason))
            << reason << " for " << SessionResultName(res);
        used.insert(reason);
      }
    }
  }
  // And nothing in the documented list is dead.
  EXPECT_EQ(used, vocabulary);
}

TEST(SessionReasonTest, LoginFailuresAndLevels) {
  SessionRecord r;
  r.result = SessionResult::kAuthFailed;
  r.auth_failures = 1;
  r.login_failure = LoginFailure::kUnknownUser;
  EXPECT_EQ(SessionReason(r), "unknown_user");
  EXPECT_EQ(SessionLevel(r), LogLevel::kWarning);
  r.login_failure = LoginFailure::kBadPassword;
  r.result = SessionResult::kTooManyAuthFailures;
  EXPECT_EQ(SessionReason(r), "bad_password");
  // QUIT after a failed login: the failure is why it did not log in.
  r.result = SessionResult::kQuit;
  EXPECT_EQ(SessionReason(r), "bad_password");
  r.auth_failures = 0;
  EXPECT_EQ(SessionReason(r), "none");
  EXPECT_EQ(SessionLevel(r), LogLevel::kInfo);
  r.result = SessionResult::kLoginTimeout;
  EXPECT_EQ(SessionReason(r), "timeout");
  r.result = SessionResult::kLoop;
  EXPECT_EQ(SessionLevel(r), LogLevel::kError);
  r.result = SessionResult::kClientClosed;
  EXPECT_EQ(SessionReason(r), "client_closed");
  r.forwarding = "copy";
  EXPECT_EQ(SessionReason(r), "none");
  const std::string line = FormatSessionLog(r, absl::FromUnixSeconds(1));
  EXPECT_NE(line.find("\"reason\":\"none\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"mechanism\":\"\""), std::string::npos) << line;
}

TEST(SessionStartLogTest, OneLineWithIdClientAndListener) {
  SessionRecord r;
  r.session_id = "abcd1234-0-1";
  r.client = "192.0.2.7:40000";
  r.listener = "[::]:110";
  EXPECT_EQ(FormatSessionStartLog(r, absl::FromUnixSeconds(0)),
            "{\"time\":\"1970-01-01T00:00:00.000Z\",\"level\":\"info\","
            "\"event\":\"session_start\",\"session\":\"abcd1234-0-1\","
            "\"listener\":\"[::]:110\",\"client\":\"192.0.2.7:40000\"}\n");
  r.front = "10.0.0.1:5555";
  EXPECT_NE(FormatSessionStartLog(r, absl::FromUnixSeconds(0))
                .find(",\"front\":\"10.0.0.1:5555\"}"),
            std::string::npos);
}

TEST(SessionEndFromTest, MechanismLatencyAndThrottling) {
  SessionRecord r;
  r.start = absl::FromUnixSeconds(100);
  r.listener = "127.0.0.1:1110";
  r.tenant = "t";
  r.user = "alice@example.com";
  r.mechanism = "PLAIN";
  r.login_at = absl::FromUnixSeconds(101);
  r.login_answered = absl::FromUnixSeconds(101) + absl::Milliseconds(250);
  r.forwarding = "splice";
  r.result = SessionResult::kOk;
  metrics::SessionEnd e =
      SessionEndFrom(r, r.listener, absl::FromUnixSeconds(103));
  EXPECT_EQ(e.listener, "127.0.0.1:1110");
  EXPECT_EQ(e.mechanism, "plain");
  EXPECT_EQ(e.login_result, "ok");
  EXPECT_DOUBLE_EQ(e.login_seconds, 0.25);
  EXPECT_DOUBLE_EQ(e.duration_seconds, 3);
  EXPECT_EQ(e.refusal, "");

  SessionRecord f;
  f.mechanism = "USER";
  f.auth_failures = 2;
  f.throttled = true;
  f.result = SessionResult::kAuthFailed;
  e = SessionEndFrom(f, "x", absl::FromUnixSeconds(1));
  EXPECT_EQ(e.mechanism, "user");
  EXPECT_EQ(e.login_result, "failed");
  EXPECT_EQ(e.refusal, "throttled");
  EXPECT_LT(e.login_seconds, 0);  // no login time recorded
  f.result = SessionResult::kBlocked;
  EXPECT_EQ(SessionEndFrom(f, "x", absl::FromUnixSeconds(1)).refusal,
            "blocked");
  SessionRecord none;  // connected and left
  e = SessionEndFrom(none, "x", absl::FromUnixSeconds(1));
  EXPECT_EQ(e.mechanism, "");
  EXPECT_EQ(e.login_result, "");
}

}  // namespace
}  // namespace popgate
