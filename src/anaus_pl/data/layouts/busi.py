"""BUSI breast ultrasound (``Dataset_BUSI_with_GT/<class>/<class> (n).png`` + ``_mask[_k].png``)."""

from __future__ import annotations

import re
from collections import defaultdict

from anaus_pl.data.layouts._segmentation import PairedLayout
from anaus_pl.data.layouts._tree import child, find_dir, image_files, stem_of
from anaus_pl.data.layouts.base import SampleRef, natural_key, register

MASK_NAME = re.compile(r"^(?P<image>.*)_mask(?:_(?P<extra>\d+))?$", re.IGNORECASE)


@register
class BUSI(PairedLayout):
    """Breast lesions with benign/malignant/normal labels from the folder name.

    Every ``<image>_mask*.png`` of an image is merged (union): 17 images ship
    extra ``_mask_1``/``_mask_2`` lesions. Masks may be 0/255 grey, RGB or RGBA;
    normal images have all-zero masks (kept: they are true negatives).
    """

    name = "busi"
    anatomy = ("breast_lesion",)
    class_names = ("benign", "malignant", "normal")

    def index(self) -> list[SampleRef]:
        base = find_dir(self.root, "benign", "malignant", layout=self.name)
        refs = []
        for label, class_name in enumerate(self.class_names):
            folder = child(base, class_name)
            if folder is None:
                continue
            images, masks = [], defaultdict(list)
            for path in image_files(folder):
                match = MASK_NAME.match(stem_of(path))
                if match:
                    masks[match["image"].lower()].append(path)
                else:
                    images.append(path)
            for image in images:
                found = sorted(masks.get(stem_of(image).lower(), []), key=lambda path: natural_key(path.name))
                sources = tuple(str(path) for path in found) or (str(folder / f"{stem_of(image)}_mask.png"),)
                refs.append(SampleRef(source=str(image), label=label, files={"masks": sources, "value": 1}))
        return refs
