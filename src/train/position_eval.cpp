#include "train/position_eval.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <stdexcept>

namespace gfwa {

int64_t evaluated_targets(const ValLoader& val, int B, int T, int max_batches) {
  const int64_t batches = max_batches == 0 ? val.batches() : std::min<int64_t>(max_batches, val.batches());
  return batches * B * T;
}

PositionEval evaluate_positions(Backend& backend, ValLoader& val, int B, int T, int max_batches,
                                const std::vector<int64_t>& answers, GateStats* gates) {
  const size_t N = size_t(B) * T;
  PositionEval r;
  r.loss_by_position.assign(size_t(T), 0.0);
  r.accuracy_by_position.assign(size_t(T), 0.0);
  r.answer_correct.assign(answers.size(), 0);
  r.answer_loss.assign(answers.size(), 0.0);
  // Requested targets in index order, so each batch takes the next run of them.
  std::vector<size_t> order(answers.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return answers[a] < answers[b]; });
  size_t next = 0;

  val.reset();
  std::vector<int32_t> in, tgt, argmax(N);
  std::vector<float> loss(N);
  std::vector<std::vector<float>> logf;
  double loss_sum = 0;
  int batches = 0;
  while ((max_batches == 0 || batches < max_batches) && val.next(in, tgt)) {
    backend.target_logprobs(in.data(), tgt.data(), B, T, loss.data(), argmax.data());
    for (float& x : loss) x = -x;  // log-probability -> loss
    if (gates) {
      backend.gate_log_f(logf);
      gates->add(logf, B);
    }
    for (size_t i = 0; i < N; ++i) {
      loss_sum += loss[i];
      r.loss_by_position[i % size_t(T)] += loss[i];
      r.accuracy_by_position[i % size_t(T)] += argmax[i] == tgt[i] ? 1.0 : 0.0;
    }
    const int64_t base = int64_t(batches) * int64_t(N);
    for (; next < order.size() && answers[order[next]] < base + int64_t(N); ++next) {
      const size_t i = size_t(answers[order[next]] - base);
      r.answer_correct[order[next]] = argmax[i] == tgt[i];
      r.answer_loss[order[next]] = loss[i];
    }
    ++batches;
  }
  if (next != order.size())
    throw std::invalid_argument("answers: target index " + std::to_string(answers[order[next]]) +
                                " is beyond the evaluated targets");
  const int64_t tokens = int64_t(batches) * int64_t(N);
  r.totals = eval_result(tokens ? loss_sum / double(tokens) : 0.0, batches, tokens, val);
  for (int t = 0; t < T; ++t) {
    r.loss_by_position[size_t(t)] /= double(batches) * B;
    r.accuracy_by_position[size_t(t)] /= double(batches) * B;
  }
  return r;
}

std::vector<int64_t> read_target_indexes(const std::string& path, int64_t limit) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot open for reading");
  std::vector<int64_t> out;
  int line_no = 0;
  for (std::string line; std::getline(f, line);) {
    ++line_no;
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(line, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != line.size() || v < 0)
      throw std::runtime_error(path + ":" + std::to_string(line_no) + ": expected a target index >= 0 (got \"" + line +
                               "\")");
    if (v >= limit)
      throw std::runtime_error(path + ":" + std::to_string(line_no) + ": target index " + line +
                               " is beyond the " + std::to_string(limit) + " evaluated targets");
    out.push_back(v);
  }
  if (f.bad()) throw std::runtime_error(path + ": read error");
  return out;
}

nlohmann::json position_eval_json(const PositionEval& r, int B, int T, bool with_answers) {
  nlohmann::json j = eval_result_json(r.totals);
  j["seq_len"] = T;
  j["batch_size"] = B;
  j["loss_by_position"] = r.loss_by_position;
  j["accuracy_by_position"] = r.accuracy_by_position;
  if (with_answers) {
    std::vector<int> correct(r.answer_correct.begin(), r.answer_correct.end());
    j["answers"] = {{"correct", correct}, {"loss", r.answer_loss}};
  }
  return j;
}

}  // namespace gfwa
