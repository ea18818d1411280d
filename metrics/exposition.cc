#include "metrics/exposition.h"

#include <charconv>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace popgate::metrics {

std::string FormatNumber(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

std::string FormatNumber(uint64_t v) { return absl::StrCat(v); }

std::string FormatBound(double v) {
  std::string s = FormatNumber(v);
  if (s.find_first_of(".eIN") == std::string::npos) s += ".0";
  return s;
}

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view v, Format format) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && format == Format::kOpenMetrics) {
      out += "\\\"";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void AppendHeader(std::string& out, Format format, std::string_view name,
                  Type type, std::string_view help) {
  std::string shown(name);
  if (type == Type::kCounter && format == Format::kPrometheus) {
    shown += "_total";
  }
  std::string_view type_name = "gauge";
  if (type == Type::kCounter) type_name = "counter";
  if (type == Type::kHistogram) type_name = "histogram";
  absl::StrAppend(&out, "# HELP ", shown, " ", EscapeHelp(help, format),
                  "\n# TYPE ", shown, " ");
  out.append(type_name.data(), type_name.size());
  out.push_back('\n');
}

void AppendSample(std::string& out, std::string_view name,
                  std::span<const std::string> label_names,
                  std::span<const std::string> label_values,
                  std::string_view extra_name, std::string_view extra_value,
                  std::string_view value) {
  out.append(name.data(), name.size());
  const size_t n = std::min(label_names.size(), label_values.size());
  if (n > 0 || !extra_name.empty()) {
    out.push_back('{');
    bool first = true;
    for (size_t i = 0; i < n; ++i) {
      if (!first) out.push_back(',');
      first = false;
      absl::StrAppend(&out, label_names[i], "=\"",
                      EscapeLabelValue(label_values[i]), "\"");
    }
    if (!extra_name.empty()) {
      if (!first) out.push_back(',');
      out.append(extra_name.data(), extra_name.size());
      absl::StrAppend(&out, "=\"", EscapeLabelValue(extra_value), "\"");
    }
    out.push_back('}');
  }
  out.push_back(' ');
  out.append(value.data(), value.size());
  out.push_back('\n');
}

}  // namespace popgate::metrics
