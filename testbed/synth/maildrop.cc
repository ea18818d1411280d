#include "testbed/synth/maildrop.h"

#include <utility>

namespace popgate::synth {

Maildrop::Maildrop(std::string user, std::string password,
                   std::vector<StoredMessage> messages)
    : user_(std::move(user)),
      password_(std::move(password)),
      messages_(std::move(messages)) {}

bool Maildrop::CheckPassword(std::string_view password) const {
  // Compare every octet so that timing does not reveal the matching
  // prefix; a benchmark backend is still a network service.
  if (password.size() != password_.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < password.size(); ++i) {
    diff |= static_cast<unsigned char>(password[i] ^ password_[i]);
  }
  return diff == 0;
}

bool Maildrop::TryLock() {
  if (locked_) return false;
  locked_ = true;
  return true;
}

void Maildrop::Remove(const std::vector<bool>& remove) {
  std::vector<StoredMessage> kept;
  kept.reserve(messages_.size());
  for (size_t i = 0; i < messages_.size(); ++i) {
    if (i >= remove.size() || !remove[i]) kept.push_back(messages_[i]);
  }
  messages_ = std::move(kept);
}

bool MaildropStore::Add(std::string user, std::string password,
                        std::vector<StoredMessage> messages) {
  if (maildrops_.contains(user)) return false;
  auto drop = std::make_unique<Maildrop>(user, std::move(password),
                                         std::move(messages));
  maildrops_.emplace(std::move(user), std::move(drop));
  return true;
}

Maildrop* MaildropStore::Find(std::string_view user) const {
  auto it = maildrops_.find(absl::string_view(user.data(), user.size()));
  return it == maildrops_.end() ? nullptr : it->second.get();
}

}  // namespace popgate::synth
