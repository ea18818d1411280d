#include "pop3/xclient.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace popgate {
namespace {

// Longest session id we pass on: Dovecot (LOGIN_MAX_SESSION_ID_LEN) ignores
// a longer one without a word, and the log lines would no longer match.
constexpr size_t kMaxSession = 64;

// A numeric IPv4 or IPv6 address, nothing else (no brackets, no port, no
// scope, no NUL).
bool IsNumericIp(const std::string& s) {
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return false;
  if (s.find('\0') != std::string::npos) return false;
  in_addr v4;
  in6_addr v6;
  return inet_pton(AF_INET, s.c_str(), &v4) == 1 ||
         inet_pton(AF_INET6, s.c_str(), &v6) == 1;
}

bool IsSessionChar(char c) {
  return absl::ascii_isalnum(c) || c == '+' || c == '/' || c == '=' ||
         c == '_' || c == '.' || c == '-';
}

}  // namespace

absl::StatusOr<std::string> FormatXclient(const XclientParams& p) {
  // Errors never quote the values: a bad one came from somewhere we do not
  // trust and has no place in a log line.
  if (!IsNumericIp(p.addr)) {
    return absl::InvalidArgumentError("XCLIENT: ADDR is not a numeric address");
  }
  if (!IsNumericIp(p.dest_addr)) {
    return absl::InvalidArgumentError(
        "XCLIENT: DESTADDR is not a numeric address");
  }
  if (p.port == 0 || p.dest_port == 0) {
    // Dovecot parses ports with net_str2port, which refuses 0.
    return absl::InvalidArgumentError("XCLIENT: port 0");
  }
  if (p.session.empty() || p.session.size() > kMaxSession) {
    return absl::InvalidArgumentError("XCLIENT: bad SESSION length");
  }
  for (char c : p.session) {
    if (!IsSessionChar(c)) {
      return absl::InvalidArgumentError("XCLIENT: bad character in SESSION");
    }
  }
  if (p.ttl < 1) {
    // No hops left: this connection is going round in a loop of proxies.
    return absl::FailedPreconditionError("XCLIENT: proxy TTL exhausted");
  }
  return absl::StrCat("XCLIENT ADDR=", p.addr, " PORT=", p.port,
                      " SESSION=", p.session, " TTL=", p.ttl,
                      " DESTADDR=", p.dest_addr, " DESTPORT=", p.dest_port,
                      "\r\n");
}

bool CapaOffersXclient(std::string_view capa_line) {
  constexpr std::string_view kWord = "XCLIENT";
  // Tolerate the line's CRLF if the caller left it on.
  if (!capa_line.empty() && capa_line.back() == '\n')
    capa_line.remove_suffix(1);
  if (!capa_line.empty() && capa_line.back() == '\r')
    capa_line.remove_suffix(1);
  if (capa_line.size() < kWord.size()) return false;
  for (size_t i = 0; i < kWord.size(); ++i) {
    if (absl::ascii_toupper(static_cast<unsigned char>(capa_line[i])) !=
        kWord[i]) {
      return false;
    }
  }
  return capa_line.size() == kWord.size() || capa_line[kWord.size()] == ' ';
}

}  // namespace popgate
