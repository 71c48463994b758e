"""Record the training episode lengths of a real ES run, iteration by iteration, for
``scale_simulation.py`` (which draws its simulated episodes from them).

A real run: the Trainer on a local Dask cluster, the env and the policy of the scaling experiment
(Humanoid-v5, 256-256 tanh MLP; paper section 4.3). It stops after ``--minutes`` of training and
writes ``--out`` (npz: ``lengths_<iteration>``, int64 arrays of shape (2 * pairs,)).

    .venv/bin/python benchmarks/record_episode_lengths.py --minutes 10
"""

import argparse
import tempfile
import time

import numpy as np

from esrepro.atomic import write_npz
from esrepro.config import run_params
from esrepro.distributed.cluster import connect
from esrepro.run_config import RunConfig
from esrepro.train import Trainer


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="Humanoid-v5")
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    ap.add_argument("--pairs", type=int, default=100, help="antithetic pairs per iteration")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--out", default="benchmarks/data/humanoid_v5_lengths.npz")
    args = ap.parse_args()
    params = run_params(None, args.env, overrides={"hidden": args.hidden, "pairs_per_iteration": args.pairs,
                                                   "min_timesteps_per_iteration": 0, "eval_episodes": 0,
                                                   "iterations": 10**6})
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = Trainer(RunConfig.from_params(args.env, 0, params), out_dir, log=lambda line: None)
        recorded, population = {}, trainer._population

        def recording(iteration, cap):  # the iteration's episodes, as the Trainer receives them
            pairs, evaluation, dropped = population(iteration, cap)
            recorded[f"lengths_{iteration}"] = np.array([episode[5] for pair in pairs for episode in pair])
            return pairs, evaluation, dropped

        trainer._population = recording
        with connect(args.workers) as client:
            trainer.connect(client)
            deadline = time.monotonic() + 60 * args.minutes
            while time.monotonic() < deadline:
                trainer.step()
                lengths = recorded[f"lengths_{trainer.iteration}"]
                print(f"iteration {trainer.iteration}: mean length {lengths.mean():.1f}, max {lengths.max()}, "
                      f"population return mean {trainer.pending['return_mean']:.1f}", flush=True)
            trainer.workers.close()
    write_npz(args.out, **recorded)
    print(f"{len(recorded)} iterations, {sum(v.sum() for v in recorded.values()):,} steps -> {args.out}")


if __name__ == "__main__":
    main()
