// SPDX-License-Identifier: GPL-3.0-only

package msg

import (
	"bytes"
	"fmt"
	"slices"
)

// EscapedSlashes says what NormalizeTarget does with %2F and %5C in a path.
// Upstreams disagree on them (some decode them into separators, some do not),
// so a route on "/admin" can be bypassed by "/%2Fadmin" or "/a%2F..%2Fadmin"
// unless the gateway settles the question itself.
type EscapedSlashes uint8

const (
	// EscapedSlashesKeep forwards them upper-cased as "%2F" and "%5C", not as
	// separators: right for upstreams that do not decode them either.
	EscapedSlashesKeep EscapedSlashes = iota
	// EscapedSlashesReject refuses the request with ErrEscapedSlash.
	EscapedSlashesReject
	// EscapedSlashesUnescape turns both into '/' before dot-segment removal
	// and slash merging: right for upstreams that decode them.
	EscapedSlashesUnescape
)

// ParseEscapedSlashes parses a configuration value: "keep", "reject" or
// "unescape". The empty string is refused; defaults belong to the caller.
func ParseEscapedSlashes(s string) (EscapedSlashes, error) {
	switch s {
	case "keep":
		return EscapedSlashesKeep, nil
	case "reject":
		return EscapedSlashesReject, nil
	case "unescape":
		return EscapedSlashesUnescape, nil
	}
	return 0, fmt.Errorf("escaped slashes: %q is not keep, reject or unescape", s)
}

// String returns the configuration spelling, so that the value round-trips
// through ParseEscapedSlashes.
func (e EscapedSlashes) String() string {
	switch e {
	case EscapedSlashesKeep:
		return "keep"
	case EscapedSlashesReject:
		return "reject"
	case EscapedSlashesUnescape:
		return "unescape"
	}
	return fmt.Sprintf("EscapedSlashes(%d)", uint8(e))
}

// PathOptions tunes NormalizeTarget; the zero value (and nil) keeps escaped
// slashes and does not merge slashes.
type PathOptions struct {
	// MergeSlashes turns each run of '/' into one, for upstreams that do the
	// same ("//admin" would otherwise miss a "/admin" route and still reach
	// /admin).
	MergeSlashes bool
	// EscapedSlashes is the treatment of %2F and %5C.
	EscapedSlashes EscapedSlashes
}

// NormalizeTarget appends the normalised origin-form of target (which starts
// with '/'; path then optional "?query") to dst.
// pathLen is the length of the path part in the appended bytes (the query,
// with its '?', follows it verbatim).
//
// On the path, in order: unreserved percent-encodings are decoded and the hex
// digits of the others upper-cased (RFC 3986 sections 6.2.2.1, 6.2.2.2), %2F
// and %5C are treated as o.EscapedSlashes says, dot segments are removed
// (section 5.2.4; ".." never climbs above the root) and, with o.MergeSlashes,
// runs of '/' are merged. The query is not changed. The result is idempotent:
// normalising it again gives it back.
//
// Refused: a '#' anywhere (ErrFragment, checked first); an empty target, one
// not starting with '/', a raw backslash in the path, a control character or
// space anywhere (ErrBadPath); a '%' without two hex digits in the path
// (ErrBadPercent); %2F or %5C under EscapedSlashesReject (ErrEscapedSlash).
// Apart from ErrFragment, the leftmost offending byte decides the error. On
// error out is dst unchanged in length, though bytes past len(dst) may have
// been written.
//
// dst must not overlap target. Nothing is allocated when dst has room for
// len(target) more bytes; the output is never longer than target.
func NormalizeTarget(dst, target []byte, o *PathOptions) (out []byte, pathLen int, err *Error) {
	if len(target) == 0 || target[0] != '/' {
		if bytes.IndexByte(target, '#') >= 0 {
			return dst, 0, ErrFragment // as for every other target
		}
		return dst, 0, ErrBadPath
	}
	var opt PathOptions
	if o != nil {
		opt = *o
	}
	if n, ok := cleanTarget(target, opt.MergeSlashes); ok {
		return append(dst, target...), n, nil
	}
	return normalizeSlow(dst, target, &opt)
}

// cleanTarget reports whether normalising target would return it unchanged,
// erring towards no ("/.well-known" takes the slow path), and the length of
// its path. Most real paths are clean, so this is the common case: one scan
// and one copy.
func cleanTarget(t []byte, merge bool) (pathLen int, ok bool) {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if pathPlain[c] {
			continue
		}
		switch c {
		case '/':
			if i+1 < len(t) && (t[i+1] == '.' || merge && t[i+1] == '/') {
				return 0, false
			}
		case '?':
			return i, cleanQuery(t[i+1:])
		default:
			return 0, false
		}
	}
	return len(t), true
}

// cleanQuery reports whether q holds no fragment and nothing that would split
// a forwarded request line.
func cleanQuery(q []byte) bool {
	for _, c := range q {
		if c == '#' || isCTLOrSP(c) {
			return false
		}
	}
	return true
}

// normalizeSlow is NormalizeTarget without the fast path; target starts with
// '/'. It writes the path into dst's spare capacity in one pass, segment by
// segment, and resolves each dot segment as soon as it is complete: the output
// so far is the RFC 3986 section 5.2.4 output buffer, and it never grows
// faster than the input is read.
func normalizeSlow(dst, target []byte, opt *PathOptions) ([]byte, int, *Error) {
	if bytes.IndexByte(target, '#') >= 0 {
		return dst, 0, ErrFragment
	}
	path, query := target, target[len(target):]
	if q := bytes.IndexByte(target, '?'); q >= 0 {
		path, query = target[:q], target[q:]
	}
	start := len(dst)
	out := slices.Grow(dst, len(target))[:start+len(path)]
	w, i := start, 0
	for i < len(path) {
		// At a separator: a raw '/' or an unescaped %2F / %5C.
		if path[i] == '/' {
			i++
		} else {
			i += 3
		}
		out[w] = '/'
		w++
		seg := w
	segment:
		for i < len(path) {
			c := path[i]
			switch {
			case c == '/':
				break segment
			case c == '%':
				if i+2 >= len(path) || !isHex(path[i+1]) || !isHex(path[i+2]) {
					return dst, 0, ErrBadPercent
				}
				v := unhex(path[i+1])<<4 | unhex(path[i+2])
				if v == '/' || v == '\\' {
					switch opt.EscapedSlashes {
					case EscapedSlashesReject:
						return dst, 0, ErrEscapedSlash
					case EscapedSlashesUnescape:
						break segment
					}
				}
				if unreserved[v] {
					out[w] = v
					w++
				} else {
					out[w], out[w+1], out[w+2] = '%', upper(path[i+1]), upper(path[i+2])
					w += 3
				}
				i += 3
			case c == '\\' || isCTLOrSP(c):
				return dst, 0, ErrBadPath
			default:
				out[w] = c
				w++
				i++
			}
		}
		last := i >= len(path)
		switch string(out[seg:w]) {
		case ".":
			// Drop the segment with its '/', unless it ends the path: then
			// the '/' stays, as "/a/." means the directory "/a/".
			w = seg - 1
			if last {
				w = seg
			}
		case "..":
			// Drop it and the segment before it; at the root there is none.
			w = seg - 1
			if p := bytes.LastIndexByte(out[start:w], '/'); p >= 0 {
				w = start + p
			}
			if last {
				out[w] = '/'
				w++
			}
		}
	}
	if opt.MergeSlashes {
		w = start + len(mergeSlashes(out[start:w]))
	}
	for _, c := range query {
		if isCTLOrSP(c) {
			return dst, 0, ErrBadPath
		}
	}
	return append(out[:w], query...), w - start, nil
}

// mergeSlashes compacts each run of '/' in p into one, in place.
func mergeSlashes(p []byte) []byte {
	w := 0
	var prev byte
	for _, c := range p {
		if c == '/' && prev == '/' {
			continue
		}
		prev = c
		p[w] = c
		w++
	}
	return p[:w]
}
