"""Your own images as a folder tree: ``images/`` + ``masks/`` (segmentation) or one subfolder per class.

Segmentation::

    root/images/case01_a.png   root/masks/case01_a.png   (same stem; any image suffix)

Classification::

    root/benign/*.png  root/malignant/*.png               (class names = folder names)
"""

from __future__ import annotations

from pathlib import Path

from anaus_pl.data.layouts._generic import AnatomySpec, GenericLayout, class_names_of, compile_group_pattern, group_of
from anaus_pl.data.layouts._segmentation import pair_refs
from anaus_pl.data.layouts._tree import child, image_files, subdirs
from anaus_pl.data.layouts.base import LayoutError, SampleRef, register


@register
class Folder(GenericLayout):
    """A generic folder tree; segmentation when ``root/<images>`` exists, else classification.

    Args:
        root: the tree's top folder.
        anatomy: names of the mask values (see :mod:`anaus_pl.data.layouts._generic`); default one
            binary class ``foreground``.
        images, masks: the two folder names of a segmentation tree.
        classes: class folder names in label order (default: every subfolder, sorted).
        group_pattern: regular expression on the file name giving the patient / group id (named group
            ``group``, else the first group, else the whole match), e.g. ``^(\\w+?)_`` for ``case01_a.png``;
            frames of one group never land on both sides of a split.
    """

    name = "folder"

    def __init__(
        self,
        root: str | Path,
        anatomy: AnatomySpec = None,
        images: str = "images",
        masks: str = "masks",
        classes: list[str] | None = None,
        group_pattern: str | None = None,
    ) -> None:
        super().__init__(root, anatomy)
        self.images, self.masks, self.classes = images, masks, classes
        self.group_pattern = compile_group_pattern(group_pattern, self.name)
        self.image_dir = child(self.root, images)
        if self.image_dir is None:
            folders = [folder for folder in subdirs(self.root) if folder.name.lower() != masks.lower()]
            if not folders:
                raise LayoutError(
                    f"{self.root}: neither an {images!r} folder (segmentation) nor class subfolders "
                    "(classification); see data/README.md, 'Your own data'"
                )
            self.task = "classification"
            self.class_names = class_names_of([folder.name for folder in folders], classes, str(self.root))

    def _patient(self, path: Path) -> str | None:
        return group_of(path.name, self.group_pattern, str(path.parent))

    def index(self) -> list[SampleRef]:
        if self.task == "segmentation":
            mask_dir = child(self.root, self.masks)
            if mask_dir is None:
                raise LayoutError(f"{self.root}: {self.images!r} found but no {self.masks!r} folder beside it")
            return pair_refs(self.image_dir, mask_dir, patient_of=self._patient, **self.encoding)
        refs = []
        for label, class_name in enumerate(self.class_names):
            folder = child(self.root, class_name)
            if folder is None:
                raise LayoutError(
                    f"{self.root}: class folder {class_name!r} not found (classes: {list(self.class_names)})"
                )
            refs += [
                SampleRef(source=str(path), label=label, patient=self._patient(path)) for path in image_files(folder)
            ]
        return refs
