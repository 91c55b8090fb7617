# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stackops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Off-site copies of logical backup sets and ``--all-databases`` groups on any target (offsite_target.py): what
offsite_copy, offsite_info and offsite_fetch do with ``kind: set`` or ``kind: group``. The format is offsite.py's,
the choices offsite_plan.py's; this file holds the steps, written once for every transport."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.stackops.runbooks.plugins.module_utils.backup_catalog import (
    catalog as local_catalog, load_manifest, load_verification)
from ansible_collections.stackops.runbooks.plugins.module_utils.backup_set import (
    PARTIAL_SUFFIX, BackupError, remove_tree, sha256_file, valid_backup_id)
from ansible_collections.stackops.runbooks.plugins.module_utils.encryption import (
    EncryptionError, decrypt_file, identity_recipients, normalize_recipients)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite import (
    MARKER, OffsiteError, Sender, catalog, copy_groups, json_bytes, lock_from_params, manifest_files, marker_for,
    object_name, refuse_plaintext)
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_names import checked_set
from ansible_collections.stackops.runbooks.plugins.module_utils.offsite_plan import (
    age_of, check_listed, checked_policy, choose_sets, copy_chosen, listing_result, local_ids, newest_verified,
    pick_copy_group, publish_fetched, require_verified_copy, retention_decision, reusable_set, single_sets,
    unfinished_leftovers)


def deep(params):
    return params['remote_check'] in ('download', 'sha256')


def sealed_to(target, manifest, recipients):
    """The recipients this copy encrypts to: none for a set encrypted at rest (never twice), none over SSH (sets go
    byte for byte, offsite.plaintext_problems refused the others before the first byte)."""
    if manifest.get('encryption') or target.type == 'ssh':
        return []
    return recipients


# ------------------------------------------------------------------------------------------------ copy

def copy_set(module, params, target, entry, recipients, lock, throttle, result):
    set_dir = entry['path']
    manifest = load_manifest(set_dir)
    if target.type == 'ssh':
        # Read again under the lock: this manifest describes the files that are sent.
        refuse_plaintext([manifest], recipients, target.label)
    verification = load_verification(set_dir)
    if not (verification or {}).get('verified'):
        raise BackupError('backup %s is no longer verified; it was not copied' % manifest['id'])
    seal = sealed_to(target, manifest, recipients)
    files = dict((rel, expected) for rel, dummy, expected in manifest_files(set_dir, manifest))
    prefix = manifest['id'] + '/'
    objects, stored = {}, {}
    with Sender(module, target, seal, params['staging_dir'] or params['backup_dir'], lock, throttle) as sender:
        def send(names):
            for rel, meta in sender.send_files(set_dir, prefix, sorted(names), files).items():
                result['uploaded_bytes'] += meta['size'] - meta['resumed_bytes']
                result['resumed_bytes'] += meta.pop('resumed_bytes')
                meta.pop('encrypted')
                name = object_name(rel, bool(seal))
                stored[name] = rel
                objects[name] = meta

        send(files)
        bad = target.mismatched(prefix, objects, deep(params))
        if bad:
            # rsync skips a file whose size and time match: a damaged remote file is removed, then sent again.
            result['resent'].extend('%s/%s' % (manifest['id'], name) for name in sorted(bad))
            for name in bad:
                target.delete_key(prefix + name)
            send([stored[name] for name in bad])
            bad = target.mismatched(prefix, objects, deep(params))
    if bad:
        raise OffsiteError('the copy of %s on %s does not match what was sent (%s); it does not count as a copy. Check '
                           'the remote disk and run the copy again' % (
                               manifest['id'], target.label, '; '.join(list(bad.values())[:5])))
    encryption = dict(method='age', recipients=seal) if seal else None
    if manifest.get('encryption'):
        # The objects are the set's own .age files and its readable manifest; a fetch downloads them as they are.
        encryption = dict(method='age', recipients=manifest['encryption']['recipients'], at_rest=True)
    marker = marker_for(manifest, verification, objects, encryption, sum(meta['size'] for meta in objects.values()))
    target.put_bytes(prefix + MARKER, json_bytes(marker), lock)


def held_by_lock(target, backup_ids, label, result):
    """Keep (and report) a copy or group while S3 Object Lock still protects any of its objects: deleting the rest
    would leave a broken copy behind."""
    locks = []
    for backup_id in backup_ids:
        locks.extend(target.locks(backup_id + '/'))
    if not locks:
        return False
    until = max(entry['until'] or '' for entry in locks) or None
    result['locked'].append(dict(id=label, until=until, mode=locks[0]['mode'], objects=len(locks),
                                 legal_hold=any(entry['legal_hold'] for entry in locks)))
    result['kept'].setdefault(label, []).append('object lock until %s' % (until or 'its legal hold is removed'))
    return True


def prune(module, params, target, local):
    """Retention of single sets (kind=set): copies of the database by the grandfather-father-son policy."""
    policy = checked_policy(params['retention'])
    sets, unfinished = catalog(target, params['database'])
    keep, doomed = retention_decision(single_sets(sets), policy)
    result = dict(kept=keep, deleted=[], unfinished_removed=[], refused=[], locked=[])
    for backup_id in doomed:
        if held_by_lock(target, [backup_id], backup_id, result):
            continue
        if not module.check_mode:
            result['refused'].extend(target.delete_sets([backup_id]))
        result['deleted'].append(backup_id)
    remove_unfinished(module, target, unfinished_leftovers(unfinished, [params['database']], local), result)
    return result


def prune_groups(module, params, target, local):
    """Retention of groups (kind=group): whole groups counted, kept or deleted together."""
    policy = checked_policy(params['retention'])
    sets, unfinished = catalog(target)
    groups = copy_groups(sets)
    keep, doomed = retention_decision(groups, policy)
    result = dict(kept=keep, deleted=[], deleted_sets=[], unfinished_removed=[], refused=[], locked=[])
    by_id = dict((group['id'], group) for group in groups)
    for group_id in doomed:
        members = by_id[group_id]['sets']
        if held_by_lock(target, members, group_id, result):
            continue
        if not module.check_mode:
            result['refused'].extend(target.delete_sets(members))
        result['deleted'].append(group_id)
        result['deleted_sets'].extend(members)
    databases = set()
    for group in groups:
        databases.update(group['databases'])
    remove_unfinished(module, target, unfinished_leftovers(unfinished, sorted(databases), local), result)
    return result


def remove_unfinished(module, target, leftovers, result):
    if leftovers and not module.check_mode:
        result['refused'].extend(target.delete_sets(leftovers))
    result['unfinished_removed'].extend(leftovers)


def copy(module, params, target, result, throttle):
    """offsite_copy with kind=set or kind=group."""
    result.update(copied=[], present=[], uploaded_bytes=0, resumed_bytes=0, resent=[])
    if not params['backup_dir']:
        raise BackupError('backup_dir is required to copy backup sets (stackops_backup_dir)')
    group_id = params['group_id']
    if not group_id and not params['database']:
        raise BackupError('give database (kind=set) or group_id (kind=group) so the sets to copy can be chosen')
    recipients = normalize_recipients(params['age_recipients'])
    lock = lock_from_params(params)
    database = None if group_id else params['database']
    local_sets, partials = local_catalog(params['backup_dir'], database)
    remote_sets, dummy = catalog(target, database)
    remote_ids = set(entry['id'] for entry in remote_sets)
    chosen = choose_sets(params, local_sets, remote_ids)
    if target.type == 'ssh':
        # Every set of a group before the first byte goes: no part of a group lands in plaintext.
        refuse_plaintext([load_manifest(entry['path']) for entry in chosen if entry['id'] not in remote_ids],
                         recipients, target.label, group_id)
    copy_chosen(module, params, chosen, remote_ids, result,
                lambda entry: copy_set(module, params, target, entry, recipients, lock, throttle, result))
    if params['retention'] is not None:
        result['retention'] = (prune_groups if group_id else prune)(module, params, target,
                                                                    local_ids(local_sets, partials))
    if group_id:
        result['group_id'] = group_id
        result.update(newest_verified([dict(group, age_seconds=age_of(group['started_at']))
                                       for group in copy_groups(catalog(target)[0])]))
    else:
        result.update(newest_verified(catalog(target, params['database'])[0]))
    return result


# ------------------------------------------------------------------------------------------------ info

def info(module, params, target, result):
    """offsite_info for sets and groups: the complete copies, the unfinished ones, and (remote_check) their state."""
    sets, unfinished = catalog(target, params['database'])
    if params['backup_id']:
        sets = [entry for entry in sets if entry['id'] == params['backup_id']]
    if params['group_id']:
        sets = [entry for entry in sets if entry['group'] == params['group_id']]
    markers = dict((entry['id'], entry.pop('marker')) for entry in sets)
    problems = {}
    if params['remote_check'] not in (None, 'none'):
        problems = check_listed(sets, lambda entry: list(target.mismatched(
            entry['id'] + '/', markers[entry['id']].get('objects') or {}, deep(params)).values()))
    result.update(listing_result(sets, unfinished, problems, params['database']))
    result['groups'] = copy_groups(sets)
    return result


# ------------------------------------------------------------------------------------------------ fetch

def choose(params, target):
    if params['backup_id']:
        if not valid_backup_id(params['backup_id']):
            raise BackupError('backup_id %r is not a backup id' % params['backup_id'])
        marker = target.get_json('%s/%s' % (params['backup_id'], MARKER))
        if marker is None or marker.get('id') != params['backup_id']:
            raise OffsiteError('%s holds no complete copy of %s (unfinished copies never restore); list the copies with '
                               'stackops.runbooks.offsite_info' % (target.label, params['backup_id']))
        return marker
    if not params['database']:
        raise BackupError('give backup_id or database so the copy to fetch can be chosen')
    sets, dummy = catalog(target, params['database'])
    candidates = [entry for entry in sets if entry['verified'] or not params['require_verified']]
    if not candidates:
        raise OffsiteError('%s holds no %scomplete copy of database %r; copy one with stackops.runbooks.offsite_copy '
                           'or give backup_id' % (target.label, 'verified ' if params['require_verified'] else '',
                                                  params['database']))
    return candidates[0]['marker']


def choose_group(params, target):
    sets, dummy = catalog(target)
    group = pick_copy_group(params, copy_groups(sets), target.label)
    markers = dict((entry['id'], entry['marker']) for entry in sets)
    return group, [markers[backup_id] for backup_id in group['sets']]


def check_key(module, params, marker):
    """The identity that decrypts a copy encrypted at copy time (None when nothing is to decrypt here), checked
    against its recipients before anything is downloaded."""
    encryption = marker.get('encryption')
    if not encryption or (encryption.get('at_rest') and not params['age_identity_file']):
        return None  # a set encrypted at rest comes down as it is; pg_backup_restore checks the key before anything
    if encryption.get('method') != 'age':
        raise EncryptionError('copy %s is encrypted with %r, this collection decrypts age only' % (
            marker['id'], encryption.get('method')))
    mine = identity_recipients(module, params['age_identity_file'])
    wanted = encryption.get('recipients') or []
    if not set(mine) & set(wanted):
        raise EncryptionError('copy %s is encrypted to the age recipients %s, but identity file %s holds the keys of %s; '
                              'give the identity file of one of those recipients. Nothing was downloaded or touched'
                              % (marker['id'], ', '.join(wanted), params['age_identity_file'], ', '.join(mine) or 'none'))
    return None if encryption.get('at_rest') else params['age_identity_file']


def download(module, target, marker, identity, partial, state):
    """Every object of a copy into ``partial`` (one batch), each checked by size and sha256 against the marker and,
    when it was encrypted at copy time, decrypted and its plaintext checked."""
    objects = marker.get('objects') or {}
    names = sorted(objects)
    prefix = marker['id'] + '/'
    state['stage'] = 'downloading'
    target.get_files(prefix, names, partial)
    state['stage'] = 'checking the files against the copy'
    problems = []
    for name in names:
        local = os.path.join(partial, name)
        size = os.path.getsize(local) if os.path.isfile(local) else None
        digest = sha256_file(local) if size is not None else None
        if (size, digest) != (objects[name]['size'], objects[name]['sha256']):
            problems.append('%s: %s bytes with sha256 %s, the copy says %d bytes with sha256 %s' % (
                target.where(prefix + name), size, digest, objects[name]['size'], objects[name]['sha256']))
        else:
            state['downloaded'] += size
    if problems:
        raise OffsiteError('the copy of %s on %s is damaged (%s); refusing it, nothing was published. Use another copy'
                           % (marker['id'], target.label, '; '.join(problems[:5])))
    if identity:
        for name in names:
            local = os.path.join(partial, name)
            plain = decrypt_file(module, local, local[:-len('.age')], identity)
            os.unlink(local)
            if plain != objects[name]['plaintext_sha256']:
                raise OffsiteError('%s decrypted to sha256 %s, the copy says %s; refusing it' % (
                    target.where(prefix + name), plain, objects[name]['plaintext_sha256']))


def fetch_set(module, params, target, marker, identity, state):
    """One copy into dest: reused when it is there and intact, else downloaded, checked and published."""
    final = os.path.join(params['dest'], marker['id'])
    if reusable_set(final):
        return False, 'backup %s is already in %s and matches its manifest' % (marker['id'], params['dest'])
    if module.check_mode:
        return True, 'would download %s (%d bytes) from %s into %s' % (
            marker['id'], marker.get('remote_size_bytes') or 0, target.label, final)
    partial = final + PARTIAL_SUFFIX
    state['partial'] = partial
    if not target.batches:
        remove_tree(partial)  # S3 downloads start over; rsync resumes what an interrupted run left
    if not os.path.isdir(partial):
        os.makedirs(partial, mode=0o700)
    download(module, target, marker, identity, partial, state)
    state['stage'] = 'checking the set against its manifest'
    publish_fetched(partial, final, marker)
    state['partial'] = None
    return True, 'downloaded %s from %s into %s and checked it against its manifest' % (
        marker['id'], target.label, final)


def fetch(module, params, target, result, state):
    """offsite_fetch with kind=set or kind=group."""
    result.update(downloaded_bytes=0)
    if not params['dest']:
        raise BackupError('dest is required to fetch backup sets: the directory the set is downloaded into')
    if params['group_id']:
        group, markers = choose_group(params, target)
        result.update(group_id=group['id'], path=params['dest'])
    else:
        markers = [choose(params, target)]
        result.update(backup_id=markers[0]['id'], path=os.path.join(params['dest'], markers[0]['id']))
    for marker in markers:
        if marker is None:
            raise OffsiteError('a copy of group %s lost its marker while it was read; run the fetch again' % (
                result.get('group_id')))
        require_verified_copy(params, marker)
    result.update(backup_ids=[marker['id'] for marker in markers],
                  encrypted=any(bool(marker.get('encryption')) for marker in markers))
    # Every key before the first download: a missing identity touches nothing.
    state['stage'] = 'checking the key'
    identities = [check_key(module, params, marker) for marker in markers]
    # Every name of every copy before the first write: a tampered marker must not reach the disk.
    state['stage'] = 'checking the names of the copy'
    for marker, identity in zip(markers, identities):
        checked_set(params['dest'], marker, target.label,
                    lambda name, marker=marker: target.where('%s/%s' % (marker['id'], name)), decrypted=bool(identity))
    messages = []
    for marker, identity in zip(markers, identities):
        state['stage'] = 'fetching %s' % marker['id']
        changed, msg = fetch_set(module, params, target, marker, identity, state)
        result['changed'] = result['changed'] or changed
        messages.append(msg)
    result['msg'] = '; '.join(messages)
    result['downloaded_bytes'] = state['downloaded']
    return result
