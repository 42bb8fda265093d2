// The ONNX importer (libprotobuf 3.21) and SentencePiece (its own protobuf-lite 3.14) in one
// process: before SentencePiece moved into its dlopen'ed module, training a tokenizer after
// linking the importer aborted on protobuf's version check.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "frontend/onnx/onnx.h"
#include "frontend/onnx/proto.h"
#include "runtime/data/subword.h"

using namespace stag;

namespace {

// x [2, 3] -> Relu -> y, through the protobuf classes and the importer.
bool relu_imports() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("g");
  for (auto* v : {g->add_input(), g->add_output()}) {
    v->set_name(v == &g->input(0) ? "x" : "y");
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : {2, 3}) t->mutable_shape()->add_dim()->set_dim_value(d);
  }
  auto* n = g->add_node();
  n->set_op_type("Relu");
  n->add_input("x");
  n->add_output("y");
  Diagnostics diags;
  auto graph = onnx_import::import("t.onnx", m.SerializeAsString(), {}, diags);
  INFO(diags.render());
  return graph != nullptr;
}

std::vector<std::string> corpus() {
  const char* words[] = {"river", "mountain", "forest", "meadow", "glacier", "canyon", "valley", "island"};
  std::vector<std::string> out;
  for (int i = 0; i < 300; ++i) out.push_back(fmt::format("the {} near {} number {}", words[i % 8], words[(i * 5) % 8], i));
  return out;
}

}  // namespace

TEST_CASE("ONNX import and a SentencePiece tokenizer work in one process") {
  REQUIRE(relu_imports());
  auto texts = corpus();
  std::vector<int64_t> indices(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) indices[i] = static_cast<int64_t>(i);
  auto table = rt::SubwordTable::train(texts, indices, 50, 5);
  CHECK(table.vocab() == 50);
  std::string s = "the glacier near canyon number 17";
  CHECK(table.decode(table.pieces(s)) == s);
  auto back = rt::SubwordTable::from_proto(table.proto());
  CHECK(back.pieces(s) == table.pieces(s));
  CHECK(relu_imports());  // and the importer's protobuf still works after SentencePiece's ran
}
