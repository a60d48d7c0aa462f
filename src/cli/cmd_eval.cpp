#include <cstdio>

#include <cxxopts.hpp>

#include "cli/commands.h"
#include "data/loader.h"
#include "model/backend_factory.h"
#include "train/backend_spec.h"
#include "train/checkpoint.h"
#include "train/config_io.h"
#include "train/evaluate.h"

namespace gfwa {

int cmd_eval(int argc, char** argv) {
  cxxopts::Options options("gfwa eval", "Validation loss, perplexity and bits per byte of a saved model.");
  options.add_options()
      ("checkpoint", "a checkpoint directory (step_*)", cxxopts::value<std::string>(), "PATH")
      ("batches", "batches to evaluate; 0: the whole split (default: the checkpoint's eval.batches)",
       cxxopts::value<int>(), "N")
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

  auto backend = make_backend(backend_spec(cfg, 1, 0, false));
  backend->set_params(ck.params);
  LoaderOptions lo;
  lo.pattern = cfg.data.val;
  lo.B = cfg.train.batch_size;
  lo.T = cfg.train.seq_len;
  lo.shuffle = false;
  lo.vocab_size = cfg.model.vocab_size;
  ValLoader val(lo);
  const EvalResult r = evaluate(*backend, val, lo.B, lo.T, batches);
  std::printf("checkpoint %s (step %lld)\nval loss %.4f | perplexity %.2f | bits/byte %.4f | %lld tokens in %d batches\n",
              dir.c_str(), (long long)ck.state.at("step").get<int64_t>(), r.loss, r.perplexity, r.bits_per_byte,
              (long long)r.tokens, r.batches);
  return 0;
}

}  // namespace gfwa
