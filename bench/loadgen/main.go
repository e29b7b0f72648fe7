// Command loadgen sends unary gRPC Check calls over cleartext HTTP/2 as fast as the server
// answers them (a closed loop): N connections, M streams in flight on each, every request's
// message taken round-robin from a list of serialized CheckRequests read once at start. It
// does no protobuf or JSON work per call: the request's HEADERS block is encoded once and
// its DATA frame is a prebuilt gRPC frame, so a scenario of distinct bearer tokens costs the
// generator what a single request costs it. It prints one JSON object on stdout: throughput,
// latency percentiles, HTTP and gRPC statuses, the decisions (the CheckResponse's status
// code) and its own CPU time.
//
// A connection the server closes gracefully (GOAWAY) is replaced, and the calls the server
// did not process are sent again on the new one, as an HTTP/2 client must (conn.go); a call
// that may have been processed is never sent again.
//
// The data file holds the messages each prefixed by its length as a protobuf varint (the
// shape ghz's --binary-file takes for several messages).
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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
	// How many requests each message was sent in (round-robin), by index in the data file; a
	// request sent again (see Resent) counts once.
	SentPerMessage []int64 `json:"sentPerMessage"`
	// Requests the server did not process and that were sent again: streams above a GOAWAY's
	// last stream id, and streams refused (RST_STREAM REFUSED_STREAM).
	Resent int64 `json:"resent"`
	// GOAWAY frames the server sent before the generator ended the connection, by error code.
	// NO_ERROR is a server closing a connection gracefully (its calls finish, the rest are
	// sent again on a new connection); any other code is also in errorSamples.
	GoAways map[string]int `json:"goAways"`
	// Connections opened: o.connections, plus one for each connection the server closed.
	ConnectionsOpened int          `json:"connectionsOpened"`
	LatencyMs         *Percentiles `json:"latencyMs,omitempty"`
	Late              int64        `json:"late"`
	CPUSec            float64      `json:"loadGeneratorCpuSec"`
	Cores             float64      `json:"loadGeneratorCores"`
	ErrorSamples      []string     `json:"errorSamples"`
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

// over says whether the run sends no new request any more (a request to send again still goes).
func (s *shared) over(now time.Time) bool {
	if s.limit > 0 {
		return s.next.Load() >= s.limit
	}
	return !now.Before(s.deadline)
}

func run(o options, frames [][]byte) (*Result, error) {
	s := &shared{frames: frames, limit: o.requests, sent: make([]atomic.Int64, len(frames))}
	blocks := headerBlocks(o)
	workers := make([]*worker, o.connections)
	for i := range workers {
		w := newWorker(o, s, blocks)
		// The first connections are open before the clock starts: connecting is not the run's cost.
		c, err := w.dial()
		if err != nil {
			for _, d := range workers[:i] {
				d.conns[0].nc.Close()
			}
			return nil, err
		}
		w.cur = c
		workers[i] = w
	}
	ru0 := rusage()
	start := time.Now()
	s.deadline = start.Add(o.duration)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(start)
		}()
	}
	wg.Wait()
	end := start
	for _, w := range workers {
		if w.lastEnd.After(end) {
			end = w.lastEnd
		}
	}
	cpu := rusage() - ru0
	return summarize(o, s, workers, end.Sub(start), cpu), nil
}

func rusage() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
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

func summarize(o options, s *shared, workers []*worker, wall time.Duration, cpu float64) *Result {
	r := &Result{
		LoadGenerator: "loadgen",
		Protocol:      "h2c",
		Connections:   o.connections,
		Streams:       o.streams,
		Messages:      len(s.frames),
		StatusCodes:   map[string]int{"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0},
		GrpcStatus:    map[string]int{},
		CheckCodes:    map[string]int{},
		GoAways:       map[string]int{},
		ErrorSamples:  []string{},
	}
	var lat []uint32
	for _, c := range workers {
		lat = append(lat, c.latUs...)
		r.Done += c.done
		r.Succeeded += c.ok
		r.Failed += c.failed
		r.Errored += c.errored
		r.Timeout += c.timedOut
		r.Resent += c.resent
		r.ConnectionsOpened += c.opened
		for k, v := range c.goAways {
			r.GoAways[k] += v
		}
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
