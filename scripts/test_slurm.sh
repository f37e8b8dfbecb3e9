#!/usr/bin/env bash
# make test-slurm: start a local one-node SLURM cluster, submit the chain through slurm/*.sbatch
# (2 ranks per fit on CPU, gloo), check every stage's output, test a SIGUSR1 requeue, stop the cluster.
#
# usage: scripts/test_slurm.sh [PYTEST_ARGS...]
#   PYTHON            interpreter with anaus-pl installed or on PYTHONPATH [.venv/bin/python]
#   ANAUS_SLURM_CHAIN the chain profile [tests/slurm/chain_default.env: the real stages on a test
#                     phantom; tests/slurm/chain_standin.env: a tiny stand-in stage in every slot]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
[[ -x $PYTHON ]] || { echo "test_slurm: no interpreter at $PYTHON (run make install or set PYTHON)" >&2; exit 2; }

started=$SECONDS
set -a
# shellcheck source=tests/slurm/chain_default.env
source "${ANAUS_SLURM_CHAIN:-tests/slurm/chain_default.env}"
set +a
export ANAUS_SLURM_CLUSTER=1 ANAUS_HOME=$ROOT ANAUS_PL="$PYTHON -m anaus_pl.cli"
export PYTHONPATH=$ROOT/src:$ROOT/tests/slurm${PYTHONPATH:+:$PYTHONPATH}

# The data the profile's stages read: a small phantom of the layouts it names (kept between runs).
if [[ -n ${ANAUS_TEST_PHANTOM:-} && ! -f $ANAUS_TEST_PHANTOM/.complete ]]; then
  echo "test_slurm: writing the test phantom ($ANAUS_TEST_PHANTOM_LAYOUTS) to $ANAUS_TEST_PHANTOM"
  rm -rf "$ANAUS_TEST_PHANTOM"
  # shellcheck disable=SC2086  # the layouts are words
  "$PYTHON" -m anaus_pl.cli phantom --out "$ANAUS_TEST_PHANTOM" --seed 0 --size small --layouts $ANAUS_TEST_PHANTOM_LAYOUTS
fi

scripts/slurm_local.sh install
# A daemon left behind fails the target even when the tests passed.
trap 'scripts/slurm_local.sh stop || exit 1' EXIT
scripts/slurm_local.sh start
eval "$(scripts/slurm_local.sh env)"
"$PYTHON" -m pytest -m slurm tests/slurm -v -s -p no:cacheprovider "$@"
echo "test_slurm: passed in $((SECONDS - started)) s"
