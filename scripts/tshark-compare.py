#!/usr/bin/env python3
"""Compares sluice's stream reassembly with tshark's TCP follow on real
captures with one data packet removed (issue 14): for each capture and each
direction, the middle data packet of the first TCP stream is removed with
editcap, then

* tshark -z follow,tcp,raw gives each direction's captured bytes (tshark
  skips the missing ones) and the removed packet's length is the bytes
  tshark reports missing;
* sluice pcap --passive --dump-streams gives the bytes rules got and the
  gaps (index.jsonl);
* sluice pcap (rehearsal) gives the bytes rules got inline.

Usage: scripts/tshark-compare.py SLUICE RULES.lua CAPTURE...
Extra sluice flags (e.g. --checksums ignore) from $SLUICE_ARGS.
Needs tshark and editcap (apt-get install tshark). Prints one line per
capture and direction; exit status 1 if passive bytes differ from tshark's.
"""
import json
import os
import re
import subprocess
import sys
import tempfile


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def data_packets(pcap):
    """(frame number, from client?, tcp.len) of stream 0's data packets."""
    out = run("tshark", "-r", pcap, "-Y", "tcp.stream eq 0 && tcp.len > 0", "-T", "fields",
              "-e", "frame.number", "-e", "tcp.srcport", "-e", "tcp.len", "-o", "tcp.analyze_sequence_numbers:TRUE")
    first = run("tshark", "-r", pcap, "-Y", "tcp.stream eq 0", "-c", "1", "-T", "fields", "-e", "tcp.srcport")
    client_port = first.split()[0] if first.split() else None
    rows = []
    for line in out.splitlines():
        n, port, length = line.split("\t")
        rows.append((int(n), port == client_port, int(length)))
    return rows


MISSING = re.compile(rb"\[(\d+) bytes missing in capture file\]\x00?")


def split_missing(raw):
    """tshark's raw follow puts "[N bytes missing in capture file]" where a
    gap is: the captured bytes without the markers, and the gap lengths."""
    return MISSING.sub(b"", raw), [int(m.group(1)) for m in MISSING.finditer(raw)]


def tshark_follow(pcap):
    """Bytes of stream 0 per direction (client, server), markers included."""
    out = run("tshark", "-r", pcap, "-q", "-z", "follow,tcp,raw,0")
    body = out.split("Node 1:", 1)[1].split("\n", 1)[1]
    up, down = bytearray(), bytearray()
    for line in body.splitlines():
        if line.startswith("="):
            break
        if line.startswith("\t"):
            down += bytes.fromhex(line.strip())
        elif line.strip():
            up += bytes.fromhex(line.strip())
    return bytes(up), bytes(down)


def sluice(binary, rules, pcap, passive):
    d = tempfile.mkdtemp()
    args = [binary, "pcap", rules, pcap, "--dump-streams", d, "--alerts", "/dev/null", "--allow-rule-errors"]
    if passive:
        args.append("--passive")
    args += os.environ.get("SLUICE_ARGS", "").split()
    err = subprocess.run(args, capture_output=True, text=True).stderr
    index = [json.loads(l) for l in open(os.path.join(d, "index.jsonl"))]
    first = {l["dir"]: l for l in index if l["conn"] == 1}
    streams = {k: open(os.path.join(d, v["file"]), "rb").read() for k, v in first.items()}
    gaps = {k: v.get("gaps", []) for k, v in first.items()}
    hint = any(l.startswith("hint:") for l in err.splitlines())
    return streams, gaps, hint


def main():
    binary, rules, captures = sys.argv[1], sys.argv[2], sys.argv[3:]
    bad = 0
    print("capture | dir | removed | tshark bytes, missing | passive bytes (=tshark?) | passive gaps | "
          "rehearsal bytes | hint")
    for cap in captures:
        rows = data_packets(cap)
        for client in (True, False):
            mine = [r for r in rows if r[1] == client]
            if len(mine) < 3:
                continue
            n, _, length = mine[len(mine) // 2]
            cut = tempfile.mktemp(suffix=".pcap")
            run("editcap", "-F", "pcap", cap, cut, str(n))
            t_up, t_down = tshark_follow(cut)
            want, t_gaps = split_missing(t_up if client else t_down)
            key = "up" if client else "down"
            p_streams, p_gaps, _ = sluice(binary, rules, cut, True)
            r_streams, _, hint = sluice(binary, rules, cut, False)
            got = p_streams.get(key, b"")
            same = got == want
            bad += not same
            gap_bytes = sum(g["len"] for g in p_gaps.get(key, []))
            print(f"{os.path.basename(cap)} | {key} | frame {n} ({length} B) | {len(want)}, "
                  f"missing {'+'.join(map(str, t_gaps)) or 0} | {len(got)} "
                  f"({'same' if same else 'DIFFERENT'}) | {len(p_gaps.get(key, []))} ({gap_bytes} B) | "
                  f"{len(r_streams.get(key, b''))} | {'yes' if hint else 'no'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
