"""The one compiled module: the direct wire encoder (server/accel/_cwire.pyx).

Everything else is in pyproject.toml. The module is optional: without a C compiler, or without Cython
(pip fetches it into the build environment; only an install with ``--no-build-isolation`` can lack
it), the install goes on without it and the codec encodes through protobuf, same output.
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup

# optional=True: setuptools reports a failed compile (no compiler, no Python headers) and goes on
extension = Extension("server.accel._cwire", ["server/accel/_cwire.pyx"], optional=True)

try:
    from Cython.Build import cythonize
except ImportError:
    print("cqrs-grpc: Cython is not installed; the compiled wire encoder is not built", file=sys.stderr)
    ext_modules = []
else:
    ext_modules = cythonize([extension], language_level=3, quiet=True)

setup(ext_modules=ext_modules)
