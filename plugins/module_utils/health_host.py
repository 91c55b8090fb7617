# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host resource checks (disk, inodes, memory, load, Docker disk usage), written once for
host_resources and stack_health. Linux only."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import time

from ansible_collections.stackops.runbooks.plugins.module_utils.checks import (
    CRITICAL, OK, WARNING, make_check, threshold_check, validate_thresholds)


def host_resources_spec():
    """Argument spec of host_resources."""
    return dict(
        paths=dict(type='list', elements='path', default=['/']),
        disk_warning=dict(type='float', default=80),
        disk_critical=dict(type='float', default=90),
        memory_warning=dict(type='float', default=85),
        memory_critical=dict(type='float', default=95),
        load_warning=dict(type='float', default=80),
        load_critical=dict(type='float'),
        docker=dict(type='bool', default=True),
    )


def threshold_problem(params):
    """Error text for the first inverted warning/critical pair, naming the options to fix; None when all are sane."""
    for kind in ('disk', 'memory', 'load'):
        problem = validate_thresholds(params[kind + '_warning'], params[kind + '_critical'], kind)
        if problem:
            return problem + '; fix %s_warning/%s_critical' % (kind, kind)
    return None


_UNITS = {'b': 1, 'kb': 1000, 'mb': 1000 ** 2, 'gb': 1000 ** 3, 'tb': 1000 ** 4, 'pb': 1000 ** 5,
          'kib': 1024, 'mib': 1024 ** 2, 'gib': 1024 ** 3, 'tib': 1024 ** 4}


def parse_size(text):
    """Bytes for Docker's human sizes ("769.7MB", "2.728kB", "0B (0%)"); None when unparseable."""
    match = re.match(r'^\s*([0-9.]+)\s*([a-zA-Z]*)', text or '')
    if not match:
        return None
    unit = (match.group(2) or 'b').lower()
    if unit not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[unit])


def mount_point(path):
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def disk_usage(path):
    stat = os.statvfs(path)
    total = stat.f_blocks * stat.f_frsize
    free = stat.f_bavail * stat.f_frsize
    # Like df: blocks reserved for root count as used, because services cannot use them.
    used = total - stat.f_bfree * stat.f_frsize
    usable = used + free
    inodes_used_percent = None
    if stat.f_files:
        inodes_used_percent = round(100.0 * (stat.f_files - stat.f_ffree) / stat.f_files, 1)
    return dict(path=path, mount=mount_point(path), total_bytes=total, used_bytes=used, free_bytes=free,
                used_percent=round(100.0 * used / usable, 1) if usable else 0.0, inodes_used_percent=inodes_used_percent)


def read_meminfo(path='/proc/meminfo'):
    values = {}
    with open(path) as handle:
        for line in handle:
            key, _sep, rest = line.partition(':')
            parts = rest.split()
            if parts:
                values[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == 'kB' else 1)
    return values


def memory_usage(meminfo):
    total = meminfo.get('MemTotal') or 0
    # MemAvailable counts reclaimable page cache as free; kernels before 3.14 lack it, so approximate.
    available = meminfo.get('MemAvailable')
    if available is None:
        available = meminfo.get('MemFree', 0) + meminfo.get('Buffers', 0) + meminfo.get('Cached', 0)
    used_percent = round(100.0 * (total - available) / total, 1) if total else 0.0
    return dict(total_bytes=total, available_bytes=available, used_percent=used_percent)


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_usage():
    load1, load5, load15 = os.getloadavg()
    cpus = usable_cpus()
    return dict(load1=load1, load5=load5, load15=load15, cpus=cpus, percent=round(100.0 * load1 / cpus, 1))


DF_BUSY_MARKER = 'already running'
DF_ATTEMPTS = 5


def docker_usage(module, docker):
    """Returns (info, problem, engine_busy)."""
    # The engine runs one disk-usage scan at a time and refuses concurrent ones (several
    # hosts of a fleet on one engine, a prune in progress): that is load, not an outage.
    for attempt in range(DF_ATTEMPTS):
        rc, out, err = module.run_command([docker, 'system', 'df', '--format', 'json'])
        if rc == 0 or DF_BUSY_MARKER not in err:
            break
        time.sleep(0.5 * (attempt + 1))
    if rc != 0:
        return None, 'docker system df failed (rc=%s): %s' % (rc, err.strip()), DF_BUSY_MARKER in err
    rows = []
    for line in out.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        rows.append(dict(type=row.get('Type'), total_count=int(row.get('TotalCount') or 0), active=int(row.get('Active') or 0),
                         size_bytes=parse_size(row.get('Size')), reclaimable_bytes=parse_size(row.get('Reclaimable'))))
    rc, root, err = module.run_command([docker, 'info', '--format', '{{.DockerRootDir}}'])
    return dict(rows=rows, root_dir=root.strip() if rc == 0 else None), None, False


def run_host_resources(module, params):
    """The module result (disks, memory, load, docker, checks); ``module`` runs docker and fails on an unreadable /proc."""
    checks = []
    result = dict(changed=False)

    docker = module.get_bin_path('docker') if params['docker'] else None
    docker_info = None
    if docker:
        docker_info, problem, engine_busy = docker_usage(module, docker)
        if problem and engine_busy:
            checks.append(make_check('docker disk', WARNING, 'docker disk: %s; the engine was busy with another disk-usage '
                                     'scan, retry later' % problem))
        elif problem:
            checks.append(make_check('docker disk', CRITICAL, 'docker disk: %s; is the Docker engine running?' % problem))

    paths = list(params['paths'])
    if docker_info and docker_info.get('root_dir') and os.path.exists(docker_info['root_dir']):
        paths.append(docker_info['root_dir'])
    disks, seen = [], set()
    for path in paths:
        if not os.path.exists(path):
            checks.append(make_check('disk %s' % path, CRITICAL, 'disk %s: path does not exist; create it or fix the paths option' % path,
                                     dict(path=path)))
            continue
        usage = disk_usage(path)
        if usage['mount'] in seen:
            continue
        seen.add(usage['mount'])
        disks.append(usage)
        label = 'disk %s' % usage['mount']
        checks.append(threshold_check(label, usage['used_percent'], params['disk_warning'], params['disk_critical'],
                                      what='used (%s GiB free)' % round(usage['free_bytes'] / 1024.0 ** 3, 1), details=usage))
        if usage['inodes_used_percent'] is not None:
            checks.append(threshold_check('inodes %s' % usage['mount'], usage['inodes_used_percent'], params['disk_warning'],
                                          params['disk_critical'], what='of inodes used', details=usage))
    result['disks'] = disks

    try:
        memory = memory_usage(read_meminfo())
    except (IOError, OSError) as exc:
        module.fail_json(msg='cannot read /proc/meminfo: %s; host_resources supports Linux hosts only' % exc)
    result['memory'] = memory
    checks.append(threshold_check('memory', memory['used_percent'], params['memory_warning'], params['memory_critical'],
                                  what='used (%s GiB available)' % round(memory['available_bytes'] / 1024.0 ** 3, 1), details=memory))

    load = load_usage()
    result['load'] = load
    checks.append(threshold_check('load', load['percent'], params['load_warning'], params['load_critical'],
                                  what='of %d CPU(s) (load1 %.2f)' % (load['cpus'], load['load1']), details=load))

    if docker_info:
        result['docker'] = docker_info
        total = sum(row['size_bytes'] or 0 for row in docker_info['rows'])
        reclaimable = sum(row['reclaimable_bytes'] or 0 for row in docker_info['rows'])
        # Informational: whether Docker's usage is a problem shows in the data root's disk check above.
        checks.append(make_check('docker disk', OK, 'docker disk: %.1f GiB used, %.1f GiB reclaimable (docker system df)' % (
            total / 1024.0 ** 3, reclaimable / 1024.0 ** 3), dict(docker_info, total_bytes=total, reclaimable_bytes=reclaimable)))

    result['checks'] = checks
    return result
