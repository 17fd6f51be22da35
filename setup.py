"""Build imageprov: the Python package, its Alembic scripts and the native reader.

The native CloudTrail reader needs a C++17 compiler and simdjson's headers and
library (Debian's `libsimdjson-dev`). Where either is missing it is left out, and
imageprov reads the same files with pysimdjson, more slowly. Where ISA-L's headers
and library are found too (Debian's `libisal-dev`), the reader also inflates gzip
log files itself.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.errors import CompileError, LinkError

ROOT = Path(__file__).resolve().parent


class BuildWithMigrations(build_py):
    """Ship the Alembic scripts inside the package as `imageprov/_migrations`."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "imageprov" / "_migrations"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(ROOT / "migrations", target,
                        ignore=shutil.ignore_patterns("__pycache__"))


_ISAL_PROBE = """#include <isa-l/igzip_lib.h>
int main(void) {
    struct inflate_state state;
    isal_inflate_init(&state);
    return 0;
}
"""


class BuildWithIsal(build_ext):
    """Build the native reader with ISA-L's inflater where its library is found."""

    def _isal_found(self) -> bool:
        with tempfile.TemporaryDirectory() as scratch:
            probe = Path(scratch) / "probe.c"
            probe.write_text(_ISAL_PROBE)
            try:
                objects = self.compiler.compile([str(probe)], output_dir=scratch)
                self.compiler.link_executable(objects, "probe", output_dir=scratch,
                                              libraries=["isal"])
            except (CompileError, LinkError):
                return False
        return True

    def build_extensions(self) -> None:
        found = self._isal_found()
        for extension in self.extensions:
            if found:
                extension.define_macros.append(("IMAGEPROV_WITH_ISAL", "1"))
                extension.libraries.append("isal")
        super().build_extensions()


setup(
    cmdclass={"build_py": BuildWithMigrations, "build_ext": BuildWithIsal},
    ext_modules=[
        Extension(
            "imageprov.sources.aws._trailscan",
            sources=["src/imageprov/sources/aws/_trailscan.cpp"],
            libraries=["simdjson"],
            language="c++",
            extra_compile_args=["-std=c++17", "-O2"],
            optional=True,
        )
    ],
)
