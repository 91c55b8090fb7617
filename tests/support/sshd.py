"""A real sshd on 127.0.0.1 for tests: its own host key (pinned in a known_hosts file), a throwaway client key in
its authorized_keys, its own pid file and log. Nothing in /root/.ssh or /etc/ssh is touched."""
import os
import socket
import subprocess
import time

import pytest

SSHD = "/usr/sbin/sshd"


def free_port_in(ports):
    """The first port of ``ports`` nothing listens on."""
    for number in ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", number))
            except OSError:
                continue
            return number
    pytest.fail("no free port in %s-%s for the test sshd" % (ports[0], ports[-1]))


class Sshd:
    """``Sshd(root, ports).start()``; ``port``, ``key`` (the client's private key), ``known_hosts``; ``stop()``."""

    def __init__(self, root, ports):
        self.root = root
        self.ports = ports
        self.port = None
        self.key = root / "client_key"
        self.known_hosts = root / "known_hosts"
        self.proc = None

    def start(self):
        if not os.path.exists(SSHD):
            pytest.fail("%s missing: run scripts/bootstrap.sh (Debian package openssh-server)" % SSHD)
        self.root.mkdir(parents=True, exist_ok=True)
        for key in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.root / key)], check=True)
        (self.root / "authorized_keys").write_text((self.root / "client_key.pub").read_text())
        os.chmod(self.root / "authorized_keys", 0o600)
        self.port = free_port_in(self.ports)
        self.known_hosts.write_text("[127.0.0.1]:%d %s" % (self.port, (self.root / "host_key.pub").read_text()))
        config = self.root / "sshd_config"
        config.write_text("\n".join([
            "ListenAddress 127.0.0.1", "Port %d" % self.port, "HostKey %s" % (self.root / "host_key"),
            "PidFile %s" % (self.root / "sshd.pid"), "AuthorizedKeysFile %s" % (self.root / "authorized_keys"),
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password", "UsePAM no", "StrictModes no", "Subsystem sftp internal-sftp", ""]))
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        log = self.root / "sshd.log"
        with open(log, "w") as stderr:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=stderr)
        # Ready once it accepts connections; a daemon that exits instead fails the test with its log.
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail("sshd did not start: %s" % log.read_text())
            time.sleep(0.1)

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def ssh_options(self):
        """ansible_ssh_common_args that trust exactly this server's host key and offer only the test's key."""
        return "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes" % self.known_hosts

    def target(self, path):
        """An off-site target (type ssh) on this server, for stackops_offsite_targets or the offsite_* modules (type ssh)."""
        return dict(host="127.0.0.1", port=self.port, user="root", path=str(path), identity_file=str(self.key),
                    known_hosts_file=str(self.known_hosts))
