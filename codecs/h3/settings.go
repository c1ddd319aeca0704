// SPDX-License-Identifier: GPL-3.0-only

package h3

import "github.com/quic-go/quic-go/quicvarint"

// SETTINGS identifiers (RFC 9114 section 7.2.4.1, RFC 9204 section 5).
const (
	SettingQPACKMaxTableCapacity = 0x1
	SettingMaxFieldSectionSize   = 0x6
	SettingQPACKBlockedStreams   = 0x7
)

// Settings are the parameters the gateway announces and reads.
type Settings struct {
	// MaxFieldSectionSize is SETTINGS_MAX_FIELD_SECTION_SIZE; 0: unlimited.
	MaxFieldSectionSize uint64
	// QPACKMaxTableCapacity is 0: the gateway keeps no dynamic table.
	QPACKMaxTableCapacity uint64
}

// AppendSettings appends a SETTINGS frame.
func AppendSettings(b []byte, s Settings) []byte {
	var p []byte
	p = quicvarint.Append(p, SettingQPACKMaxTableCapacity)
	p = quicvarint.Append(p, s.QPACKMaxTableCapacity)
	p = quicvarint.Append(p, SettingQPACKBlockedStreams)
	p = quicvarint.Append(p, 0)
	if s.MaxFieldSectionSize > 0 {
		p = quicvarint.Append(p, SettingMaxFieldSectionSize)
		p = quicvarint.Append(p, s.MaxFieldSectionSize)
	}
	b = AppendFrameHeader(b, FrameSettings, uint64(len(p)))
	return append(b, p...)
}

// ParseSettings reads a SETTINGS payload. A repeated identifier and the
// HTTP/2 identifiers RFC 9114 section 7.2.4.1 reserves are errors; unknown
// ones are ignored.
func ParseSettings(p []byte) (Settings, error) {
	var s Settings
	seen := map[uint64]bool{}
	for len(p) > 0 {
		id, n, err := quicvarint.Parse(p)
		if err != nil {
			return s, &Error{Code: ErrCodeFrame, Token: "bad_settings"}
		}
		p = p[n:]
		v, n, err := quicvarint.Parse(p)
		if err != nil {
			return s, &Error{Code: ErrCodeFrame, Token: "bad_settings"}
		}
		p = p[n:]
		if seen[id] {
			return s, &Error{Code: ErrCodeSettings, Token: "duplicate_setting"}
		}
		seen[id] = true
		switch id {
		case 0x2, 0x3, 0x4, 0x5:
			return s, &Error{Code: ErrCodeSettings, Token: "http2_setting"}
		case SettingMaxFieldSectionSize:
			s.MaxFieldSectionSize = v
		case SettingQPACKMaxTableCapacity:
			s.QPACKMaxTableCapacity = v
		}
	}
	return s, nil
}
