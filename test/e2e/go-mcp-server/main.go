// A Go MCP server for the end-to-end tests, and Go's own reading of JSON for the
// differential tests of mcp-authz's body reader. Three modes:
//
//	go-mcp-server serve        Streamable HTTP (stateless) MCP server on 127.0.0.1, any path,
//	                           tools "search" and "delete_file". Prints "listening <url>" once
//	                           ready; GET /_calls lists the tools that ran, in order.
//	go-mcp-server fold-table   Every rune whose case-insensitive key matching in encoding/json
//	                           folds it to another rune, as "<rune hex> <folded hex>" lines.
//	go-mcp-server decode       Reads base64 bodies (one per line) and prints, per body, what
//	                           encoding/json reads of the JSON-RPC members a decision uses.
//	go-mcp-server echo-id      Reads JSON-RPC requests (one JSON string per line holding the
//	                           body) and prints, per request, the id an mcp-go server echoes in
//	                           its response: mcp.RequestId read, then written back.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"unicode"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go-mcp-server serve|fold-table|decode|echo-id")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve()
	case "fold-table":
		foldTable()
	case "decode":
		decode()
	case "echo-id":
		echoID()
	default:
		fmt.Fprintf(os.Stderr, "go-mcp-server: unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
}

func serve() {
	var mu sync.Mutex
	calls := []string{}
	record := func(name string) server.ToolHandlerFunc {
		return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			mu.Lock()
			calls = append(calls, name)
			mu.Unlock()
			fmt.Printf("ran %s\n", name)
			return mcp.NewToolResultText(name + " ran"), nil
		}
	}
	s := server.NewMCPServer("go-e2e", "1.0.0", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("search", mcp.WithDescription("Search files"), mcp.WithString("query")), record("search"))
	s.AddTool(mcp.NewTool("delete_file", mcp.WithDescription("Delete a file"), mcp.WithString("path")), record("delete_file"))
	mcpHandler := server.NewStreamableHTTPServer(s, server.WithStateLess(true))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /_calls", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("content-type", "application/json")
		_ = json.NewEncoder(w).Encode(calls)
	})
	mux.Handle("/", mcpHandler)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening http://%s\n", ln.Addr())
	srv := &http.Server{Handler: mux}
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// foldRune is the rune encoding/json compares keys by: the smallest of its SimpleFold orbit.
func foldRune(r rune) rune {
	for {
		next := unicode.SimpleFold(r)
		if next <= r {
			return next
		}
		r = next
	}
}

func foldTable() {
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xd800 && r <= 0xdfff {
			continue
		}
		if f := foldRune(r); f != r {
			fmt.Fprintf(w, "%x %x\n", r, f)
		}
	}
}

// The members are json.RawMessage: encoding/json picks the field for each key (exact name,
// else case-insensitive), the last key for a field wins, and the value is kept as sent.
type message struct {
	JSONRPC json.RawMessage `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  json.RawMessage `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

type params struct {
	Name json.RawMessage `json:"name"`
	URI  json.RawMessage `json:"uri"`
	Ref  json.RawMessage `json:"ref"`
}

type ref struct {
	Type json.RawMessage `json:"type"`
	Name json.RawMessage `json:"name"`
	URI  json.RawMessage `json:"uri"`
}

type call struct {
	Kind   string      `json:"kind"`
	Method *string     `json:"method,omitempty"`
	Name   *string     `json:"name,omitempty"`
	URI    *string     `json:"uri,omitempty"`
	Ref    *refReading `json:"ref,omitempty"`
}

type refReading struct {
	Type *string `json:"type,omitempty"`
	Name *string `json:"name,omitempty"`
	URI  *string `json:"uri,omitempty"`
}

type reading struct {
	OK    bool   `json:"ok"`
	Batch bool   `json:"batch"`
	Calls []call `json:"calls,omitempty"`
	Error string `json:"error,omitempty"`
}

func decode() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		body, err := base64.StdEncoding.DecodeString(in.Text())
		if err != nil {
			_ = out.Encode(reading{Error: err.Error()})
			continue
		}
		_ = out.Encode(read(body))
	}
}

func read(body []byte) reading {
	var elements []json.RawMessage
	batch := false
	for _, b := range body {
		if b == ' ' || b == '\t' || b == '\n' || b == '\r' {
			continue
		}
		batch = b == '['
		break
	}
	if batch {
		if err := json.Unmarshal(body, &elements); err != nil {
			return reading{Error: err.Error()}
		}
	} else {
		if !json.Valid(body) {
			return reading{Error: "invalid JSON"}
		}
		elements = []json.RawMessage{body}
	}
	r := reading{OK: true, Batch: batch}
	for _, e := range elements {
		r.Calls = append(r.Calls, readCall(e))
	}
	return r
}

func readCall(raw json.RawMessage) call {
	var m message
	if json.Unmarshal(raw, &m) != nil {
		return call{Kind: "invalid"}
	}
	c := call{Method: str(m.Method)}
	var p params
	if isObject(m.Params) && json.Unmarshal(m.Params, &p) == nil {
		c.Name = str(p.Name)
		c.URI = str(p.URI)
		var rf ref
		if isObject(p.Ref) && json.Unmarshal(p.Ref, &rf) == nil {
			c.Ref = &refReading{Type: str(rf.Type), Name: str(rf.Name), URI: str(rf.URI)}
		}
	}
	// As mcp-go dispatches: an id with a result is a response even beside a method.
	method := c.Method != nil && *c.Method != ""
	switch {
	case present(m.ID) && present(m.Result):
		c.Kind = "response"
	case method && present(m.ID):
		c.Kind = "request"
	case method:
		c.Kind = "notification"
	case present(m.Result) || present(m.Error):
		c.Kind = "response"
	default:
		c.Kind = "invalid"
	}
	return c
}

// present: a member sent with a value other than null (an `any` field reads null as nil).
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

func isObject(raw json.RawMessage) bool {
	return len(raw) > 0 && raw[0] == '{'
}

// str: the member's string value as encoding/json decodes it, or nil when it is not a string.
func str(raw json.RawMessage) *string {
	if len(raw) == 0 || raw[0] != '"' {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil
	}
	return &s
}

// echoed: the id as mcp-go writes it back (its JSON text), or why mcp-go could not read it.
type echoed struct {
	OK    bool   `json:"ok"`
	Echo  string `json:"echo,omitempty"`
	Error string `json:"error,omitempty"`
}

func echoID() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var body string
		if err := json.Unmarshal(in.Bytes(), &body); err != nil {
			fmt.Fprintln(os.Stderr, "go-mcp-server: input line is not a JSON string:", err)
			os.Exit(1)
		}
		var req struct {
			ID mcp.RequestId `json:"id"`
		}
		if err := json.Unmarshal([]byte(body), &req); err != nil {
			_ = out.Encode(echoed{Error: err.Error()})
			continue
		}
		id, err := json.Marshal(req.ID)
		if err != nil {
			_ = out.Encode(echoed{Error: err.Error()})
			continue
		}
		_ = out.Encode(echoed{OK: true, Echo: string(id)})
	}
}
