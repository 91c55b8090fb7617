# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """Options of module_utils/offsite_target.py ssh_spec(): one copy root on a host reached over SSH."""

    DOCUMENTATION = r'''
options:
  host:
    description: Host name or address of the SSH server holding the copies (type=ssh, where it is required).
    type: str
  port:
    description: SSH port.
    type: int
    default: 22
  user:
    description: Remote user; default the one of the SSH client configuration (usually the local user).
    type: str
  path:
    description:
      - Absolute directory on the remote host below which every copy lives as C(<path>/<backup id>/) (type=ssh, where
        it is required). Use one path per stack.
    type: str
  identity_file:
    description: Private key file for the login (kept on the managed host; never read into a result). Without it, ssh's own keys and agent.
    type: path
  known_hosts_file:
    description: known_hosts file the host key is checked against; default the user's.
    type: path
  strict_host_key_checking:
    description: Refuse a host whose key is unknown or changed. Turn off only for throwaway test hosts.
    type: bool
    default: true
  ssh_options:
    description: Extra C(ssh -o) options, e.g. C(ProxyJump=bastion).
    type: list
    elements: str
    default: []
  connect_timeout:
    description: Seconds to wait for the SSH connection.
    type: int
    default: 10
notes:
  - Needs C(ssh) and C(rsync) on the managed host, and a POSIX shell, C(rsync), C(sha256sum) and C(wc) on the remote one.
  - ssh runs in batch mode; a key that needs a passphrase must be in an agent.
'''
