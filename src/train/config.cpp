// JSON <-> RunConfig: file reading, overrides, type conversion and validation (rules: config_schema.h).
#include <algorithm>
#include <cerrno>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <set>
#include <sstream>
#include <type_traits>
#include <utility>

#include "io/files.h"
#include "model/backend_factory.h"
#include "train/config_io.h"
#include "train/config_schema.h"

namespace gfwa {
namespace {

using nlohmann::json;
using namespace config_schema;

[[noreturn]] void fail(const std::string& source, const std::string& path, const std::string& problem) {
  throw ConfigError(source + ": " + (path.empty() ? "" : path + ": ") + problem);
}

// A JSON value as it would be written, cut short so that messages stay one readable line.
std::string brief(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

json::json_pointer pointer(const std::string& dotted) {
  std::string p = "/" + dotted;
  std::replace(p.begin(), p.end(), '.', '/');
  return json::json_pointer(p);
}

// ---- the table of known keys -------------------------------------------------------------------

struct KeyInfo {
  std::string path;
  bool takes_string;  // an override's text is taken as written for these
};

struct KeyCollector {
  std::vector<KeyInfo> keys;
  template <class T, class R>
  void operator()(const char* path, const T&, const R&) {
    keys.push_back({path, std::is_same_v<T, std::string> || std::is_same_v<T, AttnMode>});
  }
};

struct KeyTable {
  std::vector<KeyInfo> leaves;
  std::set<std::string> sections;  // every proper prefix of a key path ("model", "model.attention", ...)

  const KeyInfo* leaf(const std::string& path) const {
    for (const auto& k : leaves)
      if (k.path == path) return &k;
    return nullptr;
  }
};

const KeyTable& key_table() {
  static const KeyTable table = [] {
    KeyCollector c;
    const RunConfig defaults;
    visit_fields(defaults, c);
    KeyTable t;
    t.leaves = std::move(c.keys);
    for (const auto& k : t.leaves)
      for (size_t dot = k.path.find('.'); dot != std::string::npos; dot = k.path.find('.', dot + 1))
        t.sections.insert(k.path.substr(0, dot));
    return t;
  }();
  return table;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string last_component(const std::string& path) { return path.substr(path.rfind('.') + 1); }

// " (did you mean model.attention.window?)" for a misplaced or misspelled key, else "".
std::string did_you_mean(const std::string& path) {
  const auto& t = key_table();
  for (const auto& k : t.leaves)
    if (last_component(k.path) == last_component(path)) return " (did you mean " + k.path + "?)";
  std::string best;
  size_t best_d = SIZE_MAX;
  auto consider = [&](const std::string& cand) {
    const size_t d = edit_distance(path, cand);
    if (d < best_d) best_d = d, best = cand;
  };
  for (const auto& k : t.leaves) consider(k.path);
  for (const auto& s : t.sections) consider(s);
  return best_d <= 3 && 2 * best_d < path.size() ? " (did you mean " + best + "?)" : "";
}

// Unknown keys and sections that are not objects, reported against `source`.
void check_structure(const json& obj, const std::string& prefix, const std::string& source) {
  const auto& t = key_table();
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string path = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (t.sections.count(path)) {
      if (!it->is_object()) fail(source, path, "must be an object (got " + brief(*it) + ")");
      check_structure(*it, path, source);
    } else if (!t.leaf(path)) {
      fail(source, path, "unknown key" + did_you_mean(path));
    }
  }
}

// Where each key's value came from: the file, or the --set override that last wrote it.
class Sources {
 public:
  explicit Sources(std::string file) : file_(std::move(file)) {}
  void set(const std::string& path, const std::string& override_source) { over_[path] = override_source; }
  // The source to blame for a problem involving `paths`: an override of any of them, else the file.
  const std::string& of(std::initializer_list<const char*> paths) const {
    for (const char* p : paths) {
      auto it = over_.find(p);
      if (it != over_.end()) return it->second;
    }
    return file_;
  }
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::map<std::string, std::string> over_;
};

// ---- JSON value -> field (type and representability; "" when fine) --------------------------------

std::string convert(const json& v, int& out) {
  if (!v.is_number_integer()) return "expected an integer";
  const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= uint64_t(INT_MAX)
                                           : v.get<int64_t>() >= INT_MIN && v.get<int64_t>() <= INT_MAX;
  if (!fits) return "out of range for a 32-bit integer";
  out = static_cast<int>(v.get<int64_t>());
  return "";
}

std::string convert(const json& v, int64_t& out) {
  if (!v.is_number_integer()) return "expected an integer";
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) return "out of range for a 64-bit integer";
  out = v.get<int64_t>();
  return "";
}

std::string convert(const json& v, uint64_t& out) {
  if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0))
    return "expected a non-negative integer";
  out = v.get<uint64_t>();
  return "";
}

std::string convert(const json& v, float& out) {
  if (!v.is_number()) return "expected a number";
  const double d = v.get<double>();
  if (!(std::fabs(d) <= double(FLT_MAX))) return "out of range for a 32-bit float";
  out = static_cast<float>(d);
  return "";
}

std::string convert(const json& v, bool& out) {
  if (!v.is_boolean()) return "expected true or false";
  out = v.get<bool>();
  return "";
}

std::string convert(const json& v, std::string& out) {
  if (!v.is_string()) return "expected a string";
  out = v.get<std::string>();
  return "";
}

std::string convert(const json& v, std::map<std::string, std::string>& out) {
  if (!v.is_object()) return "expected an object of task name -> file";
  out.clear();
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it->is_string()) return "the file of '" + it.key() + "' must be a string";
    out[it.key()] = it->get<std::string>();
  }
  return "";
}

std::string convert(const json& v, AttnMode& out) {
  if (!v.is_string()) return "expected a string";
  if (!parse_attn_mode(v.get<std::string>(), &out)) return "must be one of full|swa|gatedfwa|nsa";
  return "";
}

// A string of letters, or a list of {"mode": ..., "window": ...} objects (window optional).
std::string convert(const json& v, AttentionPattern& out) {
  out = AttentionPattern{};
  if (v.is_string()) {
    out.letters = v.get<std::string>();
    return "";
  }
  if (!v.is_array()) return "expected a string of letters (\"SSSL\") or a list of {\"mode\", \"window\"} objects";
  for (size_t i = 0; i < v.size(); ++i) {
    const json& e = v[i];
    const std::string at = "layer " + std::to_string(i) + ": ";
    if (!e.is_object()) return at + "expected an object {\"mode\": ..., \"window\": ...} (got " + brief(e) + ")";
    LayerAttention a;
    for (auto it = e.begin(); it != e.end(); ++it)
      if (it.key() != "mode" && it.key() != "window") return at + "unknown key \"" + it.key() + "\" (expected mode, window)";
    if (!e.contains("mode")) return at + "needs a mode (full|swa|gatedfwa|nsa)";
    std::string problem = convert(e.at("mode"), a.mode);
    if (!problem.empty()) return at + "mode " + problem + " (got " + brief(e.at("mode")) + ")";
    if (e.contains("window")) {
      problem = convert(e.at("window"), a.window);
      if (problem.empty() && a.window < 1) problem = "must be >= 1";
      if (!problem.empty()) return at + "window " + problem + " (got " + brief(e.at("window")) + ")";
    }
    out.layers.push_back(a);
  }
  if (out.layers.empty()) return "an empty list (leave the key out, or \"\", for the same attention in every layer)";
  return "";
}

struct Reader {
  const json& root;
  const Sources& src;

  template <class T, class R>
  void operator()(const char* path, T& value, const R& rule) {
    const auto ptr = pointer(path);
    if (!root.contains(ptr)) {
      check(path, value, rule, show(value));
      return;
    }
    const json& v = root.at(ptr);
    const std::string problem = convert(v, value);
    if (!problem.empty()) fail(src.of({path}), path, problem + " (got " + brief(v) + ")");
    check(path, value, rule, brief(v));
  }

  template <class T, class R>
  void check(const char* path, const T& value, const R& rule, const std::string& shown) {
    const std::string problem = rule(value);
    if (!problem.empty()) fail(src.of({path}), path, problem + " (got " + shown + ")");
  }
};

// ---- field -> JSON value -----------------------------------------------------------------------

template <class T>
json json_value(const T& x) { return json(x); }

// The double nearest to the shortest decimal of `f`: prints short and still converts back to `f`.
json json_value(float f) {
  const double d = std::strtod(float_text(f).c_str(), nullptr);
  const bool exact = static_cast<float>(d) == f && std::fabs(d) <= double(FLT_MAX);  // e.g. not for FLT_MAX
  return exact ? d : static_cast<double>(f);
}

json json_value(AttnMode m) { return attn_mode_name(m); }

json json_value(const AttentionPattern& p) { return pattern_json(p); }

struct Writer {
  json root = json::object();
  template <class T, class R>
  void operator()(const char* path, const T& value, const R&) {
    root[pointer(path)] = json_value(value);
  }
};

// ---- rules that relate several keys ------------------------------------------------------------

void check_head_dim_for(const RunConfig& cfg, const std::string& backend, const std::string& source) {
  const std::string problem = model_support_problem(backend, cfg.model);
  if (!problem.empty()) fail(source, "model.n_heads", problem);
}

void validate_relations(const RunConfig& cfg, const Sources& src) {
  const auto& m = cfg.model;
  if (m.d_model % m.n_heads != 0)
    fail(src.of({"model.d_model", "model.n_heads"}), "model.d_model",
         "must be divisible by model.n_heads (" + show(m.d_model) + " % " + show(m.n_heads) + " = " +
             show(m.d_model % m.n_heads) + ")");
  if (m.head_dim() % 2 != 0)
    fail(src.of({"model.n_heads", "model.d_model"}), "model.n_heads",
         "head_dim = d_model / n_heads must be even for RoPE (got " + show(m.d_model) + " / " + show(m.n_heads) +
             " = " + show(m.head_dim()) + ")");
  if (m.n_kv_heads > 0 && m.n_heads % m.n_kv_heads != 0)
    fail(src.of({"model.n_kv_heads", "model.n_heads"}), "model.n_kv_heads",
         "must divide model.n_heads (" + show(m.n_heads) + " % " + show(m.n_kv_heads) + " = " +
             show(m.n_heads % m.n_kv_heads) + ")");
  check_head_dim_for(cfg, cfg.train.backend, src.of({"model.n_heads", "model.d_model", "train.backend"}));
  const std::string pattern = attention_pattern_problem(m);
  if (!pattern.empty()) fail(src.of({"model.attention.pattern", "model.n_layers"}), "model.attention.pattern", pattern);
  const KeyProblem nsa = nsa_support_problem(cfg.train.backend, m);
  if (!nsa.problem.empty())
    fail(src.of({nsa.key.c_str(), "train.backend", "model.attention.mode", "model.attention.pattern"}), nsa.key,
         nsa.problem);
  if (!m.init_from.empty() && m.any_nsa())
    fail(src.of({"model.init_from", "model.attention.mode", "model.attention.pattern"}), "model.init_from",
         "cannot start a model with nsa layers: exported weights (gfwa export) do not cover nsa yet (got " +
             show(m.init_from) + ")");

  const auto& t = cfg.train;
  const int64_t micro_tokens = int64_t(t.batch_size) * t.seq_len;
  if (t.tokens_per_step % micro_tokens != 0)
    fail(src.of({"train.tokens_per_step", "train.batch_size", "train.seq_len"}), "train.tokens_per_step",
         "must be a multiple of train.batch_size * train.seq_len = " + show(micro_tokens) + " (got " +
             show(t.tokens_per_step) + ")");
  if (t.max_steps < 1 && t.token_budget == 0)
    fail(src.of({"train.max_steps", "train.token_budget"}), "train.max_steps",
         "must be >= 1 when train.token_budget is 0 (got " + show(t.max_steps) + ")");

  const auto& d = cfg.distributed;
  if (d.id_exchange == "file" && d.id_file.empty())
    fail(src.of({"distributed.id_file", "distributed.id_exchange"}), "distributed.id_file",
         "must not be empty when distributed.id_exchange is \"file\"");
}

RunConfig from_json(const json& j, const Sources& src) {
  if (!j.is_object()) fail(src.file(), "", std::string("the top level must be a JSON object (got ") + j.type_name() + ")");
  check_structure(j, "", src.file());
  RunConfig cfg;
  Reader reader{j, src};
  visit_fields(cfg, reader);
  validate_relations(cfg, src);
  return cfg;
}

// ---- files and overrides -----------------------------------------------------------------------

// 1-based line and column of the character at 0-based `pos`.
std::pair<size_t, size_t> line_column(const std::string& text, size_t pos) {
  pos = std::min(pos, text.size());
  const size_t line = 1 + size_t(std::count(text.begin(), text.begin() + pos, '\n'));
  const size_t line_start = pos == 0 ? 0 : text.rfind('\n', pos - 1);
  return {line, line_start == std::string::npos || pos == 0 ? pos + 1 : pos - line_start};
}

// nlohmann's message without its "[json.exception...] parse error at ...: " prefix.
std::string parse_problem(const std::string& what) {
  std::string s = what;
  const size_t at = s.find("parse error");
  const size_t colon = at == std::string::npos ? std::string::npos : s.find(": ", at);
  if (colon != std::string::npos) s = s.substr(colon + 2);
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

// The number quoted in nlohmann's "number overflow parsing '1e400'".
std::string number_in(const std::string& what) {
  const size_t a = what.find('\''), b = what.rfind('\'');
  return a == std::string::npos || b <= a ? what : what.substr(a + 1, b - a - 1);
}

// The line of the first occurrence of that number in the text (the exception carries no position).
size_t line_of_number(const std::string& text, const std::string& what) {
  const size_t at = text.find(number_in(what));
  return line_column(text, at == std::string::npos ? 0 : at).first;
}

// The JSON of a config file's text; errors name `path` (with line:column where there is one).
json parse_config_text(const std::string& text, const std::string& path) {
  // nlohmann's lexer takes a NUL byte for the end of the input: whatever follows would be dropped.
  const size_t nul = text.find('\0');
  if (nul != std::string::npos) {
    const auto [line, column] = line_column(text, nul);
    fail(path + ":" + std::to_string(line) + ":" + std::to_string(column), "", "a NUL byte (a config is text)");
  }

  // nlohmann keeps the last of duplicate keys silently; a duplicate in a config is almost always a mistake.
  struct Frame {
    std::string path;
    bool is_object;
    std::set<std::string> keys;
    std::string last_key;
  };
  std::vector<Frame> stack;
  std::string duplicate;
  auto callback = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start: {
        std::string p;
        if (!stack.empty()) {
          const Frame& top = stack.back();
          p = top.is_object ? (top.path.empty() ? top.last_key : top.path + "." + top.last_key) : top.path + "[]";
        }
        stack.push_back({p, event == json::parse_event_t::object_start, {}, {}});
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        stack.pop_back();
        break;
      case json::parse_event_t::key: {
        Frame& top = stack.back();
        top.last_key = parsed.get<std::string>();
        if (!top.keys.insert(top.last_key).second && duplicate.empty())
          duplicate = top.path.empty() ? top.last_key : top.path + "." + top.last_key;
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, callback);
  } catch (const json::parse_error& e) {
    const auto [line, column] = line_column(text, e.byte == 0 ? 0 : e.byte - 1);
    fail(path + ":" + std::to_string(line) + ":" + std::to_string(column), "", "malformed JSON: " + parse_problem(e.what()));
  } catch (const json::out_of_range& e) {  // a number beyond double, e.g. 1e400: the key being read is on the stack
    const Frame* top = stack.empty() ? nullptr : &stack.back();
    const std::string key = !top ? "" : !top->is_object ? top->path + "[]"
                                      : top->path.empty() ? top->last_key : top->path + "." + top->last_key;
    fail(path + ":" + std::to_string(line_of_number(text, e.what())), key, "number out of range (" + number_in(e.what()) + ")");
  }
  if (!duplicate.empty()) fail(path, duplicate, "duplicate key");
  return j;
}

json read_json_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(path, "", "is a directory, not a JSON file");
  std::string text;
  try {
    text = read_file(path);
  } catch (const std::runtime_error& e) {
    fail(path, "", std::string(e.what()).substr(path.size() + 2));  // "PATH: cannot open: ..." without PATH
  }
  return parse_config_text(text, path);
}

json override_value(const std::string& text, bool takes_string) {
  if (takes_string && (text.empty() || text[0] != '"')) return json(text);
  json v = json::parse(text, nullptr, false);
  return v.is_discarded() ? json(text) : v;
}

void apply_override(json& j, const std::string& text, Sources& src) {
  const std::string source = "--set " + text;
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) fail(source, "", "expected key.path=value");
  const std::string key = text.substr(0, eq);
  const auto& t = key_table();
  if (t.sections.count(key)) {
    std::string example;
    for (const auto& k : t.leaves)
      if (k.path.compare(0, key.size() + 1, key + ".") == 0) { example = k.path; break; }
    fail(source, key, "is a section, not a key; set its keys one by one (e.g. " + example + "=...)");
  }
  const KeyInfo* info = t.leaf(key);
  if (!info) fail(source, key, "unknown key" + did_you_mean(key));
  json value = override_value(text.substr(eq + 1), info->takes_string);
  try {
    (void)value.dump();  // the parser guarantees UTF-8 for files; raw command-line text may not be
  } catch (const json::type_error&) {
    fail(source, key, "value is not valid UTF-8");
  }
  j[pointer(key)] = std::move(value);
  src.set(key, source);
}

// A config's JSON with the overrides applied, validated; errors name `source` or the override.
RunConfig load_json(json j, const std::string& source, const std::vector<std::string>& overrides) {
  if (!j.is_object()) fail(source, "", std::string("the top level must be a JSON object (got ") + j.type_name() + ")");
  check_structure(j, "", source);  // before overrides, so that file mistakes are blamed on the file
  Sources src(source);
  for (const auto& o : overrides) apply_override(j, o, src);
  return from_json(j, src);
}

}  // namespace

RunConfig config_from_text(const std::string& text, const std::string& source_name) {
  return load_json(parse_config_text(text, source_name), source_name, {});
}

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  const std::string source = path.empty() ? "<defaults>" : path;
  return load_json(path.empty() ? json::object() : read_json_file(path), source, overrides);
}

json config_to_json(const RunConfig& cfg) {
  Writer w;
  visit_fields(cfg, w);
  return std::move(w.root);
}

RunConfig config_from_json(const json& j, const std::string& source_name) { return from_json(j, Sources(source_name)); }

void check_backend_support(const RunConfig& cfg, const std::string& backend, const std::string& source_name) {
  check_head_dim_for(cfg, backend, source_name);
  const KeyProblem nsa = nsa_support_problem(backend, cfg.model);
  if (!nsa.problem.empty()) fail(source_name, nsa.key, nsa.problem);
}

int64_t accumulation_steps(const RunConfig& cfg, int world_size, const std::string& source_name) {
  if (world_size < 1) fail(source_name, "", "world size must be >= 1 (got " + show(world_size) + ")");
  const auto& t = cfg.train;
  if (t.tokens_per_step == 0) return 1;
  const int64_t per_micro = int64_t(t.batch_size) * t.seq_len * world_size;
  if (t.tokens_per_step % per_micro != 0)
    fail(source_name, "train.tokens_per_step",
         "must be a multiple of train.batch_size * train.seq_len * world size = " + show(t.batch_size) + " * " +
             show(t.seq_len) + " * " + show(world_size) + " = " + show(per_micro) + " (got " +
             show(t.tokens_per_step) + ")");
  return t.tokens_per_step / per_micro;
}

}  // namespace gfwa
