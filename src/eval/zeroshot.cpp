#include "eval/zeroshot.h"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace gfwa::eval {

PreparedTask prepare_task(const std::string& name, const std::string& file, const Tokenizer& tok, int vocab_size) {
  PreparedTask t{name, file, load_task(name, file), {}, {}};
  for (const Item& item : t.items) {
    t.first.push_back(t.requests.size());
    t.requests.resize(t.requests.size() + item.choices.size());
  }
  t.first.push_back(t.requests.size());
  const long n = long(t.items.size());
#pragma omp parallel
  {
    EncodeCache cache;
#pragma omp for schedule(dynamic, 16)
    for (long i = 0; i < n; ++i) {
      const Item& item = t.items[size_t(i)];
      for (size_t c = 0; c < item.choices.size(); ++c)
        t.requests[t.first[size_t(i)] + c] = encode_pair(tok, item.choices[c].context, item.choices[c].continuation, cache);
    }
  }
  for (size_t i = 0; i < t.items.size(); ++i)
    for (size_t r = t.first[i]; r < t.first[i + 1]; ++r)
      for (const auto* ids : {&t.requests[r].context, &t.requests[r].continuation})
        for (int32_t id : *ids)
          if (id >= vocab_size)
            fail_at(t.items[i].where, name + ": token id " + std::to_string(id) +
                                          " is outside the model's vocabulary (model.vocab_size " +
                                          std::to_string(vocab_size) + ")");
  return t;
}

int pick(const Item& item, const double* ll, bool normalised) {
  int best = 0;
  double best_v = 0;
  for (size_t c = 0; c < item.choices.size(); ++c) {
    const size_t bytes = item.choices[c].norm_bytes;
    const double v = normalised ? ll[c] / double(bytes ? bytes : 1) : ll[c];
    if (c == 0 || v > best_v) best = int(c), best_v = v;
  }
  return best;
}

TaskScore score_task(const PreparedTask& task, const LogprobSource& src, int rank, int world) {
  if (world < 1 || rank < 0 || rank >= world)
    throw std::invalid_argument("score_task: rank " + std::to_string(rank) + " of world " + std::to_string(world));
  std::vector<size_t> mine;
  std::vector<TokenRequest> requests;
  for (size_t i = size_t(rank); i < task.items.size(); i += size_t(world)) {
    mine.push_back(i);
    requests.insert(requests.end(), task.requests.begin() + long(task.first[i]), task.requests.begin() + long(task.first[i + 1]));
  }
  const std::vector<double> ll = score_requests(src, requests);
  TaskScore s;
  s.task = task.name;
  s.has_norm = reports_acc_norm(task.name);
  size_t at = 0;
  for (size_t i : mine) {
    const Item& item = task.items[i];
    s.correct += pick(item, ll.data() + at, false) == item.gold;
    s.correct_norm += pick(item, ll.data() + at, true) == item.gold;
    at += item.choices.size();
  }
  s.items = int64_t(mine.size());
  return s;
}

namespace {

double stderr_of(double p, int64_t n) { return n > 1 ? std::sqrt(p * (1 - p) / double(n - 1)) : 0.0; }

}  // namespace

nlohmann::json score_json(const TaskScore& s, const std::string& file) {
  nlohmann::json j = {{"task", s.task}, {"file", file}, {"items", s.items}, {"acc", s.acc()},
                      {"acc_stderr", stderr_of(s.acc(), s.items)}};
  if (s.has_norm) {
    j["acc_norm"] = s.acc_norm();
    j["acc_norm_stderr"] = stderr_of(s.acc_norm(), s.items);
  }
  return j;
}

std::string markdown_table(const std::vector<TaskScore>& scores) {
  std::string t = "| task | items | acc | acc_norm |\n|---|---:|---:|---:|\n";
  for (const TaskScore& s : scores)
    t += fmt::format("| {} | {} | {:.2f} | {} |\n", s.task, s.items, 100 * s.acc(),
                     s.has_norm ? fmt::format("{:.2f}", 100 * s.acc_norm()) : std::string("-"));
  return t;
}

}  // namespace gfwa::eval
