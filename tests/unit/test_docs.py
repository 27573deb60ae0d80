"""The README tells the truth: every setting and the current roles matrix are in it."""

import re
from pathlib import Path

from core.kernel import config
from core.kernel.authz import matrix_markdown

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_shows_the_current_roles_matrix():
    block = re.search(
        r"<!-- roles-matrix:start -->\n(.*?)\n<!-- roles-matrix:end -->", README, re.S
    )
    assert block and block.group(1) == matrix_markdown()


def test_readme_mentions_every_environment_setting():
    source = Path(config.__file__).read_text()
    names = set(re.findall(r'"((?:CLINICDESK|SMTP|SMS|DATABASE)_[A-Z_]+)"', source))
    assert names and not {n for n in names if f"`{n}`" not in README and n not in README}
