import numpy as np
import pytest

from rljax.metrics import smooth


def _reference(x, window):
    out = np.full(len(x), np.nan)
    for i in range(len(x)):
        chunk = x[max(0, i - window + 1): i + 1]
        if np.isfinite(chunk).any():
            out[i] = np.nanmean(chunk)
    return out


@pytest.mark.parametrize("window", [1, 3, 20])
def test_smooth_matches_a_nan_skipping_loop(window):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 40))
    x[rng.random(x.shape) < 0.3] = np.nan
    x[0, :5] = np.nan                                  # leading windows with nothing finite
    expected = np.stack([_reference(row, window) for row in x])
    np.testing.assert_allclose(smooth(x, window), expected, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(smooth(x[1], window), expected[1], rtol=1e-12, equal_nan=True)
