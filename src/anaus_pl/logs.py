"""Console logging of the ``anaus_pl`` loggers, set up once per process (CLI and every DDP rank)."""

from __future__ import annotations

import logging


def configure_logging(level: int = logging.INFO) -> None:
    """Send ``anaus_pl`` log records to the console once per process."""
    logger = logging.getLogger("anaus_pl")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(level)
