#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_pitr
short_description: Turn continuous WAL archiving with Barman (streaming mode) on or off for a compose PostgreSQL
version_added: 0.2.0
description:
  - With O(state=enabled) it makes the server ready for Barman's streaming mode and starts the WAL receiver,
    each step only when needed, so a second run changes nothing.
  - The steps are C(wal_level), C(max_wal_senders) and C(max_replication_slots) (C(ALTER SYSTEM); a value that only
    takes effect after a restart is reported in RV(restart_required) and the module never restarts the server), a
    replication role whose password is generated into a libpq passfile of mode 0600 and never returned, C(pg_hba)
    rules for the receiver (the file named by C(SHOW hba_file) is edited inside O(compose_service), then
    C(pg_reload_conf())), a physical replication slot that reserves WAL at once, Barman's configuration, and the
    receiver (C(barman cron) started in its own session, optionally supervised by a cron entry).
  - With O(state=absent) it stops the receiver, drops the slot so WAL cannot pile up, removes the rules, the role,
    the passfile and Barman's server configuration, and resets the settings it had changed. Base backups and WAL
    already archived are kept.
  - In check mode it returns every change it would make in RV(changes) and makes none.
author:
  - stackops maintainers (@stackops)
options:
  state:
    description: V(enabled) sets everything up; V(absent) undoes it.
    type: str
    choices: [enabled, absent]
    default: enabled
  role:
    description: Replication role Barman connects as.
    type: str
    default: stackops_pitr
  slot:
    description: Physical replication slot the receiver streams from.
    type: str
    default: stackops_pitr
  dbname:
    description:
      - Database Barman's normal connection uses; the function grants (C(pg_backup_start) and the like) are made in it,
        and only in it. Defaults to V(postgres), the maintenance database, never an application database, whose
        logical dumps would otherwise carry GRANTs to a role that only exists where PITR is on.
      - Grants an earlier version made in other databases are revoked when PITR is enabled again.
    type: str
  hba_address:
    description: Address field of the C(pg_hba) rules for the role. V(samenet) matches the compose network the
      server's container sits on, which is where connections from the host arrive.
    type: str
    default: samenet
  recovery_window_days:
    description: Barman retention policy, C(RECOVERY WINDOW OF n DAYS).
    type: int
    default: 7
  minimum_backups:
    description: Barman C(minimum_redundancy), the number of base backups retention never goes below.
    type: int
    default: 1
  compression:
    description: Server-side compression of base backups (C(pg_basebackup --compress=server-...)).
    type: str
    choices: [zstd, gzip, lz4]
    default: zstd
  start_receiver:
    description: Start the WAL receiver when it is not running.
    type: bool
    default: true
  compose_service:
    description:
      - Compose service that runs PostgreSQL (C(stackops_db_service)); the C(pg_hba) file is edited inside it.
      - With O(state=enabled) its port must be published on the host (the WAL receiver runs there and needs a fixed
        address of the server); an unpublished port is refused before anything changes, with the fix.
    type: str
    required: true
  cron_file:
    description: When set, a cron entry here runs C(barman cron) every minute, which restarts the receiver after a
      crash and moves streamed WAL into the archive.
    type: path
  synchronous:
    description:
      - Synchronous WAL receiving. V(true) sets C(synchronous_standby_names) to the receiver's application name
        (C(barman_receive_wal)) and restarts the receiver, which Barman then runs as C(pg_receivewal --synchronous).
        A commit then returns only once the receiver has flushed its WAL, so a lost database loses no committed
        transaction.
      - While the receiver is down every commit waits for it (reads go on). V(false) resets the setting if stackops
        had set it; O(state=absent) always clears it before it stops the receiver.
      - Refused when C(synchronous_standby_names) already names other standbys.
    type: bool
    default: false
  standby:
    description:
      - Keep a warm standby (docs/pitr.md "Warm standby"). V(true) seeds a hot standby with C(pg_basebackup) into new
        storage beside the live data (a labelled local volume C(<volume>-standby-<time>), or a sibling directory of a
        bind mount), through a replication slot of its own (O(standby_slot)), and runs it in the container
        C(stackops-pitr-standby-<server_name>) of the service's image on the service's compose network (restart
        C(unless-stopped), no host port, local socket only), streaming from the primary. A second run changes
        nothing; a missing slot or storage is seeded again.
      - V(false) removes a standby set up before (container, storage, slot). O(state=absent) always removes it.
    type: bool
    default: false
  standby_delay:
    description: C(recovery_min_apply_delay) of the standby (V(15min), V(1h); V(0) replays at once). A recovery to a
      time inside this window promotes the standby at that time instead of restoring a base backup.
    type: str
    default: '0'
  standby_slot:
    description: Physical replication slot the standby streams from.
    type: str
    default: stackops_pitr_standby
extends_documentation_fragment:
  - stackops.runbooks.pitr
  - stackops.runbooks.postgres
  - stackops.runbooks.compose
  - stackops.runbooks.attributes
  - stackops.runbooks.attributes.changes_state
  - stackops.runbooks.attributes.actiongroup_compose_db_service_pitr_postgresql
notes:
  - O(login_user) must be a superuser (it creates the role, edits C(pg_hba) through C(pg_read_file) and the container,
    and changes settings).
  - The C(pg_hba) file is edited inside O(compose_service) with C(docker compose exec).
seealso:
  - module: stackops.runbooks.pg_pitr_info
  - module: stackops.runbooks.pg_pitr_backup
  - module: stackops.runbooks.pg_pitr_restore
'''

EXAMPLES = r'''
- name: Turn PITR on (second run changes nothing)
  stackops.runbooks.pg_pitr:
    pitr_dir: /srv/backups/shop-pitr
    server_name: shop
    login_host: 127.0.0.1
    login_port: 5432
    login_user: app
    login_password_file: /srv/shop/secrets/db_password
    login_db: shop
    project_dir: /srv/shop
    compose_service: db
  register: pitr

- name: Turn it off again and drop the slot
  stackops.runbooks.pg_pitr:
    state: absent
    pitr_dir: /srv/backups/shop-pitr
    server_name: shop
    login_user: app
    login_password_file: /srv/shop/secrets/db_password
    project_dir: /srv/shop
    compose_service: db
'''

RETURN = r'''
changes:
  description: What was changed (in check mode, what would be), one sentence each.
  returned: always
  type: list
  elements: str
restart_required:
  description: Settings whose new value only takes effect after a PostgreSQL restart.
  returned: always
  type: list
  elements: str
receiver_alive:
  description: Whether the WAL receiver holds its lock and streams from the slot at the end of the run.
  returned: always
  type: bool
hba_file:
  description: The C(pg_hba) file inside the container.
  returned: always
  type: str
slot:
  description: The replication slot.
  returned: always
  type: str
standby:
  description: The warm standby's record (C(storage), C(kind), C(seeded_at), C(delay), C(state)), or null when there
    is none.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackops.runbooks.plugins.module_utils.compose import compose_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import describe_target, pg_connection_spec, prepare, psycopg
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import PitrError, pitr_argument_spec
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_setup import run
from ansible_collections.stackops.runbooks.plugins.module_utils.pitr_standby import standby_argument_spec


def main():
    spec = dict(
        state=dict(type='str', choices=['enabled', 'absent'], default='enabled'),
        role=dict(type='str', default='stackops_pitr'),
        slot=dict(type='str', default='stackops_pitr'),
        dbname=dict(type='str'),
        hba_address=dict(type='str', default='samenet'),
        recovery_window_days=dict(type='int', default=7),
        minimum_backups=dict(type='int', default=1),
        compression=dict(type='str', choices=['zstd', 'gzip', 'lz4'], default='zstd'),
        start_receiver=dict(type='bool', default=True),
        cron_file=dict(type='path'),
        synchronous=dict(type='bool', default=False),
        compose_service=dict(type='str', required=True),
    )
    spec.update(standby_argument_spec())
    spec.update(pg_connection_spec())
    spec.update(compose_argument_spec())
    spec.update(pitr_argument_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    prepare(module)
    try:
        result = run(module)
    except PitrError as exc:
        module.fail_json(msg=str(exc))
    except psycopg.Error as exc:
        module.fail_json(msg='PostgreSQL error at %s: %s' % (describe_target(module.params), str(exc).strip()))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
