"""`pdm run faults [--long] [pytest options]`: the fault suite alone; `--long` runs the long version (at
least 20 kill -9 over 100,000 events, longer loads and faults). The verifier's figures are printed at the end
and written to .local-stack/fault-figures.json."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.faults.profile import LONG_VARIABLE


def main(argv: list[str]) -> int:
    if "--long" in argv:
        argv = [arg for arg in argv if arg != "--long"]
        os.environ[LONG_VARIABLE] = "1"
    return int(pytest.main([str(Path(__file__).parent), "-rxX", *argv]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
