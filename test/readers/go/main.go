// How Go's standard library reads URL and path arguments, for the differential tests of
// argument constraints (test/argument-url-view.test.ts, test/argument-paths.test.ts).
// One JSON string per input line, one JSON reading per output line, in order.
//
//	go-readers url    net/url.Parse: scheme, host (Hostname, lower-cased), port, user information
//	go-readers path   path.Clean
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"
)

type urlReading struct {
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Scheme string `json:"scheme,omitempty"`
	Host   string `json:"host,omitempty"`
	Port   string `json:"port,omitempty"`
	User   bool   `json:"user,omitempty"`
}

type pathReading struct {
	Path string `json:"path"`
}

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "url" && os.Args[1] != "path") {
		fmt.Fprintln(os.Stderr, "usage: go-readers url|path  (JSON strings on stdin, one per line)")
		os.Exit(2)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var s string
		if err := json.Unmarshal(in.Bytes(), &s); err != nil {
			fmt.Fprintln(os.Stderr, "go-readers: input line is not a JSON string:", err)
			os.Exit(1)
		}
		if os.Args[1] == "path" {
			_ = out.Encode(pathReading{Path: path.Clean(s)})
			continue
		}
		u, err := url.Parse(s)
		if err != nil {
			_ = out.Encode(urlReading{Error: err.Error()})
			continue
		}
		_ = out.Encode(urlReading{OK: true, Scheme: u.Scheme, Host: strings.ToLower(u.Hostname()), Port: u.Port(), User: u.User != nil})
	}
}
