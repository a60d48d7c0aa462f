// Text files given to `gfwa tokenize` (anything: invalid UTF-8, NULs, "<|endoftext|>" pieces):
// encoding never fails and decodes back to the same bytes. The vocabulary file itself is checked
// against its SHA-256 before it is parsed, so only the text is fuzzed. Needs the tokenizer files
// (scripts/data/fetch_tokenizer.sh) in GFWA_TOKENIZER_DIR or data/tokenizer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "data/tokenizer.h"

namespace {
const gfwa::Tokenizer& tokenizer() {
  static const gfwa::Tokenizer tok(std::getenv("GFWA_TOKENIZER_DIR") ? std::getenv("GFWA_TOKENIZER_DIR")
                                                                        : "data/tokenizer");
  return tok;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const gfwa::Tokenizer& tok = tokenizer();
  if (tok.decode(tok.encode(text)) != text) __builtin_trap();
  if (tok.decode(tok.encode_with_special(text)) != text) __builtin_trap();
  return 0;
}
