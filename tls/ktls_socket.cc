#include "tls/ktls_socket.h"

#include <errno.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>
#include <string>

#include "base/wipe.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

namespace popgate::tls {
namespace {

constexpr uint8_t kRecordAlert = 21;
constexpr uint8_t kAlertWarning = 1;
constexpr uint8_t kAlertCloseNotify = 0;

// One of the kernel's crypto_info layouts, filled from `d`, wiped when done.
template <typename Info>
class CryptoInfo {
 public:
  CryptoInfo(uint16_t version, uint16_t cipher_type, const KtlsDirection& d) {
    memset(&info_, 0, sizeof(info_));
    info_.info.version = version;
    info_.info.cipher_type = cipher_type;
    // The nonce base is salt (implicit part) then IV (the rest).
    const size_t salt = sizeof(info_.salt);
    memcpy(info_.salt, d.nonce_base.data(), salt);
    memcpy(info_.iv, d.nonce_base.data() + salt, sizeof(info_.iv));
    memcpy(info_.key, d.key.data(), std::min(sizeof(info_.key), d.key_len));
    uint64_t seq = d.seq;
    for (int i = static_cast<int>(sizeof(info_.rec_seq)) - 1; i >= 0; --i) {
      info_.rec_seq[i] = static_cast<unsigned char>(seq);
      seq >>= 8;
    }
  }
  ~CryptoInfo() { WipeBytes(&info_, sizeof(info_)); }
  int Set(int fd, int direction) const {
    return setsockopt(fd, SOL_TLS, direction, &info_, sizeof(info_));
  }

 private:
  Info info_;
};

int SetDirection(int fd, int direction, const KtlsMaterial& m,
                 const KtlsDirection& d) {
  switch (m.cipher) {
    case KtlsCipher::kAes128Gcm:
      return CryptoInfo<tls12_crypto_info_aes_gcm_128>(
                 m.version, TLS_CIPHER_AES_GCM_128, d)
          .Set(fd, direction);
    case KtlsCipher::kAes256Gcm:
      return CryptoInfo<tls12_crypto_info_aes_gcm_256>(
                 m.version, TLS_CIPHER_AES_GCM_256, d)
          .Set(fd, direction);
    case KtlsCipher::kChacha20Poly1305:
      return CryptoInfo<tls12_crypto_info_chacha20_poly1305>(
                 m.version, TLS_CIPHER_CHACHA20_POLY1305, d)
          .Set(fd, direction);
  }
  errno = EINVAL;
  return -1;
}

// One record's payload plus room for the one-byte record-type control
// message the kernel uses to tell (and be told) a record's content type.
struct RecordMsg {
  RecordMsg(unsigned char* data, size_t len) : iov{data, len} {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
  }
  RecordMsg(const RecordMsg&) = delete;
  RecordMsg& operator=(const RecordMsg&) = delete;
  struct iovec iov;
  struct msghdr msg = {};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(unsigned char))] = {};
};

std::string Errno(const char* what) {
  return std::string(what) + ": " + strerror(errno);
}

}  // namespace

bool KernelTlsAvailable() {
  FILE* f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
  if (f == nullptr) return false;
  char buf[256] = {};
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  // Space-separated names; "tls" must be a whole word.
  std::string ulps = " " + std::string(buf, n) + " ";
  std::replace(ulps.begin(), ulps.end(), '\n', ' ');
  return ulps.find(" tls ") != std::string::npos;
}

absl::Status InstallKernelTls(int fd, const KtlsMaterial& m) {
  if (setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) != 0) {
    return absl::FailedPreconditionError(Errno("TCP_ULP tls"));
  }
  // With the ULP attached but no keys, the socket still passes bytes
  // through untouched, so a refused TX leaves user-space TLS working.
  if (SetDirection(fd, TLS_TX, m, m.tx) != 0) {
    return absl::FailedPreconditionError(Errno("TLS_TX"));
  }
  if (SetDirection(fd, TLS_RX, m, m.rx) != 0) {
    return absl::DataLossError(Errno("TLS_RX"));
  }
  return absl::OkStatus();
}

KtlsControl ReadKernelTlsControlRecord(int fd) {
  unsigned char payload[64];
  RecordMsg rm(payload, sizeof(payload));
  ssize_t n = recvmsg(fd, &rm.msg, MSG_DONTWAIT);
  if (n < 0) return KtlsControl::kNone;
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&rm.msg);
  if (cmsg == nullptr || cmsg->cmsg_level != SOL_TLS ||
      cmsg->cmsg_type != TLS_GET_RECORD_TYPE) {
    return KtlsControl::kOtherRecord;
  }
  uint8_t type = *CMSG_DATA(cmsg);
  if (type == kRecordAlert && n >= 2 && payload[1] == kAlertCloseNotify) {
    return KtlsControl::kCloseNotify;
  }
  return KtlsControl::kOtherRecord;
}

bool SendKernelTlsCloseNotify(int fd) {
  unsigned char alert[2] = {kAlertWarning, kAlertCloseNotify};
  RecordMsg rm(alert, sizeof(alert));
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&rm.msg);
  cmsg->cmsg_level = SOL_TLS;
  cmsg->cmsg_type = TLS_SET_RECORD_TYPE;
  cmsg->cmsg_len = CMSG_LEN(sizeof(unsigned char));
  *CMSG_DATA(cmsg) = kRecordAlert;
  return sendmsg(fd, &rm.msg, MSG_DONTWAIT | MSG_NOSIGNAL) == sizeof(alert);
}

}  // namespace popgate::tls
