"""The one compiled module: the direct wire encoder (server/codec/_cwire.pyx).

Everything else is in pyproject.toml. The extension is optional: without a C compiler the build
goes on and the generated Python encoder serves instead (same output, about ten times slower).
"""

from __future__ import annotations

import sys

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build the extension if this machine can; never fail the install over it."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # no compiler, no Python headers
            print(f"cqrs-grpc: the compiled wire encoder was not built ({error})", file=sys.stderr)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:
            print(f"cqrs-grpc: {ext.name} was not built ({error})", file=sys.stderr)


setup(
    ext_modules=cythonize(
        [Extension("server.codec._cwire", ["server/codec/_cwire.pyx"], optional=True)],
        language_level=3,
        quiet=True,
    ),
    cmdclass={"build_ext": OptionalBuildExt},
)
