"""Reading server-rendered pages in tests."""

import re


def text(response) -> str:
    """The page's text, tags removed and whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())
