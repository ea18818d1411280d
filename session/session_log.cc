#include "session/session_log.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/json_escape.h"

namespace popgate {

std::string FormatSessionLog(const SessionRecord& r, absl::Time end) {
  return absl::StrCat(
      "{\"time\":\"",
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", end, absl::UTCTimeZone()),
      "\",\"event\":\"session\",\"session\":\"", JsonEscape(r.session_id),
      "\",\"client\":\"", JsonEscape(r.client), "\"",
      r.front.empty()
          ? ""
          : absl::StrCat(",\"front\":\"", JsonEscape(r.front), "\""),
      ",\"tenant\":\"",
      JsonEscape(r.tenant), "\",\"user\":\"", JsonEscape(r.user),
      "\",\"backend\":\"", JsonEscape(r.backend),
      "\",\"bytes_in\":", r.bytes_in, ",\"bytes_out\":", r.bytes_out,
      ",\"auth_failures\":", r.auth_failures, ",\"forwarding\":\"",
      JsonEscape(r.forwarding),
      "\",\"ktls\":", r.forwarding == "ktls-splice" ? "true" : "false",
      r.ktls_fallback.empty() ? ""
                              : absl::StrCat(",\"ktls_fallback\":\"",
                                             JsonEscape(r.ktls_fallback), "\""),
      ",\"tls\":\"", JsonEscape(r.tls),
      "\",\"tls_resumed\":", r.tls_resumed ? "true" : "false", ",\"sni\":\"",
      JsonEscape(r.sni), "\",\"backend_tls\":\"", JsonEscape(r.backend_tls),
      "\"",
      r.failovers == 0 ? "" : absl::StrCat(",\"failovers\":", r.failovers),
      r.identity.empty() ? ""
                         : absl::StrCat(",\"identity\":\"", r.identity, "\""),
      r.auth_cache_hit ? ",\"auth_cache\":\"hit\"" : "",
      ",\"duration_ms\":", absl::ToInt64Milliseconds(end - r.start),
      ",\"result\":\"", std::string(SessionResultName(r.result)),
      "\",\"ended_by\":\"",
      std::string(EndedByName(SessionResultEndedBy(r.result))), "\"",
      r.detail.empty()
          ? ""
          : absl::StrCat(",\"detail\":\"", JsonEscape(r.detail), "\""),
      "}\n");
}

}  // namespace popgate
