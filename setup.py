# cffi has no pyproject-only configuration: this file only names the builder.
from setuptools import setup

setup(cffi_modules=["build_native.py:ffibuilder"])
