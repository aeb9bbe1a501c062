"""The one compiled module: the direct wire encoder (server/codec/_cwire.pyx).

Everything else is in pyproject.toml. The module is optional: without Cython (pip fetches it for the
build; not there offline without build isolation) or a C compiler, the install goes on without it and
the generated Python encoder serves instead, with the same output.
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup

# optional=True: setuptools reports a failed compile (no compiler, no Python headers) and goes on
extension = Extension("server.codec._cwire", ["server/codec/_cwire.pyx"], optional=True)

try:
    from Cython.Build import cythonize
except ImportError:
    print("cqrs-grpc: Cython is not installed; the compiled wire encoder is not built", file=sys.stderr)
    ext_modules = []
else:
    ext_modules = cythonize([extension], language_level=3, quiet=True)

setup(ext_modules=ext_modules)
