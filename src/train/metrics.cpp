#include "train/metrics.h"

#include <fstream>
#include <stdexcept>
#include <vector>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "io/files.h"

namespace gfwa {

void setup_logging(const std::string& log_file, const std::string& level) {
  const auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    throw std::invalid_argument("logging.level: unknown level '" + level + "'");
  std::vector<spdlog::sink_ptr> sinks{std::make_shared<spdlog::sinks::stdout_color_sink_mt>()};
  if (!log_file.empty()) sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(log_file));
  auto logger = std::make_shared<spdlog::logger>("gfwa", sinks.begin(), sinks.end());
  logger->set_level(lvl);
  logger->set_pattern("[%Y-%m-%d %H:%M:%S] [%^%l%$] %v");
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

MetricsWriter::MetricsWriter(const std::string& path, int64_t resume_step) : path_(path) {
  std::vector<std::string> kept;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const auto rec = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (rec.is_object() && rec.value("step", int64_t(0)) <= resume_step) kept.push_back(line);
  }
  in.close();
  // Written aside and renamed over the file: truncating it in place would lose every record to a
  // kill -9 that lands before the rewrite is done.
  std::string text;
  for (const auto& line : kept) text += line + '\n';
  write_file_atomic(path, text.data(), text.size());
  out_.open(path, std::ios::app);
  if (!out_) throw std::runtime_error("cannot open metrics file " + path);
}

void MetricsWriter::write(const nlohmann::json& record) {
  // Samples can end inside a multi-byte character: invalid UTF-8 becomes U+FFFD, not an error.
  out_ << record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  out_.flush();
  if (!out_) throw std::runtime_error("cannot write metrics file " + path_);
}

double mean_attended_keys(const ModelConfig& model, int T) {
  double sum = 0;
  for (int l = 0; l < model.n_layers; ++l) {
    const LayerAttention a = model.layer_attention(l);
    if (a.mode == AttnMode::nsa) {  // the three branches' keys (docs/nsa.md)
      sum += nsa_pairs(model.nsa_shape(l, 1, T)) / T;
      continue;
    }
    const double W = effective_window(a.mode, a.window, T);
    sum += (W < T ? T * W - W * (W - 1) / 2 : double(T) * (T + 1) / 2) / T;
  }
  return sum / model.n_layers;
}

double flops_per_token(const ModelConfig& model, int64_t n_params, int T) {
  return 6.0 * double(n_params) + 12.0 * model.n_layers * model.d_model * mean_attended_keys(model, T);
}

}  // namespace gfwa
