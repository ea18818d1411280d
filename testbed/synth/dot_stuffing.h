// Byte-stuffing of POP3 multi-line responses (RFC 1939 section 3).
#ifndef POPGATE_TESTBED_SYNTH_DOT_STUFFING_H_
#define POPGATE_TESTBED_SYNTH_DOT_STUFFING_H_

#include <string>
#include <string_view>

namespace popgate::synth {

// Prefixes every line that starts with "." with one more ".". A line starts
// at the beginning of `data` and after every "\n". The result does not
// include the ".\r\n" terminator. Stuffing is line-local, so stuffing two
// pieces split at a line boundary equals stuffing their concatenation.
std::string DotStuff(std::string_view data);

// Inverse of DotStuff: removes the first "." of every line starting with
// "." . `wire` must not include the terminating ".\r\n".
std::string DotUnstuff(std::string_view wire);

}  // namespace popgate::synth

#endif  // POPGATE_TESTBED_SYNTH_DOT_STUFFING_H_
