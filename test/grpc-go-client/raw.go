package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"
)

// rawConn is an HTTP/2 connection written frame by frame, for what grpc-go does not do on
// purpose: a message sent in part, a deadline with no client-side timer, HEADERS then
// RST_STREAM in a loop. One goroutine reads; it answers SETTINGS and PING, and returns flow
// control for every DATA frame.
type rawConn struct {
	c  net.Conn
	bw *bufio.Writer
	fr *http2.Framer

	wmu    sync.Mutex
	enc    *hpack.Encoder
	encBuf bytes.Buffer
	nextID uint32

	mu       sync.Mutex
	streams  map[uint32]*rawStream
	settings map[http2.SettingID]uint32
	goaways  []goaway
	resets   int
	readErr  error

	settingsCh chan struct{}
	goawayCh   chan struct{}
	closedCh   chan struct{}
}

type goaway struct {
	code  http2.ErrCode
	last  uint32
	debug string
}

func (g goaway) String() string {
	return fmt.Sprintf("GOAWAY %s last-stream %d %q", g.code, g.last, g.debug)
}

type rawStream struct {
	id       uint32
	headers  []hpack.HeaderField
	trailers []hpack.HeaderField
	data     []byte
	reset    *http2.ErrCode
	dataCh   chan struct{} // closed when the first DATA arrives
	done     chan struct{} // closed at END_STREAM, RST_STREAM or the connection's end
}

func dialRaw(ctx context.Context, addr string) (*rawConn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &rawConn{c: c, bw: bufio.NewWriterSize(c, 64<<10), nextID: 1, streams: map[uint32]*rawStream{},
		settings: map[http2.SettingID]uint32{}, settingsCh: make(chan struct{}), goawayCh: make(chan struct{}), closedCh: make(chan struct{})}
	r.enc = hpack.NewEncoder(&r.encBuf)
	r.fr = http2.NewFramer(r.bw, c)
	r.fr.ReadMetaHeaders = hpack.NewDecoder(65536, nil)
	r.fr.MaxHeaderListSize = 1 << 20
	if _, err := r.bw.WriteString(http2.ClientPreface); err != nil {
		c.Close()
		return nil, err
	}
	if err := r.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20}); err != nil {
		c.Close()
		return nil, err
	}
	if err := r.fr.WriteWindowUpdate(0, 1<<30); err != nil {
		c.Close()
		return nil, err
	}
	if err := r.bw.Flush(); err != nil {
		c.Close()
		return nil, err
	}
	go r.readLoop()
	select {
	case <-r.settingsCh:
		return r, nil
	case <-r.closedCh:
		return nil, fmt.Errorf("connection closed before the server's SETTINGS: %v", r.err())
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
}

func (r *rawConn) close() { r.c.Close() }

func (r *rawConn) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.readErr
}

func (r *rawConn) setting(id http2.SettingID) (uint32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.settings[id]
	return v, ok
}

func (r *rawConn) goawayList() []goaway {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]goaway(nil), r.goaways...)
}

func (r *rawConn) readLoop() {
	defer func() {
		r.mu.Lock()
		for _, s := range r.streams {
			closeOnce(s.done)
		}
		r.mu.Unlock()
		close(r.closedCh)
	}()
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.mu.Lock()
			r.readErr = err
			r.mu.Unlock()
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			r.mu.Lock()
			_ = f.ForeachSetting(func(s http2.Setting) error {
				r.settings[s.ID] = s.Val
				return nil
			})
			r.mu.Unlock()
			r.write(func() error { return r.fr.WriteSettingsAck() })
			closeOnce(r.settingsCh)
		case *http2.PingFrame:
			if !f.IsAck() {
				data := f.Data
				r.write(func() error { return r.fr.WritePing(true, data) })
			}
		case *http2.GoAwayFrame:
			r.mu.Lock()
			r.goaways = append(r.goaways, goaway{code: f.ErrCode, last: f.LastStreamID, debug: string(f.DebugData())})
			r.mu.Unlock()
			closeOnce(r.goawayCh)
		case *http2.MetaHeadersFrame:
			s := r.stream(f.StreamID)
			if s == nil {
				continue
			}
			fields := append([]hpack.HeaderField(nil), f.Fields...)
			r.mu.Lock()
			if s.headers == nil {
				s.headers = fields
				if f.StreamEnded() {
					s.trailers = fields // trailers-only
				}
			} else {
				s.trailers = fields
			}
			r.mu.Unlock()
			if f.StreamEnded() {
				closeOnce(s.done)
			}
		case *http2.DataFrame:
			n := uint32(len(f.Data()))
			if n > 0 {
				id := f.StreamID
				r.write(func() error {
					if err := r.fr.WriteWindowUpdate(0, n); err != nil {
						return err
					}
					return r.fr.WriteWindowUpdate(id, n)
				})
			}
			s := r.stream(f.StreamID)
			if s == nil {
				continue
			}
			r.mu.Lock()
			s.data = append(s.data, f.Data()...)
			r.mu.Unlock()
			closeOnce(s.dataCh)
			if f.StreamEnded() {
				closeOnce(s.done)
			}
		case *http2.RSTStreamFrame:
			r.mu.Lock()
			r.resets++
			s := r.streams[f.StreamID]
			if s != nil {
				code := f.ErrCode
				s.reset = &code
			}
			r.mu.Unlock()
			if s != nil {
				closeOnce(s.done)
			}
		}
	}
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (r *rawConn) stream(id uint32) *rawStream {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.streams[id]
}

// write runs one or more frame writes and flushes; errors end up in the read loop's error.
func (r *rawConn) write(fn func() error) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if err := fn(); err != nil {
		return err
	}
	return r.bw.Flush()
}

// open starts a gRPC call: HEADERS for path with the given extra headers (e.g. grpc-timeout).
// It neither flushes nor ends the stream: flush with write.
func (r *rawConn) openLocked(path string, extra [][2]string) (*rawStream, error) {
	id := r.nextID
	r.nextID += 2
	r.encBuf.Reset()
	for _, h := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", path}, {":authority", "mcp-authz"},
		{"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = r.enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]})
	}
	for _, h := range extra {
		_ = r.enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]})
	}
	s := &rawStream{id: id, dataCh: make(chan struct{}), done: make(chan struct{})}
	r.mu.Lock()
	r.streams[id] = s
	r.mu.Unlock()
	err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.encBuf.Bytes(), EndHeaders: true})
	return s, err
}

// call opens a stream and sends data (whole gRPC frames or a part of one), ending the
// stream when end is set.
func (r *rawConn) call(path string, extra [][2]string, data []byte, end bool) (*rawStream, error) {
	var s *rawStream
	err := r.write(func() error {
		var err error
		if s, err = r.openLocked(path, extra); err != nil {
			return err
		}
		if data != nil || end {
			return r.fr.WriteData(s.id, end, data)
		}
		return nil
	})
	return s, err
}

func (r *rawConn) send(s *rawStream, data []byte, end bool) error {
	return r.write(func() error { return r.fr.WriteData(s.id, end, data) })
}

// status is the call's grpc-status and grpc-message (from its trailers).
func (r *rawConn) status(s *rawStream) (int, string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range s.trailers {
		if f.Name == "grpc-status" {
			code, err := strconv.Atoi(f.Value)
			if err != nil {
				return -1, "", false
			}
			msg := ""
			for _, g := range s.trailers {
				if g.Name == "grpc-message" {
					msg = g.Value
				}
			}
			return code, msg, true
		}
	}
	return 0, "", false
}

// describe says how a stream ended, for failure messages.
func (r *rawConn) describe(s *rawStream) string {
	r.mu.Lock()
	reset := s.reset
	headers := s.headers
	r.mu.Unlock()
	if code, msg, ok := r.status(s); ok {
		return fmt.Sprintf("grpc-status %d %q", code, msg)
	}
	if reset != nil {
		return "RST_STREAM " + reset.String()
	}
	select {
	case <-r.closedCh:
		return fmt.Sprintf("connection closed (%v)", r.err())
	default:
	}
	return fmt.Sprintf("no status yet (headers %v)", headers)
}

// messages are the gRPC messages the stream received so far.
func (r *rawConn) messages(s *rawStream) ([][]byte, error) {
	r.mu.Lock()
	data := append([]byte(nil), s.data...)
	r.mu.Unlock()
	var out [][]byte
	for len(data) > 0 {
		if len(data) < 5 {
			return out, fmt.Errorf("a partial gRPC frame header")
		}
		n := binary.BigEndian.Uint32(data[1:5])
		if data[0] != 0 {
			return out, fmt.Errorf("a message with flag %d", data[0])
		}
		if uint32(len(data)-5) < n {
			return out, fmt.Errorf("a partial gRPC message")
		}
		out = append(out, data[5:5+n])
		data = data[5+n:]
	}
	return out, nil
}

// grpcFrame is a message in gRPC's length-prefixed frame.
func grpcFrame(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	out := make([]byte, 5+len(b))
	binary.BigEndian.PutUint32(out[1:5], uint32(len(b)))
	copy(out[5:], b)
	return out
}

// waitDone waits for the stream to end.
func waitDone(ctx context.Context, s *rawStream) error {
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the stream did not end: %w", ctx.Err())
	}
}
