// Wiping secrets (passwords, SASL payloads, commands that carried them)
// before their memory is freed or reused.
#ifndef POPGATE_BASE_WIPE_H_
#define POPGATE_BASE_WIPE_H_

#include <string.h>

#include <string>

namespace popgate {

inline void Wipe(std::string& s) {
  explicit_bzero(s.data(), s.size());
  s.clear();
}

}  // namespace popgate

#endif  // POPGATE_BASE_WIPE_H_
