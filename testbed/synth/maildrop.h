// In-memory maildrops: which messages each user has, the user's password,
// and the per-maildrop lock that RFC 1939 requires while a session is in
// the TRANSACTION state.
//
// A maildrop stores only message numbers and sizes; content is generated
// from (user, number, size) when a message is read (see message.h), so ten
// thousand users cost a few MB.
#ifndef POPGATE_TESTBED_SYNTH_MAILDROP_H_
#define POPGATE_TESTBED_SYNTH_MAILDROP_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace popgate::synth {

struct StoredMessage {
  // The message's original 1-based number. Content and UIDL derive from it,
  // so a message keeps its identity after earlier messages are deleted and
  // the session-visible numbering shifts.
  int number = 0;
  uint64_t size = 0;
};

class Maildrop {
 public:
  Maildrop(std::string user, std::string password,
           std::vector<StoredMessage> messages);
  Maildrop(const Maildrop&) = delete;
  Maildrop& operator=(const Maildrop&) = delete;

  const std::string& user() const { return user_; }
  bool CheckPassword(std::string_view password) const;
  const std::vector<StoredMessage>& messages() const { return messages_; }

  // Exclusive access for one session (RFC 1939 4). False if already held.
  bool TryLock();
  void Unlock() { locked_ = false; }
  bool locked() const { return locked_; }

  // The UPDATE state: removes messages whose index has `remove[i]` set.
  // `remove` must have one entry per message.
  void Remove(const std::vector<bool>& remove);

 private:
  std::string user_;
  std::string password_;
  std::vector<StoredMessage> messages_;
  bool locked_ = false;
};

class MaildropStore {
 public:
  // Adds a maildrop; false (and no change) if `user` already exists.
  bool Add(std::string user, std::string password,
           std::vector<StoredMessage> messages);
  // Case-sensitive, exactly as configured. nullptr if unknown.
  Maildrop* Find(std::string_view user) const;
  size_t size() const { return maildrops_.size(); }

 private:
  absl::flat_hash_map<std::string, std::unique_ptr<Maildrop>> maildrops_;
};

}  // namespace popgate::synth

#endif  // POPGATE_TESTBED_SYNTH_MAILDROP_H_
