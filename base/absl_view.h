// Debian's Abseil (20220623) was built before it took std::string_view as
// its own string_view: StrCat and StrAppend take absl::string_view, which
// a std::string_view does not convert to. One conversion for every caller.
#ifndef POPGATE_BASE_ABSL_VIEW_H_
#define POPGATE_BASE_ABSL_VIEW_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace popgate {

inline absl::string_view AbslView(std::string_view s) {
  return {s.data(), s.size()};
}

}  // namespace popgate

#endif  // POPGATE_BASE_ABSL_VIEW_H_
