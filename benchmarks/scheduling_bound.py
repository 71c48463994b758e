"""The highest parallel efficiency any coordination could reach: ES iterations with free coordination.

An iteration of the paper's batch ends when its last episode ends (Algorithm 2 updates on the whole
batch). With N workers, that leaves workers idle at the end of each iteration even if sending tasks,
results and updates cost nothing: the iteration's work is split into indivisible units (our tasks:
chunks of antithetic pairs; a pair's two episodes share an env seed and run on one worker), and the
last units to start end at different times. This script computes that bound, without Dask and
without sleeping: episode lengths drawn from those recorded in a real Humanoid-v5 ES run
(``record_episode_lengths.py``), the batch built as ``esrepro.train.Trainer`` builds it
(``pairs_per_iteration`` pairs plus the evaluation episodes in one round, then rounds of more pairs
until the iteration holds ``min_timesteps_per_iteration`` timesteps), and each round's units handed
in order to the first free worker (list scheduling, what Dask's scheduler does with queued tasks).

Efficiency = (the iteration's work / N) / (the time until its last unit ends), as in
``scale_simulation.py``; work in env steps (all steps cost the same). Units compared:

* ``guided chunks``: the Trainer's tasks before hosts coordinated the work (``chunks``: Dask tasks
  of decreasing ranges of pairs), kept for comparison;
* ``one pair``: every pair its own unit, the finest split that keeps a pair on one worker;
* ``one episode``: every episode its own unit (a pair split over two workers): the unit of a host's
  queue now (``esrepro.distributed.coordinator``);
* ``equal split``: one chunk of pairs per worker (``chunk_pairs = pairs / N``);
* ``hosts``: one episode per unit as the hosts hand them out (``hosts_makespan``): blocks from the
  master to hosts of ``--host-workers``, each host's queue refilled once it runs low, a master's
  reply ``--reply-steps`` late. Its ratio to ``one episode`` is the protocol's own cost, apart from
  any machine's CPU (``scale_simulation.py`` runs the real master and coordinators);

and the paper's own batch rule, ``first come`` with one pair or one episode per unit
(``first_come_efficiency``): pairs counted in the order they complete until the batch is full, the
rest abandoned, so only the counted pairs are useful work.

    .venv/bin/python benchmarks/scheduling_bound.py                  # N = 18 144 720 1440
    .venv/bin/python benchmarks/scheduling_bound.py --length-scale 12 --episode-cap-factor 1.5
"""

import argparse
import collections
import heapq
import itertools
import math
from pathlib import Path

import numpy as np

from esrepro.distributed.coordinator import chunk_size
from esrepro.distributed.hosts import block_size

HERE = Path(__file__).resolve().parent
LENGTHS = HERE / "data" / "humanoid_v5_lengths.npz"
UNITS = ("guided chunks", "one pair", "one episode", "equal split", "hosts")
#: The paper's batch rule (pairs counted in completion order), with one pair or one episode per unit:
#: not ways to cut the deterministic batch but another batch, so columns of their own.
FIRST_COME = ("first come, one pair", "first come, one episode")
TARGET = 0.9


def chunks(start: int, stop: int, workers: int, chunk_pairs: int | None = None) -> list[tuple[int, int]]:
    """Pairs ``start..stop`` as the Trainer cut them into Dask tasks before hosts coordinated the
    work: ``chunk_pairs`` each, or decreasing sizes (guided scheduling), each 1/(2 workers) of the
    pairs left but at least 1/(16 workers) of all."""
    if chunk_pairs:
        return [(a, min(a + chunk_pairs, stop)) for a in range(start, stop, chunk_pairs)]
    smallest = math.ceil((stop - start) / (16 * workers))
    ranges, a = [], start
    while a < stop:
        b = min(stop, a + max(smallest, math.ceil((stop - a) / (2 * workers))))
        ranges.append((a, b))
        a = b
    return ranges


def makespan(units: list[float], workers: int) -> float:
    """Time until the last of ``units`` (their durations, in order) ends when each goes to the
    first free of ``workers`` identical workers (list scheduling)."""
    free = [0.0] * min(workers, len(units))
    for u in units:
        heapq.heapreplace(free, free[0] + u)
    return max(free)


def hosts_makespan(units: list[float], workers: int, host_workers: int, reply_steps: float) -> float:
    """Time until the last of ``units`` (episode durations, in order) ends when ``workers`` //
    ``host_workers`` hosts run them as ``esrepro.distributed`` does: the master hands each host a
    block in unit order (``hosts.block_size``); a host asks for its next block once its queue holds
    fewer units than it has workers and gets it ``reply_steps`` later (``Coordinator.add``); a free
    worker takes a chunk of its host's queue (``coordinator.chunk_size``) and runs its units one
    after another. Needs ``workers`` to be a multiple of ``host_workers`` (else one
    host of ``workers``)."""
    w = host_workers if workers % host_workers == 0 else workers
    hosts, pool = workers // w, collections.deque(units)
    queues, asking, idle = [collections.deque() for _ in range(hosts)], [False] * hosts, [[] for _ in range(hosts)]

    def block():
        return [pool.popleft() for _ in range(min(len(pool), block_size(len(pool), w, workers)))]

    # events (time, order, host, what): a block arriving (a list) or a worker free (its number)
    events, order, end = [], itertools.count(), 0.0
    for h in range(hosts):
        heapq.heappush(events, (0.0, next(order), h, block()))
    for h in range(hosts):
        for k in range(w):
            heapq.heappush(events, (0.0, next(order), h, k))
    while events:
        t, _, h, what = heapq.heappop(events)
        queue = queues[h]
        if isinstance(what, list):
            queue.extend(what)
            asking[h] = False
            for k in idle[h][: len(queue)]:
                heapq.heappush(events, (t, next(order), h, k))
            del idle[h][: len(queue)]
            continue
        if not queue:
            idle[h].append(what)
            continue
        work = sum(queue.popleft() for _ in range(min(len(queue), chunk_size(len(queue), w))))
        end = max(end, t + work)
        heapq.heappush(events, (t + work, next(order), h, what))
        if len(queue) < w and pool and not asking[h]:
            asking[h] = True
            heapq.heappush(events, (t + reply_steps, next(order), h, block()))
    return end


def round_units(unit: str, pair_lengths: np.ndarray, evals: np.ndarray, workers: int) -> list[float]:
    """One round's units: the evaluation episodes (one task each, first, as the Trainer orders its
    calls), then the pairs ``pair_lengths`` (shape (n, 2)) grouped as ``unit`` says."""
    n = len(pair_lengths)
    if unit in ("one episode", "hosts"):
        return [*evals, *pair_lengths.ravel()]
    if unit == "one pair":
        ranges = chunks(0, n, workers, chunk_pairs=1)
    elif unit == "equal split":
        ranges = chunks(0, n, workers, chunk_pairs=math.ceil(n / workers))
    else:
        ranges = chunks(0, n, workers)
    return [*evals, *(pair_lengths[a:b].sum() for a, b in ranges)]


def iteration_efficiency(unit: str, draw, workers: int, pairs: int, eval_episodes: int, min_timesteps: int,
                         host_workers: int = 18, reply_steps: float = 0.0) -> float:
    """Efficiency of one iteration built as the Trainer builds it, lengths from ``draw(count)``;
    ``host_workers`` and ``reply_steps``: the ``hosts`` unit's (``hosts_makespan``)."""
    first = draw(2 * pairs).reshape(-1, 2)
    rounds, lengths = [round_units(unit, first, draw(eval_episodes), workers)], first
    while lengths.sum() < min_timesteps:  # Trainer._population: more pairs in rounds of their own
        extra = draw(2 * math.ceil((min_timesteps - lengths.sum()) / (2 * lengths.mean()))).reshape(-1, 2)
        rounds.append(round_units(unit, extra, np.array([]), workers))
        lengths = np.concatenate([lengths, extra])
    work = sum(sum(r) for r in rounds)
    if unit == "hosts":
        return work / workers / sum(hosts_makespan(r, workers, host_workers, reply_steps) for r in rounds)
    return work / workers / sum(makespan(r, workers) for r in rounds)


def first_come_efficiency(draw, workers: int, pairs: int, eval_episodes: int, min_timesteps: int,
                          per_episode: bool) -> float:
    """Efficiency of one iteration under the paper's first-come batch rule, with free
    coordination: the evaluation episodes, then pairs in index order without end, each unit (a
    pair, or with ``per_episode`` each of its two episodes) to the first free worker (list
    scheduling); the iteration ends at time T, when the pairs completed so far (both episodes
    done) hold at least ``pairs`` pairs and ``min_timesteps`` timesteps (the reference code's rule)
    and the evaluation is done. Only the counted pairs and the evaluation are useful work: units
    still running at T are abandoned, and so is a finished episode whose partner is not done."""
    free, evaluation_done = [0.0] * workers, 0.0
    evaluations = draw(eval_episodes)
    for episode in evaluations:
        evaluation_done = max(evaluation_done, free[0] + episode)
        heapq.heapreplace(free, free[0] + episode)
    useful, done_pairs, done_steps, ends, halves, started = evaluations.sum(), 0, 0.0, [], {}, 0
    while True:
        if not ends or ends[0][0] > free[0]:  # start the next unit on the first free worker
            work = draw(1 if per_episode else 2).sum()
            start = heapq.heapreplace(free, free[0] + work)
            heapq.heappush(ends, (start + work, started // 2 if per_episode else started, work))
            started += 1
            continue
        end, pair, work = heapq.heappop(ends)  # the next unit to complete, in completion order
        if per_episode and pair not in halves:
            halves[pair] = work  # its partner still runs
            continue
        work += halves.pop(pair, 0.0)
        done_pairs, done_steps, useful = done_pairs + 1, done_steps + work, useful + work
        if done_pairs >= pairs and done_steps >= min_timesteps:
            return useful / workers / max(end, evaluation_done)


def ceiling(lengths: np.ndarray, workers: int, unit: str = "guided chunks", pairs: int = 5000,
            eval_episodes: int = 10, min_timesteps: int = 100_000, iterations: int = 20, host_workers: int = 18,
            reply_steps: float = 0.0) -> float:
    """Median efficiency with free coordination over ``iterations`` iterations whose episode
    lengths are drawn from ``lengths`` (seeded: the same draws for every unit and N); the
    ``hosts`` unit with ``host_workers`` and ``reply_steps`` (``hosts_makespan``)."""
    rng = np.random.default_rng(0)

    def draw(count):
        return rng.choice(lengths, count).astype(np.float64)

    if unit in FIRST_COME:
        per_episode = unit == FIRST_COME[1]
        return float(np.median([first_come_efficiency(draw, workers, pairs, eval_episodes, min_timesteps, per_episode)
                                for _ in range(iterations)]))
    return float(np.median([iteration_efficiency(unit, draw, workers, pairs, eval_episodes, min_timesteps,
                                                 host_workers, reply_steps) for _ in range(iterations)]))


def recorded_lengths(path, stage: str, scale: float, cap_factor: float | None,
                     limit: int = 1000) -> tuple[str, np.ndarray]:
    """(stage name, lengths) of one recorded iteration (``stage``: its number or "last") of
    ``record_episode_lengths.py``'s npz, times ``scale``, at most the env's ``limit`` (Humanoid-v5:
    1,000 steps) and, if given, ``cap_factor`` times their mean."""
    recorded = np.load(path)
    stages = sorted((k for k in recorded.files if k.startswith("lengths_")), key=lambda k: int(k.split("_")[1]))
    name = stages[-1] if stage == "last" else f"lengths_{stage}"
    lengths = np.minimum(np.rint(recorded[name] * scale), limit)
    if cap_factor:
        lengths = np.minimum(lengths, math.ceil(cap_factor * lengths.mean()))
    return name, lengths


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[18, 144, 720, 1440])
    ap.add_argument("--lengths", default=str(LENGTHS), help="npz of record_episode_lengths.py")
    ap.add_argument("--stage", default="last", help="recorded iteration to draw lengths from (or 'last')")
    ap.add_argument("--length-scale", type=float, default=1.0,
                    help="multiply the recorded lengths (capped at the env's 1,000 steps): later training")
    ap.add_argument("--episode-cap-factor", type=float, default=None,
                    help="cap episodes at this factor times the mean length (the adaptive cap)")
    ap.add_argument("--pairs", type=int, default=5000, help="pairs per iteration (paper: 10,000 episodes)")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--min-timesteps", type=int, default=100_000)
    ap.add_argument("--iterations", type=int, default=20, help="iterations drawn per N (median reported)")
    ap.add_argument("--host-workers", type=int, default=18, help="workers per host of the hosts unit")
    ap.add_argument("--reply-steps", type=float, default=0.0,
                    help="the hosts unit: env steps from a host's asking for a block to its arrival")
    args = ap.parse_args()

    stage, lengths = recorded_lengths(args.lengths, args.stage, args.length_scale, args.episode_cap_factor)
    print(f"episode lengths: {stage} of {args.lengths} x {args.length_scale}, cap {args.episode_cap_factor} "
          f"(mean {lengths.mean():.0f}, max {lengths.max():.0f}); {args.pairs} pairs, {args.eval_episodes} "
          f"evaluation episodes, >= {args.min_timesteps:,} timesteps; median of {args.iterations} iterations")
    columns = (*UNITS, *FIRST_COME)
    print("| N | pairs per worker | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    table = {}
    for n in args.workers:
        table[n] = {u: ceiling(lengths, n, u, args.pairs, args.eval_episodes, args.min_timesteps, args.iterations,
                               args.host_workers, args.reply_steps) for u in columns}
        print(f"| {n} | {args.pairs / n:.1f} | " + " | ".join(f"{table[n][u]:.3f}" for u in columns) + " |",
              flush=True)
    n = args.workers[-1]
    best = max(table[n][u] for u in UNITS if u != "hosts")
    verdict = "reachable" if best >= TARGET else "OUT OF REACH"
    print(f"SUMMARY highest efficiency with free coordination at N={n}: {best:.2f} (guided chunks "
          f"{table[n]['guided chunks']:.2f}); the target {TARGET} is {verdict} for this batch and these lengths; "
          f"the first-come batch: {table[n][FIRST_COME[0]]:.2f} (one pair per unit), "
          f"{table[n][FIRST_COME[1]]:.2f} (one episode); the hosts' protocol {table[n]['hosts']:.2f} "
          f"({table[n]['hosts'] / table[n]['one episode']:.2f} of one episode per unit; hosts of {args.host_workers}, "
          f"replies {args.reply_steps:g} steps late)")

if __name__ == "__main__":
    main()
