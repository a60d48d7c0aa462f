#include <chrono>
#include <cstdio>
#include <filesystem>

#include <cxxopts.hpp>

#include "cli/commands.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "eval/zeroshot.h"
#include "io/files.h"
#include "model/backend_factory.h"
#include "train/backend_spec.h"
#include "train/checkpoint.h"
#include "train/config_io.h"
#include "train/evaluate.h"
#include "train/position_eval.h"

namespace gfwa {
namespace {

std::unique_ptr<Backend> backend_with(const RunConfig& cfg, const CheckpointData& ck) {
  auto backend = make_backend(backend_spec(cfg, 1, 0, false));
  backend->set_params(ck.params);
  return backend;
}

// Zero-shot tasks (docs/eval.md): each "NAME=FILE" read (every file checked before the model is
// loaded), scored, its JSON printed and written to out_dir/NAME.json; with several tasks, a
// Markdown table too (printed and out_dir/summary.md).
void run_tasks(const RunConfig& cfg, const CheckpointData& ck, const std::vector<std::string>& specs,
               const std::string& out_dir, const std::string& checkpoint) {
  std::vector<std::pair<std::string, std::string>> tasks;
  for (const std::string& s : specs) {
    const size_t eq = s.find('=');
    const std::string name = s.substr(0, eq);
    if (eq == std::string::npos || eq + 1 == s.size())
      throw std::runtime_error("--task " + s + ": expected NAME=FILE, NAME one of " + eval::task_name_list());
    if (!eval::is_task_name(name))
      throw std::runtime_error("--task " + s + ": unknown task '" + name + "' (expected one of " +
                               eval::task_name_list() + ")");
    tasks.emplace_back(name, s.substr(eq + 1));
  }
  const Tokenizer tok(cfg.data.tokenizer);
  std::vector<eval::PreparedTask> prepared;
  for (const auto& [name, file] : tasks) prepared.push_back(eval::prepare_task(name, file, tok, cfg.model.vocab_size));
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) throw std::runtime_error(out_dir + ": cannot create the results folder: " + ec.message());
  auto backend = backend_with(cfg, ck);
  const eval::LogprobSource src = eval::backend_source(*backend, cfg.train.batch_size, cfg.train.seq_len);
  std::vector<eval::TaskScore> scores;
  for (const eval::PreparedTask& task : prepared) {
    const auto t0 = std::chrono::steady_clock::now();
    scores.push_back(eval::score_task(task, src));
    nlohmann::json j = eval::score_json(scores.back(), task.file);
    j["checkpoint"] = checkpoint;
    j["step"] = ck.state.at("step");
    j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::string text = j.dump(2) + "\n";
    write_file_atomic(out_dir + "/" + task.name + ".json", text.data(), text.size());
    std::printf("%s", text.c_str());
  }
  if (scores.size() > 1) {
    const std::string table = eval::markdown_table(scores);
    write_file_atomic(out_dir + "/summary.md", table.data(), table.size());
    std::printf("\n%s", table.c_str());
  }
  std::printf("results in %s\n", out_dir.c_str());
}

// runs/NAME/checkpoints/step_N -> runs/NAME/eval/step_N
std::string default_out_dir(const std::string& checkpoint) {
  const std::filesystem::path p = std::filesystem::path(checkpoint).lexically_normal();
  const std::filesystem::path dir = p.has_filename() ? p : p.parent_path();
  return (dir.parent_path().parent_path() / "eval" / dir.filename()).string();
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  cxxopts::Options options("gfwa eval", "Validation loss, perplexity and bits per byte of a saved model, or its "
                                        "zero-shot accuracy on downstream tasks (--task; docs/eval.md).");
  options.add_options()
      ("checkpoint", "a checkpoint directory (step_*)", cxxopts::value<std::string>(), "PATH")
      ("batches", "batches to evaluate; 0: the whole split (default: the checkpoint's eval.batches)",
       cxxopts::value<int>(), "N")
      ("json", "print the result as one JSON object (full precision)")
      ("logits", "also write the first validation batch's input ids, targets and logits [B, T, vocab] to this "
                 "safetensors file (one forward per position: for small models and parity checks)",
       cxxopts::value<std::string>(), "FILE")
      ("seq-len", "tokens per evaluated window (default: the checkpoint's train.seq_len; longer: length "
                  "extrapolation)", cxxopts::value<int>(), "T")
      ("batch-size", "windows per batch (default: the checkpoint's train.batch_size)", cxxopts::value<int>(), "B")
      ("per-position", "also write the loss and arg-max accuracy at each position of the window, averaged over "
                       "the evaluated windows, with the totals, to this JSON file", cxxopts::value<std::string>(), "FILE")
      ("answers", "with --per-position: also record, for the evaluated targets listed in this file (one index "
                  "per line; window w, position t is w*T+t), whether the arg max is the target and the loss",
       cxxopts::value<std::string>(), "FILE")
      ("gate-stats", "gatedfwa models: write the distribution of the decay alpha = -log f and the effective "
                     "memory length per layer and head over the evaluated text to this JSON file",
       cxxopts::value<std::string>(), "FILE")
      ("task", "a zero-shot task and its release file, NAME=FILE (repeat for several); NAME: " +
       eval::task_name_list(), cxxopts::value<std::vector<std::string>>(), "NAME=FILE")
      ("out", "folder for the task results (default: RUN/eval/step_N for RUN/checkpoints/step_N)",
       cxxopts::value<std::string>(), "DIR")
      ("h,help", "show this help");
  const auto parsed = options.parse(argc, argv);
  if (parsed.count("help")) {
    std::printf("%s\n", options.help().c_str());
    return 0;
  }
  if (!parsed.count("checkpoint")) throw std::runtime_error("--checkpoint PATH is required");
  if (parsed.count("answers") && !parsed.count("per-position"))
    throw std::runtime_error("--answers needs --per-position FILE (the answers are written there)");
  const std::string dir = parsed["checkpoint"].as<std::string>();
  const bool tasks = parsed.count("task") > 0;
  for (const char* val_only :
       {"batches", "json", "logits", "seq-len", "batch-size", "per-position", "answers", "gate-stats"})
    if (tasks && parsed.count(val_only))
      throw std::runtime_error(std::string("--") + val_only + " is for the validation loss, not --task");
  if (!tasks && parsed.count("out")) throw std::runtime_error("--out is for --task results");
  const CheckpointData ck = load_checkpoint(dir);
  RunConfig cfg = config_from_json(ck.config, dir + "/config.json");
  if (tasks) {
    const std::string out = parsed.count("out") ? parsed["out"].as<std::string>() : default_out_dir(dir);
    run_tasks(cfg, ck, parsed["task"].as<std::vector<std::string>>(), out, dir);
    return 0;
  }
  const int batches = parsed.count("batches") ? parsed["batches"].as<int>() : cfg.eval.batches;
  if (batches < 0) throw std::runtime_error("--batches must be >= 0 (got " + std::to_string(batches) + ")");
  for (const char* key : {"seq-len", "batch-size"})
    if (parsed.count(key) && parsed[key].as<int>() < 1)
      throw std::runtime_error(std::string("--") + key + " must be >= 1 (got " +
                               std::to_string(parsed[key].as<int>()) + ")");
  if (parsed.count("seq-len")) cfg.train.seq_len = parsed["seq-len"].as<int>();
  if (parsed.count("batch-size")) cfg.train.batch_size = parsed["batch-size"].as<int>();
  if (parsed.count("gate-stats") && !cfg.model.any_gated())
    throw std::runtime_error("--gate-stats: the model has no gates (no layer is gatedfwa or nsa with a gatedfwa "
                             "sliding branch: " + attention_pattern_text(cfg.model) + ")");

  auto backend = backend_with(cfg, ck);
  LoaderOptions lo;
  lo.pattern = cfg.data.val;
  lo.B = cfg.train.batch_size;
  lo.T = cfg.train.seq_len;
  lo.shuffle = false;
  lo.vocab_size = cfg.model.vocab_size;
  ValLoader val(lo);
  if (parsed.count("logits")) {
    std::vector<int32_t> in, tgt;
    val.reset();
    if (!val.next(in, tgt)) throw std::runtime_error("--logits: the validation split holds less than one batch");
    write_batch_logits(*backend, in, tgt, lo.B, lo.T, parsed["logits"].as<std::string>());
  }
  const int64_t step = ck.state.at("step").get<int64_t>();
  EvalResult r;
  if (parsed.count("per-position") || parsed.count("gate-stats")) {
    std::vector<int64_t> answers;
    if (parsed.count("answers"))
      answers = read_target_indexes(parsed["answers"].as<std::string>(), evaluated_targets(val, lo.B, lo.T, batches));
    GateStats gates(cfg.model.n_layers, cfg.model.n_heads, lo.T);
    const PositionEval pe =
        evaluate_positions(*backend, val, lo.B, lo.T, batches, answers, parsed.count("gate-stats") ? &gates : nullptr);
    r = pe.totals;
    if (parsed.count("per-position")) {
      nlohmann::json j = position_eval_json(pe, lo.B, lo.T, parsed.count("answers") > 0);
      j["checkpoint"] = dir;
      j["step"] = step;
      const std::string text = j.dump() + "\n";
      write_file_atomic(parsed["per-position"].as<std::string>(), text.data(), text.size());
    }
    if (parsed.count("gate-stats")) {
      nlohmann::json j = gates.to_json();
      j["checkpoint"] = dir;
      j["step"] = step;
      j["window"] = cfg.model.attention.window;
      const std::string text = j.dump() + "\n";
      write_file_atomic(parsed["gate-stats"].as<std::string>(), text.data(), text.size());
    }
  } else {
    r = evaluate(*backend, val, lo.B, lo.T, batches);
  }
  if (parsed.count("json")) {
    nlohmann::json j = eval_result_json(r);
    j["checkpoint"] = dir;
    j["step"] = step;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("checkpoint %s (step %lld)\nval loss %.4f | perplexity %.2f | bits/byte %.4f | %lld tokens in %d batches\n",
              dir.c_str(), (long long)step, r.loss, r.perplexity, r.bits_per_byte, (long long)r.tokens, r.batches);
  return 0;
}

}  // namespace gfwa
