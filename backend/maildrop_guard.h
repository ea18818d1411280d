// A maildrop is never open on two backends at once. Under failover =
// "next" one user's sessions could land on different backends (the first
// was drained or went down while a session ran there); the guard remembers,
// per user, the backend their sessions from this process are open on, and
// a new session of that user may only go there (else -ERR [IN-USE]).
//
// Process-wide, sharded by user hash: each shard's mutex is held for one
// small map operation (no I/O, no allocation beyond the entry). Bounded by
// the number of live sessions. Across instances the same guarantee needs
// the shared store (issue "Stand in front of the internet": Redis).
#ifndef POPGATE_BACKEND_MAILDROP_GUARD_H_
#define POPGATE_BACKEND_MAILDROP_GUARD_H_

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"

namespace popgate {

class MaildropGuard {
 public:
  // `user`: tenant-qualified canonical name ("tenant\0user@domain" or
  // similar: unique across tenants). `backend`: the backend's identity
  // (its address). Returns false, taking nothing, when the user has
  // sessions open on another backend. Each true is paired with one
  // Release(user, backend).
  bool Claim(std::string_view user, std::string_view backend);
  void Release(std::string_view user, std::string_view backend);
  // The backend the user's sessions are on, "" if none (for routing: try
  // that one first).
  std::string Current(std::string_view user) const;
  size_t users() const;  // for tests and metrics

  static MaildropGuard& Process();  // the one every worker shares

 private:
  struct Entry {
    std::string backend;
    uint32_t sessions = 0;
  };
  struct Shard {
    mutable std::mutex mu;
    absl::flat_hash_map<std::string, Entry> users;
  };
  Shard& ShardOf(std::string_view user) const;
  mutable std::array<Shard, 16> shards_;
};

}  // namespace popgate

#endif  // POPGATE_BACKEND_MAILDROP_GUARD_H_
