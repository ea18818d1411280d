#include "tls/conn_state.h"

#include <openssl/ssl.h>

namespace popgate::tls {
namespace {

int ExIndex() {
  // Function-local static: allocated once, thread-safe.
  static const int index =
      SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace

void SetConnState(SSL* ssl, ConnState* state) {
  SSL_set_ex_data(ssl, ExIndex(), state);
}

ConnState* GetConnState(const SSL* ssl) {
  return static_cast<ConnState*>(SSL_get_ex_data(ssl, ExIndex()));
}

}  // namespace popgate::tls
