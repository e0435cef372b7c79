"""Models: every module of this package registers its backbones, methods and heads on import,
so a new one is a new file here and nothing else (see docs/architecture.md)."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
