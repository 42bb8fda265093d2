#pragma once
/// The kernel IR: a graph lowered to loop nests over flat buffers, with explicit index
/// arithmetic, scalar expressions and accumulators. Codegen turns it into LLVM IR.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/attr.h"
#include "ir/types.h"

namespace stag::kir {

/// Scalar operations. Integer ops are 64-bit and wrap; shifts are logical (for the
/// counter-based generator); compares give bool; float min and max propagate NaN.
/// round_bf16: an f32 rounded to the nearest bf16 (ties to even), still an f32.
enum class Un : uint8_t { neg, abs, exp, log, sqrt, tanh, erf, floor, cos, not_, round_bf16 };
/// bf16_pair: two f32s rounded to bf16 as one i32, the first in the low half (VDPBF16PS's
/// operand: k and k + 1 of one lane).
enum class Bin : uint8_t { add, sub, mul, div, rem, min, max, pow, lt, le, gt, ge, eq, ne, and_, or_, xor_, shl, lshr, bf16_pair };

std::string_view name(Un op);
std::string_view name(Bin op);

struct Expr;
using E = std::shared_ptr<const Expr>;

enum class EK : uint8_t { Int, Float, Var, Load, Unary, Binary, Select, Cast };

/// A scalar expression. Trees may share subexpressions (a DAG); codegen emits each shared
/// node once per statement.
struct Expr {
  EK kind;
  DType type;
  int64_t i = 0;     ///< Int
  double f = 0;      ///< Float
  int var = -1;      ///< Var: index into Kernel::vars
  int buffer = -1;   ///< Load: index into Program::buffers
  uint8_t op = 0;    ///< Un or Bin
  std::vector<E> args;  ///< Load: [index]; Unary: [x]; Binary: [a, b]; Select: [c, a, b]; Cast: [x]
};

// Expression constructors; they fold constant integer arithmetic so that index expressions
// stay readable (`i0 * 512 + i1`, not `i0 * 512 * 1 + 0 + i1`). The arithmetic and compare
// shorthands below are bin() with that op, for index maths and float values alike.
E int_(int64_t v);
E float_(double v, DType t);
E var(int index, DType t);
E load(int buffer, DType t, E index);
E un(Un op, E x);
E bin(Bin op, E a, E b);
E select(E c, E a, E b);
E cast(E x, DType to);
E add(E a, E b);
E sub(E a, E b);
E mul(E a, E b);
E div(E a, E b);
E lt(E a, E b);
E gt(E a, E b);
E ge(E a, E b);
E and_(E a, E b);

enum class SK : uint8_t { For, Store, Assign, Check };

/// A statement: a counted loop, a store to a buffer, an assignment to a scalar variable, or a
/// data check (an index in range) that reports failure `code` with `value` to the runtime.
struct Stmt {
  SK kind;
  int var = -1;          ///< For: the induction variable; Assign: the variable
  int64_t begin = 0, end = 0;  ///< For: [begin, end)
  std::vector<Stmt> body;      ///< For
  int buffer = -1;             ///< Store
  E index, value;              ///< Store: buffer[index] = value; Assign: var = value; Check: index = condition, value = reported
  int code = 0;                ///< Check
  /// For: short, independent iterations with strided accesses (the windows of a pooling
  /// row): codegen has LLVM vectorize the loop as it is, which it would otherwise unroll
  /// away or find too short. Only where vectorizing is legal, or LLVM warns.
  bool vectorize = false;
  /// For: left to scalar code by the loop vectorizer. A loop reading or writing every s-th
  /// element of a short row (a phase plane's columns) is otherwise vectorized with masked
  /// gathers or scatters, which AMD's Zen cores run an element at a time.
  bool scalar = false;
};

Stmt for_(int var, int64_t begin, int64_t end, std::vector<Stmt> body);
Stmt vectorized_for(int var, int64_t begin, int64_t end, std::vector<Stmt> body);
Stmt scalar_for(int var, int64_t begin, int64_t end, std::vector<Stmt> body);
Stmt store(int buffer, E index, E value);
Stmt assign(int var, E value);
Stmt check(E condition, E value, int code);

struct Var {
  std::string name;
  DType type;
};

/// A matrix product C = op(A) op(B) over a batch, computed by codegen's register-tiled
/// micro-kernel (compiler/codegen/gemm.cpp) rather than by loops. Operands are row major; a
/// transposed operand is read in the other order, never copied. Two explicit modes say how
/// B is read (`b_read`) and how the kernel's p splits the work (`split`).
struct Gemm {
  /// How B's elements are found.
  enum class BRead : uint8_t {
    matrix,   ///< a (row-major or transposed) matrix at each batch's offset
    patches,  ///< an image's patches, gathered while packing (`im2col`)
    lines,    ///< lines starting where `b_lines` says
  };
  /// What the kernel's p counts.
  enum class Split : uint8_t {
    rows,        ///< rows of C flattened over the batch, (batch, M): a call computes rows [lo, hi)
    columns,     ///< blocks of `block` columns of every row: for few rows, where splitting rows
                 ///< would make every thread pack (or stream) all of B
    row_blocks,  ///< blocks of `block` rows (a batch): each p computes its rows, then runs the
                 ///< kernel's body for that p while they are in cache (a product consumed at once)
  };
  int a = -1, b = -1, c = -1;  ///< buffers
  int64_t M = 0, N = 0, K = 0;
  bool ta = false, tb = false;
  /// Element offset of each batch's A and B (broadcast batch dimensions repeat offsets);
  /// empty for a single product. C's batches are contiguous.
  std::vector<int64_t> a_offsets, b_offsets;
  /// Convolution as a product (implicit im2col): B is an image [C, H, W] at each batch's
  /// offset, and element (k, j) is pixel (c, oh*s - p + kh*d, ow*s - p + kw*d) for
  /// k = (c, kh, kw) and j = (oh, ow), zero in the padding. Nothing is materialized: the
  /// packing of B's panels gathers the pixels.
  struct Im2col {
    int64_t C, H, W, KH, KW, OW;
    int64_t stride[2], padding[2], dilation[2];
  };
  BRead b_read = BRead::matrix;
  Im2col im2col{};  ///< BRead::patches
  /// BRead::lines: where each line of B starts within its batch: row k of a row-major B,
  /// column j of a transposed one, at element b_lines[k or j] (otherwise lines are N or K
  /// elements apart).
  /// A stride-1 convolution reads its image through them: the patch row of tap (c, kh, kw)
  /// is the image itself from that tap on, on a grid as wide as the (padded) image, so no
  /// pixel is gathered (the grid's columns past the output width are computed and dropped).
  std::vector<int64_t> b_lines;
  Split split = Split::rows;
  int64_t block = 0;  ///< Split::columns, Split::row_blocks: columns or rows a p
  /// What the products multiply. bf16: A's and B's elements rounded to bf16 (to nearest, ties
  /// to even) as they are packed, products exact and sums in f32: PyTorch's CPU autocast.
  enum class Precision : uint8_t { f32, bf16 };
  Precision precision = Precision::f32;
  /// bf16 only, on hosts with VDPBF16PS: B holds bf16 pairs (i32 elements, Bin::bf16_pair),
  /// its row q being k = 2q and 2q + 1 (b_lines and b_offsets count pairs); A is f32 with its
  /// columns in that order, K even. B's rows are then read in place like an f32 B's.
  /// With tb (B's column j a line, contiguous in k): element line(j) + k holds k and k + 1 of
  /// that column (sliding pairs: every element pairs a pixel with the next), read at even k;
  /// K need not be even (A's pair past K is zero).
  bool pairs = false;
  /// f32 only, A row-major and B transposed (both contiguous in k): each element of C a dot
  /// product whose vector lanes run over k (a tile of kDotRows rows of A times a few of B's
  /// lines, summed across the lanes at the end of each slice of K), nothing packed. For deep
  /// products of few rows and columns (a weight gradient: K is the pixels), where the register
  /// tile's packing would transpose both operands.
  bool dot = false;
  /// dot only: C is one M x N product, the sum over the batches of each batch's A times its B
  /// (a weight gradient image by image, the images' planes read where they lie), not one C a
  /// batch. A call's rows [lo, hi) are rows of that C.
  bool sum_batches = false;
  /// Causal attention's products skip the blocks its mask zeroes (row i, column j and depth k
  /// counted within a batch): a tile of rows [i0, i1) computes
  enum class Causal : uint8_t {
    none,
    columns,  ///< columns j < i1 only: C(i, j) is read for j <= i alone (C past them is not written)
    k_below,  ///< depths k < i1 only: A(i, k) is zero for k > i
    k_above,  ///< depths k >= i0 only: A(i, k) is zero for k < i
  };
  Causal causal = Causal::none;
  void read_patches(const Im2col& c) { b_read = BRead::patches, im2col = c; }
  void read_lines(std::vector<int64_t> lines) { b_read = BRead::lines, b_lines = std::move(lines); }
  void split_by(Split s, int64_t size) { split = s, block = size; }
  int64_t batches() const { return a_offsets.empty() ? 1 : static_cast<int64_t>(a_offsets.size()); }
  /// C's rows: M a batch, or M (sum_batches).
  int64_t c_rows() const { return sum_batches ? M : batches() * M; }
};

/// Rows of A in a dot product's register tile (kir::Gemm::dot): a thread's share of rows is a
/// whole number of them where it can be.
constexpr int64_t kDotRows = 4;

/// Products over more batches than this keep the loop form (their offset tables would bloat
/// the code).
constexpr int64_t kMaxGemmBatches = 1 << 16;

/// A split point of data-parallel training (compiler/lower/buckets.h): the runtime's
/// stag_exchange starts the all-reduce of a bucket of gradients (in `gradients`, once the last
/// of them is computed) or waits for it (in `update`, before they are first read), over the
/// f32 `buffers` in this order. It runs on the calling thread, between kernels.
struct Exchange {
  enum class Op : uint8_t { start, wait };
  Op op = Op::start;
  int bucket = 0;
  std::vector<int> buffers;
};

/// One kernel: `for p in [lo, hi): body`, where p is variable 0 and the runtime may split
/// [0, extent) across threads (grain: the smallest chunk worth a thread).
struct Kernel {
  std::string name;
  std::string origin;  ///< the graph node it came from, for the text form and the profiler
  std::string strategy;  ///< the strategy its op's lowering chose, when it had a choice (conv_plan.h)
  std::vector<std::string> nodes;  ///< every graph value it computes (more than one when fused)
  std::vector<Var> vars;
  int64_t extent = 1;
  int64_t grain = 1;
  bool parallel = false;
  /// When set, the rows [lo, hi) of this product are computed first; the body then runs over
  /// the same rows (a fused epilogue: bias, activation, residual).
  std::optional<Gemm> gemm;
  /// (buffer, element offset): the kernel sees that buffer from the offset on, and its indices
  /// count from there. The offset is applied where the kernel is called, so copies of
  /// different slices of one shape (the pieces of a concat, the steps of an unrolled RNN)
  /// share one compiled function.
  std::vector<std::pair<int, int64_t>> views;
  std::vector<Stmt> body;
  /// When set, the kernel is this split point instead of a loop (no body, no product).
  std::optional<Exchange> exchange;
};

enum class BufKind : uint8_t { Param, Input, Output, Temp, Const };

/// A flat buffer. Params are shared by every function; inputs, outputs and temps belong to
/// one function. Params, inputs and outputs are passed in by the runtime (by index within
/// their kind); temps live in the workspace at `offset`; constants are baked into the code.
struct Buffer {
  std::string name;
  Type type;
  BufKind kind;
  int function = -1;  ///< owning function for inputs, outputs and temps
  int index = 0;
  int64_t offset = 0;
  bool trainable = false;    ///< Param
  std::vector<double> data;  ///< Const
  /// A view (a Temp that takes no workspace): buffer `alias` from element
  /// `alias_first + t * alias_step` on, where t is the step of loop `alias_loop` of the
  /// function (a scan's slice of a stacked per-step input or output; t is 0 outside that loop).
  int alias = -1;
  int64_t alias_first = 0, alias_step = 0;
  int alias_loop = -1;
  int64_t numel() const { return *checked_numel(type.dims); }
  int64_t bytes() const { return numel() * dtype_size(type.dtype); }
};

/// Kernels [first, last) of a function run `trips` times (a scan's body, compiled once); the
/// step t counts 0, 1, ... or, `reverse`, down from trips - 1. A loop may lie inside another
/// (a scan in a scan's body): then all of its kernels are the other's.
struct Loop {
  int first = 0, last = 0;
  int64_t trips = 1;
  bool reverse = false;
};

/// A compiled function: kernels run in order.
struct Function {
  std::string name;
  std::vector<Kernel> kernels;
  std::vector<Loop> loops;  ///< by first kernel, an enclosing loop before the loops inside it
};

struct Program {
  std::string name;
  std::vector<Buffer> buffers;
  std::vector<Function> functions;  ///< e.g. "init", "forward"
  int64_t workspace_bytes = 0;      ///< the largest of the functions' workspaces
  std::vector<std::string> checks;  ///< message of each check code; "{}" takes the value
  bool check_numerics = false;      ///< compiled with LowerOptions::check_numerics
  NamedAttrs attrs;                 ///< the model's graph attributes (batch, train.*), for the runtime

  int add_buffer(Buffer b);
  std::vector<const Buffer*> of_kind(BufKind k) const;
};

/// Checks that no two temporaries of a function share workspace bytes while both are live;
/// the problem in words, or empty.
std::string verify_memory(const Program& p);

/// The buffers a kernel reads and writes.
struct Access {
  std::vector<int> reads, writes;
};
Access accesses(const Kernel& k);

/// The buffer whose memory `id` is: itself, or the root of its views.
int storage_of(const Program& p, int id);

/// The kernels (by position in the function) from the first to the last that touch a temp
/// (through its views too); a temp touched inside a loop is live for the whole loop.
struct Interval {
  int buffer, first, last;
};
std::vector<Interval> live_intervals(const Program& p, int function);

/// The text form: buffers with their kinds and types, then every kernel as loops.
std::string print(const Program& p);
std::string print(const Program& p, const Kernel& k);

}  // namespace stag::kir
