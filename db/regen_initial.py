"""Until the first release the schema has one migration, regenerated from the models:
`python -m db.regen_initial`. After a release, add migrations with `alembic revision` instead."""

import tempfile
from pathlib import Path

from alembic import command

from db.migrate import ROOT, alembic_config

VERSIONS = ROOT / "db" / "migrations" / "versions"


def main() -> None:
    for old in VERSIONS.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as folder:
        config = alembic_config(f"sqlite:///{Path(folder) / 'empty.db'}")
        command.revision(config, message="initial schema", autogenerate=True, rev_id="0001")


if __name__ == "__main__":
    main()
