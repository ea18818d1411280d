"""Runs one test module like `python3 -m unittest -v MODULE` but exits 77
when tests were skipped and none failed, so that ctest (SKIP_RETURN_CODE 77)
reports the module as skipped rather than passed.  Exit 1 on any failure or
error, 0 when everything ran and passed.

    python3 run_skippable.py test_ktls
"""

import sys
import unittest

SKIP_EXIT = 77


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} MODULE", file=sys.stderr)
        return 2
    suite = unittest.defaultTestLoader.loadTestsFromName(argv[1])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if not result.wasSuccessful():
        return 1
    if result.skipped:
        print(f"{len(result.skipped)} skipped: reporting the module as skipped "
              f"(exit {SKIP_EXIT})", file=sys.stderr)
        for test, reason in result.skipped:
            print(f"  {test}: {reason}", file=sys.stderr)
        return SKIP_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
