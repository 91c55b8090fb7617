"""What the drill tests look at from outside: the drill project's resources, the live project's, and a probe that
keeps asking the live stack while a drill runs."""
import subprocess
import threading
import urllib.request


def drill_resources(project):
    """Every container, volume and network of compose project ``project`` (by compose's label), by name."""
    label = "label=com.docker.compose.project=%s" % project
    found = []
    for args in (["ps", "-a", "--format", "{{.Names}}"], ["volume", "ls", "--format", "{{.Name}}"],
                 ["network", "ls", "--format", "{{.Name}}"]):
        found += subprocess.run(["docker"] + args + ["--filter", label], capture_output=True, text=True).stdout.split()
    return found


def live_fingerprint(project):
    """A project's containers (ids, start times, states), volumes and networks: a drill must change none of them."""
    label = "label=com.docker.compose.project=%s" % project
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True).stdout.split()
    started = subprocess.run(["docker", "inspect", "--format", "{{.Name}} {{.State.StartedAt}} {{.State.Status}}"] + ids,
                             capture_output=True, text=True).stdout.split("\n")
    volumes = subprocess.run(["docker", "volume", "ls", "-q", "--filter", label], capture_output=True, text=True).stdout
    networks = subprocess.run(["docker", "network", "ls", "-q", "--filter", label], capture_output=True, text=True).stdout
    return sorted(ids), sorted(started), sorted(volumes.split()), sorted(networks.split())


class LiveProbe:
    """Hits ``url`` of the live stack until stopped; every answer must be HTTP 200."""

    def __init__(self, url):
        self.url = url
        self.results = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    self.results.append(response.status)
            except Exception as exc:  # pylint: disable=broad-except
                self.results.append(repr(exc))
            self.stop.wait(0.25)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)

    def assert_served(self):
        assert self.results, "the probe never ran"
        failures = [item for item in self.results if item != 200]
        assert not failures, "the live stack failed %d of %d probes during the drill: %s" % (
            len(failures), len(self.results), failures[:5])
