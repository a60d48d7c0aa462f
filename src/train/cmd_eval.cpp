#include <cmath>
#include <cstdio>

#include <cxxopts.hpp>

#include "data/loader.h"
#include "model/backend_factory.h"
#include "train/checkpoint.h"
#include "train/commands.h"
#include "train/config_io.h"
#include "train/evaluate.h"

namespace gfwa {

int cmd_eval(int argc, char** argv) {
  cxxopts::Options options("gfwa eval", "Validation loss, perplexity and bits per byte of a saved model.");
  options.add_options()
      ("checkpoint", "a checkpoint directory (step_*)", cxxopts::value<std::string>(), "PATH")
      ("batches", "batches to evaluate; 0: the whole split (default: the checkpoint's eval.batches)",
       cxxopts::value<int>(), "N")
      ("json", "print the result as one JSON object (full precision)")
      ("logits", "also write the first validation batch's input ids, targets and logits [B, T, vocab] to this "
                 "safetensors file (one forward per position: for small models and parity checks)",
       cxxopts::value<std::string>(), "FILE")
      ("h,help", "show this help");
  const auto parsed = options.parse(argc, argv);
  if (parsed.count("help")) {
    std::printf("%s\n", options.help().c_str());
    return 0;
  }
  if (!parsed.count("checkpoint")) throw std::runtime_error("--checkpoint PATH is required");
  const std::string dir = parsed["checkpoint"].as<std::string>();
  const CheckpointData ck = load_checkpoint(dir);
  const RunConfig cfg = config_from_json(ck.config, dir + "/config.json");
  const int batches = parsed.count("batches") ? parsed["batches"].as<int>() : cfg.eval.batches;
  if (batches < 0) throw std::runtime_error("--batches must be >= 0 (got " + std::to_string(batches) + ")");

  auto backend = make_backend(cfg, 1);
  backend->set_params(ck.params);
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
  const EvalResult r = evaluate(*backend, val, lo.B, lo.T, batches);
  const int64_t step = ck.state.at("step").get<int64_t>();
  if (parsed.count("json")) {
    const nlohmann::json j = {{"checkpoint", dir},
                              {"step", step},
                              {"loss", r.loss},
                              {"perplexity", r.perplexity},
                              {"bits_per_byte", std::isnan(r.bits_per_byte) ? nlohmann::json() : nlohmann::json(r.bits_per_byte)},
                              {"tokens", r.tokens},
                              {"batches", r.batches}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("checkpoint %s (step %lld)\nval loss %.4f | perplexity %.2f | bits/byte %.4f | %lld tokens in %d batches\n",
              dir.c_str(), (long long)step, r.loss, r.perplexity, r.bits_per_byte,
              (long long)r.tokens, r.batches);
  return 0;
}

}  // namespace gfwa
