#include "ir/builder.h"

#include <fmt/format.h>

#include <algorithm>

namespace stag {

Builder::Result Builder::try_create(Op op, const std::vector<Value*>& operands, const NamedAttrs& attrs,
                                    const std::vector<Type>& declared,
                                    const std::vector<std::string>& names, std::shared_ptr<Graph> body) {
  const OpInfo& info = op_info(op);
  if (auto err = check_arity(info, operands.size()); !err.empty())
    return {{}, fmt::format("{}: {}", info.name, err)};
  std::vector<Attr> resolved;
  if (auto err = resolve_attrs(info, attrs, resolved); !err.empty())
    return {{}, fmt::format("{}: {}", info.name, err)};
  std::vector<Type> operand_types;
  for (Value* v : operands) operand_types.push_back(v->type);
  for (const Type& t : declared)
    if (auto e = type_error(t); !e.empty()) return {{}, fmt::format("{}: {}", info.name, e)};
  std::vector<Type> results;
  if (auto err = infer_types(info, operand_types, resolved, declared, results, body.get()); !err.empty())
    return {{}, err};
  if (!info.has(Source) && !declared.empty() && declared != results)
    return {{}, fmt::format("{}: declared result type {} but the op gives {}", info.name,
                            to_string(declared[0]), to_string(results[0]))};
  std::vector<std::string> result_names = names;
  if (result_names.empty())
    for (size_t i = 0; i < results.size(); ++i) result_names.push_back(g_.fresh_name());
  if (result_names.size() != results.size())
    return {{}, fmt::format("{}: gives {} results, {} names given", info.name, results.size(),
                            result_names.size())};
  for (size_t i = 0; i < result_names.size(); ++i) {
    const std::string& name = result_names[i];
    bool repeated = std::find(result_names.begin(), result_names.begin() + i, name) !=
                    result_names.begin() + i;
    if (repeated || g_.has_name(name))
      return {{}, fmt::format("the name '%{}' is already defined", name)};
  }
  Node* node = g_.append(op, operands, std::move(resolved), results, result_names, loc_);
  node->body = std::move(body);
  Result r;
  for (auto& v : node->results) r.values.push_back(v.get());
  return r;
}

std::vector<Value*> Builder::create(Op op, const std::vector<Value*>& operands, const NamedAttrs& attrs,
                                    const std::vector<Type>& declared,
                                    const std::vector<std::string>& names, std::shared_ptr<Graph> body) {
  Result r = try_create(op, operands, attrs, declared, names, std::move(body));
  if (!r.error.empty()) throw BuildError(r.error);
  return r.values;
}

Value* Builder::one(Op op, const std::vector<Value*>& operands, const NamedAttrs& attrs) {
  // Count the results before creating the node, so that the throw leaves the graph unchanged.
  const OpInfo& info = op_info(op);
  std::vector<Attr> resolved;
  std::vector<Type> types, results;
  for (Value* v : operands) types.push_back(v->type);
  if (check_arity(info, operands.size()).empty() && resolve_attrs(info, attrs, resolved).empty() &&
      infer_types(info, types, resolved, {}, results).empty() && results.size() != 1)
    throw BuildError(fmt::format("{} gives {} results; call Builder::create", info.name, results.size()));
  return create(op, operands, attrs)[0];
}

Value* Builder::input(const std::string& name, const Type& type) {
  return create(Op::input, {}, {}, {type}, {name})[0];
}

Value* Builder::parameter(const std::string& name, const Type& type, const NamedAttrs& attrs) {
  return create(Op::parameter, {}, attrs, {type}, {name})[0];
}

Value* Builder::constant(const Type& type, Floats value) {
  return create(Op::constant, {}, {{"value", std::move(value)}}, {type})[0];
}

void Builder::output(const std::string& name, Value* v) {
  for (const auto& o : g_.outputs)
    if (o.name == name) throw BuildError(fmt::format("output '{}' is already defined", name));
  g_.outputs.push_back({name, v, loc_});
}

void Builder::update(Value* param, Value* v) {
  if (!param->def || param->def->op != Op::parameter)
    throw BuildError(fmt::format("update target %{} is not a parameter", param->name));
  if (param->type != v->type)
    throw BuildError(fmt::format("update of %{} ({}) with %{} ({}): types differ", param->name,
                                 to_string(param->type), v->name, to_string(v->type)));
  for (const auto& u : g_.updates)
    if (u.target == param) throw BuildError(fmt::format("%{} is updated twice", param->name));
  g_.updates.push_back({param, v, loc_});
}

}  // namespace stag
