// Evaluation position by position (`gfwa eval --per-position`): the loss and the arg-max accuracy
// at each position of the context, averaged over the evaluated windows (windowed models' signature
// and the length experiments of scripts/experiments/), optionally whether the model predicts
// given targets (synthetic recall: the answer positions) and the statistics of its gates.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/loader.h"
#include "model/backend.h"
#include "train/evaluate.h"
#include "train/gate_stats.h"

namespace gfwa {

struct PositionEval {
  EvalResult totals;
  std::vector<double> loss_by_position, accuracy_by_position;  // [T]
  std::vector<uint8_t> answer_correct;                          // per requested target: arg max == target
  std::vector<double> answer_loss;
};

// The first max_batches [B, T] batches of the split (0: the whole split), as evaluate(). answers:
// indexes of evaluated targets, window-major (position t of the w-th window of the split is
// w * T + t), each below evaluated_targets(). gates, when given, gets every batch's log f.
PositionEval evaluate_positions(Backend& backend, ValLoader& val, int B, int T, int max_batches,
                                const std::vector<int64_t>& answers, GateStats* gates);

// Targets the same arguments evaluate: batches * B * T.
int64_t evaluated_targets(const ValLoader& val, int B, int T, int max_batches);

// One index per line, decimal, in [0, limit). Errors name the file, the line and its text.
std::vector<int64_t> read_target_indexes(const std::string& path, int64_t limit);

// {seq_len, batch_size, batches, tokens, loss, perplexity, bits_per_byte (null when unknown),
//  loss_by_position, accuracy_by_position, answers: {correct, loss} when answers were asked}
nlohmann::json position_eval_json(const PositionEval& r, int B, int T, bool with_answers);

}  // namespace gfwa
