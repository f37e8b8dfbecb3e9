"""``anaus-pl evaluate --config stages/evaluate.yaml``: parse the config, run the folds, write the report.

Configs compose as in the other stages: later ``--config`` files and command-line
values override earlier ones. Tasks compose by name: ``add_tasks`` entries change
the fields they give of the task of the same name, or add a task; ``drop_tasks``
removes tasks. A trainer preset (``configs/trainer/*.yaml``) sets ``accelerator``,
``devices`` and ``precision``. ``{run}`` in any value is the run name (``--run``).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from anaus_pl.evaluation.config import EvaluateConfig
from anaus_pl.run_name import RunName, fill_run

log = logging.getLogger("anaus_pl.evaluate")


@dataclasses.dataclass
class TrainerPreset:
    """The keys of ``configs/trainer/*.yaml``. evaluate uses ``accelerator``, ``devices`` and ``precision``;
    it fits one fold per process, so the distributed keys are accepted (one preset serves every stage) and unused."""

    accelerator: Optional[str] = None
    devices: Optional[Union[int, str]] = None
    precision: Optional[str] = None
    num_nodes: Optional[int] = None
    strategy: Optional[str] = None
    sync_batchnorm: Optional[bool] = None
    use_distributed_sampler: Optional[bool] = None
    plugins: Optional[Any] = None


def parser() -> ArgumentParser:
    """The evaluate command's parser: every field of :class:`EvaluateConfig`, overridable on the command line."""
    p = ArgumentParser(
        prog="anaus-pl evaluate",
        description="k-fold downstream evaluation of encoder inits",
        default_meta=False,
        exit_on_error=True,
    )
    p.add_argument("--config", action=ActionConfigFile, help="YAML config, e.g. stages/evaluate.yaml (repeatable)")
    p.add_argument("--run", type=RunName, default="default", help="run name: replaces {run} in every value (paths)")
    p.add_class_arguments(EvaluateConfig, None, as_group=False)
    p.add_argument(
        "--add_tasks",
        type=Optional[list[dict[str, Any]]],
        default=None,
        help="tasks to change or add, by name: '[{name: busi-seg, epochs: 5}]' (append one: --add_tasks+ '{...}')",
    )
    p.add_argument("--drop_tasks", type=Optional[list[str]], default=None, help="names of tasks to leave out")
    p.add_dataclass_arguments(TrainerPreset, "trainer", default=None)
    return p


def merge_tasks(
    tasks: list[dict[str, Any]], updates: Sequence[dict[str, Any]], drop: Sequence[str]
) -> list[dict[str, Any]]:
    """``tasks`` with each update applied to the task of its ``name`` (or appended as a new task), then ``drop`` removed."""
    merged = {task["name"]: dict(task) for task in tasks}
    for update in updates:
        if "name" not in update:
            raise ValueError(f"add_tasks entry {update} has no 'name': name the task to change or add")
        merged[update["name"]] = {**merged.get(update["name"], {}), **update}
    unknown = sorted(set(drop) - set(merged))
    if unknown:
        raise ValueError(f"drop_tasks: no tasks {unknown}; configured tasks are {sorted(merged)}")
    return [task for name, task in merged.items() if name not in set(drop)]


def resolve(argv: Sequence[str]) -> tuple[ArgumentParser, Namespace]:
    """The final configuration: tasks merged, the trainer preset applied, ``{run}`` filled in, types checked."""
    p = parser()
    raw = p.parse_args(list(argv)).as_dict()
    raw.pop("config", None)
    raw["tasks"] = merge_tasks(raw["tasks"] or [], raw.pop("add_tasks") or [], raw.pop("drop_tasks") or [])
    apply_trainer_preset(raw, raw.pop("trainer") or {})
    return p, p.parse_object(fill_run(raw, raw["run"]))


def apply_trainer_preset(config: dict[str, Any], preset: dict[str, Any]) -> None:
    """Set ``config``'s accelerator and precision from a trainer preset, and one device per fold (logged)."""
    for key in ("accelerator", "precision"):
        if preset.get(key) is not None:
            config[key] = preset[key]
    if preset.get("devices") is not None:
        config["devices"] = 1
        if preset["devices"] not in (1, "1"):
            log.info(
                "trainer preset devices %s: evaluate fits each fold on 1 device (folds in parallel: only_folds, "
                "one SLURM array task each)",
                preset["devices"],
            )
    unused = sorted(
        key
        for key in ("num_nodes", "strategy", "sync_batchnorm", "plugins")
        if preset.get(key) not in (None, 1, False, "auto")
    )
    if unused:
        log.info("trainer preset: %s not used by evaluate (one fold per process)", unused)


def parse(argv: Sequence[str]) -> EvaluateConfig:
    """An :class:`EvaluateConfig` from command-line arguments (wrong values are reported by jsonargparse)."""
    p, namespace = resolve(argv)
    namespace = p.instantiate_classes(namespace)
    try:
        return EvaluateConfig(**{key: namespace[key] for key in EvaluateConfig.__dataclass_fields__})
    except (TypeError, ValueError) as error:
        raise SystemExit(f"anaus-pl evaluate: {error}") from None


def check_files(config: EvaluateConfig) -> None:
    """Pre-flight, before any data is read or model built: ``out_dir`` can be written, every task's root
    folder exists and every init's files look right."""
    from anaus_pl.models.downstream import check_init
    from anaus_pl.preflight import require_folder, require_writable

    require_writable(config.out_dir, "out_dir")
    for task in config.tasks:
        if config.only_tasks is None or task.name in config.only_tasks:
            require_folder(task.root, f"the root of task {task.name!r} (tasks[].root)")
    for init in config.inits:
        check_init(init)


def main(argv: Sequence[str]) -> int:
    """Run the evaluation described by ``--config``; prints where the report is.

    ``--print_config`` prints the final configuration (tasks merged, ``{run}`` filled in) and exits.
    """
    from anaus_pl.evaluation.runner import evaluate

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    argv = list(argv)
    printing = "--print_config" in argv
    p, namespace = resolve([arg for arg in argv if arg != "--print_config"])
    if printing:
        sys.stdout.write(p.dump(namespace))
        return 0
    config = parse(argv)
    check_files(config)
    log.info(
        "evaluate run %r: accelerator %s, devices %s, precision %s -> %s",
        namespace["run"],
        config.accelerator,
        config.devices,
        config.precision,
        config.out_dir,
    )
    if config.only_tasks is None and config.only_folds is None:
        out_dir = Path(config.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        partial = out_dir / "config.yaml.partial"
        partial.write_text(p.dump(namespace))
        partial.replace(out_dir / "config.yaml")
    report = evaluate(config)
    print(
        f"report: {report.with_suffix('.md')}"
        if report
        else "restricted run finished; rerun without only_* for the report"
    )
    return 0
