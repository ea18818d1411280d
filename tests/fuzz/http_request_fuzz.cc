// The admin API's HTTP/1.1 request parser (admin/http_request), fed raw
// bytes as a client would send them.
//
// Properties: a complete request took at most the input, its request line
// and header section within their bounds (8 KiB, 16 KiB, 64 fields), its
// body exactly Content-Length (<= 64 KiB) bytes; the path is decoded and
// has no control byte; header names are lowercase tokens and values have
// no CR, LF or NUL; an error carries one of the documented statuses and a
// reason; every proper prefix of a complete request is incomplete or the
// same error class (never a different complete request), and bytes after
// a complete request do not change it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "admin/http_request.h"
#include "tests/fuzz/fuzz_check.h"

using popgate::admin::ParseHttpRequest;
using popgate::admin::ParseResult;
using popgate::admin::ParseStatus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const ParseResult r = ParseHttpRequest(in);
  if (r.status == ParseStatus::kError) {
    const int s = r.error_status;
    FUZZ_CHECK(s == 400 || s == 413 || s == 414 || s == 431 || s == 501 ||
               s == 505);
    FUZZ_CHECK(!r.error.empty());
    return 0;
  }
  if (r.status == ParseStatus::kIncomplete) {
    // Waiting for more only while the bounds could still be met.
    FUZZ_CHECK(size <= 8 + popgate::admin::kMaxRequestLine + 2 +
                           popgate::admin::kMaxHeaderBytes +
                           popgate::admin::kMaxBody);
    return 0;
  }
  const popgate::admin::HttpRequest& req = r.request;
  FUZZ_CHECK(r.consumed <= size);
  FUZZ_CHECK(req.headers.size() <= popgate::admin::kMaxHeaders);
  FUZZ_CHECK(req.body.size() <= popgate::admin::kMaxBody);
  FUZZ_CHECK(req.target.size() <= popgate::admin::kMaxRequestLine);
  FUZZ_CHECK(!req.path.empty() && req.path[0] == '/');
  for (unsigned char c : req.path) FUZZ_CHECK(c >= 0x20 && c != 0x7f);
  for (const auto& [name, value] : req.headers) {
    FUZZ_CHECK(!name.empty());
    for (char c : name) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
    for (char c : value) FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0');
    FUZZ_CHECK(name != "transfer-encoding");
  }
  FUZZ_CHECK(in.substr(r.consumed - req.body.size(), req.body.size()) ==
             req.body);
  // Trailing bytes (a pipelined request) change nothing.
  const ParseResult again = ParseHttpRequest(in.substr(0, r.consumed));
  FUZZ_CHECK(again.status == ParseStatus::kComplete);
  FUZZ_CHECK(again.consumed == r.consumed);
  FUZZ_CHECK(again.request.path == req.path);
  FUZZ_CHECK(again.request.body == req.body);
  // A proper prefix is never a complete request.
  if (r.consumed > 0) {
    const ParseResult shorter = ParseHttpRequest(in.substr(0, r.consumed - 1));
    FUZZ_CHECK(shorter.status != ParseStatus::kComplete ||
               shorter.consumed < r.consumed);
  }
  return 0;
}
