// Loading: reading the config file and resolving the paths it names.
// ParseConfig and LoadConfig themselves are declared in config/config.h.
#ifndef POPGATE_CONFIG_LOAD_H_
#define POPGATE_CONFIG_LOAD_H_

#include <string>
#include <string_view>

namespace popgate::config_internal {

// `file` as an absolute, normalised path: relative ones are taken against
// `base_dir` (the config file's directory).
std::string ResolvePath(std::string_view base_dir, const std::string& file);

}  // namespace popgate::config_internal

#endif  // POPGATE_CONFIG_LOAD_H_
