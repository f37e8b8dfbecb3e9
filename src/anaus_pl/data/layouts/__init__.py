"""Readers for the public ultrasound data set layouts, registered by name."""

import inspect

from anaus_pl.data.layouts.base import LAYOUTS, Layout, LayoutError, Sample, SampleRef, register


def get_layout(name: str, root: str, **options) -> Layout:
    """The reader registered as ``name``, rooted at ``root``, with its reader-specific ``options``."""
    _load_readers()
    if name not in LAYOUTS:
        raise LayoutError(f"unknown layout {name!r}; choose one of {sorted(LAYOUTS)}")
    cls = LAYOUTS[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "root")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise LayoutError(f"layout {name!r} has no option {unknown}; its options are {accepted or 'none'}")
    return cls(root, **options)


def _load_readers() -> None:
    """Import the reader modules so that they register themselves."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if module.name not in ("base", "cli"):
            importlib.import_module(f"{__name__}.{module.name}")


__all__ = ["LAYOUTS", "Layout", "LayoutError", "Sample", "SampleRef", "get_layout", "register"]
