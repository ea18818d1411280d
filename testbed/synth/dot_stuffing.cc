#include "testbed/synth/dot_stuffing.h"

#include <cstring>

namespace popgate::synth {

std::string DotStuff(std::string_view data) {
  std::string out;
  out.reserve(data.size() + data.size() / 64 + 1);
  size_t pos = 0;
  while (pos < data.size()) {
    // `pos` is always at the start of a line here.
    if (data[pos] == '.') out.push_back('.');
    const void* lf = std::memchr(data.data() + pos, '\n', data.size() - pos);
    size_t end =
        lf ? static_cast<const char*>(lf) - data.data() + 1 : data.size();
    out.append(data.data() + pos, end - pos);
    pos = end;
  }
  return out;
}

std::string DotUnstuff(std::string_view wire) {
  std::string out;
  out.reserve(wire.size());
  size_t pos = 0;
  while (pos < wire.size()) {
    if (wire[pos] == '.') ++pos;
    const void* lf = std::memchr(wire.data() + pos, '\n', wire.size() - pos);
    size_t end =
        lf ? static_cast<const char*>(lf) - wire.data() + 1 : wire.size();
    out.append(wire.data() + pos, end - pos);
    pos = end;
  }
  return out;
}

}  // namespace popgate::synth
