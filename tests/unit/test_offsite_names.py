"""Names from a remote copy (module_utils/offsite_names.py): every fetch checks them before it writes anything, so a
tampered marker or WAL catalog cannot make a root restore write outside its work directory."""
import os

import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import offsite_names
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import OffsiteError
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_pitr import check_fetch_names
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import Layout

SOURCE = "s3://bucket/prefix/"
BACKUP_ID = "appdb-20260331T030000Z"


def marker(*names, backup_id=BACKUP_ID):
    return dict(id=backup_id, objects=dict((name, dict(size=1, sha256="0" * 64)) for name in names))


def key(name):
    return "prefix/%s/%s" % (BACKUP_ID, name)


class PitrRemote:
    """What check_fetch_names reads of offsite_pitr.PitrRemote (the S3 client is not needed to name keys)."""
    label = "s3://bucket/prefix/.pitr/shop/"

    def base_prefix(self, backup_id):
        return "prefix/.pitr/shop/base/%s/" % backup_id

    def wal_key(self, name):
        return "prefix/.pitr/shop/wals/" + name


@pytest.mark.parametrize("name", [
    "../../etc/cron.d/stackops", "..", "dump/../../../x", "/etc/cron.d/stackops", "", "dump\x00.toc",
    "..\\..\\etc\\passwd", "dump/./toc.dat", "dump//toc.dat", "dump/", "line\nbreak",
])
def test_names_that_could_leave_their_directory_are_refused(tmp_path, name):
    dest = tmp_path / "work"
    good = ["manifest.json", "dump/toc.dat", "globals.sql", "a name with spaces.sql", "...not-a-parent"]
    assert offsite_names.checked_set(str(dest), marker(*good), SOURCE, key) == str(dest / (BACKUP_ID + ".partial"))

    with pytest.raises(OffsiteError) as refused:
        offsite_names.checked_set(str(dest), marker("manifest.json", name), SOURCE, key)
    message = str(refused.value)
    assert "tampered" in message and "nothing was written" in message and SOURCE in message
    assert offsite_names.printable(key(name)) in message  # the object, by its key on the target
    assert not dest.exists()

    # The backup id becomes a directory name too; the plaintext of a decrypted object is written beside it.
    for bad_id in ("../" + BACKUP_ID, "..", BACKUP_ID + "/x", name):
        with pytest.raises(OffsiteError, match="tampered"):
            offsite_names.checked_set(str(dest), marker("manifest.json", backup_id=bad_id), SOURCE, key)
    with pytest.raises(OffsiteError, match="tampered"):
        offsite_names.checked_set(str(dest), marker("dump/...age"), SOURCE, key, decrypted=True)
    with pytest.raises(OffsiteError, match="without the .age suffix"):
        offsite_names.checked_set(str(dest), marker("dump/toc.dat"), SOURCE, key, decrypted=True)

    # PITR: base files stay in their staging directory and are files of that base backup; WAL stays in wals/.
    layout = Layout(str(tmp_path / "pitr"), "shop")
    base = marker("home/shop/base/20261201T140159/data/PG_VERSION", "home/shop/meta/20261201T140159-backup.info",
                  "verified/20261201T140159.json", backup_id="20261201T140159")
    wal = dict(files={"0000000100000000/000000010000000000000003": {}, "00000002.history": {}})
    check_fetch_names(layout, PitrRemote(), base, wal)
    for tampered_base in (marker("home/shop/base/20261201T140159/" + name, backup_id="20261201T140159"),
                          marker("barman.d/shop.conf", backup_id="20261201T140159"),
                          marker("home/shop/base/20261201T140159/x", backup_id="../20261201T140159")):
        with pytest.raises(OffsiteError, match="tampered"):
            check_fetch_names(layout, PitrRemote(), tampered_base, wal)
    with pytest.raises(OffsiteError, match="tampered") as refused:
        check_fetch_names(layout, PitrRemote(), base, dict(files={name or "": {}}))
    assert "prefix/.pitr/shop/wals/" in str(refused.value)
    assert not (tmp_path / "pitr").exists()


def test_a_path_through_a_symbolic_link_out_of_the_directory_is_refused(tmp_path):
    outside = tmp_path / "etc-cron.d"
    outside.mkdir()
    dest = tmp_path / "work"
    partial = dest / (BACKUP_ID + ".partial")
    partial.mkdir(parents=True)
    # Left in the work directory by someone else (an interrupted ssh fetch keeps its .partial to resume).
    os.symlink(str(outside), str(partial / "dump"))
    os.symlink(str(outside / "stackops"), str(partial / "globals.sql"))
    os.symlink(str(partial / "inner"), str(partial / "fine"))
    (partial / "inner").mkdir()

    for name in ("dump/toc.dat", "globals.sql"):
        with pytest.raises(OffsiteError) as refused:
            offsite_names.checked_set(str(dest), marker("manifest.json", name), SOURCE, key)
        message = str(refused.value)
        assert key(name) in message and "symbolic link" in message and str(outside) in message
        assert "tampered" in message and "nothing was written" in message
    assert os.listdir(str(outside)) == []

    # A link that stays inside is followed like any directory; a work directory that is itself a link (another
    # disk) is the administrator's choice and fine.
    offsite_names.checked_set(str(dest), marker("fine/toc.dat"), SOURCE, key)
    elsewhere = tmp_path / "big-disk"
    elsewhere.mkdir()
    os.symlink(str(elsewhere), str(tmp_path / "linked-work"))
    offsite_names.checked_set(str(tmp_path / "linked-work"), marker("dump/toc.dat"), SOURCE, key)

    # The same for WAL: a link in wals/ out of the PITR directory.
    layout = Layout(str(tmp_path / "pitr"), "shop")
    wals = tmp_path / "pitr" / "home" / "shop" / "wals"
    wals.mkdir(parents=True)
    os.symlink(str(outside), str(wals / "0000000100000000"))
    with pytest.raises(OffsiteError, match="symbolic link"):
        check_fetch_names(layout, PitrRemote(), marker("verified/1.json", backup_id="1"),
                          dict(files={"0000000100000000/000000010000000000000003": {}}))
