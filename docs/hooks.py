"""MkDocs hooks: README.md and CHANGELOG.md as site pages.

The front page is the repository's README.md, with its links into docs/ made
relative to the site.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSERTED = {"index.md": "README.md", "changelog.md": "CHANGELOG.md"}


def on_page_markdown(markdown, page, config, files):
    source = INSERTED.get(page.file.src_uri)
    if source is None:
        return markdown
    text = (ROOT / source).read_text()
    # README links point into docs/ from the repository root; on the site they are siblings.
    return re.sub(r"\]\(docs/", "](", text)
