// Per-connection data that the context's callbacks (certificate selection,
// private-key signing, alerts) fill in, reachable from the SSL* through
// ex_data. The TlsEngine owns it and outlives its SSL.
#ifndef POPGATE_TLS_CONN_STATE_H_
#define POPGATE_TLS_CONN_STATE_H_

#include <openssl/base.h>

#include <memory>
#include <string>

#include "tls/async_private_key.h"
#include "tls/traffic_secrets.h"

namespace popgate::tls {

struct ConnState {
  std::string sni_tenant;  // set by certificate selection
  std::string last_alert;  // "sent fatal alert: ..." for error messages
  std::unique_ptr<AsyncSigner> signer;  // server side with a sign pool
  TrafficSecrets secrets;  // filled only where kernel TLS may take over
};

// Attaches `state` to `ssl` (not owned).
void SetConnState(SSL* ssl, ConnState* state);
ConnState* GetConnState(const SSL* ssl);

}  // namespace popgate::tls

#endif  // POPGATE_TLS_CONN_STATE_H_
