"""GrowingFile: the trial restore of a verified backup follows the dump file while it is written (pipeline.py).

A reader must get every byte of the file from the first one, wait (not stop) while the writer is behind, stop when
the file is complete or its own process has what it needs, and hear about a writer that failed.
"""
import threading
import time

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils.pipeline import FeedFailed, GrowingFile, Pipeline

CHUNKS = [bytes([n]) * 1000 for n in range(10)]


def until(condition, what):
    """Wait for a state the other thread reaches (bounded, so a bug fails instead of hanging)."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "never reached: %s" % what
        time.sleep(0.01)


class Writer:
    """The dump's copy loop, one chunk at a time on request, so a test controls how far the file has grown."""

    def __init__(self, path):
        self.feed = GrowingFile(str(path))
        self.handle = open(path, "wb")
        self.written = 0

    def write(self, chunk):
        self.handle.write(chunk)
        self.handle.flush()
        self.written += len(chunk)
        self.feed.wrote(self.written)

    def close(self, error=None):
        self.handle.close()
        self.feed.end(error)


def read_in_thread(chunks):
    out = {"chunks": [], "error": None}

    def run():
        try:
            for chunk in chunks:
                out["chunks"].append(chunk)
        except FeedFailed as exc:
            out["error"] = exc
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_readers_follow_the_writer_from_the_first_byte_to_the_end(tmp_path):
    writer = Writer(tmp_path / "data.dump.zst")
    first, second = (read_in_thread(writer.feed.reader()(lambda: True)) for dummy in range(2))
    for index, chunk in enumerate(CHUNKS):
        writer.write(chunk)
        until(lambda: len(b"".join(first[1]["chunks"])) == writer.written, "the reader caught up")
        assert first[0].is_alive(), "a reader at the writer's offset waits for more, it does not stop"
        if index == 4:
            # A pass that starts later (post-data after the data) still reads from the first byte.
            late = read_in_thread(writer.feed.reader()(lambda: True))
    writer.close()
    for thread, out in (first, second, late):
        thread.join(10)
        assert not thread.is_alive() and out["error"] is None
        assert b"".join(out["chunks"]) == b"".join(CHUNKS)
    writer.feed.wait_ended()


def test_a_reader_waits_for_the_file_to_be_created(tmp_path):
    path = tmp_path / "data.dump"
    feed = GrowingFile(str(path))
    thread, out = read_in_thread(feed.reader()(lambda: True))
    assert thread.is_alive() and not path.exists()
    path.write_bytes(CHUNKS[0])
    feed.wrote(len(CHUNKS[0]))
    feed.end()
    thread.join(10)
    assert out["chunks"] == [CHUNKS[0]]


def test_a_failed_dump_reaches_the_reader_and_the_trial(tmp_path):
    writer = Writer(tmp_path / "data.dump.zst")
    writer.write(CHUNKS[0])
    thread, out = read_in_thread(writer.feed.reader()(lambda: True))
    until(lambda: out["chunks"], "the first chunk read")
    writer.close(RuntimeError("pg_dump was killed by signal 9"))
    thread.join(10)
    assert isinstance(out["error"], FeedFailed) and "signal 9" in str(out["error"])
    writer.feed.end()  # only the first end counts
    with pytest.raises(FeedFailed, match="signal 9"):
        writer.feed.wait_ended()


def test_pipeline_stops_feeding_once_its_last_stage_has_what_it_needs(tmp_path):
    """pg_restore -l reads the table of contents and exits: the pass ends there, not at the end of the dump, and
    the decompressor before it, which would only complain about the cut, is stopped."""
    writer = Writer(tmp_path / "data.dump.zst")
    for chunk in CHUNKS[:3]:
        writer.write(chunk)  # the dump goes on (never ended here): the pass must not wait for its end
    pipeline = Pipeline([["cat"], ["head", "-c", "1500"]], feed=writer.feed.reader())
    output = pipeline.stdout.read()
    results = pipeline.wait()
    assert output == (CHUNKS[0] + CHUNKS[1])[:1500]
    assert pipeline.cut and results[-1][1] == 0 and pipeline.feed_error is None
    writer.close()
