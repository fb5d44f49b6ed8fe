"""Print the README's table-feature matrices from the adapters' own declarations (``capabilities.features``).

    python scripts/feature_table.py            # both formats, as Markdown
    python scripts/feature_table.py --check    # exit 1 when README.md's copy differs (tests run this)

The README block between ``<!-- features:begin -->`` and ``<!-- features:end -->`` is this script's output, so
the documentation cannot drift from what ``check_operation`` refuses.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lakehouse.tables.base import Capabilities, FeatureSupport
from lakehouse.tables.delta import DeltaAdapter
from lakehouse.tables.iceberg import IcebergAdapter

BEGIN, END = "<!-- features:begin -->", "<!-- features:end -->"
COLUMNS = (
    ("read", "read (scan, SQL, show)"),
    ("optimize", "optimize / Z-order / tier"),
    ("dedup", "dedup"),
    ("delete", "row deletes (erase, expire-data)"),
    ("mask", "mask in place"),
    ("vacuum", "vacuum, orphans"),
)


def _cell(f: FeatureSupport, op: str) -> str:
    return "✔" if f.supports(op) else "refused"


def _why(f: FeatureSupport) -> str:
    reasons = list(dict.fromkeys(f.refused.values()))  # each reason once, in operation order
    parts = [f"refused: {'; '.join(reasons)}"] if reasons else []
    parts += [f"to proceed: {f.hint}"] if f.hint else []
    parts += [f.notes] if f.notes else []
    return ". ".join(p.rstrip(".") for p in parts)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def matrix(title: str, caps: Capabilities) -> str:
    head = f"| {title} | " + " | ".join(label for _, label in COLUMNS) + " | why; what to do; notes |"
    rows = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for f in caps.features:
        notes = _why(f)
        cells = [f"`{f.feature}`" if " " not in f.feature else f.feature]
        cells += [_cell(f, op) for op, _ in COLUMNS] + [notes]
        rows.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    return "\n".join(rows)


def render() -> str:
    return "\n\n".join(
        [
            BEGIN,
            matrix("Delta table feature", DeltaAdapter.capabilities),
            "A Delta table feature not listed is refused for every job (and for reads when readers must "
            "understand it); tables of the legacy protocol versions use the features their versions imply.",
            matrix("Iceberg feature", IcebergAdapter.capabilities),
            END,
        ]
    )


def readme_block(readme: str) -> str:
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[start:end]


def main(argv: list[str]) -> int:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    text = readme.read_text()
    if "--check" in argv:
        if readme_block(text) != render():
            print("README.md's feature tables differ from the adapters': run python scripts/feature_table.py --write")
            return 1
        return 0
    if "--write" in argv:
        readme.write_text(text.replace(readme_block(text), render()))
        return 0
    print(render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
