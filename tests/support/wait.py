"""Waiting on a state, never on a delay: poll until the thing a test needs is true, fail naming it if it never is."""
import time

import pytest


def until(predicate, what, timeout=60, interval=0.05):
    """Return ``predicate()``'s first true value; fail with ``what`` when ``timeout`` seconds pass without one."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("waited %ss for %s" % (timeout, what))
        time.sleep(interval)


def sessions_older_than(conn, pids, seconds, since="state_change"):
    """Until each session in ``pids`` has been in its state (or, with since='xact_start', its transaction) longer
    than ``seconds`` by the server's own clock: what an age filter of the code under test will see."""
    pids = sorted(pids)
    query = ("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%%s) AND %s < now() - make_interval(secs => %%s)"
             % since)
    until(lambda: conn.execute(query, (pids, seconds)).fetchone()[0] == len(pids),
          "sessions %s to be older than %ss" % (pids, seconds))
