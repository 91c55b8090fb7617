"""The shop's worker: takes new order ids from redis and marks the orders processed.

It writes only when there is work, so a quiet shop has a quiet database. `worker.py --check` is its healthcheck.
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Redis, db_connect  # noqa: E402


def check():
    with db_connect() as conn:
        conn.execute("SELECT 1")
    cache = Redis()
    ok = cache.command("PING") == "PONG"
    cache.close()
    return 0 if ok else 1


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("worker started", flush=True)
    while True:
        try:
            cache = Redis()
            while True:
                popped = cache.command("BLPOP", "orders:new", 2)
                if popped:
                    with db_connect() as conn:
                        conn.execute("UPDATE orders SET status = 'processed' WHERE id = %s", (int(popped[1]),))
        except Exception as exc:  # the database or cache is away: retry, as a real worker would
            print("worker waiting: %s" % exc, flush=True)
            time.sleep(1)


if __name__ == "__main__":
    sys.exit(check() if sys.argv[1:] == ["--check"] else main())
