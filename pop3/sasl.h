// SASL for POP3 AUTH (RFC 5034): the PLAIN (RFC 4616) and LOGIN mechanisms,
// as pure functions so the parsing is testable. The session drives the
// exchange; nothing here ever logs a payload.
#ifndef POPGATE_POP3_SASL_H_
#define POPGATE_POP3_SASL_H_

#include <optional>
#include <string>
#include <string_view>

namespace popgate {

enum class SaslMechanism { kPlain, kLogin };

// "PLAIN" / "login" -> mechanism; nullopt if unsupported.
std::optional<SaslMechanism> ParseSaslMechanism(std::string_view name);

struct SaslCredentials {
  std::string user;
  std::string password;
};

// Strict base64 (RFC 4648, padding required); nullopt on anything else.
std::optional<std::string> DecodeBase64(std::string_view in);

// A PLAIN response, base64: "authzid NUL authcid NUL password". An authzid
// other than empty or the authcid itself (acting as another user) is
// refused, as are empty names and passwords and NULs where they don't
// belong.
std::optional<SaslCredentials> DecodeSaslPlain(std::string_view base64);

// AUTH with no mechanism lists what is offered (RFC 5034 section 4).
inline constexpr std::string_view kSaslMechanismList =
    "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n";
inline constexpr std::string_view kSaslCapa = "SASL PLAIN LOGIN\r\n";

}  // namespace popgate

#endif  // POPGATE_POP3_SASL_H_
