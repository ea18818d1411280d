// The admin API's HTTP server: one thread with its own io_uring (never a
// worker's), accepting on a TCP address or a unix socket, one coroutine per
// connection: read one request within a total deadline, route it, write
// the response, close (Connection: close; no keep-alive).
//
// Handlers run on the server's thread and answer through `Respond`, which
// any thread may call once (later: a worker that collected its sessions, the
// main thread after a reload); an answer that does not come within the
// request deadline is a 504. Handlers must not block.
//
// Guard: with a token, every route but those registered `open` (health
// probes) needs "Authorization: Bearer <token>", compared in constant time;
// the token is never logged. A unix socket is made mode 0660: its file
// permissions are the guard there (a token may be required on top).
#ifndef POPGATE_ADMIN_HTTP_SERVER_H_
#define POPGATE_ADMIN_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "admin/http_request.h"

namespace popgate::admin {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;

  static HttpResponse Text(int status, std::string body) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    if (!r.body.empty() && r.body.back() != '\n') r.body.push_back('\n');
    return r;
  }
  static HttpResponse Json(int status, std::string body) {
    HttpResponse r;
    r.status = status;
    r.content_type = "application/json";
    r.body = std::move(body);
    if (!r.body.empty() && r.body.back() != '\n') r.body.push_back('\n');
    return r;
  }
};

// Thread-safe; the first call answers, later ones are ignored.
using Respond = std::function<void(HttpResponse)>;
using Handler = std::function<void(const HttpRequest&, Respond)>;

struct HttpServerOptions {
  // "127.0.0.1:9110", "[::1]:9110", or "unix:/run/popgate/admin.sock".
  std::string listen;
  std::string token;  // "" = no token asked
  absl::Duration request_timeout = absl::Seconds(5);
  int max_connections = 64;
  // One complete JSON line per refused or mutating request (never the
  // token); called on the server's thread, must not block. May be empty.
  std::function<void(std::string)> log;
};

// Constant-time comparison (time depends only on the lengths' maximum).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// The serialised response (status line, headers, body).
std::string FormatResponse(const HttpResponse& r);

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Before Start. `pattern`: a path whose "{}" segments match any one
  // segment (captured in HttpRequest::params), e.g. "/backends/{}/drain".
  // `open`: served without the token (health probes).
  void Route(std::string method, std::string pattern, Handler handler,
             bool open = false);

  // Opens the listener (a start-up error names the address) and starts
  // the thread.
  absl::Status Start();
  // The bound address ("127.0.0.1:41234"; the path for a unix socket).
  std::string bound() const;
  // Ends the thread: stops accepting, answers pending requests 503, cuts
  // connections, removes the unix socket file.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace popgate::admin

#endif  // POPGATE_ADMIN_HTTP_SERVER_H_
