# cffi has no pyproject-only configuration: this file names the builder and tags the wheel.
# cffi compiles the extension against the stable ABI (it defines Py_LIMITED_API and names the
# module *.abi3.so); py_limited_api tells bdist_wheel so, making one cp310-abi3 wheel that
# serves every CPython >= 3.10 (requires-python in pyproject.toml).
import platform
import sysconfig

from setuptools import setup

options = {}
# Free-threaded CPython has no stable ABI: cffi then builds a version-specific module.
if platform.python_implementation() == "CPython" and not sysconfig.get_config_var("Py_GIL_DISABLED"):
    options["bdist_wheel"] = {"py_limited_api": "cp310"}

setup(cffi_modules=["build_native.py:ffibuilder"], options=options)
