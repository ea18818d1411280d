// Turning BoringSSL's thread-local error queue into text for logs and
// Status messages. The queue only ever holds library/reason codes and file
// names, never key material, so its text is safe to log.
#ifndef POPGATE_TLS_TLS_ERRORS_H_
#define POPGATE_TLS_TLS_ERRORS_H_

#include <string>

namespace popgate::tls {

// Drains the calling thread's error queue: "reason; reason; ..." (or "" if
// it was empty).
std::string DrainErrorQueue();

}  // namespace popgate::tls

#endif  // POPGATE_TLS_TLS_ERRORS_H_
