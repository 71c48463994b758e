"""Spreading ES rollouts over a Dask cluster (DESIGN.md, Distribution)."""
