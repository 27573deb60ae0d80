"""Until the first release the schema has one migration, regenerated from the models:
`python -m db.regen_initial`. After a release, add migrations with `alembic revision` instead.

Autogenerate sees tables and indexes only: the triggers of db/triggers.py are written into the
migration as a frozen copy of their statements."""

import tempfile
from pathlib import Path
from pprint import pformat

from alembic import command

from db import triggers
from db.migrate import ROOT, alembic_config

VERSIONS = ROOT / "db" / "migrations" / "versions"
END = "    # ### end Alembic commands ###\n"


def main() -> None:
    for old in VERSIONS.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as folder:
        config = alembic_config(f"sqlite:///{Path(folder) / 'empty.db'}")
        command.revision(config, message="initial schema", autogenerate=True, rev_id="0001")
    (path,) = VERSIONS.glob("0001_*.py")
    path.write_text(with_triggers(path.read_text()))


def with_triggers(source: str) -> str:
    """The generated migration, creating the triggers last and dropping them first."""
    upgrade, downgrade = source.split("def downgrade")
    run = (
        "    for statement in {}.get(op.get_bind().dialect.name, []):\n"
        "        op.execute(statement)\n"
    )
    upgrade = upgrade.replace(
        END, END + "    # db/triggers.py, copied by db.regen_initial\n" + run.format("TRIGGERS")
    )
    downgrade = downgrade.replace(
        "    # ### commands auto generated",
        run.format("DROP_TRIGGERS") + "    # ### commands auto generated",
        1,
    )
    frozen = (
        f"\nTRIGGERS = {pformat(triggers.CREATE, width=96)}\n"
        f"DROP_TRIGGERS = {pformat(triggers.DROP, width=96)}\n"
    )
    head, body = upgrade.split("\n\ndef upgrade", 1)
    return f"{head}\n{frozen}\n\ndef upgrade{body}def downgrade{downgrade}"


if __name__ == "__main__":
    main()
