// `stag sample`: text from a character language model, drawn one token at a time through the
// model's compiled decode step (a key/value cache, or carried recurrent state), streamed as drawn.

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <functional>

#include "compiler/jit/jit_model.h"
#include "runtime/data/text.h"
#include "runtime/error.h"
#include "runtime/run_dir.h"
#include "runtime/safetensors.h"
#include "runtime/sample.h"
#include "runtime/thread_pool.h"
#include "tools/cli.h"
#include "tools/gan_program.h"

namespace stag::cli {

namespace {

struct SampleArgs {
  ModelArgs model;
  std::string weights, prompt;
  int64_t tokens = 200;
  rt::SamplingOptions sampling;
  bool benchmark = false;
  int threads = 1;
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void check_sampling(const rt::SamplingOptions& o) {
  if (!(o.temperature >= 0)) throw Failure{kExitBadInput, fmt::format("--temperature {} is negative", o.temperature)};
  if (!(o.top_p > 0 && o.top_p <= 1)) throw Failure{kExitBadInput, fmt::format("--top-p {} is not in (0, 1]", o.top_p)};
  if (o.top_k < 0) throw Failure{kExitBadInput, fmt::format("--top-k {} is negative", o.top_k)};
}

rt::CharTable vocabulary_of(const rt::StateMap& meta, const std::string& path) {
  auto table = rt::CharTable::restore(meta);
  if (!table)
    throw Failure{kExitBadInput, fmt::format("{} has no character vocabulary (vocab.bytes in its metadata): sample from a "
                                             "checkpoint that `stag train` wrote for a language model", path)};
  return *table;
}

// The prompt as ids; every byte must have an id of its own. No prompt: a newline, as if a
// fortune had just ended.
std::vector<int64_t> encode_prompt(const rt::CharTable& t, const std::string& prompt) {
  std::string text = prompt.empty() ? "\n" : prompt;
  std::vector<int64_t> ids;
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<uint8_t>(text[i]);
    auto id = t.id(c);
    if (!id || *id == t.other)
      throw Failure{kExitBadInput, fmt::format("the prompt's character {} at offset {} is not in the model's vocabulary{}",
                                               std::isprint(c) ? fmt::format("'{}'", text[i]) : fmt::format("0x{:02x}", c), i,
                                               id ? fmt::format(" (one of the rare bytes that share id {})", t.other) : "")};
    ids.push_back(*id);
  }
  return ids;
}

// A drawn token as text: its byte, or U+FFFD for the id the rarest bytes share.
std::string token_text(const rt::CharTable& t, int64_t id) {
  if (id >= 0 && id < static_cast<int64_t>(t.bytes.size())) return std::string(1, static_cast<char>(t.bytes[static_cast<size_t>(id)]));
  return "\xEF\xBF\xBD";
}

bool gives_cache(const Graph& g) {
  return std::any_of(g.outputs.begin(), g.outputs.end(), [](const Output& o) { return o.name.starts_with("cache."); });
}

// The decode step; the prefill that encodes a window in one call, when the model has a cache it
// fills (attention); and for --benchmark the full forward at batch 1. One program: they share
// the parameters.
CompiledModel compile_lm(const SampleArgs& a) {
  ModelArgs decode = a.model, prefill = a.model, full = a.model;
  decode.decode = true;
  prefill.prefill = true;
  prefill.batch = full.batch = 1;
  std::vector<std::unique_ptr<Graph>> graphs;
  std::vector<std::pair<std::string, const Graph*>> fns;
  graphs.push_back(decode.load());
  fns.emplace_back("decode", graphs.back().get());
  graphs.push_back(prefill.load());
  if (gives_cache(*graphs.back())) fns.emplace_back("prefill", graphs.back().get());
  if (a.benchmark) graphs.push_back(full.load());
  if (a.benchmark) fns.emplace_back("forward", graphs.back().get());
  return compile_jit(fns, {.passes = a.model.passes});
}

void print_rate(const char* what, int64_t n, double seconds) {
  fmt::print(stderr, "{}: {} tokens in {:.3f} s, {:.1f} tokens/s\n", what, n, seconds, static_cast<double>(n) / seconds);
}

// Seconds from the start to each token (the first includes the prompt), and in all.
struct Timing {
  std::vector<double> gaps;
  double total = 0;
  double median() {
    std::sort(gaps.begin(), gaps.end());
    return gaps.empty() ? 0 : gaps[gaps.size() / 2];
  }
};

Timing time_tokens(const std::function<void(const std::function<void(int64_t)>&)>& generate) {
  Timing t;
  auto t0 = Clock::now(), last = t0;
  generate([&](int64_t) {
    auto now = Clock::now();
    t.gaps.push_back(std::chrono::duration<double>(now - last).count());
    last = now;
  });
  t.total = seconds_since(t0);
  return t;
}

void report(const char* what, int64_t n, Timing& t) {
  fmt::print(stderr, "{:<24} {} tokens in {:.3f} s: {:.0f} tokens/s, median {:.3f} ms a token\n", what, n, t.total,
             static_cast<double>(n) / t.total, t.median() * 1e3);
}

// The decode step against re-running the full forward over the last T tokens for every token.
// The median is this shared machine's steady speed; the total includes a GPT's window slides.
void benchmark(rt::Model& m, const std::vector<int64_t>& prompt, const SampleArgs& a) {
  rt::Decoder d(m);
  Timing cached = time_tokens([&](auto emit) { rt::generate(d, prompt, a.tokens, a.sampling, emit); });
  Timing full = time_tokens([&](auto emit) { rt::generate_full(m, prompt, a.tokens, a.sampling, emit); });
  report("decode step (cache):", a.tokens, cached);
  report("full forward per token:", a.tokens, full);
  fmt::print(stderr, "speed-up at context {}: {:.1f}x by the median, {:.1f}x in all\n",
             m.manifest().function("forward").inputs[0].shape[1], full.median() / cached.median(), full.total / cached.total);
}

// The prompt, then each token as it is drawn; the rate on stderr.
void write_text(rt::Decoder& d, const rt::CharTable& table, const std::vector<int64_t>& prompt, const SampleArgs& a) {
  fmt::print("{}", a.prompt);
  std::fflush(stdout);
  auto t0 = Clock::now();
  rt::generate(d, prompt, a.tokens, a.sampling, [&](int64_t id) {
    std::fputs(token_text(table, id).c_str(), stdout);
    std::fflush(stdout);
  });
  fmt::print("\n");
  print_rate("sampled", a.tokens, seconds_since(t0));
}

int run_lm_sample(const SampleArgs& a) {
  check_sampling(a.sampling);
  stag_set_num_threads(a.threads);
  try {
    std::string path = rt::resolve_checkpoint(a.weights, rt::Prefer::best).string();
    auto file = rt::read_safetensors(path);
    rt::CharTable table = vocabulary_of(rt::StateMap(file.metadata.begin(), file.metadata.end()), path);
    std::vector<int64_t> prompt = encode_prompt(table, a.prompt);
    CompiledModel c = compile_lm(a);
    c.model->load_model_params(file.tensors, path);
    rt::Decoder d(*c.model);
    if (d.vocab() != table.vocab)
      throw Failure{kExitBadInput, fmt::format("the checkpoint's vocabulary has {} ids, the model {}", table.vocab, d.vocab())};
    if (a.benchmark) benchmark(*c.model, prompt, a);
    else write_text(d, table, prompt, a);
  } catch (const rt::Error& e) {
    throw Failure{kExitBadInput, e.what()};
  }
  return kExitOk;
}

// Other kinds of model (a GAN's generator) get their own branch here, before the language model's.
// A GAN draws a grid of images, an autoencoder shows its reconstructions, a language model writes.
int run_sample(const SampleArgs& a, GanSampleArgs images) {
  images.weights = a.weights;
  images.seed = a.sampling.seed;
  if (auto gan = find_gan(a.model)) {
    if (gan->kind == fe::GanLookup::Member) refuse_member(a.model, gan->spec);
    return run_gan_sample(a.model, images, gan->spec);
  }
  if (reconstructs(a.model)) return run_reconstruction_sample(a.model, images);
  return run_lm_sample(a);
}

}  // namespace

Command add_sample_command(CLI::App& app) {
  auto a = std::make_shared<SampleArgs>();
  auto images = std::make_shared<GanSampleArgs>();
  auto* cmd = app.add_subcommand(
      "sample",
      "Draw from a trained model. A GAN (a file with a `gan` declaration): a PNG grid of generated images (-o, --count, "
      "--columns, --scale, --seed); an autoencoder: test images above their reconstructions. A language model: write "
      "text with a character language model from a checkpoint, one token at a time through its compiled decode "
      "step (GPT: a key/value cache; RNN/LSTM/GRU: the carried state). Past the context length a GPT slides its "
      "window: it re-encodes the last context/2 tokens from position 0, in one call of the compiled forward that gives "
      "the cache (its positions are learned, so none may pass the context); a recurrent model carries its state on "
      "without limit");
  cmd->add_option("file", a->model.file, "Model (.stag)")->required();
  cmd->add_option("--model", a->model.model, "Which model of a .stag file holding several (default: the first)");
  cmd->add_option("--weights", a->weights, "Checkpoint written by `stag train`, or its run folder (best.safetensors, else last; a language model's holds the vocabulary)")->required();
  cmd->add_option("--prompt", a->prompt, "Text to continue (default: start after a newline)");
  cmd->add_option("--tokens", a->tokens, "Tokens to draw")->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  cmd->add_option("--temperature", a->sampling.temperature, "Softmax temperature; 0: greedy (argmax)");
  cmd->add_option("--top-k", a->sampling.top_k, "Draw from the k most likely tokens only (0: all)");
  cmd->add_option("--top-p", a->sampling.top_p, "Nucleus sampling: the most likely tokens holding probability top_p, in (0, 1]");
  cmd->add_option("--seed", a->sampling.seed, "Seed of the draws (counter-based: the same seed repeats the text)");
  cmd->add_option("--threads", a->threads, "Threads (default 1: a token's work is too small to share)")->check(CLI::Range(1, 1024));
  cmd->add_flag("--benchmark", a->benchmark,
                "Time --tokens tokens by the decode step and by re-running the full forward over the window per token");
  add_pass_options(*cmd, a->model.passes);
  cmd->add_option("-o,--out", images->out, "GANs and autoencoders: the PNG grid to write");
  cmd->add_option("--count", images->count, "GANs and autoencoders: images to draw")->check(CLI::Range(int64_t{1}, int64_t{4096}));
  cmd->add_option("--columns", images->columns, "GANs and autoencoders: images a row")->check(CLI::Range(int64_t{1}, int64_t{256}));
  cmd->add_option("--scale", images->scale, "GANs and autoencoders: pixels a pixel (nearest neighbour)")->check(CLI::Range(1, 16));
  cmd->add_option("--batch", a->model.batch, "Bind the batch dimension (GANs: the batch the generator runs at)");
  return {cmd, [a, images] { return run_sample(*a, *images); }};
}

}  // namespace stag::cli
