"""Write the env file and the inventory contract of an isolated demo stack for the molecule scenario.

Uses the same definition as the tests and benchmarks (tests/support/stack.py), so the scenario's stack
is configured exactly like theirs. Usage: stack_config.py PROJECT POSTGRES_PORT FRONTEND_PORT OUTPUT_DIR
"""
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from tests.support.stack import stack_env_text, stack_group_vars  # noqa: E402


def main(project, postgres_port, frontend_port, output_dir):
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    env_file = output / "stack.env"
    env_file.write_text(stack_env_text(project, int(postgres_port), int(frontend_port)))
    contract = stack_group_vars(project, env_file, int(postgres_port), int(frontend_port), output / "backups")
    (output / "stack_vars.json").write_text(json.dumps(contract, indent=2) + "\n")
    print(json.dumps({"env_file": str(env_file), "vars_file": str(output / "stack_vars.json")}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
