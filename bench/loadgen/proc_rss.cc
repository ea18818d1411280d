#include "bench/loadgen/proc_rss.h"

#include <charconv>
#include <fstream>
#include <sstream>

namespace popgate::loadgen {

bool ParseVmRss(std::string_view text, uint64_t* bytes) {
  size_t at = text.find("VmRSS:");
  if (at == std::string_view::npos) return false;
  text.remove_prefix(at + 6);
  size_t digits = text.find_first_not_of(" \t");
  if (digits == std::string_view::npos) return false;
  text.remove_prefix(digits);
  uint64_t kb = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), kb);
  if (ec != std::errc() || end == text.data()) return false;
  std::string_view unit(end, text.data() + text.size() - end);
  if (!unit.starts_with(" kB")) return false;
  *bytes = kb * 1024;
  return true;
}

bool ReadRssBytes(const std::vector<int>& pids, uint64_t* bytes,
                  std::string* error) {
  uint64_t total = 0;
  for (int pid : pids) {
    std::string path = "/proc/" + std::to_string(pid) + "/status";
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    uint64_t rss = 0;
    if (!in || !ParseVmRss(text.str(), &rss)) {
      *error = "cannot read VmRSS from " + path;
      return false;
    }
    total += rss;
  }
  *bytes = total;
  return true;
}

}  // namespace popgate::loadgen
