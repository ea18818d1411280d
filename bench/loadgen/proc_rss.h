// Resident set size of other processes (the proxy under test), from
// /proc/PID/status, for hold mode's memory-per-session figure.
#ifndef POPGATE_BENCH_LOADGEN_PROC_RSS_H_
#define POPGATE_BENCH_LOADGEN_PROC_RSS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace popgate::loadgen {

// Parses the "VmRSS:  1234 kB" line of a /proc/PID/status text.
bool ParseVmRss(std::string_view status_text, uint64_t* bytes);

// Sum of VmRSS over `pids`. False (with *error) if any cannot be read.
bool ReadRssBytes(const std::vector<int>& pids, uint64_t* bytes,
                  std::string* error);

}  // namespace popgate::loadgen

#endif  // POPGATE_BENCH_LOADGEN_PROC_RSS_H_
