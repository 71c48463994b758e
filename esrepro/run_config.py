"""One ES run's configuration, typed and frozen: built once from the validated parameters
(``esrepro.config.run_params``), then read by the trainer, the workers and the checkpoints.

It is hashable and a few hundred bytes, so it travels with every task."""

from dataclasses import asdict, dataclass, fields

from esrepro.envs import EnvKind, kind_of
from esrepro.envs.atari import AtariParams
from esrepro.envs.mujoco import MujocoParams


@dataclass(frozen=True)
class RunConfig:
    """The parameters of one ES run; config/es_params.schema.yaml gives each one's meaning,
    default and source (paper section, reference code).

    Attributes
    ----------
    env_id : str
        gymnasium id, e.g. "HalfCheetah-v5" or "ALE/Pong-v5".
    seed : int
        The run seed (>= 0): noise indices, env seeds and initial parameters follow from it.
    iterations, timesteps : int or None
        Budgets (at least one is set); ``target_return`` (float or None) stops a run early.
    env : MujocoParams or AtariParams
        The parameters of the env's kind (``esrepro.envs``).
    """

    env_id: str
    seed: int
    iterations: int | None
    timesteps: int | None
    target_return: float | None
    pairs_per_iteration: int
    min_timesteps_per_iteration: int
    sigma: float
    stepsize: float
    l2coeff: float
    noise_table_size: int
    noise_seed: int
    eval_episodes: int
    checkpoint_every: int
    max_episode_steps: int | None
    episode_cap_factor: float | None
    communication: str
    batch: str
    env: MujocoParams | AtariParams

    @classmethod
    def from_params(cls, env_id: str, seed: int, params: dict) -> "RunConfig":
        """The config of a run from its validated parameters (exactly the schema's keys that apply
        to ``env_id``'s kind)."""
        kind = kind_of(env_id)
        own = {k: v for k, v in params.items() if k not in kind.param_names}
        env = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items() if k in kind.param_names}
        return cls(env_id=env_id, seed=seed, env=kind.params(**env), **own)

    @property
    def kind(self) -> EnvKind:
        return kind_of(self.env_id)

    @property
    def scalar(self) -> bool:
        """Whether workers keep replicas and receive only scalars (paper Algorithm 2)."""
        return self.communication == "scalar"

    @property
    def deterministic(self) -> bool:
        """Whether the run is a function of its config and seed alone: every batch rule but the
        reference code's first-come one (``batch: first_come``)."""
        return self.batch == "all"

    def params(self) -> dict:
        """The run parameters as one flat dict, as validated (run.json's ``config``)."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("env_id", "seed", "env")}
        return own | asdict(self.env)
