#pragma once
/// The C interface of the SentencePiece module (libstag_sentencepiece.so). SentencePiece carries
/// its own protobuf-lite (3.14) inside it; the ONNX importer links libprotobuf 3.21. In one
/// process the dynamic linker binds one library's protobuf calls to the other's and SentencePiece
/// aborts on the version check, so stag loads SentencePiece alone, dlopen'ed with RTLD_DEEPBIND,
/// behind this C interface (no C++ types, no exceptions cross it). Buffers it returns are
/// malloc'ed: the caller frees them with free().

#include <cstddef>
#include <cstdint>

extern "C" {

/// Each function returns nullptr on success or a malloc'ed error message.
struct StagSentencePieceApi {
  int version;  // kStagSentencePieceAbi: a module from another build is refused
  /// Trains a unigram model on n texts (newlines read as spaces), one thread, from `seed`;
  /// *model, *model_len: the serialized model proto.
  char* (*train)(const char* const* texts, const size_t* lengths, size_t n, int64_t vocab, unsigned seed, char** model,
                 size_t* model_len);
  /// Loads a serialized model proto; *handle is freed with release.
  char* (*load)(const char* model, size_t len, void** handle);
  void (*release)(void* handle);
  int64_t (*piece_size)(const void* handle);
  /// *ids: *n piece ids of the text.
  char* (*encode)(const void* handle, const char* text, size_t len, int** ids, size_t* n);
  /// *text, *len: the text of n piece ids.
  char* (*decode)(const void* handle, const int* ids, size_t n, char** text, size_t* len);
};

constexpr int kStagSentencePieceAbi = 1;

/// The module's one exported entry point.
const StagSentencePieceApi* stag_sentencepiece_api();
}

namespace stag::rt {
/// The module's interface, loaded on first use: from the path this build put it at
/// (STAG_SENTENCEPIECE_MODULE), else next to the executable. Throws Error naming both paths when
/// neither loads.
const StagSentencePieceApi& sentencepiece_api();
}  // namespace stag::rt
