"""What the bench/compare tests share: running bench/compare/run with the
test's own arguments and the ones CTest passes (--popgate-bin, --synth-bin,
--out, --loadgen-bin when built), and loading what it wrote."""
import json
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUN = os.path.join(REPO, "bench", "compare", "run")


class Result:
    """One finished run: its JSON (`res`), its Markdown (`md`), and where
    the files are (`out`, `tag`)."""

    def __init__(self, out, tag, stdout):
        self.out, self.tag, self.stdout = out, tag, stdout
        self.res = json.load(open(os.path.join(out, f"{tag}.json")))
        self.md = open(os.path.join(out, f"{tag}.md")).read()
        kept = re.search(r"kept (\S+)", stdout)
        # The proxies' configs and logs, with --keep-tmp (remove()).
        self.tmp = kept.group(1) if kept else None

    def runs(self):
        """The runs that count (not those the harness discarded)."""
        return [x for x in self.res["runs"] if not x.get("discarded")]

    def plot(self, name):
        """The size of plot `name`, or None where matplotlib is missing
        (the report then names the plots but none is drawn)."""
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return None
        return os.path.getsize(os.path.join(self.out,
                                            f"{self.tag}-{name}.png"))

    def remove(self):
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def has_loadgen():
    return "--loadgen-bin" in sys.argv[1:]


def run(tag, args, timeout):
    """bench/compare/run --quick with `args` (the workloads, targets...)
    and this test's command line; asserts it exited 0, that no target was
    unavailable and no run failed."""
    extra = sys.argv[1:]
    out = extra[extra.index("--out") + 1]
    cmd = [RUN, "--quick", "--no-install", "--no-build",
           "--max-quiet-wait", "0", "--tag", tag] + args + extra
    print("+", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, timeout=timeout, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(r.stdout)
    assert r.returncode == 0, f"bench/compare/run exited {r.returncode}"
    result = Result(out, tag, r.stdout)
    try:
        assert not result.res["unavailable"], result.res["unavailable"]
        failed = [x for x in result.res["runs"] if x["error"]]
        assert not failed, f"failed runs: {failed}"
    except AssertionError:
        result.remove()
        raise
    return result
