package cos

import (
	"context"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"net/http"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// maxReadResumes is how many times in a row a reader re-opens a dropped
// stream before it gives up.
const maxReadResumes = 5

// readAhead is how many chunks past the one being delivered a reader
// fetches at once: with the one delivered, a pull runs on up to five
// connections, several times what one connection to COS carries.
const readAhead = 4

// Reader reads the object at path from offset, in chunksize ranges. The
// first GET asks for one range; its answer names the object's size,
// version (ETag) and CRC64, and its body is streamed to the caller, so a
// read that fits one range is one request. Past it, up to readAhead
// ranges are fetched at once into buffers of the driver's budget, each
// pinned to the version the first GET saw (If-Match), and delivered in
// order; a range for which no buffer is free is streamed when the caller
// reaches it. A dropped connection is resumed from where it stopped. A
// read from offset 0 is checked against the object's CRC64 at the end.
func (d *driver) Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	key := d.key(path)
	body, head, err := d.openRange(ctx, key, offset, offset+d.params.ChunkSize, "")
	if err != nil {
		if isNotFound(err) {
			return nil, storagedriver.PathNotFoundError{Path: path}
		}
		if codeOf(err) == "InvalidRange" {
			// offset >= size: an empty reader, as the registry expects
			// (and the filesystem driver gives), unless the object is an
			// upload in progress, which is unreadable at every offset. At
			// offset 0 the object is empty, which a state record never is.
			if offset == 0 {
				return io.NopCloser(eofReader{}), nil
			}
			if _, herr := d.headContent(ctx, key, path); herr != nil {
				return nil, herr
			}
			return io.NopCloser(eofReader{}), nil
		}
		return nil, err
	}
	if head.uploadSize >= 0 {
		// An in-progress upload is not readable content.
		body.Close()
		return nil, storagedriver.PathNotFoundError{Path: path}
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &resumingReader{
		d: d, ctx: ctx, cancel: cancel, key: key, path: path, etag: head.etag, size: head.size,
		pos: offset, body: body, bodyEnd: min(offset+d.params.ChunkSize, head.size),
	}
	r.next = r.bodyEnd
	if offset == 0 && head.crc64 != "" {
		r.crc = crc64.New(crcTable)
		r.wantCRC = head.crc64
	}
	return r, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// openRange opens a GET of bytes [start, end) of key; ifMatch, when set,
// pins the object version. COS ends a range at the object's end, so the
// body carries bytes [start, min(end, head.size)); head.size is the
// object's size.
func (d *driver) openRange(ctx context.Context, key string, start, end int64, ifMatch string) (io.ReadCloser, objectHead, error) {
	var body io.ReadCloser
	var head objectHead
	err := d.do(ctx, "GetObject", key, func(ctx context.Context) (*cossdk.Response, error) {
		resp, h, _, err := d.getRange(ctx, key, byteRange{start: start, end: end}, ifMatch)
		if err == nil {
			body, head = resp.Body, h
		}
		return resp, err
	})
	return body, head, err
}

// resumingReader delivers an object version in order: the range at pos
// from a stream (body), or from a range fetched ahead; it re-opens a
// stream at the current position when the connection drops.
type resumingReader struct {
	d       *driver
	ctx     context.Context // ends with Close, stopping the fetches
	cancel  context.CancelFunc
	key     string
	path    string
	etag    string
	size    int64 // object size
	pos     int64 // offset of the next byte delivered
	body    io.ReadCloser
	bodyEnd int64 // end of the range body streams
	resumes int   // consecutive failed reads of body
	current *rangeFetch
	ahead   []*rangeFetch // fetches of the ranges after the current one, in order
	next    int64         // start of the first range neither delivered nor fetched
	crc     hash.Hash64
	wantCRC string
	err     error // the first failure, returned from then on
	closed  bool
}

// rangeFetch is bytes [start, end) being fetched into buf, pieces of the
// budget.
type rangeFetch struct {
	start, end int64
	buf        [][]byte
	done       chan struct{} // closed when buf is filled or err set
	err        error
}

// at is the range from pos to the end of the piece that holds pos.
func (f *rangeFetch) at(pos int64) []byte {
	i := int(pos - f.start)
	return f.buf[i/pieceSize][i%pieceSize:]
}

func (r *resumingReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, fmt.Errorf("cos: read of %s after close", r.path)
	}
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.read(p)
	if r.crc != nil {
		r.crc.Write(p[:n])
	}
	r.pos += int64(n)
	if err == nil && r.pos >= r.size {
		err = r.checkCRC()
	}
	if err != nil {
		r.err = err
	}
	return n, err
}

// read delivers bytes from r.pos; it returns io.EOF only at the end of
// the object.
func (r *resumingReader) read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, r.checkCRC()
	}
	r.fetchAhead()
	if r.body == nil && r.current == nil {
		if len(r.ahead) > 0 {
			r.current, r.ahead = r.ahead[0], r.ahead[1:]
		} else {
			// No buffer was free for this range: stream it.
			r.bodyEnd = min(r.next+r.d.params.ChunkSize, r.size)
			r.next = r.bodyEnd
		}
	}
	if f := r.current; f != nil {
		select {
		case <-f.done:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
		if f.err != nil {
			return 0, f.err
		}
		n := copy(p, f.at(r.pos))
		if r.pos+int64(n) == f.end {
			r.d.buffers.putRead(f.buf)
			r.current = nil
		}
		return n, nil
	}
	return r.stream(p)
}

// fetchAhead starts fetches of the ranges after the one delivered, as
// long as fewer than readAhead are under way and buffers are free.
func (r *resumingReader) fetchAhead() {
	for len(r.ahead) < readAhead && r.next < r.size {
		end := min(r.next+r.d.params.ChunkSize, r.size)
		buf, ok := r.d.buffers.getForRead(int((end - r.next + pieceSize - 1) / pieceSize))
		if !ok {
			return
		}
		f := &rangeFetch{start: r.next, end: end, buf: buf, done: make(chan struct{})}
		r.next = f.end
		r.ahead = append(r.ahead, f)
		go r.fetch(f)
	}
}

// fetch fills f.buf with its range, resuming after a dropped connection.
func (r *resumingReader) fetch(f *rangeFetch) {
	defer close(f.done)
	for i := range f.buf {
		f.buf[i] = f.buf[i][:min(pieceSize, int(f.end-f.start)-i*pieceSize)]
	}
	pos, failures := f.start, 0
	for pos < f.end {
		body, err := r.open(pos, f.end)
		if err != nil {
			f.err = err
			return
		}
		n := 0
		for err == nil && pos < f.end {
			var k int
			k, err = io.ReadFull(body, f.at(pos))
			pos += int64(k)
			n += k
		}
		body.Close()
		r.d.metrics.bytesReceived.Add(float64(n))
		if err == nil {
			return
		}
		if r.ctx.Err() != nil {
			f.err = r.ctx.Err()
			return
		}
		if n > 0 {
			failures = 0
		}
		failures++
		if failures > maxReadResumes {
			f.err = fmt.Errorf("cos: reading %s failed at offset %d after %d attempts: %w", r.path, pos, maxReadResumes, err)
			return
		}
	}
}

// stream reads the range up to bodyEnd from body, re-opening it at r.pos
// when the connection drops.
func (r *resumingReader) stream(p []byte) (int, error) {
	for {
		if r.body == nil {
			body, err := r.open(r.pos, r.bodyEnd)
			if err != nil {
				return 0, err
			}
			r.body = body
		}
		n, err := r.body.Read(p[:min(int64(len(p)), r.bodyEnd-r.pos)])
		r.d.metrics.bytesReceived.Add(float64(n))
		if n > 0 {
			r.resumes = 0
		}
		end := r.pos+int64(n) >= r.bodyEnd
		switch {
		case end:
			r.body.Close()
			r.body = nil
			return n, nil
		case err == nil:
			return n, nil
		case r.ctx.Err() != nil:
			return n, err
		}
		// The stream broke (or ended early): resume from where it stopped.
		r.body.Close()
		r.body = nil
		r.resumes++
		if r.resumes > maxReadResumes {
			return n, fmt.Errorf("cos: reading %s failed at offset %d after %d attempts: %w", r.path, r.pos+int64(n), maxReadResumes, err)
		}
		if n > 0 {
			return n, nil
		}
	}
}

// open GETs bytes [start, end) of the version being read.
func (r *resumingReader) open(start, end int64) (io.ReadCloser, error) {
	body, head, err := r.d.openRange(r.ctx, r.key, start, end, r.etag)
	if err != nil {
		if statusOf(err) == http.StatusPreconditionFailed {
			return nil, fmt.Errorf("cos: %s changed while it was being read", r.path)
		}
		return nil, err
	}
	if head.size != r.size {
		body.Close()
		return nil, fmt.Errorf("cos: %s changed while it was being read (size)", r.path)
	}
	return body, nil
}

func (r *resumingReader) checkCRC() error {
	if r.crc == nil {
		return io.EOF
	}
	got := formatCRC(r.crc.Sum64())
	r.crc = nil
	if got != r.wantCRC {
		return fmt.Errorf("cos: %s is corrupt: CRC64 of the data read is %s, COS recorded %s", r.path, got, r.wantCRC)
	}
	return io.EOF
}

// Close stops the fetches under way and gives their buffers back.
func (r *resumingReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.cancel()
	if r.current != nil {
		r.ahead = append(r.ahead, r.current)
	}
	for _, f := range r.ahead {
		<-f.done
		r.d.buffers.putRead(f.buf)
	}
	r.current, r.ahead = nil, nil
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}
