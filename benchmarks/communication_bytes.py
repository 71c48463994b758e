"""Bytes sent to the workers per ES iteration, broadcast versus scalar-only communication.

What is measured: the bytes of every Dask message each worker process receives over TCP during one
``Trainer.step()`` (the frames handed to ``distributed.comm.tcp.from_frames``, counted by a wrapper
installed in the workers), summed over the workers; the mean over ``--steps`` timed iterations
after a warm-up iteration (which in scalar mode carries the one-off full state). It includes
everything a worker receives from the scheduler, the client and other workers: the parameters
(broadcast) or the ``Sync`` of the last update (scalar), the tasks, and Dask's own heartbeats and
bookkeeping, so it is what crosses the network (less the 8-byte length headers), not an estimate.

Two parameter counts: the MuJoCo MLP (HalfCheetah, 64-64: 5.7k parameters) and an MLP with the
Atari CNN's parameter count (HalfCheetah, 1300-1300: 1.72M; the CNN has ~1.7M). Episodes are
capped short (``--episode-steps``): the bytes do not depend on episode length, only on the number
of pairs and the parameter count.

Targets (issue "Scale out"): the scalar mode's bytes do not grow with the parameter count, and are
<= 1% of the broadcast mode's for the 1.7M-parameter vector.

    python benchmarks/communication_bytes.py [--workers 2] [--pairs 50] [--steps 3]
"""

import argparse
import logging
import tempfile
import warnings

from esrepro.config import run_params
from esrepro.distributed.cluster import connect
from esrepro.run_config import RunConfig
from esrepro.train import Trainer

SIZES = {"MuJoCo MLP 64-64": [64, 64], "Atari-sized 1300-1300": [1300, 1300]}


def _received_bytes() -> int:
    """Bytes of Dask messages this process has received over TCP since the first call."""
    import distributed.comm.tcp as tcp
    if not hasattr(tcp, "esrepro_received"):
        original, tcp.esrepro_received = tcp.from_frames, [0]

        async def counting(frames, **kwargs):
            tcp.esrepro_received[0] += sum(memoryview(f).nbytes for f in frames)
            return await original(frames, **kwargs)
        tcp.from_frames = counting
    return tcp.esrepro_received[0]


def bytes_per_iteration(client, hidden, mode, args) -> tuple[int, float]:
    """(parameter count, mean bytes read by all workers per timed iteration)."""
    params = run_params(None, "HalfCheetah-v5", overrides={
        "iterations": 10**6, "pairs_per_iteration": args.pairs, "eval_episodes": 0,
        "max_episode_steps": args.episode_steps, "hidden": hidden, "communication": mode,
        "noise_table_size": 10_000_000})
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(RunConfig.from_params("HalfCheetah-v5", 0, params), out, log=lambda *_: None)
        trainer.connect(client)
        trainer.step()  # warm-up: envs, noise table, and in scalar mode the full state once
        totals = []
        for _ in range(args.steps):
            before = client.run(_received_bytes)
            trainer.step()
            after = client.run(_received_bytes)
            totals.append(sum(after[w] - before[w] for w in after))
        trainer.workers.close()
    return trainer.policy.num_params, sum(totals) / len(totals)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=50, help="antithetic pairs per iteration")
    ap.add_argument("--steps", type=int, default=3, help="timed iterations per setting")
    ap.add_argument("--episode-steps", type=int, default=10, help="episode cap (bytes do not depend on it)")
    args = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"{args.workers} workers, {args.pairs} pairs per iteration, mean of {args.steps} iterations")
    print(f"{'parameters':>24} {'count':>10} {'broadcast B/iter':>17} {'scalar B/iter':>14} {'scalar/broadcast':>17}")
    rows = []
    with connect(args.workers) as client:
        for name, hidden in SIZES.items():
            n, broadcast = bytes_per_iteration(client, hidden, "broadcast", args)
            _, scalar = bytes_per_iteration(client, hidden, "scalar", args)
            rows.append((n, broadcast, scalar))
            print(f"{name:>24} {n:>10,d} {broadcast:>17,.0f} {scalar:>14,.0f} {scalar / broadcast:>16.2%}")
    (small, _, scalar_small), (large, broadcast, scalar) = rows
    print(f"SUMMARY communication_bytes: scalar mode {scalar / broadcast:.2%} of broadcast at {large:,d} parameters "
          f"(target <= 1%: {'met' if scalar <= 0.01 * broadcast else 'MISSED'}); "
          f"scalar bytes x{scalar / scalar_small:.2f}"
          f" from {small:,d} to {large:,d} parameters")


if __name__ == "__main__":
    main()
