"""CNN forward time: ``esrepro.policies.cnn.CNNPolicy`` (numpy) versus PyTorch, and versus an Atari env step.

What is measured (one process, BLAS and OpenCV pools and torch of one thread, as in a Dask worker):

* ``numpy large`` / ``numpy small``: ``CNNPolicy.act`` on one real Pong observation with one
  parameter vector loaded (k=1: what one episode's step costs), the A3C large and small networks
  with virtual batch normalization, Glorot init plus noise.
* ``torch large`` / ``torch small``: the same network and weights in PyTorch
  (``torch.set_num_threads(1)``, ``torch.inference_mode``): conv2d / linear without bias, the VBN
  statistics folded into a per-channel scale and shift (computed by torch on the same reference
  batch), ReLU, argmax. The logits of both are compared first.
* ``numpy large (k=K)``: ``act`` on K observations with K parameter vectors loaded, per row.
* ``set_params``: loading one parameter vector, which passes the reference batch (``--ref-size``
  observations) through the network for the VBN statistics.
* ``Pong env.step``: ``esrepro.envs.atari.make_atari_env("ALE/Pong-v5", frame_skip=4)`` stepped with
  pre-drawn uniform random actions (reset when an episode ends).

Each round times every variant once (order rotated between rounds) so load changes on a shared
machine hit them alike; medians and minima over rounds are reported, in wall-clock time and in
this thread's CPU time (less sensitive to other processes, but not to their use of caches).

Target: numpy large forward (k=1) below 0.7 ms, the time of a plain numpy version measured here.

    python benchmarks/cnn_forward.py [--rounds 7] [--calls 300] [--env-steps 1500] [--k 10]
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
             "OPENCV_FOR_THREADS_NUM"):
    os.environ[_var] = "1"  # before numpy loads: as esrepro.distributed.cluster sets in workers

import argparse  # noqa: E402
import functools  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from esrepro.envs.atari import make_atari_env, reference_batch  # noqa: E402
from esrepro.policies.cnn import VBN_EPS, CNNPolicy  # noqa: E402

TARGET_MS = 0.7
GAME = "ALE/Pong-v5"


class TorchCNN:
    """``policy``'s network with the flat parameters ``theta`` in torch (float32), its VBN
    statistics computed on ``ref`` at construction and folded into a scale and shift."""

    def __init__(self, policy: CNNPolicy, theta: np.ndarray, ref: np.ndarray):
        params = torch.from_numpy(theta.copy())
        self.layers, offset = [], 0
        r = torch.from_numpy(ref).float() / 255
        with torch.inference_mode():
            for layer in policy.layers:
                size = layer.fan_in * layer.channels_out
                w = params[offset:offset + size].reshape(layer.kernel, layer.kernel, layer.channels_in, -1)
                extra = params[offset + size:offset + layer.num_params].reshape(-1, layer.channels_out)
                offset += layer.num_params
                # torch layouts: conv (out, in, kh, kw); linear (out, in) with inputs in (c, h, w) order
                w = w.permute(3, 2, 0, 1).contiguous()
                if layer.dense:
                    op = functools.partial(_dense, w=w.reshape(layer.channels_out, -1))
                else:
                    op = functools.partial(F.conv2d, weight=w, stride=layer.stride)
                if not layer.hidden:
                    self.layers.append((op, None, extra[0]))
                    break
                z = op(r)
                dims = [0, 2, 3] if z.ndim == 4 else [0]
                scale = extra[0] / torch.sqrt(z.var(dim=dims, unbiased=False) + VBN_EPS)
                shift = extra[1] - z.mean(dim=dims) * scale
                if z.ndim == 4:
                    scale, shift = scale[:, None, None], shift[:, None, None]
                self.layers.append((op, scale, shift))
                r = F.relu(z * scale + shift)

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255
        for op, scale, shift in self.layers:
            x = op(x)
            x = x + shift if scale is None else F.relu(x * scale + shift)
        return x

    def act(self, obs: torch.Tensor) -> int:
        return int(self.logits(obs).argmax())


def _dense(x, w):
    """A torch dense layer on flattened (c, h, w) inputs."""
    return F.linear(x.flatten(1), w)


def timed(fn, calls):
    """(wall ms, thread-CPU ms) per call of ``fn`` over ``calls`` calls."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - wall) / calls * 1e3, (time.thread_time() - cpu) / calls * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=300, help="forward calls per variant and round")
    ap.add_argument("--env-steps", type=int, default=1500, help="Pong steps per round")
    ap.add_argument("--k", type=int, default=10, help="rows of the stacked numpy variant")
    ap.add_argument("--ref-size", type=int, default=128, help="VBN reference batch size")
    ap.add_argument("--keep-prob", type=float, default=0.2,
                    help="reference_batch keep probability (only which frames; 0.2 to collect fast)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    frames = reference_batch(GAME, 4, 30, size=args.ref_size + args.k, seed=0, keep_prob=args.keep_prob)
    ref, obs = frames[:args.ref_size], frames[args.ref_size:]
    rng = np.random.default_rng(0)
    variants, policies = {}, {}
    for net in ("large", "small"):
        policy = CNNPolicy(6, net, ref)
        theta = policy.init_params(rng)
        theta += (0.1 * rng.standard_normal(theta.size)).astype(np.float32)
        policy.set_params(theta)
        model = TorchCNN(policy, theta, ref)
        one, one_t = obs[0], torch.from_numpy(obs[:1])
        with torch.inference_mode():
            diff = np.abs(model.logits(one_t).numpy()[0] - policy.logits(one)).max()
        print(f"{net}: {policy.num_params} parameters; max |numpy - torch| logit difference {diff:.2e}")
        variants[f"numpy {net}"] = (lambda p=policy, o=one: p.act(o), args.calls)
        variants[f"torch {net}"] = (lambda m=model, o=one_t: m.act(o), args.calls)
        policies[net] = (policy, theta)
    large, theta = policies["large"]
    stacked = CNNPolicy(6, "large", ref)
    stacked.set_params(np.tile(theta, (args.k, 1)))
    variants[f"numpy large (k={args.k})"] = (lambda: stacked.act(obs), max(1, args.calls // args.k))
    variants["set_params"] = (lambda: large.set_params(theta), 3)

    env = make_atari_env(GAME, frame_skip=4, noop_max=30)
    actions = rng.integers(env.action_space.n, size=args.env_steps)
    env.reset(seed=0)

    def env_steps():
        for a in actions:
            if any(env.step(int(a))[2:4]):
                env.reset()

    with torch.inference_mode():
        for fn, _ in variants.values():  # warm-up
            fn()
        names = [*variants, "Pong env.step"]
        wall, cpu = {k: [] for k in names}, {k: [] for k in names}
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                if name == "Pong env.step":
                    w, c = timed(env_steps, 1)
                    w, c = w / args.env_steps, c / args.env_steps
                else:
                    fn, calls = variants[name]
                    w, c = timed(fn, calls)
                    if name.startswith("numpy large (k="):
                        w, c = w / args.k, c / args.k
                wall[name].append(w)
                cpu[name].append(c)
            print(f"  round {r}: " + ", ".join(f"{k} {wall[k][-1]:.3f}" for k in names) + " ms (wall)", flush=True)

    med = {k: statistics.median(v) for k, v in wall.items()}
    print(f"{'ms per call':28s} {'wall median':>12s} {'wall min':>9s} {'cpu median':>11s} {'cpu min':>8s}")
    for k in names:
        unit = " (per row)" if k.startswith("numpy large (k=") else " (per step)" if k.startswith("Pong") else ""
        print(f"{k + unit:28s} {med[k]:12.3f} {min(wall[k]):9.3f} {statistics.median(cpu[k]):11.3f} "
              f"{min(cpu[k]):8.3f}")
    print(f"numpy / torch (wall medians): large {med['numpy large'] / med['torch large']:.2f}, "
          f"small {med['numpy small'] / med['torch small']:.2f}")
    step = med["Pong env.step"]
    print(f"Pong (frame_skip 4): {1e3 / step:.0f} agent steps/s; forward / env step: "
          f"large {med['numpy large'] / step:.2f}, small {med['numpy small'] / step:.2f}")
    print(f"set_params with a {args.ref_size}-observation reference batch = "
          f"{med['set_params'] / med['numpy large']:.0f} large forwards")
    verdict = "met" if med["numpy large"] < TARGET_MS else "MISSED"
    print(f"SUMMARY cnn_forward: numpy large forward (k=1) {med['numpy large']:.3f} ms "
          f"(torch 1 thread {med['torch large']:.3f} ms), small {med['numpy small']:.3f} ms; "
          f"Pong env step {step:.3f} ms; target < {TARGET_MS} ms ({verdict})")


if __name__ == "__main__":
    main()
