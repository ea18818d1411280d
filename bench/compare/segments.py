"""TCP segments per MB on each leg of a throughput run, from `ss -ti`.

Why: how many segments carry a megabyte decides how much work the receiving
side does per byte (one wake-up, one ACK, one skb per segment). A proxy
that passes mail on in small segments makes the client (and, through the
ACKs, the backend) pay for it even when the proxy's own CPU is low, so
bench/compare reports it per target.

How: while the load runs, `ss -tinH` is read every `period` seconds and
each established connection's `bytes_sent` and `data_segs_out` are kept.
A connection's contribution is the difference between the first and the
last time it was seen, so the logins before the run and anything between
two samples at the edges do not count. Legs are told apart by the local
port of the sending socket: the listening port of the target (its bytes
go to the client) and the backend's ports (their bytes go to the proxy).
"""

import re
import subprocess
import threading

_ADDR = re.compile(r"^(?:\[?[0-9a-fA-F:.]+\]?|\*):(\d+)$")
_COUNTER = re.compile(r"\b(bytes_sent|data_segs_out):(\d+)")


def parse_ss(text):
    """{(local, peer): {"local_port": int, "bytes_sent": int,
    "data_segs_out": int}} from `ss -tinH` output."""
    out = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            addrs = [t for t in line.split() if _ADDR.match(t)]
            key = (addrs[-2], addrs[-1]) if len(addrs) >= 2 else None
            continue
        if key is None:
            continue
        counters = dict((k, int(v)) for k, v in _COUNTER.findall(line))
        if "bytes_sent" in counters and "data_segs_out" in counters:
            counters["local_port"] = int(_ADDR.match(key[0]).group(1))
            out[key] = counters
        key = None
    return out


class SegmentSampler:
    """legs: {leg name: set of local ports whose sockets send that leg's
    bytes}. Use as a context manager around the load."""

    def __init__(self, legs, period=0.25):
        self.legs = {name: set(ports) for name, ports in legs.items()}
        self.period = period
        self.samples = 0
        self._first = {}
        self._last = {}
        self._stop = threading.Event()
        self._thread = None

    def _sample(self):
        try:
            r = subprocess.run(["ss", "-tinH", "state", "established"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, timeout=5,
                               check=False)
        except (OSError, subprocess.TimeoutExpired):
            return
        seen = parse_ss(r.stdout.decode(errors="replace"))
        if any(c["local_port"] in p for c in seen.values()
               for p in self.legs.values()):
            self.samples += 1  # a sample that saw a leg's connection
        for key, c in seen.items():
            self._first.setdefault(key, c)
            self._last[key] = c

    def _loop(self):
        while not self._stop.wait(self.period):
            self._sample()

    def __enter__(self):
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()
        return False

    def result(self):
        """{leg: {"segs_per_mb", "bytes_per_seg", "bytes", "segs"}} for
        the legs that moved data while sampled."""
        out = {}
        for name, ports in self.legs.items():
            nbytes = segs = 0
            for key, last in self._last.items():
                if last["local_port"] not in ports:
                    continue
                first = self._first[key]
                nbytes += last["bytes_sent"] - first["bytes_sent"]
                segs += last["data_segs_out"] - first["data_segs_out"]
            if nbytes > 0 and segs > 0:
                out[name] = {"segs_per_mb": round(segs / (nbytes / 1e6), 2),
                             "bytes_per_seg": round(nbytes / segs),
                             "bytes": nbytes, "segs": segs}
        return out
