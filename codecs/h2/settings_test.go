// SPDX-License-Identifier: GPL-3.0-only

package h2

import "testing"

type settingsAppender struct {
	SettingsFrame
	s []Setting
}

func (a settingsAppender) Append(b []byte) []byte {
	if a.Ack {
		return AppendSettingsAck(b)
	}
	return AppendSettings(b, a.s...)
}

func (a settingsAppender) Header() FrameHeader {
	return FrameHeader{Length: uint32(6 * len(a.s)), Type: FrameSettings, Flags: map[bool]Flags{true: FlagAck}[a.Ack]}
}

func TestSettingsFrameGolden(t *testing.T) {
	two := unhex(t, "0003 00000064 0004 00010000")
	checkGolden(t, []goldenFrame{
		{"two", settingsAppender{s: []Setting{{SettingMaxConcurrentStreams, 100}, {SettingInitialWindowSize, 65536}}},
			"00000c 04 00 00000000 0003 00000064 0004 00010000", SettingsFrame{raw: two}},
		{"empty", settingsAppender{}, "000000 04 00 00000000", SettingsFrame{raw: []byte{}}},
		{"ack", settingsAppender{SettingsFrame: SettingsFrame{Ack: true}}, "000000 04 01 00000000", SettingsFrame{Ack: true}},
		{"unknown id kept", settingsAppender{s: []Setting{{0xabcd, 7}}}, "000006 04 00 00000000 abcd 00000007",
			SettingsFrame{raw: unhex(t, "abcd 00000007")}},
	})
	f, err := parseSettingsFrame(FrameHeader{Type: FrameSettings, Length: 12}, two)
	if err != nil || f.Len() != 2 || f.At(0) != (Setting{SettingMaxConcurrentStreams, 100}) || f.At(1) != (Setting{SettingInitialWindowSize, 65536}) {
		t.Fatalf("%v %v", f, err)
	}
	if SettingEnableConnectProtocol.String() != "ENABLE_CONNECT_PROTOCOL" || SettingID(0x99).String() != "UNKNOWN_SETTING_0x99" {
		t.Fatal("SettingID.String")
	}
}

func TestSettingsFrameBad(t *testing.T) {
	checkBad(t, []badFrame{
		{"stream 1", "000000 04 00 00000001", ErrSettingsNonZeroStream},
		{"length 5", "000005 04 00 00000000 0003000000", ErrSettingsBadLength},
		{"ack with payload", "000006 04 01 00000000 0003 00000064", ErrSettingsAckWithPayload},
		{"enable push 2", "000006 04 00 00000000 0002 00000002", ErrSettingsBadEnablePush},
		{"initial window 2^31", "000006 04 00 00000000 0004 80000000", ErrSettingsBadWindow},
		{"max frame 16383", "000006 04 00 00000000 0005 00003fff", ErrSettingsBadFrameSize},
		{"max frame 2^24", "000006 04 00 00000000 0005 01000000", ErrSettingsBadFrameSize},
		{"connect protocol 2", "000006 04 00 00000000 0008 00000002", ErrSettingsBadConnect},
	})
	// The extremes are fine.
	for _, s := range []string{"0004 7fffffff", "0005 00004000", "0005 00ffffff", "0002 00000001", "0001 ffffffff"} {
		if _, err := parseSettingsFrame(FrameHeader{Type: FrameSettings, Length: 6}, unhex(t, s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}
