"""Offline stand-in for ansible-test's get-pip bootstrap script.

ansible-test downloads get-pip.py from a host this network cannot reach. This script
does the same job with the standard library's ensurepip, then installs the exact pip
that ansible-test asked for from the package index, which is reachable.
"""
import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY_OPTIONS = ('--no-setuptools', '--no-wheel')

saved_config = os.environ.get('PIP_CONFIG_FILE')
ensurepip.bootstrap(upgrade=True)
# ensurepip points PIP_CONFIG_FILE at /dev/null in our own environment; the real pip
# install below needs the machine's pip configuration (index mirrors, CA bundle).
if saved_config is None:
    os.environ.pop('PIP_CONFIG_FILE', None)
else:
    os.environ['PIP_CONFIG_FILE'] = saved_config
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--quiet']
                      + [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS])
