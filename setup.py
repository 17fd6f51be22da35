"""Build imageprov: the Python package, its Alembic scripts and the native reader.

The native CloudTrail reader needs a C++17 compiler and simdjson's headers and
library (Debian's `libsimdjson-dev`). Where either is missing it is left out, and
imageprov reads the same files with pysimdjson, more slowly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithMigrations(build_py):
    """Ship the Alembic scripts inside the package as `imageprov/_migrations`."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "imageprov" / "_migrations"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(ROOT / "migrations", target,
                        ignore=shutil.ignore_patterns("__pycache__"))


setup(
    cmdclass={"build_py": BuildWithMigrations},
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
