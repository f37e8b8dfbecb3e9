"""What the generic layouts (``folder``, ``datalist``) share: mask values named by the user, group ids, loading.

A user's masks carry values that no reader knows in advance, so the run's
config names them (``anatomy``):

- ``[lesion]``: one name, binary masks (0/1, 0/255 or JPEG-noisy 0/255) are binarised;
- ``[lv, myocardium, la]``: several names, mask value ``k`` is the k-th name;
- ``{128: lesion, 255: lesion, 64: gland}``: raw value -> name; 0 is background and
  any other value is an error naming the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from anaus_pl.data.io import read_frame
from anaus_pl.data.layouts._segmentation import PairedLayout
from anaus_pl.data.layouts.base import LayoutError, Sample, SampleRef, natural_key

AnatomySpec = Union[Sequence[str], Mapping[int, str], None]


def mask_encoding(anatomy: AnatomySpec, layout: str) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The anatomy names and the :class:`SampleRef` ``files`` encoding (``value`` or ``values``) of ``anatomy``."""
    if anatomy is None:
        return ("foreground",), {"value": 1}
    if isinstance(anatomy, Mapping):
        try:
            raw = {int(value): str(name) for value, name in anatomy.items()}
        except (TypeError, ValueError):
            raise LayoutError(f"{layout}: anatomy keys must be mask values 1..255, got {list(anatomy)}") from None
        bad = [value for value in raw if not 0 < value < 256]
        if bad or not raw:
            raise LayoutError(
                f"{layout}: anatomy maps mask values 1..255 to names (0 is background), got {sorted(raw)}"
            )
        names = tuple(dict.fromkeys(raw[value] for value in sorted(raw)))
        return names, {"values": {0: 0, **{value: names.index(name) + 1 for value, name in raw.items()}}}
    if isinstance(anatomy, str) or not anatomy:
        raise LayoutError(f"{layout}: anatomy is a list of names or a {{mask value: name}} mapping, got {anatomy!r}")
    names = tuple(str(name) for name in anatomy)
    if len(set(names)) != len(names):
        raise LayoutError(f"{layout}: anatomy names repeat in {list(names)}; map values to one name with a mapping")
    if len(names) == 1:
        return names, {"value": 1}
    return names, {"values": {k: k for k in range(len(names) + 1)}}


def group_of(name: str, pattern: re.Pattern[str] | None, where: str) -> str | None:
    """The group id that ``pattern`` finds in the file name ``name`` (named group ``group``, else group 1, else the match)."""
    if pattern is None:
        return None
    match = pattern.search(name)
    if match is None:
        raise LayoutError(
            f"{where}: file name {name!r} does not match group_pattern {pattern.pattern!r}; "
            "fix the pattern or rename the file"
        )
    if "group" in pattern.groupindex:
        return match["group"]
    return match[1] if pattern.groups else match[0]


def compile_group_pattern(pattern: str | None, layout: str) -> re.Pattern[str] | None:
    """``group_pattern`` compiled, or a :class:`LayoutError` saying why it is no regular expression."""
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as error:
        raise LayoutError(f"{layout}: group_pattern {pattern!r} is no regular expression ({error})") from None


def class_names_of(found: Sequence[str], classes: Sequence[str] | None, where: str) -> tuple[str, ...]:
    """The class names: ``classes`` in the given order (every found label must be one), else the found ones sorted."""
    if classes is None:
        return tuple(sorted(set(found), key=natural_key))
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise LayoutError(
            f"{where}: labels {unknown} are not among classes {list(classes)}; add them or fix the labels"
        )
    return tuple(classes)


class GenericLayout(PairedLayout):
    """A layout whose task (segmentation, classification or frames) is decided by the data it finds."""

    def __init__(self, root: str | Path, anatomy: AnatomySpec = None) -> None:
        super().__init__(root)
        self.anatomy, self.encoding = mask_encoding(anatomy, self.name)
        self.task = "segmentation"

    def load(self, ref: SampleRef) -> Sample:
        if "masks" in ref.files:
            return super().load(ref)
        return Sample(image=read_frame(ref.source), source=ref.source, label=ref.label, patient=ref.patient)
