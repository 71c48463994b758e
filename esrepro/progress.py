"""progress.csv: one row per iteration (ES) or evaluation point (baselines), written by every
algorithm with the same leading columns so aggregation never branches on the algorithm
(docs/design.md, Data flow)."""

import pandas as pd

from esrepro.atomic import write_text

#: Columns every progress.csv starts with. Row 0 is the initial policy (timesteps 0).
SHARED_COLUMNS = (
    "iteration", "timesteps", "episodes", "wall_time_s",
    "return_mean", "return_std", "return_max",
    "eval_return_mean", "eval_return_std", "eval_length_mean",
)


def write_progress(path, rows: list[dict], extra_columns=()) -> None:
    """Write ``rows`` atomically as CSV: the shared columns, then ``extra_columns``; a key a row
    lacks is written empty (NaN)."""
    write_text(path, pd.DataFrame(rows, columns=[*SHARED_COLUMNS, *extra_columns]).to_csv(index=False))
