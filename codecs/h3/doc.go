// SPDX-License-Identifier: GPL-3.0-only

// Package h3 is the HTTP/3 (RFC 9114) wire syntax the gateway speaks over
// quic-go streams: frame headers, SETTINGS, GOAWAY, and request and
// response heads in QPACK (RFC 9204) without a dynamic table (the gateway
// advertises QPACK_MAX_TABLE_CAPACITY 0, so every field section decodes on
// its own). It is sans-IO: functions take and return bytes; the QUIC driver
// in engine/ owns the streams.
package h3
