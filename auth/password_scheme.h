// Password schemes of Dovecot's passwd-file and their (CPU-heavy, blocking)
// verification. Call VerifyPassword only from the hash pool, never from an
// io_uring worker.
//
// Supported: PLAIN (alias CLEARTEXT), SHA256-CRYPT ($5$), SHA512-CRYPT ($6$),
// BLF-CRYPT ($2y$/$2b$/$2a$), ARGON2I ($argon2i$...), ARGON2ID
// ($argon2id$...), in the encodings `doveadm pw` writes. Crypt schemes go
// through libxcrypt's reentrant crypt_rn, Argon2 through libargon2. Nothing
// here logs, and no function copies a password without wiping the copy.
#ifndef POPGATE_AUTH_PASSWORD_SCHEME_H_
#define POPGATE_AUTH_PASSWORD_SCHEME_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"

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
// Canonical upper-case name ("PLAIN", never the CLEARTEXT alias).
std::string_view SchemeName(Scheme scheme);

// Upper bounds on cost parameters. A hash above them is refused (by the
// passwd-file loader, and VerifyPassword returns false) rather than letting
// one entry pin a hash thread for minutes or allocate gigabytes.
inline constexpr uint64_t kMaxShaCryptRounds = 1'000'000;  // default 5000
inline constexpr uint64_t kMaxBcryptCost = 16;             // doveadm default 5
inline constexpr uint64_t kMaxArgon2MemoryKib = 1 << 20;   // 1 GiB
inline constexpr uint64_t kMaxArgon2Passes = 64;
inline constexpr uint64_t kMaxArgon2Lanes = 64;

// Checks, cheaply and without hashing, that `hash` is well-formed for
// `scheme`: the right prefix ("$6$" for SHA512-CRYPT, ...; so a DES or MD5
// hash under {SHA512-CRYPT} can never be verified with DES or MD5), the
// right salt/digest shape, and cost parameters within the limits above.
// Always OK for PLAIN. The error message never contains the hash.
absl::Status ValidateHash(Scheme scheme, std::string_view hash);

// Recognises a bare crypt-style hash without "{SCHEME}" by its prefix:
// "$6$", "$5$", "$2y$"/"$2b$"/"$2a$", "$argon2id$", "$argon2i$". Anything
// else (DES, MD5-crypt "$1$", ...) is nullopt: not supported.
std::optional<Scheme> DetectCryptScheme(std::string_view hash);

// True if `password` matches `hash` under `scheme`. Constant-time in the
// comparison of the final digest. Blocking and slow by design. A malformed or
// truncated hash yields false, never a crash. Thread-safe.
bool VerifyPassword(Scheme scheme, std::string_view hash,
                    std::string_view password);

// Runs a verification against a fixed dummy hash so that an unknown user
// costs as much time as a known one (no user enumeration by timing). The
// dummy is SHA512-CRYPT at the default 5000 rounds, i.e. the cost of a
// doveadm SHA512-CRYPT hash; sites whose users have costlier hashes
// (bcrypt, argon2) still leak some timing. Thread-safe.
void BurnVerificationTime();

// Constant-time equality of two byte strings (length leaks, content not).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace popgate::auth

#endif  // POPGATE_AUTH_PASSWORD_SCHEME_H_
