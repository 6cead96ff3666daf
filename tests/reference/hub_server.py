"""A tiny Hugging Face hub stand-in for owl pull's tests.

usage: hub_server.py ROOT PORTFILE

Serves the repositories under ROOT/<org>/<name>/ on 127.0.0.1 (a free port,
written to PORTFILE) with the hub's URL layout:

  GET /api/models/<org>/<name>/revision/<rev>   {"sha": ..., "siblings": [...]}
      files of 1000 bytes or more are listed as LFS files with their sha256
  GET /<org>/<name>/resolve/<rev>/<path>        the file, with Range support

ROOT/_control.json may hold {"bad_sha": [paths], "cut_once": [paths],
"evil": true}: a wrong lfs.sha256 for those files, the first whole-file GET
of a path sending half of the bytes and closing, a sibling named
"../../evil". Every request is logged to
ROOT/_log.txt as "METHOD PATH RANGE".

Broken answers, for every request while _control.json says so:
  "api": MODE          the API answer; "files": {path: MODE} a file's
  MODE "500"           HTTP 500 with a JSON error body
       "not_http"      bytes that are not HTTP, then close
       "truncated"     headers for the whole body, half of it, close
       "long_length"   Content-Length 1000 more than the body, then close
       "short_length"  Content-Length half of the body (the rest is dropped)
  API only:
       "not_json"      200 with a text body
       "wrong_shape"   {"sha": 5, "siblings": "all"}
       "bad_sibling"   siblings [5, {"rfilename": 7}]
       "bad_lfs"       each LFS entry's sha256 a number
"""
import hashlib
import http.server
import json
import os
import sys

ROOT = sys.argv[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
cut_done = set()


def control():
    try:
        with open(os.path.join(ROOT, "_control.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


class Hub(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send_json(self, obj, code=200):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_broken(self, mode, body):
        """Sends body broken as mode says; False if mode is not one of these."""
        if mode == "500":
            self.send_json({"error": "Internal Error"}, 500)
        elif mode == "not_http":
            self.wfile.write(b"SSH-2.0-nonsense\r\nthis is not an HTTP answer\r\n\r\n")
            self.close_connection = True
        elif mode in ("truncated", "long_length", "short_length"):
            length = {"truncated": len(body), "long_length": len(body) + 1000,
                      "short_length": len(body) // 2}[mode]
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if mode != "long_length" else body)
            self.wfile.flush()
            self.close_connection = True
        else:
            return False
        return True

    def do_GET(self):
        with open(os.path.join(ROOT, "_log.txt"), "a") as log:
            log.write("GET %s %s\n" % (self.path, self.headers.get("Range", "-")))
        parts = self.path.split("?")[0].strip("/").split("/")
        ctl = control()
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "revision":
            repo = os.path.join(ROOT, parts[2], parts[3])
            if not os.path.isdir(repo) or parts[5] not in ("main", COMMIT):
                return self.send_json({"error": "Repository not found"}, 404)
            sib = []
            for dirpath, _, files in os.walk(repo):
                for name in sorted(files):
                    full = os.path.join(dirpath, name)
                    rel = os.path.relpath(full, repo)
                    data = open(full, "rb").read()
                    entry = {"rfilename": rel}
                    if len(data) >= 1000:
                        sha = hashlib.sha256(data).hexdigest()
                        if rel in ctl.get("bad_sha", []):
                            sha = "0" * 64
                        entry["lfs"] = {"sha256": sha, "size": len(data)}
                    sib.append(entry)
            if ctl.get("evil"):
                sib.append({"rfilename": "../../evil"})
            answer = {"id": parts[2] + "/" + parts[3], "sha": COMMIT, "siblings": sib}
            mode = ctl.get("api")
            if mode == "not_json":
                body = b"<html>Service Unavailable</html>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if mode == "wrong_shape":
                answer = {"sha": 5, "siblings": "all"}
            elif mode == "bad_sibling":
                answer["siblings"] = [5, {"rfilename": 7}]
            elif mode == "bad_lfs":
                for s in sib:
                    if "lfs" in s:
                        s["lfs"]["sha256"] = 12
            if mode and self.send_broken(mode, json.dumps(answer).encode()):
                return
            return self.send_json(answer)
        if len(parts) >= 5 and parts[2] == "resolve":
            full = os.path.join(ROOT, parts[0], parts[1], *parts[4:])
            if not os.path.isfile(full):
                return self.send_json({"error": "Entry not found"}, 404)
            data = open(full, "rb").read()
            rel = "/".join(parts[4:])
            mode = ctl.get("files", {}).get(rel)
            if mode and self.send_broken(mode, data):
                return
            rng = self.headers.get("Range")
            start = 0
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if not rng and rel in ctl.get("cut_once", []) and rel not in cut_done:
                cut_done.add(rel)
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data[start:])
            return
        self.send_json({"error": "not found"}, 404)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
server.serve_forever()
