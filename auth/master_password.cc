#include "auth/master_password.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/unique_fd.h"
#include "base/wipe.h"

namespace popgate::auth {
namespace {

// Paths come from the operator's config, but are quoted escaped anyway:
// an error line is one log line.
std::string Quoted(const std::string& path) {
  return absl::StrCat("\"", absl::CHexEscape(path), "\"");
}

absl::Status FileError(const std::string& path, const std::string& what) {
  return absl::FailedPreconditionError(
      absl::StrCat("master password file ", Quoted(path), ": ", what));
}

absl::Status ErrnoError(const std::string& path, const char* call, int err) {
  return absl::ErrnoToStatus(
      err, absl::StrCat("master password file ", Quoted(path), ": ", call, ": ",
                        strerror(err)));
}

}  // namespace

MasterPassword::~MasterPassword() { Wipe(value_); }

absl::StatusOr<std::shared_ptr<const MasterPassword>> ReadMasterPasswordFile(
    const std::string& path) {
  struct stat before {};
  if (::lstat(path.c_str(), &before) != 0) {
    return ErrnoError(path, "lstat", errno);
  }
  if (S_ISLNK(before.st_mode)) {
    // A link could be re-pointed by whoever can write its directory; the
    // file that holds every maildrop's key is named directly.
    return FileError(path, "is a symbolic link; name the file itself");
  }
  if (!S_ISREG(before.st_mode)) {
    return FileError(path, "is not a regular file");
  }
  if (before.st_uid != ::geteuid()) {
    return FileError(
        path, absl::StrFormat("is owned by uid %u, not by popgate's uid %u: "
                              "chown it to the user popgate runs as",
                              before.st_uid, ::geteuid()));
  }
  if ((before.st_mode & 077) != 0) {
    return FileError(
        path,
        absl::StrFormat("has mode %04o; group and others must have no access: "
                        "chmod 600 %s",
                        before.st_mode & 07777, absl::CHexEscape(path)));
  }
  UniqueFd fd(::open(
      path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid()) return ErrnoError(path, "open", errno);
  struct stat opened {};
  if (::fstat(fd.get(), &opened) != 0) return ErrnoError(path, "fstat", errno);
  // The checks above must hold for the file actually read, not for one
  // swapped in between lstat and open.
  if (opened.st_dev != before.st_dev || opened.st_ino != before.st_ino ||
      opened.st_uid != before.st_uid || opened.st_mode != before.st_mode) {
    return FileError(path, "changed while being opened; try again");
  }

  // Enough for the longest allowed line, its CR LF, and one byte more to
  // tell "too long" from "just fits".
  constexpr size_t kWant = kMaxMasterPasswordLength + 3;
  std::string buf(kWant, '\0');
  size_t got = 0;
  while (got < kWant) {
    ssize_t n = ::read(fd.get(), buf.data() + got, kWant - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      Wipe(buf);
      return ErrnoError(path, "read", err);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
    if (std::string_view(buf.data(), got).find('\n') != std::string_view::npos)
      break;
  }
  std::string_view content(buf.data(), got);
  size_t eol = content.find('\n');
  if (eol == std::string_view::npos && got == kWant) {
    Wipe(buf);
    return FileError(path, absl::StrCat("the first line is longer than ",
                                        kMaxMasterPasswordLength, " bytes"));
  }
  std::string_view line = content.substr(0, eol);
  if (line.ends_with('\r')) line.remove_suffix(1);
  absl::Status bad;
  if (line.empty()) {
    bad = FileError(path, "the first line (the password) is empty");
  } else if (line.size() > kMaxMasterPasswordLength) {
    bad = FileError(path, absl::StrCat("the first line is longer than ",
                                       kMaxMasterPasswordLength, " bytes"));
  } else if (line.find('\0') != std::string_view::npos) {
    bad = FileError(path, "the first line contains a NUL byte");
  } else if (line.find('\r') != std::string_view::npos) {
    bad = FileError(path, "the first line contains a CR");
  }
  if (!bad.ok()) {
    Wipe(buf);
    return bad;
  }
  auto password = std::make_shared<const MasterPassword>(std::string(line));
  Wipe(buf);
  return password;
}

}  // namespace popgate::auth
