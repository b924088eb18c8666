"""Heavy third-party modules imported on first use. numpy takes about a tenth of a second to
import, which commands that compute no metric (``ralign --help``, ``check-data``) need not
pay; the metric modules name it at the top as usual and it loads when a metric is computed."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """The module ``name``, its code run on its first attribute access (the standard library's
    ``LazyLoader``); the module itself when it is imported already."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
