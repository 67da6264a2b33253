"""Builds varcode's Python extension with the project's CMake build (see pyproject.toml).

The extension (varcode._varcode) is the CMake target `varcode_python`; the shipped Fashion-MNIST
models go into the package (varcode/models) so that varcode.Generator.builtin() works from a wheel.
"""

import glob
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
MODEL_FILES = ["fashion_vae.pth", "fashion_drafter.pth", "fashion_refiner.pth", "classes.txt", "sampling.json"]
# the CoDe pairs fine-tuned for a hand-over N, when shipped (models/README.md)
MODEL_FILES += sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "models", "fashion_*_[0-9].pth")))


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = os.path.abspath(os.path.join(self.build_temp, "cmake"))
        os.makedirs(build_dir, exist_ok=True)
        python_dir = os.path.join(build_dir, "python")
        subprocess.check_call([
            "cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release", "-DVARCODE_BUILD_TESTS=OFF",
            "-DVARCODE_BUILD_BENCH=OFF", "-DVARCODE_BUILD_PYTHON=ON", f"-DPython_EXECUTABLE={sys.executable}",
            f"-DVARCODE_PYTHON_DIR={python_dir}"
        ])
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
        subprocess.check_call(["cmake", "--build", build_dir, "--target", "varcode_python", "-j", jobs])
        built = glob.glob(os.path.join(python_dir, "varcode", "_varcode*.so"))
        if len(built) != 1:
            raise RuntimeError(f"expected one built _varcode module in {python_dir}/varcode, found {built}")
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(built[0], target)
        models = os.path.join(os.path.dirname(target), "models")
        os.makedirs(models, exist_ok=True)
        for name in MODEL_FILES:
            shutil.copyfile(os.path.join(ROOT, "models", name), os.path.join(models, name))


setup(ext_modules=[Extension("varcode._varcode", sources=[])], cmdclass={"build_ext": CMakeBuild})
