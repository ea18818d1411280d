// passwd-file parsing (auth/passwd_file): the whole file as fuzz input. The
// hashes are validated (shape, cost limits) but never computed, so
// executions stay fast.
//
// Properties: lookups are case-blind; every entry found has a non-empty
// hash; an error message never contains a hash (see below).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "auth/passwd_file.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

// Some byte that none of the loader's fixed error texts contains: a password
// field holding one is echoed if and only if it shows up in the message.
bool HasMarker(std::string_view s) {
  for (unsigned char c : s) {
    if (c == '~' || c == '|' || c == '^' || c == '`' || c >= 0x80) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view content(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<popgate::auth::PasswdFile> file =
      popgate::auth::PasswdFile::Parse(content, "fuzz");

  // The duplicate-user error names the user: a password that is part of
  // some user name may show up through that.
  std::vector<std::string_view> users;
  for (std::string_view rest = content; !rest.empty();) {
    const size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest =
        nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    users.push_back(line.substr(0, line.find(':')));
  }
  // User names are lowercased before they are compared (and quoted), so
  // compare without case.
  auto in_a_user_name = [&users](std::string_view s) {
    const std::string needle = absl::AsciiStrToLower(std::string(s));
    for (std::string_view u : users) {
      if (absl::AsciiStrToLower(std::string(u)).find(needle) !=
          std::string::npos) {
        return true;
      }
    }
    return false;
  };

  // Walk the lines as the format says: "user:password[:more]".
  std::string_view rest = content;
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest =
        nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string_view user = line.substr(0, colon);
    std::string_view password = line.substr(colon + 1);
    password = password.substr(0, password.find(':'));
    if (password.ends_with('\r')) password.remove_suffix(1);
    if (!file.ok()) {
      if (password.size() >= 4 && HasMarker(password) &&
          !in_a_user_name(password)) {
        const std::string message(file.status().message());
        FUZZ_CHECK(message.find(password) == std::string::npos);
      }
      continue;
    }
    const popgate::auth::PasswdEntry* e = file->Find(user);
    if (e == nullptr) continue;  // a comment or blank line, say
    FUZZ_CHECK(file->Find(Upper(user)) == e);
    FUZZ_CHECK(!e->hash.empty());
  }
  return 0;
}
