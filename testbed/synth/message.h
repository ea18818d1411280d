// Deterministic synthetic mail messages for pop3-synth and for load
// generators that need to verify what they fetched without talking to the
// server that produced it.
//
// A message is a pure function of (user, message number, size): the same
// triple yields the same bytes in every process, on every run. The header
// section carries the per-user and per-number parts (To, Subject,
// Message-ID); the body depends only on its own length. That split is what
// lets the server keep ONE dot-stuffed copy of a body and share it between
// all users whose messages have that body length (see wire_cache.h).
#ifndef POPGATE_TESTBED_SYNTH_MESSAGE_H_
#define POPGATE_TESTBED_SYNTH_MESSAGE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace popgate::synth {

// Messages at least this large get a header section of exactly this many
// octets (padded with an X-Synth-Pad header), so their body length - and so
// the shared body - does not depend on the length of the user name.
inline constexpr size_t kPaddedHeaderSize = 512;
// The body is never shorter than this (unless the whole message is), so the
// dot lines at its start survive header truncation of small messages.
inline constexpr size_t kMinBodySize = 64;

struct MessageLayout {
  // Header fields, each CRLF-terminated, plus the empty line ending the
  // header section. Empty only for messages too small to hold a header.
  std::string header_section;
  // SynthMessage() == header_section + SynthBody(body_size).
  size_t body_size = 0;
};

MessageLayout SynthLayout(std::string_view user, int n, size_t size);

// The raw body: CRLF-terminated lines of varying length (0..998 octets),
// starting with the lines ".", "..", ".<text>" and "..<text>", with more dot
// lines scattered throughout. Exactly `size` octets; every line ends in CRLF
// unless size == 1 (then the body is a lone "\n").
std::string SynthBody(size_t size);

// SynthBody(size) dot-stuffed as on the wire (RFC 1939 3), without the
// terminating ".\r\n". Built directly rather than by DotStuff(SynthBody())
// so a 100 MB body is produced in one pass with one allocation.
std::string SynthBodyWire(size_t size);

// The complete message of `size` octets: header section + body.
std::string SynthMessage(std::string_view user, int n, size_t size);

// FNV-1a, 64 bit. Not cryptographic: it detects corruption and mix-ups.
uint64_t SynthChecksum(std::string_view data);

// Stable unique-id for UIDL (RFC 1939 7): printable, 1..70 octets, a
// function of (user, n, size) so it survives restarts with the same flags.
std::string SynthUidl(std::string_view user, int n, size_t size);

}  // namespace popgate::synth

#endif  // POPGATE_TESTBED_SYNTH_MESSAGE_H_
