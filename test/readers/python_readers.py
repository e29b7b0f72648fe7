# How Python's standard library reads URL and path arguments, for the differential tests of
# argument constraints (test/argument-url-view.test.ts, test/argument-paths.test.ts).
# One JSON string per input line, one JSON reading per output line, in order.
#   python3 python_readers.py url    urllib.parse.urlsplit: scheme, hostname, port, username
#   python3 python_readers.py path   posixpath.normpath
#   python3 python_readers.py echo-id  json.loads of a JSON-RPC request, then json.dumps of its id:
#                                      the id a server on Python's json module echoes
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


def echo_id(body):
    try:
        return {"ok": True, "echo": json.dumps(json.loads(body)["id"])}
    except (ValueError, KeyError, TypeError) as e:
        return {"ok": False, "error": str(e)}


def main():
    mode = sys.argv[1] if len(sys.argv) == 2 else ""
    if mode not in ("url", "path", "echo-id"):
        sys.stderr.write("usage: python3 python_readers.py url|path|echo-id\n")
        sys.exit(2)
    for line in sys.stdin:
        s = json.loads(line)
        out = read_url(s) if mode == "url" else echo_id(s) if mode == "echo-id" else {"path": posixpath.normpath(s)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


main()
