#include "config/toml_fields.h"

#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "config/load.h"

namespace popgate::config_internal {

Line LineOf(const toml::source_region& region) {
  // Nodes built without a source (the root table) report line 0; line 1 is
  // the most useful place to point at then.
  return region.begin.line == 0 ? 1 : region.begin.line;
}
Line LineOf(const toml::node& node) { return LineOf(node.source()); }

std::string_view TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::string Quote(std::string_view s) {
  return absl::StrCat("'", absl::CHexEscape(A(s)), "'");
}

std::string ParseErrorReason(std::string_view description) {
  std::string reason(description);
  const size_t saw = reason.rfind(", saw '");
  if (saw != std::string::npos) {
    const std::string_view seen = std::string_view(reason).substr(saw + 7);
    // One printable ASCII character that is neither a letter nor a digit
    // ("saw ':'", "saw '\n'" is escaped by toml++ already) stays.
    const bool punct =
        seen.size() >= 2 && seen[1] == '\'' && absl::ascii_ispunct(seen[0]);
    const bool escaped = !seen.empty() && seen[0] == '\\';
    if (!punct && !escaped) reason.resize(saw);
  }
  return reason;
}

absl::Status Fields::Error(Line line, std::string_view reason) const {
  return absl::InvalidArgumentError(
      absl::StrCat(name_, ":", line, ": ", A(reason)));
}

absl::Status Fields::WrongType(const toml::node& node, std::string_view key,
                               std::string_view expected) const {
  return Error(LineOf(node), absl::StrCat(Quote(key), " must be ", A(expected),
                                          ", not ", A(TypeName(node))));
}

absl::Status Fields::CheckKeys(const toml::table& table,
                               std::initializer_list<std::string_view> allowed,
                               std::string_view where) const {
  for (auto&& [key, value] : table) {
    bool known = false;
    for (std::string_view k : allowed) known = known || key.str() == k;
    if (!known) {
      return Error(
          LineOf(key.source()),
          absl::StrCat("unknown key ", Quote(key.str()), " ", A(where)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<const toml::table*> Fields::GetTable(
    const toml::node& node, std::string_view key) const {
  const toml::table* table = node.as_table();
  if (table == nullptr) return WrongType(node, key, "a table");
  return table;
}

absl::StatusOr<std::vector<const toml::table*>> Fields::GetTableArray(
    const toml::node& node, std::string_view key) const {
  const toml::array* array = node.as_array();
  if (array == nullptr) return WrongType(node, key, "an array of tables");
  std::vector<const toml::table*> tables;
  for (const toml::node& element : *array) {
    const toml::table* t = element.as_table();
    if (t == nullptr) {
      return Error(LineOf(element),
                   absl::StrCat("elements of ", Quote(key),
                                " must be tables, not ", A(TypeName(element))));
    }
    tables.push_back(t);
  }
  return tables;
}

absl::StatusOr<std::string> Fields::GetString(const toml::node& node,
                                              std::string_view key) const {
  const toml::value<std::string>* v = node.as_string();
  if (v == nullptr) return WrongType(node, key, "a string");
  return v->get();
}

absl::StatusOr<int64_t> Fields::GetInt(const toml::node& node,
                                       std::string_view key, int64_t lo,
                                       int64_t hi) const {
  const toml::value<int64_t>* v = node.as_integer();
  if (v == nullptr) return WrongType(node, key, "an integer");
  if (v->get() < lo || v->get() > hi) {
    return Error(LineOf(node), absl::StrCat(Quote(key), " must be in ", lo,
                                            "..", hi, ", not ", v->get()));
  }
  return v->get();
}

absl::StatusOr<bool> Fields::GetBool(const toml::node& node,
                                     std::string_view key) const {
  const toml::value<bool>* v = node.as_boolean();
  if (v == nullptr) return WrongType(node, key, "a boolean");
  return v->get();
}

absl::StatusOr<absl::Duration> Fields::GetDuration(const toml::node& node,
                                                   std::string_view key,
                                                   bool allow_zero) const {
  absl::Duration d;
  if (const toml::value<int64_t>* v = node.as_integer()) {
    if (v->get() < 0 || v->get() > absl::ToInt64Seconds(kMaxDuration)) {
      return Error(LineOf(node),
                   absl::StrCat(Quote(key), " must be 0..",
                                absl::FormatDuration(kMaxDuration)));
    }
    d = absl::Seconds(v->get());
  } else if (const toml::value<std::string>* s = node.as_string()) {
    const std::string& text = s->get();
    // ParseDuration also takes signs and "inf"; neither is a timeout.
    if (text.empty() || text[0] == '-' || text[0] == '+' ||
        !absl::ParseDuration(text, &d) || d == absl::InfiniteDuration()) {
      return Error(LineOf(node),
                   absl::StrCat(Quote(key), ": bad duration ", Quote(text),
                                " (expected e.g. \"500ms\", \"10s\", "
                                "\"5m\", \"1h\")"));
    }
    if (d > kMaxDuration) {
      return Error(LineOf(node),
                   absl::StrCat(Quote(key), " must be at most ",
                                absl::FormatDuration(kMaxDuration)));
    }
  } else {
    return WrongType(node, key, "a duration string such as \"10s\"");
  }
  if (!allow_zero && d == absl::ZeroDuration()) {
    return Error(LineOf(node), absl::StrCat(Quote(key), " must be > 0"));
  }
  return d;
}

absl::StatusOr<std::string> Fields::GetPath(const toml::node& node,
                                            std::string_view key) const {
  absl::StatusOr<std::string> file = GetString(node, key);
  if (!file.ok()) return file.status();
  if (file->empty() || file->find('\0') != std::string::npos) {
    return Error(LineOf(node), absl::StrCat(Quote(key), " must be a path"));
  }
  return ResolvePath(base_dir_, *file);
}

}  // namespace popgate::config_internal
