"""MkDocs hooks: README.md and CHANGELOG.md as site pages; optional guides.

The front page is the repository's README.md, with its links into docs/ made
relative to the site. Guides listed in OPTIONAL_PAGES leave the nav when their
file is absent, so the site builds with --strict either way.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSERTED = {"index.md": "README.md", "changelog.md": "CHANGELOG.md"}
OPTIONAL_PAGES = {"porting.md"}


def _present(entry, docs_dir: Path) -> bool:
    target = next(iter(entry.values())) if isinstance(entry, dict) else entry
    if isinstance(target, list):
        return True
    return target not in OPTIONAL_PAGES or (docs_dir / target).is_file()


def _prune(nav, docs_dir: Path):
    kept = []
    for entry in nav:
        if not _present(entry, docs_dir):
            continue
        if isinstance(entry, dict):
            entry = {
                key: _prune(value, docs_dir) if isinstance(value, list) else value
                for key, value in entry.items()
            }
        kept.append(entry)
    return kept


def on_config(config):
    config["nav"] = _prune(config["nav"], Path(config["docs_dir"]))
    return config


def on_page_markdown(markdown, page, config, files):
    source = INSERTED.get(page.file.src_uri)
    if source is None:
        return markdown
    text = (ROOT / source).read_text()
    # README links point into docs/ from the repository root; on the site they are siblings.
    return re.sub(r"\]\(docs/", "](", text)
