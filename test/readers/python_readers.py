# How Python's standard library reads URL and path arguments, for the differential tests of
# argument constraints (test/argument-url-view.test.ts, test/argument-paths.test.ts).
# One JSON string per input line, one JSON reading per output line, in order.
#   python3 python_readers.py url    urllib.parse.urlsplit: scheme, hostname, port, username
#   python3 python_readers.py path   posixpath.normpath
#   python3 python_readers.py echo-id  json.loads of a JSON-RPC request, then json.dumps of its id:
#                                      the id a server on Python's json module echoes
#   python3 python_readers.py jcs-args json.loads of a tools/call, then the RFC 8785 canonical form of
#                                      params.arguments as Python read them (ints exact, floats as
#                                      ECMAScript writes them), for test/approvals-readers.test.ts
import json
import posixpath
import sys
from decimal import Decimal
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


def jcs_number(v):
    if isinstance(v, bool):
        raise ValueError("bool is not a number")
    if isinstance(v, int):
        return str(v)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError("not finite")
    if v == 0:
        return "0"
    sign = "-" if v < 0 else ""
    # repr gives the shortest digits that read back as the same float, as ECMAScript asks.
    t = Decimal(repr(abs(v))).normalize().as_tuple()
    digits = "".join(str(d) for d in t.digits)
    k = len(digits)
    n = t.exponent + k
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        out = (digits if k == 1 else digits[0] + "." + digits[1:]) + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return sign + out


ESCAPES = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r", 0x22: '\\"', 0x5C: "\\\\"}


def jcs_string(s):
    out = ['"']
    for ch in s:
        c = ord(ch)
        if c in ESCAPES:
            out.append(ESCAPES[c])
        elif c < 0x20:
            out.append("\\u%04x" % c)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def utf16_key(k):
    return k.encode("utf-16-be", "surrogatepass")


def jcs(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return jcs_number(v)
    if isinstance(v, str):
        return jcs_string(v)
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v.keys(), key=utf16_key)
        return "{" + ",".join(jcs_string(k) + ":" + jcs(v[k]) for k in keys) + "}"
    raise ValueError("not JSON")


def jcs_args(body):
    try:
        args = json.loads(body)["params"].get("arguments")
        return {"ok": True, "canonical": jcs({} if args is None else args)}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        return {"ok": False, "error": str(e)}


def main():
    mode = sys.argv[1] if len(sys.argv) == 2 else ""
    if mode not in ("url", "path", "echo-id", "jcs-args"):
        sys.stderr.write("usage: python3 python_readers.py url|path|echo-id|jcs-args\n")
        sys.exit(2)
    for line in sys.stdin:
        s = json.loads(line)
        if mode == "jcs-args":
            out = jcs_args(s)
        elif mode == "url":
            out = read_url(s)
        elif mode == "echo-id":
            out = echo_id(s)
        else:
            out = {"path": posixpath.normpath(s)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


main()
