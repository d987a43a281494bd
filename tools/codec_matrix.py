"""Write the codec x container matrix's coverage into README.md and docs/DESIGN.md.

The blocks between ``<!-- codec-matrix:NAME -->`` markers are generated from the test matrix
itself (tests/clappers.py: what the bundled FFmpeg writes, reads back and decodes in sync); the
test ``test_the_docs_list_what_the_matrix_covers`` checks that they are what it finds.

    python tools/codec_matrix.py            # print the blocks
    python tools/codec_matrix.py --write    # replace them in README.md and docs/DESIGN.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clappers import Matrix, coverage, replace_marked  # noqa: E402

#: which blocks each document holds
DOCUMENTS = {"README.md": ("containers",), "docs/DESIGN.md": ("containers", "audio")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the blocks in README.md and docs/DESIGN.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        blocks = coverage(Matrix(Path(folder)))
    if not args.write:
        for name, block in blocks.items():
            print(f"<!-- codec-matrix:{name} -->\n{block}\n<!-- /codec-matrix:{name} -->\n")
        return 0
    for document, names in DOCUMENTS.items():
        path = ROOT / document
        text = path.read_text(encoding="utf-8")
        for name in names:
            text = replace_marked(text, name, blocks[name])
        path.write_text(text, encoding="utf-8")
        print(f"wrote {', '.join(names)} in {document}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
