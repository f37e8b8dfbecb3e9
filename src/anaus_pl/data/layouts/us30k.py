"""The SAMUS "US30K" converted layout (``US30K/<Folder>/{img,label}/<name>.png``, ``MainPatient/``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from anaus_pl.data.layouts._segmentation import PairedLayout, pair_refs
from anaus_pl.data.layouts._tree import find_dir, resolve, subdirs
from anaus_pl.data.layouts.base import LayoutError, SampleRef, register

log = logging.getLogger(__name__)

ANATOMY = ("thyroid_gland", "thyroid_nodule", "lv", "myocardium", "la", "breast_lesion")

# Folder -> anatomy of its mask values 1..n. SAMUS calls the TG3K folder "ThyroidNodule-TG3K"
# although TG3K masks are the gland; ANAUS calls its DDTI folder "ThyroidGland-DDTI" although DDTI masks are nodules.
FOLDERS: dict[str, tuple[str, ...]] = {
    "Breast-BUSI": ("breast_lesion",),
    "Breast-UDIAT": ("breast_lesion",),
    "Echocardiography-CAMUS": ("lv", "myocardium", "la"),
    "Echocardiography-HMCQU": ("myocardium",),
    "ThyroidNodule-DDTI": ("thyroid_nodule",),
    "ThyroidGland-DDTI": ("thyroid_nodule",),
    "ThyroidNodule-TG3K": ("thyroid_gland",),
    "ThyroidGland-TG3K": ("thyroid_gland",),
    "ThyroidNodule-TN3K": ("thyroid_nodule",),
}


def patient_of(folder: str, stem: str) -> str | None:
    """CAMUS ``0001_2CH_000`` and HMC-QU ``0001_ch4_000`` name their patient first; the others have none."""
    if folder.startswith("Echocardiography-"):
        return f"{folder}/{stem.split('_')[0]}"
    return None


def listed_names(list_file: Path) -> set[tuple[str, str]]:
    """``(folder, name)`` pairs of a MainPatient list (``<class>/<folder>/<name>`` or ``<folder>/<name>``)."""
    pairs = set()
    for line in list_file.read_text().splitlines():
        parts = line.strip().split("/")
        if len(parts) >= 2:
            pairs.add((parts[-2], parts[-1]))
    return pairs


@register
class US30K(PairedLayout):
    """Every known US30K folder, masks mapped into one vocabulary (binary folders are 1-bit or 0/255 PNG;
    CAMUS keeps 0..3). ``folders`` restricts the folders read; ``split`` reads ``MainPatient/<split>.txt``."""

    name = "us30k"
    anatomy = ANATOMY

    def __init__(
        self, root: str | Path, folders: list[str] | None = None, split: Literal["all", "train", "val", "test"] = "all"
    ) -> None:
        super().__init__(root)
        unknown = sorted(set(folders or ()) - set(FOLDERS))
        if unknown:
            raise LayoutError(f"us30k: unknown folders {unknown}; known: {sorted(FOLDERS)}")
        if split not in ("all", "train", "val", "test"):
            raise LayoutError(f"us30k: unknown split {split!r}; choose all, train, val or test")
        self.folders, self.split = folders, split

    def index(self) -> list[SampleRef]:
        base = find_dir(self.root, "MainPatient", layout=self.name)
        listed = None
        if self.split != "all":
            list_file = resolve(base, f"MainPatient/{self.split}.txt")
            if list_file is None:
                raise LayoutError(
                    f"{base / 'MainPatient'}: {self.split}.txt not found; it is needed for split={self.split!r}"
                )
            listed = listed_names(list_file)
        refs = []
        for folder in subdirs(base):
            if folder.name not in FOLDERS or (self.folders and folder.name not in self.folders):
                if folder.name not in FOLDERS and folder.name != "MainPatient":
                    log.warning("us30k: skipping %s, not a known US30K folder (%s)", folder, ", ".join(FOLDERS))
                continue
            values = {raw: ANATOMY.index(name) + 1 for raw, name in enumerate(FOLDERS[folder.name], 1)}
            encoding = {"value": values[1]} if len(values) == 1 else {"values": {0: 0, **values}}
            for ref in pair_refs(
                folder / "img",
                folder / "label",
                patient_of=lambda path, folder=folder: patient_of(folder.name, path.stem),
                **encoding,
            ):
                if listed is None or (folder.name, Path(ref.source).stem) in listed:
                    refs.append(ref)
        return refs
