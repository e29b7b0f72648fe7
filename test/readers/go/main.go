// How Go's standard library reads URL and path arguments, for the differential tests of
// argument constraints (test/argument-url-view.test.ts, test/argument-paths.test.ts).
// One JSON string per input line, one JSON reading per output line, in order.
//
//	go-readers url    net/url.Parse: scheme, host (Hostname, lower-cased), port, user information
//	go-readers path   path.Clean
//	go-readers jcs-args  encoding/json of a tools/call into any, then the RFC 8785 canonical form of
//	                     params.arguments as Go read them (test/approvals-readers.test.ts)
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
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
	if len(os.Args) != 2 || (os.Args[1] != "url" && os.Args[1] != "path" && os.Args[1] != "jcs-args") {
		fmt.Fprintln(os.Stderr, "usage: go-readers url|path|jcs-args  (JSON strings on stdin, one per line)")
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
		if os.Args[1] == "jcs-args" {
			_ = out.Encode(jcsArgs(s))
			continue
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

type jcsReading struct {
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
	Canonical string `json:"canonical,omitempty"`
}

func jcsArgs(body string) jcsReading {
	var msg struct {
		Params struct {
			Arguments any `json:"arguments"`
		} `json:"params"`
	}
	if err := json.Unmarshal([]byte(body), &msg); err != nil {
		return jcsReading{Error: err.Error()}
	}
	args := msg.Params.Arguments
	if args == nil {
		args = map[string]any{}
	}
	var b strings.Builder
	if err := jcs(&b, args); err != nil {
		return jcsReading{Error: err.Error()}
	}
	return jcsReading{OK: true, Canonical: b.String()}
}

func jcs(b *strings.Builder, v any) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case float64:
		s, err := esNumber(x)
		if err != nil {
			return err
		}
		b.WriteString(s)
	case string:
		jcsString(b, x)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := jcs(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		// RFC 8785 orders names by their UTF-16 code units.
		slices.SortFunc(keys, func(a, c string) int { return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(c))) })
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			jcsString(b, k)
			b.WriteByte(':')
			if err := jcs(b, x[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("not JSON: %T", v)
	}
	return nil
}

// esNumber writes a float64 as ECMAScript's Number::toString does.
func esNumber(f float64) (string, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("not finite")
	}
	if f == 0 {
		return "0", nil
	}
	sign := ""
	if f < 0 {
		sign = "-"
		f = -f
	}
	// Shortest digits that read back as f: "d.ddde±x".
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, expText, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expText)
	k, n := len(digits), exp+1
	var out string
	switch {
	case k <= n && n <= 21:
		out = digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		out = digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		out = "0." + strings.Repeat("0", -n) + digits
	default:
		m := digits
		if k > 1 {
			m = digits[:1] + "." + digits[1:]
		}
		sig := "+"
		if n-1 < 0 {
			sig = "-"
		}
		out = m + "e" + sig + strconv.Itoa(int(math.Abs(float64(n-1))))
	}
	return sign + out, nil
}

func jcsString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}
