"""Process limits a benchmark with tens of thousands of sockets runs into."""

from __future__ import annotations

import resource


def raise_open_files() -> int:
    """Raise this process's open-file limit to its hard limit (as far as allowed); the result."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1_048_576
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft
