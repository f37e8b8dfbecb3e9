"""Readers for the public ultrasound data set layouts, registered by name."""

from anaus_pl.data.layouts.base import LAYOUTS, Layout, LayoutError, Sample, SampleRef, register


def get_layout(name: str, root: str) -> Layout:
    """The reader registered as ``name``, rooted at ``root``."""
    _load_readers()
    if name not in LAYOUTS:
        raise LayoutError(f"unknown layout {name!r}; choose one of {sorted(LAYOUTS)}")
    return LAYOUTS[name](root)


def _load_readers() -> None:
    """Import the reader modules so that they register themselves."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if module.name not in ("base", "cli"):
            importlib.import_module(f"{__name__}.{module.name}")


__all__ = ["LAYOUTS", "Layout", "LayoutError", "Sample", "SampleRef", "get_layout", "register"]
