// Builds a GAN's sample, discriminator-step and generator-step graphs by copying its two models'
// graphs into each, then differentiating and appending each model's optimizer; and the pair step,
// both steps' graphs copied into one.

#include "compiler/train/gan.h"

#include <fmt/format.h>

#include <map>
#include <stdexcept>
#include <unordered_map>

#include "compiler/train/train_step.h"
#include "ir/builder.h"
#include "ir/verifier.h"

namespace stag {

namespace {

struct GanError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Copies graphs into one destination graph. A model copied twice shares its parameters, and
/// its running statistics flow from one copy into the next, as two calls of a PyTorch module do.
struct Inliner {
  Graph& dst;
  /// Each updated parameter's latest value; become the graph's updates at the end.
  std::map<std::string, Value*> latest;

  struct Copy {
    const Graph* src;
    std::string prefix;           ///< of parameter names
    bool trainable;               ///< false: the copy's parameters get no gradient
    bool keep_updates;            ///< false: running statistics are read, not updated
    std::map<std::string, Value*> inputs;
    /// Record: remember the copy's random draws; Reuse: a draw equal to a remembered one (same
    /// op, operands and attributes) is that one, as the steps run apart draw the same numbers.
    enum { Own, Record, Reuse } draws = Own;
  };

  /// Random draws of a Record copy, by their key, in order; a Reuse copy takes each once.
  std::map<std::string, std::vector<Node*>> recorded;

  Value* parameter(const Node& n, const Copy& c) {
    std::string name = c.prefix + n.result()->name;
    size_t t = static_cast<size_t>(n.info().attr_index("trainable"));
    bool trainable = std::get<bool>(n.attrs[t]) && c.trainable;
    // A parameter one copy trains and another only reads is trainable.
    if (Value* v = dst.find(name); v && trainable) v->def->attrs[t] = true;
    if (auto it = latest.find(name); it != latest.end()) return it->second;
    if (Value* v = dst.find(name)) return v;
    std::vector<Attr> attrs = n.attrs;
    attrs[t] = trainable;
    return dst.append(Op::parameter, {}, std::move(attrs), {n.result()->type}, {name}, n.loc)->result();
  }

  Value* input(const Node& n, const Copy& c) {
    auto it = c.inputs.find(n.result()->name);
    if (it == c.inputs.end())
      throw GanError(fmt::format("model '{}' has an input '{}' the GAN cannot feed: a {} takes only {}", c.src->name,
                                 n.result()->name, c.prefix == "generator." ? "generator" : "discriminator",
                                 c.prefix == "generator." ? "the noise" : "the images"));
    if (it->second->type != n.result()->type)
      throw GanError(fmt::format("model '{}' takes '{}' as {}, but the GAN gives it {}", c.src->name, n.result()->name,
                                 to_string(n.result()->type), to_string(it->second->type)));
    return it->second;
  }

  static std::string draw_key(const Node& n, const std::vector<Value*>& ops) {
    std::string key = fmt::format("{}", static_cast<int>(n.op));
    for (const Value* v : ops) key += fmt::format(" {}", static_cast<const void*>(v));
    for (const Attr& a : n.attrs) key += " " + to_string(a);
    for (const auto& r : n.results) key += " " + to_string(r->type);
    return key;
  }

  /// The remembered draw `n` repeats, or null.
  Node* shared_draw(const Node& n, const std::vector<Value*>& ops, const Copy& c) {
    if (c.draws != Copy::Reuse || !n.info().has(Stochastic) || n.body) return nullptr;
    auto it = recorded.find(draw_key(n, ops));
    if (it == recorded.end() || it->second.empty()) return nullptr;
    Node* d = it->second.front();
    it->second.erase(it->second.begin());
    return d;
  }

  Node* node(const Node& n, const std::unordered_map<const Value*, Value*>& map, const Copy& c) {
    std::vector<Value*> ops;
    for (Value* v : n.operands) ops.push_back(map.at(v));
    if (Node* d = shared_draw(n, ops, c)) return d;
    std::vector<Type> types;
    std::vector<std::string> names;
    for (const auto& r : n.results) {
      types.push_back(r->type);
      names.push_back(dst.fresh_name());
    }
    std::string key = c.draws == Copy::Record && n.info().has(Stochastic) && !n.body ? draw_key(n, ops) : "";
    Node* copy = dst.append(n.op, std::move(ops), n.attrs, types, names, n.loc);
    copy->body = n.body;
    if (!key.empty()) recorded[key].push_back(copy);
    return copy;
  }

  /// Copies `c.src`; returns its outputs by name.
  std::map<std::string, Value*> copy(const Copy& c) {
    std::unordered_map<const Value*, Value*> map;
    for (const auto& n : c.src->nodes) {
      if (n->op == Op::parameter) map[n->result()] = parameter(*n, c);
      else if (n->op == Op::input) map[n->result()] = input(*n, c);
      else {
        Node* copy = node(*n, map, c);
        for (size_t i = 0; i < n->results.size(); ++i) map[n->result(i)] = copy->result(i);
      }
    }
    if (c.keep_updates)
      for (const auto& u : c.src->updates) latest[c.prefix + u.target->name] = map.at(u.value);
    std::map<std::string, Value*> outs;
    for (const auto& o : c.src->outputs) outs[o.name] = map.at(o.value);
    return outs;
  }

  void finish() {
    for (const auto& [name, v] : latest) dst.updates.push_back({dst.find(name), v, {}});
  }
};

/// What both models look like from outside: the noise, the images, one logit an image.
struct Pair {
  const Graph& gen;
  const Graph& disc;
  std::string noise_name, image_name;  ///< the generator's input and first output
  Type noise, image;
  std::string disc_input;
  int64_t batch = 0;
};

const Node* only_input(const Graph& g, const std::string& role) {
  const Node* found = nullptr;
  for (const auto& n : g.nodes) {
    if (n->op != Op::input || n->result()->name == "step") continue;
    if (found) throw GanError(fmt::format("the {} '{}' has inputs '{}' and '{}'; a {} takes one", role, g.name,
                                          found->result()->name, n->result()->name, role));
    found = n.get();
  }
  if (!found) throw GanError(fmt::format("the {} '{}' has no input", role, g.name));
  return found;
}

Pair check_pair(const Graph& gen, const Graph& disc) {
  Pair p{gen, disc, {}, {}, {}, {}, {}, 0};
  const Node* z = only_input(gen, "generator");
  p.noise_name = z->result()->name;
  p.noise = z->result()->type;
  if (gen.outputs.empty()) throw GanError(fmt::format("the generator '{}' has no output", gen.name));
  p.image_name = gen.outputs[0].name;
  p.image = gen.outputs[0].value->type;
  const Node* x = only_input(disc, "discriminator");
  p.disc_input = x->result()->name;
  if (x->result()->type != p.image)
    throw GanError(fmt::format("the generator '{}' makes {} (output '{}'), but the discriminator '{}' takes {} (input '{}')",
                               gen.name, to_string(p.image), p.image_name, disc.name, to_string(x->result()->type),
                               p.disc_input));
  if (disc.outputs.empty()) throw GanError(fmt::format("the discriminator '{}' has no output", disc.name));
  p.batch = p.image.dims.empty() ? 0 : p.image.dims[0];
  if (p.noise.dims.empty() || p.noise.dims[0] != p.batch || p.noise.dtype != DType::f32)
    throw GanError(fmt::format("the generator's noise '{}' is {}: it must be f32 with the batch ({}) first", p.noise_name,
                               to_string(p.noise), p.batch));
  if (checked_numel(disc.outputs[0].value->type.dims) != p.batch)
    throw GanError(fmt::format("the discriminator's first output '{}' is {}: it must hold one logit an image ({})",
                               disc.outputs[0].name, to_string(disc.outputs[0].value->type), p.batch));
  return p;
}

/// One step's graph under construction: the builder, the inliner and the two models.
struct StepBuilder {
  const Pair& pair;
  const GanOptions& opt;
  std::unique_ptr<Graph> g;
  Builder b;
  Inliner in;
  Value* key = nullptr;

  StepBuilder(const Pair& p, const GanOptions& o, const std::string& name)
      : pair(p), opt(o), g(std::make_unique<Graph>(name)), b(*g), in{*g, {}, {}} {}

  Value* noise() {
    key = b.input("key", {DType::i64, {}});
    return b.create(Op::random_normal, {key}, {}, {pair.noise})[0];
  }
  std::map<std::string, Value*> inputs(const std::string& name, Value* v) {
    std::map<std::string, Value*> m{{name, v}};
    if (key) m["step"] = key;  // dropout inside either model draws from the step's key
    return m;
  }
  Value* generate(Value* z, bool trainable, bool updates) {
    auto outs = in.copy({&pair.gen, "generator.", trainable, updates, inputs(pair.noise_name, z)});
    return outs.at(pair.image_name);
  }
  Value* discriminate(Value* x, bool trainable) {
    auto outs = in.copy({&pair.disc, "discriminator.", trainable, true, inputs(pair.disc_input, x)});
    return b.reshape({outs.at(pair.disc.outputs[0].name)}, {{"shape", Ints{pair.batch}}});
  }
  Value* full(double v) { return b.broadcast_to({b.scalar(v)}, {{"shape", Ints{pair.batch}}}); }
  Value* bce(Value* logit, double label) { return b.bce_with_logits({logit, full(label)}); }
  Value* half_mse(Value* logit, double target) { return b.mul({b.scalar(0.5), b.mse({logit, full(target)})}); }
  Value* hinge(Value* logit, double sign) { return b.mean({b.relu({b.sub({b.scalar(1), b.mul({b.scalar(sign), logit})})})}); }
  Value* fraction(Value* bools) { return b.mean({b.cast({bools}, {{"to", DType::f32}})}); }
};

Value* discriminator_loss(StepBuilder& s, Value* real, Value* fake) {
  Builder& b = s.b;
  if (s.opt.loss == "least_squares") return b.add({s.half_mse(real, 1), s.half_mse(fake, 0)});
  if (s.opt.loss == "hinge") return b.add({s.hinge(real, 1), s.hinge(fake, -1)});
  return b.add({s.bce(real, 1), s.bce(fake, 0)});
}

Value* generator_loss(StepBuilder& s, Value* fake) {
  Builder& b = s.b;
  if (s.opt.loss == "least_squares") return s.half_mse(fake, 1);
  if (s.opt.loss == "hinge") return b.neg({b.mean({fake})});
  if (s.opt.loss == "minimax") return b.neg({s.bce(fake, 0)});
  return s.bce(fake, 1);
}

/// A step and, split, its update (else null).
using Step = std::pair<std::unique_ptr<Graph>, std::unique_ptr<Graph>>;

Step finish_step(StepBuilder& s, const OptimizerConfig& optimizer, const char* role, Diagnostics& diags) {
  s.in.finish();
  s.g->attrs = s.pair.gen.attrs;
  Step step = s.opt.split ? build_split_train_step(*s.g, optimizer, diags) : Step{build_train_step(*s.g, optimizer, diags), nullptr};
  if (!step.first) throw GanError(fmt::format("the {} step could not be built", role));
  return step;
}

Step d_step(const Pair& p, const GanOptions& o, Diagnostics& diags) {
  StepBuilder s(p, o, o.name + ".d_step");
  Builder& b = s.b;
  Value* x01 = b.input("x", p.image);
  Value* z = s.noise();
  // G's running statistics move once an iteration: in the generator's step.
  Value* fake = s.generate(z, false, false);
  Value* x = b.add({b.mul({x01, b.scalar(o.real_high - o.real_low)}), b.scalar(o.real_low)});
  Value* real = s.discriminate(x, true);
  Value* fake_logit = s.discriminate(fake, true);
  b.output("loss", discriminator_loss(s, real, fake_logit));
  b.output("d_real_accuracy", s.fraction(b.gt({real, s.full(0)})));
  b.output("d_fake_accuracy", s.fraction(b.le({fake_logit, s.full(0)})));
  b.output("d_real", b.mean({b.sigmoid({real})}));
  b.output("d_fake", b.mean({b.sigmoid({fake_logit})}));
  return finish_step(s, o.discriminator_optimizer, "discriminator", diags);
}

Step g_step(const Pair& p, const GanOptions& o, Diagnostics& diags) {
  StepBuilder s(p, o, o.name + ".g_step");
  Value* fake = s.generate(s.noise(), true, true);
  s.b.output("loss", generator_loss(s, s.discriminate(fake, false)));
  return finish_step(s, o.generator_optimizer, "generator", diags);
}

std::unique_ptr<Graph> sample(const Pair& p, const GanOptions& o) {
  StepBuilder s(p, o, o.name);
  Value* z = s.b.input("z", p.noise);
  s.key = s.b.scalar(0, DType::i64);
  s.b.output("image", s.generate(z, true, false));
  s.g->attrs = p.gen.attrs;
  return std::move(s.g);
}

/// The generator step's updates take effect only when the discriminator step's did: a pair whose
/// D half was not finite changes nothing the D step would not have (the trainer stops there).
void gate_generator_updates(Builder& b, Inliner& in, const std::map<std::string, Value*>& after_d, Value* d_flags) {
  Value* ok = b.eq({b.max({d_flags}), b.scalar(0)});
  for (auto& [name, v] : in.latest) {
    auto it = after_d.find(name);
    Value* before = it != after_d.end() ? it->second : in.dst.find(name);
    if (v != before) v = b.select({ok, v, before});
  }
}

}  // namespace

std::unique_ptr<Graph> build_pair_step(const Graph& d_step, const Graph& g_step) {
  auto g = std::make_unique<Graph>(d_step.name.substr(0, d_step.name.rfind('.')) + ".pair_step");
  Builder b(*g);
  Inliner in{*g, {}, {}};
  std::map<std::string, Value*> d_inputs, g_inputs;
  for (const auto& n : d_step.nodes)
    if (n->op == Op::input) d_inputs[n->result()->name] = b.input(n->result()->name, n->result()->type);
  g_inputs["key"] = d_inputs.at("key");
  g_inputs["lr"] = b.input("lr_g", d_inputs.at("lr")->type);
  auto d_out = in.copy({&d_step, "", true, true, d_inputs, Inliner::Copy::Record});
  auto after_d = in.latest;
  auto g_out = in.copy({&g_step, "", true, true, g_inputs, Inliner::Copy::Reuse});
  if (d_out.count("nonfinite")) gate_generator_updates(b, in, after_d, d_out.at("nonfinite"));
  for (const auto& o : d_step.outputs) b.output(o.name, d_out.at(o.name));
  for (const auto& o : g_step.outputs) b.output(o.name + "_g", g_out.at(o.name));
  in.finish();
  g->attrs = d_step.attrs;
  return g;
}

std::optional<GanGraphs> build_gan(const Graph& generator, const Graph& discriminator, const GanOptions& options,
                                   const Loc& loc, Diagnostics& diags) {
  try {
    Pair p = check_pair(generator, discriminator);
    GanOptions o = options;
    o.generator_optimizer.step_state = "optim.generator.step";
    o.discriminator_optimizer.step_state = "optim.discriminator.step";
    auto [d, d_update] = d_step(p, o, diags);
    auto [g, g_update] = g_step(p, o, diags);
    GanGraphs out{sample(p, o), std::move(d), std::move(g), nullptr, std::move(d_update), std::move(g_update)};
    if (!verify(*out.sample, diags)) return std::nullopt;
    return out;
  } catch (const GanError& e) {
    diags.error(loc, fmt::format("gan '{}': {}", options.name, e.what()));
    return std::nullopt;
  } catch (const BuildError& e) {
    diags.error(loc, fmt::format("gan '{}': {}", options.name, e.what()));
    return std::nullopt;
  }
}

}  // namespace stag
