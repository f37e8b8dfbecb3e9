"""Finding a data set inside the folder a user unpacked it to.

Downloads arrive wrapped in one or two extra folders (``archive/``,
``Thyroid Dataset/``, ``covid19_ultrasound/data/``) and folder names change
case between copies (``Convex`` vs ``convex``), so readers locate their data
by the entries it must hold rather than by one fixed path.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from anaus_pl.data.io import IMAGE_SUFFIXES, suffix_of
from anaus_pl.data.layouts.base import LayoutError, natural_key

SKIPPED_DIRS = frozenset({"__macosx", ".ds_store", ".git"})


def child(folder: Path, name: str) -> Path | None:
    """The entry of ``folder`` called ``name`` (exact match first, then case-insensitive)."""
    exact = folder / name
    if exact.exists():
        return exact
    if not folder.is_dir():
        return None
    lowered = name.lower()
    matches = sorted(entry for entry in folder.iterdir() if entry.name.lower() == lowered)
    return matches[0] if matches else None


def resolve(folder: Path, relative: str) -> Path | None:
    """``folder / relative`` resolved one part at a time with :func:`child`."""
    current: Path | None = folder
    for part in Path(relative).parts:
        current = child(current, part) if current is not None else None
    return current


def subdirs(folder: Path) -> list[Path]:
    """Sub-folders in natural order, without hidden and archive-tool folders."""
    return sorted(
        (
            entry
            for entry in folder.iterdir()
            if entry.is_dir() and not entry.name.startswith(".") and entry.name.lower() not in SKIPPED_DIRS
        ),
        key=lambda entry: natural_key(entry.name),
    )


def find_dir(root: Path, *markers: str, layout: str, max_depth: int = 4) -> Path:
    """The shallowest folder under ``root`` that holds every marker path (breadth first, natural order)."""
    queue: deque[tuple[Path, int]] = deque([(root, 0)])
    while queue:
        folder, depth = queue.popleft()
        if all(resolve(folder, marker) is not None for marker in markers):
            return folder
        if depth < max_depth:
            queue.extend((sub, depth + 1) for sub in subdirs(folder))
    raise LayoutError(
        f"{root}: no folder holding {', '.join(repr(m) for m in markers)} within {max_depth} levels; "
        f"this does not look like the {layout!r} layout (see data/README.md for the expected tree)"
    )


def image_files(folder: Path, suffixes: Iterable[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files of one folder (any suffix case) in natural order."""
    wanted = frozenset(suffixes)
    return sorted(
        (
            entry
            for entry in folder.iterdir()
            if entry.is_file() and not entry.name.startswith(".") and suffix_of(entry) in wanted
        ),
        key=lambda entry: natural_key(entry.name),
    )


def by_stem(files: Iterable[Path]) -> dict[str, Path]:
    """Map lower-case stems to files, so ``3.PNG`` pairs with ``3.png`` and ``0001.jpg`` with ``0001.png``."""
    return {stem_of(path).lower(): path for path in files}


def stem_of(path: Path) -> str:
    """File name without its (possibly double) suffix."""
    suffix = suffix_of(path)
    return path.name[: -len(suffix)] if suffix else path.name


def indexed_subset(items: list, split_file: Path, key: str) -> list:
    """The entries of ``items`` whose positions are listed under ``key`` in a TRFE-Net split JSON.

    The JSON holds indices into the file list sorted by the integer stem
    (natural order), which is the order ``items`` must be in.
    """
    try:
        indices = json.loads(split_file.read_text())[key]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise LayoutError(
            f"{split_file}: cannot read the {key!r} index list ({error}); re-download the split file"
        ) from error
    out_of_range = [i for i in indices if not 0 <= int(i) < len(items)]
    if out_of_range:
        raise LayoutError(
            f"{split_file}: indices {out_of_range[:5]} exceed the {len(items)} files found; "
            "the image folder is incomplete"
        )
    return [items[int(i)] for i in indices]
