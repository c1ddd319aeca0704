// SPDX-License-Identifier: GPL-3.0-only

// Package conf is ExpressGateway's configuration: the TOML schema as Go
// structs, their defaults, strict loading and validation into an immutable
// Snapshot.
//
// Loading is strict. koanf parses the TOML; the decoder in this package then
// walks the parsed map against the structs' koanf tags, so a key the schema
// does not have is an error wherever it appears (tables, arrays of tables,
// inline tables), a value of the wrong type is an error naming its key path,
// and every struct, including each element of an array of tables, gets its
// defaults before the file's keys are laid over it. Validation then checks
// ranges, addresses and cross-references. Every problem is collected and
// returned in one *ValidationError, each as "FILE: key.path: what is wrong".
//
// The schema lives in config.go: each field's doc comment is the text an
// operator reads, and CONFIG.md at the repository root repeats it. Tests
// fail when the two disagree, or when a documented default differs from the
// one the code applies.
//
// A Snapshot is read-only once returned: share it between event loops and
// swap it with an atomic.Pointer on reload. Parse and Load are safe for
// concurrent use.
package conf
