// The table of configuration keys: each key path, the struct field it fills and the rule its value
// obeys on its own. Rules that relate several keys live in config.cpp (validate_relations).
// Keep in step with docs/config.md.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "eval/tasks.h"
#include "train/config.h"

namespace gfwa::config_schema {

// Shortest decimal text that reads back (strtof) as exactly `f`.
inline std::string float_text(float f) {
  char buf[32];
  for (int digits = 1; digits <= 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(f));
    if (std::strtof(buf, nullptr) == f) break;
  }
  return buf;
}

inline std::string show(int x) { return std::to_string(x); }
inline std::string show(long x) { return std::to_string(x); }
inline std::string show(long long x) { return std::to_string(x); }
inline std::string show(unsigned long x) { return std::to_string(x); }
inline std::string show(unsigned long long x) { return std::to_string(x); }
inline std::string show(float x) { return float_text(x); }
inline std::string show(bool x) { return x ? "true" : "false"; }
inline std::string show(const std::string& x) {
  return nlohmann::json(x).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}
inline std::string show(AttnMode m) { return show(std::string(attn_mode_name(m))); }
inline std::string show(const std::map<std::string, std::string>& m) {
  return nlohmann::json(m).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// model.attention.pattern as JSON: "" (none), the letters, or [{"mode": ..., "window": ...}, ...]
// (a window of 0, "model.attention.window", is left out).
inline nlohmann::json pattern_json(const AttentionPattern& p) {
  if (p.layers.empty()) return p.letters;
  nlohmann::json list = nlohmann::json::array();
  for (const LayerAttention& a : p.layers) {
    nlohmann::json e = {{"mode", attn_mode_name(a.mode)}};
    if (a.window != 0) e["window"] = a.window;
    list.push_back(std::move(e));
  }
  return list;
}
inline std::string show(const AttentionPattern& p) { return pattern_json(p).dump(); }

// A rule returns the problem ("must be >= 1"), or "" when the value is acceptable.
inline auto any() {
  return [](const auto&) { return std::string(); };
}
template <class T>
auto at_least(T lo) {
  return [lo](const auto& x) { return x >= lo ? std::string() : "must be >= " + show(lo); };
}
inline auto positive() {
  return [](const auto& x) { return x > 0 ? std::string() : std::string("must be > 0"); };
}
// [lo, hi) when `open_hi`, else [lo, hi]
inline auto in_range(float lo, float hi, bool open_hi) {
  return [=](float x) {
    const bool ok = x >= lo && (open_hi ? x < hi : x <= hi);
    return ok ? std::string()
              : "must be in [" + show(lo) + ", " + show(hi) + (open_hi ? ")" : "]");
  };
}
// (0, 1]
inline auto unit_fraction() {
  return [](float x) { return x > 0.0f && x <= 1.0f ? std::string() : std::string("must be in (0, 1]"); };
}
inline auto one_of(std::vector<std::string> names) {
  return [names](const std::string& x) {
    std::string list;
    for (const auto& n : names) {
      if (n == x) return std::string();
      list += (list.empty() ? "" : "|") + n;
    }
    return "must be one of " + list;
  };
}
// model.attention.nsa.sliding: the modes an NSA sliding branch can have.
inline auto sliding_branch() {
  return [](AttnMode m) {
    return m == AttnMode::swa || m == AttnMode::gatedfwa ? std::string() : std::string("must be swa or gatedfwa");
  };
}
inline auto non_empty() {
  return [](const std::string& x) { return x.empty() ? std::string("must not be empty") : std::string(); };
}

// eval.tasks: known task names, each with a file.
inline auto task_files() {
  return [](const std::map<std::string, std::string>& m) {
    for (const auto& [task, file] : m) {
      if (!eval::is_task_name(task)) return "unknown task '" + task + "' (expected " + eval::task_name_list() + ")";
      if (file.empty()) return "task '" + task + "' needs a file";
    }
    return std::string();
  };
}

// Calls v(path, field, rule) for every key, in documentation order. Cfg is RunConfig or const RunConfig.
template <class Cfg, class V>
void visit_fields(Cfg& c, V& v) {
  auto& m = c.model;
  v("model.vocab_size", m.vocab_size, at_least(2));
  v("model.n_layers", m.n_layers, at_least(1));
  v("model.d_model", m.d_model, at_least(1));
  v("model.n_heads", m.n_heads, at_least(1));
  v("model.n_kv_heads", m.n_kv_heads, at_least(0));  // 0: n_heads; dividing n_heads is checked in config.cpp
  v("model.ffn_hidden", m.ffn_hidden, at_least(0));
  v("model.norm_eps", m.norm_eps, positive());
  v("model.init_std", m.init_std, positive());
  v("model.init_from", m.init_from, any());  // the file is checked when a run starts from it
  auto& a = c.model.attention;
  v("model.attention.mode", a.mode, any());  // the conversion itself rejects unknown modes
  v("model.attention.window", a.window, at_least(1));
  v("model.attention.gate_bias_init", a.gate_bias_init, any());
  v("model.attention.token_shift", a.token_shift, any());
  v("model.attention.rope_theta", a.rope_theta, positive());
  v("model.attention.pattern", a.pattern, any());  // checked against model.n_layers in config.cpp
  v("model.attention.nsa.sliding", a.nsa.sliding, sliding_branch());
  v("model.attention.nsa.block", a.nsa.block, at_least(1));  // the cuda backend's 64 is checked in config.cpp
  v("model.attention.nsa.top_k", a.nsa.top_k, at_least(1));
  auto& o = c.optimizer;
  v("optimizer.type", o.type, one_of({"adamw", "muon"}));
  v("optimizer.lr", o.lr, at_least(0.0f));
  v("optimizer.beta1", o.beta1, in_range(0.0f, 1.0f, true));
  v("optimizer.beta2", o.beta2, in_range(0.0f, 1.0f, true));
  v("optimizer.eps", o.eps, positive());
  v("optimizer.weight_decay", o.weight_decay, at_least(0.0f));
  v("optimizer.grad_clip", o.grad_clip, at_least(0.0f));
  auto& mu = c.optimizer.muon;
  v("optimizer.muon.lr", mu.lr, at_least(0.0f));
  v("optimizer.muon.momentum", mu.momentum, in_range(0.0f, 1.0f, true));
  v("optimizer.muon.nesterov", mu.nesterov, any());
  v("optimizer.muon.ns_steps", mu.ns_steps, at_least(1));
  v("optimizer.muon.weight_decay", mu.weight_decay, at_least(0.0f));
  auto& s = c.schedule;
  v("schedule.type", s.type, one_of({"cosine", "linear", "constant", "wsd"}));
  v("schedule.warmup_steps", s.warmup_steps, at_least(0));
  v("schedule.final_lr_fraction", s.final_lr_fraction, in_range(0.0f, 1.0f, false));
  v("schedule.decay_fraction", s.decay_fraction, unit_fraction());
  auto& t = c.train;
  v("train.backend", t.backend, one_of({"auto", "cpu", "cuda"}));
  v("train.seed", t.seed, any());
  v("train.batch_size", t.batch_size, at_least(1));
  v("train.seq_len", t.seq_len, at_least(1));
  v("train.tokens_per_step", t.tokens_per_step, at_least(int64_t{0}));
  v("train.max_steps", t.max_steps, at_least(int64_t{0}));
  v("train.token_budget", t.token_budget, at_least(int64_t{0}));
  v("train.max_bad_steps", t.max_bad_steps, at_least(1));
  v("train.recompute", t.recompute, one_of({"none", "selective", "full"}));
  auto& e = c.eval;
  v("eval.every", e.every, at_least(0));
  v("eval.batches", e.batches, at_least(0));
  v("eval.sample_every", e.sample_every, at_least(0));
  v("eval.sample_tokens", e.sample_tokens, at_least(1));
  v("eval.sample_prompt", e.sample_prompt, non_empty());
  v("eval.tasks", e.tasks, task_files());
  auto& d = c.data;
  v("data.train", d.train, non_empty());
  v("data.val", d.val, non_empty());
  v("data.shuffle", d.shuffle, any());
  v("data.tokenizer", d.tokenizer, non_empty());
  auto& k = c.checkpoint;
  v("checkpoint.every", k.every, at_least(0));
  v("checkpoint.keep_last", k.keep_last, at_least(1));
  v("checkpoint.keep_every", k.keep_every, at_least(0));
  auto& l = c.logging;
  v("logging.every", l.every, at_least(1));
  v("logging.level", l.level, one_of({"trace", "debug", "info", "warn", "error"}));
  auto& n = c.distributed;
  v("distributed.id_exchange", n.id_exchange, one_of({"tcp", "file"}));
  v("distributed.id_file", n.id_file, any());  // required only for id_exchange "file"
  v("distributed.timeout_s", n.timeout_s, at_least(1));
  v("distributed.zero1", n.zero1, any());
  v("distributed.bucket_mb", n.bucket_mb, at_least(1));
}

}  // namespace gfwa::config_schema
