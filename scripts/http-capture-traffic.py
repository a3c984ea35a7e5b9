#!/usr/bin/env python3
"""HTTP traffic for scripts/make-http-capture.sh (stdlib only).

  gen DIR SEED PATTERN      write the files to serve: text-like bytes, sizes
                            from 1 KiB to 1 MiB (log-uniform), a quarter of
                            them holding PATTERN one to three times; writes
                            DIR/manifest (name size occurrences)
  serve DIR ADDR PORT       HTTP/1.1 server (keep-alive) for DIR's files
  fetch DIR ADDR PORT MB SEED
                            fetches files (picked by SEED) until MB megabytes
                            came, 1 to 16 requests per connection; checks each
                            body's length; prints `fetches N bytes N
                            connections N expected_matches N`

The pattern is upper case and the filler lower case, so the pattern occurs
exactly where gen put it, and the expected count of matches in the
reassembled streams is the sum over the fetches (request and response
headers never hold it).
"""
import http.client
import http.server
import math
import os
import random
import socket
import sys

FILES = 240
# The client's SO_RCVBUF (Linux doubles it): keeps each connection's window,
# hence what a receiver may hold out of order, under libnids' fixed 64 KiB
# out-of-order queue (see fetch).
CLIENT_RCVBUF = 32 * 1024
MIN_SIZE = 1024
MAX_SIZE = 1024 * 1024
WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so no will "
    "more can out up who them what some time two into other only new about these could year"
).split()


def text_bytes(rng, size):
    """Lines of lower-case words, `size` bytes long."""
    out = []
    length = 0
    while length < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 16))) + "\n"
        out.append(line)
        length += len(line)
    return "".join(out).encode()[:size]


def gen(directory, seed, pattern):
    rng = random.Random(int(seed))
    pat = pattern.encode()
    if pat.lower() == pat:
        sys.exit("gen: the pattern needs an upper-case letter (the filler is lower case)")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "manifest"), "w") as manifest:
        for i in range(FILES):
            size = int(math.exp(rng.uniform(math.log(MIN_SIZE), math.log(MAX_SIZE))))
            body = bytearray(text_bytes(rng, size))
            hits = rng.randint(1, 3) if rng.random() < 0.25 else 0
            if size < 3 * len(pat):
                hits = 0
            # Non-overlapping spots, anywhere in the file (segment edges included).
            slots = sorted(rng.sample(range(size // len(pat)), hits))
            for slot in slots:
                at = slot * len(pat)
                body[at : at + len(pat)] = pat
            name = f"f{i:04d}.txt"
            with open(os.path.join(directory, name), "wb") as f:
                f.write(body)
            manifest.write(f"{name} {size} {hits}\n")


def serve(directory, addr, port):
    class Handler(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=directory, **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((addr, int(port)), Handler)
    print("serving", flush=True)
    server.serve_forever()


class SmallWindowConnection(http.client.HTTPConnection):
    """An HTTP connection whose socket has a small receive buffer.

    Segments lost on the veth (the receiving CPU's backlog overflows when the
    machine is busy) make the receiver hold the rest of the window out of
    order. libnids discards a direction's whole out-of-order queue when it
    exceeds 64 KiB (NIDS_WARN_TCP_BIGQUEUE) and loses those bytes for good,
    so with Linux's default windows (megabytes here) libnids missed data
    that the client did receive. A window of a few ten KiB keeps both
    reassemblers exact on any loss.
    """

    def connect(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.host, self.port))


def fetch(directory, addr, port, megabytes, seed):
    rng = random.Random(int(seed) + 1)
    with open(os.path.join(directory, "manifest")) as manifest:
        files = [(n, int(s), int(h)) for n, s, h in (line.split() for line in manifest)]
    target = int(float(megabytes) * 1e6)
    fetches = got = connections = expected = 0
    while got < target:
        conn = SmallWindowConnection(addr, int(port), timeout=30)
        connections += 1
        for _ in range(rng.randint(1, 16)):
            name, size, hits = rng.choice(files)
            conn.request("GET", "/" + name)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or len(body) != size:
                sys.exit(f"fetch: /{name}: status {resp.status}, {len(body)} bytes, wanted {size}")
            fetches += 1
            got += size
            expected += hits
            if got >= target:
                break
        conn.close()
    print(f"fetches {fetches} bytes {got} connections {connections} expected_matches {expected}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"gen": gen, "serve": serve, "fetch": fetch}[cmd](*args)


if __name__ == "__main__":
    main()
