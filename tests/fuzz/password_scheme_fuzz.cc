// Password-scheme strings (auth/password_scheme): scheme names, bare crypt
// prefixes and the shape/cost validation of hashes, without the slow
// hashing itself (only PLAIN and refused hashes are verified, which costs
// nothing).
//
// Properties: scheme names round-trip; a hash ValidateHash refuses never
// verifies; a detected crypt scheme is one whose hashes start that way;
// ConstantTimeEquals is equality; an error never contains the hash.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "auth/password_scheme.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using popgate::auth::Scheme;

constexpr Scheme kSchemes[] = {Scheme::kPlain,       Scheme::kSha256Crypt,
                               Scheme::kSha512Crypt, Scheme::kBlfCrypt,
                               Scheme::kArgon2i,     Scheme::kArgon2id};

// Some byte that none of the fixed error texts contains: a hash holding one
// is echoed if and only if it shows up in the message.
bool HasMarker(std::string_view s) {
  for (unsigned char c : s) {
    if (c == '~' || c == '|' || c == '^' || c == '`' || c >= 0x80) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string name = in.ConsumeRandomLengthString(24);
  const std::string password = in.ConsumeRandomLengthString(64);
  const std::string hash = in.ConsumeRemainingBytesAsString();

  std::optional<Scheme> parsed = popgate::auth::ParseScheme(name);
  if (parsed.has_value()) {
    std::string_view canonical = popgate::auth::SchemeName(*parsed);
    FUZZ_CHECK(popgate::auth::ParseScheme(canonical) == parsed);
  }

  for (Scheme scheme : kSchemes) {
    absl::Status valid = popgate::auth::ValidateHash(scheme, hash);
    if (!valid.ok()) {
      // Refused before any hashing: cheap, and never a match.
      FUZZ_CHECK(!popgate::auth::VerifyPassword(scheme, hash, password));
      if (HasMarker(hash)) {
        const std::string message(valid.message());
        FUZZ_CHECK(message.find(hash) == std::string::npos);
      }
    } else if (scheme == Scheme::kPlain) {
      FUZZ_CHECK(popgate::auth::VerifyPassword(scheme, hash, password) ==
                 (hash == password));
    }
  }

  std::optional<Scheme> detected = popgate::auth::DetectCryptScheme(hash);
  if (detected.has_value()) {
    FUZZ_CHECK(*detected != Scheme::kPlain);
    FUZZ_CHECK(hash.starts_with('$'));
  }

  FUZZ_CHECK(popgate::auth::ConstantTimeEquals(password, hash) ==
             (password == hash));
  FUZZ_CHECK(popgate::auth::ConstantTimeEquals(hash, hash));
  return 0;
}
