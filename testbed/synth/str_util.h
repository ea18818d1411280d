// Small string helpers on std::string_view. Debian 12's abseil has its own
// absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW is 0), so absl's string
// functions do not accept std::string_view; these fill the gap.
#ifndef POPGATE_TESTBED_SYNTH_STR_UTIL_H_
#define POPGATE_TESTBED_SYNTH_STR_UTIL_H_

#include <charconv>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"

namespace popgate::synth {

namespace str_internal {

inline void Append(std::string* out, std::string_view s) { out->append(s); }
inline void Append(std::string* out, absl::string_view s) {
  out->append(s.data(), s.size());
}
inline void Append(std::string* out, const char* s) { out->append(s); }
inline void Append(std::string* out, const std::string& s) { out->append(s); }
inline void Append(std::string* out, char c) { out->push_back(c); }
template <std::integral T>
requires(!std::same_as<T, char> &&
         !std::same_as<T, bool>) void Append(std::string* out, T v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, end);
}

}  // namespace str_internal

// Concatenates strings, characters and integers (decimal).
template <typename... Args>
std::string Cat(const Args&... args) {
  std::string out;
  (str_internal::Append(&out, args), ...);
  return out;
}

template <typename... Args>
void CatTo(std::string* out, const Args&... args) {
  (str_internal::Append(out, args), ...);
}

inline std::string_view ToStd(absl::string_view s) {
  return std::string_view(s.data(), s.size());
}
inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// 16 lowercase hex digits.
inline std::string Hex64(uint64_t v) {
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[i] = "0123456789abcdef"[v & 15];
  return out;
}

// Splits on `sep`, dropping empty pieces.
inline std::vector<std::string_view> SplitSkipEmpty(std::string_view s,
                                                    char sep) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    size_t pos = s.find(sep);
    std::string_view piece = s.substr(0, pos);
    if (!piece.empty()) out.push_back(piece);
    if (pos == std::string_view::npos) break;
    s.remove_prefix(pos + 1);
  }
  return out;
}

inline std::string_view StripWhitespace(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n\v\f";
  size_t first = s.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  size_t last = s.find_last_not_of(kSpace);
  return s.substr(first, last - first + 1);
}

inline std::string AsciiUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

}  // namespace popgate::synth

#endif  // POPGATE_TESTBED_SYNTH_STR_UTIL_H_
