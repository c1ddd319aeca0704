package h1

import "strconv"

// AppendChunk appends data as one chunk of a chunked body. Empty data
// appends nothing, since an empty chunk would end the body.
func AppendChunk(dst, data []byte) []byte {
	if len(data) == 0 {
		return dst
	}
	dst = strconv.AppendInt(dst, int64(len(data)), 16)
	dst = append(dst, '\r', '\n')
	dst = append(dst, data...)
	return append(dst, '\r', '\n')
}

// AppendLastChunk appends the last chunk, the trailer fields and the blank
// line that end a chunked body.
func AppendLastChunk(dst []byte, trailers []Header) []byte {
	dst = append(dst, '0', '\r', '\n')
	for _, h := range trailers {
		dst = appendField(dst, h.Name, h.Value)
	}
	return append(dst, '\r', '\n')
}

func appendField(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ':', ' ')
	dst = append(dst, value...)
	return append(dst, '\r', '\n')
}
