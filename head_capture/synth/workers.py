"""
Rendering in spawned worker processes, each replaced after a few tasks.

pyrender through OSMesa (0.1.45, Debian 12's Mesa) keeps 3-8 MB of every render that it never
gives back, whatever the image size: a process that renders a 1,200-frame capture holds some
9 GB for the rest of its life. The synthetic writers therefore render in worker processes that
are replaced before they grow far, and hand back only what was rendered.
"""

import multiprocessing


def run_tasks(function, tasks, workers=0, tasks_per_worker=1, ordered=True, setup=None,
              setup_args=()):
    """
    Yield ``function(task)`` for every task: here (``workers`` 0) or in worker processes.

    Each of ``workers`` spawned processes (a fresh GL context in every one) runs
    ``setup(*setup_args)`` once, then at most ``tasks_per_worker`` tasks, and is replaced.
    Results come in the tasks' order when ``ordered``, else as they finish. Closing the
    generator early stops the workers.
    """
    if workers == 0:
        if setup is not None:
            setup(*setup_args)
        for task in tasks:
            yield function(task)
        return
    context = multiprocessing.get_context('spawn')
    with context.Pool(workers, setup, setup_args, maxtasksperchild=tasks_per_worker) as pool:
        yield from (pool.imap if ordered else pool.imap_unordered)(function, tasks)
