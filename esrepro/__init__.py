"""esrepro: a reproduction of Salimans et al. 2017, "Evolution Strategies as a Scalable
Alternative to Reinforcement Learning" (arXiv:1703.03864)."""

__version__ = "0.1.0"
