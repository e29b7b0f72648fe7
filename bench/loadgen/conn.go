package main

// A worker keeps -m calls in flight on one connection at a time, as an HTTP/2 client must
// when a server closes connections (RFC 9113 §6.8, §8.7):
//   - GOAWAY: no new stream on that connection. Streams at or below its last stream id
//     were or will be processed and are answered there; streams above it were not, and are
//     sent again on a new connection (so are streams refused with RST_STREAM
//     REFUSED_STREAM). A later GOAWAY on the same connection may lower the last stream id
//     (a graceful server first sends 2^31-1, then the last stream it took). NO_ERROR is no
//     error; another code is reported, and what it cut short is counted as errored.
//   - The connection closed with calls at or below the last stream id unanswered, or
//     closed with no GOAWAY at all, is a failure: those calls may have been processed, so
//     they are counted as errored, never sent again.
//   - Stream ids run out at 2^31-1: the worker moves to a new connection itself.
// The GOAWAY a server sends in answer to the generator's own at the end is not news.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const ourWindow = 1 << 30

// maxStreamID is the largest client stream id (a variable only for the tests).
var maxStreamID uint32 = 1<<31 - 1

// call is one request: its message, and when it was first sent (ns since the run's start;
// -1 before). A call sent again keeps its first start: its latency is what its caller waited.
type call struct {
	msg   int
	start int64
}

// pending is one call in flight on a connection.
type pending struct {
	call
	status  int // :status of the response headers
	grpc    int // grpc-status, -1 until the trailers
	check   int // the CheckResponse's status.code, -1 unread
	gotData bool
}

type worker struct {
	o            options
	s            *shared
	t0           time.Time
	headerBlocks [2][]byte // the first request's block on a connection, then every later one's

	cur     *conn // the connection new calls go to (the writer's)
	readers sync.WaitGroup

	mu       sync.Mutex
	conns    []*conn
	again    []call // calls the server did not process, to send again
	inflight int    // calls in flight on all of this worker's connections
	stopped  bool   // no connection can be opened: calls still due are errored
	wake     chan struct{}

	// Results.
	latUs    []uint32
	done     int64
	ok       int64
	failed   int64
	errored  int64
	timedOut int64
	resent   int64
	opened   int
	status   map[int]int
	grpc     map[int]int
	check    map[int]int
	goAways  map[string]int
	samples  []string
	lastEnd  time.Time
}

func newWorker(o options, s *shared, blocks [2][]byte) *worker {
	return &worker{
		o: o, s: s, headerBlocks: blocks,
		wake:    make(chan struct{}, 1),
		status:  map[int]int{},
		grpc:    map[int]int{},
		check:   map[int]int{},
		goAways: map[string]int{},
	}
}

func (w *worker) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) sample(s string) {
	if len(w.samples) < 5 {
		w.samples = append(w.samples, s)
	}
}

// run sends calls until the run is over and every call is answered, or the timeout passes.
func (w *worker) run(t0 time.Time) {
	w.t0 = t0
	w.startReader(w.cur)
	var deadline <-chan time.Time // the end of sending, for a run of a duration
	if w.s.limit == 0 {
		deadline = time.After(time.Until(w.s.deadline))
	}
	// Once nothing is left to send: when the answers still due count as timed out.
	var giveUp *time.Timer
	exhausted := false
	var batch []call
	var written []*conn
	for {
		now := time.Now()
		if !exhausted && w.s.over(now) {
			exhausted = true
		}
		w.mu.Lock()
		batch = batch[:0]
		for w.inflight+len(batch) < w.o.streams {
			if len(w.again) > 0 {
				batch = append(batch, w.again[0])
				w.again = w.again[1:]
				continue
			}
			if exhausted || w.stopped {
				break
			}
			m := w.s.take(now)
			if m < 0 {
				exhausted = true
				break
			}
			batch = append(batch, call{msg: m, start: -1})
		}
		stopped := w.stopped
		if stopped && len(batch) > 0 {
			w.errored += int64(len(batch))
			batch = batch[:0]
		}
		w.inflight += len(batch)
		left := w.inflight
		w.mu.Unlock()

		if len(batch) > 0 {
			if giveUp != nil {
				giveUp.Stop()
				giveUp = nil
			}
			written = w.send(batch, written[:0])
			for _, c := range written {
				c.flush()
			}
			continue
		}
		if exhausted || stopped {
			if left == 0 {
				break
			}
			if giveUp == nil {
				giveUp = time.NewTimer(w.o.timeout)
			}
			select {
			case <-w.wake:
				continue
			case <-giveUp.C:
			}
			break
		}
		// Every slot taken: wait for an answer, a call to send again, or the end of sending.
		select {
		case <-w.wake:
		case <-deadline:
		}
	}
	// Over: end every connection still open; what is still unanswered (or still waiting to
	// be sent again) timed out.
	w.mu.Lock()
	conns := append([]*conn(nil), w.conns...)
	w.timedOut += int64(len(w.again))
	w.again = nil
	w.mu.Unlock()
	var left int
	for _, c := range conns {
		left += c.retire()
	}
	w.readers.Wait()
	w.mu.Lock()
	w.timedOut += int64(left)
	w.inflight -= left
	w.mu.Unlock()
}

// send writes each call on the current connection, opening a new one when the server has
// closed it (or its stream ids are spent). It returns the connections written to.
func (w *worker) send(batch []call, written []*conn) []*conn {
	for i := 0; i < len(batch); {
		r := batch[i]
		frame := w.s.frames[r.msg]
		c := w.cur
		if !c.usable() {
			n, err := w.dial()
			if err != nil {
				w.mu.Lock()
				w.stopped = true
				w.sample(err.Error())
				rest := len(batch) - i + len(w.again)
				w.errored += int64(rest)
				w.inflight -= rest
				w.again = nil
				w.mu.Unlock()
				return written
			}
			w.cur = n
			w.startReader(n)
			c = n
		}
		if len(frame) > c.maxFrame {
			// A request no server frame can carry: this call fails, the connection is fine.
			w.mu.Lock()
			w.errored++
			w.inflight--
			w.sample(fmt.Sprintf("a request of %d bytes is over the server's frame size %d", len(frame), c.maxFrame))
			w.mu.Unlock()
			i++
			continue
		}
		if !c.send(r, frame) {
			continue // the connection is going away: the same call, on a new one
		}
		if len(written) == 0 || written[len(written)-1] != c {
			written = append(written, c)
		}
		i++
	}
	return written
}

// dial opens a connection and reads the server's SETTINGS (its stream limit and frame size
// bound what is sent).
func (w *worker) dial() (*conn, error) {
	o := w.o
	nc, err := net.DialTimeout("tcp", o.target, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	c := &conn{
		w:          w,
		nc:         nc,
		bw:         bufio.NewWriterSize(nc, 64<<10),
		first:      true,
		streams:    make(map[uint32]*pending, o.streams),
		sendWindow: 65535,
		maxStreams: o.streams,
		maxFrame:   16384,
		nextID:     1,
	}
	c.cond = sync.NewCond(&c.mu)
	c.fr = http2.NewFramer(c.bw, bufio.NewReaderSize(nc, 64<<10))
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 1 << 20
	fail := func(err error) (*conn, error) {
		nc.Close()
		return nil, err
	}
	if _, err := c.bw.WriteString(http2.ClientPreface); err != nil {
		return fail(err)
	}
	if err := c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: ourWindow},
		http2.Setting{ID: http2.SettingHeaderTableSize, Val: 4096},
	); err != nil {
		return fail(err)
	}
	if err := c.fr.WriteWindowUpdate(0, ourWindow-65535); err != nil {
		return fail(err)
	}
	if err := c.bw.Flush(); err != nil {
		return fail(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return fail(fmt.Errorf("%s: no HTTP/2 SETTINGS from the server: %w", o.target, err))
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			c.applySettings(sf)
			if err := c.fr.WriteSettingsAck(); err != nil {
				return fail(err)
			}
			if err := c.bw.Flush(); err != nil {
				return fail(err)
			}
			break
		}
		c.control(f)
	}
	_ = nc.SetReadDeadline(time.Time{})
	w.mu.Lock()
	w.conns = append(w.conns, c)
	w.opened++
	w.mu.Unlock()
	return c, nil
}

func (w *worker) startReader(c *conn) {
	w.readers.Add(1)
	go func() {
		defer w.readers.Done()
		c.read()
	}()
}

// sendAgain queues calls the server did not process.
func (w *worker) sendAgain(calls []call) {
	if len(calls) == 0 {
		return
	}
	w.mu.Lock()
	w.again = append(w.again, calls...)
	w.inflight -= len(calls)
	w.resent += int64(len(calls))
	w.mu.Unlock()
	w.signal()
}

// erroredCalls counts calls that failed with no answer.
func (w *worker) erroredCalls(n int, why string) {
	w.mu.Lock()
	w.errored += int64(n)
	w.inflight -= n
	w.sample(why)
	w.mu.Unlock()
	w.signal()
}

// answered records a finished answer and frees its slot.
func (w *worker) answered(id uint32, p pending) {
	now := time.Now()
	lat := (int64(now.Sub(w.t0)) - p.start) / 1000
	w.mu.Lock()
	w.inflight--
	w.latUs = append(w.latUs, uint32(min(lat, 1<<32-1)))
	w.done++
	w.status[p.status/100]++
	w.grpc[p.grpc]++
	w.check[p.check]++
	if p.status == 200 && p.grpc == 0 {
		w.ok++
	} else {
		w.failed++
		w.sample(fmt.Sprintf("stream %d: :status %d grpc-status %d", id, p.status, p.grpc))
	}
	w.lastEnd = now
	w.mu.Unlock()
	w.signal()
}

type conn struct {
	w   *worker
	nc  net.Conn
	bw  *bufio.Writer
	fr  *http2.Framer
	wmu sync.Mutex // the framer's writes (requests, SETTINGS/PING acks, WINDOW_UPDATEs, GOAWAY)

	first bool // no request written yet (the writer's)

	mu         sync.Mutex
	cond       *sync.Cond
	streams    map[uint32]*pending
	free       []*pending
	sendWindow int64 // the connection's send window (the server's receive window for us)
	maxStreams int
	maxFrame   int
	nextID     uint32
	goingAway  bool // no new stream: the server sent GOAWAY, or the stream ids are spent
	closed     bool // ended, by the generator or by a failure

	unacked int // received DATA bytes not yet returned with a WINDOW_UPDATE (the reader's)
}

func (c *conn) usable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed && !c.goingAway
}

// send writes one call's HEADERS and DATA (unflushed). false: nothing was sent, the
// connection takes no new stream.
func (c *conn) send(r call, frame []byte) bool {
	c.mu.Lock()
	for !c.closed && !c.goingAway && (c.sendWindow < int64(len(frame)) || len(c.streams) >= c.maxStreams) {
		c.cond.Wait()
	}
	if !c.closed && !c.goingAway && c.nextID > maxStreamID {
		c.goingAway = true
		if len(c.streams) == 0 {
			c.mu.Unlock()
			c.retire()
			return false
		}
	}
	if c.closed || c.goingAway {
		c.mu.Unlock()
		return false
	}
	id := c.nextID
	c.nextID += 2
	c.sendWindow -= int64(len(frame))
	var p *pending
	if n := len(c.free); n > 0 {
		p, c.free = c.free[n-1], c.free[:n-1]
	} else {
		p = new(pending)
	}
	*p = pending{call: r, grpc: -1, check: -1}
	if p.start < 0 {
		p.start = int64(time.Since(c.w.t0))
	}
	c.streams[id] = p
	c.mu.Unlock()
	block := c.w.headerBlocks[1]
	if c.first {
		block, c.first = c.w.headerBlocks[0], false
	}
	c.wmu.Lock()
	err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true})
	if err == nil {
		err = c.fr.WriteData(id, true, frame)
	}
	c.wmu.Unlock()
	if err != nil {
		c.lost(err)
	}
	return true
}

func (c *conn) flush() {
	c.wmu.Lock()
	err := c.bw.Flush()
	c.wmu.Unlock()
	if err != nil {
		c.lost(err)
	}
}

// take removes a stream's call, if it is still in flight.
func (c *conn) take(id uint32) (pending, bool) {
	c.mu.Lock()
	p := c.streams[id]
	if p == nil {
		c.mu.Unlock()
		return pending{}, false
	}
	delete(c.streams, id)
	v := *p
	c.free = append(c.free, p)
	drained := c.goingAway && len(c.streams) == 0
	c.cond.Broadcast()
	c.mu.Unlock()
	if drained {
		c.retire()
	}
	return v, true
}

// retire ends the connection (GOAWAY, then close) and returns the calls it left unanswered.
func (c *conn) retire() int {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0
	}
	c.closed = true
	left := len(c.streams)
	clear(c.streams)
	c.cond.Broadcast()
	c.mu.Unlock()
	c.wmu.Lock()
	_ = c.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	_ = c.bw.Flush()
	c.wmu.Unlock()
	c.nc.Close()
	c.w.signal()
	return left
}

// lost ends a connection that failed: the calls still in flight on it are errored.
func (c *conn) lost(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	left := len(c.streams)
	clear(c.streams)
	goingAway := c.goingAway
	c.cond.Broadcast()
	c.mu.Unlock()
	c.nc.Close()
	switch {
	case left > 0:
		why := err.Error()
		if errors.Is(err, io.EOF) {
			why = "the server closed the connection"
		}
		c.w.erroredCalls(left, fmt.Sprintf("%s with %d calls unanswered", why, left))
	case !goingAway:
		// Closed with nothing in flight but no GOAWAY: no call lost, but not a graceful close.
		c.w.mu.Lock()
		c.w.sample("the server closed the connection without GOAWAY")
		c.w.mu.Unlock()
		c.w.signal()
	default:
		c.w.signal()
	}
}

// goAway takes the server's GOAWAY: no new stream here, and the calls above its last stream
// id go again on a new connection.
func (c *conn) goAway(f *http2.GoAwayFrame) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return // the answer to our own GOAWAY
	}
	c.goingAway = true
	var ids []uint32
	for id := range c.streams {
		if id > f.LastStreamID {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	again := make([]call, 0, len(ids))
	for _, id := range ids {
		p := c.streams[id]
		delete(c.streams, id)
		again = append(again, p.call)
		c.free = append(c.free, p)
	}
	drained := len(c.streams) == 0
	c.cond.Broadcast()
	c.mu.Unlock()
	w := c.w
	w.mu.Lock()
	w.goAways[f.ErrCode.String()]++
	if f.ErrCode != http2.ErrCodeNo {
		why := "GOAWAY " + f.ErrCode.String()
		if d := f.DebugData(); len(d) > 0 {
			why += " " + strconv.Quote(string(d[:min(len(d), 100)]))
		}
		w.sample(why)
	}
	w.mu.Unlock()
	w.sendAgain(again)
	if drained {
		c.retire()
	}
	w.signal()
}

// headerBlocks encodes the request headers once, with no dynamic-table entries, so the
// same bytes serve every request on every connection. The first block also tells the
// server that this encoder keeps no dynamic table (a size update to 0).
func headerBlocks(o options) [2][]byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	enc.SetMaxDynamicTableSizeLimit(0)
	fields := []hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "http"},
		{Name: ":path", Value: o.path},
		{Name: ":authority", Value: o.target},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "te", Value: "trailers"},
		{Name: "user-agent", Value: "mcp-authz-bench-loadgen"},
	}
	if o.grpcTimeout != "" {
		fields = append(fields, hpack.HeaderField{Name: "grpc-timeout", Value: o.grpcTimeout})
	}
	var blocks [2][]byte
	for i := range blocks {
		buf.Reset()
		for _, f := range fields {
			_ = enc.WriteField(f)
		}
		blocks[i] = append([]byte(nil), buf.Bytes()...)
	}
	return blocks
}

func (c *conn) applySettings(sf *http2.SettingsFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = sf.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingMaxConcurrentStreams:
			c.maxStreams = min(int(s.Val), c.w.o.streams)
		case http2.SettingMaxFrameSize:
			c.maxFrame = int(s.Val)
		}
		return nil
	})
	c.cond.Broadcast()
}

// control answers the frames that are not a response: SETTINGS, PING, WINDOW_UPDATE.
func (c *conn) control(f http2.Frame) {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if !f.IsAck() {
			c.applySettings(f)
			c.wmu.Lock()
			_ = c.fr.WriteSettingsAck()
			_ = c.bw.Flush()
			c.wmu.Unlock()
		}
	case *http2.PingFrame:
		if !f.IsAck() {
			c.wmu.Lock()
			_ = c.fr.WritePing(true, f.Data)
			_ = c.bw.Flush()
			c.wmu.Unlock()
		}
	case *http2.WindowUpdateFrame:
		if f.StreamID == 0 {
			c.mu.Lock()
			c.sendWindow += int64(f.Increment)
			c.cond.Broadcast()
			c.mu.Unlock()
		}
	}
}

// peek returns a stream's call in flight, for the reader to fill in.
func (c *conn) peek(id uint32) *pending {
	c.mu.Lock()
	p := c.streams[id]
	c.mu.Unlock()
	return p
}

func (c *conn) read() {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.lost(err)
			return
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			p := c.peek(f.StreamID)
			if p == nil {
				continue
			}
			for _, hf := range f.Fields {
				switch hf.Name {
				case ":status":
					p.status, _ = strconv.Atoi(hf.Value)
				case "grpc-status":
					p.grpc, _ = strconv.Atoi(hf.Value)
				}
			}
			if f.StreamEnded() {
				c.end(f.StreamID)
			}
		case *http2.DataFrame:
			data := f.Data()
			c.unacked += len(data)
			if c.unacked > 1<<20 {
				c.wmu.Lock()
				_ = c.fr.WriteWindowUpdate(0, uint32(c.unacked))
				_ = c.bw.Flush()
				c.wmu.Unlock()
				c.unacked = 0
			}
			p := c.peek(f.StreamID)
			if p == nil {
				continue
			}
			if !p.gotData {
				p.gotData = true
				p.check = checkCode(data)
			}
			if f.StreamEnded() {
				c.end(f.StreamID)
			}
		case *http2.RSTStreamFrame:
			p, ok := c.take(f.StreamID)
			if !ok {
				continue
			}
			if f.ErrCode == http2.ErrCodeRefusedStream {
				c.w.sendAgain([]call{p.call}) // refused before any processing (RFC 9113 §8.7)
			} else {
				c.w.erroredCalls(1, "RST_STREAM "+f.ErrCode.String())
			}
		case *http2.GoAwayFrame:
			c.goAway(f)
		default:
			c.control(f)
		}
	}
}

func (c *conn) end(id uint32) {
	if p, ok := c.take(id); ok {
		c.w.answered(id, p)
	}
}
