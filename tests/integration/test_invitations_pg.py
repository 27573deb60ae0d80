"""The invitation, patient-record and patient-link tests again on a real PostgreSQL."""

from tests.unit.test_invitations import *  # noqa: F403
from tests.unit.test_patient_links import *  # noqa: F403
from tests.unit.test_patients import *  # noqa: F403
