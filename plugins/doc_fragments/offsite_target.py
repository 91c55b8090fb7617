# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """The options every off-site module (offsite_copy, offsite_info, offsite_fetch) takes besides a transport's:
    module_utils/offsite_target.py target_spec() and the kind of copy (module_utils/offsite_family.py)."""

    DOCUMENTATION = r'''
options:
  type:
    description:
      - The transport of the target. V(s3) takes the options of an S3-compatible server (O(bucket), ...), V(ssh) those
        of a host reached over SSH with rsync (O(host), O(path), ...).
      - Without it, V(s3) when O(bucket) is given and V(ssh) when O(host) is (the old module names give none).
    type: str
    choices: [s3, ssh]
  target_name:
    description: Name of the target in results and messages (RV(target_name)); default the bucket, or C(ssh://user@host:port/path).
    type: str
  kind:
    description:
      - What is copied, listed or fetched. V(set) - logical backup sets of O(database); V(group) - every set of an
        C(--all-databases) group (O(group_id)); V(pitr) - physical base backups of Barman server O(server_name) and
        their WAL, below C(.pitr/<server>/) on the target.
      - Without it, the options decide - O(group_id) means V(group), O(database) V(set), O(server_name) alone V(pitr).
    type: str
    choices: [set, group, pitr]
  group_id:
    description:
      - The C(--all-databases) group (kind V(group)). offsite_copy copies every set of it (each holds the server's
        globals; the group must be complete and every set verified) and, with C(retention), counts, keeps and deletes
        whole groups. offsite_fetch fetches every set of it (V(latest) - the newest complete verified group).
    type: str
'''

    # Barman's options (module_utils/offsite_family.py pitr_spec()): optional here, only kind=pitr reads them. Not named
    # PITR: 'offsite_target.pitr' would resolve to the pitr fragment (required options) before this variable.
    BARMAN = r'''
options:
  pitr_dir:
    description: Directory of Barman's configuration and catalog (V(pitr)).
    type: path
  server_name:
    description: Barman server name (V(pitr)).
    type: str
  barman_bin:
    description: Path of the C(barman) program (V(pitr); default looked up on E(PATH) and next to the module's Python).
    type: path
  pg_bindir:
    description: Directory of the host's PostgreSQL programs (V(pitr)).
    type: path
    default: /usr/lib/postgresql/15/bin
'''
