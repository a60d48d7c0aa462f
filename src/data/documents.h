// Documents for the tokenize tool: splitting files into documents, the deterministic val split,
// and cutting long documents into pieces that tokenize independently (for parallelism).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gfwa {

// The documents of one file: the whole file, or, with a separator line (e.g. "%" for fortunes),
// the text between lines that equal sep_line exactly (separator lines dropped). Empty documents
// are dropped.
std::vector<std::string_view> split_documents(std::string_view text, const std::string& sep_line);

// FNV-1a 64 of the bytes, then a SplitMix64 mix: fixed by the bytes alone, on any machine.
uint64_t document_hash(std::string_view doc);

// Whether a document belongs to the val split: its hash, as a fraction of 2^64, is below fraction.
bool in_val_split(std::string_view doc, double fraction);

// Cuts doc into consecutive pieces of about target bytes (at least) at boundaries where the GPT-2
// pre-tokenizer splits anyway: just after a '\n' that follows an ASCII non-space byte and precedes a
// non-space code point. Encoding the pieces one by one gives exactly the encoding of doc.
std::vector<std::string_view> cut_for_parallel(std::string_view doc, size_t target);

}  // namespace gfwa
