"""Batch-size calibration of the paper2017 TRPO preset against the paper's Table 3 (docs/baselines.md).

The paper does not give its TRPO's timesteps per update; OpenAI's TRPO of 2016 used 5,000 for
InvertedPendulum in one source and 25,000 for the other tasks. This runs TRPO (paper2017 preset) on
one env at each batch size and seed (``python -m esrepro trpo``, into ROOT/n<batch>/seed<s>/), then
prints TRPO's timesteps to 25/50/75/100% of its learning progress (the Table 3 definitions,
:func:`esrepro.analysis.mujoco_tasks.trpo_levels`) at each budget, beside the paper's Table 3 TRPO
column, and the mean abs log10(ours / paper) over the levels: the smaller, the closer.

    python benchmarks/trpo_calibration.py --root /tmp/calib --run   # then without --run to re-read

A run already at its budget is not rerun (the CLI resumes from its checkpoint). Budgets past a
batch size's runs are left out for it.
"""

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from esrepro.analysis.mujoco_tasks import base_env_name, load_compared_runs, trpo_levels

REFERENCE = Path(__file__).resolve().parents[1] / "paper" / "reference" / "table3_mujoco_detail.csv"


def run(root: Path, env: str, batches: list[int], seeds: list[int], timesteps: list[int]) -> None:
    """One TRPO run per seed and batch size (the batch's budget: ``timesteps``, paired with ``batches``)."""
    for seed in seeds:
        for batch, budget in zip(batches, timesteps):
            params = f'{{"preset": "paper2017", "n_steps": {batch}}}'
            subprocess.run([sys.executable, "-m", "esrepro", "trpo", "--env", env, "--seed", str(seed), "--params",
                            params, "--timesteps", str(budget), "--out", str(root / f"n{batch}" / f"seed{seed}")],
                           check=True)


def compare(root: Path, env: str, batches: list[int], budgets: list[int]) -> pd.DataFrame:
    """Per batch size and budget: TRPO's timesteps to each level, the paper's, and the mean log distance."""
    paper = pd.read_csv(REFERENCE)
    paper = paper[paper["env"] == base_env_name(env)].set_index("progress_pct")["trpo_timesteps"]
    rows = []
    for batch in batches:
        dirs = sorted(d for d in (root / f"n{batch}").glob("seed*") if (d / "run.json").exists())
        if not dirs:
            continue
        runs = load_compared_runs(dirs)
        ends = runs.groupby("seed")["timesteps"].max()
        for budget in (b for b in budgets if b <= ends.min()):
            levels = trpo_levels(runs, env, budget).set_index("progress_pct")
            ours = levels["trpo_timesteps"]
            rows.append({"batch": batch, "budget": budget, "seeds": int(levels["trpo_seeds"].iloc[0]),
                         "final score": f"{levels['trpo_score'].iloc[-1]:.1f}",
                         **{f"{p:g}%": f"{ours[p]:.3g} ({paper[p]:.3g})" for p in ours.index},
                         "mean abs log10(ours / paper)": f"{np.mean(np.abs(np.log10(ours / paper[ours.index]))):.2f}"})
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True, help="runs go to ROOT/n<batch>/seed<s>/")
    p.add_argument("--env", default="InvertedPendulum-v5")
    p.add_argument("--batches", type=int, nargs="+", default=[5000, 25000], help="timesteps per update")
    p.add_argument("--timesteps", type=int, nargs="+", default=[500_000, 1_000_000],
                   help="each batch size's budget, in the order of --batches")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--budgets", type=int, nargs="+", default=[500_000, 1_000_000],
                   help="timesteps at which TRPO's final score is taken (Table 3's 100%%)")
    p.add_argument("--run", action="store_true", help="run the TRPO runs first")
    args = p.parse_args()
    if args.run:
        run(args.root, args.env, args.batches, args.seeds, args.timesteps)
    table = compare(args.root, args.env, args.batches, args.budgets)
    print(f"{args.env}, paper2017 preset: timesteps to 25/50/75/100% of TRPO's learning progress, ours (paper's "
          f"Table 3 TRPO column)\n{table.to_markdown(index=False, floatfmt='.3g', disable_numparse=True)}")


if __name__ == "__main__":
    main()
