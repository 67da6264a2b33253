#include <cublasLt.h>
#include <cuda_bf16.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>

#include "kernels/cuda/cuda_context.hpp"
#include "kernels/cuda/gemm.hpp"

namespace varcode::kernels::cuda {

namespace {

// The cuBLASLt entry points varcode calls, resolved from the shared library at first use.
struct CublasLt {
  decltype(&cublasLtCreate) create = nullptr;
  decltype(&cublasLtMatmulDescCreate) desc_create = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set = nullptr;
  decltype(&cublasLtMatmulDescDestroy) desc_destroy = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layout_create = nullptr;
  decltype(&cublasLtMatrixLayoutSetAttribute) layout_set = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) layout_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) pref_create = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) pref_set = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) pref_destroy = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic = nullptr;
  decltype(&cublasLtMatmul) matmul = nullptr;
  std::string error;  // non-empty: the library could not be used
};

const CublasLt& lib() {
  static const CublasLt l = [] {
    CublasLt r;
    const std::string soname = "libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR);
    void* h = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libcublasLt.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = dlerror();
      r.error = "cannot load " + soname +
                " (cuBLASLt, part of the CUDA toolkit and of PyTorch's nvidia-cublas wheel): " + (e ? e : "not found") +
                "; put its folder on LD_LIBRARY_PATH";
      return r;
    }
    bool ok = true;
    auto get = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
      if (!fn && ok) {
        ok = false;
        r.error = soname + " has no symbol " + name + " (a cuBLASLt older than this build's CUDA " +
                  std::to_string(CUBLAS_VER_MAJOR) + "?)";
      }
    };
    get(r.create, "cublasLtCreate");
    get(r.desc_create, "cublasLtMatmulDescCreate");
    get(r.desc_set, "cublasLtMatmulDescSetAttribute");
    get(r.desc_destroy, "cublasLtMatmulDescDestroy");
    get(r.layout_create, "cublasLtMatrixLayoutCreate");
    get(r.layout_set, "cublasLtMatrixLayoutSetAttribute");
    get(r.layout_destroy, "cublasLtMatrixLayoutDestroy");
    get(r.pref_create, "cublasLtMatmulPreferenceCreate");
    get(r.pref_set, "cublasLtMatmulPreferenceSetAttribute");
    get(r.pref_destroy, "cublasLtMatmulPreferenceDestroy");
    get(r.heuristic, "cublasLtMatmulAlgoGetHeuristic");
    get(r.matmul, "cublasLtMatmul");
    return r;
  }();
  return l;
}

void check_lt(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLASLt: ") + what + " failed with status " + std::to_string(static_cast<int>(s)));
}

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

int alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int al = 256;
  while (al > 1 && (a % static_cast<uintptr_t>(al)) != 0) al /= 2;
  return al;
}

// One cached plan per distinct shape on this thread: descriptors and the heuristic's algorithm.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool separate_epilogue = false;  // bias / GELU run as a kernel after the product
};

void destroy_plan(const CublasLt& lt, Plan& p) {
  if (p.la) lt.layout_destroy(p.la);
  if (p.lb) lt.layout_destroy(p.lb);
  if (p.ld) lt.layout_destroy(p.ld);
  if (p.desc) lt.desc_destroy(p.desc);
  p = Plan{};
}

// VARCODE_GEMM_EPILOGUE=separate: bias and GELU after the product instead of in cuBLASLt's
// epilogue (tells an epilogue's arithmetic apart from the product's on a new GPU or library).
bool epilogue_forced_separate() {
  static const bool forced = [] {
    const char* v = std::getenv("VARCODE_GEMM_EPILOGUE");
    const std::string s = v ? v : "";
    if (!s.empty() && s != "fused" && s != "separate")
      throw Error("VARCODE_GEMM_EPILOGUE must be fused or separate, got '" + s + "'");
    return s == "separate";
  }();
  return forced;
}

using PlanKey = std::tuple<int, int64_t, int64_t, int64_t, bool, int64_t, bool, int64_t, int64_t, int, bool, int,
                           int64_t, int64_t, int64_t, int, int>;
struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    size_t h = 1469598103934665603ull;
    std::apply(
        [&](const auto&... v) { ((h = (h ^ std::hash<std::decay_t<decltype(v)>>{}(v)) * 1099511628211ull), ...); }, k);
    return h;
  }
};

struct ThreadLt {
  std::unordered_map<int, cublasLtHandle_t> handles;  // device -> handle
  std::unordered_map<PlanKey, Plan, PlanKeyHash> plans;
};
ThreadLt& thread_lt() {
  thread_local ThreadLt t;
  return t;
}

__global__ void to_bf16_kernel(const float* __restrict__ x, int64_t n, __nv_bfloat16* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    y[i] = __float2bfloat16_rn(x[i]);
}

// d[b, i, j] = GELU?(d[b, i, j] + bias[j]) (tanh form) for `rows` = batch * m rows of n at pitch
// ldd, products stride_d apart.
__global__ void epilogue_kernel(float* __restrict__ d, int64_t rows, int64_t m, int64_t n, int64_t ldd,
                                int64_t stride_d, const float* __restrict__ bias, bool gelu) {
  const int64_t total = rows * n;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t row = i / n, col = i % n;
    float& v = d[(row / m) * stride_d + (row % m) * ldd + col];
    float x = bias ? v + bias[col] : v;
    if (gelu) x = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    v = x;
  }
}

// Descriptors, layouts and the heuristic's algorithm for `g` with epilogue `epilogue`; p.desc stays
// null (and the status is returned) when cuBLASLt has no algorithm for it.
cublasStatus_t build_plan(const CublasLt& lt, cublasLtHandle_t handle, const GemmArgs& g, int64_t lda, int64_t ldb,
                          int64_t ldd, int align, GemmEpilogue epilogue, Plan& p) {
  // Column-major view of the row-major product: D^T [n, m] = op(B)^T [n, k] * op(A)^T [k, m].
  const cudaDataType_t ab = g.type == GemmType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
  check_lt(lt.desc_create(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t op_first = g.b_transposed ? CUBLAS_OP_T : CUBLAS_OP_N;   // B's role
  const cublasOperation_t op_second = g.a_transposed ? CUBLAS_OP_T : CUBLAS_OP_N;  // A's role
  check_lt(lt.desc_set(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)), "set TRANSA");
  check_lt(lt.desc_set(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)), "set TRANSB");
  const cublasLtEpilogue_t epi = epilogue == GemmEpilogue::gelu_bias ? CUBLASLT_EPILOGUE_GELU_BIAS
                                 : epilogue == GemmEpilogue::bias    ? CUBLASLT_EPILOGUE_BIAS
                                 : epilogue == GemmEpilogue::gelu    ? CUBLASLT_EPILOGUE_GELU
                                                                     : CUBLASLT_EPILOGUE_DEFAULT;
  check_lt(lt.desc_set(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)), "set EPILOGUE");
  if (epilogue == GemmEpilogue::bias || epilogue == GemmEpilogue::gelu_bias) {
    const cudaDataType_t bias_type = CUDA_R_32F;
    check_lt(lt.desc_set(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)),
             "set BIAS_DATA_TYPE");
  }
  // The first operand (B's role): op = T when B is stored [n, k] (col-major [k, n]).
  if (g.b_transposed)
    check_lt(lt.layout_create(&p.la, ab, g.k, g.n, ldb), "layout B");
  else
    check_lt(lt.layout_create(&p.la, ab, g.n, g.k, ldb), "layout B");
  if (g.a_transposed)
    check_lt(lt.layout_create(&p.lb, ab, g.m, g.k, lda), "layout A");
  else
    check_lt(lt.layout_create(&p.lb, ab, g.k, g.m, lda), "layout A");
  check_lt(lt.layout_create(&p.ld, CUDA_R_32F, g.n, g.m, ldd), "layout D");
  if (g.batch > 1) {
    const int32_t count = g.batch;
    for (auto [layout, stride] :
         {std::pair{p.la, g.stride_b}, std::pair{p.lb, g.stride_a}, std::pair{p.ld, g.stride_d}}) {
      check_lt(lt.layout_set(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)), "set BATCH_COUNT");
      check_lt(lt.layout_set(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)),
               "set STRIDED_BATCH_OFFSET");
    }
  }
  cublasLtMatmulPreference_t pref = nullptr;
  check_lt(lt.pref_create(&pref), "cublasLtMatmulPreferenceCreate");
  const uint64_t ws = kWorkspaceBytes;
  check_lt(lt.pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)), "set MAX_WORKSPACE");
  const uint32_t al = static_cast<uint32_t>(align);
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    check_lt(lt.pref_set(pref, attr, &al, sizeof(al)), "set MIN_ALIGNMENT");
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t hs = lt.heuristic(handle, p.desc, p.la, p.lb, p.ld, p.ld, pref, 1, &result, &found);
  lt.pref_destroy(pref);
  if (hs != CUBLAS_STATUS_SUCCESS || found == 0) {
    destroy_plan(lt, p);
    return hs;
  }
  p.algo = result.algo;
  return hs;
}

}  // namespace

const char* cublaslt_unavailable_reason() { return lib().error.c_str(); }

void to_bf16(const float* x, int64_t n, uint16_t* y) {
  if (n <= 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(blocks_for(n, 256), 65535));
  to_bf16_kernel<<<blocks, 256, 0, stream()>>>(x, n, reinterpret_cast<__nv_bfloat16*>(y));
  VARCODE_CUDA_LAUNCHED("to_bf16");
}

void gemm(const GemmArgs& g) {
  const CublasLt& lt = lib();
  if (!lt.error.empty()) throw Error(lt.error);
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) throw Error("internal: gemm with k = 0");
  const bool with_bias = g.epilogue == GemmEpilogue::bias || g.epilogue == GemmEpilogue::gelu_bias;
  const bool with_gelu = g.epilogue == GemmEpilogue::gelu || g.epilogue == GemmEpilogue::gelu_bias;
  if (with_bias && !g.bias) throw Error("internal: gemm bias epilogue without a bias");
  int device = 0;
  VARCODE_CUDA_CHECK(cudaGetDevice(&device));
  ThreadLt& t = thread_lt();
  cublasLtHandle_t& handle = t.handles[device];
  if (!handle) check_lt(lt.create(&handle), "cublasLtCreate");

  const int64_t lda = g.lda ? g.lda : (g.a_transposed ? g.m : g.k);
  const int64_t ldb = g.ldb ? g.ldb : (g.b_transposed ? g.k : g.n);
  const int64_t ldd = g.ldd ? g.ldd : g.n;
  const int align =
      std::min({alignment_of(g.a), alignment_of(g.b), alignment_of(g.d), with_bias ? alignment_of(g.bias) : 256});
  const PlanKey key{static_cast<int>(g.type),
                    g.m,
                    g.n,
                    g.k,
                    g.a_transposed,
                    lda,
                    g.b_transposed,
                    ldb,
                    ldd,
                    static_cast<int>(g.epilogue),
                    g.accumulate,
                    g.batch,
                    g.stride_a,
                    g.stride_b,
                    g.stride_d,
                    align,
                    device};
  auto it = t.plans.find(key);
  if (it == t.plans.end()) {
    Plan p;
    cublasStatus_t hs = CUBLAS_STATUS_SUCCESS;
    const bool has_epilogue = g.epilogue != GemmEpilogue::none;
    if (!(has_epilogue && epilogue_forced_separate()))
      hs = build_plan(lt, handle, g, lda, ldb, ldd, align, g.epilogue, p);
    if (!p.desc && has_epilogue) {
      // No fused algorithm for this epilogue (or none wanted): the plain product, then a kernel.
      hs = build_plan(lt, handle, g, lda, ldb, ldd, align, GemmEpilogue::none, p);
      p.separate_epilogue = true;
    }
    if (!p.desc)
      throw Error("cuBLASLt has no algorithm for a " + std::string(g.type == GemmType::bf16 ? "bf16" : "f32") +
                  " product of [" + std::to_string(g.m) + ", " + std::to_string(g.k) + "] x [" + std::to_string(g.k) +
                  ", " + std::to_string(g.n) + "] (status " + std::to_string(static_cast<int>(hs)) + ")");
    it = t.plans.emplace(key, p).first;
  }
  Plan& p = it->second;
  if (with_bias && !p.separate_epilogue)
    check_lt(lt.desc_set(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)), "set BIAS_POINTER");
  const float alpha = g.alpha, beta = g.accumulate ? 1.0f : 0.0f;
  void* ws = scratch(kScratchSlots - 1, kWorkspaceBytes);
  check_lt(lt.matmul(handle, p.desc, &alpha, g.b, p.la, g.a, p.lb, &beta, g.d, p.ld, g.d, p.ld, &p.algo, ws,
                     kWorkspaceBytes, stream()),
           "cublasLtMatmul");
  if (p.separate_epilogue) {
    const int64_t rows = int64_t{g.batch} * g.m;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(blocks_for(rows * g.n, 256), 1 << 20));
    epilogue_kernel<<<blocks, 256, 0, stream()>>>(g.d, rows, g.m, g.n, ldd, g.batch > 1 ? g.stride_d : g.m * ldd,
                                                  with_bias ? g.bias : nullptr, with_gelu);
    VARCODE_CUDA_LAUNCHED("gemm_epilogue");
  }
}

}  // namespace varcode::kernels::cuda
