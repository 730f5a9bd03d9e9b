"""Many figures are drawn in processes forked from a server that imported the drawing
code once, a few in this one."""

import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from xrdmap.maps import POOL_MIN_JOBS, figure_pool, start_drawing_server


def test_a_few_figures_stay_in_this_process():
    with figure_pool(POOL_MIN_JOBS - 1) as pool:
        assert isinstance(pool, ThreadPoolExecutor)
        assert pool.submit(os.getpid).result() == os.getpid()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: no pool of processes")
def test_many_figures_are_drawn_in_processes_of_the_drawing_server():
    start_drawing_server(15)
    with figure_pool(15) as pool:
        assert isinstance(pool, ProcessPoolExecutor)
        pids = {pool.submit(os.getpid).result() for _ in range(4)}
        parents = {pool.submit(os.getppid).result() for _ in range(4)}
    assert os.getpid() not in pids and 1 <= len(pids) <= min(15, os.cpu_count())
    assert parents.isdisjoint({os.getpid()}) and len(parents) == 1  # forked by the server
