"""ansible-runner's Python API running one playbook, as `stackops` does minus its own work (overhead benchmark)."""
import sys
import tempfile

import ansible_runner


def main():
    playbook, inventory = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="stackops-bench-runner-") as private:
        result = ansible_runner.run(private_data_dir=private, playbook=playbook, inventory=inventory, quiet=True)
    return 0 if result.status == "successful" else 1


if __name__ == "__main__":
    sys.exit(main())
