// A small HTTP/1.1 request parser: a pure function over the bytes read so
// far. It takes what the admin API needs (origin-form targets, headers,
// a body with Content-Length) and refuses the rest with the status to
// answer: sizes are bounded before anything is stored (request line 8 KiB,
// header section 16 KiB, 64 header fields, body 64 KiB), and everything
// request smuggling lives on (chunked or other transfer codings, obs-fold,
// bare CR, conflicting Content-Length) is a 400 or a 501.
//
// Written here rather than taken from a library: llhttp and picohttpparser
// are not in Debian 12 as libraries; nodejs's http-parser is (2.9), but its
// upstream archived it in 2022 and it parses what we would refuse anyway
// (chunked bodies, keep-alive, obs-fold), so the callbacks around it would
// be as long as this. The admin API needs a few hundred lines of strict
// HTTP/1.1 without keep-alive or chunked bodies.
#ifndef POPGATE_ADMIN_HTTP_REQUEST_H_
#define POPGATE_ADMIN_HTTP_REQUEST_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace popgate::admin {

inline constexpr size_t kMaxRequestLine = 8 * 1024;
inline constexpr size_t kMaxHeaderBytes = 16 * 1024;
inline constexpr size_t kMaxHeaders = 64;
inline constexpr size_t kMaxBody = 64 * 1024;

struct HttpRequest {
  std::string method;     // "GET", "POST" (any token; routing decides)
  std::string target;     // as sent: "/sessions?tenant=a"
  std::string path;       // percent-decoded, without the query: "/sessions"
  std::string query;      // raw, after '?' (may be "")
  int version_minor = 1;  // HTTP/1.0 or HTTP/1.1
  // Names lowercased, values with surrounding blanks trimmed, in order.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Segments matched by a route's "{}" placeholders (HttpServer fills it).
  std::vector<std::string> params;

  // The first header named `name` (lowercase), or nullopt.
  std::optional<std::string_view> Header(std::string_view name) const;
  // A query parameter, percent-decoded ('+' is a space); nullopt if absent
  // or badly encoded.
  std::optional<std::string> QueryParam(std::string_view name) const;
};

enum class ParseStatus { kIncomplete, kComplete, kError };

struct ParseResult {
  ParseStatus status = ParseStatus::kIncomplete;
  // kError: the status to answer (400, 413, 414, 431, 501, 505) and why
  // (safe to send: it never quotes the request).
  int error_status = 0;
  std::string error;
  // kComplete: the request and how many bytes it took.
  HttpRequest request;
  size_t consumed = 0;
};

// Parses one request from the start of `bytes`. kIncomplete: read more and
// call again with everything so far (the limits apply to what is there, so
// an endless line fails before it is complete).
ParseResult ParseHttpRequest(std::string_view bytes);

// Percent-decoding of a path or query component; nullopt for a bad escape
// or a decoded control character (NUL, CR, LF...). `plus_is_space`: the
// query's form encoding.
std::optional<std::string> PercentDecode(std::string_view s,
                                         bool plus_is_space);

// "404 Not Found" -> "Not Found" for the status line.
std::string_view ReasonPhrase(int status);

}  // namespace popgate::admin

#endif  // POPGATE_ADMIN_HTTP_REQUEST_H_
