"""Sphinx configuration for the aiospead2 documentation (built with warnings as errors by
tests/test_docs.py)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spead2._version import __version__  # noqa: E402

project = "aiospead2"
author = "aiospead2 contributors"
copyright = "aiospead2 contributors"
version = release = __version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.doctest"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_theme_options = {"description": "asyncio-native SPEAD receiver", "fixed_sidebar": True}
html_static_path: list[str] = []
templates_path: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True}
default_role = "py:obj"
# Code blocks in the text are Python unless they say otherwise.
highlight_language = "python3"

doctest_global_setup = """
import numpy as np
import spead2
import spead2.recv
from spead2.tools import demo
"""
