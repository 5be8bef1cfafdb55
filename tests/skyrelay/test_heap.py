"""skyrelay.heap: start-up objects are kept out of later collections."""

import gc

from skyrelay import heap


def test_settle_after_start_freezes_the_start_up_heap():
    gc.unfreeze()
    try:
        before = gc.get_freeze_count()
        heap.settle_after_start()
        assert before == 0
        assert gc.get_freeze_count() > 1000          # this test process's start-up objects
    finally:
        gc.unfreeze()
