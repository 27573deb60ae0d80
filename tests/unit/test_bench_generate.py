"""bench.generate's patients: every balance opens with its ledger entry, as core opens one
(core.payments.points.open_account), so a bench patient's points history adds up to their
balance without migration 0006 having to give them one."""

from __future__ import annotations

from sqlalchemy import select

from bench import generate, run
from db.models import LedgerEntry, LedgerKind, Patient
from tests.unit.test_points_ledger import ledger_sums


def test_every_generated_patients_ledger_adds_up_to_their_balance(tmp_path):
    path = tmp_path / "bench.db"
    sizes = ["--appointments", "3000", "--patients", "300", "--responses", "100"]
    generate.main([*sizes, "--out", str(path)])
    database = run.open_db(f"sqlite:///{path}")
    try:
        with database.read() as session:
            sums = ledger_sums(session)
            bench = dict(
                session.execute(
                    select(Patient.id, Patient.created_at).where(
                        Patient.external_ref.like("BENCH-%")
                    )
                ).all()
            )
            opened = {
                e.patient_id: e
                for e in session.scalars(
                    select(LedgerEntry).where(LedgerEntry.kind == LedgerKind.POINTS_OPENING)
                )
            }
    finally:
        database.dispose()
    assert len(bench) == 300
    wrong = {pid: pair for pid, pair in sums.items() if pair[0] != pair[1]}
    assert not wrong, (
        f"{len(wrong)} patients' (balance, ledger) disagree: {list(wrong.items())[:5]}"
    )
    balances = {sums[pid][0] for pid in bench}
    assert {0, 60, 80, 100} <= balances  # the generator's mix, each opened by its entry
    for pid, created_at in bench.items():
        if sums[pid][0]:  # opened on the day the patient was added, as core dates it
            assert opened[pid].points == sums[pid][0] and opened[pid].created_at == created_at
        else:
            assert pid not in opened  # nothing to open with
