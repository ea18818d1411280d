#include "tls/tls_errors.h"

#include <openssl/err.h>

namespace popgate::tls {

std::string DrainErrorQueue() {
  std::string out;
  for (uint32_t e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

}  // namespace popgate::tls
