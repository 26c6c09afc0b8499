"""Summarise py-spy's collapsed stacks (`--profile`): where a worker's samples went, inclusive and self."""

import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)")


def summary(path: Path, top: int = 45) -> str:
    """Return the top frames of one collapsed-stack file, by inclusive and by self samples."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_LINE.sub(")", f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    out = [f"# {path.name}: {total} samples (200 Hz, active threads only)", "", "## inclusive"]
    out += [f"{n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    out += ["", "## self"]
    out += [f"{n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(out) + "\n"


def summarize(directory: Path) -> list[Path]:
    """Write `<name>.summary.txt` next to every collapsed-stack file; return their paths."""
    written = []
    for path in sorted(directory.glob("*.collapsed.txt")):
        target = path.with_name(path.name.replace(".collapsed.txt", ".summary.txt"))
        target.write_text(summary(path))
        written.append(target)
    return written
