#include "auth/password_scheme.h"

#include <argon2.h>
#include <crypt.h>
#include <openssl/mem.h>  // CRYPTO_memcmp
#include <sodium.h>
#include <string.h>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "base/wipe.h"

namespace popgate::auth {
namespace {

// Note: Debian 12's abseil is built with its own absl::string_view (not an
// alias of std::string_view), so this file sticks to std helpers.
bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) {
      return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

struct SchemeNameEntry {
  std::string_view name;
  Scheme scheme;
};

// First entry per scheme is its canonical name (what SchemeName returns).
// CLEARTEXT is Dovecot's alias of PLAIN.
constexpr std::array<SchemeNameEntry, 7> kSchemeNames = {{
    {"PLAIN", Scheme::kPlain},
    {"SHA256-CRYPT", Scheme::kSha256Crypt},
    {"SHA512-CRYPT", Scheme::kSha512Crypt},
    {"BLF-CRYPT", Scheme::kBlfCrypt},
    {"ARGON2I", Scheme::kArgon2i},
    {"ARGON2ID", Scheme::kArgon2id},
    {"CLEARTEXT", Scheme::kPlain},
}};

// Wipes a std::string's bytes before it is released, so that a copy of a
// password we had to make (crypt needs a NUL-terminated string) does not
// linger in freed heap memory.
class WipedString {
 public:
  explicit WipedString(std::string_view s) : s_(s) {}
  ~WipedString() { WipeBytes(s_.data(), s_.size()); }
  WipedString(const WipedString&) = delete;
  WipedString& operator=(const WipedString&) = delete;
  const char* c_str() const { return s_.c_str(); }

 private:
  std::string s_;
};

// Runs libxcrypt's reentrant crypt_rn (never crypt(3), which uses a static
// buffer shared by all threads) and compares its output with `hash` in
// constant time. crypt_rn re-derives salt and cost from `hash` itself.
bool VerifyCrypt(std::string_view hash, std::string_view password) {
  // crypt takes C strings: an embedded NUL would silently truncate the
  // password (or the setting), which must never turn into a match.
  if (password.find('\0') != std::string_view::npos ||
      hash.find('\0') != std::string_view::npos) {
    return false;
  }
  WipedString phrase(password);
  const std::string setting(hash);
  // crypt_data is ~32 KiB: keep it off the (pool thread's) stack. It holds
  // intermediate state derived from the password, so wipe it afterwards.
  auto data = std::make_unique<crypt_data>();
  memset(data.get(), 0, sizeof(crypt_data));
  const char* out =
      crypt_rn(phrase.c_str(), setting.c_str(), data.get(), sizeof(crypt_data));
  // libxcrypt returns NULL (crypt_rn) or a "*"-prefixed failure token on a
  // malformed setting; neither can equal a well-formed stored hash, but
  // check explicitly rather than rely on that.
  bool ok = out != nullptr && out[0] != '*' &&
            ConstantTimeEquals(std::string_view(out), hash);
  WipeBytes(data.get(), sizeof(crypt_data));
  return ok;
}

bool SodiumReady() {
  static std::once_flag once;
  static bool ready = false;
  std::call_once(once, [] { ready = sodium_init() >= 0; });
  return ready;
}

// Argon2 version 1.3 ("$argon2id$v=19$...", what Dovecot, PHP, libsodium
// and the argon2 tool write): verified by libsodium, which picks AVX2 or
// SSSE3 code at run time, where Debian's libargon2 is its portable build
// (no SIMD: a Dovecot-default ARGON2ID check, m = 64 MiB, t = 3, took
// 170-208 ms against libsodium's 93-95 ms on the same core). libsodium also
// computes p > 1 lanes one after the other on the calling thread, where
// libargon2 starts a thread per lane, outside the hashing pool's bound.
// Version 1.0 hashes (no v= or v=16), which libsodium refuses, still go to
// libargon2.
bool IsArgon2Version13(std::string_view hash) {
  const size_t second = hash.find('$', 1);
  return second != std::string_view::npos &&
         hash.substr(second + 1).starts_with("v=19$");
}

bool VerifyArgon2(argon2_type type, std::string_view hash,
                  std::string_view password) {
  // Both libraries decode the encoded string as a C string.
  if (hash.find('\0') != std::string_view::npos) return false;
  const std::string encoded(hash);
  // Both recompute the tag and compare it in constant time themselves; they
  // take the password by pointer and length, so no copy to wipe.
  if (IsArgon2Version13(hash) && SodiumReady()) {
    const int rc = type == Argon2_id
                       ? crypto_pwhash_argon2id_str_verify(
                             encoded.c_str(), password.data(), password.size())
                       : crypto_pwhash_argon2i_str_verify(
                             encoded.c_str(), password.data(), password.size());
    return rc == 0;
  }
  const int rc =
      argon2_verify(encoded.c_str(), password.data(), password.size(), type);
  return rc == ARGON2_OK;
}

// The crypt(3) base64 alphabet; argon2's PHC strings use standard base64
// without padding, i.e. also '+'.
bool IsCryptB64(std::string_view s) {
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '/';
    if (!ok) return false;
  }
  return true;
}
bool IsB64(std::string_view s) {
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (!ok) return false;
  }
  return true;
}

// Parses a decimal number of at most 10 digits at the front of `*s`.
std::optional<uint64_t> ConsumeNumber(std::string_view* s) {
  size_t n = 0;
  uint64_t value = 0;
  while (n < s->size() && n < 11 && (*s)[n] >= '0' && (*s)[n] <= '9') {
    value = value * 10 + static_cast<uint64_t>((*s)[n] - '0');
    ++n;
  }
  if (n == 0 || n > 10) return std::nullopt;
  s->remove_prefix(n);
  return value;
}

bool ConsumeLiteral(std::string_view* s, std::string_view literal) {
  if (!s->starts_with(literal)) return false;
  s->remove_prefix(literal.size());
  return true;
}

absl::Status Invalid(const std::string& reason) {
  return absl::InvalidArgumentError(reason);
}

// "$5$[rounds=N$]salt$digest" / "$6$...": salt 1-16 chars, digest 43 (SHA-256)
// or 86 (SHA-512) chars.
absl::Status ValidateShaCrypt(std::string_view rest, size_t digest_len,
                              std::string_view scheme_name) {
  if (ConsumeLiteral(&rest, "rounds=")) {
    const std::optional<uint64_t> rounds = ConsumeNumber(&rest);
    if (!rounds.has_value() || !ConsumeLiteral(&rest, "$")) {
      return Invalid("malformed rounds= in " + std::string(scheme_name) +
                     " hash");
    }
    if (*rounds > kMaxShaCryptRounds) {
      return Invalid(std::string(scheme_name) + " rounds above the limit of " +
                     std::to_string(kMaxShaCryptRounds));
    }
  }
  const size_t dollar = rest.find('$');
  if (dollar == std::string_view::npos || dollar == 0 || dollar > 16 ||
      !IsCryptB64(rest.substr(0, dollar))) {
    return Invalid("malformed salt in " + std::string(scheme_name) + " hash");
  }
  const std::string_view digest = rest.substr(dollar + 1);
  if (digest.size() != digest_len || !IsCryptB64(digest)) {
    return Invalid("malformed or truncated digest in " +
                   std::string(scheme_name) + " hash");
  }
  return absl::OkStatus();
}

// "$2y$NN$" + 22 chars of salt + 31 chars of digest.
absl::Status ValidateBcrypt(std::string_view rest) {
  const std::optional<uint64_t> cost = ConsumeNumber(&rest);
  if (!cost.has_value() || !ConsumeLiteral(&rest, "$")) {
    return Invalid("malformed cost in BLF-CRYPT hash");
  }
  if (*cost < 4 || *cost > kMaxBcryptCost) {
    return Invalid("BLF-CRYPT cost outside 4.." +
                   std::to_string(kMaxBcryptCost));
  }
  if (rest.size() != 53 || !IsCryptB64(rest)) {
    return Invalid("malformed or truncated BLF-CRYPT hash");
  }
  return absl::OkStatus();
}

// "[v=19$]m=M,t=T,p=P$salt$digest" (PHC string format, unpadded base64).
// Limits are checked before libargon2 or libsodium sees the string: it would
// otherwise try to allocate whatever m says (up to 4 TiB) or loop 2^32 times.
absl::Status ValidateArgon2(std::string_view rest) {
  if (ConsumeLiteral(&rest, "v=")) {
    if (!ConsumeNumber(&rest).has_value() || !ConsumeLiteral(&rest, "$")) {
      return Invalid("malformed version in argon2 hash");
    }
  }
  std::optional<uint64_t> m, t, p;
  if (!ConsumeLiteral(&rest, "m=") || !(m = ConsumeNumber(&rest)) ||
      !ConsumeLiteral(&rest, ",t=") || !(t = ConsumeNumber(&rest)) ||
      !ConsumeLiteral(&rest, ",p=") || !(p = ConsumeNumber(&rest)) ||
      !ConsumeLiteral(&rest, "$")) {
    return Invalid("malformed m=,t=,p= parameters in argon2 hash");
  }
  if (*m > kMaxArgon2MemoryKib || *t < 1 || *t > kMaxArgon2Passes || *p < 1 ||
      *p > kMaxArgon2Lanes) {
    return Invalid("argon2 parameters above the limits (m <= " +
                   std::to_string(kMaxArgon2MemoryKib) +
                   " KiB, t <= " + std::to_string(kMaxArgon2Passes) +
                   ", p <= " + std::to_string(kMaxArgon2Lanes) + ")");
  }
  // Argon2's minimums, in unpadded base64: a salt of 8 bytes (11
  // characters) and a digest of 4 (6 characters).
  const size_t dollar = rest.find('$');
  if (dollar == std::string_view::npos || dollar < 11 ||
      !IsB64(rest.substr(0, dollar)) || rest.size() - dollar - 1 < 6 ||
      !IsB64(rest.substr(dollar + 1))) {
    return Invalid("malformed salt or digest in argon2 hash");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateHash(Scheme scheme, std::string_view hash) {
  // Each crypt scheme is pinned to its own prefix: otherwise a
  // "{SHA512-CRYPT}" entry holding, say, a DES or MD5 hash would be verified
  // with whatever algorithm crypt_rn picks from the prefix.
  switch (scheme) {
    case Scheme::kPlain:
      return absl::OkStatus();
    case Scheme::kSha256Crypt:
      if (!hash.starts_with("$5$")) {
        return Invalid("SHA256-CRYPT hash must start with $5$");
      }
      return ValidateShaCrypt(hash.substr(3), 43, "SHA256-CRYPT");
    case Scheme::kSha512Crypt:
      if (!hash.starts_with("$6$")) {
        return Invalid("SHA512-CRYPT hash must start with $6$");
      }
      return ValidateShaCrypt(hash.substr(3), 86, "SHA512-CRYPT");
    case Scheme::kBlfCrypt:
      if (!hash.starts_with("$2y$") && !hash.starts_with("$2b$") &&
          !hash.starts_with("$2a$")) {
        return Invalid("BLF-CRYPT hash must start with $2y$, $2b$ or $2a$");
      }
      return ValidateBcrypt(hash.substr(4));
    case Scheme::kArgon2i:
      if (!hash.starts_with("$argon2i$")) {
        return Invalid("ARGON2I hash must start with $argon2i$");
      }
      return ValidateArgon2(hash.substr(9));
    case Scheme::kArgon2id:
      if (!hash.starts_with("$argon2id$")) {
        return Invalid("ARGON2ID hash must start with $argon2id$");
      }
      return ValidateArgon2(hash.substr(10));
  }
  return Invalid("unknown scheme");
}

std::optional<Scheme> ParseScheme(std::string_view name) {
  for (const auto& entry : kSchemeNames) {
    if (EqualsIgnoreCase(entry.name, name)) return entry.scheme;
  }
  return std::nullopt;
}

std::string_view SchemeName(Scheme scheme) {
  for (const auto& entry : kSchemeNames) {
    if (entry.scheme == scheme) return entry.name;
  }
  return "UNKNOWN";
}

std::optional<Scheme> DetectCryptScheme(std::string_view hash) {
  // Order matters: "$argon2id$" does not start with "$argon2i$" (the '$'
  // differs), but test the longer one first anyway for clarity.
  if (hash.starts_with("$argon2id$")) return Scheme::kArgon2id;
  if (hash.starts_with("$argon2i$")) return Scheme::kArgon2i;
  if (hash.starts_with("$6$")) return Scheme::kSha512Crypt;
  if (hash.starts_with("$5$")) return Scheme::kSha256Crypt;
  if (hash.starts_with("$2y$") || hash.starts_with("$2b$") ||
      hash.starts_with("$2a$")) {
    return Scheme::kBlfCrypt;
  }
  return std::nullopt;
}

bool VerifyPassword(Scheme scheme, std::string_view hash,
                    std::string_view password) {
  // Refuses garbled hashes and absurd cost parameters before any hashing.
  if (!ValidateHash(scheme, hash).ok()) return false;
  switch (scheme) {
    case Scheme::kPlain:
      return ConstantTimeEquals(password, hash);
    case Scheme::kSha256Crypt:
    case Scheme::kSha512Crypt:
    case Scheme::kBlfCrypt:
      return VerifyCrypt(hash, password);
    case Scheme::kArgon2i:
      return VerifyArgon2(Argon2_i, hash, password);
    case Scheme::kArgon2id:
      return VerifyArgon2(Argon2_id, hash, password);
  }
  return false;
}

void BurnVerificationTime() {
  // mkpasswd -m sha-512 -S dummydummy1234 popgate-dummy-password
  // (default 5000 rounds, the cost of a doveadm SHA512-CRYPT hash). The
  // password below is deliberately different so the result is always false.
  static constexpr std::string_view kDummyHash =
      "$6$dummydummy1234$5N9D0/Ncq/AfAJOor4rBbwAiaeUzb17L.6mi.hOpLJAcaxQH9fxdG"
      "769neIkCyolBfML2uNCPMrQY8Yhbk4wh.";
  // The result is irrelevant; only the time spent matters.
  static_cast<void>(VerifyCrypt(kDummyHash, "popgate-not-the-password"));
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // The length may leak (see the header); the content does not:
  // CRYPTO_memcmp reads every byte whatever the differences.
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace popgate::auth
