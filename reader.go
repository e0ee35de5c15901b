package cos

import (
	"context"
	"errors"
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

// Reader streams the object at path from offset. A dropped connection is
// resumed from the current position against the same object version
// (If-Match on its ETag), so a pull survives it. A read from offset 0 is
// checked against the object's CRC64 at the end.
func (d *driver) Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	key := d.key(path)
	body, head, err := d.get(ctx, key, offset, "")
	if err != nil {
		if isNotFound(err) {
			return nil, storagedriver.PathNotFoundError{Path: path}
		}
		if codeOf(err) == "InvalidRange" {
			// offset >= size: an empty reader, as the registry expects
			// (and the filesystem driver gives), unless the object is an
			// upload in progress, which is unreadable at every offset.
			head, herr := d.head(ctx, key)
			if herr != nil {
				if isNotFound(herr) {
					return nil, storagedriver.PathNotFoundError{Path: path}
				}
				return nil, herr
			}
			if head.uploadSize >= 0 {
				return nil, storagedriver.PathNotFoundError{Path: path}
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
	r := &resumingReader{d: d, ctx: ctx, key: key, path: path, body: body, pos: offset, etag: head.etag, end: offset + head.size}
	if offset == 0 && head.crc64 != "" {
		r.crc = crc64.New(crcTable)
		r.wantCRC = head.crc64
	}
	return r, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// get opens a ranged GET from offset; ifMatch pins the object version.
// head.size is the length of the returned body.
func (d *driver) get(ctx context.Context, key string, offset int64, ifMatch string) (io.ReadCloser, objectHead, error) {
	var body io.ReadCloser
	var head objectHead
	err := d.do(ctx, "GetObject", key, func(ctx context.Context) (*cossdk.Response, error) {
		opt := &cossdk.ObjectGetOptions{}
		if offset > 0 {
			opt.Range = fmt.Sprintf("bytes=%d-", offset)
		}
		if ifMatch != "" {
			opt.XOptionHeader = &http.Header{"If-Match": []string{ifMatch}}
		}
		resp, err := d.client.Object.Get(ctx, key, opt)
		if err != nil {
			return resp, err
		}
		head = headOf(resp.Header, resp.ContentLength)
		if err := checkRange(resp.Response, offset); err != nil {
			resp.Body.Close()
			return resp, &localError{fmt.Errorf("cos: reading %s from offset %d: %w", key, offset, err)}
		}
		body = resp.Body
		return resp, nil
	})
	return body, head, err
}

// checkRange checks that an answer to a GET from offset is that range:
// a known length (without it a dropped connection would pass for the end
// of the object) and, from offset > 0, a 206 whose Content-Range starts
// at offset and runs to the end. Anything else would hand out wrong bytes.
func checkRange(resp *http.Response, offset int64) error {
	if resp.ContentLength < 0 {
		return errors.New("COS sent no Content-Length")
	}
	if offset == 0 {
		return nil
	}
	if resp.StatusCode != http.StatusPartialContent {
		return fmt.Errorf("COS answered %d to a ranged read, want 206", resp.StatusCode)
	}
	var first, last, total int64
	cr := resp.Header.Get("Content-Range")
	if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &total); err != nil ||
		first != offset || last != total-1 || last-first+1 != resp.ContentLength {
		return fmt.Errorf("COS answered Content-Range %q with %d bytes, want bytes %d-(end)", cr, resp.ContentLength, offset)
	}
	return nil
}

// resumingReader re-opens its GET at the current position when the
// connection drops before the expected end.
type resumingReader struct {
	d       *driver
	ctx     context.Context
	key     string
	path    string
	etag    string
	body    io.ReadCloser
	pos     int64 // offset of the next byte
	end     int64 // object size
	resumes int   // consecutive failed reads
	crc     hash.Hash64
	wantCRC string
	closed  bool
}

func (r *resumingReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, fmt.Errorf("cos: read of %s after close", r.path)
	}
	for {
		if r.body == nil {
			if err := r.reopen(); err != nil {
				return 0, err
			}
		}
		n, err := r.body.Read(p)
		r.pos += int64(n)
		r.d.metrics.bytesReceived.Add(float64(n))
		if r.crc != nil {
			r.crc.Write(p[:n])
		}
		if n > 0 {
			r.resumes = 0
		}
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, io.EOF) && r.pos >= r.end:
			return n, r.checkCRC()
		case r.ctx.Err() != nil:
			return n, err
		}
		// The stream broke (or ended early): resume from r.pos.
		r.body.Close()
		r.body = nil
		r.resumes++
		if r.resumes > maxReadResumes {
			return n, fmt.Errorf("cos: reading %s failed at offset %d after %d attempts: %w", r.path, r.pos, maxReadResumes, err)
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (r *resumingReader) reopen() error {
	if r.pos >= r.end {
		r.body = io.NopCloser(eofReader{})
		return nil
	}
	body, head, err := r.d.get(r.ctx, r.key, r.pos, r.etag)
	if err != nil {
		if statusOf(err) == http.StatusPreconditionFailed {
			return fmt.Errorf("cos: %s changed while it was being read", r.path)
		}
		return err
	}
	if head.size != r.end-r.pos {
		body.Close()
		return fmt.Errorf("cos: %s changed while it was being read (size)", r.path)
	}
	r.body = body
	return nil
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

func (r *resumingReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}
