// Every catalog model compiles in inference and training mode, verifies, and its printed IR
// reads back to the same bytes; training mode wires batch norm and dropout as documented.

#include <catch2/catch.hpp>

#include <set>

#include "helpers.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"

using namespace stag;
using namespace stag::test;

namespace {

// Each (file, model) pair of the catalog; dcgan holds two models.
std::vector<std::pair<std::filesystem::path, std::string>> catalog_models() {
  std::vector<std::pair<std::filesystem::path, std::string>> out;
  for (const auto& p : catalog()) {
    out.emplace_back(p, "");
    if (p.stem() == "dcgan") out.emplace_back(p, "discriminator");
  }
  return out;
}

void check_round_trip(const Graph& g, const std::string& what) {
  std::string text = print(g);
  Diagnostics diags;
  auto back = parse_ir(text, what + ".ir", diags);
  INFO(diags.render());
  REQUIRE(back);
  REQUIRE(verify(*back, diags));
  CHECK(print(*back) == text);
}

}  // namespace

TEST_CASE("the catalog holds the models the issue lists", "[catalog]") {
  std::set<std::string> names;
  for (const auto& p : catalog()) names.insert(p.stem().string());
  for (const char* want : {"mlp", "lenet5", "vgg", "resnet", "alexnet", "char_rnn", "lstm_lm", "gru_lm", "gpt", "bert",
                           "vit_tiny", "dcgan", "autoencoder"})
    CHECK(names.count(want));
}

TEST_CASE("every catalog model starts with a comment saying what it is and what it trains on", "[catalog]") {
  for (const auto& p : catalog()) {
    INFO(p);
    std::string text = read_file(p);
    CHECK(text.rfind("# ", 0) == 0);
    CHECK(text.find("data = \"") != std::string::npos);
  }
}

TEST_CASE("every catalog model compiles, verifies and round-trips in both modes", "[catalog]") {
  for (const auto& [path, model] : catalog_models()) {
    for (bool training : {false, true}) {
      INFO(path << " model=" << model << " training=" << training);
      LoadOptions opts;
      opts.training = training;
      opts.model = model;
      auto c = compile(read_file(path), opts, path.string());
      INFO(c.errors);
      REQUIRE(c.graph);
      CHECK(c.errors.empty());
      Diagnostics diags;
      CHECK(verify(*c.graph, diags));
      check_round_trip(*c.graph, path.stem().string());
      CHECK(std::get<bool>(*c.graph->attr("training")) == training);
      CHECK(c.graph->attr("train.optimizer"));
      CHECK(!c.graph->outputs.empty());
      // Parameters are named, unique, and every node has a source location.
      std::set<std::string> params;
      for (const auto& n : c.graph->nodes) {
        if (n->op == Op::parameter) CHECK(params.insert(n->result()->name).second);
        if (n->op != Op::input) CHECK(n->loc.known());
      }
      CHECK(!params.empty());
    }
  }
}

TEST_CASE("training mode: batch norm uses batch statistics and updates running ones", "[catalog][training]") {
  auto path = std::filesystem::path(STAG_SOURCE_DIR) / "models/resnet.stag";
  LoadOptions eval_opts, train_opts;
  train_opts.training = true;
  auto ev = compile(read_file(path), eval_opts);
  auto tr = compile(read_file(path), train_opts);
  REQUIRE(ev.graph);
  REQUIRE(tr.graph);
  size_t bns = count_op(*tr.graph, Op::batch_norm);
  REQUIRE(bns == 15);
  CHECK(ev.graph->updates.empty());
  CHECK(tr.graph->updates.size() == 2 * bns);
  for (const auto& n : ev.graph->nodes)
    if (n->op == Op::batch_norm) CHECK_FALSE(n->b("training"));
  for (const auto& n : tr.graph->nodes)
    if (n->op == Op::batch_norm) CHECK(n->b("training"));
  std::set<std::string> targets;
  for (const auto& u : tr.graph->updates) {
    targets.insert(u.target->name);
    CHECK_FALSE(std::get<bool>(u.target->def->attr("trainable")));
  }
  CHECK(targets.count("layer2.0.downsample.1.running_mean"));
  CHECK(targets.count("layer2.0.downsample.1.running_var"));
}

TEST_CASE("training mode: dropout is keyed by %step with a distinct seed per node", "[catalog][training]") {
  for (const char* name : {"mlp", "alexnet", "gpt", "gru_lm", "bert"}) {
    INFO(name);
    auto path = std::filesystem::path(STAG_SOURCE_DIR) / "models" / (std::string(name) + ".stag");
    LoadOptions opts;
    opts.training = true;
    auto tr = compile(read_file(path), opts);
    auto ev = compile(read_file(path));
    REQUIRE(tr.graph);
    REQUIRE(ev.graph);
    Value* step = tr.graph->find("step");
    REQUIRE(step);
    CHECK(step->type == Type{DType::i64, {}});
    CHECK(ev.graph->find("step") == nullptr);
    std::set<int64_t> seeds;
    size_t drops = 0;
    for (const auto& n : tr.graph->nodes)
      if (n->op == Op::dropout) {
        ++drops;
        CHECK(n->b("training"));
        REQUIRE(n->operands.size() == 2);
        CHECK(n->operands[1] == step);
        CHECK(seeds.insert(n->i("seed")).second);
      } else if (n->op == Op::attention && n->f("dropout") > 0) {  // attention's dropout draws from the same streams
        REQUIRE(n->operands.size() == 4);
        CHECK(n->operands[3] == step);
        CHECK(seeds.insert(n->i("seed")).second);
      }
    CHECK(drops > 0);
    for (const auto& n : ev.graph->nodes)
      if (n->op == Op::dropout) {
        CHECK_FALSE(n->b("training"));
        CHECK(n->operands.size() == 1);
      }
  }
}

TEST_CASE("the batch option rebinds B in every input", "[catalog]") {
  LoadOptions opts;
  opts.batch = 7;
  auto c = compile(read_file(std::filesystem::path(STAG_SOURCE_DIR) / "models/lenet5.stag"), opts);
  REQUIRE(c.graph);
  CHECK(c.graph->find("x")->type == Type{DType::f32, {7, 1, 28, 28}});
  CHECK(c.graph->find("y")->type == Type{DType::i64, {7}});
  CHECK(std::get<int64_t>(*c.graph->attr("batch")) == 7);
}
