"""Sphinx configuration of the skdcec documentation."""

import os
import sys

# Build the documentation of this checkout, even when another copy is installed.
sys.path.insert(0, os.path.abspath(".."))

import skdcec

project = "skdcec"
author = "skdcec developers"
copyright = "the skdcec developers"
version = release = skdcec.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "sg_execution_times.rst"]
default_role = "literal"

# API reference: one page per object, generated from the docstrings.
autosummary_generate = True
autodoc_default_options = {"members": False, "inherited-members": False}
# Methods are listed by the class template, so numpydoc need not add its own table.
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

html_theme = "pydata_sphinx_theme"
html_title = f"skdcec {release}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_sidebars = {"changelog": [], "install": [], "quickstart": []}

# The gallery: examples/plot_*.py are run and rendered with their figures.
# examples/quickstart_digits.py (the README's main job) stays out of it.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"^(?!plot_)",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib",),
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "show_memory": False,
    "remove_config_comments": True,
}
