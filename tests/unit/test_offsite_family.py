"""The off-site family (module_utils/offsite_family.py): the old per-transport module names redirect to
offsite_copy/_info/_fetch with a deprecation (meta/runtime.yml), the new modules take every option the old ones took,
and the transport and the kind follow from those options when a task names neither."""
from pathlib import Path

import pytest
import yaml

from ansible_collections.stackops.runbooks.plugins.module_utils import offsite_family
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import BackupError
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import OffsiteError
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_target import target_type

ROOT = Path(__file__).resolve().parents[2]
S3 = ["target_name", "bucket", "prefix", "endpoint_url", "region", "path_style", "validate_certs", "ca_bundle",
      "access_key", "secret_key", "session_token", "profile", "credentials_file", "part_size_mib", "max_concurrency"]
SSH = ["target_name", "host", "port", "user", "path", "identity_file", "known_hosts_file", "strict_host_key_checking",
       "ssh_options", "connect_timeout"]
PITR = ["pitr_dir", "server_name", "barman_bin", "pg_bindir"]
SET_COPY = ["backup_dir", "lock_timeout", "backup_id", "sets", "retention", "database", "group_id", "age_recipients",
            "max_bandwidth_mib"]
# Every option of every old module, by the new module it redirects to.
OLD = {
    "s3_backup_copy": ("offsite_copy", S3 + SET_COPY + ["object_lock_mode", "object_lock_days", "remote_check",
                                                         "staging_dir"]),
    "ssh_backup_copy": ("offsite_copy", SSH + SET_COPY),
    "s3_pitr_copy": ("offsite_copy", S3 + PITR + ["object_lock_mode", "object_lock_days", "backup_id", "base_backups",
                                                   "remote_check", "max_bandwidth_mib", "retention", "age_recipients",
                                                   "staging_dir"]),
    "s3_backup_info": ("offsite_info", S3 + ["database", "backup_id", "remote_check"]),
    "ssh_backup_info": ("offsite_info", SSH + ["database", "backup_id", "remote_check"]),
    "s3_backup_fetch": ("offsite_fetch", S3 + ["database", "backup_id", "dest", "require_verified", "group_id",
                                                "age_identity_file"]),
    "ssh_backup_fetch": ("offsite_fetch", SSH + ["database", "backup_id", "dest", "require_verified", "group_id"]),
    "s3_pitr_fetch": ("offsite_fetch", S3 + PITR + ["target", "target_value", "backup_id", "require_verified",
                                                     "age_identity_file"]),
}
SPECS = {"offsite_copy": offsite_family.copy_spec, "offsite_info": offsite_family.info_spec,
         "offsite_fetch": offsite_family.fetch_spec}


def runtime():
    return yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())


@pytest.mark.parametrize("old", sorted(OLD))
def test_an_old_name_redirects_to_its_new_module_with_a_deprecation(old):
    new, options = OLD[old]
    routing = runtime()["plugin_routing"]["modules"][old]
    assert routing["redirect"] == "stackops.runbooks." + new
    assert routing["deprecation"]["removal_version"] == "3.0.0"
    assert "stackops.runbooks." + new in routing["deprecation"]["warning_text"]
    assert not (ROOT / "plugins" / "modules" / ("%s.py" % old)).exists(), "%s is redirected, not a module" % old
    # The redirect carries the task's options as they are: the new module must take every one of them.
    spec = SPECS[new]()
    names = set(spec) | {alias for option in spec.values() for alias in option.get("aliases", [])}
    assert not sorted(set(options) - names), "%s does not take %s" % (new, sorted(set(options) - names))


def test_the_new_modules_are_in_the_groups_whose_options_they_take_and_the_old_names_in_none():
    groups = runtime()["action_groups"]
    member = dict((name, sorted(group for group, modules in groups.items() if name in modules))
                  for name in list(SPECS) + list(OLD))
    assert member["offsite_copy"] == ["catalog", "pitr"] and member["offsite_fetch"] == ["pitr"]
    assert member["offsite_info"] == [] and not any(member[old] for old in OLD)


def test_the_transport_follows_from_the_options_when_type_is_not_given():
    assert target_type(dict(type="ssh", bucket="b")) == "ssh"
    assert target_type(dict(bucket="b")) == "s3" and target_type(dict(host="h", path="/p")) == "ssh"
    with pytest.raises(OffsiteError, match="give type"):
        target_type(dict())


def params(**given):
    out = dict(kind=None, group_id=None, database=None, server_name=None, target=None)
    out.update(given)
    return out


def test_the_kind_follows_from_the_options_when_kind_is_not_given():
    copy_kind, fetch_kind = offsite_family.copy_kind, offsite_family.fetch_kind
    # Groups before sets, sets before PITR: module_defaults may fill server_name for every offsite_copy task.
    assert copy_kind(params(group_id="g", database="d", server_name="s")) == "group"
    assert copy_kind(params(database="d", server_name="s")) == "set"
    assert copy_kind(params(server_name="s")) == "pitr" and copy_kind(params(kind="pitr", database="d")) == "pitr"
    with pytest.raises(BackupError, match="give kind"):
        copy_kind(params())
    assert fetch_kind(params(target="latest", database="d")) == "pitr"
    assert fetch_kind(params(group_id="latest")) == "group" and fetch_kind(params(database="d")) == "set"


def test_retention_defaults_are_the_kinds_own():
    assert offsite_family.retention_for("pitr", dict(keep_last=None, keep_daily=None, keep_weekly=None,
                                                     keep_monthly=None))["keep_last"] == 2
    assert offsite_family.retention_for("set", dict(keep_last=None, keep_daily=3, keep_weekly=None,
                                                    keep_monthly=None)) == dict(keep_last=7, keep_daily=3,
                                                                                keep_weekly=4, keep_monthly=3)
    assert offsite_family.retention_for("set", None) is None
