"""skyrelay.heap: start-up objects are kept out of later collections, which run less often."""

import gc

from skyrelay import heap


def test_settle_after_start_freezes_the_start_up_heap_and_raises_the_thresholds():
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        heap.settle_after_start()
        assert gc.get_freeze_count() > 1000          # this test process's start-up objects
        assert gc.get_threshold() == heap.THRESHOLDS
        assert heap.THRESHOLDS[0] > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
