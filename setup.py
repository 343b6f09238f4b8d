# SPDX-License-Identifier: Apache-2.0
"""The compiled part of the rxflow wheel, built by the project's own CMake (pyproject.toml has
the metadata). The extension `rxflow._rxflow` is the CMake target rxflow_python; this file only
configures and builds it, then puts the result where setuptools packs it.

Environment:
  RXFLOW_CMAKE_BUILD_DIR  a CMake build directory to use (configured here if it is empty);
                          default: a directory under setuptools' build_temp. Pointing it at an
                          existing build (`build/`) packs the module already built there.
  RXFLOW_CMAKE_ARGS       extra arguments for the first configuration (e.g.
                          "-DRXFLOW_WITH_POSTGRES=OFF").
"""
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent


def project_version() -> str:
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    match = re.search(r"^project\(rxflow VERSION ([0-9]+\.[0-9]+\.[0-9]+)", text, re.M)
    if not match:
        raise RuntimeError("CMakeLists.txt: no `project(rxflow VERSION x.y.z` line")
    return match.group(1)


class CMakeExtension(Extension):
    def __init__(self, name: str, target: str) -> None:
        super().__init__(name, sources=[])
        self.target = target


class CMakeBuild(build_ext):
    def build_extension(self, ext: CMakeExtension) -> None:
        build_dir = pathlib.Path(os.environ.get("RXFLOW_CMAKE_BUILD_DIR")
                                 or pathlib.Path(self.build_temp) / "cmake").resolve()
        cache = build_dir / "CMakeCache.txt"
        if cache.exists():
            # A reused build directory must be this source tree's, at this version.
            text = cache.read_text(encoding="utf-8", errors="replace")
            found = re.search(r"^CMAKE_PROJECT_VERSION:STATIC=(.*)$", text, re.M)
            if not found or found.group(1) != project_version():
                raise RuntimeError(f"{build_dir} was configured for rxflow "
                                   f"{found.group(1) if found else '(unknown)'}, this source "
                                   f"tree is {project_version()}")
        else:
            configure = [
                "cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja",
                "-DCMAKE_BUILD_TYPE=Release",
                "-DRXFLOW_BUILD_PYTHON=ON", "-DRXFLOW_BUILD_TESTS=OFF",
                "-DRXFLOW_BUILD_BENCHMARKS=OFF", "-DRXFLOW_BUILD_EXAMPLES=OFF",
                "-DRXFLOW_INSTALL=OFF", f"-DPython3_EXECUTABLE={sys.executable}",
                # Every component the module uses, or a configure error naming the missing
                # Debian package (not a wheel that quietly lacks PostgreSQL or EPCS); the
                # module does not use Kafka. RXFLOW_CMAKE_ARGS may override either.
                "-DRXFLOW_REQUIRE_ALL=ON", "-DRXFLOW_WITH_KAFKA=OFF",
            ]
            configure += shlex.split(os.environ.get("RXFLOW_CMAKE_ARGS", ""))
            subprocess.run(configure, check=True)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
        subprocess.run(["cmake", "--build", str(build_dir), "--target", ext.target, "-j", jobs],
                       check=True)
        # The module must be built for the interpreter running this build (its ABI tag).
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        built = sorted((build_dir / "bindings" / "python" / "rxflow").glob("_rxflow*.so"))
        if len(built) != 1 or not built[0].name.endswith(suffix):
            raise RuntimeError(f"expected one _rxflow{suffix} under {build_dir}, found "
                               f"{[b.name for b in built]} (a build directory configured for "
                               f"another Python?)")
        target = pathlib.Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], target)


setup(
    version=project_version(),
    ext_modules=[CMakeExtension("rxflow._rxflow", target="rxflow_python")],
    cmdclass={"build_ext": CMakeBuild},
)
