// One connection to Redis, driven by a worker's io_uring: hiredis's async
// API with our own event adapter (its read/write interest becomes an
// IORING_OP_POLL_ADD on the socket), so no call ever blocks the thread.
//
// - Commands are pipelined: each call writes its commands at once and
//   hiredis matches replies to calls in order.
// - Every call has a deadline (`timeout` after it was issued). Replies come
//   in order, so when the oldest call passes its deadline everything behind
//   it is stuck too: that call resumes with DeadlineExceeded, every other
//   pending call fails with it, and the connection is dropped (late
//   replies then find their call already finished: the call is a shared
//   state object, freed by whichever side lets go last).
// - A lost or refused connection fails every pending call at once. The
//   next use reconnects; after a failed attempt, only after a back-off
//   (100 ms doubling to 5 s; calls meanwhile fail at once with
//   Unavailable). A connection that closes after working reconnects at once.
// - On connect: AUTH with the password (and the ACL user if set; the
//   password is never logged) and SELECT db, queued ahead of the first
//   command. TCP or a unix socket.
//
// Single-threaded: the ring's thread only. Close() before the ring stops
// running; the destructor of a closed connection touches no ring.
#ifndef POPGATE_STORE_REDIS_CONNECTION_H_
#define POPGATE_STORE_REDIS_CONNECTION_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/ring.h"
#include "runtime/task.h"

namespace popgate::store {

// A reply, copied out of hiredis's (which is freed when its callback
// returns).
struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  long long integer = 0;
  std::string str;  // kString, kStatus, kError
  std::vector<RedisReply> elements;

  bool is_error() const { return type == Type::kError; }
  // kInteger as is, kString holding a decimal integer, else 0 (a missing
  // counter is a nil: 0).
  long long AsInteger() const;
};

using RedisCommand = std::vector<std::string>;  // argv, binary-safe

struct RedisOptions {
  std::string host;  // an address literal (resolved by the caller)
  uint16_t port = 6379;
  // Non-empty: connect to this unix socket instead of host:port.
  std::string unix_path;
  // Non-empty: `AUTH user password` (a Redis 6+ ACL user); else the
  // password alone authenticates as "default".
  std::string user;
  std::string password;  // empty: no AUTH. A secret: wiped, never logged
  int db = 0;
  absl::Duration timeout = absl::Milliseconds(250);
  // Calls in flight beyond this fail at once (ResourceExhausted).
  size_t max_pending = 4096;
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
};

class RedisConnection {
 public:
  RedisConnection(Ring& ring, RedisOptions options);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Writes every command at once (one round trip) and returns their replies
  // in order. An error reply is a reply, not a failed call; a failed call
  // (timeout, connection lost or refused, back-off) fails as a whole.
  Task<absl::StatusOr<std::vector<RedisReply>>> Pipeline(
      std::vector<RedisCommand> commands);
  Task<absl::StatusOr<RedisReply>> Command(RedisCommand command);
  // Fire and forget (its reply is dropped; it still counts for deadlines).
  // False when it could not even be queued (down, back-off, full).
  bool Send(const RedisCommand& command);

  // Fails every pending call (Cancelled), drops the connection and ends
  // the ring operations it has in flight; they complete on later RunOnce
  // turns (idle() then turns true). Calls after it fail at once.
  void Close();
  // Nothing of ours is in flight on the ring any more.
  bool idle() const;

  // The context exists and its connect completed.
  bool connected() const;
  // "host:port", for error messages.
  const std::string& address() const;

  struct Core;  // the shared state (redis_connection.cc)

 private:
  Core* core_;
};

}  // namespace popgate::store

#endif  // POPGATE_STORE_REDIS_CONNECTION_H_
