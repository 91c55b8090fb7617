# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named points in backup and restore where the crash-safety tests stop a module to SIGKILL it.

With ``STACKOPS_FAULT_PAUSE`` unset (production) a fault point does nothing. Set to a point's name, the module
stops itself there with SIGSTOP, so a test can see exactly where it is and kill it with SIGKILL: the only way to
land a kill in a window that lasts milliseconds, such as between a rename and the fsync of its directory.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import signal

FAULT_ENV = 'STACKOPS_FAULT_PAUSE'


def fault_point(name):
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGSTOP)
