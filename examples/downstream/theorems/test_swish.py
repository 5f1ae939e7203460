"""This project's theorem: gradcore measures its own claim MY-01 on its own technique."""
import pytest
import torch
from hypothesis import strategies as st

from gradcore.verify.search import grid, minimize
from swishlib import swish


@pytest.mark.claim("MY-01")
def test_swish_is_bounded_below(claim):
    """MY-01 (Ramachandran et al. 2017, §4)."""
    def value(x: float) -> float:
        return float(swish(torch.tensor(x, dtype=torch.float64)))

    found = minimize(st.floats(-40, 40, allow_nan=False), value, candidates=grid(-40.0, 40.0, 8001))
    claim.compare("min x·σ(x) over [−40, 40] (search)", claimed=-0.27846454276107,
                  measured=found.bound(dtype="float64", direction="upper", sizes={"grid": 8001}))
