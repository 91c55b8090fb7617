# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Prometheus textfile a module writes for node_exporter's textfile collector, from the metrics it returns."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.stackops.runbooks.plugins.module_utils.pitr import write_if_changed


class MetricsFileError(Exception):
    pass


def write_metrics_file(path, text, check=False):
    """Atomically write ``text`` to ``path`` (mode 0644, what the collector reads); True when it changed (in check
    mode: would change). The directory must exist: the collector's directory is node_exporter's, not ours to make
    (a directory we created would be private to the backup owner and the collector could not read it)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise MetricsFileError('cannot write the metrics file %s: its directory %s does not exist; create it (the '
                               'node_exporter textfile collector directory) or point the metrics file elsewhere' % (
                                   path, directory))
    try:
        return write_if_changed(path, text, mode=0o644, check=check)
    except (IOError, OSError) as exc:
        raise MetricsFileError('cannot write the metrics file %s: %s; check that the user running the backup may '
                               'write in %s' % (path, exc, directory))
