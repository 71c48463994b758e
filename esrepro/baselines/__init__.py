"""Reinforcement-learning baselines the paper compares ES with (TRPO for MuJoCo, Table 1)."""
