"""The collection builds, installs, and its playbooks run both installed (FQCN) and from a checkout."""
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from support.runner import REPO

VENV_BIN = Path(sys.executable).parent


def _env(**extra):
    env = dict(os.environ)
    env["PATH"] = "%s%s%s" % (VENV_BIN, os.pathsep, env.get("PATH", ""))
    env.update(extra)
    return env


def _ansible_playbook(args, cwd, env):
    return subprocess.run([str(VENV_BIN / "ansible-playbook")] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def test_build_install_and_run_fqcn_playbook(tmp_path, stack):
    build = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), str(REPO)],
                           env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert build.returncode == 0, build.stderr
    tarballs = list(tmp_path.glob("stackops-runbooks-*.tar.gz"))
    assert len(tarballs) == 1
    with tarfile.open(tarballs[0]) as archive:
        names = archive.getnames()
    assert "plugins/modules/stack_http_info.py" in names
    assert "playbooks/health.yml" in names
    assert "roles/health/meta/argument_specs.yml" in names
    forbidden = [n for n in names if n.startswith((".venv", "collections/ansible_collections", "examples/stack/secrets", "tests/output"))]
    assert not forbidden, forbidden

    install_root = tmp_path / "installed"
    # Not the checkout's ansible.cfg: its collections/ symlink would count as "already installed".
    no_config = tmp_path / "empty.cfg"
    no_config.write_text("[defaults]\n")
    install = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "--force",
                              "-p", str(install_root), str(tarballs[0])], env=_env(ANSIBLE_CONFIG=str(no_config)),
                             capture_output=True, text=True, timeout=300, check=False)
    assert install.returncode == 0, install.stderr
    assert (install_root / "ansible_collections" / "stackops" / "runbooks" / "MANIFEST.json").exists(), install.stdout

    # Outside the checkout, without its ansible.cfg: only the installed copy can resolve stackops.runbooks.
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    run = _ansible_playbook(["stackops.runbooks.health", "-i", str(stack.inventory)], cwd=workdir,
                            env=_env(ANSIBLE_CONFIG=str(no_config), ANSIBLE_COLLECTIONS_PATH=str(install_root)))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "failed=0" in run.stdout


def test_playbook_runs_from_checkout_without_install(stack):
    env = _env()
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    env.pop("ANSIBLE_CONFIG", None)
    run = _ansible_playbook(["playbooks/health.yml", "-i", str(stack.inventory)], cwd=REPO, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "failed=0" in run.stdout
