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
