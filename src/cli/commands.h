// Subcommands of the `gfwa` executable. Each lives in its own cmd_*.cpp and returns an exit status;
// errors are thrown (ConfigError, std::runtime_error) and printed as one line by main.
#pragma once

namespace gfwa {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);  // argv[0] is the subcommand name
};

int cmd_config(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_generate(int argc, char** argv);  // src/cli/cmd_generate.cpp
int cmd_export(int argc, char** argv);
int cmd_bench_train(int argc, char** argv);  // CUDA builds only: `gfwa bench train ...` (argv[0] = "train")
int cmd_bench_generate(int argc, char** argv);  // CUDA builds only: `gfwa bench generate ...`
int cmd_bench_nsa(int argc, char** argv);       // CUDA builds only: `gfwa bench nsa ...` (docs/nsa.md)
int cmd_bench(int argc, char** argv);  // kernel benchmarks (CUDA builds only): `gfwa bench attention ...`
int cmd_tokenize(int argc, char** argv);  // src/cli/cmd_tokenize.cpp

}  // namespace gfwa
