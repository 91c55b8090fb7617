"""The streamed restore's script loader against a real PostgreSQL 15 and real pg_dump/pg_restore output.

The round trips (test_pg_backup_roundtrip.py) prove the whole module path; these feed the loader pg_restore's
real data script in awkward pieces (1 byte, 7 bytes, a page) to prove a COPY block, its end marker and the
statements around it are recognised wherever a read happens to cut them, and that what the loader does not
understand stops it before it reaches the database.
"""
import subprocess
import threading

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils.restore_stream import (
    CopyWorker, ScriptLoader, StreamFailed, StreamNotSupported, split_post_data, toc_entries)
from support.backup import create_db, fingerprint

pytestmark = pytest.mark.pg

SOURCE = "stream_src"
LARGE_OBJECT = 424242
LARGE_OBJECT_BYTES = b"\x00\xff large object; with a line\n\\. that looks like the end of a COPY\n"


@pytest.fixture(scope="module")
def dump(pg_cluster, tmp_path_factory):
    """A custom-format dump of the rich schema (sequences, view, function, extensions, unicode, bytea) and the data
    script pg_restore makes of it."""
    create_db(pg_cluster, SOURCE)
    pg_cluster.sql("SELECT lo_from_bytea(%s, %s)", dbname=SOURCE, params=(LARGE_OBJECT, LARGE_OBJECT_BYTES))
    path = tmp_path_factory.mktemp("stream") / "rich.dump"
    env = {"PGPASSWORD": pg_cluster.password}
    subprocess.run([str(pg_cluster.bindir / "pg_dump"), "-h", pg_cluster.host, "-p", str(pg_cluster.port), "-U",
                    pg_cluster.user, "-Fc", "-f", str(path), SOURCE], check=True, env=env)
    script = subprocess.run([str(pg_cluster.bindir / "pg_restore"), "--section=data", "-f", "-", str(path)],
                            check=True, capture_output=True).stdout
    return dict(path=path, script=script, env=env, before=fingerprint(pg_cluster, SOURCE))


def pg_restore_into(pg_cluster, dump, dbname, *args):
    subprocess.run([str(pg_cluster.bindir / "pg_restore"), "-h", pg_cluster.host, "-p", str(pg_cluster.port), "-U",
                    pg_cluster.user, "-d", dbname, "--exit-on-error"] + list(args) + [str(dump["path"])],
                   check=True, env=dump["env"], capture_output=True)


def load(pg_cluster, dbname, script, piece, jobs=2, cuts=()):
    """Feed ``script`` to a ScriptLoader ``piece`` bytes at a time (and also at every offset in ``cuts``), as the
    module's read loop does."""
    bounds = sorted(set(list(range(0, len(script), piece)) + [c for c in cuts if 0 < c < len(script)] + [len(script)]))
    workers = [CopyWorker(lambda: pg_cluster.connect(dbname), "copy-%d" % n) for n in range(1, jobs + 1)]
    for worker in workers:
        worker.start()
    try:
        with pg_cluster.connect(dbname) as control:
            loader = ScriptLoader(control, workers)
            rest = b""
            for start, end in zip([0] + bounds[:-1], bounds):
                rest = loader.feed(rest + script[start:end])
            if rest:
                loader.feed(rest + b"\n")
            loader.finish()
    finally:
        for worker in workers:
            worker.inbox.put(("stop", None))
        for worker in workers:
            worker.join()
    return sum(worker.rows for worker in workers), [w for w in workers if w.rows]


def empty_schema(pg_cluster, dump, dbname):
    create_db(pg_cluster, dbname, schema_sql=None)
    pg_restore_into(pg_cluster, dump, dbname, "--section=pre-data")


@pytest.mark.parametrize("piece", [7, 8192, 1 << 20], ids=lambda n: "%d-byte-reads" % n)
def test_any_read_size_restores_identically(pg_cluster, dump, piece):
    target = "stream_copy_%d" % piece
    empty_schema(pg_cluster, dump, target)
    script = dump["script"]
    # Reads that end one byte before, inside and after every end-of-COPY marker and COPY header.
    cuts = [at + delta for marker in (b"\\.\n", b"FROM stdin;\n") for at in _positions(script, marker)
            for delta in range(-2, 4)]
    rows, busy = load(pg_cluster, target, script, piece, cuts=cuts)
    pg_restore_into(pg_cluster, dump, target, "--section=post-data")
    assert rows == 1500 + 300
    assert fingerprint(pg_cluster, target) == dump["before"]  # rows, sequences, view, function, extensions
    # Large objects arrive as lo_open/lowrite statements inside BEGIN/COMMIT, run in order on one connection.
    assert pg_cluster.sql("SELECT lo_get(%s)", dbname=target, params=(LARGE_OBJECT,)) == [(LARGE_OBJECT_BYTES,)]
    if piece <= 8192:
        assert len(busy) == 2, "small pieces of one big table should be spread over both connections"


def _positions(data, marker):
    found, at = [], data.find(marker)
    while at >= 0:
        found.append(at)
        at = data.find(marker, at + 1)
    assert found, "the dump has no %r" % marker
    return found


def test_unknown_meta_command_stops_before_anything_after_it(pg_cluster, dump):
    target = "stream_meta"
    empty_schema(pg_cluster, dump, target)
    script = b"SET client_encoding = 'UTF8';\n\\! touch /tmp/pwned\nSELECT pg_catalog.setval('public.counter', 99, true);\n"
    with pytest.raises(StreamNotSupported, match="meta-command"):
        load(pg_cluster, target, script, 4096)
    assert pg_cluster.sql("SELECT last_value FROM public.counter", dbname=target) == [(42,)]


def test_script_cut_inside_a_copy_block_fails(pg_cluster, dump):
    target = "stream_cut"
    empty_schema(pg_cluster, dump, target)
    cut = dump["script"].index(b"COPY public.plain") + 200
    with pytest.raises(StreamFailed, match="ended in the middle of a COPY block"):
        load(pg_cluster, target, dump["script"][:cut], 4096)


def test_bad_row_names_connection_and_database_error(pg_cluster, dump):
    target = "stream_bad_row"
    empty_schema(pg_cluster, dump, target)
    script = b"COPY public.plain (id, note) FROM stdin;\n1\tfine\nnot-a-number\toops\n\\.\n"
    with pytest.raises(StreamFailed) as failure:
        load(pg_cluster, target, script, 4096)
    assert "copy-" in str(failure.value) and "invalid input syntax for type integer" in str(failure.value)
    assert pg_cluster.sql("SELECT count(*) FROM public.plain", dbname=target) == [(0,)]


def test_copy_workers_run_concurrently_with_reader(pg_cluster, dump):
    """The reader never blocks forever on a worker that failed: it drains and the error surfaces."""
    target = "stream_drain"
    empty_schema(pg_cluster, dump, target)
    rows = b"".join(b"x%d\tbad\n" % n for n in range(20000))
    script = b"COPY public.plain (id, note) FROM stdin;\n" + rows + b"\\.\n"
    done = threading.Event()
    errors = []

    def run():
        try:
            load(pg_cluster, target, script, 64)
        except StreamFailed as exc:
            errors.append(exc)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(120), "the loader hung after a worker failed"
    assert errors


def test_post_data_split_keeps_dependent_entries_serial():
    listing = "\n".join([
        ";",
        "; Archive created at 2026-12-01",
        "3255; 2606 16451 CONSTRAINT public attachments attachments_pkey postgres",
        "3246; 2606 16430 CONSTRAINT public customers customers_email_key postgres",
        "3253; 1259 16457 INDEX public attachments_order_idx postgres",
        "3301; 0 0 INDEX ATTACH public parts_1_idx postgres",
        "3260; 2606 16452 FK CONSTRAINT public attachments attachments_order_id_fkey postgres",
        "3270; 2620 16470 TRIGGER public orders audit postgres",
    ])
    entries = toc_entries(listing)
    assert len(entries) == 6
    parallel, serial = split_post_data(entries, 2)
    assert [len(chunk) for chunk in parallel] == [2, 1]
    assert all(" INDEX ATTACH " not in e and " FK CONSTRAINT " not in e for chunk in parallel for e in chunk)
    assert [e.split(";")[0] for e in serial] == ["3301", "3260", "3270"]
