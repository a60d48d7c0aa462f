#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>

#include <spdlog/spdlog.h>

#include "data/loader.h"
#include "data/tokenizer.h"
#include "eval/zeroshot.h"
#include "model/backend_factory.h"
#include "model/exported_weights.h"
#include "model/safetensors.h"
#include "train/checkpoint.h"
#include "train/config_io.h"
#include "train/evaluate.h"
#include "train/metrics.h"
#include "train/schedule.h"
#include "train/signals.h"
#include "train/dist/checkpoint_ranks.h"
#include "train/dist/env.h"
#include "train/dist/group.h"
#include "train/dist/zero1_shards.h"

namespace gfwa {
namespace fs = std::filesystem;

namespace {

constexpr int kSampleTopK = 40;
constexpr uint64_t kSampleSeedSalt = 0x5a3c9e1f2b7d4c68ull;  // keeps the sampling stream apart from init

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

std::string human_bytes(int64_t b) {
  return b >= (int64_t(1) << 30) ? fmt::format("{:.2f} GiB", double(b) / double(1 << 30))
                                 : fmt::format("{:.0f} MiB", double(b) / double(1 << 20));
}

std::string human_duration(double s) {
  const auto t = int64_t(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(t / 3600), (long long)(t / 60 % 60));
  else std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
  return buf;
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
  for (const char* k : {"train.seq_len", "train.batch_size", "train.tokens_per_step", "train.seed"})
    if (key == k) return true;
  return false;
}

// Whether root holds step_* directories, valid or not.
bool has_checkpoints(const std::string& root) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.path().filename().string().rfind("step_", 0) == 0) return true;
  return false;
}

// The checkpoint a --resume value designates; nullopt for a fresh start.
std::optional<std::string> resume_dir(const TrainOptions& opt, const std::string& ckpt_root) {
  if (opt.resume.empty()) return std::nullopt;
  if (opt.resume == "auto") {
    auto found = find_latest_valid(ckpt_root);
    if (!found) spdlog::info("resume auto: no valid checkpoint under {}, starting fresh", ckpt_root);
    return found;
  }
  if (fs::exists(opt.resume + "/state.json")) return opt.resume;
  auto found = find_latest_valid(opt.resume);
  if (!found) throw std::runtime_error("--resume " + opt.resume + ": no valid checkpoint there");
  return found;
}

class Run {
 public:
  Run(const RunConfig& cfg, const TrainOptions& opt)
      : cfg_(cfg), opt_(opt), ckpt_root_(opt.out_dir + "/checkpoints") {}

  int run();

 private:
  void start_or_resume();
  void train_step();
  void log_step(double loss, double norm, double lr);
  void run_eval();
  void run_tasks();
  void run_sample();
  void save();
  void save_parts();  // data-parallel: every rank writes its part
  void restore_optimizer(const std::string& dir, CheckpointData& ck, int parts);
  bool lead() const { return rank_ == 0; }

  const RunConfig& cfg_;
  const TrainOptions& opt_;
  const std::string ckpt_root_;
  dist::DistEnv env_;
  int world_ = 1, rank_ = 0;
  bool data_parallel_ = false;  // joined an NCCL group: gradients, losses and decisions are shared
  std::unique_ptr<dist::Group> group_;  // outlives the backend, which uses its communicator
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<TrainLoader> loader_;
  std::unique_ptr<ValLoader> val_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<int32_t> prompt_;  // the encoded eval.sample_prompt; empty: no samples
  std::vector<eval::PreparedTask> tasks_;  // eval.tasks, read and tokenized once
  std::unique_ptr<MetricsWriter> metrics_;
  std::mt19937_64 sample_rng_;
  int64_t accum_ = 1, tokens_per_step_ = 0, total_ = 0;
  double flops_per_token_ = 0, peak_ = 0;

  // Checkpointed progress.
  int64_t step_ = 0, tokens_ = 0, updates_ = 0;
  int bad_streak_ = 0;

  std::string last_saved_dir_;
  std::vector<int32_t> in_, tgt_;
  // Logging window.
  double window_time_ = 0;
  int64_t window_steps_ = 0;
};

void Run::start_or_resume() {
  const std::string backend_name = resolve_backend_name(cfg_.train.backend);
  refuse_cpu_data_parallel(backend_name, world_);  // before any rank waits for another
  data_parallel_ = dist::wants_data_parallel(env_) && backend_name == "cuda";
  if (data_parallel_) {
    spdlog::info("rank {} of {} ({} launcher, local rank {}): joining the NCCL group", rank_, world_, env_.launcher,
                 env_.local_rank);
    group_ = dist::join_group(env_, cfg_.distributed);
  } else {
    group_ = std::make_unique<dist::SingleProcess>();
  }
  backend_ = make_backend(cfg_, world_, rank_, data_parallel_);
  if (data_parallel_) backend_->set_communicator(group_->nccl(), cfg_.distributed);
  accum_ = accumulation_steps(cfg_, world_, "train.tokens_per_step");
  tokens_per_step_ = accum_ * cfg_.train.batch_size * cfg_.train.seq_len * world_;
  total_ = total_steps(cfg_.train, tokens_per_step_);
  const int64_t n_params = int64_t(backend_->layout().total());
  flops_per_token_ = flops_per_token(cfg_.model, n_params, cfg_.train.seq_len);
  peak_ = peak_flops_per_device(backend_->name()) * world_;

  LoaderOptions lo;
  lo.B = cfg_.train.batch_size;
  lo.T = cfg_.train.seq_len;
  lo.shuffle = cfg_.data.shuffle;
  lo.seed = cfg_.train.seed;
  lo.vocab_size = cfg_.model.vocab_size;
  lo.rank = rank_;
  lo.world = world_;
  lo.pattern = cfg_.data.train;
  loader_ = std::make_unique<TrainLoader>(lo);
  lo.pattern = cfg_.data.val;
  lo.shuffle = false;
  val_ = std::make_unique<ValLoader>(lo);
  const bool samples = cfg_.eval.sample_every > 0 && lead();
  if (samples || !cfg_.eval.tasks.empty()) tokenizer_ = std::make_unique<Tokenizer>(cfg_.data.tokenizer);
  for (const auto& [name, file] : cfg_.eval.tasks)  // every rank scores its share of each task
    tasks_.push_back(eval::prepare_task(name, file, *tokenizer_, cfg_.model.vocab_size));
  if (samples) {
    prompt_ = tokenizer_->encode(cfg_.eval.sample_prompt);
    if (prompt_.empty()) prompt_.push_back(Tokenizer::kEndOfText);
    for (int32_t id : prompt_)
      if (id >= cfg_.model.vocab_size)
        throw std::runtime_error("eval.sample_prompt: token id " + std::to_string(id) +
                                 " is outside the model's vocabulary (model.vocab_size " +
                                 std::to_string(cfg_.model.vocab_size) + ")");
  }

  const auto from = resume_dir(opt_, ckpt_root_);
  if (from) {
    CheckpointData ck = load_checkpoint(*from);
    const auto bad = incompatible_keys(ck.config, config_to_json(cfg_));
    if (!bad.empty()) {
      std::string msg = "cannot resume from " + *from + ": the config differs in keys a resume cannot change:";
      for (const auto& b : bad) msg += " " + b + ";";
      msg.pop_back();
      throw std::runtime_error(msg);
    }
    const auto& st = ck.state;
    dist::require_same_world(*from, st.at("world").get<int>(), world_);
    if (ck.params.size() != backend_->layout().total())
      throw std::runtime_error("cannot resume from " + *from + ": model.bin holds " + std::to_string(ck.params.size()) +
                               " parameters, the model has " + std::to_string(backend_->layout().total()));
    const int parts = st.value("rank_parts", 0);
    backend_->set_params(ck.params);
    restore_optimizer(*from, ck, parts);
    step_ = st.at("step");
    tokens_ = st.at("tokens");
    updates_ = st.at("updates");
    bad_streak_ = st.at("bad_streak");
    rng_from_string(sample_rng_, st.at("sample_rng"));
    loader_->restore(parts > 0 ? load_rank_part(*from, rank_, parts).state.at("loader") : st.at("loader"));
    last_saved_dir_ = *from;
    spdlog::info("resuming from {} (step {}, {} tokens seen)", *from, step_, tokens_);
  } else {
    if (opt_.resume.empty() && has_checkpoints(ckpt_root_))
      throw std::runtime_error(opt_.out_dir + " already holds checkpoints of a run: continue it with --resume auto, "
                               "or train into another --out");
    if (cfg_.model.init_from.empty()) {
      backend_->init_params(cfg_.train.seed);
    } else {
      try {
        backend_->set_params(read_exported_weights(cfg_.model.init_from, backend_->layout()));
      } catch (const SafetensorsError& e) {
        throw std::runtime_error(std::string("model.init_from: ") + e.what());
      }
      spdlog::info("parameters from {} (model.init_from)", cfg_.model.init_from);
    }
    sample_rng_.seed(cfg_.train.seed ^ kSampleSeedSalt);
  }
  // A fresh start keeps no earlier records (resume step 0).
  if (lead()) metrics_ = std::make_unique<MetricsWriter>(opt_.out_dir + "/metrics.jsonl", step_);

  spdlog::info("backend {} | {:.2f}M parameters | {} tokens/step = {} x {} tokens x {} micro-batches x {} processes | "
               "{} steps",
               backend_->name(), double(n_params) / 1e6, tokens_per_step_, cfg_.train.batch_size, cfg_.train.seq_len,
               accum_, world_, total_);
}

void Run::train_step() {
  const auto t0 = Clock::now();
  backend_->zero_grad();
  double loss_sum = 0;
  const float scale = 1.0f / float(accum_);
  for (int64_t m = 0; m < accum_; ++m) {
    loader_->next(in_, tgt_);
    if (data_parallel_ && m + 1 == accum_) backend_->reduce_grads_in_next_backward();
    loss_sum += backend_->forward_backward(in_.data(), tgt_.data(), cfg_.train.batch_size, cfg_.train.seq_len, scale);
  }
  // The norm is already global (averaged gradients); the loss is averaged here, and one rank's
  // non-finite value makes every rank skip the update.
  const double norm = backend_->grad_norm();
  double shared[2] = {loss_sum / double(accum_), std::isfinite(loss_sum) && std::isfinite(norm) ? 0.0 : 1.0};
  group_->sum(shared, 2);
  const double loss = shared[0] / double(world_);
  const double lr = lr_at(cfg_.schedule, cfg_.optimizer.lr, step_, total_);
  const bool finite = shared[1] == 0.0 && std::isfinite(loss) && std::isfinite(norm);
  if (finite) {
    const auto& o = cfg_.optimizer;
    AdamWStep s;
    s.lr = float(lr);
    s.beta1 = o.beta1;
    s.beta2 = o.beta2;
    s.eps = o.eps;
    s.weight_decay = o.weight_decay;
    s.grad_scale = o.grad_clip > 0 && norm > o.grad_clip ? float(o.grad_clip / norm) : 1.0f;
    s.t = ++updates_;
    backend_->adamw_update(s);
    bad_streak_ = 0;
  } else {
    ++bad_streak_;
    spdlog::warn("step {}: non-finite loss {} or grad norm {}; update skipped ({} in a row, limit {})", step_ + 1,
                 loss, norm, bad_streak_, cfg_.train.max_bad_steps);
  }
  ++step_;
  tokens_ += tokens_per_step_;
  window_time_ += seconds_since(t0);
  ++window_steps_;
  if (bad_streak_ >= cfg_.train.max_bad_steps)
    throw std::runtime_error("stopping at step " + std::to_string(step_) + " after " + std::to_string(bad_streak_) +
                             " non-finite steps in a row (train.max_bad_steps); the last good checkpoint is " +
                             (last_saved_dir_.empty() ? std::string("none") : last_saved_dir_));
  if (lead() && (step_ % cfg_.logging.every == 0 || step_ == total_)) log_step(loss, norm, lr);
}

void Run::log_step(double loss, double norm, double lr) {
  const double step_time = window_time_ / double(window_steps_);
  const double tok_s = double(tokens_per_step_) / step_time;
  const int64_t mem = memory_in_use_bytes(backend_->name());
  nlohmann::json rec = {{"type", "train"}, {"step", step_},   {"loss", loss},         {"lr", lr},
                        {"grad_norm", norm}, {"tokens", tokens_}, {"tokens_per_s", tok_s}, {"memory_bytes", mem}};
  std::string mfu_text;
  if (peak_ > 0) {
    const double mfu = flops_per_token_ * tok_s / peak_;
    rec["mfu"] = mfu;
    mfu_text = fmt::format(" | MFU {:.1f}%", 100 * mfu);
  }
  metrics_->write(rec);
  spdlog::info("step {}/{} | loss {:.4f} | lr {:.3e} | grad norm {:.3f} | {:.0f} tok/s{} | mem {} | ETA {}", step_,
               total_, loss, lr, norm, tok_s, mfu_text, human_bytes(mem),
               human_duration(step_time * double(total_ - step_)));
  window_time_ = 0;
  window_steps_ = 0;
}

void Run::run_eval() {
  const auto t0 = Clock::now();
  EvalResult r = evaluate(*backend_, *val_, cfg_.train.batch_size, cfg_.train.seq_len, cfg_.eval.batches);
  if (world_ > 1) {  // every rank evaluated its own slice of the same number of batches
    double v[2] = {r.loss, r.bits_per_byte};
    group_->sum(v, 2);
    r.loss = v[0] / world_;
    r.bits_per_byte = v[1] / world_;
    r.perplexity = std::exp(r.loss);
    r.tokens *= world_;
  }
  if (!lead()) return;
  metrics_->write({{"type", "eval"}, {"step", step_}, {"val_loss", r.loss}, {"val_ppl", r.perplexity},
                   {"val_bpb", r.bits_per_byte}, {"val_tokens", r.tokens}});
  spdlog::info("eval step {} | val loss {:.4f} | perplexity {:.2f} | bits/byte {:.4f} | {} tokens in {:.1f}s", step_,
               r.loss, r.perplexity, r.bits_per_byte, r.tokens, seconds_since(t0));
}

// Zero-shot accuracy on eval.tasks: each rank scores every world-th item, the counts are summed.
void Run::run_tasks() {
  const auto t0 = Clock::now();
  const eval::LogprobSource src = eval::backend_source(*backend_, cfg_.train.batch_size, cfg_.train.seq_len);
  std::vector<eval::TaskScore> scores;
  std::vector<double> counts;
  for (const eval::PreparedTask& t : tasks_) {
    scores.push_back(eval::score_task(t, src, rank_, world_));
    counts.insert(counts.end(), {double(scores.back().items), double(scores.back().correct),
                                 double(scores.back().correct_norm)});
  }
  group_->sum(counts.data(), int(counts.size()));
  if (!lead()) return;
  nlohmann::json rec = {{"type", "tasks"}, {"step", step_}};
  std::string line;
  for (size_t i = 0; i < scores.size(); ++i) {
    eval::TaskScore& s = scores[i];
    s.items = int64_t(counts[3 * i]);
    s.correct = int64_t(counts[3 * i + 1]);
    s.correct_norm = int64_t(counts[3 * i + 2]);
    rec[s.task + "_acc"] = s.acc();
    line += fmt::format(" | {} acc {:.2f}", s.task, 100 * s.acc());
    if (s.has_norm) {
      rec[s.task + "_acc_norm"] = s.acc_norm();
      line += fmt::format(" acc_norm {:.2f}", 100 * s.acc_norm());
    }
  }
  metrics_->write(rec);
  spdlog::info("tasks step {}{} ({:.1f}s)", step_, line, seconds_since(t0));
}

void Run::run_sample() {
  const auto ids = sample_tokens(*backend_, prompt_, cfg_.eval.sample_tokens, cfg_.train.seq_len,
                                 tokenizer_->vocab_size(), kSampleTopK, sample_rng_);
  const std::string text = tokenizer_->decode(prompt_) + tokenizer_->decode(ids);
  metrics_->write({{"type", "sample"}, {"step", step_}, {"text", text}});
  spdlog::info("sample step {}:\n{}", step_, text);
}

// Optimizer state: optimizer.bin, or (ZeRO-1) every rank part's shard put back in place, so any
// world-size-1 run and every ZeRO-1 setting can resume it.
void Run::restore_optimizer(const std::string& dir, CheckpointData& ck, int parts) {
  const size_t total = backend_->layout().total();
  if (ck.adam_m.empty()) {
    ck.adam_m.assign(total, 0.0f);
    ck.adam_v.assign(total, 0.0f);
    for (int r = 0; r < parts; ++r) {
      const RankPart p = load_rank_part(dir, r, parts);
      const size_t b = p.state.at("shard").at("begin");
      if (b + p.adam_m.size() > total)
        throw CheckpointError("checkpoint " + dir + ": rank " + std::to_string(r) + "'s optimizer shard [" +
                              std::to_string(b) + ", " + std::to_string(b + p.adam_m.size()) +
                              ") lies outside the model's " + std::to_string(total) + " parameters");
      std::copy(p.adam_m.begin(), p.adam_m.end(), ck.adam_m.begin() + std::ptrdiff_t(b));
      std::copy(p.adam_v.begin(), p.adam_v.end(), ck.adam_v.begin() + std::ptrdiff_t(b));
    }
  }
  backend_->set_adam_state(ck.adam_m, ck.adam_v);
}

void Run::save_parts() {
  const bool zero1 = cfg_.distributed.zero1;
  CheckpointData ck;
  if (lead()) {
    ck.config = config_to_json(cfg_);
    backend_->get_params(ck.params);
    if (!zero1) backend_->get_adam_state(ck.adam_m, ck.adam_v);  // the same on every rank
    ck.state = {{"step", step_},
                {"tokens", tokens_},
                {"updates", updates_},
                {"bad_streak", bad_streak_},
                {"world", world_},
                {"rank_parts", world_},
                {"zero1", zero1},
                {"total_steps", total_},
                {"lr", lr_at(cfg_.schedule, cfg_.optimizer.lr, std::max<int64_t>(0, step_ - 1), total_)},
                {"sample_rng", rng_to_string(sample_rng_)},
                {"loader", loader_->state()},
                {"tokenizer", {{"vocab", Tokenizer::kVocabFile}, {"sha256", Tokenizer::kVocabSha256}}}};
  }
  RankPart part;
  const dist::ShardPlan plan = dist::plan_shards(backend_->layout().total(), world_);
  part.state = {{"loader", loader_->state()}, {"shard", {{"begin", plan.begin(rank_)}, {"end", plan.end(rank_)}}}};
  if (zero1) {
    std::vector<float> m, v;
    backend_->get_adam_state(m, v);
    const auto b = std::ptrdiff_t(plan.begin(rank_)), e = std::ptrdiff_t(plan.end(rank_));
    part.adam_m.assign(m.begin() + b, m.begin() + e);
    part.adam_v.assign(v.begin() + b, v.begin() + e);
  }
  const auto t0 = Clock::now();
  // Every rank writes into rank 0's temporary directory; rank 0 renames it into place only after
  // every rank reported success, so a step_* directory is always complete.
  double pid = lead() ? double(::getpid()) : 0.0;
  group_->sum(&pid, 1);
  const std::string tmp = checkpoint_temp_dir(ckpt_root_, step_, long(pid));
  std::string err;
  auto attempt = [&](const auto& f) {
    if (!err.empty()) return;
    try {
      f();
    } catch (const std::exception& e) {
      err = e.what();
    }
  };
  if (lead()) attempt([&] { begin_checkpoint(ckpt_root_, tmp); });
  bool ok = dist::all_ranks(*group_, err.empty());
  if (ok) {
    attempt([&] {
      write_rank_part(tmp, rank_, world_, part);
      if (lead()) write_checkpoint_files(tmp, ck);
    });
    ok = dist::all_ranks(*group_, err.empty());
  }
  std::string dir;
  if (ok && lead()) attempt([&] { dir = commit_checkpoint(ckpt_root_, step_, tmp); });
  if (!err.empty() || !ok) {
    if (lead()) discard_checkpoint(tmp);
  }
  ok = dist::all_ranks(*group_, err.empty());
  if (!ok)
    throw CheckpointError(!err.empty() ? "rank " + std::to_string(rank_) + ": " + err
                                       : "rank " + std::to_string(rank_) + ": checkpoint step " +
                                             std::to_string(step_) + " not written: another rank failed (see its log)");
  last_saved_dir_ = ckpt_root_ + "/" + checkpoint_dir_name(step_);
  if (lead()) {
    prune_checkpoints(ckpt_root_, cfg_.checkpoint.keep_last, cfg_.checkpoint.keep_every);
    spdlog::info("checkpoint {} written by {} ranks in {:.1f}s", dir, world_, seconds_since(t0));
  }
}

void Run::save() {
  if (data_parallel_) return save_parts();
  CheckpointData ck;
  ck.config = config_to_json(cfg_);
  backend_->get_params(ck.params);
  backend_->get_adam_state(ck.adam_m, ck.adam_v);
  ck.state = {{"step", step_},
              {"tokens", tokens_},
              {"updates", updates_},
              {"bad_streak", bad_streak_},
              {"world", world_},
              {"total_steps", total_},
              {"lr", lr_at(cfg_.schedule, cfg_.optimizer.lr, std::max<int64_t>(0, step_ - 1), total_)},
              {"sample_rng", rng_to_string(sample_rng_)},
              {"loader", loader_->state()},
              {"tokenizer", {{"vocab", Tokenizer::kVocabFile}, {"sha256", Tokenizer::kVocabSha256}}}};
  const auto t0 = Clock::now();
  last_saved_dir_ = save_checkpoint(ckpt_root_, step_, ck);
  prune_checkpoints(ckpt_root_, cfg_.checkpoint.keep_last, cfg_.checkpoint.keep_every);
  spdlog::info("checkpoint {} written in {:.1f}s", last_saved_dir_, seconds_since(t0));
}

int Run::run() {
  env_ = dist::read_dist_env(cfg_.distributed);
  rank_ = env_.rank;
  world_ = env_.world;
  fs::create_directories(opt_.out_dir);
  if (lead()) {
    setup_logging(opt_.out_dir + "/train.log", cfg_.logging.level);
  } else {  // other ranks: warnings and errors on the console only
    const bool quieter = spdlog::level::from_str(cfg_.logging.level) > spdlog::level::warn;
    setup_logging("", quieter ? cfg_.logging.level : "warn");
  }
  const std::string resolved = config_to_json(cfg_).dump(2);
  spdlog::info("resolved config:\n{}", resolved);
  start_or_resume();  // first: a refused resume must not overwrite the saved config
  if (lead()) {
    std::ofstream f(opt_.out_dir + "/config.json");
    f << resolved << '\n';
    if (!f) throw std::runtime_error("cannot write " + opt_.out_dir + "/config.json");
  }
  if (step_ >= total_) {
    spdlog::info("nothing to do: the run is at step {} of {}", step_, total_);
    return 0;
  }
  StopSignals stop;
  while (step_ < total_) {
    train_step();
    const bool last = step_ == total_;
    if (last || (cfg_.eval.every > 0 && step_ % cfg_.eval.every == 0)) {
      run_eval();
      if (!tasks_.empty()) run_tasks();
    }
    if (!prompt_.empty() && (last || step_ % cfg_.eval.sample_every == 0)) run_sample();
    // A signal on any rank stops every rank after the same step.
    const bool stop = dist::any_rank(*group_, StopSignals::requested());
    if (last || stop || (cfg_.checkpoint.every > 0 && step_ % cfg_.checkpoint.every == 0)) save();
    if (stop && !last) {
      if (StopSignals::requested())
        spdlog::warn("stopped by signal {} at step {}; resume with --resume auto (exit status {})",
                     StopSignals::signal_number(), step_, kExitPreempted);
      else
        spdlog::warn("stopped at step {}: another rank received a stop signal (exit status {})", step_, kExitPreempted);
      return kExitPreempted;
    }
  }
  return 0;
}

}  // namespace

std::vector<std::string> incompatible_keys(const nlohmann::json& saved, const nlohmann::json& now) {
  std::map<std::string, nlohmann::json> a, b;
  flatten(saved, "", a);
  flatten(now, "", b);
  std::vector<std::string> out;
  for (const auto& [k, v] : b) {
    if (!resume_must_match(k)) continue;
    const auto it = a.find(k);
    const std::string old = it == a.end() ? std::string("absent") : it->second.dump();
    if (it == a.end() || it->second != v) out.push_back(k + " (checkpoint " + old + ", now " + v.dump() + ")");
  }
  return out;
}

int train(const RunConfig& cfg, const TrainOptions& opt) {
  Run run(cfg, opt);
  return run.run();
}

}  // namespace gfwa
