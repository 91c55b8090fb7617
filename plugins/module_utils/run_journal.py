# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a verify or restore leaves behind while it runs, written down first so the next run can undo it after a kill.

A run that holds a database's lock records, before it acts, every scratch database it is about to create, every
work directory, and a database it is about to block (ALLOW_CONNECTIONS false), in
``<backup_dir>/.locks/<db>.journal.json``. It removes each entry once that thing is gone or back to normal. A run
killed with SIGKILL cannot clean up, but its lock dies with it: the next run on that database, holding the same
lock, replays the journal (drops the databases, removes the directories, allows connections again) and reports
what it did. Only names in the journal are touched, never names that merely look like ours, and the names of
scratch databases carry random hex, so dropping one that is already gone, or was renamed into place, is harmless.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import catalog
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    LOCK_DIR, BackupError, read_json, remove_tree, slug, write_json)
from ansible_collections.stackops.runbooks.plugins.module_utils.pg import connect, sql
from ansible_collections.stackops.runbooks.plugins.module_utils.restore_roles import is_stand_in

# What an entry asks the next run to do.
DROP_DATABASE = 'drop_database'
REMOVE_DIRECTORY = 'remove_directory'
ALLOW_CONNECTIONS = 'allow_connections'
DROP_ROLE = 'drop_role'
STALE_TEMP = re.compile(r'\.tmp-(\d+)$')


class RunJournal(object):
    def __init__(self, backup_dir, database):
        self.backup_dir = backup_dir
        self.database = database
        self.path = os.path.join(backup_dir, LOCK_DIR, slug(database) + '.journal.json')
        self.entries = []

    def load(self):
        try:
            data = read_json(self.path)
        except (IOError, OSError, ValueError):
            return []
        entries = data.get('entries') if isinstance(data, dict) else None
        return [entry for entry in entries or [] if isinstance(entry, dict) and entry.get('action') in
                (DROP_DATABASE, REMOVE_DIRECTORY, ALLOW_CONNECTIONS, DROP_ROLE) and isinstance(entry.get('name'), str)]

    def save(self):
        if self.entries:
            write_json(self.path, dict(database=self.database, entries=self.entries))
        elif os.path.lexists(self.path):
            os.unlink(self.path)

    def add(self, action, name):
        """Record ``action`` on ``name`` durably, before doing what makes it necessary."""
        self.entries.append(dict(action=action, name=name, pid=os.getpid()))
        self.save()

    def done(self, action, name):
        self.entries = [entry for entry in self.entries if (entry['action'], entry['name']) != (action, name)]
        self.save()

    def replay(self, params):
        """Undo what a killed run left (the caller holds the database's lock); returns what was done, as text."""
        done = []
        leftovers = self.load()
        if leftovers:
            pending = [entry for entry in leftovers if entry['action'] != REMOVE_DIRECTORY]
            if pending:
                try:
                    conn = connect(params, application_name='stackops-cleanup')
                except Exception as exc:
                    raise BackupError('a killed run on database %r left %s (recorded in %s), and cleaning up needs a '
                                      'connection: %s; check the server and run again' % (
                                          self.database, ', '.join(entry['name'] for entry in pending), self.path, exc))
                with conn:
                    for entry in pending:
                        done.extend(self.undo_in_database(conn, entry))
            for entry in leftovers:
                if entry['action'] == REMOVE_DIRECTORY and os.path.lexists(entry['name']):
                    remove_tree(entry['name'])
                    done.append('removed work directory %s' % entry['name'])
        self.entries = []
        self.save()
        return done

    def undo_in_database(self, conn, entry):
        name = entry['name']
        if entry['action'] == DROP_ROLE:
            # A restore's stand-in (restore_roles): the scratch database it had privileges in is dropped by the
            # entry before this one; a role of that name that is not marked as a stand-in is somebody's, and stays.
            if not is_stand_in(conn, name):
                return []
            conn.execute(sql.SQL('DROP ROLE {}').format(sql.Identifier(name)))
            return ['dropped stand-in role %s of a killed restore' % name]
        row = conn.execute('SELECT datallowconn FROM pg_database WHERE datname = %s', (name,)).fetchone()
        if row is None:
            return []
        if entry['action'] == DROP_DATABASE:
            conn.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(name)))
            return ['dropped scratch database %s' % name]
        if not row[0]:
            conn.execute(sql.SQL('ALTER DATABASE {} WITH ALLOW_CONNECTIONS true').format(sql.Identifier(name)))
            return ['allowed connections to %s again (a killed restore had blocked them)' % name]
        return []


def remove_stale_temp_files(directory, prefix=''):
    """``<prefix>*.tmp-<pid>`` files in ``directory`` of write_json calls killed before their rename (the process is
    gone); returns what was removed, as text."""
    removed = []
    if not os.path.isdir(directory):
        return removed
    for name in sorted(os.listdir(directory)):
        full = os.path.join(directory, name)
        match = STALE_TEMP.search(name)
        if match and name.startswith(prefix) and os.path.isfile(full) and not process_alive(int(match.group(1))):
            os.unlink(full)
            removed.append('removed unfinished temporary file %s' % full)
    return removed


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_up_after_killed_runs(params, databases):
    """Replay the journals of ``databases`` (the caller holds their locks) and remove temporary files killed runs
    left in their sets and lock files; returns what was done, as text."""
    done = []
    backup_dir = params['backup_dir']
    for database in sorted(set(databases)):
        journal = RunJournal(backup_dir, database)
        done.extend(journal.replay(params))
        done.extend(remove_stale_temp_files(os.path.join(backup_dir, LOCK_DIR), slug(database) + '.'))
        for entry in catalog(backup_dir, database)[0]:
            done.extend(remove_stale_temp_files(entry['path']))
        # A retention run killed between renaming a set out of the catalog and removing it.
        deleting = re.compile(r'\.deleting-' + re.escape(slug(database)) + r'-\d{8}T\d{9}Z$')
        for name in sorted(os.listdir(backup_dir)) if os.path.isdir(backup_dir) else []:
            if deleting.match(name):
                remove_tree(os.path.join(backup_dir, name))
                done.append('removed %s, a set a killed retention run had started to delete' % name)
    return done
