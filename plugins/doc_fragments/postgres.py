# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """Options shared by the PostgreSQL modules; they mirror module_utils/pg.py exactly.

    - ``stackops.runbooks.postgres``: the connection options, ``pg_connection_spec()``.
    - ``stackops.runbooks.postgres.tools``: where pg_dump/pg_restore/psql run, ``pg_tools_spec()``
      (which includes the compose project options of ``compose_argument_spec()``).

    A module whose argument_spec is ``pg_connection_spec()`` (plus its own options) uses
    ``extends_documentation_fragment: [stackops.runbooks.postgres]``; one that also takes
    ``pg_tools_spec()`` adds ``stackops.runbooks.postgres.tools``.
    """

    DOCUMENTATION = r'''
options:
  login_host:
    description: Host of the PostgreSQL server as seen from the managed host.
    type: str
    default: 127.0.0.1
  login_port:
    description: Port of the PostgreSQL server.
    type: int
    default: 5432
  login_user:
    description: Role to connect as.
    type: str
    default: postgres
  login_password:
    description:
      - Password of O(login_user); prefer O(login_password_file).
      - Never logged, and passed to PostgreSQL client tools only in the E(PGPASSWORD) environment variable.
    type: str
  login_password_file:
    description:
      - File on the managed host holding the password (surrounding whitespace is stripped).
      - Ignored when O(login_password) is set.
    type: path
  login_db:
    description: Database for administrative connections.
    type: str
    default: postgres
  connect_timeout:
    description: Seconds to wait for a connection.
    type: int
    default: 10
'''

    TOOLS = r'''
options:
  tools_location:
    description:
      - Run the PostgreSQL client tools (C(pg_dump), C(pg_restore), C(psql)) on the V(host) or inside
        O(compose_service) with C(docker compose exec -T) (V(compose)), so client and server versions match.
      - With V(compose), the tools connect to the server inside the container (127.0.0.1:5432);
        O(login_host) and O(login_port) are still used for the module's own connections from the host.
    type: str
    choices: [host, compose]
    default: host
  tools_bindir:
    description:
      - Directory of the host's PostgreSQL client tools. By default they are looked up on E(PATH),
        then in C(/usr/lib/postgresql/{15,16,17}/bin).
      - Only used with O(tools_location=host).
    type: path
  compose_service:
    description:
      - Compose service that runs PostgreSQL (the inventory variable C(stackops_db_service)).
      - Required with O(tools_location=compose); it has no default, because a service name is the stack's own.
    type: str
  project_dir:
    description: Compose project directory.
    type: path
  project_name:
    description: Compose project name.
    type: str
  env_files:
    description: Compose C(--env-file) paths.
    type: list
    elements: path
    default: []
  compose_files:
    description: Compose C(-f) files.
    type: list
    elements: path
    default: []
  profiles:
    description: Compose C(--profile) names.
    type: list
    elements: str
    default: []
'''

    # Options of module_utils.restore_session.restore_session_spec(): how pg_backup_restore and pg_backup_verify restore.
    RESTORE_SESSION = r'''
options:
  jobs:
    description:
      - A streamed custom-format dump is loaded over this many connections, and as many C(pg_restore) processes
        build its indexes side by side. For a directory-format dump it is C(pg_restore --jobs).
    type: int
    default: 2
  streaming:
    description:
      - Stream a whole custom-format dump. It is decompressed on the fly, its rows are spread over O(jobs)
        connections, and no decompressed copy is written. With V(false) it is decompressed into O(work_dir) and
        restored with C(pg_restore --jobs), as directory-format dumps are. That is the escape hatch if streaming
        ever misbehaves.
    type: bool
    default: true
  no_owner:
    description: Restore without ownership and privileges, for servers that lack the roles of the original.
    type: bool
    default: false
  work_dir:
    description:
      - Where a set compressed outside pg_dump is decompressed for a restore from a file, and where the streamed
        restore writes its small list files. Defaults to O(backup_dir).
    type: path
  age_identity_file:
    description:
      - age identity (private key) file that decrypts a set encrypted at rest (M(stackops.runbooks.pg_backup_encrypt)).
        The set's ciphertext is checked against its manifest, decrypted into O(work_dir) and the plaintext checked
        again before anything is restored.
      - A set encrypted to recipients none of whose keys this file holds fails before anything is created or dropped.
    type: path
'''

    # Options of module_utils.backup_catalog.backup_dir_spec(): the backup catalog and its per-database lock.
    # backup_dir alone: the catalog action group's option, for the modules that only read the catalog.
    CATALOG = r'''
options:
  backup_dir:
    description: Directory holding the backup sets of this host.
    type: path
    required: true
'''

    BACKUP_CATALOG = r'''
options:
  backup_dir:
    description: Directory holding the backup sets of this host.
    type: path
    required: true
  lock_timeout:
    description: Seconds to wait for another backup, verify, restore or retention of the same database to finish.
    type: int
    default: 300
'''
