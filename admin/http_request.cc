#include "admin/http_request.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

namespace popgate::admin {
namespace {

// RFC 9110 token characters (method, header names).
bool IsTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

ParseResult Error(int status, std::string why) {
  ParseResult r;
  r.status = ParseStatus::kError;
  r.error_status = status;
  r.error = std::move(why);
  return r;
}

// The next line of `bytes` from `pos`: its end (before CRLF or LF) and
// where the following line starts; npos while no LF has arrived. A CR
// anywhere but before the LF is an error (set in *bad).
size_t FindLineEnd(std::string_view bytes, size_t pos, size_t* next,
                   bool* bad) {
  const size_t lf = bytes.find('\n', pos);
  const size_t limit = lf == std::string_view::npos ? bytes.size() : lf;
  const size_t cr = bytes.find('\r', pos);
  if (cr != std::string_view::npos && cr < limit && cr + 1 != lf) {
    // A bare CR (or one not yet followed by anything: wait for more).
    if (cr + 1 < bytes.size()) *bad = true;
    return std::string_view::npos;
  }
  if (lf == std::string_view::npos) return std::string_view::npos;
  *next = lf + 1;
  return lf > pos && bytes[lf - 1] == '\r' ? lf - 1 : lf;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> PercentDecode(std::string_view s,
                                         bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = HexValue(s[i + 1]);
      const int lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return std::nullopt;
    out.push_back(c);
  }
  return out;
}

std::optional<std::string_view> HttpRequest::Header(
    std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return std::string_view(v);
  }
  return std::nullopt;
}

std::optional<std::string> HttpRequest::QueryParam(
    std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    const size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    const size_t eq = pair.find('=');
    std::optional<std::string> key =
        PercentDecode(pair.substr(0, eq), /*plus_is_space=*/true);
    if (!key.has_value() || *key != name) continue;
    if (eq == std::string_view::npos) return std::string();
    return PercentDecode(pair.substr(eq + 1), /*plus_is_space=*/true);
  }
  return std::nullopt;
}

ParseResult ParseHttpRequest(std::string_view bytes) {
  // Robustness (RFC 9112 2.2): empty lines before the request line.
  size_t pos = 0;
  while (pos < bytes.size() && pos < 8 &&
         (bytes[pos] == '\r' || bytes[pos] == '\n')) {
    ++pos;
  }
  bool bad = false;
  size_t next = 0;
  size_t end = FindLineEnd(bytes, pos, &next, &bad);
  if (bad) return Error(400, "bare CR in the request line");
  if (end == std::string_view::npos) {
    if (bytes.size() - pos > kMaxRequestLine) {
      return Error(414, "request line longer than 8 KiB");
    }
    return {};
  }
  if (end - pos > kMaxRequestLine) {
    return Error(414, "request line longer than 8 KiB");
  }
  const std::string_view line = bytes.substr(pos, end - pos);
  const size_t sp1 = line.find(' ');
  const size_t sp2 =
      sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos ||
      line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Error(400, "malformed request line");
  }
  ParseResult r;
  HttpRequest& req = r.request;
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method)) return Error(400, "malformed method");
  if (target.empty() || target[0] != '/') {
    return Error(400, "the target must be a path (origin-form)");
  }
  for (unsigned char c : target) {
    if (c <= 0x20 || c >= 0x7f) return Error(400, "bad byte in the target");
  }
  if (version == "HTTP/1.1") {
    req.version_minor = 1;
  } else if (version == "HTTP/1.0") {
    req.version_minor = 0;
  } else if (version.starts_with("HTTP/")) {
    return Error(505, "only HTTP/1.0 and HTTP/1.1");
  } else {
    return Error(400, "malformed HTTP version");
  }
  req.method = std::string(method);
  req.target = std::string(target);
  const size_t qm = target.find('?');
  std::optional<std::string> path =
      PercentDecode(target.substr(0, qm), /*plus_is_space=*/false);
  if (!path.has_value()) return Error(400, "bad percent-encoding in the path");
  req.path = *std::move(path);
  if (qm != std::string_view::npos)
    req.query = std::string(target.substr(qm + 1));

  // Header fields until the empty line.
  const size_t headers_start = next;
  pos = next;
  std::optional<uint64_t> content_length;
  while (true) {
    bad = false;
    end = FindLineEnd(bytes, pos, &next, &bad);
    if (bad) return Error(400, "bare CR in a header field");
    if (end == std::string_view::npos) {
      if (bytes.size() - headers_start > kMaxHeaderBytes) {
        return Error(431, "header section larger than 16 KiB");
      }
      return {};
    }
    if (next - headers_start > kMaxHeaderBytes) {
      return Error(431, "header section larger than 16 KiB");
    }
    const std::string_view field = bytes.substr(pos, end - pos);
    pos = next;
    if (field.empty()) break;
    if (field[0] == ' ' || field[0] == '\t') {
      return Error(400, "obsolete line folding");
    }
    if (req.headers.size() >= kMaxHeaders) {
      return Error(431, "more than 64 header fields");
    }
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos) {
      return Error(400, "header field without a colon");
    }
    const std::string_view name = field.substr(0, colon);
    // No blank between the name and the colon (RFC 9112 5.1).
    if (!IsToken(name)) return Error(400, "malformed header name");
    std::string_view value = field.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
      value.remove_suffix(1);
    }
    for (unsigned char c : value) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        return Error(400, "control character in a header value");
      }
    }
    std::string lower =
        absl::AsciiStrToLower(absl::string_view(name.data(), name.size()));
    if (lower == "transfer-encoding") {
      return Error(501, "transfer codings are not supported");
    }
    if (lower == "content-length") {
      uint64_t n = 0;
      if (value.empty() || value.size() > 19 ||
          value.find_first_not_of("0123456789") != std::string_view::npos ||
          !absl::SimpleAtoi(absl::string_view(value.data(), value.size()),
                            &n)) {
        return Error(400, "malformed Content-Length");
      }
      if (content_length.has_value() && *content_length != n) {
        return Error(400, "conflicting Content-Length fields");
      }
      content_length = n;
    }
    req.headers.emplace_back(std::move(lower), std::string(value));
  }
  const uint64_t body = content_length.value_or(0);
  if (body > kMaxBody) return Error(413, "body larger than 64 KiB");
  if (bytes.size() - pos < body) return {};
  req.body = std::string(bytes.substr(pos, body));
  r.consumed = pos + body;
  r.status = ParseStatus::kComplete;
  return r;
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace popgate::admin
