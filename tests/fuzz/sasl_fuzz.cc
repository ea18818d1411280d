// SASL decoding (pop3/sasl): strict base64 and the PLAIN message, as a
// client sends them after AUTH PLAIN / AUTH LOGIN.
//
// Properties:
//  - decode(encode(x)) == x for any bytes x;
//  - whatever DecodeBase64 accepts is canonical: encode(decode(s)) == s, so
//    one payload has one spelling (regression: "ZbV=" was accepted and
//    decoded like "ZbU=", regressions/sasl/);
//  - accepted PLAIN credentials have a non-empty user and password, no NUL,
//    and come from exactly "authzid NUL authcid NUL password" with the
//    authzid empty or equal to the authcid.
#include <openssl/base64.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pop3/sasl.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

// BoringSSL's encoder as the reference (it always writes canonical base64).
std::string Encode(std::string_view raw) {
  size_t len = 0;
  FUZZ_CHECK(EVP_EncodedLength(&len, raw.size()));
  std::string out(len, '\0');
  size_t n =
      EVP_EncodeBlock(reinterpret_cast<uint8_t*>(out.data()),
                      reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  out.resize(n);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  // The input as base64 text.
  std::optional<std::string> decoded = popgate::DecodeBase64(in);
  if (decoded.has_value()) FUZZ_CHECK(Encode(*decoded) == in);

  // The input as raw bytes.
  const std::string encoded = Encode(in);
  std::optional<std::string> back = popgate::DecodeBase64(encoded);
  FUZZ_CHECK(back.has_value() && *back == in);

  // The input as a PLAIN response; and its raw bytes, encoded, as one.
  for (const std::string_view b64 : {in, std::string_view(encoded)}) {
    std::optional<popgate::SaslCredentials> c = popgate::DecodeSaslPlain(b64);
    std::optional<std::string> raw = popgate::DecodeBase64(b64);
    if (!c.has_value()) continue;
    FUZZ_CHECK(raw.has_value());
    FUZZ_CHECK(!c->user.empty() && !c->password.empty());
    FUZZ_CHECK(c->user.find('\0') == std::string::npos);
    FUZZ_CHECK(c->password.find('\0') == std::string::npos);
    const std::string plain = c->user + '\0' + c->password;
    FUZZ_CHECK(*raw == '\0' + plain || *raw == c->user + '\0' + plain);
  }

  std::optional<popgate::SaslMechanism> m = popgate::ParseSaslMechanism(in);
  if (m.has_value()) FUZZ_CHECK(size == 5);  // "PLAIN" or "LOGIN", any case
  return 0;
}
