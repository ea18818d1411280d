// Handing a TLS connection to the kernel (the "tls" TCP upper-layer
// protocol): after InstallKernelTls the socket reads and writes plaintext
// and the kernel seals and opens the records, so the session can be spliced
// like a plain one. Linux only; where the ULP is missing (this project's
// CI kernel) KernelTlsAvailable() is false and nothing here is called.
#ifndef POPGATE_TLS_KTLS_SOCKET_H_
#define POPGATE_TLS_KTLS_SOCKET_H_

#include "absl/status/status.h"
#include "tls/ktls_material.h"

namespace popgate::tls {

// True if /proc/sys/net/ipv4/tcp_available_ulp lists "tls".
bool KernelTlsAvailable();

// Attaches the ULP and installs both directions. Errors:
// - FailedPrecondition: nothing changed (no ULP, cipher refused for TX);
//   the connection carries on in user space.
// - DataLoss: the kernel took the send direction but refused the receive
//   one; the connection is unusable and must be closed.
absl::Status InstallKernelTls(int fd, const KtlsMaterial& material);

// What the kernel found where a data record was expected.
enum class KtlsControl { kCloseNotify, kOtherRecord, kNone };
// After a read on a kernel-TLS socket failed with EIO/EINVAL (a record that
// is not application data is next): reads that record without blocking.
KtlsControl ReadKernelTlsControlRecord(int fd);

// Sends a close_notify alert through the kernel (before shutdown(SHUT_WR)),
// so that clients that insist on one see a clean end. Never blocks; false
// if the socket would not take it now.
bool SendKernelTlsCloseNotify(int fd);

}  // namespace popgate::tls

#endif  // POPGATE_TLS_KTLS_SOCKET_H_
