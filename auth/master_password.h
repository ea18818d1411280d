// The master password for backend_login = "master": popgate logs in to the
// backend as a master user on the user's behalf (after verifying the user
// locally), so the password that opens every maildrop of the pool lives in
// one file that only popgate may read.
//
// ReadMasterPasswordFile refuses, before reading a byte:
//  - anything but a regular file (a symlink too: lstat, then open with
//    O_NOFOLLOW and check that the opened file is the one lstat saw),
//  - a file not owned by popgate's effective uid,
//  - a file with any group or other permission bit (mode & 077): the error
//    names the path, the mode and the fix ("chmod 600 PATH").
// The password is the first line without its CR LF (or LF): non-empty, at
// most kMaxMasterPasswordLength bytes, no NUL and no CR inside. Errors
// never contain any of the file's content.
#ifndef POPGATE_AUTH_MASTER_PASSWORD_H_
#define POPGATE_AUTH_MASTER_PASSWORD_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace popgate::auth {

inline constexpr size_t kMaxMasterPasswordLength = 1024;

class MasterPassword {
 public:
  explicit MasterPassword(std::string value) : value_(std::move(value)) {}
  // Wipes the copy: nothing of the password stays in freed memory.
  ~MasterPassword();
  MasterPassword(const MasterPassword&) = delete;
  MasterPassword& operator=(const MasterPassword&) = delete;

  std::string_view value() const { return value_; }

 private:
  std::string value_;
};

// See the top comment. Shared (const) so that a reload can swap it while
// sessions still hold the old one.
absl::StatusOr<std::shared_ptr<const MasterPassword>> ReadMasterPasswordFile(
    const std::string& path);

}  // namespace popgate::auth

#endif  // POPGATE_AUTH_MASTER_PASSWORD_H_
