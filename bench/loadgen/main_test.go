package main

// The generator against an HTTP/2 server on loopback that closes connections the ways servers
// do: GOAWAY with a last stream id below calls in flight (those were not processed and must be
// sent again, the rest answered), the two-step graceful GOAWAY of node:http2 and gRPC servers,
// REFUSED_STREAM, GOAWAY with an error code, a connection cut with calls in flight (a failure:
// never sent again), and stream ids running out. The server counts every call it processed, by
// message: each must be processed exactly as often as the generator says it was sent.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const (
	messages = 7
	rounds   = 30
	streams  = 4
)

// testServer accepts connections and runs script on each, with the connection's index in
// accept order.
type testServer struct {
	t      *testing.T
	ln     net.Listener
	script func(sc *serverConn, index int) error

	maxID uint32 // a stream id above it is a violation (0: none)

	mu         sync.Mutex
	accepted   int
	processed  map[int]int // calls answered, by message index
	violations []string
	conns      []net.Conn
	wg         sync.WaitGroup
}

func startServer(t *testing.T, script func(sc *serverConn, index int) error) *testServer {
	t.Helper()
	return startServerMaxID(t, 0, script)
}

func startServerMaxID(t *testing.T, maxID uint32, script func(sc *serverConn, index int) error) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, ln: ln, script: script, maxID: maxID, processed: map[int]int{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		index := s.accepted
		s.accepted++
		s.conns = append(s.conns, nc)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer nc.Close()
			sc, err := newServerConn(s, nc)
			if err == nil {
				err = s.script(sc, index)
			}
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) &&
				!errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
				s.violation(fmt.Sprintf("connection %d: %v", index, err))
			}
		}()
	}
}

func (s *testServer) stop() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *testServer) violation(v string) {
	s.mu.Lock()
	s.violations = append(s.violations, v)
	s.mu.Unlock()
}

type request struct {
	id  uint32
	msg int
}

// serverConn is one connection's server side, driven by a script in one goroutine.
type serverConn struct {
	s        *testServer
	nc       net.Conn
	bw       *bufio.Writer
	fr       *http2.Framer
	hbuf     strings.Builder
	enc      *hpack.Encoder
	bodies   map[uint32][]byte
	queue    []request // calls received whole, not yet taken by the script
	goAway   bool      // the server sent GOAWAY: a new stream from the client is a violation
	pingAck  bool
	clientGA bool // the client sent GOAWAY
}

func newServerConn(s *testServer, nc net.Conn) (*serverConn, error) {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(nc, preface); err != nil {
		return nil, err
	}
	if string(preface) != http2.ClientPreface {
		return nil, errors.New("no client preface")
	}
	sc := &serverConn{s: s, nc: nc, bw: bufio.NewWriter(nc), bodies: map[uint32][]byte{}}
	sc.fr = http2.NewFramer(sc.bw, bufio.NewReader(nc))
	sc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	sc.enc = hpack.NewEncoder(&sc.hbuf)
	if err := sc.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100}); err != nil {
		return nil, err
	}
	return sc, sc.bw.Flush()
}

// readFrame reads and handles one frame; a whole call joins the queue.
func (sc *serverConn) readFrame() error {
	f, err := sc.fr.ReadFrame()
	if err != nil {
		return err
	}
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if !f.IsAck() {
			if err := sc.fr.WriteSettingsAck(); err != nil {
				return err
			}
			return sc.bw.Flush()
		}
	case *http2.PingFrame:
		if f.IsAck() {
			sc.pingAck = true
			return nil
		}
		if err := sc.fr.WritePing(true, f.Data); err != nil {
			return err
		}
		return sc.bw.Flush()
	case *http2.MetaHeadersFrame:
		if sc.goAway {
			sc.s.violation(fmt.Sprintf("stream %d opened after the server's GOAWAY", f.StreamID))
		}
		if sc.s.maxID > 0 && f.StreamID > sc.s.maxID {
			sc.s.violation(fmt.Sprintf("stream %d is over the largest stream id", f.StreamID))
		}
		sc.bodies[f.StreamID] = nil
	case *http2.DataFrame:
		id := f.StreamID
		sc.bodies[id] = append(sc.bodies[id], f.Data()...)
		if n := len(f.Data()); n > 0 {
			if err := sc.fr.WriteWindowUpdate(0, uint32(n)); err != nil {
				return err
			}
			if err := sc.bw.Flush(); err != nil {
				return err
			}
		}
		if f.StreamEnded() {
			body := sc.bodies[id]
			delete(sc.bodies, id)
			msg, err := strconv.Atoi(strings.TrimPrefix(string(body[min(5, len(body)):]), "message-"))
			if err != nil {
				return fmt.Errorf("stream %d: body %q", id, body)
			}
			sc.queue = append(sc.queue, request{id: id, msg: msg})
		}
	case *http2.GoAwayFrame:
		sc.clientGA = true
	}
	return nil
}

// next returns the next whole call.
func (sc *serverConn) next() (request, error) {
	for len(sc.queue) == 0 {
		if err := sc.readFrame(); err != nil {
			return request{}, err
		}
	}
	r := sc.queue[0]
	sc.queue = sc.queue[1:]
	return r, nil
}

// nextN returns the next n whole calls, received before any is answered.
func (sc *serverConn) nextN(n int) ([]request, error) {
	out := make([]request, 0, n)
	for range n {
		r, err := sc.next()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// answer processes a call: counts it and answers with its message index as the
// CheckResponse's status.code.
func (sc *serverConn) answer(r request) error {
	sc.s.mu.Lock()
	sc.s.processed[r.msg]++
	sc.s.mu.Unlock()
	head := sc.block(hpack.HeaderField{Name: ":status", Value: "200"}, hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
	if err := sc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: r.id, BlockFragment: head, EndHeaders: true}); err != nil {
		return err
	}
	msg := []byte{0x0a, 0x02, 0x08, byte(r.msg)} // status { code: msg }
	frame := append([]byte{0, 0, 0, 0, byte(len(msg))}, msg...)
	if err := sc.fr.WriteData(r.id, false, frame); err != nil {
		return err
	}
	trailers := sc.block(hpack.HeaderField{Name: "grpc-status", Value: "0"})
	if err := sc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: r.id, BlockFragment: trailers, EndHeaders: true, EndStream: true}); err != nil {
		return err
	}
	return sc.bw.Flush()
}

func (sc *serverConn) block(fields ...hpack.HeaderField) []byte {
	sc.hbuf.Reset()
	for _, f := range fields {
		_ = sc.enc.WriteField(f)
	}
	return []byte(sc.hbuf.String())
}

func (sc *serverConn) sendGoAway(last uint32, code http2.ErrCode, debug string) error {
	sc.goAway = true
	if err := sc.fr.WriteGoAway(last, code, []byte(debug)); err != nil {
		return err
	}
	return sc.bw.Flush()
}

// roundTrip sends a PING and reads until its ACK: the client has read everything before it.
func (sc *serverConn) roundTrip() error {
	sc.pingAck = false
	if err := sc.fr.WritePing(false, [8]byte{1}); err != nil {
		return err
	}
	if err := sc.bw.Flush(); err != nil {
		return err
	}
	for !sc.pingAck {
		if err := sc.readFrame(); err != nil {
			return err
		}
	}
	return nil
}

// untilClientCloses reads until the client ends the connection; it must have sent GOAWAY.
func (sc *serverConn) untilClientCloses() error {
	for {
		if err := sc.readFrame(); err != nil {
			if !sc.clientGA {
				sc.s.violation("the client closed the connection without GOAWAY")
			}
			return err
		}
	}
}

// closeWrite ends the server's side of the connection (FIN), then reads until the client's end.
func (sc *serverConn) closeWrite() error {
	if err := sc.bw.Flush(); err != nil {
		return err
	}
	if err := sc.nc.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, sc.nc)
	return err
}

// serve answers every call until the connection ends.
func (sc *serverConn) serve() error {
	for {
		r, err := sc.next()
		if err != nil {
			return err
		}
		if err := sc.answer(r); err != nil {
			return err
		}
	}
}

// warmUp answers k calls, then returns the next `streams` calls, all in flight at once.
func (sc *serverConn) warmUp(k int) ([]request, error) {
	for range k {
		r, err := sc.next()
		if err != nil {
			return nil, err
		}
		if err := sc.answer(r); err != nil {
			return nil, err
		}
	}
	return sc.nextN(streams)
}

// runLoadgen runs the generator against the server: `connections` connections, `streams`
// calls in flight on each, each message sent `rounds` times. Nothing is timed: the timeout
// only ends a run that would otherwise never end.
//
// The scripts that hold calls to close a connection under them run on one connection slot:
// its worker alone draws from the calls, so it always has `streams` in flight for the script
// to hold (with two, one worker may take every call before the other's script has its four).
// They do so on its first two connections, one after the other.
func runLoadgen(t *testing.T, s *testServer, connections int) *Result {
	t.Helper()
	frames := make([][]byte, messages)
	for i := range frames {
		msg := fmt.Sprintf("message-%d", i)
		frames[i] = append([]byte{0, 0, 0, 0, byte(len(msg))}, msg...)
	}
	o := options{
		target:      s.ln.Addr().String(),
		path:        "/envoy.service.auth.v3.Authorization/Check",
		connections: connections,
		streams:     streams,
		requests:    messages * rounds,
		timeout:     60 * time.Second,
		lateAfter:   time.Hour,
	}
	r, err := run(o, frames)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func eachMessage(n int) map[int]int {
	m := map[int]int{}
	for i := range messages {
		m[i] = n
	}
	return m
}

func eachCode(n int) map[string]int {
	m := map[string]int{}
	for i := range messages {
		m[strconv.Itoa(i)] = n
	}
	return m
}

// wholeRun checks a run in which every call was answered once: nothing lost, nothing twice.
func wholeRun(t *testing.T, s *testServer, r *Result) {
	t.Helper()
	n := int64(messages * rounds)
	if r.Done != n || r.Succeeded != n || r.Errored != 0 || r.Timeout != 0 || r.Failed != 0 {
		t.Errorf("done %d succeeded %d errored %d timeout %d failed %d; want %d answered", r.Done, r.Succeeded, r.Errored, r.Timeout, r.Failed, n)
	}
	if len(r.ErrorSamples) != 0 {
		t.Errorf("error samples %q", r.ErrorSamples)
	}
	want := make([]int64, messages)
	for i := range want {
		want[i] = rounds
	}
	if !reflect.DeepEqual(r.SentPerMessage, want) {
		t.Errorf("sent per message %v, want %v", r.SentPerMessage, want)
	}
	// Each answer belongs to its own call: the server answered message i with code i.
	if !reflect.DeepEqual(r.CheckCodes, eachCode(rounds)) {
		t.Errorf("check codes %v, want %v", r.CheckCodes, eachCode(rounds))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !reflect.DeepEqual(s.processed, eachMessage(rounds)) {
		t.Errorf("the server processed %v, want each message %d times", s.processed, rounds)
	}
	if len(s.violations) != 0 {
		t.Errorf("server saw: %q", s.violations)
	}
}

func TestNoGoAwayEveryCallAnsweredOnce(t *testing.T) {
	s := startServer(t, func(sc *serverConn, _ int) error { return sc.serve() })
	r := runLoadgen(t, s, 2)
	wholeRun(t, s, r)
	if r.Resent != 0 || r.ConnectionsOpened != 2 || len(r.GoAways) != 0 {
		t.Errorf("resent %d, connections %d, GOAWAYs %v", r.Resent, r.ConnectionsOpened, r.GoAways)
	}
}

// GOAWAY NO_ERROR whose last stream id is below two of the four calls in flight: the two at or
// below it are answered there, the two above are sent again on a new connection, and the
// client opens no stream on the old one.
func TestGoAwayBelowCallsInFlight(t *testing.T) {
	s := startServer(t, func(sc *serverConn, index int) error {
		if index >= 2 {
			return sc.serve()
		}
		held, err := sc.warmUp(5)
		if err != nil {
			return err
		}
		if err := sc.sendGoAway(held[1].id, http2.ErrCodeNo, ""); err != nil {
			return err
		}
		for _, r := range held[:2] {
			if err := sc.answer(r); err != nil {
				return err
			}
		}
		return sc.untilClientCloses()
	})
	r := runLoadgen(t, s, 1)
	wholeRun(t, s, r)
	if r.Resent != 4 || r.ConnectionsOpened != 3 || !reflect.DeepEqual(r.GoAways, map[string]int{"NO_ERROR": 2}) {
		t.Errorf("resent %d (want 4), connections %d (want 3), GOAWAYs %v (want NO_ERROR: 2)", r.Resent, r.ConnectionsOpened, r.GoAways)
	}
}

// The graceful close of node:http2's session.close() and gRPC servers: GOAWAY with the largest
// stream id (no new stream, please), a round trip, then GOAWAY with the last stream processed;
// the server closes the connection once the calls at or below it are answered.
func TestTwoStepGracefulGoAwayThenServerCloses(t *testing.T) {
	s := startServer(t, func(sc *serverConn, index int) error {
		if index >= 2 {
			return sc.serve()
		}
		held, err := sc.warmUp(3)
		if err != nil {
			return err
		}
		if err := sc.sendGoAway(maxStreamID, http2.ErrCodeNo, ""); err != nil {
			return err
		}
		if err := sc.roundTrip(); err != nil {
			return err
		}
		// A slot frees: the call that takes it must go to a new connection.
		if err := sc.answer(held[0]); err != nil {
			return err
		}
		if err := sc.sendGoAway(held[1].id, http2.ErrCodeNo, ""); err != nil {
			return err
		}
		if err := sc.answer(held[1]); err != nil {
			return err
		}
		return sc.closeWrite()
	})
	r := runLoadgen(t, s, 1)
	wholeRun(t, s, r)
	if r.Resent != 4 || r.ConnectionsOpened != 3 || !reflect.DeepEqual(r.GoAways, map[string]int{"NO_ERROR": 4}) {
		t.Errorf("resent %d (want 4), connections %d (want 3), GOAWAYs %v (want NO_ERROR: 4)", r.Resent, r.ConnectionsOpened, r.GoAways)
	}
}

// RST_STREAM REFUSED_STREAM: the call was not processed and is sent again.
func TestRefusedStreamIsSentAgain(t *testing.T) {
	var refused sync.Map
	s := startServer(t, func(sc *serverConn, index int) error {
		for k := 0; ; k++ {
			r, err := sc.next()
			if err != nil {
				return err
			}
			if k%10 == 3 {
				refused.Store(fmt.Sprint(index, r.id), true)
				if err := sc.fr.WriteRSTStream(r.id, http2.ErrCodeRefusedStream); err != nil {
					return err
				}
				if err := sc.bw.Flush(); err != nil {
					return err
				}
				continue
			}
			if err := sc.answer(r); err != nil {
				return err
			}
		}
	})
	r := runLoadgen(t, s, 2)
	wholeRun(t, s, r)
	var n int64
	refused.Range(func(_, _ any) bool { n++; return true })
	if n == 0 || r.Resent != n || r.ConnectionsOpened != 2 {
		t.Errorf("refused %d, resent %d, connections %d (want 2)", n, r.Resent, r.ConnectionsOpened)
	}
}

// GOAWAY with an error code: the calls above its last stream are still sent again (they were
// not processed), and the error is reported.
func TestGoAwayWithErrorIsReported(t *testing.T) {
	s := startServer(t, func(sc *serverConn, index int) error {
		if index >= 2 {
			return sc.serve()
		}
		held, err := sc.warmUp(5)
		if err != nil {
			return err
		}
		if err := sc.sendGoAway(held[1].id, http2.ErrCodeEnhanceYourCalm, "too_many_pings"); err != nil {
			return err
		}
		for _, r := range held[:2] {
			if err := sc.answer(r); err != nil {
				return err
			}
		}
		return sc.untilClientCloses()
	})
	r := runLoadgen(t, s, 1)
	n := int64(messages * rounds)
	if r.Done != n || r.Succeeded != n || r.Errored != 0 || r.Resent != 4 {
		t.Errorf("done %d succeeded %d errored %d resent %d; want %d answered, 4 sent again", r.Done, r.Succeeded, r.Errored, r.Resent, n)
	}
	want := []string{`GOAWAY ENHANCE_YOUR_CALM "too_many_pings"`, `GOAWAY ENHANCE_YOUR_CALM "too_many_pings"`}
	if !reflect.DeepEqual(r.ErrorSamples, want) || !reflect.DeepEqual(r.GoAways, map[string]int{"ENHANCE_YOUR_CALM": 2}) {
		t.Errorf("error samples %q, GOAWAYs %v", r.ErrorSamples, r.GoAways)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !reflect.DeepEqual(s.processed, eachMessage(rounds)) {
		t.Errorf("the server processed %v, want each message %d times", s.processed, rounds)
	}
}

// A connection cut with calls in flight and no GOAWAY is a failure: those calls may have been
// processed, so they are errored, never sent again; the run goes on on a new connection.
func TestConnectionCutWithCallsInFlightIsAnError(t *testing.T) {
	s := startServer(t, func(sc *serverConn, index int) error {
		if index >= 2 {
			return sc.serve()
		}
		_, err := sc.warmUp(5)
		return err // and the deferred close, with `streams` calls unanswered
	})
	r := runLoadgen(t, s, 1)
	n := int64(messages * rounds)
	cut := int64(2 * streams)
	if r.Errored != cut || r.Done != n-cut || r.Succeeded != n-cut || r.Resent != 0 || r.ConnectionsOpened != 3 {
		t.Errorf("errored %d (want %d), done %d succeeded %d (want %d), resent %d, connections %d", r.Errored, cut, r.Done, r.Succeeded, n-cut, r.Resent, r.ConnectionsOpened)
	}
	if len(r.ErrorSamples) != 2 || !strings.Contains(r.ErrorSamples[0], "4 calls unanswered") {
		t.Errorf("error samples %q", r.ErrorSamples)
	}
	var processed int64
	s.mu.Lock()
	for _, v := range s.processed {
		processed += int64(v)
	}
	s.mu.Unlock()
	if processed != n-cut {
		t.Errorf("the server processed %d calls, want %d", processed, n-cut)
	}
}

// Stream ids run out: the generator moves to a new connection itself, with no call lost.
func TestStreamIDsSpentOpenANewConnection(t *testing.T) {
	defer func(v uint32) { maxStreamID = v }(maxStreamID)
	maxStreamID = 21 // 11 streams per connection
	s := startServerMaxID(t, 21, func(sc *serverConn, _ int) error { return sc.serve() })
	r := runLoadgen(t, s, 2)
	wholeRun(t, s, r)
	// Each connection takes at most 11 calls: at least 210 / 11 connections.
	if r.ConnectionsOpened < (messages*rounds+10)/11 || r.Resent != 0 {
		t.Errorf("connections %d, resent %d", r.ConnectionsOpened, r.Resent)
	}
}
