"""The TRPO baseline of the paper's MuJoCo comparison (Table 1): one run of sb3-contrib's TRPO.

Provenance
----------
- Algorithm: Trust Region Policy Optimization, Schulman, Levine, Moritz, Jordan, Abbeel 2015
  (arXiv:1502.05477), as implemented by sb3-contrib (``sb3_contrib.TRPO``: natural-gradient policy
  step by conjugate gradient, KL line search, separate value network fitted with Adam, GAE).
- What the paper says (Salimans et al. 2017, section 4.1): ES is compared with "a highly tuned
  implementation of TRPO" trained for 5M timesteps per env, with the same policy network as ES
  (64-64 tanh MLP). It publishes no TRPO hyperparameters.
- Hyperparameters: one of two presets (``preset``; values per env and their sources under
  ``presets`` in config/trpo_params.schema.yaml), explicit keys overriding them:

  - ``zoo``: rl-baselines3-zoo's tuned TRPO settings for MuJoCo (hyperparams/trpo.yml,
    "mujoco-defaults", keyed by -v4 ids): VecNormalize (obs and reward, reward discount = gamma),
    n_envs 2, n_steps 1024, batch_size 128, gamma 0.99, gae_lambda 0.95, cg_max_steps 25,
    cg_damping 0.1, n_critic_updates 20, learning_rate 1e-3; HalfCheetah target_kl 0.04, Swimmer
    gamma 0.9999.
  - ``paper2017``: a reconstruction of OpenAI's TRPO of 2016 (joschu/modular_rl's battery, the
    best candidate for the paper's "highly tuned" TRPO; docs/paper.md): 15,000 timesteps per update
    on InvertedDoublePendulum, 25,000 on the others (InvertedPendulum's by a measurement against the
    paper's Table 3, docs/baselines.md; the battery's source has 5,000 there), max KL 0.01,
    10 conjugate-gradient steps with damping 0.1, step-halving line search, gamma 0.995, GAE
    lambda 0.97, standardized advantages, observations normalized and clipped at 5, rewards not
    normalized, initial action std 1; its L-BFGS value fit approximated by 5 Adam epochs at 1e-3.
- Network: policy and value function are separate 64-64 tanh MLPs (SB3's MlpPolicy with
  ``net_arch=dict(pi=hidden, vf=hidden)``, ``activation_fn=nn.Tanh``; orthogonal init and a
  state-independent log-std, SB3's defaults), not the paper's normc init.
- Evaluation (ours, not in the paper): the deterministic (mean) action, on a separate env whose
  observations are normalized with the training VecNormalize statistics frozen at that moment,
  raw (unnormalized) rewards; episode ``e`` of evaluation ``k`` resets with a seed drawn from
  ``SeedSequence([seed, k, e])``.

Outputs in ``out_dir``: ``progress.csv`` (the suite's shared columns first), ``policy.zip`` (SB3
model), ``vecnormalize.pkl`` (when ``normalize``), ``run.json``, ``checkpoint/`` (the latest
checkpoint; a rerun resumes from it: docs/baselines.md). Every file is written atomically.
"""

import yaml

from esrepro import config
from esrepro.baselines.common import Setup, train_baseline


def train_trpo(env_id: str, seed: int, params: dict, out_dir, threads: int = 1, log=print) -> dict:
    """Train sb3-contrib TRPO on ``env_id`` and write ``out_dir/{progress.csv, policy.zip,
    vecnormalize.pkl, run.json, checkpoint/}``, resuming from ``out_dir``'s checkpoint if any.

    Parameters
    ----------
    env_id : str
        A gymnasium id, e.g. ``"HalfCheetah-v5"``.
    seed : int
        Seeds torch, numpy, Python's ``random``, the training envs (env ``i`` gets ``seed + i`` at
        its first reset) and the evaluation episodes (:func:`esrepro.baselines.common.eval_seed`).
    params : dict
        Run parameters (config/trpo_params.schema.yaml); missing keys get the schema's defaults,
        null ones the preset's value for ``env_id`` (:func:`resolve_preset`); run.json records
        the resolved values and the preset.
    out_dir, threads, log
        See :func:`esrepro.baselines.common.train_baseline`.

    Returns
    -------
    dict
        The content of run.json.

    Raises
    ------
    esrepro.config.ConfigError
        Naming the bad key of ``params`` and its value.
    esrepro.checkpoint.CheckpointDamaged, esrepro.checkpoint.CheckpointMismatch
        For a damaged checkpoint in ``out_dir``, or one of another run.

    Notes
    -----
    Stopping, evaluation points, checkpoints, progress columns and determinism: see
    :func:`esrepro.baselines.common.train_baseline`.
    """
    return train_baseline("trpo", env_id, seed, resolve_preset(env_id, config.validate_params(params, "trpo")),
                          out_dir, threads, log, build)


#: The presets of config/trpo_params.schema.yaml (its ``presets`` block): preset -> key -> one value,
#: or a mapping of env names (``HalfCheetah``) to values with ``default`` for the other envs.
PRESETS = yaml.safe_load(config.PARAMS_SCHEMAS["trpo"].read_text())["presets"]


def resolve_preset(env_id: str, params: dict) -> dict:
    """A copy of validated TRPO ``params`` whose null keys hold ``params["preset"]``'s value for
    ``env_id`` (matched by name without namespace or version: ``HalfCheetah-v5`` -> ``HalfCheetah``);
    keys set explicitly keep their values. The result validates against the schema."""
    from gymnasium.envs.registration import parse_env_id

    name = parse_env_id(env_id)[1]
    resolved = dict(params)
    for key, value in PRESETS[params["preset"]].items():
        if resolved[key] is None:
            resolved[key] = value.get(name, value["default"]) if isinstance(value, dict) else value
    return resolved


def grid_presets(workflow: dict, env: str) -> list[str]:
    """The TRPO presets a validated workflow config (``workflow``) runs ``env`` with: ``trpo.presets`` when it is
    given (config/schema.yaml), else the one preset of the env's parameters (``preset`` in
    ``trpo.params`` or ``trpo.envs.<env>``; the schema's default, zoo, when neither sets it).

    Raises
    ------
    esrepro.config.ConfigError
        If ``trpo.presets`` is given and ``trpo.params`` or ``trpo.envs.<env>`` also sets ``preset``
        (which of the two applies would be a guess).
    """
    section = workflow["trpo"]
    presets = section.get("presets")
    if presets is None:
        return [config.run_params(workflow, env, section="trpo")["preset"]]
    for where, params in (("trpo.params", section.get("params")), (f"trpo.envs.{env}", section["envs"].get(env))):
        if "preset" in (params or {}):
            raise config.ConfigError(
                f"config key '{where}.preset' = {params['preset']!r}: the grid runs the presets of 'trpo.presets' "
                f"({', '.join(presets)}); set one or the other")
    return list(presets)


def build(env_id: str, seed: int, params: dict) -> Setup:
    """The untrained TRPO model on its training VecEnv (DummyVecEnv of Monitor(env), VecNormalize
    when ``params["normalize"]``) and the evaluation env, for validated, resolved ``params``
    (:func:`resolve_preset`)."""
    import gymnasium as gym
    import torch
    from sb3_contrib import TRPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    # Training envs: DummyVecEnv of Monitor(TimeLimit(env)), no passive env checker, no renderer.
    env = make_vec_env(env_id, n_envs=params["n_envs"], seed=seed,
                       env_kwargs={"disable_env_checker": True, "render_mode": None})
    if params["normalize"]:
        env = VecNormalize(env, norm_obs=True, norm_reward=params["normalize_reward"], clip_obs=params["clip_obs"],
                           gamma=params["gamma"])
    eval_env = gym.make(env_id, disable_env_checker=True)

    model = TRPO(
        "MlpPolicy", env, learning_rate=params["learning_rate"], n_steps=params["n_steps"],
        batch_size=params["batch_size"], gamma=params["gamma"], gae_lambda=params["gae_lambda"],
        cg_max_steps=params["cg_max_steps"], cg_damping=params["cg_damping"],
        line_search_shrinking_factor=params["line_search_shrinking_factor"],
        n_critic_updates=params["n_critic_updates"], target_kl=params["target_kl"],
        policy_kwargs={"net_arch": {"pi": list(params["hidden"]), "vf": list(params["hidden"])},
                       "activation_fn": torch.nn.Tanh},
        seed=seed, device="cpu", verbose=0)

    # Evaluation sees observations normalized with the statistics frozen at that moment.
    return Setup(model, eval_env, vecnormalize=env if params["normalize"] else None)
