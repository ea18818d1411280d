// The admin HTTP server over loopback: raw sockets as clients (what curl
// sends), routes, the token, the unix socket, asynchronous answers.
#include "admin/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "base/unique_fd.h"
#include "gtest/gtest.h"

namespace popgate::admin {
namespace {

// Reads until EOF or 5 s.
std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

UniqueFd ConnectTcp(const std::string& bound) {
  const size_t colon = bound.rfind(':');
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(bound.substr(colon + 1), &port));
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(port));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)),
            0);
  return fd;
}

std::string Exchange(const std::string& bound, const std::string& request) {
  UniqueFd fd = ConnectTcp(bound);
  EXPECT_EQ(::write(fd.get(), request.data(), request.size()),
            static_cast<ssize_t>(request.size()));
  return ReadAll(fd.get());
}

std::string Get(const std::string& bound, const std::string& path,
                const std::string& extra = "") {
  return Exchange(bound,
                  "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n");
}

class HttpServerTest : public testing::Test {
 protected:
  void StartServer(HttpServerOptions o) {
    server_ = std::make_unique<HttpServer>(std::move(o));
    server_->Route(
        "GET", "/healthz",
        [](const HttpRequest&, Respond respond) {
          respond(HttpResponse::Text(200, "ok"));
        },
        /*open=*/true);
    server_->Route("GET", "/echo", [](const HttpRequest& req, Respond respond) {
      respond(HttpResponse::Text(200, req.QueryParam("v").value_or("-")));
    });
    server_->Route("POST", "/backends/{}/drain",
                   [](const HttpRequest& req, Respond respond) {
                     respond(HttpResponse::Json(
                         200, "{\"backend\":\"" + req.params[0] + "\"}"));
                   });
    // Answered later from another thread.
    server_->Route("GET", "/later", [](const HttpRequest&, Respond respond) {
      std::thread([respond] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        respond(HttpResponse::Text(200, "later"));
      }).detach();
    });
    server_->Route("GET", "/never", [](const HttpRequest&, Respond) {});
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, RoutesAndErrors) {
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  StartServer(o);
  const std::string b = server_->bound();
  std::string r = Get(b, "/healthz");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_NE(r.find("Content-Length: 3\r\n"), std::string::npos);
  EXPECT_NE(r.find("Connection: close\r\n"), std::string::npos);
  EXPECT_TRUE(r.ends_with("\r\n\r\nok\n")) << r;
  EXPECT_TRUE(Get(b, "/echo?v=a%20b").ends_with("a b\n"));
  EXPECT_TRUE(Get(b, "/nothing").starts_with("HTTP/1.1 404 "));
  EXPECT_TRUE(Exchange(b, "POST /healthz HTTP/1.1\r\n\r\n")
                  .starts_with("HTTP/1.1 405 "));
  r = Exchange(b, "POST /backends/10.0.0.1:110/drain HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 ")) << r;
  EXPECT_NE(r.find("{\"backend\":\"10.0.0.1:110\"}"), std::string::npos);
  EXPECT_TRUE(
      Exchange(b, "GET / HTTP/3.0\r\n\r\n").starts_with("HTTP/1.1 505 "));
  EXPECT_TRUE(
      Exchange(b, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
          .starts_with("HTTP/1.1 501 "));
  EXPECT_TRUE(Exchange(b, "GET /" + std::string(9000, 'a'))
                  .starts_with("HTTP/1.1 414 "));
}

TEST_F(HttpServerTest, AsyncAnswersAndTimeout) {
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  o.request_timeout = absl::Milliseconds(700);
  StartServer(o);
  const std::string b = server_->bound();
  EXPECT_TRUE(Get(b, "/later").ends_with("later\n"));
  EXPECT_TRUE(Get(b, "/never").starts_with("HTTP/1.1 504 "));
  // A client that sends half a request gets 408 at the deadline.
  UniqueFd fd = ConnectTcp(b);
  ASSERT_EQ(::write(fd.get(), "GET / HT", 8), 8);
  EXPECT_TRUE(ReadAll(fd.get()).starts_with("HTTP/1.1 408 "));
}

TEST_F(HttpServerTest, TokenGuardsAllButOpenRoutes) {
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  o.token = "s3cret-token";
  std::vector<std::string> lines;
  std::mutex mu;
  o.log = [&](std::string line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.push_back(std::move(line));
  };
  StartServer(o);
  const std::string b = server_->bound();
  EXPECT_TRUE(Get(b, "/healthz").starts_with("HTTP/1.1 200 "));
  std::string r = Get(b, "/echo?v=1");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 401 ")) << r;
  EXPECT_NE(r.find("WWW-Authenticate: Bearer"), std::string::npos);
  EXPECT_TRUE(Get(b, "/echo?v=1", "Authorization: Bearer nottheone\r\n")
                  .starts_with("HTTP/1.1 401 "));
  EXPECT_TRUE(Get(b, "/echo?v=1", "Authorization: Bearer s3cret-toke\r\n")
                  .starts_with("HTTP/1.1 401 "));
  EXPECT_TRUE(Get(b, "/echo?v=1", "Authorization: Bearer s3cret-token\r\n")
                  .ends_with("\r\n1\n"));
  EXPECT_TRUE(Get(b, "/echo?v=1", "Authorization: bearer s3cret-token\r\n")
                  .ends_with("\r\n1\n"));
  server_->Stop();
  ASSERT_FALSE(lines.empty());
  for (const std::string& l : lines) {
    EXPECT_EQ(l.find("s3cret"), std::string::npos) << l;
    EXPECT_EQ(l.find("nottheone"), std::string::npos) << l;
  }
}

TEST(ConstantTimeEqualsTest, Cases) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("ab", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
}

TEST_F(HttpServerTest, ConnectionBound) {
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  o.max_connections = 2;
  o.request_timeout = absl::Seconds(3);
  StartServer(o);
  const std::string b = server_->bound();
  UniqueFd a = ConnectTcp(b);
  UniqueFd c = ConnectTcp(b);
  // Let the server accept both before the third arrives.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(Get(b, "/healthz").starts_with("HTTP/1.1 503 "));
  a.Reset();
  c.Reset();
  // Closed connections free their slots.
  bool ok = false;
  for (int i = 0; i < 50 && !ok; ++i) {
    ok = Get(b, "/healthz").starts_with("HTTP/1.1 200 ");
    if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(ok);
}

TEST_F(HttpServerTest, UnixSocketIs0660AndRemovedAtStop) {
  char dir[] = "/tmp/popgate-admin-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/admin.sock";
  HttpServerOptions o;
  o.listen = "unix:" + path;
  StartServer(o);
  EXPECT_EQ(server_->bound(), path);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path.data(), path.size());
  ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)),
            0);
  const std::string req = "GET /healthz HTTP/1.1\r\n\r\n";
  ASSERT_EQ(::write(fd.get(), req.data(), req.size()),
            static_cast<ssize_t>(req.size()));
  EXPECT_TRUE(ReadAll(fd.get()).starts_with("HTTP/1.1 200 "));
  server_->Stop();
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
  ::rmdir(dir);
}

TEST_F(HttpServerTest, StopAnswersPendingRequests) {
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  o.request_timeout = absl::Seconds(30);
  StartServer(o);
  const std::string b = server_->bound();
  UniqueFd fd = ConnectTcp(b);
  const std::string req = "GET /never HTTP/1.1\r\n\r\n";
  ASSERT_EQ(::write(fd.get(), req.data(), req.size()),
            static_cast<ssize_t>(req.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server_->Stop();
  EXPECT_TRUE(ReadAll(fd.get()).starts_with("HTTP/1.1 503 "));
}

TEST(HttpServerStartTest, BadAddressFails) {
  HttpServerOptions o;
  o.listen = "unix:/nonexistent-dir/x.sock";
  HttpServer s(o);
  EXPECT_FALSE(s.Start().ok());
}

}  // namespace
}  // namespace popgate::admin
