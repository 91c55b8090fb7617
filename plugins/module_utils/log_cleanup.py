# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Old log files on the host: which ones a cleanup removes (the rules of ansible.builtin.find with file_type=file,
recurse and an age, which the roles used before) and removing them, with what was reclaimed."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fnmatch
import os
import stat
import time

from ansible.module_utils.common.text.formatters import bytes_to_human


def old_files(paths, patterns, max_age_days, now=None):
    """Regular files (never a symlink) under ``paths``, at any depth, whose name matches one of ``patterns`` (every
    name when there are none), not hidden, last modified ``max_age_days`` days ago or earlier: [{path, size}], sorted.
    Returns (files, paths that are not directories)."""
    now = time.time() if now is None else now
    age = max_age_days * 86400
    found, missing = [], []
    for top in paths:
        if not os.path.isdir(top):
            missing.append(top)
            continue
        for root, dirs, names in os.walk(top):
            for name in names:
                if name.startswith('.') or (patterns and not any(fnmatch.fnmatch(name, p) for p in patterns)):
                    continue
                path = os.path.normpath(os.path.join(root, name))
                try:
                    info = os.lstat(path)
                except OSError:
                    continue  # removed while we looked
                if stat.S_ISREG(info.st_mode) and now - info.st_mtime >= age:
                    found.append(dict(path=path, size=info.st_size))
    return sorted(found, key=lambda entry: entry['path']), missing


def clean_up(paths, patterns, max_age_days, check=False, now=None):
    """Remove the old files (in check mode: list them). The result names every file, the bytes reclaimed and the
    run in one line; a file that cannot be removed raises OSError naming it."""
    files, missing = old_files(paths, patterns, max_age_days, now=now)
    if not check:
        for entry in files:
            try:
                os.unlink(entry['path'])
            except OSError as exc:
                if not os.path.lexists(entry['path']):
                    continue
                raise OSError('cannot remove %s: %s; fix its permissions or remove it by hand' % (
                    entry['path'], exc.strerror or exc))
    reclaimed = sum(entry['size'] for entry in files)
    return dict(changed=bool(files), files=files, removed=[entry['path'] for entry in files], reclaimed_bytes=reclaimed,
                reclaimed=bytes_to_human(reclaimed), missing=missing,
                summary='%s %d log file(s) older than %s day(s), %s' % (
                    'would remove' if check else 'removed', len(files), max_age_days, bytes_to_human(reclaimed)))
