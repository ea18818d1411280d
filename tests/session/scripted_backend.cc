#include "tests/session/scripted_backend.h"

#include <sys/socket.h>

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tests/runtime/test_util.h"

namespace popgate::testing {

std::string TestMessage() {
  std::string m =
      "From: a@example.com\r\nTo: alice@example.com\r\nSubject: test\r\n\r\n";
  // A body of 200 KiB: big enough that forwarding splices part of it.
  std::string body = Pattern(200 * 1024, 21);
  for (char& c : body) {
    // Printable lines of 76 characters, none starting with '.'.
    c = static_cast<char>('A' + (static_cast<unsigned char>(c) % 26));
  }
  for (size_t i = 0; i < body.size(); i += 76) {
    m += body.substr(i, 76);
    m += "\r\n";
  }
  return m;
}

BackendScript DefaultScript() {
  BackendScript s;
  s.respond = [](const std::string& line) -> BackendReply {
    const std::string msg = TestMessage();
    if (line.starts_with("USER ")) return {"+OK send PASS\r\n"};
    if (line.starts_with("PASS ")) {
      if (line == "PASS secret") return {"+OK logged in\r\n"};
      return {"-ERR [AUTH] Invalid login\r\n"};
    }
    if (line == "STAT") return {absl::StrCat("+OK 1 ", msg.size(), "\r\n")};
    if (line == "LIST") {
      return {absl::StrCat("+OK 1 messages\r\n1 ", msg.size(), "\r\n.\r\n")};
    }
    if (line == "RETR 1") {
      return {absl::StrCat("+OK ", msg.size(), " octets\r\n", msg, ".\r\n")};
    }
    if (line == "NOOP") return {"+OK\r\n"};
    if (line == "CAPA") {
      return {"+OK\r\nUSER\r\nPIPELINING\r\nIMPLEMENTATION scripted\r\n.\r\n"};
    }
    if (line == "QUIT") return {"+OK bye\r\n", /*close_after=*/true};
    return {"-ERR unknown command\r\n"};
  };
  return s;
}

ScriptedBackend::ScriptedBackend(Ring& ring, UniqueFd listener,
                                 BackendScript script)
    : ring_(ring), listener_(std::move(listener)), script_(std::move(script)) {}

void ScriptedBackend::Start() { AcceptLoop(); }

void ScriptedBackend::Stop() {
  // Completes the pending accept with an error.
  ::shutdown(listener_.get(), SHUT_RDWR);
}

Detached ScriptedBackend::AcceptLoop() {
  ++active_;
  const int lfd = listener_.get();
  while (true) {
    int fd = co_await MakeOp(ring_, [lfd](io_uring_sqe* s) {
      io_uring_prep_accept(s, lfd, nullptr, nullptr, SOCK_CLOEXEC);
    });
    if (fd < 0) break;
    ++connections_;
    Serve(fd);
  }
  --active_;
}

Detached ScriptedBackend::Serve(int raw_fd) {
  ++active_;
  UniqueFd fd(raw_fd);
  bool ok = co_await SendNow(ring_, fd.get(), script_.greeting.data(),
                             script_.greeting.size()) > 0;
  std::string pending;
  std::unique_ptr<char[]> buf(new char[16384]);
  while (ok) {
    int n = co_await Recv(ring_, fd.get(), buf.get(), 16384, absl::Seconds(20));
    if (n <= 0) break;
    pending.append(buf.get(), static_cast<size_t>(n));
    size_t nl;
    while (ok && (nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      lines_.push_back(line);
      BackendReply reply = script_.respond(line);
      std::string_view out = reply.bytes;
      while (!out.empty()) {
        int w = co_await Send(ring_, fd.get(), out.data(), out.size(),
                              absl::Seconds(20));
        if (w <= 0) {
          ok = false;
          break;
        }
        out.remove_prefix(static_cast<size_t>(w));
      }
      if (reply.close_after) {
        if (reply.reset) CloseWithReset(fd);
        ok = false;
      }
    }
  }
  fd.Reset();
  --active_;
}

}  // namespace popgate::testing
