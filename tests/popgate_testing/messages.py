"""Deterministic test messages (with dot-stuffing traps) and what TOP
must return for them."""

from __future__ import annotations

import hashlib
import random


def make_message(seed: int, size: int, subject: str | None = None) -> bytes:
    """Deterministic RFC 5322 message of exactly `size` bytes (>= 200), CRLF.

    The body contains lines that need dot-stuffing: '.', '..', '.x', '. ',
    lines of dots, and a line that is just '.' followed by more text, so that
    a proxy or client getting dot-stuffing wrong is caught.
    """
    if size < 200:
        raise ValueError("size must be >= 200")
    rnd = random.Random(seed)
    subj = subject or f"popgate test message {seed}"
    head = (f"From: sender{seed}@example.net\r\n"
            f"To: rcpt{seed}@example.com\r\n"
            f"Subject: {subj}\r\n"
            f"Message-ID: <{seed}.popgate-it@example.net>\r\n"
            f"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
            "\r\n").encode()
    specials = [b".", b"..", b".hidden", b". dot space", b"...", b".\t.",
                b"..double", b".end"]
    lines: list[bytes] = []
    total = len(head)
    i = 0
    while True:
        if i < len(specials):
            line = specials[i]
        elif rnd.random() < 0.1:
            line = b"." + bytes(rnd.choice(b"abcdefghij.") for _ in range(rnd.randrange(0, 40)))
        else:
            n = rnd.randrange(0, 77)
            line = bytes(rnd.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 +-/=")
                         for _ in range(n))
        i += 1
        if total + len(line) + 2 > size - 8:
            break
        lines.append(line)
        total += len(line) + 2
    body = b"\r\n".join(lines) + b"\r\n" if lines else b""
    msg = head + body
    pad = size - len(msg)
    # Fill the rest with one last line of exactly the right length.
    if pad >= 2:
        msg += b"x" * (pad - 2) + b"\r\n"
    assert len(msg) == size, (len(msg), size)
    return msg


def make_big_message(seed: int, size: int) -> bytes:
    """Fast deterministic big message (CRLF, dot lines every 50 lines)."""
    head = (f"From: big{seed}@example.net\r\nTo: someone@example.com\r\n"
            f"Subject: big message {seed}\r\n\r\n").encode()
    block_lines = []
    for j in range(64):
        if j % 50 == 0:
            block_lines.append(b"." + b"d" * 70)
        elif j == 7:
            block_lines.append(b".")
        else:
            block_lines.append(bytes(f"{seed:04d}-{j:03d} ", "ascii") + b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWX")
    block = b"\r\n".join(block_lines) + b"\r\n"
    need = size - len(head)
    k = need // (len(block) + len(b"block 00000000\r\n"))
    parts = [head]
    for b in range(k):  # each block numbered so reordered chunks are caught
        parts.append(b"block %08d\r\n" % b)
        parts.append(block)
    msg = b"".join(parts)
    rest = size - len(msg)
    # Pad with lines of at most 78 octets (poplib refuses lines > 2048).
    pad = []
    while rest >= 80:
        pad.append(b"y" * 76 + b"\r\n")
        rest -= 78
    if rest >= 2:
        pad.append(b"y" * (rest - 2) + b"\r\n")
    elif rest == 1:
        pad.append(b"z\r\n" if not pad else b"")
        if len(pad) > 1:
            pad[0] = b"y" * 77 + b"\r\n"
        else:
            msg = msg[:-2] + b"z\r\n"
            pad = []
    msg += b"".join(pad)
    assert len(msg) == size, (len(msg), size)
    return msg


def expected_top(msg: bytes, nlines: int) -> bytes:
    """What TOP msg nlines must return (after dot-unstuffing), CRLF message."""
    sep = msg.find(b"\r\n\r\n")
    if sep < 0:
        return msg
    head = msg[:sep + 4]
    body = msg[sep + 4:]
    if nlines <= 0 or not body:
        return head
    parts = body.split(b"\r\n")
    # body ends with CRLF so the last element is b""
    lines = parts[:-1] if parts and parts[-1] == b"" else parts
    take = lines[:nlines]
    return head + b"".join(l + b"\r\n" for l in take)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()[:16]
