"""``anaus-pl evaluate --config stages/evaluate.yaml``: parse the config, run the folds, write the report."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from jsonargparse import ActionConfigFile, ArgumentParser

from anaus_pl.evaluation.config import EvaluateConfig


def parser() -> ArgumentParser:
    """The evaluate command's parser: every field of :class:`EvaluateConfig`, overridable on the command line."""
    p = ArgumentParser(prog="anaus-pl evaluate", description="k-fold downstream evaluation of encoder inits",
                       default_meta=False, exit_on_error=True)
    p.add_argument("--config", action=ActionConfigFile, help="YAML config, e.g. stages/evaluate.yaml")
    p.add_class_arguments(EvaluateConfig, None, as_group=False)
    return p


def parse(argv: Sequence[str]) -> EvaluateConfig:
    """An :class:`EvaluateConfig` from command-line arguments (wrong values are reported by jsonargparse)."""
    p = parser()
    namespace = p.parse_args(list(argv))
    namespace = p.instantiate_classes(namespace)
    return EvaluateConfig(**{key: namespace[key] for key in EvaluateConfig.__dataclass_fields__})


def main(argv: Sequence[str]) -> int:
    """Run the evaluation described by ``--config``; prints where the report is."""
    from anaus_pl.evaluation.runner import evaluate

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    report = evaluate(parse(argv))
    print(f"report: {report.with_suffix('.md')}" if report else "restricted run finished; rerun without only_* for the report")
    return 0
