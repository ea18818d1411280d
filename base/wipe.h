// Wiping secrets (passwords, SASL payloads, keys, commands that carried
// them) before their memory is freed or reused: the one helper every layer
// uses, so no wipe can be optimised away by a compiler that sees the memory
// die (explicit_bzero is guaranteed not to be).
#ifndef POPGATE_BASE_WIPE_H_
#define POPGATE_BASE_WIPE_H_

#include <string.h>

#include <cstddef>
#include <string>

namespace popgate {

inline void WipeBytes(void* p, size_t n) { explicit_bzero(p, n); }

// Any contiguous container (std::string, std::vector, std::array): zeroes
// its bytes; a string is also emptied.
template <typename Container>
void WipeBytesOf(Container& c) {
  WipeBytes(c.data(), c.size() * sizeof(*c.data()));
}

inline void Wipe(std::string& s) {
  WipeBytesOf(s);
  s.clear();
}

}  // namespace popgate

#endif  // POPGATE_BASE_WIPE_H_
