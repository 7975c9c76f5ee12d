package edge

import (
	"encoding/binary"
	"errors"
	"net/http"
)

// Stored metadata is a compact binary record (it is written on every cache
// fill and read back from disk after restarts, so it is cheaper and
// stricter than JSON):
//
//	byte    format version (1)
//	byte    flags: 1 sliced, 2 stub
//	uvarint status
//	varint  request time, response time (unix ns)
//	uvarint size, slice size, ttl (seconds)
//	string  version, url                     (string = uvarint length + bytes)
//	uvarint n; n × string                    Vary names (stubs)
//	uvarint n; n × (string name, uvarint m, m × string value)   header
const metaFormat = 1

// Limits that keep a damaged or hostile record from allocating much.
const (
	maxMetaFields = 1024
	maxMetaValues = 1024
	maxMetaString = 1 << 20
)

var errMeta = errors.New("edge: malformed stored metadata")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func encodeMeta(m *meta) []byte {
	size := 64 + len(m.Version) + len(m.URL)
	for k, vs := range m.Header {
		size += len(k) + 4
		for _, v := range vs {
			size += len(v) + 3
		}
	}
	b := make([]byte, 0, size)
	var flags byte
	if m.Sliced {
		flags |= 1
	}
	if m.Stub {
		flags |= 2
	}
	b = append(b, metaFormat, flags)
	b = binary.AppendUvarint(b, uint64(m.Status))
	b = binary.AppendVarint(b, m.ReqTime)
	b = binary.AppendVarint(b, m.RespTime)
	b = binary.AppendUvarint(b, uint64(m.Size))
	b = binary.AppendUvarint(b, uint64(m.SliceSize))
	b = binary.AppendUvarint(b, uint64(m.TTL))
	b = appendString(b, m.Version)
	b = appendString(b, m.URL)
	b = binary.AppendUvarint(b, uint64(len(m.Vary)))
	for _, v := range m.Vary {
		b = appendString(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Header)))
	for k, vs := range m.Header {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	return b
}

type metaReader struct {
	b   []byte
	err error
}

func (r *metaReader) uvarint(limit uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > limit {
		r.err = errMeta
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *metaReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errMeta
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *metaReader) str() string {
	n := r.uvarint(maxMetaString)
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errMeta
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// decodeMetaBytes is the inverse of encodeMeta; it rejects anything that
// does not parse exactly.
func decodeMetaBytes(b []byte) (*meta, error) {
	if len(b) < 2 || b[0] != metaFormat || b[1]&^3 != 0 {
		return nil, errMeta
	}
	m := &meta{Sliced: b[1]&1 != 0, Stub: b[1]&2 != 0}
	r := &metaReader{b: b[2:]}
	m.Status = int(r.uvarint(999))
	m.ReqTime = r.varint()
	m.RespTime = r.varint()
	m.Size = int64(r.uvarint(1 << 50))
	m.SliceSize = int64(r.uvarint(1 << 40))
	m.TTL = int64(r.uvarint(1 << 40))
	m.Version = r.str()
	m.URL = r.str()
	if n := r.uvarint(maxMetaFields); n > 0 {
		m.Vary = make([]string, 0, min(n, 64))
		for i := uint64(0); i < n && r.err == nil; i++ {
			m.Vary = append(m.Vary, r.str())
		}
	}
	nf := r.uvarint(maxMetaFields)
	if r.err == nil && !m.Stub {
		m.Header = make(http.Header, min(nf, 64))
	}
	for i := uint64(0); i < nf && r.err == nil; i++ {
		k := r.str()
		nv := r.uvarint(maxMetaValues)
		vs := make([]string, 0, min(nv, 16))
		for j := uint64(0); j < nv && r.err == nil; j++ {
			vs = append(vs, r.str())
		}
		if m.Header != nil {
			m.Header[k] = vs
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 || (m.Sliced && m.SliceSize <= 0) || (!m.Stub && (m.Status < 100 || m.Header == nil)) {
		return nil, errMeta
	}
	return m, nil
}
