// The byte layer between a POP3 connection and its socket. The ring moves
// raw wire bytes; a Transport turns them into application bytes and back.
// Plain TCP is the identity (and costs nothing: the views pass straight
// through, no copy). TLS (tls_transport.h, BoringSSL over an in-memory BIO)
// fits the same shape: Open() decrypts records into its own buffer, Seal()
// encrypts, and the handshake is driven by feeding received bytes to Open()
// and sending whatever TakeWire() returns until handshake_done().
//
// The connection keeps at most one operation in flight, so every wire view
// handed out is sent completely before the transport is called again.
#ifndef POPGATE_BENCH_LOADGEN_TRANSPORT_H_
#define POPGATE_BENCH_LOADGEN_TRANSPORT_H_

#include <string>
#include <string_view>

namespace popgate::loadgen {

class Transport {
 public:
  virtual ~Transport() = default;

  // True once application data can flow (plain: always).
  virtual bool handshake_done() const = 0;

  // Starts the handshake (TLS ClientHello); its bytes become available from
  // TakeWire(). Plain: nothing to do.
  virtual bool StartHandshake(std::string* error) = 0;

  // Wire bytes just received -> application bytes now readable. The view
  // is valid until the next Open() (Seal() and TakeWire() leave it alone);
  // it may be empty (a partial TLS record, or handshake traffic). Open() may
  // queue wire bytes of its own (the handshake's next flight): TakeWire().
  // False on a fatal error.
  virtual bool Open(std::string_view wire, std::string_view* plaintext,
                    std::string* error) = 0;

  // Application bytes to send -> wire bytes to put on the socket (preceded
  // by anything the transport had queued and not yet handed out). The view
  // is valid until the next call that produces wire bytes.
  virtual bool Seal(std::string_view plaintext, std::string_view* wire,
                    std::string* error) = 0;

  // Wire bytes the transport itself wants sent (handshake flights, alerts)
  // and not handed out yet; empty if none. Plain: never any.
  virtual std::string_view TakeWire() = 0;
};

class PlainTransport final : public Transport {
 public:
  bool handshake_done() const override { return true; }
  bool StartHandshake(std::string*) override { return true; }
  bool Open(std::string_view wire, std::string_view* plaintext,
            std::string*) override {
    *plaintext = wire;
    return true;
  }
  bool Seal(std::string_view plaintext, std::string_view* wire,
            std::string*) override {
    *wire = plaintext;
    return true;
  }
  std::string_view TakeWire() override { return {}; }
};

}  // namespace popgate::loadgen

#endif  // POPGATE_BENCH_LOADGEN_TRANSPORT_H_
