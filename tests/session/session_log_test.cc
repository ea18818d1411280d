#include "session/session_log.h"

#include "gtest/gtest.h"

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
  r.result = "ok";
  std::string line = FormatSessionLog(r, absl::FromUnixSeconds(1002));
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  for (const char* want :
       {"\"client\":\"127.0.0.1:5000\"", "\"tenant\":\"example-com\"",
        "\"user\":\"alice@example.com\"", "\"backend\":\"127.0.0.1:11001\"",
        "\"bytes_in\":12", "\"bytes_out\":3456", "\"duration_ms\":2000",
        "\"result\":\"ok\"", "\"forwarding\":\"splice\"",
        "\"time\":\"1970-01-01T00:16:42.000Z\""}) {
    EXPECT_NE(line.find(want), std::string::npos) << want << " in " << line;
  }
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

}  // namespace
}  // namespace popgate
