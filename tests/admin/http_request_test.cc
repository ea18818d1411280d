#include "admin/http_request.h"

#include <string>

#include "gtest/gtest.h"

namespace popgate::admin {
namespace {

TEST(HttpRequestTest, SimpleGet) {
  ParseResult r = ParseHttpRequest(
      "GET /sessions?tenant=a%20b&user=x+y HTTP/1.1\r\nHost: h\r\n"
      "Accept:  text/plain \r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete) << r.error;
  EXPECT_EQ(r.request.method, "GET");
  EXPECT_EQ(r.request.path, "/sessions");
  EXPECT_EQ(r.request.version_minor, 1);
  EXPECT_EQ(r.request.Header("accept"), "text/plain");
  EXPECT_EQ(r.request.Header("host"), "h");
  EXPECT_FALSE(r.request.Header("cookie").has_value());
  EXPECT_EQ(r.request.QueryParam("tenant"), "a b");
  EXPECT_EQ(r.request.QueryParam("user"), "x y");
  EXPECT_FALSE(r.request.QueryParam("backend").has_value());
}

TEST(HttpRequestTest, BareLfAndHttp10) {
  ParseResult r = ParseHttpRequest("GET / HTTP/1.0\nHost: h\n\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.request.version_minor, 0);
}

TEST(HttpRequestTest, IncompleteUntilTheEmptyLine) {
  const std::string full =
      "POST /reload HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
  for (size_t n = 0; n < full.size(); ++n) {
    EXPECT_EQ(ParseHttpRequest(full.substr(0, n)).status,
              ParseStatus::kIncomplete)
        << n;
  }
  ParseResult r = ParseHttpRequest(full + "extra");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.request.body, "abc");
  EXPECT_EQ(r.consumed, full.size());
}

TEST(HttpRequestTest, PathIsDecoded) {
  ParseResult r = ParseHttpRequest(
      "POST /backends/%5B%3A%3A1%5D%3A110/drain HTTP/1.1\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.request.path, "/backends/[::1]:110/drain");
}

struct Bad {
  std::string text;
  int status;
};

class HttpRequestErrorTest : public testing::TestWithParam<Bad> {};

TEST_P(HttpRequestErrorTest, Refused) {
  ParseResult r = ParseHttpRequest(GetParam().text);
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error_status, GetParam().status) << r.error;
  EXPECT_FALSE(r.error.empty());
}

INSTANTIATE_TEST_SUITE_P(
    All, HttpRequestErrorTest,
    testing::Values(
        Bad{"GET /\r\n\r\n", 400}, Bad{"GET  / HTTP/1.1\r\n\r\n", 400},
        Bad{"GET http://x/ HTTP/1.1\r\n\r\n", 400},
        Bad{"GET / HTTP/2.0\r\n\r\n", 505}, Bad{"GET / FOO\r\n\r\n", 400},
        Bad{"G(T / HTTP/1.1\r\n\r\n", 400},
        Bad{"GET /\x01 HTTP/1.1\r\n\r\n", 400},
        Bad{"GET /%zz HTTP/1.1\r\n\r\n", 400},
        Bad{"GET /%00 HTTP/1.1\r\n\r\n", 400},
        Bad{"GET / HTTP/1.1\rX\r\n\r\n", 400},
        Bad{"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400},
        Bad{"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400},
        Bad{"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400},
        Bad{"GET / HTTP/1.1\r\nA b: c\r\n\r\n", 400},
        Bad{"GET / HTTP/1.1\r\nA : c\r\n\r\n", 400},
        Bad{"GET / HTTP/1.1\r\nA: \x7f\r\n\r\n", 400},
        Bad{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
        Bad{"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
        Bad{"POST / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n", 400},
        Bad{"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400},
        Bad{"POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", 413},
        Bad{"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            400},
        Bad{"GET /" + std::string(9000, 'a'), 414},
        Bad{"GET / HTTP/1.1\r\nA: " + std::string(17000, 'a'), 431}));

TEST(HttpRequestTest, TooManyHeaders) {
  std::string text = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 65; ++i) text += "X: y\r\n";
  text += "\r\n";
  ParseResult r = ParseHttpRequest(text);
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error_status, 431);
}

TEST(HttpRequestTest, SixtyFourHeadersAreFine) {
  std::string text = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 64; ++i) text += "X: y\r\n";
  text += "\r\n";
  EXPECT_EQ(ParseHttpRequest(text).status, ParseStatus::kComplete);
}

TEST(HttpRequestTest, SameContentLengthTwiceIsFine) {
  ParseResult r = ParseHttpRequest(
      "POST / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\nx");
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.request.body, "x");
}

TEST(PercentDecodeTest, Cases) {
  EXPECT_EQ(PercentDecode("a%2Fb", false), "a/b");
  EXPECT_EQ(PercentDecode("a+b", false), "a+b");
  EXPECT_EQ(PercentDecode("a+b", true), "a b");
  EXPECT_FALSE(PercentDecode("%", false).has_value());
  EXPECT_FALSE(PercentDecode("%4", false).has_value());
  EXPECT_FALSE(PercentDecode("%0a", false).has_value());
}

}  // namespace
}  // namespace popgate::admin
