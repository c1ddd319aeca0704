// SPDX-License-Identifier: GPL-3.0-only

package h3

import "strconv"

// ErrCode is an HTTP/3 error code (RFC 9114 section 8.1, RFC 9204 section 6).
type ErrCode uint64

// Error codes.
const (
	ErrCodeNo                   ErrCode = 0x100
	ErrCodeGeneralProtocol      ErrCode = 0x101
	ErrCodeInternal             ErrCode = 0x102
	ErrCodeStreamCreation       ErrCode = 0x103
	ErrCodeClosedCriticalStream ErrCode = 0x104
	ErrCodeFrameUnexpected      ErrCode = 0x105
	ErrCodeFrame                ErrCode = 0x106
	ErrCodeExcessiveLoad        ErrCode = 0x107
	ErrCodeID                   ErrCode = 0x108
	ErrCodeSettings             ErrCode = 0x109
	ErrCodeMissingSettings      ErrCode = 0x10a
	ErrCodeRequestRejected      ErrCode = 0x10b
	ErrCodeRequestCancelled     ErrCode = 0x10c
	ErrCodeRequestIncomplete    ErrCode = 0x10d
	ErrCodeMessage              ErrCode = 0x10e
	ErrCodeConnect              ErrCode = 0x10f
	ErrCodeVersionFallback      ErrCode = 0x110
	ErrCodeQPACKDecompression   ErrCode = 0x200
)

// Error is a protocol error with its code and a stable short token (the
// metric label).
type Error struct {
	Code  ErrCode
	Token string
}

func (e *Error) Error() string {
	return "h3: " + e.Token + " (0x" + strconv.FormatUint(uint64(e.Code), 16) + ")"
}

var errCodeNames = map[ErrCode]string{
	ErrCodeNo: "H3_NO_ERROR", ErrCodeGeneralProtocol: "H3_GENERAL_PROTOCOL_ERROR", ErrCodeInternal: "H3_INTERNAL_ERROR",
	ErrCodeStreamCreation: "H3_STREAM_CREATION_ERROR", ErrCodeClosedCriticalStream: "H3_CLOSED_CRITICAL_STREAM",
	ErrCodeFrameUnexpected: "H3_FRAME_UNEXPECTED", ErrCodeFrame: "H3_FRAME_ERROR", ErrCodeExcessiveLoad: "H3_EXCESSIVE_LOAD",
	ErrCodeID: "H3_ID_ERROR", ErrCodeSettings: "H3_SETTINGS_ERROR", ErrCodeMissingSettings: "H3_MISSING_SETTINGS",
	ErrCodeRequestRejected: "H3_REQUEST_REJECTED", ErrCodeRequestCancelled: "H3_REQUEST_CANCELLED",
	ErrCodeRequestIncomplete: "H3_REQUEST_INCOMPLETE", ErrCodeMessage: "H3_MESSAGE_ERROR", ErrCodeConnect: "H3_CONNECT_ERROR",
	ErrCodeVersionFallback: "H3_VERSION_FALLBACK", ErrCodeQPACKDecompression: "QPACK_DECOMPRESSION_FAILED",
}

// String is the code's RFC name; codes without one (reserved, greased or
// private) are "unknown", so that a metric label cannot be made to grow.
func (c ErrCode) String() string {
	if n, ok := errCodeNames[c]; ok {
		return n
	}
	return "unknown"
}
