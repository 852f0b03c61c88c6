"""Build the torch-free pybind11 extension ``vqrec_fast._C`` (and, when a CUDA
toolkit is found, ``vqrec_fast._C_cuda``) through CMake.

Environment knobs:
  VQREC_FAST_CUDA=ON|OFF|AUTO   build the CUDA module (default AUTO: when nvcc is found)
  VQREC_FAST_CUDA_ARCHS="80;90" CUDA architectures (default: sm_80, sm_90 + PTX)
  VQREC_FAST_BUILD_TYPE=Release build type
"""
import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        # Directory that must receive the built module(s) so that the package finds them.
        ext_path = Path(self.get_ext_fullpath(ext.name)).resolve()
        out_dir = ext_path.parent
        out_dir.mkdir(parents=True, exist_ok=True)
        build_temp = Path(self.build_temp).resolve() / "cmake"
        build_temp.mkdir(parents=True, exist_ok=True)

        import pybind11

        cfg = os.environ.get("VQREC_FAST_BUILD_TYPE", "Release")
        args = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DCMAKE_BUILD_TYPE={cfg}",
            f"-DVQREC_FAST_CUDA={os.environ.get('VQREC_FAST_CUDA', 'AUTO')}",
        ]
        archs = os.environ.get("VQREC_FAST_CUDA_ARCHS")
        if archs:
            args.append(f"-DVQREC_FAST_CUDA_ARCHS={archs}")
        try:
            import ninja  # noqa: F401

            args += ["-G", "Ninja"]
        except ImportError:
            pass
        subprocess.run(["cmake", str(ROOT), *args], cwd=build_temp, check=True)
        jobs = str(max(1, os.cpu_count() or 1))
        subprocess.run(["cmake", "--build", ".", "--config", cfg, "-j", jobs], cwd=build_temp, check=True)
        self._cmake_out_dir = out_dir

    def copy_extensions_to_source(self) -> None:
        # --inplace copies only the declared extension (_C) back; the optional CUDA module is
        # built beside it by the same CMake run, so copy it along when it exists.
        super().copy_extensions_to_source()
        out_dir = getattr(self, "_cmake_out_dir", None)
        if out_dir is not None:
            import shutil

            for so in out_dir.glob("_C_cuda*"):
                shutil.copy2(so, ROOT / "vqrec_fast" / so.name)


setup(ext_modules=[CMakeExtension("vqrec_fast._C")], cmdclass={"build_ext": CMakeBuild})
