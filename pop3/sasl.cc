#include "pop3/sasl.h"

#include <string.h>
#include <strings.h>

#include <array>

#include "base/wipe.h"

namespace popgate {

std::optional<SaslMechanism> ParseSaslMechanism(std::string_view name) {
  auto is = [&name](std::string_view want) {
    return name.size() == want.size() &&
           strncasecmp(name.data(), want.data(), want.size()) == 0;
  };
  if (is("PLAIN")) return SaslMechanism::kPlain;
  if (is("LOGIN")) return SaslMechanism::kLogin;
  return std::nullopt;
}

std::optional<std::string> DecodeBase64(std::string_view in) {
  static constexpr std::array<int8_t, 256> kTable = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    const char* alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) {
      t[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
    }
    return t;
  }();
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      unsigned char c = static_cast<unsigned char>(in[i + j]);
      // '=' only at the very end: "xx==" or "xxx=".
      if (c == '=' && i + 4 == in.size() && j >= 2 &&
          (j == 3 || in[i + 3] == '=')) {
        v[j] = 0;
        ++pad;
        continue;
      }
      if (pad > 0 || kTable[c] < 0) return std::nullopt;
      v[j] = kTable[c];
    }
    uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

std::optional<SaslCredentials> DecodeSaslPlain(std::string_view base64) {
  std::optional<std::string> raw = DecodeBase64(base64);
  if (!raw) return std::nullopt;
  std::string_view msg = *raw;
  size_t a = msg.find('\0');
  if (a == std::string_view::npos) return std::nullopt;
  size_t b = msg.find('\0', a + 1);
  if (b == std::string_view::npos) return std::nullopt;
  std::string_view authzid = msg.substr(0, a);
  std::string_view authcid = msg.substr(a + 1, b - a - 1);
  std::string_view password = msg.substr(b + 1);
  if (authcid.empty() || password.empty() ||
      password.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  // popgate logs users in to their own mailbox only: no proxy
  // authorisation as somebody else.
  if (!authzid.empty() && authzid != authcid) return std::nullopt;
  SaslCredentials c{std::string(authcid), std::string(password)};
  Wipe(*raw);
  return c;
}

}  // namespace popgate
