// TLS 1.3 application traffic secrets, caught as BoringSSL derives them.
//
// Kernel TLS needs the traffic keys, but this BoringSSL (Debian's
// android-libboringssl, API 17) has no SSL_get_traffic_secrets. It does
// call the key-log callback with each secret as it is derived, so when
// kernel TLS is possible the contexts install CaptureTrafficSecrets and the
// two application secrets (CLIENT_/SERVER_TRAFFIC_SECRET_0) land in the
// connection's state. Nothing is written anywhere: the secrets stay in the
// connection's memory and are wiped when it ends or hands them to the kernel.
#ifndef POPGATE_TLS_TRAFFIC_SECRETS_H_
#define POPGATE_TLS_TRAFFIC_SECRETS_H_

#include <openssl/base.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace popgate::tls {

class TrafficSecrets {
 public:
  static constexpr size_t kMaxSecret = 48;  // SHA-384 suites

  TrafficSecrets() = default;
  ~TrafficSecrets() { Wipe(); }
  TrafficSecrets(const TrafficSecrets&) = delete;
  TrafficSecrets& operator=(const TrafficSecrets&) = delete;

  // Takes one key-log line ("LABEL <client random hex> <secret hex>");
  // keeps it if it is a first-generation application traffic secret.
  // Returns false for lines it does not keep (other labels, bad hex).
  bool TakeKeyLogLine(std::string_view line);

  // Empty span until the secret was seen.
  std::span<const uint8_t> client() const {
    return {client_.data(), client_len_};
  }
  std::span<const uint8_t> server() const {
    return {server_.data(), server_len_};
  }

  void Wipe();

 private:
  std::array<uint8_t, kMaxSecret> client_{};
  std::array<uint8_t, kMaxSecret> server_{};
  size_t client_len_ = 0;
  size_t server_len_ = 0;
};

// Installs the key-log callback on `ctx` that files the secrets into each
// connection's ConnState. Costs a few hex conversions per handshake, so it
// is installed only where the kernel can take the keys.
void CaptureTrafficSecrets(SSL_CTX* ctx);

}  // namespace popgate::tls

#endif  // POPGATE_TLS_TRAFFIC_SECRETS_H_
