// varcode._varcode: the Python binding's native half, a thin pybind11 layer over the C++ API
// (include/varcode/*.hpp). The Python half (python/varcode/__init__.py) holds the user-facing
// classes, argument handling and docstrings.
//
// Every generation runs on a worker thread with the GIL released; the calling thread waits for it,
// delivers its progress events to Python, and polls PyErr_CheckSignals every 50 ms, so Ctrl-C raises
// the cancellation flag within a scale and KeyboardInterrupt comes out once the engine has stopped.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "api/error_kind.hpp"
#include "varcode.h"
#include "varcode/generator.hpp"
#include "varcode/inputs.hpp"
#include "varcode/io.hpp"
#include "varcode/model_info.hpp"
#include "varcode/runtime.hpp"
#include "varcode/vqvae.hpp"

namespace py = pybind11;
using varcode::api::ErrorKind;

namespace {

[[noreturn]] void raise(const varcode::api::Failure& f) {
  PyObject* type = PyExc_RuntimeError;
  switch (f.kind) {
    case ErrorKind::invalid_argument:
      type = PyExc_ValueError;
      break;
    case ErrorKind::file:
      type = PyExc_OSError;
      break;
    case ErrorKind::cancelled:
      type = PyExc_KeyboardInterrupt;
      break;
    case ErrorKind::out_of_memory:
      type = PyExc_MemoryError;
      break;
    case ErrorKind::runtime:
      type = PyExc_RuntimeError;
      break;
  }
  PyErr_SetString(type, f.message.c_str());
  throw py::error_already_set();
}

// Runs `body` without the GIL, raising what it throws as ValueError / OSError (an Error naming one
// of `files`) / MemoryError / RuntimeError.
template <class Body>
auto engine_call(const std::vector<std::string>& files, Body&& body) -> decltype(body()) {
  try {
    py::gil_scoped_release nogil;
    return body();
  } catch (py::error_already_set&) {
    throw;
  } catch (...) {
    raise(varcode::api::classify_current_exception(files));
  }
}

varcode::ComputeDType parse_compute_dtype(const std::string& s) {
  if (s == "auto") return varcode::ComputeDType::automatic;
  if (s == "f32") return varcode::ComputeDType::f32;
  if (s == "bf16") return varcode::ComputeDType::bf16;
  PyErr_SetString(PyExc_ValueError, ("dtype: expected 'auto', 'f32' or 'bf16', got '" + s + "'").c_str());
  throw py::error_already_set();
}

py::array_t<uint8_t> rgb8_array(const varcode::Tensor& images) {  // [B, 3, H, W] -> [B, H, W, 3]
  py::array_t<uint8_t> out({images.dim(0), images.dim(2), images.dim(3), int64_t{3}});
  varcode::images_to_rgb8(images, out.mutable_data());
  return out;
}

py::array_t<int64_t> tokens_array(const varcode::Tensor& tokens) {  // [B, L]
  py::array_t<int64_t> out({tokens.dim(0), tokens.dim(1)});
  std::memcpy(out.mutable_data(), tokens.raw(), tokens.nbytes());
  return out;
}

varcode::Tensor f32_tensor(const py::array_t<float, py::array::c_style | py::array::forcecast>& a) {
  varcode::Shape shape(a.shape(), a.shape() + a.ndim());
  varcode::Tensor t = varcode::Tensor::empty(varcode::DType::f32, shape);
  std::memcpy(t.raw(), a.data(), t.nbytes());
  return t;
}

varcode::SamplingOptions sampling_of(const py::dict& d) {
  varcode::SamplingOptions s;
  s.cfg = d["cfg"].cast<double>();
  s.top_k = d["top_k"].cast<int>();
  s.top_p = d["top_p"].cast<double>();
  s.temperature = d["temperature"].cast<std::vector<double>>();
  s.smooth = d["smooth"].cast<bool>();
  return s;
}

py::dict sampling_dict(const varcode::SamplingOptions& s) {
  py::dict d;
  d["cfg"] = s.cfg;
  d["top_k"] = s.top_k;
  d["top_p"] = s.top_p;
  d["temperature"] = s.temperature;
  d["smooth"] = s.smooth;
  return d;
}

using Work = std::function<varcode::GenerateResult(const varcode::ProgressFn&, const std::atomic<bool>*)>;

// See the file comment. `progress` (None or a callable taking a ProgressEvent) runs on the calling
// thread; an exception from it, like Ctrl-C, cancels the run and is raised once the worker is done.
varcode::GenerateResult run_interruptible(const Work& work, const py::object& progress, int threads) {
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<varcode::ProgressEvent> events;
    bool done = false;
    std::exception_ptr error;
    varcode::GenerateResult result;
    std::atomic<bool> cancel{false};
  };
  auto sh = std::make_shared<Shared>();
  const bool want_events = !progress.is_none();
  std::thread worker([sh, &work, want_events, threads] {
    try {
      varcode::set_num_threads(threads);  // per thread: the OpenMP setting belongs to the calling thread
      varcode::ProgressFn fn;
      if (want_events)
        fn = [&sh](const varcode::ProgressEvent& e) {
          std::lock_guard<std::mutex> lock(sh->mu);
          sh->events.push_back(e);
          sh->cv.notify_all();
        };
      sh->result = work(fn, &sh->cancel);
    } catch (...) {
      sh->error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(sh->mu);
    sh->done = true;
    sh->cv.notify_all();
  });
  PyObject *err_type = nullptr, *err_value = nullptr, *err_tb = nullptr;  // the Python error to raise
  for (;;) {
    std::deque<varcode::ProgressEvent> batch;
    bool done = false;
    {
      py::gil_scoped_release nogil;
      std::unique_lock<std::mutex> lock(sh->mu);
      sh->cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return sh->done || !sh->events.empty(); });
      batch.swap(sh->events);
      done = sh->done;
    }
    if (!err_type) {
      if (PyErr_CheckSignals() != 0) {
        PyErr_Fetch(&err_type, &err_value, &err_tb);
        sh->cancel = true;
      } else {
        for (const varcode::ProgressEvent& e : batch) {
          try {
            progress(e);
          } catch (py::error_already_set& ex) {
            ex.restore();
            PyErr_Fetch(&err_type, &err_value, &err_tb);
            sh->cancel = true;
            break;
          }
        }
      }
    }
    if (done) break;
  }
  {
    py::gil_scoped_release nogil;
    worker.join();
  }
  if (err_type) {
    PyErr_Restore(err_type, err_value, err_tb);
    throw py::error_already_set();
  }
  if (sh->error) {
    try {
      std::rethrow_exception(sh->error);
    } catch (...) {
      raise(varcode::api::classify_current_exception({}, sh->cancel.load()));
    }
  }
  return std::move(sh->result);
}

py::tuple result_tuple(const varcode::GenerateResult& r) {
  py::dict seconds;
  seconds["drafter"] = r.seconds.drafter;
  seconds["refiner"] = r.seconds.refiner;
  seconds["vae"] = r.seconds.vae;
  seconds["scales"] = r.seconds.scales;
  return py::make_tuple(rgb8_array(r.images), tokens_array(r.tokens), seconds);
}

// A generator and what the binding keeps beside it (its class names).
struct Engine {
  varcode::Generator gen;
  std::vector<std::string> class_names;
  std::vector<std::string> files;
};

// "auto" / "cpu" / "cuda" / "cuda:I" -> the device; RuntimeError saying why when cuda cannot run.
varcode::Device device_of(const std::string& spec) {
  try {
    return varcode::choose_device(spec);
  } catch (const varcode::Error& e) {
    const bool bad_name = std::string(e.what()).find("is not a device") != std::string::npos;
    PyErr_SetString(bad_name ? PyExc_ValueError : PyExc_RuntimeError,
                    ("device=" + py::repr(py::str(spec)).cast<std::string>() + ": " + e.what()).c_str());
    throw py::error_already_set();
  }
}

Engine open_engine(varcode::ModelFiles files, const std::string& dtype, const std::string& device) {
  const varcode::ComputeDType dt = parse_compute_dtype(dtype);
  const varcode::Device dev = device_of(device);
  Engine e;
  e.files = {files.vae, files.model, files.drafter, files.refiner};
  engine_call(e.files, [&] {
    e.gen = varcode::Generator::open(files, dt, dev);
    const std::string& names_of = files.model.empty() ? files.drafter : files.model;
    if (names_of.rfind("random:", 0) != 0) e.class_names = varcode::load_class_names(names_of, e.gen.num_classes());
    return 0;
  });
  return e;
}

}  // namespace

PYBIND11_MODULE(_varcode, m) {
  m.doc() = "varcode's native engine (use the `varcode` package, not this module)";
  m.attr("__version__") = varcode_version();
  m.def("cuda_built", &varcode::cuda_built, "True when this build has the CUDA backend.");
  m.def(
      "cuda_gpus",
      [] {
        py::list out;
        for (const varcode::GpuInfo& g : varcode::cuda_gpus())
          out.append(py::dict(py::arg("index") = g.index, py::arg("name") = g.name,
                              py::arg("memory_bytes") = g.memory_bytes,
                              py::arg("compute_capability") = py::make_tuple(g.major, g.minor)));
        return out;
      },
      "The CUDA GPUs this process sees, as dicts.");
  m.def(
      "device_name", [](const std::string& spec) { return varcode::device_name(device_of(spec)); },
      "The device `spec` ('auto', 'cpu', 'cuda', 'cuda:I') resolves to, e.g. 'cpu' or 'cuda:0'.");
  m.def("cpu_has_bf16", &varcode::cpu_has_bf16, "True when this CPU computes bf16 natively (AVX512-BF16 or AMX).");

  py::class_<varcode::ProgressEvent>(m, "ProgressEvent", "One step of a generation: a scale of a stage, or the decode.")
      .def_readonly("stage", &varcode::ProgressEvent::stage, "'var', 'drafter', 'refiner' or 'vae'")
      .def_readonly("scale", &varcode::ProgressEvent::scale, "the scale about to run (0-based)")
      .def_readonly("num_scales", &varcode::ProgressEvent::num_scales, "scales of the schedule (0 for 'vae')")
      .def_readonly("images_done", &varcode::ProgressEvent::images_done, "images finished before this batch")
      .def_readonly("images_total", &varcode::ProgressEvent::images_total, "images of the request")
      .def("__repr__", [](const varcode::ProgressEvent& e) {
        return "ProgressEvent(stage='" + e.stage + "', scale=" + std::to_string(e.scale) +
               ", num_scales=" + std::to_string(e.num_scales) + ", images_done=" + std::to_string(e.images_done) +
               ", images_total=" + std::to_string(e.images_total) + ")";
      });

  py::class_<Engine>(m, "Engine", "A loaded pipeline (internal; see varcode.Generator).")
      .def_static(
          "open",
          [](const std::string& vae, const std::string& model, const std::string& drafter, const std::string& refiner,
             int draft_steps, const std::string& dtype, const std::string& device) {
            varcode::ModelFiles f{vae, model, drafter, refiner, draft_steps};
            return open_engine(f, dtype, device);
          },
          py::arg("vae"), py::arg("model"), py::arg("drafter"), py::arg("refiner"), py::arg("draft_steps"),
          py::arg("dtype"), py::arg("device") = "cpu")
      .def_static(
          "builtin_files",
          [](const std::vector<std::string>& dirs) {
            varcode::ModelFiles f;
            try {
              f = varcode::builtin_model_files(dirs);
            } catch (const std::exception& e) {  // the files are not where they should be
              raise({ErrorKind::file, e.what()});
            }
            return py::make_tuple(f.vae, f.drafter, f.refiner, f.draft_steps);
          },
          py::arg("dirs"))
      .def_property_readonly("collaborative", [](const Engine& e) { return e.gen.collaborative(); })
      .def_property_readonly("draft_steps", [](const Engine& e) { return e.gen.draft_steps(); })
      .def_property_readonly("num_classes", [](const Engine& e) { return e.gen.num_classes(); })
      .def_property_readonly("num_scales", [](const Engine& e) { return e.gen.num_scales(); })
      .def_property_readonly("patch_nums", [](const Engine& e) { return e.gen.patch_nums(); })
      .def_property_readonly("image_size", [](const Engine& e) { return e.gen.image_size(); })
      .def_property_readonly("total_tokens", [](const Engine& e) { return e.gen.total_tokens(); })
      .def_property_readonly("dtype",
                             [](const Engine& e) { return std::string(varcode::dtype_name(e.gen.compute_dtype())); })
      .def_property_readonly("class_names", [](const Engine& e) { return e.class_names; })
      .def("suggested_batch", [](const Engine& e) { return e.gen.suggested_batch(); })
      .def("default_sampling", [](const Engine& e) { return sampling_dict(e.gen.default_sampling()); })
      .def("parse_classes",
           [](const Engine& e, const std::string& text) {
             return engine_call(
                 {}, [&] { return varcode::parse_classes(text, "classes", e.gen.num_classes(), e.class_names); });
           })
      .def(
          "generate",
          [](const Engine& e, const std::vector<int>& classes, uint64_t seed, const std::vector<uint32_t>& indices,
             const py::dict& sampling, int batch, int threads, const py::object& progress) {
            varcode::GenerateRequest req;
            req.classes = classes;
            req.seed = seed;
            req.image_indices = indices;
            req.sampling = sampling_of(sampling);
            req.batch = batch;
            const varcode::Generator& gen = e.gen;
            const Work work = [&req, &gen](const varcode::ProgressFn& p, const std::atomic<bool>* c) {
              return gen.generate(req, p, c);
            };
            return result_tuple(run_interruptible(work, progress, threads));
          },
          py::arg("classes"), py::arg("seed"), py::arg("indices"), py::arg("sampling"), py::arg("batch"),
          py::arg("threads"), py::arg("progress"))
      .def(
          "edit",
          [](const Engine& e, const py::array_t<float, py::array::c_style | py::array::forcecast>& picture,
             const py::array_t<float, py::array::c_style | py::array::forcecast>& mask, int class_label, uint64_t seed,
             const py::dict& sampling, int threads, const py::object& progress) {
            varcode::EditRequest req;
            const int S = e.gen.image_size();
            req.image = f32_tensor(picture);
            if (req.image.numel() == 3 * S * S) req.image = req.image.reshape({1, 3, S, S});
            req.mask = f32_tensor(mask);
            req.class_label = class_label;
            req.seed = seed;
            req.sampling = sampling_of(sampling);
            const varcode::Generator& gen = e.gen;
            const Work work = [&req, &gen](const varcode::ProgressFn& p, const std::atomic<bool>* c) {
              return gen.edit(req, p, c);
            };
            return result_tuple(run_interruptible(work, progress, threads));
          },
          py::arg("picture"), py::arg("mask"), py::arg("class_label"), py::arg("seed"), py::arg("sampling"),
          py::arg("threads"), py::arg("progress"));

  // Pictures and masks, prepared as `varcode edit` / `encode` prepare them.
  m.def(
      "load_picture",
      [](const std::string& path, int side) {
        int h = 0, w = 0;
        varcode::Tensor pic = engine_call({path}, [&] { return varcode::load_picture(path, side, &h, &w); });
        py::array_t<float> out({int64_t{3}, int64_t{side}, int64_t{side}});
        std::memcpy(out.mutable_data(), pic.raw(), pic.nbytes());
        return py::make_tuple(out, h, w);
      },
      py::arg("path"), py::arg("side"));
  m.def(
      "picture_from_rgb8",
      [](const py::array_t<uint8_t, py::array::c_style | py::array::forcecast>& rgb, int side) {
        if (rgb.ndim() != 3 || rgb.shape(2) != 3) {
          PyErr_SetString(PyExc_ValueError, "image: expected uint8 [H, W, 3] (RGB)");
          throw py::error_already_set();
        }
        const int h = static_cast<int>(rgb.shape(0)), w = static_cast<int>(rgb.shape(1));
        varcode::Tensor pic = engine_call({}, [&] { return varcode::picture_from_rgb8(rgb.data(), h, w, side); });
        py::array_t<float> out({int64_t{3}, int64_t{side}, int64_t{side}});
        std::memcpy(out.mutable_data(), pic.raw(), pic.nbytes());
        return out;
      },
      py::arg("rgb"), py::arg("side"));
  auto mask_array = [](const varcode::Tensor& t) {
    py::array_t<float> out({t.dim(0), t.dim(1)});
    std::memcpy(out.mutable_data(), t.raw(), t.nbytes());
    return out;
  };
  m.def(
      "box_mask",
      [mask_array](int h, int w, int x0, int y0, int x1, int y1) {
        return mask_array(engine_call({}, [&] { return varcode::box_mask(h, w, x0, y0, x1, y1, "box"); }));
      },
      py::arg("height"), py::arg("width"), py::arg("x0"), py::arg("y0"), py::arg("x1"), py::arg("y1"));
  m.def(
      "outpaint_mask",
      [mask_array](int h, int w, int margin) {
        return mask_array(engine_call({}, [&] { return varcode::outpaint_mask(h, w, margin, "outpaint"); }));
      },
      py::arg("height"), py::arg("width"), py::arg("margin"));
  m.def(
      "load_mask",
      [mask_array](const std::string& path) {
        return mask_array(engine_call({path}, [&] { return varcode::load_mask(path); }));
      },
      py::arg("path"));
  m.def(
      "fit_edit_mask",
      [mask_array](const py::array_t<float, py::array::c_style | py::array::forcecast>& mask, int orig_h, int orig_w,
                   int side) {
        if (mask.ndim() != 2) {
          PyErr_SetString(PyExc_ValueError, "mask: expected a 2-D array [H, W] (1 = regenerate)");
          throw py::error_already_set();
        }
        const varcode::Tensor t = f32_tensor(mask);
        return mask_array(engine_call({}, [&] { return varcode::fit_edit_mask(t, orig_h, orig_w, side, "mask"); }));
      },
      py::arg("mask"), py::arg("orig_h"), py::arg("orig_w"), py::arg("side"));

  m.def(
      "inspect_json",
      [](const std::string& path) {
        return engine_call({path}, [&] { return varcode::model_info_json(varcode::inspect_model(path)); });
      },
      py::arg("path"));

  py::class_<varcode::VqvaeModel>(m, "VqvaeModel", "A loaded VQ-VAE (internal; see varcode.Vqvae).")
      .def_static(
          "open",
          [](const std::string& path, const std::string& dtype, const std::string& device) {
            const varcode::Device dev = device_of(device);
            varcode::DType dt = varcode::DType::f32;
            if (dtype == "bf16") {
              dt = varcode::DType::bf16;
            } else if (dtype != "f32") {
              PyErr_SetString(PyExc_ValueError, ("dtype: expected 'f32' or 'bf16', got '" + dtype + "'").c_str());
              throw py::error_already_set();
            }
            return engine_call({path}, [&] { return varcode::VqvaeModel::open(path, dt, dev); });
          },
          py::arg("path"), py::arg("dtype"), py::arg("device") = "cpu")
      .def_property_readonly("path", &varcode::VqvaeModel::path)
      .def_property_readonly("ch", &varcode::VqvaeModel::ch)
      .def_property_readonly("vocab", &varcode::VqvaeModel::vocab)
      .def_property_readonly("z_channels", &varcode::VqvaeModel::z_channels)
      .def_property_readonly("downsample", &varcode::VqvaeModel::downsample)
      .def_property_readonly("can_encode", &varcode::VqvaeModel::can_encode)
      .def_property_readonly("num_params", &varcode::VqvaeModel::num_params)
      .def("image_size_for_tokens",
           [](const varcode::VqvaeModel& v, int64_t n) {
             return engine_call({}, [&] { return v.image_size_for_tokens(n); });
           })
      .def("check_image_size", [](const varcode::VqvaeModel& v,
                                  int side) { engine_call({}, [&] { return v.schedule_for_image_size(side); }); })
      .def(
          "decode",
          [](const varcode::VqvaeModel& v,
             const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& tokens) {
            if (tokens.ndim() != 2) {
              PyErr_SetString(PyExc_ValueError, "tokens: expected an int64 array [B, L]");
              throw py::error_already_set();
            }
            varcode::Tensor t = varcode::Tensor::empty(varcode::DType::i64, {tokens.shape(0), tokens.shape(1)});
            std::memcpy(t.raw(), tokens.data(), t.nbytes());
            const varcode::Tensor images = engine_call({}, [&] { return v.decode_tokens(t); });
            return rgb8_array(images);
          },
          py::arg("tokens"))
      .def(
          "encode",
          [](const varcode::VqvaeModel& v,
             const py::array_t<float, py::array::c_style | py::array::forcecast>& picture) {
            varcode::Tensor x = f32_tensor(picture);  // [3, S, S] in [0, 1]
            const varcode::EncodeResult r = engine_call({}, [&] {
              if (!v.can_encode()) throw varcode::Error(v.path() + ": this VQ-VAE file has no encoder");
              for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = x.data<float>()[i] * 2.0f - 1.0f;
              return v.encode(x);
            });
            return py::make_tuple(tokens_array(r.tokens), rgb8_array(r.reconstruction));
          },
          py::arg("picture"));
}
