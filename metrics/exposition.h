// The text of a scrape, piece by piece: numbers, escaped label values and
// HELP text, family headers and sample lines in the Prometheus text format
// 0.0.4 and OpenMetrics 1.0. Pure functions (Registry::Render uses them).
#ifndef POPGATE_METRICS_EXPOSITION_H_
#define POPGATE_METRICS_EXPOSITION_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "metrics/registry.h"

namespace popgate::metrics {

// The shortest text that reads back as `v`: "3", "0.25", "1e+20", "+Inf",
// "-Inf", "NaN".
std::string FormatNumber(double v);
std::string FormatNumber(uint64_t v);
// A histogram's `le` value: as FormatNumber, but always with a '.' or an
// exponent ("1.0", "0.005", "+Inf"), OpenMetrics' canonical form (the
// Prometheus format reads it as well).
std::string FormatBound(double v);

// Label values: backslash, double quote and newline escaped.
std::string EscapeLabelValue(std::string_view v);
// HELP text: backslash and newline escaped (OpenMetrics: the double quote
// too).
std::string EscapeHelp(std::string_view v, Format format);

// "# HELP name text\n# TYPE name type\n". For counters `name` is the
// family name: the Prometheus format names the samples' "<name>_total" in
// both lines, OpenMetrics the family.
void AppendHeader(std::string& out, Format format, std::string_view name,
                  Type type, std::string_view help);

// name{a="x",b="y"[,extra_name="extra_value"]} value\n
void AppendSample(std::string& out, std::string_view name,
                  std::span<const std::string> label_names,
                  std::span<const std::string> label_values,
                  std::string_view extra_name, std::string_view extra_value,
                  std::string_view value);

}  // namespace popgate::metrics

#endif  // POPGATE_METRICS_EXPOSITION_H_
