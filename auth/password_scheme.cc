#include "auth/password_scheme.h"

#include <argon2.h>
#include <crypt.h>
#include <string.h>  // explicit_bzero

#include <array>
#include <memory>
#include <string>

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
  ~WipedString() { explicit_bzero(s_.data(), s_.size()); }
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
  explicit_bzero(data.get(), sizeof(crypt_data));
  return ok;
}

bool VerifyArgon2(argon2_type type, std::string_view hash,
                  std::string_view password) {
  // argon2_verify decodes the encoded string as a C string.
  if (hash.find('\0') != std::string_view::npos) return false;
  const std::string encoded(hash);
  // libargon2 recomputes the tag and compares it in constant time itself;
  // it takes the password by pointer and length, so no copy to wipe.
  const int rc =
      argon2_verify(encoded.c_str(), password.data(), password.size(), type);
  return rc == ARGON2_OK;
}

// Each crypt scheme is pinned to its own prefix: otherwise a
// "{SHA512-CRYPT}" entry holding, say, a DES or MD5 hash would be verified
// with whatever algorithm the prefix selects.
bool HasCryptPrefix(Scheme scheme, std::string_view hash) {
  switch (scheme) {
    case Scheme::kSha256Crypt:
      return hash.starts_with("$5$");
    case Scheme::kSha512Crypt:
      return hash.starts_with("$6$");
    case Scheme::kBlfCrypt:
      return hash.starts_with("$2y$") || hash.starts_with("$2b$") ||
             hash.starts_with("$2a$");
    case Scheme::kArgon2i:
      return hash.starts_with("$argon2i$");
    case Scheme::kArgon2id:
      return hash.starts_with("$argon2id$");
    case Scheme::kPlain:
      return true;
  }
  return false;
}

}  // namespace

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

bool HashMatchesScheme(Scheme scheme, std::string_view hash) {
  return HasCryptPrefix(scheme, hash);
}

std::optional<Scheme> DetectCryptScheme(std::string_view hash) {
  // Order matters: "$argon2id$" does not start with "$argon2i$" (the '$'
  // differs), but test the longer one first anyway for clarity.
  if (hash.starts_with("$argon2id$")) return Scheme::kArgon2id;
  if (hash.starts_with("$argon2i$")) return Scheme::kArgon2i;
  if (hash.starts_with("$6$")) return Scheme::kSha512Crypt;
  if (hash.starts_with("$5$")) return Scheme::kSha256Crypt;
  if (HasCryptPrefix(Scheme::kBlfCrypt, hash)) return Scheme::kBlfCrypt;
  return std::nullopt;
}

bool VerifyPassword(Scheme scheme, std::string_view hash,
                    std::string_view password) {
  if (!HasCryptPrefix(scheme, hash)) return false;
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
  // Walks all of `a` whatever the content; differences are OR-ed into an
  // accumulator instead of returning at the first mismatch. The length
  // difference is folded in too, so unequal lengths never match.
  volatile unsigned char acc = a.size() == b.size() ? 0 : 1;
  const size_t n = b.size();
  for (size_t i = 0; i < a.size(); ++i) {
    const unsigned char bc =
        n == 0 ? 0 : static_cast<unsigned char>(b[i < n ? i : 0]);
    acc =
        acc | static_cast<unsigned char>(static_cast<unsigned char>(a[i]) ^ bc);
  }
  return acc == 0;
}

}  // namespace popgate::auth
