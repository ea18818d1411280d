#include "tls/traffic_secrets.h"

#include <openssl/ssl.h>
#include <string.h>

#include "base/wipe.h"
#include "tls/conn_state.h"

namespace popgate::tls {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes `hex` into `out`; false on odd length, bad digits or overflow.
bool DecodeHex(std::string_view hex,
               std::array<uint8_t, TrafficSecrets::kMaxSecret>& out,
               size_t* len) {
  if (hex.empty() || hex.size() % 2 != 0 || hex.size() / 2 > out.size()) {
    return false;
  }
  for (size_t i = 0; i < hex.size() / 2; ++i) {
    int hi = HexDigit(hex[2 * i]);
    int lo = HexDigit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  *len = hex.size() / 2;
  return true;
}

void OnKeyLog(const SSL* ssl, const char* line) {
  ConnState* state = GetConnState(ssl);
  if (state != nullptr) state->secrets.TakeKeyLogLine(line);
}

}  // namespace

bool TrafficSecrets::TakeKeyLogLine(std::string_view line) {
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return false;
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return false;
  std::string_view label = line.substr(0, sp1);
  std::string_view secret = line.substr(sp2 + 1);
  // Later generations (after a KeyUpdate) are never logged by BoringSSL;
  // handshake and exporter secrets are of no use to the kernel.
  if (label == "CLIENT_TRAFFIC_SECRET_0") {
    return DecodeHex(secret, client_, &client_len_);
  }
  if (label == "SERVER_TRAFFIC_SECRET_0") {
    return DecodeHex(secret, server_, &server_len_);
  }
  return false;
}

void TrafficSecrets::Wipe() {
  WipeBytes(client_.data(), client_.size());
  WipeBytes(server_.data(), server_.size());
  client_len_ = server_len_ = 0;
}

void CaptureTrafficSecrets(SSL_CTX* ctx) {
  SSL_CTX_set_keylog_callback(ctx, &OnKeyLog);
}

}  // namespace popgate::tls
