// Command loadgen sends unary gRPC Check calls over cleartext HTTP/2 as fast as the server
// answers them (a closed loop): N connections, M streams in flight on each, every request's
// message taken round-robin from a list of serialized CheckRequests read once at start. It
// does no protobuf or JSON work per call: the request's HEADERS block is encoded once per
// connection and its DATA frame is a prebuilt gRPC frame, so a scenario of distinct bearer
// tokens costs the generator what a single request costs it. It prints one JSON object on
// stdout: throughput, latency percentiles, HTTP and gRPC statuses, the decisions (the
// CheckResponse's status code) and its own CPU time.
//
// The data file holds the messages each prefixed by its length as a protobuf varint (the
// shape ghz's --binary-file takes for several messages).
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

type options struct {
	target      string
	path        string
	dataFile    string
	connections int
	streams     int
	duration    time.Duration
	requests    int64
	grpcTimeout string
	timeout     time.Duration
	lateAfter   time.Duration
	procs       int
}

func main() {
	var o options
	flag.StringVar(&o.target, "target", "", "host:port of the gRPC server (cleartext HTTP/2)")
	flag.StringVar(&o.path, "path", "/envoy.service.auth.v3.Authorization/Check", "the method's :path")
	flag.StringVar(&o.dataFile, "data", "", "serialized request messages, each prefixed by its varint length")
	flag.IntVar(&o.connections, "c", 4, "connections")
	flag.IntVar(&o.streams, "m", 12, "streams in flight per connection")
	flag.DurationVar(&o.duration, "d", 5*time.Second, "how long to send (ignored with -n)")
	flag.Int64Var(&o.requests, "n", 0, "send exactly this many requests, then stop")
	flag.StringVar(&o.grpcTimeout, "grpc-timeout", "200m", "the grpc-timeout header sent (empty: none)")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "an answer not ended this long after the request is counted as timed out")
	flag.DurationVar(&o.lateAfter, "late-after", 200*time.Millisecond, "answers slower than this are counted as late")
	flag.IntVar(&o.procs, "procs", 1, "OS threads running Go code (GOMAXPROCS)")
	flag.Parse()
	if o.target == "" || o.dataFile == "" || o.connections < 1 || o.streams < 1 {
		fmt.Fprintln(os.Stderr, "usage: loadgen -target host:port -data FILE [-c 4] [-m 12] [-d 5s | -n N]")
		os.Exit(2)
	}
	runtime.GOMAXPROCS(o.procs)
	raw, err := os.ReadFile(o.dataFile)
	if err != nil {
		fail(err)
	}
	frames, err := grpcFrames(raw)
	if err != nil {
		fail(err)
	}
	res, err := run(o, frames)
	if err != nil {
		fail(err)
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(res); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(1)
}

// grpcFrames splits the varint-length-prefixed messages and frames each as a unary gRPC
// message: a zero compression flag and a 4-byte big-endian length.
func grpcFrames(raw []byte) ([][]byte, error) {
	var out [][]byte
	for len(raw) > 0 {
		n, k := binary.Uvarint(raw)
		if k <= 0 || uint64(len(raw)-k) < n {
			return nil, errors.New("data file: a length prefix runs past the end")
		}
		msg := raw[k : k+int(n)]
		f := make([]byte, 5+len(msg))
		binary.BigEndian.PutUint32(f[1:5], uint32(len(msg)))
		copy(f[5:], msg)
		out = append(out, f)
		raw = raw[k+int(n):]
	}
	if len(out) == 0 {
		return nil, errors.New("data file: no message")
	}
	return out, nil
}

// Result mirrors bench/lib/h2load.ts's H2loadResult, plus what only a gRPC reader sees.
type Result struct {
	LoadGenerator string         `json:"loadGenerator"`
	Protocol      string         `json:"protocol"`
	Connections   int            `json:"connections"`
	Streams       int            `json:"streams"`
	Messages      int            `json:"messages"`
	DurationSec   float64        `json:"durationSec"`
	Rps           float64        `json:"rps"`
	Done          int64          `json:"done"`
	Succeeded     int64          `json:"succeeded"`
	Failed        int64          `json:"failed"`
	Errored       int64          `json:"errored"`
	Timeout       int64          `json:"timeout"`
	StatusCodes   map[string]int `json:"statusCodes"`
	// gRPC status of each answer (grpc-status trailer), by name of its number.
	GrpcStatus map[string]int `json:"grpcStatus"`
	// The CheckResponse's status.code (0 allow, 7 PERMISSION_DENIED, 16 UNAUTHENTICATED, ...).
	CheckCodes map[string]int `json:"checkCodes"`
	// How many requests each message was sent in (round-robin), by index in the data file.
	SentPerMessage []int64      `json:"sentPerMessage"`
	LatencyMs      *Percentiles `json:"latencyMs,omitempty"`
	Late           int64        `json:"late"`
	CPUSec         float64      `json:"loadGeneratorCpuSec"`
	Cores          float64      `json:"loadGeneratorCores"`
	ErrorSamples   []string     `json:"errorSamples"`
}

type Percentiles struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// shared is the state every connection draws from: the next message and the stop signal.
type shared struct {
	frames   [][]byte
	next     atomic.Int64
	limit    int64 // 0: none
	deadline time.Time
	sent     []atomic.Int64
}

// take returns the next request's message index, or -1 once the run is over.
func (s *shared) take(now time.Time) int {
	if s.limit == 0 && !now.Before(s.deadline) {
		return -1
	}
	i := s.next.Add(1) - 1
	if s.limit > 0 && i >= s.limit {
		return -1
	}
	m := int(i % int64(len(s.frames)))
	s.sent[m].Add(1)
	return m
}

func run(o options, frames [][]byte) (*Result, error) {
	s := &shared{frames: frames, limit: o.requests, sent: make([]atomic.Int64, len(frames))}
	conns := make([]*conn, o.connections)
	for i := range conns {
		c, err := dial(o)
		if err != nil {
			for _, d := range conns[:i] {
				d.nc.Close()
			}
			return nil, err
		}
		conns[i] = c
	}
	ru0 := rusage()
	start := time.Now()
	s.deadline = start.Add(o.duration)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(o, s, start)
		}()
	}
	wg.Wait()
	end := start
	for _, c := range conns {
		if c.lastEnd.After(end) {
			end = c.lastEnd
		}
	}
	cpu := rusage() - ru0
	return summarize(o, s, conns, end.Sub(start), cpu), nil
}

func rusage() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// pending is one request in flight.
type pending struct {
	start   int64 // ns since the run's start
	status  int   // :status of the response headers
	grpc    int   // grpc-status, -1 until the trailers
	check   int   // the CheckResponse's status.code, -1 unread
	gotData bool
}

type conn struct {
	nc  net.Conn
	bw  *bufio.Writer
	fr  *http2.Framer
	wmu sync.Mutex // the framer's writes (requests, SETTINGS/PING acks, WINDOW_UPDATEs)

	headerBlocks [2][]byte // the first request's block, then every later one's

	mu         sync.Mutex
	cond       *sync.Cond
	inflight   map[uint32]*pending
	free       []*pending
	sendWindow int64 // the connection's send window (the server's receive window for us)
	maxStreams int
	maxFrame   int
	closed     bool
	readErr    error

	// Results, owned by the reader.
	latUs    []uint32
	done     int64
	ok       int64
	failed   int64
	errored  int64
	timedOut int64
	late     int64
	status   map[int]int
	grpc     map[int]int
	check    map[int]int
	samples  []string
	lastEnd  time.Time
	unacked  int // received DATA bytes not yet returned with a WINDOW_UPDATE
	slotFree chan struct{}
}

const ourWindow = 1 << 30

func dial(o options) (*conn, error) {
	nc, err := net.DialTimeout("tcp", o.target, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	c := &conn{
		nc:         nc,
		bw:         bufio.NewWriterSize(nc, 64<<10),
		inflight:   make(map[uint32]*pending, o.streams),
		sendWindow: 65535,
		maxStreams: o.streams,
		maxFrame:   16384,
		status:     map[int]int{},
		grpc:       map[int]int{},
		check:      map[int]int{},
		slotFree:   make(chan struct{}, o.streams),
	}
	c.cond = sync.NewCond(&c.mu)
	c.fr = http2.NewFramer(c.bw, bufio.NewReaderSize(nc, 64<<10))
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 1 << 20
	c.headerBlocks = headerBlocks(o)
	if _, err := c.bw.WriteString(http2.ClientPreface); err != nil {
		return nil, err
	}
	if err := c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: ourWindow},
		http2.Setting{ID: http2.SettingHeaderTableSize, Val: 4096},
	); err != nil {
		return nil, err
	}
	if err := c.fr.WriteWindowUpdate(0, ourWindow-65535); err != nil {
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	// The server's SETTINGS come first: its stream limit and frame size bound what we send.
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("%s: no HTTP/2 SETTINGS from the server: %w", o.target, err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			c.applySettings(sf)
			if err := c.fr.WriteSettingsAck(); err != nil {
				return nil, err
			}
			if err := c.bw.Flush(); err != nil {
				return nil, err
			}
			break
		}
		c.control(f)
	}
	_ = nc.SetReadDeadline(time.Time{})
	return c, nil
}

// headerBlocks encodes the request headers once, with no dynamic-table entries, so the
// same bytes serve every request on the connection. The first block also tells the server
// that this encoder keeps no dynamic table (a size update to 0).
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
			if int(s.Val) < c.maxStreams {
				c.maxStreams = int(s.Val)
			}
		case http2.SettingMaxFrameSize:
			c.maxFrame = int(s.Val)
		}
		return nil
	})
}

// control answers the frames that are not a response: SETTINGS, PING, WINDOW_UPDATE, GOAWAY.
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

// run sends and reads on one connection until the run is over and every answer is in.
func (c *conn) run(o options, s *shared, t0 time.Time) {
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		c.read(t0)
	}()
	c.write(o, s, t0)
	// Every request sent: wait for the answers still due, at most the timeout.
	c.mu.Lock()
	limit := time.Now().Add(o.timeout)
	for len(c.inflight) > 0 && !c.closed && time.Now().Before(limit) {
		c.mu.Unlock()
		select {
		case <-c.slotFree:
		case <-readerDone:
		case <-time.After(50 * time.Millisecond):
		}
		c.mu.Lock()
	}
	left := len(c.inflight)
	c.closed = true
	c.mu.Unlock()
	c.wmu.Lock()
	_ = c.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	_ = c.bw.Flush()
	c.wmu.Unlock()
	c.nc.Close()
	<-readerDone
	c.timedOut += int64(left)
}

func (c *conn) write(o options, s *shared, t0 time.Time) {
	var stream uint32 = 1
	first := true
	c.mu.Lock()
	slots := c.maxStreams
	c.mu.Unlock()
	for {
		// Fill every free slot, then flush once: one write for a burst of requests.
		sentAny := false
		for ; slots > 0; slots-- {
			m := s.take(time.Now())
			if m < 0 {
				if sentAny {
					c.flush()
				}
				return
			}
			frame := s.frames[m]
			if len(frame) > c.maxFrame {
				c.fail(fmt.Errorf("a request of %d bytes is over the server's frame size %d", len(frame), c.maxFrame))
				return
			}
			c.mu.Lock()
			for c.sendWindow < int64(len(frame)) && !c.closed {
				c.cond.Wait()
			}
			if c.closed {
				c.mu.Unlock()
				return
			}
			c.sendWindow -= int64(len(frame))
			p := c.newPending()
			p.start = int64(time.Since(t0))
			c.inflight[stream] = p
			c.mu.Unlock()
			block := c.headerBlocks[1]
			if first {
				block, first = c.headerBlocks[0], false
			}
			c.wmu.Lock()
			err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: block, EndHeaders: true})
			if err == nil {
				err = c.fr.WriteData(stream, true, frame)
			}
			c.wmu.Unlock()
			if err != nil {
				c.fail(err)
				return
			}
			sentAny = true
			stream += 2
		}
		if sentAny {
			c.flush()
		}
		// Wait for an answer to free a slot.
		_, ok := <-c.slotFree
		if !ok {
			return
		}
		slots++
		for more := true; more; {
			select {
			case _, ok := <-c.slotFree:
				if !ok {
					return
				}
				slots++
			default:
				more = false
			}
		}
	}
}

func (c *conn) flush() {
	c.wmu.Lock()
	err := c.bw.Flush()
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
	}
}

func (c *conn) newPending() *pending {
	var p *pending
	if n := len(c.free); n > 0 {
		p, c.free = c.free[n-1], c.free[:n-1]
	} else {
		p = new(pending)
	}
	*p = pending{status: 0, grpc: -1, check: -1}
	return p
}

func (c *conn) fail(err error) {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.readErr = err
		c.errored += int64(len(c.inflight))
		c.inflight = map[uint32]*pending{}
		c.sample(err.Error())
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	c.nc.Close()
}

func (c *conn) sample(s string) {
	if len(c.samples) < 5 {
		c.samples = append(c.samples, s)
	}
}

func (c *conn) read(t0 time.Time) {
	defer func() {
		// A closed connection stops the writer too.
		c.mu.Lock()
		c.closed = true
		c.cond.Broadcast()
		c.mu.Unlock()
		close(c.slotFree)
	}()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.mu.Lock()
			closed := c.closed
			c.mu.Unlock()
			if !closed && !errors.Is(err, io.EOF) {
				c.fail(err)
			} else if !closed {
				c.fail(errors.New("the server closed the connection"))
			}
			return
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			c.mu.Lock()
			p := c.inflight[f.StreamID]
			c.mu.Unlock()
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
				c.end(f.StreamID, p, t0)
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
			c.mu.Lock()
			p := c.inflight[f.StreamID]
			c.mu.Unlock()
			if p == nil {
				continue
			}
			if !p.gotData {
				p.gotData = true
				p.check = checkCode(data)
			}
			if f.StreamEnded() {
				c.end(f.StreamID, p, t0)
			}
		case *http2.RSTStreamFrame:
			c.mu.Lock()
			p := c.inflight[f.StreamID]
			if p != nil {
				delete(c.inflight, f.StreamID)
				c.free = append(c.free, p)
				c.errored++
				c.sample("RST_STREAM " + f.ErrCode.String())
			}
			c.mu.Unlock()
			if p != nil {
				c.slotFree <- struct{}{}
			}
		case *http2.GoAwayFrame:
			c.mu.Lock()
			c.sample("GOAWAY " + f.ErrCode.String())
			c.mu.Unlock()
		default:
			c.control(f)
		}
	}
}

// end records a finished answer and frees its slot.
func (c *conn) end(id uint32, p *pending, t0 time.Time) {
	now := time.Now()
	lat := (int64(now.Sub(t0)) - p.start) / 1000
	c.mu.Lock()
	delete(c.inflight, id)
	c.latUs = append(c.latUs, uint32(min(lat, 1<<32-1)))
	c.done++
	c.status[p.status/100]++
	c.grpc[p.grpc]++
	c.check[p.check]++
	if p.status == 200 && p.grpc == 0 {
		c.ok++
	} else {
		c.failed++
		c.sample(fmt.Sprintf("stream %d: :status %d grpc-status %d", id, p.status, p.grpc))
	}
	c.lastEnd = now
	c.free = append(c.free, p)
	c.mu.Unlock()
	c.slotFree <- struct{}{}
}

// checkCode reads status.code of a CheckResponse in a gRPC frame: field 1 (google.rpc.Status),
// its field 1 (code; absent means 0). -1 when the frame is not whole in this DATA frame.
func checkCode(b []byte) int {
	if len(b) < 5 || b[0] != 0 {
		return -1
	}
	n := int(binary.BigEndian.Uint32(b[1:5]))
	if len(b) < 5+n {
		return -1
	}
	msg := b[5 : 5+n]
	status, ok := field(msg, 1)
	if !ok {
		return 0
	}
	for len(status) > 0 {
		tag, k := binary.Uvarint(status)
		if k <= 0 {
			return -1
		}
		status = status[k:]
		if tag == 1<<3|0 {
			v, k := binary.Uvarint(status)
			if k <= 0 {
				return -1
			}
			return int(v)
		}
		rest, ok := skip(status, int(tag&7))
		if !ok {
			return -1
		}
		status = rest
	}
	return 0
}

// field returns the bytes of the first length-delimited field numbered num.
func field(msg []byte, num uint64) ([]byte, bool) {
	for len(msg) > 0 {
		tag, k := binary.Uvarint(msg)
		if k <= 0 {
			return nil, false
		}
		msg = msg[k:]
		if tag>>3 == num && tag&7 == 2 {
			l, k := binary.Uvarint(msg)
			if k <= 0 || uint64(len(msg)-k) < l {
				return nil, false
			}
			return msg[k : k+int(l)], true
		}
		rest, ok := skip(msg, int(tag&7))
		if !ok {
			return nil, false
		}
		msg = rest
	}
	return nil, false
}

func skip(b []byte, wire int) ([]byte, bool) {
	switch wire {
	case 0:
		_, k := binary.Uvarint(b)
		return b[max(k, 0):], k > 0
	case 1:
		return b[min(8, len(b)):], len(b) >= 8
	case 2:
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return nil, false
		}
		return b[k+int(l):], true
	case 5:
		return b[min(4, len(b)):], len(b) >= 4
	}
	return nil, false
}

func summarize(o options, s *shared, conns []*conn, wall time.Duration, cpu float64) *Result {
	r := &Result{
		LoadGenerator: "loadgen",
		Protocol:      "h2c",
		Connections:   o.connections,
		Streams:       o.streams,
		Messages:      len(s.frames),
		StatusCodes:   map[string]int{"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0},
		GrpcStatus:    map[string]int{},
		CheckCodes:    map[string]int{},
		ErrorSamples:  []string{},
	}
	var lat []uint32
	for _, c := range conns {
		lat = append(lat, c.latUs...)
		r.Done += c.done
		r.Succeeded += c.ok
		r.Failed += c.failed
		r.Errored += c.errored
		r.Timeout += c.timedOut
		for k, v := range c.status {
			if k >= 2 && k <= 5 {
				r.StatusCodes[fmt.Sprintf("%dxx", k)] += v
			}
		}
		for k, v := range c.grpc {
			r.GrpcStatus[strconv.Itoa(k)] += v
		}
		for k, v := range c.check {
			r.CheckCodes[strconv.Itoa(k)] += v
		}
		for _, e := range c.samples {
			if len(r.ErrorSamples) < 5 {
				r.ErrorSamples = append(r.ErrorSamples, e)
			}
		}
	}
	for i := range s.sent {
		r.SentPerMessage = append(r.SentPerMessage, s.sent[i].Load())
	}
	sec := wall.Seconds()
	r.DurationSec = round(sec, 3)
	if sec > 0 {
		r.Rps = round(float64(r.Done)/sec, 0)
		r.Cores = round(cpu/sec, 2)
	}
	r.CPUSec = round(cpu, 2)
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		at := func(p float64) float64 {
			i := int(float64(len(lat))*p/100+0.999999) - 1
			i = min(len(lat)-1, max(0, i))
			return round(float64(lat[i])/1000, 3)
		}
		var sum float64
		lateUs := uint32(o.lateAfter / time.Microsecond)
		for _, v := range lat {
			sum += float64(v)
			if v > lateUs {
				r.Late++
			}
		}
		r.LatencyMs = &Percentiles{
			Mean: round(sum/float64(len(lat))/1000, 3),
			P50:  at(50), P90: at(90), P99: at(99), P999: at(99.9), Max: at(100),
		}
	}
	return r
}

func round(v float64, digits int) float64 {
	f := 1.0
	for range digits {
		f *= 10
	}
	return float64(int64(v*f+0.5)) / f
}
