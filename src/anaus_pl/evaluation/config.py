"""The evaluate stage's configuration (parsed by jsonargparse from ``stages/evaluate.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from anaus_pl.evaluation.kinds import DownstreamKind, get_kind
from anaus_pl.models.inits import INIT_FORMS, Init, init_label


@dataclass
class TaskConfig:
    """One downstream task: where its data is and the protocol it is trained with.

    Args:
        name: the task's name in results and reports (``pocus-cls``, ``udiat-seg``, ...).
        layout: reader name for :func:`anaus_pl.data.layouts.get_layout` (``busi``, ``pocus-uscl``, ...).
        root: the data set's root folder.
        layout_options: reader options (e.g. ``{stride: 3}`` for HMC-QU or POCUS frames; see data/README.md).
        kind: a registered task kind (``classification``, ``segmentation``; see ``anaus_pl.evaluation.kinds``).
        protocols: what is measured per init: ``finetune`` (train the backbone's last stages and a head),
            ``linear`` (frozen backbone: a linear probe on pooled features for classification, a light decoder on
            frozen multi-scale features for segmentation) and ``knn`` (classification: cosine kNN on frozen
            pooled features). Empty: every protocol of the kind.
        head: the fine-tuning head: ``linear`` for classification; ``fpn`` (fast) or ``maskrcnn`` (paper) for
            segmentation (empty: the kind's first).
        foreground: anatomy names forming the segmentation foreground (all of the reader's when empty).
        empty_masks: segmentation images whose mask is empty (BUSI normals): ``exclude`` them or ``include``
            them, scored by the empty-mask policy of docs/evaluate.md.
        folds: ``auto`` (the layout's official folds when it has them, else generated), ``official`` or ``generated``.
        image_size: letterboxed input size in pixels.
        epochs: training epochs per fold (paper classification: 30).
        batch_size: training batch size (paper classification: 32).
        optimizer: ``adam`` (paper classification) or ``sgd`` (paper Mask R-CNN).
        lr: learning rate (paper classification: 0.01).
        weight_decay: weight decay (paper: 1e-4).
        mode: ``finetune`` (last ``trainable_stages`` backbone stages), ``linear`` (probe) or ``full``.
        trainable_stages: backbone stages trained in ``finetune`` mode (paper: the last three).
        patience: early-stopping patience in epochs on the inner validation split (None: no early stopping).
        fpn_channels: channels of the FPN (both segmentation heads).
        crop_scale: area range of the random resized crop augmentation.
        label_fraction: share of each fold's training images used (low-label regimes); the subset is
            drawn with the fold's seed, stratified by class for classification, at least one image per class.
        knn_k: neighbours of the ``knn`` protocol.
        foreground_prior: segmentation: initial foreground probability of the mask-logit layer of the ``fpn``
            head and of the frozen protocol's decoder (None: zero bias, i.e. 0.5 everywhere).
        probe_weight_decay: L2 penalty of the ``linear`` protocol's logistic regression (standardised features).
        probe_epochs: epochs of the segmentation ``linear`` protocol's light decoder (width ``fpn_channels``).
    """

    name: str
    layout: str
    root: str
    kind: str
    layout_options: dict[str, Any] = field(default_factory=dict)
    protocols: list[str] = field(default_factory=list)
    head: str = ""
    foreground: list[str] = field(default_factory=list)
    empty_masks: Literal["exclude", "include"] = "exclude"
    folds: Literal["auto", "official", "generated"] = "auto"
    image_size: int = 224
    epochs: int = 30
    batch_size: int = 32
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 0.01
    weight_decay: float = 1e-4
    mode: Literal["finetune", "linear", "full"] = "finetune"
    trainable_stages: int = 3
    patience: Optional[int] = None
    fpn_channels: int = 64
    crop_scale: tuple[float, float] = (0.8, 1.0)
    label_fraction: float = 1.0
    knn_k: int = 20
    foreground_prior: Optional[float] = None
    probe_weight_decay: float = 1e-3
    probe_epochs: int = 40

    def __post_init__(self) -> None:
        if not 0 < self.label_fraction <= 1:
            raise ValueError(f"task {self.name!r}: label_fraction must be in (0, 1], got {self.label_fraction}")
        kind = self.task_kind
        self.head = self.head or kind.heads[0]
        if self.head not in kind.heads:
            raise ValueError(
                f"task {self.name!r}: a {self.kind} task needs head {' or '.join(kind.heads)}, got {self.head!r}"
            )
        self.protocols = list(self.protocols or kind.protocols)
        unknown = [p for p in self.protocols if p not in kind.protocols]
        if unknown or len(set(self.protocols)) != len(self.protocols):
            raise ValueError(
                f"task {self.name!r}: protocols {self.protocols} must be distinct values of {list(kind.protocols)}"
            )
        if self.knn_k < 1 or self.probe_epochs < 1:
            raise ValueError(f"task {self.name!r}: need knn_k >= 1 and probe_epochs >= 1")
        if self.image_size < 32 or self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"task {self.name!r}: need image_size >= 32, epochs >= 1 and batch_size >= 2")

    @property
    def task_kind(self) -> DownstreamKind:
        """The registered kind object of ``kind``."""
        return get_kind(self.kind)


@dataclass
class EvaluateConfig:
    """The whole evaluation: tasks x inits x folds.

    Args:
        tasks: the downstream tasks.
        inits: encoder inits to compare: ``encoder:<path>``, ``random``, ``torchvision:<file>``, ``timm:<file>``.
        out_dir: output folder (results, folds, report, figures, TensorBoard).
        arch: backbone architecture for ``random`` and user weight files.
        library: ``torchvision`` or ``timm`` for ``random`` inits.
        n_folds: cross-validation folds.
        seed: fold seed; fold k of repeat r trains with seed ``seed + 1000 r + k`` for every init alike.
        repeats: reruns of the cross-validation with new seeds (generated folds are redrawn with fold seed
            ``seed + r``; official folds stay and only the training seed changes); paired statistics use
            folds x repeats units.
        reference: the init (string or label) every other init is compared with, per fold (paired).
        val_fraction: share of a fold's training part held out for model selection / early stopping.
        selection: ``inner_validation`` (honest) or ``test_fold_best_epoch`` (USCL/HiCo/ANAUS-compatible:
            the best epoch is chosen on the test fold; reports say so in their title).
        accelerator, devices, precision: passed to the Lightning Trainer.
        num_workers: DataLoader workers.
        compile: ``torch.compile`` each fine-tuned model (off by default: slow to compile on a CPU).
        progress_bar: Lightning's per-epoch bar (the per-unit progress is always shown).
        overlay_cases: best and worst segmentation cases drawn per task and init.
        only_tasks: run only these tasks (e.g. one SLURM array task each); no report is written.
        only_folds: run only these fold indices (0-based; e.g. one SLURM array task each); no report is written.
    """

    tasks: list[TaskConfig]
    inits: list[str]
    out_dir: str = "runs/evaluate/default"
    arch: str = "resnet18"
    library: Literal["torchvision", "timm"] = "torchvision"
    n_folds: int = 5
    seed: int = 0
    val_fraction: float = 0.2
    selection: Literal["inner_validation", "test_fold_best_epoch"] = "inner_validation"
    accelerator: str = "auto"
    devices: Union[int, str] = 1
    precision: str = "32-true"
    num_workers: int = 0
    compile: bool = False
    progress_bar: bool = False
    overlay_cases: int = 4
    only_tasks: Optional[list[str]] = None
    only_folds: Optional[list[int]] = None
    repeats: int = 1
    reference: str = "random"

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {self.repeats}")
        if len(self.inits) > 1 and self.reference_init is None:
            raise ValueError(
                f"reference {self.reference!r} is none of the inits {self.inits} (give an init or its label)"
            )
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        unknown = sorted(set(self.only_tasks or []) - set(names))
        if unknown:
            raise ValueError(f"only_tasks: unknown tasks {unknown}; configured tasks are {names}")
        bad_folds = sorted(k for k in self.only_folds or [] if not 0 <= k < self.n_folds)
        if bad_folds:
            raise ValueError(f"only_folds: {bad_folds} outside 0..{self.n_folds - 1}")
        if not self.inits:
            raise ValueError(f"give at least one init ({INIT_FORMS})")
        for init in self.inits:
            Init.parse(init)

    @property
    def reference_init(self) -> str | None:
        """The init string the others are compared with (None when ``reference`` is not among the inits)."""
        return next((i for i in self.inits if self.reference in (i, init_label(i))), None)
