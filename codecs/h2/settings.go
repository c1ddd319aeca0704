// SPDX-License-Identifier: GPL-3.0-only

package h2

import "strconv"

// SettingID identifies a SETTINGS parameter (RFC 9113 section 6.5.2).
type SettingID uint16

// Settings parameters: RFC 9113 section 6.5.2 and RFC 8441 section 3.
const (
	SettingHeaderTableSize       SettingID = 0x1
	SettingEnablePush            SettingID = 0x2
	SettingMaxConcurrentStreams  SettingID = 0x3
	SettingInitialWindowSize     SettingID = 0x4
	SettingMaxFrameSize          SettingID = 0x5
	SettingMaxHeaderListSize     SettingID = 0x6
	SettingEnableConnectProtocol SettingID = 0x8
)

// String returns the RFC name, or "UNKNOWN_SETTING_0x..".
func (s SettingID) String() string {
	switch s {
	case SettingHeaderTableSize:
		return "HEADER_TABLE_SIZE"
	case SettingEnablePush:
		return "ENABLE_PUSH"
	case SettingMaxConcurrentStreams:
		return "MAX_CONCURRENT_STREAMS"
	case SettingInitialWindowSize:
		return "INITIAL_WINDOW_SIZE"
	case SettingMaxFrameSize:
		return "MAX_FRAME_SIZE"
	case SettingMaxHeaderListSize:
		return "MAX_HEADER_LIST_SIZE"
	case SettingEnableConnectProtocol:
		return "ENABLE_CONNECT_PROTOCOL"
	}
	return "UNKNOWN_SETTING_0x" + strconv.FormatUint(uint64(s), 16)
}

// Setting is one parameter of a SETTINGS frame.
type Setting struct {
	ID  SettingID
	Val uint32
}

// SettingsFrame is a SETTINGS frame (RFC 9113 section 6.5). Its parameters
// stay in wire form and are read with Len and At, so parsing allocates
// nothing.
type SettingsFrame struct {
	Ack bool
	raw []byte // 6 octets per parameter
}

// Header returns the frame header the frame has on the wire.
func (f SettingsFrame) Header() FrameHeader {
	h := FrameHeader{Length: uint32(len(f.raw)), Type: FrameSettings}
	if f.Ack {
		h.Flags = FlagAck
	}
	return h
}

// Len returns the number of parameters.
func (f SettingsFrame) Len() int { return len(f.raw) / 6 }

// At returns parameter i, 0 <= i < Len().
func (f SettingsFrame) At(i int) Setting {
	p := f.raw[i*6 : i*6+6]
	return Setting{ID: SettingID(p[0])<<8 | SettingID(p[1]), Val: readUint32(p[2:])}
}

// AppendSettings appends a SETTINGS frame with the given parameters in
// order.
func AppendSettings(b []byte, s ...Setting) []byte {
	b = AppendFrameHeader(b, FrameHeader{Length: uint32(6 * len(s)), Type: FrameSettings})
	for _, p := range s {
		b = append(b, byte(p.ID>>8), byte(p.ID))
		b = appendUint32(b, p.Val)
	}
	return b
}

// AppendSettingsAck appends a SETTINGS frame with the ACK flag.
func AppendSettingsAck(b []byte) []byte {
	return AppendFrameHeader(b, FrameHeader{Type: FrameSettings, Flags: FlagAck})
}

// parseSettingsFrame checks the frame's shape and each known parameter's
// range. Which values a role may receive (ENABLE_PUSH=1 from a server) and
// the effect on windows are the Conn's business.
func parseSettingsFrame(h FrameHeader, p []byte) (SettingsFrame, error) {
	if h.StreamID != 0 {
		return SettingsFrame{}, ErrSettingsNonZeroStream
	}
	if h.Flags.Has(FlagAck) {
		if len(p) != 0 {
			return SettingsFrame{}, ErrSettingsAckWithPayload
		}
		return SettingsFrame{Ack: true}, nil
	}
	if len(p)%6 != 0 {
		return SettingsFrame{}, ErrSettingsBadLength
	}
	f := SettingsFrame{raw: p}
	for i := range f.Len() {
		if err := checkSetting(f.At(i)); err != nil {
			return SettingsFrame{}, err
		}
	}
	return f, nil
}

func checkSetting(s Setting) error {
	switch s.ID {
	case SettingEnablePush:
		if s.Val > 1 {
			return ErrSettingsBadEnablePush
		}
	case SettingInitialWindowSize:
		if s.Val > maxWindow {
			return ErrSettingsBadWindow
		}
	case SettingMaxFrameSize:
		if s.Val < defaultMaxFrame || s.Val > maxFrameSizeLimit {
			return ErrSettingsBadFrameSize
		}
	case SettingEnableConnectProtocol:
		if s.Val > 1 {
			return ErrSettingsBadConnect
		}
	}
	// Unknown parameters MUST be ignored (RFC 9113 section 6.5.2).
	return nil
}
