package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2"
)

// sniffer watches the HTTP/2 frames on the connections grpc-go dials (it sees the bytes,
// changes nothing): how many connections were made, the pings each way and their acks, and
// every GOAWAY — a compliant client must never be sent one while the server runs.
type sniffer struct {
	dials atomic.Int32

	mu      sync.Mutex
	counts  map[string]int
	goaways []string
	changed chan struct{}
}

func newSniffer() *sniffer {
	return &sniffer{counts: map[string]int{}, changed: make(chan struct{})}
}

// dialer is a grpc.WithContextDialer function that counts and wraps each connection.
func (s *sniffer) dialer(ctx context.Context, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	s.dials.Add(1)
	return &sniffedConn{Conn: c, s: s, in: frameParser{dir: "in"}, out: frameParser{dir: "out", preface: len(http2.ClientPreface)}}, nil
}

func (s *sniffer) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[key]
}

func (s *sniffer) goawayList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.goaways...)
}

// waitFor blocks until cond holds (checked after every frame) or ctx ends.
func (s *sniffer) waitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *sniffer) frame(dir string, typ http2.FrameType, flags http2.Flags, head []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := dir + " " + typ.String()
	switch typ {
	case http2.FramePing:
		// grpc-go's keepalive pings carry 8 zero bytes; its flow-control (BDP) pings do not.
		kind := "bdp"
		if binary.BigEndian.Uint64(pad8(head)) == 0 {
			kind = "keepalive"
		}
		if flags.Has(http2.FlagPingAck) {
			key = dir + " PING ACK " + kind
		} else {
			key = dir + " PING " + kind
		}
	case http2.FrameGoAway:
		if len(head) >= 8 {
			code := http2.ErrCode(binary.BigEndian.Uint32(head[4:8]))
			last := binary.BigEndian.Uint32(head[0:4]) & 0x7fffffff
			debug := ""
			if len(head) > 8 {
				debug = fmt.Sprintf(" %q", head[8:])
			}
			s.goaways = append(s.goaways, fmt.Sprintf("%s GOAWAY %s last-stream %d%s", dir, code, last, debug))
		}
	}
	s.counts[key]++
	close(s.changed)
	s.changed = make(chan struct{})
}

func pad8(b []byte) []byte {
	if len(b) >= 8 {
		return b[:8]
	}
	out := make([]byte, 8)
	copy(out, b)
	return out
}

type sniffedConn struct {
	net.Conn
	s   *sniffer
	in  frameParser
	out frameParser
	mu  sync.Mutex
}

func (c *sniffedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.mu.Lock()
		c.in.feed(b[:n], c.s)
		c.mu.Unlock()
	}
	return n, err
}

func (c *sniffedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.mu.Lock()
		c.out.feed(b[:n], c.s)
		c.mu.Unlock()
	}
	return n, err
}

// frameParser follows frame boundaries in one direction of a connection, keeping the first
// bytes of each payload (enough for PING data and GOAWAY's ids, code and debug data).
type frameParser struct {
	dir     string
	preface int
	hdr     [9]byte
	hdrN    int
	left    uint32
	head    []byte
}

const keepHead = 72

func (p *frameParser) feed(b []byte, s *sniffer) {
	for len(b) > 0 {
		if p.preface > 0 {
			n := min(p.preface, len(b))
			p.preface -= n
			b = b[n:]
			continue
		}
		if p.hdrN < 9 {
			n := copy(p.hdr[p.hdrN:], b)
			p.hdrN += n
			b = b[n:]
			if p.hdrN < 9 {
				return
			}
			p.left = uint32(p.hdr[0])<<16 | uint32(p.hdr[1])<<8 | uint32(p.hdr[2])
			p.head = p.head[:0]
			if p.left == 0 {
				s.frame(p.dir, http2.FrameType(p.hdr[3]), http2.Flags(p.hdr[4]), nil)
				p.hdrN = 0
				continue
			}
		}
		n := min(int(p.left), len(b))
		if keep := keepHead - len(p.head); keep > 0 {
			p.head = append(p.head, b[:min(keep, n)]...)
		}
		p.left -= uint32(n)
		b = b[n:]
		if p.left == 0 {
			s.frame(p.dir, http2.FrameType(p.hdr[3]), http2.Flags(p.hdr[4]), p.head)
			p.hdrN = 0
		}
	}
}
