// A set of IPv4/IPv6 networks ("127.0.0.0/8", "::1/128") and a membership
// test for client addresses (IPv4-mapped IPv6 addresses match IPv4 nets).
#ifndef POPGATE_NET_CIDR_SET_H_
#define POPGATE_NET_CIDR_SET_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace popgate {

class CidrSet {
 public:
  // The one CIDR parser: "10.0.0.0/8", "::1/128" or a bare address (/32,
  // /128). Refused: a prefix longer than the address, anything but digits
  // after '/', and host bits set ("10.0.0.1/8": the error names the
  // network, 10.0.0.0/8). Errors quote the text escaped.
  static absl::StatusOr<CidrSet> Parse(const std::vector<std::string>& nets);
  static absl::Status Validate(std::string_view net);
  bool Contains(const sockaddr* addr) const;
  size_t size() const { return nets_.size(); }

 private:
  struct Net {
    bool v4;
    std::array<uint8_t, 16> addr;
    int bits;
  };
  static absl::StatusOr<Net> ParseOne(std::string_view text);
  std::vector<Net> nets_;
};

}  // namespace popgate

#endif  // POPGATE_NET_CIDR_SET_H_
