"""The collector's young-generation threshold while fetches run (connectors/core/gcroom.py)."""

import gc

import pytest

from connectors.core.gcroom import YOUNG, roomy_young_generation


@pytest.fixture(autouse=True)
def default_threshold():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_raised_while_fetches_run_and_put_back_after_the_last():
    with roomy_young_generation():
        assert gc.get_threshold() == (YOUNG, 10, 10)
        with roomy_young_generation():  # a second batch of the process, at the same time
            assert gc.get_threshold() == (YOUNG, 10, 10)
        assert gc.get_threshold() == (YOUNG, 10, 10)  # the first still runs
    assert gc.get_threshold() == (700, 10, 10)


def test_put_back_after_an_error_too():
    with pytest.raises(RuntimeError), roomy_young_generation():
        raise RuntimeError("fetch failed")
    assert gc.get_threshold() == (700, 10, 10)


def test_a_host_s_own_choice_is_left_alone():
    gc.set_threshold(50_000, 10, 10)  # higher already
    with roomy_young_generation():
        assert gc.get_threshold() == (50_000, 10, 10)
    gc.set_threshold(0, 10, 10)  # collection off
    with roomy_young_generation():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold()[0] == 0
    gc.set_threshold(700, 10, 10)
    with roomy_young_generation():
        gc.set_threshold(2_000, 10, 10)  # the host changed it meanwhile: its choice stays
    assert gc.get_threshold() == (2_000, 10, 10)
