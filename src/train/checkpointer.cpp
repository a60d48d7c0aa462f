#include "train/checkpointer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <map>
#include <sstream>
#include <utility>

#include <spdlog/spdlog.h>

#include "data/tokenizer.h"
#include "dist/checkpoint_ranks.h"
#include "model/zero1_shards.h"
#include "train/checkpoint.h"
#include "train/config_io.h"
#include "train/schedule.h"

namespace gfwa {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string rng_to_string(const std::mt19937_64& rng) {
  std::ostringstream s;
  s << rng;
  return s.str();
}

void rng_from_string(std::mt19937_64& rng, const std::string& text) {
  std::istringstream s(text);
  s >> rng;
  if (!s) throw std::runtime_error("checkpoint state: unreadable sample_rng");
}

// An integer field of a checkpoint's state.json, at least `min`; errors name the file and field.
int64_t state_int(const nlohmann::json& st, const char* key, int64_t min, const std::string& file) {
  const auto it = st.find(key);
  if (it == st.end()) throw CheckpointError(file + ": " + key + ": missing");
  if (!it->is_number_integer() || (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX)))
    throw CheckpointError(file + ": " + key + ": expected an integer (got " + it->dump() + ")");
  const int64_t v = it->get<int64_t>();
  if (v < min) throw CheckpointError(file + ": " + key + ": must be >= " + std::to_string(min) + " (got " + it->dump() + ")");
  return v;
}

std::string state_string(const nlohmann::json& st, const char* key, const std::string& file) {
  const auto it = st.find(key);
  if (it == st.end() || !it->is_string())
    throw CheckpointError(file + ": " + key + ": expected a string (got " + (it == st.end() ? "nothing" : it->dump()) + ")");
  return it->get<std::string>();
}

// The counters and sampling stream of a checkpoint, checked: a state.json that passes its checksum
// can still hold values no run writes (edited by hand, or by a bug), which must not reach the optimizer.
void restore_progress(RunProgress& p, const nlohmann::json& st, const std::string& file) {
  p.step = state_int(st, "step", 0, file);
  p.tokens = state_int(st, "tokens", 0, file);
  p.updates = state_int(st, "updates", 0, file);
  if (p.updates > p.step)
    throw CheckpointError(file + ": updates: must be <= step " + std::to_string(p.step) + " (got " +
                          std::to_string(p.updates) + ")");
  p.bad_streak = int(std::min<int64_t>(state_int(st, "bad_streak", 0, file), INT32_MAX));
  const std::string rng = state_string(st, "sample_rng", file);
  try {
    rng_from_string(p.sample_rng, rng);
  } catch (const std::runtime_error&) {
    throw CheckpointError(file + ": sample_rng: not a saved random stream");
  }
}

void flatten(const nlohmann::json& j, const std::string& prefix, std::map<std::string, nlohmann::json>& out) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) flatten(v, prefix.empty() ? k : prefix + "." + k, out);
  } else {
    out[prefix] = j;
  }
}

bool resume_must_match(const std::string& key) {
  if (key == "model.init_from") return false;  // read on a fresh start only
  for (const char* p : {"model.", "data."})
    if (key.rfind(p, 0) == 0) return true;
  // optimizer.type: Muon keeps its momentum where AdamW keeps m (Backend::muon_update), so the
  // optimizer state of one type would be misread by the other.
  for (const char* k : {"train.seq_len", "train.batch_size", "train.tokens_per_step", "train.seed", "optimizer.type"})
    if (key == k) return true;
  return false;
}

}  // namespace

Checkpointer::Checkpointer(const RunConfig& cfg, std::string root, dist::Group& group, bool data_parallel)
    : cfg_(cfg), root_(std::move(root)), group_(group), data_parallel_(data_parallel) {}

nlohmann::json Checkpointer::state_json(const RunProgress& p, int64_t total_steps) const {
  nlohmann::json s = {{"step", p.step},
                      {"tokens", p.tokens},
                      {"updates", p.updates},
                      {"bad_streak", p.bad_streak},
                      {"world", group_.world()},
                      {"total_steps", total_steps},
                      {"lr", lr_at(cfg_.schedule, cfg_.optimizer.lr, std::max<int64_t>(0, p.step - 1), total_steps)},
                      {"sample_rng", rng_to_string(p.sample_rng)},
                      {"loader", p.loader},
                      {"tokenizer", {{"vocab", Tokenizer::kVocabFile}, {"sha256", Tokenizer::kVocabSha256}}}};
  if (data_parallel_) {
    s["rank_parts"] = group_.world();
    s["zero1"] = cfg_.distributed.zero1;
  }
  return s;
}

std::string Checkpointer::save(Backend& backend, const RunProgress& p, int64_t total_steps) {
  const auto t0 = Clock::now();
  std::string dir;
  if (data_parallel_) {
    dir = save_parts(backend, p, total_steps);
  } else {
    CheckpointData ck;
    ck.config = config_to_json(cfg_);
    backend.get_params(ck.params);
    backend.get_adam_state(ck.adam_m, ck.adam_v);
    ck.state = state_json(p, total_steps);
    dir = save_checkpoint(root_, p.step, ck);
  }
  if (group_.rank() == 0) {
    verified_.insert(dir);
    prune_checkpoints(root_, cfg_.checkpoint.keep_last, cfg_.checkpoint.keep_every, verified_);
    if (data_parallel_)
      spdlog::info("checkpoint {} written by {} ranks in {:.1f}s", dir, group_.world(), seconds_since(t0));
    else
      spdlog::info("checkpoint {} written in {:.1f}s", dir, seconds_since(t0));
  }
  return dir;
}

std::string Checkpointer::save_parts(Backend& backend, const RunProgress& p, int64_t total_steps) {
  const int rank = group_.rank(), world = group_.world();
  const bool lead = rank == 0, zero1 = cfg_.distributed.zero1;
  CheckpointData ck;
  if (lead) {
    ck.config = config_to_json(cfg_);
    backend.get_params(ck.params);
    if (!zero1) backend.get_adam_state(ck.adam_m, ck.adam_v);  // the same on every rank
    ck.state = state_json(p, total_steps);
  }
  RankPart part;
  const ShardPlan plan = plan_shards(backend.layout().total(), world);
  part.state = {{"loader", p.loader}, {"shard", {{"begin", plan.begin(rank)}, {"end", plan.end(rank)}}}};
  if (zero1) {
    std::vector<float> m, v;
    backend.get_adam_state(m, v);
    const auto b = std::ptrdiff_t(plan.begin(rank)), e = std::ptrdiff_t(plan.end(rank));
    part.adam_m.assign(m.begin() + b, m.begin() + e);
    part.adam_v.assign(v.begin() + b, v.begin() + e);
  }
  // Every rank writes into rank 0's temporary directory; rank 0 renames it into place only after
  // every rank reported success.
  double pid = lead ? double(::getpid()) : 0.0;
  group_.sum(&pid, 1);
  const std::string tmp = checkpoint_temp_dir(root_, p.step, long(pid));
  std::string err;
  auto attempt = [&](const auto& f) {
    if (!err.empty()) return;
    try {
      f();
    } catch (const std::exception& e) {
      err = e.what();
    }
  };
  if (lead) attempt([&] { begin_checkpoint(root_, tmp); });
  bool ok = dist::all_ranks(group_, err.empty());
  if (ok) {
    attempt([&] {
      write_rank_part(tmp, rank, world, part);
      if (lead) write_checkpoint_files(tmp, ck);
    });
    ok = dist::all_ranks(group_, err.empty());
  }
  if (ok && lead) attempt([&] { commit_checkpoint(root_, p.step, tmp); });
  if ((!err.empty() || !ok) && lead) discard_checkpoint(tmp);
  ok = dist::all_ranks(group_, err.empty());
  if (!ok)
    throw CheckpointError(!err.empty()
                              ? "rank " + std::to_string(rank) + ": " + err
                              : "rank " + std::to_string(rank) + ": checkpoint step " + std::to_string(p.step) +
                                    " not written: another rank failed (see its log)");
  return root_ + "/" + checkpoint_dir_name(p.step);
}

RunProgress Checkpointer::restore(const std::string& dir, Backend& backend) {
  CheckpointData ck = load_checkpoint(dir);
  const auto bad = incompatible_keys(ck.config, config_to_json(cfg_));
  if (!bad.empty()) {
    std::string msg = "cannot resume from " + dir + ": the config differs in keys a resume cannot change:";
    for (const auto& b : bad) msg += " " + b + ";";
    msg.pop_back();
    throw std::runtime_error(msg);
  }
  const auto& st = ck.state;
  const std::string state_file = dir + "/state.json";
  dist::require_same_world(dir, int(std::min<int64_t>(state_int(st, "world", 1, state_file), INT_MAX)),
                           group_.world());
  if (ck.params.size() != backend.layout().total())
    throw std::runtime_error("cannot resume from " + dir + ": model.bin holds " + std::to_string(ck.params.size()) +
                             " parameters, the model has " + std::to_string(backend.layout().total()));
  const int parts = st.value("rank_parts", 0);
  backend.set_params(ck.params);
  restore_optimizer(dir, backend, ck.adam_m, ck.adam_v, parts);
  RunProgress p;
  restore_progress(p, st, state_file);
  p.loader = parts > 0 ? load_rank_part(dir, group_.rank(), parts).state.at("loader") : st.at("loader");
  verified_.insert(dir);
  return p;
}

// Optimizer state: optimizer.bin, or (ZeRO-1) every rank part's shard put back in place, so any
// world-size-1 run and every ZeRO-1 setting can resume it.
void Checkpointer::restore_optimizer(const std::string& dir, Backend& backend, std::vector<float>& m,
                                     std::vector<float>& v, int parts) {
  const size_t total = backend.layout().total();
  if (m.empty()) {
    m.assign(total, 0.0f);
    v.assign(total, 0.0f);
    for (int r = 0; r < parts; ++r) {
      const RankPart p = load_rank_part(dir, r, parts);
      const size_t b = p.state.at("shard").at("begin");
      if (b + p.adam_m.size() > total)
        throw CheckpointError("checkpoint " + dir + ": rank " + std::to_string(r) + "'s optimizer shard [" +
                              std::to_string(b) + ", " + std::to_string(b + p.adam_m.size()) +
                              ") lies outside the model's " + std::to_string(total) + " parameters");
      std::copy(p.adam_m.begin(), p.adam_m.end(), m.begin() + std::ptrdiff_t(b));
      std::copy(p.adam_v.begin(), p.adam_v.end(), v.begin() + std::ptrdiff_t(b));
    }
  }
  backend.set_adam_state(m, v);
}

std::vector<std::string> incompatible_keys(const nlohmann::json& saved, const nlohmann::json& now) {
  std::map<std::string, nlohmann::json> a, b, defaults;
  flatten(saved, "", a);
  flatten(now, "", b);
  flatten(config_to_json(RunConfig{}), "", defaults);
  std::vector<std::string> out;
  for (const auto& [k, v] : b) {
    if (!resume_must_match(k)) continue;
    const auto it = a.find(k);
    // A checkpoint older than the key ran as its default does (e.g. model.attention.pattern "").
    const auto d = defaults.find(k);
    if (it == a.end() && d != defaults.end() && d->second == v) continue;
    const std::string old = it == a.end() ? std::string("absent") : it->second.dump();
    if (it == a.end() || it->second != v) out.push_back(k + " (checkpoint " + old + ", now " + v.dump() + ")");
  }
  return out;
}

}  // namespace gfwa
