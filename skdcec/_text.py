"""Text shortened to fit a small title."""


def shorten(text, length=18):
    """``text`` cut in the middle to at most ``length`` characters."""
    if len(text) <= length:
        return text
    keep = length - 1
    return text[: keep - keep // 2] + "\u2026" + text[-(keep // 2) :]
