"""The suite's ROS domains: each xdist worker's nodes on a domain no other worker uses."""
import pytest

from worker_domains import worker_domain


@pytest.mark.parametrize('workers', [1, 2, 3, 8])
def test_workers_get_disjoint_domains_inside_the_range(workers):
    for base in (0, 1, 37, 100, 250):
        domains = [worker_domain(base, worker=w, workers=workers) for w in range(workers)]
        assert len(set(domains)) == workers
        assert all(1 <= domain <= 100 for domain in domains)
        bag = [worker_domain(base, first=150, count=60, worker=w, workers=workers)
               for w in range(workers)]
        assert len(set(bag)) == workers and all(150 <= domain < 210 for domain in bag)


def test_a_single_process_keeps_the_requested_domain():
    assert [worker_domain(base, worker=0, workers=1) for base in (1, 42, 100)] == [1, 42, 100]


def test_more_workers_than_domains_is_refused():
    with pytest.raises(ValueError, match='101 workers'):
        worker_domain(5, worker=0, workers=101)
