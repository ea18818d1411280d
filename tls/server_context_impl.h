// ServerContext's private state, shared with the SSL callbacks (found via
// SSL_CTX ex_data) and with TlsEngine (a friend).
#ifndef POPGATE_TLS_SERVER_CONTEXT_IMPL_H_
#define POPGATE_TLS_SERVER_CONTEXT_IMPL_H_

#include <memory>

#include "auth/hash_pool.h"
#include "tls/cert_selection.h"
#include "tls/ticket_keys.h"
#include "tls/tls_context.h"

namespace popgate::tls {

struct ServerContext::Impl {
  CertSelector certs;
  auth::HashPool* sign_pool = nullptr;
  std::shared_ptr<TicketKeys> ticket_keys;
};

}  // namespace popgate::tls

#endif  // POPGATE_TLS_SERVER_CONTEXT_IMPL_H_
