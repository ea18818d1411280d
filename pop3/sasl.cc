#include "pop3/sasl.h"

#include <openssl/base64.h>
#include <string.h>
#include <strings.h>

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

namespace {

// The 6-bit value of a base64 alphabet character (RFC 4648 table 1); only
// called on characters EVP_DecodeBase64 has already accepted.
int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  return c == '+' ? 62 : 63;
}

}  // namespace

std::optional<std::string> DecodeBase64(std::string_view in) {
  size_t max_len = 0;
  if (!EVP_DecodedLength(&max_len, in.size())) return std::nullopt;
  std::string out(max_len, '\0');
  size_t len = 0;
  // EVP_DecodeBase64 wants whole quads with padding and refuses whitespace
  // and characters outside the alphabet...
  if (!EVP_DecodeBase64(reinterpret_cast<uint8_t*>(out.data()), &len,
                        out.size(), reinterpret_cast<const uint8_t*>(in.data()),
                        in.size())) {
    Wipe(out);
    return std::nullopt;
  }
  // ...but it ignores the bits that padding leaves over, so "ZbV=" decodes
  // like "ZbU=". RFC 4648 section 3.5 lets a decoder refuse such input; we
  // do, so that every payload has exactly one spelling (a second spelling of
  // the same credentials would slip past anything that compares encodings).
  if (in.ends_with("==")) {
    if ((Base64Value(in[in.size() - 3]) & 0x0f) != 0) {
      Wipe(out);
      return std::nullopt;
    }
  } else if (in.ends_with("=")) {
    if ((Base64Value(in[in.size() - 2]) & 0x03) != 0) {
      Wipe(out);
      return std::nullopt;
    }
  }
  out.resize(len);
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
