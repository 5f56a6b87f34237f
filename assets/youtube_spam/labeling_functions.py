"""Python labeling functions for youtube_spam: fmops loads every function marked @labeling_function."""

import re

from fmops_pipelines.supervision.lfs import labeling_function

_VIEWS = re.compile(r"\b(billion|views|20\d\d)\b", re.IGNORECASE)


@labeling_function(label="ham")
def short_comment(text: str) -> bool:
    """Spam needs room for a pitch; very short comments are almost always genuine reactions."""
    return len(text.split()) < 5


@labeling_function(label="ham")
def view_count_chatter(text: str) -> bool:
    """'Who is watching in 2015?', '2 billion views!': talk about the video itself."""
    return bool(_VIEWS.search(text)) and "http" not in text.lower()
