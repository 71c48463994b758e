"""Spreading ES rollouts over a Dask cluster (docs/design.md, Distribution)."""
