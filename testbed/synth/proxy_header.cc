#include "testbed/synth/proxy_header.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace popgate::synth {
namespace {

constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);
constexpr std::string_view kV1Prefix = "PROXY ";
constexpr size_t kV2Fixed = 16;  // signature, ver/cmd, fam, length

bool IsDecimalPort(std::string_view s) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v <= 65535;
}

bool LooksLikeAddress(std::string_view s, bool v6) {
  if (s.empty() || s.size() > 39) return false;
  for (char c : s) {
    bool ok =
        (c >= '0' && c <= '9') || (v6 ? (c == ':' || (c >= 'a' && c <= 'f') ||
                                         (c >= 'A' && c <= 'F') || c == '.')
                                      : c == '.');
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string_view ProxyHeaderReader::rest() const {
  if (state_ != State::kDone) return {};
  return std::string_view(buffer_).substr(header_size_);
}

ProxyHeaderReader::State ProxyHeaderReader::Feed(std::string_view bytes) {
  // After the header (or an error) the caller owns the stream.
  if (state_ != State::kNeedMore) return state_;
  // Bounded: while kNeedMore the buffer is under a header's size plus one
  // read, since every branch of Parse() knows its limit early (v2 from its
  // 16 fixed bytes, v1 within 107).
  buffer_.append(bytes);
  state_ = Parse();
  return state_;
}

ProxyHeaderReader::State ProxyHeaderReader::Fail(std::string why) {
  error_ = std::move(why);
  state_ = State::kError;
  return state_;
}

ProxyHeaderReader::State ProxyHeaderReader::Parse() {
  if (buffer_.empty()) return State::kNeedMore;
  // The first byte tells the versions apart: v2 starts with CR, v1 with P.
  if (buffer_[0] == '\r') return ParseV2();
  if (buffer_[0] == 'P') return ParseV1();
  return Fail("no PROXY header");
}

ProxyHeaderReader::State ProxyHeaderReader::ParseV2() {
  const size_t have = std::min(buffer_.size(), kV2Signature.size());
  if (std::string_view(buffer_).substr(0, have) !=
      kV2Signature.substr(0, have)) {
    return Fail("bad PROXY v2 signature");
  }
  if (buffer_.size() < kV2Fixed) return State::kNeedMore;
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(buffer_[i]); };
  const uint8_t ver_cmd = byte(12);
  if ((ver_cmd >> 4) != 2) return Fail("PROXY v2: version is not 2");
  const uint8_t cmd = ver_cmd & 0x0f;
  if (cmd > 1) return Fail("PROXY v2: unknown command");
  const uint8_t family = byte(13);
  const size_t length = (size_t{byte(14)} << 8) | byte(15);
  if (kV2Fixed + length > kMaxHeader) return Fail("PROXY v2 header too long");
  // The address block must fit what the family/protocol says (TLVs may
  // follow it); LOCAL and UNSPEC carry nothing we need.
  size_t need = 0;
  switch (family) {
    case 0x00:
      break;
    case 0x11:
    case 0x12:
      need = 12;
      break;
    case 0x21:
    case 0x22:
      need = 36;
      break;
    case 0x31:
    case 0x32:
      need = 216;
      break;
    default:
      return Fail("PROXY v2: unknown address family");
  }
  if (cmd == 1 && length < need) {
    return Fail("PROXY v2: address block shorter than its family");
  }
  if (buffer_.size() < kV2Fixed + length) return State::kNeedMore;
  version_ = 2;
  command_ = cmd == 0 ? Command::kLocal : Command::kProxy;
  header_size_ = kV2Fixed + length;
  return State::kDone;
}

ProxyHeaderReader::State ProxyHeaderReader::ParseV1() {
  const size_t have = std::min(buffer_.size(), kV1Prefix.size());
  if (std::string_view(buffer_).substr(0, have) != kV1Prefix.substr(0, have)) {
    return Fail("bad PROXY v1 prefix");
  }
  const size_t crlf = buffer_.find("\r\n");
  if (crlf == std::string::npos) {
    if (buffer_.size() >= kMaxV1Line) return Fail("PROXY v1 line too long");
    if (buffer_.find('\n') != std::string::npos) {
      return Fail("PROXY v1 line ends without CR");
    }
    return State::kNeedMore;
  }
  if (crlf + 2 > kMaxV1Line) return Fail("PROXY v1 line too long");
  std::string_view line = std::string_view(buffer_).substr(0, crlf);
  std::vector<std::string_view> f;
  size_t pos = 0;
  while (pos <= line.size()) {
    size_t sp = line.find(' ', pos);
    if (sp == std::string_view::npos) sp = line.size();
    f.push_back(line.substr(pos, sp - pos));
    pos = sp + 1;
  }
  if (f.size() >= 2 && f[1] == "UNKNOWN") {
    // "PROXY UNKNOWN" may carry anything after it, to be ignored.
    command_ = Command::kLocal;
  } else if (f.size() == 6 && (f[1] == "TCP4" || f[1] == "TCP6") &&
             LooksLikeAddress(f[2], f[1] == "TCP6") &&
             LooksLikeAddress(f[3], f[1] == "TCP6") && IsDecimalPort(f[4]) &&
             IsDecimalPort(f[5])) {
    command_ = Command::kProxy;
  } else {
    return Fail("malformed PROXY v1 line");
  }
  version_ = 1;
  header_size_ = crlf + 2;
  return State::kDone;
}

}  // namespace popgate::synth
