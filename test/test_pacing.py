from head_capture.pacing import Pacer
import pytest


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def run_for(pacer, clock, seconds, cost, step=0.01):
    """Offer the work every ``step`` for ``seconds``; return the run times and the busy time."""
    runs, busy = [], 0.0

    def work():
        nonlocal busy
        runs.append(clock.now)
        spent = cost(len(runs))
        clock.now += spent
        busy += spent

    end = clock.now + seconds
    while clock.now < end:
        pacer.run_if_due(work)
        clock.now += step
    return runs, busy


def test_cheap_work_runs_once_a_period():
    clock = FakeClock()
    runs, _ = run_for(Pacer(1.0, 0.05, clock), clock, 10.0, cost=lambda n: 0.001)
    assert len(runs) == 9  # at 1, 2, ... 9 s: the first is a period after the start
    assert all(0.99 < b - a < 1.03 for a, b in zip(runs, runs[1:]))


def test_work_that_grows_keeps_to_its_share_of_the_time():
    # A rewrite of everything so far: 1 ms more on every run. At a fixed period (a share of 1)
    # it takes a third of the time by the end of ten minutes.
    def grows(n):
        return 0.001 * n

    clock = FakeClock()
    _, fixed_busy = run_for(Pacer(1.0, 1.0, clock), clock, 600.0, grows)
    clock = FakeClock()
    runs, busy = run_for(Pacer(1.0, 0.05, clock), clock, 600.0, grows)
    assert fixed_busy / 600.0 > 0.25
    assert busy / 600.0 < 0.05 + 0.005
    assert runs[1] - runs[0] == pytest.approx(1.0, abs=0.02)  # once a second while cheap
    assert 2.0 < runs[-1] - runs[-2] < 600.0 / 20  # rarer once it is not, never starved


@pytest.mark.parametrize('period_s, share', [(0.0, 0.05), (1.0, 0.0), (1.0, 1.5)])
def test_a_pacer_refuses_settings_it_cannot_keep(period_s, share):
    with pytest.raises(ValueError, match='pacer needs'):
        Pacer(period_s, share)


def test_waiting_is_not_counted_as_cost_on_a_cpu_clock():
    # On a loaded machine the work waits for the GIL and for the disk to sync: 0.5 s of wall
    # time for 2 ms of CPU. Paced by wall time it would next run 10 s later; by its CPU, in 1.
    def slow_but_cheap(n):
        cpu.now += 0.002
        return 0.5

    wall, cpu = FakeClock(), FakeClock()
    by_cpu, _ = run_for(Pacer(1.0, 0.05, wall, cost_clock=cpu), wall, 20.0, slow_but_cheap)
    wall = FakeClock()
    by_wall, _ = run_for(Pacer(1.0, 0.05, wall), wall, 20.0, slow_but_cheap)
    assert all(b - a < 1.1 for a, b in zip(by_cpu, by_cpu[1:])) and len(by_cpu) >= 12
    assert len(by_wall) <= 2
