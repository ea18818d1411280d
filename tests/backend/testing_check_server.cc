#include "tests/backend/testing_check_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace popgate::testing {

namespace {

SocketAddress Loopback(uint16_t port) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&sin),
                                     sizeof(sin));
}

void WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// A server context with a fresh P-256 key and a self-signed certificate
// for "check.test" (nothing on disk, nothing in the repository).
SSL_CTX* NewServerContext() {
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  if (!ec || !EC_KEY_generate_key(ec.get()) ||
      !EVP_PKEY_assign_EC_KEY(key.get(), ec.release())) {
    std::abort();
  }
  bssl::UniquePtr<X509> x(X509_new());
  bssl::UniquePtr<X509_NAME> name(X509_NAME_new());
  const char* cn = "check.test";
  if (!X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                                  reinterpret_cast<const uint8_t*>(cn), -1, -1,
                                  0) ||
      !X509_set_version(x.get(), X509_VERSION_3) ||
      !ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1) ||
      !X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600) ||
      !X509_gmtime_adj(X509_getm_notAfter(x.get()), 3600) ||
      !X509_set_subject_name(x.get(), name.get()) ||
      !X509_set_issuer_name(x.get(), name.get()) ||
      !X509_set_pubkey(x.get(), key.get()) ||
      !X509_sign(x.get(), key.get(), EVP_sha256())) {
    std::abort();
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (ctx == nullptr || !SSL_CTX_use_certificate(ctx, x.get()) ||
      !SSL_CTX_use_PrivateKey(ctx, key.get())) {
    std::abort();
  }
  return ctx;
}

}  // namespace

SocketAddress ClosedLoopbackAddress() {
  // Bind an ephemeral port and close it again: nothing listens there (the
  // kernel hands ports out in turn, so it is not reused at once).
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  SocketAddress a = Loopback(0);
  if (::bind(fd.get(), a.get(), a.len) != 0) std::abort();
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  return SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&ss),
                                     len);
}

CheckServer::CheckServer(CheckServerOptions options)
    : options_(std::move(options)) {
  listener_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  SocketAddress a = Loopback(0);
  if (::bind(listener_.get(), a.get(), a.len) != 0 ||
      ::listen(listener_.get(), 16) != 0) {
    std::abort();
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  address_ =
      SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&ss), len);
  if (options_.tls != CheckServerOptions::Tls::kNone) {
    ssl_ctx_ = NewServerContext();
  }
  thread_ = std::thread([this] { Run(); });
}

CheckServer::~CheckServer() {
  stop_.store(true);
  thread_.join();
  SSL_CTX_free(static_cast<SSL_CTX*>(ssl_ctx_));
}

std::vector<std::string> CheckServer::preambles() const {
  std::lock_guard<std::mutex> lock(mu_);
  return preambles_;
}

void CheckServer::Run() {
  while (!stop_.load()) {
    pollfd p{listener_.get(), POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) continue;
    connections_.fetch_add(1);
    open_.store(true);
    Serve(conn.get());
    open_.store(false);
  }
}

void CheckServer::Serve(int fd) {
  // Short receive timeouts so the stop flag is seen.
  timeval tv{0, 50'000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  bssl::UniquePtr<SSL> ssl;
  std::string in;
  auto send = [&](const std::string& data) {
    if (ssl) {
      SSL_write(ssl.get(), data.data(), static_cast<int>(data.size()));
    } else {
      WriteAll(fd, data);
    }
  };
  // Reads more into `in`; false when the connection ended (or we stop).
  auto read_more = [&]() -> bool {
    char buf[512];
    while (!stop_.load()) {
      ssize_t n;
      if (ssl) {
        int r = SSL_read(ssl.get(), buf, sizeof(buf));
        if (r > 0) {
          in.append(buf, static_cast<size_t>(r));
          return true;
        }
        int err = SSL_get_error(ssl.get(), r);
        if (err == SSL_ERROR_WANT_READ) continue;  // the receive timeout
        closed_by_peer_.fetch_add(1);  // close_notify, EOF or a reset
        return false;
      }
      n = ::recv(fd, buf, sizeof(buf), 0);
      if (n > 0) {
        in.append(buf, static_cast<size_t>(n));
        return true;
      }
      if (n == 0) {
        closed_by_peer_.fetch_add(1);
        return false;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      closed_by_peer_.fetch_add(1);  // a reset
      return false;
    }
    return false;
  };
  // Server side of a handshake on `fd`; false if it failed.
  auto handshake = [&]() -> bool {
    ssl.reset(SSL_new(static_cast<SSL_CTX*>(ssl_ctx_)));
    SSL_set_fd(ssl.get(), fd);
    while (!stop_.load()) {
      int r = SSL_accept(ssl.get());
      if (r == 1) {
        handshakes_.fetch_add(1);
        return true;
      }
      if (SSL_get_error(ssl.get(), r) != SSL_ERROR_WANT_READ) break;
    }
    closed_by_peer_.fetch_add(1);
    return false;
  };
  if (options_.expect_proxy_v2) {
    while (in.size() < 16) {
      if (!read_more()) return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    preambles_.push_back(in.substr(0, 16));
    in.erase(0, 16);
  }
  if (options_.tls == CheckServerOptions::Tls::kImplicit && !handshake()) {
    return;
  }
  if (!options_.greeting.empty()) send(options_.greeting + "\r\n");
  while (true) {
    size_t eol = in.find("\r\n");
    if (eol == std::string::npos) {
      if (!read_more()) return;
      continue;
    }
    std::string line = in.substr(0, eol);
    in.erase(0, eol + 2);
    if (options_.greeting.empty()) continue;  // mute: never answers
    if (line == "CAPA") {
      capas_.fetch_add(1);
      send(options_.capa_reply);
    } else if (line == "STLS") {
      stls_.fetch_add(1);
      if (options_.tls != CheckServerOptions::Tls::kStartTls || ssl) {
        send("-ERR not here\r\n");
        continue;
      }
      send("+OK begin TLS\r\n");
      in.clear();
      if (!handshake()) return;
    } else if (line == "QUIT") {
      quits_.fetch_add(1);
      send("+OK bye\r\n");
      return;
    } else {
      send("-ERR unknown command\r\n");
    }
  }
}

}  // namespace popgate::testing
