"""What the shop's backend and worker share: the database and redis connections."""
import os
import socket
from urllib.parse import urlsplit

import psycopg


def db_connect(dbname=None):
    """Connect from DATABASE_URL (or PGHOST/PGDATABASE/...), the password read from DB_PASSWORD_FILE."""
    with open(os.environ["DB_PASSWORD_FILE"], encoding="utf-8") as handle:
        password = handle.read().strip()
    url = os.environ.get("DATABASE_URL")
    if url:
        parts = urlsplit(url)
        params = dict(host=parts.hostname, port=parts.port or 5432, user=parts.username,
                      dbname=dbname or parts.path.lstrip("/"))
    else:
        params = dict(host=os.environ["PGHOST"], port=int(os.environ.get("PGPORT", "5432")),
                      user=os.environ["PGUSER"], dbname=dbname or os.environ["PGDATABASE"])
    return psycopg.connect(password=password, connect_timeout=3, autocommit=True,
                           application_name=os.environ.get("APP_NAME", "shop"), **params)


class Redis:
    """The few redis commands the shop needs, over RESP on a plain socket."""

    def __init__(self):
        host, _sep, port = os.environ.get("REDIS_ADDR", "cache:6379").partition(":")
        self.sock = socket.create_connection((host, int(port or 6379)), timeout=5)
        self.reader = self.sock.makefile("rb")

    def command(self, *args):
        payload = b"*%d\r\n" % len(args)
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        self.sock.sendall(payload)
        return self._reply()

    def _reply(self):
        line = self.reader.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise OSError("redis: %s" % rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            if int(rest) < 0:
                return None
            data = self.reader.read(int(rest) + 2)[:-2]
            return data
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._reply() for _index in range(count)]
        raise OSError("redis: unexpected reply %r" % line)

    def close(self):
        self.sock.close()
