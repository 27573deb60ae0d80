"""Two servers storing no-show scores at once, on PostgreSQL: the second waits for the first and
replaces its rows. Before, each deleted a visit's row and inserted it again, and the second's
insert met the first's committed row: a duplicate key, the run recorded as failed."""

from sqlalchemy import select

from core.analytics import risk_model
from core.kernel.authz import SYSTEM
from db.models import RiskModel, RiskScore
from tests.integration.test_first_claims_pg import second_while_first_is_open
from tests.unit.test_risk_scores import book, in_days, score


def test_two_runs_storing_the_same_visits_at_once_both_go_through(db, world):
    visit = book(db, world, in_days(2, 10))
    score(db, visit, 0.3)  # a model and the visit's first score
    with db.read() as session:
        model_id = session.scalar(select(RiskModel.id))
        start, provider = session.get(RiskScore, visit).start_at, world.provider_id

    def store(probability):
        return lambda session: risk_model.store_scores(
            session, SYSTEM, model_id, [(visit, start, provider, probability)]
        )

    assert second_while_first_is_open(db, store(0.4), store(0.5)) == (1, 1)
    with db.read() as session:
        assert session.scalars(select(RiskScore.probability)).all() == [0.5]  # the later run's
