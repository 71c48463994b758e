"""Baselines beside ES, on the shared progress columns: TRPO on MuJoCo (sb3-contrib) and A2C on Atari (SB3)."""
