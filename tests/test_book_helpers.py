"""The notebooks' helpers fail loudly where a page would otherwise show something wrong."""

import pytest

from telucodec.book import show_source
from telucodec.codec.quantizer import ResidualVQ


def test_show_source_refuses_a_listing_that_matches_nothing(capsys):
    with pytest.raises(ValueError, match="stale"):
        show_source(ResidualVQ.forward, contains="this text is in no line of the function")
    show_source(ResidualVQ.forward, contains="per_step_ste", context=1)  # a line that exists is shown
    assert "per_step_ste" in capsys.readouterr().out
