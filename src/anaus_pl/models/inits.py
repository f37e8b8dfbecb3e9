"""Encoder inits of the evaluate stage: the init string parsed once into :class:`Init`.

* ``encoder:<path>``: an anaus-pl export (``encoder.pt`` + ``encoder.json``, or their folder);
* ``random``: the configured architecture with random weights;
* ``torchvision:<file>`` / ``timm:<file>``: a user's state dict for that library's architecture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

InitKind = Literal["encoder", "random", "torchvision", "timm"]
INIT_KINDS: tuple[InitKind, ...] = ("encoder", "random", "torchvision", "timm")
INIT_FORMS = "encoder:<path>, random, torchvision:<file> or timm:<file>"


@dataclass(frozen=True)
class Init:
    """One init: its kind and, but for ``random``, the file it loads; ``str()`` gives the init string back."""

    kind: InitKind
    path: str = ""

    @classmethod
    def parse(cls, text: str | Init) -> Init:
        """The init of ``text`` (an :class:`Init` passes through); a clear error names the accepted forms."""
        if isinstance(text, Init):
            return text
        kind, _, path = str(text).partition(":")
        if kind not in INIT_KINDS:
            raise ValueError(f"init {text!r}: use {INIT_FORMS}")
        if kind == "random" and path:
            raise ValueError(f"init {text!r}: random takes no path; write random")
        if kind != "random" and not path:
            raise ValueError(f"init {text!r}: give the file, {kind}:<path>")
        return cls(cast(InitKind, kind), path)

    @classmethod
    def encoder(cls, path: str | Path) -> Init:
        """The init of an anaus-pl export at ``path``."""
        return cls("encoder", str(path))

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}" if self.path else self.kind

    @property
    def label(self) -> str:
        """A short, file-name-safe name (``encoder:runs/x/encoder.pt`` -> ``encoder-x``)."""
        if not self.path:
            return self.kind
        path = Path(self.path)
        stem = path.parent.name if path.name == "encoder.pt" else path.stem
        return f"{self.kind}-{stem}".replace(" ", "_")


def init_label(init: str | Init) -> str:
    """The :attr:`Init.label` of an init string."""
    return Init.parse(init).label
