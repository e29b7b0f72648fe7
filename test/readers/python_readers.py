# How Python's standard library reads URL and path arguments, for the differential tests of
# argument constraints (test/argument-url-view.test.ts, test/argument-paths.test.ts).
# One JSON string per input line, one JSON reading per output line, in order.
#   python3 python_readers.py url    urllib.parse.urlsplit: scheme, hostname, port, username
#   python3 python_readers.py path   posixpath.normpath
import json
import posixpath
import sys
from urllib.parse import urlsplit


def read_url(s):
    try:
        u = urlsplit(s)
        return {"ok": True, "scheme": u.scheme, "host": u.hostname, "port": u.port, "user": u.username is not None}
    except ValueError as e:
        return {"ok": False, "error": str(e)}


def main():
    mode = sys.argv[1] if len(sys.argv) == 2 else ""
    if mode not in ("url", "path"):
        sys.stderr.write("usage: python3 python_readers.py url|path\n")
        sys.exit(2)
    for line in sys.stdin:
        s = json.loads(line)
        out = read_url(s) if mode == "url" else {"path": posixpath.normpath(s)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


main()
