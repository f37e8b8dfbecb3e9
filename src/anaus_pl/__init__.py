"""anaus-pl: anatomy-anchored self-supervised learning for ultrasound (ANAUS) in PyTorch Lightning."""

import os as _os

# albumentations asks PyPI for updates on import; the pipeline must never touch the network.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
