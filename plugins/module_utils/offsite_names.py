# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names that come from a remote copy (the objects of a ``stackops-copy.json``, the files of ``wal-catalog.json``,
a backup id) become local paths on restore, usually as root. Whoever can write to the bucket or the backup host
can write those documents, so every name is checked here, by every fetch, before anything is written: a name that
would land outside the directory it belongs to means the copy was tampered with, and the fetch stops."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import PARTIAL_SUFFIX
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import OffsiteError

AGE = '.age'


def name_problem(name):
    """Why ``name`` cannot be a path below a directory (None when it can): it must be a non-empty relative path of
    plain components, no '..', '.' or empty component, no backslash, NUL or other control character."""
    if not isinstance(name, str) or not name:
        return 'an empty name'
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return 'a control character (NUL, newline, ...) in the name'
    if '\\' in name:
        # Not a separator here, but one for every Windows-side tool and for a reader of the catalog.
        return 'a backslash in the name'
    if name.startswith('/'):
        return 'an absolute path'
    parts = name.split('/')
    if '..' in parts:
        return "a '..' component that climbs out of the directory"
    if '.' in parts or '' in parts:
        return "an empty or '.' component"
    return None


def inside(directory, name):
    """(local path, problem or None) of ``name`` below ``directory``. Symbolic links already in the directory are
    followed, so a link planted there cannot carry a write out of it; links at or above ``directory`` are the
    administrator's and are allowed."""
    problem = name_problem(name)
    path = os.path.normpath(os.path.join(directory, name)) if isinstance(name, str) and name else directory
    if problem:
        return path, problem
    root = os.path.realpath(directory)
    resolved = os.path.realpath(os.path.join(root, name))
    if resolved == root or not resolved.startswith(root.rstrip(os.sep) + os.sep):
        return path, 'it resolves to %s through a symbolic link' % resolved
    return path, None


def printable(text):
    return ''.join(char if 32 <= ord(char) != 127 else '\\x%02x' % ord(char) for char in text)


def tampered(what, source, path, directory, problem):
    return OffsiteError(
        '%s of %s would be written to %s, outside %s (%s): the remote copy looks tampered with, nothing was written. '
        'Find out who changed it, and restore from another copy or target' % (
            printable(what), source, printable(path), directory, problem))


def checked_paths(directory, names, source, label):
    """{name: local path} of every name below ``directory``, or an OffsiteError naming the first bad one: the
    object (``label(name)``), the would-be local path and the remote copy ``source``. Call it before writing."""
    paths = {}
    for name in sorted(names):
        path, problem = inside(directory, name)
        if problem:
            raise tampered('object %s' % label(name), source, path, directory, problem)
        paths[name] = path
    return paths


def check_component(value, what, source):
    """A backup or set id from a remote copy becomes one directory name: one plain component, nothing else."""
    problem = name_problem(value) if isinstance(value, str) else 'not a string'
    if not problem and '/' in value:
        problem = 'a path, not one name'
    if problem:
        raise OffsiteError('%s %r of %s cannot be a directory name (%s): the remote copy looks tampered with, '
                           'nothing was written. Find out who changed it, and restore from another copy or target' % (
                               what, value, source, problem))
    return value


def checked_set(dest, marker, source, key, decrypted=False):
    """Check a backup set copy before its download into ``<dest>/<id>.partial``: its id is one name and every
    object (and, when it is decrypted there, the plaintext name beside it) stays inside that directory. ``key(name)``
    names the object on the target."""
    backup_id = check_component(marker.get('id'), 'backup id', source)
    partial = os.path.join(dest, backup_id + PARTIAL_SUFFIX)
    names = list(marker.get('objects') or {})
    checked_paths(partial, names, source, key)
    if decrypted:
        # The plaintext is written beside the object, under the name without its suffix.
        for name in sorted(names):
            plain = name[:-len(AGE)] if name.endswith(AGE) else ''
            path, problem = inside(partial, plain)
            if problem:
                raise tampered('object %s' % key(name), source, path, partial,
                               problem if plain else 'an encrypted object without the %s suffix' % AGE)
    return partial
