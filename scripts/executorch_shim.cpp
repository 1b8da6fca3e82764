// A C ABI over ExecuTorch's C++ runtime (libexecutorch.so + the XNNPACK backend and optimized kernels
// that the executorch wheel ships in executorch/lib/, none of which links torch), so that a numpy-only
// Python on a board can run `.pte` files through ctypes (devicebench/executorch_native.py).
//
// Build (scripts/arm-board.sh does this for the emulated board, cross-compiled for aarch64):
//   g++ -std=c++17 -O2 -shared -fPIC executorch_shim.cpp -I ET/include -L ET/lib -Wl,--no-as-needed
//       -lexecutorch -lexecutorch_backend_xnnpack -lexecutorch_kernels_optimized
//       -lexecutorch_kernels_quantized -lexecutorch_threadpool -Wl,-rpath,'$ORIGIN' -o libmdet_executorch.so
// --no-as-needed keeps the backend and kernel libraries: they register themselves from static
// initializers, and nothing here names a symbol of theirs.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr.h>
#include <executorch/runtime/core/evalue.h>

namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

using executorch::extension::TensorPtr;
using executorch::extension::module::Module;
using executorch::runtime::Error;
using executorch::runtime::EValue;

namespace {
struct Handle {
  std::unique_ptr<Module> module;
  std::vector<EValue> outputs;  // the last run's outputs (they point into the method's memory)
  std::string backends;
};

void say(char* err, int len, const char* what, Error e) {
  if (err && len > 0) std::snprintf(err, len, "%s (ExecuTorch error 0x%x)", what, static_cast<unsigned>(e));
}
}  // namespace

extern "C" {

// 1 when this library was built against this header layout (the Python side checks it).
int mdet_abi_version() { return 1; }

// Loads `path` and its forward method; null and a message in `err` on failure.
void* mdet_open(const char* path, int threads, char* err, int errlen) {
  auto h = std::make_unique<Handle>();
  h->module = std::make_unique<Module>(std::string(path), Module::LoadMode::File);
  Error e = h->module->load();
  if (e != Error::Ok) { say(err, errlen, "cannot load the program (not a .pte of this ExecuTorch version?)", e); return nullptr; }
  if (threads > 0) {
    auto* pool = executorch::extension::threadpool::get_threadpool();
    if (pool) pool->_unsafe_reset_threadpool(static_cast<uint32_t>(threads));
  }
  e = h->module->load_method("forward");
  if (e != Error::Ok) { say(err, errlen, "cannot load method forward (a missing operator or backend?)", e); return nullptr; }
  auto meta = h->module->method_meta("forward");
  if (meta.ok()) {
    for (size_t i = 0; i < meta->num_backends(); ++i) {
      auto name = meta->get_backend_name(i);
      if (name.ok()) { if (!h->backends.empty()) h->backends += ","; h->backends += *name; }
    }
  }
  return h.release();
}

void mdet_close(void* p) { delete static_cast<Handle*>(p); }

int mdet_count(void* p, int is_output) {
  auto meta = static_cast<Handle*>(p)->module->method_meta("forward");
  if (!meta.ok()) return -1;
  return static_cast<int>(is_output ? meta->num_outputs() : meta->num_inputs());
}

// dtype (ExecuTorch ScalarType code) and shape of input/output i; returns ndim or -1.
int mdet_meta(void* p, int is_output, int i, int* dtype, int64_t* dims, int max_dims) {
  auto meta = static_cast<Handle*>(p)->module->method_meta("forward");
  if (!meta.ok()) return -1;
  auto info = is_output ? meta->output_tensor_meta(i) : meta->input_tensor_meta(i);
  if (!info.ok()) return -1;
  auto sizes = info->sizes();
  if (static_cast<int>(sizes.size()) > max_dims) return -1;
  for (size_t k = 0; k < sizes.size(); ++k) dims[k] = sizes[k];
  *dtype = static_cast<int>(info->scalar_type());
  return static_cast<int>(sizes.size());
}

// Comma-separated names of the delegates the method uses ("XnnpackBackend"), into buf.
int mdet_backends(void* p, char* buf, int len) {
  auto& s = static_cast<Handle*>(p)->backends;
  std::snprintf(buf, len, "%s", s.c_str());
  return static_cast<int>(s.size());
}

// Runs forward on n contiguous input buffers (shapes/dtypes as given); 0 on success.
int mdet_run(void* p, int n, void** data, const int* dtypes, const int64_t* dims, const int* ndims,
             char* err, int errlen) {
  auto* h = static_cast<Handle*>(p);
  std::vector<TensorPtr> keep;
  std::vector<EValue> inputs;
  const int64_t* d = dims;
  for (int i = 0; i < n; ++i) {
    std::vector<executorch::aten::SizesType> sizes(d, d + ndims[i]);
    d += ndims[i];
    keep.push_back(executorch::extension::make_tensor_ptr(
        std::move(sizes), data[i], static_cast<executorch::aten::ScalarType>(dtypes[i])));
    inputs.emplace_back(*keep.back());
  }
  auto out = h->module->forward(inputs);
  if (!out.ok()) { say(err, errlen, "forward failed", out.error()); return 1; }
  h->outputs = std::move(*out);
  return 0;
}

// Output i of the last run: dtype, shape (returns ndim), data pointer and byte count; -1 if not a tensor.
int mdet_output(void* p, int i, int* dtype, int64_t* dims, int max_dims, const void** data, int64_t* nbytes) {
  auto* h = static_cast<Handle*>(p);
  if (i < 0 || i >= static_cast<int>(h->outputs.size()) || !h->outputs[i].isTensor()) return -1;
  const auto& t = h->outputs[i].toTensor();
  if (t.dim() > max_dims) return -1;
  for (ssize_t k = 0; k < t.dim(); ++k) dims[k] = t.size(k);
  *dtype = static_cast<int>(t.scalar_type());
  *data = t.const_data_ptr();
  *nbytes = static_cast<int64_t>(t.nbytes());
  return static_cast<int>(t.dim());
}

}  // extern "C"
