// Password schemes of Dovecot's passwd-file and their (CPU-heavy, blocking)
// verification. Call VerifyPassword only from the hash pool, never from an
// io_uring worker.
#ifndef POPGATE_AUTH_PASSWORD_SCHEME_H_
#define POPGATE_AUTH_PASSWORD_SCHEME_H_

#include <optional>
#include <string_view>

namespace popgate::auth {

enum class Scheme {
  kPlain,
  kSha256Crypt,
  kSha512Crypt,
  kBlfCrypt,
  kArgon2i,
  kArgon2id,
};

// "PLAIN", "SHA256-CRYPT", ... (case-insensitive) -> Scheme.
std::optional<Scheme> ParseScheme(std::string_view name);
std::string_view SchemeName(Scheme scheme);

// True if `password` matches `hash` under `scheme`. Constant-time in the
// comparison of the final digest. Blocking and slow by design.
bool VerifyPassword(Scheme scheme, std::string_view hash,
                    std::string_view password);

// Runs a verification against a fixed dummy hash so that an unknown user
// costs as much time as a known one (no user enumeration by timing).
void BurnVerificationTime();

// Constant-time equality of two byte strings (length leaks, content not).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace popgate::auth

#endif  // POPGATE_AUTH_PASSWORD_SCHEME_H_
